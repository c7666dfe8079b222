//! The application side: input chunks into the session, received bytes to the output.

use std::io;
use std::task::{Context, Poll};

use super::{DriveError, Driver, SOCKET_READ};
use crate::runtime::app::{AppSink, AppSource, SourceError};

impl<I: AppSource, O: AppSink> Driver<I, O> {
    pub(super) fn poll_app_in(&mut self, cx: &mut Context<'_>) -> Result<bool, DriveError> {
        let mut progress = false;
        loop {
            if let Some(chunk) = self.in_chunk.as_mut() {
                // Shared, not copied: the chunk's allocation stays until the peer has it.
                let n = self.session.write_bytes(chunk);
                if n == 0 {
                    return Ok(progress);
                }
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
                Poll::Ready(Err(SourceError::Io(e))) => return Err(DriveError::Input(e)),
                Poll::Ready(Err(SourceError::Abort(why))) => return Err(DriveError::Aborted(why)),
                Poll::Pending => return Ok(progress),
            }
        }
    }

    pub(super) fn poll_app_out(&mut self, cx: &mut Context<'_>) -> io::Result<bool> {
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
                    // Dropping the output tells a channel reader the stream ended.
                    self.app_out = None;
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
}
