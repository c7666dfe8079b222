//! Keys on disk: the listener's and the client's long-term keys (created on first use), the
//! fingerprints of the listeners a client has met (trust on first use, like ssh's known_hosts)
//! and pre-shared key files.
//!
//! Everything lives in the config directory: `$MSOCK_CONFIG_DIR`, else
//! `$XDG_CONFIG_HOME/msock`, else `~/.config/msock`.
//! - `listener.key`: the listener's X25519 private key, 64 hex digits (mode 0600).
//! - `client.key`: the client's (connect, send-file, bench), the same way; listeners admit it
//!   by its fingerprint (`--authorized-keys`).
//! - `known_peers`: the listener keys met, one line per key, `HOST[,HOST...] FINGERPRINT`
//!   (host names and addresses, for every port; `[HOST]:PORT` for one port): see
//!   [`known_peers`].

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::proto::handshake::{fingerprint, Identity};

mod known_peers;
pub use known_peers::Found;
pub(crate) use known_peers::PinCheck;

/// Why a key could not be had or did not match; each variant says whose it is to fix.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// There is no config directory (the user's environment).
    #[error("no config directory: set HOME or MSOCK_CONFIG_DIR")]
    NoConfigDir,
    /// A key file could not be read or written (the local system); `doing` says what failed,
    /// e.g. "cannot read PATH".
    #[error("{doing}: {error}")]
    Io {
        /// What was being done, with the path.
        doing: String,
        /// The OS's answer.
        error: io::Error,
    },
    /// A key file holds something else (the user's to move away).
    #[error("{} is not an msock key (64 hex digits); move it away to create a new key ({})",
        .0.display(), .1.consequence())]
    BadKeyFile(PathBuf, KeyRole),
    /// The pre-shared key file is empty (the user's).
    #[error("--psk-file {} is empty", .0.display())]
    EmptyPsk(PathBuf),
    /// The listener's key is not the one `--peer-key` names (someone in between, or the
    /// wrong listener).
    #[error(
        "the listener at {dest} is not the one --peer-key names: expected {want}, got {got}. \
             Someone may be intercepting the connection"
    )]
    NotGiven {
        /// The destination.
        dest: String,
        /// The fingerprint given.
        want: String,
        /// The listener's.
        got: String,
    },
    /// The listener's key changed since it was pinned (someone in between, or a replaced
    /// key).
    #[error("{0}")]
    Changed(Box<Changed>),
}

impl KeyError {
    /// True if the user or the local system is to fix it (a file that cannot be read or
    /// written, no config directory, a bad key file); false if the listener's key is not the
    /// expected one (someone in between, or the wrong listener).
    pub fn is_local(&self) -> bool {
        match self {
            KeyError::NoConfigDir
            | KeyError::Io { .. }
            | KeyError::BadKeyFile(..)
            | KeyError::EmptyPsk(_) => true,
            KeyError::NotGiven { .. } | KeyError::Changed(_) => false,
        }
    }
}

/// A listener key that differs from the one pinned for its destination.
#[derive(Debug, thiserror::Error)]
#[error("the listener at {dest} has a different key than the one pinned for it in {} \
         line {} ({}{}): pinned {}, now {got}. Someone may be intercepting the \
         connection, or the listener's key was replaced; if you know it was, delete that \
         line (or run `msock connect --forget-key {}`). If it is another listener on the \
         same host with a key of its own, pin it for its port: add a line `{pin_port} \
         FINGERPRINT` there, with the fingerprint `msock listen --show-key` prints on it",
    file.display(), found.line, found.names,
    if found.by_address { ", found by the address it resolved to" } else { "" },
    found.fingerprint, forget)]
pub struct Changed {
    /// The destination.
    pub dest: String,
    /// The entry that pins another key for it.
    pub found: Found,
    /// The listener's.
    pub got: String,
    /// The file it is pinned in.
    pub file: PathBuf,
    /// What `--forget-key` takes to remove that line.
    pub forget: String,
    /// `[HOST]:PORT` for the destination.
    pub pin_port: String,
}

/// Whose long-term key a key file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRole {
    /// The listener's (`listener.key`).
    Listener,
    /// The client's (`client.key`).
    Client,
}

