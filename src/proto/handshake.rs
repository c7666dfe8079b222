//! The Noise handshake that opens an encrypted session, inside HELLO(open) and WELCOME.
//!
//! Pattern `Noise_XX_25519_AESGCM_SHA256` (or `Noise_XXpsk2_...` with a pre-shared key): the
//! client sends an ephemeral key (in HELLO(open)); the server answers with its ephemeral key
//! and its long-term static key, encrypted (in WELCOME), so the client learns and can pin the
//! listener's identity; the client then sends its own long-term static key, encrypted (in
//! HELLO(finish), right ahead of its first record), so the listener learns and can authorize
//! the client's identity. The client reveals its key only to a listener whose key it checked.
//! Everything else in HELLO(open) is the handshake's prologue, and the server's WELCOME fields
//! travel again inside its (encrypted, authenticated) handshake payload: tampering with either
//! fails the handshake. The session secret (attach proofs, tickets, control datagram MACs,
//! flowpath keys) is derived from the handshake's final keys, so nothing secret crosses the
//! wire in clear. The third message costs the client no round trip (its data follows it at
//! once); the server's first data waits for it (half a round trip after WELCOME).
//!
//! Randomness comes from the caller's RNG (sans-IO: the simulator's seeded one in tests).

use rand::RngCore;
use snow::params::NoiseParams;
use snow::resolvers::{CryptoResolver, DefaultResolver};

/// Length of a static public key (X25519).
pub const KEY_LEN: usize = 32;

/// A long-term key pair (the listener's, or a client's). Its private half is never printed.
#[derive(Clone)]
pub struct Identity {
    /// The private key.
    pub private: [u8; KEY_LEN],
    /// The public key, which clients pin and listeners authorize.
    pub public: [u8; KEY_LEN],
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", fingerprint(&self.public))
    }
}

impl Identity {
    /// A fresh key pair from `rng`.
    pub fn generate(rng: &mut impl RngCore) -> Identity {
        let b = snow::Builder::with_resolver(params(false), resolver(rng));
        let kp = b.generate_keypair().expect("X25519 key generation");
        Identity {
            private: kp.private.try_into().expect("32-byte private key"),
            public: kp.public.try_into().expect("32-byte public key"),
        }
    }

    /// The key pair of a private key.
    pub fn from_private(private: [u8; KEY_LEN]) -> Identity {
        let public = x25519_public(&private);
        Identity { private, public }
    }
}

/// The public key of an X25519 private key.
fn x25519_public(private: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    let mut dh = DefaultResolver
        .resolve_dh(&snow::params::DHChoice::Curve25519)
        .expect("X25519 available");
    dh.set(private);
    dh.pubkey().try_into().expect("32-byte public key")
}

/// A key's fingerprint as shown to people: `SHA256:` and the base64 of its SHA-256, like ssh.
pub fn fingerprint(public: &[u8]) -> String {
    use base64::Engine;
    let d = ring::digest::digest(&ring::digest::SHA256, public);
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(d.as_ref())
    )
}

/// True if `s` has the form of a [`fingerprint`]: `SHA256:` and the unpadded base64 of 32
/// bytes.
pub fn is_fingerprint(s: &str) -> bool {
    use base64::Engine;
    s.strip_prefix("SHA256:").is_some_and(|d| {
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(d)
            .is_ok_and(|d| d.len() == 32)
    })
}

/// The session's encryption, as named in HELLO(open).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CryptoKind {
    /// No encryption (`--no-encrypt`): v1's secret from exchanged randoms.
    None,
    /// Noise XX.
    Noise,
    /// Noise XXpsk2: a pre-shared key too.
    NoisePsk,
}

impl CryptoKind {
    /// Its code in HELLO(open). (Codes 1 and 2 were Noise NX and NXpsk2, spoken by older
    /// versions: see [`CryptoKind::is_legacy`].)
    pub fn to_wire(self) -> u8 {
        match self {
            CryptoKind::None => 0,
            CryptoKind::Noise => 3,
            CryptoKind::NoisePsk => 4,
        }
    }
    /// The kind a code names (None for codes we do not know).
    pub fn from_wire(c: u8) -> Option<Self> {
        match c {
            0 => Some(CryptoKind::None),
            3 => Some(CryptoKind::Noise),
            4 => Some(CryptoKind::NoisePsk),
            _ => None,
        }
    }
    /// True for the codes of the Noise NX handshakes older versions speak (1, 2), which
    /// carry no client key.
    pub fn is_legacy(c: u8) -> bool {
        matches!(c, 1 | 2)
    }
}

/// Where the pre-shared key enters the handshake: at the end of the server's message, so that
/// the client detects different keys before it reveals its own static key.
pub const PSK_AT: u8 = 2;

/// Noise parameters, with or without the pre-shared key.
pub fn params(psk: bool) -> NoiseParams {
    let name = if psk {
        "Noise_XXpsk2_25519_AESGCM_SHA256"
    } else {
        "Noise_XX_25519_AESGCM_SHA256"
    };
    name.parse().expect("valid Noise parameters")
}

/// A resolver whose randomness is seeded from `rng` (deterministic under a seeded RNG).
pub fn resolver(rng: &mut impl RngCore) -> Box<dyn CryptoResolver + Send> {
    let mut seed = [0u8; 32];
    rng.fill_bytes(&mut seed);
    Box::new(SeededResolver(seed))
}

struct SeededResolver([u8; 32]);

struct SeededRandom(rand::rngs::StdRng);

impl snow::types::Random for SeededRandom {
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), snow::Error> {
        self.0.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoResolver for SeededResolver {
    fn resolve_rng(&self) -> Option<Box<dyn snow::types::Random>> {
        use rand::SeedableRng;
        Some(Box::new(SeededRandom(rand::rngs::StdRng::from_seed(
            self.0,
        ))))
    }
    fn resolve_dh(&self, c: &snow::params::DHChoice) -> Option<Box<dyn snow::types::Dh>> {
        DefaultResolver.resolve_dh(c)
    }
    fn resolve_hash(&self, c: &snow::params::HashChoice) -> Option<Box<dyn snow::types::Hash>> {
        DefaultResolver.resolve_hash(c)
    }
    fn resolve_cipher(
        &self,
        c: &snow::params::CipherChoice,
    ) -> Option<Box<dyn snow::types::Cipher>> {
        DefaultResolver.resolve_cipher(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn hex_of(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn identity_round_trips_through_its_private_key() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let id = Identity::generate(&mut rng);
        assert_eq!(Identity::from_private(id.private).public, id.public);
        assert!(fingerprint(&id.public).starts_with("SHA256:"));
        assert!(is_fingerprint(&fingerprint(&id.public)));
        assert!(!is_fingerprint("SHA256:abc") && !is_fingerprint(&hex_of(&id.public)));
        assert!(!format!("{id:?}").contains(&format!("{:?}", id.private)));
    }
}
