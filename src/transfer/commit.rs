//! Group commit of verified files, on a thread of its own: the writer hands over each file it
//! verified (still under its partial name, its descriptor and lock still held); this thread
//! takes everything that is waiting as one batch, makes the files' bytes durable together,
//! renames them to their final names, syncs their folders once each, and only then answers.
//! While one batch is being synced the writer goes on writing the next files, so that many
//! small files cost one journal commit and one disk flush between them rather than one each.
//!
//! The promise stays: a file gets its final name only once it is verified and its bytes are on
//! disk; a crash before that leaves it under its partial name, complete, for a later run to
//! prove and rename without sending its bytes again.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::oneshot;

use super::{start_writeback, Open, WriteError};

/// Most files in one batch, and most verified files waiting for the current batch to end:
/// together they bound the descriptors a transfer holds open (each keeps its file's lock
/// until the rename). At most 512, and an eighth of the process's descriptor limit each,
/// after raising that limit's soft value to its hard one (as many runtimes do).
pub(super) fn budget() -> usize {
    static B: OnceLock<usize> = OnceLock::new();
    *B.get_or_init(|| {
        // SAFETY: getrlimit and setrlimit fill and read the struct we pass.
        let soft = unsafe {
            let mut l: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) != 0 {
                return 16;
            }
            if l.rlim_cur < l.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: l.rlim_max,
                    rlim_max: l.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    l.rlim_cur = l.rlim_max;
                }
            }
            l.rlim_cur
        };
        usize::try_from(soft / 8).unwrap_or(512).clamp(4, 512)
    })
}

/// A verified file waiting for its final name, and who to tell once it has it.
pub(super) struct Verified {
    pub(super) open: Open,
    pub(super) reply: oneshot::Sender<Result<(), WriteError>>,
}

/// The committer's input.
pub(super) type Queue = SyncSender<Verified>;

