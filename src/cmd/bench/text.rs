//! The human output, as iperf3 prints it: a `[ ID] Interval Transfer Bitrate Retr Cwnd`
//! header over one row per stream and interval (a `[SUM]` row with -P), and at the end a
//! sender and a receiver row per stream; then msock's own table of flowpaths (`[1.0]` is
//! stream 1's flowpath 0).

use comfy_table::{presets, CellAlignment, Table};

use crate::bench::model::{Cpu, Interval, Side};
use crate::bench::run::{Direction, Run};

/// Bits per second of `bytes` over `seconds` (0 for no time).
pub(crate) fn bps(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 * 8.0 / seconds
    } else {
        0.0
    }
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

/// A rate in bits per second, in decimal units.
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

/// Three significant digits, as iperf3's unit_snprintf.
fn sig3(x: f64) -> String {
    if x < 9.995 {
        format!("{x:.2}")
    } else if x < 99.95 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

/// Bytes as iperf3 writes them: "105 MBytes" (powers of 1024).
pub(crate) fn iperf_bytes(n: u64) -> String {
    let units = ["Bytes", "KBytes", "MBytes", "GBytes", "TBytes"];
    let (mut x, mut u) = (n as f64, 0);
    while x >= 1024.0 && u < units.len() - 1 {
        x /= 1024.0;
        u += 1;
    }
    format!("{} {}", sig3(x), units[u])
}

/// A rate as iperf3 writes it: "1.70 Gbits/sec" (powers of 1000).
pub(crate) fn iperf_rate(bps: f64) -> String {
    let units = [
        "bits/sec",
        "Kbits/sec",
        "Mbits/sec",
        "Gbits/sec",
        "Tbits/sec",
    ];
    let (mut x, mut u) = (bps, 0);
    while x >= 1000.0 && u < units.len() - 1 {
        x /= 1000.0;
        u += 1;
    }
    format!("{} {}", sig3(x), units[u])
}

fn ms(us: Option<u64>) -> String {
    us.map_or("-".into(), |us| format!("{:.2} ms", us as f64 / 1000.0))
}

/// The header over the interval rows (`retr`: we send, so Retr and Cwnd are ours).
pub(crate) fn header(retr: bool) -> String {
    let tail = if retr { "         Retr  Cwnd" } else { "" };
    format!("[ ID] Interval           Transfer     Bitrate{tail}")
}

/// A row: `id` is "  1", "SUM" or "1.0".
fn row(
    id: &str,
    start: f64,
    end: f64,
    bytes: u64,
    bits: f64,
    tcp: Option<(u64, Option<u64>)>,
    tail: &str,
) -> String {
    let retr = match tcp {
        Some((r, Some(c))) => format!("  {r:>4}   {:>11}", iperf_bytes(c)),
        Some((r, None)) => format!("  {r:>4}   {:>11}", ""),
        None => String::new(),
    };
    format!(
        "[{id:>3}] {start:6.2}-{end:<6.2} sec  {:>11}  {:>15}{retr}{tail}",
        iperf_bytes(bytes),
        iperf_rate(bits)
    )
}

/// Retransmitted segments and the largest congestion window of an interval, over its
/// flowpaths, if we sent it.
fn tcp_of(iv: &Interval) -> Option<(u64, u64)> {
    let each = iv.paths.iter().filter_map(|p| p.sender_tcp);
    each.fold(None, |acc, k| {
        let (r, c) = acc.unwrap_or((0, 0));
        Some((r.saturating_add(k.retransmits), c.max(k.snd_cwnd)))
    })
}

/// The rows of one interval of every stream (`(stream, interval)`), flowpath rows under a
/// stream that has several, and a SUM row with more than one stream; `tag` marks the
/// direction with --bidir.
pub(crate) fn interval_rows(ivs: &[(usize, &Interval)], tag: &str) -> Vec<String> {
    let omitted = |iv: &Interval| if iv.omitted { "  (omitted)" } else { "" };
    let mut out = Vec::new();
    for (s, iv) in ivs {
        let tcp = tcp_of(iv).map(|(r, c)| (r, Some(c)));
        out.push(row(
            &format!("{s:>3}"),
            iv.start,
            iv.end,
            iv.bytes,
            iv.bits_per_second,
            tcp,
            &format!("{tag}{}", omitted(iv)),
        ));
        if iv.paths.len() > 1 {
            for p in &iv.paths {
                let tcp = p.sender_tcp.map(|k| (k.retransmits, Some(k.snd_cwnd)));
                let rtt = format!("  rtt {}{tag}", ms(p.rtt));
                out.push(row(
                    &format!("{s}.{}", p.id),
                    iv.start,
                    iv.end,
                    p.bytes,
                    p.bits_per_second,
                    tcp,
                    &rtt,
                ));
            }
        }
    }
    if ivs.len() > 1 {
        let bytes: u64 = ivs.iter().fold(0u64, |a, (_, i)| a.saturating_add(i.bytes));
        let bits: f64 = ivs.iter().map(|(_, i)| i.bits_per_second).sum();
        let start = ivs
            .iter()
            .map(|(_, i)| i.start)
            .fold(f64::INFINITY, f64::min);
        let end = ivs.iter().map(|(_, i)| i.end).fold(0.0, f64::max);
        let retr: Option<u64> = ivs
            .iter()
            .filter_map(|(_, i)| tcp_of(i))
            .map(|t| t.0)
            .reduce(u64::saturating_add);
        let omitted = if ivs.iter().any(|(_, i)| i.omitted) {
            "  (omitted)"
        } else {
            ""
        };
        out.push(row(
            "SUM",
            start,
            end,
            bytes,
            bits,
            retr.map(|r| (r, None)),
            &format!("{tag}{omitted}"),
        ));
        out.push("- - - - - - - - - - - - - - - - - - - - - - - - -".into());
    }
    out
}

/// The end rows: per stream a sender and a receiver row, then the SUM rows with several
/// streams; `dirs` holds each stream's direction.
pub(crate) fn end_rows(dirs: &[(usize, &Direction)], tag: &str) -> Vec<String> {
    let side_row = |id: &str, s: &Side, who: &str| {
        let retr = s.sender.then_some((s.retransmits, None));
        // A receiver has no Retr: its column stays empty.
        let blank = if s.sender { "" } else { "                    " };
        let tail = format!("{blank}  {who}{tag}");
        row(id, s.start, s.end, s.bytes, s.bits_per_second, retr, &tail)
    };
    let mut out = Vec::new();
    if dirs.len() <= 1 {
        // (With several streams the last interval rows end with it.)
        out.push("- - - - - - - - - - - - - - - - - - - - - - - - -".to_owned());
    }
    out.push("[ ID] Interval           Transfer     Bitrate         Retr".to_owned());
    for (s, d) in dirs {
        out.push(side_row(&format!("{s:>3}"), &d.sender, "sender"));
        out.push(side_row(&format!("{s:>3}"), &d.receiver, "receiver"));
    }
    if dirs.len() > 1 {
        let sum = |f: &dyn Fn(&Direction) -> &Side, sender: bool| {
            let sides: Vec<&Side> = dirs.iter().map(|(_, d)| f(d)).collect();
            let bytes: u64 = sides.iter().fold(0u64, |a, s| a.saturating_add(s.bytes));
            let seconds = sides.iter().map(|s| s.seconds).fold(0.0, f64::max);
            let start = sides.iter().map(|s| s.start).fold(f64::INFINITY, f64::min);
            let end = sides.iter().map(|s| s.end).fold(0.0, f64::max);
            Side {
                start: if start.is_finite() { start } else { 0.0 },
                end,
                seconds,
                bytes,
                bits_per_second: bps(bytes, seconds),
                resent_bytes: 0,
                retransmits: sides.iter().fold(0, |a, s| a.saturating_add(s.retransmits)),
                sender,
                paths: Vec::new(),
            }
        };
        out.push(side_row("SUM", &sum(&|d| &d.sender, true), "sender"));
        out.push(side_row("SUM", &sum(&|d| &d.receiver, false), "receiver"));
    }
    out
}

/// msock's table of flowpaths of one direction of stream `stream`, with its total.
///
/// SENT: payload bytes the sender sent on the flowpath for the first time; RE-SENT: bytes it
/// sent on it again (after they were first sent on any flowpath); RECEIVED: in-order payload
/// the receiver credits to the flowpath that first brought it. Per flowpath RECEIVED can
/// exceed SENT only by what it re-sent; the columns add up to the totals.
pub(crate) fn direction_table(
    run: &Run,
    d: &Direction,
    client_sends: bool,
    stream: usize,
) -> String {
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
            format!("{stream}.{}", p.id),
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
    t.to_string()
}

/// The CPU line: ours and the listener's, or (`remote` None) both ends in this process.
pub(crate) fn cpu_line(local: &Cpu, remote: Option<&Cpu>) -> String {
    let cpu = |c: &Cpu| {
        let (t, u, s) = c.percent();
        format!("{t:.0} % (user {u:.0} %, system {s:.0} %)")
    };
    match remote {
        Some(r) => format!("CPU      here {}, listener {}", cpu(local), cpu(r)),
        None => format!("CPU      both ends (one process) {}", cpu(local)),
    }
}

/// The human summary of one test of `runs` (its streams): iperf3's end rows, then, per
/// stream, msock's flowpath table, and the CPU line.
pub(crate) fn end(runs: &[Run], host: &Cpu, same_process: bool) -> String {
    let mut out = Vec::new();
    let bidir = runs.iter().any(|r| r.params.bidir);
    let reverse = runs.iter().any(|r| r.params.reverse);
    let fwd: Vec<(usize, &Direction)> = (runs.iter().enumerate())
        .filter_map(|(i, r)| Some((i + 1, r.forward.as_ref()?)))
        .collect();
    let rev: Vec<(usize, &Direction)> = (runs.iter().enumerate())
        .filter_map(|(i, r)| Some((i + 1, r.reverse.as_ref()?)))
        .collect();
    let (ftag, rtag) = if bidir {
        ("  [TX-C]", "  [RX-C]")
    } else {
        ("", "")
    };
    if !reverse {
        out.extend(end_rows(&fwd, ftag));
    }
    if reverse || bidir {
        out.extend(end_rows(&rev, rtag));
    }
    for (dirs, client_sends, what) in [
        (&fwd, true, "client -> listener"),
        (&rev, false, "listener -> client"),
    ] {
        for (s, d) in dirs.iter() {
            if bidir || runs.len() > 1 {
                out.push(format!("stream {s}, {what}:"));
            }
            out.push(direction_table(&runs[s - 1], d, client_sends, *s));
        }
    }
    let remote = super::json::remote_cpu(runs);
    out.push(cpu_line(host, (!same_process).then_some(&remote)));
    out.join("\n")
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
        assert_eq!(iperf_bytes(105 << 20), "105 MBytes");
        assert_eq!(iperf_bytes(767 << 10), "767 KBytes");
        assert_eq!(iperf_rate(1.70e9), "1.70 Gbits/sec");
        assert_eq!(iperf_rate(921e6), "921 Mbits/sec");
    }
}
