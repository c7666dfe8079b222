//! The receiver's disk side, on its own thread: writes a file's bytes into its partial file
//! while hashing them, and on request verifies, syncs and renames it to its final name.
//! Nothing here ever writes outside the paths the receiver checked.
//!
//! Partial files are created exclusively (`O_EXCL`, `O_NOFOLLOW`); an existing one is opened
//! only if it is a regular file with a single link, owned by this user (never a hard link or
//! symlink to something else). Within the process, an open partial file is registered so that
//! a newer transfer of the same sender (same partial name: same token) takes it over from an
//! older, parked one: the older writer loses the file and can write no more.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// A file being received.
pub struct Target {
    /// The partial file (hidden, next to the final name).
    pub part: PathBuf,
    /// The final name.
    pub(crate) final_path: PathBuf,
    /// Set the executable bit.
    pub exec: bool,
    /// Where the bytes start (the partial file is cut to this length).
    pub offset: u64,
    /// The hash of the partial file's first `offset` bytes, carried on.
    pub(crate) hasher: blake3::Hasher,
    /// Replace a file that exists under the final name.
    pub replace: bool,
    /// The bytes still to come, if known (a large file's bulk is written directly).
    pub(crate) expect: Option<u64>,
}

#[path = "commit.rs"]
mod commit;
#[path = "direct.rs"]
mod direct;

/// What the receiver asks of the writer.
enum Cmd {
    Open(Box<Target>),
    Data(Bytes),
    /// Finish the open file: its expected size and hash (None for a stream: take what came);
    /// answered once it has its final name (or not).
    Finish(
        Option<(u64, blake3::Hash)>,
        oneshot::Sender<Result<(), WriteError>>,
    ),
}

/// Why the writer could not receive or keep a file, and whose fault it is.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The local disk or file system failed (full, no permission, read-only, ...).
    #[error("{what} {}: {detail}{}", .path.display(), .fault.hint())]
    Disk {
        /// What was being done, e.g. "cannot write".
        what: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The kind of failure, for the hint on what to do.
        fault: DiskFault,
        /// The system's message.
        detail: String,
    },
    /// Something other than a partial file of ours is at the partial file's name (a link, a
    /// folder, another user's file): it is never opened.
    #[error(
        "{} is not a partial file this receiver created (a link or not a regular file); it was \
         left alone: remove it on the receiver",
        .0.display()
    )]
    NotOurs(PathBuf),
    /// A newer transfer from the same sender took this file over.
    #[error("a newer transfer from the same sender took {} over", .0.display())]
    TakenOver(PathBuf),
    /// Another transfer is receiving the same file right now (try again later).
    #[error(
        "{} is being received by another transfer right now; try again when it is done",
        .0.display()
    )]
    Busy(PathBuf),
    /// The partial file changed while this transfer was starting (another transfer of the
    /// same name rewrote it).
    #[error(
        "{} changed while this transfer was starting (another transfer of the same name?); \
         run send-file again",
        .0.display()
    )]
    PartialChanged(PathBuf),
    /// The received bytes are not the sender's (size or hash differ): they were corrupted on
    /// the way or the sender's file changed. The partial file is kept and the writer goes on.
    #[error(
        "verification failed for {}: received {received} bytes with BLAKE3 {}, the sender has \
         {size} bytes with BLAKE3 {}; kept the partial file, run send-file again to resend",
        .name.display(), short(.got), short(.want)
    )]
    Mismatch {
        /// The file's final name.
        name: PathBuf,
        /// Bytes received.
        received: u64,
        /// Their hash.
        got: blake3::Hash,
        /// The sender's size.
        size: u64,
        /// The sender's hash.
        want: blake3::Hash,
    },
    /// Something on the receiver created a file under the final name during the transfer.
    #[error(
        "{} appeared on the receiver during the transfer; kept the received copy as {}",
        .final_path.display(), .part.display()
    )]
    Appeared {
        /// The final name.
        final_path: PathBuf,
        /// Where the received bytes are.
        part: PathBuf,
    },
    /// The receiver asked for data or a finish with no file open (a bug on our side).
    #[error("{0}")]
    NoFile(&'static str),
    /// The writer thread is gone.
    #[error("the file writer stopped")]
    Stopped,
}

/// The kind of a local disk failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFault {
    /// The disk or the quota is full.
    Full,
    /// The receiver may not write there.
    Permission,
    /// The file system is read-only.
    ReadOnly,
    /// Anything else.
    Other,
}