/// Runs the committer until the writer drops its end of `rx` (then what is queued is still
/// committed). A failure that is not one file's (the disk) is put in `error` for the writer,
/// which then stops.
pub(super) fn run(rx: Receiver<Verified>, error: Arc<Mutex<Option<WriteError>>>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < budget() {
            match rx.try_recv() {
                Ok(v) => batch.push(v),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        if let Some(e) = commit(batch) {
            let mut slot = error.lock().expect("writer error lock");
            slot.get_or_insert(e);
        }
    }
}

/// Commits one batch: every file synced, then renamed, then each folder synced once; then
/// every file's answer. Returns the first failure, if any.
fn commit(batch: Vec<Verified>) -> Option<WriteError> {
    // Many files: one `syncfs` per file system they are on makes them all durable at the
    // cost of one journal commit and one disk flush (an fsync each would pay for both every
    // time). A few files (a large one is alone in its batch): an fsync each, so that nothing
    // else on the file system is waited for.
    let mut synced: HashMap<u64, bool> = HashMap::new();
    let mut results: Vec<Result<(), WriteError>> = Vec::with_capacity(batch.len());
    for v in &batch {
        let o = &v.open;
        let r = match o.slot.lock().expect("slot lock").as_ref() {
            None => Err(WriteError::TakenOver(o.t.final_path.clone())),
            Some(f) => {
                let dev = f.metadata().map(|m| m.dev());
                let whole_fs = match dev {
                    Ok(dev) if batch.len() >= SYNCFS_FROM => {
                        *synced.entry(dev).or_insert_with(|| syncfs(f).is_ok())
                    }
                    _ => false,
                };
                if whole_fs {
                    Ok(())
                } else {
                    f.sync_all()
                        .map_err(|e| WriteError::disk("cannot sync", &o.t.part, e))
                }
            }
        };
        results.push(r);
    }
    let mut dirs = BTreeSet::new();
    for (v, r) in batch.iter().zip(results.iter_mut()) {
        if r.is_err() {
            continue;
        }
        *r = rename(&v.open);
        if r.is_ok() {
            if let Some(d) = v.open.t.final_path.parent() {
                dirs.insert(d.to_path_buf());
            }
        }
    }
    sync_dirs(&dirs);
    let mut first = None;
    for (v, r) in batch.into_iter().zip(results) {
        if let Err(e) = &r {
            first.get_or_insert(e.clone());
        }
        let _ = v.reply.send(r);
    }
    first
}

/// Batches of at least this many files are synced with `syncfs`.
const SYNCFS_FROM: usize = 8;

/// Syncs the whole file system `f` is on: every file's bytes and metadata. An error (which
/// may be another file's) makes the caller sync its files one by one instead.
fn syncfs(f: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: syncfs on a descriptor we own; no memory is involved.
    if unsafe { libc::syncfs(f.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Gives a synced file its final name, if it is still ours and nothing appeared there.
fn rename(o: &Open) -> Result<(), WriteError> {
    // Held until the rename, so that no newer transfer takes the file over meanwhile.
    let slot = o.slot.lock().expect("slot lock");
    if slot.is_none() {
        return Err(WriteError::TakenOver(o.t.final_path.clone()));
    }
    if !o.t.replace && fs::symlink_metadata(&o.t.final_path).is_ok() {
        return Err(WriteError::Appeared {
            final_path: o.t.final_path.clone(),
            part: o.t.part.clone(),
        });
    }
    fs::rename(&o.t.part, &o.t.final_path)
        .map_err(|e| WriteError::disk("cannot rename the partial file to", &o.t.final_path, e))
}

/// Syncs each folder (so that the renames in it are durable); a folder that cannot be opened
/// or synced is left as it is, as before batching.
fn sync_dirs(dirs: &BTreeSet<PathBuf>) {
    for d in dirs {
        if let Ok(f) = File::open(d) {
            let _ = f.sync_all();
        }
    }
}

/// Hands a verified file to the committer: starts the writeback of what is not on its way to
/// disk yet, so that the batch's sync finds it under way.
pub(super) fn hand_over(q: &Queue, open: Open, reply: oneshot::Sender<Result<(), WriteError>>) {
    // (A batch of small files is synced all at once: their writeback waits for that.)
    if open.written - open.flushed >= 1 << 20 {
        if let Some(f) = open.slot.lock().expect("slot lock").as_ref() {
            start_writeback(f, open.flushed, open.written - open.flushed);
        }
    }
    if let Err(e) = q.send(Verified { open, reply }) {
        // The committer is gone (it never stops before the writer): keep the partial file.
        let v = e.0;
        v.open.keep();
        let _ = v.reply.send(Err(WriteError::Stopped));
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::super::{Finishing, Target, WriteError, Writer};

    /// Starts file `i` of `data` in `dir` and asks for its finish (against `want`).
    async fn one(
        w: &Writer,
        dir: &std::path::Path,
        i: usize,
        data: &[u8],
        want: blake3::Hash,
    ) -> Finishing {
        w.open(Target {
            part: dir.join(format!(".f{i}.part")),
            final_path: dir.join(format!("f{i}")),
            exec: false,
            offset: 0,
            hasher: blake3::Hasher::new(),
            replace: false,
        })
        .await
        .unwrap();
        w.write(Bytes::copy_from_slice(data)).await.unwrap();
        w.finish(Some((data.len() as u64, want))).await.unwrap()
    }

    fn data(i: usize) -> Vec<u8> {
        format!("file {i};").repeat(50 + i).into_bytes()
    }

    /// Files finished one after the other without waiting go through in batches: each
    /// verified one ends under its final name with its bytes, and a file whose hash does not
    /// match (in the middle of a batch) keeps its partial name and fails alone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batched_files_get_their_names_once_verified_and_a_mismatch_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let w = Writer::spawn().unwrap();
        let mut pending = Vec::new();
        for i in 0..300 {
            let want = match i {
                150 => blake3::hash(b"something else"),
                _ => blake3::hash(&data(i)),
            };
            pending.push((i, one(&w, d, i, &data(i), want).await));
        }
        for (i, fin) in pending {
            let r = fin.done().await;
            if i == 150 {
                assert!(matches!(r, Err(WriteError::Mismatch { .. })), "{r:?}");
                assert!(!d.join("f150").exists(), "a mismatch got its final name");
                assert_eq!(std::fs::read(d.join(".f150.part")).unwrap(), data(150));
            } else {
                r.unwrap();
                assert_eq!(std::fs::read(d.join(format!("f{i}"))).unwrap(), data(i));
                assert!(!d.join(format!(".f{i}.part")).exists());
            }
        }
        w.close().await;
    }

    /// Closing the writer with verified files still queued commits them before it returns
    /// (the receiver reports the transfer's end only after that).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn close_commits_what_was_verified() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let w = Writer::spawn().unwrap();
        let mut pending = Vec::new();
        for i in 0..200 {
            pending.push(one(&w, d, i, &data(i), blake3::hash(&data(i))).await);
        }
        w.close().await;
        for i in 0..200 {
            assert_eq!(std::fs::read(d.join(format!("f{i}"))).unwrap(), data(i));
        }
        for fin in pending {
            fin.done().await.unwrap();
        }
    }
}
