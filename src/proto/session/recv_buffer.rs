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
    pub fn max_end(&self) -> u64 {
        self.max_end
    }

    /// Bytes held (in order or not) awaiting the application.
    pub fn buffered(&self) -> usize {
        self.buffered
    }

    /// Bytes ready to read in order.
    pub fn readable(&self) -> u64 {
        self.contiguous_end - self.read_offset
    }

    /// Records the stream's final length. Fails if bytes beyond it were already received.
    pub fn set_fin(&mut self, fin: u64) -> Result<(), RecvError> {
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
