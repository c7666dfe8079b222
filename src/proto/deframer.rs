//! Cuts the preamble and then whole frames out of one flowpath's byte stream.

use bytes::{Buf, BytesMut};

use super::frame::{DecodeError, Frame, FRAME_HEADER_LEN, MAX_FRAME_LEN};

/// The first bytes each side sends on a flowpath: magic, then the protocol version.
pub const PREAMBLE: [u8; 6] = *b"MSOCK\x01";
/// Length of [`PREAMBLE`].
pub const PREAMBLE_LEN: usize = PREAMBLE.len();
/// The protocol version this implementation speaks (last byte of [`PREAMBLE`]).
pub const VERSION: u8 = PREAMBLE[5];

/// How the first bytes of a connection compare with [`PREAMBLE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreambleMatch {
    /// All six bytes are present and match.
    Msock,
    /// Fewer than six bytes so far, and they match as far as they go.
    Partial,
    /// The magic matches but the version is not ours.
    WrongVersion(u8),
    /// Not msock: the peer speaks something else (e.g. plain TCP text).
    Foreign,
}

/// Classifies the first bytes received on a connection.
pub fn match_preamble(bytes: &[u8]) -> PreambleMatch {
    let n = bytes.len().min(PREAMBLE_LEN);
    let magic = PREAMBLE_LEN - 1;
    if bytes[..n.min(magic)] != PREAMBLE[..n.min(magic)] {
        return PreambleMatch::Foreign;
    }
    if n < PREAMBLE_LEN {
        return PreambleMatch::Partial;
    }
    if bytes[magic] != VERSION {
        return PreambleMatch::WrongVersion(bytes[magic]);
    }
    PreambleMatch::Msock
}

/// A byte stream that does not follow the wire format. Always the peer's fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DeframeError {
    /// The stream does not start with the msock magic.
    #[error("peer does not speak msock (no msock preamble)")]
    NotMsock,
    /// The stream starts with the msock magic but another version.
    #[error("peer speaks msock protocol version {0}, this build speaks version {VERSION}")]
    Version(u8),
    /// A frame could not be decoded.
    #[error("malformed frame: {0}")]
    Frame(#[from] DecodeError),
}

/// Incremental frame reader for one flowpath. Feed bytes with [`Deframer::buffer`] (read straight
/// into it) or [`Deframer::extend`], then take frames with [`Deframer::next_frame`] until it
/// returns `Ok(None)`. Memory is bounded: at most one frame ([`MAX_FRAME_LEN`]) is held beyond
/// what the caller chose to read in.
#[derive(Debug)]
pub struct Deframer {
    buf: BytesMut,
    /// False until the peer's [`PREAMBLE`] has been seen and consumed.
    preamble_seen: bool,
}

impl Default for Deframer {
    fn default() -> Self {
        Self::new()
    }
}

impl Deframer {
    /// A deframer that first expects the peer's preamble.
    pub fn new() -> Self {
        Deframer {
            buf: BytesMut::with_capacity(256 * 1024),
            preamble_seen: false,
        }
    }

    /// A deframer for a stream whose preamble was already consumed (e.g. by the listener's
    /// protocol detection).
    pub fn after_preamble() -> Self {
        let mut d = Self::new();
        d.preamble_seen = true;
        d
    }

    /// The receive buffer, to read socket bytes into directly. Keeps at least `min_free` bytes
    /// of spare capacity available.
    pub fn buffer(&mut self, min_free: usize) -> &mut BytesMut {
        if self.buf.capacity() - self.buf.len() < min_free {
            self.buf.reserve(min_free);
        }
        &mut self.buf
    }

    /// Appends received bytes.
    pub fn extend(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet consumed as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or an error that makes the
    /// rest of the stream meaningless (the flowpath must be closed).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DeframeError> {
        if !self.preamble_seen {
            match match_preamble(&self.buf) {
                PreambleMatch::Partial => return Ok(None),
                PreambleMatch::Foreign => return Err(DeframeError::NotMsock),
                PreambleMatch::WrongVersion(v) => return Err(DeframeError::Version(v)),
                PreambleMatch::Msock => {
                    self.buf.advance(PREAMBLE_LEN);
                    self.preamble_seen = true;
                }
            }
        }
        if self.buf.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if len == 0 || len as usize > MAX_FRAME_LEN {
            return Err(DecodeError::BadLength(len).into());
        }
        if self.buf.len() < 4 + len as usize {
            return Ok(None);
        }
        let frame_type = self.buf[4];
        self.buf.advance(FRAME_HEADER_LEN);
        let body = self.buf.split_to(len as usize - 1).freeze();
        Ok(Some(Frame::decode(frame_type, body)?))
    }
}
