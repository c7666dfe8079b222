//! Flowpath sockets: reading frames into the session, writing its frames out, losing a path.

use std::future::Future;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Buf;
use tokio::io::AsyncWrite;

use super::{crypto, Driver, Lost, PathConn, Side, TRANSMIT_BUDGET};
use crate::proto::{DeframeError, ErrorCode, Frame, FrameError, OutQueue, SessionError};
use crate::runtime::app::{AppSink, AppSource};
use crate::runtime::conn::FlowConn;

/// With several flowpaths, each socket's unsent queue holds about this long of its path's
/// delivery rate: enough to keep the path busy, little enough that the session (not the
/// kernel) decides which path carries which bytes.
const QUEUE_SECS: f64 = 0.04;

/// Most segments handed to one vectored write (a DATA frame is two: header and payload).
const MAX_IOVECS: usize = 64;

/// Why a flowpath's connection was lost (or closed).
#[derive(Debug, thiserror::Error)]
pub(super) enum PathLoss {
    /// The peer closed the connection in an orderly way.
    #[error("connection closed by peer")]
    ClosedByPeer,
    /// Reading or writing the socket failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The peer sent bytes that are not msock frames (it is told).
    #[error("peer sent garbage: {0}")]
    Garbage(DeframeError),
    /// The session refused the path.
    #[error("{0}")]
    Refused(String),
    /// The session failed (the caller sees it in `session.error()`).
    #[error("{0}")]
    Session(SessionError),
    /// The path's local address went away.
    #[error("local address {0} went away")]
    AddressGone(IpAddr),
    /// The server announced a new address; its old one is left.
    #[error("the server moved to {0}")]
    ServerMoved(SocketAddr),
    /// Nothing came back on the path for the dead time.
    #[error("no answer for {}", humantime::format_duration(*.0))]
    NoAnswer(Duration),
}

/// How long a finished session waits for the peer to close its side of each connection.
const LINGER: Duration = Duration::from_secs(2);

/// The same, after the peer broke the protocol: time for its ERROR to go out; nothing more
/// of it is read (a flood would keep us busy).
const HOSTILE_LINGER: Duration = Duration::from_millis(200);

impl<I: AppSource, O: AppSink> Driver<I, O> {
    pub(super) fn poll_sockets_read(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let mut i = 0;
        while i < self.conns.len() {
            let mut closed = None;
            // Frames may already be buffered (the listener reads a HELLO together with the
            // frames behind it), so drain before reading, and after each read. A few reads
            // per path per round keep paths fair.
            let mut reads = 0;
            let encrypted = self.session.is_encrypted();
            loop {
                match self.drain_frames(i) {
                    Ok(true) => progress = true,
                    Ok(false) => {}
                    Err(why) => {
                        closed = Some(why);
                        break;
                    }
                }
                if encrypted {
                    match self.take_open_jobs(i) {
                        Ok(true) => {
                            progress = true;
                            continue; // plaintext opened here: its frames first
                        }
                        Ok(false) => {}
                        Err(why) => {
                            closed = Some(why);
                            break;
                        }
                    }
                }
                let serial = self.conns[i].conn.serial;
                if self.conns[i].eof {
                    // Past the peer's FIN: nothing more to read, only records to open.
                    if self.crypto.opens(serial) == 0 {
                        closed = Some(PathLoss::ClosedByPeer);
                    }
                    break;
                }
                if reads == 4 || self.crypto.opens(serial) >= crypto::MAX_IN_FLIGHT {
                    break;
                }
                match read_frames_once(&mut self.conns[i].conn, cx) {
                    Ok(true) => {
                        progress = true;
                        reads += 1;
                    }
                    Ok(false) => break,
                    Err(PathLoss::ClosedByPeer) if self.crypto.opens(serial) > 0 => {
                        // The records before the FIN are still being opened: their frames
                        // come first (the crypto thread's answer wakes this loop again).
                        self.conns[i].eof = true;
                        progress = true;
                        break;
                    }
                    Err(e) => {
                        closed = Some(e);
                        break;
                    }
                }
            }
            if self.session.error().is_some() {
                return true; // the caller reports it
            }
            if let Some(why) = closed {
                let c = self.conns.swap_remove(i);
                self.lose_path(c, why);
                progress = true;
                continue;
            }
            i += 1;
        }
        progress
    }

