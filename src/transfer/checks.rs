//! The receiver's checks on an offer and on the sender's proofs: names resolved under the save
//! directory (never through a symlink), the sender's own partial files found by their token,
//! size limits and free space; then, for the proofs, whether the partial and existing files
//! hold the sender's bytes. Nothing here tells the sender a hash or another sender's file.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::names::{self, owner_tag, part_name};
use super::owner::parse_hex32;
use super::receiver::SaveRules;
use super::wire::{self, Check, Held, Kind, Offer, Proof};
use super::writer::{hash_file, open_own, WriteError};
use crate::proto::text::escape;

/// One entry, resolved to paths under the directory.
pub(crate) struct Resolved {
    pub kind: Kind,
    pub size: u64,
    pub exec: bool,
    pub final_path: PathBuf,
    /// This sender's partial file (named after its token).
    pub part: PathBuf,
    /// Bytes in that partial file (0: none, or not usable).
    pub partial: u64,
    /// A file exists under the final name.
    pub existing: bool,
    /// Where START may begin: 0, or `partial` once the sender proved those bytes.
    pub resume: u64,
    /// The existing file is the sender's (proved): nothing is sent for it.
    pub same: bool,
}

impl Resolved {
    /// What STATUS says of it, if anything.
    pub fn held(&self, index: usize) -> Option<Held> {
        (self.kind != Kind::Dir && (self.partial > 0 || self.existing)).then_some(Held {
            index,
            partial: self.partial,
            existing: self.existing,
        })
    }
}

/// The longest path the file system accepts (`PATH_MAX`, its terminating NUL included).
const PATH_MAX: usize = libc::PATH_MAX as usize;

/// Checks every name of the offer, resolves it under the directory, looks at what is there
/// already (without reading any file) and checks size limits. Returns the entries and the
/// bytes each partial file may still need on disk.
#[allow(clippy::type_complexity)]
pub(crate) fn check_offer(
    offer: &Offer,
    rules: &SaveRules,
) -> Result<(Vec<Resolved>, Vec<(PathBuf, u64)>), String> {
    if offer.entries.len() > wire::MAX_ENTRIES {
        return Err(format!("more than {} entries", wire::MAX_ENTRIES));
    }
    let total = offer
        .total_size()
        .ok_or("the offer's sizes add up to more than 2^64 bytes")?;
    if let Some(max) = rules.max_size.filter(|&m| total > m) {
        return Err(format!(
            "the offer is {total} bytes, more than the receiver's --max-size of {max} bytes"
        ));
    }
    // The longest name a partial file adds to a path: `.`, `.TAG` and the suffix.
    let room = PATH_MAX - 1 - rules.dir.as_os_str().len().min(PATH_MAX - 1);
    let part_extra = 2 + names::OWNER_TAG_LEN + names::PART_SUFFIX.len();
    let mut out = Vec::with_capacity(offer.entries.len());
    let mut seen = std::collections::HashSet::new();
    let files: std::collections::HashSet<&str> = offer
        .entries
        .iter()
        .filter(|e| e.kind != Kind::Dir)
        .map(|e| e.path.as_str())
        .collect();
    let mut needs = Vec::new();
    for e in &offer.entries {
        let parts = names::check(&e.path)?;
        let shown = escape(&e.path);
        if 1 + e.path.len() + part_extra > room {
            return Err(format!(
                "\"{shown}\" is too long for the receiver's file system under its --save-dir"
            ));
        }
        if !seen.insert(e.path.as_str()) {
            return Err(format!("\"{shown}\" offered twice"));
        }
        // Every folder an entry lies in must not also be offered as a file.
        let mut prefix = String::new();
        for c in &parts[..parts.len() - 1] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(c);
            if files.contains(prefix.as_str()) {
                return Err(format!(
                    "\"{}\" is offered both as a file and as a folder",
                    escape(&prefix)
                ));
            }
        }
        let token = match &e.token {
            Some(t) => {
                parse_hex32(t).ok_or_else(|| format!("\"{shown}\": malformed transfer token"))?
            }
            // No token: nobody can resume this partial file.
            None => rand::random(),
        };
        let final_path = resolve(&parts, e, &shown, &rules.dir)?;
        let name = parts.last().expect("checked names have a component");
        let part = final_path.with_file_name(part_name(name, &owner_tag(&token)));
        let mut partial = 0;
        let mut existing = false;
        if e.kind != Kind::Dir {
            if let Ok(m) = fs::symlink_metadata(&part) {
                // SAFETY: geteuid has no preconditions.
                let me = unsafe { libc::geteuid() };
                if !m.is_file() || m.nlink() != 1 || m.uid() != me {
                    return Err(format!(
                        "\"{shown}\": the receiver has something other than a partial file it \
                         created at {} (a link, or not a regular file); it never opens it",
                        relative(&part, &rules.dir)
                    ));
                }
                if e.kind == Kind::File && m.len() <= e.size {
                    partial = m.len();
                }
            }
            existing = fs::symlink_metadata(&final_path).is_ok();
            if !existing && e.size > partial {
                needs.push((part.clone(), e.size - partial));
            }
        }
        out.push(Resolved {
            kind: e.kind,
            size: e.size,
            exec: e.exec,
            final_path,
            part,
            partial,
            existing,
            resume: 0,
            same: false,
        });
    }
    Ok((out, needs))
}

