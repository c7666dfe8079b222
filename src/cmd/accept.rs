//! The server side every session service shares: accept a HELLO(open), register the session
//! so that its later flowpaths and control datagrams find it, and build its driver.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::Failure;
use crate::cli::StreamArgs;
use crate::proto::{Config, Frame, PathId, Session};
use crate::runtime::control::{self, ControlPlane, ControlRoutes};
use crate::runtime::{
    events, netwatch, AppSink, AppSource, Driver, FlowConn, Routes, ServerSide, Side,
};

/// What every session of a listener shares.
pub struct Shared {
    /// Session id → its driver, for attaching flowpaths.
    pub routes: Routes,
    /// Session id → its driver, for control datagrams.
    pub control_routes: ControlRoutes,
    /// The control sockets (one per address family), on the listening port.
    pub control: Vec<Arc<UdpSocket>>,
    /// The session settings from the command line.
    pub stream: StreamArgs,
    /// The session configuration every accepted session starts from (with the listener's
    /// key when encrypting).
    pub config: Config,
}

impl Shared {
    /// Shared state for a listener on `listeners`, with one control socket per family.
    pub fn new(
        listeners: &[tokio::net::TcpListener],
        stream: StreamArgs,
        config: Config,
    ) -> Arc<Self> {
        let shared = Shared {
            routes: Arc::new(Mutex::new(HashMap::new())),
            control_routes: Arc::new(Mutex::new(HashMap::new())),
            control: bind_control(listeners),
            stream,
            config,
        };
        for socket in shared.control.iter() {
            tokio::spawn(control::route(
                socket.clone(),
                shared.control_routes.clone(),
            ));
        }
        Arc::new(shared)
    }
}

/// An accepted session, WELCOME queued, not yet driven.
pub struct Accepted {
    session: Session,
    conn: FlowConn,
    epoch: Instant,
    attach_rx: mpsc::Receiver<crate::runtime::AttachRequest>,
    control: Option<ControlPlane>,
    guard: Registration,
}

/// Removes a session from the listener's routing tables when dropped.
pub struct Registration {
    id: u64,
    shared: Arc<Shared>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared
            .routes
            .lock()
            .expect("routes lock")
            .remove(&self.id);
        self.shared
            .control_routes
            .lock()
            .expect("control routes lock")
            .remove(&self.id);
    }
}

/// Accepts the session `hello` opens on `conn`: answers WELCOME (queued on the connection)
/// and registers the session for later flowpaths and control datagrams.
pub fn accept(
    mut conn: FlowConn,
    hello: &Frame,
    shared: &Arc<Shared>,
) -> Result<Accepted, Failure> {
    let epoch = Instant::now();
    let mut rng = StdRng::from_entropy();
    let routes = &shared.routes;
    let taken = |id| routes.lock().expect("routes lock").contains_key(&id);
    let socket = shared.control.iter().find(|s| {
        s.local_addr()
            .is_ok_and(|a| a.is_ipv4() == conn.local.is_ipv4())
    });
    let mut config = shared.config.clone();
    config.control_port = socket.map_or(0, |_| conn.local.port());
    let rx = &mut conn.deframer;
    let (session, welcome) =
        match Session::accept_on(config, hello, rx, &mut rng, Duration::ZERO, taken) {
            Ok(x) => x,
            Err(e) => {
                let peer = conn.peer;
                if let Some((code, reason)) = e.wire() {
                    conn.queue_preamble();
                    tokio::spawn(conn.refuse(code, reason));
                }
                return Err(Failure::not_started(format!(
                    "refused a session from {peer}: {e}"
                )));
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
    events::emit(
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
        shared
            .control_routes
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
            shared: shared.clone(),
        },
    })
}

impl Accepted {
    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.conn.peer
    }

    /// The session's driver, moving bytes from `input` and to `output`; keep the
    /// [`Registration`] alive while the driver runs.
    pub fn into_driver<I: AppSource, O: AppSink>(
        self,
        input: Option<I>,
        output: Option<O>,
    ) -> (Driver<I, O>, Registration) {
        let side = Side::Server(ServerSide::new(self.attach_rx));
        let events = crate::runtime::events::global();
        let mut driver = Driver::new(self.session, self.epoch, side, events, input, output);
        driver.add_path(PathId(0), self.conn);
        driver.set_resume_timeout(self.guard.shared.stream.resume_timeout);
        driver.set_netwatch(netwatch::spawn());
        if let Some(c) = self.control {
            driver.set_control(c);
        }
        (driver, self.guard)
    }
}

/// One UDP control socket per address family the listener uses, on the listening port and
/// the family's wildcard address (so that it survives the listener's own address changes).
fn bind_control(listeners: &[tokio::net::TcpListener]) -> Vec<Arc<UdpSocket>> {
    let mut out: Vec<Arc<UdpSocket>> = Vec::new();
    for l in listeners {
        let Ok(a) = l.local_addr() else { continue };
        if out
            .iter()
            .any(|s| s.local_addr().is_ok_and(|s| s.is_ipv4() == a.is_ipv4()))
        {
            continue;
        }
        let any: std::net::IpAddr = if a.is_ipv4() {
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
