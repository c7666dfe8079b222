//! Plain TCP mode: copy between the application and a TCP peer that does not speak msock
//! (`nc` talking to `msock listen`, or `msock connect --plain`). No mobility, no multipath, no
//! encryption: just what nc does, with the same half-close rules as a session.

use std::future::Future;
use std::io;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::driver::{DriveError, Outcome, Totals};
use crate::proto::SessionError;

/// Copies `input` to `stream` and `stream` to `output` (after `initial`, bytes already read
/// from the peer) until both directions have ended.
pub async fn bridge<R, W>(
    stream: TcpStream,
    initial: Vec<u8>,
    mut input: Option<R>,
    mut output: Option<W>,
    idle: Option<Duration>,
    interrupt: impl Future<Output = ()>,
) -> (Result<Outcome, DriveError>, Totals)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut totals = Totals::default();
    let (mut rd, mut wr) = stream.into_split();
    tokio::pin!(interrupt);
    if let Some(out) = output.as_mut() {
        if let Err(e) = out.write_all(&initial).await {
            return (out_result(e), totals);
        }
    }
    totals.received += initial.len() as u64;
    let mut up_done = input.is_none();
    if up_done {
        let _ = wr.shutdown().await;
    }
    let mut down_done = false;
    let mut ibuf = vec![0u8; 64 * 1024];
    let mut obuf = vec![0u8; 64 * 1024];
    let never = Duration::from_secs(365 * 24 * 3600);
    while !(up_done && down_done) {
        let sleep = tokio::time::sleep(idle.unwrap_or(never));
        tokio::select! {
            r = async { input.as_mut().expect("up open").read(&mut ibuf).await }, if !up_done => {
                match r {
                    Ok(0) => {
                        up_done = true;
                        let _ = wr.shutdown().await;
                    }
                    Ok(n) => {
                        if let Err(e) = wr.write_all(&ibuf[..n]).await {
                            return (Err(DriveError::PathsLost(e.to_string())), totals);
                        }
                        totals.sent += n as u64;
                    }
                    Err(e) => return (Err(DriveError::Input(e)), totals),
                }
            }
            r = rd.read(&mut obuf), if !down_done => {
                match r {
                    Ok(0) => {
                        down_done = true;
                        if let Some(out) = output.as_mut() {
                            if let Err(e) = out.flush().await {
                                return (out_result(e), totals);
                            }
                        }
                    }
                    Ok(n) => {
                        totals.received += n as u64;
                        if let Some(out) = output.as_mut() {
                            if let Err(e) = out.write_all(&obuf[..n]).await {
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

fn out_result(e: io::Error) -> Result<Outcome, DriveError> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(Outcome::OutputClosed)
    } else {
        Err(DriveError::Output(e))
    }
}
