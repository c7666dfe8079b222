//! Copies bytes both ways between the two halves of a spliced flowpath, without looking at
//! them. On Linux with splice(2) through a pipe per direction (the bytes never enter user
//! space, and the only buffers are the pipes in the kernel: 64 KiB, grown to 1 MiB for a
//! direction that fills it); elsewhere with plain reads and writes through a 16 KiB
//! buffer. Either way memory per pair is bounded. Each direction moves only what its caps
//! (see [`super::rate`]) allow.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::Notify;

use prometheus_client::metrics::counter::Counter;

use super::rate::Caps;

/// Bytes moved by all splices, per direction, counted as they move.
#[derive(Debug, Default)]
pub struct Totals {
    /// Client → listener.
    pub up: Counter,
    /// Listener → client.
    pub down: Counter,
}

/// Bytes moved by a splice, per direction; readable while it runs.
#[derive(Debug, Default)]
pub struct Counters {
    /// Client → listener.
    pub up: AtomicU64,
    /// Listener → client.
    pub down: AtomicU64,
    /// One direction reached its end of stream.
    half_closed: AtomicBool,
    /// Notified when the first bytes past its preamble came from the listener.
    first_down: Notify,
    /// The relay's totals, which every moved byte is also added to.
    totals: Option<Arc<Totals>>,
    /// Caps of the client → listener direction.
    caps_up: Caps,
    /// Caps of the listener → client direction.
    caps_down: Caps,
}

impl Counters {
    /// Counters that also add to `totals`, for a splice whose directions are capped by
    /// `(up, down)`.
    pub fn new(totals: Arc<Totals>, (up, down): (Caps, Caps)) -> Counters {
        Counters {
            totals: Some(totals),
            caps_up: up,
            caps_down: down,
            ..Counters::default()
        }
    }
}

/// One direction of a splice: what it counts into and what caps it.
struct Way<'a> {
    count: &'a AtomicU64,
    total: Option<&'a Counter>,
    caps: &'a Caps,
    /// Notified when the first bytes moved.
    first: Option<&'a Notify>,
}

/// How long a splice may stay quiet.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Nothing moved either way for this long: the pair is closed.
    pub idle: Duration,
    /// The listener sent nothing back for this long after the splice began (no session
    /// started on it), or the pair is half closed and nothing moved for this long: closed.
    pub session: Duration,
}

/// How a splice ended.
#[derive(Debug)]
pub enum End {
    /// Both directions reached end of stream.
    Closed,
    /// A socket failed (reset, ...).
    Error(io::Error),
    /// Nothing moved either way for the idle timeout.
    Idle,
    /// Closed on request (the listener said its half is gone, or the relay shuts down).
    Killed,
    /// The listener sent nothing back in time: no session started on the pair.
    NoSession,
}

/// Copies between `client` and `listener` until both directions end, one fails, nothing
/// moves for the idle timeout (the session timeout once half closed), the listener sends
/// nothing within the session timeout, or `kill` is notified. `on_session` is called when the
/// listener's first bytes came through.
pub async fn run(
    client: TcpStream,
    listener: TcpStream,
    t: Timeouts,
    counters: Arc<Counters>,
    kill: Arc<Notify>,
    on_session: impl FnOnce(),
) -> End {
    let copy = both_ways(&client, &listener, &counters);
    tokio::pin!(copy);
    let mut on_session = Some(on_session);
    let tick = (t.idle.min(t.session) / 4).max(Duration::from_millis(50));
    let mut last = (0, 0);
    let mut quiet = Duration::ZERO;
    let mut waited = Duration::ZERO;
    let mut interval = tokio::time::interval(tick);
    interval.tick().await;
    loop {
        tokio::select! {
            r = &mut copy => return match r {
                Ok(()) => End::Closed,
                Err(e) => End::Error(e),
            },
            _ = kill.notified() => return End::Killed,
            _ = counters.first_down.notified(), if on_session.is_some() => {
                if let Some(f) = on_session.take() {
                    f();
                }
            }
            _ = interval.tick() => {
                let now = (counters.up.load(Ordering::Relaxed), counters.down.load(Ordering::Relaxed));
                waited += tick;
                if now.1 == 0 && waited >= t.session {
                    return End::NoSession;
                }
                if now == last {
                    quiet += tick;
                    let limit = if counters.half_closed.load(Ordering::Relaxed) {
                        t.session
                    } else {
                        t.idle
                    };
                    if quiet >= limit {
                        return End::Idle;
                    }
                } else {
                    quiet = Duration::ZERO;
                    last = now;
                }
            }
        }
    }
}

