//! The receiving end of a file transfer: checks the offer, reports what it already holds,
//! writes and verifies each file, and answers with a verdict per file.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::names::{self, part_name};
use super::wire::{
    self, tag, Done, End, Held, Kind, Msg, Offer, Start, Status, Verdict, WireError,
};
use super::writer::{Target, WriteError, Writer};
use crate::runtime::channel_io::{ChannelReader, ChannelWriter};

/// Where and how a receiver saves files.
#[derive(Debug, Clone)]
pub struct SaveRules {
    /// The directory everything goes under.
    pub dir: PathBuf,
    /// Replace existing files that differ.
    pub overwrite: bool,
    /// Largest offer accepted (total bytes).
    pub max_size: Option<u64>,
}

/// What a transfer achieved.
#[derive(Debug, Default)]
pub struct Received {
    /// Files verified and saved (skipped identical ones not included).
    pub files: usize,
    /// File bytes written.
    pub bytes: u64,
    /// Bytes that were already there from an earlier attempt and were kept.
    pub resumed: u64,
    /// Files that failed verification or could not be saved, with why.
    pub failed: Vec<String>,
}

/// Why a transfer failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The sender misbehaved or left.
    #[error("{0}")]
    Peer(#[from] WireError),
    /// We refused the offer (the sender was told why).
    #[error("refused: {0}")]
    Refused(String),
    /// Our disk or file system failed.
    #[error("{0}")]
    Local(String),
}

impl From<WriteError> for ReceiveError {
    /// Everything but a verification failure (handled per file) is our own disk's fault.
    fn from(e: WriteError) -> Self {
        ReceiveError::Local(e.to_string())
    }
}

/// One entry, resolved to paths under the directory.
struct Resolved {
    kind: Kind,
    size: u64,
    exec: bool,
    final_path: PathBuf,
    part: PathBuf,
    held: Held,
}

