//! The relay's own frames: same framing as msock ([`Framing::LenType`]: `length u32, type u8,
//! body`), types 0x20 and up, bodies small and bounded ([`MAX_RELAY_FRAME`]). ERROR (0x1F),
//! PING (0x12) and PONG (0x13) have msock's layout, so an msock client understands the
//! relay's refusals.
//!
//! Each direction has its own message type with its own decoder, which refuses the frame
//! types of every other direction: [`ClientToRelay`], [`ListenerToRelay`] (and [`ToRelay`],
//! either one, for the first frame of a connection), [`RelayToClient`], [`RelayToListener`].
//! A REGISTERED sent to a relay, or a DIAL sent to a client, does not even decode.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::proto::codec::{read_all, CodecError, Framing, Reader, Writer, HEADER_LEN};
use crate::proto::frame::{ty, MAX_REASON};
use crate::proto::{ErrorCode, PREAMBLE};

/// Longest relay frame body accepted (type byte included): names are short, address lists
/// are capped at [`MAX_ADDRS`], GONE lists at [`MAX_GONE`].
pub(crate) const MAX_RELAY_FRAME: usize = 4096;
/// Longest name, in bytes.
pub(crate) const MAX_NAME: usize = 64;
/// Most direct addresses a listener may publish.
pub(crate) const MAX_ADDRS: usize = 16;
/// Most splice ids in one GONE.
pub(crate) const MAX_GONE: usize = 256;
/// Bytes of a registration secret (and of each HMAC proof).
pub(crate) const SECRET_LEN: usize = 32;
/// Bytes of a nonce and of a splice token.
pub const NONCE_LEN: usize = 16;
/// Bytes of a cluster id (NONCE's optional trailing field).
pub(crate) const CLUSTER_ID_LEN: usize = 16;
/// A relay cluster's id as a relay tells it (all-zero: a standalone relay).
pub(crate) type ClusterId = [u8; CLUSTER_ID_LEN];
/// REGISTER's optional trailing flags byte: "send the cluster id with NONCE".
const ASK_CLUSTER: u8 = 1;

/// Frame type numbers.
pub mod kind {
    use super::ty;

    /// PING (msock's).
    pub const PING: u8 = ty::PING;
    /// PONG (msock's).
    pub const PONG: u8 = ty::PONG;
    /// ERROR (msock's).
    pub const ERROR: u8 = ty::ERROR;
    /// Listener → relay: register a name.
    pub const REGISTER: u8 = 0x20;
    /// Relay → listener: the nonce to prove over.
    pub(crate) const NONCE: u8 = 0x21;
    /// Listener → relay: proofs of the name secret and of an operator key.
    pub(crate) const PROVE: u8 = 0x22;
    /// Relay → listener: registered.
    pub(crate) const REGISTERED: u8 = 0x23;
    /// Relay → listener: dial back for a splice.
    pub const DIAL: u8 = 0x24;
    /// Listener → relay, first frame of a dialed-back connection.
    pub const SPLICE: u8 = 0x25;
    /// Client → relay, first frame of a flowpath to a name.
    pub const ROUTE: u8 = 0x26;
    /// Client → relay: where does NAME listen directly?
    pub const LOOKUP: u8 = 0x27;
    /// Relay → client: the name's direct addresses.
    pub(crate) const FOUND: u8 = 0x28;
    /// Listener → relay: these splices' listener halves are dead (our address went away).
    pub(crate) const GONE: u8 = 0x29;
    /// Client → relay, first frame of a pairing connection to a nameplate (`--code`).
    pub const PAIR: u8 = 0x2A;
    /// Listener → relay: register a nameplate for pairing (opens the control channel).
    pub const REGISTER_CODE: u8 = 0x2B;
    /// Listener → relay, on a nameplate's control channel: paired, burn the nameplate.
    pub(crate) const PAIRED: u8 = 0x2C;
    /// Relay → relay of a cluster, first frame of a connection: ask your listener to dial
    /// back to me.
    pub const FORWARD: u8 = 0x2D;
    /// Relay → listener: dial back to this relay address (another relay of the cluster).
    pub const DIAL_AT: u8 = 0x2E;
}

/// A refusal or failure, as an ERROR frame carries it (relay → anyone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// msock error code (busy means: retry later).
    pub code: ErrorCode,
    /// Human-readable reason, at most [`MAX_REASON`] bytes on the wire.
    pub reason: String,
}

/// Client → relay: the first (and only) frame of a client's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientToRelay {
    /// A client flowpath for this name; the msock connection follows.
    Route(String),
    /// Where does this name listen directly?
    Lookup(String),
    /// A pairing attempt for this nameplate; the msock preamble and the pairing exchange
    /// follow (counted: see the relay's pairing rules).
    Pair(String),
}

