//! Pseudo-terminals for programs run with `--pty`: opening a pair, the master side as async
//! reader and writer, and setting the window size.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::wire::Winsize;

/// A pseudo-terminal pair: the master (ours) and the slave (the program's terminal).
pub(crate) struct Pair {
    /// Our side, non-blocking.
    pub master: OwnedFd,
    /// The program's side.
    pub slave: OwnedFd,
}

/// Opens a pseudo-terminal of `size` (0 × 0: the system's default).
pub(crate) fn open(size: Winsize) -> io::Result<Pair> {
    let (mut m, mut s): (RawFd, RawFd) = (-1, -1);
    let ws = to_libc(size);
    let wsp = if size.rows > 0 && size.cols > 0 {
        &ws as *const libc::winsize
    } else {
        std::ptr::null()
    };
    // SAFETY: openpty writes two descriptors into m and s; the name buffer is null (unused)
    // and the termios pointer null (defaults); wsp is null or points to a live winsize.
    let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), wsp) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openpty succeeded: both descriptors are open and owned by nobody else.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
    for fd in [master.as_raw_fd(), slave.as_raw_fd()] {
        // SAFETY: fcntl on descriptors we own.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: as above.
    unsafe {
        let fl = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(master.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    Ok(Pair { master, slave })
}

fn to_libc(size: Winsize) -> libc::winsize {
    libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Sets the window size of the terminal `fd` belongs to (the program gets SIGWINCH).
pub(crate) fn set_size(fd: RawFd, size: Winsize) -> io::Result<()> {
    if size.rows == 0 || size.cols == 0 {
        return Ok(());
    }
    let ws = to_libc(size);
    // SAFETY: TIOCSWINSZ reads one winsize from a live pointer.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The master side of a pseudo-terminal as an async reader and writer (clone it for each).
/// Reading ends (0 bytes) when the program's side is closed by everyone (EIO on Linux).
#[derive(Clone)]
pub(crate) struct Master(Arc<AsyncFd<OwnedFd>>);

impl Master {
    /// Wraps a non-blocking master descriptor.
    pub fn new(fd: OwnedFd) -> io::Result<Master> {
        // SAFETY: an OwnedFd is a valid open descriptor that stays the same until it is
        // dropped, which happens only with the AsyncFd.
        let fd = unsafe { AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)?;
        Ok(Master(Arc::new(fd)))
    }

    /// Sets the window size.
    pub fn resize(&self, size: Winsize) -> io::Result<()> {
        set_size(self.0.get_ref().as_raw_fd(), size)
    }
}

impl AsyncRead for Master {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let r = guard.try_io(|fd| {
                // SAFETY: reads into a live, initialized buffer of the given length.
                let n = unsafe {
                    libc::read(
                        fd.get_ref().as_raw_fd(),
                        unfilled.as_mut_ptr().cast(),
                        unfilled.len(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match r {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // Linux says EIO once no process has the terminal open: the end.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Master {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            let r = guard.try_io(|fd| {
                // SAFETY: writes from a live buffer of the given length.
                let n = unsafe {
                    libc::write(fd.get_ref().as_raw_fd(), buf.as_ptr().cast(), buf.len())
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match r {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
