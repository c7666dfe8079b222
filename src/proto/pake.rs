//! The pairing exchange (`--code`): SPAKE2 over the code phrase, key confirmation, and the
//! pre-shared key for the session that follows. Sans-IO: frames in, frames out.
//!
//! The sender opens a connection to the listener's nameplate through the relay (the relay's
//! PAIR, see the relay's protocol) and, after msock's preamble, the two speak these frames
//! (msock's framing: `length u32, type u8, body`; bodies at most [`MAX_FRAME`]):
//!
//! | type | name | body | direction |
//! |------|------|------|-----------|
//! | 0x40 | START   | version u8 (1), spake2 message \[33\] | sender → listener |
//! | 0x41 | REPLY   | spake2 message \[33\], listener key \[32\], confirm_L \[32\] | listener → sender |
//! | 0x42 | CONFIRM | confirm_S \[32\] | sender → listener |
//! | 0x43 | DONE    | (empty): paired, the session name is registered | listener → sender |
//! | 0x44 | WRONG   | (empty): the other side's confirmation did not verify | either |
//! | 0x1F | ERROR   | msock's ERROR (a relay's refusal, or a listener's: version) | to the sender |
//!
//! SPAKE2 (the RustCrypto `spake2` crate, Ed25519 group; identities `msock sender` and
//! `msock listener`; password: the whole code, nameplate included) gives both sides a key K
//! that only agrees if both typed the same code; a man in the middle (the relay included)
//! gets one guess per exchange. With T = the nameplate, both SPAKE2 messages and the
//! listener's static key:
//!
//! - `confirm_L = HMAC-SHA-256(K, "msock pake listener v1" || T)`, checked by the sender
//!   before it sends anything else: a wrong code ends there (the sender says WRONG);
//! - `confirm_S = HMAC-SHA-256(K, "msock pake sender v1" || T)`, checked by the listener;
//! - `psk = HMAC-SHA-256(K, "msock pake psk v1" || T)`: the Noise pre-shared key
//!   (`Noise_XXpsk2`) of every session between the two from then on, so the session keys
//!   depend on the code and on the handshake; a resumed or rerun session needs the psk, never
//!   the code;
//! - the session's relay name, `c` and the hex of the first 10 bytes of
//!   `HMAC-SHA-256(K, "msock pake name v1" || T)`: unguessable, known to both.
//!
//! The listener's key is bound into T, so the sender can pin it for the session. Version 1
//! is the only one; a listener answers another START version with ERROR.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};

use super::code::Code;
use super::codec::{read_all, CodecError, Framing, Reader};
use super::frame::MAX_REASON;
use super::handshake::KEY_LEN;
use super::ErrorCode;

type HmacSha256 = Hmac<Sha256>;

/// The exchange's version, in START.
pub const VERSION: u8 = 1;
/// Bytes of a SPAKE2 message (Ed25519 group: a side byte and a point).
pub const MSG_LEN: usize = 33;
/// Bytes of a confirmation (and of the psk).
pub const CONFIRM_LEN: usize = 32;
/// Longest frame body accepted (type byte included).
pub const MAX_FRAME: usize = 1024;

/// Frame type numbers.
pub mod kind {
    /// Sender → listener: version and SPAKE2 message.
    pub const START: u8 = 0x40;
    /// Listener → sender: SPAKE2 message, listener key, confirmation.
    pub const REPLY: u8 = 0x41;
    /// Sender → listener: confirmation.
    pub const CONFIRM: u8 = 0x42;
    /// Listener → sender: paired.
    pub const DONE: u8 = 0x43;
    /// Either way: your confirmation did not verify (wrong code).
    pub const WRONG: u8 = 0x44;
    /// msock's ERROR.
    pub const ERROR: u8 = super::super::frame::ty::ERROR;
}

/// One frame of the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PakeFrame {
    /// Sender's first frame.
    Start {
        /// The sender's version of the exchange.
        version: u8,
        /// Its SPAKE2 message.
        msg: [u8; MSG_LEN],
    },
    /// Listener's answer.
    Reply {
        /// Its SPAKE2 message.
        msg: [u8; MSG_LEN],
        /// Its static (Noise) public key.
        listener_key: [u8; KEY_LEN],
        /// confirm_L.
        confirm: [u8; CONFIRM_LEN],
    },
    /// Sender's confirmation.
    Confirm([u8; CONFIRM_LEN]),
    /// Paired.
    Done,
    /// The peer's confirmation failed.
    Wrong,
    /// A refusal (the relay's or the listener's): code and reason as received.
    Error(ErrorCode, String),
}

