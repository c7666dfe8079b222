//! Session secrets, flowpath attach proofs (HMAC-SHA-256) and flowpath record keys.
//!
//! The secret is derived at session open from both ends' random contributions; a later flowpath
//! may join the session only by answering a fresh challenge with a proof that binds the secret,
//! the session id, the path id and both sides' fresh nonces. A session id seen on the wire is
//! therefore useless on its own, and a recorded proof cannot be replayed (the server's nonce
//! differs every time). The server proves knowledge of the secret too, so a client never resumes
//! a stream with an impostor.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::frame::{NONCE_LEN, PROOF_LEN, RANDOM_LEN};
use super::record::{Opener, Sealer};

type HmacSha256 = Hmac<Sha256>;

/// A 256-bit per-session secret. Never printed.
#[derive(Clone)]
pub struct SessionSecret([u8; 32]);

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(..)")
    }
}

impl SessionSecret {
    /// Derives the secret from the session id and both sides' random contributions.
    pub fn derive(
        session_id: u64,
        client_random: &[u8; RANDOM_LEN],
        server_random: &[u8; RANDOM_LEN],
    ) -> Self {
        let mut h = Sha256::new();
        h.update(b"msock session secret v1");
        h.update(session_id.to_be_bytes());
        h.update(client_random);
        h.update(server_random);
        SessionSecret(h.finalize().into())
    }

    /// A secret from raw bytes (used by tests).
    #[cfg(test)]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SessionSecret(bytes)
    }

    /// Derives the secret of an encrypted session from its Noise handshake: the two final
    /// cipher keys (secret), the handshake hash (binding the whole transcript) and the session
    /// id.
    pub fn from_handshake(
        split: ([u8; 32], [u8; 32]),
        handshake_hash: &[u8],
        session_id: u64,
    ) -> Self {
        let mut m = HmacSha256::new_from_slice(&split.0).expect("HMAC takes any key length");
        m.update(b"msock session secret v2");
        m.update(&split.1);
        m.update(handshake_hash);
        m.update(&session_id.to_be_bytes());
        SessionSecret(m.finalize().into_bytes().into())
    }

    /// The record keys of one connection of path `pid` (see [`super::record`]): a sealer for
    /// our direction and an opener for the peer's. The first flowpath uses all-zero nonces;
    /// every later connection the fresh nonces of its attach.
    pub fn path_keys(
        &self,
        we_are_client: bool,
        pid: u32,
        client_nonce: &[u8; NONCE_LEN],
        server_nonce: &[u8; NONCE_LEN],
    ) -> (Sealer, Opener) {
        let key = |dir: &[u8]| -> [u8; 32] {
            self.mac(b"msock record key v1", 0, pid, client_nonce, server_nonce)
                .chain_update(dir)
                .finalize()
                .into_bytes()
                .into()
        };
        let (c2s, s2c) = (key(b"c2s"), key(b"s2c"));
        #[cfg(test)]
        SEALER_KEYS.with(|k| {
            // The AES-128 key actually used: the first 16 bytes.
            let sealing = if we_are_client { &c2s } else { &s2c };
            k.borrow_mut()
                .push(sealing[..16].try_into().expect("16 of 32 bytes"));
        });
        if we_are_client {
            (Sealer::new(&c2s), Opener::new(&s2c))
        } else {
            (Sealer::new(&s2c), Opener::new(&c2s))
        }
    }

    fn mac(&self, label: &[u8], sid: u64, pid: u32, cn: &[u8], sn: &[u8]) -> HmacSha256 {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(label);
        m.update(&sid.to_be_bytes());
        m.update(&pid.to_be_bytes());
        m.update(cn);
        m.update(sn);
        m
    }

    /// The proof a side sends when attaching path `pid` of session `sid`. It also binds the
    /// resume offset (`cumulative`) sent next to it, so that nobody on the way can change
    /// what the peer takes as delivered.
    pub fn proof(
        &self,
        side: ProofSide,
        sid: u64,
        pid: u32,
        client_nonce: &[u8; NONCE_LEN],
        server_nonce: &[u8; NONCE_LEN],
        cumulative: u64,
    ) -> [u8; PROOF_LEN] {
        self.mac(side.label(), sid, pid, client_nonce, server_nonce)
            .chain_update(cumulative.to_be_bytes())
            .finalize()
            .into_bytes()
            .into()
    }

    /// Checks a proof (made with [`SessionSecret::proof`]) in constant time.
    #[allow(clippy::too_many_arguments)]
    pub fn verify(
        &self,
        side: ProofSide,
        sid: u64,
        pid: u32,
        client_nonce: &[u8; NONCE_LEN],
        server_nonce: &[u8; NONCE_LEN],
        cumulative: u64,
        proof: &[u8; PROOF_LEN],
    ) -> bool {
        self.mac(side.label(), sid, pid, client_nonce, server_nonce)
            .chain_update(cumulative.to_be_bytes())
            .verify_slice(proof)
            .is_ok()
    }
}

