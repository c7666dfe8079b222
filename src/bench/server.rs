//! The listener's side of a bench test: read the client's PARAMS, send and/or receive as
//! asked, report the receiver's figures every interval (REPORT) and at the end (RESULT).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use super::app::{Event, Link};
use super::cpu::CpuClock;
use super::expire;
use super::model::{Outcome, Params};
use super::progress::{Progress, Step};
use super::tcp;
use super::transport::run_with;
use super::wire::Kind;
use super::Error;
use crate::runtime::conn::apply_congestion;
use crate::runtime::{self, DriveError};

/// How long a client may take to send its PARAMS.
const PARAMS_WAIT: Duration = Duration::from_secs(10);

/// Serves one bench client to its end over `transport` (an msock session's driver), which
/// moves the [`Ends`](super::Ends) of `link`.
pub async fn serve(
    link: Link,
    transport: impl Future<Output = Result<runtime::Outcome, DriveError>>,
    peer: SocketAddr,
) -> Result<(), Error> {
    run_with(transport, test(link, peer)).await
}

/// Serves one bench client's plain TCP connection (magic already read) to its end; gives up
/// when nothing moves for `stall` (the session dead time).
pub async fn serve_tcp(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    stall: Duration,
) -> Result<(), Error> {
    apply_congestion(&stream);
    let (ends, link) = super::link();
    let transport = tcp::pump(stream, ends, stall, None);
    run_with(transport, test(link, peer)).await
}

/// Ends the test with `why` for the client; the error for the listener's log.
fn give_up(link: &Link, why: String) -> Error {
    link.abort(format!("the bench server gave up: {why}"));
    Error::ClientBroke(why)
}

async fn test(mut link: Link, peer: SocketAddr) -> Result<(), Error> {
    let cpu = CpuClock::start();
    let params = match tokio::time::timeout(PARAMS_WAIT, link.events.recv()).await {
        Ok(Some(Event::Control(c))) if c.kind == Kind::Params => {
            serde_json::from_slice::<Params>(&c.body)
                .map_err(|e| give_up(&link, format!("unreadable parameters ({e})")))?
        }
        Ok(Some(Event::Broken(why))) => return Err(give_up(&link, why)),
        Ok(Some(_)) => {
            return Err(give_up(
                &link,
                "the test did not start with its parameters".into(),
            ))
        }
        // The transport ended; its reason is the result.
        Ok(None) => match super::never().await {},
        Err(_) => {
            return Err(give_up(
                &link,
                format!(
                    "no parameters within {}",
                    humantime::format_duration(PARAMS_WAIT)
                ),
            ))
        }
    };
    params
        .check()
        .map_err(|why| give_up(&link, format!("bad parameters: {why}")))?;
    tracing::info!("bench client {peer}: {params:?}");
    if params.server_sends() {
        link.start(params.plan());
    }
    let mut p = Progress::new(
        params.client_sends(),
        params.server_sends(),
        params.interval(),
        params.omit(),
    );
    let deadline = expire(params.deadline());
    tokio::pin!(deadline);
    while !p.done() {
        tokio::select! {
            _ = &mut deadline => {
                let late = humantime::format_duration(params.deadline().unwrap_or_default());
                return Err(give_up(&link, format!("the test did not end within {late} of its start")));
            }
            ev = link.events.recv() => {
                let Some(ev) = ev else { match super::never().await {} };
                match p.on_event(&link, ev).await {
                    Ok(Step::Nothing) => {}
                    Ok(Step::Interval(iv)) => link.send_json(Kind::Report, &iv),
                    Ok(Step::Control(c)) if c.kind == Kind::Error => {
                        let why = String::from_utf8_lossy(&c.body);
                        return Err(Error::ClientGaveUp(why.into_owned()));
                    }
                    Ok(Step::Control(c)) => {
                        return Err(give_up(&link, format!("unexpected {:?} message", c.kind)))
                    }
                    Err(why) => return Err(give_up(&link, why)),
                }
            }
            _ = p.sleep() => {
                if let Some(iv) = p.on_wake(&link).await {
                    link.send_json(Kind::Report, &iv);
                }
            }
        }
    }
    let outcome = Outcome {
        receiver: p.received.take(),
        sender: p.sent.take(),
        cpu: cpu.elapsed(),
    };
    tracing::info!(
        "bench client {peer}: done, received {} and sent {} payload bytes{}",
        link.received(),
        link.sent(),
        outcome.receiver.as_ref().map_or(String::new(), |r| format!(
            ", goodput {:.1} Mbit/s",
            r.bits_per_second / 1e6
        ))
    );
    link.send_json(Kind::Result, &outcome);
    link.close();
    Ok(())
}