async fn both_ways(a: &TcpStream, b: &TcpStream, c: &Counters) -> io::Result<()> {
    let totals = c.totals.as_deref();
    let up = Way {
        count: &c.up,
        total: totals.map(|t| &t.up),
        caps: &c.caps_up,
        first: None,
    };
    let down = Way {
        count: &c.down,
        total: totals.map(|t| &t.down),
        caps: &c.caps_down,
        first: Some(&c.first_down),
    };
    let up = one_way(a, b, up);
    let down = one_way(b, a, down);
    tokio::pin!(up, down);
    // Both must end; the first error ends everything.
    let (mut up_done, mut down_done) = (false, false);
    while !(up_done && down_done) {
        tokio::select! {
            r = &mut up, if !up_done => { r?; up_done = true; }
            r = &mut down, if !down_done => { r?; down_done = true; }
        }
        c.half_closed.store(true, Ordering::Relaxed);
    }
    Ok(())
}

impl Way<'_> {
    /// Leave to move up to `want` bytes (all of it when uncapped).
    async fn allowance(&self, want: usize) -> usize {
        if self.caps.0.is_empty() {
            want
        } else {
            self.caps.take(want).await
        }
    }

    /// Adds `n` moved bytes of `granted` to the counts (notifying `first` when they are the
    /// first) and returns the rest to the caps.
    fn moved(&self, n: usize, granted: usize) {
        if granted > n {
            self.caps.give_back(granted - n);
        }
        if let Some(t) = self.total {
            t.inc_by(n as u64);
        }
        // A listener's preamble alone (it answers any connection so) is no session yet: the
        // first bytes past it are (its WELCOME).
        let before = self.count.fetch_add(n as u64, Ordering::Relaxed);
        let past = crate::proto::PREAMBLE.len() as u64;
        if before <= past && before + n as u64 > past {
            if let Some(f) = self.first {
                f.notify_one();
            }
        }
    }
}

/// Half-closes `to` for writing (its peer sees end of stream).
fn shutdown_write(to: &TcpStream) {
    let _ = socket2::SockRef::from(to).shutdown(std::net::Shutdown::Write);
}

#[cfg(target_os = "linux")]
async fn one_way(from: &TcpStream, to: &TcpStream, way: Way<'_>) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    use tokio::io::Interest;

    let pipe = Pipe::new()?;
    let flags = libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE;
    let mut cap = PIPE_SIZE;
    let mut grown = false;
    loop {
        from.readable().await?;
        let granted = way.allowance(cap).await;
        let n = match from.try_io(Interest::READABLE, || {
            splice_fds(from.as_raw_fd(), pipe.w, granted, flags)
        }) {
            Ok(0) => {
                shutdown_write(to);
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                way.moved(0, granted);
                continue;
            }
            Err(e) => return Err(e),
        };
        // The pipe holds 16 buffers per 64 KiB, one per fragment of a received packet: from
        // a NIC (or any link without large receive offload) that is one packet of ~1.5 KB
        // each, so the pipe is full at ~23 KB, long before `cap` bytes. A read that stopped
        // short with bytes still waiting in the socket was stopped by the pipe.
        let busy = !grown && (n >= cap || (n < granted && unread(from.as_raw_fd()) > 0));
        let mut left = n;
        while left > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || {
                splice_fds(pipe.r, to.as_raw_fd(), left, flags)
            }) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        way.moved(n, granted);
        // A busy direction (it filled the pipe, or left bytes unread) gets a bigger pipe,
        // once: fewer system calls per byte. Idle pairs keep the small default.
        if busy && !grown {
            grown = true;
            // SAFETY: fcntl on our own pipe descriptor.
            let r =
                unsafe { libc::fcntl(pipe.w, libc::F_SETPIPE_SZ, BUSY_PIPE_SIZE as libc::c_int) };
            if r > 0 {
                cap = r as usize;
            }
        }
    }
}

/// Most bytes moved per splice call at first (the pipe's default capacity).
#[cfg(target_os = "linux")]
const PIPE_SIZE: usize = 64 * 1024;
/// The pipe size of a busy direction (the kernel may grant less, or refuse: then the default
/// stays).
#[cfg(target_os = "linux")]
const BUSY_PIPE_SIZE: usize = 1024 * 1024;

/// A non-blocking pipe, closed on drop.
#[cfg(target_os = "linux")]
struct Pipe {
    r: i32,
    w: i32,
}

#[cfg(target_os = "linux")]
impl Pipe {
    fn new() -> io::Result<Pipe> {
        let mut fds = [0i32; 2];
        // SAFETY: fds has room for the two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pipe {
            r: fds[0],
            w: fds[1],
        })
    }
}