/// Receives one transfer over `ch` into `rules.dir`.
pub async fn receive(
    w: &mut ChannelWriter,
    ch: &mut ChannelReader,
    rules: &SaveRules,
) -> Result<Received, ReceiveError> {
    let offer: Offer = wire::expect(ch, tag::OFFER).await?;
    let rules2 = rules.clone();
    let checked = tokio::task::spawn_blocking(move || check_offer(&offer, &rules2))
        .await
        .map_err(|e| ReceiveError::Local(format!("checking the offer: {e}")))?;
    let (entries, mut hashers) = match checked {
        Ok(x) => x,
        Err(why) => {
            let status = Status {
                refused: Some(why.clone()),
                held: Vec::new(),
                overwrite: rules.overwrite,
            };
            let _ = w.send(wire::control(tag::STATUS, &status)).await;
            w.close();
            return Err(ReceiveError::Refused(why));
        }
    };
    let status = Status {
        refused: None,
        held: entries.iter().map(|e| e.held.clone()).collect(),
        overwrite: rules.overwrite,
    };
    send(w, wire::control(tag::STATUS, &status)).await?;
    let mut out = Received::default();
    for e in entries.iter().filter(|e| e.kind == Kind::Dir) {
        make_dir(&e.final_path, &rules.dir).map_err(ReceiveError::Local)?;
    }
    let writer =
        Writer::spawn().map_err(|e| ReceiveError::Local(format!("no writer thread: {e}")))?;
    let mut done = vec![false; entries.len()];
    // The file being received: its index and how many bytes it may still carry.
    let mut current: Option<(usize, u64)> = None;
    let mut stream_bytes = 0u64;
    // Checked by `check_offer`: the files' sizes do not overflow.
    let files_total: u64 = entries.iter().map(|e| e.size).sum();
    loop {
        let Some(msg) = wire::read_msg(ch).await? else {
            if let Some((i, _)) = current {
                return Err(WireError::Protocol(format!(
                    "the sender stopped inside {}",
                    entries[i].final_path.display()
                ))
                .into());
            }
            break;
        };
        match msg {
            Msg::Control(tag::START, body) => {
                let s: Start = wire::decode(tag::START, &body)?;
                if current.is_some() {
                    return Err(proto("START inside another file"));
                }
                let e = entries
                    .get(s.index)
                    .filter(|e| e.kind != Kind::Dir && !done[s.index])
                    .ok_or_else(|| {
                        proto(&format!(
                            "START for entry {}, which takes no bytes",
                            s.index
                        ))
                    })?;
                if s.offset != 0 && s.offset != e.held.partial {
                    return Err(proto(&format!(
                        "START at offset {} where only 0 or {} make sense",
                        s.offset, e.held.partial
                    )));
                }
                let hasher = match s.offset {
                    0 => blake3::Hasher::new(),
                    _ => hashers.remove(&s.index).unwrap_or_default(),
                };
                out.resumed += s.offset;
                make_parent(&e.final_path, &rules.dir).map_err(ReceiveError::Local)?;
                writer
                    .open(Target {
                        part: e.part.clone(),
                        final_path: e.final_path.clone(),
                        exec: e.exec,
                        offset: s.offset,
                        hasher,
                        replace: rules.overwrite,
                    })
                    .await?;
                let room = match e.kind {
                    // Streams (unknown size) share --max-size with the offer's files.
                    Kind::Stream => rules
                        .max_size
                        .unwrap_or(u64::MAX)
                        .saturating_sub(files_total)
                        .saturating_sub(stream_bytes),
                    _ => e.size.saturating_sub(s.offset),
                };
                current = Some((s.index, room));
            }
            Msg::Data(len) => {
                let Some((i, room)) = current.as_mut() else {
                    return Err(proto("DATA outside a file"));
                };
                if len as u64 > *room {
                    return Err(match entries[*i].kind {
                        Kind::Stream => ReceiveError::Refused(format!(
                            "{} is larger than this receiver's --max-size",
                            relative(&entries[*i].final_path, &rules.dir)
                        )),
                        _ => proto("more bytes than the file's size"),
                    });
                }
                *room -= len as u64;
                let mut left = len;
                while left > 0 {
                    let piece = ch.recv_up_to(left).await.ok_or(WireError::Ended)?;
                    left -= piece.len();
                    out.bytes += piece.len() as u64;
                    if entries[*i].kind == Kind::Stream {
                        stream_bytes += piece.len() as u64;
                    }
                    writer.write(piece).await?;
                }
            }
            Msg::Control(tag::END, body) => {
                let end: End = wire::decode(tag::END, &body)?;
                let Some((i, _)) = current.take().filter(|&(i, _)| i == end.index) else {
                    return Err(proto("END for a file that was not started"));
                };
                let want = blake3::Hash::from_hex(&end.blake3)
                    .map_err(|_| proto("END with a malformed hash"))?;
                let e = &entries[i];
                if e.kind == Kind::File && end.size != e.size {
                    return Err(proto("END with a size other than the offer's"));
                }
                done[i] = true;
                let verdict = match writer.finish(Some((end.size, want))).await {
                    Ok(()) => {
                        out.files += 1;
                        Verdict {
                            index: i,
                            ok: true,
                            error: None,
                            saved_as: Some(relative(&e.final_path, &rules.dir)),
                        }
                    }
                    Err(why @ WriteError::Mismatch { .. }) => {
                        out.failed.push(why.to_string());
                        Verdict {
                            index: i,
                            ok: false,
                            error: Some(why.to_string()),
                            saved_as: None,
                        }
                    }
                    Err(why) => return Err(why.into()),
                };
                send(w, wire::control(tag::VERDICT, &verdict)).await?;
            }
            Msg::Control(t, _) => return Err(wire::unexpected(t, tag::START).into()),
        }
    }
    let fin = Done {
        files: out.files,
        bytes: out.bytes,
    };
    send(w, wire::control(tag::DONE, &fin)).await?;
    w.close();
    Ok(out)
}

fn proto(what: &str) -> ReceiveError {
    ReceiveError::Peer(WireError::Protocol(what.to_owned()))
}

