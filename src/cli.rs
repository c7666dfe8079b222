//! The command line, defined once with clap derive; the man pages and shell completions are
//! generated from this definition (see `examples/gen_docs.rs`).

// Help texts show "[IPV6]:PORT" literally; rustdoc must not read it as a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::runtime::ifaces::{parse_kind_override, IfaceKind};

/// msock: netcat and iperf3 for networks that move.
///
/// An msock connection is a session: a reliable byte stream that is not tied to one TCP
/// connection. It survives address changes, can use several network interfaces at once and
/// still talks plain TCP to ordinary tools like nc.
#[derive(Debug, Parser)]
#[command(
    name = "msock",
    version,
    propagate_version = true,
    max_term_width = 100
)]
#[command(
    after_help = "Exit status: 0 success, 1 network error (refused, reset, timeout, \
peer vanished, peer error), 2 usage or local error (bad arguments, unreadable input), \
130 interrupted.",
    after_long_help = ENCRYPTION
)]
pub struct Cli {
    /// More diagnostics on stderr (-v: connections and paths, -vv: protocol detail).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The long help's section on encryption and keys.
const ENCRYPTION: &str = "\
Exit status: 0 success, 1 network error (refused, reset, timeout, peer vanished, peer error),
2 usage or local error (bad arguments, unreadable input), 130 interrupted.

ENCRYPTION
  Sessions are encrypted and authenticated end to end by default: a Noise handshake
  (Noise_NX_25519_AESGCM_SHA256) when the session opens, then AES-128-GCM records with a key
  of their own on every flowpath. Each listener has a long-term key, created on first use in
  the config directory ($MSOCK_CONFIG_DIR, else $XDG_CONFIG_HOME/msock, else ~/.config/msock,
  file listener.key, mode 0600); `msock listen --show-key` prints its fingerprint. A client
  pins the key it meets first at each HOST:PORT (file known_peers) and refuses a different one
  later, showing both fingerprints; --peer-key FINGERPRINT pins explicitly. --psk-file FILE
  (both ends) adds a pre-shared key. --no-encrypt (both ends; a mismatch is refused, never
  downgraded) turns encryption off. Plain TCP peers (nc, connect --plain) are never encrypted.";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Wait for a connection and copy it to stdout, stdin to it (like `nc -l`).
    ///
    /// Serves msock clients as sessions and, unless --no-plain, ordinary TCP clients (nc,
    /// telnet, a browser) as plain TCP, told apart by their first bytes.
    Listen(ListenArgs),
    /// Connect to a listener and copy stdin to it, it to stdout (like `nc HOST PORT`).
    Connect(ConnectArgs),
    /// Send files and folders to a `msock listen --save-dir DIR`: verified, resumable, with
    /// progress.
    ///
    /// Folders are sent recursively (relative paths, empty folders and the executable bit are
    /// kept). Every file's BLAKE3 hash is computed while sending and checked by the receiver
    /// before the file gets its final name. If a transfer is interrupted (even for days, both
    /// programs killed), running the same command again sends only what the receiver lacks:
    /// the receiver reports what it holds, the sender checks that prefix's hash, and complete
    /// identical files are skipped.
    SendFile(SendFileArgs),
    /// Measure throughput to a listener (like iperf3), per flowpath; with no HOST:PORT, run
    /// the built-in loopback benchmark.
    ///
    /// Any `msock listen` serves benchmark clients, several at once, besides its other
    /// duties. Goodput counts only bytes the receiving application got in order; the
    /// figures reported are the receiver's.
    Bench(BenchArgs),
    /// Run a relay: listeners behind NAT register a name here (`msock listen --relay HOST
    /// --name NAME`) and clients reach them as NAME@HOST.
    ///
    /// The relay splices each client flowpath with one the listener dials back and copies
    /// the bytes without reading them; sessions keep their end-to-end authentication,
    /// multipath and mobility through it. A listener that can be reached directly is
    /// published too, and clients try it first. Names are held by the secret the first
    /// registration returned (kept by the listener); a name whose listener is gone for
    /// --name-ttl is forgotten. SIGINT prints a summary (JSON with --json) and exits 130.
    Proxy(ProxyArgs),
}

/// Session settings shared by every command that opens or accepts msock sessions.
#[derive(Debug, Args, Clone)]
pub struct StreamArgs {
    /// Use IPv4 addresses only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Use IPv6 addresses only.
    #[arg(short = '6')]
    pub ipv6: bool,