impl DiskFault {
    fn of(e: &io::Error) -> DiskFault {
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => DiskFault::Full,
            Some(libc::EACCES) | Some(libc::EPERM) => DiskFault::Permission,
            Some(libc::EROFS) => DiskFault::ReadOnly,
            _ => DiskFault::Other,
        }
    }

    /// What to do about it, appended to the message.
    fn hint(self) -> &'static str {
        match self {
            DiskFault::Full => {
                "; the receiver's disk is full: free space and run send-file again to resume"
            }
            DiskFault::Permission => {
                "; the receiver may not write there: check --save-dir's permissions"
            }
            DiskFault::ReadOnly => "; the receiver's --save-dir is on a read-only file system",
            DiskFault::Other => "",
        }
    }
}

impl WriteError {
    /// A local disk error `e` while doing `what` to `path`.
    pub fn disk(what: &'static str, path: &Path, e: io::Error) -> WriteError {
        WriteError::Disk {
            what,
            path: path.to_owned(),
            fault: DiskFault::of(&e),
            detail: e.to_string(),
        }
    }
}

/// The async side's handle on the writer thread (and the committer thread behind it).
pub struct Writer {
    tx: mpsc::Sender<Cmd>,
    /// The first error the thread hit (it stops then).
    error: Arc<Mutex<Option<WriteError>>>,
    /// Resolves (with an error: its sender is dropped) once both threads have ended.
    exited: oneshot::Receiver<()>,
}

/// A file's finish under way (see [`Writer::finish`]).
pub struct Finishing {
    rx: oneshot::Receiver<Result<(), WriteError>>,
    error: Arc<Mutex<Option<WriteError>>>,
}

impl Finishing {
    /// Waits until the file is verified, synced and under its final name (Ok), or not.
    pub async fn done(self) -> Result<(), WriteError> {
        match self.rx.await {
            Ok(r) => r,
            Err(_) => Err(first_error(&self.error)),
        }
    }

    /// How it went, if that is known already.
    pub fn try_done(&mut self) -> Option<Result<(), WriteError>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(first_error(&self.error))),
        }
    }
}

/// The error the threads stopped on, if any.
fn first_error(error: &Mutex<Option<WriteError>>) -> WriteError {
    error
        .lock()
        .expect("writer error lock")
        .clone()
        .unwrap_or(WriteError::Stopped)
}

/// Chunks that may wait for the disk (at most `wire::MAX_DATA`, 256 KiB, each: up to 16 MiB,
/// so that the network goes on while a large write waits for the disk).
const DEPTH: usize = 64;

impl Writer {
    /// Starts the writer thread and its committer.
    pub fn spawn() -> io::Result<Writer> {
        let (tx, rx) = mpsc::channel(DEPTH);
        let error = Arc::new(Mutex::new(None));
        let (alive, exited) = oneshot::channel::<()>();
        let (ctx, crx) = std::sync::mpsc::sync_channel(commit::budget());
        let err2 = error.clone();
        let committer = std::thread::Builder::new()
            .name("msock-commit".into())
            .spawn(move || commit::run(crx, err2))?;
        let err2 = error.clone();
        std::thread::Builder::new()
            .name("msock-writer".into())
            .spawn(move || {
                run(rx, ctx, err2);
                // The committer ends once it has committed what the writer handed over.
                let _ = committer.join();
                drop(alive);
            })?;
        Ok(Writer { tx, error, exited })
    }

    /// Ends the threads after the commands already queued (at most a few chunks) and waits
    /// for them: once this returns, everything received is in the files, the files are closed,
    /// and every file that was verified has its final name.
    pub async fn close(self) {
        drop(self.tx);
        let _ = self.exited.await;
    }

    /// Starts receiving into `target`.
    pub async fn open(&self, target: Target) -> Result<(), WriteError> {
        self.send(Cmd::Open(Box::new(target))).await
    }

    /// Appends bytes to the open file.
    pub async fn write(&self, b: Bytes) -> Result<(), WriteError> {
        self.send(Cmd::Data(b)).await
    }

    /// Asks for the open file to be verified against `expected` (size, hash) and, if it
    /// matches, to be given its final name, together with other files (see `commit.rs`); the
    /// writer goes on with the next file meanwhile. [`Finishing::done`] says how it went: a
    /// mismatch ([`WriteError::Mismatch`]) keeps the partial file.
    pub async fn finish(
        &self,
        expected: Option<(u64, blake3::Hash)>,
    ) -> Result<Finishing, WriteError> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Finish(expected, tx)).await?;
        Ok(Finishing {
            rx,
            error: self.error.clone(),
        })
    }

    async fn send(&self, c: Cmd) -> Result<(), WriteError> {
        self.tx.send(c).await.map_err(|_| self.error())
    }

    fn error(&self) -> WriteError {
        first_error(&self.error)
    }
}

/// An open partial file, shared with the process-wide register so that a newer transfer of
/// the same sender can take it away (None once taken).
type Slot = Mutex<Option<File>>;

