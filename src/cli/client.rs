//! The commands that dial a listener: `msock connect`, `msock send-file` and `msock bench`.

// Help texts show "[IPV6]:PORT" literally; rustdoc must not read it as a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::time::Duration;

use clap::Args;

use super::parse::*;
use super::{DialArgs, StreamArgs};

/// `msock connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The listener: HOST:PORT or [IPV6]:PORT, or HOST PORT as two arguments (as nc takes
    /// them), or NAME@RELAY[:PORT] for a listener registered at a relay (not given with
    /// --list-ifaces). With --code: the relay, HOST[:PORT] (default: `relay` in config.toml).
    #[arg(value_name = "HOST:PORT",
          required_unless_present_any = ["list_ifaces", "show_key", "forget_key", "code"])]
    pub dest: Option<String>,

    /// The listener's port, when it follows HOST as an argument of its own.
    #[arg(value_name = "PORT", value_parser = parse_port, requires = "dest")]
    pub port: Option<u16>,

    /// Remove the listener key pinned for DEST from known_peers and exit, printing each line
    /// removed (like `ssh-keygen -R`; exit 0 also when nothing was pinned). DEST HOST removes
    /// every line naming HOST; HOST:PORT the lines a connection there would use.
    #[arg(long, value_name = "DEST", conflicts_with_all = ["dest", "list_ifaces", "show_key"])]
    pub forget_key: Option<String>,

    /// Connect to the `msock listen --code` that printed CODE (e.g. 7-tulip-orbit-canyon),
    /// through its relay; see `msock listen --code`.
    #[arg(long, value_name = "CODE", conflicts_with_all = [
        "plain", "local", "list_ifaces", "show_key", "no_encrypt", "psk_file", "peer_key",
        "forget_key",
    ])]
    pub code: Option<String>,

    /// Print this client's key fingerprint (for a listener's --authorized-keys) and exit.
    /// The key is created on first use, in the config directory (see ENCRYPTION below);
    /// send-file and bench use the same key.
    #[arg(long, conflicts_with_all = ["dest", "list_ifaces"])]
    pub show_key: bool,

    /// Talk plain TCP (no msock session) to a server that does not speak msock: one TCP
    /// connection, so no interface policies and no reconnecting.
    #[arg(long, conflicts_with_all = [
        "stripe", "prefer_wifi", "prefer_cellular", "iface", "backup",
        "retry_interval", "resume_timeout", "keepalive", "dead_time",
    ])]
    pub plain: bool,

    /// Forward a local TCP port to the listener (like `ssh -L`): accept connections on
    /// [ADDR:]PORT (ADDR 127.0.0.1 unless given) and carry each over a session of its own,
    /// which keeps the program's connection alive across moves. The listener runs with
    /// --forward HOST:PORT. Runs until interrupted.
    #[arg(long, value_name = "[ADDR:]PORT", conflicts_with_all = [
        "plain", "list_ifaces", "recv_only", "send_only",
    ])]
    pub local: Option<String>,

    /// Print the network interfaces msock sees, what kind each is (wifi, cellular, ethernet,
    /// loopback, tunnel, other) and how that was decided (sysfs, name, user, flags), then exit
    /// without connecting.
    #[arg(long, conflicts_with = "dest")]
    pub list_ifaces: bool,

    /// Only receive: do not read stdin, close our sending side at once.
    #[arg(long, conflicts_with = "send_only")]
    pub recv_only: bool,

    /// Only send: discard whatever the peer sends instead of writing it to stdout.
    #[arg(long)]
    pub send_only: bool,

    #[command(flatten)]
    pub dial: DialArgs,

    #[command(flatten)]
    pub stream: StreamArgs,
}

/// `msock send-file`.
#[derive(Debug, Args)]
pub struct SendFileArgs {
    /// Files and folders to send (`-` sends stdin; name it with --name), then the receiving
    /// listener: HOST:PORT or [IPV6]:PORT, or HOST PORT as two arguments (as nc takes them).
    /// The last two arguments are read as HOST PORT when the last is a port number and the
    /// one before it is not an existing file or folder. With --code the listener is the
    /// code's and the last argument, if it is not a file or folder here, is the relay
    /// (HOST[:PORT]; default: `relay` in config.toml).
    #[arg(value_name = "PATH... HOST:PORT", required_unless_present = "text", num_args = 1..)]
    pub args: Vec<String>,

