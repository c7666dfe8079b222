//! The session driver: one task that owns a [`Session`], its flowpath sockets, its timers and
//! the application's byte source and sink, and moves bytes between them.
//!
//! It is a hand-written future (one `poll` that tries every source of progress in turn) rather
//! than a web of tasks and locks: the session is never shared, and each wake-up does all the
//! work that is ready. What only one end of a session does is kept by its [`Side`]: a
//! [`ServerSide`] (flowpaths arrive and are verified: `server`) or a [`ClientSide`] (flowpaths
//! are opened, replaced and planned over interfaces: `client`, `multipath`). The rest lives in
//! submodules too: `paths` (flowpath sockets), `app_io` (the application side), `mobility`
//! (address changes and the control channel).

mod app_io;
mod client;
mod crypto;
mod mobility;
mod multipath;
mod paths;
mod server;

pub(crate) use client::ClientSide;
pub use server::AttachRequest;
pub(crate) use server::ServerSide;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::mpsc;
use tokio::time::Sleep;

use super::app::{AppSink, AppSource};
use super::conn::FlowConn;
use serde_json::json;

use super::control::ControlPlane;
use super::events::Events;
use super::netwatch::AddrBook;
use crate::proto::{Event, PathId, Session, SessionError};

/// Most bytes queued into a path's output buffer per `poll_transmit`.
const TRANSMIT_BUDGET: usize = 256 * 1024;
/// Size of one read from a socket.
const SOCKET_READ: usize = 256 * 1024;

/// How a driven session ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Both directions completed and were acknowledged.
    Finished,
    /// The application's output went away (e.g. broken pipe on stdout); the session was ended.
    OutputClosed,
    /// The user interrupted (Ctrl-C); the peer was told.
    Interrupted,
}

/// Why a driven session failed. Variants say whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// The protocol layer failed (peer error, protocol violation, idle timeout).
    #[error("{0}")]
    Session(#[from] SessionError),
    /// Every flowpath broke and none could be restored in time.
    #[error("connection to peer lost: {0}")]
    PathsLost(String),
    /// Reading the application's input failed (local).
    #[error("reading input: {0}")]
    Input(io::Error),
    /// Writing the application's output failed (local).
    #[error("writing output: {0}")]
    Output(io::Error),
    /// The application ended the session on purpose (see
    /// [`SourceError::Abort`](crate::runtime::app::SourceError::Abort)); the peer was told.
    #[error("{0}")]
    Aborted(String),
    /// Server: the client left before sending a single frame we accepted (it failed the
    /// encrypted handshake, e.g. with a different pre-shared key); no session took place.
    #[error("the client left before its first frame ({0})")]
    NeverHeard(String),
}

/// Running totals, for summaries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Application bytes handed to the session.
    pub sent: u64,
    /// Application bytes delivered to the output.
    pub received: u64,
}

/// A flowpath's connection, attached or (client) attaching.
struct PathConn {
    id: PathId,
    conn: FlowConn,
    /// The flowpath is attached (not still waiting for CHALLENGE or RESUMED).
    attached: bool,
    /// When a frame last arrived on it (or it was added): if it breaks, the peer has been
    /// away since then. Kept here, not asked of the session: the session may have retired
    /// the path (and its clock) before the driver sees the loss.
    heard: Instant,
    /// The peer's FIN was read while records it sent before it were still being opened on
    /// the crypto thread: the connection ends (closed by the peer) once their frames are
    /// handled, not before (they may hold the peer's last FIN_ACK, whose loss would read as
    /// the peer exiting without closing).
    eof: bool,
}

impl PathConn {
    fn new(id: PathId, conn: FlowConn, attached: bool) -> Self {
        PathConn {
            id,
            conn,
            attached,
            heard: Instant::now(),
            eof: false,
        }
    }
}

/// What only one end of a session does.
pub enum Side {
    /// The listener's end: flowpaths arrive and are verified.
    Server(ServerSide),
    /// The end that opened the session: it opens, replaces and plans the flowpaths.
    Client(Box<ClientSide>),
}

/// A path that broke: where it was, when, and when the peer was last heard on it, for the
/// "moved ... after ... away" report.
struct Lost {
    local: SocketAddr,
    peer: SocketAddr,
    at: Instant,
    heard: Instant,
}