/// The partial files open in this process, by path.
fn register() -> &'static Mutex<HashMap<PathBuf, Weak<Slot>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<Slot>>>> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

/// Takes the partial file at `part` away from the transfer that has it open in this process,
/// if any (its descriptor, and with it its lock, is closed).
fn take_over(part: &Path) {
    let old = register()
        .lock()
        .expect("register lock")
        .remove(part)
        .and_then(|w| w.upgrade());
    if let Some(slot) = old {
        let file = slot.lock().expect("slot lock").take();
        if let Some(f) = file {
            let _ = f.sync_data();
        }
    }
}

/// The open file.
struct Open {
    t: Target,
    slot: Arc<Slot>,
    written: u64,
    /// Bytes up to here have been handed to the kernel's writeback.
    flushed: u64,
    /// Writing directly (a large file), with the bytes staged for the next write.
    direct: Option<direct::Direct>,
}

impl Open {
    /// Writes what is staged and syncs what was written, if the file is still ours.
    fn keep(&mut self) {
        if let Some(f) = self.slot.lock().expect("slot lock").as_mut() {
            if let Some(d) = self.direct.take() {
                let _ = d.finish(f);
            }
            let _ = f.sync_data();
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let mut reg = register().lock().expect("register lock");
        let ours = reg
            .get(&self.t.part)
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self.slot)));
        if ours {
            reg.remove(&self.t.part);
        }
    }
}

/// Opens an existing partial file (or other file `p` the receiver reads) only if it is a
/// regular file with one link, owned by this user; never through a symlink.
pub(crate) fn open_own(p: &Path, write: bool) -> Result<File, WriteError> {
    let f = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(p)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => WriteError::NotOurs(p.to_owned()),
            _ => WriteError::disk("cannot open", p, e),
        })?;
    let m = f
        .metadata()
        .map_err(|e| WriteError::disk("cannot read", p, e))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !m.is_file() || m.nlink() != 1 || m.uid() != me {
        return Err(WriteError::NotOurs(p.to_owned()));
    }
    Ok(f)
}

/// Hashes the first `n` bytes of `f` from its start; the hasher and the bytes hashed.
pub(crate) fn hash_file(f: &mut File, n: u64) -> io::Result<(blake3::Hasher, u64)> {
    f.seek(SeekFrom::Start(0))?;
    super::hash_read(f.take(n))
}

fn run(
    mut rx: mpsc::Receiver<Cmd>,
    committer: commit::Queue,
    error: Arc<Mutex<Option<WriteError>>>,
) {
    let mut open: Option<Open> = None;
    while let Some(cmd) = rx.blocking_recv() {
        if error.lock().expect("writer error lock").is_some() {
            // The committer failed (the disk): stop here too.
            break;
        }
        let r = match cmd {
            Cmd::Open(t) => open_part(*t).map(|o| open = Some(o)),
            Cmd::Data(b) => match open.as_mut() {
                Some(o) => write(o, &b),
                None => Err(WriteError::NoFile("data before any file was started")),
            },
            Cmd::Finish(expected, reply) => match open.take().map(|o| verify(o, expected)) {
                Some(Ok(o)) => {
                    commit::hand_over(&committer, o, reply);
                    Ok(())
                }
                // A verification failure is the file's, not the writer's: carry on.
                Some(Err(e @ WriteError::Mismatch { .. })) => {
                    let _ = reply.send(Err(e));
                    Ok(())
                }
                Some(Err(e)) => {
                    let _ = reply.send(Err(e.clone()));
                    Err(e)
                }
                None => {
                    let e = WriteError::NoFile("no file to finish");
                    let _ = reply.send(Err(e.clone()));
                    Err(e)
                }
            },
        };
        if let Err(e) = r {
            error.lock().expect("writer error lock").get_or_insert(e);
            break;
        }
    }
    if let Some(mut o) = open.take() {
        // The transfer ended (or failed) inside a file: keep its bytes for resuming.
        o.keep();
    }
}

