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
#[command(after_long_help = BENCH_NUMBERS)]
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

    /// How long to send (e.g. 10s, 1m). The built-in run (no HOST:PORT) gives each of its
    /// three tests a third of it.
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

    /// Leave the first DURATION of the data out of the totals (TCP slow start); its intervals
    /// are marked omitted. With --time only: a -n test may end within it.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration,
          conflicts_with = "bytes")]
    pub omit: Duration,

    /// After the msock test, run the same test over one plain TCP connection to the same
    /// listener (which must serve more than one client: `msock listen -k`) and print the
    /// goodput ratio.
    #[arg(long)]
    pub compare_tcp: bool,

    /// Print one JSON document on stdout at the end, with iperf3's key names where they apply
    /// (start, intervals[].sum, end.sum_sent, end.sum_received, cpu_utilization_percent,
    /// error); flowpaths are under "paths".
    #[arg(long, conflicts_with = "json_stream")]
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
  path      a flowpath's part of the goodput: the in-order bytes divided between the
            flowpaths in proportion to the bytes that first arrived on each (they add up
            to the total exactly; once all data has arrived the two agree). SENT divides
            the sender's payload the same way, by the bytes first sent on each; SHARE is
            the flowpath's part of the goodput.
  RTT       the flowpath's smoothed round-trip time at the end, from msock's PING/ACK as
            this end sees it (plain TCP: the kernel's, from TCP_INFO).
  re-sent   stream bytes the sender sent again (lost with a broken flowpath, or moved off
            a slower one); they cost capacity but are not goodput. Plain TCP: retransmitted
            segments x MSS.
  CPU       user+system CPU time of each process during the test, as a percentage of the
            wall time (100 % = one core). The built-in run has both ends in one process
            and shows the CPU seconds of both together.
Exit status: 0 success, 1 the network or the listener failed (with --json, the document
has an \"error\" key), 2 bad arguments or a local error, 130 interrupted.";
