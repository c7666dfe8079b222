//! The client's side of the program service (`msock connect` to a program listener): sends
//! its input and terminal size, shows the program's output, and returns its exit status.
//! With a remote pseudo-terminal and a terminal on standard input, the terminal is in raw mode
//! for the session and gets its mode back on every way out.

use std::io::Write;

use bytes::Bytes;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;

use super::terminal::{self, RawMode};
use super::wire::{self, encode_data, Msg, WireError};
use super::Status;
use crate::runtime::app::SourceError;
use crate::runtime::channel_io::{ChannelReader, ChannelWriter};
use crate::runtime::{AppSink, AppSource};

/// Why the program's session ended without an exit status, and whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The listener broke the program protocol.
    #[error("{0}")]
    Peer(#[from] WireError),
    /// The session ended before the listener sent the program's exit status (the session's
    /// own error, if any, says why).
    #[error("the session ended before the program's exit status arrived")]
    NoStatus,
    /// The terminal could not be put in raw mode (local).
    #[error("cannot put the terminal in raw mode: {0}")]
    Terminal(std::io::Error),
    /// Reading standard input failed (local).
    #[error("reading input: {0}")]
    Input(SourceError),
    /// Writing standard output or error failed (local).
    #[error("writing output: {0}")]
    Output(std::io::Error),
    /// A signal asked us to stop (exit status 128 + its number, as a shell reports it).
    #[error("stopped by signal {0}")]
    Signal(i32),
}

/// Signals that end `msock connect` while the terminal is raw: caught so that the terminal
/// gets its mode back first.
struct Stops(Vec<(i32, Signal)>);

impl Stops {
    fn catch() -> Stops {
        let kinds = [
            (libc::SIGTERM, SignalKind::terminate()),
            (libc::SIGHUP, SignalKind::hangup()),
            (libc::SIGQUIT, SignalKind::quit()),
        ];
        Stops(
            kinds
                .into_iter()
                .filter_map(|(n, k)| signal(k).ok().map(|s| (n, s)))
                .collect(),
        )
    }

    /// Resolves with the number of the first signal that arrives (never without signals).
    async fn next(&mut self) -> i32 {
        if self.0.is_empty() {
            return std::future::pending().await;
        }
        std::future::poll_fn(|cx| {
            for (n, s) in &mut self.0 {
                if s.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(*n);
                }
            }
            std::task::Poll::Pending
        })
        .await
    }
}

/// Runs the client's side over the session's channels until the program's exit status has
/// arrived and the listener's stream ended. `input` (None: send nothing) is the program's
/// input; its output goes to `output` (None: discarded) and its errors to our stderr.
pub async fn run<I: AppSource, O: AppSink>(
    mut w: ChannelWriter,
    r: ChannelReader,
    mut input: Option<I>,
    mut output: Option<O>,
) -> Result<Status, ClientError> {
    // Listen for resizes before reading the size, so that none is missed in between.
    let mut winch = if terminal::stdin_is_terminal() {
        signal(SignalKind::window_change()).ok()
    } else {
        None
    };
    let size = terminal::size().unwrap_or_default();
    let term = std::env::var("TERM").unwrap_or_default();
    if w.send(Msg::Start { size, term }.encode()).await.is_err() {
        return Err(ClientError::NoStatus);
    }
    if input.is_none() {
        w.close();
    }
    let mut msgs = spawn_reader(r);
    let pty = match msgs.recv().await {
        Some(Ok(Some(Msg::Mode { pty }))) => pty,
        Some(Ok(Some(_))) => {
            let e = WireError::Malformed("the first message is not MODE".into());
            return Err(abort(&mut w, e).await);
        }
        Some(Err(e)) => return Err(abort(&mut w, e).await),
        Some(Ok(None)) | None => return Err(ClientError::NoStatus),
    };
    // Raw mode only for a remote terminal: a program on pipes gets line-edited input, and
    // Ctrl-C stops msock as usual.
    let _raw = if pty {
        RawMode::enter().map_err(ClientError::Terminal)?
    } else {
        None
    };
    let mut stops = if _raw.is_some() {
        Stops::catch()
    } else {
        Stops(Vec::new())
    };
    if !pty {
        winch = None;
    }
    let mut status = None;
    loop {
        tokio::select! {
            chunk = next_chunk(&mut input) => match chunk {
                Ok(Some(b)) => {
                    if w.send(encode_data(&b, false)).await.is_err() {
                        input = None;
                    }
                }
                Ok(None) => {
                    input = None;
                    w.close();
                }
                Err(e) => {
                    w.abort("the client could not read its input").await;
                    return Err(ClientError::Input(e));
                }
            },
            m = msgs.recv() => match m {
                Some(Ok(Some(Msg::Data(b)))) => write_out(&mut output, b).await?,
                Some(Ok(Some(Msg::Stderr(b)))) => {
                    let mut e = std::io::stderr().lock();
                    e.write_all(&b).and_then(|_| e.flush()).map_err(ClientError::Output)?;
                }
                Some(Ok(Some(Msg::Exit(s)))) if status.is_none() => {
                    status = Some(s);
                    // Nothing more goes to the program: end our stream so the session ends.
                    input = None;
                    w.close();
                }
                Some(Ok(Some(_))) => {
                    let e = WireError::Malformed("a message out of place".into());
                    return Err(abort(&mut w, e).await);
                }
                Some(Err(e)) => return Err(abort(&mut w, e).await),
                Some(Ok(None)) | None => return status.ok_or(ClientError::NoStatus),
            },
            _ = next_winch(&mut winch) => {
                if let Some(size) = terminal::size() {
                    let _ = w.send(Msg::Winsize(size).encode()).await;
                }
            }
            n = stops.next() => {
                w.abort(format!("the client was stopped by signal {n}")).await;
                return Err(ClientError::Signal(n));
            }
        }
    }
}

/// Tells the listener why we end the session, and returns the error.
async fn abort(w: &mut ChannelWriter, e: WireError) -> ClientError {
    w.abort(format!("the client ended the session: {e}")).await;
    ClientError::Peer(e)
}

/// Reads the listener's messages on a task of their own (reading one is not cancel-safe).
fn spawn_reader(mut r: ChannelReader) -> mpsc::Receiver<Result<Option<Msg>, WireError>> {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let m = wire::read(&mut r).await;
            let end = !matches!(m, Ok(Some(_)));
            if tx.send(m).await.is_err() || end {
                break;
            }
        }
    });
    rx
}

/// The next chunk of input (never resolves once there is none).
async fn next_chunk<I: AppSource>(input: &mut Option<I>) -> Result<Option<Bytes>, SourceError> {
    match input {
        Some(i) => std::future::poll_fn(|cx| i.poll_chunk(cx)).await,
        None => std::future::pending().await,
    }
}

/// The next window-size change (never without a terminal).
async fn next_winch(s: &mut Option<Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Writes `b` to the output (or discards it).
async fn write_out<O: AppSink>(out: &mut Option<O>, mut b: Bytes) -> Result<(), ClientError> {
    let Some(o) = out else { return Ok(()) };
    while !b.is_empty() {
        std::future::poll_fn(|cx| o.poll_write_chunk(cx, &mut b))
            .await
            .map_err(ClientError::Output)?;
    }
    Ok(())
}