/// The entry's final path under `dir`, refusing symlinks and kinds that do not fit.
fn resolve(parts: &[&str], e: &wire::Entry, shown: &str, dir: &Path) -> Result<PathBuf, String> {
    let mut final_path = dir.to_path_buf();
    for (n, c) in parts.iter().enumerate() {
        final_path.push(c);
        let last = n + 1 == parts.len();
        match fs::symlink_metadata(&final_path) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "\"{shown}\": the receiver has a symlink at {} and never writes through one",
                    relative(&final_path, dir)
                ))
            }
            Ok(m) if !last && !m.is_dir() => {
                return Err(format!(
                    "\"{shown}\": {} exists on the receiver and is not a folder",
                    relative(&final_path, dir)
                ))
            }
            Ok(m) if last && e.kind == Kind::Dir && !m.is_dir() => {
                return Err(format!(
                    "\"{shown}\" exists on the receiver and is not a folder"
                ))
            }
            Ok(m) if last && e.kind != Kind::Dir && !m.is_file() => {
                return Err(format!(
                    "\"{shown}\" exists on the receiver and is not a file"
                ))
            }
            _ => {}
        }
    }
    Ok(final_path)
}

/// Checks the sender's proofs against the entries: a partial file whose first bytes hash to
/// `prefix` may be resumed (its hash state is returned), an existing file of the offered size
/// whose hash is `whole` is the same. Err: a proof for an entry STATUS did not list, or a
/// local failure to read.
#[allow(clippy::type_complexity)]
pub(crate) fn check_proofs(
    proofs: &[Proof],
    entries: &mut [Resolved],
) -> Result<(Vec<Check>, HashMap<usize, blake3::Hasher>), ProofError> {
    let mut checks = Vec::with_capacity(proofs.len());
    let mut hashers = HashMap::new();
    let mut last = None;
    for p in proofs {
        let held = entries
            .get(p.index)
            .and_then(|e| e.held(p.index))
            .filter(|_| last.is_none_or(|l| p.index > l));
        if held.is_none() {
            return Err(ProofError::Peer(format!(
                "PROOF for entry {}, which STATUS did not list (or out of order)",
                p.index
            )));
        }
        last = Some(p.index);
        let e = &mut entries[p.index];
        let mut c = Check {
            index: p.index,
            resume: false,
            same: false,
        };
        if let (true, Some(want)) = (e.partial > 0, &p.prefix) {
            // Gone or replaced meanwhile: start over.
            if let Ok(mut f) = open_own(&e.part, false) {
                let (h, n) = hash_file(&mut f, e.partial).map_err(|err| {
                    ProofError::Local(WriteError::disk("cannot read", &e.part, err))
                })?;
                if n == e.partial && h.finalize().to_hex().as_str() == want.as_str() {
                    c.resume = true;
                    e.resume = e.partial;
                    hashers.insert(p.index, h);
                }
            }
        }
        if let (true, Some(want), Kind::File) = (e.existing, &p.whole, e.kind) {
            c.same = same_file(&e.final_path, e.size, want).map_err(|err| {
                ProofError::Local(WriteError::disk("cannot read", &e.final_path, err))
            })?;
            e.same = c.same;
        }
        checks.push(c);
    }
    Ok((checks, hashers))
}

/// Is the file at `p` (not through a symlink, not a hard link) `size` bytes with BLAKE3
/// `want`?
fn same_file(p: &Path, size: u64, want: &str) -> io::Result<bool> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(p)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(false),
        Err(e) => return Err(e),
    };
    let m = f.metadata()?;
    // A hard link may lead out of the save directory: never compared.
    if !m.is_file() || m.nlink() != 1 || m.len() != size {
        return Ok(false);
    }
    let (h, n) = super::hash_read(f.take(size))?;
    Ok(n == size && h.finalize().to_hex().as_str() == want)
}

/// Why the proofs could not be checked.
#[derive(Debug)]
pub(crate) enum ProofError {
    /// The sender's PROOF does not fit the STATUS.
    Peer(String),
    /// Our disk failed.
    Local(WriteError),
}

/// `p` relative to `dir`, `/`-separated, for messages to the sender.
pub(crate) fn relative(p: &Path, dir: &Path) -> String {
    p.strip_prefix(dir)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// Creates folder `p` (and its parents) under `dir`, refusing to go through a symlink.
pub(crate) fn make_dir(p: &Path, dir: &Path) -> Result<(), String> {
    let rel = p
        .strip_prefix(dir)
        .map_err(|_| format!("{} is outside the save directory", p.display()))?;
    let mut at = dir.to_path_buf();
    for c in rel.components() {
        at.push(c);
        match fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "{} is a symlink; not writing through it",
                    at.display()
                ))
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("{} exists and is not a folder", at.display())),
            Err(_) => match fs::create_dir(&at) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(WriteError::disk("cannot create folder", &at, e).to_string()),
            },
        }
    }
    Ok(())
}

/// Creates the folders `p` lies in, under `dir`.
pub(crate) fn make_parent(p: &Path, dir: &Path) -> Result<(), String> {
    match p.parent() {
        Some(parent) if parent != dir => make_dir(parent, dir),
        _ => Ok(()),
    }
}

/// Bytes available to us on the file system holding `dir`.
pub(crate) fn free_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct we pass; the path is a valid C string.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut s) == 0 {
            Some((s.f_bavail as u64).saturating_mul(s.f_frsize as u64))
        } else {
            None
        }
    }
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
