//! The program service's messages (layout in the [module docs](super)): encoding, and
//! reading them off a session's stream with every length checked before anything is
//! allocated.

use bytes::{BufMut, Bytes, BytesMut};

use super::Status;
use crate::proto::codec::{read_all, CodecError, Framing, Header, Reader, HEADER_LEN};
use crate::runtime::channel_io::ChannelReader;

/// Largest DATA or STDERR body.
pub const MAX_DATA: usize = 64 * 1024;
/// Longest TERM in START.
pub const MAX_TERM: usize = 64;

/// Message tags.
pub mod tag {
    /// client → server: the terminal's size and type; first message.
    pub const START: u8 = b'S';
    /// both: the program's input (client → server) or output (server → client).
    pub const DATA: u8 = b'D';
    /// client → server: the terminal's new size.
    pub const WINSIZE: u8 = b'W';
    /// server → client: pipes or a pseudo-terminal; first message.
    pub const MODE: u8 = b'M';
    /// server → client: the program's standard error.
    pub const STDERR: u8 = b'E';
    /// server → client: how the program ended; last message.
    pub const EXIT: u8 = b'X';
}

/// A terminal size in characters; 0 × 0 means no terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Winsize {
    /// Lines.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// One message of the program service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// client → server: the terminal's size and `TERM` (empty: none or not acceptable).
    Start {
        /// The client terminal's size.
        size: Winsize,
        /// The client's `TERM`, checked: ASCII letters, digits and `-_.+` only.
        term: String,
    },
    /// Input or output bytes (never empty).
    Data(Bytes),
    /// client → server: the terminal's new size.
    Winsize(Winsize),
    /// server → client: whether the program runs under a pseudo-terminal.
    Mode {
        /// True: a pseudo-terminal (the client puts its terminal in raw mode).
        pty: bool,
    },
    /// server → client: standard error bytes (never empty).
    Stderr(Bytes),
    /// server → client: how the program ended.
    Exit(Status),
}

/// Why a message could not be read: the peer broke the program service's format, or the
/// stream ended inside a message.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The peer sent bytes that are not a valid message (its fault).
    #[error("the peer broke the program protocol: {0}")]
    Malformed(String),
    /// The stream ended in the middle of a message (the session ended early).
    #[error("the session ended in the middle of a message")]
    Truncated,
}

impl From<CodecError> for WireError {
    fn from(e: CodecError) -> Self {
        WireError::Malformed(e.to_string())
    }
}

/// True for a TERM value safe to put in a child's environment.
pub fn term_ok(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= MAX_TERM
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
}

impl Msg {
    /// The message as bytes on the stream.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::new();
        let size = |w: &mut crate::proto::codec::Writer<'_, BytesMut>, s: &Winsize| {
            w.u16(s.rows).u16(s.cols);
        };
        Framing::TypeLen.frame(&mut out, |w| match self {
            Msg::Start { size: s, term } => {
                size(w, s);
                let t = if term_ok(term) { term.as_str() } else { "" };
                w.bytes(t.as_bytes());
                tag::START
            }
            Msg::Data(b) => {
                w.bytes(b);
                tag::DATA
            }
            Msg::Winsize(s) => {
                size(w, s);
                tag::WINSIZE
            }
            Msg::Mode { pty } => {
                w.u8(u8::from(*pty));
                tag::MODE
            }
            Msg::Stderr(b) => {
                w.bytes(b);
                tag::STDERR
            }
            Msg::Exit(s) => {
                let (kind, v) = match s {
                    Status::Exited(c) => (0, *c),
                    Status::Signaled(n) => (1, *n),
                };
                w.u8(kind).u8(v);
                tag::EXIT
            }
        });
        out.freeze()
    }

    /// Decodes the body of a message with tag `ty`.
    pub fn decode(ty: u8, body: Bytes) -> Result<Msg, WireError> {
        let size = |r: &mut Reader<'_>| -> Result<Winsize, CodecError> {
            Ok(Winsize {
                rows: r.u16()?,
                cols: r.u16()?,
            })
        };
        match ty {
            tag::DATA | tag::STDERR => {
                if body.is_empty() {
                    return Err(WireError::Malformed("an empty data message".into()));
                }
                Ok(if ty == tag::DATA {
                    Msg::Data(body)
                } else {
                    Msg::Stderr(body)
                })
            }
            tag::START => read_all(&body, |r| {
                let s = size(r)?;
                let t = r.utf8_rest(MAX_TERM)?;
                let term = if term_ok(t) {
                    t.to_owned()
                } else {
                    String::new()
                };
                Ok(Msg::Start { size: s, term })
            }),
            tag::WINSIZE => read_all(&body, |r| Ok(Msg::Winsize(size(r)?))),
            tag::MODE => read_all(&body, |r| match r.u8()? {
                0 => Ok(Msg::Mode { pty: false }),
                1 => Ok(Msg::Mode { pty: true }),
                _ => Err(CodecError::Invalid("pty flag").into()),
            }),
            tag::EXIT => read_all(&body, |r| {
                let (kind, v) = (r.u8()?, r.u8()?);
                match kind {
                    0 => Ok(Msg::Exit(Status::Exited(v))),
                    1 => Ok(Msg::Exit(Status::Signaled(v))),
                    _ => Err(CodecError::Invalid("exit kind").into()),
                }
            }),
            t => Err(WireError::Malformed(format!(
                "unknown message tag {t:#04x}"
            ))),
        }
    }
}

