//! Starting a session's program (pipes or a pseudo-terminal), signalling its process group,
//! and reading how it ended.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::process::Command;

use super::pty::{self, Master};
use super::wire::Winsize;
use super::{PeerInfo, Spec, Status};

/// The program's input, as we write it.
pub(crate) type Input = Box<dyn AsyncWrite + Send + Unpin>;
/// One of the program's outputs, as we read it.
pub(crate) type Output = Box<dyn AsyncRead + Send + Unpin>;

/// A running program and its standard streams.
pub(crate) struct Child {
    proc: tokio::process::Child,
    /// Its process group (its pid: it leads its own group or session).
    pgid: libc::pid_t,
    /// Its standard input (None once closed).
    pub input: Option<Input>,
    /// Its standard output (under a pseudo-terminal: everything it writes to the terminal).
    pub output: Option<Output>,
    /// Its standard error, when it is ours to read (pipes with `--stderr`).
    pub errors: Option<Output>,
    /// The pseudo-terminal's master side, with `--pty`.
    pty: Option<Master>,
}

impl Child {
    /// Starts `spec`'s program for `peer`, under a pseudo-terminal of `size` (with `TERM`
    /// `term`, if not empty) when the spec asks for one.
    pub fn spawn(spec: &Spec, peer: &PeerInfo, size: Winsize, term: &str) -> io::Result<Child> {
        let mut cmd = Command::new(&spec.argv[0]);
        cmd.args(&spec.argv[1..]);
        for (k, v) in peer.env() {
            cmd.env(k, v);
        }
        if spec.pty {
            if !term.is_empty() {
                cmd.env("TERM", term);
            }
            let pair = pty::open(size)?;
            let slave = pair.slave;
            cmd.stdin(Stdio::from(slave.try_clone()?));
            cmd.stdout(Stdio::from(slave.try_clone()?));
            cmd.stderr(Stdio::from(slave));
            // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::setsid() < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let proc = cmd.spawn()?;
            // The slave descriptors given to the child were moved into `cmd`: drop them here,
            // so that reading the master ends when the program (and its children) close it.
            drop(cmd);
            let master = Master::new(pair.master)?;
            let pgid = proc.id().map_or(0, |p| p as libc::pid_t);
            return Ok(Child {
                proc,
                pgid,
                input: Some(Box::new(master.clone())),
                output: Some(Box::new(master.clone())),
                errors: None,
                pty: Some(master),
            });
        }
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        cmd.stderr(if spec.stderr {
            Stdio::piped()
        } else {
            Stdio::inherit()
        });
        cmd.process_group(0);
        let mut proc = cmd.spawn()?;
        let pgid = proc.id().map_or(0, |p| p as libc::pid_t);
        let input = proc.stdin.take().map(|s| Box::new(s) as Input);
        let output = proc.stdout.take().map(|s| Box::new(s) as Output);
        let errors = proc.stderr.take().map(|s| Box::new(s) as Output);
        Ok(Child {
            proc,
            pgid,
            input,
            output,
            errors,
            pty: None,
        })
    }

    /// True if the program runs under a pseudo-terminal.
    pub fn is_pty(&self) -> bool {
        self.pty.is_some()
    }

    /// A handle that sets the pseudo-terminal's window size (None with pipes).
    pub fn resizer(&self) -> Option<Master> {
        self.pty.clone()
    }

    /// The session is over: closes the program's input and sends its process group SIGHUP
    /// (only while the program has not been reaped: after that its group id may be reused).
    pub fn hang_up(&mut self) {
        self.input = None;
        self.output = None;
        self.errors = None;
        self.pty = None;
        if self.pgid > 0 {
            // SAFETY: kill with a negative pid signals the child's own process group.
            unsafe { libc::kill(-self.pgid, libc::SIGHUP) };
        }
    }

    /// Waits for the program to exit.
    pub async fn wait(&mut self) -> io::Result<Status> {
        let st = self.proc.wait().await?;
        // Reaped: once the rest of its group is gone too, the id may be reused by an unrelated
        // group, which must never get our SIGHUP.
        self.pgid = 0;
        Ok(match (st.code(), st.signal()) {
            (Some(c), _) => Status::Exited(c as u8),
            (None, Some(s)) => Status::Signaled(s as u8),
            (None, None) => Status::Exited(255),
        })
    }
}

/// The end-of-file character of a fresh terminal (^D), typed for the end of input.
pub(crate) const EOF_CHAR: u8 = 4;
