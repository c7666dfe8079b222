//! Opening a session and attaching, replacing and retiring its flowpaths.

use std::time::Duration;

use rand::RngCore;

use super::{AttachError, Config, Event, FrameError, Role, Session, SessionError};
use crate::proto::auth::{ProofSide, SessionSecret};
use bytes::{Bytes, BytesMut};

use crate::proto::frame::{ErrorCode, Frame, NONCE_LEN, RANDOM_LEN};
use crate::proto::handshake::{self, CryptoKind};
use crate::proto::path::{Path, PathId, PathState};

/// Client side of opening a session: send [`ClientHandshake::hello`], feed the reply to
/// [`ClientHandshake::handle_reply`].
pub struct ClientHandshake {
    config: Config,
    client_half: u32,
    client_random: [u8; RANDOM_LEN],
    sent_at: Duration,
    /// Encrypted sessions: the Noise state after our first message, and that message.
    noise: Option<(snow::HandshakeState, Bytes)>,
}

impl std::fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ClientHandshake({:08x}, encrypted: {})",
            self.client_half,
            self.noise.is_some()
        )
    }
}

/// The bytes both ends bind into the Noise handshake as its prologue: HELLO(open) without its
/// handshake message.
fn prologue(hello: &Frame) -> Vec<u8> {
    let mut h = hello.clone();
    if let Frame::HelloOpen { handshake, .. } = &mut h {
        *handshake = Bytes::new();
    }
    let mut out = BytesMut::new();
    out.extend_from_slice(b"msock hello v1");
    h.encode(&mut out);
    out.to_vec()
}

/// The WELCOME fields the server repeats inside its encrypted handshake payload.
fn welcome_fields(welcome: &Frame) -> Vec<u8> {
    let mut w = welcome.clone();
    if let Frame::Welcome { handshake, .. } = &mut w {
        *handshake = Bytes::new();
    }
    let mut out = BytesMut::new();
    w.encode(&mut out);
    out.to_vec()
}

/// Server: refuses a client whose encryption does not match ours (never downgrades).
fn check_crypto(config: &Config, offered: CryptoKind) -> Result<(), SessionError> {
    let refuse = |m: &str| Err(SessionError::Refused(m.to_owned()));
    match (config.encrypt, offered, config.psk.is_some()) {
        (true, CryptoKind::None, _) => refuse(
            "this listener requires encryption and the client has it off (--no-encrypt): \
             use --no-encrypt on both ends or on neither",
        ),
        (false, CryptoKind::Noise | CryptoKind::NoisePsk, _) => refuse(
            "this listener has encryption off (--no-encrypt) and the client has it on: \
             use --no-encrypt on both ends or on neither",
        ),
        (true, CryptoKind::Noise, true) => {
            refuse("this listener requires a pre-shared key: give the client --psk-file")
        }
        (true, CryptoKind::NoisePsk, false) => {
            refuse("the client uses a pre-shared key (--psk-file) and this listener has none")
        }
        _ => Ok(()),
    }
}

/// Server: answers the client's Noise message; returns the session secret and our message
/// (carrying the WELCOME fields in its encrypted payload).
fn respond(
    config: &Config,
    hello: &Frame,
    msg1: &[u8],
    welcome: &Frame,
    session_id: u64,
    rng: &mut impl RngCore,
) -> Result<(SessionSecret, Bytes), SessionError> {
    let identity = config.identity.as_ref().ok_or_else(|| {
        SessionError::Refused("this listener has no key for encrypted sessions".into())
    })?;
    let pro = prologue(hello);
    let bad = |_| SessionError::Protocol("malformed Noise handshake message".into());
    let mut b = snow::Builder::with_resolver(
        handshake::params(config.psk.is_some()),
        handshake::resolver(rng),
    )
    .prologue(&pro)
    .map_err(bad)?
    .local_private_key(&identity.private)
    .map_err(bad)?;
    if let Some(k) = config.psk.as_ref() {
        b = b.psk(2, k).map_err(bad)?;
    }
    let mut state = b.build_responder().map_err(bad)?;
    let mut scratch = vec![0u8; msg1.len().max(64)];
    state.read_message(msg1, &mut scratch).map_err(bad)?;
    let mut msg = vec![0u8; 1024];
    let n = state
        .write_message(&welcome_fields(welcome), &mut msg)
        .map_err(bad)?;
    msg.truncate(n);
    let hash = state.get_handshake_hash().to_vec();
    let split = state.dangerously_get_raw_split();
    Ok((
        SessionSecret::from_handshake(split, &hash, session_id),
        Bytes::from(msg),
    ))
}

fn crypto_kind(config: &Config) -> CryptoKind {
    match (config.encrypt, config.psk.is_some()) {
        (false, _) => CryptoKind::None,
        (true, false) => CryptoKind::Noise,
        (true, true) => CryptoKind::NoisePsk,
    }
}

