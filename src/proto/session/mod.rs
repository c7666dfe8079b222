//! The session: one reliable byte stream in each direction, carried over zero or more flowpaths.
//!
//! Driving it (all calls take the current time; none reads a clock):
//! - open: [`ClientHandshake`] on the client, [`Session::accept`] on the server;
//! - more flowpaths: [`Session::open_path`] / [`Session::reattach_path`] on the client,
//!   [`Session::challenge_attach`] + [`Session::complete_attach`] on the server;
//! - inbound frames: [`Session::handle_frame`]; a dead connection: [`Session::path_closed`];
//! - outbound frames for a path whose socket can take more: [`Session::poll_transmit`];
//! - timers: [`Session::poll_timeout`] then [`Session::handle_timeout`];
//! - application: [`Session::write`], [`Session::close_write`], [`Session::read_chunk`].

mod recv_buffer;
mod send_buffer;

pub use recv_buffer::{RecvBuffer, RecvError};
pub use send_buffer::SendBuffer;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand::RngCore;

use super::auth::{ProofSide, SessionSecret};
use super::frame::{ErrorCode, Frame, MAX_DATA_PAYLOAD, NONCE_LEN, RANDOM_LEN};
use super::path::{Path, PathId, PathState, PathStats};
use super::range_set::RangeSet;

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
    /// Send a PING on a path that has sent nothing for this long.
    pub keepalive: Duration,
    /// End the session when nothing was sent or received for this long.
    pub idle_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            send_buffer: 4 << 20,
            recv_window: 4 << 20,
            max_payload: MAX_DATA_PAYLOAD,
            ack_every: 256 << 10,
            ack_delay: Duration::from_millis(5),
            keepalive: Duration::from_secs(15),
            idle_timeout: None,
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
    #[error("peer ended the session: {code}{}", if reason.is_empty() { String::new() } else { format!(" ({reason})") })]
    PeerError {
        /// The peer's reason code.
        code: ErrorCode,
        /// The peer's explanation.
        reason: String,
    },
    /// Nothing was sent or received for the configured idle timeout.
    #[error("no traffic for {0:?} (idle timeout)")]
    IdleTimeout(Duration),
    /// The local application aborted the session.
    #[error("aborted locally")]
    Aborted,
}

impl SessionError {
    /// The ERROR code to tell the peer, if it should be told.
    pub fn wire_code(&self) -> Option<ErrorCode> {
        match self {
            SessionError::Protocol(_) => Some(ErrorCode::Protocol),
            SessionError::PeerError { .. } => None,
            SessionError::IdleTimeout(_) => Some(ErrorCode::IdleTimeout),
            SessionError::Aborted => Some(ErrorCode::Aborted),
        }
    }
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
    /// The session has ended.
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
    /// The peer's stream has ended and all of it was read.
    PeerFinished,
    /// Both directions are closed and acknowledged: the session is complete.
    Finished,
    /// The session failed.
    Failed(SessionError),
}

/// Client side of opening a session: send [`ClientHandshake::hello`], feed the reply to
/// [`ClientHandshake::handle_reply`].
#[derive(Debug)]
pub struct ClientHandshake {
    config: Config,
    client_half: u32,
    client_random: [u8; RANDOM_LEN],
    sent_at: Duration,
}

impl ClientHandshake {
    /// Starts opening a session; `now` is when the HELLO goes out (for the first RTT sample).
    pub fn new(config: Config, rng: &mut impl RngCore, now: Duration) -> Self {
        let mut client_random = [0u8; RANDOM_LEN];
        rng.fill_bytes(&mut client_random);
        ClientHandshake {
            config,
            client_half: rng.next_u32(),
            client_random,
            sent_at: now,
        }
    }

    /// The HELLO(open) frame to send.
    pub fn hello(&self) -> Frame {
        Frame::HelloOpen {
            client_half: self.client_half,
            client_random: self.client_random,
            window: self.config.recv_window as u64,
        }
    }

