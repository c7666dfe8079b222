//! Frames: the typed messages of the wire format, and their encoding.
//!
//! The byte layout of every frame is specified in the [module docs of `proto`](super). This file
//! is the one place that turns frames into bytes and back. Decoding never panics, never reads
//! past the slice it is given, and never allocates more than the (already bounded) frame body.

use bytes::{BufMut, Bytes, BytesMut};

use super::codec::{CodecError, Framing, Reader};

/// Largest DATA payload a sender may put in one frame.
pub const MAX_DATA_PAYLOAD: usize = 64 * 1024;
/// Largest ERROR reason, in bytes of UTF-8.
pub const MAX_REASON: usize = 1024;
/// Hard maximum of a frame's length field (type byte + body). Anything larger is a protocol
/// error, detected from the 4-byte length alone, before any allocation.
pub const MAX_FRAME_LEN: usize = 1 + 8 + MAX_DATA_PAYLOAD;
/// Bytes in front of every frame body: 4-byte length + 1-byte type.
pub const FRAME_HEADER_LEN: usize = super::codec::HEADER_LEN;

/// Longest handshake message carried in HELLO(open), WELCOME or HELLO(finish).
pub const MAX_HANDSHAKE: usize = 1024;

/// Length of the random nonces exchanged when attaching a flowpath.
pub const NONCE_LEN: usize = 16;
/// Length of the random contribution each side makes to the session secret.
pub const RANDOM_LEN: usize = 32;
/// Length of an attach proof (HMAC-SHA-256 output).
pub const PROOF_LEN: usize = 32;

/// Frame type codes on the wire.
pub mod ty {
    /// HELLO(open): open a session.
    pub const HELLO_OPEN: u8 = 0x01;
    /// HELLO(attach): attach a flowpath.
    pub const HELLO_ATTACH: u8 = 0x02;
    /// WELCOME: the session exists.
    pub const WELCOME: u8 = 0x03;
    /// CHALLENGE: prove you know the secret.
    pub const CHALLENGE: u8 = 0x04;
    /// ATTACH_PROOF: the answer to CHALLENGE.
    pub const ATTACH_PROOF: u8 = 0x05;
    /// TICKET: a nonce for a one-flight attach.
    pub const TICKET: u8 = 0x06;
    /// HELLO(resume): attach a flowpath in one flight.
    pub const HELLO_RESUME: u8 = 0x07;
    /// RESUMED: the one-flight attach succeeded.
    pub const RESUMED: u8 = 0x08;
    /// HELLO(finish): the client's last handshake message (its key, encrypted).
    pub const HELLO_FINISH: u8 = 0x09;
    /// DATA: stream bytes.
    pub const DATA: u8 = 0x10;
    /// ACK: receiver feedback.
    pub const ACK: u8 = 0x11;
    /// PING: keepalive and RTT probe.
    pub const PING: u8 = 0x12;
    /// PONG: answer to PING.
    pub const PONG: u8 = 0x13;
    /// FIN: the sender's stream ends.
    pub const FIN: u8 = 0x14;
    /// FIN_ACK: answer to FIN.
    pub const FIN_ACK: u8 = 0x15;
    /// ERROR: refusal or end, with a reason.
    pub const ERROR: u8 = 0x1f;
}

/// What a session is for, named by the client in HELLO(open) so that one listener can serve
/// byte streams, file transfers and benchmarks on one port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Service {
    /// A byte stream between the two applications (`connect` ↔ `listen`'s stdin/stdout).
    #[default]
    Stream,
    /// A file transfer (`send-file` → `listen --save-dir`).
    File,
    /// A throughput measurement (`bench` → any `listen`).
    Bench,
    /// A program run by the listener for this session (`connect` → `listen --exec`): the
    /// stream carries the program service's messages (its input, output, window size and
    /// exit status), not raw bytes.
    Program,
    /// A service this implementation does not know (from a newer peer).
    Other(u8),
}

