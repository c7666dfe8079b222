//! The session: one reliable byte stream in each direction, carried over zero or more flowpaths.
//!
//! Driving it (all calls take the current time; none reads a clock):
//! - open: [`ClientHandshake`] on the client, [`ServerHandshake`] on the server;
//! - more flowpaths: [`Session::open_path`] / [`Session::reattach_path`] on the client,
//!   [`Session::challenge_attach`] + [`Session::complete_attach`] on the server;
//! - inbound frames: [`Session::handle_frame`], with the deframer of the connection they came
//!   on (encrypted sessions install the peer's record opener in it there, so that no caller
//!   can forget); a dead connection: [`Session::path_closed`];
//! - outbound frames for a path whose socket can take more: [`Session::poll_transmit`];
//! - timers: [`Session::poll_timeout`] then [`Session::handle_timeout`];
//! - application: [`Session::write`], [`Session::close_write`], [`Session::read_chunk`].
//!
//! Where things live: the send side's bytes and what is left to (re)send of them in
//! `send_buffer.rs`, the receive side's reorder buffer in `recv_buffer.rs`, each direction's
//! close handshake as a state enum in `closing.rs`, per-flowpath state in `path.rs` (one level
//! up), opening in `open.rs`, attaching in `attach.rs` and `resume.rs`.

mod attach;
mod closing;
mod open;
mod receive;
mod recv_buffer;
mod resume;
mod send_buffer;
mod transmit;

pub use attach::PendingAttach;
pub use open::{ClientHandshake, ServerHandshake};
use recv_buffer::RecvBuffer;
use send_buffer::SendBuffer;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;

use self::closing::{RecvClose, SendClose};
use self::resume::Tickets;
use super::auth::SessionSecret;
use super::deframer::Deframer;
use super::frame::{ErrorCode, Service, MAX_DATA_PAYLOAD};
use super::handshake::Identity;
use super::path::{Path, PathId, PathStats};
use super::record::{Opener, Sealer};
use super::text::Untrusted;

/// Tunables of a session. Both ends choose their own; windows are advertised.
#[derive(Clone, Debug)]
pub struct Config {
    /// Most unacknowledged bytes held for re-sending; the application is blocked beyond it.
    pub send_buffer: usize,
    /// Most bytes buffered for the application (in order or not): the receive window.
    pub recv_window: usize,
    /// Largest DATA payload we send (at most [`MAX_DATA_PAYLOAD`]).
    pub max_payload: usize,
    /// Acknowledge after this many bytes received on a path.
    pub ack_every: u64,
    /// Acknowledge at most this long after receiving data.
    pub ack_delay: Duration,
    /// Send a PING on a path that has received nothing for this long (keeps idle paths and
    /// NAT mappings alive, and tells a silent path from a dead one).
    pub keepalive: Duration,
    /// Declare a path dead when it has owed us an answer (an ACK for data, a PONG) for this
    /// long; its bytes move to the other paths and the client replaces it.
    pub dead_time: Duration,
    /// UDP port of our control socket, announced to the peer (0: none).
    pub control_port: u16,
    /// Reattach moved flowpaths in one flight with tickets (server: hand them out; client:
    /// use them) instead of HELLO(attach) + CHALLENGE.
    pub resume_tickets: bool,
    /// End the session when no stream data (or FIN) was sent or received for this long;
    /// keepalives do not count.
    pub idle_timeout: Option<Duration>,
    /// Client: the service asked for in HELLO(open). Server: ignored (the client's choice
    /// is in [`Session::service`]).
    pub service: Service,
    /// Encrypt the session (Noise handshake, AES-GCM records). Both ends must agree; a
    /// mismatch is refused, never downgraded.
    pub encrypt: bool,
    /// A pre-shared key both ends must hold (with `encrypt`).
    pub psk: Option<[u8; 32]>,
    /// With `encrypt`: our long-term key pair. The listener's (required), or the client's
    /// (sent to the listener in the handshake; without one a client uses a throwaway key).
    pub identity: Option<Identity>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            send_buffer: 4 << 20,
            recv_window: 4 << 20,
            max_payload: MAX_DATA_PAYLOAD,
            ack_every: 256 << 10,
            ack_delay: Duration::from_millis(5),
            keepalive: Duration::from_secs(3),
            dead_time: Duration::from_secs(5),
            idle_timeout: None,
            control_port: 0,
            resume_tickets: true,
            service: Service::Stream,
            encrypt: false,
            psk: None,
            identity: None,
        }
    }
}