    /// Send to the `msock listen --code` that printed CODE (e.g. 7-tulip-orbit-canyon),
    /// through its relay; see `msock listen --code`. Run the same command again after an
    /// interruption: it resumes without pairing again (the session's key is kept in the state
    /// directory, pairing/RELAY/NUMBER.ticket, until the transfer ended well).
    #[arg(long, value_name = "CODE", conflicts_with_all = ["no_encrypt", "psk_file", "peer_key"])]
    pub code: Option<String>,

    /// With --code: send TEXT (without TEXT: stdin, at most 1 MiB) instead of files; the
    /// listener prints it on its stdout.
    #[arg(long, value_name = "TEXT", requires = "code", num_args = 0..=1, default_missing_value = "-")]
    pub text: Option<String>,

    /// The file name the receiver gives stdin's bytes (with PATH `-`).
    #[arg(long, value_name = "NAME", default_value = "stdin")]
    pub name: String,

    /// Print nothing on stderr but errors (no progress bar, no summary).
    #[arg(short, long)]
    pub quiet: bool,

    /// At the end, print one JSON object on stdout: files, bytes, seconds, rate, resumed
    /// bytes, bytes per flowpath and each file's hash.
    #[arg(long)]
    pub json: bool,

    #[command(flatten)]
    pub dial: DialArgs,

    #[command(flatten)]
    pub stream: StreamArgs,
}

impl SendFileArgs {
    /// The PATH arguments.
    pub fn paths(&self) -> Vec<std::path::PathBuf> {
        let n = self.args.len().saturating_sub(1);
        self.args[..n].iter().map(Into::into).collect()
    }

    /// The HOST:PORT argument.
    pub fn dest(&self) -> &str {
        self.args.last().map_or("", String::as_str)
    }

    /// Joins a destination given as HOST PORT into the last argument (see the help of
    /// `args` for the rule).
    fn join_host_port(&mut self) -> Result<(), String> {
        let n = self.args.len();
        if n < 3 {
            return Ok(());
        }
        let (host, last) = (&self.args[n - 2], &self.args[n - 1]);
        if !last.bytes().all(|b| b.is_ascii_digit()) || std::path::Path::new(host).exists() {
            return Ok(());
        }
        let joined = join_host_port(host, parse_port(last)?)?;
        self.args.truncate(n - 2);
        self.args.push(joined);
        Ok(())
    }
}

impl super::Command {
    /// Joins each destination given as HOST PORT (as nc takes it) into HOST:PORT (or
    /// [IPV6]:PORT). Err: a usage error to report.
    pub fn join_destinations(&mut self) -> Result<(), String> {
        let join = |dest: &mut Option<String>, port: &mut Option<u16>| {
            if let (Some(d), Some(p)) = (dest.as_mut(), port.take()) {
                *d = join_host_port(d, p)?;
            }
            Ok(())
        };
        match self {
            super::Command::Connect(a) => join(&mut a.dest, &mut a.port),
            super::Command::Bench(a) => join(&mut a.dest, &mut a.port),
            super::Command::SendFile(a) => a.join_host_port(),
            super::Command::Listen(_) | super::Command::Proxy(_) => Ok(()),
        }
    }
}

/// `msock bench`.
#[derive(Debug, Args, Clone)]
#[command(after_long_help = BENCH_NUMBERS,
    // iperf3's letters: -w is the socket buffer, -s and -c are iperf3's roles, -C the
    // congestion control (--wait and --source keep their long names).
    mut_arg("wait", |a| a.short(None)),
    mut_arg("source", |a| a.short(None)),
    mut_arg("congestion", |a| a.short('C')))]
pub struct BenchArgs {
    /// The listener to measure against: HOST:PORT or [IPV6]:PORT, or HOST PORT as two
    /// arguments (any `msock listen`; use -k there to serve several tests, or --compare-tcp).
    /// Without it, `msock bench` starts its own listener on loopback and compares plain TCP,
    /// one msock flowpath and msock striped over several loopback addresses.
    #[arg(value_name = "HOST:PORT")]
    pub dest: Option<String>,

