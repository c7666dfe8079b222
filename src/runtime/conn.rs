//! One flowpath's TCP connection: socket setup, the frame reader and the outgoing buffer.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::proto::{DeframeError, Deframer, Frame, OutQueue, PREAMBLE};

/// Kernel unsent-bytes threshold for flowpath sockets: a socket reports writable only while
/// less than this is queued unsent, so that the session (not the kernel) decides which path
/// carries which bytes.
pub(crate) const NOTSENT_LOWAT: u32 = 512 * 1024;

/// A flowpath connection with its frame reader and pending output.
#[derive(Debug)]
pub struct FlowConn {
    /// The TCP connection.
    pub stream: TcpStream,
    /// Frames received so far.
    pub deframer: Deframer,
    /// Encoded frames not yet written to the socket (DATA payloads by reference). Boxed to
    /// keep connections small to move around.
    pub out: Box<OutQueue>,
    /// Remote address.
    pub peer: SocketAddr,
    /// Local address.
    pub local: SocketAddr,
    /// The socket's current unsent-bytes threshold (TCP_NOTSENT_LOWAT).
    pub(crate) lowat: u32,
    /// The connection goes through a relay (a route header went out in front of our
    /// preamble, or the listener's relay agent dialed it): an orderly close there may be the
    /// relay's own, so it does not mean that the peer exited.
    pub(crate) relayed: bool,
    /// Unique in the process: names this connection where a path id would not (a
    /// replacement connection of a flowpath has the same id).
    pub(crate) serial: u64,
}

/// The next [`FlowConn::serial`].
static NEXT_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What went wrong while reading frames from a flowpath.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// Socket error (reset, unreachable, ...).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
    /// The peer sent bytes that are not valid msock.
    #[error("{0}")]
    Deframe(#[from] DeframeError),
}

impl FlowConn {
    /// Wraps an established connection; `deframer` says whether the peer's preamble is still
    /// expected.
    pub fn new(stream: TcpStream, deframer: Deframer) -> io::Result<Self> {
        tune(&stream);
        Ok(FlowConn {
            peer: stream.peer_addr()?,
            local: stream.local_addr()?,
            stream,
            deframer,
            out: Box::new(OutQueue::with_capacity(4096)),
            lowat: NOTSENT_LOWAT,
            relayed: false,
            serial: NEXT_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Queues our preamble. Bytes queued in front of it can only be a relay's route header
    /// (a direct flowpath starts with the preamble): the connection is then marked relayed.
    pub fn queue_preamble(&mut self) {
        self.relayed |= !self.out.is_empty();
        self.out.push_slice(&PREAMBLE);
    }

    /// Marks a connection that a relay spliced to us (the listener's side of a relay).
    pub(crate) fn mark_relayed(&mut self) {
        self.relayed = true;
    }

    /// Drops a connection the session no longer uses while it goes on, with a reset (RST)
    /// rather than an orderly close: the peer must not take it for our process exiting (see
    /// "A peer that exited" in [`crate::proto`]).
    pub(crate) fn abandon(self) {
        let _ = SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
    }

    /// Queues a frame.
    pub fn queue(&mut self, frame: &Frame) {
        self.out.push_frame(frame);
    }

    /// Writes everything queued.
    pub async fn flush(&mut self) -> io::Result<()> {
        while !self.out.is_empty() {
            if self.stream.write_buf(&mut self.out).await? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// Reads until one whole frame is available.
    pub async fn read_frame(&mut self) -> Result<Frame, ConnError> {
        loop {
            if let Some(f) = self.deframer.next_frame()? {
                return Ok(f);
            }
            let n = self
                .stream
                .read_buf(self.deframer.buffer(64 * 1024))
                .await?;
            if n == 0 {
                return Err(ConnError::Closed);
            }
        }
    }

    /// Keeps the kernel's unsent queue near `secs` worth of the path's delivery `rate` (bytes
    /// per second), between 32 KiB and [`NOTSENT_LOWAT`], so that a slow path does not hoard
    /// bytes a faster one could deliver sooner. Changes the socket only on a real difference.
    pub(crate) fn size_queue_for(&mut self, rate: f64, secs: f64) {
        let want = ((rate * secs) as u32).clamp(32 * 1024, NOTSENT_LOWAT);
        if want.abs_diff(self.lowat) > self.lowat / 4 {
            set_notsent_lowat(&self.stream, want);
            self.lowat = want;
        }
    }

    /// Best effort: sends an ERROR frame and closes, for refusing a peer.
    pub async fn refuse(mut self, code: crate::proto::ErrorCode, reason: impl Into<String>) {
        self.queue(&Frame::Error {
            code,
            reason: reason.into(),
        });
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = self.flush().await;
            let _ = self.stream.shutdown().await;
        })
        .await;
    }
}

/// Socket options every flowpath gets: no Nagle delay (frames are written whole), a short
/// kernel send queue, and the chosen congestion control.
fn tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    set_notsent_lowat(stream, NOTSENT_LOWAT);
    apply_congestion(stream);
}

/// The TCP congestion control for every socket, once chosen (`--congestion`); a
/// process-wide setting, like the log level.
static CONGESTION: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Uses congestion control `name` (e.g. cubic, bbr) for every TCP socket from now on, after
/// checking on a scratch socket that the system has it and lets us use it.
pub fn set_congestion(name: &str) -> io::Result<()> {
    let probe = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    set_congestion_on(&probe, name)?;
    let _ = CONGESTION.set(name.to_owned());
    Ok(())
}

/// The socket send and receive buffer size for every socket, once chosen (`msock bench -w`);
/// a process-wide setting like [`CONGESTION`].
static SOCKET_BUFFER: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Gives every TCP socket from now on `bytes` of send and receive buffer (SO_SNDBUF and
/// SO_RCVBUF; the kernel doubles it for its bookkeeping and caps it at net.core.wmem_max and
/// rmem_max).
pub fn set_socket_buffer(bytes: usize) {
    let _ = SOCKET_BUFFER.set(bytes);
}

/// Applies the chosen congestion control and socket buffer size (if any) to `stream`.
pub fn apply_congestion(stream: &TcpStream) {
    if let Some(&n) = SOCKET_BUFFER.get() {
        let s = SockRef::from(stream);
        if let Err(e) = s
            .set_send_buffer_size(n)
            .and_then(|_| s.set_recv_buffer_size(n))
        {
            tracing::debug!("socket buffer of {n} bytes not set: {e}");
        }
    }
    if let Some(name) = CONGESTION.get() {
        if let Err(e) = set_congestion_on(&SockRef::from(stream), name) {
            tracing::debug!("congestion control {name} not set: {e}");
        }
    }
}

#[cfg(target_os = "linux")]
fn set_congestion_on(socket: &Socket, name: &str) -> io::Result<()> {
    socket.set_tcp_congestion(name.as_bytes())
}

#[cfg(not(target_os = "linux"))]
fn set_congestion_on(_socket: &Socket, _name: &str) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "choosing the congestion control works on Linux only",
    ))
}

