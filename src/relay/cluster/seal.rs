//! The cluster key's two uses: sealing names' secrets before they go into etcd
//! (ChaCha20-Poly1305, the name as associated data, so a sealed secret cannot be moved to
//! another name), and authenticating relay-to-relay FORWARDs (HMAC-SHA-256).

use hmac::{Hmac, Mac};
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use sha2::Sha256;

use crate::relay::wire::{ClusterId, CLUSTER_ID_LEN};

/// Bytes of a cluster key.
pub const KEY_LEN: usize = 32;
/// Bytes of a sealed secret: nonce, ciphertext, tag.
pub(crate) const SEALED_LEN: usize = NONCE_LEN + 32 + 16;

/// A key derived from the cluster key for one purpose.
fn derive(key: &[u8; KEY_LEN], purpose: &str) -> [u8; 32] {
    blake3::derive_key(purpose, key)
}

/// The cluster's id as relays tell it to listeners (NONCE): a one-way hash of the cluster
/// key and the key prefix, not secret, the same at every relay of the cluster (and different
/// for two clusters sharing an etcd under different prefixes).
pub(crate) fn cluster_id(key: &[u8; KEY_LEN], prefix: &str) -> ClusterId {
    let mut h = blake3::Hasher::new_derive_key("msock relay cluster id v1");
    h.update(key).update(prefix.as_bytes());
    let mut id = [0u8; CLUSTER_ID_LEN];
    h.finalize_xof().fill(&mut id);
    // All-zero means "no cluster" on the wire.
    if id == [0; CLUSTER_ID_LEN] {
        id[0] = 1;
    }
    id
}

/// Seals a name's secret with the cluster key.
pub(crate) fn seal(key: &[u8; KEY_LEN], name: &str, secret: &[u8; 32]) -> Vec<u8> {
    let k = derive(key, "msock relay cluster names v1");
    let Ok(unbound) = UnboundKey::new(&CHACHA20_POLY1305, &k) else {
        unreachable!("a 32-byte key suits ChaCha20-Poly1305")
    };
    let sealer = LessSafeKey::new(unbound);
    let mut n = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut n);
    let mut buf = secret.to_vec();
    // Sealing in memory with a valid key and a fresh nonce does not fail.
    let _ = sealer.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(n),
        Aad::from(name.as_bytes()),
        &mut buf,
    );
    let mut out = n.to_vec();
    out.extend_from_slice(&buf);
    out
}

/// Opens a sealed secret of `name`; None if it was not sealed for this name with this key.
pub(crate) fn open(key: &[u8; KEY_LEN], name: &str, sealed: &[u8]) -> Option<[u8; 32]> {
    if sealed.len() != SEALED_LEN {
        return None;
    }
    let k = derive(key, "msock relay cluster names v1");
    let opener = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &k).ok()?);
    let n: [u8; NONCE_LEN] = sealed[..NONCE_LEN].try_into().ok()?;
    let mut buf = sealed[NONCE_LEN..].to_vec();
    let plain = opener
        .open_in_place(
            Nonce::assume_unique_for_key(n),
            Aad::from(name.as_bytes()),
            &mut buf,
        )
        .ok()?;
    plain.try_into().ok()
}

/// The MAC of a FORWARD's body (everything before the MAC) sent to relay `to` (its id): a
/// FORWARD for one relay is no good at another.
pub(crate) fn forward_mac(key: &[u8; KEY_LEN], to: &str, body: &[u8]) -> [u8; 32] {
    let k = derive(key, "msock relay cluster forward v2");
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(&k) else {
        unreachable!("HMAC takes any key length")
    };
    m.update(&(to.len() as u64).to_be_bytes());
    m.update(to.as_bytes());
    m.update(body);
    m.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_name_and_key() {
        let (k, other) = ([1u8; 32], [2u8; 32]);
        let s = seal(&k, "pc", &[7; 32]);
        assert_eq!(s.len(), SEALED_LEN);
        assert!(
            !s.windows(32).any(|w| w == [7; 32]),
            "the secret is in clear"
        );
        assert_eq!(open(&k, "pc", &s), Some([7; 32]));
        assert_eq!(open(&other, "pc", &s), None);
        assert_eq!(open(&k, "pd", &s), None);
        assert_eq!(open(&k, "pc", &s[1..]), None);
        let mut bent = s.clone();
        bent[20] ^= 1;
        assert_eq!(open(&k, "pc", &bent), None);
        assert_ne!(forward_mac(&k, "a", b"x"), forward_mac(&other, "a", b"x"));
        assert_ne!(forward_mac(&k, "a", b"x"), forward_mac(&k, "b", b"x"));
        assert_ne!(forward_mac(&k, "ab", b"x"), forward_mac(&k, "a", b"bx"));
    }
}
