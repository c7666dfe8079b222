//! Opening a session: the client's HELLO(open) and WELCOME, the server's accept, and the
//! Noise XX handshake inside them (and in the client's HELLO(finish)) for encrypted sessions.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rand::RngCore;

use super::{Config, Event, Role, Session, SessionError};
use crate::proto::auth::SessionSecret;
use crate::proto::deframer::Deframer;
use crate::proto::frame::{ErrorCode, Frame, NONCE_LEN, RANDOM_LEN};
use crate::proto::handshake::{self, CryptoKind};
use crate::proto::path::{Path, PathId, PathState};

/// Client side of opening a session: send [`ClientHandshake::hello`], feed the reply to
/// [`ClientHandshake::handle_reply_on`].
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

/// Server: answers the client's first Noise message; returns the handshake state (waiting for
/// the client's third message) and our message (carrying the WELCOME fields in its encrypted
/// payload).
fn respond(
    config: &Config,
    hello: &Frame,
    msg1: &[u8],
    welcome: &Frame,
    rng: &mut impl RngCore,
) -> Result<(snow::HandshakeState, Bytes), SessionError> {
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
        b = b.psk(handshake::PSK_AT, k).map_err(bad)?;
    }
    let mut state = b.build_responder().map_err(bad)?;
    let mut scratch = vec![0u8; msg1.len().max(64)];
    state.read_message(msg1, &mut scratch).map_err(bad)?;
    let mut msg = vec![0u8; 1024];
    let n = state
        .write_message(&welcome_fields(welcome), &mut msg)
        .map_err(bad)?;
    msg.truncate(n);
    Ok((state, Bytes::from(msg)))
}

/// The session secret and the peer's static key once a Noise handshake has completed.
fn finished(
    mut state: snow::HandshakeState,
    session_id: u64,
) -> Result<(SessionSecret, [u8; 32]), SessionError> {
    let peer: [u8; 32] = state
        .get_remote_static()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| SessionError::Handshake("the peer sent no static key".into()))?;
    let hash = state.get_handshake_hash().to_vec();
    let split = state.dangerously_get_raw_split();
    Ok((
        SessionSecret::from_handshake(split, &hash, session_id),
        peer,
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
                b = b.psk(handshake::PSK_AT, k).expect("psk accepted");
            }
            // Our long-term key; a client given none uses a throwaway one for this session.
            let identity = hs
                .config
                .identity
                .get_or_insert_with(|| handshake::Identity::generate(rng))
                .clone();
            let mut state = b
                .local_private_key(&identity.private)
                .expect("32-byte key")
                .build_initiator()
                .expect("valid Noise initiator");
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

    /// Completes the open with the server's reply, read by `rx` (the deframer of the
    /// connection the HELLO went out on); the session's path 0 is active. Encrypted: the
    /// server's records follow its WELCOME, and `rx` opens them from now on.
    pub fn handle_reply_on(
        self,
        reply: Frame,
        rx: &mut Deframer,
        now: Duration,
    ) -> Result<Session, SessionError> {
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
                let mut finish = None;
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
                            // Third message: our static key (encrypted), sent in clear
                            // ahead of our first record.
                            let mut msg3 = vec![0u8; 256];
                            let n = state.write_message(&[], &mut msg3).map_err(|_| {
                                SessionError::Handshake("cannot write our key message".into())
                            })?;
                            msg3.truncate(n);
                            let (secret, peer) = finished(state, session_id)?;
                            finish = Some(Frame::HelloFinish {
                                handshake: Bytes::from(msg3),
                            });
                            (secret, Some(peer))
                        }
                    };
                let encrypted = peer_static.is_some();
                let mut s =
                    Session::new(Role::Client, session_id, secret, self.config, window, now);
                s.encrypted = encrypted;
                s.peer_static = peer_static;
                let mut path = Path::new(PathState::Active, now);
                path.stats.on_rtt_sample(now.saturating_sub(self.sent_at));
                path.clear_first = finish;
                s.paths.insert(PathId(0), path);
                s.key_path_now(PathId(0), &[0; NONCE_LEN], &[0; NONCE_LEN], rx);
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