/// Drives one session to completion. Build with [`Driver::new`], add connections, then
/// `.run().await`.
pub struct Driver<I, O> {
    session: Session,
    epoch: Instant,
    conns: Vec<PathConn>,
    /// What only our end does.
    side: Side,
    /// Where session and path events go.
    events: Events,
    /// Signals changes of the machine's addresses and links.
    netwatch: Option<mpsc::Receiver<()>>,
    /// The machine's addresses as of the last change.
    addr_book: AddrBook,
    /// The UDP control channel (RECONNECT), if there is one.
    control: Option<ControlPlane>,
    /// Paths that broke and have not come back yet.
    lost: HashMap<PathId, Lost>,
    /// Paths that came back after a loss whose peer's stream has not moved on since (the
    /// session reports that after every attach; only these are a resume's).
    came_back: std::collections::HashSet<PathId>,
    app_in: Option<I>,
    /// Input read but not yet taken by the session (it was full).
    in_chunk: Option<Bytes>,
    app_out: Option<O>,
    /// Received bytes taken from the session, not yet taken by the output.
    out_chunk: Option<Bytes>,
    /// The peer's stream has ended and all of it was handed to the output.
    out_done: bool,
    sleep: Pin<Box<Sleep>>,
    sleep_at: Option<Duration>,
    interrupt: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// How long to wait for a flowpath to come back after the last one broke.
    resume_timeout: Duration,
    /// Fires `resume_timeout` after the session lost its last flowpath; None while it has one.
    orphaned: Option<Pin<Box<Sleep>>>,
    /// When the session lost its last flowpath.
    orphaned_since: Option<Instant>,
    rng: StdRng,
    last_path_error: String,
    totals: Totals,
    /// Each flowpath's addresses (local, peer) as of its latest connection, kept after it
    /// breaks or retires.
    path_addrs: HashMap<PathId, (SocketAddr, SocketAddr)>,
    /// Requests for a [`Snapshot`] of the session (for live statistics).
    probe: Option<mpsc::Receiver<tokio::sync::oneshot::Sender<Snapshot>>>,
    /// Seals and opens large records off this task's thread.
    crypto: crypto::Crypto,
}

/// A flowpath as seen at one moment, for statistics.
#[derive(Debug, Clone)]
pub struct PathReport {
    /// The flowpath's id.
    pub id: PathId,
    /// Our address (as of its current or last connection).
    pub local: SocketAddr,
    /// The peer's address.
    pub peer: SocketAddr,
    /// The interface the policy bound it to, if any.
    pub iface: Option<String>,
    /// Carries data now (false: broken, replaced or retired).
    pub up: bool,
    /// Its counters and estimates.
    pub stats: crate::proto::PathStats,
    /// The kernel's figures for its current TCP connection (None when it has none).
    pub kernel: Option<crate::runtime::tcpinfo::KernelTcp>,
}

/// The session's state at one moment: its flowpaths (current and past) and totals.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Every flowpath the session had.
    pub paths: Vec<PathReport>,
    /// Application bytes so far.
    pub totals: Totals,
}

impl<I: AppSource, O: AppSink> Driver<I, O> {
    /// A driver for `session`, whose clock started at `epoch`, at our `side` of it, telling
    /// `events` what happens. `input` is read and sent (None: send nothing and half-close at
    /// once); received bytes go to `output` (None: discard).
    pub fn new(
        session: Session,
        epoch: Instant,
        side: Side,
        events: Events,
        input: Option<I>,
        output: Option<O>,
    ) -> Self {
        let mut d = Driver {
            session,
            epoch,
            conns: Vec::new(),
            side,
            events,
            netwatch: None,
            addr_book: AddrBook::default(),
            control: None,
            lost: HashMap::new(),
            came_back: Default::default(),
            app_in: input,
            in_chunk: None,
            app_out: output,
            out_chunk: None,
            out_done: false,
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
            sleep_at: None,
            interrupt: None,
            resume_timeout: Duration::ZERO,
            orphaned: None,
            orphaned_since: None,
            rng: StdRng::from_entropy(),
            last_path_error: String::new(),
            totals: Totals::default(),
            probe: None,
            path_addrs: HashMap::new(),
            crypto: crypto::Crypto::default(),
        };
        if d.app_in.is_none() {
            d.session.close_write();
        }
        d
    }

    /// Adds an active flowpath connection.
    pub(crate) fn add_path(&mut self, id: PathId, conn: FlowConn) {
        self.path_addrs.insert(id, (conn.local, conn.peer));
        self.conns.push(PathConn::new(id, conn, true));
    }