impl PakeFrame {
    /// The frame on the wire (header and body).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        Framing::LenType.frame(&mut out, |w| match self {
            PakeFrame::Start { version, msg } => {
                w.u8(*version).bytes(msg);
                kind::START
            }
            PakeFrame::Reply {
                msg,
                listener_key,
                confirm,
            } => {
                w.bytes(msg).bytes(listener_key).bytes(confirm);
                kind::REPLY
            }
            PakeFrame::Confirm(c) => {
                w.bytes(c);
                kind::CONFIRM
            }
            PakeFrame::Done => kind::DONE,
            PakeFrame::Wrong => kind::WRONG,
            PakeFrame::Error(code, reason) => {
                w.u16(code.to_wire()).utf8_truncated(reason, MAX_REASON);
                kind::ERROR
            }
        });
        out
    }

    /// Decodes a frame of type `ty` with `body`.
    pub fn decode(ty: u8, body: &[u8]) -> Result<PakeFrame, PakeError> {
        let f = read_all(body, |r: &mut Reader| -> Result<PakeFrame, CodecError> {
            Ok(match ty {
                kind::START => PakeFrame::Start {
                    version: r.u8()?,
                    msg: r.array()?,
                },
                kind::REPLY => PakeFrame::Reply {
                    msg: r.array()?,
                    listener_key: r.array()?,
                    confirm: r.array()?,
                },
                kind::CONFIRM => PakeFrame::Confirm(r.array()?),
                kind::DONE => PakeFrame::Done,
                kind::WRONG => PakeFrame::Wrong,
                kind::ERROR => {
                    let code = ErrorCode::from_wire(r.u16()?);
                    let rest = r.rest();
                    let rest = &rest[..rest.len().min(MAX_REASON)];
                    PakeFrame::Error(code, String::from_utf8_lossy(rest).into_owned())
                }
                _ => return Err(CodecError::Invalid("pairing frame type")),
            })
        });
        f.map_err(|e| PakeError::Protocol(format!("bad pairing frame: {e}")))
    }

    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            PakeFrame::Start { .. } => "START",
            PakeFrame::Reply { .. } => "REPLY",
            PakeFrame::Confirm(_) => "CONFIRM",
            PakeFrame::Done => "DONE",
            PakeFrame::Wrong => "WRONG",
            PakeFrame::Error(..) => "ERROR",
        }
    }
}

/// Why pairing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PakeError {
    /// The two codes differ (this side's check failed, or the peer said so).
    #[error("wrong code")]
    WrongCode,
    /// The peer broke the exchange (a frame out of order, malformed, a bad SPAKE2 message).
    #[error("{0}")]
    Protocol(String),
    /// The relay or the listener refused (reason as received; print it escaped).
    #[error("refused ({0}): {1}")]
    Refused(ErrorCode, String),
}

/// What pairing gives both sides.
#[derive(Clone, PartialEq, Eq)]
pub struct Paired {
    /// The Noise pre-shared key of the sessions that follow.
    pub psk: [u8; 32],
    /// The relay name the listener's sessions are registered under.
    pub session_name: String,
    /// The listener's static key (the sender pins it).
    pub listener_key: [u8; KEY_LEN],
}

impl std::fmt::Debug for Paired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Paired({})", self.session_name)
    }
}

const ID_SENDER: &[u8] = b"msock sender";
const ID_LISTENER: &[u8] = b"msock listener";

/// The transcript T and the keys derived from K.
struct Keys {
    k: Vec<u8>,
    t: Vec<u8>,
}

impl Keys {
    fn new(k: Vec<u8>, code: &Code, a: &[u8], b: &[u8], key: &[u8; KEY_LEN]) -> Keys {
        let mut t = Vec::with_capacity(4 + 2 * MSG_LEN + KEY_LEN);
        t.extend_from_slice(&code.nameplate.to_be_bytes());
        t.extend_from_slice(a);
        t.extend_from_slice(b);
        t.extend_from_slice(key);
        Keys { k, t }
    }
    fn mac(&self, label: &[u8]) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.k).expect("HMAC takes any key length");
        m.update(label);
        m.update(&self.t);
        m
    }
    fn tag(&self, label: &[u8]) -> [u8; 32] {
        self.mac(label).finalize().into_bytes().into()
    }
    fn paired(&self, listener_key: [u8; KEY_LEN]) -> Paired {
        let name = self.tag(b"msock pake name v1");
        let hex: String = name[..10].iter().map(|b| format!("{b:02x}")).collect();
        Paired {
            psk: self.tag(b"msock pake psk v1"),
            session_name: format!("c{hex}"),
            listener_key,
        }
    }
}

/// The sender's side, after START.
pub struct Sender {
    spake: Spake2<Ed25519Group>,
    msg: [u8; MSG_LEN],
    code: Code,
}

impl Sender {
    /// Starts the exchange for `code`: the state and the START frame to send.
    pub fn start(
        code: &Code,
        rng: &mut (impl rand::RngCore + rand::CryptoRng),
    ) -> (Sender, Vec<u8>) {
        let (spake, msg) = Spake2::<Ed25519Group>::start_a_with_rng(
            &Password::new(code.phrase().as_bytes()),
            &Identity::new(ID_SENDER),
            &Identity::new(ID_LISTENER),
            rng,
        );
        let msg: [u8; MSG_LEN] = msg.try_into().expect("SPAKE2 Ed25519 message: 33 bytes");
        let start = PakeFrame::Start {
            version: VERSION,
            msg,
        };
        let s = Sender {
            spake,
            msg,
            code: code.clone(),
        };
        (s, start.encode())
    }

