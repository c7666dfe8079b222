//! Receive (reorder) buffer: stream bytes arrive by offset in any order, possibly more than once,
//! and leave in order.

use std::collections::BTreeMap;

use bytes::Bytes;

/// Why received bytes were not accepted. The peer is at fault in every case.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecvError {
    /// Bytes at or beyond the limit this side advertised.
    #[error("peer sent bytes up to offset {end}, beyond the advertised limit {limit}")]
    BeyondWindow {
        /// End offset of the offending chunk.
        end: u64,
        /// The limit we had advertised.
        limit: u64,
    },
    /// Bytes at or beyond the stream's announced end.
    #[error("peer sent bytes up to offset {end}, beyond its own FIN at {fin}")]
    BeyondFin {
        /// End offset of the offending chunk.
        end: u64,
        /// The announced final offset.
        fin: u64,
    },
    /// A second FIN that names another stream length.
    #[error("peer moved its FIN from offset {was} to {now}")]
    FinMoved {
        /// The final offset announced first.
        was: u64,
        /// The conflicting one.
        now: u64,
    },
    /// An offset plus length that overflows u64.
    #[error("peer sent a chunk whose end overflows the offset space")]
    Overflow,
    /// The peer cut its stream into so many separate pieces that holding them would take
    /// more than the memory budget (twice the window).
    #[error("peer fragmented its stream into {chunks} separate pieces, more than {budget} bytes of bookkeeping can hold")]
    Fragmented {
        /// Pieces that would be held.
        chunks: usize,
        /// The bookkeeping budget in bytes.
        budget: usize,
    },
}

/// What one held chunk costs beyond its bytes: its map entry (key, value and the B-tree's
/// slack: nodes of ascending keys are about half full) and its allocation's header and
/// rounding. Measured, rounded up; see the `hostile` tests.
pub const CHUNK_OVERHEAD: usize = 160;

/// Most bytes a chunk kept by reference (a slice of the buffer the frame was read into) can
/// hold on to: that whole buffer (a receive buffer of 256 KiB plus room for one frame,
/// rounded up to what the allocator may give).
pub const PIN_CHARGE: usize = 512 << 10;

/// Pieces shorter than this are copied out of the buffer they were read into (they would
/// hold all of it), and merged with a copied neighbour they touch while the result stays
/// within [`COALESCE_MAX`].
const SHARE_MIN: usize = 16 << 10;

/// Largest chunk that small adjacent pieces are merged into: in-order data of any frame
/// size then needs at most about window / (COALESCE_MAX / 2) chunks.
const COALESCE_MAX: usize = 8 << 10;

/// The chunks' overhead ([`CHUNK_OVERHEAD`] each) may reach an eighth of the window, but
/// never less than this: a tiny window still leaves room for a few hundred holes.
const MIN_OVERHEAD_BUDGET: usize = 64 << 10;

/// One held run of stream bytes.
#[derive(Debug)]
struct Chunk {
    data: Bytes,
    /// A slice of the buffer the frame was read into (charged [`PIN_CHARGE`]), not a copy.
    shared: bool,
}

/// Bounded reorder buffer. Invariants: every held chunk is non-empty, lies at or above
/// `read_offset` and below `read_offset + window`, and no two chunks overlap. Its memory,
/// counted by [`RecvBuffer::cost`] with the per-chunk overhead and what a chunk kept by
/// reference may pin, stays within twice the window: pathological fragmentation (pieces that
/// touch nothing, e.g. one byte at every other offset) is refused as
/// [`RecvError::Fragmented`].
#[derive(Debug)]
pub struct RecvBuffer {
    /// Offset of the next byte the application will read.
    read_offset: u64,
    /// End of the contiguous run of held bytes starting at `read_offset`: every byte below it
    /// has been received (the cumulative acknowledgement).
    contiguous_end: u64,
    /// Highest end offset ever received.
    max_end: u64,
    /// Held chunks by start offset.
    chunks: BTreeMap<u64, Chunk>,
    /// Bytes held in `chunks`.
    buffered: usize,
    /// Of those, bytes in chunks kept by reference.
    shared_bytes: usize,
    /// Chunks kept by reference.
    shared_count: usize,
    /// Most bytes that may be held beyond `read_offset`.
    window: u64,
    /// The stream's total length once the peer's FIN is known.
    fin: Option<u64>,
}

