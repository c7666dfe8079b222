//! A listener's authorized client keys (`--authorized-keys FILE`): which clients it admits.
//!
//! The file holds one key fingerprint per line, as `msock connect --show-key` prints it
//! (`SHA256:` and 43 base64 characters); anything after the fingerprint on its line is a
//! comment, as are lines starting with `#`; blank lines are ignored. The file is read at
//! start (a malformed line is the user's to fix, exit 2) and again whenever a new session opens
//! and its modification time, size or inode changed since the last read, so edits take
//! effect without a restart. A malformed line in a re-read is skipped with a warning; a file
//! that cannot be read any more admits nobody until it can.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::proto::handshake::is_fingerprint;

/// Why the authorized keys could not be read at start (the user's to fix).
#[derive(Debug, thiserror::Error)]
pub enum AuthorizedError {
    /// The file cannot be read.
    #[error("cannot read --authorized-keys {}: {error}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS's answer.
        error: std::io::Error,
    },
    /// A line is neither a fingerprint, a comment nor blank.
    #[error("--authorized-keys {}, line {line}: '{text}' is not a key fingerprint (SHA256:... \
             as `msock connect --show-key` prints it; # starts a comment)", .path.display())]
    BadLine {
        /// The file.
        path: PathBuf,
        /// Its line number (from 1).
        line: usize,
        /// The line (trimmed, shortened).
        text: String,
    },
}

/// The fingerprints a listener admits, re-read from their file when it changes.
#[derive(Debug)]
pub struct AuthorizedKeys {
    path: PathBuf,
    state: Mutex<Loaded>,
}

/// The file as last read.
#[derive(Debug, Default)]
struct Loaded {
    /// Modification time (ns), size and inode at the last read; None: it could not be read.
    stamp: Option<(i128, u64, u64)>,
    keys: HashSet<String>,
}

/// What [`AuthorizedKeys::check`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The key is in the file.
    Admitted,
    /// The key is not in the file.
    NotListed,
    /// The file cannot be read now; nobody is admitted (the listener's owner must fix it).
    Unreadable(String),
}

fn stamp(m: &fs::Metadata) -> (i128, u64, u64) {
    (
        i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        m.size(),
        m.ino(),
    )
}

/// Parses the file's text: the fingerprints, and the bad lines (number, text).
fn parse(text: &str) -> (HashSet<String>, Vec<(usize, String)>) {
    let mut keys = HashSet::new();
    let mut bad = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let first = line.split_whitespace().next().unwrap_or_default();
        if is_fingerprint(first) {
            keys.insert(first.to_owned());
        } else {
            bad.push((i + 1, line.chars().take(80).collect()));
        }
    }
    (keys, bad)
}

impl AuthorizedKeys {
    /// Reads `path` (at start: any bad line is an error).
    pub fn load(path: &Path) -> Result<AuthorizedKeys, AuthorizedError> {
        let read = |error| AuthorizedError::Read {
            path: path.to_owned(),
            error,
        };
        let meta = fs::metadata(path).map_err(read)?;
        let text = fs::read_to_string(path).map_err(read)?;
        let (keys, bad) = parse(&text);
        if let Some((line, text)) = bad.into_iter().next() {
            return Err(AuthorizedError::BadLine {
                path: path.to_owned(),
                line,
                text,
            });
        }
        Ok(AuthorizedKeys {
            path: path.to_owned(),
            state: Mutex::new(Loaded {
                stamp: Some(stamp(&meta)),
                keys,
            }),
        })
    }

    /// The file's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the key with fingerprint `fp` is admitted now (re-reading the file first if it
    /// changed).
    pub fn check(&self, fp: &str) -> Verdict {
        let mut st = self.state.lock().expect("authorized keys lock");
        let now = fs::metadata(&self.path).map(|m| stamp(&m));
        match now {
            Ok(s) if st.stamp == Some(s) => {}
            Ok(s) => match fs::read_to_string(&self.path) {
                Ok(text) => {
                    let (keys, bad) = parse(&text);
                    for (line, text) in bad {
                        tracing::warn!(
                            "--authorized-keys {}, line {line}: '{text}' is not a key \
                             fingerprint; ignored",
                            self.path.display()
                        );
                    }
                    tracing::info!(
                        "re-read --authorized-keys {}: {} keys",
                        self.path.display(),
                        keys.len()
                    );
                    *st = Loaded {
                        stamp: Some(s),
                        keys,
                    };
                }
                Err(e) => return self.unreadable(&mut st, e),
            },
            Err(e) => return self.unreadable(&mut st, e),
        }
        if st.keys.contains(fp) {
            Verdict::Admitted
        } else {
            Verdict::NotListed
        }
    }

    fn unreadable(&self, st: &mut Loaded, e: std::io::Error) -> Verdict {
        *st = Loaded::default();
        Verdict::Unreadable(format!(
            "cannot read --authorized-keys {}: {e}",
            self.path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::{fingerprint, Identity};

    #[test]
    fn comments_blank_lines_and_trailing_words_are_ignored() {
        let a = fingerprint(&Identity::from_private([1; 32]).public);
        let b = fingerprint(&Identity::from_private([2; 32]).public);
        let c = fingerprint(&Identity::from_private([3; 32]).public);
        let text = format!("# admins\n\n  {a}  alice's laptop\n#{c}\n{b}\n");
        let (keys, bad) = parse(&text);
        assert!(bad.is_empty(), "{bad:?}");
        assert!(keys.contains(&a) && keys.contains(&b));
        assert!(!keys.contains(&c), "a commented-out key is not admitted");
        let (_, bad) = parse(&format!("{a}\nSHA256:short\n"));
        assert_eq!(bad, vec![(2, "SHA256:short".to_owned())]);
    }

    #[test]
    fn edits_are_seen_on_the_next_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let a = fingerprint(&Identity::from_private([1; 32]).public);
        let b = fingerprint(&Identity::from_private([2; 32]).public);
        fs::write(&path, format!("{a}\n")).unwrap();
        let k = AuthorizedKeys::load(&path).unwrap();
        assert_eq!(k.check(&a), Verdict::Admitted);
        assert_eq!(k.check(&b), Verdict::NotListed);
        // Same size, new content: the modification time (or inode) tells.
        let tmp = dir.path().join("new");
        fs::write(&tmp, format!("{b}\n")).unwrap();
        fs::rename(&tmp, &path).unwrap();
        assert_eq!(k.check(&b), Verdict::Admitted);
        assert_eq!(k.check(&a), Verdict::NotListed);
        fs::remove_file(&path).unwrap();
        assert!(matches!(k.check(&b), Verdict::Unreadable(_)));
        assert!(AuthorizedKeys::load(&path).is_err());
        fs::write(&path, "not a key\n").unwrap();
        assert!(matches!(
            AuthorizedKeys::load(&path),
            Err(AuthorizedError::BadLine { line: 1, .. })
        ));
    }
}
