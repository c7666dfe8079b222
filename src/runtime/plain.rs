//! Plain TCP mode: copy between the application and a TCP peer that does not speak msock
//! (`nc` talking to `msock listen`, or `msock connect --plain`). No mobility, no multipath, no
//! encryption: just what nc does, with the same half-close rules as a session.

use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::app::{AppSink, AppSource, SourceError};
use super::driver::{DriveError, Outcome, Totals};
use crate::proto::SessionError;

/// Copies `input` to `stream` and `stream` to `output` (after `initial`, bytes already read
/// from the peer) until both directions have ended.
pub async fn bridge<I: AppSource, O: AppSink>(
    stream: TcpStream,
    initial: Vec<u8>,
    mut input: Option<I>,
    mut output: Option<O>,
    idle: Option<Duration>,
    interrupt: impl Future<Output = ()>,
) -> (Result<Outcome, DriveError>, Totals) {
    let mut totals = Totals::default();
    super::conn::plain_tune(&stream);
    let (mut rd, mut wr) = stream.into_split();
    tokio::pin!(interrupt);
    totals.received += initial.len() as u64;
    if let Some(out) = output.as_mut() {
        if let Err(e) = write_all(out, Bytes::from(initial)).await {
            return (out_result(e), totals);
        }
    }
    let mut up_done = input.is_none();
    if up_done {
        let _ = wr.shutdown().await;
    }
    let mut down_done = false;
    let mut obuf = vec![0u8; 64 * 1024];
    let never = Duration::from_secs(365 * 24 * 3600);
    while !(up_done && down_done) {
        let sleep = tokio::time::sleep(idle.unwrap_or(never));
        tokio::select! {
            r = std::future::poll_fn(|cx| input.as_mut().expect("up open").poll_chunk(cx)), if !up_done => {
                match r {
                    Ok(None) => {
                        up_done = true;
                        let _ = wr.shutdown().await;
                    }
                    Ok(Some(chunk)) => {
                        if let Err(e) = wr.write_all(&chunk).await {
                            return (Err(DriveError::PathsLost(e.to_string())), totals);
                        }
                        totals.sent += chunk.len() as u64;
                    }
                    Err(SourceError::Io(e)) => return (Err(DriveError::Input(e)), totals),
                    Err(SourceError::Abort(why)) => return (Err(DriveError::Aborted(why)), totals),
                }
            }
            r = rd.read(&mut obuf), if !down_done => {
                match r {
                    Ok(0) => {
                        down_done = true;
                        if let Some(out) = output.as_mut() {
                            if let Err(e) = std::future::poll_fn(|cx| out.poll_flush(cx)).await {
                                return (out_result(e), totals);
                            }
                        }
                    }
                    Ok(n) => {
                        totals.received += n as u64;
                        if let Some(out) = output.as_mut() {
                            if let Err(e) = write_all(out, Bytes::copy_from_slice(&obuf[..n])).await {
                                return (out_result(e), totals);
                            }
                        }
                    }
                    Err(e) => return (Err(DriveError::PathsLost(e.to_string())), totals),
                }
            }
            _ = sleep => {
                let idle = idle.unwrap_or(never);
                return (Err(SessionError::IdleTimeout(idle).into()), totals);
            }
            _ = &mut interrupt => return (Ok(Outcome::Interrupted), totals),
        }
    }
    (Ok(Outcome::Finished), totals)
}

/// Hands all of `chunk` to `out`.
async fn write_all<O: AppSink>(out: &mut O, mut chunk: Bytes) -> io::Result<()> {
    while !chunk.is_empty() {
        std::future::poll_fn(|cx| out.poll_write_chunk(cx, &mut chunk)).await?;
    }
    Ok(())
}

fn out_result(e: io::Error) -> Result<Outcome, DriveError> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(Outcome::OutputClosed)
    } else {
        Err(DriveError::Output(e))
    }
}