/// Which end of the session this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Opened the session; opens every flowpath.
    Client,
    /// Accepted the session.
    Server,
}

/// Why a session ended abnormally. The variant says who is at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The peer broke the protocol (its fault; an ERROR is sent to it).
    #[error("peer violated the protocol: {0}")]
    Protocol(String),
    /// The peer ended the session with an ERROR frame.
    #[error("peer ended the session: {code}{}", if reason.is_empty() { String::new() } else { format!(" ({})", Untrusted(reason)) })]
    PeerError {
        /// The peer's reason code.
        code: ErrorCode,
        /// The peer's explanation, as it sent it (shown escaped: see [`Untrusted`]).
        reason: String,
    },
    /// No stream data was sent or received for the configured idle timeout.
    #[error("no data for {} (idle timeout)", humantime::format_duration(*.0))]
    IdleTimeout(Duration),
    /// This side ended the session early; the reason is phrased for the peer ("interrupted
    /// by its user").
    #[error("session aborted: {0}")]
    Aborted(String),
    /// The server does not accept the session as offered (e.g. encryption settings differ);
    /// the reason, for the client, says what to change.
    #[error("refused the session: {0}")]
    Refused(String),
    /// The encrypted handshake failed: a different pre-shared key, or tampering on the way.
    #[error("encrypted handshake failed: {0}")]
    Handshake(String),
    /// The listener does not admit the client's key, whose fingerprint this is (at the
    /// client, its own: the line its owner must add to the listener's authorized keys).
    #[error(
        "listener refused key {0}: not in its authorized keys (ask its owner to add this line)"
    )]
    KeyRefused(String),
    /// The peer's last flowpath was closed in order (TCP FIN, directly, not through a relay)
    /// without the session being closed: the peer's process exited (see
    /// [`Session::path_ended_by_peer`]).
    #[error("connection to peer lost: peer exited without closing")]
    PeerExited,
}

impl SessionError {
    /// The ERROR frame to tell the peer, if it should be told: a code and a reason written
    /// from the peer's point of view.
    pub fn wire(&self) -> Option<(ErrorCode, String)> {
        match self {
            SessionError::Protocol(m) => Some((ErrorCode::Protocol, m.clone())),
            SessionError::PeerError { .. } => None,
            SessionError::IdleTimeout(d) => Some((
                ErrorCode::IdleTimeout,
                format!("no data for {}", humantime::format_duration(*d)),
            )),
            SessionError::Aborted(why) => Some((ErrorCode::Aborted, why.clone())),
            SessionError::Refused(why) => Some((ErrorCode::Refused, why.clone())),
            SessionError::Handshake(why) => Some((ErrorCode::AuthFailed, why.clone())),
            SessionError::KeyRefused(fp) => Some((
                ErrorCode::KeyRefused,
                format!("key {fp} is not in this listener's authorized keys"),
            )),
            // Nobody is left to tell.
            SessionError::PeerExited => None,
        }
    }
}

/// Why [`Session::handle_frame`] rejected a frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Only this flowpath is refused and has been removed (e.g. the far end of a new
    /// connection could not prove it knows the session secret): close its connection. The
    /// session goes on.
    #[error("flowpath refused: {0}")]
    PathRefused(String),
    /// The session failed; [`Session::error`] says the same.
    #[error("{0}")]
    Session(#[from] SessionError),
}

/// A flowpath attach that failed; the session itself is unaffected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AttachError {
    /// The other side's proof did not verify: wrong secret, forged or replayed.
    #[error("attach proof did not verify (forged, replayed or stale)")]
    BadProof,
    /// A frame that does not belong at this point of the attach.
    #[error("unexpected {0} during flowpath attach")]
    Unexpected(&'static str),
    /// A HELLO(resume) used a ticket this session did not issue, or one already used (a
    /// replay): the client should attach with HELLO(attach) instead.
    #[error("unknown or already used ticket")]
    StaleTicket,
    /// The session has failed (a finished session still takes attaches, to re-send its last
    /// FIN_ACK).
    #[error("session has ended")]
    SessionEnded,
}

