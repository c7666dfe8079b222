//! The relay's rules for pairing nameplates (`msock listen --code`).
//!
//! A listener waiting for a code registers its nameplate with REGISTER_CODE (the ordinary
//! registration, PROVE included, with a flag of its own). A nameplate carries PAIR
//! connections only, and an ordinary name ROUTE ones only. The relay counts every PAIR it
//! admits to a nameplate as an attempt, whatever becomes of it: the relay cannot tell a right
//! code from a wrong one (the exchange is end to end), but every guess an attacker makes is
//! one PAIR. After [`PAIR_ATTEMPTS`] attempts, or once the listener sends PAIRED on its
//! control channel (the code was right), the nameplate is **burned**: further PAIRs are
//! refused, saying so. A nameplate that is not burned is forgotten as soon as its control
//! channel closes (the listener gave up: the number is free again); a burned one is kept
//! until [`super::registry::UNATTACHED_TTL`] after its listener left, so that the code's
//! reuse is refused as "used", and is never written to the state file.

use super::registry::Registry;

/// PAIR attempts a nameplate admits.
pub const PAIR_ATTEMPTS: u8 = 3;

/// A nameplate's pairing state.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pairing {
    /// PAIR connections admitted so far.
    pub attempts: u8,
    /// The listener said PAIRED.
    pub paired: bool,
}

impl Pairing {
    /// No PAIR is admitted any more.
    pub fn burned(&self) -> bool {
        self.paired || self.attempts >= PAIR_ATTEMPTS
    }
}

/// Why a PAIR (or a ROUTE) is refused for what its name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PairRefusal {
    /// PAIR to an ordinary name.
    #[error("that number is not a code waiting at this relay (it is an ordinary name)")]
    NotACode,
    /// ROUTE to a nameplate.
    #[error("that name is a code's number: pair with it (msock send-file --code CODE)")]
    IsACode,
    /// The code was used (the listener paired).
    #[error("this code was already used: ask the receiver for a new one")]
    Used,
    /// Three attempts were made.
    #[error("this code had {PAIR_ATTEMPTS} tries and is burned: ask the receiver for a new one")]
    Burned,
}

impl Registry {
    /// Checks a PAIR (`pair`) or ROUTE to `name` against what the name is, and with `count`
    /// counts a PAIR as an attempt (the relay counts it when it asks the listener to dial
    /// back, so that connections which never reach the listener cannot burn its code behind
    /// its back). Names that do not exist pass (the caller refuses them).
    pub(crate) fn pair_attempt(
        &mut self,
        name: &str,
        pair: bool,
        count: bool,
    ) -> Result<(), PairRefusal> {
        let Some(n) = self.names.get_mut(name) else {
            return Ok(());
        };
        match (&mut n.pairing, pair) {
            (None, false) => Ok(()),
            (None, true) => Err(PairRefusal::NotACode),
            (Some(_), false) => Err(PairRefusal::IsACode),
            (Some(p), true) if p.paired => Err(PairRefusal::Used),
            (Some(p), true) if p.burned() => Err(PairRefusal::Burned),
            (Some(p), true) => {
                if count {
                    p.attempts += 1;
                }
                Ok(())
            }
        }
    }

    /// PAIRED from `name`'s control channel: burn it (ordinary names ignore it).
    pub(crate) fn paired(&mut self, name: &str) {
        if let Some(p) = self.names.get_mut(name).and_then(|n| n.pairing.as_mut()) {
            p.paired = true;
        }
    }

    /// `name`'s control channel closed: a nameplate that is not burned is forgotten at once.
    /// True if it was.
    pub(crate) fn drop_unburned(&mut self, name: &str) -> bool {
        let unburned = self
            .names
            .get(name)
            .and_then(|n| n.pairing)
            .is_some_and(|p| !p.burned());
        if unburned {
            self.names.remove(name);
        }
        unburned
    }
}

#[cfg(test)]
mod tests {
    use super::super::registry::Name;
    use super::*;

    fn plate(r: &mut Registry, name: &str) {
        let mut n = Name::new([1; 32], "127.0.0.1".parse().unwrap(), false);
        n.pairing = Some(Pairing::default());
        r.names.insert(name.into(), n);
    }

    #[test]
    fn three_attempts_then_burned_and_kinds_do_not_mix() {
        let mut r = Registry::default();
        plate(&mut r, "7");
        r.names.insert(
            "laptop".into(),
            Name::new([2; 32], "127.0.0.1".parse().unwrap(), false),
        );
        assert_eq!(
            r.pair_attempt("laptop", true, true),
            Err(PairRefusal::NotACode)
        );
        assert_eq!(r.pair_attempt("laptop", false, true), Ok(()));
        assert_eq!(r.pair_attempt("7", false, true), Err(PairRefusal::IsACode));
        for _ in 0..PAIR_ATTEMPTS {
            assert_eq!(r.pair_attempt("7", true, true), Ok(()));
        }
        assert_eq!(r.pair_attempt("7", true, true), Err(PairRefusal::Burned));
        // A burned nameplate outlives its channel (to say so); an unburned one does not.
        assert!(!r.drop_unburned("7"));
        assert!(r.names.contains_key("7"));
        plate(&mut r, "8");
        assert_eq!(r.pair_attempt("8", true, true), Ok(()));
        assert!(r.drop_unburned("8"));
        assert!(!r.names.contains_key("8"));
        assert!(!r.drop_unburned("laptop"));
    }

    #[test]
    fn paired_burns_at_once_and_is_kept_out_of_the_state_file() {
        let mut r = Registry::default();
        r.state = Some("/nonexistent/state.json".into());
        plate(&mut r, "9");
        assert_eq!(r.pair_attempt("9", true, true), Ok(()));
        r.paired("9");
        assert_eq!(r.pair_attempt("9", true, true), Err(PairRefusal::Used));
        let (_, saved) = r.state_doc().unwrap();
        assert!(saved.is_empty());
    }
}
