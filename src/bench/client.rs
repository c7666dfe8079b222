//! The client's side of one bench test, over an msock session or a plain TCP connection:
//! send PARAMS, send and/or receive as asked, show intervals as they come (the listener's
//! REPORTs for data we send, our own for data we receive), and collect both ends' totals.

use std::collections::HashMap;
use std::future::Future;
use std::time::SystemTime;

use super::app::Link;
use super::checked;
use super::cpu::CpuClock;
use super::expire;
use super::model::{Interval, Outcome, Params, SenderTcp};
use super::progress::{Progress, Step};
use super::run::{Direction, Run};
use super::transport::run_with;
use super::wire::Kind;
use super::Error;
use crate::runtime::{self, DriveError, Snapshot};

/// Which way an interval's data went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Client → listener.
    Forward,
    /// Listener → client.
    Reverse,
}

/// What the client shows as a test goes (the command prints it).
pub trait Show {
    /// The test starts: `run` holds what was asked for, where to and over which flowpaths (no
    /// figures yet).
    fn start(&self, run: &Run);
    /// An interval of the data going `dir` ended.
    fn interval(&self, dir: Dir, iv: &Interval);
}

/// Runs one test against the listener at `dest` over `transport`, which moves the
/// [`Ends`](super::Ends) of `link`; `protocol` names the transport in the results ("msock"
/// or "TCP").
pub async fn run(
    link: Link,
    transport: impl Future<Output = Result<runtime::Outcome, DriveError>>,
    params: &Params,
    dest: &str,
    protocol: &'static str,
    show: &impl Show,
) -> Result<Run, Error> {
    run_with(transport, client(link, params, show, dest, protocol)).await
}

/// Ends the test because the listener broke the protocol.
fn give_up(link: &Link, why: String) -> Error {
    link.abort(format!("the bench client gave up: {why}"));
    Error::ListenerBroke(why)
}

async fn client(
    mut link: Link,
    params: &Params,
    show: &impl Show,
    dest: &str,
    protocol: &'static str,
) -> Result<Run, Error> {
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
    show.start(&run);
    let mut retrans = retransmits(&link.snapshot().await);
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
                let late = params.deadline().unwrap_or_default();
                let within = humantime::format_duration(late);
                link.abort(format!("the bench client gave up: no results within {within}"));
                return Err(Error::Late(late));
            }
            ev = link.events.recv() => {
                // The transport ended; its reason is the result.
                let Some(ev) = ev else { match super::never().await {} };
                match p.on_event(&link, ev).await {
                    Ok(Step::Nothing) => {}
                    Ok(Step::Interval(iv)) => {
                        show.interval(Dir::Reverse, &iv);
                        run.intervals_reverse.push(iv);
                    }
                    Ok(Step::Control(c)) => match c.kind {
                        Kind::Report if params.client_sends() => {
                            let iv: Interval = serde_json::from_slice(&c.body)
                                .map_err(|e| give_up(&link, format!("unreadable REPORT ({e})")))?;
                            let mut iv = checked::interval(iv)
                                .map_err(|why| give_up(&link, format!("implausible REPORT: {why}")))?;
                            annotate(&mut iv, &link.snapshot().await, &mut retrans);
                            show.interval(Dir::Forward, &iv);
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
                            remote = Some(checked_outcome(o)
                                .map_err(|why| give_up(&link, format!("implausible RESULT: {why}")))?);
                        }
                        Kind::Error => {
                            let why = String::from_utf8_lossy(&c.body);
                            return Err(Error::ListenerGaveUp(why.into_owned()));
                        }
                        k => return Err(give_up(&link, format!("unexpected {k:?} message"))),
                    },
                    Err(why) => return Err(give_up(&link, why)),
                }
            }
            _ = p.sleep() => {
                if let Some(iv) = p.on_wake(&link).await {
                    show.interval(Dir::Reverse, &iv);
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
        // (With --omit each end starts counting at its own moment: the totals differ.)
        if params.omit_ms == 0 {
            checked::received_at_most_sent(&receiver, &sender)
                .map_err(|why| Error::ListenerBroke(format!("implausible RESULT: {why}")))?;
        }
        run.forward = Some(Direction { sender, receiver });
    }
    if let (Some(sender), Some(receiver)) = (remote.sender, p.received.take()) {
        run.reverse = Some(Direction { sender, receiver });
    }
    Ok(run)
}

/// Segments retransmitted so far on each flowpath's current connection, by flowpath id.
fn retransmits(snap: &Snapshot) -> HashMap<u32, u64> {
    let each = snap.paths.iter();
    each.filter_map(|p| Some((p.id.0, p.kernel?.retransmits)))
        .collect()
}

/// Adds our kernel's figures as sender to the listener's interval: each flowpath's
/// retransmissions since the last interval (`last`, updated) and its congestion window.
fn annotate(iv: &mut Interval, snap: &Snapshot, last: &mut HashMap<u32, u64>) {
    for p in &mut iv.paths {
        let Some(k) = snap
            .paths
            .iter()
            .find(|x| x.id.0 == p.id)
            .and_then(|x| x.kernel)
        else {
            continue;
        };
        let before = last.insert(p.id, k.retransmits).unwrap_or(0);
        p.sender_tcp = Some(SenderTcp {
            // A new connection of the flowpath starts counting again.
            retransmits: k.retransmits.checked_sub(before).unwrap_or(k.retransmits),
            snd_cwnd: k.cwnd_bytes,
        });
    }
}

/// The listener's RESULT with every figure checked (see [`checked`]).
fn checked_outcome(o: Outcome) -> Result<Outcome, String> {
    Ok(Outcome {
        receiver: o.receiver.map(checked::side).transpose()?,
        sender: o.sender.map(checked::side).transpose()?,
        cpu: checked::cpu(o.cpu)?,
    })
}