/// Listener → relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListenerToRelay {
    /// Register `name` (opens the control channel); `addrs` are the listener's direct
    /// addresses.
    Register {
        /// The name.
        name: String,
        /// Direct addresses (published only if the relay sees the listener at one of them).
        addrs: Vec<SocketAddr>,
        /// Asks for the relay's cluster id in NONCE (an optional trailing flags byte, bit 0;
        /// a relay that predates it refuses the frame with ERROR(protocol)).
        ask_cluster: bool,
    },
    /// HMAC proofs over the relay's nonce (all-zero: none).
    Prove {
        /// `HMAC(name secret, "msock relay name v1" || name || nonce)`.
        name_proof: [u8; SECRET_LEN],
        /// `HMAC(operator key, "msock relay key v1" || name || nonce)`.
        key_proof: [u8; SECRET_LEN],
    },
    /// The listener's half of splice `id` (opens a dialed-back connection).
    Splice {
        /// Splice id.
        id: u64,
        /// The token from DIAL.
        token: [u8; NONCE_LEN],
    },
    /// Splices whose listener half lost its address.
    Gone(Vec<u64>),
    /// Register a nameplate for pairing: like [`ListenerToRelay::Register`], but the name
    /// takes PAIR connections only, at most three, and is never kept in the state file.
    RegisterCode {
        /// The nameplate.
        name: String,
        /// Direct addresses (never published for a nameplate: pairing goes through the
        /// relay, which counts the attempts).
        addrs: Vec<SocketAddr>,
    },
    /// Paired: burn the nameplate (no PAIR is admitted any more).
    Paired,
    /// Keepalive.
    Ping(u64),
}

/// Relay → client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RelayToClient {
    /// The name's direct addresses (may be empty: use the relay).
    Found(Vec<SocketAddr>),
    /// Refusal or failure.
    Error(Refusal),
}

/// Relay → listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayToListener {
    /// The relay's challenge.
    Nonce {
        /// The nonce to prove over.
        nonce: [u8; NONCE_LEN],
        /// The relay's cluster id (an optional trailing field, sent only when REGISTER asked
        /// for it; all-zero: a standalone relay). Not secret: relays of one cluster share it.
        cluster: Option<ClusterId>,
    },
    /// Registration accepted.
    Registered {
        /// A new secret for the name (all-zero: keep the one you proved).
        secret: [u8; SECRET_LEN],
        /// Seconds a name outlives its last control channel.
        ttl: u32,
        /// Seconds between the listener's keepalive PINGs.
        keepalive: u32,
    },
    /// Dial back to the relay and send SPLICE with these.
    Dial {
        /// Splice id.
        id: u64,
        /// Proof that the dial-back comes from the control channel's owner.
        token: [u8; NONCE_LEN],
    },
    /// Dial back to `relay` (another relay of the cluster, see the relay's FORWARD) and send
    /// SPLICE with these.
    DialAt {
        /// Splice id (the other relay's).
        id: u64,
        /// Proof that the dial-back comes from the control channel's owner.
        token: [u8; NONCE_LEN],
        /// Where to dial.
        relay: SocketAddr,
    },
    /// Keepalive answer.
    Pong(u64),
    /// Refusal or failure.
    Error(Refusal),
}

#[path = "wire_forward.rs"]
mod forward;
pub(crate) use forward::{Forward, FORWARD_SKEW};

/// The first frame of a connection to the relay: a client's or a listener's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToRelay {
    /// A client's.
    Client(ClientToRelay),
    /// A listener's.
    Listener(ListenerToRelay),
    /// Another relay's of the cluster.
    Peer(Forward),
}

/// What was wrong with a frame.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Socket error or end of stream.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The peer did not start with the msock preamble.
    #[error("not msock (no MSOCK preamble)")]
    NotMsock,
    /// A frame whose length or body does not fit its layout.
    #[error("malformed relay frame: {0}")]
    Malformed(#[from] CodecError),
    /// A frame type that does not travel in this direction (unknown, or another
    /// direction's).
    #[error("frame type 0x{ty:02x} is not one that is sent {dir}")]
    Unexpected {
        /// The type byte.
        ty: u8,
        /// The direction, e.g. "to a relay".
        dir: &'static str,
    },
    /// A name that breaks the naming rules.
    #[error("malformed relay frame: {0}")]
    BadName(String),
    /// Nothing arrived in time.
    #[error("nothing received within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The task reading the frames stopped.
    #[error("the frame reader stopped")]
    ReaderGone,
}

