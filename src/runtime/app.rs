//! The application side of a session: the traits for where the bytes to send come from
//! ([`AppSource`]) and where received bytes go ([`AppSink`]). Implementations: stdin/stdout
//! in `super::stdio`, channels in [`super::channel_io`].

use std::io;
use std::task::{Context, Poll};

use bytes::Bytes;

/// Largest chunk a source hands over; the session cuts it into DATA payloads without copying.
pub const CHUNK: usize = 256 * 1024;

/// Why a source gives no more bytes, other than the end of its input.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading the input failed (local).
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The application ended the session on purpose, with a reason for the peer (e.g. "the
    /// receiver's disk is full"): the driver sends it in ERROR(aborted) and ends with
    /// `DriveError::Aborted`.
    #[error("{0}")]
    Abort(String),
}

/// Where the bytes to send come from.
pub trait AppSource: Send {
    /// The next chunk (at most [`CHUNK`] bytes), `None` at end of input.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, SourceError>>;
}

/// Where received bytes go.
pub trait AppSink: Send {
    /// Consumes a prefix of `chunk` (all of it, for channel sinks).
    fn poll_write_chunk(&mut self, cx: &mut Context<'_>, chunk: &mut Bytes)
        -> Poll<io::Result<()>>;
    /// Pushes buffered bytes towards their destination.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl<S: AppSink + ?Sized> AppSink for &mut S {
    fn poll_write_chunk(
        &mut self,
        cx: &mut Context<'_>,
        chunk: &mut Bytes,
    ) -> Poll<io::Result<()>> {
        (**self).poll_write_chunk(cx, chunk)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (**self).poll_flush(cx)
    }
}

impl<S: AppSource + ?Sized> AppSource for &mut S {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, SourceError>> {
        (**self).poll_chunk(cx)
    }
}
