//! Client side: everything a session command's client needs before its driver runs. Resolve
//! the destination (or ask the dial strategy for its routes), pick the first flowpath's
//! interface by the policy, open the session (the HELLO(open) exchange), check the server's
//! key against the pinned one, and set the driver up to reconnect, follow the policy and hear
//! the server's moves ([`dial`]).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::conn::{connect_tcp, ConnError, FlowConn};
use super::control::ControlPlane;
use super::driver::{ClientSide, Side};
use super::events::Events;
use super::keys::{check_peer, KeyError, PinCheck};
use super::policy::{Binding, Policy};
use super::reconnect::{DialStrategy, ReconnectPolicy};
use super::{ifaces, netwatch, AppSink, AppSource, Driver};
use crate::proto::handshake::fingerprint;
use crate::proto::{
    ClientHandshake, Config, DeframeError, Deframer, PathId, Session, SessionError,
};

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
    /// (The command adds what to do: it knows its flags.)
    #[error("{0} does not speak msock ({1})")]
    NotMsock(SocketAddr, String),
    /// The server speaks msock but refused or broke the handshake.
    #[error("msock handshake with {0} failed: {1}")]
    Handshake(SocketAddr, SessionError),
}

/// Why a client session could not be set up, and whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// Resolving, connecting or the handshake failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The interface policy leaves no interface to use (the user's flags or the machine).
    #[error(
        "no usable interface for the chosen interfaces policy{}; this machine has: {} (see msock connect --list-ifaces)",
        missing_text(.missing),
        if .present.is_empty() { "none".to_owned() } else { .present.join(", ") }
    )]
    NoInterface {
        /// Interfaces the policy names (`--iface`, `--backup`) that this machine does not have.
        missing: Vec<String>,
        /// The interfaces it has, with their kind and state (`eth0 (wired, up)`).
        present: Vec<String>,
    },
    /// The server's key is not the one expected (or could not be checked).
    #[error(transparent)]
    PeerKey(#[from] KeyError),
}

/// What a client session is set up with.
#[derive(Clone)]
pub struct ClientConfig {
    /// The destination as the user gave it (HOST:PORT, or whatever the dial strategy reads).
    pub dest: String,
    /// Address family restriction.
    pub family: Family,
    /// Local address to connect from, if the user pinned one.
    pub source: Option<IpAddr>,
    /// How long one connection attempt may take.
    pub wait: Duration,
    /// Wait this long between failed reconnect attempts.
    pub retry_interval: Duration,
    /// The server key fingerprint the user requires (else the pinned one, or pin on first
    /// use).
    pub peer_key: Option<String>,
    /// Which interfaces the flowpaths use.
    pub policy: Policy,
    /// The session's settings (service, encryption, timeouts).
    pub session: Config,
    /// How long the session waits to get a flowpath back after losing every one.
    pub resume_timeout: Duration,
    /// Where session and path events go.
    pub events: Events,
    /// How to reach the server; None: resolve `dest` and connect directly.
    pub(crate) strategy: Option<Arc<dyn DialStrategy>>,
}

/// One way to reach a server: addresses to connect to and the bytes to send before the msock
/// preamble (e.g. a relay's ROUTE header; empty for a direct connection).
#[derive(Debug, Clone)]
pub struct Hop {
    /// Where to connect.
    pub addrs: Vec<SocketAddr>,
    /// Sent first (empty: direct).
    pub prefix: Vec<u8>,
    /// Per-address connect timeout.
    pub timeout: Duration,
}

impl DialError {
    /// [`DialError::NoInterface`] for `policy` on a machine with the interfaces `found`.
    fn no_interface(policy: &Policy, found: &[ifaces::Iface]) -> Self {
        let missing = (policy.only.iter().chain(&policy.backup))
            .filter(|n| !found.iter().any(|i| &i.name == *n))
            .cloned()
            .collect();
        let present = found
            .iter()
            .map(|i| {
                let state = match i.up {
                    Some(true) => ", up",
                    Some(false) => ", down",
                    None => "",
                };
                format!("{} ({}{state})", i.name, i.kind)
            })
            .collect();
        DialError::NoInterface { missing, present }
    }
}

/// ": no interface NAME here" for the names a policy wants that do not exist.
fn missing_text(missing: &[String]) -> String {
    match missing {
        [] => String::new(),
        [one] => format!(": there is no interface {one} here"),
        many => format!(": there are no interfaces {} here", many.join(", ")),
    }
}

