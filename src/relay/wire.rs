//! The relay's own frames: same framing as msock (`length u32, type u8, body`), types 0x20 and
//! up, bodies small and bounded ([`MAX_RELAY_FRAME`]). ERROR (0x1F), PING (0x12) and PONG
//! (0x13) have msock's layout, so an msock client understands the relay's refusals.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::proto::{ErrorCode, PREAMBLE};

/// Longest relay frame body accepted (type byte included): names are short, address lists
/// are capped at [`MAX_ADDRS`], GONE lists at [`MAX_GONE`].
pub const MAX_RELAY_FRAME: usize = 4096;
/// Longest name, in bytes.
pub const MAX_NAME: usize = 64;
/// Most direct addresses a listener may publish.
pub const MAX_ADDRS: usize = 16;
/// Most splice ids in one GONE.
pub const MAX_GONE: usize = 256;
/// Bytes of a registration secret (and of each HMAC proof).
pub const SECRET_LEN: usize = 32;
/// Bytes of a nonce and of a splice token.
pub const NONCE_LEN: usize = 16;

/// Frame type numbers.
pub mod kind {
    /// PING (msock's).
    pub const PING: u8 = 0x12;
    /// PONG (msock's).
    pub const PONG: u8 = 0x13;
    /// ERROR (msock's).
    pub const ERROR: u8 = 0x1f;
    /// Listener → relay: register a name.
    pub const REGISTER: u8 = 0x20;
    /// Relay → listener: the nonce to prove over.
    pub const NONCE: u8 = 0x21;
    /// Listener → relay: proofs of the name secret and of an operator key.
    pub const PROVE: u8 = 0x22;
    /// Relay → listener: registered.
    pub const REGISTERED: u8 = 0x23;
    /// Relay → listener: dial back for a splice.
    pub const DIAL: u8 = 0x24;
    /// Listener → relay, first frame of a dialed-back connection.
    pub const SPLICE: u8 = 0x25;
    /// Client → relay, first frame of a flowpath to a name.
    pub const ROUTE: u8 = 0x26;
    /// Client → relay: where does NAME listen directly?
    pub const LOOKUP: u8 = 0x27;
    /// Relay → client: the name's direct addresses.
    pub const FOUND: u8 = 0x28;
    /// Listener → relay: these splices' listener halves are dead (our address went away).
    pub const GONE: u8 = 0x29;
}

/// One relay frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayFrame {
    /// Register `name`; `addrs` are the listener's direct addresses.
    Register {
        /// The name.
        name: String,
        /// Direct addresses (published only if the relay sees the listener at one of them).
        addrs: Vec<SocketAddr>,
    },
    /// The relay's challenge.
    Nonce([u8; NONCE_LEN]),
    /// HMAC proofs over the nonce (all-zero: none).
    Prove {
        /// `HMAC(name secret, "msock relay name v1" || name || nonce)`.
        name_proof: [u8; SECRET_LEN],
        /// `HMAC(operator key, "msock relay key v1" || name || nonce)`.
        key_proof: [u8; SECRET_LEN],
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
    /// The listener's half of splice `id`.
    Splice {
        /// Splice id.
        id: u64,
        /// The token from DIAL.
        token: [u8; NONCE_LEN],
    },
    /// A client flowpath for `name`; the msock connection follows.
    Route(String),
    /// Where does `name` listen directly?
    Lookup(String),
    /// Direct addresses (may be empty: use the relay).
    Found(Vec<SocketAddr>),
    /// Splices whose listener half lost its address.
    Gone(Vec<u64>),
    /// Keepalive.
    Ping(u64),
    /// Keepalive answer.
    Pong(u64),
    /// Refusal or failure.
    Error {
        /// msock error code.
        code: ErrorCode,
        /// Human-readable reason.
        reason: String,
    },
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
    /// A malformed frame.
    #[error("malformed relay frame: {0}")]
    Malformed(String),
    /// Nothing arrived in time.
    #[error("nothing received within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
}

