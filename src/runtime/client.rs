//! Client side: resolve the destination, open the first flowpath, run the HELLO(open) exchange.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::conn::{connect_tcp, ConnError, FlowConn};
use crate::proto::{ClientHandshake, Config, DeframeError, Deframer, Session, SessionError};

/// Which address families a name may resolve to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// IPv4 or IPv6, in the resolver's order.
    #[default]
    Any,
    /// IPv4 only (`-4`).
    V4,
    /// IPv6 only (`-6`).
    V6,
}

impl Family {
    /// True if `addr` is allowed.
    pub fn allows(self, addr: &SocketAddr) -> bool {
        match self {
            Family::Any => true,
            Family::V4 => addr.is_ipv4(),
            Family::V6 => addr.is_ipv6(),
        }
    }
}

/// Why a connection attempt failed, and whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The name did not resolve (user or DNS).
    #[error("cannot resolve {0}: {1}")]
    Resolve(String, String),
    /// No address of the wanted family.
    #[error("{0} has no {1} address")]
    NoAddress(String, &'static str),
    /// The source address (-s) cannot reach any address of the destination (user).
    #[error("source address {src} and destination {dst} are not of the same address family (IPv4/IPv6)", src = .0.ip(), dst = .1)]
    SourceFamily(SocketAddr, SocketAddr),
    /// TCP connect failed (refused, unreachable, timed out): the network or the peer.
    #[error("cannot connect to {0}: {1}")]
    Connect(SocketAddr, io::Error),
    /// The server answered, but not in msock.
    #[error("{0} does not speak msock ({1}); to talk to a plain TCP server use --plain")]
    NotMsock(SocketAddr, String),
    /// The server speaks msock but refused or broke the handshake.
    #[error("msock handshake with {0} failed: {1}")]
    Handshake(SocketAddr, SessionError),
}

/// Resolves `HOST:PORT` (also `[v6]:PORT`) to the addresses of `family`.
pub async fn resolve(dest: &str, family: Family) -> Result<Vec<SocketAddr>, ConnectError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(dest)
        .await
        .map_err(|e| ConnectError::Resolve(dest.to_owned(), e.to_string()))?
        .filter(|a| family.allows(a))
        .collect();
    if addrs.is_empty() {
        let fam = match family {
            Family::V6 => "IPv6",
            _ => "IPv4",
        };
        return Err(ConnectError::NoAddress(dest.to_owned(), fam));
    }
    Ok(addrs)
}

/// Connects to the first address that accepts a TCP connection.
pub async fn connect_any(
    addrs: &[SocketAddr],
    source: Option<SocketAddr>,
    device: Option<&str>,
    timeout: Option<Duration>,
) -> Result<tokio::net::TcpStream, ConnectError> {
    let mut last = None;
    // A source address fixes the family: skip destinations it cannot reach.
    let usable = addrs
        .iter()
        .filter(|a| source.is_none_or(|s| s.is_ipv4() == a.is_ipv4()));
    for &addr in usable {
        match connect_tcp(addr, source, device, timeout).await {
            Ok(s) => return Ok(s),
            Err(e) => {
                tracing::info!("connect to {addr} failed: {e}");
                last = Some(ConnectError::Connect(addr, e));
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        ConnectError::SourceFamily(
            source.expect("only a source filters addresses out"),
            addrs[0],
        )
    }))
}

/// Opens an msock session on a new connection to one of `addrs`. Returns the session (path 0
/// active), its flowpath connection, the session's clock epoch and its control socket (for
/// the server's RECONNECT datagrams; None if no UDP socket could be had).
#[allow(clippy::type_complexity)]
pub async fn open_session(
    addrs: &[SocketAddr],
    source: Option<SocketAddr>,
    device: Option<&str>,
    timeout: Option<Duration>,
    config: Config,
) -> Result<(Session, FlowConn, Instant, Option<tokio::net::UdpSocket>), ConnectError> {
    open_session_via(addrs, &[], source, device, timeout, config).await
}

/// [`open_session`], sending `prefix` first (a relay's ROUTE header; then there is no
/// control socket: the server's datagrams could not reach us through the relay).
#[allow(clippy::type_complexity)]
pub async fn open_session_via(
    addrs: &[SocketAddr],
    prefix: &[u8],
    source: Option<SocketAddr>,
    device: Option<&str>,
    timeout: Option<Duration>,
    mut config: Config,
) -> Result<(Session, FlowConn, Instant, Option<tokio::net::UdpSocket>), ConnectError> {
    let stream = connect_any(addrs, source, device, timeout).await?;
    let peer = stream
        .peer_addr()
        .map_err(|e| ConnectError::Connect(addrs[0], e))?;
    let mut conn =
        FlowConn::new(stream, Deframer::new()).map_err(|e| ConnectError::Connect(peer, e))?;
    conn.out.push_slice(prefix);
    let control = match super::control::bind_client(peer) {
        _ if !prefix.is_empty() => None,
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("no UDP control socket ({e}): the server cannot announce a move");
            None
        }
    };
    config.control_port = control
        .as_ref()
        .and_then(|s| s.local_addr().ok())
        .map_or(0, |a| a.port());
    let epoch = Instant::now();
    let mut rng = StdRng::from_entropy();
    let hs = ClientHandshake::new(config, &mut rng, Duration::ZERO);
    conn.queue_preamble();
    conn.queue(&hs.hello());
    conn.flush()
        .await
        .map_err(|e| ConnectError::Connect(peer, e))?;
    let wait = timeout.unwrap_or(Duration::from_secs(10));
    let reply = match tokio::time::timeout(wait, conn.read_frame()).await {
        Err(_) => {
            return Err(ConnectError::NotMsock(
                peer,
                format!("no msock reply within {}", humantime::format_duration(wait)),
            ))
        }
        Ok(Err(ConnError::Deframe(DeframeError::NotMsock))) => {
            return Err(ConnectError::NotMsock(
                peer,
                "it replied with other bytes".into(),
            ))
        }
        Ok(Err(ConnError::Closed)) => {
            return Err(ConnectError::NotMsock(
                peer,
                "it closed the connection during the handshake".into(),
            ))
        }
        Ok(Err(ConnError::Io(e))) => return Err(ConnectError::Connect(peer, e)),
        Ok(Err(ConnError::Deframe(e))) => {
            return Err(ConnectError::Handshake(
                peer,
                SessionError::Protocol(e.to_string()),
            ))
        }
        Ok(Ok(f)) => f,
    };
    let session = hs
        .handle_reply_on(reply, &mut conn.deframer, epoch.elapsed())
        .map_err(|e| ConnectError::Handshake(peer, e))?;
    tracing::info!(
        "session {:016x} open: {} -> {}",
        session.id(),
        conn.local,
        conn.peer
    );
    super::events::emit(
        "session_open",
        serde_json::json!({"session": format!("{:016x}", session.id()),
            "local": conn.local.to_string(), "remote": conn.peer.to_string()}),
    );
    Ok((session, conn, epoch, control))
}
