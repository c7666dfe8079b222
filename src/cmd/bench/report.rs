//! Output: human lines and tables on stdout, or one JSON document (`--json`), or one JSON
//! object per line (`--json-stream`), with iperf3's key names where they apply.

use std::io::Write;
use std::time::UNIX_EPOCH;

use comfy_table::{presets, CellAlignment, Table};
use serde_json::{json, Value};

use crate::bench::client::{Dir, Show};
use crate::bench::model::{Cpu, Interval, PathInterval, PathTotal, Side};
use crate::bench::run::{Direction, Run};

/// How results are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Lines and tables.
    Human,
    /// One JSON document at the end.
    Json,
    /// One JSON object per line as things happen.
    JsonStream,
}

/// Where results go (stdout).
pub struct Output {
    /// How.
    pub mode: Mode,
    /// The name of the test under way, when a run has several (prefixes lines and events).
    pub test: Option<String>,
    /// Both directions are measured (lines say which).
    pub bidir: bool,
    /// The error has been reported already (it is reported once).
    failed: std::cell::Cell<bool>,
}

impl Output {
    /// Output in `mode`.
    pub fn new(mode: Mode) -> Self {
        Output {
            mode,
            test: None,
            bidir: false,
            failed: Default::default(),
        }
    }

    fn event(&self, event: &str, data: Value) {
        let mut v = json!({"event": event, "data": data});
        if let Some(t) = &self.test {
            v["test"] = json!(t);
        }
        println_flush(&v.to_string());
    }

    /// A test ended (`--json-stream`: its `end` object).
    pub fn end(&self, doc: &Value) {
        if self.mode == Mode::JsonStream {
            self.event("end", doc["end"].clone());
        }
    }

    /// The run failed (JSON modes: the error object or document, with `partial` results if
    /// any; human: nothing, the message goes to stderr). Only the first call counts.
    pub fn error(&self, message: &str, partial: Option<Value>) {
        if self.failed.replace(true) {
            return;
        }
        match self.mode {
            Mode::Human => {}
            Mode::Json => {
                let mut doc = partial.unwrap_or_else(|| json!({}));
                doc["error"] = json!(message);
                println_flush(&serde_json::to_string_pretty(&doc).unwrap_or_default());
            }
            Mode::JsonStream => self.event("error", json!(message)),
        }
    }

    fn prefix(&self) -> String {
        match &self.test {
            Some(t) => format!("[{t}] "),
            None => String::new(),
        }
    }
}

impl Show for Output {
    fn start(&self, run: &Run) {
        match self.mode {
            Mode::Human => {
                let params = &run.params;
                let what = format!(
                    "{} to {}: {}, {} blocks, {}",
                    run.protocol,
                    run.dest,
                    match (params.time_ms, params.bytes) {
                        (_, Some(b)) => bytes(b),
                        (Some(t), None) => format!("{:.1} s", t as f64 / 1000.0),
                        _ => String::new(),
                    },
                    bytes(params.len),
                    match (params.reverse, params.bidir) {
                        (true, _) => "the listener sends",
                        (_, true) => "both send",
                        _ => "we send",
                    }
                );
                println_flush(&format!("{}{what}", self.prefix()))
            }
            Mode::Json => {}
            Mode::JsonStream => self.event("start", start_json(run)),
        }
    }

    fn interval(&self, dir: Dir, iv: &Interval) {
        match self.mode {
            Mode::Human => {
                let arrow = match (self.bidir, dir) {
                    (false, _) => "",
                    (true, Dir::Forward) => "send ",
                    (true, Dir::Reverse) => "recv ",
                };
                let paths: Vec<String> = if iv.paths.len() > 1 {
                    iv.paths
                        .iter()
                        .map(|p| format!("path {} {}", p.id, rate(p.bits_per_second)))
                        .collect()
                } else {
                    Vec::new()
                };
                println_flush(&format!(
                    "{}{arrow}{:6.2}-{:<6.2} s {:>11} {:>13}{}{}",
                    self.prefix(),
                    iv.start,
                    iv.end,
                    bytes(iv.bytes),
                    rate(iv.bits_per_second),
                    if iv.omitted { " (omitted)" } else { "" },
                    if paths.is_empty() {
                        String::new()
                    } else {
                        format!("   {}", paths.join("  "))
                    }
                ));
            }
            Mode::Json => {}
            Mode::JsonStream => {
                let key = if dir == Dir::Reverse && self.bidir {
                    "sum_bidir_reverse"
                } else {
                    "sum"
                };
                let mut v = json!({"paths": interval_paths(iv)});
                v[key] = interval_sum(iv);
                self.event("interval", v);
            }
        }
    }
}