impl Service {
    /// The service's code on the wire.
    pub fn to_wire(self) -> u8 {
        match self {
            Service::Stream => 0,
            Service::File => 1,
            Service::Bench => 2,
            Service::Program => 3,
            Service::Other(c) => c,
        }
    }
    /// The service a wire code names.
    pub fn from_wire(c: u8) -> Self {
        match c {
            0 => Service::Stream,
            1 => Service::File,
            2 => Service::Bench,
            3 => Service::Program,
            c => Service::Other(c),
        }
    }
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Service::Stream => f.write_str("byte stream"),
            Service::File => f.write_str("file transfer"),
            Service::Bench => f.write_str("benchmark"),
            Service::Program => f.write_str("program"),
            Service::Other(c) => write!(f, "unknown service {c}"),
        }
    }
}

/// Why a session or flowpath was refused or ended, as sent in an ERROR frame.
///
/// Unknown codes from a newer peer decode as [`ErrorCode::Other`], so they are still reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// The sender of ERROR received bytes that break the wire format.
    Protocol,
    /// The peer speaks a protocol version we do not.
    Version,
    /// An attach named a session id this end does not have.
    UnknownSession,
    /// An attach proof (or server proof) did not verify.
    AuthFailed,
    /// The listener is serving as many sessions as it will.
    Busy,
    /// The peer sent beyond the receive window it was given.
    FlowControl,
    /// The session saw no traffic for its idle timeout.
    IdleTimeout,
    /// The application or user ended the session abruptly.
    Aborted,
    /// The listener does not offer the service the client asked for (e.g. a file transfer to
    /// a listener without a save directory).
    Refused,
    /// The listener does not admit the client's key (not in its authorized keys).
    KeyRefused,
    /// The listener runs a program for each session and serves no raw byte streams: the
    /// client should open a [`Service::Program`] session instead.
    ProgramOnly,
    /// A code this implementation does not know.
    Other(u16),
}

impl ErrorCode {
    /// The code's number on the wire (the relay's ERROR frames use the same numbers).
    pub fn to_wire(self) -> u16 {
        match self {
            ErrorCode::Protocol => 1,
            ErrorCode::Version => 2,
            ErrorCode::UnknownSession => 3,
            ErrorCode::AuthFailed => 4,
            ErrorCode::Busy => 5,
            ErrorCode::FlowControl => 6,
            ErrorCode::IdleTimeout => 7,
            ErrorCode::Aborted => 8,
            ErrorCode::Refused => 9,
            ErrorCode::KeyRefused => 10,
            ErrorCode::ProgramOnly => 11,
            ErrorCode::Other(c) => c,
        }
    }
    /// The code a wire number names (unknown numbers as [`ErrorCode::Other`]).
    pub fn from_wire(c: u16) -> Self {
        match c {
            1 => ErrorCode::Protocol,
            2 => ErrorCode::Version,
            3 => ErrorCode::UnknownSession,
            4 => ErrorCode::AuthFailed,
            5 => ErrorCode::Busy,
            6 => ErrorCode::FlowControl,
            7 => ErrorCode::IdleTimeout,
            8 => ErrorCode::Aborted,
            9 => ErrorCode::Refused,
            10 => ErrorCode::KeyRefused,
            11 => ErrorCode::ProgramOnly,
            c => ErrorCode::Other(c),
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErrorCode::Protocol => f.write_str("protocol violation"),
            ErrorCode::Version => f.write_str("unsupported protocol version"),
            ErrorCode::UnknownSession => f.write_str("unknown session"),
            ErrorCode::AuthFailed => f.write_str("authentication failed"),
            ErrorCode::Busy => f.write_str("listener busy"),
            ErrorCode::FlowControl => f.write_str("flow control violation"),
            ErrorCode::IdleTimeout => f.write_str("idle timeout"),
            ErrorCode::Aborted => f.write_str("aborted"),
            ErrorCode::Refused => f.write_str("service refused"),
            ErrorCode::KeyRefused => f.write_str("client key not authorized"),
            ErrorCode::ProgramOnly => f.write_str("program sessions only"),
            ErrorCode::Other(c) => write!(f, "error code {c}"),
        }
    }
}

