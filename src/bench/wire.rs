//! The bench protocol: messages inside the session's byte stream (or inside a plain TCP
//! connection, after [`TCP_MAGIC`](super::TCP_MAGIC)).
//!
//! Every message is `[kind u8][length u32, big-endian][body]`:
//!
//! | kind | name   | body | direction |
//! | ---- | ------ | ---- | --------- |
//! | 1    | PARAMS | JSON [`Params`](super::model::Params) | client → listener, first |
//! | 2    | DATA   | `length` bytes of payload (zeros, never looked at) | the sending side(s) |
//! | 3    | REPORT | JSON interval figures of a receiving listener | listener → client |
//! | 4    | END    | empty: the sender's last DATA came before this | the sending side(s) |
//! | 5    | RESULT | JSON final figures of the listener | listener → client, last |
//! | 6    | ERROR  | UTF-8 reason the sender gives up (plain TCP only) | either |
//!
//! DATA payload is counted and skipped without being copied or read; control messages are at
//! most [`MAX_CONTROL`] bytes. Anything else is the peer's error ([`WireError`]).

use bytes::{Bytes, BytesMut};

use crate::proto::codec::{Framing, Header, HEADER_LEN};

/// Bytes in a message header ([`Framing::TypeLen`]).
pub const HEADER: usize = HEADER_LEN;
/// Largest control message body accepted.
pub const MAX_CONTROL: usize = 64 * 1024;
/// Largest DATA block (`-l`) accepted.
pub const MAX_BLOCK: u64 = 16 << 20;

/// A message kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Test parameters.
    Params = 1,
    /// Payload.
    Data = 2,
    /// Interval figures.
    Report = 3,
    /// End of the sender's data.
    End = 4,
    /// Final figures.
    Result = 5,
    /// The sender gives up, with a reason.
    Error = 6,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Params,
            2 => Kind::Data,
            3 => Kind::Report,
            4 => Kind::End,
            5 => Kind::Result,
            6 => Kind::Error,
            _ => return None,
        })
    }
}

/// The peer broke the bench protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A kind byte this version does not know.
    #[error("unknown bench message type {0}")]
    UnknownKind(u8),
    /// A control message longer than [`MAX_CONTROL`].
    #[error("bench {0:?} message of {1} bytes is too long")]
    TooLong(Kind, u32),
}

/// A message header.
pub fn header(kind: Kind, len: usize) -> [u8; HEADER] {
    Framing::TypeLen.header(kind as u8, len)
}

/// A whole control message.
pub fn message(kind: Kind, body: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(HEADER + body.len());
    Framing::TypeLen.frame(&mut b, |w| {
        w.bytes(body);
        kind as u8
    });
    b.freeze()
}

/// A DATA message of `len` payload bytes (zeros), header included: built once and handed out
/// as cheap clones.
pub(crate) fn data_block(len: usize) -> Bytes {
    let mut b = BytesMut::zeroed(HEADER + len);
    b[..HEADER].copy_from_slice(&header(Kind::Data, len));
    b.freeze()
}

/// A control message as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    /// Its kind (never [`Kind::Data`]).
    pub kind: Kind,
    /// Its body.
    pub body: Bytes,
}

/// What [`Parser::feed`] found, in stream order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The header of a DATA message.
    DataHeader,
    /// A complete control message.
    Control(Control),
}

enum State {
    /// Reading a header; `have` bytes of it so far.
    Header { buf: [u8; HEADER], have: usize },
    /// Skipping DATA payload.
    Data { left: u64 },
    /// Collecting a control message body.
    Control {
        kind: Kind,
        left: usize,
        body: BytesMut,
    },
}

/// Splits a received byte stream into messages, counting DATA payload without copying it.
pub struct Parser {
    state: State,
    /// DATA payload bytes so far.
    pub(crate) data_bytes: u64,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            state: State::Header {
                buf: [0; HEADER],
                have: 0,
            },
            data_bytes: 0,
        }
    }
}