    /// End a session that has sent and received no data for this long (e.g. 30s, 2m).
    #[arg(long, value_name = "DURATION", value_parser = parse_positive_duration)]
    pub idle_timeout: Option<Duration>,

    /// Keep a session whose flowpaths all broke this long, waiting for the network (or the
    /// peer) to come back; the client retries meanwhile. Both ends should agree.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub resume_timeout: Duration,

    /// Probe a flowpath with a PING when nothing arrived on it for this long.
    #[arg(long, value_name = "DURATION", default_value = "3s", value_parser = parse_positive_duration)]
    pub keepalive: Duration,

    /// Declare a flowpath dead (and move to a new one) when it owes an answer for this long.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_positive_duration)]
    pub dead_time: Duration,

    /// TCP congestion control for every connection (e.g. cubic, bbr; like iperf3 -C).
    /// Default: the system's.
    #[arg(long, value_name = "ALGO")]
    pub congestion: Option<String>,

    /// Write one JSON object per line on stderr for each session and path event (open, path
    /// up/down/moved, resumed, closed), for scripts.
    #[arg(long)]
    pub json_events: bool,

    /// Do not encrypt (for measuring or debugging on a network you trust). Both ends must
    /// agree: a listener and a client that differ refuse each other instead of falling back.
    /// Without encryption the session's secret comes from values sent in clear, so anyone who
    /// saw the session start can also take it over later.
    #[arg(long, conflicts_with = "psk_file")]
    pub no_encrypt: bool,

    /// Also require a pre-shared key, read from FILE (any secret text; both ends need the same
    /// file). Sessions then need both the listener's key and this one.
    #[arg(long, value_name = "FILE")]
    pub psk_file: Option<std::path::PathBuf>,
}

/// `msock listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Where to listen: PORT (all addresses), ADDR:PORT or [IPV6]:PORT. Port 0 picks a free
    /// port and prints it on stderr.
    /// Optional with --relay (then the listener is reachable through the relay only).
    #[arg(value_name = "[ADDR:]PORT", required_unless_present_any = ["relay", "show_key"])]
    pub addr: Option<String>,

    /// Print this listener's key fingerprint (to give to clients for --peer-key) and exit.
    /// The key is created on first use, in the config directory (see ENCRYPTION below).
    #[arg(long, conflicts_with_all = ["addr", "relay"])]
    pub show_key: bool,
    /// Also listen through the relay at HOST[:PORT] (default port 7480), under --name: works
    /// behind NAT, since the listener connects out. Re-registers after address changes.
    #[arg(long, value_name = "HOST[:PORT]", requires = "name")]
    pub relay: Option<String>,

    /// The name to register at the relay; clients connect to NAME@HOST[:PORT]. The first
    /// registration returns a secret, kept in $MSOCK_STATE_DIR, $XDG_STATE_HOME/msock or
    /// ~/.local/state/msock (relay-names/RELAY/NAME.secret); only its holder can register the
    /// name again.
    #[arg(long, value_name = "NAME", requires = "relay")]
    pub name: Option<String>,

    /// A file whose first line is the registration key, for a relay started with
    /// --auth-keys.
    #[arg(long, value_name = "FILE", requires = "relay")]
    pub relay_key_file: Option<std::path::PathBuf>,

    /// After a session ends, wait for the next one (sessions are served one at a time).
    #[arg(short, long)]
    pub keep_open: bool,

    /// Refuse clients that do not speak msock instead of serving them as plain TCP.
    #[arg(long)]
    pub no_plain: bool,

    /// How long a new client may stay silent before it is taken for plain TCP.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    pub detect_wait: Duration,

    /// Accept files from `msock send-file` into DIR (created if missing). Without it, file
    /// offers are refused. Files are verified (BLAKE3) before they get their final name, and
    /// an interrupted transfer resumes when the sender runs again.
    #[arg(long, value_name = "DIR")]
    pub save_dir: Option<std::path::PathBuf>,

    /// Replace existing files that differ from the ones offered (default: refuse the file
    /// and tell the sender).
    #[arg(long, requires = "save_dir")]
    pub overwrite: bool,

    /// Refuse file offers larger than SIZE in total (e.g. 500M, 4G). Offers larger than the
    /// free space in --save-dir are always refused.
    #[arg(long, value_name = "SIZE", requires = "save_dir", value_parser = parse_size)]
    pub max_size: Option<u64>,

    /// Only receive: do not read stdin, close our sending side at once.
    #[arg(long, conflicts_with = "send_only")]
    pub recv_only: bool,

    /// Only send: discard whatever the peer sends instead of writing it to stdout.
    #[arg(long)]
    pub send_only: bool,

    #[command(flatten)]
    pub stream: StreamArgs,
}