    /// The listener's port, when it follows HOST as an argument of its own.
    #[arg(value_name = "PORT", value_parser = parse_port, requires = "dest")]
    pub port: Option<u16>,

    /// How long to measure (e.g. 10s, 1m), after --omit. The built-in run (no HOST:PORT)
    /// gives each of its three tests a third of it.
    #[arg(short, long, value_name = "DURATION", default_value = "10s",
          value_parser = parse_positive_duration, conflicts_with = "bytes")]
    pub time: Duration,

    /// Send this many bytes of payload instead of sending for --time (e.g. 1G); each
    /// direction with --bidir, each test in the built-in run.
    #[arg(short = 'n', long, value_name = "SIZE", value_parser = parse_positive_size)]
    pub bytes: Option<u64>,

    /// Print the receiver's figures every DURATION (0: only the totals; from 10ms to a day).
    #[arg(short, long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub interval: Duration,

    /// Reverse: the listener sends, we receive.
    #[arg(short = 'R', long, conflicts_with = "bidir")]
    pub reverse: bool,

    /// Both directions at once (each is reported on its own).
    #[arg(long)]
    pub bidir: bool,

    /// Size of each block the sender hands over (e.g. 128K; at most 16M). Blocks go to the
    /// session or socket in pieces of at most 256 KiB.
    #[arg(short, long, value_name = "SIZE", default_value = "128K", value_parser = parse_positive_size)]
    pub len: u64,

    /// Send for DURATION more before --time and leave it out of the totals (TCP slow start),
    /// as iperf3 -O: `-O 1 -t 3` sends for 4 s and measures the last 3; its intervals are
    /// marked omitted. With --time only.
    #[arg(short = 'O', long, value_name = "DURATION", default_value = "0s",
          value_parser = parse_duration, conflicts_with = "bytes")]
    pub omit: Duration,

    /// Run N tests at once, each over a session (or TCP connection) of its own, as iperf3's
    /// parallel streams: a row per stream and a SUM row (at most 128).
    #[arg(short = 'P', long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=128))]
    pub parallel: u16,

    /// Pace each stream's sender to RATE bits per second (e.g. 100M, 1G; K, M, G, T are
    /// powers of 1000, as iperf3 -b). Default: as fast as it goes.
    #[arg(short = 'b', long, value_name = "RATE", value_parser = parse_bitrate)]
    pub bitrate: Option<u64>,

    /// Socket send and receive buffer size of this end's TCP connections (SO_SNDBUF and
    /// SO_RCVBUF, e.g. 4M), as iperf3 -w; the listener keeps its own. (`connect`'s -w is
    /// --wait here.)
    #[arg(short = 'w', long, value_name = "SIZE", value_parser = parse_positive_size)]
    pub window: Option<u64>,

    /// Write everything that would go to stdout to FILE instead (appending), as iperf3
    /// --logfile.
    #[arg(long, value_name = "FILE")]
    pub logfile: Option<std::path::PathBuf>,

    /// Also show the listener's own figures of each test (its intervals and totals, and its
    /// CPU time): after the client's, or under "server_output_json" with --json.
    #[arg(long)]
    pub get_server_output: bool,

    /// iperf3's server flag. msock bench is the client only: this prints where the server
    /// is (`msock listen -k PORT`) and exits with status 2.
    #[arg(short = 's', long = "server")]
    pub server: bool,

    /// iperf3's client flag: give HOST:PORT alone instead (prints a hint, exits 2).
    #[arg(short = 'c', long = "client", value_name = "HOST")]
    pub client: Option<String>,

    /// After the msock test, run the same test over one plain TCP connection to the same
    /// listener (which must serve more than one client: `msock listen -k`) and print the
    /// goodput ratio.
    #[arg(long)]
    pub compare_tcp: bool,

    /// Print one JSON document on stdout at the end, in iperf3 -J's schema (start.connected,
    /// start.test_start, intervals[].streams and .sum, end.streams, end.sum_sent,
    /// end.sum_received, end.cpu_utilization_percent, error); what msock adds (flowpaths,
    /// re-sent bytes, RTT per flowpath) is under "msock" keys.
    #[arg(short = 'J', long, conflicts_with = "json_stream")]
    pub json: bool,

    /// Print one JSON object per line on stdout as things happen: {"event": "start",
    /// "interval", "end" or "error", "data": ...}, as iperf3 --json-stream.
    #[arg(long)]
    pub json_stream: bool,

    #[command(flatten)]
    pub dial: DialArgs,

    #[command(flatten)]
    pub stream: StreamArgs,
}

