//! Server side: a listener's sockets, its routing tables (flowpath attaches and resumes, control
//! datagrams) and the acceptance of sessions: [`Server::accept`] answers a HELLO(open),
//! registers the session and hands back an [`Accepted`] that becomes its driver. Connections
//! are classified by [`super::listener`]; what each service does with them is decided by the
//! dispatch table in [`super::services`].

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::client::{resolve, ConnectError, Family};
use super::conn::{bind_listener, FlowConn};
use super::control::{self, ControlPlane, ControlRoutes};
use super::driver::{AttachRequest, ServerSide, Side};
use super::events::Events;
use super::listener::{accept_loop, DetectPolicy, Incoming, Routes};
use super::{netwatch, AppSink, AppSource, Driver};
use crate::proto::{Config, Frame, PathId, Service, Session, SessionError};

/// What a listener is set up with.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The configuration every accepted session starts from (with the listener's key when
    /// encrypting).
    pub session: Config,
    /// How long a session waits for its client to come back after losing every flowpath.
    pub resume_timeout: Duration,
    /// How connections are told apart (plain TCP, raw services' magics).
    pub detect: DetectPolicy,
    /// Where session and path events go.
    pub events: Events,
}

/// One listener: its settings, its control sockets and the routing tables every session it
/// accepted is registered in (until its [`Registration`] is dropped).
pub struct Server {
    config: ServerConfig,
    /// Session id → its driver, for attaching flowpaths.
    routes: Routes,
    /// Session id → its driver, for control datagrams.
    control_routes: ControlRoutes,
    /// The control sockets (one per address family), on the listening port.
    control: Vec<Arc<UdpSocket>>,
}

/// Why a client was turned away before any session began (it is told; the listener goes on
/// waiting for the next client).
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The session could not be accepted (wrong encryption settings, a bad HELLO): the
    /// client's settings or the client.
    #[error("refused a session from {peer}: {error}")]
    Session {
        /// The client.
        peer: SocketAddr,
        /// What was wrong.
        error: SessionError,
    },
    /// The listener does not offer the service the client asked for.
    #[error("refused {peer}: {why}")]
    NotOffered {
        /// The client.
        peer: SocketAddr,
        /// What the client was told.
        why: String,
    },
}

impl Server {
    /// A listener on `listeners`, with one control socket per address family.
    pub fn new(listeners: &[TcpListener], config: ServerConfig) -> Arc<Self> {
        let server = Server {
            config,
            routes: Arc::new(Mutex::new(HashMap::new())),
            control_routes: Arc::new(Mutex::new(HashMap::new())),
            control: bind_control(listeners),
        };
        for socket in server.control.iter() {
            tokio::spawn(control::route(
                socket.clone(),
                server.control_routes.clone(),
            ));
        }
        Arc::new(server)
    }

    /// Accepts connections on `listener` forever (in a task): attaches go to their session,
    /// everything else to `tx`.
    pub fn listen(self: &Arc<Self>, listener: TcpListener, tx: mpsc::Sender<Incoming>) {
        let (policy, routes) = (self.config.detect.clone(), self.routes.clone());
        tokio::spawn(accept_loop(listener, policy, routes, tx));
    }

    /// Treats `stream` (a connection we made, such as a relay's spliced flowpath) exactly
    /// like an accepted one from `peer`.
    pub fn inject(
        self: &Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        tx: mpsc::Sender<Incoming>,
    ) {
        let (policy, routes) = (self.config.detect.clone(), self.routes.clone());
        super::listener::inject(stream, peer, policy, routes, tx);
    }

    /// Accepts the session `hello` opens on `conn`: answers WELCOME (queued on the
    /// connection) and registers the session for later flowpaths and control datagrams. A
    /// HELLO that cannot be accepted is answered with an ERROR.
    pub fn accept(
        self: &Arc<Self>,
        mut conn: FlowConn,
        hello: &Frame,
    ) -> Result<Accepted, Refusal> {
        let epoch = Instant::now();
        let mut rng = StdRng::from_entropy();
        let routes = &self.routes;
        let taken = |id| routes.lock().expect("routes lock").contains_key(&id);
        let socket = self.control.iter().find(|s| {
            s.local_addr()
                .is_ok_and(|a| a.is_ipv4() == conn.local.is_ipv4())
        });
        let mut config = self.config.session.clone();
        config.control_port = socket.map_or(0, |_| conn.local.port());
        let rx = &mut conn.deframer;
        let (session, welcome) =
            match Session::accept_on(config, hello, rx, &mut rng, Duration::ZERO, taken) {
                Ok(x) => x,
                Err(error) => {
                    let peer = conn.peer;
                    if let Some((code, reason)) = error.wire() {
                        conn.queue_preamble();
                        tokio::spawn(conn.refuse(code, reason));
                    }
                    return Err(Refusal::Session { peer, error });
                }
            };
        let id = session.id();
        tracing::info!(
            "session {id:016x} open ({}, {}): {} -> {}",
            session.service(),
            if session.is_encrypted() {
                "encrypted"
            } else {
                "NOT encrypted: --no-encrypt"
            },
            conn.peer,
            conn.local
        );
        self.config.events.emit(
            "session_open",
            serde_json::json!({"session": format!("{id:016x}"),
                "service": session.service().to_string(),
                "local": conn.local.to_string(), "remote": conn.peer.to_string()}),
        );
        conn.queue_preamble();
        conn.queue(&welcome);
        let (atx, attach_rx) = mpsc::channel(16);
        routes.lock().expect("routes lock").insert(id, atx);
        let control = socket.map(|socket| {
            let (ctx, crx) = mpsc::channel(16);
            self.control_routes
                .lock()
                .expect("control routes lock")
                .insert(id, ctx);
            ControlPlane::server(socket.clone(), crx)
        });
        Ok(Accepted {
            session,
            conn,
            epoch,
            attach_rx,
            control,
            guard: Registration {
                id,
                server: self.clone(),
            },
        })
    }
}