    /// Completes the open with the server's reply; the session's path 0 is active.
    pub fn handle_reply(self, reply: Frame, now: Duration) -> Result<Session, SessionError> {
        match reply {
            Frame::Welcome {
                session_id,
                server_random,
                window,
            } => {
                if (session_id >> 32) as u32 != self.client_half {
                    return Err(SessionError::Protocol(
                        "WELCOME names a session id that is not ours".into(),
                    ));
                }
                let secret = SessionSecret::derive(session_id, &self.client_random, &server_random);
                let mut s = Session::new(Role::Client, session_id, secret, self.config, window, now);
                let mut path = Path::new(PathState::Active, now);
                path.stats.on_rtt_sample(now.saturating_sub(self.sent_at));
                s.paths.insert(PathId(0), path);
                s.next_path_id = 1;
                s.events.push_back(Event::PathActive(PathId(0)));
                Ok(s)
            }
            Frame::Error { code, reason } => Err(SessionError::PeerError { code, reason }),
            other => Err(SessionError::Protocol(format!(
                "expected WELCOME, got {}",
                other.name()
            ))),
        }
    }
}

/// Server side of a flowpath attach between [`Session::challenge_attach`] and
/// [`Session::complete_attach`]. Holds the fresh server nonce, so each attach can succeed once.
#[derive(Debug)]
pub struct PendingAttach {
    path: PathId,
    client_nonce: [u8; NONCE_LEN],
    server_nonce: [u8; NONCE_LEN],
}

impl PendingAttach {
    /// The path id the client asked for.
    pub fn path(&self) -> PathId {
        self.path
    }
}

/// Overall state of the stream, for the runtime.
#[derive(Debug)]
pub struct Session {
    role: Role,
    id: u64,
    secret: SessionSecret,
    config: Config,
    paths: BTreeMap<PathId, Path>,
    /// Next path id the client will use for a new flowpath.
    next_path_id: u32,
    send: SendBuffer,
    /// First stream offset never sent on any path.
    next_new: u64,
    /// Ranges that were in flight on a path that died, to re-send on any path.
    retransmit: RangeSet,
    /// The peer lets us send below this offset.
    peer_limit: u64,
    /// Our stream's final length, once the application closed its side.
    local_fin: Option<u64>,
    /// The peer acknowledged our FIN.
    local_fin_acked: bool,
    /// Our FIN must be (re)sent on some path.
    fin_unsent: bool,
    recv: RecvBuffer,
    /// We owe the peer a FIN_ACK.
    fin_ack_owed: bool,
    /// The receive limit we last advertised.
    advertised_limit: u64,
    /// Last time anything was sent or received (for the idle timeout).
    last_activity: Duration,
    /// Set once the session has failed; nothing more is sent but ERROR.
    error: Option<SessionError>,
    /// Both directions finished.
    finished: bool,
    /// PeerFinished was reported.
    peer_finished_reported: bool,
    events: VecDeque<Event>,
    /// Counter for PING tokens.
    next_token: u64,
}

