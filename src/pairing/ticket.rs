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

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::proto::code::Code;
use crate::proto::pake::Paired;
use crate::relay::secrets;

/// Where the ticket of `code` at `relay` (HOST:PORT) lives; None without a state directory.
pub fn path(relay: &str, code: &Code) -> Option<PathBuf> {
    let relay: String = relay
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' => c,
            _ => '_',
        })
        .collect();
    Some(
        secrets::state_dir()?
            .join("pairing")
            .join(relay)
            .join(format!("{}.ticket", code.nameplate)),
    )
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