/// Checks a name: 1 to 64 bytes of letters, digits, `.`, `_`, `-`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(ok_char) {
        return Err(format!(
            "'{name}' is not a valid name: use 1 to {MAX_NAME} letters, digits, '.', '_' or '-'"
        ));
    }
    Ok(())
}

/// The relay messages of one direction.
pub trait Message: Sized + Send + 'static {
    /// Writes the body; returns the frame type.
    fn write_body(&self, w: &mut Writer<'_, Vec<u8>>) -> u8;

    /// Decodes a body of type `t`. Types of other directions are [`WireError::Unexpected`].
    fn decode(t: u8, body: &[u8]) -> Result<Self, WireError>;

    /// Encodes the frame (length, type, body).
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        Framing::LenType.frame(&mut out, |w| self.write_body(w));
        out
    }

    /// The preamble followed by this frame: what opens a connection.
    fn with_preamble(&self) -> Vec<u8> {
        let mut v = PREAMBLE.to_vec();
        v.extend_from_slice(&self.encode());
        v
    }
}

impl Message for Refusal {
    fn write_body(&self, w: &mut Writer<'_, Vec<u8>>) -> u8 {
        w.u16(self.code.to_wire())
            .utf8_truncated(&self.reason, MAX_REASON);
        kind::ERROR
    }

    fn decode(t: u8, body: &[u8]) -> Result<Self, WireError> {
        match t {
            kind::ERROR => read_all(body, |r| Ok(read_refusal(r)?)),
            ty => unexpected(ty, "as a refusal"),
        }
    }
}

impl Message for ClientToRelay {
    fn write_body(&self, w: &mut Writer<'_, Vec<u8>>) -> u8 {
        match self {
            ClientToRelay::Route(name) => {
                write_name(w, name);
                kind::ROUTE
            }
            ClientToRelay::Lookup(name) => {
                write_name(w, name);
                kind::LOOKUP
            }
            ClientToRelay::Pair(name) => {
                write_name(w, name);
                kind::PAIR
            }
        }
    }

    fn decode(t: u8, body: &[u8]) -> Result<Self, WireError> {
        read_all(body, |r| match t {
            kind::ROUTE => Ok(ClientToRelay::Route(read_name(r)?)),
            kind::LOOKUP => Ok(ClientToRelay::Lookup(read_name(r)?)),
            kind::PAIR => Ok(ClientToRelay::Pair(read_name(r)?)),
            ty => unexpected(ty, "from a client to a relay"),
        })
    }
}

impl Message for ListenerToRelay {
    fn write_body(&self, w: &mut Writer<'_, Vec<u8>>) -> u8 {
        match self {
            ListenerToRelay::Register {
                name,
                addrs,
                ask_cluster,
            } => {
                write_name(w, name);
                write_addrs(w, addrs);
                if *ask_cluster {
                    w.u8(ASK_CLUSTER);
                }
                kind::REGISTER
            }
            ListenerToRelay::Prove {
                name_proof,
                key_proof,
            } => {
                w.bytes(name_proof).bytes(key_proof);
                kind::PROVE
            }
            ListenerToRelay::Splice { id, token } => {
                w.u64(*id).bytes(token);
                kind::SPLICE
            }
            ListenerToRelay::Gone(ids) => {
                let n = ids.len().min(MAX_GONE);
                w.u16(n as u16);
                for id in &ids[..n] {
                    w.u64(*id);
                }
                kind::GONE
            }
            ListenerToRelay::Ping(t) => {
                w.u64(*t);
                kind::PING
            }
            ListenerToRelay::RegisterCode { name, addrs } => {
                write_name(w, name);
                write_addrs(w, addrs);
                kind::REGISTER_CODE
            }
            ListenerToRelay::Paired => kind::PAIRED,
        }
    }

    fn decode(t: u8, body: &[u8]) -> Result<Self, WireError> {
        read_all(body, |r| match t {
            kind::REGISTER => Ok(ListenerToRelay::Register {
                name: read_name(r)?,
                addrs: read_addrs(r)?,
                // Absent: a listener that predates the flags. Unknown bits are for later.
                ask_cluster: match r.rest() {
                    [] => false,
                    [flags] => flags & ASK_CLUSTER != 0,
                    more => return Err(CodecError::Trailing(more.len() - 1).into()),
                },
            }),
            kind::PROVE => Ok(ListenerToRelay::Prove {
                name_proof: r.array()?,
                key_proof: r.array()?,
            }),
            kind::SPLICE => Ok(ListenerToRelay::Splice {
                id: r.u64()?,
                token: r.array()?,
            }),
            kind::GONE => {
                let n = bounded(r.u16()? as usize, MAX_GONE)?;
                let ids = (0..n).map(|_| r.u64()).collect::<Result<_, _>>()?;
                Ok(ListenerToRelay::Gone(ids))
            }
            kind::PING => Ok(ListenerToRelay::Ping(r.u64()?)),
            kind::REGISTER_CODE => Ok(ListenerToRelay::RegisterCode {
                name: read_name(r)?,
                addrs: read_addrs(r)?,
            }),
            kind::PAIRED => Ok(ListenerToRelay::Paired),
            ty => unexpected(ty, "from a listener to a relay"),
        })
    }
}