impl SessionSecret {
    /// Authentication code of a control datagram's bytes.
    pub fn control_mac(&self, signed: &[u8]) -> [u8; PROOF_LEN] {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(b"msock control v1");
        m.update(signed);
        m.finalize().into_bytes().into()
    }

    /// The server nonce of ticket number `index`: unpredictable without the secret, distinct
    /// for every index, so the server need only remember which indices are outstanding.
    pub fn ticket(&self, index: u64) -> [u8; NONCE_LEN] {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(b"msock ticket v1");
        m.update(&index.to_be_bytes());
        let full: [u8; 32] = m.finalize().into_bytes().into();
        full[..NONCE_LEN].try_into().expect("16 of 32 bytes")
    }

    /// Checks a control datagram's code in constant time.
    pub fn verify_control_mac(&self, signed: &[u8], mac: &[u8; PROOF_LEN]) -> bool {
        let mut m = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        m.update(b"msock control v1");
        m.update(signed);
        m.verify_slice(mac).is_ok()
    }
}

#[cfg(test)]
thread_local! {
    /// Every sealing key derived on this thread (tests check that none repeats).
    pub(crate) static SEALER_KEYS: std::cell::RefCell<Vec<[u8; 16]>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Which side made a proof; the two use different labels so one cannot be reflected as the other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProofSide {
    /// The side that opened the session and attaches flowpaths.
    Client,
    /// The side that accepted the session.
    Server,
}

impl ProofSide {
    fn label(self) -> &'static [u8] {
        match self {
            ProofSide::Client => b"msock attach client v1",
            ProofSide::Server => b"msock attach server v1",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_bind_every_input() {
        let s = SessionSecret::derive(7, &[1; 32], &[2; 32]);
        let p = s.proof(ProofSide::Client, 7, 1, &[3; 16], &[4; 16], 99);
        assert!(s.verify(ProofSide::Client, 7, 1, &[3; 16], &[4; 16], 99, &p));
        assert!(!s.verify(ProofSide::Server, 7, 1, &[3; 16], &[4; 16], 99, &p));
        assert!(!s.verify(ProofSide::Client, 8, 1, &[3; 16], &[4; 16], 99, &p));
        assert!(!s.verify(ProofSide::Client, 7, 2, &[3; 16], &[4; 16], 99, &p));
        assert!(!s.verify(ProofSide::Client, 7, 1, &[5; 16], &[4; 16], 99, &p));
        assert!(!s.verify(ProofSide::Client, 7, 1, &[3; 16], &[5; 16], 99, &p));
        // The resume offset is bound too: raising it on the way is detected.
        assert!(!s.verify(ProofSide::Client, 7, 1, &[3; 16], &[4; 16], 100, &p));
        let other = SessionSecret::derive(7, &[1; 32], &[9; 32]);
        assert!(!other.verify(ProofSide::Client, 7, 1, &[3; 16], &[4; 16], 99, &p));
    }
}