    /// Hands every whole frame buffered on connection `i` to the session. Ok(true) if there
    /// was any; Err if the connection must close (garbage, or the session refused the path).
    fn drain_frames(&mut self, i: usize) -> Result<bool, PathLoss> {
        let id = self.conns[i].id;
        let now = self.now();
        let mut any = false;
        loop {
            match self.conns[i].conn.deframer.next_frame() {
                Ok(Some(f)) => {
                    any = true;
                    let r = self
                        .session
                        .handle_frame(id, f, &mut self.conns[i].conn.deframer, now);
                    match r {
                        Ok(()) => {}
                        Err(FrameError::PathRefused(why)) => return Err(PathLoss::Refused(why)),
                        // The session failed; the caller sees it in `session.error()`.
                        Err(FrameError::Session(e)) => return Err(PathLoss::Session(e)),
                    }
                }
                Ok(None) => {
                    if any {
                        self.conns[i].heard = Instant::now();
                    }
                    return Ok(any);
                }
                Err(e) => {
                    self.conns[i].conn.queue(&Frame::Error {
                        code: ErrorCode::Protocol,
                        reason: e.to_string(),
                    });
                    return Err(PathLoss::Garbage(e));
                }
            }
        }
    }

    /// Hands the whole records received on connection `i` to be opened (off this thread if
    /// large). Ok(true) if some plaintext was opened here, to be drained.
    fn take_open_jobs(&mut self, i: usize) -> Result<bool, PathLoss> {
        let conn = &mut self.conns[i].conn;
        conn.deframer.defer_opening();
        let mut opened = false;
        while self.crypto.opens(conn.serial) < crypto::MAX_IN_FLIGHT {
            let job = match conn.deframer.take_open_job() {
                Ok(Some(job)) => job,
                Ok(None) => break,
                Err(e) => return Err(garbage(conn, e.into())),
            };
            match self.crypto.open(conn.serial, job) {
                Some(Ok(plain)) => {
                    conn.deframer.push_opened(plain);
                    opened = true;
                }
                Some(Err(e)) => return Err(garbage(conn, e.into())),
                None => {}
            }
        }
        Ok(opened)
    }

    /// Takes what the crypto thread finished: sealed records onto their connection's output,
    /// opened plaintext into its deframer (drained by the next read round). True if any.
    /// At most one opened record per call: its frames reach the output before the next
    /// record's, so that the session keeps them by reference instead of copying them (it
    /// pins only a few receive buffers at a time).
    pub(super) fn poll_crypto(&mut self, cx: &mut Context<'_>) -> bool {
        let mut any = false;
        while let Poll::Ready(done) = self.crypto.poll_done(cx) {
            any = true;
            let opened = matches!(done, crypto::Done::Opened { .. });
            self.apply_crypto(done);
            if opened {
                break;
            }
        }
        any
    }

    /// Applies one finished crypto job (dropped if its connection is gone).
    fn apply_crypto(&mut self, done: crypto::Done) {
        let serial = match &done {
            crypto::Done::Sealed { conn, .. } | crypto::Done::Opened { conn, .. } => *conn,
        };
        let Some(i) = self.conns.iter().position(|c| c.conn.serial == serial) else {
            return;
        };
        let conn = &mut self.conns[i].conn;
        match done {
            crypto::Done::Sealed { bytes, .. } => {
                for b in bytes {
                    conn.out.push_segment(b);
                }
            }
            crypto::Done::Opened { plain: Ok(p), .. } => conn.deframer.push_opened(p),
            crypto::Done::Opened { plain: Err(e), .. } => {
                let why = garbage(conn, e.into());
                let c = self.conns.swap_remove(i);
                self.lose_path(c, why);
            }
        }
    }

    /// Waits for the crypto thread's jobs in flight and applies them (at the session's end).
    pub(super) fn settle_crypto(&mut self) {
        for done in self.crypto.settle() {
            self.apply_crypto(done);
        }
    }