/// Something the runtime may want to log or react to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A flowpath finished attaching and carries data.
    PathActive(PathId),
    /// A flowpath's connection was closed or replaced; its unacknowledged bytes are queued
    /// for the remaining paths.
    PathClosed(PathId),
    /// A flowpath went silent for the dead time and was retired: close its connection (and,
    /// on the client, replace it). Followed by [`Event::PathClosed`].
    PathDead(PathId),
    /// The peer's stream moved on (its next in-order bytes arrived) for the first time after
    /// a flowpath was (re)attached: `after` since that attach. Around a move, what the
    /// application waited for beyond the attach: the hole the peer had to re-send.
    DeliveryResumed {
        /// The flowpath that was attached.
        path: PathId,
        /// Time from the attach to these bytes.
        after: Duration,
    },
    /// The peer's stream has ended and all of it was read.
    PeerFinished,
    /// Both directions are closed and acknowledged: the session is complete.
    Finished,
    /// The session failed.
    Failed(SessionError),
}

/// Overall state of the stream, for the runtime.
#[derive(Debug)]
pub struct Session {
    role: Role,
    id: u64,
    secret: SessionSecret,
    config: Config,
    paths: BTreeMap<PathId, Path>,
    /// Counters of paths whose connection died, until a new connection takes the id over.
    retired_stats: BTreeMap<PathId, PathStats>,
    /// A flowpath was attached (id, when) at this receive offset, and the peer's stream has
    /// not moved past it since (see [`Event::DeliveryResumed`]).
    awaiting_delivery: Option<(PathId, Duration, u64)>,
    /// Next path id the client will use for a new flowpath.
    next_path_id: u32,
    /// Our stream: bytes not yet acknowledged, and which of them to send or re-send next.
    send: SendBuffer,
    /// The peer lets us send below this offset.
    peer_limit: u64,
    /// Closing of our direction: FIN queued, sent, acknowledged.
    send_close: SendClose,
    /// The peer's stream: bytes not yet read by the application, in order or not.
    recv: RecvBuffer,
    /// Closing of the peer's direction: our FIN_ACK owed, sent.
    recv_close: RecvClose,
    /// The path the peer's FIN last arrived on. Our FIN_ACK goes there while it is active:
    /// the peer re-sends its FIN only when that path dies, so an answer on another path that
    /// dies unnoticed (we may have finished and stopped our timers) would never be replaced.
    fin_path: Option<PathId>,
    /// The receive limit we last advertised.
    advertised_limit: u64,
    /// Last time stream data or a FIN was sent or received (for the idle timeout).
    last_activity: Duration,
    /// Set once the session has failed; nothing more is sent but ERROR.
    error: Option<SessionError>,
    /// Both directions finished.
    finished: bool,
    /// PeerFinished was reported.
    peer_finished_reported: bool,
    events: VecDeque<Event>,
    /// UDP port of the peer's control socket (0: none).
    peer_control_port: u16,
    /// Sequence number of our last RECONNECT (server) or of the newest one accepted (client).
    pub(in crate::proto) control_seq: u64,
    /// Resume tickets issued (server) or held (client).
    tickets: Tickets,
    /// Counter for PING tokens.
    next_token: u64,
    /// The session is encrypted: every connection gets record keys once attached.
    encrypted: bool,
    /// Encrypted sessions: the peer's static public key from the handshake (the listener's at
    /// a client, the client's at a server).
    peer_static: Option<[u8; 32]>,
    /// Plaintext staging for sealing (reused between calls).
    plain: crate::proto::out_queue::OutQueue,
    /// A frame from the peer was accepted since the open (for an encrypted session: the peer
    /// completed the handshake; before that, a server does not wait for it to come back).
    heard_from_peer: bool,
}

