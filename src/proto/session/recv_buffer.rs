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
}

/// Bounded reorder buffer. Invariants: every held chunk is non-empty, lies at or above
/// `read_offset` and below `read_offset + window`, and no two chunks overlap.
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
    chunks: BTreeMap<u64, Bytes>,
    /// Bytes held in `chunks`.
    buffered: usize,
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
    /// Returns how many new bytes were stored.
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
        self.max_end = self.max_end.max(end);
        let mut start = offset;
        if start < self.contiguous_end {
            // Fast path for pure duplicates and for overlap with the in-order run.
            if end <= self.contiguous_end {
                return Ok(0);
            }
            data = data.slice((self.contiguous_end - start) as usize..);
            start = self.contiguous_end;
        }
        let mut stored = 0;
        // A held chunk starting before `start` may cover its beginning.
        if let Some((&s, c)) = self.chunks.range(..start).next_back() {
            let c_end = s + c.len() as u64;
            if c_end >= end {
                return Ok(0);
            }
            if c_end > start {
                data = data.slice((c_end - start) as usize..);
                start = c_end;
            }
        }
        // Fill the gaps between held chunks that start inside [start, end).
        while start < end {
            let next = self
                .chunks
                .range(start..end)
                .next()
                .map(|(&s, c)| (s, s + c.len() as u64));
            match next {
                Some((s, c_end)) => {
                    if s > start {
                        let piece = data.slice(..(s - start) as usize);
                        stored += piece.len();
                        self.chunks.insert(start, piece);
                    }
                    let skip = (c_end.min(end) - start) as usize;
                    data = data.slice(skip..);
                    start = c_end.min(end);
                }
                None => {
                    stored += data.len();
                    self.chunks.insert(start, data);
                    break;
                }
            }
        }
        self.buffered += stored;
        while let Some(c) = self.chunks.get(&self.contiguous_end) {
            self.contiguous_end += c.len() as u64;
        }
        Ok(stored)
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
        let chunk = if entry.get().len() > max {
            let head = entry.get_mut().split_to(max);
            let rest = entry.remove();
            self.chunks.insert(self.read_offset + max as u64, rest);
            head
        } else {
            entry.remove()
        };
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
        assert_eq!(&b.read_chunk(100).unwrap()[..], b"de");
        assert_eq!(&b.read_chunk(100).unwrap()[..], b"fghij");
        assert_eq!(b.read_chunk(100), None);
        assert_eq!(b.buffered(), 0);
        assert_eq!(b.limit(), 110);
    }
}