#[cfg(target_os = "linux")]
fn set_notsent_lowat(stream: &TcpStream, bytes: u32) {
    use std::os::fd::AsRawFd;
    let v = bytes as libc::c_int;
    // SAFETY: valid fd, pointer to a c_int of the given size.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            &v as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn set_notsent_lowat(_stream: &TcpStream, _bytes: u32) {}

/// Opens a TCP connection to `addr`, from `source` if given and out of network interface
/// `device` if given, within `timeout`. Binding to the device makes the packets leave through
/// it even where the routing table would pick another; where the OS refuses that (no
/// privilege), the source address alone has to do.
pub(crate) async fn connect_tcp(
    addr: SocketAddr,
    source: Option<SocketAddr>,
    device: Option<&str>,
    timeout: Option<Duration>,
) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(target_os = "linux")]
    if let Some(dev) = device {
        if let Err(e) = socket.bind_device(Some(dev.as_bytes())) {
            tracing::debug!("cannot bind to device {dev} ({e}); relying on the source address");
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = device;
    if let Some(src) = source {
        socket.bind(src)?;
    }
    let fut = socket.connect(addr);
    match timeout {
        Some(t) => tokio::time::timeout(t, fut).await.map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {}", humantime::format_duration(t)),
            )
        })?,
        None => fut.await,
    }
}

/// Binds a listening socket on `addr` (dual-stack off for IPv6, address reuse on).
pub fn bind_listener(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::STREAM, None)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    let l: std::net::TcpListener = s.into();
    tokio::net::TcpListener::from_std(l)
}

/// Options for a plain TCP connection (plain mode): no Nagle delay, TCP keepalive, and the
/// chosen congestion control.
pub(crate) fn plain_tune(stream: &TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = SockRef::from(stream).set_keepalive(true);
    apply_congestion(stream);
}