impl Message for RelayToClient {
    fn write_body(&self, w: &mut Writer<'_, Vec<u8>>) -> u8 {
        match self {
            RelayToClient::Found(addrs) => {
                write_addrs(w, addrs);
                kind::FOUND
            }
            RelayToClient::Error(refusal) => refusal.write_body(w),
        }
    }

    fn decode(t: u8, body: &[u8]) -> Result<Self, WireError> {
        read_all(body, |r| match t {
            kind::FOUND => Ok(RelayToClient::Found(read_addrs(r)?)),
            kind::ERROR => Ok(RelayToClient::Error(read_refusal(r)?)),
            ty => unexpected(ty, "from a relay to a client"),
        })
    }
}

impl Message for RelayToListener {
    fn write_body(&self, w: &mut Writer<'_, Vec<u8>>) -> u8 {
        match self {
            RelayToListener::Nonce { nonce, cluster } => {
                w.bytes(nonce);
                if let Some(c) = cluster {
                    w.bytes(c);
                }
                kind::NONCE
            }
            RelayToListener::Registered {
                secret,
                ttl,
                keepalive,
            } => {
                w.bytes(secret).u32(*ttl).u32(*keepalive);
                kind::REGISTERED
            }
            RelayToListener::Dial { id, token } => {
                w.u64(*id).bytes(token);
                kind::DIAL
            }
            RelayToListener::DialAt { id, token, relay } => {
                w.u64(*id).bytes(token).socket_addr(relay);
                kind::DIAL_AT
            }
            RelayToListener::Pong(t) => {
                w.u64(*t);
                kind::PONG
            }
            RelayToListener::Error(refusal) => refusal.write_body(w),
        }
    }

    fn decode(t: u8, body: &[u8]) -> Result<Self, WireError> {
        read_all(body, |r| match t {
            kind::NONCE => Ok(RelayToListener::Nonce {
                nonce: r.array()?,
                cluster: match r.rest() {
                    [] => None,
                    c if c.len() < CLUSTER_ID_LEN => return Err(CodecError::Truncated.into()),
                    c => Some(
                        c.try_into()
                            .map_err(|_| CodecError::Trailing(c.len() - CLUSTER_ID_LEN))?,
                    ),
                },
            }),
            kind::REGISTERED => Ok(RelayToListener::Registered {
                secret: r.array()?,
                ttl: r.u32()?,
                keepalive: r.u32()?,
            }),
            kind::DIAL => Ok(RelayToListener::Dial {
                id: r.u64()?,
                token: r.array()?,
            }),
            kind::DIAL_AT => Ok(RelayToListener::DialAt {
                id: r.u64()?,
                token: r.array()?,
                relay: r.socket_addr()?,
            }),
            kind::PONG => Ok(RelayToListener::Pong(r.u64()?)),
            kind::ERROR => Ok(RelayToListener::Error(read_refusal(r)?)),
            ty => unexpected(ty, "from a relay to a listener"),
        })
    }
}

impl ListenerToRelay {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            ListenerToRelay::Register { .. } => "REGISTER",
            ListenerToRelay::Prove { .. } => "PROVE",
            ListenerToRelay::Splice { .. } => "SPLICE",
            ListenerToRelay::Gone(_) => "GONE",
            ListenerToRelay::Ping(_) => "PING",
            ListenerToRelay::RegisterCode { .. } => "REGISTER_CODE",
            ListenerToRelay::Paired => "PAIRED",
        }
    }
}

impl RelayToListener {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            RelayToListener::Nonce { .. } => "NONCE",
            RelayToListener::Registered { .. } => "REGISTERED",
            RelayToListener::Dial { .. } => "DIAL",
            RelayToListener::DialAt { .. } => "DIAL_AT",
            RelayToListener::Pong(_) => "PONG",
            RelayToListener::Error(_) => "ERROR",
        }
    }
}

