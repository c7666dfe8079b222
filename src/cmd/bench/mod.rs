//! `msock bench`: an iperf3-class throughput test with a per-flowpath breakdown.
//!
//! With HOST:PORT, the client runs one test against any `msock listen` (which serves bench
//! sessions besides its other duties, several at once with -k), and with --compare-tcp a
//! second one over one plain TCP connection to the same listener. Without, it starts a
//! listener of its own on loopback (on its own thread) and compares plain TCP, one msock
//! flowpath and msock striped over several loopback addresses (`builtin`).
//!
//! The test itself (its protocol, meters, both ends' logic and the plain TCP transport) is
//! the [`crate::bench`] domain. Here: the flags turned into test parameters, the transport
//! set up from them (`dial`), the results printed (`report`), a listener's bench clients
//! handed to the domain's server, and [`bench::Error`]s turned into exit codes.

mod builtin;
mod dial;
mod json;
mod out;
mod text;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use super::Failure;
use crate::bench::cpu::CpuClock;
use crate::bench::model::{self, Cpu, Interval, Params, MIN_INTERVAL_MS, VERSION};
use crate::bench::run::Run;
use crate::bench::{self, server, wire, Fault};
use crate::cli::{BenchArgs, StreamArgs};
use crate::proto::Service;
use crate::runtime::server::Accepted;
use crate::runtime::services::{Opening, Services};
use dial::Via;
use out::{Mode, Output};

/// What `-s` and `-c` say: the roles are not iperf3's.
const ROLES: &str = "msock bench is the client; run `msock listen -k PORT` on the server";

/// Runs `msock bench`.
pub async fn run(args: BenchArgs) -> Result<(), Failure> {
    if args.server {
        return Err(Failure::local(ROLES));
    }
    if let Some(host) = &args.client {
        let host = crate::proto::text::escape(host);
        return Err(Failure::local(format!(
            "{ROLES}, and give `msock bench {host}:PORT` here (no -c)"
        )));
    }
    if let Some(path) = &args.logfile {
        out::set_logfile(path)?;
    }
    let mode = if args.json {
        Mode::Json
    } else if args.json_stream {
        Mode::JsonStream
    } else {
        Mode::Human
    };
    let mut out = Output::new(mode);
    out.bidir = args.bidir;
    let result = async {
        check(&args)?;
        super::apply_process_settings(&args.stream)?;
        if let Some(w) = args.window {
            crate::runtime::conn::set_socket_buffer(w as usize);
        }
        match args.dest.clone() {
            Some(dest) => against(&dest, &args, &mut out).await,
            None => builtin::run(&args, &mut out).await,
        }
    }
    .await;
    if let Err(f) = &result {
        let message = if f.kind == super::Exit::Interrupted {
            "interrupted"
        } else {
            &f.message
        };
        out.error(message, None);
    }
    result
}

/// Registers the benchmark's server role with a listener's dispatch table: bench sessions,
/// and, with `plain_tcp`, plain TCP connections that begin with the bench magic (never on a
/// listener that requires a client key: they prove none). `args` are the listener's session
/// settings (a TCP client that lets nothing move for their dead time is given up).
pub fn offer(services: &mut Services<Result<(), Failure>>, args: &StreamArgs, plain_tcp: bool) {
    services.session(Service::Bench, |o: Opening| async move {
        serve(o.accept().await?).await
    });
    if !plain_tcp {
        return;
    }
    let dead_time = args.dead_time;
    services.raw(bench::TCP_MAGIC, move |stream, peer| async move {
        server::serve_tcp(stream, peer, dead_time)
            .await
            .map_err(|e| about(peer, e))
    });
}

/// Serves one benchmark client's session on a listener.
async fn serve(accepted: Accepted) -> Result<(), Failure> {
    let peer = accepted.peer();
    let (ends, link) = bench::link();
    let (mut driver, _registration) = accepted.into_driver(Some(ends.source), Some(ends.sink));
    driver.set_probe(ends.probe);
    let transport = async move { driver.run().await.0 };
    server::serve(link, transport, peer)
        .await
        .map_err(|e| about(peer, e))
}

/// A bench client's failure, for the listener's log.
fn about(peer: SocketAddr, e: bench::Error) -> Failure {
    let f = Failure::from(e);
    Failure {
        message: format!("bench client {peer}: {}", f.message),
        ..f
    }
}

/// A failed test as the command's exit: 1 for the peer's or the network's fault, 2 for the
/// user's or this machine's, 130 when interrupted.
impl From<bench::Error> for Failure {
    fn from(e: bench::Error) -> Self {
        match (&e, e.fault()) {
            (bench::Error::Interrupted, _) => Failure::interrupted(),
            (_, Fault::Peer) => Failure::network(e),
            (_, Fault::User | Fault::Local) => Failure::local(e),
        }
    }
}

