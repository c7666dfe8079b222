//! Send (retransmit) buffer: every stream byte the application wrote that the peer has not yet
//! acknowledged, so that it can be re-sent on any flowpath, and what is left to send of it:
//! new bytes, bytes lost with a dead flowpath, bytes duplicated on a faster flowpath.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::Bytes;

use crate::proto::range_set::RangeSet;

/// Bounded buffer of unacknowledged stream bytes `[acked, end)`, and the send bookkeeping over
/// them. Invariants: `chunks` are non-empty, contiguous, and the first one starts at or below
/// `acked`; `acked <= unsent <= end` (the peer acknowledges only bytes it was sent).
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
    /// First stream offset never sent on any path.
    unsent: u64,
    /// Ranges that were in flight on a path that died, to re-send on any path.
    retransmit: RangeSet,
    /// True when the peer has reported its received offset since ranges were last added to
    /// `retransmit`, so that they are known to be missing; false while they may be
    /// duplicates (most of what was in flight usually arrived). A path resuming blind sends
    /// new data only until then, so that a fresh TCP connection's first flights are not
    /// spent on duplicates.
    resend_confirmed: bool,
    /// Lost bytes from this offset on certainly never reached the peer (they never left this
    /// host): a path resuming blind re-sends them first, before the peer confirms. None once
    /// the peer has reported its received offset (then every lost range is confirmed).
    missing_from: Option<u64>,
    /// Ranges already sent a second time, on a faster path, because a slower path was
    /// holding them up (each range is duplicated at most once).
    duplicated: RangeSet,
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
            unsent: 0,
            retransmit: RangeSet::new(),
            resend_confirmed: true,
            missing_from: None,
            duplicated: RangeSet::new(),
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

    /// Takes as much of the owned `data` as fits, without copying (cut into chunks of at
    /// most `max_chunk` bytes, sharing `data`'s allocation); returns how many bytes were
    /// taken, which are gone from `data`.
    pub fn write_bytes(&mut self, data: &mut Bytes) -> usize {
        let n = data.len().min(self.free());
        let mut taken = data.split_to(n);
        while !taken.is_empty() {
            let piece = taken.split_to(taken.len().min(self.max_chunk));
            let len = piece.len() as u64;
            self.chunks.push_back((self.end, piece));
            self.end += len;
        }
        n
    }

    /// Offset of the first unacknowledged byte.
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Offset one past the last byte written.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Stream bytes sent at least once (the highest offset the peer can acknowledge).
    pub fn sent_once(&self) -> u64 {
        self.unsent
    }

    /// Stream bytes waiting to be re-sent because the connection that carried them died.
    pub fn resend_pending(&self) -> u64 {
        self.retransmit.len_bytes()
    }

    /// True when lost ranges may be re-sent by a path that is not yet attached (resuming
    /// blind): the peer has said what it lacks since they were lost.
    pub fn resend_confirmed(&self) -> bool {
        self.resend_confirmed
    }

    /// True when nothing new may go out below the peer's `limit`: everything written up to it
    /// was sent once.
    pub fn new_blocked(&self, limit: u64) -> bool {
        self.unsent >= limit.min(self.end)
    }

    /// True once every byte below `fin` was sent and nothing waits to be re-sent: a FIN at
    /// `fin` may follow.
    pub fn all_sent_to(&self, fin: u64) -> bool {
        self.unsent == fin && self.retransmit.is_empty()
    }

    /// The peer's cumulative acknowledgement (it has every byte below `offset`): forgets those
    /// bytes (clamped to what was written) and whatever was queued to re-send or duplicate
    /// below it. The peer's word is newer than any path loss: what is left to re-send is
    /// missing.
    pub fn ack(&mut self, offset: u64) {
        self.retransmit.remove_below(offset);
        self.duplicated.remove_below(offset);
        self.resend_confirmed = true;
        self.missing_from = None;
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

    /// A path died with `ranges` in flight: queues what of them is unacknowledged for
    /// re-sending (unconfirmed until the peer next reports its received offset).
    pub fn lost(&mut self, ranges: impl IntoIterator<Item = (u64, u64)>) {
        for (s, e) in ranges {
            if e > self.acked {
                self.retransmit.insert(s.max(self.acked)..e);
                self.resend_confirmed = false;
            }
        }
    }

    /// The lost bytes from `offset` on never left this host: the peer lacks them for sure
    /// (until it next reports its received offset, which says more).
    pub fn missing_from(&mut self, offset: u64) {
        let at = self.missing_from.map_or(offset, |m| m.min(offset));
        self.missing_from = Some(at);
    }

    /// The next lost bytes that certainly never reached the peer (see
    /// [`SendBuffer::missing_from`]), lowest first, at most `max` from one chunk: what a
    /// path resuming blind re-sends before anything new, since the peer's application waits
    /// for the lowest of them.
    pub fn poll_missing(&mut self, max: u64) -> Option<(u64, Bytes)> {
        let at = self.missing_from?;
        self.take_lost(|r| r.pop_from(at, max))
    }

    /// The next lost bytes to re-send (at most `max`, from one chunk): offset and bytes.
    pub fn poll_retransmit(&mut self, max: u64) -> Option<(u64, Bytes)> {
        self.take_lost(|r| r.pop_front(max))
    }

    /// The first range `pop` takes from the re-send queue whose bytes are still held, cut to
    /// one chunk (the rest goes back): offset and bytes.
    fn take_lost(
        &mut self,
        mut pop: impl FnMut(&mut RangeSet) -> Option<Range<u64>>,
    ) -> Option<(u64, Bytes)> {
        loop {
            let r = pop(&mut self.retransmit)?;
            let Some(chunk) = self.get(r.start, (r.end - r.start) as usize) else {
                continue; // acknowledged meanwhile
            };
            let end = r.start + chunk.len() as u64;
            if end < r.end {
                self.retransmit.insert(end..r.end);
            }
            return Some((r.start, chunk));
        }
    }

    /// The next bytes never sent (at most `max`, from one chunk) below the peer's `limit`:
    /// offset and bytes; they count as sent from now on.
    pub fn poll_new(&mut self, limit: u64, max: usize) -> Option<(u64, Bytes)> {
        let allowed = limit.min(self.end);
        if self.unsent >= allowed {
            return None;
        }
        let max = (allowed - self.unsent).min(max as u64) as usize;
        let chunk = self.get(self.unsent, max).expect("unsent bytes are held");
        let start = self.unsent;
        self.unsent += chunk.len() as u64;
        Some((start, chunk))
    }

    /// The parts of `[start, end)` not yet acknowledged nor duplicated.
    pub fn unduplicated(&self, start: u64, end: u64) -> Vec<Range<u64>> {
        self.duplicated.gaps_in(start.max(self.acked)..end)
    }

    /// Bytes at `offset` (at most `max`, from one chunk) to send a second time, on a faster
    /// path; they are not duplicated again. `None` if not held.
    pub fn duplicate(&mut self, offset: u64, max: usize) -> Option<Bytes> {
        let chunk = self.get(offset, max)?;
        self.duplicated.insert(offset..offset + chunk.len() as u64);
        Some(chunk)
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

    /// An owned chunk larger than the free space is taken in part, as slices of its own
    /// allocation (no copy), and the rest stays with the caller.
    #[test]
    fn owned_chunks_are_taken_in_part_without_a_copy() {
        let mut b = SendBuffer::new(10, 4);
        let mut data = Bytes::from_static(b"abcdefghijkl");
        let base = data.as_ptr();
        assert_eq!(b.write_bytes(&mut data), 10);
        assert_eq!(&data[..], b"kl");
        assert_eq!(
            b.get(4, 100).unwrap().as_ptr(),
            base.wrapping_add(4),
            "zero copy"
        );
        assert_eq!(&b.get(8, 100).unwrap()[..], b"ij");
        assert_eq!(b.write_bytes(&mut data), 0);
        b.ack(3);
        assert_eq!(b.write_bytes(&mut data), 2);
        assert!(data.is_empty());
        assert_eq!(&b.get(10, 100).unwrap()[..], b"kl");
        assert_eq!(b.end(), 12);
    }
}