impl Session {
    pub(super) fn new(
        role: Role,
        id: u64,
        secret: SessionSecret,
        config: Config,
        peer_window: u64,
        now: Duration,
    ) -> Self {
        let max_payload = config.max_payload.clamp(1, MAX_DATA_PAYLOAD);
        let recv = RecvBuffer::new(config.recv_window as u64);
        let advertised_limit = recv.limit();
        Session {
            role,
            id,
            secret,
            send: SendBuffer::new(config.send_buffer, max_payload),
            config: Config {
                max_payload,
                ..config
            },
            paths: BTreeMap::new(),
            retired_stats: BTreeMap::new(),
            awaiting_delivery: None,
            next_path_id: 0,
            peer_limit: peer_window,
            send_close: SendClose::Open,
            recv,
            recv_close: RecvClose::Receiving,
            fin_path: None,
            advertised_limit,
            last_activity: now,
            error: None,
            finished: false,
            peer_finished_reported: false,
            events: VecDeque::new(),
            next_token: 1,
            tickets: Tickets::new(role),
            peer_control_port: 0,
            control_seq: 0,
            encrypted: false,
            peer_static: None,
            plain: Default::default(),
            heard_from_peer: false,
        }
    }

    /// True once a frame from the peer was accepted (an encrypted peer has then proven it
    /// completed the handshake).
    pub fn heard_from_peer(&self) -> bool {
        self.heard_from_peer
    }