/// What `msock proxy` does and prints (its long help and man page).
const PROXY_NOTES: &str = "\
How it works:
  A listener keeps a control channel to the relay (REGISTER, keepalives). A client flowpath
  to NAME@RELAY starts with a ROUTE(NAME) frame; the relay asks the listener (DIAL) to connect
  back (SPLICE) and then copies bytes between the two connections, unread. Each flowpath of
  a session is spliced on its own, so multipath and mobility work through the relay. Clients
  first LOOKUP the name: a listener the relay sees at one of its own addresses is published
  and tried directly. The protocol is specified in src/relay/mod.rs.
Status lines (--json, stdout): registered, unregistered, expired, splice, splice_end (bytes
  up/down and why it ended), refused (reason), dropped (no first frame in time), summary.
Exit status: 0 after SIGTERM, 130 after SIGINT (both print the summary), 2 bad arguments or
  a port already in use.";

/// `msock proxy`.
#[derive(Debug, Args)]
#[command(after_long_help = PROXY_NOTES)]
pub struct ProxyArgs {
    /// Where to listen: PORT (all addresses), ADDR:PORT or [IPV6]:PORT.
    #[arg(long, value_name = "[ADDR:]PORT", default_value = "7480")]
    pub listen: String,

    /// Require a registration key: FILE holds one key per line (at least 16 characters,
    /// e.g. from `openssl rand -hex 32`; lines starting with # are comments). Listeners give
    /// theirs with --relay-key-file.
    #[arg(long, value_name = "FILE")]
    pub auth_keys: Option<std::path::PathBuf>,

    /// Keep names and their secrets in FILE (JSON, mode 0600), so that they survive a
    /// restart of the relay. Default: in memory only.
    #[arg(long, value_name = "FILE")]
    pub state: Option<std::path::PathBuf>,

    /// Forget a name (and its secret) when its listener has been gone this long.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_positive_duration)]
    pub name_ttl: Duration,

    /// Most flowpaths carried at once (each session has one or more).
    #[arg(long, value_name = "N", default_value = "10000", value_parser = parse_positive_count)]
    pub max_flowpaths: usize,

    /// Most names registered at once.
    #[arg(long, value_name = "N", default_value = "10000", value_parser = parse_positive_count)]
    pub max_names: usize,

    /// New client flowpaths (and lookups) per second from one address, in bursts of up to
    /// twice that; 0 for no limit.
    #[arg(long, value_name = "N", default_value = "50")]
    pub rate: f64,

    /// Drop a connection that sends no first frame within this long, and a client flowpath
    /// whose listener does not dial back within it.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration)]
    pub handshake_timeout: Duration,

    /// Close a spliced flowpath that carried no byte either way for this long (sessions send
    /// keepalives every few seconds, so only dead ones are closed).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_positive_duration)]
    pub idle_timeout: Duration,

    /// How often listeners send keepalives on their control channel (told to them when they
    /// register, in whole seconds: 1s to 1h); a channel silent for three times this is
    /// dropped.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_relay_keepalive)]
    pub keepalive: Duration,

    /// Print one JSON object per line on stdout for each event (registered, unregistered,
    /// expired, splice, splice_end, refused, dropped) and the summary at exit.
    #[arg(long)]
    pub json: bool,
}

/// `msock connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The listener: HOST:PORT or [IPV6]:PORT, or NAME@RELAY[:PORT] for a listener
    /// registered at a relay (not given with --list-ifaces).
    #[arg(value_name = "HOST:PORT", required_unless_present = "list_ifaces")]
    pub dest: Option<String>,

    /// Talk plain TCP (no msock session) to a server that does not speak msock: one TCP
    /// connection, so no interface policies and no reconnecting.
    #[arg(long, conflicts_with_all = [
        "stripe", "prefer_wifi", "prefer_cellular", "iface", "backup",
        "retry_interval", "resume_timeout", "keepalive", "dead_time",
    ])]
    pub plain: bool,

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
    /// listener: HOST:PORT or [IPV6]:PORT.
    #[arg(value_name = "PATH... HOST:PORT", required = true, num_args = 1..)]
    pub args: Vec<String>,

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
}