    /// Queues more of the session's frames for connection `i` as records, sealed off this
    /// thread when large, while the socket's queue and the records being sealed are short.
    fn transmit_sealed(&mut self, i: usize, now: Duration, budget: usize) {
        let c = &mut self.conns[i];
        while c.conn.out.len() < budget && self.crypto.seals(c.conn.serial) < crypto::MAX_IN_FLIGHT
        {
            let mut clear = OutQueue::default();
            let (_, job) = self
                .session
                .poll_transmit_deferred(c.id, now, &mut clear, budget);
            let prefix = (!clear.is_empty()).then(|| clear.take_bytes());
            if prefix.is_none() && job.is_none() {
                return;
            }
            if let Some(bytes) = self.crypto.seal(c.conn.serial, prefix, job) {
                for b in bytes {
                    c.conn.out.push_segment(b);
                }
            }
        }
    }

    pub(super) fn poll_sockets_write(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        let now = self.now();
        let mut i = 0;
        let multipath = self.conns.len() > 1;
        let encrypted = self.session.is_encrypted();
        let budget = if encrypted {
            SEALED_BUDGET
        } else {
            TRANSMIT_BUDGET
        };
        while i < self.conns.len() {
            let c = &mut self.conns[i];
            if c.eof {
                // Past the peer's FIN, only its last records are still to be opened: nothing
                // goes out on it (a write could meet the reset of an exited peer and turn its
                // orderly close into a loss, or drop those records with the connection).
                i += 1;
                continue;
            }
            if multipath {
                if let Some(rate) = self.session.path_stats(c.id).and_then(|s| s.delivery_rate) {
                    c.conn.size_queue_for(rate, QUEUE_SECS);
                }
            }
            let mut failed = None;
            loop {
                if encrypted {
                    self.transmit_sealed(i, now, budget);
                }
                let c = &mut self.conns[i];
                if !encrypted
                    && c.conn.out.is_empty()
                    && !self
                        .session
                        .poll_transmit(c.id, now, &mut c.conn.out, budget)
                {
                    break;
                }
                match write_out(&mut c.conn, cx) {
                    Ok(true) => progress = true,
                    Ok(false) => break,
                    Err(e) => {
                        failed = Some(PathLoss::Io(e));
                        break;
                    }
                }
                if !c.conn.out.is_empty() {
                    break;
                }
            }
            if let Some(why) = failed {
                let c = self.conns.swap_remove(i);
                self.lose_path(c, why);
                progress = true;
                continue;
            }
            i += 1;
        }
        progress
    }

    /// A path's connection is gone: tell the session (its bytes move to other paths) and, on
    /// the client, start replacing it.
    pub(super) fn lose_path(&mut self, c: PathConn, why: PathLoss) {
        let id = c.id;
        // The peer closing a connection in order once its stream is complete is the peer
        // finishing (its last FIN_ACK may still be on its way on another path), not a loss.
        let others = self.session.active_paths().any(|p| p != id);
        let goodbye = matches!(why, PathLoss::ClosedByPeer)
            && self.session.peer_complete_and_acked()
            && others;
        if !self.session_needs_network() || goodbye {
            tracing::debug!("path {id} closed: {why}");
            self.session.path_closed(id);
            if let Side::Client(c) = &mut self.side {
                c.slots.remove(&id);
            }
            c.conn.abandon();
            return;
        }
        // An orderly close of a direct, attached flowpath: the peer may have exited.
        let exited = matches!(why, PathLoss::ClosedByPeer) && c.attached && !c.conn.relayed;
        tracing::info!(
            "path {id} ({} -> {}) lost: {why}",
            c.conn.local,
            c.conn.peer
        );
        self.events.emit(
            "path_down",
            serde_json::json!({"path": id.0, "local": c.conn.local.to_string(),
                "remote": c.conn.peer.to_string(), "reason": why.to_string()}),
        );
        // What never left this host (records still being sealed, our queue and the kernel's
        // unsent bytes, e.g. written after the local address went away), or what TCP was
        // still recovering, the peer lacks.
        let tail = crate::runtime::tcpinfo::undelivered_tail(&c.conn.stream);
        let unsent = self.crypto.sealing_bytes(c.conn.serial) + c.conn.out.len() as u64 + tail;
        self.session.path_unsent_tail(id, unsent);
        if exited {
            self.session.path_ended_by_peer(id);
        } else {
            self.session.path_closed(id);
        }
        self.last_path_error = why.to_string();
        let (attached, local, peer, heard) = (c.attached, c.conn.local, c.conn.peer, c.heard);
        c.conn.abandon();
        if attached {
            self.lost.entry(id).or_insert(Lost {
                local,
                peer,
                at: Instant::now(),
                heard,
            });
            self.replace_path(id);
        } else if let Side::Client(c) = &mut self.side {
            // It failed while attaching (refused, or no answer): do not hammer the server.
            c.replacer.retry_later(id, false);
        }
    }

