//! A deterministic simulated network for the session core (tests only).
//!
//! Modelled on quinn-proto's `tests/util.rs` `Pair`, but entirely in process and reproducible:
//! a virtual clock, one seeded RNG, no global state. A [`Sim`] holds a client and a server
//! [`Session`] and a set of simulated TCP connections between them. Every frame really goes
//! through bytes: [`Frame::encode`] on the sending side, [`PREAMBLE`] in front of each direction
//! of each connection, and a [`Deframer`] on the receiving side, fed in 16 KiB segments that
//! ignore frame boundaries.
//!
//! A connection is two [`Pipe`]s: in order and reliable while alive (it is TCP), with a one-way
//! latency and a rate. Bytes written at `t` while the pipe is busy until `t'` are delivered at
//! `max(t, t') + size / rate + latency`. The writer side has a small simulated kernel send
//! buffer ([`SimConfig::sndbuf`]): a session is asked for frames only while bytes not yet
//! serialized onto the wire leave room in it.
//!
//! The harness plays the runtime on both ends: it opens the session (HELLO(open) / WELCOME),
//! answers HELLO(attach) on the server with `challenge_attach` (or ERROR(unknown session)),
//! completes attaches with `complete_attach`, routes frames to `handle_frame`, calls
//! `path_closed` when a connection dies, drives `poll_timeout` / `handle_timeout`, and runs one
//! application per end (seeded random data written as capacity allows, then `close_write`;
//! reads greedily or slowly). Faults ([`Fault`]) are scheduled in virtual time, or triggered
//! by a frame being written ([`FaultOnFrame`]). Addresses, server moves announced with
//! RECONNECT datagrams and the client's retry loop are modelled in `mobility`; the receiving side
//! (deframing, the server's attach answers) is in `deliver`, the sending side in `transmit`.
//!
//! Time only advances to the next thing that can happen: a delivery, a send buffer draining, a
//! session timer, a scheduled fault or an application tick. Runs are bounded in steps and in
//! virtual time; exceeding either (or running out of events) panics with a description of the
//! state, which is how a deadlock shows.

mod app;
mod attach_tests;
mod crypto_tests;
mod deliver;
mod exit;
mod exit_tests;
mod mobility;
mod mobility_attacks;
mod mobility_tests;
mod multipath_tests;
mod net;
mod redial_tests;
mod regressions;
mod report;
mod scenario;
mod tests;
mod transmit;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::session::{ClientHandshake, Event, ServerHandshake, Session, SessionError};
use super::{Deframer, Frame, PathId, PREAMBLE};

use app::App;
pub use app::AppSpec;
pub use mobility::server_addr;
pub use net::Link;
use net::{ClientEnd, Conn, ConnState, Pipe, ServerEnd};
pub use scenario::{
    AttachRecord, Fault, FaultOnFrame, Log, Milestones, OnFrame, ServerMove, SimConfig,
};

/// One end of the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The end that opened the session and opens every flowpath.
    Client,
    /// The end that accepted it.
    Server,
}

impl Side {
    /// The other end.
    pub fn peer(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }

    pub(super) fn idx(self) -> usize {
        match self {
            Side::Client => 0,
            Side::Server => 1,
        }
    }
}

/// The simulation: two sessions, the network between them, and their applications.
pub struct Sim {
    now: Duration,
    steps: u64,
    rng: StdRng,
    pub(super) cfg: SimConfig,
    /// The client session.
    pub client: Session,
    /// The server session.
    pub server: Session,
    conns: Vec<Conn>,
    /// Current connection of each client path.
    client_conn: BTreeMap<PathId, usize>,
    /// Current connection of each server path.
    server_conn: BTreeMap<PathId, usize>,
    apps: [App; 2],
    /// Pending faults, sorted by time (stable for equal times).
    faults: VecDeque<(Duration, Fault)>,
    /// What happened.
    pub log: Log,
    /// Flip a byte of the next ATTACH_PROOF the server receives (before `complete_attach`).
    pub tamper_next_attach_proof: bool,
    /// Flip a byte of the server proof in the next CHALLENGE the server sends.
    pub forge_next_challenge: bool,
    /// A [`Fault::Corrupt`] is pending: the next bytes this side sends on this path.
    corrupt_next: Option<(PathId, Side)>,
    /// Addresses, control datagrams, attach retries.
    mob: mobility::Mobility,
    /// Each side's process has exited (see [`Sim::exit`]): it is no longer driven.
    exited: [bool; 2],
}

