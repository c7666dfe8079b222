//! Send (retransmit) buffer: every stream byte the application wrote that the peer has not yet
//! acknowledged, so that it can be re-sent on any flowpath.

use std::collections::VecDeque;

use bytes::Bytes;

/// Bounded buffer of unacknowledged stream bytes `[acked, end)`. Invariant: `chunks` are
/// non-empty, contiguous, and the first one starts at or below `acked`.
#[derive(Debug)]
pub struct SendBuffer {
    /// (start offset, bytes) in stream order.
    chunks: VecDeque<(u64, Bytes)>,
    /// Every byte below this is acknowledged and no longer held.
    acked: u64,
    /// Total bytes ever written: the next write lands at this offset.
    end: u64,
    /// Most unacknowledged bytes held; writes beyond it are refused (backpressure).
    capacity: u64,
    /// Largest chunk stored, so that one chunk fits one DATA frame.
    max_chunk: usize,
}

impl SendBuffer {
    /// An empty buffer holding at most `capacity` unacknowledged bytes in chunks of at most
    /// `max_chunk` bytes.
    pub fn new(capacity: usize, max_chunk: usize) -> Self {
        SendBuffer {
            chunks: VecDeque::new(),
            acked: 0,
            end: 0,
            capacity: capacity as u64,
            max_chunk: max_chunk.max(1),
        }
    }

    /// Bytes that [`SendBuffer::write`] would accept now.
    pub fn free(&self) -> usize {
        (self.capacity - (self.end - self.acked)) as usize
    }

    /// Copies as much of `data` as fits; returns how many bytes were taken.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        for piece in data[..n].chunks(self.max_chunk) {
            self.chunks
                .push_back((self.end, Bytes::copy_from_slice(piece)));
            self.end += piece.len() as u64;
        }
        n
    }

    /// Stores an owned chunk without copying (cut into chunks of at most `max_chunk` bytes), if
    /// it fits whole; returns false otherwise.
    pub fn write_bytes(&mut self, mut data: Bytes) -> bool {
        if data.len() > self.free() {
            return false;
        }
        while !data.is_empty() {
            let piece = data.split_to(data.len().min(self.max_chunk));
            let len = piece.len() as u64;
            self.chunks.push_back((self.end, piece));
            self.end += len;
        }
        true
    }

    /// Offset of the first unacknowledged byte.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Offset one past the last byte written.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Forgets every byte below `offset` (clamped to what was written).
    pub fn ack(&mut self, offset: u64) {
        let offset = offset.min(self.end);
        if offset <= self.acked {
            return;
        }
        self.acked = offset;
        while let Some((s, c)) = self.chunks.front() {
            if s + c.len() as u64 <= offset {
                self.chunks.pop_front();
            } else {
                break;
            }
        }
    }

    /// Up to `max` bytes starting at `offset`, from a single chunk (zero-copy). `None` if the
    /// offset is not held (acknowledged already or never written).
    pub fn get(&self, offset: u64, max: usize) -> Option<Bytes> {
        if offset < self.acked || offset >= self.end || max == 0 {
            return None;
        }
        // Chunks are contiguous and sorted: find the last one starting at or before `offset`.
        let idx = self.chunks.partition_point(|(s, _)| *s <= offset) - 1;
        let (s, c) = &self.chunks[idx];
        let from = (offset - s) as usize;
        let to = c.len().min(from + max);
        Some(c.slice(from..to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backpressure_and_ack() {
        let mut b = SendBuffer::new(10, 4);
        assert_eq!(b.write(b"abcdefghijkl"), 10);
        assert_eq!(b.free(), 0);
        assert_eq!(&b.get(0, 100).unwrap()[..], b"abcd");
        assert_eq!(&b.get(5, 100).unwrap()[..], b"fgh");
        assert_eq!(&b.get(9, 100).unwrap()[..], b"j");
        assert!(b.get(10, 1).is_none());
        b.ack(6);
        assert_eq!(b.free(), 6);
        assert!(b.get(5, 1).is_none());
        assert_eq!(&b.get(6, 1).unwrap()[..], b"g");
        b.ack(100);
        assert_eq!(b.acked(), 10);
        assert_eq!(b.free(), 10);
    }
}
