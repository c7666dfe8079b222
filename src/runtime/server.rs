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
use tokio::sync::mpsc::error::TrySendError;

use super::authorized::{AuthorizedKeys, Verdict};
use super::client::{resolve, ConnectError, Family};
use super::conn::{bind_listener, FlowConn};
use super::control::{self, ControlPlane, ControlRoutes};
use super::driver::{AttachRequest, ServerSide, Side};
use super::events::Events;
use super::listener::{accept_loop, DetectPolicy, Incoming, Pending, Routes};
use super::{netwatch, AppSink, AppSource, Driver};
use crate::proto::handshake::fingerprint;
use crate::proto::{Config, Frame, PathId, ServerHandshake, Service, Session, SessionError};

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
    /// `--authorized-keys`: only clients whose key is listed are admitted (None: anyone).
    pub authorized: Option<Arc<AuthorizedKeys>>,
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
    /// The connections being classified now, on every socket of this listener.
    pending: Pending,
    /// Address and link changes, watched once for every session (one netlink socket and
    /// buffer per listener, not per session).
    netwatch: NetFanout,
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
    /// The client's key is not in `--authorized-keys` (or that file cannot be read); the
    /// client was told which key to have added.
    #[error("refused client {peer} key {key} ({why})")]
    KeyRefused {
        /// The client.
        peer: SocketAddr,
        /// Its key's fingerprint.
        key: String,
        /// "not in FILE", or why the file cannot be read.
        why: String,
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
            routes: Arc::new(Mutex::new(HashMap::new())),
            control_routes: Arc::new(Mutex::new(HashMap::new())),
            control: bind_control(listeners),
            pending: Pending::new(config.detect.max_pending),
            netwatch: NetFanout::start(),
            config,
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
        tokio::spawn(accept_loop(
            listener,
            policy,
            routes,
            self.pending.clone(),
            tx,
        ));
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
        super::listener::inject(stream, peer, policy, routes, &self.pending, tx);
    }

    /// Accepts the session `hello` opens on `conn`: answers WELCOME, and for an encrypted
    /// session waits for the client's key (HELLO(finish)) and checks it against
    /// `--authorized-keys`; then registers the session for later flowpaths and control
    /// datagrams. A HELLO that cannot be accepted, or a refused key, is answered with an ERROR.
    pub async fn accept(
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
        let peer = conn.peer;
        let refuse = |mut conn: FlowConn, error: SessionError| {
            if let Some((code, reason)) = error.wire() {
                conn.queue_preamble();
                tokio::spawn(conn.refuse(code, reason));
            }
            Refusal::Session { peer, error }
        };
        let (open, welcome) = match ServerHandshake::accept(config, hello, &mut rng, taken) {
            Ok(x) => x,
            Err(error) => return Err(refuse(conn, error)),
        };
        conn.queue_preamble();
        conn.queue(&welcome);
        let finish = if open.awaits_finish() {
            Some(
                read_finish(&mut conn)
                    .await
                    .map_err(|error| Refusal::Session { peer, error })?,
            )
        } else {
            None
        };
        let mut session = match open.finish_on(finish.as_ref(), &mut conn.deframer, epoch.elapsed())
        {
            Ok(s) => s,
            // The WELCOME is out: the client has no more use for a clear ERROR.
            Err(error) => return Err(Refusal::Session { peer, error }),
        };
        if let Some(keys) = &self.config.authorized {
            let key = session.peer_static().map(|k| fingerprint(k));
            let why = match key.as_deref().map(|k| keys.check(k)) {
                Some(Verdict::Admitted) => None,
                Some(Verdict::NotListed) => Some(format!("not in {}", keys.path().display())),
                Some(Verdict::Unreadable(why)) => Some(why),
                None => Some("an unencrypted session has no client key".to_owned()),
            };
            let key = key.unwrap_or_else(|| "(none)".to_owned());
            if let Some(why) = why {
                let refusal = Refusal::KeyRefused { peer, key, why };
                tracing::warn!("{refusal}");
                session.refuse_peer_key();
                tokio::spawn(tell_and_drain(session, conn));
                return Err(refusal);
            }
        }
        let id = session.id();
        tracing::info!(
            "session {id:016x} open ({}, {}): {} -> {}",
            session.service(),
            match session.peer_static() {
                Some(k) => format!("encrypted, client key {}", fingerprint(k)),
                None => "NOT encrypted: --no-encrypt".to_owned(),
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

/// How long a listener waits for an encrypted client's key after its WELCOME.
const FINISH_WAIT: Duration = Duration::from_secs(10);

/// Sends WELCOME and reads the client's next frame (its HELLO(finish), or an ERROR).
async fn read_finish(conn: &mut FlowConn) -> Result<Frame, SessionError> {
    let left =
        |why: &str| SessionError::Handshake(format!("the client {why} before sending its key"));
    if conn.flush().await.is_err() {
        return Err(left("left"));
    }
    match tokio::time::timeout(FINISH_WAIT, conn.read_frame()).await {
        Ok(Ok(f)) => Ok(f),
        Ok(Err(super::conn::ConnError::Deframe(e))) => Err(SessionError::Protocol(e.to_string())),
        Ok(Err(_)) => Err(left("left (it may have refused our key)")),
        Err(_) => Err(left(&format!(
            "sent nothing for {}",
            humantime::format_duration(FINISH_WAIT)
        ))),
    }
}

/// Sends the session's ERROR (a refused key), then reads until the client closes, so that
/// closing with its unread bytes does not reset the connection before it read the ERROR.
async fn tell_and_drain(mut session: Session, mut conn: FlowConn) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        session.poll_transmit(PathId(0), Duration::ZERO, &mut conn.out, 64 << 10);
        if conn.flush().await.is_ok() {
            while conn.read_frame().await.is_ok() {}
        }
    })
    .await;
}

