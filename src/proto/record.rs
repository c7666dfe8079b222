//! The record layer of encrypted sessions: after a flowpath's handshake frames, each side's
//! bytes on that connection are AES-128-GCM records (the cipher suite TLS 1.3 defaults to;
//! half the AES rounds of AES-256, which matters at tens of Gbit/s on one core).
//!
//! A record is `length u32 (big endian) || ciphertext || tag[16]`, where `length` counts the
//! ciphertext and the tag and is authenticated as associated data. The plaintext of a record is
//! one or more whole frames (everything one `poll_transmit` produced), at most [`MAX_PLAIN`]
//! bytes. The runtime asks for about 64 KiB at a time: a receiver opens a record only once
//! all of it has arrived, so small records let it decrypt one while the next is on its way.
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
    key: LessSafeKey,
    counter: u64,
}

impl Keyed {
    fn new(key: &[u8; 32]) -> Keyed {
        // The first 128 bits of the 256-bit derived key.
        let unbound = UnboundKey::new(&AES_128_GCM, &key[..16]).expect("16-byte AES-128 key");
        Keyed {
            key: LessSafeKey::new(unbound),
            counter: 0,
        }
    }

    fn next_nonce(&mut self) -> Nonce {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&self.counter.to_be_bytes());
        self.counter += 1;
        Nonce::assume_unique_for_key(n)
    }
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

impl Sealer {
    /// A sealer with `key`, starting at record 0.
    pub fn new(key: &[u8; 32]) -> Sealer {
        Sealer(Keyed::new(key))
    }

    /// Seals `plain` (its bytes are consumed) into one record.
    pub fn seal(&mut self, plain: &mut impl Buf) -> Bytes {
        let n = plain.remaining();
        debug_assert!(n > 0 && n <= MAX_PLAIN);
        let mut rec = BytesMut::with_capacity(4 + n + TAG_LEN);
        let len = ((n + TAG_LEN) as u32).to_be_bytes();
        rec.put_slice(&len);
        while plain.has_remaining() {
            let c = plain.chunk();
            let k = c.len();
            rec.put_slice(c);
            plain.advance(k);
        }
        let nonce = self.0.next_nonce();
        let tag = self
            .0
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(len), &mut rec[4..])
            .expect("AES-GCM seals any length below 2^36");
        rec.put_slice(tag.as_ref());
        rec.freeze()
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
    pub fn open(&mut self, mut rec: BytesMut) -> Result<BytesMut, RecordError> {
        let len: [u8; 4] = rec[..4].try_into().expect("caller checked the header");
        let nonce = self.0.next_nonce();
        let plain_len = self
            .0
            .key
            .open_in_place(nonce, Aad::from(len), &mut rec[4..])
            .map_err(|_| RecordError::Forged)?
            .len();
        rec.advance(4);
        rec.truncate(plain_len);
        Ok(rec)
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
}