/// One protocol message. See the [`proto`](super) docs for the byte layout of each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Client → server, first frame of the first flowpath: open a new session.
    HelloOpen {
        /// The client's random half of the session id.
        client_half: u32,
        /// The client's contribution to the session secret.
        client_random: [u8; RANDOM_LEN],
        /// Bytes the client is prepared to buffer for the server (its initial receive window).
        window: u64,
        /// UDP port of the client's control socket (0: none), for RECONNECT datagrams.
        control_port: u16,
        /// What the session is for.
        service: Service,
        /// The session's encryption ([`CryptoKind`](super::handshake::CryptoKind) code).
        crypto: u8,
        /// The first Noise handshake message (empty without encryption).
        handshake: Bytes,
    },
    /// Client → server, first frame of a later flowpath: attach it to an existing session.
    HelloAttach {
        /// The session to attach to.
        session_id: u64,
        /// The flowpath id; an id already in use means "replace that flowpath" (migration).
        path_id: u32,
        /// Fresh random nonce the server must include in its proof.
        client_nonce: [u8; NONCE_LEN],
    },
    /// Server → client, reply to [`Frame::HelloOpen`]: the session exists.
    Welcome {
        /// The full session id: client half in the high 32 bits, server half in the low 32.
        session_id: u64,
        /// The server's contribution to the session secret.
        server_random: [u8; RANDOM_LEN],
        /// The server's initial receive window.
        window: u64,
        /// UDP port of the server's control socket (0: none).
        control_port: u16,
        /// The second Noise handshake message (empty without encryption).
        handshake: Bytes,
    },
    /// Server → client, reply to [`Frame::HelloAttach`]: prove you know the session secret.
    Challenge {
        /// Fresh random nonce the client must include in its proof.
        server_nonce: [u8; NONCE_LEN],
        /// Proof that the server knows the secret (binds both nonces).
        server_proof: [u8; PROOF_LEN],
        /// The server has received every client stream byte below this offset, so the client
        /// resumes exactly there.
        cumulative: u64,
    },
    /// Client → server, answer to [`Frame::Challenge`].
    AttachProof {
        /// Proof that the client knows the secret (binds both nonces).
        client_proof: [u8; PROOF_LEN],
        /// The client has received every server stream byte below this offset.
        cumulative: u64,
    },
    /// Server → client on an active flowpath: a single-use server nonce the client may use
    /// for its next attach, saving the CHALLENGE round trip.
    Ticket {
        /// The nonce, valid for one [`Frame::HelloResume`].
        server_nonce: [u8; NONCE_LEN],
    },
    /// Client → server, first frame of a later flowpath: attach it in one flight, proving
    /// knowledge of the secret over a nonce from an earlier [`Frame::Ticket`]. The client may
    /// send stream frames right behind it.
    HelloResume {
        /// The session to attach to.
        session_id: u64,
        /// The flowpath id (an id in use means: replace that flowpath).
        path_id: u32,
        /// Fresh random nonce the server must include in its proof.
        client_nonce: [u8; NONCE_LEN],
        /// The ticket being used.
        server_nonce: [u8; NONCE_LEN],
        /// Proof over both nonces (same construction as ATTACH_PROOF).
        client_proof: [u8; PROOF_LEN],
        /// The client has received every server stream byte below this offset.
        cumulative: u64,
    },
    /// Server → client, reply to a valid [`Frame::HelloResume`]: the flowpath is attached.
    Resumed {
        /// Proof that the server knows the secret (same construction as in CHALLENGE).
        server_proof: [u8; PROOF_LEN],
        /// The server has received every client stream byte below this offset.
        cumulative: u64,
    },
    /// Client → server, right after an encrypted session's WELCOME, in clear: the third
    /// Noise XX message (the client's static key, encrypted), before any record.
    HelloFinish {
        /// The third Noise handshake message.
        handshake: Bytes,
    },
    /// Stream bytes starting at `offset`.
    Data {
        /// Stream offset of the first payload byte.
        offset: u64,
        /// At most [`MAX_DATA_PAYLOAD`] bytes.
        payload: Bytes,
    },
    /// Receiver feedback, sent on the flowpath it describes.
    Ack {
        /// Every stream byte below this offset has been received.
        cumulative: u64,
        /// The sender may send stream bytes below this offset (receive window, as an absolute
        /// offset so that it never needs wrap-around arithmetic).
        limit: u64,
        /// Total DATA payload bytes received on this flowpath since it was attached.
        path_bytes: u64,
    },
    /// Keepalive and RTT probe; answered by [`Frame::Pong`] with the same token.
    Ping {
        /// Opaque to the receiver.
        token: u64,
    },
    /// Answer to [`Frame::Ping`].
    Pong {
        /// The token of the PING being answered.
        token: u64,
    },
    /// The sender's stream ends at `final_offset` (its total length). Re-sent like data until
    /// acknowledged by [`Frame::FinAck`].
    Fin {
        /// Total number of bytes in the sender's stream.
        final_offset: u64,
    },
    /// "I have every byte of your stream up to your FIN."
    FinAck {
        /// The final offset being acknowledged.
        final_offset: u64,
    },
    /// The sender refuses or ends the flowpath (or session); a human-readable reason follows.
    Error {
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable detail, at most [`MAX_REASON`] bytes.
        reason: String,
    },
}

