//! Stdin and stdout as a session's application side. Each gets a dedicated thread, handing
//! whole chunks over channels, so that the session takes ownership of input chunks without
//! copying and the async workers never block on a pipe or a terminal.

use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use super::app::{AppSink, AppSource, SourceError, CHUNK};
use super::channel_io::ChannelSource;

/// Pipe buffer size asked for on stdin/stdout pipes: fewer, larger reads and writes.
const PIPE_SIZE: i32 = 1 << 20;

/// Reads standard input on its own thread, handing chunks over a channel.
pub struct StdinSource(ChannelSource);

impl StdinSource {
    /// Starts the reader thread. It stops at end of input or after an error.
    pub fn spawn() -> Self {
        let (tx, rx) = mpsc::channel(8);
        std::thread::Builder::new()
            .name("msock-stdin".into())
            .spawn(move || {
                grow_pipe(0);
                let mut stdin = io::stdin().lock();
                let mut block = BytesMut::new();
                loop {
                    match read_chunk(&mut stdin, &mut block) {
                        Ok(None) => break,
                        Ok(Some(chunk)) => {
                            if tx.blocking_send(Ok(chunk)).is_err() {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            let _ = tx.blocking_send(Err(e.into()));
                            break;
                        }
                    }
                }
            })
            .expect("spawn stdin thread");
        StdinSource(ChannelSource::new(rx))
    }
}

impl AppSource for StdinSource {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, SourceError>> {
        self.0.poll_chunk(cx)
    }
}

/// Writes standard output on its own thread. Clone-free: one per process; share it between
/// sessions with `&mut`.
pub struct StdoutSink {
    tx: PollSender<Bytes>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// The writer thread's error, if it stopped on one.
    error: Arc<Mutex<Option<io::Error>>>,
}

impl StdoutSink {
    /// Starts the writer thread.
    pub fn spawn() -> Self {
        let (tx, mut rx) = mpsc::channel::<Bytes>(8);
        let error = Arc::new(Mutex::new(None));
        let err2 = error.clone();
        let thread = std::thread::Builder::new()
            .name("msock-stdout".into())
            .spawn(move || {
                grow_pipe(1);
                let mut out = raw_stdout();
                let mut batch = Vec::with_capacity(64);
                while let Some(b) = rx.blocking_recv() {
                    // Write everything queued so far in one vectored call where possible.
                    batch.push(b);
                    while batch.len() < 64 {
                        match rx.try_recv() {
                            Ok(b) => batch.push(b),
                            Err(_) => break,
                        }
                    }
                    if let Err(e) = write_all_vectored(&mut out, &mut batch) {
                        *err2.lock().expect("stdout error lock") = Some(e);
                        return;
                    }
                }
                let _ = out.flush();
            })
            .expect("spawn stdout thread");
        StdoutSink {
            tx: PollSender::new(tx),
            thread: Some(thread),
            error,
        }
    }

    /// Another sink writing to the same stdout through the same thread (for a session of a
    /// listener that serves several at once; each chunk is written whole). Its `finish` does
    /// not wait: the original's does, for every handle to be dropped.
    pub fn handle(&self) -> StdoutSink {
        let tx = self.tx.get_ref().cloned();
        let mut tx = tx.map_or_else(|| PollSender::new(mpsc::channel(1).0), PollSender::new);
        if self.tx.is_closed() {
            tx.close();
        }
        StdoutSink {
            tx,
            thread: None,
            error: self.error.clone(),
        }
    }

    fn take_error(&self) -> io::Error {
        self.error
            .lock()
            .expect("stdout error lock")
            .take()
            .unwrap_or_else(|| io::ErrorKind::BrokenPipe.into())
    }