    /// True if the session is encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.encrypted
    }

    /// Encrypted sessions: the peer's static public key, authenticated by the handshake (at a
    /// client the listener's, at a server the client's). None without encryption.
    pub fn peer_static(&self) -> Option<&[u8; 32]> {
        self.peer_static.as_ref()
    }

    /// Encrypted sessions: the record keys of path `id`'s connection: the sealer for our
    /// direction, and the opener for the peer's, which must go into that connection's deframer
    /// before another frame of it is parsed (see [`Deframer::set_opener`]), or be kept until
    /// the reply that starts the peer's records arrives. None for an unencrypted session.
    #[must_use = "the peer's next bytes on this connection are records: install the opener"]
    pub(super) fn path_keys(
        &self,
        id: PathId,
        client_nonce: &[u8; crate::proto::frame::NONCE_LEN],
        server_nonce: &[u8; crate::proto::frame::NONCE_LEN],
    ) -> Option<(Sealer, Opener)> {
        self.encrypted.then(|| {
            self.secret
                .path_keys(self.role == Role::Client, id.0, client_nonce, server_nonce)
        })
    }

    /// Encrypted sessions: keys path `id` and installs the peer's opener in `rx`, the deframer
    /// of the connection the path now runs on (the peer's records start with its next bytes).
    pub(super) fn key_path_now(
        &mut self,
        id: PathId,
        client_nonce: &[u8; crate::proto::frame::NONCE_LEN],
        server_nonce: &[u8; crate::proto::frame::NONCE_LEN],
        rx: &mut Deframer,
    ) {
        let keys = self.path_keys(id, client_nonce, server_nonce);
        if let (Some((seal, open)), Some(path)) = (keys, self.paths.get_mut(&id)) {
            path.seal = Some(seal);
            rx.set_opener(open);
        }
    }

    /// The settings this session runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The session secret, for the control datagrams' authentication.
    pub(in crate::proto) fn secret(&self) -> &SessionSecret {
        &self.secret
    }

    /// UDP port of the peer's control socket (0: none).
    pub fn peer_control_port(&self) -> u16 {
        self.peer_control_port
    }

    /// What the session is for (the client's choice in HELLO(open)).
    pub fn service(&self) -> Service {
        self.config.service
    }

    /// The session id: client half in the high 32 bits, server half in the low 32.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Ids of the paths that carry data.
    pub fn active_paths(&self) -> impl Iterator<Item = PathId> + '_ {
        self.paths
            .iter()
            .filter(|(_, p)| p.is_active())
            .map(|(&id, _)| id)
    }

    /// Statistics of every path the session has had (current and retired), by id.
    pub fn all_path_stats(&self) -> Vec<(PathId, PathStats)> {
        let mut all: BTreeMap<PathId, PathStats> = self.retired_stats.clone();
        for (&id, p) in &self.paths {
            all.insert(id, p.stats.clone());
        }
        all.into_iter().collect()
    }

    /// Statistics of path `id`.
    pub fn path_stats(&self, id: PathId) -> Option<&PathStats> {
        self.paths.get(&id).map(|p| &p.stats)
    }

    /// Bytes the application may write now (send buffer space).
    pub fn write_capacity(&self) -> usize {
        if self.send_close != SendClose::Open || self.error.is_some() {
            0
        } else {
            self.send.free()
        }
    }

    /// Queues stream bytes; returns how many were taken (0 when the send buffer is full).
    pub fn write(&mut self, data: &[u8]) -> usize {
        if self.send_close != SendClose::Open || self.error.is_some() {
            return 0;
        }
        self.send.write(data)
    }

    /// Queues as much of an owned chunk as fits, without copying (what is taken is gone from
    /// `data`); returns how many bytes were taken (0 when the send buffer is full).
    pub fn write_bytes(&mut self, data: &mut Bytes) -> usize {
        if self.send_close != SendClose::Open || self.error.is_some() {
            return 0;
        }
        self.send.write_bytes(data)
    }

    /// Ends our direction of the stream (half-close): a FIN follows the last byte written.
    pub fn close_write(&mut self) {
        self.send_close.close(self.send.end());
    }

    /// Takes up to `max` in-order received bytes. Opens the receive window as it goes.
    pub fn read_chunk(&mut self, max: usize) -> Option<Bytes> {
        let c = self.recv.read_chunk(max)?;
        // Window update: tell the peer once a quarter window has opened up.
        let limit = self.recv.limit();
        if limit - self.advertised_limit >= (self.config.recv_window as u64 / 4).max(1) {
            if let Some(p) = self
                .paths
                .values_mut()
                .filter(|p| p.is_active())
                .max_by_key(|p| p.last_recv)
            {
                p.ack_now = true;
            }
        }
        self.check_finished();
        Some(c)
    }

    /// Every peer stream byte below this offset has arrived (what we acknowledge).
    pub fn recv_cumulative(&self) -> u64 {
        self.recv.contiguous_end()
    }

    /// Stream bytes sent at least once (the highest offset the peer can acknowledge).
    pub(in crate::proto) fn bytes_sent_once(&self) -> u64 {
        self.send.sent_once()
    }

    /// Applies the peer's received offset learned out of band (a RECONNECT; the caller
    /// checked it is at most [`Session::bytes_sent_once`]).
    pub(in crate::proto) fn apply_peer_cumulative(&mut self, cum: u64) {
        self.on_cumulative(cum);
    }

    /// Retires every flowpath (the runtime closes their connections itself).
    pub(in crate::proto) fn retire_all_paths(&mut self) {
        let ids: Vec<PathId> = self.paths.keys().copied().collect();
        for id in ids {
            self.path_closed(id);
        }
    }

    /// Stream bytes waiting to be re-sent because the connection that carried them died.
    pub fn resend_pending(&self) -> u64 {
        self.send.resend_pending()
    }

    /// Bytes ready for [`Session::read_chunk`].
    pub fn readable(&self) -> u64 {
        self.recv.readable()
    }

    /// True once the peer's stream has ended and everything was read.
    pub fn peer_finished(&self) -> bool {
        self.recv.is_finished()
    }

    /// True once the peer's whole stream has arrived (not necessarily read) and our FIN_ACK for
    /// it has been sent: nothing more needs to come from or go to the peer for that direction.
    pub fn peer_complete_and_acked(&self) -> bool {
        self.recv.is_complete() && self.recv_close.answered()
    }

    /// True once our FIN was acknowledged: the peer has every byte we wrote.
    pub fn write_finished(&self) -> bool {
        self.send_close.is_acked()
    }

    /// True when both directions are closed and acknowledged.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The failure, if the session failed.
    pub fn error(&self) -> Option<&SessionError> {
        self.error.as_ref()
    }

    /// Next event for the runtime, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Stream bytes written by the application so far.
    pub fn bytes_written(&self) -> u64 {
        self.send.end()
    }

    /// Stream bytes the peer has acknowledged.
    pub fn bytes_acked(&self) -> u64 {
        self.send.acked()
    }

    /// Stream bytes delivered to the application so far.
    pub fn bytes_read(&self) -> u64 {
        self.recv.read_offset()
    }
}
