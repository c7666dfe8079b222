//! `msock send-file PATH... HOST:PORT`: offer files and folders to a `listen --save-dir`,
//! send what the receiver lacks, and report what was verified.

use std::time::Instant;

use serde_json::json;
use tokio::sync::mpsc;

use super::code::{sender_pairing, Coded};
use super::dial::{check_dest, dial};
use super::{ctrl_c, Failure};
use crate::cli::SendFileArgs;
use crate::proto::Service;
use crate::runtime::channel_io::channel_app;
use crate::runtime::{DriveError, Outcome, Snapshot};
use crate::transfer::manifest;
use crate::transfer::progress::{self, Display, Progress};
use crate::transfer::sender::{check_limits, send, SendError, Sent};
use crate::transfer::wire::Kind;

/// Runs `msock send-file`; `verbose` is the global -v count. With --json, one object is
/// printed on stdout whatever happens (but Ctrl-C).
pub async fn run(args: SendFileArgs, verbose: u8) -> Result<(), Failure> {
    let started = Instant::now();
    if let (Some(code), Some(_)) = (&args.code, &args.text) {
        return super::code::send_text(&args, code).await;
    }
    let dest = match &args.code {
        Some(_) => "the code's listener".to_owned(),
        None => args.dest().to_owned(),
    };
    let (outcome, snap, coded) = match transfer(&args, verbose).await {
        Ok(x) => x,
        Err(f) => (Err(f), Snapshot::default(), None),
    };
    let secs = started.elapsed().as_secs_f64();
    if args.json && !matches!(&outcome, Err(f) if f.kind == super::Exit::Interrupted) {
        print_json(&dest, &outcome, &snap, secs);
    }
    let sent = outcome?;
    if !args.quiet {
        eprintln!("msock: {}", summary(&sent, secs, &dest));
    }
    let failed: Vec<_> = sent.files.iter().filter(|f| !f.ok).collect();
    match failed.first() {
        None => {
            if let Some(c) = coded {
                c.forget();
            }
            Ok(())
        }
        Some(f) => Err(Failure::network(format!(
            "{} of {} files failed; first: {}: {}",
            failed.len(),
            sent.files.iter().filter(|f| f.kind != Kind::Dir).count(),
            f.path,
            f.error.as_deref().unwrap_or("no verdict from the receiver")
        ))),
    }
}

/// Checks the arguments, opens the session and runs the transfer. Err: it never started.
#[allow(clippy::type_complexity)]
async fn transfer(
    args: &SendFileArgs,
    verbose: u8,
) -> Result<(Result<Sent, Failure>, Snapshot, Option<Coded>), Failure> {
    let (paths, relay) = match &args.code {
        Some(code) => {
            // A mistyped code is the user's to fix before anything else.
            crate::proto::code::Code::parse(code).map_err(Failure::local)?;
            super::code::split_args(&args.args, false)
        }
        None => (args.paths(), None),
    };
    if paths.is_empty() || (args.code.is_none() && args.args.len() < 2) {
        return Err(Failure::local(
            "give the files to send and then HOST:PORT, e.g. msock send-file photo.jpg example.net:9000",
        ));
    }
    let mut dial_args = args.dial.clone();
    if args.code.is_none() {
        check_dest(args.dest())?;
    }
    super::apply_process_settings(&args.stream)?;
    let m = manifest::build(&paths, &args.name).map_err(Failure::local)?;
    // Our own limits, checked before connecting: never reported as the receiver's fault.
    check_limits(&m.offer).map_err(Failure::local)?;
    let progress = Progress::new(Display::choose(args.quiet, verbose > 0));
    for s in &m.skipped {
        progress.println(&format!("not sent: {s}"));
    }
    let coded = match &args.code {
        Some(code) => {
            let c = sender_pairing(code, relay.as_deref(), &mut dial_args, &args.stream).await?;
            Some(c)
        }
        None => None,
    };
    let dest = coded.as_ref().map_or(args.dest(), |c| c.dest.as_str());
    let (source, sink, mut w, mut r) = channel_app(16);
    let mut driver = dial(
        dest,
        &dial_args,
        &args.stream,
        Service::File,
        Some(source),
        Some(sink),
    )
    .await?;
    driver.set_interrupt(ctrl_c());
    let (probe_tx, probe_rx) = mpsc::channel(1);
    driver.set_probe(probe_rx);
    let transfer = async {
        let res = send(&mut w, &mut r, m, &progress).await;
        progress.finish();
        // Let the session end: read (and drop) anything left.
        while r.recv().await.is_some() {}
        res
    };
    let (res, (drive, snap), ()) = tokio::join!(
        transfer,
        driver.run_with_snapshot(),
        progress::ticker(&progress, probe_tx)
    );
    let outcome = judge(res, drive);
    match &outcome {
        Err(f) if f.kind == super::Exit::Interrupted => {
            // The bar keeps its last state on a line of its own; then how to go on.
            progress.abandon();
            if !args.quiet {
                let at = progress
                    .position()
                    .map_or(String::new(), |p| format!(" at {p}"));
                eprintln!(
                    "msock: interrupted{at}; the receiver keeps the partial files. To \
                     resume, run the same command again:\n  {}",
                    super::resume_hint::command_line()
                );
            }
        }
        _ => progress.clear(),
    }
    Ok((outcome, snap, coded))
}

