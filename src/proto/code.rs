//! Pairing codes (`msock listen --code`): `7-tulip-orbit-canyon`, a nameplate and three words.
//!
//! The **nameplate** (a number, 1 to [`MAX_NAMEPLATE`]) is not secret: it is the name under
//! which the waiting listener is registered at the relay, so that the sender's relay finds
//! it. The **words** are the secret: three words drawn uniformly from the EFF large word list
//! (7776 words, committed in `code_words.txt` beside this file; the four entries with a
//! hyphen are written without it and `yo-yo`, a duplicate of `yoyo` then, is `zircon`), so
//! 3 × log2(7776) = **38.8 bits**. They are never sent: both ends feed the whole code to a
//! PAKE ([`super::pake`]), which gives an attacker who does not know it exactly one guess per
//! attempt, a chance of 1 / 7776³ = 2.1 × 10⁻¹² each; the relay allows three attempts per
//! nameplate, 6.4 × 10⁻¹² in all, and then the nameplate is burned.

use rand::Rng;

/// Words of the code.
pub const WORDS: usize = 3;
/// Highest nameplate drawn (nameplates are short to type; the relay refuses one in use, and
/// the listener then draws another).
pub const MAX_NAMEPLATE: u32 = 999;

/// The word list, one per line.
const LIST: &str = include_str!("code_words.txt");

/// The word list as a table (built once).
fn words() -> &'static [&'static str] {
    static W: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    W.get_or_init(|| LIST.lines().filter(|l| !l.is_empty()).collect())
}

/// Number of words in the list.
pub fn list_len() -> usize {
    words().len()
}

/// Bits of secret in a code: `WORDS × log2(list length)`.
pub fn entropy_bits() -> f64 {
    WORDS as f64 * (list_len() as f64).log2()
}

/// A pairing code: its nameplate (public) and word indices (secret).
#[derive(Clone, PartialEq, Eq)]
pub struct Code {
    /// The relay name it is registered under (as a number).
    pub nameplate: u32,
    /// Indices into the word list.
    words: [u16; WORDS],
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Code({}-...)", self.nameplate)
    }
}

impl Code {
    /// A fresh code with nameplate `nameplate` and random words from `rng`.
    pub fn generate(nameplate: u32, rng: &mut impl rand::RngCore) -> Code {
        let n = list_len() as u16;
        let mut words = [0u16; WORDS];
        for w in &mut words {
            *w = rng.gen_range(0..n);
        }
        Code { nameplate, words }
    }

    /// A random nameplate, 1 to [`MAX_NAMEPLATE`].
    pub fn random_nameplate(rng: &mut impl rand::RngCore) -> u32 {
        rng.gen_range(1..=MAX_NAMEPLATE)
    }

    /// The nameplate as the relay name it is registered under.
    pub fn name(&self) -> String {
        self.nameplate.to_string()
    }

    /// Reads a code as a person typed it: `N-word-word-word` (case and spaces around it
    /// ignored; spaces between parts are taken as `-`).
    pub fn parse(s: &str) -> Result<Code, CodeError> {
        let lower = s.trim().to_ascii_lowercase().replace(' ', "-");
        let mut parts = lower.split('-').filter(|p| !p.is_empty());
        let nameplate = parts
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .filter(|n| (1..=MAX_NAMEPLATE).contains(n))
            .ok_or(CodeError::Nameplate)?;
        let mut words = [0u16; WORDS];
        let mut n = 0;
        for p in parts {
            if n == WORDS {
                return Err(CodeError::Count(n + 1));
            }
            let i = words_index(p).ok_or_else(|| CodeError::Word(p.chars().take(32).collect()))?;
            words[n] = i;
            n += 1;
        }
        if n != WORDS {
            return Err(CodeError::Count(n));
        }
        Ok(Code { nameplate, words })
    }

    /// The whole code as typed (`7-tulip-orbit-canyon`): the PAKE's password.
    pub fn phrase(&self) -> String {
        let mut s = self.nameplate.to_string();
        for &w in &self.words {
            s.push('-');
            s.push_str(words()[w as usize]);
        }
        s
    }

    /// The secret words alone (for tests that look for them where they must not be).
    pub fn secret_words(&self) -> Vec<&'static str> {
        self.words.iter().map(|&w| words()[w as usize]).collect()
    }
}

/// The index of `w` in the list.
fn words_index(w: &str) -> Option<u16> {
    words().iter().position(|x| *x == w).map(|i| i as u16)
}

/// What is wrong with a typed code (the user's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// No number in front.
    #[error("a code starts with its number (1 to {MAX_NAMEPLATE}), like 7-tulip-orbit-canyon")]
    Nameplate,
    /// A word that is not on the list (a typo).
    #[error(
        "'{0}' is not a word of msock's codes (a typo?); a code looks like 7-tulip-orbit-canyon"
    )]
    Word(String),
    /// Too few or too many words.
    #[error("a code has {WORDS} words after its number, not {0}, like 7-tulip-orbit-canyon")]
    Count(usize),
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn list_is_the_eff_large_list_without_hyphens() {
        assert_eq!(list_len(), 7776);
        let mut sorted: Vec<_> = words().to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 7776, "duplicate words");
        assert!(words()
            .iter()
            .all(|w| w.bytes().all(|b| b.is_ascii_lowercase())));
        assert!((entropy_bits() - 38.77).abs() < 0.01, "{}", entropy_bits());
    }

    #[test]
    fn codes_round_trip_and_typos_are_named() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..50 {
            let n = Code::random_nameplate(&mut rng);
            let c = Code::generate(n, &mut rng);
            assert_eq!(Code::parse(&c.phrase()).unwrap(), c);
            assert_eq!(Code::parse(&c.phrase().to_uppercase()).unwrap(), c);
            assert!(!format!("{c:?}").contains(c.secret_words()[0]));
        }
        let c = Code::parse(" 7 abacus able zircon ").unwrap();
        assert_eq!(c.phrase(), "7-abacus-able-zircon");
        assert_eq!(Code::parse("abacus-able-zircon"), Err(CodeError::Nameplate));
        assert_eq!(
            Code::parse("0-abacus-able-zircon"),
            Err(CodeError::Nameplate)
        );
        assert_eq!(Code::parse("7-abacus-able"), Err(CodeError::Count(2)));
        assert_eq!(
            Code::parse("7-abacus-able-zircon-able"),
            Err(CodeError::Count(4))
        );
        assert_eq!(
            Code::parse("7-abacus-xyzzy-zircon"),
            Err(CodeError::Word("xyzzy".into()))
        );
    }
}
