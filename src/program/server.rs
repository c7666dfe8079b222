//! The listener's side of the program service: one program per session (or per plain TCP
//! client), its output sent as it comes, its exit status sent last.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::child::{Child, Input, Output};
use super::pty::Master;
use super::wire::{self, encode_data, Msg, Winsize, WireError};
use super::{PeerInfo, Spec, Status};
use crate::runtime::channel_io::{channel_app, ChannelReader, ChannelWriter};
use crate::runtime::server::Accepted;
use crate::runtime::{DriveError, Outcome};

/// How long a client may take to send START after the session opened.
const START_WAIT: Duration = Duration::from_secs(10);
/// Under a pseudo-terminal, after the program exited: how long the terminal may stay silent
/// before its output counts as complete (a background job may keep it open forever).
const PTY_DRAIN: Duration = Duration::from_millis(250);
/// Size of one read of the program's output.
const READ: usize = 32 * 1024;

/// Why serving a program failed, and whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    /// The program could not be started (the listener's setup: a missing program, no
    /// pseudo-terminals).
    #[error("cannot start {prog}: {err}")]
    Spawn {
        /// The program.
        prog: String,
        /// Why.
        err: std::io::Error,
    },
    /// The client broke the program protocol, or sent no START in time.
    #[error("{0}")]
    Peer(#[from] WireError),
    /// The session itself failed.
    #[error("{0}")]
    Session(DriveError),
}

/// What the listener knows of a session's client, for the program's environment.
pub fn peer_info(accepted: &Accepted) -> PeerInfo {
    PeerInfo {
        addr: accepted.peer(),
        session: Some(accepted.session_id()),
        key: accepted.peer_key(),
    }
}

/// Runs `spec`'s program for the session `accepted` until the program has exited and the
/// session ended (Ok: how the program ended; None if the session ended first, and the
/// program was hung up). `interrupt` ends the session early (the listener's Ctrl-C).
pub async fn serve_session(
    accepted: Accepted,
    spec: Arc<Spec>,
    interrupt: impl Future<Output = ()> + Send + 'static,
) -> Result<Option<Status>, ProgramError> {
    let peer = peer_info(&accepted);
    let (source, sink, w, r) = channel_app(16);
    let (mut driver, _registration) = accepted.into_driver(Some(source), Some(sink));
    driver.set_interrupt(interrupt);
    let (over_tx, over_rx) = oneshot::channel::<()>();
    let drive = async move {
        let (res, _) = driver.run().await;
        let _ = over_tx.send(());
        res
    };
    let (drive, pumped) = tokio::join!(drive, pump(w, r, &spec, &peer, over_rx));
    match (pumped, drive) {
        (Err(e), _) => Err(e),
        (Ok(st), Ok(Outcome::Finished | Outcome::OutputClosed)) => Ok(st),
        (Ok(_), Ok(Outcome::Interrupted)) => Err(ProgramError::Session(DriveError::Aborted(
            "interrupted".into(),
        ))),
        (Ok(_), Err(e)) => Err(ProgramError::Session(e)),
    }
}

