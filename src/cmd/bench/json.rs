//! The JSON of a test, in iperf3 -J's schema: `start` (connecting_to, connected[],
//! test_start), `intervals[]` (streams[] and sum), `end` (streams[].sender/.receiver,
//! sum_sent, sum_received, cpu_utilization_percent). Each stream is one session (or TCP
//! connection) of `-P`; its `socket` is its number, from 1. What msock adds (flowpaths,
//! re-sent bytes, RTT per flowpath) is under a `msock` key, so that nothing of iperf3's means
//! something else here.

use std::time::UNIX_EPOCH;

use serde_json::{json, Value};

use crate::bench::model::{Cpu, Interval, PathTotal, Side};
use crate::bench::run::{Direction, Run};

/// A whole number of seconds as an integer (as iperf3 writes them), else a fraction.
fn secs_value(ms: u64) -> Value {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

fn host_port(addr: &str) -> (String, u16) {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => (a.ip().to_string(), a.port()),
        Err(_) => (addr.to_owned(), 0),
    }
}

/// Retransmitted segments and the largest congestion window of an interval, over its
/// flowpaths (None when we did not send it).
fn sender_tcp(iv: &Interval) -> Option<(u64, u64)> {
    let each = iv.paths.iter().filter_map(|p| p.sender_tcp);
    each.fold(None, |acc, k| {
        let (r, c) = acc.unwrap_or((0, 0));
        Some((r.saturating_add(k.retransmits), c.max(k.snd_cwnd)))
    })
}

/// `start.connected[]` entries of stream `socket`: one per flowpath.
pub(crate) fn connected(run: &Run, socket: usize) -> Vec<Value> {
    let each = run.paths.iter();
    each.map(|p| {
        json!({"socket": socket, "local_host": p.local.ip().to_string(),
            "local_port": p.local.port(), "remote_host": p.peer.ip().to_string(),
            "remote_port": p.peer.port(), "msock": {"path": p.id.0, "iface": p.iface}})
    })
    .collect()
}

/// The `start` object of a test of `runs` (its streams).
pub(crate) fn start(runs: &[Run], window: Option<u64>) -> Value {
    let Some(run) = runs.first() else {
        return json!({});
    };
    let p = &run.params;
    let (host, port) = match run.dest.rsplit_once(':') {
        Some((h, port)) => (
            h.trim_start_matches('[').trim_end_matches(']').to_owned(),
            port.parse::<u16>().unwrap_or(0),
        ),
        None => (run.dest.clone(), 0),
    };
    let secs = run
        .started
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let connected: Vec<Value> = (runs.iter().enumerate())
        .flat_map(|(i, r)| connected(r, i + 1))
        .collect();
    // iperf3's duration is the measured time, without --omit.
    let duration = p.time_ms.map_or(0, |t| t.saturating_sub(p.omit_ms));
    json!({
        "version": format!("msock {}", env!("CARGO_PKG_VERSION")),
        "timestamp": {"time": humantime::format_rfc3339_seconds(run.started).to_string(), "timesecs": secs},
        "connecting_to": {"host": host, "port": port},
        "connected": connected,
        "target_bitrate": p.rate,
        "sock_bufsize": window.unwrap_or(0),
        "test_start": {"protocol": run.protocol, "num_streams": runs.len(), "blksize": p.len,
            "omit": secs_value(p.omit_ms), "duration": secs_value(duration),
            "bytes": p.bytes.unwrap_or(0), "blocks": 0, "reverse": p.reverse as u8,
            "bidir": p.bidir as u8, "tos": 0, "target_bitrate": p.rate},
    })
}

/// One stream's interval (`intervals[].streams[]`); `sender`: we sent this data.
fn stream_interval(iv: &Interval, socket: usize, sender: bool) -> Value {
    let mut v = json!({"socket": socket, "start": iv.start, "end": iv.end,
        "seconds": iv.seconds, "bytes": iv.bytes, "bits_per_second": iv.bits_per_second,
        "omitted": iv.omitted, "sender": sender});
    if let Some((retr, cwnd)) = sender_tcp(iv) {
        v["retransmits"] = json!(retr);
        v["snd_cwnd"] = json!(cwnd);
    }
    if let Some(rtt) = iv.paths.iter().filter_map(|p| p.rtt).max() {
        v["rtt"] = json!(rtt);
    }
    v
}