/// Server side of opening a session, after WELCOME: an encrypted session still waits for the
/// client's HELLO(finish) (its key), which [`ServerHandshake::finish_on`] takes; an unencrypted
/// one completes at once (`finish_on(None, ..)`).
pub struct ServerHandshake {
    config: Config,
    session_id: u64,
    peer_window: u64,
    peer_control_port: u16,
    /// Unencrypted: the secret. Encrypted: the Noise state after our message.
    pending: Pending,
}

enum Pending {
    Plain(SessionSecret),
    Noise(Box<snow::HandshakeState>),
}

impl std::fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ServerHandshake({:016x}, awaits finish: {})",
            self.session_id,
            self.awaits_finish()
        )
    }
}

impl ServerHandshake {
    /// True if the client's HELLO(finish) must be read (and given to
    /// [`ServerHandshake::finish_on`]) before the session exists: the session is encrypted.
    pub fn awaits_finish(&self) -> bool {
        matches!(self.pending, Pending::Noise(_))
    }

    /// Completes the open with the client's next frame (`finish`, which must be HELLO(finish)
    /// when [`ServerHandshake::awaits_finish`], else None), read by `rx` (the deframer of the
    /// connection the HELLO came on); the session's path 0 is active. Encrypted: the client's
    /// records follow its HELLO(finish), and `rx` opens them from now on;
    /// [`Session::peer_static`] is the client's key, which the caller may still refuse.
    pub fn finish_on(
        self,
        finish: Option<&Frame>,
        rx: &mut Deframer,
        now: Duration,
    ) -> Result<Session, SessionError> {
        let (secret, peer_static) = match (self.pending, finish) {
            (Pending::Plain(secret), None) => (secret, None),
            (Pending::Plain(_), Some(f)) => {
                return Err(SessionError::Protocol(format!(
                    "unexpected {} opening an unencrypted session",
                    f.name()
                )))
            }
            (Pending::Noise(_), None) => {
                return Err(SessionError::Handshake(
                    "the client left before sending its key".into(),
                ))
            }
            (Pending::Noise(mut state), Some(Frame::HelloFinish { handshake })) => {
                let mut scratch = vec![0u8; handshake.len().max(64)];
                state.read_message(handshake, &mut scratch).map_err(|_| {
                    SessionError::Handshake(
                        "the client's key message does not verify: someone tampered with the \
                         connection"
                            .into(),
                    )
                })?;
                let (secret, peer) = finished(*state, self.session_id)?;
                (secret, Some(peer))
            }
            (Pending::Noise(_), Some(Frame::Error { code, reason })) => {
                return Err(SessionError::PeerError {
                    code: *code,
                    reason: reason.clone(),
                })
            }
            (Pending::Noise(_), Some(f)) => {
                return Err(SessionError::Protocol(format!(
                    "expected HELLO(finish), got {}",
                    f.name()
                )))
            }
        };
        let encrypted = peer_static.is_some();
        let mut s = Session::new(
            Role::Server,
            self.session_id,
            secret,
            self.config,
            self.peer_window,
            now,
        );
        s.encrypted = encrypted;
        s.peer_static = peer_static;
        let mut path = Path::new(PathState::Active, now);
        path.ping_now = true;
        s.paths.insert(PathId(0), path);
        s.peer_control_port = self.peer_control_port;
        // Two tickets up front, so that the first moves need no CHALLENGE round trip.
        s.issue_ticket(PathId(0));
        s.issue_ticket(PathId(0));
        s.key_path_now(PathId(0), &[0; NONCE_LEN], &[0; NONCE_LEN], rx);
        s.events.push_back(Event::PathActive(PathId(0)));
        Ok(s)
    }
}

