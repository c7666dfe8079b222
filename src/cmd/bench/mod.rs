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
mod report;

use std::net::SocketAddr;
use std::time::Duration;

use super::Failure;
use crate::bench::model::{self, Params, MIN_INTERVAL_MS, VERSION};
use crate::bench::{self, server, wire, Fault};
use crate::cli::{BenchArgs, StreamArgs};
use crate::proto::Service;
use crate::runtime::server::Accepted;
use crate::runtime::services::{Opening, Services};
use dial::Via;
use report::{Mode, Output};

/// Runs `msock bench`.
pub async fn run(args: BenchArgs) -> Result<(), Failure> {
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
    if !args.interval.is_zero() && args.interval < Duration::from_millis(MIN_INTERVAL_MS) {
        return Err(Failure::local(format!(
            "--interval {} is too short: give 0 (no interval reports) or at least {MIN_INTERVAL_MS}ms",
            humantime::format_duration(args.interval)
        )));
    }
    if args.bytes.is_none() && args.omit >= args.time {
        return Err(Failure::local(format!(
            "--omit {} leaves nothing of --time {} to measure",
            humantime::format_duration(args.omit),
            humantime::format_duration(args.time)
        )));
    }
    if args.time.as_millis() > model::MAX_TIME_MS as u128
        || args.omit.as_millis() > model::MAX_TIME_MS as u128
        || args.interval.as_millis() > model::MAX_TIME_MS as u128
    {
        return Err(Failure::local(
            "--time, --omit and --interval must be at most a day",
        ));
    }
    Ok(())
}

/// The test parameters the flags ask for, sending for `time` unless -n.
fn params(args: &BenchArgs, time: Duration) -> Params {
    Params {
        version: VERSION,
        time_ms: args.bytes.is_none().then(|| time.as_millis().max(1) as u64),
        bytes: args.bytes,
        len: args.len,
        interval_ms: args.interval.as_millis() as u64,
        omit_ms: args.omit.as_millis() as u64,
        reverse: args.reverse,
        bidir: args.bidir,
    }
}

/// A test against a listener, and with --compare-tcp one over plain TCP to it.
async fn against(dest: &str, args: &BenchArgs, out: &mut Output) -> Result<(), Failure> {
    let params = params(args, args.time);
    if args.compare_tcp {
        out.test = Some("msock".into());
    }
    let policy = super::dial::policy(&args.dial.policy);
    let run = dial::run_test(dest, args, Via::Session(policy), &params, out).await?;
    let mut doc = report::document(&run);
    out.end(&doc);
    if out.mode == Mode::Human {
        println!("{}", report::human_end(&run));
    }
    if args.compare_tcp {
        out.test = Some("tcp".into());
        let tcp = match dial::run_test(dest, args, Via::Tcp, &params, out).await {
            Ok(tcp) => tcp,
            Err(f) => return Err(compare_failure(f, &doc, out)),
        };
        let ratio = ratio(run.goodput(), tcp.goodput());
        let mut tdoc = report::document(&tcp);
        tdoc["goodput_ratio"] = serde_json::json!(ratio);
        out.end(&tdoc);
        match out.mode {
            Mode::Human => {
                println!("{}", report::human_end(&tcp));
                println!(
                    "msock {} vs plain TCP {}: ratio {}",
                    report::rate(run.goodput()),
                    report::rate(tcp.goodput()),
                    ratio.map_or("-".into(), |r| format!("{r:.2}"))
                );
            }
            Mode::Json => doc["compare_tcp"] = tdoc,
            Mode::JsonStream => {}
        }
    }
    if out.mode == Mode::Json {
        report::println_flush(&serde_json::to_string_pretty(&doc).unwrap_or_default());
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
