//! The record layer of encrypted sessions: after a flowpath's handshake frames, each side's
//! bytes on that connection are AES-128-GCM records (the cipher suite TLS 1.3 defaults to;
//! half the AES rounds of AES-256, which matters at tens of Gbit/s on one core).
//!
//! A record is `length u32 (big endian) || ciphertext || tag[16]`, where `length` counts the
//! ciphertext and the tag and is authenticated as associated data. The plaintext of a record is
//! one or more whole frames (everything one `poll_transmit` produced), at most [`MAX_PLAIN`]
//! bytes. The runtime asks for about 256 KiB at a time and seals and opens large records on a
//! helper thread ([`SealJob`], [`OpenJob`]: the nonce is fixed when the job is made, so the
//! work can run anywhere as long as the records keep their order), so that a receiver
//! decrypts one record while the next is on its way and a sender seals one while the last
//! is written. The wire format is the same whichever thread seals.
//!
//! ## Keys and nonces
//!
//! Every connection of every flowpath has its own pair of keys (one per direction), derived
//! from the session secret, the path id and the attach's two fresh nonces (see
//! [`SessionSecret::path_keys`](super::auth::SessionSecret::path_keys)); the first flowpath uses
//! all-zero nonces, which no attach uses. The AEAD nonce of a record is 4 zero bytes followed by
//! the 64-bit count of records sealed before it under the same key. Hence a nonce never repeats
//! under one key: stream bytes re-sent on another flowpath (or on a replacement connection of the
//! same one) are sealed under that connection's key with its own counter. A record replayed,
//! reordered, dropped or moved to another connection fails authentication, which closes that
//! flowpath (the session re-sends its bytes elsewhere) and never delivers wrong bytes.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};

/// Authentication tag length.
pub const TAG_LEN: usize = 16;
/// Most plaintext bytes in one record: what one `poll_transmit` may produce, with room.
pub const MAX_PLAIN: usize = 1 << 20;
/// Largest valid length field.
pub const MAX_RECORD: usize = MAX_PLAIN + TAG_LEN;

/// One direction's key and record counter.
struct Keyed {
    /// Shared with the [`SealJob`]s and [`OpenJob`]s handed out, which may run on other
    /// threads.
    key: Arc<LessSafeKey>,
    counter: u64,
}

impl Keyed {
    fn new(key: &[u8; 32]) -> Keyed {
        // The first 128 bits of the 256-bit derived key.
        let unbound = UnboundKey::new(&AES_128_GCM, &key[..16]).expect("16-byte AES-128 key");
        Keyed {
            key: Arc::new(LessSafeKey::new(unbound)),
            counter: 0,
        }
    }

    /// The next record's counter (each is handed out once).
    fn next_counter(&mut self) -> u64 {
        let c = self.counter;
        self.counter += 1;
        c
    }
}

/// The AEAD nonce of record `counter`.
fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Seals this side's records on one connection.
pub struct Sealer(Keyed);

/// Opens the peer's records on one connection.
pub struct Opener(Keyed);

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer(record {})", self.0.counter)
    }
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Opener(record {})", self.0.counter)
    }
}

/// A record that does not authenticate (tampered, replayed, reordered or not ours), or a bad
/// length. Always the peer's (or the network's) fault; the connection must be closed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The length field is out of range.
    #[error("encrypted record of impossible length {0}")]
    BadLength(u32),
    /// Authentication failed.
    #[error("encrypted record failed authentication (tampered with, replayed or not ours)")]
    Forged,
}

/// One record's plaintext with its place in the sequence (its nonce) already taken, to be
/// sealed by [`SealJob::run`], on any thread. Its bytes must go on the wire in the order the
/// jobs were made, and every job must be run: a record skipped leaves a gap that the
/// receiver takes for tampering. The plaintext cannot leave the job other than sealed.
pub struct SealJob {
    key: Arc<LessSafeKey>,
    counter: u64,
    /// The plaintext, as the segments it was queued in (not copied yet).
    plain: Vec<Bytes>,
    /// Plaintext bytes, 1 to [`MAX_PLAIN`].
    len: usize,
}

impl std::fmt::Debug for SealJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealJob(record {}, {} bytes)", self.counter, self.len)
    }
}