    /// React to address and link changes signalled on `rx` (see [`crate::runtime::netwatch`]).
    pub(crate) fn set_netwatch(&mut self, rx: mpsc::Receiver<()>) {
        self.netwatch = Some(rx);
        self.addr_book = AddrBook::snapshot();
    }

    /// Use this UDP control channel for RECONNECT datagrams.
    pub(crate) fn set_control(&mut self, control: ControlPlane) {
        self.control = Some(control);
    }

    /// Keep the session this long after its last flowpath broke, for a new one to attach.
    pub(crate) fn set_resume_timeout(&mut self, wait: Duration) {
        self.resume_timeout = wait;
    }

    /// Answer each request on `rx` with a [`Snapshot`] of the session.
    pub fn set_probe(&mut self, rx: mpsc::Receiver<tokio::sync::oneshot::Sender<Snapshot>>) {
        self.probe = Some(rx);
    }

    /// A snapshot of the session now.
    pub fn snapshot(&self) -> Snapshot {
        let mut paths = Vec::new();
        for (id, stats) in self.session.all_path_stats() {
            let conn = self.conns.iter().find(|c| c.id == id);
            let (local, peer) = match (conn, self.path_addrs.get(&id)) {
                (Some(c), _) => (c.conn.local, c.conn.peer),
                (None, Some(&a)) => a,
                (None, None) => continue,
            };
            paths.push(PathReport {
                id,
                local,
                peer,
                iface: self.iface_of(id),
                up: conn.is_some_and(|c| c.attached),
                kernel: conn.and_then(|c| crate::runtime::tcpinfo::read(&c.conn.stream)),
                stats,
            });
        }
        Snapshot {
            paths,
            totals: self.totals,
        }
    }

    fn poll_probe(&mut self, cx: &mut Context<'_>) {
        while let Some(Poll::Ready(r)) = self.probe.as_mut().map(|p| p.poll_recv(cx)) {
            match r {
                Some(reply) => {
                    let _ = reply.send(self.snapshot());
                }
                None => self.probe = None,
            }
        }
    }

    /// A future that, when it completes, aborts the session (e.g. Ctrl-C).
    pub fn set_interrupt(&mut self, f: impl Future<Output = ()> + Send + 'static) {
        self.interrupt = Some(Box::pin(f));
    }

    /// Runs the session to its end, then closes the connections gracefully.
    pub async fn run(self) -> (Result<Outcome, DriveError>, Totals) {
        let (r, snapshot) = self.run_with_snapshot().await;
        (r, snapshot.totals)
    }

