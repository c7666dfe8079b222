//! The session driver: one task that owns a [`Session`], its flowpath sockets, its timer and the
//! application's byte source and sink, and moves bytes between them.
//!
//! It is a hand-written future (one `poll` that tries every source of progress in turn) rather
//! than a web of tasks and locks: the session is never shared, and each wake-up does all the
//! work that is ready.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::io::AsyncWrite;
use tokio::sync::mpsc;
use tokio::time::Sleep;

use super::app::{AppSink, AppSource};
use super::conn::FlowConn;
use crate::proto::{
    ErrorCode, Event, Frame, FrameError, PathId, PendingAttach, Session, SessionError,
};

/// Most bytes queued into a path's output buffer per `poll_transmit`.
const TRANSMIT_BUDGET: usize = 256 * 1024;
/// Size of one read from a socket.
const SOCKET_READ: usize = 256 * 1024;
/// How long a server waits for the ATTACH_PROOF after its CHALLENGE.
const PROOF_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a finished session waits for the peer to close its side of each connection.
const LINGER: Duration = Duration::from_secs(2);

/// A new connection that asks to attach to this session (server side): its HELLO(attach) has
/// been read already.
#[derive(Debug)]
pub struct AttachRequest {
    /// The connection, preamble consumed, our preamble not yet sent.
    pub conn: FlowConn,
    /// The HELLO(attach) frame.
    pub hello: Frame,
}

/// How a driven session ended without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Both directions completed and were acknowledged.
    Finished,
    /// The application's output went away (e.g. broken pipe on stdout); the session was ended.
    OutputClosed,
    /// The user interrupted (Ctrl-C); the peer was told.
    Interrupted,
}

/// Why a driven session failed. Variants say whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// The protocol layer failed (peer error, protocol violation, idle timeout).
    #[error("{0}")]
    Session(#[from] SessionError),
    /// Every flowpath broke and none could be restored.
    #[error("connection to peer lost: {0}")]
    PathsLost(String),
    /// Reading the application's input failed (local).
    #[error("reading input: {0}")]
    Input(io::Error),
    /// Writing the application's output failed (local).
    #[error("writing output: {0}")]
    Output(io::Error),
}

/// Running totals, for summaries.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Application bytes handed to the session.
    pub sent: u64,
    /// Application bytes delivered to the output.
    pub received: u64,
}

struct PathConn {
    id: PathId,
    conn: FlowConn,
}

struct PendingConn {
    conn: FlowConn,
    pending: PendingAttach,
    deadline: Instant,
}

/// Drives one session to completion. Build with [`Driver::new`], add connections, then
/// `.run().await`.
pub struct Driver<I, O> {
    session: Session,
    epoch: Instant,
    conns: Vec<PathConn>,
    pending: Vec<PendingConn>,
    incoming: Option<mpsc::Receiver<AttachRequest>>,
    app_in: Option<I>,
    /// Input read but not yet taken by the session (it was full).
    in_chunk: Option<Bytes>,
    app_out: Option<O>,
    out_chunk: Option<Bytes>,
    out_done: bool,
    sleep: Pin<Box<Sleep>>,
    sleep_at: Option<Duration>,
    interrupt: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// Server: how long to wait for a new flowpath after the last one broke.
    resume_wait: Option<Duration>,
    /// Fires `resume_wait` after the session lost its last flowpath; None while it has one.
    orphaned: Option<Pin<Box<Sleep>>>,
    rng: StdRng,
    last_path_error: String,
    totals: Totals,
}