impl SealJob {
    /// Plaintext bytes in the record.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a job holds at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the sealed record on the wire (length, ciphertext, tag).
    pub fn wire_len(&self) -> usize {
        4 + self.len + TAG_LEN
    }

    /// The sealed record, ready for the wire.
    pub fn run(self) -> Bytes {
        let n = self.len;
        let mut rec = BytesMut::with_capacity(self.wire_len());
        let len = ((n + TAG_LEN) as u32).to_be_bytes();
        rec.put_slice(&len);
        for seg in &self.plain {
            rec.put_slice(seg);
        }
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(self.counter), Aad::from(len), &mut rec[4..])
            .expect("AES-GCM seals any length below 2^36");
        rec.put_slice(tag.as_ref());
        rec.freeze()
    }
}

/// One whole received record (header included) with the nonce it must have, to be opened by
/// [`OpenJob::run`], on any thread. Plaintexts must be used in the order the jobs were made.
pub struct OpenJob {
    key: Arc<LessSafeKey>,
    counter: u64,
    rec: BytesMut,
}

impl std::fmt::Debug for OpenJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "OpenJob(record {}, {} bytes)",
            self.counter,
            self.rec.len()
        )
    }
}

impl OpenJob {
    /// Bytes in the record, header and tag included.
    pub fn len(&self) -> usize {
        self.rec.len()
    }

    /// Always false: a job holds a whole record.
    pub fn is_empty(&self) -> bool {
        self.rec.is_empty()
    }

    /// The record's plaintext, opened in place; an error if it does not authenticate.
    pub fn run(self) -> Result<BytesMut, RecordError> {
        let mut rec = self.rec;
        let len: [u8; 4] = rec[..4].try_into().expect("a job holds a whole record");
        let plain_len = self
            .key
            .open_in_place(nonce(self.counter), Aad::from(len), &mut rec[4..])
            .map_err(|_| RecordError::Forged)?
            .len();
        rec.advance(4);
        rec.truncate(plain_len);
        Ok(rec)
    }
}

impl Sealer {
    /// A sealer with `key`, starting at record 0.
    pub fn new(key: &[u8; 32]) -> Sealer {
        Sealer(Keyed::new(key))
    }

    /// Seals `plain` (its bytes are consumed) into one record.
    pub fn seal(&mut self, plain: &mut impl Buf) -> Bytes {
        self.seal_later(plain).run()
    }

    /// Takes `plain` (1 to [`MAX_PLAIN`] bytes, consumed; its segments are kept, not copied)
    /// as the next record, to be sealed by [`SealJob::run`].
    pub fn seal_later(&mut self, plain: &mut impl Buf) -> SealJob {
        let len = plain.remaining();
        debug_assert!(len > 0 && len <= MAX_PLAIN);
        let mut segs = Vec::new();
        while plain.has_remaining() {
            let k = plain.chunk().len();
            segs.push(plain.copy_to_bytes(k));
        }
        SealJob {
            key: self.0.key.clone(),
            counter: self.0.next_counter(),
            plain: segs,
            len,
        }
    }
}

impl Opener {
    /// An opener with `key`, expecting record 0 next.
    pub fn new(key: &[u8; 32]) -> Opener {
        Opener(Keyed::new(key))
    }