/// Refuses flag values no test can run with (exit 2).
fn check(args: &BenchArgs) -> Result<(), Failure> {
    if args.len > wire::MAX_BLOCK {
        return Err(Failure::local(format!(
            "--len {} is too large: at most {} (16M)",
            args.len,
            wire::MAX_BLOCK
        )));
    }
    if args.window.is_some_and(|w| w > 1 << 30) {
        return Err(Failure::local("--window is at most 1G"));
    }
    if !args.interval.is_zero() && args.interval < Duration::from_millis(MIN_INTERVAL_MS) {
        return Err(Failure::local(format!(
            "--interval {} is too short: give 0 (no interval reports) or at least {MIN_INTERVAL_MS}ms",
            humantime::format_duration(args.interval)
        )));
    }
    if (args.time + args.omit).as_millis() > model::MAX_TIME_MS as u128
        || args.interval.as_millis() > model::MAX_TIME_MS as u128
    {
        return Err(Failure::local(
            "--time and --omit together, and --interval, must be at most a day",
        ));
    }
    Ok(())
}

/// The test parameters the flags ask for: sending for --omit and then `time` (as iperf3
/// does) unless -n.
fn params(args: &BenchArgs, time: Duration) -> Params {
    Params {
        version: VERSION,
        time_ms: args
            .bytes
            .is_none()
            .then(|| (time + args.omit).as_millis().max(1) as u64),
        bytes: args.bytes,
        len: args.len,
        interval_ms: args.interval.as_millis() as u64,
        omit_ms: args.omit.as_millis() as u64,
        reverse: args.reverse,
        bidir: args.bidir,
        rate: args.bitrate.unwrap_or(0),
    }
}

/// The goodput of a test: its streams' together, bits per second.
fn goodput(runs: &[Run]) -> f64 {
    runs.iter().map(Run::goodput).sum()
}

/// Runs a test of -P streams at once against `dest`, each over its own session (or TCP
/// connection), showing them on `out` as test `name`; returns each stream's results and our
/// CPU time over all of them. The first stream to fail ends the test.
async fn streams(
    dest: &str,
    args: &BenchArgs,
    via: &Via,
    params: &Params,
    out: &mut Output,
    name: Option<String>,
) -> Result<(Vec<Run>, Cpu), Failure> {
    let n = args.parallel.max(1) as usize;
    out.begin(name, n);
    let out = &*out;
    let cpu = CpuClock::start();
    let shows: Vec<_> = (1..=n).map(|s| out.stream(s)).collect();
    let tests = (shows.iter())
        .map(|show| Box::pin(dial::run_test(dest, args, via.clone(), params, show)))
        .collect();
    let runs = all(tests).await?;
    out.flush_intervals();
    Ok((runs, cpu.elapsed()))
}

/// Runs `tests` at once, until all have succeeded or one has failed.
async fn all<T, E, F: Future<Output = Result<T, E>>>(tests: Vec<Pin<Box<F>>>) -> Result<Vec<T>, E> {
    // Each test until it is done, and its result.
    type Slot<F, T> = (Option<Pin<Box<F>>>, Option<T>);
    let mut slots: Vec<Slot<F, T>> = tests.into_iter().map(|t| (Some(t), None)).collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (test, done) in &mut slots {
            let Some(t) = test else { continue };
            match t.as_mut().poll(cx) {
                Poll::Ready(Ok(v)) => {
                    *done = Some(v);
                    *test = None;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => waiting = true,
            }
        }
        if waiting {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    })
    .await?;
    Ok(slots.into_iter().filter_map(|(_, v)| v).collect())
}

/// The listener's own figures (--get-server-output): its intervals as receiver, its totals
/// and its CPU time.
fn server_text(runs: &[Run]) -> String {
    let mut lines = vec!["Server output (the listener's figures):".to_owned()];
    let n = runs.iter().map(|r| r.intervals.len()).max().unwrap_or(0);
    if n > 0 {
        lines.push(text::header(false));
    }
    for k in 0..n {
        let ivs: Vec<(usize, Interval)> = (runs.iter().enumerate())
            .filter_map(|(i, r)| {
                let mut iv = r.intervals.get(k)?.clone();
                iv.paths.iter_mut().for_each(|p| p.sender_tcp = None);
                Some((i + 1, iv))
            })
            .collect();
        let refs: Vec<(usize, &Interval)> = ivs.iter().map(|(s, iv)| (*s, iv)).collect();
        lines.extend(text::interval_rows(&refs, ""));
    }
    let fwd: Vec<_> = (runs.iter().enumerate())
        .filter_map(|(i, r)| Some((i + 1, r.forward.as_ref()?)))
        .collect();
    for (s, d) in fwd {
        lines.push(format!(
            "[{s:>3}] received {} in {:.2} s = {}",
            text::iperf_bytes(d.receiver.bytes),
            d.receiver.seconds,
            text::iperf_rate(d.receiver.bits_per_second)
        ));
    }
    let rev: Vec<_> = (runs.iter().enumerate())
        .filter_map(|(i, r)| Some((i + 1, r.reverse.as_ref()?)))
        .collect();
    for (s, d) in rev {
        lines.push(format!(
            "[{s:>3}] sent {} in {:.2} s = {}, {} retransmitted segments",
            text::iperf_bytes(d.sender.bytes),
            d.sender.seconds,
            text::iperf_rate(d.sender.bits_per_second),
            d.sender.retransmits
        ));
    }
    let (t, u, s) = json::remote_cpu(runs).percent();
    lines.push(format!(
        "CPU      listener {t:.0} % (user {u:.0} %, system {s:.0} %)"
    ));
    lines.join("\n")
}