#[cfg(target_os = "linux")]
impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: we own both descriptors.
        unsafe {
            libc::close(self.r);
            libc::close(self.w);
        }
    }
}

#[cfg(not(target_os = "linux"))]
async fn one_way(from: &TcpStream, to: &TcpStream, way: Way<'_>) -> io::Result<()> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        from.readable().await?;
        let granted = way.allowance(buf.len()).await;
        let n = match from.try_read(&mut buf[..granted]) {
            Ok(0) => {
                shutdown_write(to);
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                way.moved(0, granted);
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut off = 0;
        while off < n {
            to.writable().await?;
            match to.try_write(&buf[off..n]) {
                Ok(m) => off += m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        way.moved(n, granted);
    }
}

/// How many received bytes wait in socket `fd` (0 when it cannot say).
#[cfg(target_os = "linux")]
fn unread(fd: i32) -> usize {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD on the caller's open socket writes one int.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    if r < 0 {
        0
    } else {
        n.max(0) as usize
    }
}

/// One splice(2) of at most `len` bytes from `from` to `to` (a socket and a pipe).
fn splice_fds(from: i32, to: i32, len: usize, flags: libc::c_uint) -> io::Result<usize> {
    // SAFETY: the caller's fds are open for the call; null offsets (sockets and pipes have
    // none).
    let r = unsafe {
        libc::splice(
            from,
            std::ptr::null_mut(),
            to,
            std::ptr::null_mut(),
            len,
            flags,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    #[tokio::test]
    async fn copies_both_ways_with_half_close() {
        let (mut client, relay_c) = pair().await;
        let (relay_l, mut listener) = pair().await;
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run(
            relay_c,
            relay_l,
            Timeouts {
                idle: Duration::from_secs(5),
                session: Duration::from_secs(5),
            },
            counters.clone(),
            Arc::new(Notify::new()),
            || {},
        ));
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7) as u8).collect();
        let d2 = data.clone();
        let w = tokio::spawn(async move {
            client.write_all(&d2).await.unwrap();
            client.shutdown().await.unwrap();
            let mut back = Vec::new();
            client.read_to_end(&mut back).await.unwrap();
            back
        });
        let mut got = Vec::new();
        listener.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, data);
        listener.write_all(b"thanks").await.unwrap();
        listener.shutdown().await.unwrap();
        assert_eq!(w.await.unwrap(), b"thanks");
        assert!(matches!(task.await.unwrap(), End::Closed));
        assert_eq!(counters.up.load(Ordering::Relaxed), 1_000_000);
        assert_eq!(counters.down.load(Ordering::Relaxed), 6);
    }

    #[tokio::test]
    async fn idle_pairs_end() {
        let (_client, relay_c) = pair().await;
        let (relay_l, mut listener) = pair().await;
        // Its preamble, then more (a listener's preamble alone starts no session).
        listener.write_all(&crate::proto::PREAMBLE).await.unwrap();
        listener.write_all(b"hello").await.unwrap();
        let t = Timeouts {
            idle: Duration::from_millis(200),
            session: Duration::from_secs(60),
        };
        let session = AtomicBool::new(false);
        let on_session = || session.store(true, Ordering::Relaxed);
        let end = run(
            relay_c,
            relay_l,
            t,
            Arc::default(),
            Arc::default(),
            on_session,
        )
        .await;
        assert!(matches!(end, End::Idle), "{end:?}");
        assert!(
            session.load(Ordering::Relaxed),
            "the listener's bytes start a session"
        );
    }

    #[tokio::test]
    async fn pairs_without_a_session_and_half_closed_ones_end_early() {
        let t = Timeouts {
            idle: Duration::from_secs(60),
            session: Duration::from_millis(300),
        };
        // The client sends, the listener never answers.
        let (mut client, relay_c) = pair().await;
        let (relay_l, _listener) = pair().await;
        client.write_all(b"MSOCK\x01").await.unwrap();
        let end = run(relay_c, relay_l, t, Arc::default(), Arc::default(), || {}).await;
        assert!(matches!(end, End::NoSession), "{end:?}");
        // The listener answered and closed; the client stays silent without closing.
        let (_client, relay_c) = pair().await;
        let (relay_l, mut listener) = pair().await;
        listener.write_all(b"bye").await.unwrap();
        listener.shutdown().await.unwrap();
        let end = run(relay_c, relay_l, t, Arc::default(), Arc::default(), || {}).await;
        assert!(matches!(end, End::Idle), "{end:?}");
    }
}