impl<I: AppSource, O: AppSink> Driver<I, O> {
    /// A driver for `session`, whose clock started at `epoch`. `input` is read and sent (None:
    /// send nothing and half-close at once); received bytes go to `output` (None: discard).
    pub fn new(session: Session, epoch: Instant, input: Option<I>, output: Option<O>) -> Self {
        let mut d = Driver {
            session,
            epoch,
            conns: Vec::new(),
            pending: Vec::new(),
            incoming: None,
            app_in: input,
            in_chunk: None,
            app_out: output,
            out_chunk: None,
            out_done: false,
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(3600))),
            sleep_at: None,
            interrupt: None,
            resume_wait: None,
            orphaned: None,
            rng: StdRng::from_entropy(),
            last_path_error: String::new(),
            totals: Totals::default(),
        };
        if d.app_in.is_none() {
            d.session.close_write();
        }
        d
    }

    /// Adds an active flowpath connection.
    pub fn add_path(&mut self, id: PathId, conn: FlowConn) {
        self.conns.push(PathConn { id, conn });
    }

    /// Server: connections that ask to attach to this session arrive on `rx`.
    pub fn set_incoming(&mut self, rx: mpsc::Receiver<AttachRequest>) {
        self.incoming = Some(rx);
    }

    /// Server: keep the session this long after its last flowpath broke, for the client to
    /// attach a new one.
    pub fn set_resume_wait(&mut self, wait: Duration) {
        self.resume_wait = Some(wait);
    }

    /// A future that, when it completes, aborts the session (e.g. Ctrl-C).
    pub fn set_interrupt(&mut self, f: impl Future<Output = ()> + Send + 'static) {
        self.interrupt = Some(Box::pin(f));
    }

    /// Runs the session to its end, then closes the connections gracefully.
    pub async fn run(mut self) -> (Result<Outcome, DriveError>, Totals) {
        let r = std::future::poll_fn(|cx| self.poll_drive(cx)).await;
        self.linger().await;
        (r, self.totals)
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<Result<Outcome, DriveError>> {
        // Bound the work per wake-up so that other tasks get the core too.
        for _ in 0..64 {
            let mut progress = false;
            if let Some(i) = self.interrupt.as_mut() {
                if i.as_mut().poll(cx).is_ready() {
                    self.interrupt = None;
                    self.session.abort();
                    self.flush_best_effort(cx);
                    return Poll::Ready(Ok(Outcome::Interrupted));
                }
            }
            progress |= self.poll_incoming(cx);
            progress |= self.poll_pending(cx);
            progress |= self.poll_sockets_read(cx);
            progress |= self.poll_app_in(cx)?;
            match self.poll_app_out(cx) {
                Ok(p) => progress |= p,
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    self.session.abort();
                    self.flush_best_effort(cx);
                    return Poll::Ready(Ok(Outcome::OutputClosed));
                }
                Err(e) => return Poll::Ready(Err(DriveError::Output(e))),
            }
            progress |= self.poll_sockets_write(cx);
            progress |= self.poll_timer(cx);
            while let Some(ev) = self.session.poll_event() {
                log_event(&ev, &self.conns);
            }
            if let Some(e) = self.session.error() {
                let e = e.clone();
                self.flush_best_effort(cx);
                return Poll::Ready(Err(e.into()));
            }
            if self.session.is_finished()
                && self.out_done
                && self.conns.iter().all(|c| c.conn.out.is_empty())
            {
                return Poll::Ready(Ok(Outcome::Finished));
            }
            if self.conns.is_empty() && self.pending.is_empty() {
                if !self.session_needs_network() {
                    if self.out_done {
                        return Poll::Ready(Ok(Outcome::Finished));
                    }
                } else if let Some(e) = self.poll_orphaned(cx) {
                    return Poll::Ready(Err(e));
                }
            } else {
                self.orphaned = None;
            }
            if !progress {
                return Poll::Pending;
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// With no flowpath left: fails at once if no new one can come, or once the resume wait
    /// has passed.
    fn poll_orphaned(&mut self, cx: &mut Context<'_>) -> Option<DriveError> {
        let lost = || DriveError::PathsLost(self.last_path_error.clone());
        let (Some(wait), true) = (self.resume_wait, self.incoming.is_some()) else {
            return Some(lost());
        };
        let timer = self.orphaned.get_or_insert_with(|| {
            tracing::info!(
                "all flowpaths lost; waiting up to {} for the peer to come back",
                humantime::format_duration(wait)
            );
            Box::pin(tokio::time::sleep(wait))
        });
        if timer.as_mut().poll(cx).is_ready() {
            return Some(lost());
        }
        None
    }

    /// True while the session still has to exchange something with the peer.
    fn session_needs_network(&self) -> bool {
        !(self.session.write_finished() && self.session.peer_complete_and_acked())
    }

    fn poll_incoming(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(rx) = self.incoming.as_mut() else {
            return false;
        };
        let mut progress = false;
        loop {
            match rx.poll_recv(cx) {
                Poll::Ready(Some(req)) => {
                    progress = true;
                    let AttachRequest { mut conn, hello } = req;
                    match self.session.challenge_attach(&hello, &mut self.rng) {
                        Ok((pending, challenge)) => {
                            conn.queue_preamble();
                            conn.queue(&challenge);
                            self.pending.push(PendingConn {
                                conn,
                                pending,
                                deadline: Instant::now() + PROOF_TIMEOUT,
                            });
                        }
                        Err(e) => {
                            tracing::info!("refusing flowpath from {}: {e}", conn.peer);
                            tokio::spawn(conn.refuse(ErrorCode::UnknownSession, e.to_string()));
                        }
                    }
                }
                Poll::Ready(None) => {
                    self.incoming = None;
                    break;
                }
                Poll::Pending => break,
            }
        }
        progress
    }

    /// Server: sends CHALLENGEs and checks ATTACH_PROOFs of connections being attached.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let mut i = 0;
        while i < self.pending.len() {
            let p = &mut self.pending[i];
            let mut drop_reason = None;
            if let Err(e) = write_out(&mut p.conn, cx) {
                drop_reason = Some(e.to_string());
            }
            match read_frames_once(&mut p.conn, cx) {
                Ok(true) => progress = true,
                Ok(false) => {}
                Err(e) => drop_reason = Some(e),
            }
            if drop_reason.is_none() {
                match p.conn.deframer.next_frame() {
                    Ok(Some(frame)) => {
                        let p = self.pending.swap_remove(i);
                        let now = self.now();
                        match self.session.complete_attach(p.pending, &frame, now) {
                            Ok(id) => {
                                tracing::info!("path {id} attached from {}", p.conn.peer);
                                self.conns.retain(|c| c.id != id);
                                self.conns.push(PathConn { id, conn: p.conn });
                            }
                            Err(e) => {
                                tracing::warn!("refusing flowpath from {}: {e}", p.conn.peer);
                                tokio::spawn(p.conn.refuse(ErrorCode::AuthFailed, e.to_string()));
                            }
                        }
                        progress = true;
                        continue;
                    }
                    Ok(None) if Instant::now() > p.deadline => {
                        drop_reason = Some("no attach proof in time".into())
                    }
                    Ok(None) => {}
                    Err(e) => drop_reason = Some(e.to_string()),
                }
            }
            if let Some(why) = drop_reason {
                tracing::info!("dropping attach attempt from {}: {why}", p.conn.peer);
                self.pending.swap_remove(i);
                progress = true;
                continue;
            }
            i += 1;
        }
        progress
    }

    fn poll_sockets_read(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let mut i = 0;
        while i < self.conns.len() {
            let id = self.conns[i].id;
            let mut closed = None;
            // A few reads per path per round keep paths fair.
            for _ in 0..4 {
                match read_frames_once(&mut self.conns[i].conn, cx) {
                    Ok(true) => progress = true,
                    Ok(false) => break,
                    Err(e) => {
                        closed = Some(e);
                        break;
                    }
                }
                let now = self.now();
                loop {
                    match self.conns[i].conn.deframer.next_frame() {
                        Ok(Some(f)) => match self.session.handle_frame(id, f, now) {
                            Ok(()) => {}
                            Err(FrameError::PathRefused(why)) => {
                                closed = Some(why);
                                break;
                            }
                            Err(FrameError::Session(_)) => return true, // caller reports it
                        },
                        Ok(None) => break,
                        Err(e) => {
                            closed = Some(format!("peer sent garbage: {e}"));
                            self.conns[i].conn.queue(&Frame::Error {
                                code: ErrorCode::Protocol,
                                reason: e.to_string(),
                            });
                            break;
                        }
                    }
                }
                if closed.is_some() {
                    break;
                }
            }
            if let Some(why) = closed {
                let c = self.conns.swap_remove(i);
                tracing::info!(
                    "path {id} ({} -> {}) closed: {why}",
                    c.conn.local,
                    c.conn.peer
                );
                self.last_path_error = why;
                self.session.path_closed(id);
                progress = true;
                continue;
            }
            i += 1;
        }
        progress
    }

    fn poll_sockets_write(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let now = self.now();
        let mut i = 0;
        while i < self.conns.len() {
            let c = &mut self.conns[i];
            let mut failed = None;
            loop {
                if c.conn.out.is_empty()
                    && !self
                        .session
                        .poll_transmit(c.id, now, &mut c.conn.out, TRANSMIT_BUDGET)
                {
                    break;
                }
                match write_out(&mut c.conn, cx) {
                    Ok(true) => progress = true,
                    Ok(false) => break,
                    Err(e) => {
                        failed = Some(e.to_string());
                        break;
                    }
                }
                if !c.conn.out.is_empty() {
                    break;
                }
            }
            if let Some(why) = failed {
                let c = self.conns.swap_remove(i);
                tracing::info!("path {} closed while writing: {why}", c.id);
                self.last_path_error = why;
                self.session.path_closed(c.id);
                progress = true;
                continue;
            }
            i += 1;
        }
        progress
    }

    fn poll_app_in(&mut self, cx: &mut Context<'_>) -> Result<bool, DriveError> {
        let mut progress = false;
        loop {
            if let Some(chunk) = self.in_chunk.as_mut() {
                let len = chunk.len();
                let n = if self.session.write_bytes(chunk.clone()) {
                    len
                } else {
                    self.session.write(chunk)
                };
                if n == 0 {
                    return Ok(progress);
                }
                chunk.advance(n);
                if chunk.is_empty() {
                    self.in_chunk = None;
                }
                self.totals.sent += n as u64;
                progress = true;
                continue;
            }
            let Some(input) = self.app_in.as_mut() else {
                return Ok(progress);
            };
            if self.session.write_capacity() == 0 {
                return Ok(progress);
            }
            match input.poll_chunk(cx) {
                Poll::Ready(Ok(Some(chunk))) => {
                    self.in_chunk = Some(chunk);
                    progress = true;
                }
                Poll::Ready(Ok(None)) => {
                    self.app_in = None;
                    self.session.close_write();
                    return Ok(true);
                }
                Poll::Ready(Err(e)) => return Err(DriveError::Input(e)),
                Poll::Pending => return Ok(progress),
            }
        }
    }

    fn poll_app_out(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
        let mut progress = false;
        loop {
            if self.out_chunk.is_none() {
                self.out_chunk = self.session.read_chunk(SOCKET_READ);
                if self.out_chunk.is_some() {
                    progress = true;
                }
            }
            let Some(chunk) = self.out_chunk.as_mut() else {
                if self.session.peer_finished() && !self.out_done {
                    if let Some(out) = self.app_out.as_mut() {
                        match out.poll_flush(cx) {
                            Poll::Ready(r) => r?,
                            Poll::Pending => return Ok(progress),
                        }
                    }
                    self.out_done = true;
                    progress = true;
                }
                return Ok(progress);
            };
            let before = chunk.len();
            if let Some(out) = self.app_out.as_mut() {
                match out.poll_write_chunk(cx, chunk) {
                    Poll::Ready(Ok(())) => {}
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => return Ok(progress),
                }
            } else {
                chunk.clear();
            }
            progress = true;
            self.totals.received += (before - chunk.len()) as u64;
            if chunk.is_empty() {
                self.out_chunk = None;
            }
        }
    }

    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let next = self.session.poll_timeout();
        if next != self.sleep_at {
            self.sleep_at = next;
            let deadline = next.map_or(Duration::from_secs(3600), |d| d);
            self.sleep
                .as_mut()
                .reset(tokio::time::Instant::from_std(self.epoch + deadline));
        }
        if self.sleep_at.is_some() && self.sleep.as_mut().poll(cx).is_ready() {
            let now = self.now();
            self.session.handle_timeout(now);
            self.sleep_at = None;
            self.sleep.as_mut().reset(tokio::time::Instant::from_std(
                self.epoch + now + Duration::from_secs(3600),
            ));
            return true;
        }
        false
    }

    /// Pushes out whatever is queued (e.g. ERROR frames) without waiting.
    fn flush_best_effort(&mut self, cx: &mut Context<'_>) {
        let now = self.now();
        for c in &mut self.conns {
            self.session
                .poll_transmit(c.id, now, &mut c.conn.out, TRANSMIT_BUDGET);
            let _ = write_out(&mut c.conn, cx);
        }
    }

    /// After the session: write what is left, half-close each connection and wait briefly for
    /// the peer's close, so that nothing in flight is lost to a reset.
    async fn linger(&mut self) {
        let conns = std::mem::take(&mut self.conns);
        let pending = std::mem::take(&mut self.pending);
        let all = conns
            .into_iter()
            .map(|c| c.conn)
            .chain(pending.into_iter().map(|p| p.conn));
        let tasks = all.map(|mut conn| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = tokio::time::timeout(LINGER, async {
                conn.flush().await?;
                conn.stream.shutdown().await?;
                let mut sink = [0u8; 4096];
                while conn.stream.read(&mut sink).await? > 0 {}
                Ok::<_, io::Error>(())
            })
            .await;
        });
        futures_join_all(tasks).await;
    }
}