/// Combines the transfer's and the session's results into one, blaming the right side.
fn judge(
    res: Result<Sent, SendError>,
    drive: Result<Outcome, DriveError>,
) -> Result<Sent, Failure> {
    match (res, drive) {
        (Ok(s), Ok(Outcome::Finished)) => Ok(s),
        (_, Ok(Outcome::Interrupted)) => Err(Failure::interrupted()),
        (Err(SendError::Local(e)), _) => Err(Failure::local(e)),
        (Err(e @ (SendError::Refused(_) | SendError::Conflict(_))), _) => Err(Failure::network(e)),
        (_, Err(e)) if !matches!(e, DriveError::Aborted(_)) => Err(Failure::network(e)),
        (Err(e), _) => Err(Failure::network(e)),
        (Ok(_), Ok(o)) => Err(Failure::network(format!("the session ended early ({o:?})"))),
        (Ok(_), Err(e)) => Err(Failure::network(e)),
    }
}

/// One line: files, bytes, time, rate, resumed and skipped.
fn summary(s: &Sent, secs: f64, dest: &str) -> String {
    let files = s.files.iter().filter(|f| f.kind != Kind::Dir);
    let sent: u64 = files.clone().map(|f| f.sent).sum();
    let resumed: u64 = files.clone().map(|f| f.resumed_from).sum();
    let n = files.clone().filter(|f| !f.skipped).count();
    let skipped = files.filter(|f| f.skipped).count();
    let mut line = format!(
        "sent {n} file{} ({}, {sent} bytes) to {dest} in {secs:.2} s, {}",
        if n == 1 { "" } else { "s" },
        progress::si_bytes(sent),
        progress::si_rate(sent, secs)
    );
    if resumed > 0 {
        line += &format!(", resumed from {resumed} bytes");
    }
    if skipped > 0 {
        line += &format!(
            ", {skipped} identical file{} skipped",
            if skipped == 1 { "" } else { "s" }
        );
    }
    line
}

/// `--json`: one object on stdout, also when the transfer failed.
fn print_json(dest: &str, outcome: &Result<Sent, Failure>, snap: &Snapshot, secs: f64) {
    let paths: Vec<_> = snap
        .paths
        .iter()
        .map(|p| {
            json!({"id": p.id.0, "local": p.local.to_string(), "remote": p.peer.to_string(),
                "iface": p.iface, "bytes_sent": p.stats.bytes_sent,
                "bytes_resent": p.stats.bytes_resent})
        })
        .collect();
    let mut doc = json!({"dest": dest, "seconds": secs, "paths": paths});
    match outcome {
        Ok(s) => {
            let files = s.files.iter().filter(|f| f.kind != Kind::Dir);
            let sent: u64 = files.clone().map(|f| f.sent).sum();
            doc["ok"] = json!(s.files.iter().all(|f| f.ok));
            doc["files"] = json!(s.files);
            doc["bytes"] = json!(files.clone().map(|f| f.size).sum::<u64>());
            doc["bytes_sent"] = json!(sent);
            doc["resumed_bytes"] = json!(files.clone().map(|f| f.resumed_from).sum::<u64>());
            doc["skipped_files"] = json!(files.filter(|f| f.skipped).count());
            doc["bytes_per_second"] = json!(sent as f64 / secs.max(1e-6));
            doc["bits_per_second"] = json!(sent as f64 * 8.0 / secs.max(1e-6));
        }
        Err(f) => {
            doc["ok"] = json!(false);
            doc["error"] = json!(f.message);
        }
    }
    println!("{doc}");
}
