//! Who a partial file belongs to: the sender's transfer secret and the per-file tokens derived
//! from it.
//!
//! A sender keeps one random secret (`transfer.secret` in the config directory, 64 hex
//! digits, mode 0600, created once). The token of an offered path is the keyed BLAKE3 of the
//! path under that secret: the same sender offering the same path again presents the same
//! token, and nobody without the secret can produce it. The receiver names the partial file
//! after a hash of the token (see `names::owner_tag`), so a partial file is found only by the
//! sender that created it.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::runtime::keys;

/// The secret's file name in the config directory.
const SECRET_FILE: &str = "transfer.secret";

/// Context of the token derivation (so the secret's keyed hashes serve nothing else).
const TOKEN_CONTEXT: &[u8] = b"msock transfer token v1\0";

/// The sender's transfer secret, read from (or created in) the config directory. Without a
/// usable config directory, a random secret for this run (partial files of this run then
/// cannot be resumed by a later one), and the reason.
pub(crate) fn sender_secret() -> ([u8; 32], Option<String>) {
    match keys::config_dir()
        .map_err(|e| e.to_string())
        .and_then(|d| load_or_create(&d).map_err(|e| e.to_string()))
    {
        Ok(s) => (s, None),
        Err(why) => (rand::random(), Some(why)),
    }
}

/// Reads `dir/transfer.secret`, creating it (exclusively, mode 0600) if it is missing.
fn load_or_create(dir: &Path) -> io::Result<[u8; 32]> {
    let path = dir.join(SECRET_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => return parse_hex32(text.trim()).ok_or_else(|| bad(&path)),
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    fs::create_dir_all(dir)?;
    let secret: [u8; 32] = rand::random();
    // Written under a unique name, then linked into place: a concurrent sender either wins
    // the link or reads the winner's complete file.
    let tmp = dir.join(format!(".{SECRET_FILE}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&tmp)?;
    f.write_all(format!("{}\n", hex(&secret)).as_bytes())?;
    f.sync_all()?;
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(secret),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            parse_hex32(fs::read_to_string(&path)?.trim()).ok_or_else(|| bad(&path))
        }
        Err(e) => Err(e),
    }
}

fn bad(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{} is not an msock transfer secret (64 hex digits); move it away",
            path.display()
        ),
    )
}

/// The token of offered path `path` under `secret`.
pub(crate) fn token(secret: &[u8; 32], path: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(secret);
    h.update(TOKEN_CONTEXT);
    h.update(path.as_bytes());
    *h.finalize().as_bytes()
}

/// The name (relative to the receiver's directory) of the partial file that a sender whose
/// config directory is `config_dir` leaves for offered path `path`; creates the secret if
/// needed. For tests and tools that look at a receiver's directory.
pub fn partial_path(config_dir: &Path, path: &str) -> io::Result<PathBuf> {
    let secret = load_or_create(config_dir)?;
    let tag = super::names::owner_tag(&token(&secret, path));
    let mut p = PathBuf::from(path);
    let name = p
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?
        .to_string_lossy()
        .into_owned();
    p.set_file_name(super::names::part_name(&name, &tag));
    Ok(p)
}

/// Lower-case hex of `b`.
pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parses 64 hex digits.
pub(crate) fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_created_once_and_tokens_are_per_path() {
        let d = tempfile::tempdir().unwrap();
        let a = load_or_create(d.path()).unwrap();
        let b = load_or_create(d.path()).unwrap();
        assert_eq!(a, b);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(d.path().join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_ne!(token(&a, "x"), token(&a, "y"));
        assert_ne!(token(&a, "x"), token(&[0; 32], "x"));
        assert_eq!(parse_hex32(&hex(&a)), Some(a));
        assert_eq!(parse_hex32("zz"), None);
        let p = partial_path(d.path(), "dir/f.txt").unwrap();
        let s = p.to_str().unwrap();
        assert!(
            s.starts_with("dir/.f.txt.") && s.ends_with(".msock-part"),
            "{s}"
        );
        fs::write(d.path().join(SECRET_FILE), "junk").unwrap();
        assert!(load_or_create(d.path()).is_err());
    }
}