/// Awaits every future (no extra dependency for one join).
async fn futures_join_all<F: Future<Output = ()>>(it: impl Iterator<Item = F>) {
    let mut set = Vec::new();
    for f in it {
        set.push(Box::pin(f));
    }
    std::future::poll_fn(|cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Reads once from the socket into the deframer. Ok(true): bytes arrived; Ok(false): nothing
/// now; Err: the connection is over.
fn read_frames_once(conn: &mut FlowConn, cx: &mut Context<'_>) -> Result<bool, String> {
    let buf = conn.deframer.buffer(SOCKET_READ / 4);
    match tokio_util::io::poll_read_buf(Pin::new(&mut conn.stream), cx, buf) {
        Poll::Ready(Ok(0)) => Err("connection closed by peer".into()),
        Poll::Ready(Ok(_)) => Ok(true),
        Poll::Ready(Err(e)) => Err(e.to_string()),
        Poll::Pending => Ok(false),
    }
}

/// Writes queued output. Ok(true): some bytes went out; Ok(false): the socket is full or there
/// was nothing to write.
fn write_out(conn: &mut FlowConn, cx: &mut Context<'_>) -> io::Result<bool> {
    let mut any = false;
    while !conn.out.is_empty() {
        match Pin::new(&mut conn.stream).poll_write(cx, &conn.out) {
            Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => {
                conn.out.advance(n);
                any = true;
            }
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => return Ok(any),
        }
    }
    conn.out.clear();
    Ok(any)
}

fn log_event(ev: &Event, conns: &[PathConn]) {
    match ev {
        Event::PathActive(id) => {
            if let Some(c) = conns.iter().find(|c| c.id == *id) {
                tracing::info!("path {id} up: {} -> {}", c.conn.local, c.conn.peer);
            }
        }
        Event::PathClosed(id) => tracing::debug!("path {id} retired"),
        Event::PeerFinished => tracing::info!("peer finished sending"),
        Event::Finished => tracing::info!("session complete"),
        Event::Failed(e) => tracing::debug!("session failed: {e}"),
    }
}