/// The sum of the streams' intervals (`intervals[].sum`).
fn sum_interval(ivs: &[&Interval], sender: bool) -> Value {
    let n = ivs.len().max(1) as f64;
    let bytes: u64 = ivs.iter().fold(0u64, |a, i| a.saturating_add(i.bytes));
    let seconds = ivs.iter().map(|i| i.seconds).sum::<f64>() / n;
    let start = ivs.iter().map(|i| i.start).fold(f64::INFINITY, f64::min);
    let end = ivs.iter().map(|i| i.end).fold(0.0, f64::max);
    let mut v = json!({"start": if start.is_finite() { start } else { 0.0 }, "end": end,
        "seconds": seconds, "bytes": bytes,
        "bits_per_second": crate::cmd::bench::text::bps(bytes, seconds),
        "omitted": ivs.iter().any(|i| i.omitted), "sender": sender});
    let tcp: Vec<(u64, u64)> = ivs.iter().filter_map(|i| sender_tcp(i)).collect();
    if !tcp.is_empty() {
        v["retransmits"] = json!(tcp.iter().fold(0u64, |a, t| a.saturating_add(t.0)));
    }
    v
}

/// An interval's flowpaths, for the `msock` key.
fn interval_paths(iv: &Interval, socket: usize) -> Vec<Value> {
    let each = iv.paths.iter();
    each.map(|p| {
        let mut v = json!({"socket": socket, "id": p.id, "start": iv.start, "end": iv.end,
            "seconds": iv.seconds, "bytes": p.bytes, "bits_per_second": p.bits_per_second,
            "rtt": p.rtt, "omitted": iv.omitted});
        if let Some(k) = p.sender_tcp {
            v["retransmits"] = json!(k.retransmits);
            v["snd_cwnd"] = json!(k.snd_cwnd);
        }
        v
    })
    .collect()
}

/// One `intervals[]` entry: the k-th interval of each stream that has one, for the main
/// direction (`main`) and, with --bidir, the listener → client one (`back`).
pub(crate) fn interval(
    main: &[(usize, &Interval)],
    back: &[(usize, &Interval)],
    client_sends: bool,
) -> Value {
    let mut streams: Vec<Value> = main
        .iter()
        .map(|(s, iv)| stream_interval(iv, *s, client_sends))
        .collect();
    streams.extend(back.iter().map(|(s, iv)| stream_interval(iv, *s, false)));
    let mut paths: Vec<Value> = main
        .iter()
        .flat_map(|(s, iv)| interval_paths(iv, *s))
        .collect();
    let ivs: Vec<&Interval> = main.iter().map(|(_, iv)| *iv).collect();
    let mut v = json!({"streams": streams, "sum": sum_interval(&ivs, client_sends)});
    if !back.is_empty() {
        let ivs: Vec<&Interval> = back.iter().map(|(_, iv)| *iv).collect();
        v["sum_bidir_reverse"] = sum_interval(&ivs, false);
        let rev: Vec<Value> = back
            .iter()
            .flat_map(|(s, iv)| interval_paths(iv, *s))
            .collect();
        paths.extend(rev.into_iter().map(|mut p| {
            p["bidir_reverse"] = json!(true);
            p
        }));
    }
    v["msock"] = json!({"paths": paths});
    v
}

/// One end's totals of one stream (`end.streams[].sender` or `.receiver`); `local_sends`:
/// the client sent this direction (iperf3's `sender` flag says which end we are).
fn stream_side(s: &Side, socket: usize, local_sends: bool) -> Value {
    let mut v = json!({"socket": socket, "start": s.start, "end": s.end, "seconds": s.seconds,
        "bytes": s.bytes, "bits_per_second": s.bits_per_second, "sender": local_sends});
    if s.sender {
        v["retransmits"] = json!(s.retransmits);
    }
    v
}