/// Prints a line on stdout now (a pipe reader sees each event as it happens).
pub(crate) fn println_flush(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `n` bytes, in binary units as iperf3 does.
pub fn bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut x = n as f64;
    let mut u = 0;
    while x >= 1024.0 && u < units.len() - 1 {
        x /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{x:.2} {}", units[u])
    }
}

/// A rate in bits per second, in decimal units as iperf3 does.
pub fn rate(bps: f64) -> String {
    let units = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"];
    let mut x = bps;
    let mut u = 0;
    while x >= 1000.0 && u < units.len() - 1 {
        x /= 1000.0;
        u += 1;
    }
    format!("{x:.2} {}", units[u])
}

fn ms(us: Option<u64>) -> String {
    us.map_or("-".into(), |us| format!("{:.2} ms", us as f64 / 1000.0))
}

fn host_port(addr: &str) -> (String, u16) {
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => (a.ip().to_string(), a.port()),
        Err(_) => (addr.to_owned(), 0),
    }
}

fn interval_sum(iv: &Interval) -> Value {
    json!({"start": iv.start, "end": iv.end, "seconds": iv.seconds, "bytes": iv.bytes,
        "bits_per_second": iv.bits_per_second, "omitted": iv.omitted, "sender": false})
}

fn interval_paths(iv: &Interval) -> Value {
    let one = |p: &PathInterval| {
        json!({"id": p.id, "start": iv.start, "end": iv.end, "seconds": iv.seconds,
            "bytes": p.bytes, "bits_per_second": p.bits_per_second, "rtt": p.rtt,
            "omitted": iv.omitted, "sender": false})
    };
    Value::Array(iv.paths.iter().map(one).collect())
}

fn side_sum(s: &Side) -> Value {
    json!({"start": s.start, "end": s.end, "seconds": s.seconds, "bytes": s.bytes,
        "bits_per_second": s.bits_per_second, "resent_bytes": s.resent_bytes,
        "sender": s.sender})
}

fn path_side(p: &PathTotal, s: &Side) -> Value {
    let mut v = json!({"start": s.start, "end": s.end, "seconds": s.seconds, "bytes": p.bytes,
        "bits_per_second": p.bits_per_second, "rtt": p.rtt, "sender": s.sender});
    if s.sender {
        v["resent_bytes"] = json!(p.resent_bytes);
    } else {
        v["received_bytes"] = json!(p.received_bytes);
    }
    v
}

/// Per flowpath of a direction: where it went (as the client sees it), and both ends'
/// figures.
fn end_paths(run: &Run, d: &Direction, client_sends: bool) -> Value {
    let ours = if client_sends { &d.sender } else { &d.receiver };
    let mut out = Vec::new();
    for p in &ours.paths {
        let (lh, lp) = host_port(&p.local);
        let (rh, rp) = host_port(&p.remote);
        let mut v = json!({"id": p.id, "iface": run.iface(p.id), "local_host": lh,
            "local_port": lp, "remote_host": rh, "remote_port": rp});
        if let Some(s) = d.sender.paths.iter().find(|x| x.id == p.id) {
            v["sender"] = path_side(s, &d.sender);
        }
        if let Some(r) = d.receiver.paths.iter().find(|x| x.id == p.id) {
            v["receiver"] = path_side(r, &d.receiver);
        }
        out.push(v);
    }
    Value::Array(out)
}

/// iperf3's `cpu_utilization_percent`.
fn cpu_json(local: &Cpu, remote: &Cpu) -> Value {
    let (lt, lu, ls) = local.percent();
    let (rt, ru, rs) = remote.percent();
    json!({"host_total": lt, "host_user": lu, "host_system": ls,
        "remote_total": rt, "remote_user": ru, "remote_system": rs})
}

/// The `start` object of a test.
pub(crate) fn start_json(run: &Run) -> Value {
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
    let connected: Vec<Value> = run
        .paths
        .iter()
        .map(|p| {
            json!({"id": p.id.0, "iface": p.iface, "local_host": p.local.ip().to_string(),
                "local_port": p.local.port(), "remote_host": p.peer.ip().to_string(),
                "remote_port": p.peer.port()})
        })
        .collect();
    json!({
        "version": format!("msock {}", env!("CARGO_PKG_VERSION")),
        "timestamp": {"time": humantime::format_rfc3339_seconds(run.started).to_string(), "timesecs": secs},
        "connecting_to": {"host": host, "port": port},
        "connected": connected,
        "test_start": {"protocol": run.protocol, "num_streams": 1, "blksize": p.len,
            "omit": p.omit_ms as f64 / 1000.0,
            "duration": p.time_ms.map_or(0.0, |t| t as f64 / 1000.0),
            "bytes": p.bytes.unwrap_or(0), "reverse": p.reverse as u8, "bidir": p.bidir as u8},
    })
}