impl Sim {
    /// Opens the session over the first configured path (HELLO(open) → WELCOME through the
    /// simulated connection) and starts attaching the other configured paths.
    pub fn new(cfg: SimConfig) -> Sim {
        assert!(
            !cfg.paths.is_empty(),
            "a simulation needs at least one path"
        );
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let mut now = Duration::ZERO;
        let ends = (mobility::client_addr(0), server_addr(0));
        let mut conn = Conn::new(PathId(0), cfg.paths[0], ClientEnd::Session, ends, now);

        let handshake = ClientHandshake::new(cfg.client.clone(), &mut rng, now);
        conn.c2s.write(now, with_preamble(true, &handshake.hello()));
        let hello = await_frame(&mut conn.c2s, &mut conn.server_rx, &mut now);
        let (open, welcome) =
            ServerHandshake::accept(cfg.server.clone(), &hello, &mut rng, |_| false)
                .expect("server accepts HELLO(open)");
        // Unencrypted, the session exists once WELCOME is out; encrypted, once the client's
        // key (HELLO(finish)) is in.
        let (mut server, mut pending) = (None, None);
        if open.awaits_finish() {
            pending = Some(open);
        } else {
            server = Some(open_session(open, None, &mut conn.server_rx, now));
        }
        conn.s2c.write(now, with_preamble(true, &welcome));
        conn.server_preamble_sent = true;
        conn.server_end = ServerEnd::Attached(PathId(0));
        let welcome = await_frame(&mut conn.s2c, &mut conn.client_rx, &mut now);
        let mut client = handshake
            .handle_reply_on(welcome, &mut conn.client_rx, now)
            .expect("client accepts WELCOME");
        let mut log = Log::default();
        for (side, name) in [(Side::Client, "HELLO(open)"), (Side::Server, "WELCOME")] {
            *log.frames_sent[side.idx()].entry(name).or_default() += 1;
        }
        let server = match (server, pending) {
            (Some(s), _) => s,
            (None, None) => unreachable!("the open is either done or pending"),
            (None, Some(open)) => {
                let mut queue = crate::proto::OutQueue::default();
                client.poll_transmit(PathId(0), now, &mut queue, 64 << 10);
                conn.c2s.write(now, queue.take_bytes());
                let finish = await_frame(&mut conn.c2s, &mut conn.server_rx, &mut now);
                *log.frames_sent[Side::Client.idx()]
                    .entry(finish.name())
                    .or_default() += 1;
                open_session(open, Some(&finish), &mut conn.server_rx, now)
            }
        };

        let mut faults: Vec<_> = cfg.faults.clone();
        faults.sort_by_key(|(at, _)| *at);
        let apps = [
            App::new(cfg.client_app.clone(), cfg.seed ^ 0xc11e_47da_7a00_0001),
            App::new(cfg.server_app.clone(), cfg.seed ^ 0x5e7e_7da7_a000_0002),
        ];
        let mut sim = Sim {
            now,
            steps: 0,
            rng,
            client,
            server,
            conns: vec![conn],
            client_conn: BTreeMap::from([(PathId(0), 0)]),
            server_conn: BTreeMap::from([(PathId(0), 0)]),
            apps,
            faults: faults.into(),
            log,
            tamper_next_attach_proof: false,
            forge_next_challenge: false,
            corrupt_next: None,
            mob: mobility::Mobility::default(),
            exited: [false; 2],
            cfg,
        };
        for link in sim.cfg.paths.clone().into_iter().skip(1) {
            sim.apply_fault(Fault::AddPath { link });
        }
        sim
    }

