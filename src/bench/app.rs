//! The bench test's application side of a transport (an msock session or a plain TCP
//! connection): [`BenchSource`] generates DATA blocks (clones of one buffer: nothing is copied
//! or written per byte) and queues control messages between blocks; [`BenchSink`] parses what
//! arrives, counting payload and passing control messages on. The test's logic holds the
//! [`Link`] to both.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Sleep;

use super::model::Plan;
use super::wire::{self, Control, Found, Kind, Parser, HEADER};
use crate::runtime::app::{AppSink, AppSource, SourceError, CHUNK};
use crate::runtime::Snapshot;

/// Control events kept waiting for the test's logic at most; a peer that sends more control
/// messages than that in a burst breaks the protocol.
const EVENT_QUEUE: usize = 1024;

/// How far behind its schedule a paced sender may catch up at full speed.
const PACE_CREDIT: Duration = Duration::from_millis(100);

/// What the test's logic tells the source.
#[derive(Debug)]
pub(super) enum Out {
    /// Send this control message (between DATA blocks).
    Msg(Bytes),
    /// Start sending DATA as planned, then END.
    Start(Plan),
    /// End our direction once everything before has gone out.
    Close,
    /// End the test at once with this reason for the peer.
    Abort(String),
}

/// What the source and sink tell the test's logic.
#[derive(Debug)]
pub(super) enum Event {
    /// The first DATA header arrived.
    FirstData(Instant),
    /// A control message other than END arrived.
    Control(Control),
    /// The peer's END arrived, after `bytes` payload bytes.
    End {
        /// When.
        at: Instant,
        /// Payload bytes received in all.
        bytes: u64,
    },
    /// Our first DATA went out.
    SendStarted(Instant),
    /// Our END went out after `bytes` payload bytes.
    SendEnded {
        /// When.
        at: Instant,
        /// Payload bytes sent in all.
        bytes: u64,
    },
    /// The peer broke the bench protocol.
    Broken(String),
    /// The peer's direction ended (nothing more will arrive).
    Closed,
}

/// The DATA generator of a running send.
struct Generator {
    /// A full block, header included; every block is a clone of it.
    block: Bytes,
    /// The block being handed out and how far.
    cur: Bytes,
    pos: usize,
    deadline: Option<Instant>,
    /// Payload bytes still to send (with a byte count).
    left: Option<u64>,
    sent: Arc<AtomicU64>,
    total: u64,
    /// Pacing (`-b`): at most this many payload bits per second since `began` (0: none).
    rate: u64,
    began: Instant,
    /// Wakes the source when the next block is due.
    pace: Option<Pin<Box<Sleep>>>,
}

impl Generator {
    fn new(plan: &Plan, sent: Arc<AtomicU64>) -> Generator {
        let block = wire::data_block(plan.len);
        Generator {
            cur: Bytes::new(),
            pos: 0,
            deadline: plan.time.map(|t| Instant::now() + t),
            left: plan.bytes,
            block,
            sent,
            total: 0,
            rate: plan.rate,
            began: Instant::now(),
            pace: None,
        }
    }

    /// The next block may start now (with `-b`, once the payload so far is due at the
    /// rate); if not, the source is woken when it may.
    fn due(&mut self, cx: &mut Context<'_>) -> bool {
        if self.rate == 0 {
            return true;
        }
        let due = self.began + Duration::from_secs_f64(self.total as f64 * 8.0 / self.rate as f64);
        let now = Instant::now();
        if now >= due {
            // Time the sender could not use (a stall, a slow start) is not made up in a
            // burst beyond PACE_CREDIT: the schedule moves on.
            if let Some(late) = now.checked_duration_since(due + PACE_CREDIT) {
                self.began += late;
            }
            return true;
        }
        let sleep = self
            .pace
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due.into())));
        sleep.as_mut().reset(due.into());
        sleep.as_mut().poll(cx).is_ready()
    }

    /// Between blocks.
    fn at_boundary(&self) -> bool {
        self.pos == self.cur.len()
    }

    /// Starts the next block; false when the plan is complete.
    fn next_block(&mut self) -> bool {
        let len = self.block.len() - HEADER;
        self.cur = match self.left {
            Some(0) => return false,
            Some(left) if left < len as u64 => wire::data_block(left as usize),
            _ => {
                if self.deadline.is_some_and(|d| Instant::now() >= d) {
                    return false;
                }
                self.block.clone()
            }
        };
        if let Some(left) = self.left.as_mut() {
            *left -= (self.cur.len() - HEADER) as u64;
        }
        self.pos = 0;
        true
    }

    /// The next piece of the current block (at most [`CHUNK`] bytes).
    fn piece(&mut self) -> Bytes {
        let end = (self.pos + CHUNK).min(self.cur.len());
        let piece = self.cur.slice(self.pos..end);
        let payload = end - self.pos.max(HEADER).min(end);
        self.pos = end;
        self.total += payload as u64;
        self.sent.store(self.total, Ordering::Relaxed);
        piece
    }
}

