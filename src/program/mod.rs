//! Programs behind a session: `msock listen --exec PROG` / `--sh-exec CMD` runs one child
//! process per session with its standard input and output wired to the session (its standard
//! error too with `--stderr`; under a pseudo-terminal with `--pty`), and `msock connect`
//! shows its output and exits with its exit status, as ssh does.
//!
//! # Wire format: the program service (service code 3)
//!
//! A client opens the session with `HELLO(open)` naming service 3. A listener that runs a
//! program answers a HELLO(open) for a plain byte stream (service 0) with ERROR(10, program
//! sessions only) before any WELCOME; the client then opens a new session for service 3
//! (older clients print the reason). Inside the session, each direction of the stream is a
//! sequence of messages, each `tag u8 | length u32 | body` (the same `TypeLen` framing as the
//! file-transfer messages; all integers big-endian):
//!
//! | tag | name | body | direction |
//! |-----|------|------|-----------|
//! | `S` | START   | rows u16, cols u16, term \[UTF-8, 0 ..= 64: the client's `TERM`\] | client → server, first message |
//! | `D` | DATA    | bytes \[1 ..= 65536\]: the program's input, or its output | both |
//! | `W` | WINSIZE | rows u16, cols u16 | client → server |
//! | `M` | MODE    | pty u8 (1: the program runs under a pseudo-terminal, 0: pipes) | server → client, first message |
//! | `E` | STDERR  | bytes \[1 ..= 65536\]: the program's standard error (`--stderr`) | server → client |
//! | `X` | EXIT    | kind u8 (0: exited, 1: killed by a signal), value u8 (exit code or signal number) | server → client, last message |
//!
//! Rows and columns of 0 mean "not a terminal" (no size to set). A TERM of other than ASCII
//! letters, digits and `-_.+` is ignored. The end of the client's stream (its FIN) is the end
//! of the program's input: the program's standard input is closed (under a pseudo-terminal,
//! the end-of-file character is typed instead). The server sends EXIT after the program has
//! exited and its output has been sent (with pipes: up to the end of its output; under a
//! pseudo-terminal: until the terminal is closed or stays silent briefly), then ends its
//! stream. The client exits with the value (a signal: 128 + its number).
//!
//! A message with an unknown tag, a body of the wrong size or out of bounds, or a message
//! in the wrong direction or order is the sender's protocol error: the receiver aborts the
//! session saying so.
//!
//! # Life of the program
//!
//! The program starts when START arrives, in a process group of its own (under a
//! pseudo-terminal: a session of its own, with the terminal as its controlling terminal).
//! Its environment is the listener's, plus `MSOCK_PEER_ADDR` (the client's address when it
//! opened the session: it may move later), `MSOCK_SESSION` (the session id, 16 hex digits),
//! `MSOCK_PEER_KEY` (the client's key fingerprint, authenticated by the handshake; unset
//! without encryption) and, under a pseudo-terminal, `TERM` from START. It keeps running while its
//! session is parked (the client moving between addresses). When the session ends without
//! the program having exited (the client gone for good, or aborted), the program's input is
//! closed and its process group gets SIGHUP. When the program exits, the session ends.
//!
//! Plain TCP clients (nc) of a program listener get the program's raw input and output, as
//! with ncat: no exit status and no window size.

pub(crate) mod child;
pub mod client;
pub(crate) mod pty;
pub mod server;
pub mod terminal;
pub mod wire;

use std::ffi::OsString;
use std::net::SocketAddr;

/// What a program listener runs for each session.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The program and its arguments (never empty).
    pub argv: Vec<OsString>,
    /// Run it under a pseudo-terminal (its output and errors come back through the terminal).
    pub pty: bool,
    /// Send its standard error to the client (without it, it goes to the listener's stderr).
    pub stderr: bool,
}

impl Spec {
    /// `--exec "PROG ARGS"`: split at whitespace, as ncat does (a backslash takes the next
    /// character literally); no shell. Err if nothing is left.
    pub fn exec(line: &str) -> Result<Spec, String> {
        let argv = split_words(line);
        if argv.is_empty() {
            return Err("--exec needs a program to run".into());
        }
        Ok(Spec {
            argv: argv.into_iter().map(OsString::from).collect(),
            pty: false,
            stderr: false,
        })
    }

    /// `--sh-exec CMD`: `/bin/sh -c CMD`.
    pub fn shell(cmd: &str) -> Spec {
        Spec {
            argv: vec!["/bin/sh".into(), "-c".into(), cmd.into()],
            pty: false,
            stderr: false,
        }
    }
}

/// Splits `line` at unescaped whitespace; a backslash makes the next character literal.
fn split_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
                in_word = true;
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(word);
    }
    out
}

/// Who a program runs for: what it learns through its environment.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The client's address when the session (or plain connection) was opened.
    pub addr: SocketAddr,
    /// The session id (None for a plain TCP client).
    pub session: Option<u64>,
    /// The client's key fingerprint, authenticated by the handshake (None without encryption
    /// or for a plain TCP client: `MSOCK_PEER_KEY` is then left unset).
    pub key: Option<String>,
}

impl PeerInfo {
    /// The environment variables the program gets.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("MSOCK_PEER_ADDR", self.addr.to_string())];
        if let Some(id) = self.session {
            env.push(("MSOCK_SESSION", format!("{id:016x}")));
        }
        if let Some(k) = &self.key {
            env.push(("MSOCK_PEER_KEY", k.clone()));
        }
        env
    }
}

/// How a program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It exited with this code.
    Exited(u8),
    /// A signal killed it.
    Signaled(u8),
}

impl Status {
    /// The exit status a shell (and `msock connect`) reports: the code, or 128 + the signal.
    pub fn code(self) -> u8 {
        match self {
            Status::Exited(c) => c,
            Status::Signaled(s) => 128u8.saturating_add(s),
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Exited(c) => write!(f, "exited with status {c}"),
            Status::Signaled(s) => write!(f, "killed by signal {s}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_splits_like_ncat() {
        let s = Spec::exec("  /bin/echo Hello.  a\\ b ").unwrap();
        assert_eq!(s.argv, vec!["/bin/echo", "Hello.", "a b"]);
        assert!(Spec::exec("   ").is_err());
    }

    #[test]
    fn signal_status_is_128_plus() {
        assert_eq!(Status::Signaled(9).code(), 137);
        assert_eq!(Status::Exited(7).code(), 7);
    }
}