fn bad<T>(m: impl Into<String>) -> Result<T, WireError> {
    Err(WireError::Malformed(m.into()))
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

impl RelayFrame {
    /// Encodes the frame (length, type, body).
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        let t = match self {
            RelayFrame::Register { name, addrs } => {
                put_name(&mut b, name);
                b.push(addrs.len().min(MAX_ADDRS) as u8);
                for a in addrs.iter().take(MAX_ADDRS) {
                    put_addr(&mut b, a);
                }
                kind::REGISTER
            }
            RelayFrame::Nonce(n) => {
                b.extend_from_slice(n);
                kind::NONCE
            }
            RelayFrame::Prove {
                name_proof,
                key_proof,
            } => {
                b.extend_from_slice(name_proof);
                b.extend_from_slice(key_proof);
                kind::PROVE
            }
            RelayFrame::Registered {
                secret,
                ttl,
                keepalive,
            } => {
                b.extend_from_slice(secret);
                b.extend_from_slice(&ttl.to_be_bytes());
                b.extend_from_slice(&keepalive.to_be_bytes());
                kind::REGISTERED
            }
            RelayFrame::Dial { id, token } => {
                b.extend_from_slice(&id.to_be_bytes());
                b.extend_from_slice(token);
                kind::DIAL
            }
            RelayFrame::Splice { id, token } => {
                b.extend_from_slice(&id.to_be_bytes());
                b.extend_from_slice(token);
                kind::SPLICE
            }
            RelayFrame::Route(name) => {
                put_name(&mut b, name);
                kind::ROUTE
            }
            RelayFrame::Lookup(name) => {
                put_name(&mut b, name);
                kind::LOOKUP
            }
            RelayFrame::Found(addrs) => {
                b.push(addrs.len().min(MAX_ADDRS) as u8);
                for a in addrs.iter().take(MAX_ADDRS) {
                    put_addr(&mut b, a);
                }
                kind::FOUND
            }
            RelayFrame::Gone(ids) => {
                let n = ids.len().min(MAX_GONE);
                b.extend_from_slice(&(n as u16).to_be_bytes());
                for id in &ids[..n] {
                    b.extend_from_slice(&id.to_be_bytes());
                }
                kind::GONE
            }
            RelayFrame::Ping(t) => {
                b.extend_from_slice(&t.to_be_bytes());
                kind::PING
            }
            RelayFrame::Pong(t) => {
                b.extend_from_slice(&t.to_be_bytes());
                kind::PONG
            }
            RelayFrame::Error { code, reason } => {
                let mut r = reason.as_str();
                while r.len() > crate::proto::frame::MAX_REASON {
                    let mut end = crate::proto::frame::MAX_REASON;
                    while !r.is_char_boundary(end) {
                        end -= 1;
                    }
                    r = &r[..end];
                }
                b.extend_from_slice(&code.to_wire().to_be_bytes());
                b.extend_from_slice(r.as_bytes());
                kind::ERROR
            }
        };
        let mut out = Vec::with_capacity(5 + b.len());
        out.extend_from_slice(&((b.len() + 1) as u32).to_be_bytes());
        out.push(t);
        out.extend_from_slice(&b);
        out
    }

    /// The preamble followed by this frame: what opens a connection.
    pub fn with_preamble(&self) -> Vec<u8> {
        let mut v = PREAMBLE.to_vec();
        v.extend_from_slice(&self.encode());
        v
    }

    /// Decodes a body of type `t`.
    pub fn decode(t: u8, body: &[u8]) -> Result<RelayFrame, WireError> {
        let mut r = Reader(body);
        let f = match t {
            kind::REGISTER => {
                let name = r.name()?;
                let n = r.u8()? as usize;
                if n > MAX_ADDRS {
                    return bad(format!("{n} addresses (at most {MAX_ADDRS})"));
                }
                let addrs = (0..n).map(|_| r.addr()).collect::<Result<_, _>>()?;
                RelayFrame::Register { name, addrs }
            }
            kind::NONCE => RelayFrame::Nonce(r.array()?),
            kind::PROVE => RelayFrame::Prove {
                name_proof: r.array()?,
                key_proof: r.array()?,
            },
            kind::REGISTERED => RelayFrame::Registered {
                secret: r.array()?,
                ttl: u32::from_be_bytes(r.array()?),
                keepalive: u32::from_be_bytes(r.array()?),
            },
            kind::DIAL => RelayFrame::Dial {
                id: u64::from_be_bytes(r.array()?),
                token: r.array()?,
            },
            kind::SPLICE => RelayFrame::Splice {
                id: u64::from_be_bytes(r.array()?),
                token: r.array()?,
            },
            kind::ROUTE => RelayFrame::Route(r.name()?),
            kind::LOOKUP => RelayFrame::Lookup(r.name()?),
            kind::FOUND => {
                let n = r.u8()? as usize;
                if n > MAX_ADDRS {
                    return bad(format!("{n} addresses (at most {MAX_ADDRS})"));
                }
                RelayFrame::Found((0..n).map(|_| r.addr()).collect::<Result<_, _>>()?)
            }
            kind::GONE => {
                let n = u16::from_be_bytes(r.array()?) as usize;
                if n > MAX_GONE {
                    return bad(format!("{n} splice ids (at most {MAX_GONE})"));
                }
                let ids = (0..n)
                    .map(|_| r.array().map(u64::from_be_bytes))
                    .collect::<Result<_, _>>()?;
                RelayFrame::Gone(ids)
            }
            kind::PING => RelayFrame::Ping(u64::from_be_bytes(r.array()?)),
            kind::PONG => RelayFrame::Pong(u64::from_be_bytes(r.array()?)),
            kind::ERROR => {
                let code = ErrorCode::from_wire(u16::from_be_bytes(r.array()?));
                let rest = r.rest();
                if rest.len() > crate::proto::frame::MAX_REASON {
                    return bad("ERROR reason too long");
                }
                let reason = String::from_utf8_lossy(rest).into_owned();
                return Ok(RelayFrame::Error { code, reason });
            }
            other => return bad(format!("unknown frame type 0x{other:02x}")),
        };
        if !r.0.is_empty() {
            return bad(format!("{} stray bytes after frame 0x{t:02x}", r.0.len()));
        }
        Ok(f)
    }

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            RelayFrame::Register { .. } => "REGISTER",
            RelayFrame::Nonce(_) => "NONCE",
            RelayFrame::Prove { .. } => "PROVE",
            RelayFrame::Registered { .. } => "REGISTERED",
            RelayFrame::Dial { .. } => "DIAL",
            RelayFrame::Splice { .. } => "SPLICE",
            RelayFrame::Route(_) => "ROUTE",
            RelayFrame::Lookup(_) => "LOOKUP",
            RelayFrame::Found(_) => "FOUND",
            RelayFrame::Gone(_) => "GONE",
            RelayFrame::Ping(_) => "PING",
            RelayFrame::Pong(_) => "PONG",
            RelayFrame::Error { .. } => "ERROR",
        }
    }
}