    /// Pushes out whatever is queued (e.g. ERROR frames) without waiting.
    pub(super) fn flush_best_effort(&mut self, cx: &mut Context<'_>) {
        self.settle_crypto();
        let now = self.now();
        for c in &mut self.conns {
            self.session
                .poll_transmit(c.id, now, &mut c.conn.out, TRANSMIT_BUDGET);
            let _ = write_out(&mut c.conn, cx);
        }
    }

    /// After the session: write what is left, half-close each connection and wait briefly for
    /// the peer's close, so that nothing in flight is lost to a reset.
    pub(super) async fn linger(&mut self) {
        self.settle_crypto();
        let pending = match &mut self.side {
            Side::Client(c) => {
                c.replacer.clear();
                Vec::new()
            }
            Side::Server(s) => std::mem::take(&mut s.pending),
        };
        // A peer that broke the protocol gets its ERROR, not our patience: its bytes are
        // not drained for long.
        let hostile = matches!(self.session.error(), Some(SessionError::Protocol(_)));
        let wait = if hostile { HOSTILE_LINGER } else { LINGER };
        let conns = std::mem::take(&mut self.conns);
        let all = conns
            .into_iter()
            .map(|c| c.conn)
            .chain(pending.into_iter().map(|p| p.conn));
        let tasks = all.map(|mut conn| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let _ = tokio::time::timeout(wait, async {
                conn.flush().await?;
                conn.stream.shutdown().await?;
                if hostile {
                    return Ok(()); // its ERROR is out; what it sends now is not read
                }
                let mut sink = [0u8; 4096];
                while conn.stream.read(&mut sink).await? > 0 {}
                Ok::<_, io::Error>(())
            })
            .await;
        });
        join_all(tasks).await;
    }
}

/// Awaits every future (no extra dependency for one join).
async fn join_all<F: Future<Output = ()>>(it: impl Iterator<Item = F>) {
    let mut set: Vec<_> = it.map(Box::pin).collect();
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

/// Most bytes per `poll_transmit` in an encrypted session, i.e. per record, and about the
/// most queued for the socket: the receiver opens a record only once all of it is in (on its
/// crypto thread, while the next one arrives), and each record costs a hop to and from the
/// crypto threads at both ends.
const SEALED_BUDGET: usize = 256 * 1024;

/// The connection sent bytes that are not valid records: tells the peer (ERROR) and says why
/// the connection is lost.
fn garbage(conn: &mut FlowConn, e: DeframeError) -> PathLoss {
    conn.queue(&Frame::Error {
        code: ErrorCode::Protocol,
        reason: e.to_string(),
    });
    PathLoss::Garbage(e)
}

/// Reads once from the socket into the deframer. Ok(true): bytes arrived; Ok(false): nothing
/// now; Err: the connection is over.
pub(super) fn read_frames_once(
    conn: &mut FlowConn,
    cx: &mut Context<'_>,
) -> Result<bool, PathLoss> {
    let mut space = conn.deframer.read_space();
    match tokio_util::io::poll_read_buf(Pin::new(&mut conn.stream), cx, &mut space) {
        Poll::Ready(Ok(0)) => Err(PathLoss::ClosedByPeer),
        Poll::Ready(Ok(_)) => Ok(true),
        Poll::Ready(Err(e)) => Err(PathLoss::Io(e)),
        Poll::Pending => Ok(false),
    }
}

/// Writes queued output, as many segments per system call as there are (a DATA payload goes
/// from the send buffer to the socket without a copy). Ok(true): some bytes went out;
/// Ok(false): the socket is full or there was nothing to write.
pub(super) fn write_out(conn: &mut FlowConn, cx: &mut Context<'_>) -> io::Result<bool> {
    let mut any = false;
    while !conn.out.is_empty() {
        let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
        let n = conn.out.chunks_vectored(&mut slices);
        match Pin::new(&mut conn.stream).poll_write_vectored(cx, &slices[..n]) {
            Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(n)) => {
                conn.out.advance(n);
                any = true;
            }
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => return Ok(any),
        }
    }
    Ok(any)
}
