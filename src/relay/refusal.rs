//! Why the relay refuses a listener's control channel: the ERROR it sends, and the counter of
//! refusals it counts it under; and how the listener takes a relay's refusal.

use std::net::SocketAddr;

use super::agent::RegisterError;
use super::wire::Refusal;
use crate::proto::text::Untrusted;
use crate::proto::ErrorCode;

/// Why the relay refused a registration (a control channel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum ControlRefusal {
    /// The listener broke the protocol: it sent this frame where PROVE belongs.
    NotProve(&'static str),
    /// The relay requires an operator key and the listener's proof matches none (its user
    /// gave no key, or a wrong one).
    BadKey,
    /// Another listener holds the name (its user must pick another one).
    NameTaken(String),
    /// The relay holds as many names as it will (its limit; try later or elsewhere).
    Full,
    /// The listener's address holds as many names as the relay gives one address (this many).
    TooManyNames(usize),
    /// A cluster relay cannot read or write the registry in etcd (why): it takes no new
    /// registration until it can (retry, or register at another relay).
    Unavailable(String),
}

/// The ERROR code of [`ControlRefusal::NameTaken`]: the name is held by another listener's
/// secret. A code of its own (relay codes start at 0x20), so that a listener can tell "name
/// taken" from a refused operator key (`AuthFailed`).
pub(crate) const NAME_TAKEN: ErrorCode = ErrorCode::Other(0x20);

/// The ERROR code of [`ControlRefusal::Unavailable`]: a cluster relay cannot reach its
/// registry (etcd down or without quorum). Retrying later, or at another relay, can help;
/// a listener that predates it takes it as a transient failure (any unknown code is).
pub(crate) const REGISTRY_UNAVAILABLE: ErrorCode = ErrorCode::Other(0x21);

impl ControlRefusal {
    /// The ERROR frame's contents.
    pub(super) fn refusal(&self) -> Refusal {
        let (code, reason) = match self {
            ControlRefusal::NotProve(got) => {
                (ErrorCode::Protocol, format!("expected PROVE, got {got}"))
            }
            ControlRefusal::BadKey => (
                ErrorCode::AuthFailed,
                "this relay requires a registration key: start the listener with \
                 --relay-key-file FILE holding a key from the relay's --auth-keys file"
                    .into(),
            ),
            ControlRefusal::NameTaken(name) => (
                NAME_TAKEN,
                format!(
                    "the name '{name}' is held by another listener (registering it needs that \
                     listener's secret); pick another name"
                ),
            ),
            ControlRefusal::Full => (
                ErrorCode::Busy,
                "the relay holds as many names as it will; try later or another relay".into(),
            ),
            ControlRefusal::TooManyNames(n) => (
                ErrorCode::Busy,
                format!(
                    "your address holds {n} names at this relay, as many as it gives one \
                     address (names no listener stayed on are forgotten after 10 minutes); \
                     ask its operator for a --relay-key-file key"
                ),
            ),
            ControlRefusal::Unavailable(why) => (
                REGISTRY_UNAVAILABLE,
                format!(
                    "registry unavailable: the relay cannot reach its cluster's registry \
                     ({why}); names already registered keep working; retry later or at \
                     another relay of the cluster"
                ),
            ),
        };
        Refusal { code, reason }
    }

    /// The refusal counter in the relay's status.
    pub(super) fn counter(&self) -> &'static str {
        match self {
            ControlRefusal::NotProve(_) => "garbage",
            ControlRefusal::BadKey => "bad_key",
            ControlRefusal::NameTaken(_) => "name_taken",
            ControlRefusal::Full => "max_names",
            ControlRefusal::TooManyNames(_) => "max_names_per_source",
            ControlRefusal::Unavailable(_) => "registry_unavailable",
        }
    }
}

/// The relay's refusal, classified by its code (its reason is the relay's text: escaped).
pub(super) fn refusal(relay: SocketAddr, Refusal { code, reason }: Refusal) -> RegisterError {
    let reason = Untrusted(&reason);
    match code {
        NAME_TAKEN => {
            RegisterError::NameTaken(format!("relay {relay} refused the registration: {reason}"))
        }
        ErrorCode::AuthFailed | ErrorCode::Refused | ErrorCode::Protocol | ErrorCode::Version => {
            RegisterError::Refused(format!("relay {relay} refused the registration: {reason}"))
        }
        _ => RegisterError::Transient(format!("relay {relay}: {code}: {reason}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_has_its_code_and_counter() {
        let taken = ControlRefusal::NameTaken("pc".into());
        assert_eq!(taken.refusal().code, NAME_TAKEN);
        assert_eq!(ControlRefusal::BadKey.refusal().code, ErrorCode::AuthFailed);
        assert_eq!(
            ControlRefusal::TooManyNames(3).refusal().code,
            ErrorCode::Busy
        );
        assert!(taken.refusal().reason.contains("'pc' is held"));
        assert_eq!(taken.counter(), "name_taken");
        assert_eq!(ControlRefusal::Full.refusal().code, ErrorCode::Busy);
        assert_eq!(ControlRefusal::BadKey.counter(), "bad_key");
        let down = ControlRefusal::Unavailable("no quorum".into()).refusal();
        assert_eq!(down.code, REGISTRY_UNAVAILABLE);
        assert!(
            down.reason.starts_with("registry unavailable"),
            "{}",
            down.reason
        );
        assert_eq!(
            ControlRefusal::NotProve("PING").refusal().reason,
            "expected PROVE, got PING"
        );
    }

    #[test]
    fn refusals_are_classified_by_code_and_their_text_escaped() {
        let relay: SocketAddr = "192.0.2.1:7480".parse().unwrap();
        let r = |code, reason: &str| {
            refusal(
                relay,
                Refusal {
                    code,
                    reason: reason.into(),
                },
            )
        };
        assert!(matches!(r(NAME_TAKEN, "x"), RegisterError::NameTaken(_)));
        assert!(matches!(
            r(ErrorCode::AuthFailed, "x"),
            RegisterError::Refused(_)
        ));
        assert!(matches!(
            r(ErrorCode::Busy, "x"),
            RegisterError::Transient(_)
        ));
        let shown = r(ErrorCode::Refused, "\x1b[2Jfake\x07").to_string();
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(shown.contains("\\u{1b}[2Jfake"), "{shown:?}");
    }
}