/// A test against a listener, and with --compare-tcp one over plain TCP to it.
async fn against(dest: &str, args: &BenchArgs, out: &mut Output) -> Result<(), Failure> {
    let params = params(args, args.time);
    let name = args.compare_tcp.then(|| "msock".to_owned());
    let policy = super::dial::policy(&args.dial.policy);
    let (runs, cpu) = streams(dest, args, &Via::Session(policy), &params, out, name).await?;
    let mut doc = json::document(&runs, &cpu, false, args.window);
    if args.get_server_output {
        doc["server_output_json"] = json::server_output(&runs);
    }
    out.end(&doc);
    if out.mode == Mode::Human {
        out.say(&text::end(&runs, &cpu, false));
        if args.get_server_output {
            out.say(&server_text(&runs));
        }
    }
    if args.compare_tcp {
        let name = Some("tcp".to_owned());
        let (tcp, tcpu) = match streams(dest, args, &Via::Tcp, &params, out, name).await {
            Ok(r) => r,
            Err(f) => return Err(compare_failure(f, &doc, out)),
        };
        let ratio = ratio(goodput(&runs), goodput(&tcp));
        let mut tdoc = json::document(&tcp, &tcpu, false, args.window);
        tdoc["goodput_ratio"] = serde_json::json!(ratio);
        out.end(&tdoc);
        match out.mode {
            Mode::Human => {
                out.say(&text::end(&tcp, &tcpu, false));
                out.test = None;
                out.say(&format!(
                    "msock {} vs plain TCP {}: ratio {}",
                    text::rate(goodput(&runs)),
                    text::rate(goodput(&tcp)),
                    ratio.map_or("-".into(), |r| format!("{r:.2}"))
                ));
            }
            Mode::Json => doc["compare_tcp"] = tdoc,
            Mode::JsonStream => {}
        }
    }
    if out.mode == Mode::Json {
        out::line(&serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    Ok(())
}

/// The plain TCP leg failed after the msock test succeeded: say what to do, and keep the
/// msock figures in a --json document.
fn compare_failure(f: Failure, doc: &serde_json::Value, out: &Output) -> Failure {
    if f.kind == super::Exit::Interrupted {
        return f;
    }
    let message = format!(
        "the plain TCP comparison failed: {} (the listener must serve more than one client: start it with -k)",
        f.message
    );
    // With --json, the error document keeps what was measured (and is the only one).
    out.error(&message, Some(doc.clone()));
    Failure {
        kind: f.kind,
        message,
    }
}

/// `a / b`, if `b` is not zero.
fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(flags: &[&str]) -> BenchArgs {
        let mut all = vec!["msock", "bench"];
        all.extend_from_slice(flags);
        match crate::cli::Cli::parse_from(all).command {
            crate::cli::Command::Bench(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn omit_comes_on_top_of_time_and_bitrate_is_per_stream() {
        let a = args(&["-t", "3", "-O", "1", "-b", "1G", "-P", "4", "-l", "64K"]);
        let p = params(&a, a.time);
        // iperf3: -O 1 -t 3 sends for 4 s and measures 3.
        assert_eq!((p.time_ms, p.omit_ms), (Some(4000), 1000));
        assert_eq!((p.rate, p.len, a.parallel), (1_000_000_000, 64 << 10, 4));
        let a = args(&["-n", "1G"]);
        let p = params(&a, a.time);
        assert_eq!((p.time_ms, p.bytes, p.rate), (None, Some(1 << 30), 0));
        // -J is --json, -C is --congestion, -w the socket buffer.
        let a = args(&["-J", "-C", "cubic", "-w", "4M", "--wait", "3s"]);
        assert!(a.json);
        assert_eq!(a.stream.congestion.as_deref(), Some("cubic"));
        assert_eq!(
            (a.window, a.dial.wait),
            (Some(4 << 20), Duration::from_secs(3))
        );
    }
}
