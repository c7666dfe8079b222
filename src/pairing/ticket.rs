//! The sender's pairing tickets: how a rerun finds its session without pairing again.
//!
//! A code pairs once (the relay burns it), but a sender killed mid-transfer must be able to
//! run the same command again and resume. So after pairing, the sender keeps what pairing
//! gave (the session's psk, its relay name, the listener's key) in
//! `STATE/pairing/RELAY/NAMEPLATE.ticket` (STATE: `$MSOCK_STATE_DIR`, else
//! `$XDG_STATE_HOME/msock`, else `~/.local/state/msock`; mode 0600), with a hash of the
//! whole code. A rerun with the same code and relay finds the ticket by the code's nameplate,
//! checks the hash (a new code with the same number does not match) and dials the session
//! name with the psk directly: no new code, no PAKE. The ticket is removed after a transfer
//! that ended well. It holds the psk, so it is as secret as the session.
//!
//! The listener keeps one too, `STATE/pairing/RELAY/listener-NAME.ticket` (NAME: the
//! session's relay name), with the `--save-dir` it serves: a listener killed mid-transfer
//! and run again as `msock listen --code --resume` (same relay and --save-dir) takes the
//! newest such ticket and serves the same pairing again, so that the sender's rerun finds it
//! and resumes from the partial files. It is removed, with the session name's relay secret,
//! after a session that ended well.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::proto::code::Code;
use crate::proto::pake::Paired;
use crate::relay::secrets;

/// Where the ticket of `code` at `relay` (HOST:PORT) lives; None without a state directory.
pub fn path(relay: &str, code: &Code) -> Option<PathBuf> {
    Some(relay_dir(relay)?.join(format!("{}.ticket", code.nameplate)))
}

/// `STATE/pairing/RELAY`.
fn relay_dir(relay: &str) -> Option<PathBuf> {
    let relay: String = relay
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' => c,
            _ => '_',
        })
        .collect();
    Some(secrets::state_dir()?.join("pairing").join(relay))
}

/// Where the listener's ticket for session name `name` at `relay` lives.
pub fn listener_path(relay: &str, name: &str) -> Option<PathBuf> {
    Some(relay_dir(relay)?.join(format!("listener-{name}.ticket")))
}

/// `--save-dir` as the ticket records it (absolute when it exists; "" without one).
fn dir_key(save_dir: Option<&Path>) -> String {
    save_dir.map_or(String::new(), |d| {
        std::fs::canonicalize(d)
            .unwrap_or_else(|_| d.to_path_buf())
            .to_string_lossy()
            .into_owned()
    })
}

/// Keeps the listener's side of `paired` at `relay`, serving `save_dir`.
pub fn save_listener(
    relay: &str,
    paired: &Paired,
    save_dir: Option<&Path>,
) -> Result<PathBuf, String> {
    let p = listener_path(relay, &paired.session_name)
        .ok_or("no state directory for the pairing ticket: set MSOCK_STATE_DIR or HOME")?;
    let doc = serde_json::json!({
        "save_dir": dir_key(save_dir),
        "name": paired.session_name,
        "psk": secrets::hex(&paired.psk),
        "listener_key": secrets::hex(&paired.listener_key),
    });
    secrets::write_private(&p, doc.to_string().as_bytes())
        .map_err(|e| format!("cannot keep the pairing ticket in {}: {e}", p.display()))?;
    Ok(p)
}

/// The newest listener ticket at `relay` for `save_dir` (`msock listen --code --resume`).
pub fn load_listener(relay: &str, save_dir: Option<&Path>) -> Option<Paired> {
    let want = dir_key(save_dir);
    let mut found: Vec<(std::time::SystemTime, Paired)> = std::fs::read_dir(relay_dir(relay)?)
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let file = e.file_name();
            let file = file.to_str()?;
            if !(file.starts_with("listener-") && file.ends_with(".ticket")) {
                return None;
            }
            let when = e.metadata().ok()?.modified().ok()?;
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok()?;
            if v["save_dir"].as_str()? != want {
                return None;
            }
            let name = v["name"].as_str()?;
            crate::relay::client::parse(&format!("{name}@x")).ok()??;
            let paired = Paired {
                psk: secrets::unhex32(v["psk"].as_str()?)?,
                session_name: name.to_owned(),
                listener_key: secrets::unhex32(v["listener_key"].as_str()?)?,
            };
            Some((when, paired))
        })
        .collect();
    found.sort_by_key(|(when, _)| *when);
    found.pop().map(|(_, p)| p)
}

fn check(code: &Code) -> String {
    let mut h = Sha256::new();
    h.update(b"msock code ticket v1");
    h.update(code.phrase().as_bytes());
    secrets::hex(&h.finalize())
}

/// Keeps `paired` for `code` at `relay`.
pub fn save(relay: &str, code: &Code, paired: &Paired) -> Result<PathBuf, String> {
    let p = path(relay, code)
        .ok_or("no state directory for the pairing ticket: set MSOCK_STATE_DIR or HOME")?;
    let doc = serde_json::json!({
        "check": check(code),
        "name": paired.session_name,
        "psk": secrets::hex(&paired.psk),
        "listener_key": secrets::hex(&paired.listener_key),
    });
    secrets::write_private(&p, doc.to_string().as_bytes())
        .map_err(|e| format!("cannot keep the pairing ticket in {}: {e}", p.display()))?;
    Ok(p)
}

/// The ticket of `code` at `relay`, if one was kept for exactly this code.
pub fn load(relay: &str, code: &Code) -> Option<Paired> {
    let text = std::fs::read_to_string(path(relay, code)?).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    if v["check"].as_str()? != check(code) {
        return None;
    }
    let name = v["name"].as_str()?;
    crate::relay::client::parse(&format!("{name}@x")).ok()??;
    Some(Paired {
        psk: secrets::unhex32(v["psk"].as_str()?)?,
        session_name: name.to_owned(),
        listener_key: secrets::unhex32(v["listener_key"].as_str()?)?,
    })
}

/// Removes the ticket (the transfer is complete).
pub fn remove(relay: &str, code: &Code) {
    if let Some(p) = path(relay, code) {
        let _ = std::fs::remove_file(p);
    }
}

/// Removes the listener's ticket for session name `name` at `relay`, and the name's relay
/// secret (the session ended well: neither is needed again).
pub fn remove_listener(relay: &str, name: &str) {
    for p in [
        listener_path(relay, name),
        secrets::secret_path(relay, name),
    ]
    .into_iter()
    .flatten()
    {
        let _ = std::fs::remove_file(p);
    }
}