/// Opens a session as `cfg` says and returns its driver, ready to run, moving bytes from
/// `input` and to `output`. Nothing of ours is sent on the session before the server's key
/// has been checked.
pub async fn dial<I: AppSource, O: AppSink>(
    cfg: ClientConfig,
    input: Option<I>,
    output: Option<O>,
) -> Result<Driver<I, O>, DialError> {
    let hops = match &cfg.strategy {
        Some(s) => s.plan(cfg.wait).await?,
        None => vec![Hop {
            addrs: resolve(&cfg.dest, cfg.family).await?,
            prefix: Vec::new(),
            timeout: cfg.wait,
        }],
    };
    let Some(first_addr) = hops.first().and_then(|h| h.addrs.first()) else {
        return Err(ConnectError::NoAddress(cfg.dest.clone(), "usable").into());
    };
    // With a policy, the first flowpath leaves from the interface it ranks first.
    let first: Option<Binding> = if cfg.policy.follows_routing() {
        None
    } else {
        let found = ifaces::discover(&cfg.policy.kinds);
        let plan = cfg.policy.plan(&found, *first_addr);
        Some(
            plan.into_iter()
                .next()
                .ok_or_else(|| DialError::no_interface(&cfg.policy, &found))?,
        )
    };
    let (source, device) = match &first {
        Some(b) => (Some(SocketAddr::new(b.addr, 0)), Some(b.iface.as_str())),
        None => (cfg.source.map(|ip| SocketAddr::new(ip, 0)), None),
    };
    let (session, conn, epoch, control) =
        open_session_over(&hops, source, device, cfg.session.clone()).await?;
    cfg.events.emit(
        "session_open",
        serde_json::json!({"session": format!("{:016x}", session.id()),
            "local": conn.local.to_string(), "remote": conn.peer.to_string()}),
    );
    // Nothing of ours has been sent yet: check who answered before anything is.
    match session.peer_static() {
        Some(key) => {
            // Through a relay the address is the relay's, not the listener's.
            let addr = cfg.strategy.is_none().then(|| conn.peer.ip());
            let how: PinCheck = check_peer(&cfg.dest, addr, key, cfg.peer_key.as_deref())?;
            tracing::info!(
                "encrypted session (Noise XX, AES-128-GCM); listener key {} ({how})",
                fingerprint(key)
            );
        }
        None => tracing::info!("session NOT encrypted (--no-encrypt)"),
    }
    let server = conn.peer;
    let reconnect = ReconnectPolicy {
        dest: cfg.dest,
        family: cfg.family,
        source: cfg.source,
        attempt_timeout: cfg.wait,
        retry_interval: cfg.retry_interval,
        strategy: cfg.strategy,
    };
    let side = Side::Client(Box::new(ClientSide::new(
        reconnect, cfg.policy, server, first,
    )));
    let mut driver = Driver::new(session, epoch, side, cfg.events, input, output);
    driver.add_path(PathId(0), conn);
    driver.set_resume_timeout(cfg.resume_timeout);
    driver.set_netwatch(netwatch::spawn());
    if let Some(socket) = control {
        driver.set_control(ControlPlane::client(socket));
    }
    Ok(driver)
}

/// Opens a session along the first hop that works. A hop whose connection fails (or whose
/// far end does not speak msock) gives way to the next; a refusal by the server does not.
#[allow(clippy::type_complexity)]
async fn open_session_over(
    hops: &[Hop],
    source: Option<SocketAddr>,
    device: Option<&str>,
    config: Config,
) -> Result<(Session, FlowConn, Instant, Option<tokio::net::UdpSocket>), ConnectError> {
    let mut last = None;
    for (i, hop) in hops.iter().enumerate() {
        let more = i + 1 < hops.len();
        let r = open_session_via(
            &hop.addrs,
            &hop.prefix,
            source,
            device,
            Some(hop.timeout),
            config.clone(),
        )
        .await;
        match r {
            Err(e @ (ConnectError::Connect(..) | ConnectError::NotMsock(..))) if more => {
                tracing::info!("direct connection failed ({e}); going through the relay");
                last = Some(e);
            }
            r => {
                if r.is_ok() && !hop.prefix.is_empty() {
                    tracing::info!("session goes through the relay at {}", hop.addrs[0]);
                }
                return r;
            }
        }
    }
    Err(last.unwrap_or_else(|| ConnectError::NoAddress(String::new(), "usable")))
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

/// Opens an msock session on a new connection to one of `addrs`, sending `prefix` first (a
/// relay's ROUTE header; then there is no control socket: the server's datagrams could not
/// reach us through the relay). Returns the session (path 0 active), its flowpath
/// connection, the session's clock epoch and its control socket (for the server's RECONNECT
/// datagrams; None if there is none).
#[allow(clippy::type_complexity)]
async fn open_session_via(
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
    Ok((session, conn, epoch, control))
}