impl ServerHandshake {
    /// Server: accepts a HELLO(open). `taken` says whether a session id is already in use,
    /// so the server half can be re-drawn. Returns the open, to complete with
    /// [`ServerHandshake::finish_on`], and the WELCOME to send.
    pub fn accept(
        config: Config,
        hello: &Frame,
        rng: &mut impl RngCore,
        taken: impl Fn(u64) -> bool,
    ) -> Result<(ServerHandshake, Frame), SessionError> {
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
            SessionError::Refused(if CryptoKind::is_legacy(*crypto) {
                "the client is an older msock (Noise NX, no client key): upgrade it".to_owned()
            } else {
                format!("unknown encryption {crypto} (the client is a newer msock?)")
            })
        })?;
        check_crypto(&config, offered)?;
        let mut server_random = [0u8; RANDOM_LEN];
        rng.fill_bytes(&mut server_random);
        let mut welcome = Frame::Welcome {
            session_id,
            server_random,
            window: config.recv_window as u64,
            control_port: config.control_port,
            handshake: Bytes::new(),
        };
        let pending = if offered == CryptoKind::None {
            Pending::Plain(SessionSecret::derive(
                session_id,
                client_random,
                &server_random,
            ))
        } else {
            let (state, msg) = respond(&config, hello, handshake, &welcome, rng)?;
            if let Frame::Welcome { handshake, .. } = &mut welcome {
                *handshake = msg;
            }
            Pending::Noise(Box::new(state))
        };
        let mut config = config;
        config.service = *service;
        Ok((
            ServerHandshake {
                config,
                session_id,
                peer_window: *window,
                peer_control_port: *control_port,
                pending,
            },
            welcome,
        ))
    }
}

impl Session {
    /// The error an ERROR frame from the peer ends the session with: a client whose key the
    /// listener refused learns which key (its own) to have added.
    pub(super) fn peer_error(&self, code: ErrorCode, reason: String) -> SessionError {
        match (self.role, code, &self.config.identity) {
            (Role::Client, ErrorCode::KeyRefused, Some(id)) if self.encrypted => {
                SessionError::KeyRefused(handshake::fingerprint(&id.public))
            }
            _ => SessionError::PeerError { code, reason },
        }
    }

    /// Server: refuses the client's key (the caller's authorization said no): the session
    /// fails, and the client is told in a sealed ERROR which key was refused. Nothing else
    /// goes out: the application never saw the session.
    pub fn refuse_peer_key(&mut self) {
        let fp = self.peer_static.as_ref().map_or_else(
            || "(none: not encrypted)".to_owned(),
            |k| handshake::fingerprint(k),
        );
        self.fail(SessionError::KeyRefused(fp));
    }
}

/// The open without a connection, for tests that never parse the peer's later bytes (an
/// encrypted session's records): they check the handshake itself, or drive control datagrams.
#[cfg(test)]
impl Session {
    /// [`ServerHandshake::accept`] and, unencrypted, its finish, with a throwaway deframer.
    /// Encrypted: the error of an open that waits for the client's key.
    pub(crate) fn accept(
        config: Config,
        hello: &Frame,
        rng: &mut impl RngCore,
        now: Duration,
        taken: impl Fn(u64) -> bool,
    ) -> Result<(Session, Frame), SessionError> {
        let (hs, welcome) = ServerHandshake::accept(config, hello, rng, taken)?;
        let s = hs.finish_on(None, &mut Deframer::new(), now)?;
        Ok((s, welcome))
    }
}

#[cfg(test)]
impl ClientHandshake {
    /// [`ClientHandshake::handle_reply_on`] with a throwaway deframer.
    pub(crate) fn handle_reply(self, reply: Frame, now: Duration) -> Result<Session, SessionError> {
        self.handle_reply_on(reply, &mut Deframer::new(), now)
    }
}