/// `end.sum_sent` or `end.sum_received` of the streams' `sides`.
fn sum_side(sides: &[&Side], local_sends: bool, sender: bool) -> Value {
    let bytes: u64 = sides.iter().fold(0u64, |a, s| a.saturating_add(s.bytes));
    let seconds = sides.iter().map(|s| s.seconds).fold(0.0, f64::max);
    let start = sides.iter().map(|s| s.start).fold(f64::INFINITY, f64::min);
    let end = sides.iter().map(|s| s.end).fold(0.0, f64::max);
    let mut v = json!({"start": if start.is_finite() { start } else { 0.0 }, "end": end,
        "seconds": seconds, "bytes": bytes,
        "bits_per_second": crate::cmd::bench::text::bps(bytes, seconds), "sender": local_sends});
    if sender {
        v["retransmits"] = json!(sides
            .iter()
            .fold(0u64, |a, s| a.saturating_add(s.retransmits)));
    }
    v
}

fn path_side(p: &PathTotal, s: &Side) -> Value {
    let mut v = json!({"start": s.start, "end": s.end, "seconds": s.seconds, "bytes": p.bytes,
        "bits_per_second": p.bits_per_second, "rtt": p.rtt});
    if s.sender {
        v["resent_bytes"] = json!(p.resent_bytes);
        v["retransmits"] = json!(p.retransmits);
    } else {
        v["received_bytes"] = json!(p.received_bytes);
    }
    v
}

/// Per flowpath of a direction of stream `socket`: where it went (as the client sees it),
/// and both ends' figures.
fn end_paths(run: &Run, d: &Direction, client_sends: bool, socket: usize) -> Vec<Value> {
    let ours = if client_sends { &d.sender } else { &d.receiver };
    let mut out = Vec::new();
    for p in &ours.paths {
        let (lh, lp) = host_port(&p.local);
        let (rh, rp) = host_port(&p.remote);
        let mut v = json!({"socket": socket, "id": p.id, "iface": run.iface(p.id),
            "local_host": lh, "local_port": lp, "remote_host": rh, "remote_port": rp});
        if let Some(s) = d.sender.paths.iter().find(|x| x.id == p.id) {
            v["sender"] = path_side(s, &d.sender);
        }
        if let Some(r) = d.receiver.paths.iter().find(|x| x.id == p.id) {
            v["receiver"] = path_side(r, &d.receiver);
        }
        out.push(v);
    }
    out
}

/// iperf3's `cpu_utilization_percent`. `remote` None: both ends are this process (the
/// built-in run), whose figures are all in host_*.
pub(crate) fn cpu(local: &Cpu, remote: Option<&Cpu>) -> Value {
    let (lt, lu, ls) = local.percent();
    let (rt, ru, rs) = remote.map_or((0.0, 0.0, 0.0), Cpu::percent);
    json!({"host_total": lt, "host_user": lu, "host_system": ls,
        "remote_total": rt, "remote_user": ru, "remote_system": rs})
}

/// The listener's CPU time over a test of several streams: it served them at the same time,
/// so each stream's figure is the whole process's; the busiest is the one to show.
pub(crate) fn remote_cpu(runs: &[Run]) -> Cpu {
    let each = runs.iter().map(|r| r.cpu_remote);
    each.max_by(|a, b| a.percent().0.total_cmp(&b.percent().0))
        .unwrap_or_default()
}