fn open_part(t: Target) -> Result<Open, WriteError> {
    let ctx = |what: &'static str, e: io::Error| WriteError::disk(what, &t.part, e);
    // The partial file's name is the sender's own (its token): an older transfer of the same
    // sender, parked or gone, gives it up.
    take_over(&t.part);
    let created = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&t.part);
    let mut file = match created {
        Ok(f) if t.offset == 0 => f,
        Ok(_) => {
            // The resumed bytes vanished meanwhile.
            let _ = fs::remove_file(&t.part);
            return Err(WriteError::PartialChanged(t.part.clone()));
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => open_own(&t.part, true)?,
        Err(e) => return Err(ctx("cannot create", e)),
    };
    lock(&file).map_err(|_| WriteError::Busy(t.final_path.clone()))?;
    if t.offset > 0 {
        // The prefix was hashed before the lock was ours: make sure it is still those bytes
        // (another transfer of the same name may have rewritten it meanwhile).
        let (now, n) = hash_file(&mut file, t.offset).map_err(|e| ctx("cannot read", e))?;
        if n != t.offset || now.finalize() != t.hasher.finalize() {
            return Err(WriteError::PartialChanged(t.part.clone()));
        }
    }
    file.set_len(t.offset)
        .map_err(|e| ctx("cannot resize", e))?;
    file.seek(SeekFrom::Start(t.offset))
        .map_err(|e| ctx("cannot seek in", e))?;
    let slot = Arc::new(Mutex::new(Some(file)));
    register()
        .lock()
        .expect("register lock")
        .insert(t.part.clone(), Arc::downgrade(&slot));
    let direct = t
        .expect
        .filter(|&n| n >= direct::DIRECT_FROM)
        .and_then(|_| direct::Direct::start(t.offset));
    Ok(Open {
        written: t.offset,
        flushed: t.offset,
        t,
        slot,
        direct,
    })
}

fn write(o: &mut Open, b: &[u8]) -> Result<(), WriteError> {
    let mut slot = o.slot.lock().expect("slot lock");
    let file = slot
        .as_mut()
        .ok_or_else(|| WriteError::TakenOver(o.t.final_path.clone()))?;
    let ctx = |e| WriteError::disk("cannot write", &o.t.part, e);
    match o.direct.as_mut() {
        Some(d) => d.write(file, b).map_err(ctx)?,
        None => file.write_all(b).map_err(ctx)?,
    }
    o.t.hasher.update(b);
    o.written += b.len() as u64;
    if o.direct.is_none() && o.written - o.flushed >= WRITEBACK_EVERY {
        start_writeback(file, o.flushed, o.written - o.flushed);
        o.flushed = o.written;
    }
    Ok(())
}

/// Start writing received bytes to disk every this many bytes, so that the final fsync (which
/// a verified file needs before its rename) finds little left to do and the disk works while
/// the network does.
const WRITEBACK_EVERY: u64 = 32 << 20;

/// Asks the kernel to start writing `len` bytes at `offset` to disk, without waiting.
fn start_writeback(f: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: sync_file_range on a descriptor we own; failure only loses the head start.
        unsafe {
            libc::sync_file_range(
                f.as_raw_fd(),
                offset as libc::off64_t,
                len as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (f, offset, len);
}

/// Checks the open file against `expected` and sets its permissions; the committer then
/// syncs and renames it. A mismatch syncs what was received and keeps it under its partial
/// name.
fn verify(mut o: Open, expected: Option<(u64, blake3::Hash)>) -> Result<Open, WriteError> {
    let hash = o.t.hasher.finalize();
    {
        let mut slot = o.slot.lock().expect("slot lock");
        let file = slot
            .as_mut()
            .ok_or_else(|| WriteError::TakenOver(o.t.final_path.clone()))?;
        if let Some(d) = o.direct.take() {
            d.finish(file)
                .map_err(|e| WriteError::disk("cannot write", &o.t.part, e))?;
            // Written to the disk already: nothing for the writeback to start.
            o.flushed = o.written;
        }
        if let Some((size, want)) = expected {
            if o.written != size || hash != want {
                let _ = file.sync_data();
                return Err(WriteError::Mismatch {
                    name: o.t.final_path.clone(),
                    received: o.written,
                    got: hash,
                    size,
                    want,
                });
            }
        }
        let ctx = |what: &'static str, e: io::Error| WriteError::disk(what, &o.t.part, e);
        file.flush().map_err(|e| ctx("cannot write", e))?;
        let mode = if o.t.exec { 0o755 } else { 0o644 };
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| ctx("cannot set permissions of", e))?;
    }
    Ok(o)
}

/// The first 16 hex digits of a hash, for messages.
fn short(h: &blake3::Hash) -> String {
    h.to_hex()[..16].to_owned()
}

/// Takes an exclusive advisory lock on `f`, without waiting.
fn lock(f: &File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_errors_say_what_to_do() {
        let full = WriteError::disk(
            "cannot write",
            Path::new("/s/a.part"),
            io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert!(matches!(
            full,
            WriteError::Disk {
                fault: DiskFault::Full,
                ..
            }
        ));
        let text = full.to_string();
        assert!(text.starts_with("cannot write /s/a.part: "), "{text}");
        assert!(text.ends_with("free space and run send-file again to resume"));
        let denied = io::Error::from_raw_os_error(libc::EACCES);
        assert!(WriteError::disk("cannot create", Path::new("/x"), denied)
            .to_string()
            .contains("check --save-dir's permissions"));
    }
}