async fn send(w: &mut ChannelWriter, b: bytes::Bytes) -> Result<(), ReceiveError> {
    w.send(b)
        .await
        .map_err(|_| ReceiveError::Peer(WireError::Ended))
}

/// `p` relative to `dir`, `/`-separated, for messages to the sender.
fn relative(p: &Path, dir: &Path) -> String {
    p.strip_prefix(dir)
        .unwrap_or(p)
        .to_string_lossy()
        .into_owned()
}

/// Checks every name of the offer, resolves it under the directory, looks at what is there
/// already (hashing partial and existing files) and checks size limits and free space.
/// Returns the entries and, for partial files, the hash state of their bytes.
#[allow(clippy::type_complexity)]
fn check_offer(
    offer: &Offer,
    rules: &SaveRules,
) -> Result<(Vec<Resolved>, HashMap<usize, blake3::Hasher>), String> {
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
    let mut out = Vec::with_capacity(offer.entries.len());
    let mut hashers = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    let files: std::collections::HashSet<&str> = offer
        .entries
        .iter()
        .filter(|e| e.kind != Kind::Dir)
        .map(|e| e.path.as_str())
        .collect();
    let mut needed = 0u64;
    for (i, e) in offer.entries.iter().enumerate() {
        let parts = names::check(&e.path)?;
        if !seen.insert(e.path.as_str()) {
            return Err(format!("{:?} offered twice", e.path));
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
                    "{prefix:?} is offered both as a file and as a folder"
                ));
            }
        }

        let mut final_path = rules.dir.clone();
        for (n, c) in parts.iter().enumerate() {
            final_path.push(c);
            let last = n + 1 == parts.len();
            match fs::symlink_metadata(&final_path) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(format!(
                        "{:?}: the receiver has a symlink at {} and never writes through one",
                        e.path,
                        relative(&final_path, &rules.dir)
                    ))
                }
                Ok(m) if !last && !m.is_dir() => {
                    return Err(format!(
                        "{:?}: {} exists on the receiver and is not a folder",
                        e.path,
                        relative(&final_path, &rules.dir)
                    ))
                }
                Ok(m) if last && e.kind == Kind::Dir && !m.is_dir() => {
                    return Err(format!(
                        "{:?} exists on the receiver and is not a folder",
                        e.path
                    ))
                }
                Ok(m) if last && e.kind != Kind::Dir && !m.is_file() => {
                    return Err(format!(
                        "{:?} exists on the receiver and is not a file",
                        e.path
                    ))
                }
                _ => {}
            }
        }
        let name = parts.last().expect("checked names have a component");
        let part = final_path.with_file_name(part_name(name));
        let mut held = Held::default();
        if e.kind != Kind::Dir {
            if let Ok(m) = fs::symlink_metadata(&part) {
                if m.is_file() && e.kind == Kind::File && m.len() <= e.size && m.len() > 0 {
                    // At most the file's size, even if the partial grows meanwhile.
                    let (h, n) = super::hash_prefix(&part, e.size)
                        .map_err(|err| format!("reading {}: {err}", part.display()))?;
                    held.partial = n;
                    held.partial_hash = Some(h.finalize().to_hex().to_string());
                    hashers.insert(i, h);
                } else if !m.is_file() {
                    return Err(format!(
                        "{:?}: its partial-file name is taken on the receiver",
                        e.path
                    ));
                }
            }
            if let Ok(m) = fs::metadata(&final_path) {
                held.existing = Some(m.len());
                if e.kind == Kind::File && m.len() == e.size {
                    let (h, _) = super::hash_prefix(&final_path, u64::MAX)
                        .map_err(|err| format!("reading {}: {err}", final_path.display()))?;
                    held.existing_hash = Some(h.finalize().to_hex().to_string());
                }
            }
            let identical_size = held.existing == Some(e.size);
            if !identical_size {
                // Cannot overflow: the sizes' total was checked above.
                needed += e.size.saturating_sub(held.partial);
            }
        }
        out.push(Resolved {
            kind: e.kind,
            size: e.size,
            exec: e.exec,
            final_path,
            part,
            held,
        });
    }
    if let Some(free) = free_space(&rules.dir) {
        if needed > free {
            return Err(format!(
                "it needs {needed} bytes and the receiver's --save-dir has {free} bytes free"
            ));
        }
    }
    Ok((out, hashers))
}

