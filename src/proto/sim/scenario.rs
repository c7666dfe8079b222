//! What a run consists of (configuration, faults) and what the harness records about it.

use std::collections::BTreeMap;
use std::time::Duration;

use super::super::session::{AttachError, Config, Event, SessionError};
use super::super::{ControlAction, ControlError, ErrorCode, Frame, PathId};
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
    /// The server's address changes: every connection to the old one is blackholed (bytes in
    /// flight vanish, nothing more arrives, neither end is told by the connection), and the
    /// server announces its new address with a RECONNECT datagram (see [`ServerMove`]).
    ServerMove(ServerMove),
    /// The client's address changes on every flowpath at once, its control socket's too:
    /// each path with a connection is replaced like [`Fault::Reattach`] over its link, and
    /// datagrams still addressed to the old address are lost.
    ClientMove,
    /// The server's name now resolves to its current address; the client's retry loop, which
    /// resolves it on every attempt, finds the server there from now on.
    NameUpdate,
    /// The next bytes `from` sends on the connection of `path` arrive with one bit flipped
    /// (a middlebox corrupting a packet whose TCP checksum still matches).
    Corrupt {
        /// The flowpath whose connection corrupts.
        path: PathId,
        /// Whose bytes are corrupted.
        from: Side,
    },
}

/// How a [`Fault::ServerMove`] plays out.
#[derive(Clone, Debug)]
pub struct ServerMove {
    /// The first this many copies of the RECONNECT are lost.
    pub lose_reconnects: u32,
    /// The client's first this many RECONNECT_ACKs (for any RECONNECT) are lost.
    pub lose_acks: u32,
    /// The server's runtime closes all its paths at once (it saw its address go away), as
    /// the real one does. If false, it learns only from replacements and its dead time.
    pub server_closes_paths: bool,
    /// The server's name is updated to the new address this long after the move
    /// ([`Fault::NameUpdate`]).
    pub name_updated_after: Option<Duration>,
}

impl ServerMove {
    /// A move announced without loss; the server closes its paths; the name is not updated.
    pub fn new() -> ServerMove {
        ServerMove {
            lose_reconnects: 0,
            lose_acks: 0,
            server_closes_paths: true,
            name_updated_after: None,
        }
    }

    /// Loses the first `n` copies of the RECONNECT.
    pub fn losing_reconnects(self, n: u32) -> ServerMove {
        ServerMove {
            lose_reconnects: n,
            ..self
        }
    }

    /// Loses the client's first `n` RECONNECT_ACKs.
    pub fn losing_acks(self, n: u32) -> ServerMove {
        ServerMove {
            lose_acks: n,
            ..self
        }
    }

    /// The server keeps its paths until replacements or the dead time retire them.
    pub fn keeping_paths(self) -> ServerMove {
        ServerMove {
            server_closes_paths: false,
            ..self
        }
    }

    /// The server's name follows it `after` the move.
    pub fn name_updated_after(self, after: Duration) -> ServerMove {
        ServerMove {
            name_updated_after: Some(after),
            ..self
        }
    }
}

impl Default for ServerMove {
    fn default() -> Self {
        ServerMove::new()
    }
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

/// Applies a fault right after `side` wrote a frame named `frame` ([`Frame::name`]) into a
/// connection, while that frame is in flight. Fires once.
#[derive(Clone, Debug)]
pub struct FaultOnFrame {
    /// The end whose frame triggers the fault.
    pub side: Side,
    /// [`Frame::name`] of the triggering frame.
    pub frame: &'static str,
    /// What happens.
    pub action: OnFrame,
}

/// The fault of a [`FaultOnFrame`].
#[derive(Clone, Debug)]
pub enum OnFrame {
    /// The connection that carried the frame dies; the client reattaches its path after the
    /// delay, if given.
    Kill {
        /// Delay before the client opens a replacement connection.
        reattach_after: Option<Duration>,
    },
    /// The client's address on the path of that connection changes ([`Fault::Reattach`] over
    /// the same link): the frame vanishes with the abandoned connection.
    Reattach,
    /// Any other fault, applied as is (e.g. [`Fault::ServerMove`]).
    Fault(Fault),
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
    /// Faults triggered by frames being sent.
    pub on_frame: Vec<FaultOnFrame>,
    /// Probability that a control datagram (RECONNECT, RECONNECT_ACK) is lost.
    pub control_loss: f64,
    /// The client gives up on an attach attempt that got no answer for this long (a
    /// connection to an address that is gone goes nowhere), like the runtime's `--wait`.
    pub attempt_timeout: Duration,
    /// Delay before the client retries a failed attach, like `--retry-interval`.
    pub retry_interval: Duration,
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
            on_frame: Vec::new(),
            control_loss: 0.0,
            attempt_timeout: Duration::from_secs(10),
            retry_interval: Duration::from_secs(1),
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

    /// Kills the connection that carries `side`'s first frame named `frame` (see
    /// [`KillOnFrame`]), reattaching after `reattach_after` if given.
    pub fn kill_on_frame(
        self,
        side: Side,
        frame: &'static str,
        reattach_after: Option<Duration>,
    ) -> SimConfig {
        let kill_on_frame = Some(KillOnFrame {
            side,
            frame,
            reattach_after,
        });
        SimConfig {
            kill_on_frame,
            ..self
        }
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
    /// Scheduled faults as they struck (those still pending at the end are not here).
    pub faults_applied: Vec<(Duration, Fault)>,
    /// Frame-triggered faults as they fired: when, whose frame, which frame.
    pub triggered: Vec<(Duration, Side, &'static str)>,
    /// Every control datagram written, lost or not.
    pub datagrams: Vec<DatagramRecord>,
    /// Every control datagram handled, with what `handle_control` returned.
    pub control: Vec<ControlRecord>,
    /// Client attach attempts abandoned for lack of an answer: when, which path.
    pub failed_attempts: Vec<(Duration, PathId)>,
    /// Server moves: when, and the new address.
    pub server_moves: Vec<(Duration, std::net::SocketAddr)>,
}

/// A control datagram as sent.
#[derive(Clone, Debug)]
pub struct DatagramRecord {
    /// When it was written.
    pub at: Duration,
    /// Its sender.
    pub from: Side,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Whether the network dropped it.
    pub lost: bool,
}

/// A control datagram as handled by a session.
#[derive(Clone, Debug)]
pub struct ControlRecord {
    /// When it arrived.
    pub at: Duration,
    /// The receiving end.
    pub side: Side,
    /// What `handle_control` returned.
    pub result: Result<ControlAction, ControlError>,
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
