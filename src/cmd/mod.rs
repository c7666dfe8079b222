//! One module per subcommand, each with a `run(args)`; shared plumbing lives here.

pub mod bench;
pub(crate) mod code;
pub mod connect;
mod consent;
pub mod dial;
pub(crate) mod exec;
pub mod listen;
pub mod proxy;
pub(crate) mod receive;
mod relay_notices;
mod resume_hint;
pub mod send_file;

use std::fmt::Display;
use std::time::Instant;

use crate::cli::StreamArgs;
use crate::proto::text::defang;
use crate::proto::Config;
use crate::runtime::client::DialError;
use crate::runtime::events::Events;
use crate::runtime::server::{BindError, Refusal};
use crate::runtime::{ConnectError, DriveError, Family, Outcome, StdoutSink, Totals};

/// What kind of failure ended a command; it decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The network or the peer failed (exit 1).
    Network,
    /// The user's input or the local system failed (exit 2).
    Local,
    /// A listener turned a client away before any session began (wrong encryption
    /// settings, a service it does not offer): it goes on waiting for the next client. Never
    /// the exit status of a command (exit 1 if it ever were).
    NotStarted,
    /// The user pressed Ctrl-C (exit 130, like a shell).
    Interrupted,
    /// Exit with exactly this status: a remote program's (as ssh does), or 128 + the signal
    /// that stopped us.
    Status(u8),
}

/// How a command failed: its kind (and so the exit code) and a message for stderr that says
/// what went wrong and, where it helps, what to do. The constructors escape any control
/// character left in the message (see [`defang`]): a peer's text never drives the terminal.
#[derive(Debug)]
pub struct Failure {
    /// What failed.
    pub kind: Exit,
    /// One-line explanation; empty for a silent exit (interrupted).
    pub message: String,
}

impl Failure {
    /// The network or the peer failed (exit 1).
    pub fn network(e: impl Display) -> Self {
        Failure {
            kind: Exit::Network,
            message: defang(&e.to_string()).into_owned(),
        }
    }
    /// The user's input or the local system failed (exit 2).
    pub fn local(e: impl Display) -> Self {
        Failure {
            kind: Exit::Local,
            message: defang(&e.to_string()).into_owned(),
        }
    }
    /// A listener turned a client away before any session began (see [`Exit::NotStarted`]).
    pub(crate) fn not_started(e: impl Display) -> Self {
        Failure {
            kind: Exit::NotStarted,
            message: defang(&e.to_string()).into_owned(),
        }
    }
    /// The user pressed Ctrl-C (exit 130, like a shell).
    pub fn interrupted() -> Self {
        Failure {
            kind: Exit::Interrupted,
            message: String::new(),
        }
    }
    /// The process exit code.
    pub fn code(&self) -> i32 {
        match self.kind {
            Exit::Network | Exit::NotStarted => 1,
            Exit::Local => 2,
            Exit::Interrupted => 130,
            Exit::Status(c) => i32::from(c),
        }
    }
}

impl From<Refusal> for Failure {
    fn from(r: Refusal) -> Self {
        Failure::not_started(r)
    }
}

impl From<BindError> for Failure {
    fn from(e: BindError) -> Self {
        match e {
            BindError::Resolve(e) => e.into(),
            BindError::Bind(..) => Failure::local(e),
        }
    }
}

impl From<DialError> for Failure {
    fn from(e: DialError) -> Self {
        match e {
            DialError::Connect(e) => e.into(),
            // The interfaces the user named, or the machine's: not the network's fault.
            DialError::NoInterface { .. } => Failure::local(e),
            DialError::PeerKey(ref k) if k.is_local() => Failure::local(e),
            DialError::PeerKey(_) => Failure::network(e),
        }
    }
}

impl From<ConnectError> for Failure {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::NoAddress(..) | ConnectError::SourceFamily(..) => Failure::local(e),
            _ => Failure::network(e),
        }
    }
}

/// The session settings the stream flags ask for (encryption on unless --no-encrypt; the
/// pre-shared key read from --psk-file). A listener adds its key.
pub(crate) fn session_config(args: &StreamArgs) -> Result<Config, Failure> {
    let psk = match &args.psk_file {
        Some(p) => Some(crate::runtime::keys::read_psk(p).map_err(Failure::local)?),
        None => None,
    };
    Ok(Config {
        idle_timeout: args.idle_timeout,
        keepalive: args.keepalive,
        dead_time: args.dead_time,
        encrypt: !args.no_encrypt,
        psk,
        ..Config::default()
    })
}

/// Applies the stream flag that is a process-wide setting (congestion control); a congestion control the system does not offer is the user's to fix (exit 2).
pub(crate) fn apply_process_settings(args: &StreamArgs) -> Result<(), Failure> {
    if let Some(cc) = &args.congestion {
        crate::runtime::conn::set_congestion(cc).map_err(|e| {
            Failure::local(format!(
                "congestion control '{cc}' is not available: {e} (see /proc/sys/net/ipv4/tcp_available_congestion_control)"
            ))
        })?;
    }
    Ok(())
}

/// The address family the flags ask for.
pub fn family(args: &StreamArgs) -> Family {
    match (args.ipv4, args.ipv6) {
        (true, _) => Family::V4,
        (_, true) => Family::V6,
        _ => Family::Any,
    }
}

/// Resolves when the user presses Ctrl-C.
pub(crate) async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        // No signal handling available: never interrupt.
        std::future::pending::<()>().await;
    }
}

/// Polls `f` once (registering whatever it waits for), without waiting for it.
pub(crate) async fn futures_poll_once<F: std::future::Future + ?Sized>(f: std::pin::Pin<&mut F>) {
    let mut f = Some(f);
    std::future::poll_fn(|cx| {
        if let Some(f) = f.take() {
            let _ = f.poll(cx);
        }
        std::task::Poll::Ready(())
    })
    .await
}

/// Turns the end of a driven session into the command's result, logging a summary with -v.
/// Waits for `stdout` (if given) to write everything it was handed.
pub async fn finish(
    result: Result<Outcome, DriveError>,
    totals: Totals,
    started: Instant,
    stdout: Option<StdoutSink>,
    events: &Events,
) -> Result<(), Failure> {
    let flushed = match stdout {
        Some(s) => s.finish().await,
        None => Ok(()),
    };
    let result = match (result, flushed) {
        (Ok(Outcome::Finished), Err(e)) => Err(DriveError::Output(e)),
        (r, _) => r,
    };
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        "sent {} bytes, received {} bytes in {:.3} s{}",
        totals.sent,
        totals.received,
        secs,
        crate::runtime::sys::peak_rss()
            .map_or(String::new(), |kb| format!(", peak RSS {} KiB", kb))
    );
    let outcome = match &result {
        Ok(Outcome::Finished) => "finished",
        Ok(Outcome::OutputClosed) => "output_closed",
        Ok(Outcome::Interrupted) => "interrupted",
        Err(_) => "failed",
    };
    events.emit(
        "session_closed",
        serde_json::json!({"outcome": outcome,
            "error": result.as_ref().err().map(|e| e.to_string()),
            "sent": totals.sent, "received": totals.received, "seconds": secs}),
    );
    match result {
        Ok(Outcome::Finished) | Ok(Outcome::OutputClosed) => Ok(()),
        Ok(Outcome::Interrupted) => Err(Failure::interrupted()),
        Err(DriveError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e @ (DriveError::Input(_) | DriveError::Output(_))) => Err(Failure::local(e)),
        Err(e @ DriveError::NeverHeard(_)) => Err(Failure::not_started(e)),
        Err(e) => Err(Failure::network(e)),
    }
}