/// The `end` object of the streams `runs`; `host`: our CPU time over all of them.
pub(crate) fn end(runs: &[Run], host: &Cpu, same_process: bool) -> Value {
    let remote = remote_cpu(runs);
    let mut end = json!({"cpu_utilization_percent": cpu(host, (!same_process).then_some(&remote))});
    let mut streams = Vec::new();
    let mut paths = Vec::new();
    let mut resent = 0u64;
    let mut directions = vec![(false, runs.iter().filter_map(Run::main).collect::<Vec<_>>())];
    if runs.iter().any(|r| r.params.bidir) {
        directions.push((true, runs.iter().filter_map(Run::bidir_reverse).collect()));
    }
    for (back, dirs) in directions {
        let client_sends = !back && runs.first().is_some_and(|r| !r.params.reverse);
        for (i, (run, d)) in runs.iter().zip(&dirs).enumerate() {
            streams.push(json!({
                "sender": stream_side(&d.sender, i + 1, client_sends),
                "receiver": stream_side(&d.receiver, i + 1, client_sends),
            }));
            let mut ps = end_paths(run, d, client_sends, i + 1);
            if back {
                for p in &mut ps {
                    p["bidir_reverse"] = json!(true);
                }
            }
            paths.extend(ps);
            resent = resent.saturating_add(d.sender.resent_bytes);
        }
        let senders: Vec<&Side> = dirs.iter().map(|d| &d.sender).collect();
        let receivers: Vec<&Side> = dirs.iter().map(|d| &d.receiver).collect();
        let suffix = if back { "_bidir_reverse" } else { "" };
        end[format!("sum_sent{suffix}")] = sum_side(&senders, client_sends, true);
        end[format!("sum_received{suffix}")] = sum_side(&receivers, client_sends, false);
    }
    end["streams"] = json!(streams);
    end["msock"] = json!({"paths": paths, "resent_bytes": resent,
        "cpu": if same_process { "both ends are this process: host_* counts both" } else { "host_*: this process, remote_*: the listener's" }});
    end
}

/// What the listener measured itself (`server_output_json`, with --get-server-output): its
/// intervals as receiver and its totals, per stream.
pub(crate) fn server_output(runs: &[Run]) -> Value {
    let mut intervals = Vec::new();
    let n = runs.iter().map(|r| r.intervals.len()).max().unwrap_or(0);
    for k in 0..n {
        let main: Vec<(usize, &Interval)> = (runs.iter().enumerate())
            .filter_map(|(i, r)| Some((i + 1, r.intervals.get(k)?)))
            .collect();
        let mut v = interval(&main, &[], false);
        // Its figures as receiver: there are no sender's kernel figures in them.
        for s in v["streams"].as_array_mut().into_iter().flatten() {
            if let Some(o) = s.as_object_mut() {
                o.remove("retransmits");
                o.remove("snd_cwnd");
            }
        }
        intervals.push(v);
    }
    let received: Vec<&Side> = runs
        .iter()
        .filter_map(|r| r.forward.as_ref())
        .map(|d| &d.receiver)
        .collect();
    let sent: Vec<&Side> = runs
        .iter()
        .filter_map(|r| r.reverse.as_ref())
        .map(|d| &d.sender)
        .collect();
    let mut end = json!({"cpu_utilization_percent": cpu(&remote_cpu(runs), None)});
    if !received.is_empty() {
        end["sum_received"] = sum_side(&received, false, false);
    }
    if !sent.is_empty() {
        end["sum_sent"] = sum_side(&sent, true, true);
    }
    json!({"intervals": intervals, "end": end})
}

