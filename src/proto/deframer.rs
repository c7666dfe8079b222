//! Cuts the preamble and then whole frames out of one flowpath's byte stream.

use std::collections::VecDeque;

use bytes::buf::Limit;
use bytes::{Buf, BufMut, BytesMut};

use super::frame::{DecodeError, Frame, FRAME_HEADER_LEN, MAX_FRAME_LEN};
use super::record::{OpenJob, Opener, RecordError};

/// The first bytes each side sends on a flowpath: magic, then the protocol version.
pub const PREAMBLE: [u8; 6] = *b"MSOCK\x01";
/// Length of [`PREAMBLE`].
pub const PREAMBLE_LEN: usize = PREAMBLE.len();
/// The protocol version this implementation speaks (last byte of [`PREAMBLE`]).
pub const VERSION: u8 = PREAMBLE[5];

/// Size of each receive buffer (see [`Deframer::read_space`]).
const RECV_BUF: usize = 256 * 1024;

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
    /// An encrypted record did not authenticate (or had an impossible length).
    #[error("{0}")]
    Record(#[from] RecordError),
}

/// Incremental frame reader for one flowpath. Feed bytes with [`Deframer::buffer`] (read straight
/// into it) or [`Deframer::extend`], then take frames with [`Deframer::next_frame`] until it
/// returns `Ok(None)`. Memory is bounded: at most one frame ([`MAX_FRAME_LEN`]) is held beyond
/// what the caller chose to read in.
#[derive(Debug)]
pub struct Deframer {
    /// Plaintext bytes: frames are cut from here.
    buf: BytesMut,
    /// False until the peer's [`PREAMBLE`] has been seen and consumed.
    preamble_seen: bool,
    /// Encrypted sessions, once the peer's records start: opens them.
    opener: Option<Box<Keyed>>,
    /// Encrypted bytes not yet opened (used only with an opener).
    raw: BytesMut,
    /// Records are not opened here but handed out ([`Deframer::take_open_job`]), their
    /// plaintext coming back through [`Deframer::push_opened`].
    deferred: bool,
}