/// The transport's byte source: control messages and generated DATA.
pub struct BenchSource {
    rx: mpsc::UnboundedReceiver<Out>,
    events: mpsc::Sender<Event>,
    gen: Option<Generator>,
    closing: bool,
    sent: Arc<AtomicU64>,
}

impl AppSource for BenchSource {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, SourceError>> {
        // Finish the block being handed out before anything else.
        if let Some(g) = self.gen.as_mut().filter(|g| !g.at_boundary()) {
            return Poll::Ready(Ok(Some(g.piece())));
        }
        while !self.closing {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Out::Msg(b))) => return Poll::Ready(Ok(Some(b))),
                Poll::Ready(Some(Out::Start(plan))) => {
                    self.gen = Some(Generator::new(&plan, self.sent.clone()));
                    let _ = self.events.try_send(Event::SendStarted(Instant::now()));
                }
                Poll::Ready(Some(Out::Abort(why))) => {
                    self.closing = true;
                    self.gen = None;
                    return Poll::Ready(Err(SourceError::Abort(why)));
                }
                Poll::Ready(Some(Out::Close)) | Poll::Ready(None) => self.closing = true,
                Poll::Pending => break,
            }
        }
        if let Some(g) = self.gen.as_mut() {
            if !g.due(cx) {
                return Poll::Pending;
            }
            if g.next_block() {
                return Poll::Ready(Ok(Some(g.piece())));
            }
            let bytes = g.total;
            self.gen = None;
            let _ = self.events.try_send(Event::SendEnded {
                at: Instant::now(),
                bytes,
            });
            return Poll::Ready(Ok(Some(wire::message(Kind::End, b""))));
        }
        if self.closing {
            return Poll::Ready(Ok(None));
        }
        Poll::Pending
    }
}

/// The transport's byte sink: parses and counts.
pub struct BenchSink {
    parser: Parser,
    events: mpsc::Sender<Event>,
    received: Arc<AtomicU64>,
    seen_data: bool,
    found: Vec<Found>,
    failed: bool,
}

impl BenchSink {
    /// Consumes received bytes. After a protocol error, everything is discarded (the test's
    /// logic has been told and ends the test).
    pub(super) fn feed(&mut self, chunk: &[u8]) {
        if self.failed {
            return;
        }
        // Only the first DATA header is news.
        let mut want_data = !self.seen_data;
        let found = &mut self.found;
        let r = self.parser.feed(chunk, |f| match f {
            Found::DataHeader if !want_data => {}
            Found::DataHeader => {
                want_data = false;
                found.push(f)
            }
            f => found.push(f),
        });
        self.received
            .store(self.parser.data_bytes, Ordering::Relaxed);
        let now = Instant::now();
        for f in self.found.drain(..) {
            let ev = match f {
                Found::DataHeader if self.seen_data => continue,
                Found::DataHeader => {
                    self.seen_data = true;
                    Event::FirstData(now)
                }
                Found::Control(c) if c.kind == Kind::End => Event::End {
                    at: now,
                    bytes: self.parser.data_bytes,
                },
                Found::Control(c) => Event::Control(c),
            };
            if self.events.capacity() <= 4 {
                self.failed = true;
                let why = "the peer sent too many control messages".to_owned();
                let _ = self.events.try_send(Event::Broken(why));
                return;
            }
            let _ = self.events.try_send(ev);
        }
        if let Err(e) = r {
            self.failed = true;
            let _ = self.events.try_send(Event::Broken(e.to_string()));
        }
    }
}

impl Drop for BenchSink {
    /// The transport drops its sink once the peer's direction has ended.
    fn drop(&mut self) {
        let _ = self.events.try_send(Event::Closed);
    }
}