/// `msock bench`.
#[derive(Debug, Args, Clone)]
#[command(after_long_help = BENCH_NUMBERS)]
pub struct BenchArgs {
    /// The listener to measure against: HOST:PORT or [IPV6]:PORT (any `msock listen`; use -k
    /// there to serve several tests, or --compare-tcp). Without it, `msock bench` starts its
    /// own listener on loopback and compares plain TCP, one msock flowpath and msock striped
    /// over several loopback addresses.
    #[arg(value_name = "HOST:PORT")]
    pub dest: Option<String>,

    /// How long to send (e.g. 10s, 1m). The built-in run (no HOST:PORT) gives each of its
    /// three tests a third of it.
    #[arg(short, long, value_name = "DURATION", default_value = "10s",
          value_parser = parse_positive_duration, conflicts_with = "bytes")]
    pub time: Duration,

    /// Send this many bytes of payload instead of sending for --time (e.g. 1G); each
    /// direction with --bidir, each test in the built-in run.
    #[arg(short = 'n', long, value_name = "SIZE", value_parser = parse_positive_size)]
    pub bytes: Option<u64>,

    /// Print the receiver's figures every DURATION (0: only the totals; at least 10ms).
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

/// How a client reaches its listener: shared by connect, send-file and bench.
#[derive(Debug, Args, Clone)]
pub struct DialArgs {
    /// Give up connecting (TCP connect and msock handshake) after this long.
    #[arg(short, long, value_name = "DURATION", default_value = "10s", value_parser = parse_positive_duration)]
    pub wait: Duration,

    /// Local address to connect from (instead of choosing interfaces by a policy).
    #[arg(short, long, value_name = "ADDR",
          conflicts_with_all = ["stripe", "prefer_wifi", "prefer_cellular", "iface", "backup"])]
    pub source: Option<std::net::IpAddr>,

    /// After losing the connection, try to reconnect this often (re-resolving HOST each time)
    /// until --resume-timeout.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_positive_duration)]
    pub retry_interval: Duration,

    /// The listener's key fingerprint (SHA256:..., from `msock listen --show-key`): refuse any
    /// other key. Without it the key seen first at this HOST:PORT is pinned and later
    /// required (trust on first use, like ssh).
    #[arg(long, value_name = "FINGERPRINT", conflicts_with = "no_encrypt", value_parser = parse_fingerprint)]
    pub peer_key: Option<String>,

    #[command(flatten)]
    pub policy: PolicyArgs,
}

/// Which network interfaces a session's flowpaths use. Without any of these, one flowpath
/// goes wherever the routing table sends it (and moves when that changes).
#[derive(Debug, Args, Clone, Default)]
pub struct PolicyArgs {
    /// Use every usable interface at once, one flowpath on each (wifi + cellular + ethernet).
    #[arg(long, conflicts_with_all = ["prefer_wifi", "prefer_cellular"])]
    pub stripe: bool,

    /// One flowpath, on wifi while there is wifi, else on another interface; moves back when
    /// wifi returns (the new flowpath is up before the old one closes).
    #[arg(long, conflicts_with = "prefer_cellular")]
    pub prefer_wifi: bool,

    /// Like --prefer-wifi, for cellular.
    #[arg(long)]
    pub prefer_cellular: bool,

    /// Only use this interface; repeat for several, in order of preference.
    #[arg(long, value_name = "NAME")]
    pub iface: Vec<String>,

    /// Use this interface only while no other is usable; repeatable.
    #[arg(long, value_name = "NAME")]
    pub backup: Vec<String>,

    /// Treat interface NAME as KIND (wifi, cellular, ethernet, tunnel or other) instead of what
    /// msock detects, e.g. --iface-kind enx0c5b8f279a64=cellular for a tethered phone.
    /// Repeat for several interfaces.
    #[arg(long, value_name = "NAME=KIND", value_parser = parse_kind_override)]
    pub iface_kind: Vec<(String, IfaceKind)>,
}

