//! Why a bench test failed, and whose fault that is ([`Fault`]): the command turns it into an
//! exit code, a listener into a line of its log.

use std::io;
use std::time::Duration;

use crate::proto::text::{defang, Untrusted};
use crate::runtime::{ConnectError, DriveError};

/// Who has to act on a failed test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The peer or the network to it: check the other end, or try again.
    Peer,
    /// The user: the destination or the flags cannot work as given (the message says what to
    /// change), or they pressed Ctrl-C.
    User,
    /// This machine: reading or writing locally failed.
    Local,
}

/// Why a bench test failed. Each message says what went wrong and, where it helps, what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listener broke the bench protocol; the client told it why and gave up. (The reason
    /// may quote what the listener sent: shown with control characters escaped.)
    #[error("the listener broke the bench protocol: {}", defang(.0))]
    ListenerBroke(String),
    /// The client broke the bench protocol (or went silent); the listener told it why and
    /// gave up. (Shown with control characters escaped, as above.)
    #[error("{}", defang(.0))]
    ClientBroke(String),
    /// The listener ended the test with an ERROR message (its reason, as it sent it: shown
    /// escaped).
    #[error("the listener ended the test: {}", Untrusted(.0))]
    ListenerGaveUp(String),
    /// The client ended the test with an ERROR message (its reason, as it sent it: shown
    /// escaped).
    #[error("it gave up: {}", Untrusted(.0))]
    ClientGaveUp(String),
    /// The listener's data or results did not come within this long of the start.
    #[error(
        "the listener's data or results did not come within {} of the start (is it stuck?)",
        humantime::format_duration(*.0)
    )]
    Late(Duration),
    /// The transport ended cleanly before the peer sent its results.
    #[error("the peer ended the test before sending its results")]
    EndedEarly,
    /// The transport (the session's driver or the plain TCP pump) failed.
    #[error("{0}")]
    Transport(DriveError),
    /// The listener could not be reached.
    #[error("{0}")]
    Connect(#[from] ConnectError),
    /// The plain TCP connection failed before the test began.
    #[error("plain TCP connection: {0}")]
    Tcp(io::Error),
    /// The user pressed Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// Whose fault the failure is.
    pub fn fault(&self) -> Fault {
        match self {
            Error::Transport(DriveError::Input(_) | DriveError::Output(_)) => Fault::Local,
            Error::Connect(ConnectError::NoAddress(..) | ConnectError::SourceFamily(..)) => {
                Fault::User
            }
            Error::Interrupted => Fault::User,
            Error::ListenerBroke(_)
            | Error::ClientBroke(_)
            | Error::ListenerGaveUp(_)
            | Error::ClientGaveUp(_)
            | Error::Late(_)
            | Error::EndedEarly
            | Error::Transport(_)
            | Error::Connect(_)
            | Error::Tcp(_) => Fault::Peer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_io_is_ours_and_the_rest_the_peers() {
        let io = || io::Error::other("x");
        assert_eq!(
            Error::Transport(DriveError::Output(io())).fault(),
            Fault::Local
        );
        assert_eq!(
            Error::Transport(DriveError::PathsLost("x".into())).fault(),
            Fault::Peer
        );
        let a = "127.0.0.1:1".parse().unwrap();
        let b = "[::1]:1".parse().unwrap();
        assert_eq!(
            Error::Connect(ConnectError::SourceFamily(a, b)).fault(),
            Fault::User
        );
        assert_eq!(Error::Tcp(io()).fault(), Fault::Peer);
        assert_eq!(Error::Interrupted.fault(), Fault::User);
    }

    #[test]
    fn a_peers_reason_cannot_drive_the_terminal() {
        let evil = "\x1b[2J\x07ok\r\u{202e}";
        for e in [
            Error::ListenerGaveUp(evil.into()),
            Error::ClientGaveUp(evil.into()),
            Error::ListenerBroke(format!("unreadable REPORT ({evil})")),
            Error::ClientBroke(evil.into()),
        ] {
            let shown = e.to_string();
            assert!(
                !shown.chars().any(|c| c.is_control() || c == '\u{202e}'),
                "{shown:?}"
            );
            assert!(shown.contains("\\u{1b}[2J"), "{shown:?}");
        }
    }
}