fn put_name(b: &mut Vec<u8>, name: &str) {
    let n = &name.as_bytes()[..name.len().min(MAX_NAME)];
    b.push(n.len() as u8);
    b.extend_from_slice(n);
}

fn put_addr(b: &mut Vec<u8>, a: &SocketAddr) {
    match a.ip() {
        IpAddr::V4(ip) => {
            b.push(4);
            b.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            b.push(6);
            b.extend_from_slice(&ip.octets());
        }
    }
    b.extend_from_slice(&a.port().to_be_bytes());
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], WireError> {
        if self.0.len() < n {
            return bad("frame body too short");
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        Ok(self.take(N)?.try_into().expect("length checked"))
    }
    fn rest(&mut self) -> &[u8] {
        std::mem::take(&mut self.0)
    }
    fn name(&mut self) -> Result<String, WireError> {
        let n = self.u8()? as usize;
        let raw = self.take(n)?;
        let name = std::str::from_utf8(raw)
            .map_err(|_| WireError::Malformed("name is not UTF-8".into()))?;
        check_name(name).map_err(WireError::Malformed)?;
        Ok(name.to_owned())
    }
    fn addr(&mut self) -> Result<SocketAddr, WireError> {
        let ip: IpAddr = match self.u8()? {
            4 => Ipv4Addr::from(self.array::<4>()?).into(),
            6 => Ipv6Addr::from(self.array::<16>()?).into(),
            f => return bad(format!("unknown address family {f}")),
        };
        Ok(SocketAddr::new(ip, u16::from_be_bytes(self.array()?)))
    }
}