/// Parses a size like `1500`, `128K`, `64KiB`, `1.5M`, `2G` (K, M, G, T are powers of 1024,
/// as in iperf3).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix("ib"))
        .or_else(|| t.strip_suffix(['B', 'b']))
        .unwrap_or(t);
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("'{s}' is not a size; try 1500, 128K, 64M or 2G")),
            };
            (&t[..i], mult)
        }
        _ => (t, 1),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a size; try 1500, 128K, 64M or 2G"))?;
    let bytes = n * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes >= u64::MAX as f64 {
        return Err(format!("'{s}' is not a size: negative or too large"));
    }
    Ok(bytes.round() as u64)
}

/// A relay keepalive: whole seconds from 1 s to 1 h (the wire carries seconds).
pub fn parse_relay_keepalive(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(3600) || d.subsec_nanos() != 0 {
        return Err(format!(
            "'{s}': give whole seconds from 1s to 1h (listeners are told it in seconds)"
        ));
    }
    Ok(d)
}

/// A count of at least 1.
pub fn parse_positive_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err(format!("'{s}' is zero: that would refuse everything")),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a count (1, 2, ...)")),
    }
}

/// Like [`parse_size`], but zero is refused.
pub fn parse_positive_size(s: &str) -> Result<u64, String> {
    match parse_size(s)? {
        0 => Err(format!("'{s}' is zero; give a positive size such as 128K")),
        n => Ok(n),
    }
}

/// Parses a duration like `500ms`, `2m`, `1h 30m`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            return Ok(Duration::from_secs_f64(secs));
        }
        return Err(format!("'{s}' is not a duration: negative or not finite"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("'{s}' is not a duration ({e}); try 500ms, 10s or 2m"))
}

/// Like [`parse_duration`], but zero is refused (it would end everything at once).
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!(
            "'{s}' is zero; give a positive duration such as 500ms"
        )),
        d => Ok(d),
    }
}

/// Checks a key fingerprint as `msock listen --show-key` prints it: `SHA256:` and the
/// unpadded base64 of 32 bytes.
pub fn parse_fingerprint(s: &str) -> Result<String, String> {
    use base64::Engine;
    let digest = s.strip_prefix("SHA256:").ok_or_else(|| {
        format!("'{s}' is not a key fingerprint: it must start with SHA256: (copy it whole from `msock listen --show-key`)")
    })?;
    match base64::engine::general_purpose::STANDARD_NO_PAD.decode(digest) {
        Ok(d) if d.len() == 32 => Ok(s.to_owned()),
        _ => Err(format!("'{s}' is not a key fingerprint: after SHA256: come 43 base64 characters (copy it whole from `msock listen --show-key`)")),
    }
}

/// Parses a listen address: `PORT`, `ADDR:PORT`, `[V6]:PORT`. Returns the host part (None =
/// all addresses) and the port.
pub fn parse_listen_addr(s: &str) -> Result<(Option<String>, u16), String> {
    let port_err = |p: &str| format!("'{p}' is not a port number (0-65535)");
    if let Ok(port) = s.parse::<u16>() {
        return Ok((None, port));
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Ok((Some(sa.ip().to_string()), sa.port()));
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}' is not [ADDR:]PORT"))?;
    let port = port.parse::<u16>().map_err(|_| port_err(port))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Ok((None, port));
    }
    Ok((Some(host.to_owned()), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1500"), Ok(1500));
        assert_eq!(parse_size("128K"), Ok(128 << 10));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("1.5M"), Ok(3 << 19));
        assert_eq!(parse_size("2g"), Ok(2 << 30));
        assert_eq!(parse_size("10MB"), Ok(10 << 20));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1K").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn listen_addrs() {
        assert_eq!(parse_listen_addr("9000"), Ok((None, 9000)));
        assert_eq!(parse_listen_addr(":9000"), Ok((None, 9000)));
        assert_eq!(
            parse_listen_addr("127.0.0.1:0"),
            Ok((Some("127.0.0.1".into()), 0))
        );
        assert_eq!(parse_listen_addr("[::1]:80"), Ok((Some("::1".into()), 80)));
        assert_eq!(
            parse_listen_addr("localhost:80"),
            Ok((Some("localhost".into()), 80))
        );
        assert!(parse_listen_addr("localhost").is_err());
        assert!(parse_listen_addr("x:99999").is_err());
    }

    #[test]
    fn definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