impl ClientHandshake {
    /// Starts opening a session; `now` is when the HELLO goes out (for the first RTT sample).
    pub fn new(config: Config, rng: &mut impl RngCore, now: Duration) -> Self {
        let mut client_random = [0u8; RANDOM_LEN];
        rng.fill_bytes(&mut client_random);
        let mut hs = ClientHandshake {
            config,
            client_half: rng.next_u32(),
            client_random,
            sent_at: now,
            noise: None,
        };
        if hs.config.encrypt {
            let pro = prologue(&hs.hello());
            let psk = hs.config.psk;
            let mut b = snow::Builder::with_resolver(
                handshake::params(psk.is_some()),
                handshake::resolver(rng),
            )
            .prologue(&pro)
            .expect("prologue accepted");
            if let Some(k) = psk.as_ref() {
                b = b.psk(2, k).expect("psk2 accepted");
            }
            let mut state = b.build_initiator().expect("valid Noise initiator");
            let mut msg = vec![0u8; 256];
            let n = state
                .write_message(&[], &mut msg)
                .expect("first Noise message");
            msg.truncate(n);
            hs.noise = Some((state, Bytes::from(msg)));
        }
        hs
    }

    /// The HELLO(open) frame to send.
    pub fn hello(&self) -> Frame {
        Frame::HelloOpen {
            client_half: self.client_half,
            client_random: self.client_random,
            window: self.config.recv_window as u64,
            control_port: self.config.control_port,
            service: self.config.service,
            crypto: crypto_kind(&self.config).to_wire(),
            handshake: self
                .noise
                .as_ref()
                .map_or_else(Bytes::new, |(_, m)| m.clone()),
        }
    }

