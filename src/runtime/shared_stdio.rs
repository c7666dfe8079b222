//! Stdin and stdout shared by the byte-stream sessions of one listener, the way `ncat -k`
//! shares them: every session's received bytes go to stdout as they arrive (chunks of
//! different sessions interleave, each chunk written whole); stdin is read only while at
//! least one session is connected, and each chunk read goes to every session connected at
//! that moment; at the end of stdin every session's sending side ends, and a session that
//! begins later sends nothing.
//!
//! A session that does not take its copy of stdin (a client that moved and has not come back
//! yet, or a stalled one) is waited for at most [`LAG_GRACE`] once its queue is full; then it
//! is ended with an error instead of holding stdin up for the others.
//!
//! nc's exit rule, for a listener whose output goes to a file, started in a terminal: when stdin is a
//! terminal and nothing from it has gone to a session yet, the session's sending side ends as
//! soon as the peer has finished sending, so that both ends finish by themselves.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::app::{AppSink, AppSource, SourceError};
use super::stdio::{StdinSource, StdoutSink};

/// Chunks of stdin (each up to 256 KiB) that may wait for one session.
const QUEUE: usize = 16;

/// How long stdin waits for a session whose queue is full before that session is ended.
pub const LAG_GRACE: Duration = Duration::from_secs(5);

/// One session's subscription to stdin.
struct Subscriber {
    tx: mpsc::Sender<Result<Bytes, SourceError>>,
    /// Set when the session was dropped for falling behind (its source then says so).
    lagged: Arc<AtomicBool>,
}

/// The process's stdin and stdout, for many sessions at once. Cheap to clone.
#[derive(Clone)]
pub struct SharedStdio {
    /// Where new sessions subscribe to stdin (None: the listener does not read stdin).
    join: Option<mpsc::UnboundedSender<Subscriber>>,
    /// stdout (None: received bytes are discarded); taken out by [`SharedStdio::finish`].
    stdout: Option<Arc<Mutex<Option<StdoutSink>>>>,
    /// stdin is a terminal (nc's exit rule applies).
    tty: bool,
}

impl SharedStdio {
    /// Starts sharing stdin (if `read_stdin`) and stdout (if `write_stdout`). Needs a tokio
    /// runtime (the distribution of stdin is a task).
    pub fn start(read_stdin: bool, write_stdout: bool) -> Self {
        // SAFETY: isatty only inspects descriptor 0.
        let tty = read_stdin && unsafe { libc::isatty(0) } == 1;
        SharedStdio {
            join: read_stdin.then(|| hub(StdinSource::spawn(), LAG_GRACE)),
            stdout: write_stdout.then(|| Arc::new(Mutex::new(Some(StdoutSink::spawn())))),
            tty,
        }
    }

    /// The application side of one new session: its copy of stdin (None without stdin) and
    /// its way to stdout (None without stdout).
    pub fn session(&self) -> (Option<SessionInput>, Option<SessionOutput>) {
        let (done_tx, done_rx) = oneshot::channel();
        let sink = (self.stdout.as_ref()).and_then(|s| {
            s.lock()
                .expect("stdout lock")
                .as_ref()
                .map(StdoutSink::handle)
        });
        let output = sink.map(|sink| SessionOutput {
            sink,
            _peer_done: done_tx,
        });
        let input = self.join.as_ref().map(|join| {
            let (tx, rx) = mpsc::channel(QUEUE);
            let lagged = Arc::new(AtomicBool::new(false));
            // After the end of stdin the hub is gone: `tx` is dropped, the session reads EOF.
            let _ = join.send(Subscriber {
                tx,
                lagged: lagged.clone(),
            });
            SessionInput {
                rx,
                lagged,
                peer_done: (self.tty && output.is_some()).then_some(done_rx),
                sent_any: false,
                done: false,
            }
        });
        (input, output)
    }