impl AppSink for BenchSink {
    fn poll_write_chunk(
        &mut self,
        _cx: &mut Context<'_>,
        chunk: &mut Bytes,
    ) -> Poll<io::Result<()>> {
        self.feed(chunk);
        chunk.clear();
        Poll::Ready(Ok(()))
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Requests for a [`Snapshot`] of the transport.
pub type ProbeRx = mpsc::Receiver<oneshot::Sender<Snapshot>>;

/// The test logic's handle on its transport.
pub struct Link {
    out: mpsc::UnboundedSender<Out>,
    /// What the source and sink report.
    pub(super) events: mpsc::Receiver<Event>,
    probe: mpsc::Sender<oneshot::Sender<Snapshot>>,
    received: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
}

/// A source, a sink and a probe channel for a transport, and the test logic's link to them.
pub(super) fn link() -> (BenchSource, BenchSink, ProbeRx, Link) {
    let (out, rx) = mpsc::unbounded_channel();
    let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
    let (probe, probe_rx) = mpsc::channel(4);
    let received = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let source = BenchSource {
        rx,
        events: events_tx.clone(),
        gen: None,
        closing: false,
        sent: sent.clone(),
    };
    let sink = BenchSink {
        parser: Parser::default(),
        events: events_tx,
        received: received.clone(),
        seen_data: false,
        found: Vec::new(),
        failed: false,
    };
    let link = Link {
        out,
        events,
        probe,
        received,
        sent,
    };
    (source, sink, probe_rx, link)
}

impl Link {
    /// Queues a control message with a JSON body.
    pub(super) fn send_json(&self, kind: Kind, body: &impl serde::Serialize) {
        let body = serde_json::to_vec(body).expect("bench messages serialise");
        let _ = self.out.send(Out::Msg(wire::message(kind, &body)));
    }

    /// Starts sending DATA.
    pub(super) fn start(&self, plan: Plan) {
        let _ = self.out.send(Out::Start(plan));
    }

    /// Ends our direction after what was queued.
    pub(super) fn close(&self) {
        let _ = self.out.send(Out::Close);
    }

    /// Ends the test at once, telling the peer why.
    pub(super) fn abort(&self, why: impl Into<String>) {
        let _ = self.out.send(Out::Abort(why.into()));
    }

    /// Payload bytes received in order so far.
    pub(super) fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Payload bytes handed to the transport so far.
    pub(super) fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// The transport's flowpaths and counters now (empty if it has ended).
    pub(super) async fn snapshot(&self) -> Snapshot {
        let (tx, rx) = oneshot::channel();
        if self.probe.send(tx).await.is_err() {
            return Snapshot::default();
        }
        rx.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn drain(source: &mut BenchSource) -> Vec<u8> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        loop {
            match source.poll_chunk(&mut cx) {
                Poll::Ready(Ok(Some(b))) => {
                    assert!(b.len() <= CHUNK);
                    out.extend_from_slice(&b);
                }
                Poll::Ready(Ok(None)) => return out,
                Poll::Ready(Err(e)) => panic!("{e}"),
                Poll::Pending => panic!("pending"),
            }
        }
    }

    #[tokio::test]
    async fn a_byte_count_plan_round_trips_through_the_sink() {
        let (mut source, mut sink, _probe, mut link) = link();
        link.send_json(Kind::Params, &"hello");
        link.start(Plan {
            len: 300_000,
            time: None,
            bytes: Some(1_000_000),
            rate: 0,
        });
        link.close();
        let bytes = drain(&mut source);
        assert_eq!(link.sent(), 1_000_000);
        for c in bytes.chunks(70_001) {
            sink.feed(c);
        }
        assert_eq!(link.received(), 1_000_000);
        let mut kinds = Vec::new();
        while let Ok(ev) = link.events.try_recv() {
            kinds.push(match ev {
                Event::Control(c) => format!("{:?}", c.kind),
                Event::End { bytes, .. } => format!("End {bytes}"),
                Event::FirstData(_) => "FirstData".into(),
                Event::SendStarted(_) => "SendStarted".into(),
                Event::SendEnded { bytes, .. } => format!("SendEnded {bytes}"),
                Event::Broken(w) => w,
                Event::Closed => "Closed".into(),
            });
        }
        assert_eq!(
            kinds,
            [
                "SendStarted",
                "SendEnded 1000000",
                "Params",
                "FirstData",
                "End 1000000"
            ]
        );
    }

    /// `-b`: blocks go out no faster than the rate, counted from the start.
    #[tokio::test]
    async fn a_paced_plan_sends_at_its_rate() {
        let (mut source, _sink, _probe, link) = link();
        // 8 Mbit/s = 1 MB/s: 10 blocks of 20 kB take at least 0.18 s (the first goes at once).
        link.start(Plan {
            len: 20_000,
            time: None,
            bytes: Some(200_000),
            rate: 8_000_000,
        });
        link.close();
        let began = Instant::now();
        loop {
            match std::future::poll_fn(|cx| source.poll_chunk(cx)).await {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => panic!("{e}"),
            }
            // Never ahead of the schedule by more than the block under way.
            let due = began.elapsed().as_secs_f64() * 1e6 + 20_000.0;
            assert!(link.sent() as f64 <= due, "{} bytes early", link.sent());
        }
        assert_eq!(link.sent(), 200_000);
        assert!(began.elapsed() >= Duration::from_millis(180));
    }

    #[tokio::test]
    async fn garbage_from_the_peer_is_reported_once() {
        let (_source, mut sink, _probe, mut link) = link();
        sink.feed(&[42, 0, 0, 0, 0, 1, 2, 3]);
        sink.feed(&[1, 2, 3]);
        assert!(matches!(link.events.try_recv(), Ok(Event::Broken(_))));
        assert!(link.events.try_recv().is_err());
    }

    #[tokio::test]
    async fn a_flood_of_control_messages_breaks_the_test() {
        let (_source, mut sink, _probe, mut link) = link();
        let msg = wire::message(Kind::Report, b"{}");
        for _ in 0..EVENT_QUEUE + 10 {
            sink.feed(&msg);
        }
        let mut last = None;
        while let Ok(ev) = link.events.try_recv() {
            last = Some(ev);
        }
        assert!(matches!(last, Some(Event::Broken(_))));
    }
}
