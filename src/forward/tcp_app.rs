//! A TCP connection as a session's application side: what the local program sends is read
//! straight into the session's chunks ([`TcpSource`]) and what the peer sends is written
//! straight to the socket ([`TcpSink`]), without a task or channel in between. Half-closes
//! pass through: end of our input closes the session's sending side (the driver does that), and
//! the end of the peer's stream (the driver drops the sink) shuts the socket's writing side.

use std::io;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use socket2::SockRef;
use tokio::net::TcpStream;

use crate::runtime::app::{AppSink, AppSource, SourceError, CHUNK};

/// Reads below this much free buffer get a fresh buffer (small reads share one allocation).
const MIN_READ: usize = 16 * 1024;

/// A forwarded TCP connection, split into the session's source and sink; [`TcpEnd`] keeps a
/// handle to close it the right way once the session is over.
pub fn split(stream: TcpStream) -> (TcpSource, TcpSink, TcpEnd) {
    crate::runtime::conn::plain_tune(&stream);
    let s = Arc::new(stream);
    (
        TcpSource {
            stream: s.clone(),
            buf: BytesMut::new(),
        },
        TcpSink { stream: s.clone() },
        TcpEnd(s),
    )
}

/// The bytes the local program sends, as the session's input.
pub struct TcpSource {
    stream: Arc<TcpStream>,
    /// Free space reads go into; each read's bytes are split off as one chunk.
    buf: BytesMut,
}

impl AppSource for TcpSource {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, SourceError>> {
        loop {
            ready!(self.stream.poll_read_ready(cx))?;
            if self.buf.capacity() < MIN_READ {
                self.buf = BytesMut::with_capacity(CHUNK);
            }
            match self.stream.try_read_buf(&mut self.buf) {
                Ok(0) => return Poll::Ready(Ok(None)),
                Ok(n) => return Poll::Ready(Ok(Some(self.buf.split_to(n).freeze()))),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Poll::Ready(Err(SourceError::Io(e))),
            }
        }
    }
}

/// Where the peer's bytes go: the local program. Dropping it (the driver does, at the end of
/// the peer's stream) shuts the connection's writing side, so the program reads end of file.
pub struct TcpSink {
    stream: Arc<TcpStream>,
}

impl AppSink for TcpSink {
    fn poll_write_chunk(
        &mut self,
        cx: &mut Context<'_>,
        chunk: &mut Bytes,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.stream.poll_write_ready(cx))?;
            match self.stream.try_write(chunk) {
                Ok(n) => {
                    chunk.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // The program closed its connection: it wants no more (as a closed pipe).
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                    return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Drop for TcpSink {
    fn drop(&mut self) {
        let _ = SockRef::from(&*self.stream).shutdown(std::net::Shutdown::Write);
    }
}

/// The last handle on a forwarded connection: closes it when the session is over.
pub struct TcpEnd(Arc<TcpStream>);

impl TcpEnd {
    /// Closes the connection; when the session failed, with a reset (after the end of file
    /// the sink sent when the driver dropped it), so that a program still sending gets an
    /// error instead of its bytes silently going nowhere.
    pub fn close(self, failed: bool) {
        if failed {
            let _ = SockRef::from(&*self.0).set_linger(Some(std::time::Duration::ZERO));
        }
    }
}