    /// Waits until everything handed to stdout has been written (once every session's output
    /// is gone; later sessions get none); returns the writer's error if any.
    pub async fn finish(&self) -> io::Result<()> {
        let sink = (self.stdout.as_ref()).and_then(|s| s.lock().expect("stdout lock").take());
        match sink {
            Some(s) => s.finish().await,
            None => Ok(()),
        }
    }
}

/// Starts handing what `input` gives to every subscriber (a task); returns where sessions
/// subscribe.
fn hub<S: AppSource + 'static>(input: S, grace: Duration) -> mpsc::UnboundedSender<Subscriber> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(distribute(input, rx, grace));
    tx
}

/// Reads `stdin` while at least one session is subscribed and hands each chunk to every
/// subscriber (waiting at most `grace` for one whose queue is full); ends every subscription
/// at the end of stdin.
async fn distribute<S: AppSource>(
    mut stdin: S,
    mut joins: mpsc::UnboundedReceiver<Subscriber>,
    grace: Duration,
) {
    let mut subs: Vec<Subscriber> = Vec::new();
    loop {
        subs.retain(|s| !s.tx.is_closed());
        if subs.is_empty() {
            // Nobody to read for: wait for a session, as ncat pays attention to stdin only
            // once a client is connected.
            match joins.recv().await {
                Some(s) => subs.push(s),
                None => return,
            }
            continue;
        }
        // Sessions that subscribed before a chunk is read get it.
        let chunk = tokio::select! {
            biased;
            s = joins.recv() => {
                match s {
                    Some(s) => subs.push(s),
                    None => return,
                }
                continue;
            }
            c = std::future::poll_fn(|cx| stdin.poll_chunk(cx)) => c,
        };
        match chunk {
            Ok(Some(b)) => {
                for s in subs.iter_mut() {
                    deliver(s, b.clone(), grace).await;
                }
            }
            Ok(None) => break,
            Err(e) => {
                let msg = e.to_string();
                for s in subs.drain(..) {
                    let e = io::Error::other(format!("reading stdin: {msg}"));
                    let _ = s.tx.try_send(Err(SourceError::Io(e)));
                }
                break;
            }
        }
    }
    // End of stdin: every session now reads EOF (its sender is dropped), and so does every
    // session that subscribes later.
    drop(subs);
    while let Some(s) = joins.recv().await {
        drop(s);
    }
}

/// Hands `b` to one subscriber, waiting at most `grace` if its queue is full; a subscriber
/// that does not make room in time is marked and dropped.
async fn deliver(s: &mut Subscriber, b: Bytes, grace: Duration) {
    let r = match s.tx.try_send(Ok(b)) {
        Ok(()) => return,
        Err(mpsc::error::TrySendError::Closed(_)) => return,
        Err(mpsc::error::TrySendError::Full(b)) => tokio::time::timeout(grace, s.tx.send(b)).await,
    };
    if r.is_err() {
        tracing::warn!(
            "a session did not take the listener's input for {:?} (its client moved or stalled); ending it",
            grace
        );
        s.lagged.store(true, Ordering::Relaxed);
        // Replaced by a closed sender: the session sees the end of its queue, then the error.
        let (closed, _) = mpsc::channel(1);
        s.tx = closed;
    }
}

/// One session's copy of stdin.
pub struct SessionInput {
    rx: mpsc::Receiver<Result<Bytes, SourceError>>,
    lagged: Arc<AtomicBool>,
    /// Resolves when the session's output is dropped (the peer finished sending); only when
    /// nc's exit rule applies (stdin is a terminal).
    peer_done: Option<oneshot::Receiver<()>>,
    /// Something from stdin went to this session.
    sent_any: bool,
    done: bool,
}