impl ToRelay {
    /// Decodes the first frame of a connection to the relay, of type `t`.
    pub fn decode(t: u8, body: &[u8]) -> Result<ToRelay, WireError> {
        match t {
            kind::ROUTE | kind::LOOKUP | kind::PAIR => {
                ClientToRelay::decode(t, body).map(ToRelay::Client)
            }
            kind::REGISTER
            | kind::PROVE
            | kind::SPLICE
            | kind::GONE
            | kind::PING
            | kind::REGISTER_CODE
            | kind::PAIRED => ListenerToRelay::decode(t, body).map(ToRelay::Listener),
            kind::FORWARD => Forward::decode(t, body).map(ToRelay::Peer),
            ty => unexpected(ty, "to a relay"),
        }
    }
}

/// A frame type `ty` that is not sent `dir`.
fn unexpected<T>(ty: u8, dir: &'static str) -> Result<T, WireError> {
    Err(WireError::Unexpected { ty, dir })
}

/// `n`, if it is at most `max`.
fn bounded(n: usize, max: usize) -> Result<usize, CodecError> {
    match n {
        n if n > max => Err(CodecError::TooLong { len: n, max }),
        n => Ok(n),
    }
}

fn write_name(w: &mut Writer<'_, Vec<u8>>, name: &str) {
    w.bytes_u8(&name.as_bytes()[..name.len().min(MAX_NAME)]);
}

fn read_name(r: &mut Reader) -> Result<String, WireError> {
    let name = std::str::from_utf8(r.bytes_u8()?).map_err(|_| CodecError::BadUtf8)?;
    check_name(name).map_err(WireError::BadName)?;
    Ok(name.to_owned())
}

fn write_addrs(w: &mut Writer<'_, Vec<u8>>, addrs: &[SocketAddr]) {
    w.u8(addrs.len().min(MAX_ADDRS) as u8);
    for a in addrs.iter().take(MAX_ADDRS) {
        w.socket_addr(a);
    }
}

fn read_addrs(r: &mut Reader) -> Result<Vec<SocketAddr>, CodecError> {
    let n = bounded(r.u8()? as usize, MAX_ADDRS)?;
    (0..n).map(|_| r.socket_addr()).collect()
}

/// An ERROR body. The reason is taken as it comes (invalid UTF-8 replaced): it is only shown.
fn read_refusal(r: &mut Reader) -> Result<Refusal, CodecError> {
    let code = ErrorCode::from_wire(r.u16()?);
    let rest = r.rest();
    bounded(rest.len(), MAX_REASON)?;
    Ok(Refusal {
        code,
        reason: String::from_utf8_lossy(rest).into_owned(),
    })
}

/// Reads the 6-byte msock preamble within `timeout`.
pub(crate) async fn read_preamble<R: AsyncRead + Unpin>(
    r: &mut R,
    timeout: Duration,
) -> Result<(), WireError> {
    let mut p = [0u8; PREAMBLE.len()];
    tokio::time::timeout(timeout, r.read_exact(&mut p))
        .await
        .map_err(|_| WireError::Timeout(timeout))??;
    if p != PREAMBLE {
        return Err(WireError::NotMsock);
    }
    Ok(())
}

/// Reads exactly one frame (never a byte more, so that what follows can be spliced) within
/// `timeout`. Returns the type and body.
pub(crate) async fn read_raw<R: AsyncRead + Unpin>(
    r: &mut R,
    timeout: Duration,
) -> Result<(u8, Vec<u8>), WireError> {
    tokio::time::timeout(timeout, async {
        let mut h = [0u8; HEADER_LEN];
        r.read_exact(&mut h).await?;
        let h = Framing::LenType.parse(&h)?.within(MAX_RELAY_FRAME - 1)?;
        let mut body = vec![0u8; h.body_len];
        r.read_exact(&mut body).await?;
        Ok((h.ty, body))
    })
    .await
    .map_err(|_| WireError::Timeout(timeout))?
}

/// Reads and decodes one message of direction `M` within `timeout`.
pub async fn read_frame<M: Message, R: AsyncRead + Unpin>(
    r: &mut R,
    timeout: Duration,
) -> Result<M, WireError> {
    let (t, body) = read_raw(r, timeout).await?;
    M::decode(t, &body)
}

/// Reads frames from `r` in a task of its own and hands them over a channel, so that a
/// `select!` over the channel never drops a half-read frame. The channel ends after the
/// first error (which it carries), including `silence` without a frame.
pub(crate) fn spawn_reader<M: Message, R: AsyncRead + Unpin + Send + 'static>(
    mut r: R,
    silence: Duration,
) -> tokio::sync::mpsc::Receiver<Result<M, WireError>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let f = read_frame(&mut r, silence).await;
            let end = f.is_err();
            if tx.send(f).await.is_err() || end {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