    /// Waits until everything handed over has been written; returns the writer's error if any.
    pub async fn finish(mut self) -> io::Result<()> {
        self.tx.close();
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        match self.error.lock().expect("stdout error lock").take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl AppSink for StdoutSink {
    fn poll_write_chunk(
        &mut self,
        cx: &mut Context<'_>,
        chunk: &mut Bytes,
    ) -> Poll<io::Result<()>> {
        match self.tx.poll_reserve(cx) {
            Poll::Ready(Ok(())) => {
                let b = std::mem::take(chunk);
                if self.tx.send_item(b).is_err() {
                    return Poll::Ready(Err(self.take_error()));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(_)) => Poll::Ready(Err(self.take_error())),
            Poll::Pending => Poll::Pending,
        }
    }
    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The thread writes without buffering; `finish` waits for it at the end.
        Poll::Ready(Ok(()))
    }
}

/// Input is read into blocks of this size, each cut into the chunks that reads return: fewer
/// allocations (and page faults) than one buffer per read.
const BLOCK: usize = 4 * CHUNK;

/// Reads up to [`CHUNK`] bytes of `input` into the free room of `block` (a fresh block when
/// it has too little) and cuts them off as one chunk; None at end of input. The room is not
/// zeroed first: the read writes it.
fn read_chunk(input: &mut io::StdinLock<'_>, block: &mut BytesMut) -> io::Result<Option<Bytes>> {
    if block.capacity() < CHUNK {
        *block = BytesMut::with_capacity(BLOCK);
    }
    let n = read_uninit(input, block)?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(block.split_to(n).freeze()))
}

/// One read into `block`'s spare room (at most [`CHUNK`] bytes), appended to it; the count.
/// On Unix `input` is the locked standard input, read through its descriptor (fd 0) without
/// its buffer, which stays empty: nothing else reads it.
#[cfg(unix)]
fn read_uninit(_input: &mut io::StdinLock<'_>, block: &mut BytesMut) -> io::Result<usize> {
    let room = &mut block.spare_capacity_mut()[..CHUNK];
    loop {
        // SAFETY: fd 0 stays open for the process's life; `room` is writable memory of
        // `room.len()` bytes that the kernel fills (it never reads it).
        let n = unsafe { libc::read(0, room.as_mut_ptr().cast(), room.len()) };
        if n >= 0 {
            let n = n as usize;
            // SAFETY: the kernel wrote the first `n` bytes of the spare room.
            unsafe { block.set_len(n) };
            return Ok(n);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// One read into `block` (at most [`CHUNK`] bytes), appended to it; the count.
#[cfg(not(unix))]
fn read_uninit(input: &mut io::StdinLock<'_>, block: &mut BytesMut) -> io::Result<usize> {
    block.resize(CHUNK, 0);
    let r = io::Read::read(input, &mut block[..]);
    block.truncate(*r.as_ref().unwrap_or(&0));
    r
}

/// Writes every chunk of `batch` (emptying it), as few syscalls as the OS allows.
fn write_all_vectored(out: &mut dyn Write, batch: &mut Vec<Bytes>) -> io::Result<()> {
    let mut first = 0;
    while first < batch.len() {
        let slices: Vec<io::IoSlice<'_>> =
            batch[first..].iter().map(|b| io::IoSlice::new(b)).collect();
        let mut n = match out.write_vectored(&slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while n > 0 {
            let len = batch[first].len();
            if n >= len {
                n -= len;
                first += 1;
            } else {
                batch[first].advance(n);
                n = 0;
            }
        }
    }
    batch.clear();
    Ok(())
}

/// Asks for a larger pipe buffer on `fd` if it is a pipe (harmless otherwise).
fn grow_pipe(fd: i32) {
    #[cfg(target_os = "linux")]
    // SAFETY: fcntl on a descriptor we own for the process's life; failure is ignored.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_SIZE);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (fd, PIPE_SIZE);
}

/// Stdout as an unbuffered `File` (Rust's `Stdout` is line-buffered), never closed.
fn raw_stdout() -> Box<dyn Write> {
    #[cfg(unix)]
    {
        use std::os::fd::{AsRawFd, FromRawFd};
        struct Raw(std::mem::ManuallyDrop<std::fs::File>);
        impl Write for Raw {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.write(b)
            }
            fn write_vectored(&mut self, b: &[io::IoSlice<'_>]) -> io::Result<usize> {
                self.0.write_vectored(b)
            }
            fn flush(&mut self) -> io::Result<()> {
                self.0.flush()
            }
        }
        let fd = io::stdout().as_raw_fd();
        // SAFETY: fd 1 stays open for the life of the process; ManuallyDrop never closes it.
        Box::new(Raw(std::mem::ManuallyDrop::new(unsafe {
            std::fs::File::from_raw_fd(fd)
        })))
    }
    #[cfg(not(unix))]
    {
        Box::new(io::stdout())
    }
}
