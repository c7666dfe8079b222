//! Name secrets and operator keys: HMAC proofs over the relay's nonce, the listener's secret
//! file, and the relay's `--auth-keys` file.
//!
//! A listener keeps the secret of each name it registered in
//! `STATE/msock/relay-names/RELAY/NAME.secret` (64 hex digits, mode 0600), where STATE is
//! `$MSOCK_STATE_DIR` if set, else `$XDG_STATE_HOME`, else `~/.local/state`. A name
//! registered with `--relay-cluster` at a relay of a cluster (the relay said so with its
//! NONCE, asked) has one secret for the whole cluster, kept in `STATE/msock/relay-clusters/CLUSTER/NAME.secret` (CLUSTER: the
//! cluster id in hex), so that every relay of the cluster takes the same proof.

use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::wire::{NONCE_LEN, SECRET_LEN};

type HmacSha256 = Hmac<Sha256>;

/// Label of the name proof.
const NAME_LABEL: &[u8] = b"msock relay name v1";
/// Label of the operator-key proof.
const KEY_LABEL: &[u8] = b"msock relay key v1";

fn mac(key: &[u8], label: &[u8], name: &str, nonce: &[u8; NONCE_LEN]) -> [u8; SECRET_LEN] {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(label);
    m.update(&[name.len() as u8]);
    m.update(name.as_bytes());
    m.update(nonce);
    m.finalize().into_bytes().into()
}

/// The proof that the listener holds `secret` for `name`, over `nonce`.
pub(crate) fn name_proof(
    secret: &[u8; SECRET_LEN],
    name: &str,
    nonce: &[u8; NONCE_LEN],
) -> [u8; 32] {
    mac(secret, NAME_LABEL, name, nonce)
}

/// The proof that the listener holds operator key `key`, over `nonce`.
pub(crate) fn key_proof(key: &[u8], name: &str, nonce: &[u8; NONCE_LEN]) -> [u8; 32] {
    mac(key, KEY_LABEL, name, nonce)
}

/// Constant-time equality of two proofs.
pub fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lower-case hex.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parses 64 hex digits.
pub(crate) fn unhex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// msock's state directory: `$MSOCK_STATE_DIR`, else `$XDG_STATE_HOME/msock`, else
/// `~/.local/state/msock`.
pub(crate) fn state_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = env("MSOCK_STATE_DIR") {
        return Some(d);
    }
    if let Some(d) = env("XDG_STATE_HOME") {
        return Some(d.join("msock"));
    }
    env("HOME").map(|h| h.join(".local/state/msock"))
}

/// Where the listener keeps the secret of `name` at `relay` (HOST:PORT as given).
pub fn secret_path(relay: &str, name: &str) -> Option<PathBuf> {
    let relay: String = relay
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(
        state_dir()?
            .join("relay-names")
            .join(relay)
            .join(format!("{name}.secret")),
    )
}

/// Where the listener keeps the secret of `name` at the relays of the cluster `cluster` (a
/// relay's id for it: bytes, written as hex, so a hostile relay cannot pick the path).
pub(crate) fn cluster_secret_path(cluster: &[u8], name: &str) -> Option<PathBuf> {
    Some(
        state_dir()?
            .join("relay-clusters")
            .join(hex(cluster))
            .join(format!("{name}.secret")),
    )
}

/// Reads a secret file; None if it does not exist; Err if it exists but is unusable.
pub(crate) fn load_secret(path: &Path) -> Result<Option<[u8; 32]>, String> {
    match std::fs::read_to_string(path) {
        Ok(s) => unhex32(&s).map(Some).ok_or_else(|| {
            format!(
                "{} is not a name secret (64 hex digits); remove it to register the name afresh",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Writes `data` to `path` atomically (temporary file, then rename), mode 0600, creating the
/// directory (mode 0700) if needed.
pub(crate) fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Reads an operator key file: one key per line (any text, at least 16 bytes; `#` starts a
/// comment line). Used by the relay (`--auth-keys`, every line) and by the listener
/// (`--relay-key-file`, the first key).
pub fn load_keys(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        if l.len() < 16 {
            return Err(format!(
                "{} line {}: a key must be at least 16 characters (e.g. `openssl rand -hex 32`)",
                path.display(),
                i + 1
            ));
        }
        keys.push(l.as_bytes().to_vec());
    }
    if keys.is_empty() {
        return Err(format!("{} holds no key", path.display()));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_bind_name_nonce_and_secret() {
        let (s, n) = ([1u8; 32], [2u8; 16]);
        let p = name_proof(&s, "a", &n);
        assert!(same(&p, &name_proof(&s, "a", &n)));
        assert!(!same(&p, &name_proof(&s, "b", &n)));
        assert!(!same(&p, &name_proof(&s, "a", &[3; 16])));
        assert!(!same(&p, &name_proof(&[9; 32], "a", &n)));
        assert!(!same(&p, &key_proof(&s, "a", &n)));
    }

    #[test]
    fn hex_roundtrip_and_private_files() {
        let s = [0xabu8; 32];
        assert_eq!(unhex32(&hex(&s)), Some(s));
        assert_eq!(unhex32("zz"), None);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x/y.secret");
        write_private(&p, hex(&s).as_bytes()).unwrap();
        assert_eq!(load_secret(&p).unwrap(), Some(s));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(load_secret(&dir.path().join("none")).unwrap(), None);
    }
}