/// An accepted session, WELCOME sent or queued, not yet driven.
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

    /// The session's first flowpath came through a relay: [`Accepted::peer`] is then the
    /// relay's address, not the client's.
    pub fn relayed(&self) -> bool {
        self.conn.relayed
    }

    /// The service the session is for.
    pub fn service(&self) -> Service {
        self.session.service()
    }

    /// The fingerprint of the client's key, authenticated by the handshake (and admitted by
    /// `--authorized-keys` if given); None for an unencrypted session (`--no-encrypt`).
    pub fn peer_key(&self) -> Option<String> {
        self.session.peer_static().map(|k| fingerprint(k))
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
        driver.set_netwatch(self.guard.server.netwatch.subscribe());
        if let Some(c) = self.control {
            driver.set_control(c);
        }
        (driver, self.guard)
    }
}

/// One watcher of the machine's addresses and links, its signals handed to every session.
#[derive(Clone, Default)]
struct NetFanout(Arc<Mutex<Vec<mpsc::Sender<()>>>>);

impl NetFanout {
    /// Starts the watcher (a task, for the life of the process).
    fn start() -> Self {
        let me = NetFanout::default();
        let subs = me.0.clone();
        let mut changes = netwatch::spawn();
        tokio::spawn(async move {
            while changes.recv().await.is_some() {
                // A session with a signal still pending needs no second one.
                subs.lock()
                    .expect("netwatch lock")
                    .retain(|tx| !matches!(tx.try_send(()), Err(TrySendError::Closed(_))));
            }
        });
        me
    }

    /// A new session's signals (coalesced, as [`netwatch::spawn`] gives them).
    fn subscribe(&self) -> mpsc::Receiver<()> {
        let (tx, rx) = mpsc::channel(1);
        let mut subs = self.0.lock().expect("netwatch lock");
        subs.retain(|s| !s.is_closed());
        subs.push(tx);
        rx
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