impl KeyRole {
    fn file(self) -> &'static str {
        match self {
            KeyRole::Listener => "listener.key",
            KeyRole::Client => "client.key",
        }
    }
    fn name(self) -> &'static str {
        match self {
            KeyRole::Listener => "listener",
            KeyRole::Client => "client",
        }
    }
    fn consequence(self) -> &'static str {
        match self {
            KeyRole::Listener => "clients that pinned the old one will refuse the new one",
            KeyRole::Client => {
                "listeners that authorized the old one will refuse the new one until its \
                 fingerprint is added"
            }
        }
    }
}

/// A [`KeyError::Io`] for `doing`.
fn io_err(doing: String) -> impl FnOnce(io::Error) -> KeyError {
    move |error| KeyError::Io { doing, error }
}

/// The config directory (not created).
pub(crate) fn config_dir() -> Result<PathBuf, KeyError> {
    if let Some(d) = std::env::var_os("MSOCK_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("msock"));
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".config/msock")),
        None => Err(KeyError::NoConfigDir),
    }
}

/// The listener's key pair: read from `listener.key`, or created there (0600) on first use.
/// Two listeners starting at once end up with the same key.
pub fn listener_identity() -> Result<Identity, KeyError> {
    identity(KeyRole::Listener)
}

/// The client's key pair (connect, send-file, bench): read from `client.key`, or created
/// there (0600) on first use.
pub fn client_identity() -> Result<Identity, KeyError> {
    identity(KeyRole::Client)
}

/// The key pair of `role`, read from its file or created there (0600) on first use. Two
/// processes starting at once end up with the same key.
fn identity(role: KeyRole) -> Result<Identity, KeyError> {
    let dir = config_dir()?;
    let path = dir.join(role.file());
    let bad = |path| KeyError::BadKeyFile(path, role);
    match fs::read_to_string(&path) {
        Ok(text) => return parse_key(&text).ok_or_else(|| bad(path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(format!("cannot read {}", path.display()))(e)),
    }
    let ctx = |e: io::Error| {
        io_err(format!(
            "cannot create the {} key in {}",
            role.name(),
            dir.display()
        ))(e)
    };
    fs::create_dir_all(&dir).map_err(ctx)?;
    let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o700));
    let id = Identity::generate(&mut rand::rngs::OsRng);
    // Write a private temporary file, then link it into place only if no key exists yet.
    let tmp = dir.join(format!(".{}.{}", role.file(), std::process::id()));
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
            tracing::info!("created the {} key {}", role.name(), path.display());
            Ok(id)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let text = fs::read_to_string(&path)
                .map_err(io_err(format!("cannot read {}", path.display())))?;
            parse_key(&text).ok_or_else(|| bad(path))
        }
        Err(e) => Err(ctx(e)),
    }
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
pub fn read_psk(path: &Path) -> Result<[u8; 32], KeyError> {
    let bytes =
        fs::read(path).map_err(io_err(format!("cannot read --psk-file {}", path.display())))?;
    let trimmed = bytes.trim_ascii();
    if trimmed.is_empty() {
        return Err(KeyError::EmptyPsk(path.to_owned()));
    }
    let mut input = b"msock psk v1\0".to_vec();
    input.extend_from_slice(trimmed);
    let d = ring::digest::digest(&ring::digest::SHA256, &input);
    Ok(d.as_ref().try_into().expect("32-byte digest"))
}

/// Checks the listener key `public` met at `dest` (the connection went to `addr`; None
/// through a relay) against `--peer-key` (if given) or the pinned fingerprint, pinning it on
/// first contact. Err: the key changed (or is not the one given); the message shows both
/// fingerprints and what to do.
pub(crate) fn check_peer(
    dest: &str,
    addr: Option<std::net::IpAddr>,
    public: &[u8],
    given: Option<&str>,
) -> Result<PinCheck, KeyError> {
    let got = fingerprint(public);
    if let Some(want) = given {
        return if want.trim() == got {
            Ok(PinCheck::Given)
        } else {
            Err(KeyError::NotGiven {
                dest: dest.to_owned(),
                want: want.trim().to_owned(),
                got,
            })
        };
    }
    known_peers::check(config_dir()?.join("known_peers"), dest, addr, &got)
}

/// Removes the pinned keys of `dest` (`HOST`: every line naming HOST; `HOST:PORT`: the lines
/// a connection there would use) from `known_peers`. Returns the file and the lines removed.
pub fn forget_peer(dest: &str) -> Result<(PathBuf, Vec<String>), KeyError> {
    let path = config_dir()?.join("known_peers");
    let removed = known_peers::forget(path.clone(), dest)?;
    Ok((path, removed))
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