/// The whole iperf3-style document of one test.
pub fn document(run: &Run) -> Value {
    let rev_main = run.params.reverse;
    let (main_iv, other_iv) = if rev_main {
        (&run.intervals_reverse, &run.intervals)
    } else {
        (&run.intervals, &run.intervals_reverse)
    };
    let n = main_iv
        .len()
        .max(if run.params.bidir { other_iv.len() } else { 0 });
    let mut intervals = Vec::new();
    for i in 0..n {
        let mut v = json!({});
        if let Some(iv) = main_iv.get(i) {
            v["paths"] = interval_paths(iv);
            v["sum"] = interval_sum(iv);
        }
        if run.params.bidir {
            if let Some(iv) = other_iv.get(i) {
                v["paths_bidir_reverse"] = interval_paths(iv);
                v["sum_bidir_reverse"] = interval_sum(iv);
            }
        }
        intervals.push(v);
    }
    let mut end = json!({"cpu_utilization_percent": cpu_json(&run.cpu_local, &run.cpu_remote)});
    if let Some(d) = run.main() {
        end["paths"] = end_paths(run, d, !rev_main);
        end["sum_sent"] = side_sum(&d.sender);
        end["sum_received"] = side_sum(&d.receiver);
    }
    if let Some(d) = run.bidir_reverse() {
        end["paths_bidir_reverse"] = end_paths(run, d, false);
        end["sum_sent_bidir_reverse"] = side_sum(&d.sender);
        end["sum_received_bidir_reverse"] = side_sum(&d.receiver);
    }
    json!({"start": start_json(run), "intervals": intervals, "end": end})
}

/// The per-flowpath table of one direction, with the total, and the sender's and receiver's
/// sums.
pub(crate) fn direction_table(run: &Run, d: &Direction, client_sends: bool) -> String {
    let ours = if client_sends { &d.sender } else { &d.receiver };
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header([
        "PATH", "IFACE", "LOCAL", "REMOTE", "SENT", "RE-SENT", "RECEIVED", "GOODPUT", "SHARE",
        "RTT",
    ]);
    let total = d.receiver.bytes.max(1) as f64;
    for p in &ours.paths {
        let s = d.sender.paths.iter().find(|x| x.id == p.id);
        let r = d.receiver.paths.iter().find(|x| x.id == p.id);
        let rb = r.map_or(0, |r| r.bytes);
        t.add_row([
            p.id.to_string(),
            run.iface(p.id).unwrap_or("-").to_owned(),
            p.local.clone(),
            p.remote.clone(),
            s.map_or("-".into(), |s| bytes(s.bytes)),
            s.map_or("-".into(), |s| bytes(s.resent_bytes)),
            r.map_or("-".into(), |r| bytes(r.bytes)),
            r.map_or("-".into(), |r| rate(r.bits_per_second)),
            format!("{:.1} %", rb as f64 / total * 100.0),
            ms(p.rtt),
        ]);
    }
    t.add_row([
        "total".to_owned(),
        String::new(),
        String::new(),
        String::new(),
        bytes(d.sender.bytes),
        bytes(d.sender.resent_bytes),
        bytes(d.receiver.bytes),
        rate(d.receiver.bits_per_second),
        "100 %".to_owned(),
        String::new(),
    ]);
    for i in 4..9 {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let line = |who: &str, s: &Side, what: &str| {
        format!(
            "{who:<9}{:>11} in {:.2} s = {:>13}  ({what})",
            bytes(s.bytes),
            s.seconds,
            rate(s.bits_per_second)
        )
    };
    format!(
        "{t}\n{}\n{}",
        line("sender", &d.sender, "handed to the transport"),
        line("receiver", &d.receiver, "delivered in order: the goodput")
    )
}

/// The human summary of one test.
pub(crate) fn human_end(run: &Run) -> String {
    let mut out = String::new();
    let both = run.params.bidir;
    if let Some(d) = &run.forward {
        if both {
            out.push_str("client -> listener:\n");
        }
        out.push_str(&direction_table(run, d, true));
        out.push('\n');
    }
    if let Some(d) = &run.reverse {
        if both {
            out.push_str("listener -> client:\n");
        }
        out.push_str(&direction_table(run, d, false));
        out.push('\n');
    }
    let cpu = |c: &Cpu| {
        let (t, u, s) = c.percent();
        format!("{t:.0} % (user {u:.0} %, system {s:.0} %)")
    };
    out.push_str(&format!(
        "CPU      here {}, listener {}",
        cpu(&run.cpu_local),
        cpu(&run.cpu_remote)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 30), "3.00 GiB");
        assert_eq!(rate(20.5e9), "20.50 Gbit/s");
        assert_eq!(rate(0.0), "0.00 bit/s");
    }
}