impl RecvBuffer {
    /// An empty buffer that holds at most `window` bytes.
    pub fn new(window: u64) -> Self {
        RecvBuffer {
            read_offset: 0,
            contiguous_end: 0,
            max_end: 0,
            chunks: BTreeMap::new(),
            buffered: 0,
            shared_bytes: 0,
            shared_count: 0,
            window,
            fin: None,
        }
    }

    /// The offset below which the peer may send: what we advertise.
    pub fn limit(&self) -> u64 {
        self.read_offset + self.window
    }

    /// Every byte below this has been received.
    pub fn contiguous_end(&self) -> u64 {
        self.contiguous_end
    }

    /// Next offset the application will read.
    pub fn read_offset(&self) -> u64 {
        self.read_offset
    }

    /// Highest end offset received so far.
    #[cfg(test)]
    pub fn max_end(&self) -> u64 {
        self.max_end
    }

    /// Bytes held (in order or not) awaiting the application.
    #[cfg(test)]
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Memory the held chunks account for: copied bytes, [`PIN_CHARGE`] per chunk kept by
    /// reference, and [`CHUNK_OVERHEAD`] per chunk.
    #[cfg(test)]
    pub fn cost(&self) -> usize {
        (self.buffered - self.shared_bytes)
            + self.shared_count * PIN_CHARGE
            + self.chunks.len() * CHUNK_OVERHEAD
    }

    /// The most the chunks' overhead may reach: an eighth of the window (at least
    /// [`MIN_OVERHEAD_BUDGET`]). Separate pieces beyond it are refused.
    pub fn overhead_budget(&self) -> usize {
        usize::try_from(self.window / 8)
            .unwrap_or(usize::MAX)
            .max(MIN_OVERHEAD_BUDGET)
    }

    /// The most [`RecvBuffer::cost`] may reach: the window's bytes, what chunks kept by
    /// reference may pin (half the window), and the overhead budget; for the default window,
    /// 1.625 times the window.
    #[cfg(test)]
    pub fn budget(&self) -> usize {
        let window = usize::try_from(self.window).unwrap_or(usize::MAX);
        window
            .saturating_add(window / 2)
            .saturating_add(self.overhead_budget())
    }

    /// Bytes ready to read in order.
    pub fn readable(&self) -> u64 {
        self.contiguous_end - self.read_offset
    }

    /// Records the stream's final length. Fails if bytes beyond it were already received.
    pub fn set_fin(&mut self, fin: u64) -> Result<(), RecvError> {
        if let Some(known) = self.fin {
            if known != fin {
                return Err(RecvError::FinMoved {
                    was: known,
                    now: fin,
                });
            }
        }
        if self.max_end > fin {
            return Err(RecvError::BeyondFin {
                end: self.max_end,
                fin,
            });
        }
        self.fin = Some(fin);
        Ok(())
    }

