//! The listener's side of a bench test: read the client's PARAMS, send and/or receive as
//! asked, report the receiver's figures every interval (REPORT) and at the end (RESULT).

use std::net::SocketAddr;
use std::time::Duration;

use super::app::{self, Event, Link};
use super::cpu::CpuClock;
use super::expire;
use super::model::{Outcome, Params};
use super::progress::{Progress, Step};
use super::tcp;
use super::transport::run_with;
use super::wire::Kind;
use crate::cli::StreamArgs;
use crate::cmd::Failure;
use crate::runtime::conn::apply_congestion;
use crate::runtime::server::Accepted;

/// How long a client may take to send its PARAMS.
const PARAMS_WAIT: Duration = Duration::from_secs(10);

/// Serves one bench client's msock session to its end.
pub async fn serve_session(accepted: Accepted) -> Result<(), Failure> {
    let peer = accepted.peer();
    let (source, sink, probe, link) = app::link();
    let (mut driver, _registration) = accepted.into_driver(Some(source), Some(sink));
    driver.set_probe(probe);
    let transport = async move { driver.run().await.0 };
    run_with(transport, serve(link, peer))
        .await
        .map_err(|f| about(peer, f))
}

/// Serves one bench client's plain TCP connection (magic already read) to its end; gives up
/// when nothing moves for the session dead time.
pub async fn serve_tcp(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    args: &StreamArgs,
) -> Result<(), Failure> {
    apply_congestion(&stream);
    let (source, sink, probe, link) = app::link();
    let transport = tcp::pump(stream, source, sink, probe, args.dead_time, None);
    run_with(transport, serve(link, peer))
        .await
        .map_err(|f| about(peer, f))
}

/// Says which client a failure is about (for the listener's log).
fn about(peer: SocketAddr, f: Failure) -> Failure {
    Failure {
        message: format!("bench client {peer}: {}", f.message),
        ..f
    }
}

/// Ends the test with `why` for the client; the error for the listener's log.
fn give_up(link: &Link, why: String) -> Failure {
    link.abort(format!("the bench server gave up: {why}"));
    Failure::network(why)
}

async fn serve(mut link: Link, peer: SocketAddr) -> Result<(), Failure> {
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
                        return Err(Failure::network(format!("it gave up: {why}")));
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