impl AppSource for SessionInput {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, SourceError>> {
        if self.done {
            return Poll::Ready(Ok(None));
        }
        if !self.sent_any {
            if let Some(p) = self.peer_done.as_mut() {
                if Pin::new(p).poll(cx).is_ready() {
                    tracing::info!(
                        "the peer finished sending and nothing was typed: ending our side too (nc's rule)"
                    );
                    self.done = true;
                    return Poll::Ready(Ok(None));
                }
            }
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => {
                self.sent_any = true;
                Poll::Ready(Ok(Some(b)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Err(e))
            }
            Poll::Ready(None) => {
                self.done = true;
                if self.lagged.load(Ordering::Relaxed) {
                    return Poll::Ready(Err(SourceError::Abort(
                        "it fell behind the listener's input (its client moved or stalled)".into(),
                    )));
                }
                Poll::Ready(Ok(None))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// One session's way to stdout. Dropped by the session when the peer has finished sending,
/// which is what nc's exit rule watches for.
pub struct SessionOutput {
    sink: StdoutSink,
    _peer_done: oneshot::Sender<()>,
}

impl AppSink for SessionOutput {
    fn poll_write_chunk(
        &mut self,
        cx: &mut Context<'_>,
        chunk: &mut Bytes,
    ) -> Poll<io::Result<()>> {
        self.sink.poll_write_chunk(cx, chunk)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.sink.poll_flush(cx)
    }
}

use std::future::Future;
use std::pin::Pin;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::channel_io::ChannelSource;

    /// A shared input fed from a channel (as stdin), with a short grace.
    fn shared(grace: Duration) -> (mpsc::Sender<Result<Bytes, SourceError>>, SharedStdio) {
        let (tx, rx) = mpsc::channel(1);
        let stdio = SharedStdio {
            join: Some(hub(ChannelSource::new(rx), grace)),
            stdout: None,
            tty: false,
        };
        (tx, stdio)
    }

    async fn next(i: &mut SessionInput) -> Result<Option<Bytes>, SourceError> {
        std::future::poll_fn(|cx| i.poll_chunk(cx)).await
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_chunk_then_the_end() {
        let (tx, stdio) = shared(Duration::from_secs(5));
        let (mut a, _) = stdio.session();
        let (mut b, _) = stdio.session();
        let (a, b) = (a.as_mut().unwrap(), b.as_mut().unwrap());
        tx.send(Ok(Bytes::from_static(b"one"))).await.unwrap();
        assert_eq!(next(a).await.unwrap().unwrap(), "one");
        assert_eq!(next(b).await.unwrap().unwrap(), "one");
        drop(tx);
        assert!(next(a).await.unwrap().is_none());
        assert!(next(b).await.unwrap().is_none());
        // A session that comes after the end of stdin sends nothing.
        let (mut late, _) = stdio.session();
        assert!(next(late.as_mut().unwrap()).await.unwrap().is_none());
    }

    /// A session that takes nothing (parked) holds the others up for `grace` at most, and is
    /// then ended with an error after what it had queued.
    #[tokio::test]
    async fn a_stalled_subscriber_is_dropped_and_the_others_go_on() {
        let (tx, stdio) = shared(Duration::from_millis(200));
        let (mut stalled, _) = stdio.session();
        let (mut live, _) = stdio.session();
        let live = live.as_mut().unwrap();
        let feeder = tokio::spawn(async move {
            for _ in 0..QUEUE + 5 {
                if tx.send(Ok(Bytes::from_static(b"x"))).await.is_err() {
                    break;
                }
            }
        });
        for _ in 0..QUEUE + 5 {
            let got = tokio::time::timeout(Duration::from_secs(5), next(live)).await;
            assert_eq!(got.expect("held up").unwrap().unwrap(), "x");
        }
        feeder.await.unwrap();
        let stalled = stalled.as_mut().unwrap();
        for _ in 0..QUEUE {
            assert_eq!(next(stalled).await.unwrap().unwrap(), "x");
        }
        assert!(matches!(next(stalled).await, Err(SourceError::Abort(_))));
    }
}