/// Reads the 6-byte msock preamble within `timeout`.
pub async fn read_preamble<R: AsyncRead + Unpin>(
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
pub async fn read_raw<R: AsyncRead + Unpin>(
    r: &mut R,
    timeout: Duration,
) -> Result<(u8, Vec<u8>), WireError> {
    tokio::time::timeout(timeout, async {
        let mut h = [0u8; 5];
        r.read_exact(&mut h).await?;
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        if len == 0 || len > MAX_RELAY_FRAME {
            return bad(format!("frame length {len} (1 to {MAX_RELAY_FRAME})"));
        }
        let mut body = vec![0u8; len - 1];
        r.read_exact(&mut body).await?;
        Ok((h[4], body))
    })
    .await
    .map_err(|_| WireError::Timeout(timeout))?
}

/// Reads and decodes one frame within `timeout`.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    timeout: Duration,
) -> Result<RelayFrame, WireError> {
    let (t, body) = read_raw(r, timeout).await?;
    RelayFrame::decode(t, &body)
}

/// Reads frames from `r` in a task of its own and hands them over a channel, so that a
/// `select!` over the channel never drops a half-read frame. The channel ends after the
/// first error (which it carries), including `silence` without a frame.
pub fn spawn_reader<R: AsyncRead + Unpin + Send + 'static>(
    mut r: R,
    silence: Duration,
) -> tokio::sync::mpsc::Receiver<Result<RelayFrame, WireError>> {
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
mod tests {
    use super::*;

    fn roundtrip(f: RelayFrame) {
        let bytes = f.encode();
        let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_eq!(len, bytes.len() - 4);
        assert_eq!(RelayFrame::decode(bytes[4], &bytes[5..]).unwrap(), f);
    }

    #[test]
    fn frames_roundtrip() {
        let a: SocketAddr = "10.0.0.1:9000".parse().unwrap();
        let b: SocketAddr = "[2001:db8::1]:80".parse().unwrap();
        roundtrip(RelayFrame::Register {
            name: "laptop-1".into(),
            addrs: vec![a, b],
        });
        roundtrip(RelayFrame::Nonce([7; 16]));
        roundtrip(RelayFrame::Prove {
            name_proof: [1; 32],
            key_proof: [2; 32],
        });
        roundtrip(RelayFrame::Registered {
            secret: [3; 32],
            ttl: 86400,
            keepalive: 15,
        });
        roundtrip(RelayFrame::Dial {
            id: 42,
            token: [4; 16],
        });
        roundtrip(RelayFrame::Splice {
            id: 42,
            token: [4; 16],
        });
        roundtrip(RelayFrame::Route("x".into()));
        roundtrip(RelayFrame::Lookup("x.y_z".into()));
        roundtrip(RelayFrame::Found(vec![b]));
        roundtrip(RelayFrame::Gone(vec![1, 2, 3]));
        roundtrip(RelayFrame::Ping(9));
        roundtrip(RelayFrame::Pong(9));
        roundtrip(RelayFrame::Error {
            code: ErrorCode::Refused,
            reason: "no".into(),
        });
    }

    #[test]
    fn hostile_frames_are_refused() {
        // Bad names, truncated bodies, stray bytes, unknown types, oversized lists.
        assert!(RelayFrame::decode(kind::ROUTE, &[0]).is_err());
        assert!(RelayFrame::decode(kind::ROUTE, &[3, b'a', b'/', b'b']).is_err());
        assert!(RelayFrame::decode(kind::ROUTE, &[5, b'a']).is_err());
        assert!(RelayFrame::decode(kind::ROUTE, &[1, b'a', 0]).is_err());
        assert!(RelayFrame::decode(0x77, &[]).is_err());
        assert!(RelayFrame::decode(kind::FOUND, &[200]).is_err());
        assert!(RelayFrame::decode(kind::GONE, &[0xff, 0xff]).is_err());
        assert!(RelayFrame::decode(kind::DIAL, &[0; 10]).is_err());
        assert!(RelayFrame::decode(kind::REGISTER, &[1, b'a', 1, 9, 0, 0]).is_err());
    }

    #[tokio::test]
    async fn reader_refuses_oversized_and_foreign() {
        let mut big: &[u8] = &[0, 0x10, 0, 0, kind::ROUTE];
        assert!(matches!(
            read_raw(&mut big, Duration::from_secs(1)).await,
            Err(WireError::Malformed(_))
        ));
        let mut foreign: &[u8] = b"GET / HTTP/1.1\r\n";
        assert!(matches!(
            read_preamble(&mut foreign, Duration::from_secs(1)).await,
            Err(WireError::NotMsock)
        ));
    }

    #[test]
    fn names() {
        assert!(check_name("home-pc.lan_1").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a@b").is_err());
        assert!(check_name(&"x".repeat(65)).is_err());
    }
}