/// A frame that does not follow the wire format. Always the peer's fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The length field exceeds [`MAX_FRAME_LEN`] or is zero.
    #[error("frame length {0} is outside 1..={max}", max = MAX_FRAME_LEN)]
    BadLength(u32),
    /// The type byte names no frame we know.
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    /// The body is shorter than its type requires.
    #[error("frame type 0x{0:02x} is truncated")]
    Truncated(u8),
    /// The body is longer than its type allows.
    #[error("frame type 0x{0:02x} has {1} trailing bytes")]
    Trailing(u8, usize),
    /// An ERROR reason that is not UTF-8 or is too long.
    #[error("ERROR frame reason is not valid UTF-8 of at most {MAX_REASON} bytes")]
    BadReason,
}

impl Frame {
    /// Appends the encoded frame (length, type, body) to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        Framing::LenType.frame(out, |w| match self {
            Frame::HelloOpen {
                client_half,
                client_random,
                window,
                control_port,
                service,
                crypto,
                handshake,
            } => {
                w.u32(*client_half)
                    .bytes(client_random)
                    .u64(*window)
                    .u16(*control_port)
                    .u8(service.to_wire())
                    .u8(*crypto)
                    .bytes_u16(handshake, MAX_HANDSHAKE);
                ty::HELLO_OPEN
            }
            Frame::HelloAttach {
                session_id,
                path_id,
                client_nonce,
            } => {
                w.u64(*session_id).u32(*path_id).bytes(client_nonce);
                ty::HELLO_ATTACH
            }
            Frame::Welcome {
                session_id,
                server_random,
                window,
                control_port,
                handshake,
            } => {
                w.u64(*session_id)
                    .bytes(server_random)
                    .u64(*window)
                    .u16(*control_port)
                    .bytes_u16(handshake, MAX_HANDSHAKE);
                ty::WELCOME
            }
            Frame::Challenge {
                server_nonce,
                server_proof,
                cumulative,
            } => {
                w.bytes(server_nonce).bytes(server_proof).u64(*cumulative);
                ty::CHALLENGE
            }
            Frame::AttachProof {
                client_proof,
                cumulative,
            } => {
                w.bytes(client_proof).u64(*cumulative);
                ty::ATTACH_PROOF
            }
            Frame::Ticket { server_nonce } => {
                w.bytes(server_nonce);
                ty::TICKET
            }
            Frame::HelloResume {
                session_id,
                path_id,
                client_nonce,
                server_nonce,
                client_proof,
                cumulative,
            } => {
                w.u64(*session_id)
                    .u32(*path_id)
                    .bytes(client_nonce)
                    .bytes(server_nonce)
                    .bytes(client_proof)
                    .u64(*cumulative);
                ty::HELLO_RESUME
            }
            Frame::Resumed {
                server_proof,
                cumulative,
            } => {
                w.bytes(server_proof).u64(*cumulative);
                ty::RESUMED
            }
            Frame::HelloFinish { handshake } => {
                w.bytes_u16(handshake, MAX_HANDSHAKE);
                ty::HELLO_FINISH
            }
            Frame::Data { offset, payload } => {
                debug_assert!(payload.len() <= MAX_DATA_PAYLOAD);
                w.u64(*offset).bytes(payload);
                ty::DATA
            }
            Frame::Ack {
                cumulative,
                limit,
                path_bytes,
            } => {
                w.u64(*cumulative).u64(*limit).u64(*path_bytes);
                ty::ACK
            }
            Frame::Ping { token } => {
                w.u64(*token);
                ty::PING
            }
            Frame::Pong { token } => {
                w.u64(*token);
                ty::PONG
            }
            Frame::Fin { final_offset } => {
                w.u64(*final_offset);
                ty::FIN
            }
            Frame::FinAck { final_offset } => {
                w.u64(*final_offset);
                ty::FIN_ACK
            }
            Frame::Error { code, reason } => {
                w.u16(code.to_wire()).utf8_truncated(reason, MAX_REASON);
                ty::ERROR
            }
        });
    }

    /// Appends the header of a DATA frame carrying `payload_len` bytes; the payload itself
    /// follows it on the wire (see [`crate::proto::OutQueue`], which writes it from the send
    /// buffer without copying).
    pub fn encode_data_header(offset: u64, payload_len: usize, out: &mut BytesMut) {
        debug_assert!(payload_len <= MAX_DATA_PAYLOAD);
        out.put_slice(&Framing::LenType.header(ty::DATA, 8 + payload_len));
        out.put_u64(offset);
    }

    /// Decodes one frame from its type byte and body (the bytes after the length field).
    /// `body` is a `Bytes` so that DATA payloads are sliced, not copied.
    pub fn decode(frame_type: u8, body: Bytes) -> Result<Frame, DecodeError> {
        let mut r = Reader::new(&body);
        let frame = match Frame::decode_fields(frame_type, &body, &mut r) {
            Ok(Some(frame)) => frame,
            Ok(None) => return Err(DecodeError::UnknownType(frame_type)),
            Err(e) => return Err(e.at(frame_type)),
        };
        r.finish().map_err(|e| BodyError::Codec(e).at(frame_type))?;
        Ok(frame)
    }

    /// The fields of a frame of type `t` (`None`: no such type); `r` reads `body`.
    fn decode_fields(t: u8, body: &Bytes, r: &mut Reader) -> Result<Option<Frame>, BodyError> {
        Ok(Some(match t {
            ty::HELLO_OPEN => Frame::HelloOpen {
                client_half: r.u32()?,
                client_random: r.array()?,
                window: r.u64()?,
                control_port: r.u16()?,
                service: Service::from_wire(r.u8()?),
                crypto: r.u8()?,
                handshake: Bytes::copy_from_slice(r.bytes_u16(MAX_HANDSHAKE)?),
            },
            ty::HELLO_ATTACH => Frame::HelloAttach {
                session_id: r.u64()?,
                path_id: r.u32()?,
                client_nonce: r.array()?,
            },
            ty::WELCOME => Frame::Welcome {
                session_id: r.u64()?,
                server_random: r.array()?,
                window: r.u64()?,
                control_port: r.u16()?,
                handshake: Bytes::copy_from_slice(r.bytes_u16(MAX_HANDSHAKE)?),
            },
            ty::CHALLENGE => Frame::Challenge {
                server_nonce: r.array()?,
                server_proof: r.array()?,
                cumulative: r.u64()?,
            },
            ty::ATTACH_PROOF => Frame::AttachProof {
                client_proof: r.array()?,
                cumulative: r.u64()?,
            },
            ty::TICKET => Frame::Ticket {
                server_nonce: r.array()?,
            },
            ty::HELLO_RESUME => Frame::HelloResume {
                session_id: r.u64()?,
                path_id: r.u32()?,
                client_nonce: r.array()?,
                server_nonce: r.array()?,
                client_proof: r.array()?,
                cumulative: r.u64()?,
            },
            ty::RESUMED => Frame::Resumed {
                server_proof: r.array()?,
                cumulative: r.u64()?,
            },
            ty::HELLO_FINISH => Frame::HelloFinish {
                handshake: Bytes::copy_from_slice(r.bytes_u16(MAX_HANDSHAKE)?),
            },
            ty::DATA => {
                let offset = r.u64()?;
                let payload = r.rest();
                if payload.len() > MAX_DATA_PAYLOAD {
                    let extra = payload.len() - MAX_DATA_PAYLOAD;
                    return Err(CodecError::Trailing(extra).into());
                }
                Frame::Data {
                    offset,
                    payload: body.slice_ref(payload),
                }
            }
            ty::ACK => Frame::Ack {
                cumulative: r.u64()?,
                limit: r.u64()?,
                path_bytes: r.u64()?,
            },
            ty::PING => Frame::Ping { token: r.u64()? },
            ty::PONG => Frame::Pong { token: r.u64()? },
            ty::FIN => Frame::Fin {
                final_offset: r.u64()?,
            },
            ty::FIN_ACK => Frame::FinAck {
                final_offset: r.u64()?,
            },
            ty::ERROR => Frame::Error {
                code: ErrorCode::from_wire(r.u16()?),
                reason: r
                    .utf8_rest(MAX_REASON)
                    .map_err(|_| BodyError::BadReason)?
                    .to_owned(),
            },
            _ => return Ok(None),
        }))
    }

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Frame::HelloOpen { .. } => "HELLO(open)",
            Frame::HelloAttach { .. } => "HELLO(attach)",
            Frame::Welcome { .. } => "WELCOME",
            Frame::Challenge { .. } => "CHALLENGE",
            Frame::AttachProof { .. } => "ATTACH_PROOF",
            Frame::Ticket { .. } => "TICKET",
            Frame::HelloResume { .. } => "HELLO(resume)",
            Frame::Resumed { .. } => "RESUMED",
            Frame::HelloFinish { .. } => "HELLO(finish)",
            Frame::Data { .. } => "DATA",
            Frame::Ack { .. } => "ACK",
            Frame::Ping { .. } => "PING",
            Frame::Pong { .. } => "PONG",
            Frame::Fin { .. } => "FIN",
            Frame::FinAck { .. } => "FIN_ACK",
            Frame::Error { .. } => "ERROR",
        }
    }
}

/// Why a frame body's fields did not decode; [`Frame::decode`] adds the frame type.
enum BodyError {
    /// The body does not fit the type's layout.
    Codec(CodecError),
    /// An ERROR reason that is not UTF-8 or is too long.
    BadReason,
}

impl From<CodecError> for BodyError {
    fn from(e: CodecError) -> Self {
        BodyError::Codec(e)
    }
}

impl BodyError {
    /// The error of a frame of type `t`.
    fn at(self, t: u8) -> DecodeError {
        match self {
            BodyError::Codec(CodecError::Trailing(n)) => DecodeError::Trailing(t, n),
            // A handshake length above MAX_HANDSHAKE counts as truncated, as do the rest.
            BodyError::Codec(_) => DecodeError::Truncated(t),
            BodyError::BadReason => DecodeError::BadReason,
        }
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
pub(crate) mod tests;