    /// Completes the open with the server's reply; the session's path 0 is active.
    pub fn handle_reply(self, reply: Frame, now: Duration) -> Result<Session, SessionError> {
        match reply {
            Frame::Welcome {
                session_id,
                server_random,
                window,
                control_port,
                ref handshake,
            } => {
                if (session_id >> 32) as u32 != self.client_half {
                    return Err(SessionError::Protocol(
                        "WELCOME names a session id that is not ours".into(),
                    ));
                }
                let (secret, peer_static) =
                    match self.noise {
                        None if !handshake.is_empty() => return Err(SessionError::Protocol(
                            "the server answered an unencrypted HELLO with an encrypted handshake"
                                .into(),
                        )),
                        None => (
                            SessionSecret::derive(session_id, &self.client_random, &server_random),
                            None,
                        ),
                        Some((mut state, _)) => {
                            if handshake.is_empty() {
                                return Err(SessionError::Protocol(
                                    "the server answered without encryption".into(),
                                ));
                            }
                            let mut payload = vec![0u8; handshake.len()];
                            let n = state.read_message(handshake, &mut payload).map_err(|_| {
                                SessionError::Handshake(
                                "the server's reply does not verify: the pre-shared keys differ, \
                                 or someone tampered with the connection"
                                    .into(),
                            )
                            })?;
                            if payload[..n] != welcome_fields(&reply)[..] {
                                return Err(SessionError::Handshake(
                                    "WELCOME was altered on the way".into(),
                                ));
                            }
                            let peer: [u8; 32] = state
                                .get_remote_static()
                                .and_then(|k| k.try_into().ok())
                                .ok_or_else(|| SessionError::Handshake("no server key".into()))?;
                            let hash = state.get_handshake_hash().to_vec();
                            let split = state.dangerously_get_raw_split();
                            (
                                SessionSecret::from_handshake(split, &hash, session_id),
                                Some(peer),
                            )
                        }
                    };
                let encrypted = peer_static.is_some();
                let mut s =
                    Session::new(Role::Client, session_id, secret, self.config, window, now);
                s.encrypted = encrypted;
                s.peer_static = peer_static;
                let mut path = Path::new(PathState::Active, now);
                path.stats.on_rtt_sample(now.saturating_sub(self.sent_at));
                s.paths.insert(PathId(0), path);
                s.key_path(PathId(0), &[0; NONCE_LEN], &[0; NONCE_LEN], false);
                s.next_path_id = 1;
                s.peer_control_port = control_port;
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

impl Session {
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
            control_port,
            service,
            crypto,
            handshake,
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
        let offered = CryptoKind::from_wire(*crypto).ok_or_else(|| {
            SessionError::Refused(format!(
                "unknown encryption {crypto} (the client is a newer msock?)"
            ))
        })?;
        check_crypto(&config, offered)?;
        let mut server_random = [0u8; RANDOM_LEN];
        rng.fill_bytes(&mut server_random);
        let my_window = config.recv_window as u64;
        let my_control_port = config.control_port;
        let mut welcome = Frame::Welcome {
            session_id,
            server_random,
            window: my_window,
            control_port: my_control_port,
            handshake: Bytes::new(),
        };
        let secret = if offered == CryptoKind::None {
            SessionSecret::derive(session_id, client_random, &server_random)
        } else {
            let (secret, msg) = respond(&config, hello, handshake, &welcome, session_id, rng)?;
            if let Frame::Welcome { handshake, .. } = &mut welcome {
                *handshake = msg;
            }
            secret
        };
        let encrypted = offered != CryptoKind::None;
        let mut s = Session::new(Role::Server, session_id, secret, config, *window, now);
        s.encrypted = encrypted;
        s.config.service = *service;
        let mut path = Path::new(PathState::Active, now);
        path.ping_now = true;
        s.paths.insert(PathId(0), path);
        s.peer_control_port = *control_port;
        // Two tickets up front, so that the first moves need no CHALLENGE round trip.
        s.issue_ticket(PathId(0));
        s.issue_ticket(PathId(0));
        s.key_path(PathId(0), &[0; NONCE_LEN], &[0; NONCE_LEN], false);
        s.events.push_back(Event::PathActive(PathId(0)));
        Ok((s, welcome))
    }

    /// Client: a path id for a flowpath to be connected later (its HELLO then comes from
    /// [`Session::reattach_path`]).
    pub fn allocate_path_id(&mut self) -> PathId {
        let id = PathId(self.next_path_id);
        self.next_path_id += 1;
        id
    }

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
        self.next_path_id = self.next_path_id.max(id.0 + 1);
        if let Some(hello) = self.resume_hello(id, client_nonce, now) {
            return hello;
        }
        let path = self.fresh_path(id, PathState::AwaitChallenge { client_nonce }, now);
        self.paths.insert(id, path);
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
        // A finished session still takes attaches: its last FIN_ACK may have been lost with
        // the path, and the peer can only finish once it is re-sent on a new one.
        if self.error.is_some() {
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
            self.recv.contiguous_end(),
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
        self.check_client_attach(
            pending.path.0,
            &pending.client_nonce,
            &pending.server_nonce,
            client_proof,
            *cumulative,
        )?;
        let id = pending.path;
        self.activate_attached(id, *cumulative, now);
        self.key_path(id, &pending.client_nonce, &pending.server_nonce, false);
        Ok(id)
    }

    /// Server: whether a client's attach of path `pid` may go ahead: the session has not
    /// failed, the proof over both nonces verifies, and the resume offset is one we reached.
    /// A finished session still takes attaches: its last FIN_ACK may have been lost with the
    /// path, and the peer can only finish once it is re-sent on a new one.
    pub(super) fn check_client_attach(
        &self,
        pid: u32,
        client_nonce: &[u8; NONCE_LEN],
        server_nonce: &[u8; NONCE_LEN],
        client_proof: &[u8; crate::proto::frame::PROOF_LEN],
        cumulative: u64,
    ) -> Result<(), AttachError> {
        if self.error.is_some() {
            return Err(AttachError::SessionEnded);
        }
        let ok = self.secret.verify(
            ProofSide::Client,
            self.id,
            pid,
            client_nonce,
            server_nonce,
            cumulative,
            client_proof,
        );
        if !ok {
            return Err(AttachError::BadProof);
        }
        if cumulative > self.next_new {
            return Err(AttachError::Unexpected(
                "resume offset beyond what was sent",
            ));
        }
        Ok(())
    }

    /// Server: a verified attach of path `id` (new, or replacing the connection that had the
    /// id). `cumulative` is the client's resume offset, already checked.
    pub(super) fn activate_attached(&mut self, id: PathId, cumulative: u64, now: Duration) {
        self.retire_path(id);
        let mut path = self.fresh_path(id, PathState::Active, now);
        path.ack_now = true;
        path.ping_now = true;
        self.paths.insert(id, path);
        self.on_cumulative(cumulative);
        self.issue_ticket(id);
        self.events.push_back(Event::PathActive(id));
    }

    /// A new connection for path `id`, carrying over the counters of the connection it
    /// replaces (RTT and rate estimates start afresh: the route may differ).
    pub(super) fn fresh_path(&mut self, id: PathId, state: PathState, now: Duration) -> Path {
        let mut path = Path::new(state, now);
        let old = self.paths.get(&id).map(|p| p.stats.clone());
        if let Some(stats) = old.or_else(|| self.retired_stats.remove(&id)) {
            path.stats = stats.for_new_connection();
        }
        path
    }

    /// The connection of path `id` is gone (reset, closed, or given up on). Its in-flight
    /// bytes are queued for the remaining paths.
    pub fn path_closed(&mut self, id: PathId) {
        if self.retire_path(id) {
            if let Some(p) = self.paths.remove(&id) {
                self.retired_stats.insert(id, p.stats);
            }
        }
    }

    /// Moves a path's in-flight data to the retransmit queue; true if the path existed.
    pub(super) fn retire_path(&mut self, id: PathId) -> bool {
        let Some(path) = self.paths.get_mut(&id) else {
            return false;
        };
        let acked = self.send.acked();
        for &(s, e) in &path.inflight {
            if e > acked {
                self.retransmit.insert(s.max(acked)..e);
                self.resend_confirmed = false;
            }
        }
        path.inflight.clear();
        if path.fin_inflight && !self.local_fin_acked {
            self.fin_unsent = true;
        }
        let was_active = path.is_active();
        if was_active {
            self.events.push_back(Event::PathClosed(id));
            // Feedback sent on this path may have died with it: a window update or our
            // FIN_ACK. Send both again on the other paths (or the next one attached).
            if self.recv.is_complete() {
                self.fin_ack_owed = true;
            }
            for (&other, p) in self.paths.iter_mut() {
                if other != id && p.is_active() {
                    p.ack_now = true;
                }
            }
        }
        true
    }

    /// Client: the server's answer on a path being attached: CHALLENGE to a HELLO(attach)
    /// (`ticket` None) or RESUMED to a HELLO(resume) (`ticket` is the nonce it used). Either
    /// way the server must prove it knows the secret over both nonces; then the path is active
    /// and the server's resume offset applies. A refusal closes just this path, unless the
    /// server no longer knows the session at all.
    pub(super) fn on_attach_reply(
        &mut self,
        id: PathId,
        client_nonce: [u8; NONCE_LEN],
        ticket: Option<[u8; NONCE_LEN]>,
        frame: Frame,
        now: Duration,
    ) -> Result<(), FrameError> {
        let (server_nonce, server_proof, cumulative) = match (frame, ticket) {
            (
                Frame::Challenge {
                    server_nonce,
                    server_proof,
                    cumulative,
                },
                None,
            ) => (server_nonce, server_proof, cumulative),
            (
                Frame::Resumed {
                    server_proof,
                    cumulative,
                },
                Some(ticket),
            ) => (ticket, server_proof, cumulative),
            (Frame::Error { code, reason }, _) => {
                self.path_closed(id);
                if code == ErrorCode::UnknownSession {
                    // The server no longer has the session (it restarted, or gave up
                    // waiting): no flowpath can ever attach again.
                    return Err(SessionError::PeerError { code, reason }.into());
                }
                if ticket.is_some() {
                    // Most likely a ticket the server no longer holds: attach the slow way.
                    self.tickets.clear();
                }
                return Err(FrameError::PathRefused(format!(
                    "attach refused: {code}: {reason}"
                )));
            }
            (other, _) => {
                self.path_closed(id);
                return Err(FrameError::PathRefused(format!(
                    "unexpected {} while attaching path {id}",
                    other.name()
                )));
            }
        };
        let ok = self.secret.verify(
            ProofSide::Server,
            self.id,
            id.0,
            &client_nonce,
            &server_nonce,
            cumulative,
            &server_proof,
        );
        if !ok {
            // An impostor (or a server that lost the session): drop just this path, so that
            // whoever answers one connection cannot end the session.
            self.path_closed(id);
            return Err(FrameError::PathRefused(format!(
                "the server on path {id} failed its attach proof (it does not know the session secret)"
            )));
        }
        if cumulative > self.next_new {
            return Err(SessionError::Protocol("resume offset beyond what was sent".into()).into());
        }
        let our_cumulative = self.recv.contiguous_end();
        let path = self.paths.get_mut(&id).expect("caller checked");
        if ticket.is_none() {
            let client_proof = self.secret.proof(
                ProofSide::Client,
                self.id,
                id.0,
                &client_nonce,
                &server_nonce,
                our_cumulative,
            );
            let proof = Frame::AttachProof {
                client_proof,
                cumulative: our_cumulative,
            };
            // Encrypted: the proof is the last frame in clear; the server's records start
            // right after its CHALLENGE.
            if self.encrypted {
                path.clear_first = Some(proof);
            } else {
                path.control.push_back(proof);
            }
        } else {
            // Encrypted: the server's records start right after its RESUMED.
            path.opener = path.opener_after_reply.take();
        }
        path.state = PathState::Active;
        if ticket.is_none() {
            self.key_path(id, &client_nonce, &server_nonce, false);
        }
        let path = self.paths.get_mut(&id).expect("caller checked");
        // The attach timeout is over; the dead-time clock restarts as for any path.
        path.awaiting_since = path.has_outstanding().then_some(now);
        path.ping_now = true;
        // Re-advertise our window: an update may have died with the old path.
        path.ack_now = true;
        self.on_cumulative(cumulative);
        self.events.push_back(Event::PathActive(id));
        Ok(())
    }
}
