//! Whether a `listen --save-dir` takes an offer of files: on a terminal it asks about a
//! sender key it has not seen before (croc's habit); otherwise, or with `--yes`, it accepts
//! and says so on stderr. A key has been seen when it is in `--authorized-keys` (every
//! admitted key is) or in `accepted_senders` in the config directory, one fingerprint per
//! line, where each key accepted at the prompt is added.

use std::fmt;
use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use std::time::Duration;

use tokio::sync::{mpsc, Mutex};

use crate::transfer::progress::si_bytes;
use crate::transfer::receiver::OfferSize;

/// The file, in the config directory, of sender keys accepted at the prompt.
const ACCEPTED: &str = "accepted_senders";

/// An offer nobody answers within this is declined (the sender is not kept waiting, and
/// other offers get their turn).
const ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// Who offers files, as the listener knows it.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    /// The fingerprint of its key (None: an unencrypted session, no key).
    pub key: Option<String>,
    /// Its address as the listener saw it: the relay's when `relayed`.
    pub addr: SocketAddr,
    /// The session came through a relay.
    pub relayed: bool,
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(k) => write!(f, "{k}")?,
            None => f.write_str("a sender without a key (--no-encrypt)")?,
        }
        if self.relayed {
            write!(f, " via relay {}", self.addr)
        } else {
            write!(f, " at {}", self.addr)
        }
    }
}

/// How offers are decided, for one listener.
#[derive(Debug)]
pub(crate) struct Consent {
    /// Ask on the terminal about unseen keys (else accept every offer, logging it).
    ask: bool,
    /// `accepted_senders` (None: no config directory; nothing is remembered).
    file: Option<PathBuf>,
    /// One question on the terminal at a time; the answers, one line each, from the thread
    /// that reads stdin (started with the first question, it outlives a declined one, so a
    /// late answer cannot be lost in a read nobody waits for).
    turn: Mutex<Option<mpsc::Receiver<String>>>,
}

/// "3 files, 1.2 GB".
fn describe(size: OfferSize) -> String {
    format!(
        "{} file{}, {}",
        size.files,
        if size.files == 1 { "" } else { "s" },
        si_bytes(size.bytes)
    )
}

impl Consent {
    /// Asks when stdin and stderr are a terminal, unless `yes` or every admitted sender
    /// is listed in --authorized-keys (`authorized`).
    pub fn new(yes: bool, authorized: bool) -> Consent {
        let tty = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        Consent {
            ask: tty && !yes && !authorized,
            file: crate::runtime::keys::config_dir()
                .ok()
                .map(|d| d.join(ACCEPTED)),
            turn: Mutex::new(None),
        }
    }

    /// The listener reads its answers from stdin (which byte-stream sessions must then not
    /// read).
    pub fn uses_stdin(&self) -> bool {
        self.ask
    }

    /// Whether `key` was accepted before.
    fn seen(&self, key: &str) -> bool {
        let Some(text) = self
            .file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
        else {
            return false;
        };
        text.lines()
            .filter_map(|l| l.split_whitespace().next())
            .any(|k| k == key)
    }

    /// Adds `key` to `accepted_senders` (a failure is said, and the key is asked about
    /// again next time).
    fn remember(&self, key: &str, from: &Sender) {
        let Some(file) = &self.file else { return };
        let res = file
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(file)?;
                writeln!(f, "{key} accepted from {from}")
            });
        if let Err(e) = res {
            eprintln!(
                "msock: cannot remember the sender in {}: {e}",
                file.display()
            );
        }
    }

    /// Decides about an offer of `size` from `from`: Ok to accept; Err with what the sender
    /// is told.
    pub async fn decide(&self, from: &Sender, size: OfferSize) -> Result<(), String> {
        let what = describe(size);
        let known = from.key.as_deref().is_some_and(|k| self.seen(k));
        if !self.ask || known {
            eprintln!("msock: accepting {what} from {from}");
            return Ok(());
        }
        let mut turn = self.turn.lock().await;
        // Another offer from the same key may have been accepted while this one waited.
        if from.key.as_deref().is_some_and(|k| self.seen(k)) {
            eprintln!("msock: accepting {what} from {from}");
            return Ok(());
        }
        let answers = turn.get_or_insert_with(read_lines);
        while answers.try_recv().is_ok() {} // typed before the question: not an answer
        eprint!("msock: accept {what}, from {from}? [y/N] ");
        let answer = tokio::time::timeout(ANSWER_WITHIN, answers.recv()).await;
        let yes = matches!(&answer, Ok(Some(a)) if matches!(a.trim().to_ascii_lowercase().as_str(), "y" | "yes"));
        if answer.is_err() {
            eprintln!();
            eprintln!("msock: no answer within {}s", ANSWER_WITHIN.as_secs());
        }
        if !yes {
            eprintln!("msock: declined {what} from {from}");
            return Err("the receiver declined the offer (answered no at its prompt)".into());
        }
        if let Some(k) = &from.key {
            self.remember(k, from);
        }
        Ok(())
    }
}

/// Lines from stdin, read by a thread of their own until it ends (or nobody listens).
fn read_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(4);
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.lock().read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if tx.blocking_send(line.clone()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_are_named_by_key_and_address_or_relay() {
        let addr: SocketAddr = "10.0.0.5:4000".parse().unwrap();
        let key = Some("SHA256:abc".to_owned());
        let direct = Sender {
            key: key.clone(),
            addr,
            relayed: false,
        };
        assert_eq!(direct.to_string(), "SHA256:abc at 10.0.0.5:4000");
        let relayed = Sender {
            key,
            addr,
            relayed: true,
        };
        assert_eq!(relayed.to_string(), "SHA256:abc via relay 10.0.0.5:4000");
        assert_eq!(
            describe(OfferSize {
                files: 3,
                bytes: 1_200_000_000
            }),
            "3 files, 1.2 GB"
        );
    }
}