/// The whole document of one test of `runs` (its streams; more than one with -P).
pub(crate) fn document(runs: &[Run], host: &Cpu, same_process: bool, window: Option<u64>) -> Value {
    let bidir = runs.iter().any(|r| r.params.bidir);
    let reverse = runs.iter().any(|r| r.params.reverse);
    let client_sends = !reverse;
    // The main direction's intervals are the listener's unless --reverse.
    fn main_of(r: &Run) -> &Vec<Interval> {
        if r.params.reverse {
            &r.intervals_reverse
        } else {
            &r.intervals
        }
    }
    let n = runs
        .iter()
        .map(|r| {
            main_of(r)
                .len()
                .max(if bidir { r.intervals_reverse.len() } else { 0 })
        })
        .max()
        .unwrap_or(0);
    let mut intervals = Vec::new();
    for k in 0..n {
        let main: Vec<(usize, &Interval)> = (runs.iter().enumerate())
            .filter_map(|(i, r)| Some((i + 1, main_of(r).get(k)?)))
            .collect();
        let back: Vec<(usize, &Interval)> = if bidir {
            (runs.iter().enumerate())
                .filter_map(|(i, r)| Some((i + 1, r.intervals_reverse.get(k)?)))
                .collect()
        } else {
            Vec::new()
        };
        intervals.push(interval(&main, &back, client_sends));
    }
    json!({"start": start(runs, window), "intervals": intervals, "end": end(runs, host, same_process)})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::model::{Params, PathInterval, SenderTcp, VERSION};
    use std::time::SystemTime;

    fn side(bytes: u64, seconds: f64, sender: bool, retransmits: u64) -> Side {
        Side {
            start: 0.0,
            end: seconds,
            seconds,
            bytes,
            bits_per_second: bytes as f64 * 8.0 / seconds,
            resent_bytes: 0,
            retransmits,
            sender,
            paths: Vec::new(),
        }
    }

    fn run(bytes: u64, seconds: f64, retr: u64, cpu: f64) -> Run {
        let iv = Interval {
            start: 0.0,
            end: 1.0,
            seconds: 1.0,
            bytes: bytes / 2,
            bits_per_second: (bytes / 2) as f64 * 8.0,
            omitted: false,
            paths: vec![PathInterval {
                id: 0,
                bytes: bytes / 2,
                bits_per_second: (bytes / 2) as f64 * 8.0,
                rtt: Some(100),
                sender_tcp: Some(SenderTcp {
                    retransmits: retr,
                    snd_cwnd: 1000,
                }),
            }],
        };
        Run {
            params: Params {
                version: VERSION,
                time_ms: Some(3000),
                bytes: None,
                len: 1000,
                interval_ms: 1000,
                omit_ms: 1000,
                reverse: false,
                bidir: false,
                rate: 5,
            },
            protocol: "msock",
            dest: "127.0.0.1:9".into(),
            started: SystemTime::now(),
            intervals: vec![iv],
            intervals_reverse: Vec::new(),
            forward: Some(Direction {
                sender: side(bytes + 10, seconds, true, retr),
                receiver: side(bytes, seconds, false, 0),
            }),
            reverse: None,
            cpu_local: Cpu::default(),
            cpu_remote: Cpu {
                user: cpu,
                system: 0.0,
                wall: 1.0,
            },
            paths: Vec::new(),
        }
    }

    #[test]
    fn streams_add_up_to_the_sums() {
        let runs = [run(1000, 2.0, 3, 0.5), run(3000, 4.0, 4, 0.7)];
        let host = Cpu {
            user: 1.0,
            system: 0.0,
            wall: 2.0,
        };
        let doc = document(&runs, &host, false, None);
        let end = &doc["end"];
        assert_eq!(end["sum_received"]["bytes"], 4000);
        assert_eq!(end["sum_sent"]["bytes"], 4020);
        assert_eq!(end["sum_sent"]["retransmits"], 7);
        // Over the longest stream's time, as iperf3.
        assert_eq!(end["sum_received"]["seconds"], 4.0);
        assert_eq!(end["sum_received"]["bits_per_second"], 8000.0);
        assert!(end["sum_received"].get("retransmits").is_none());
        assert_eq!(end["streams"][1]["sender"]["socket"], 2);
        // -O is not part of iperf3's duration.
        assert_eq!(doc["start"]["test_start"]["duration"], 2);
        assert_eq!(doc["start"]["test_start"]["omit"], 1);
        assert_eq!(doc["start"]["test_start"]["num_streams"], 2);
        let iv = &doc["intervals"][0];
        assert_eq!(iv["sum"]["bytes"], 2000);
        assert_eq!(iv["sum"]["retransmits"], 7);
        assert_eq!(iv["streams"][0]["snd_cwnd"], 1000);
        // The listener served both streams at once: its busiest figure, not their sum.
        let cpu = &end["cpu_utilization_percent"];
        assert_eq!(
            (cpu["host_total"].as_f64(), cpu["remote_total"].as_f64()),
            (Some(50.0), Some(70.0))
        );
        // Both ends in one process: one figure, not twice the same.
        let one = document(&runs, &host, true, None);
        assert_eq!(one["end"]["cpu_utilization_percent"]["remote_total"], 0.0);
    }
}