impl Parser {
    /// Consumes `chunk`, calling `found` for each DATA header and complete control message.
    /// After an error the parser must not be fed again.
    pub fn feed(
        &mut self,
        mut chunk: &[u8],
        mut found: impl FnMut(Found),
    ) -> Result<(), WireError> {
        while !chunk.is_empty() {
            match &mut self.state {
                State::Data { left } => {
                    let n = (*left).min(chunk.len() as u64);
                    *left -= n;
                    self.data_bytes += n;
                    chunk = &chunk[n as usize..];
                    if *left == 0 {
                        self.state = State::Header {
                            buf: [0; HEADER],
                            have: 0,
                        };
                    }
                }
                State::Control { kind, left, body } => {
                    let n = (*left).min(chunk.len());
                    body.extend_from_slice(&chunk[..n]);
                    *left -= n;
                    chunk = &chunk[n..];
                    if *left == 0 {
                        let c = Control {
                            kind: *kind,
                            body: std::mem::take(body).freeze(),
                        };
                        self.state = State::Header {
                            buf: [0; HEADER],
                            have: 0,
                        };
                        found(Found::Control(c));
                    }
                }
                State::Header { buf, have } => {
                    let n = (HEADER - *have).min(chunk.len());
                    buf[*have..*have + n].copy_from_slice(&chunk[..n]);
                    *have += n;
                    chunk = &chunk[n..];
                    if *have < HEADER {
                        continue;
                    }
                    let h = Header::type_len(buf);
                    let kind = Kind::from_u8(h.ty).ok_or(WireError::UnknownKind(h.ty))?;
                    self.state = match kind {
                        Kind::Data => {
                            found(Found::DataHeader);
                            State::Data {
                                left: h.body_len as u64,
                            }
                        }
                        _ => {
                            let len = h
                                .within(MAX_CONTROL)
                                .map_err(|_| WireError::TooLong(kind, h.body_len as u32))?
                                .body_len;
                            State::Control {
                                kind,
                                left: len,
                                body: BytesMut::with_capacity(len),
                            }
                        }
                    };
                    // Empty messages are complete at once; empty DATA is just skipped.
                    match &mut self.state {
                        State::Control { left: 0, .. } => {
                            self.state = State::Header {
                                buf: [0; HEADER],
                                have: 0,
                            };
                            found(Found::Control(Control {
                                kind,
                                body: Bytes::new(),
                            }));
                        }
                        State::Data { left: 0 } => {
                            self.state = State::Header {
                                buf: [0; HEADER],
                                have: 0,
                            };
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(&message(Kind::Params, br#"{"a":1}"#));
        s.extend_from_slice(&data_block(1000));
        s.extend_from_slice(&data_block(3));
        s.extend_from_slice(&message(Kind::End, b""));
        s.extend_from_slice(&message(Kind::Result, b"done"));
        s
    }

    fn parse_in_pieces(bytes: &[u8], piece: usize) -> (Vec<Found>, u64) {
        let mut p = Parser::default();
        let mut out = Vec::new();
        for c in bytes.chunks(piece) {
            p.feed(c, |f| out.push(f)).unwrap();
        }
        (out, p.data_bytes)
    }

    #[test]
    fn messages_come_out_whole_however_the_stream_is_cut() {
        let s = stream();
        let (whole, n) = parse_in_pieces(&s, s.len());
        assert_eq!(n, 1003);
        assert_eq!(
            whole,
            [
                Found::Control(Control {
                    kind: Kind::Params,
                    body: Bytes::from_static(br#"{"a":1}"#)
                }),
                Found::DataHeader,
                Found::DataHeader,
                Found::Control(Control {
                    kind: Kind::End,
                    body: Bytes::new()
                }),
                Found::Control(Control {
                    kind: Kind::Result,
                    body: Bytes::from_static(b"done")
                }),
            ]
        );
        for piece in [1, 2, 4, 5, 6, 7, 999] {
            assert_eq!(parse_in_pieces(&s, piece), (whole.clone(), 1003), "{piece}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut p = Parser::default();
        assert_eq!(
            p.feed(&[9, 0, 0, 0, 0], |_| {}),
            Err(WireError::UnknownKind(9))
        );
        let mut p = Parser::default();
        let long = header(Kind::Report, MAX_CONTROL + 1);
        assert!(matches!(
            p.feed(&long, |_| {}),
            Err(WireError::TooLong(Kind::Report, _))
        ));
        // A huge DATA length is fine: it is only counted.
        let mut p = Parser::default();
        p.feed(&header(Kind::Data, u32::MAX as usize), |_| {})
            .unwrap();
        p.feed(&[0; 100], |_| {}).unwrap();
        assert_eq!(p.data_bytes, 100);
    }

    #[test]
    fn empty_data_is_skipped() {
        let mut s = data_block(0).to_vec();
        s.extend_from_slice(&message(Kind::End, b""));
        let (found, n) = parse_in_pieces(&s, 3);
        assert_eq!(n, 0);
        assert_eq!(found.len(), 2);
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_input_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            piece in 1usize..40,
        ) {
            let mut p = Parser::default();
            for c in bytes.chunks(piece) {
                if p.feed(c, |_| {}).is_err() {
                    break;
                }
            }
        }
    }
}