    /// The listener's answer: on success the CONFIRM frame to send (then wait for DONE) and
    /// what pairing gives; [`PakeError::WrongCode`] means: send WRONG, the codes differ.
    pub fn on_reply(self, f: PakeFrame) -> Result<(Vec<u8>, Paired), PakeError> {
        let (msg, key, confirm) = match f {
            PakeFrame::Reply {
                msg,
                listener_key,
                confirm,
            } => (msg, listener_key, confirm),
            PakeFrame::Error(code, why) => return Err(PakeError::Refused(code, why)),
            other => return Err(unexpected(&other, "REPLY")),
        };
        let k = self.spake.finish(&msg).map_err(|e| {
            PakeError::Protocol(format!("bad SPAKE2 message from the listener: {e}"))
        })?;
        let keys = Keys::new(k, &self.code, &self.msg, &msg, &key);
        keys.mac(b"msock pake listener v1")
            .verify_slice(&confirm)
            .map_err(|_| PakeError::WrongCode)?;
        let out = PakeFrame::Confirm(keys.tag(b"msock pake sender v1")).encode();
        Ok((out, keys.paired(key)))
    }
}

/// The sender's last step: DONE means paired.
pub fn on_done(f: PakeFrame) -> Result<(), PakeError> {
    match f {
        PakeFrame::Done => Ok(()),
        PakeFrame::Wrong => Err(PakeError::WrongCode),
        PakeFrame::Error(code, why) => Err(PakeError::Refused(code, why)),
        other => Err(unexpected(&other, "DONE")),
    }
}

/// The listener's side: answers one START.
pub struct Responder {
    code: Code,
    key: [u8; KEY_LEN],
}

/// The listener's side after REPLY: waits for CONFIRM.
pub struct Awaiting {
    keys: Keys,
    key: [u8; KEY_LEN],
}

impl Responder {
    /// A responder for `code`, sending the listener's static key `key`.
    pub fn new(code: &Code, key: [u8; KEY_LEN]) -> Responder {
        Responder {
            code: code.clone(),
            key,
        }
    }

    /// A sender's START: the REPLY frame to send and the state that checks its CONFIRM.
    /// Err(Protocol) for a frame that is not a good START (answer it with
    /// [`PakeFrame::Error`] for a version we do not speak).
    pub fn on_start(
        &self,
        f: PakeFrame,
        rng: &mut (impl rand::RngCore + rand::CryptoRng),
    ) -> Result<(Vec<u8>, Awaiting), PakeError> {
        let msg_a = match f {
            PakeFrame::Start { version, msg } if version == VERSION => msg,
            PakeFrame::Start { version, .. } => {
                return Err(PakeError::Protocol(format!(
                    "the sender speaks pairing version {version}; this listener speaks {VERSION}"
                )))
            }
            other => return Err(unexpected(&other, "START")),
        };
        let (spake, msg_b) = Spake2::<Ed25519Group>::start_b_with_rng(
            &Password::new(self.code.phrase().as_bytes()),
            &Identity::new(ID_SENDER),
            &Identity::new(ID_LISTENER),
            rng,
        );
        let msg_b: [u8; MSG_LEN] = msg_b.try_into().expect("SPAKE2 Ed25519 message: 33 bytes");
        let k = spake
            .finish(&msg_a)
            .map_err(|e| PakeError::Protocol(format!("bad SPAKE2 message from the sender: {e}")))?;
        let keys = Keys::new(k, &self.code, &msg_a, &msg_b, &self.key);
        let reply = PakeFrame::Reply {
            msg: msg_b,
            listener_key: self.key,
            confirm: keys.tag(b"msock pake listener v1"),
        };
        Ok((
            reply.encode(),
            Awaiting {
                keys,
                key: self.key,
            },
        ))
    }
}

impl Awaiting {
    /// The sender's CONFIRM (or WRONG): paired, or [`PakeError::WrongCode`] (send WRONG).
    pub fn on_confirm(self, f: PakeFrame) -> Result<Paired, PakeError> {
        match f {
            PakeFrame::Confirm(c) => {
                self.keys
                    .mac(b"msock pake sender v1")
                    .verify_slice(&c)
                    .map_err(|_| PakeError::WrongCode)?;
                Ok(self.keys.paired(self.key))
            }
            PakeFrame::Wrong => Err(PakeError::WrongCode),
            other => Err(unexpected(&other, "CONFIRM")),
        }
    }
}

fn unexpected(f: &PakeFrame, want: &str) -> PakeError {
    PakeError::Protocol(format!("pairing: got {} where {want} belongs", f.name()))
}

#[cfg(test)]
#[path = "pake_tests.rs"]
mod tests;