/// Creates folder `p` (and its parents) under `dir`, refusing to go through a symlink.
fn make_dir(p: &Path, dir: &Path) -> Result<(), String> {
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

fn make_parent(p: &Path, dir: &Path) -> Result<(), String> {
    match p.parent() {
        Some(parent) if parent != dir => make_dir(parent, dir),
        _ => Ok(()),
    }
}

/// Bytes available to us on the file system holding `dir`.
fn free_space(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the struct we pass; the path is a valid C string.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut s) == 0 {
            Some(s.f_bavail as u64 * s.f_frsize as u64)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::wire::Entry;

    fn rules(dir: &Path) -> SaveRules {
        SaveRules {
            dir: dir.to_path_buf(),
            overwrite: false,
            max_size: None,
        }
    }

    fn offer(entries: &[(&str, Kind, u64)]) -> Offer {
        Offer {
            entries: entries
                .iter()
                .map(|&(p, kind, size)| Entry {
                    path: p.into(),
                    kind,
                    size,
                    exec: false,
                })
                .collect(),
        }
    }

    #[test]
    fn hostile_offers_are_refused() {
        let d = tempfile::tempdir().unwrap();
        for bad in [
            offer(&[("../escape", Kind::File, 1)]),
            offer(&[("/etc/x", Kind::File, 1)]),
            offer(&[("a", Kind::File, 1), ("a", Kind::File, 1)]),
            offer(&[("a/b", Kind::File, 1), ("a", Kind::File, 1)]),
            offer(&[("a", Kind::File, 1), ("a/b", Kind::File, 1)]),
        ] {
            assert!(check_offer(&bad, &rules(d.path())).is_err(), "{bad:?}");
        }
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn symlinks_on_the_receiver_are_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("f"), d.path().join("f")).unwrap();
        for bad in [
            offer(&[("link/x", Kind::File, 1)]),
            offer(&[("link", Kind::Dir, 0)]),
            offer(&[("f", Kind::File, 1)]),
        ] {
            let e = check_offer(&bad, &rules(d.path())).err().expect("refused");
            assert!(e.contains("symlink"), "{e}");
        }
    }

    #[test]
    fn limits_and_free_space() {
        let d = tempfile::tempdir().unwrap();
        let mut r = rules(d.path());
        r.max_size = Some(100);
        let e = check_offer(&offer(&[("a", Kind::File, 101)]), &r)
            .err()
            .unwrap();
        assert!(e.contains("--max-size"), "{e}");
        assert!(check_offer(&offer(&[("a", Kind::File, 100)]), &r).is_ok());
        let e = check_offer(&offer(&[("a", Kind::File, u64::MAX / 2)]), &rules(d.path()))
            .err()
            .unwrap();
        assert!(e.contains("free"), "{e}");
    }

    #[test]
    fn partial_and_existing_files_are_reported_with_their_hashes() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(".a.msock-part"), b"hello").unwrap();
        fs::write(d.path().join("b"), b"world").unwrap();
        let o = offer(&[
            ("a", Kind::File, 10),
            ("b", Kind::File, 5),
            ("c", Kind::File, 3),
        ]);
        let (entries, hashers) = check_offer(&o, &rules(d.path())).unwrap();
        assert_eq!(entries[0].held.partial, 5);
        let want = blake3::hash(b"hello").to_hex().to_string();
        assert_eq!(entries[0].held.partial_hash.as_deref(), Some(want.as_str()));
        assert_eq!(hashers[&0].finalize().to_hex().to_string(), want);
        assert_eq!(entries[1].held.existing, Some(5));
        let want = blake3::hash(b"world").to_hex().to_string();
        assert_eq!(
            entries[1].held.existing_hash.as_deref(),
            Some(want.as_str())
        );
        assert_eq!(entries[2].held, Held::default());
    }
}
