//! A session's application side as channels, for commands whose application logic is ordinary
//! async code (file transfer, benchmark) rather than stdin/stdout: [`channel_app`] gives the
//! driver an [`AppSource`] and an [`AppSink`], and the command a [`ChannelWriter`] and a
//! [`ChannelReader`] to talk to the peer (separate, so that it can do both at once).

use std::io;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use super::app::{AppSink, AppSource, SourceError};

/// The driver's source: chunks sent on a channel (by a command, or the stdin thread); an
/// error ends it.
pub struct ChannelSource {
    rx: mpsc::Receiver<Result<Bytes, SourceError>>,
    done: bool,
}

impl ChannelSource {
    /// A source that yields what arrives on `rx`, until it closes or carries an error.
    pub fn new(rx: mpsc::Receiver<Result<Bytes, SourceError>>) -> Self {
        ChannelSource { rx, done: false }
    }
}

/// The driver's sink: received bytes go to the command.
pub struct ChannelSink {
    tx: PollSender<Bytes>,
}

/// The command's sending end: bytes to the peer.
pub struct ChannelWriter {
    tx: Option<mpsc::Sender<Result<Bytes, SourceError>>>,
}

/// The command's receiving end: the peer's bytes.
pub struct ChannelReader {
    rx: mpsc::Receiver<Bytes>,
    /// Received bytes not yet consumed by the command.
    buf: Bytes,
}

/// A source and sink for the driver, and the command's ends of both. `depth` chunks may wait
/// in each direction.
pub fn channel_app(depth: usize) -> (ChannelSource, ChannelSink, ChannelWriter, ChannelReader) {
    let (in_tx, in_rx) = mpsc::channel(depth);
    let (out_tx, out_rx) = mpsc::channel(depth);
    (
        ChannelSource::new(in_rx),
        ChannelSink {
            tx: PollSender::new(out_tx),
        },
        ChannelWriter { tx: Some(in_tx) },
        ChannelReader {
            rx: out_rx,
            buf: Bytes::new(),
        },
    )
}

/// The session ended before the peer's bytes that were asked for arrived.
fn ended() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "the session ended early")
}

impl ChannelWriter {
    /// Queues `b` for sending; waits while the session's send buffer is full. Fails once the
    /// session is over.
    pub async fn send(&mut self, b: Bytes) -> io::Result<()> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "sending side closed"))?;
        tx.send(Ok(b))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the session ended"))
    }

    /// Ends our sending side (the peer reads end of stream after what was sent).
    pub fn close(&mut self) {
        self.tx = None;
    }

    /// Ends the session at once, telling the peer `why`.
    pub async fn abort(&mut self, why: impl Into<String>) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(SourceError::Abort(why.into()))).await;
        }
    }
}

impl ChannelReader {
    /// The next received bytes (any amount), or None at the end of the peer's stream.
    pub async fn recv(&mut self) -> Option<Bytes> {
        if !self.buf.is_empty() {
            return Some(std::mem::take(&mut self.buf));
        }
        self.rx.recv().await
    }

    /// At most `max` received bytes, or None at the end of the peer's stream.
    pub async fn recv_up_to(&mut self, max: usize) -> Option<Bytes> {
        if self.buf.is_empty() {
            self.buf = self.rx.recv().await?;
        }
        let n = max.min(self.buf.len());
        Some(self.buf.split_to(n))
    }

    /// Exactly `n` received bytes; an error if the peer's stream ends first. Memory grows
    /// as the bytes arrive: `n` usually comes from the peer's length field, and a claim alone
    /// must not cost its size.
    pub async fn recv_exact(&mut self, n: usize) -> io::Result<Bytes> {
        if self.buf.len() >= n {
            return Ok(self.buf.split_to(n));
        }
        const UP_FRONT: usize = 64 << 10;
        let mut out = BytesMut::with_capacity(n.min(UP_FRONT));
        while out.len() < n {
            let b = self.recv_up_to(n - out.len()).await.ok_or_else(ended)?;
            out.extend_from_slice(&b);
        }
        Ok(out.freeze())
    }
}

impl AppSource for ChannelSource {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, SourceError>> {
        if self.done {
            return Poll::Ready(Ok(None));
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(b))) => Poll::Ready(Ok(Some(b))),
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                Poll::Ready(Err(e))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(Ok(None))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AppSink for ChannelSink {
    fn poll_write_chunk(
        &mut self,
        cx: &mut Context<'_>,
        chunk: &mut Bytes,
    ) -> Poll<io::Result<()>> {
        match self.tx.poll_reserve(cx) {
            Poll::Ready(Ok(())) => {
                let b = std::mem::take(chunk);
                // The receiver may be gone (the command finished reading): discard, as the
                // command said by dropping it that it wants nothing more.
                let _ = self.tx.send_item(b);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(_)) => {
                chunk.clear();
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
