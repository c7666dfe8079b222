//! The client's side of one bench test, over an msock session or a plain TCP connection:
//! send PARAMS, send and/or receive as asked, show intervals as they come (the listener's
//! REPORTs for data we send, our own for data we receive), and collect both ends' totals.

use std::time::SystemTime;

use super::app::{self, Link};
use super::cpu::CpuClock;
use super::expire;
use super::model::{Interval, Outcome, Params};
use super::progress::{Progress, Step};
use super::run::{Direction, Run};
use super::tcp;
use super::transport::run_with;
use super::wire::Kind;
use crate::cli::BenchArgs;
use crate::cmd::bench::report::{self, start_json, Dir, Output};
use crate::cmd::dial::dial_with_policy;
use crate::cmd::{ctrl_c, Failure};
use crate::proto::Service;
use crate::runtime::policy::Policy;

/// How a test reaches the listener.
pub enum Via {
    /// An msock session, its flowpaths chosen by this policy.
    Session(Policy),
    /// One plain TCP connection.
    Tcp,
}

/// Runs one test against `dest`.
pub async fn run_test(
    dest: &str,
    args: &BenchArgs,
    via: Via,
    params: &Params,
    out: &Output,
) -> Result<Run, Failure> {
    let (source, sink, probe, link) = app::link();
    match via {
        Via::Session(policy) => {
            let mut driver = dial_with_policy(
                dest,
                &args.dial,
                &args.stream,
                policy,
                Service::Bench,
                Some(source),
                Some(sink),
            )
            .await?;
            driver.set_probe(probe);
            driver.set_interrupt(ctrl_c());
            let transport = async move { driver.run().await.0 };
            run_with(transport, client(link, params, out, dest, "msock")).await
        }
        Via::Tcp => {
            let stream = tcp::connect(dest, &args.dial, &args.stream).await?;
            let stall = args.stream.dead_time;
            let transport = tcp::pump(stream, source, sink, probe, stall, Some(Box::pin(ctrl_c())));
            run_with(transport, client(link, params, out, dest, "TCP")).await
        }
    }
}

/// Ends the test because the listener broke the protocol.
fn give_up(link: &Link, why: String) -> Failure {
    link.abort(format!("the bench client gave up: {why}"));
    Failure::network(format!("the listener broke the bench protocol: {why}"))
}

async fn client(
    mut link: Link,
    params: &Params,
    out: &Output,
    dest: &str,
    protocol: &'static str,
) -> Result<Run, Failure> {
    let cpu = CpuClock::start();
    let mut run = Run {
        params: params.clone(),
        protocol,
        dest: dest.to_owned(),
        started: SystemTime::now(),
        intervals: Vec::new(),
        intervals_reverse: Vec::new(),
        forward: None,
        reverse: None,
        cpu_local: Default::default(),
        cpu_remote: Default::default(),
        paths: link.snapshot().await.paths,
    };
    let what = format!(
        "{protocol} to {dest}: {}, {} blocks, {}",
        match (params.time_ms, params.bytes) {
            (_, Some(b)) => report::bytes(b),
            (Some(t), None) => format!("{:.1} s", t as f64 / 1000.0),
            _ => String::new(),
        },
        report::bytes(params.len),
        match (params.reverse, params.bidir) {
            (true, _) => "the listener sends",
            (_, true) => "both send",
            _ => "we send",
        }
    );
    out.start(&start_json(&run), &what);
    link.send_json(Kind::Params, params);
    if params.client_sends() {
        link.start(params.plan());
    }
    let mut p = Progress::new(
        params.server_sends(),
        params.client_sends(),
        params.interval(),
        params.omit(),
    );
    let mut remote: Option<Outcome> = None;
    let deadline = expire(params.deadline());
    tokio::pin!(deadline);
    while !(p.done() && remote.is_some()) {
        tokio::select! {
            _ = &mut deadline => {
                let late = humantime::format_duration(params.deadline().unwrap_or_default());
                link.abort(format!("the bench client gave up: no results within {late}"));
                return Err(Failure::network(format!(
                    "the listener's data or results did not come within {late} of the start (is it stuck?)"
                )));
            }
            ev = link.events.recv() => {
                // The transport ended; its reason is the result.
                let Some(ev) = ev else { match super::never().await {} };
                match p.on_event(&link, ev).await {
                    Ok(Step::Nothing) => {}
                    Ok(Step::Interval(iv)) => {
                        out.interval(Dir::Reverse, &iv);
                        run.intervals_reverse.push(iv);
                    }
                    Ok(Step::Control(c)) => match c.kind {
                        Kind::Report if params.client_sends() => {
                            let iv: Interval = serde_json::from_slice(&c.body)
                                .map_err(|e| give_up(&link, format!("unreadable REPORT ({e})")))?;
                            out.interval(Dir::Forward, &iv);
                            run.intervals.push(iv);
                        }
                        Kind::Result if remote.is_none() => {
                            let o: Outcome = serde_json::from_slice(&c.body)
                                .map_err(|e| give_up(&link, format!("unreadable RESULT ({e})")))?;
                            if o.receiver.is_some() != params.client_sends()
                                || o.sender.is_some() != params.server_sends()
                            {
                                return Err(give_up(&link, "RESULT without the directions measured".into()));
                            }
                            remote = Some(o);
                        }
                        Kind::Error => {
                            let why = String::from_utf8_lossy(&c.body);
                            return Err(Failure::network(format!("the listener ended the test: {why}")));
                        }
                        k => return Err(give_up(&link, format!("unexpected {k:?} message"))),
                    },
                    Err(why) => return Err(give_up(&link, why)),
                }
            }
            _ = p.sleep() => {
                if let Some(iv) = p.on_wake(&link).await {
                    out.interval(Dir::Reverse, &iv);
                    run.intervals_reverse.push(iv);
                }
            }
        }
    }
    run.paths = link.snapshot().await.paths;
    link.close();
    let remote = remote.expect("the loop ends with the listener's results");
    run.cpu_local = cpu.elapsed();
    run.cpu_remote = remote.cpu;
    if let (Some(sender), Some(receiver)) = (p.sent.take(), remote.receiver) {
        run.forward = Some(Direction { sender, receiver });
    }
    if let (Some(sender), Some(receiver)) = (remote.sender, p.received.take()) {
        run.reverse = Some(Direction { sender, receiver });
    }
    Ok(run)
}
