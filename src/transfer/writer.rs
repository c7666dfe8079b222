//! The receiver's disk side, on its own thread: writes a file's bytes into its partial file
//! while hashing them, and on request verifies, syncs and renames it to its final name.
//! Nothing here ever writes outside the paths the receiver checked.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// A file being received.
pub struct Target {
    /// The partial file (hidden, next to the final name).
    pub part: PathBuf,
    /// The final name.
    pub final_path: PathBuf,
    /// Set the executable bit.
    pub exec: bool,
    /// Where the bytes start (the partial file is cut to this length).
    pub offset: u64,
    /// The hash of the partial file's first `offset` bytes, carried on.
    pub hasher: blake3::Hasher,
    /// Replace a file that exists under the final name.
    pub replace: bool,
}

/// What the receiver asks of the writer.
enum Cmd {
    Open(Box<Target>),
    Data(Bytes),
    /// Finish the open file: its expected size and hash (None for a stream: take what came).
    Finish(
        Option<(u64, blake3::Hash)>,
        oneshot::Sender<Result<Finished, String>>,
    ),
}

/// A file that passed verification and has its final name.
#[derive(Debug)]
pub struct Finished {
    /// Its size.
    pub size: u64,
    /// Its BLAKE3.
    pub hash: blake3::Hash,
}

/// The async side's handle on the writer thread.
pub struct Writer {
    tx: mpsc::Sender<Cmd>,
    /// The first error the thread hit (it stops then).
    error: Arc<Mutex<Option<String>>>,
}

/// Chunks that may wait for the disk.
const DEPTH: usize = 16;

impl Writer {
    /// Starts the writer thread.
    pub fn spawn() -> io::Result<Writer> {
        let (tx, rx) = mpsc::channel(DEPTH);
        let error = Arc::new(Mutex::new(None));
        let err2 = error.clone();
        std::thread::Builder::new()
            .name("msock-writer".into())
            .spawn(move || run(rx, err2))?;
        Ok(Writer { tx, error })
    }

    /// Starts receiving into `target`.
    pub async fn open(&self, target: Target) -> Result<(), String> {
        self.send(Cmd::Open(Box::new(target))).await
    }

    /// Appends bytes to the open file.
    pub async fn write(&self, b: Bytes) -> Result<(), String> {
        self.send(Cmd::Data(b)).await
    }

    /// Verifies the open file against `expected` (size, hash) and, if it matches, gives it its
    /// final name. A mismatch keeps the partial file.
    pub async fn finish(&self, expected: Option<(u64, blake3::Hash)>) -> Result<Finished, String> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Finish(expected, tx)).await?;
        rx.await.unwrap_or_else(|_| Err(self.error()))
    }

    async fn send(&self, c: Cmd) -> Result<(), String> {
        self.tx.send(c).await.map_err(|_| self.error())
    }

    fn error(&self) -> String {
        self.error
            .lock()
            .expect("writer error lock")
            .clone()
            .unwrap_or_else(|| "the file writer stopped".into())
    }
}

/// The open file.
struct Open {
    t: Target,
    file: File,
    written: u64,
    /// Bytes up to here have been handed to the kernel's writeback.
    flushed: u64,
}

fn run(mut rx: mpsc::Receiver<Cmd>, error: Arc<Mutex<Option<String>>>) {
    let mut open: Option<Open> = None;
    while let Some(cmd) = rx.blocking_recv() {
        let r = match cmd {
            Cmd::Open(t) => open_part(*t).map(|o| open = Some(o)),
            Cmd::Data(b) => match open.as_mut() {
                Some(o) => write(o, &b),
                None => Err("data before any file was started".into()),
            },
            Cmd::Finish(expected, reply) => {
                let r = match open.take() {
                    Some(o) => finish(o, expected),
                    None => Err("no file to finish".into()),
                };
                // A verification failure is the file's, not the writer's: carry on.
                let fatal = r
                    .as_ref()
                    .err()
                    .filter(|e| !e.starts_with(MISMATCH))
                    .cloned();
                let _ = reply.send(r);
                match fatal {
                    Some(e) => Err(e),
                    None => Ok(()),
                }
            }
        };
        if let Err(e) = r {
            *error.lock().expect("writer error lock") = Some(e);
            // Keep what was written for a later resume.
            if let Some(o) = open.take() {
                let _ = o.file.sync_data();
            }
            return;
        }
    }
    if let Some(o) = open.take() {
        // The transfer ended inside a file: keep its bytes for resuming.
        let _ = o.file.sync_data();
    }
}

