//! The UDP control channel of server mobility. Each client session has a control socket; the
//! listener has one on its own port. When the server's address changes, each of its sessions
//! sends an authenticated RECONNECT to its client's control socket, stop-and-wait with
//! retransmission and backoff, until the client acknowledges it or attaches from anywhere.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Sleep;

use crate::proto::control::{session_id_of, MAX_CONTROL_LEN};

/// First retransmission interval of a RECONNECT; doubles up to [`MAX_RESEND`].
const FIRST_RESEND: Duration = Duration::from_millis(200);
/// Longest interval between RECONNECT retransmissions.
const MAX_RESEND: Duration = Duration::from_secs(3);

/// A received control datagram and where it came from.
pub type Datagram = (Vec<u8>, SocketAddr);

/// Session id → where its driver takes control datagrams.
pub(crate) type ControlRoutes = Arc<Mutex<HashMap<u64, mpsc::Sender<Datagram>>>>;

/// A client's control socket: any local address of the server's family, any port.
pub(crate) fn bind_client(server: SocketAddr) -> io::Result<UdpSocket> {
    let any: IpAddr = if server.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let std = std::net::UdpSocket::bind(SocketAddr::new(any, 0))?;
    std.set_nonblocking(true)?;
    UdpSocket::from_std(std)
}

/// The listener's control socket, on the same address and port as its TCP socket.
pub(crate) fn bind_server(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() {
        socket2::Domain::IPV4
    } else {
        socket2::Domain::IPV6
    };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, None)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

/// Server: reads the listener's control socket and hands each datagram to the session it
/// names (unknown ones are dropped: they are not worth an answer).
pub async fn route(socket: Arc<UdpSocket>, routes: ControlRoutes) {
    let mut buf = vec![0u8; MAX_CONTROL_LEN + 64];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Some(sid) = session_id_of(&buf[..n]) else {
            continue;
        };
        let route = routes
            .lock()
            .expect("control routes lock")
            .get(&sid)
            .cloned();
        if let Some(r) = route {
            let _ = r.try_send((buf[..n].to_vec(), from));
        }
    }
}

/// Reads one datagram from `socket` if one is waiting.
pub fn poll_recv(socket: &UdpSocket, cx: &mut Context<'_>) -> Option<Datagram> {
    let mut buf = [0u8; MAX_CONTROL_LEN + 64];
    let mut rb = tokio::io::ReadBuf::new(&mut buf);
    match socket.poll_recv_from(cx, &mut rb) {
        Poll::Ready(Ok(from)) => Some((rb.filled().to_vec(), from)),
        _ => None,
    }
}

/// A session's end of the control channel.
pub(crate) struct ControlPlane {
    /// The socket datagrams go out on (and, for a client, come in on).
    pub socket: Arc<UdpSocket>,
    /// Server: datagrams for this session, routed from the listener's shared socket.
    pub inbox: Option<mpsc::Receiver<Datagram>>,
    /// Server: the RECONNECT being delivered, if any.
    pub announce: Option<Announce>,
}

impl ControlPlane {
    /// A client's own control socket.
    pub fn client(socket: UdpSocket) -> Self {
        ControlPlane {
            socket: Arc::new(socket),
            inbox: None,
            announce: None,
        }
    }

    /// A server session's share of the listener's control socket.
    pub fn server(socket: Arc<UdpSocket>, inbox: mpsc::Receiver<Datagram>) -> Self {
        ControlPlane {
            socket,
            inbox: Some(inbox),
            announce: None,
        }
    }
}

/// Server: a RECONNECT being delivered, stop-and-wait.
pub struct Announce {
    /// The RECONNECT's sequence number (its ACK carries it).
    pub seq: u64,
    /// The address it announces.
    pub(crate) announced: SocketAddr,
    /// The client's control socket it goes to.
    pub dest: SocketAddr,
    datagram: Vec<u8>,
    interval: Duration,
    timer: Pin<Box<Sleep>>,
    /// Give up re-sending then (the session's resume timeout).
    until: tokio::time::Instant,
}

impl Announce {
    /// Starts announcing `announced` with `datagram` to `dest`, for at most `give_up_after`;
    /// the first copy goes out on the first poll.
    pub fn new(
        seq: u64,
        datagram: Vec<u8>,
        announced: SocketAddr,
        dest: SocketAddr,
        give_up_after: Duration,
    ) -> Self {
        Announce {
            seq,
            announced,
            dest,
            datagram,
            interval: FIRST_RESEND,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            until: super::sys::deadline_after(std::time::Instant::now(), give_up_after),
        }
    }

    /// True once it has been re-sent for as long as it may be.
    pub fn expired(&self) -> bool {
        tokio::time::Instant::now() >= self.until
    }

    /// The network changed (e.g. the route to the client is back): send again now and
    /// restart the backoff.
    pub(crate) fn send_now(&mut self) {
        self.interval = FIRST_RESEND;
        self.timer.as_mut().reset(tokio::time::Instant::now());
    }

    /// Sends (again) when due; true if a copy went out.
    pub(crate) fn poll_send(&mut self, socket: &UdpSocket, cx: &mut Context<'_>) -> bool {
        if self.timer.as_mut().poll(cx).is_pending() {
            return false;
        }
        if let Err(e) = socket.try_send_to(&self.datagram, self.dest) {
            tracing::debug!("RECONNECT to {} not sent: {e}", self.dest);
        }
        self.timer.as_mut().reset(super::sys::deadline_after(
            std::time::Instant::now(),
            self.interval,
        ));
        self.interval = (self.interval * 2).min(MAX_RESEND);
        true
    }
}