    /// Like [`Driver::run`], returning the final [`Snapshot`] (every flowpath's figures).
    pub async fn run_with_snapshot(mut self) -> (Result<Outcome, DriveError>, Snapshot) {
        let r = std::future::poll_fn(|cx| self.poll_drive(cx)).await;
        for (id, s) in self.session.all_path_stats() {
            let iface = self.iface_of(id);
            tracing::info!(
                "path {id}{}: sent {} bytes first (+{} sent again), received {}, peer reported {} received by its last report, srtt {}, {}",
                iface.map_or(String::new(), |n| format!(" ({n})")),
                s.bytes_sent,
                s.bytes_resent,
                s.bytes_received,
                s.peer_received,
                s.srtt
                    .map_or("-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3)),
                s.delivery_rate.map_or("no rate".into(), |r| format!(
                    "{:.1} Mbit/s delivered",
                    r * 8e-6
                )),
            );
        }
        self.linger().await;
        let snapshot = self.snapshot();
        // The session's buffers are freed here; a listener gives the memory back to the
        // system once a burst of sessions has ended (`Services::serve`).
        drop(self);
        (r, snapshot)
    }

    /// The interface the client's policy bound path `id` to, if any.
    fn iface_of(&self, id: PathId) -> Option<String> {
        match &self.side {
            Side::Client(c) => c.slots.get(&id).cloned().flatten().map(|b| b.iface),
            Side::Server(_) => None,
        }
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<Result<Outcome, DriveError>> {
        // Bound the work per wake-up so that other tasks get the core too.
        for _ in 0..64 {
            let mut progress = false;
            if let Some(i) = self.interrupt.as_mut() {
                if i.as_mut().poll(cx).is_ready() {
                    self.interrupt = None;
                    self.session.abort("interrupted by its user");
                    self.flush_best_effort(cx);
                    return Poll::Ready(Ok(Outcome::Interrupted));
                }
            }
            if matches!(&self.side, Side::Client(c) if c.replan_due) {
                self.replan();
                progress = true;
            }
            self.poll_probe(cx);
            progress |= self.poll_netwatch(cx);
            progress |= self.poll_control(cx);
            progress |= self.poll_incoming(cx);
            progress |= self.poll_pending(cx);
            progress |= self.poll_replacer(cx);
            progress |= self.poll_crypto(cx);
            progress |= self.poll_sockets_read(cx);
            match self.poll_app_in(cx) {
                Ok(p) => progress |= p,
                Err(DriveError::Aborted(why)) => {
                    self.session.abort(why.clone());
                    self.flush_best_effort(cx);
                    return Poll::Ready(Err(DriveError::Aborted(why)));
                }
                Err(e) => {
                    self.session
                        .abort(format!("it could not read its input ({e})"));
                    self.flush_best_effort(cx);
                    return Poll::Ready(Err(e));
                }
            }
            match self.poll_app_out(cx) {
                Ok(p) => progress |= p,
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    self.session.abort("its output was closed");
                    self.flush_best_effort(cx);
                    return Poll::Ready(Ok(Outcome::OutputClosed));
                }
                Err(e) => {
                    self.session
                        .abort(format!("it could not write its output ({e})"));
                    self.flush_best_effort(cx);
                    return Poll::Ready(Err(DriveError::Output(e)));
                }
            }
            progress |= self.poll_sockets_write(cx);
            progress |= self.poll_timer(cx);
            progress |= self.handle_events();
            if let Some(e) = self.session.error() {
                let e = e.clone();
                self.flush_best_effort(cx);
                return Poll::Ready(Err(e.into()));
            }
            if self.session.is_finished()
                && self.out_done
                && self.conns.iter().all(|c| c.conn.out.is_empty())
                && !self.crypto.sealing()
            {
                return Poll::Ready(Ok(Outcome::Finished));
            }
            let attaching = matches!(&self.side, Side::Server(s) if !s.pending.is_empty());
            let no_path = self.session.active_paths().next().is_none() && !attaching;
            if no_path {
                if !self.session_needs_network() {
                    if self.out_done {
                        return Poll::Ready(Ok(Outcome::Finished));
                    }
                } else if let Some(e) = self.poll_orphaned(cx) {
                    return Poll::Ready(Err(e));
                }
            } else if self.orphaned.take().is_some() {
                let stall = self
                    .orphaned_since
                    .take()
                    .map_or(0.0, |t| t.elapsed().as_secs_f64());
                self.events
                    .emit("session_resumed", json!({"stall_ms": stall * 1e3}));
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Reacts to the session's events; true if any.
    fn handle_events(&mut self) -> bool {
        let mut any = false;
        while let Some(ev) = self.session.poll_event() {
            any = true;
            match ev {
                Event::PathActive(id) => {
                    // The client found us: whatever we were announcing is done.
                    if let Some(cp) = self.control.as_mut() {
                        cp.announce = None;
                    }
                    if let Side::Server(s) = &mut self.side {
                        s.moved_from = None;
                    }
                    self.retire_if_replaced();
                    self.report_path_up(id)
                }
                Event::PathDead(id) => {
                    if let Some(i) = self.conns.iter().position(|c| c.id == id) {
                        let c = self.conns.swap_remove(i);
                        let why = paths::PathLoss::NoAnswer(self.session.config().dead_time);
                        self.lose_path(c, why);
                    }
                }
                Event::DeliveryResumed { path, after } if self.came_back.remove(&path) => {
                    let ms = after.as_secs_f64() * 1000.0;
                    tracing::info!("path {path}: the peer's stream moves again, {ms:.0} ms after the path came up");
                    self.events.emit(
                        "delivery_resumed",
                        serde_json::json!({"path": path.0, "after_attach_ms": ms}),
                    );
                }
                Event::DeliveryResumed { .. } => {}
                Event::PathClosed(id) => tracing::debug!("path {id} retired"),
                Event::PeerFinished => tracing::info!("peer finished sending"),
                Event::Finished => tracing::info!("session complete"),
                Event::Failed(e) => tracing::debug!("session failed: {e}"),
            }
        }
        any
    }

    /// Logs a path that came up, and how long it was gone if it had broken.
    fn report_path_up(&mut self, id: PathId) {
        let Some(c) = self.conns.iter_mut().find(|c| c.id == id) else {
            return;
        };
        c.attached = true;
        let c = &*c;
        self.path_addrs.insert(id, (c.conn.local, c.conn.peer));
        match self.lost.remove(&id) {
            Some(lost) => {
                self.came_back.insert(id);
                // Say which end moved: ours, the peer's, or neither (the connection broke).
                let (which, from, to) = if lost.local.ip() != c.conn.local.ip() {
                    ("local", lost.local.ip(), c.conn.local.ip())
                } else if lost.peer.ip() != c.conn.peer.ip() {
                    ("peer", lost.peer.ip(), c.conn.peer.ip())
                } else {
                    ("none", lost.local.ip(), c.conn.local.ip())
                };
                let moved = match which {
                    "local" => format!("moved {from} -> {to}"),
                    "peer" => format!("moved (peer) {from} -> {to}"),
                    _ => format!("reconnected {} -> {}", c.conn.local, c.conn.peer),
                };
                let stall_ms = lost.at.elapsed().as_secs_f64() * 1e3;
                // From the last frame heard on the broken path: the outage as the user lived
                // it (the loss itself is noticed up to a dead time later).
                let away = lost.heard.elapsed();
                let resend = self.session.resend_pending();
                tracing::info!(
                    "path {id} {moved}: back after {} away (resumed {stall_ms:.0} ms after the loss), re-sending {resend} bytes that were in flight",
                    away_text(away)
                );
                self.events.emit(
                    "path_moved",
                    json!({"path": id.0, "which": which, "from": from.to_string(),
                        "to": to.to_string(), "stall_ms": stall_ms,
                        "away_ms": away.as_secs_f64() * 1e3, "resend_bytes": resend}),
                );
            }
            None => {
                tracing::info!("path {id} up: {} -> {}", c.conn.local, c.conn.peer);
                self.events.emit(
                    "path_up",
                    json!({"path": id.0, "local": c.conn.local.to_string(),
                        "remote": c.conn.peer.to_string()}),
                );
            }
        }
    }

    /// With no flowpath left: fails at once if no new one can come, or once the resume timeout
    /// has passed.
    fn poll_orphaned(&mut self, cx: &mut Context<'_>) -> Option<DriveError> {
        let lost = || DriveError::PathsLost(self.last_path_error.clone());
        let recoverable = match &self.side {
            Side::Server(s) => s.incoming.is_some(),
            Side::Client(_) => true,
        };
        if !recoverable || self.resume_timeout.is_zero() {
            return Some(lost());
        }
        // Server: a client that never sent a frame we accepted (e.g. it failed the encrypted
        // handshake: a different pre-shared key) will not come back for this session.
        if matches!(self.side, Side::Server(_)) && !self.session.heard_from_peer() {
            return Some(DriveError::NeverHeard(self.last_path_error.clone()));
        }
        let wait = self.resume_timeout;
        if self.orphaned.is_none() {
            tracing::info!(
                "all flowpaths lost; waiting up to {} for the peer to come back",
                humantime::format_duration(wait)
            );
            self.orphaned_since = Some(Instant::now());
        }
        let timer = self
            .orphaned
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
        if timer.as_mut().poll(cx).is_ready() {
            return Some(lost());
        }
        None
    }

    /// True while the session still has to exchange something with the peer.
    fn session_needs_network(&self) -> bool {
        !(self.session.write_finished() && self.session.peer_complete_and_acked())
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let next = self.session.poll_timeout();
        if next != self.sleep_at {
            self.sleep_at = next;
            let deadline = next.unwrap_or(Duration::from_secs(3600));
            self.sleep
                .as_mut()
                .reset(super::sys::deadline_after(self.epoch, deadline));
        }
        if self.sleep_at.is_some() && self.sleep.as_mut().poll(cx).is_ready() {
            let now = self.now();
            self.session.handle_timeout(now);
            self.sleep_at = None;
            let later = now.saturating_add(Duration::from_secs(3600));
            self.sleep
                .as_mut()
                .reset(super::sys::deadline_after(self.epoch, later));
            return true;
        }
        false
    }
}

/// How long a peer was away, for people: `850 ms`, `4.5s`, `1m02s`, `2h05m`.
fn away_text(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        format!("{} ms", d.as_millis())
    } else if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        crate::proto::text::clock(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn away_times_read_well_from_milliseconds_to_hours() {
        let t = |ms| away_text(Duration::from_millis(ms));
        assert_eq!(t(850), "850 ms");
        assert_eq!(t(4_540), "4.5s");
        assert_eq!(t(62_300), "1m02s");
        assert_eq!(t(3_599_999), "59m59s");
        assert_eq!(t(7_500_000), "2h05m");
    }
}