    /// Stores `data` at `offset`, dropping whatever part duplicates bytes already received.
    /// Returns how many new bytes were stored. On an error nothing is stored.
    pub fn insert(&mut self, offset: u64, mut data: Bytes) -> Result<usize, RecvError> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(RecvError::Overflow)?;
        if end > self.limit() {
            return Err(RecvError::BeyondWindow {
                end,
                limit: self.limit(),
            });
        }
        if let Some(fin) = self.fin {
            if end > fin {
                return Err(RecvError::BeyondFin { end, fin });
            }
        }
        if data.is_empty() {
            return Ok(0);
        }
        let mut start = offset;
        if start < self.contiguous_end {
            // Fast path for pure duplicates and for overlap with the in-order run.
            if end <= self.contiguous_end {
                self.max_end = self.max_end.max(end);
                return Ok(0);
            }
            data = data.slice((self.contiguous_end - start) as usize..);
            start = self.contiguous_end;
        }
        // A held chunk starting before `start` may cover its beginning.
        if let Some((&s, c)) = self.chunks.range(..start).next_back() {
            let c_end = s + c.data.len() as u64;
            if c_end >= end {
                self.max_end = self.max_end.max(end);
                return Ok(0);
            }
            if c_end > start {
                data = data.slice((c_end - start) as usize..);
                start = c_end;
            }
        }
        // The gaps between held chunks that start inside [start, end): the new pieces.
        let mut pieces: Vec<(u64, Bytes)> = Vec::new();
        while start < end {
            let next = self
                .chunks
                .range(start..end)
                .next()
                .map(|(&s, c)| (s, s + c.data.len() as u64));
            match next {
                Some((s, c_end)) => {
                    if s > start {
                        pieces.push((start, data.slice(..(s - start) as usize)));
                    }
                    let skip = (c_end.min(end) - start) as usize;
                    data = data.slice(skip..);
                    start = c_end.min(end);
                }
                None => {
                    pieces.push((start, data));
                    break;
                }
            }
        }
        // Refuse what would take the chunks' overhead over budget (counting every piece as a
        // chunk of its own: merges only make it cheaper; a single piece that merges with a
        // neighbour adds none).
        let mut added = pieces.len();
        if let [(at, p)] = pieces.as_slice() {
            if !self.may_share(p.len(), 0) && self.merges(*at, p.len()) {
                added = 0;
            }
        }
        if (self.chunks.len() + added) * CHUNK_OVERHEAD > self.overhead_budget() {
            return Err(RecvError::Fragmented {
                chunks: self.chunks.len() + pieces.len(),
                budget: self.overhead_budget(),
            });
        }
        self.max_end = self.max_end.max(end);
        let mut stored = 0;
        for (at, piece) in pieces {
            stored += piece.len();
            self.buffered += piece.len();
            if self.may_share(piece.len(), 0) {
                self.shared_bytes += piece.len();
                self.shared_count += 1;
                self.chunks.insert(
                    at,
                    Chunk {
                        data: piece,
                        shared: true,
                    },
                );
            } else {
                self.store_copy(at, &piece);
            }
        }
        // Chunks may have merged with the one that holds the in-order run's end.
        while let Some((&s, c)) = self.chunks.range(..=self.contiguous_end).next_back() {
            let c_end = s + c.data.len() as u64;
            if c_end <= self.contiguous_end {
                break;
            }
            self.contiguous_end = c_end;
        }
        Ok(stored)
    }

    /// True if a piece of `len` bytes may be kept by reference, with `more` such pieces
    /// already planned: large enough to be worth it, and all of them pinning at most half
    /// the window.
    fn may_share(&self, len: usize, more: usize) -> bool {
        let pinned = (self.shared_count + more + 1).saturating_mul(PIN_CHARGE) as u64;
        len >= SHARE_MIN && pinned <= self.window / 2
    }

    /// True if a copied piece of `len` bytes at `at` would merge with a held chunk.
    fn merges(&self, at: u64, len: usize) -> bool {
        let mergeable = |c: &Chunk| !c.shared && c.data.len() + len <= COALESCE_MAX;
        let prev = self.chunks.range(..at).next_back();
        prev.is_some_and(|(&s, c)| s + c.data.len() as u64 == at && mergeable(c))
            || self.chunks.get(&(at + len as u64)).is_some_and(mergeable)
    }

    /// Stores a copy of `piece` at `at`, merged with the copied chunks it touches while the
    /// result stays within [`COALESCE_MAX`].
    fn store_copy(&mut self, at: u64, piece: &[u8]) {
        let end = at + piece.len() as u64;
        let mergeable = |c: &Chunk, len: usize| !c.shared && c.data.len() + len <= COALESCE_MAX;
        let prev = self
            .chunks
            .range(..at)
            .next_back()
            .filter(|(&s, c)| s + c.data.len() as u64 == at && mergeable(c, piece.len()))
            .map(|(&s, c)| (s, c.data.len()));
        let prev_len = prev.map_or(0, |(_, len)| len);
        let next_len = self
            .chunks
            .get(&end)
            .filter(|c| mergeable(c, prev_len + piece.len()))
            .map(|c| c.data.len());
        let start = prev.map_or(at, |(s, _)| s);
        let mut merged = Vec::with_capacity(prev_len + piece.len() + next_len.unwrap_or(0));
        if prev.is_some() {
            let c = self.chunks.remove(&start).expect("just seen");
            merged.extend_from_slice(&c.data);
        }
        merged.extend_from_slice(piece);
        if next_len.is_some() {
            let c = self.chunks.remove(&end).expect("just seen");
            merged.extend_from_slice(&c.data);
        }
        self.chunks.insert(
            start,
            Chunk {
                data: Bytes::from(merged),
                shared: false,
            },
        );
    }

    /// Takes up to `max` in-order bytes, or `None` if the next byte has not arrived.
    pub fn read_chunk(&mut self, max: usize) -> Option<Bytes> {
        if max == 0 {
            return None;
        }
        let mut entry = self.chunks.first_entry()?;
        if *entry.key() != self.read_offset {
            return None;
        }
        let shared = entry.get().shared;
        let chunk = if entry.get().data.len() > max {
            let head = entry.get_mut().data.split_to(max);
            let rest = entry.remove();
            self.chunks.insert(self.read_offset + max as u64, rest);
            head
        } else {
            if shared {
                self.shared_count -= 1;
            }
            entry.remove().data
        };
        if shared {
            self.shared_bytes -= chunk.len();
        }
        self.read_offset += chunk.len() as u64;
        self.buffered -= chunk.len();
        Some(chunk)
    }

    /// True when the peer's FIN is known and every byte before it has been read.
    pub fn is_finished(&self) -> bool {
        self.fin == Some(self.read_offset)
    }

    /// True when the peer's FIN is known and every byte before it has arrived.
    pub fn is_complete(&self) -> bool {
        self.fin == Some(self.contiguous_end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Length of the stream the model tests carve chunks from.
    const STREAM: usize = 2000;

    /// One step of the model test.
    #[derive(Clone, Debug)]
    enum Op {
        /// Insert the true bytes `[offset, offset + len)` where `offset` is `back` bytes below
        /// the read offset (duplicates) plus `fwd` (gaps, overlaps, beyond the window).
        Insert { back: usize, fwd: usize, len: usize },
        /// Read up to `max` bytes.
        Read { max: usize },
        /// Announce the true stream length, or (if `bogus`) a length below bytes received.
        Fin { bogus: bool, pick: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..300usize, 0..1600usize, 0..400usize)
                .prop_map(|(back, fwd, len)| Op::Insert { back, fwd, len }),
            3 => (0..700usize).prop_map(|max| Op::Read { max }),
            1 => (any::<bool>(), any::<usize>()).prop_map(|(bogus, pick)| Op::Fin { bogus, pick }),
        ]
    }

    /// The obviously correct reference: which stream bytes arrived, what was read.
    struct Model {
        data: Vec<u8>,
        got: Vec<Option<u8>>,
        read: usize,
        window: usize,
        fin: Option<usize>,
        max_end: usize,
    }

    impl Model {
        fn contiguous_end(&self) -> usize {
            self.got.iter().position(Option::is_none).unwrap_or(STREAM)
        }

        /// What `insert` must return, applying it to the model if it succeeds.
        fn insert(&mut self, offset: usize, end: usize) -> Result<usize, RecvError> {
            let limit = (self.read + self.window) as u64;
            if end as u64 > limit {
                return Err(RecvError::BeyondWindow {
                    end: end as u64,
                    limit,
                });
            }
            if let Some(fin) = self.fin.filter(|&f| end > f) {
                return Err(RecvError::BeyondFin {
                    end: end as u64,
                    fin: fin as u64,
                });
            }
            if end == offset {
                return Ok(0); // an empty chunk says nothing about the stream's length
            }
            self.max_end = self.max_end.max(end);
            let slots = &mut self.got[offset..end];
            let new = slots.iter().filter(|b| b.is_none()).count();
            for (i, slot) in slots.iter_mut().enumerate() {
                *slot = Some(self.data[offset + i]);
            }
            Ok(new)
        }

        fn check(&self, b: &RecvBuffer) {
            let contiguous = self.contiguous_end();
            let held = self.got[self.read..].iter().filter(|x| x.is_some()).count();
            assert_eq!(b.read_offset(), self.read as u64);
            assert_eq!(b.contiguous_end(), contiguous as u64);
            assert_eq!(b.readable(), (contiguous - self.read) as u64);
            assert_eq!(b.buffered(), held);
            assert!(b.buffered() <= self.window, "holds more than the window");
            assert!(b.cost() <= b.budget(), "over the memory budget");
            assert_eq!(b.limit(), (self.read + self.window) as u64);
            assert_eq!(b.max_end(), self.max_end as u64);
            assert_eq!(b.is_complete(), self.fin == Some(contiguous));
            assert_eq!(b.is_finished(), self.fin == Some(self.read));
        }
    }

    proptest! {
        #[test]
        fn matches_model(
            data in proptest::collection::vec(any::<u8>(), STREAM),
            window in 1..1500usize,
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let mut b = RecvBuffer::new(window as u64);
            let mut m = Model {
                got: vec![None; STREAM],
                data,
                read: 0,
                window,
                fin: None,
                max_end: 0,
            };
            for op in ops {
                match op {
                    Op::Insert { back, fwd, len } => {
                        let offset = (m.read - back.min(m.read) + fwd).min(STREAM);
                        let end = (offset + len).min(STREAM);
                        let chunk = Bytes::copy_from_slice(&m.data[offset..end]);
                        let expected = m.insert(offset, end);
                        prop_assert_eq!(b.insert(offset as u64, chunk), expected);
                    }
                    Op::Read { max } => {
                        let readable = m.contiguous_end() - m.read;
                        match b.read_chunk(max) {
                            None => prop_assert!(max == 0 || readable == 0),
                            Some(c) => {
                                prop_assert!(!c.is_empty() && c.len() <= max.min(readable));
                                prop_assert_eq!(&c[..], &m.data[m.read..m.read + c.len()]);
                                m.read += c.len();
                            }
                        }
                    }
                    Op::Fin { bogus, pick } => {
                        if bogus && m.max_end > 0 {
                            let fin = pick % m.max_end;
                            let expected = match m.fin {
                                // A FIN that contradicts an earlier one is refused as such.
                                Some(was) => Err(RecvError::FinMoved {
                                    was: was as u64,
                                    now: fin as u64,
                                }),
                                None => Err(RecvError::BeyondFin {
                                    end: m.max_end as u64,
                                    fin: fin as u64,
                                }),
                            };
                            prop_assert_eq!(b.set_fin(fin as u64), expected);
                        } else {
                            prop_assert_eq!(b.set_fin(STREAM as u64), Ok(()));
                            m.fin = Some(STREAM);
                        }
                    }
                }
                m.check(&b);
            }
        }
    }

    #[test]
    fn overflowing_offset_is_rejected() {
        let mut b = RecvBuffer::new(u64::MAX);
        let r = b.insert(u64::MAX - 1, Bytes::from_static(b"abc"));
        assert_eq!(r, Err(RecvError::Overflow));
        assert_eq!(b.buffered(), 0);
    }

    #[test]
    fn reads_split_chunks_and_reassemble() {
        let mut b = RecvBuffer::new(100);
        assert_eq!(b.insert(5, Bytes::from_static(b"fghij")), Ok(5));
        assert_eq!(b.read_chunk(10), None, "gap at 0..5");
        assert_eq!(b.insert(0, Bytes::from_static(b"abcdefg")), Ok(5));
        assert_eq!(b.contiguous_end(), 10);
        assert_eq!(&b.read_chunk(3).unwrap()[..], b"abc");
        // Small pieces that touch are merged into one chunk.
        assert_eq!(&b.read_chunk(100).unwrap()[..], b"defghij");
        assert_eq!(b.read_chunk(100), None);
        assert_eq!(b.buffered(), 0);
        assert_eq!(b.limit(), 110);
    }

    #[test]
    fn one_byte_at_every_other_offset_is_refused_within_twice_the_window() {
        // The attack of issue 13 (5): 1-byte DATA at every other offset of a 4 MiB window.
        let window = 4u64 << 20;
        let mut b = RecvBuffer::new(window);
        assert!(b.budget() as u64 <= 2 * window);
        let mut off = 1;
        let refused = loop {
            assert!(off < window, "the whole window was taken in 1-byte pieces");
            match b.insert(off, Bytes::from_static(b"x")) {
                Ok(1) => {}
                Err(RecvError::Fragmented { .. }) => break off,
                r => panic!("at {off}: {r:?}"),
            }
            assert!(b.cost() <= b.budget());
            off += 2;
        };
        // Refused only near the budget: the accounting is not needlessly strict.
        let overhead = b.cost() - b.buffered();
        assert!(
            overhead + CHUNK_OVERHEAD > b.overhead_budget(),
            "{overhead}"
        );
        assert_eq!(refused / 2, (b.overhead_budget() / CHUNK_OVERHEAD) as u64);
        // The refusal stored nothing; filling a hole still works (merging three pieces).
        let before = b.cost();
        assert_eq!(b.insert(0, Bytes::from_static(b"y")), Ok(1));
        assert!(b.cost() <= before + 1, "a merge costs no new chunk");
        assert_eq!(b.contiguous_end(), 2);
    }

    #[test]
    fn tiny_in_order_pieces_are_merged() {
        // A legitimate interactive peer whose reader is stalled: one byte per frame, in
        // order, until the window is full, is held in merged chunks and never refused.
        let window = 256u64 << 10;
        let mut b = RecvBuffer::new(window);
        for off in 0..window {
            assert_eq!(b.insert(off, Bytes::copy_from_slice(&[off as u8])), Ok(1));
        }
        assert_eq!(b.contiguous_end(), window);
        let overhead = b.cost() - b.buffered();
        assert!(overhead * 5 < window as usize, "overhead {overhead}");
        // Backwards too (each piece touches the next).
        let mut b = RecvBuffer::new(window);
        for off in (1..window).rev() {
            assert_eq!(b.insert(off, Bytes::copy_from_slice(&[off as u8])), Ok(1));
        }
        assert!(b.cost() - b.buffered() < window as usize / 5);
        assert_eq!(b.insert(0, Bytes::from_static(&[0])), Ok(1));
        let mut read = 0;
        while let Some(c) = b.read_chunk(usize::MAX) {
            for (i, byte) in c.iter().enumerate() {
                assert_eq!(*byte, (read + i) as u8);
            }
            read += c.len();
        }
        assert_eq!(read as u64, window);
    }

    #[test]
    fn large_pieces_are_kept_without_a_copy_while_few() {
        let window = 4u64 << 20;
        let mut b = RecvBuffer::new(window);
        let frame = Bytes::from(vec![7u8; 64 << 10]);
        let ptr = frame.as_ptr();
        assert_eq!(b.insert(0, frame), Ok(64 << 10));
        assert_eq!(b.read_chunk(usize::MAX).unwrap().as_ptr(), ptr, "zero copy");
        // A slow reader: beyond what may be pinned, pieces are copied.
        let mut off = 64 << 10;
        while off + (64 << 10) <= b.limit() {
            let f = Bytes::from(vec![off as u8; 64 << 10]);
            assert_eq!(b.insert(off, f), Ok(64 << 10));
            assert!(b.cost() <= b.budget());
            off += 64 << 10;
        }
        assert!(b.shared_count * PIN_CHARGE <= window as usize / 2);
    }

    /// One step of a hostile peer: a frame cut out of a larger received buffer.
    #[derive(Clone, Debug)]
    enum Hostile {
        Data { at: u64, len: usize, pad: usize },
        Read { max: usize },
    }

    fn hostile() -> impl Strategy<Value = Hostile> {
        prop_oneof![
            8 => (0..70_000u64, prop_oneof![1..4usize, 1..70_000usize], 0..1000usize)
                .prop_map(|(at, len, pad)| Hostile::Data { at, len, pad }),
            1 => (0..100_000usize).prop_map(|max| Hostile::Read { max }),
        ]
    }

    proptest! {
        #[test]
        fn hostile_sequences_stay_within_budget(
            window in prop_oneof![Just(64u64 << 10), 1..(1u64 << 20)],
            ops in proptest::collection::vec(hostile(), 1..400),
        ) {
            let mut b = RecvBuffer::new(window);
            for op in ops {
                match op {
                    Hostile::Data { at, len, pad } => {
                        let at = b.read_offset().saturating_sub(500) + at;
                        // The payload is a slice of a bigger buffer, as the deframer makes.
                        let big = Bytes::from(vec![(at % 251) as u8; len + 2 * pad]);
                        let _ = b.insert(at, big.slice(pad..pad + len));
                    }
                    Hostile::Read { max } => {
                        let _ = b.read_chunk(max);
                    }
                }
                prop_assert!(b.cost() <= b.budget());
                prop_assert!(b.buffered() as u64 <= window);
            }
        }
    }
}