/// How a verification failure's message starts (the writer goes on after one).
pub const MISMATCH: &str = "verification failed";

fn open_part(t: Target) -> Result<Open, String> {
    let ctx = |what: &str, e: io::Error| disk_error(what, &t.part, e);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&t.part)
        .map_err(|e| ctx("cannot create", e))?;
    lock(&file).map_err(|_| {
        format!(
            "{} is being received by another transfer right now; try again when it is done",
            t.final_path.display()
        )
    })?;
    if t.offset > 0 {
        // The prefix was hashed before the lock was ours: make sure it is still those bytes
        // (another transfer of the same name may have rewritten it meanwhile).
        let (now, n) = super::hash_prefix(&t.part, t.offset).map_err(|e| ctx("cannot read", e))?;
        if n != t.offset || now.finalize() != t.hasher.finalize() {
            return Err(format!(
                "{} changed while this transfer was starting (another transfer of the same \
                 name?); run send-file again",
                t.part.display()
            ));
        }
    }
    file.set_len(t.offset)
        .map_err(|e| ctx("cannot resize", e))?;
    file.seek(SeekFrom::Start(t.offset))
        .map_err(|e| ctx("cannot seek in", e))?;
    Ok(Open {
        written: t.offset,
        flushed: t.offset,
        t,
        file,
    })
}

fn write(o: &mut Open, b: &[u8]) -> Result<(), String> {
    o.file
        .write_all(b)
        .map_err(|e| disk_error("cannot write", &o.t.part, e))?;
    o.t.hasher.update(b);
    o.written += b.len() as u64;
    if o.written - o.flushed >= WRITEBACK_EVERY {
        start_writeback(&o.file, o.flushed, o.written - o.flushed);
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

fn finish(mut o: Open, expected: Option<(u64, blake3::Hash)>) -> Result<Finished, String> {
    let hash = o.t.hasher.finalize();
    let name = o.t.final_path.display().to_string();
    if let Some((size, want)) = expected {
        if o.written != size || hash != want {
            let _ = o.file.sync_data();
            return Err(format!(
                "{MISMATCH} for {name}: received {} bytes with BLAKE3 {}, the sender has {size} \
                 bytes with BLAKE3 {}; kept the partial file, run send-file again to resend",
                o.written,
                short(&hash),
                short(&want)
            ));
        }
    }
    let ctx = |what: &str, e: io::Error| disk_error(what, &o.t.part, e);
    o.file.flush().map_err(|e| ctx("cannot write", e))?;
    let mode = if o.t.exec { 0o755 } else { 0o644 };
    o.file
        .set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| ctx("cannot set permissions of", e))?;
    o.file.sync_all().map_err(|e| ctx("cannot sync", e))?;
    if !o.t.replace && fs::symlink_metadata(&o.t.final_path).is_ok() {
        return Err(format!(
            "{name} appeared on the receiver during the transfer; kept the received copy as {}",
            o.t.part.display()
        ));
    }
    fs::rename(&o.t.part, &o.t.final_path)
        .map_err(|e| disk_error("cannot rename the partial file to", &o.t.final_path, e))?;
    if let Some(dir) = o.t.final_path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(Finished {
        size: o.written,
        hash,
    })
}

/// The first 16 hex digits of a hash, for messages.
pub fn short(h: &blake3::Hash) -> String {
    h.to_hex()[..16].to_owned()
}

/// A local disk error with the file and, for a full disk or quota, what to do.
pub fn disk_error(what: &str, path: &std::path::Path, e: io::Error) -> String {
    let hint = match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => {
            "; the receiver's disk is full: free space and run send-file again to resume"
        }
        Some(libc::EACCES) | Some(libc::EPERM) => {
            "; the receiver may not write there: check --save-dir's permissions"
        }
        Some(libc::EROFS) => "; the receiver's --save-dir is on a read-only file system",
        _ => "",
    };
    format!("{what} {}: {e}{hint}", path.display())
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