/// An accepted session, WELCOME queued, not yet driven.
pub struct Accepted {
    session: Session,
    conn: FlowConn,
    epoch: Instant,
    attach_rx: mpsc::Receiver<AttachRequest>,
    control: Option<ControlPlane>,
    guard: Registration,
}

/// Removes a session from the listener's routing tables when dropped.
pub struct Registration {
    id: u64,
    server: Arc<Server>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.server
            .routes
            .lock()
            .expect("routes lock")
            .remove(&self.id);
        self.server
            .control_routes
            .lock()
            .expect("control routes lock")
            .remove(&self.id);
    }
}

impl Accepted {
    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.conn.peer
    }

    /// The service the session is for.
    pub fn service(&self) -> Service {
        self.session.service()
    }

    /// The session id.
    pub fn session_id(&self) -> u64 {
        self.session.id()
    }

    /// The session's driver, moving bytes from `input` and to `output`; keep the
    /// [`Registration`] alive while the driver runs.
    pub fn into_driver<I: AppSource, O: AppSink>(
        self,
        input: Option<I>,
        output: Option<O>,
    ) -> (Driver<I, O>, Registration) {
        let side = Side::Server(ServerSide::new(self.attach_rx));
        let events = self.guard.server.config.events.clone();
        let mut driver = Driver::new(self.session, self.epoch, side, events, input, output);
        driver.add_path(PathId(0), self.conn);
        driver.set_resume_timeout(self.guard.server.config.resume_timeout);
        driver.set_netwatch(netwatch::spawn());
        if let Some(c) = self.control {
            driver.set_control(c);
        }
        (driver, self.guard)
    }
}

/// One UDP control socket per address family the listener uses, on the listening port and
/// the family's wildcard address (so that it survives the listener's own address changes).
fn bind_control(listeners: &[TcpListener]) -> Vec<Arc<UdpSocket>> {
    let mut out: Vec<Arc<UdpSocket>> = Vec::new();
    for l in listeners {
        let Ok(a) = l.local_addr() else { continue };
        if out
            .iter()
            .any(|s| s.local_addr().is_ok_and(|s| s.is_ipv4() == a.is_ipv4()))
        {
            continue;
        }
        let any: IpAddr = if a.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        match control::bind_server(SocketAddr::new(any, a.port())) {
            Ok(s) => out.push(Arc::new(s)),
            Err(e) => tracing::warn!(
                "no UDP control socket on port {} ({e}): clients will not hear of our moves",
                a.port()
            ),
        }
    }
    out
}

/// Why a listener could not start listening.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The listening address did not resolve (user or DNS).
    #[error(transparent)]
    Resolve(#[from] ConnectError),
    /// The address cannot be listened on (in use, not ours): the user's or the system's.
    #[error("cannot listen on {0}: {1}{hint}", hint = if .1.kind() == io::ErrorKind::AddrInUse {
        " (another program uses this port; pick another)"
    } else {
        ""
    })]
    Bind(SocketAddr, io::Error),
}

/// Binds every listening socket `[host:]port` asks for (without a host, the wildcard
/// address of each allowed family). Fails only if none could be bound.
pub async fn bind_all(
    host: Option<&str>,
    port: u16,
    fam: Family,
) -> Result<Vec<TcpListener>, BindError> {
    let addrs: Vec<SocketAddr> = match host {
        Some(h) => resolve(&format!("{}:{port}", bracket(h)), fam).await?,
        None => {
            let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
            let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
            match fam {
                Family::V4 => vec![v4],
                Family::V6 => vec![v6],
                Family::Any => vec![v4, v6],
            }
        }
    };
    let mut out = Vec::new();
    let mut first_err = None;
    let mut port = port;
    for (i, mut a) in addrs.into_iter().enumerate() {
        // With port 0, every socket shares the port the first one got.
        a.set_port(port);
        match bind_listener(a) {
            Ok(l) => {
                if i == 0 {
                    port = l.local_addr().map_err(|e| BindError::Bind(a, e))?.port();
                }
                out.push(l);
            }
            Err(e) => {
                tracing::debug!("cannot listen on {a}: {e}");
                first_err.get_or_insert((a, e));
            }
        }
    }
    match (out.is_empty(), first_err) {
        (true, Some((a, e))) => Err(BindError::Bind(a, e)),
        _ => Ok(out),
    }
}

fn bracket(h: &str) -> String {
    if h.contains(':') {
        format!("[{h}]")
    } else {
        h.to_owned()
    }
}