/// What an encrypted stream needs beyond a plain one (boxed: most connections carry it, but
/// a connection is moved around often enough that its size matters).
#[derive(Debug)]
struct Keyed {
    opener: Opener,
    /// With deferred opening: plaintexts handed back while `buf` still held frames, in order
    /// (each becomes `buf` in turn, rather than being copied behind it).
    opened: VecDeque<BytesMut>,
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
            buf: BytesMut::with_capacity(RECV_BUF),
            preamble_seen: false,
            opener: None,
            raw: BytesMut::new(),
            deferred: false,
        }
    }

    /// A deframer for a stream whose preamble was already consumed (e.g. by the listener's
    /// protocol detection).
    pub fn after_preamble() -> Self {
        let mut d = Self::new();
        d.preamble_seen = true;
        d
    }

    /// From now on the peer's bytes are records opened by `opener` (bytes already received
    /// beyond the frames taken so far are the first of them). Only the session calls this, in
    /// the call that learns the keys, so that the runtime cannot forget it.
    pub(super) fn set_opener(&mut self, opener: Opener) {
        self.raw = self.buf.split();
        self.opener = Some(Box::new(Keyed {
            opener,
            opened: VecDeque::new(),
        }));
    }

    /// From now on, records are opened by the caller: [`Deframer::next_frame`] only cuts
    /// frames out of plaintext handed back with [`Deframer::push_opened`], and whole records
    /// are taken with [`Deframer::take_open_job`]. Without a key yet, frames still come
    /// straight from the stream, up to the one that keys it.
    pub fn defer_opening(&mut self) {
        self.deferred = true;
    }

    /// With deferred opening: the next whole record received, to be opened (in order) by
    /// [`OpenJob::run`]; None if none is complete yet (or the stream is not keyed); an error
    /// on an impossible length (the stream is then dead).
    pub fn take_open_job(&mut self) -> Result<Option<OpenJob>, RecordError> {
        let Some(keyed) = self.opener.as_mut().filter(|_| self.deferred) else {
            return Ok(None);
        };
        let Some(n) = Opener::record_len(&self.raw)? else {
            return Ok(None);
        };
        if self.raw.len() < n {
            return Ok(None);
        }
        keyed.opener.open_later(self.raw.split_to(n)).map(Some)
    }

    /// With deferred opening: the plaintext of the oldest record taken and not yet handed
    /// back.
    pub fn push_opened(&mut self, plain: BytesMut) {
        match self.opener.as_mut() {
            Some(k) if !self.buf.is_empty() || !k.opened.is_empty() => k.opened.push_back(plain),
            _ if self.buf.is_empty() => self.buf = plain,
            _ => self.buf.extend_from_slice(&plain),
        }
    }

    /// With deferred opening: the next frame of the plaintexts handed back.
    fn next_opened_frame(&mut self) -> Result<Option<Frame>, DeframeError> {
        loop {
            if let Some(f) = self.next_plain_frame()? {
                return Ok(Some(f));
            }
            let Some(plain) = self.opener.as_mut().and_then(|k| k.opened.pop_front()) else {
                return Ok(None);
            };
            if self.buf.is_empty() {
                self.buf = plain;
            } else {
                // A frame cut by the end of a record (no msock does that): joined here.
                self.buf.extend_from_slice(&plain);
            }
        }
    }

    /// The receive buffer, to read socket bytes into directly. Keeps at least `min_free` bytes
    /// of spare capacity available.
    pub fn buffer(&mut self, min_free: usize) -> &mut BytesMut {
        if self.opener.is_some() {
            if self.raw.capacity() - self.raw.len() < min_free {
                self.raw.reserve(min_free);
            }
            return &mut self.raw;
        }
        if self.buf.capacity() - self.buf.len() < min_free {
            self.buf.reserve(min_free);
        }
        &mut self.buf
    }

    /// Where to read socket bytes to next: spare room of the receive buffer, limited so that
    /// frames never straddle the end of an allocation. Frame bodies are handed out as slices of
    /// this buffer, so a frame cut by its end would have to be copied into a new one; instead,
    /// a read may fill the buffer only as far as a maximal frame starting in it still fits,
    /// near the end it completes exactly the frame in progress, and a fresh buffer starts on a
    /// frame boundary. Never empty.
    pub fn read_space(&mut self) -> Limit<&mut BytesMut> {
        const FULL: usize = 4 + MAX_FRAME_LEN;
        if self.opener.is_some() {
            // Records are opened in place and their plaintext handed out as slices, so a
            // record cut by the end of an allocation would have to be copied into a new one.
            // Instead, reads stop at record boundaries: first the 4-byte header, then exactly
            // the rest of the record, for which room is made before it is read (copying at
            // most its header).
            let need = match Opener::record_len(&self.raw) {
                Ok(Some(n)) => n - self.raw.len(),
                Ok(None) => 4 - self.raw.len(),
                // A bad length: the next `next_frame` reports it; read anything meanwhile.
                Err(_) => 1,
            };
            if self.raw.capacity() - self.raw.len() < need {
                // A fresh buffer, not `reserve`: growing in place would copy every byte
                // consumed from this allocation so far.
                let mut fresh = BytesMut::with_capacity((self.raw.len() + need).max(RECV_BUF));
                fresh.extend_from_slice(&self.raw);
                self.raw = fresh;
            }
            return (&mut self.raw).limit(need);
        }
        if !self.preamble_seen {
            let n = self.buffer(FULL + PREAMBLE_LEN).capacity() - self.buf.len();
            return (&mut self.buf).limit(n - FULL);
        }
        // Bytes still needed by the frame in progress (a header, if its length is not in
        // yet, counts as a maximal frame), and how much to read to finish it (or its header).
        let (mut need, mut exact) = self.in_progress();
        let mut spare = self.buf.capacity() - self.buf.len();
        if spare < need.max(1) || (need == 0 && spare <= FULL) {
            // Start over in a fresh buffer (this copies only the frame in progress, and
            // normally there is none).
            self.buf.reserve(RECV_BUF.max(need + FULL));
            spare = self.buf.capacity() - self.buf.len();
            (need, exact) = self.in_progress();
        }
        let limit = if spare >= FULL + need.max(1) {
            spare - FULL
        } else {
            exact
        };
        (&mut self.buf).limit(limit)
    }

    /// (bytes missing from the last, incomplete frame in the buffer, bytes to read to complete
    /// it or, if its length is not in yet, its header). A header not yet complete counts as
    /// the start of a maximal frame. A bad length counts as nothing missing: the next
    /// [`Deframer::next_frame`] reports it.
    fn in_progress(&self) -> (usize, usize) {
        let mut pos = 0;
        loop {
            let rest = &self.buf[pos..];
            if rest.is_empty() {
                return (0, 0);
            }
            if rest.len() < 4 {
                return (4 + MAX_FRAME_LEN - rest.len(), 4 - rest.len());
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len == 0 || len > MAX_FRAME_LEN {
                return (0, 0);
            }
            if rest.len() < 4 + len {
                let need = 4 + len - rest.len();
                return (need, need);
            }
            pos += 4 + len;
        }
    }

    /// Appends received bytes.
    pub fn extend(&mut self, data: &[u8]) {
        if self.opener.is_some() {
            self.raw.extend_from_slice(data);
        } else {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes received but not yet consumed as frames.
    pub fn buffered(&self) -> usize {
        let opened = self
            .opener
            .as_ref()
            .map_or(0, |k| k.opened.iter().map(BytesMut::len).sum());
        self.buf.len() + self.raw.len() + opened
    }

    /// The next complete frame, opening records as needed (see [`Deframer::next_frame`]).
    fn next_sealed_frame(&mut self) -> Result<Option<Frame>, DeframeError> {
        loop {
            if let Some(f) = self.next_plain_frame()? {
                return Ok(Some(f));
            }
            let Some(n) = Opener::record_len(&self.raw)? else {
                return Ok(None);
            };
            if self.raw.len() < n {
                return Ok(None);
            }
            let rec = self.raw.split_to(n);
            let keyed = self.opener.as_mut().expect("caller checked");
            let plain = keyed.opener.open(rec)?;
            if self.buf.is_empty() {
                self.buf = plain;
            } else {
                self.buf.extend_from_slice(&plain);
            }
        }
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed, or an error that makes the
    /// rest of the stream meaningless (the flowpath must be closed).
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DeframeError> {
        if self.opener.is_some() {
            if self.deferred {
                return self.next_opened_frame();
            }
            return self.next_sealed_frame();
        }
        self.next_plain_frame()
    }

    fn next_plain_frame(&mut self) -> Result<Option<Frame>, DeframeError> {
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
        if self.buf.len() < 4 {
            return Ok(None);
        }
        // Judge the length as soon as it is in: a peer that sends a bad one and then waits is
        // told at once.
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if len == 0 || len as usize > MAX_FRAME_LEN {
            return Err(DecodeError::BadLength(len).into());
        }
        if self.buf.len() < FRAME_HEADER_LEN {
            return Ok(None);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::tests::{arb_frame, expected_after_encoding};
    use crate::proto::frame::ErrorCode;
    use bytes::{BufMut, Bytes};
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Cuts `bytes` into pieces whose sizes cycle through `sizes` (each at least 1).
    fn split<'a>(bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
        let mut pieces = Vec::new();
        let mut rest = bytes;
        for &n in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at(n.clamp(1, rest.len()));
            pieces.push(piece);
            rest = tail;
        }
        pieces
    }

    /// One part of a hostile byte stream.
    #[derive(Clone, Debug)]
    enum Piece {
        Valid(Frame),
        Junk(Vec<u8>),
        /// A length field (any value) and a type byte, then `body` bytes.
        Header {
            len: u32,
            ty: u8,
            body: usize,
        },
    }

    fn piece() -> impl Strategy<Value = Piece> {
        prop_oneof![
            3 => arb_frame().prop_map(Piece::Valid),
            1 => vec(any::<u8>(), 0..40).prop_map(Piece::Junk),
            1 => (
                prop_oneof![Just(0u32), 1..=MAX_FRAME_LEN as u32 + 2, any::<u32>()],
                any::<u8>(),
                prop_oneof![0..50usize, 60_000..70_000usize],
            )
                .prop_map(|(len, ty, body)| Piece::Header { len, ty, body }),
        ]
    }

    fn start() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => Just(PREAMBLE.to_vec()),
            1 => vec(any::<u8>(), 0..8),
            1 => any::<u8>().prop_map(|v| [&PREAMBLE[..5], &[v]].concat()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn frames_survive_any_split(
            frames in vec(arb_frame(), 0..12),
            sizes in vec(1..3000usize, 1..20),
            direct in any::<bool>(),
        ) {
            let mut stream = BytesMut::from(&PREAMBLE[..]);
            for f in &frames {
                f.encode(&mut stream);
            }
            let mut d = Deframer::new();
            let mut got = Vec::new();
            for piece in split(&stream, &sizes) {
                if direct {
                    d.buffer(piece.len()).put_slice(piece);
                } else {
                    d.extend(piece);
                }
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            let expected: Vec<_> = frames.iter().map(expected_after_encoding).collect();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(d.buffered(), 0);
        }

        /// Hostile input never panics, and between frames the deframer holds less than one
        /// maximal frame (or, before the preamble, less than the preamble).
        #[test]
        fn hostile_input_is_bounded(
            head in start(),
            pieces in vec(piece(), 0..10),
            sizes in vec(1..5000usize, 1..20),
        ) {
            let mut stream = BytesMut::from(&head[..]);
            for p in pieces {
                match p {
                    Piece::Valid(f) => f.encode(&mut stream),
                    Piece::Junk(j) => stream.put_slice(&j),
                    Piece::Header { len, ty, body } => {
                        stream.put_u32(len);
                        stream.put_u8(ty);
                        stream.put_bytes(0x5a, body);
                    }
                }
            }
            let mut d = Deframer::new();
            let mut fed = 0;
            'feed: for piece in split(&stream, &sizes) {
                d.extend(piece);
                fed += piece.len();
                loop {
                    match d.next_frame() {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'feed, // the stream is dead
                    }
                }
                prop_assert!(d.buffered() <= fed);
                if d.preamble_seen {
                    prop_assert!(d.buffered() < 4 + MAX_FRAME_LEN, "{}", d.buffered());
                } else {
                    prop_assert!(d.buffered() < PREAMBLE_LEN);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Reading where `read_space` says (any amount up to its limit) delivers every frame,
        /// and leaves the frame in progress room to complete in the same buffer, so that no
        /// received byte is ever copied to a new one.
        #[test]
        fn read_space_keeps_frames_whole(
            sizes in vec(0..=crate::proto::frame::MAX_DATA_PAYLOAD, 1..40),
            reads in vec(1..400_000usize, 1..20),
        ) {
            let mut stream = BytesMut::from(&PREAMBLE[..]);
            let frames: Vec<Frame> = sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| Frame::Data { offset: i as u64, payload: Bytes::from(vec![i as u8; n]) })
                .collect();
            for f in &frames {
                f.encode(&mut stream);
            }
            let mut d = Deframer::new();
            let mut got = Vec::new();
            let mut at = 0;
            for &want in reads.iter().cycle() {
                if at == stream.len() {
                    break;
                }
                let mut space = d.read_space();
                let n = want.min(space.remaining_mut()).min(stream.len() - at);
                prop_assert!(n > 0);
                space.put_slice(&stream[at..at + n]);
                at += n;
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
                if d.preamble_seen {
                    let spare = d.buf.capacity() - d.buf.len();
                    let (need, _) = d.in_progress();
                    prop_assert!(need <= spare, "need {} spare {}", need, spare);
                }
            }
            prop_assert_eq!(got, frames);
        }
    }

    /// Deferred opening (records handed out as jobs, opened in a batch later, as on the
    /// crypto thread): the same frames come out as when the deframer opens them, however the
    /// stream is split; a flipped byte or a cut-off stream never panics and never yields a
    /// frame from a forged record.
    #[test]
    fn deferred_opening_matches_and_rejects_forgeries() {
        use crate::proto::record::Sealer;
        let key = [5u8; 32];
        let frames: Vec<Frame> = (0..20u64)
            .map(|i| Frame::Data {
                offset: i * 1000,
                payload: Bytes::from(vec![i as u8; 300 + 997 * i as usize]),
            })
            .collect();
        let mut sealer = Sealer::new(&key);
        let mut stream = BytesMut::new();
        for pair in frames.chunks(2) {
            let mut plain = BytesMut::new();
            for f in pair {
                f.encode(&mut plain);
            }
            stream.extend_from_slice(&sealer.seal(&mut plain));
        }
        let run = |stream: &[u8], step: usize| -> Result<Vec<Frame>, DeframeError> {
            let mut d = Deframer::after_preamble();
            d.defer_opening();
            d.set_opener(crate::proto::record::Opener::new(&key));
            let mut got = Vec::new();
            for piece in stream.chunks(step) {
                d.extend(piece);
                let mut jobs = Vec::new();
                while let Some(j) = d.take_open_job()? {
                    jobs.push(j);
                }
                // All handed back before any frame is taken, as the driver does with what
                // its crypto thread finished.
                for j in jobs {
                    d.push_opened(j.run()?);
                }
                while let Some(f) = d.next_frame()? {
                    got.push(f);
                }
            }
            Ok(got)
        };
        for step in [1, 7, 4096, 65_536, stream.len()] {
            assert_eq!(run(&stream, step).unwrap(), frames, "step {step}");
        }
        for at in (0..stream.len()).step_by(stream.len() / 97) {
            let mut bad = stream.to_vec();
            bad[at] ^= 0x01;
            // A forged record fails; a length field made longer leaves the stream waiting
            // for bytes that never come. Either way only frames before it came out.
            if let Ok(got) = run(&bad, 5000) {
                assert!(
                    got.len() < frames.len(),
                    "flipping byte {at} went unnoticed"
                );
                assert_eq!(got[..], frames[..got.len()]);
            }
        }
        for cut in [1, 3, 4, 5, 100, stream.len() - 1] {
            let got = run(&stream[..cut], 333).unwrap();
            assert!(got.len() < frames.len());
        }
    }

    #[test]
    fn classifies_preambles() {
        assert_eq!(match_preamble(b""), PreambleMatch::Partial);
        assert_eq!(match_preamble(b"MSO"), PreambleMatch::Partial);
        assert_eq!(match_preamble(b"MSOCK"), PreambleMatch::Partial);
        assert_eq!(match_preamble(b"MSOCK\x01"), PreambleMatch::Msock);
        assert_eq!(match_preamble(b"MSOCK\x01rest"), PreambleMatch::Msock);
        assert_eq!(match_preamble(b"MSOCK\x02"), PreambleMatch::WrongVersion(2));
        assert_eq!(match_preamble(b"GET / HTTP/1.1"), PreambleMatch::Foreign);
        assert_eq!(match_preamble(b"MX"), PreambleMatch::Foreign);
    }

    #[test]
    fn refuses_foreign_and_other_versions() {
        let mut d = Deframer::new();
        d.extend(b"hello\n");
        assert_eq!(d.next_frame(), Err(DeframeError::NotMsock));
        let mut d = Deframer::new();
        d.extend(b"MSOCK\x07");
        assert_eq!(d.next_frame(), Err(DeframeError::Version(7)));
    }

    #[test]
    fn bad_lengths_are_caught_from_the_header() {
        for len in [0, MAX_FRAME_LEN as u32 + 1, u32::MAX] {
            let mut d = Deframer::after_preamble();
            d.extend(&len.to_be_bytes());
            d.extend(&[0x10]); // the header is complete; no body follows
            assert_eq!(d.next_frame(), Err(DecodeError::BadLength(len).into()));
        }
    }

    #[test]
    fn waits_for_a_maximal_frame_byte_by_byte_at_the_end() {
        let f = Frame::Data {
            offset: 9,
            payload: Bytes::from(vec![3; crate::proto::frame::MAX_DATA_PAYLOAD]),
        };
        let mut enc = BytesMut::new();
        f.encode(&mut enc);
        let mut d = Deframer::after_preamble();
        d.extend(&enc[..enc.len() - 1]);
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.buffered(), 4 + MAX_FRAME_LEN - 1);
        d.extend(&enc[enc.len() - 1..]);
        assert_eq!(d.next_frame(), Ok(Some(f)));
        assert_eq!(d.next_frame(), Ok(None));
    }

    #[test]
    fn malformed_body_is_an_error() {
        let mut d = Deframer::new();
        d.extend(&PREAMBLE);
        d.extend(&[0, 0, 0, 2, 0x12, 0]); // PING with a 1-byte body
        assert_eq!(d.next_frame(), Err(DecodeError::Truncated(0x12).into()));
        let mut d = Deframer::after_preamble();
        let mut enc = BytesMut::new();
        Frame::Error {
            code: ErrorCode::Busy,
            reason: "full".into(),
        }
        .encode(&mut enc);
        d.extend(&enc);
        assert!(matches!(d.next_frame(), Ok(Some(Frame::Error { .. }))));
    }
}