/// Reads START, starts the program, and moves its input, output and window size until it
/// has exited (then sends EXIT and ends our stream) or the session is `over`.
async fn pump(
    mut w: ChannelWriter,
    mut r: ChannelReader,
    spec: &Spec,
    peer: &PeerInfo,
    mut over: oneshot::Receiver<()>,
) -> Result<Option<Status>, ProgramError> {
    let first = tokio::select! {
        m = tokio::time::timeout(START_WAIT, wire::read(&mut r)) => m,
        _ = &mut over => return Ok(None),
    };
    let (size, term) = match first {
        Ok(Ok(Some(Msg::Start { size, term }))) => (size, term),
        Ok(Ok(None)) => return Ok(None),
        Ok(Ok(Some(_))) => {
            return Err(refuse(
                &mut w,
                WireError::Malformed("the first message is not START".into()),
            )
            .await)
        }
        Ok(Err(e)) => return Err(refuse(&mut w, e).await),
        Err(_) => {
            let e = WireError::Malformed(format!("no START within {}s", START_WAIT.as_secs()));
            return Err(refuse(&mut w, e).await);
        }
    };
    let mut child = match Child::spawn(spec, peer, size, &term) {
        Ok(c) => c,
        Err(err) => {
            w.abort("the listener could not start its program").await;
            let prog = spec.argv[0].to_string_lossy().into_owned();
            return Err(ProgramError::Spawn { prog, err });
        }
    };
    tracing::info!(
        "session {}: started {:?} for {}",
        peer.session.map_or(String::new(), |s| format!("{s:016x}")),
        spec.argv,
        peer.addr
    );
    if w.send(
        Msg::Mode {
            pty: child.is_pty(),
        }
        .encode(),
    )
    .await
    .is_err()
    {
        child.hang_up();
        return Ok(None);
    }
    let input = forward_input(r, child.input.take(), child.resizer(), child.is_pty());
    tokio::pin!(input);
    let (mut out, mut err) = (child.output.take(), child.errors.take());
    let (mut obuf, mut ebuf) = (vec![0u8; READ], vec![0u8; READ]);
    let mut input_done = false;
    let mut status = None;
    loop {
        if out.is_none() && err.is_none() && status.is_some() {
            break;
        }
        let drain = status.is_some() && child.is_pty();
        let sent = tokio::select! {
            n = read_some(&mut out, &mut obuf) => pass(&mut out, n, &obuf, false),
            n = read_some(&mut err, &mut ebuf) => pass(&mut err, n, &ebuf, true),
            st = child.wait(), if status.is_none() => {
                status = Some(st.unwrap_or(Status::Exited(255)));
                None
            }
            res = &mut input, if !input_done => {
                input_done = true;
                if let Err(e) = res {
                    child.hang_up();
                    return Err(refuse(&mut w, e).await);
                }
                None
            }
            _ = tokio::time::sleep(PTY_DRAIN), if drain => {
                out = None;
                None
            }
            _ = &mut over => {
                child.hang_up();
                return Ok(status);
            }
        };
        if let Some(b) = sent {
            if w.send(b).await.is_err() {
                child.hang_up();
                return Ok(status);
            }
        }
    }
    let status = status.unwrap_or(Status::Exited(255));
    tracing::info!("program {status}");
    let _ = w.send(Msg::Exit(status).encode()).await;
    w.close();
    // The input side (and so the client's remaining bytes) is dropped with this frame.
    Ok(Some(status))
}

/// Reads from `stream` if it is still open (else never resolves).
async fn read_some(stream: &mut Option<Output>, buf: &mut [u8]) -> std::io::Result<usize> {
    match stream {
        Some(s) => s.read(buf).await,
        None => std::future::pending().await,
    }
}

/// The messages for what a read of the program's output gave; closes the stream at its end.
fn pass(
    stream: &mut Option<Output>,
    n: std::io::Result<usize>,
    buf: &[u8],
    stderr: bool,
) -> Option<Bytes> {
    match n {
        Ok(n) if n > 0 => Some(encode_data(&buf[..n], stderr)),
        _ => {
            *stream = None;
            None
        }
    }
}

/// Tells the client why its session ends, and returns the error.
async fn refuse(w: &mut ChannelWriter, e: WireError) -> ProgramError {
    w.abort(format!("the listener ended the session: {e}"))
        .await;
    ProgramError::Peer(e)
}

/// Writes the client's input to the program and applies window sizes, until the client's
/// stream ends (then the program's input ends too).
async fn forward_input(
    mut r: ChannelReader,
    mut input: Option<Input>,
    resize: Option<Master>,
    pty: bool,
) -> Result<(), WireError> {
    while let Some(m) = wire::read(&mut r).await? {
        match m {
            Msg::Data(b) => {
                if let Some(i) = input.as_mut() {
                    if i.write_all(&b).await.is_err() {
                        // The program closed its input: discard the rest, as a pipe would.
                        input = None;
                    }
                }
            }
            Msg::Winsize(size) => {
                if let Some(m) = &resize {
                    let _ = m.resize(size);
                }
            }
            _ => {
                return Err(WireError::Malformed(
                    "a message only a listener sends".into(),
                ))
            }
        }
    }
    if let Some(mut i) = input {
        if pty {
            let _ = i.write_all(&[super::child::EOF_CHAR]).await;
        }
    }
    Ok(())
}