impl Session {
    fn new(
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
            next_path_id: 0,
            next_new: 0,
            retransmit: RangeSet::new(),
            peer_limit: peer_window,
            local_fin: None,
            local_fin_acked: false,
            fin_unsent: false,
            recv,
            fin_ack_owed: false,
            advertised_limit,
            last_activity: now,
            error: None,
            finished: false,
            peer_finished_reported: false,
            events: VecDeque::new(),
            next_token: 1,
        }
    }

    /// Server: accepts a HELLO(open). `taken` says whether a session id is already in use, so
    /// the server half can be re-drawn. Returns the session (path 0 active) and the WELCOME.
    pub fn accept(
        config: Config,
        hello: &Frame,
        rng: &mut impl RngCore,
        now: Duration,
        taken: impl Fn(u64) -> bool,
    ) -> Result<(Session, Frame), SessionError> {
        let Frame::HelloOpen {
            client_half,
            client_random,
            window,
        } = hello
        else {
            return Err(SessionError::Protocol(format!(
                "expected HELLO(open), got {}",
                hello.name()
            )));
        };
        let mut session_id;
        loop {
            session_id = (u64::from(*client_half) << 32) | u64::from(rng.next_u32());
            if !taken(session_id) {
                break;
            }
        }
        let mut server_random = [0u8; RANDOM_LEN];
        rng.fill_bytes(&mut server_random);
        let secret = SessionSecret::derive(session_id, client_random, &server_random);
        let my_window = config.recv_window as u64;
        let mut s = Session::new(Role::Server, session_id, secret, config, *window, now);
        let mut path = Path::new(PathState::Active, now);
        path.ping_now = true;
        s.paths.insert(PathId(0), path);
        s.events.push_back(Event::PathActive(PathId(0)));
        let welcome = Frame::Welcome {
            session_id,
            server_random,
            window: my_window,
        };
        Ok((s, welcome))
    }

    /// The session id (client half in the high 32 bits).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Which end this is.
    pub fn role(&self) -> Role {
        self.role
    }

    // ----- flowpaths -------------------------------------------------------------------------

    /// Client: starts a new flowpath; send the returned HELLO(attach) on a fresh connection.
    pub fn open_path(&mut self, rng: &mut impl RngCore, now: Duration) -> (PathId, Frame) {
        let id = PathId(self.next_path_id);
        self.next_path_id += 1;
        (id, self.reattach_path(id, rng, now))
    }

    /// Client: replaces flowpath `id` with a fresh connection (migration). Whatever the old
    /// connection had in flight is queued for re-sending. Send the returned HELLO(attach).
    pub fn reattach_path(&mut self, id: PathId, rng: &mut impl RngCore, now: Duration) -> Frame {
        debug_assert_eq!(self.role, Role::Client);
        self.retire_path(id);
        let mut client_nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut client_nonce);
        self.paths.insert(
            id,
            Path::new(PathState::AwaitChallenge { client_nonce }, now),
        );
        self.next_path_id = self.next_path_id.max(id.0 + 1);
        Frame::HelloAttach {
            session_id: self.id,
            path_id: id.0,
            client_nonce,
        }
    }

    /// Server: answers a HELLO(attach) for this session with a CHALLENGE. Nothing changes in
    /// the session until [`Session::complete_attach`] verifies the client's proof.
    pub fn challenge_attach(
        &self,
        hello: &Frame,
        rng: &mut impl RngCore,
    ) -> Result<(PendingAttach, Frame), AttachError> {
        let Frame::HelloAttach {
            path_id,
            client_nonce,
            ..
        } = hello
        else {
            return Err(AttachError::Unexpected(hello.name()));
        };
        if self.error.is_some() || self.finished {
            return Err(AttachError::SessionEnded);
        }
        let mut server_nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut server_nonce);
        let server_proof = self.secret.proof(
            ProofSide::Server,
            self.id,
            *path_id,
            client_nonce,
            &server_nonce,
        );
        let pending = PendingAttach {
            path: PathId(*path_id),
            client_nonce: *client_nonce,
            server_nonce,
        };
        let challenge = Frame::Challenge {
            server_nonce,
            server_proof,
            cumulative: self.recv.contiguous_end(),
        };
        Ok((pending, challenge))
    }

    /// Server: checks the client's ATTACH_PROOF; on success the path is active (replacing any
    /// older connection with the same id) and the client's resume offset is applied.
    pub fn complete_attach(
        &mut self,
        pending: PendingAttach,
        proof: &Frame,
        now: Duration,
    ) -> Result<PathId, AttachError> {
        let Frame::AttachProof {
            client_proof,
            cumulative,
        } = proof
        else {
            return Err(AttachError::Unexpected(proof.name()));
        };
        if self.error.is_some() || self.finished {
            return Err(AttachError::SessionEnded);
        }
        let ok = self.secret.verify(
            ProofSide::Client,
            self.id,
            pending.path.0,
            &pending.client_nonce,
            &pending.server_nonce,
            client_proof,
        );
        if !ok {
            return Err(AttachError::BadProof);
        }
        if *cumulative > self.next_new {
            return Err(AttachError::Unexpected("resume offset beyond what was sent"));
        }
        let id = pending.path;
        self.retire_path(id);
        let mut path = Path::new(PathState::Active, now);
        path.ack_now = true;
        path.ping_now = true;
        self.paths.insert(id, path);
        self.on_cumulative(*cumulative);
        self.events.push_back(Event::PathActive(id));
        self.last_activity = now;
        Ok(id)
    }

    /// The connection of path `id` is gone (reset, closed, or given up on). Its in-flight
    /// bytes are queued for the remaining paths.
    pub fn path_closed(&mut self, id: PathId) {
        if self.retire_path(id) {
            self.paths.remove(&id);
        }
    }

    /// Moves a path's in-flight data to the retransmit queue; true if the path existed.
    fn retire_path(&mut self, id: PathId) -> bool {
        let Some(path) = self.paths.get_mut(&id) else {
            return false;
        };
        let acked = self.send.acked();
        for &(s, e) in &path.inflight {
            if e > acked {
                self.retransmit.insert(s.max(acked)..e);
            }
        }
        path.inflight.clear();
        if path.fin_inflight && !self.local_fin_acked {
            self.fin_unsent = true;
        }
        let was_active = path.is_active();
        if was_active {
            self.events.push_back(Event::PathClosed(id));
        }
        true
    }

    /// Ids of the paths that carry data.
    pub fn active_paths(&self) -> impl Iterator<Item = PathId> + '_ {
        self.paths
            .iter()
            .filter(|(_, p)| p.is_active())
            .map(|(&id, _)| id)
    }

    /// Statistics of path `id`.
    pub fn path_stats(&self, id: PathId) -> Option<&PathStats> {
        self.paths.get(&id).map(|p| &p.stats)
    }

    // ----- inbound ---------------------------------------------------------------------------

    /// Processes one frame received on path `id`. An `Err` means the session has failed; send
    /// whatever [`Session::poll_transmit`] still yields (an ERROR) and close.
    pub fn handle_frame(
        &mut self,
        id: PathId,
        frame: Frame,
        now: Duration,
    ) -> Result<(), SessionError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        let r = self.handle_frame_inner(id, frame, now);
        if let Err(e) = &r {
            self.fail(e.clone());
        }
        r
    }

    fn handle_frame_inner(
        &mut self,
        id: PathId,
        frame: Frame,
        now: Duration,
    ) -> Result<(), SessionError> {
        let proto = |m: String| Err(SessionError::Protocol(m));
        let Some(path) = self.paths.get_mut(&id) else {
            return proto(format!("frame on unknown path {id}"));
        };
        path.last_recv = now;
        self.last_activity = now;
        if let PathState::AwaitChallenge { client_nonce } = path.state {
            return match frame {
                Frame::Challenge {
                    server_nonce,
                    server_proof,
                    cumulative,
                } => {
                    let ok = self.secret.verify(
                        ProofSide::Server,
                        self.id,
                        id.0,
                        &client_nonce,
                        &server_nonce,
                        &server_proof,
                    );
                    if !ok {
                        // An impostor or a stale server: drop just this path.
                        self.paths.remove(&id);
                        return proto(format!("server's proof on path {id} did not verify"));
                    }
                    if cumulative > self.next_new {
                        return proto("resume offset beyond what was sent".into());
                    }
                    let client_proof = self.secret.proof(
                        ProofSide::Client,
                        self.id,
                        id.0,
                        &client_nonce,
                        &server_nonce,
                    );
                    let cum = self.recv.contiguous_end();
                    let path = self.paths.get_mut(&id).expect("checked above");
                    path.state = PathState::Active;
                    path.ping_now = true;
                    path.control.push_back(Frame::AttachProof {
                        client_proof,
                        cumulative: cum,
                    });
                    self.on_cumulative(cumulative);
                    self.events.push_back(Event::PathActive(id));
                    Ok(())
                }
                Frame::Error { code, reason } => {
                    self.paths.remove(&id);
                    Err(SessionError::PeerError { code, reason })
                }
                other => proto(format!(
                    "expected CHALLENGE on path {id}, got {}",
                    other.name()
                )),
            };
        }
        match frame {
            Frame::Data { offset, payload } => {
                let len = payload.len() as u64;
                self.recv
                    .insert(offset, payload)
                    .map_err(|e| SessionError::Protocol(e.to_string()))?;
                let path = self.paths.get_mut(&id).expect("checked above");
                path.stats.bytes_received += len;
                path.conn_bytes_received += len;
                path.unacked_bytes += len;
                if path.unacked_bytes >= self.config.ack_every {
                    path.ack_now = true;
                } else if path.ack_deadline.is_none() {
                    path.ack_deadline = Some(now + self.config.ack_delay);
                }
                if self.recv.is_complete() {
                    self.fin_ack_owed = true;
                }
            }
            Frame::Ack {
                cumulative,
                limit,
                path_bytes,
            } => {
                if cumulative > self.next_new {
                    return proto(format!(
                        "ACK for offset {cumulative}, but only {} bytes were sent",
                        self.next_new
                    ));
                }
                path.stats.peer_received = path_bytes;
                self.peer_limit = self.peer_limit.max(limit);
                self.on_cumulative(cumulative);
            }
            Frame::Ping { token } => path.pong_due = Some(token),
            Frame::Pong { token } => {
                if let Some((t, sent)) = path.ping_outstanding {
                    if t == token {
                        path.stats.on_rtt_sample(now.saturating_sub(sent));
                        path.ping_outstanding = None;
                    }
                }
            }
            Frame::Fin { final_offset } => {
                self.recv
                    .set_fin(final_offset)
                    .map_err(|e| SessionError::Protocol(e.to_string()))?;
                if self.recv.is_complete() {
                    self.fin_ack_owed = true;
                }
            }
            Frame::FinAck { final_offset } => {
                if self.local_fin != Some(final_offset) {
                    return proto(format!("FIN_ACK for offset {final_offset}, which is not our FIN"));
                }
                self.local_fin_acked = true;
                self.fin_unsent = false;
                for p in self.paths.values_mut() {
                    p.fin_inflight = false;
                }
                self.on_cumulative(final_offset);
            }
            Frame::Error { code, reason } => return Err(SessionError::PeerError { code, reason }),
            other => return proto(format!("unexpected {} on an active path", other.name())),
        }
        self.check_finished();
        Ok(())
    }

    /// Applies a cumulative acknowledgement of our stream.
    fn on_cumulative(&mut self, cum: u64) {
        self.send.ack(cum);
        self.retransmit.remove_below(cum);
        for p in self.paths.values_mut() {
            p.on_cumulative(cum);
        }
    }

    fn check_finished(&mut self) {
        if !self.peer_finished_reported && self.recv.is_finished() {
            self.peer_finished_reported = true;
            self.events.push_back(Event::PeerFinished);
        }
        if !self.finished && self.local_fin_acked && self.recv.is_finished() && !self.fin_ack_owed
        {
            self.finished = true;
            self.events.push_back(Event::Finished);
        }
    }

    fn fail(&mut self, e: SessionError) {
        if self.error.is_none() {
            if let Some(code) = e.wire_code() {
                let reason = e.to_string();
                for p in self.paths.values_mut() {
                    p.control.push_back(Frame::Error {
                        code,
                        reason: reason.clone(),
                    });
                }
            }
            self.events.push_back(Event::Failed(e.clone()));
            self.error = Some(e);
        }
    }

    /// Ends the session at once, telling the peer (e.g. on Ctrl-C).
    pub fn abort(&mut self) {
        self.fail(SessionError::Aborted);
    }

    // ----- outbound --------------------------------------------------------------------------

    /// Appends frames for path `id` to `out`, stopping once `out` holds about `budget` bytes.
    /// Returns true if anything was appended. Control frames come first, then re-sends, then new
    /// data, then FIN.
    pub fn poll_transmit(
        &mut self,
        id: PathId,
        now: Duration,
        out: &mut BytesMut,
        budget: usize,
    ) -> bool {
        let start_len = out.len();
        let cum = self.recv.contiguous_end();
        let limit = self.recv.limit();
        let Some(path) = self.paths.get_mut(&id) else {
            return false;
        };
        while let Some(f) = path.control.pop_front() {
            f.encode(out);
        }
        if self.error.is_some() || !path.is_active() {
            return Self::sent(path, out, start_len, now);
        }
        if let Some(token) = path.pong_due.take() {
            Frame::Pong { token }.encode(out);
        }
        let ack_due = path.ack_now || path.ack_deadline.is_some_and(|d| d <= now);
        if ack_due {
            Frame::Ack {
                cumulative: cum,
                limit,
                path_bytes: path.conn_bytes_received,
            }
            .encode(out);
            path.ack_now = false;
            path.ack_deadline = None;
            path.unacked_bytes = 0;
            self.advertised_limit = self.advertised_limit.max(limit);
        }
        if self.fin_ack_owed {
            if let Some(fin) = self.recv.is_complete().then(|| self.recv.contiguous_end()) {
                Frame::FinAck { final_offset: fin }.encode(out);
            }
            self.fin_ack_owed = false;
        }
        let keepalive_due = now.saturating_sub(path.last_sent) >= self.config.keepalive;
        if (path.ping_now || keepalive_due) && path.ping_outstanding.is_none() {
            let token = self.next_token;
            self.next_token += 1;
            Frame::Ping { token }.encode(out);
            path.ping_outstanding = Some((token, now));
            path.ping_now = false;
        }
        // Re-sends of bytes lost with a dead path.
        while out.len() - start_len < budget {
            let Some(r) = self.retransmit.pop_front(self.config.max_payload as u64) else {
                break;
            };
            let Some(chunk) = self.send.get(r.start, (r.end - r.start) as usize) else {
                continue; // acknowledged meanwhile
            };
            let end = r.start + chunk.len() as u64;
            if end < r.end {
                self.retransmit.insert(end..r.end);
            }
            Frame::encode_data_header(r.start, chunk.len(), out);
            out.extend_from_slice(&chunk);
            path.record_sent(r.start, end);
            path.stats.bytes_resent += chunk.len() as u64;
        }
        // New bytes, within the peer's window.
        while out.len() - start_len < budget {
            let allowed = self.peer_limit.min(self.send.end());
            if self.next_new >= allowed {
                break;
            }
            let max = (allowed - self.next_new).min(self.config.max_payload as u64) as usize;
            let chunk = self.send.get(self.next_new, max).expect("unsent bytes are held");
            let (s, e) = (self.next_new, self.next_new + chunk.len() as u64);
            Frame::encode_data_header(s, chunk.len(), out);
            out.extend_from_slice(&chunk);
            path.record_sent(s, e);
            path.stats.bytes_sent += chunk.len() as u64;
            self.next_new = e;
        }
        if let Some(fin) = self.local_fin {
            if self.fin_unsent && self.next_new == fin && self.retransmit.is_empty() {
                Frame::Fin { final_offset: fin }.encode(out);
                self.fin_unsent = false;
                path.fin_inflight = true;
            }
        }
        let path = self.paths.get_mut(&id).expect("checked above");
        let any = Self::sent(path, out, start_len, now);
        if any {
            self.last_activity = now;
        }
        self.check_finished();
        any
    }

    fn sent(path: &mut Path, out: &BytesMut, start_len: usize, now: Duration) -> bool {
        let any = out.len() > start_len;
        if any {
            path.last_sent = now;
        }
        any
    }

    /// True when [`Session::poll_transmit`] on `id` would produce something now.
    pub fn wants_transmit(&self, id: PathId, now: Duration) -> bool {
        let Some(path) = self.paths.get(&id) else {
            return false;
        };
        if !path.control.is_empty() {
            return true;
        }
        if self.error.is_some() || !path.is_active() {
            return false;
        }
        path.pong_due.is_some()
            || path.ack_now
            || path.ack_deadline.is_some_and(|d| d <= now)
            || self.fin_ack_owed
            || (path.ping_now && path.ping_outstanding.is_none())
            || (now.saturating_sub(path.last_sent) >= self.config.keepalive
                && path.ping_outstanding.is_none())
            || !self.retransmit.is_empty()
            || self.next_new < self.peer_limit.min(self.send.end())
            || (self.fin_unsent && self.local_fin == Some(self.next_new))
    }

    // ----- timers ----------------------------------------------------------------------------

    /// The earliest time at which [`Session::handle_timeout`] (or a `poll_transmit`) has work.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.error.is_some() || self.finished {
            return None;
        }
        let mut t: Option<Duration> = None;
        let mut min = |d: Duration| t = Some(t.map_or(d, |x| x.min(d)));
        if let Some(idle) = self.config.idle_timeout {
            min(self.last_activity + idle);
        }
        for p in self.paths.values().filter(|p| p.is_active()) {
            if let Some(d) = p.ack_deadline {
                min(d);
            }
            if p.ping_outstanding.is_none() {
                min(p.last_sent + self.config.keepalive);
            }
        }
        t
    }

    /// Advances timers to `now`. Idle timeout fails the session; due ACKs and keepalives are
    /// produced by the next `poll_transmit` (see [`Session::wants_transmit`]).
    pub fn handle_timeout(&mut self, now: Duration) {
        if self.error.is_some() || self.finished {
            return;
        }
        if let Some(idle) = self.config.idle_timeout {
            if now >= self.last_activity + idle {
                self.fail(SessionError::IdleTimeout(idle));
            }
        }
    }

    // ----- application -----------------------------------------------------------------------

    /// Bytes the application may write now (send buffer space).
    pub fn write_capacity(&self) -> usize {
        if self.local_fin.is_some() || self.error.is_some() {
            0
        } else {
            self.send.free()
        }
    }

    /// Queues stream bytes; returns how many were taken (0 when the send buffer is full).
    pub fn write(&mut self, data: &[u8]) -> usize {
        if self.local_fin.is_some() || self.error.is_some() {
            return 0;
        }
        self.send.write(data)
    }

    /// Queues an owned chunk without copying; false if it does not fit whole now.
    pub fn write_bytes(&mut self, data: Bytes) -> bool {
        if self.local_fin.is_some() || self.error.is_some() {
            return false;
        }
        self.send.write_bytes(data)
    }

    /// Ends our direction of the stream (half-close): a FIN follows the last byte written.
    pub fn close_write(&mut self) {
        if self.local_fin.is_none() {
            self.local_fin = Some(self.send.end());
            self.fin_unsent = true;
        }
    }

    /// Takes up to `max` in-order received bytes. Opens the receive window as it goes.
    pub fn read_chunk(&mut self, max: usize) -> Option<Bytes> {
        let c = self.recv.read_chunk(max)?;
        // Window update: tell the peer once a quarter window has opened up.
        let limit = self.recv.limit();
        if limit - self.advertised_limit >= (self.config.recv_window as u64 / 4).max(1) {
            if let Some(p) = self.paths.values_mut().filter(|p| p.is_active()).max_by_key(|p| p.last_recv) {
                p.ack_now = true;
            }
        }
        self.check_finished();
        Some(c)
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
        self.recv.is_complete() && !self.fin_ack_owed
    }

    /// True once our FIN was acknowledged: the peer has every byte we wrote.
    pub fn write_finished(&self) -> bool {
        self.local_fin_acked
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
