//! Outgoing bytes of one flowpath as a queue of segments, so that DATA payloads go to the
//! socket straight from the send buffer (a vectored write) instead of being copied first.
//!
//! The bytes a queue yields are exactly those of encoding its frames one after the other with
//! [`Frame::encode`]: the wire format does not know about segments.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::frame::Frame;

/// Payloads shorter than this are copied next to their header: a separate segment (an extra
/// I/O vector entry and reference count) costs more than copying so few bytes.
pub const INLINE_PAYLOAD: usize = 2048;

/// Encoded frames waiting for the socket, in order: small frames and headers are encoded into
/// a staging buffer, large DATA payloads are kept as the `Bytes` they already are.
/// Implements [`Buf`]; [`Buf::chunks_vectored`] hands out every segment for one `writev`.
#[derive(Debug, Default)]
pub struct OutQueue {
    /// Segments before `tail`, in order; none is empty.
    segs: VecDeque<Bytes>,
    /// Encoded bytes after the last segment.
    tail: BytesMut,
    /// Bytes queued in `segs` and `tail` together.
    len: usize,
}

impl OutQueue {
    /// An empty queue whose staging buffer starts with room for `staging` bytes.
    pub fn with_capacity(staging: usize) -> Self {
        OutQueue {
            segs: VecDeque::new(),
            tail: BytesMut::with_capacity(staging),
            len: 0,
        }
    }

    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets everything queued.
    pub fn clear(&mut self) {
        self.segs.clear();
        self.tail.clear();
        self.len = 0;
    }

    /// Appends bytes as a segment of their own, not copied (e.g. a sealed record).
    pub fn push_segment(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        if !self.tail.is_empty() {
            let staged = self.tail.split().freeze();
            self.segs.push_back(staged);
        }
        self.len += bytes.len();
        self.segs.push_back(bytes);
    }

    /// Appends raw bytes (e.g. the preamble), copied.
    pub fn push_slice(&mut self, bytes: &[u8]) {
        self.tail.extend_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Appends one encoded frame; a DATA frame's payload is not copied unless it is small.
    pub fn push_frame(&mut self, frame: &Frame) {
        match frame {
            Frame::Data { offset, payload } => self.push_data(*offset, payload.clone()),
            other => {
                let before = self.tail.len();
                other.encode(&mut self.tail);
                self.len += self.tail.len() - before;
            }
        }
    }

    /// Appends a DATA frame carrying `payload` at stream offset `offset`, without copying the
    /// payload unless it is shorter than `INLINE_PAYLOAD`.
    pub fn push_data(&mut self, offset: u64, payload: Bytes) {
        let before = self.tail.len();
        Frame::encode_data_header(offset, payload.len(), &mut self.tail);
        self.len += self.tail.len() - before + payload.len();
        if payload.len() < INLINE_PAYLOAD {
            self.tail.extend_from_slice(&payload);
            return;
        }
        self.segs.push_back(self.tail.split().freeze());
        self.segs.push_back(payload);
    }

    /// Copies everything queued into one contiguous buffer, emptying the queue (for tests and
    /// the simulator, which want plain bytes).
    pub fn take_bytes(&mut self) -> Bytes {
        let n = self.len;
        self.copy_to_bytes(n)
    }
}

impl Buf for OutQueue {
    fn remaining(&self) -> usize {
        self.len
    }

    fn chunk(&self) -> &[u8] {
        match self.segs.front() {
            Some(s) => s,
            None => &self.tail,
        }
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(cnt <= self.len, "advance past the end of an OutQueue");
        self.len -= cnt;
        while cnt > 0 {
            let Some(front) = self.segs.front_mut() else {
                self.tail.advance(cnt);
                return;
            };
            if cnt < front.len() {
                front.advance(cnt);
                return;
            }
            cnt -= front.len();
            self.segs.pop_front();
        }
    }

