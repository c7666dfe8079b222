//! What a run consists of (configuration, faults) and what the harness records about it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::session::{AttachError, Config, Event, SessionError};
use super::super::{ErrorCode, Frame, PathId};
use super::{AppSpec, Link, Side};

/// Something that happens to the network at a scheduled virtual time.
#[derive(Clone, Debug)]
pub enum Fault {
    /// The connection of `path` dies (both directions' queued bytes vanish, both sessions get
    /// `path_closed`); the client reattaches the same path id over the same link after
    /// `reattach_after`, if given.
    Kill {
        /// The flowpath whose connection dies.
        path: PathId,
        /// Delay before the client opens a replacement connection.
        reattach_after: Option<Duration>,
    },
    /// The client replaces the connection of `path` with a new one over `link`
    /// (`reattach_path`). If the old connection still exists it is abandoned silently (an
    /// address change): its bytes vanish and the server is not told, so it learns only when the
    /// new attach replaces the path.
    Reattach {
        /// The flowpath to replace.
        path: PathId,
        /// The new connection's link.
        link: Link,
    },
    /// The client opens one more flowpath (`open_path`).
    AddPath {
        /// The new connection's link.
        link: Link,
    },
    /// The connection of `path` delivers nothing in either direction for `duration`; bytes
    /// queue up in the network and arrive afterwards.
    Partition {
        /// The flowpath whose connection stalls.
        path: PathId,
        /// How long it stalls.
        duration: Duration,
    },
}

/// Kills a connection right after `side` wrote a frame named `frame` ([`Frame::name`]) into
/// it, so that frame is lost with it. Fires once.
#[derive(Clone, Debug)]
pub struct KillOnFrame {
    /// The end whose frame triggers the kill.
    pub side: Side,
    /// [`Frame::name`] of the triggering frame.
    pub frame: &'static str,
    /// Delay before the client reattaches the path, if it should.
    pub reattach_after: Option<Duration>,
}

/// Everything that defines one simulation run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seeds the sessions' randomness, the data and the scheduling order.
    pub seed: u64,
    /// Client session configuration.
    pub client: Config,
    /// Server session configuration.
    pub server: Config,
    /// Initial flowpaths: the first opens the session, the others are attached right after.
    pub paths: Vec<Link>,
    /// The client's application.
    pub client_app: AppSpec,
    /// The server's application.
    pub server_app: AppSpec,
    /// Faults at virtual times (measured from the start of the simulation).
    pub faults: Vec<(Duration, Fault)>,
    /// A kill triggered by a frame being sent.
    pub kill_on_frame: Option<KillOnFrame>,
    /// Simulated kernel send buffer per connection and direction.
    pub sndbuf: usize,
    /// Upper bound on simulation steps.
    pub max_steps: u64,
    /// Upper bound on virtual time.
    pub max_time: Duration,
}

impl SimConfig {
    /// One 10 MB/s path with 20 ms latency, 256 KiB each way, default session configs.
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            client: Config::default(),
            server: Config::default(),
            paths: vec![Link::new(20, 10_000_000)],
            client_app: AppSpec::sending(256 << 10),
            server_app: AppSpec::sending(256 << 10),
            faults: Vec::new(),
            kill_on_frame: None,
            sndbuf: 64 << 10,
            max_steps: 2_000_000,
            max_time: Duration::from_secs(300),
        }
    }

    /// Replaces the initial flowpaths.
    pub fn paths(self, paths: Vec<Link>) -> SimConfig {
        SimConfig { paths, ..self }
    }

    /// Replaces both applications.
    pub fn apps(self, client_app: AppSpec, server_app: AppSpec) -> SimConfig {
        SimConfig {
            client_app,
            server_app,
            ..self
        }
    }

    /// Sets the receive window of both sessions.
    pub fn recv_window(mut self, bytes: usize) -> SimConfig {
        self.client.recv_window = bytes;
        self.server.recv_window = bytes;
        self
    }

    /// Schedules a fault `at_ms` milliseconds into the simulation.
    pub fn fault(mut self, at_ms: u64, fault: Fault) -> SimConfig {
        self.faults.push((Duration::from_millis(at_ms), fault));
        self
    }
}

/// A successful or failed `complete_attach`, as seen by the server harness.
#[derive(Debug)]
pub struct AttachRecord {
    /// Connection index.
    pub conn: usize,
    /// Virtual time of the attempt.
    pub at: Duration,
    /// The HELLO(attach) that started it.
    pub hello: Frame,
    /// The ATTACH_PROOF as received (after any tampering).
    pub proof: Frame,
    /// What `complete_attach` returned.
    pub result: Result<PathId, AttachError>,
}

/// When notable things first happened at one end.
#[derive(Clone, Debug, Default)]
pub struct Milestones {
    /// The application called `close_write`.
    pub app_closed_at: Option<Duration>,
    /// Our FIN was acknowledged (`write_finished`).
    pub write_finished_at: Option<Duration>,
    /// Bytes of the peer's stream read by then.
    pub read_at_write_finished: u64,
    /// The peer's stream was read to its end (`peer_finished`).
    pub peer_finished_at: Option<Duration>,
    /// `is_finished` became true.
    pub finished_at: Option<Duration>,
}

/// What the harness observed; indexed `[client, server]` where per side.
#[derive(Debug, Default)]
pub struct Log {
    /// Session events, in order.
    pub events: Vec<(Duration, Side, Event)>,
    /// Frames written into connections, by [`Frame::name`].
    pub frames_sent: [BTreeMap<&'static str, u64>; 2],
    /// Every `complete_attach` call.
    pub attaches: Vec<AttachRecord>,
    /// Errors returned by `handle_frame` (consecutive repeats collapsed).
    pub errors: [Vec<(Duration, SessionError)>; 2],
    /// Attaches refused by the server harness before `complete_attach`, with the code sent.
    pub refusals: Vec<(usize, ErrorCode)>,
    /// Milestones per side.
    pub milestones: [Milestones; 2],
}

impl Log {
    /// How many frames named `name` `side` has written.
    pub fn sent(&self, side: Side, name: &str) -> u64 {
        self.frames_sent[side.idx()].get(name).copied().unwrap_or(0)
    }

    /// How many times `side` reported `event`.
    pub fn count_events(&self, side: Side, event: &Event) -> usize {
        self.events
            .iter()
            .filter(|(_, s, e)| *s == side && e == event)
            .count()
    }
}