/// Serves a plain TCP client (nc) of a program listener: the program's raw input and output,
/// as ncat does (`initial`: bytes already read from the client).
pub async fn serve_plain(
    stream: TcpStream,
    initial: Vec<u8>,
    addr: SocketAddr,
    spec: Arc<Spec>,
) -> Result<Option<Status>, ProgramError> {
    let peer = PeerInfo {
        addr,
        session: None,
        key: None,
    };
    let mut child =
        Child::spawn(&spec, &peer, Winsize::default(), "").map_err(|err| ProgramError::Spawn {
            prog: spec.argv[0].to_string_lossy().into_owned(),
            err,
        })?;
    let (mut rd, mut wr) = stream.into_split();
    let mut input = child.input.take();
    let pty = child.is_pty();
    let feed = async move {
        if let Some(i) = input.as_mut() {
            if i.write_all(&initial).await.is_ok() {
                let _ = tokio::io::copy(&mut rd, i).await;
            }
            if pty {
                let _ = i.write_all(&[super::child::EOF_CHAR]).await;
            }
        }
    };
    tokio::pin!(feed);
    let (mut out, mut err) = (child.output.take(), child.errors.take());
    let (mut obuf, mut ebuf) = (vec![0u8; READ], vec![0u8; READ]);
    let (mut fed, mut status) = (false, None);
    while out.is_some() || err.is_some() || status.is_none() {
        let drain = status.is_some() && pty;
        let n = tokio::select! {
            n = read_some(&mut out, &mut obuf) => if let Ok(n @ 1..) = n { wr.write_all(&obuf[..n]).await } else { out = None; Ok(()) },
            n = read_some(&mut err, &mut ebuf) => if let Ok(n @ 1..) = n { wr.write_all(&ebuf[..n]).await } else { err = None; Ok(()) },
            st = child.wait(), if status.is_none() => { status = Some(st.unwrap_or(Status::Exited(255))); Ok(()) }
            _ = &mut feed, if !fed => { fed = true; Ok(()) }
            _ = tokio::time::sleep(PTY_DRAIN), if drain => { out = None; Ok(()) }
        };
        if n.is_err() {
            child.hang_up();
            return Ok(status);
        }
    }
    let _ = wr.shutdown().await;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::app::SourceError;
    use crate::runtime::{AppSink, AppSource};

    fn peer() -> PeerInfo {
        PeerInfo {
            addr: "127.0.0.1:9".parse().unwrap(),
            session: Some(1),
            key: None,
        }
    }

    /// Runs the pump on `client`'s bytes; returns its result and the first thing it sent.
    async fn pump_on(
        spec: &Spec,
        client: &[Bytes],
    ) -> (
        Result<Option<Status>, ProgramError>,
        Result<Option<Bytes>, SourceError>,
    ) {
        let (mut sent, mut sink, w, r) = channel_app(16);
        for b in client {
            let mut b = b.clone();
            std::future::poll_fn(|cx| sink.poll_write_chunk(cx, &mut b))
                .await
                .unwrap();
        }
        drop(sink);
        let (_over_tx, over) = oneshot::channel();
        let res = pump(w, r, spec, &peer(), over).await;
        let first = std::future::poll_fn(|cx| sent.poll_chunk(cx)).await;
        (res, first)
    }

    #[tokio::test]
    async fn a_client_that_skips_start_is_refused_and_nothing_runs() {
        let dir = tempfile::tempdir().unwrap();
        let mark = dir.path().join("ran");
        let spec = Spec::shell(&format!("touch {}", mark.display()));
        let data = Msg::Data(Bytes::from_static(b"input")).encode();
        let (res, first) = pump_on(&spec, &[data]).await;
        assert!(matches!(res, Err(ProgramError::Peer(_))), "{res:?}");
        assert!(matches!(first, Err(SourceError::Abort(_))), "{first:?}");
        assert!(
            !mark.exists(),
            "the program ran for a client that broke the protocol"
        );
    }

    #[tokio::test]
    async fn a_client_sending_a_listeners_message_is_refused_and_its_program_hung_up() {
        let spec = Spec::shell("sleep 30");
        let start = Msg::Start {
            size: Winsize::default(),
            term: String::new(),
        }
        .encode();
        let exit = Msg::Exit(Status::Exited(0)).encode();
        let began = std::time::Instant::now();
        let (res, first) = pump_on(&spec, &[start, exit]).await;
        assert!(matches!(res, Err(ProgramError::Peer(_))), "{res:?}");
        // MODE went out first (the program had started), then the abort.
        let first = first.unwrap().unwrap();
        assert_eq!(first[0], wire::tag::MODE);
        assert!(began.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn an_oversized_message_is_refused_before_anything_is_read_into_memory() {
        let spec = Spec::shell("true");
        let huge = Bytes::copy_from_slice(
            &crate::proto::codec::Framing::TypeLen.header(wire::tag::START, u32::MAX as usize),
        );
        let (res, first) = pump_on(&spec, &[huge]).await;
        assert!(matches!(res, Err(ProgramError::Peer(_))), "{res:?}");
        assert!(matches!(first, Err(SourceError::Abort(_))), "{first:?}");
    }
}