/// What `msock bench`'s numbers mean (its long help and man page).
const BENCH_NUMBERS: &str = "\
What the numbers mean:
  goodput   benchmark payload bytes the receiving application got, in order, divided by
            the receiver's time from the first payload (after --omit) to the sender's end
            marker. Framing, re-sent and duplicate bytes do not count. This is the
            receiver's figure, and the one that counts.
  sender    payload bytes the sending application handed to the session (or socket) over
            the sender's own time; bytes still buffered when it stopped are included, so it
            can be a little higher than the goodput.
  Retr      (interval and sender rows) TCP segments the kernel retransmitted on the
            sender's flowpath connections in that time (TCP_INFO), as iperf3's Retr.
  Cwnd      the congestion window of the sender's connection at the interval's end.
  SENT      per flowpath (the table at the end, msock.paths in JSON): the sender's payload
            bytes divided between the flowpaths by the stream bytes each sent first.
  RE-SENT   stream bytes the flowpath sent again, having been sent before on some
            flowpath: after a flowpath broke, or moved off one with a much longer base RTT
            (not between flowpaths of equal base RTT); they cost capacity, not goodput.
            Plain TCP: retransmitted segments x MSS.
  RECEIVED  the flowpath's part of the goodput: the in-order bytes divided between the
            flowpaths by the bytes each brought first. Per flowpath RE-SENT <= SENT and
            RECEIVED <= SENT + RE-SENT; the flowpaths add up to the totals exactly.
            SHARE is RECEIVED over the total.
  RTT       the flowpath's smoothed round-trip time at the end, from msock's PING/ACK as
            this end sees it (plain TCP: the kernel's, from TCP_INFO).
  CPU       user+system CPU time of each process during the test, as a percentage of the
            wall time (100 % = one core). The built-in run has both ends in one process:
            one figure for both (JSON: in host_*, remote_* are 0).
Flags with iperf3's letters mean what they mean in iperf3: -P, -b, -J, -O, -l, -w, -C, -R,
-t, -n, -i. So -w is the socket buffer here (--wait elsewhere) and -s is not --source;
-s and -c print a hint and exit 2: run `msock listen -k PORT` on the server and give
`msock bench HOST:PORT` on the client.
Exit status: 0 success, 1 the network or the listener failed (with --json, the document
has an \"error\" key), 2 bad arguments or a local error, 130 interrupted.";

/// A bit rate as iperf3 -b takes it: a number with an optional K, M, G or T (powers of 1000).
fn parse_bitrate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1_000,
                'M' => 1_000_000,
                'G' => 1_000_000_000,
                'T' => 1_000_000_000_000,
                _ => return Err(format!("{s:?}: the unit is K, M, G or T (bits per second)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let x: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a rate (e.g. 100M, 1G)"))?;
    let bps = x * mult as f64;
    if !(bps.is_finite() && (1.0..=1e15).contains(&bps)) {
        return Err(format!("{s:?}: give a rate from 1 bit/s to 1000T"));
    }
    Ok(bps as u64)
}

#[cfg(test)]
mod tests {
    use super::parse_bitrate;

    #[test]
    fn bitrates_are_decimal_as_iperf3() {
        assert_eq!(parse_bitrate("1G"), Ok(1_000_000_000));
        assert_eq!(parse_bitrate("2.5m"), Ok(2_500_000));
        assert_eq!(parse_bitrate("800"), Ok(800));
        assert_eq!(parse_bitrate("10K"), Ok(10_000));
        for bad in ["", "G", "1X", "-1M", "0", "nanG", "1e30"] {
            assert!(parse_bitrate(bad).is_err(), "{bad}");
        }
    }
}