    /// The length of the record starting at `buf`, once its 4-byte header is there (None:
    /// not yet); errors on an impossible length.
    pub fn record_len(buf: &[u8]) -> Result<Option<usize>, RecordError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if (len as usize) <= TAG_LEN || len as usize > MAX_RECORD {
            return Err(RecordError::BadLength(len));
        }
        Ok(Some(4 + len as usize))
    }

    /// Opens a whole record (header included), in place; returns its plaintext.
    pub fn open(&mut self, rec: BytesMut) -> Result<BytesMut, RecordError> {
        self.open_later(rec)?.run()
    }

    /// Takes `rec` as the next record, to be opened by [`OpenJob::run`]; an error (and no
    /// record used up) if it is not one whole record by its header.
    pub fn open_later(&mut self, rec: BytesMut) -> Result<OpenJob, RecordError> {
        if Opener::record_len(&rec)? != Some(rec.len()) {
            let len = rec
                .get(..4)
                .map_or(0, |h| u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
            return Err(RecordError::BadLength(len));
        }
        Ok(OpenJob {
            key: self.0.key.clone(),
            counter: self.0.next_counter(),
            rec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = [7u8; 32];
        let (mut s, mut o) = (Sealer::new(&key), Opener::new(&key));
        let r1 = s.seal(&mut &b"hello"[..]);
        let r2 = s.seal(&mut &b"world!"[..]);
        assert_eq!(Opener::record_len(&r1).unwrap(), Some(r1.len()));
        assert_eq!(&o.open(BytesMut::from(&r1[..])).unwrap()[..], b"hello");
        // A replay of record 1 where record 2 is due fails.
        assert_eq!(o.open(BytesMut::from(&r1[..])), Err(RecordError::Forged));
        let (mut s, mut o) = (Sealer::new(&key), Opener::new(&key));
        let r = s.seal(&mut &b"hello"[..]);
        for i in 0..r.len() {
            let mut bad = BytesMut::from(&r[..]);
            bad[i] ^= 0x20;
            let mut o2 = Opener::new(&key);
            assert!(o2.open(bad).is_err(), "flipping byte {i} went unnoticed");
        }
        assert_eq!(&o.open(BytesMut::from(&r[..])).unwrap()[..], b"hello");
        let _ = r2;
        // Another key never opens it.
        let mut other = Opener::new(&[8u8; 32]);
        assert!(other.open(BytesMut::from(&r[..])).is_err());
        assert!(Opener::record_len(&[0, 0, 0, 5]).is_err());
        assert!(Opener::record_len(&[0xff, 0, 0, 0]).is_err());
    }

    /// Jobs made in order and run in any order (as on another thread) give the records
    /// `seal` gives; an opened job's plaintext is the sealed one, across segments.
    #[test]
    fn jobs_match_sealing_in_place() {
        let key = [3u8; 32];
        let (mut inline, mut later) = (Sealer::new(&key), Sealer::new(&key));
        let msgs: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 1000 * (i as usize + 1)]).collect();
        let direct: Vec<Bytes> = msgs.iter().map(|m| inline.seal(&mut &m[..])).collect();
        let mut jobs: Vec<SealJob> = msgs
            .iter()
            .map(|m| {
                // Two segments, as an OutQueue with a header and a payload hands them out.
                let (a, b) = m.split_at(7);
                later.seal_later(&mut Buf::chain(a, b))
            })
            .collect();
        assert_eq!(jobs[2].len(), 3000);
        let mut sealed = vec![Bytes::new(); jobs.len()];
        while let Some(j) = jobs.pop() {
            sealed[jobs.len()] = j.run();
        }
        assert_eq!(sealed, direct);
        let mut o = Opener::new(&key);
        let opens: Vec<OpenJob> = sealed
            .iter()
            .map(|r| o.open_later(BytesMut::from(&r[..])).unwrap())
            .collect();
        for (job, m) in opens.into_iter().rev().zip(msgs.iter().rev()) {
            assert_eq!(&job.run().unwrap()[..], &m[..]);
        }
    }

    /// A truncated, overlong or headerless buffer handed to `open` is an error, never a
    /// panic, and uses up no record number.
    #[test]
    fn hostile_records_never_panic() {
        let key = [9u8; 32];
        let rec = Sealer::new(&key).seal(&mut &b"payload"[..]);
        let mut o = Opener::new(&key);
        for cut in 0..rec.len() {
            assert!(o.open(BytesMut::from(&rec[..cut])).is_err(), "cut at {cut}");
        }
        let mut long = BytesMut::from(&rec[..]);
        long.extend_from_slice(b"xx");
        assert!(o.open(long).is_err());
        let mut huge = BytesMut::from(&((MAX_RECORD + 1) as u32).to_be_bytes()[..]);
        huge.extend_from_slice(&[0; 64]);
        assert_eq!(
            o.open(huge),
            Err(RecordError::BadLength(MAX_RECORD as u32 + 1))
        );
        // None of that used up record 0.
        assert_eq!(&o.open(BytesMut::from(&rec[..])).unwrap()[..], b"payload");
    }
}