/// The largest body any message may have.
fn max_body(ty: u8) -> usize {
    match ty {
        tag::DATA | tag::STDERR => MAX_DATA,
        tag::START => 4 + MAX_TERM,
        _ => 4,
    }
}

/// Reads the next message; None at the end of the peer's stream (between messages).
pub async fn read(r: &mut ChannelReader) -> Result<Option<Msg>, WireError> {
    let Some(first) = r.recv_up_to(HEADER_LEN).await else {
        return Ok(None);
    };
    let mut h = [0u8; HEADER_LEN];
    h[..first.len()].copy_from_slice(&first);
    if first.len() < HEADER_LEN {
        let rest = r
            .recv_exact(HEADER_LEN - first.len())
            .await
            .map_err(|_| WireError::Truncated)?;
        h[first.len()..].copy_from_slice(&rest);
    }
    let head = Header::type_len(&h);
    let head = head.within(max_body(head.ty))?;
    let body = if head.body_len == 0 {
        Bytes::new()
    } else {
        r.recv_exact(head.body_len)
            .await
            .map_err(|_| WireError::Truncated)?
    };
    Msg::decode(head.ty, body).map(Some)
}

/// Appends `data` as DATA (or STDERR) messages of at most [`MAX_DATA`] bytes each.
pub fn encode_data(data: &[u8], stderr: bool) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + HEADER_LEN * (1 + data.len() / MAX_DATA));
    let ty = if stderr { tag::STDERR } else { tag::DATA };
    for c in data.chunks(MAX_DATA) {
        out.put_slice(&Framing::TypeLen.header(ty, c.len()));
        out.put_slice(c);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(m: Msg) {
        let b = m.encode();
        let h = Header::type_len(b[..HEADER_LEN].try_into().unwrap());
        assert_eq!(h.body_len, b.len() - HEADER_LEN);
        assert_eq!(Msg::decode(h.ty, b.slice(HEADER_LEN..)).unwrap(), m);
    }

    #[test]
    fn every_message_round_trips() {
        roundtrip(Msg::Start {
            size: Winsize { rows: 24, cols: 80 },
            term: "xterm-256color".into(),
        });
        roundtrip(Msg::Data(Bytes::from_static(b"hi")));
        roundtrip(Msg::Winsize(Winsize { rows: 1, cols: 2 }));
        roundtrip(Msg::Mode { pty: true });
        roundtrip(Msg::Stderr(Bytes::from_static(b"oops")));
        roundtrip(Msg::Exit(Status::Exited(7)));
        roundtrip(Msg::Exit(Status::Signaled(9)));
    }

    #[test]
    fn hostile_messages_are_errors_not_panics() {
        assert!(Msg::decode(tag::DATA, Bytes::new()).is_err());
        assert!(Msg::decode(b'?', Bytes::from_static(b"x")).is_err());
        assert!(Msg::decode(tag::WINSIZE, Bytes::from_static(b"\0\x01\0")).is_err());
        assert!(Msg::decode(tag::EXIT, Bytes::from_static(b"\x02\0")).is_err());
        assert!(Msg::decode(tag::MODE, Bytes::from_static(b"\x05")).is_err());
        // A TERM that would smuggle anything into the environment is dropped.
        let m = Msg::decode(tag::START, Bytes::from_static(b"\0\x18\0\x50a b\n")).unwrap();
        assert_eq!(
            m,
            Msg::Start {
                size: Winsize { rows: 24, cols: 80 },
                term: String::new()
            }
        );
    }

    #[tokio::test]
    async fn reading_refuses_an_oversized_length_before_allocating() {
        use crate::runtime::channel_io::channel_app;
        use crate::runtime::AppSink;
        let (_src, mut sink, _w, mut r) = channel_app(4);
        let mut b = Bytes::copy_from_slice(&Framing::TypeLen.header(tag::DATA, 1 << 30));
        std::future::poll_fn(|cx| sink.poll_write_chunk(cx, &mut b))
            .await
            .unwrap();
        assert!(matches!(read(&mut r).await, Err(WireError::Malformed(_))));
    }

    #[test]
    fn long_data_is_cut_into_bounded_messages() {
        let data = vec![7u8; MAX_DATA * 2 + 3];
        let b = encode_data(&data, false);
        assert_eq!(b.len(), data.len() + 3 * HEADER_LEN);
    }
}
