//! Keys on disk: the listener's long-term key (created on first use), the fingerprints of the
//! listeners a client has met (trust on first use, like ssh's known_hosts) and pre-shared key
//! files.
//!
//! Everything lives in the config directory: `$MSOCK_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/msock`, else `~/.config/msock`.
//! - `listener.key`: the listener's X25519 private key, 64 hex digits (mode 0600).
//! - `known_peers`: one line per destination, `DEST FINGERPRINT` (DEST as given to connect,
//!   send-file or bench, e.g. `example.net:9000`).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::proto::handshake::{fingerprint, Identity};

/// The config directory (not created).
pub fn config_dir() -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os("MSOCK_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("msock"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".config/msock")),
        None => Err("no config directory: set HOME or MSOCK_CONFIG_DIR".into()),
    }
}

/// The listener's key pair: read from `listener.key`, or created there (0600) on first use.
/// Two listeners starting at once end up with the same key.
pub fn listener_identity() -> Result<Identity, String> {
    let dir = config_dir()?;
    let path = dir.join("listener.key");
    match fs::read_to_string(&path) {
        Ok(text) => return parse_key(&text).ok_or_else(|| bad_key_file(&path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let ctx = |e: io::Error| format!("cannot create the listener key in {}: {e}", dir.display());
    fs::create_dir_all(&dir).map_err(ctx)?;
    let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
    let id = Identity::generate(&mut rand::rngs::OsRng);
    // Write a private temporary file, then link it into place only if no key exists yet.
    let tmp = dir.join(format!(".listener.key.{}", std::process::id()));
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(ctx)?;
    writeln!(f, "{}", hex(&id.private)).map_err(ctx)?;
    f.sync_all().map_err(ctx)?;
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            tracing::info!("created the listener key {}", path.display());
            Ok(id)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let text = fs::read_to_string(&path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            parse_key(&text).ok_or_else(|| bad_key_file(&path))
        }
        Err(e) => Err(ctx(e)),
    }
}

fn bad_key_file(path: &Path) -> String {
    format!(
        "{} is not an msock key (64 hex digits); move it away to create a new key (clients that \
         pinned the old one will refuse the new one)",
        path.display()
    )
}

fn parse_key(text: &str) -> Option<Identity> {
    let t = text.trim();
    if t.len() != 64 {
        return None;
    }
    let mut k = [0u8; 32];
    for (i, b) in k.iter_mut().enumerate() {
        *b = u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(Identity::from_private(k))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Reads a pre-shared key file: any non-empty content (surrounding whitespace ignored), hashed
/// into the 32-byte key both ends must share.
pub fn read_psk(path: &Path) -> Result<[u8; 32], String> {
    let bytes =
        fs::read(path).map_err(|e| format!("cannot read --psk-file {}: {e}", path.display()))?;
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Err(format!("--psk-file {} is empty", path.display()));
    }
    let mut input = b"msock psk v1\0".to_vec();
    input.extend_from_slice(trimmed);
    let d = ring::digest::digest(&ring::digest::SHA256, &input);
    Ok(d.as_ref().try_into().expect("32-byte digest"))
}

/// How a listener's key compared with what the client knew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinCheck {
    /// It matches `--peer-key`.
    Given,
    /// It matches the fingerprint pinned for this destination.
    Known,
    /// First contact: it was pinned now.
    PinnedNow,
}

/// Checks the listener key `public` met at `dest` against `--peer-key` (if given) or the
/// pinned fingerprint, pinning it on first contact. Err: the key changed (or is not the one
/// given); the message shows both fingerprints and what to do.
pub fn check_peer(dest: &str, public: &[u8], given: Option<&str>) -> Result<PinCheck, String> {
    let got = fingerprint(public);
    if let Some(want) = given {
        return if want.trim() == got {
            Ok(PinCheck::Given)
        } else {
            Err(format!(
                "the listener at {dest} is not the one --peer-key names: expected {}, got {got}. \
                 Someone may be intercepting the connection",
                want.trim()
            ))
        };
    }
    let path = config_dir()?.join("known_peers");
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    for line in text.lines() {
        let mut it = line.split_whitespace();
        if let (Some(d), Some(fp)) = (it.next(), it.next()) {
            if d == dest {
                return if fp == got {
                    Ok(PinCheck::Known)
                } else {
                    Err(format!(
                        "the listener at {dest} has a different key than last time: pinned {fp}, \
                         now {got}. Someone may be intercepting the connection, or the listener's \
                         key was replaced; if you know it was, remove the line for {dest} from {}",
                        path.display()
                    ))
                };
            }
        }
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut f = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    writeln!(f, "{dest} {got}").map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(PinCheck::PinnedNow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_format() {
        let id = Identity::from_private([7; 32]);
        let again = parse_key(&format!("{}\n", hex(&id.private))).unwrap();
        assert_eq!(again.public, id.public);
        assert!(parse_key("xyz").is_none());
        assert!(parse_key(&"g".repeat(64)).is_none());
    }
}