    /// Without a copy when the bytes lie in one segment (as the record layer takes them).
    fn copy_to_bytes(&mut self, cnt: usize) -> Bytes {
        assert!(cnt <= self.len, "copy_to_bytes past the end of an OutQueue");
        let out = match self.segs.front_mut() {
            Some(front) if cnt < front.len() => front.split_to(cnt),
            Some(front) if cnt == front.len() => self.segs.pop_front().expect("front exists"),
            None if cnt <= self.tail.len() => self.tail.split_to(cnt).freeze(),
            _ => {
                let mut b = BytesMut::with_capacity(cnt);
                b.put((&mut *self).take(cnt));
                return b.freeze();
            }
        };
        self.len -= cnt;
        out
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for s in &self.segs {
            if n == dst.len() {
                return n;
            }
            if !s.is_empty() {
                dst[n] = IoSlice::new(s);
                n += 1;
            }
        }
        if n < dst.len() && !self.tail.is_empty() {
            dst[n] = IoSlice::new(&self.tail);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::frame::tests::arb_frame;
    use proptest::collection::vec;
    use proptest::prelude::*;

    proptest! {
        /// Whatever is queued, and however the writer advances through it, the bytes are
        /// those of encoding the frames into one buffer.
        #[test]
        fn yields_exactly_the_encoding(
            frames in vec(arb_frame(), 0..10),
            steps in vec(1usize..200_000, 1..30),
            slots in 1usize..8,
        ) {
            let mut q = OutQueue::default();
            let mut plain = BytesMut::new();
            q.push_slice(b"MSOCK\x01");
            plain.extend_from_slice(b"MSOCK\x01");
            for f in &frames {
                q.push_frame(f);
                f.encode(&mut plain);
            }
            prop_assert_eq!(q.len(), plain.len());
            let mut got = Vec::new();
            for &step in steps.iter().cycle() {
                if q.is_empty() {
                    break;
                }
                // Like a writev that takes `step` bytes of what is offered.
                let mut io = vec![IoSlice::new(&[]); slots];
                let k = q.chunks_vectored(&mut io);
                prop_assert!(k >= 1);
                let offered: usize = io[..k].iter().map(|s| s.len()).sum();
                let take = step.min(offered);
                let mut left = take;
                for s in &io[..k] {
                    let t = left.min(s.len());
                    got.extend_from_slice(&s[..t]);
                    left -= t;
                }
                q.advance(take);
            }
            prop_assert_eq!(&got[..], &plain[..]);
            prop_assert_eq!(q.remaining(), 0);
        }
    }

    proptest! {
        /// Taking bytes out in pieces of any size yields the encoding, in order.
        #[test]
        fn copy_to_bytes_yields_the_encoding(
            frames in vec(arb_frame(), 0..10),
            steps in vec(1usize..100_000, 1..30),
        ) {
            let mut q = OutQueue::default();
            let mut plain = BytesMut::new();
            for f in &frames {
                q.push_frame(f);
                f.encode(&mut plain);
            }
            let mut got = Vec::new();
            for &step in steps.iter().cycle() {
                if q.is_empty() {
                    break;
                }
                let n = step.min(q.remaining());
                let b = q.copy_to_bytes(n);
                prop_assert_eq!(b.len(), n);
                got.extend_from_slice(&b);
            }
            prop_assert_eq!(&got[..], &plain[..]);
        }
    }

    #[test]
    fn large_payloads_are_not_copied() {
        let payload = Bytes::from(vec![7u8; 60_000]);
        let mut q = OutQueue::default();
        q.push_data(5, payload.clone());
        let mut io = [IoSlice::new(&[]), IoSlice::new(&[]), IoSlice::new(&[])];
        assert_eq!(q.chunks_vectored(&mut io), 2);
        assert_eq!(io[0].len(), 13);
        assert_eq!(io[1].as_ptr(), payload.as_ptr());
        assert_eq!(q.take_bytes().len(), 60_013);
        assert!(q.is_empty());
    }
}