    /// Current virtual time.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The session at `side`.
    fn session(&mut self, side: Side) -> &mut Session {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// Bytes `side`'s application has read from its peer.
    pub fn received(&self, side: Side) -> &[u8] {
        &self.apps[side.idx()].received
    }

    // ----- running ---------------------------------------------------------------------------

    /// Runs until both sessions are finished; panics on any session error, deadlock or bound.
    pub fn run_to_completion(&mut self) {
        self.run_until("both sessions finished", |s| {
            s.assert_no_errors();
            s.client.is_finished() && s.server.is_finished()
        });
    }

    /// Runs until `cond` holds (checked after every step). Panics with `what` and the state if
    /// the step or time bound is exceeded or nothing is left to happen.
    pub fn run_until(&mut self, what: &str, cond: impl Fn(&Sim) -> bool) {
        loop {
            self.step();
            if cond(self) {
                return;
            }
            let Some(next) = self.next_event_time() else {
                panic!(
                    "simulation stalled waiting for: {what}\n{}",
                    self.describe()
                );
            };
            self.advance(next, what);
        }
    }

    /// Runs for `d` of virtual time (nothing left to happen is fine).
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.step();
            match self.next_event_time() {
                Some(next) if next <= end => self.advance(next, "run_for"),
                _ => {
                    self.now = end;
                    return;
                }
            }
        }
    }

    fn advance(&mut self, next: Duration, what: &str) {
        debug_assert!(next > self.now);
        self.now = next;
        self.steps += 1;
        if self.steps > self.cfg.max_steps || self.now > self.cfg.max_time {
            panic!(
                "simulation exceeded its bounds ({} steps / {:?}) waiting for: {what}\n{}",
                self.cfg.max_steps,
                self.cfg.max_time,
                self.describe()
            );
        }
    }

    /// Everything that happens at the current instant.
    fn step(&mut self) {
        self.apply_due_faults();
        if !self.exited.contains(&true) {
            self.drive_mobility();
        }
        self.deliver_due();
        self.deliver_fins();
        self.drive_timers();
        self.drive_apps();
        self.transmit_all();
        self.record_progress();
    }

    /// The earliest future instant at which something can happen.
    fn next_event_time(&self) -> Option<Duration> {
        let now = self.now;
        let mut times: Vec<Duration> = Vec::new();
        for conn in self.conns.iter().filter(|c| c.state != ConnState::Dead) {
            for pipe in [&conn.c2s, &conn.s2c] {
                times.extend(pipe.next_delivery());
                times.extend(pipe.next_drain(now));
            }
        }
        if !self.exited[0] {
            times.extend(self.client.poll_timeout());
        }
        if !self.exited[1] {
            times.extend(self.server.poll_timeout());
        }
        times.extend(self.faults.front().map(|(at, _)| *at));
        times.extend(self.mobility_next_event());
        times.extend(self.apps[0].next_tick(now, &self.client));
        times.extend(self.apps[1].next_tick(now, &self.server));
        times.into_iter().filter(|&t| t > now).min()
    }

    // ----- faults ----------------------------------------------------------------------------

    fn apply_due_faults(&mut self) {
        while self.faults.front().is_some_and(|(at, _)| *at <= self.now) {
            let (_, fault) = self.faults.pop_front().expect("checked");
            self.log.faults_applied.push((self.now, fault.clone()));
            self.apply_fault(fault);
        }
    }

    /// Schedules `fault` at `at`, after any fault already scheduled for the same time.
    pub fn schedule(&mut self, at: Duration, fault: Fault) {
        let pos = self.faults.partition_point(|(t, _)| *t <= at);
        self.faults.insert(pos, (at, fault));
    }

    fn apply_fault(&mut self, fault: Fault) {
        match fault {
            Fault::Kill {
                path,
                reattach_after,
            } => {
                let conn = self.client_conn.get(&path).or(self.server_conn.get(&path));
                if let Some(&c) = conn {
                    let link = self.conns[c].link;
                    self.kill_conn(c);
                    if let Some(d) = reattach_after {
                        self.schedule(self.now + d, Fault::Reattach { path, link });
                    }
                }
            }
            Fault::Reattach { path, link } => {
                if let Some(old) = self.client_conn.remove(&path) {
                    let conn = &mut self.conns[old];
                    conn.state = ConnState::Blackholed;
                    conn.c2s.clear();
                    conn.s2c.clear();
                }
                let hello = self.client.reattach_path(path, &mut self.rng, self.now);
                self.connect(path, link, hello);
            }
            Fault::AddPath { link } => {
                let (path, hello) = self.client.open_path(&mut self.rng, self.now);
                self.connect(path, link, hello);
            }
            Fault::Partition { path, duration } => {
                if let Some(&c) = self.client_conn.get(&path) {
                    let until = self.now + duration;
                    self.conns[c].c2s.blocked_until = until;
                    self.conns[c].s2c.blocked_until = until;
                }
            }
            Fault::ServerMove(m) => self.server_move(m),
            Fault::ClientMove => self.client_move(),
            Fault::NameUpdate => self.name_update(),
            Fault::Corrupt { path, from } => self.corrupt_next = Some((path, from)),
        }
    }

    /// Opens a connection for client path `path` and sends `hello` on it. If the server is
    /// not where the client dials, the connection goes nowhere.
    fn connect(&mut self, path: PathId, link: Link, hello: Frame) {
        self.cancel_redial(path);
        let c = self.new_conn(path, link, ClientEnd::Session, &hello);
        let (to, reachable) = self.dial();
        self.conns[c].to = to;
        if !reachable {
            self.conns[c].state = ConnState::Blackholed;
        }
        self.client_conn.insert(path, c);
    }

    /// Opens a connection to the server's current address and writes `first` into it.
    fn new_conn(&mut self, path: PathId, link: Link, end: ClientEnd, first: &Frame) -> usize {
        let ends = (self.client_address(), self.server_address());
        let mut conn = Conn::new(path, link, end, ends, self.now);
        conn.c2s.write(self.now, with_preamble(true, first));
        *self.log.frames_sent[0].entry(first.name()).or_default() += 1;
        self.conns.push(conn);
        self.conns.len() - 1
    }

    /// The connection dies: queued bytes vanish, both ends are told if it was their current
    /// connection for a path.
    fn kill_conn(&mut self, c: usize) {
        let conn = &mut self.conns[c];
        conn.state = ConnState::Dead;
        conn.c2s.clear();
        conn.s2c.clear();
        let path = conn.path;
        let server_path = match conn.server_end {
            ServerEnd::Attached(p) => Some(p),
            _ => None,
        };
        let is_session = matches!(conn.client_end, ClientEnd::Session);
        if is_session && self.client_conn.get(&path) == Some(&c) {
            self.client_conn.remove(&path);
            self.client.path_closed(path);
        }
        if let Some(p) = server_path {
            if self.server_conn.get(&p) == Some(&c) {
                self.server_conn.remove(&p);
                self.server.path_closed(p);
            }
        }
    }

    // ----- scripted client ends (intruders, replays) ----------------------------------------

    /// Opens a connection whose client end the test drives by hand and sends `hello` on it.
    /// Returns the connection index.
    pub fn connect_scripted(&mut self, link: Link, hello: Frame) -> usize {
        let path = match hello {
            Frame::HelloAttach { path_id, .. } => PathId(path_id),
            _ => PathId(u32::MAX),
        };
        let inbox = Vec::new();
        self.new_conn(path, link, ClientEnd::Scripted { inbox }, &hello)
    }

    /// Sends `frame` from the scripted client end of connection `c`.
    pub fn send_scripted(&mut self, c: usize, frame: &Frame) {
        let mut buf = BytesMut::new();
        frame.encode(&mut buf);
        self.conns[c].c2s.write(self.now, buf.freeze());
    }

    /// Frames received so far by the scripted client end of connection `c`.
    pub fn scripted_inbox(&self, c: usize) -> &[Frame] {
        match &self.conns[c].client_end {
            ClientEnd::Scripted { inbox } => inbox,
            ClientEnd::Session => panic!("connection {c} is not scripted"),
        }
    }

    fn log_error(&mut self, side: Side, e: SessionError) {
        let errors = &mut self.log.errors[side.idx()];
        if errors.last().map(|(_, last)| last) != Some(&e) {
            errors.push((self.now, e));
        }
    }

    // ----- timers, applications, transmission ------------------------------------------------

    fn drive_timers(&mut self) {
        let [client_gone, server_gone] = self.exited;
        for (s, gone) in [
            (&mut self.client, client_gone),
            (&mut self.server, server_gone),
        ] {
            if !gone && s.poll_timeout().is_some_and(|t| t <= self.now) {
                s.handle_timeout(self.now);
            }
        }
    }

    fn drive_apps(&mut self) {
        let [client_app, server_app] = &mut self.apps;
        let [client_m, server_m] = &mut self.log.milestones;
        if !self.exited[0] {
            client_app.drive(self.now, &mut self.client, client_m);
        }
        if !self.exited[1] {
            server_app.drive(self.now, &mut self.server, server_m);
        }
    }

    fn record_progress(&mut self) {
        let now = self.now;
        let mut dead = Vec::new();
        for (side, s) in [
            (Side::Client, &mut self.client),
            (Side::Server, &mut self.server),
        ] {
            while let Some(e) = s.poll_event() {
                if let Event::PathDead(p) = e {
                    dead.push((side, p));
                }
                self.log.events.push((now, side, e));
            }
            let m = &mut self.log.milestones[side.idx()];
            if m.write_finished_at.is_none() && s.write_finished() {
                m.write_finished_at = Some(now);
                m.read_at_write_finished = s.bytes_read();
            }
            if m.peer_finished_at.is_none() && s.peer_finished() {
                m.peer_finished_at = Some(now);
            }
            if m.finished_at.is_none() && s.is_finished() {
                m.finished_at = Some(now);
            }
        }
        for (side, path) in dead {
            self.on_path_dead(side, path);
        }
    }

    /// What the runtime does with a path the session declared dead: the server stops using
    /// that connection; the client abandons it and attaches a replacement right away.
    fn on_path_dead(&mut self, side: Side, path: PathId) {
        match side {
            Side::Server => {
                self.server_conn.remove(&path);
            }
            Side::Client => {
                if let Some(&c) = self.client_conn.get(&path) {
                    let link = self.conns[c].link;
                    self.apply_fault(Fault::Reattach { path, link });
                }
            }
        }
    }
}

/// Encodes `frame`, behind the preamble if `preamble`.
fn with_preamble(preamble: bool, frame: &Frame) -> Bytes {
    let mut buf = BytesMut::new();
    if preamble {
        buf.extend_from_slice(&PREAMBLE);
    }
    frame.encode(&mut buf);
    buf.freeze()
}

/// Moves time forward to deliveries on `pipe` until `rx` yields a frame (handshake only).
/// The server's session from its completed open.
fn open_session(
    open: ServerHandshake,
    finish: Option<&Frame>,
    rx: &mut Deframer,
    now: Duration,
) -> Session {
    open.finish_on(finish, rx, now)
        .expect("server completes the open")
}

fn await_frame(pipe: &mut Pipe, rx: &mut Deframer, now: &mut Duration) -> Frame {
    loop {
        if let Some(frame) = rx.next_frame().expect("handshake frames decode") {
            return frame;
        }
        *now = pipe.next_delivery().expect("handshake bytes are in flight");
        for bytes in pipe.take_due(*now) {
            rx.extend(&bytes);
        }
    }
}
