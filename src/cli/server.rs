//! The commands that serve: `msock listen` and `msock proxy`.

// Help texts show "[IPV6]:PORT" literally; rustdoc must not read it as a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use super::parse::*;
use super::StreamArgs;

/// What `msock listen` does with several clients and with its stdin and stdout (its long help
/// and man page).
const LISTEN_NOTES: &str = "\
Several clients (-k), as ncat -k:
  Sessions are served at the same time, each on its own, up to --max-sessions; a client
  beyond that is told \"listener busy: N sessions\" (exit 1). A session whose client moved and
  has not come back yet only holds its place among them.
  stdout: what every client sends is written to stdout as it arrives; bytes of different
  clients interleave (each piece received is written whole), nothing marks who sent what.
  stdin: read only while at least one client is connected; each piece read goes to every
  client connected at that moment (later clients do not get earlier input). At the end of
  stdin every session's sending side ends, and a client that comes later gets none. A client
  that does not take its copy for 5 s while its queue is full (it moved or stalled) is ended
  with an error rather than holding stdin up for the others.
  Without -k: one session; a client that comes meanwhile is told the listener is busy.
When the session ends (nc's rule):
  Each side ends its sending at the end of its stdin; the session ends when both have. When
  stdin is a terminal and nothing has been typed for a session, the session also ends as soon
  as the client has finished sending, so that `msock listen 9000 > file` in a terminal and
  `tar c dir | msock connect host:9000` both finish by themselves. (OpenBSD nc -l and ncat go
  further and end at the client's end whatever their stdin; msock keeps sending a piped or
  typed stdin, so that a client can half-close and still read a reply.)
Plain TCP clients (nc, telnet) are served only with --allow-plain: they are neither
  encrypted nor authenticated, and stderr says so for each one. Without it they get one line
  saying so and are closed.";

/// `msock listen`.
#[derive(Debug, Args)]
#[command(after_long_help = LISTEN_NOTES)]
pub struct ListenArgs {
    /// Where to listen: PORT (all addresses), ADDR:PORT or [IPV6]:PORT. Port 0 picks a free
    /// port and prints it on stderr.
    /// Optional with --relay (then the listener is reachable through the relay only).
    #[arg(value_name = "[ADDR:]PORT", required_unless_present_any = ["relay", "show_key", "code"])]
    pub addr: Option<String>,

    /// Print this listener's key fingerprint (to give to clients for --peer-key) and exit.
    /// The key is created on first use, in the config directory (see ENCRYPTION below).
    #[arg(long, conflicts_with_all = ["addr", "relay"])]
    pub show_key: bool,
    /// Also listen through the relay at HOST[:PORT] (default port 7480), under --name: works
    /// behind NAT, since the listener connects out. Re-registers after address changes.
    /// Repeat it (or separate relays by commas, up to 8) to register the same name at several
    /// relays, each with its own secret and control channel: the listener serves through any
    /// of them, and clients that list them (NAME@A,B) fail over when one dies. For relays of
    /// one cluster give --relay-cluster. stderr says which relays the name is registered at
    /// after each change. --code takes one relay.
    #[arg(long, value_name = "HOST[:PORT]", value_delimiter = ',')]
    pub relay: Vec<String>,

    /// The --relay relays are of one cluster (msock proxy --etcd): the name is registered at
    /// one of them at a time with the cluster's one secret (relay-clusters/ in the state
    /// directory), and the others stand by and take it over at once when its channel is
    /// lost. Only for relays you know to be of that cluster: the cluster's identity is
    /// public, so a relay that merely claims it could pass the listener's proof on to the
    /// real cluster. Without it, each relay gets its own registration and secret, and relays
    /// of one cluster refuse all but the first ("name taken").
    #[arg(long, requires = "relay")]
    pub relay_cluster: bool,

    /// Wait for a sender by code: register a fresh code's number at the relay (--relay, else
    /// `relay = "HOST:PORT"` in config.toml in the config directory), print `code:
    /// 7-tulip-orbit-canyon` on stderr and wait for `msock send-file --code CODE FILES` or
    /// `msock connect --code CODE`. The words (3 of 7776: 38.8 bits) never leave the two
    /// machines: a password-authenticated key exchange (SPAKE2) turns the code into the
    /// session's pre-shared key, and a wrong code fails on both sides before any byte of a
    /// file is sent. The code is burned after it paired once or after three tries (an
    /// attacker's chance per try is 1 in 7776^3, 2.1e-12); the listener ends after its first
    /// session that ended well. A killed sender runs its command again and resumes without
    /// pairing again; a killed listener resumes with --resume. With a relay started with
    /// --auth-keys, give --relay-key-file.
    #[arg(long, conflicts_with_all = ["name", "show_key", "no_encrypt", "psk_file", "allow_plain"])]
    pub code: bool,

    /// With --code: instead of a new code, serve again the pairing of the last `listen
    /// --code` killed before its transfer ended (same --relay and --save-dir; its ticket is
    /// kept in the state directory, pairing/RELAY/listener-NAME.ticket). Then the sender
    /// runs its command again: both resume from the partial files, and nobody types a code.
    #[arg(long, requires = "code")]
    pub resume: bool,

    /// The name to register at the relay; clients connect to NAME@HOST[:PORT]. The first
    /// registration returns a secret, kept in $MSOCK_STATE_DIR, $XDG_STATE_HOME/msock or
    /// ~/.local/state/msock (relay-names/RELAY/NAME.secret); only its holder can register the
    /// name again.
    #[arg(long, value_name = "NAME", requires = "relay")]
    pub name: Option<String>,

    /// A file whose first line is the registration key, for a relay started with
    /// --auth-keys (the relay of --relay, or with --code the one from config.toml).
    #[arg(long, value_name = "FILE")]
    pub relay_key_file: Option<std::path::PathBuf>,

    /// Admit only clients whose key is listed in FILE: one fingerprint per line (SHA256:..., as
    /// `msock connect --show-key` prints it; words after it are a comment), lines starting
    /// with # and blank lines ignored. Applies to every service (byte streams, files,
    /// benchmarks). The file is re-read when it changes (checked as each session opens), so
    /// no restart is needed. A refused client is told the fingerprint to add. Needs
    /// encryption.
    #[arg(long, value_name = "FILE", conflicts_with = "no_encrypt")]
    pub authorized_keys: Option<std::path::PathBuf>,

    /// Let --exec, --sh-exec and --forward run without --authorized-keys or --psk-file:
    /// anyone who reaches this listener gets the program or the target. Plain TCP clients
    /// (which prove no key) reach them only with this and --allow-plain.
    #[arg(long)]
    pub allow_anyone: bool,

    /// Keep listening: serve clients at the same time (up to --max-sessions) and go on after
    /// each (see "Several clients" below for stdin and stdout).
    #[arg(short, long)]
    pub keep_open: bool,

    /// Most sessions served at once with -k (of every kind: streams, files, benchmarks); the
    /// client beyond is told the listener is busy. Connections still in their handshake are
    /// capped too, at the same number (at least 64).
    #[arg(long, value_name = "N", default_value = "100", value_parser = parse_positive_count)]
    pub max_sessions: usize,

    /// Also serve clients that do not speak msock (nc, telnet) as plain TCP: NOT encrypted,
    /// NOT authenticated, no mobility; stderr says so for each. Without it they get one line
    /// saying so and are closed. Not with --authorized-keys or --psk-file: a plain client
    /// cannot prove a key.
    #[arg(long, conflicts_with_all = ["authorized_keys", "psk_file"])]
    pub allow_plain: bool,

    /// How long a new client may stay silent before it is taken for plain TCP (served with
    /// --allow-plain, else told so and closed; then at least 2s, so that a slow msock client
    /// is not refused).
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

    /// Accept file offers without asking. Without it, a --save-dir listener whose stdin and
    /// stderr are a terminal asks before accepting an offer from a sender key it has not seen
    /// ("accept 3 files, 1.2 GB, from SHA256:... at ADDR? [y/N]"; its stdin then answers and
    /// is not sent to byte-stream sessions); a key is seen when it is in --authorized-keys or
    /// in `accepted_senders` in the config directory, where each accepted key is added. A
    /// refused sender is told that the receiver declined. Other listeners accept and log
    /// each offer on stderr.
    #[arg(long, requires = "save_dir")]
    pub yes: bool,

    /// Port forwarding: join each session to a new TCP connection to HOST:PORT (like `socat
    /// TCP-LISTEN,fork TCP:HOST:PORT`) instead of stdin and stdout; with -k, sessions are
    /// served at the same time. Clients use `msock connect --local PORT` or ssh's ProxyCommand. Needs
    /// --authorized-keys or --psk-file, or --allow-anyone.
    #[arg(long, value_name = "HOST:PORT", conflicts_with_all = ["recv_only", "send_only"])]
    pub forward: Option<String>,
    /// Run a program for each session, its stdin and stdout wired to the session (as ncat
    /// -e): PROG and its ARGS, split at spaces (a backslash keeps the next character; no
    /// shell). `msock connect` exits with the program's exit status. It keeps running while
    /// its client moves, and gets EOF then SIGHUP when the session ends. Its environment adds
    /// MSOCK_PEER_ADDR (the client's address at the start), MSOCK_SESSION (the session id)
    /// and MSOCK_PEER_KEY (the client's key fingerprint, when the client has a key). Needs
    /// --authorized-keys or --psk-file, or --allow-anyone.
    #[arg(short = 'e', long, value_name = "\"PROG [ARGS]\"", conflicts_with_all = [
        "sh_exec", "save_dir", "recv_only", "send_only", "forward",
    ])]
    pub exec: Option<String>,

    /// Like --exec, but CMD runs in /bin/sh -c (pipes, variables, redirections; as ncat -c).
    #[arg(short = 'c', long, value_name = "CMD", conflicts_with_all = [
        "save_dir", "recv_only", "send_only", "forward",
    ])]
    pub sh_exec: Option<String>,

    /// With --exec/--sh-exec: run the program under a pseudo-terminal (a remote shell:
    /// `msock listen -k 2022 --sh-exec "$SHELL -l" --pty`). `msock connect` then puts its
    /// terminal in raw mode and sends its window size.
    #[arg(long)]
    pub pty: bool,

    /// With --exec/--sh-exec: send the program's stderr to the client too (default: to
    /// this listener's stderr). Under --pty it always goes to the terminal.
    #[arg(long)]
    pub stderr: bool,

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
Limits against hostile clients: one address may hold --max-flowpaths-per-source flowpaths,
  a share of --max-pending-per-name starting ones per name, --rate new ones per second,
  --max-names-per-source names and one registration per second (bursts of 20); a name no
  listener stayed on is forgotten after 10 minutes. The state file is written in the
  background, many registrations per write.
Clusters (--etcd): relays sharing one etcd share their names: a listener registers at any
  of them, a client reaches it through any of them (the relay it asks forwards the DIAL to
  the listener's relay, and the listener dials back to the client's relay: one relay hop).
  Names' secrets are sealed with the cluster key in etcd; without etcd quorum the relays keep
  their listeners and sessions and refuse new registrations (\"registry unavailable\").
Status lines (--json, stdout): registered, unregistered, expired, splice, splice_end (bytes
  up/down and why it ended), refused (reason), dropped (no first frame or session in time),
  forwarded_dial, taken_elsewhere, etcd (healthy), cluster_lease, summary.
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

    /// Forget a name (and its secret) when its listener has been gone this long. A name no
    /// listener stayed on (its control channel closed before its first keepalive and carried
    /// no session) is forgotten after 10 minutes, or this if shorter.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_positive_duration)]
    pub name_ttl: Duration,

    /// Most flowpaths carried at once (each session has one or more).
    #[arg(long, value_name = "N", default_value = "10000", value_parser = parse_positive_count)]
    pub max_flowpaths: usize,

    /// Most flowpaths carried at once for one client address (running or starting).
    #[arg(long, value_name = "N", default_value = "100", value_parser = parse_positive_count)]
    pub max_flowpaths_per_source: usize,

    /// Most flowpaths to one name still starting at once (waiting for the client's session
    /// or for the listener's answer); one client address may have half of them. A flowpath
    /// whose session does not start within --handshake-timeout is closed.
    #[arg(long, value_name = "N", default_value = "64", value_parser = parse_positive_count)]
    pub max_pending_per_name: usize,

    /// Most names registered at once.
    #[arg(long, value_name = "N", default_value = "10000", value_parser = parse_positive_count)]
    pub max_names: usize,

    /// Most names registered from one address (not counted with --auth-keys, where every
    /// listener holds an operator key). Registrations from one address are also limited to
    /// 1 per second, in bursts of 20.
    #[arg(long, value_name = "N", default_value = "32", value_parser = parse_positive_count)]
    pub max_names_per_source: usize,

    /// New client flowpaths (and lookups) per second from one address, in bursts of up to
    /// twice that; 0 for no limit.
    #[arg(long, value_name = "N", default_value = "50")]
    pub rate: f64,

    /// Drop a connection that sends no first frame within this long, a client flowpath whose
    /// session does not begin within it (no msock preamble after ROUTE), whose listener does
    /// not dial back or answer within it, or that stays half closed and quiet this long.
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
    /// Serve Prometheus metrics (OpenMetrics text) on `GET /metrics` at this address:
    /// registrations, lookups, spliced flowpaths, bytes each way, refusals by reason, names,
    /// listeners connected, open flowpaths, registration and lookup latency histograms.
    /// Keep it on a private address: it names no names, but shows the relay's load.
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,

    /// Cap what the flowpaths of one name move, in bytes per second each way (e.g. `10M` =
    /// 10 MiB/s; K, M, G are powers of 1024). Shared by all the name's clients.
    #[arg(long, value_name = "RATE", value_parser = parse_positive_size)]
    pub rate_per_name: Option<u64>,

    /// Cap what the flowpaths of one client address move, in bytes per second each way.
    #[arg(long, value_name = "RATE", value_parser = parse_positive_size)]
    pub rate_per_source: Option<u64>,

    /// Share names with the other relays of a cluster through etcd at these client URLs
    /// (http://HOST:PORT, comma-separated; tried in turn): any relay of the cluster then
    /// registers any name and reaches any listener. Needs --cluster-key-file. Without etcd
    /// (down, no quorum) the relay keeps what it has and refuses new registrations with
    /// "registry unavailable".
    #[arg(
        long,
        value_name = "URL[,URL...]",
        requires = "cluster_key_file",
        conflicts_with = "state"
    )]
    pub etcd: Option<String>,

    /// With --etcd: FILE holds the cluster key, the same at every relay of the cluster (at
    /// least 32 characters, e.g. from `openssl rand -hex 32`). It seals the names' secrets in
    /// etcd and authenticates the relays to each other.
    #[arg(long, value_name = "FILE", requires = "etcd")]
    pub cluster_key_file: Option<std::path::PathBuf>,

    /// With --etcd: this relay's id in the cluster (letters, digits, '.', '_', '-'; default:
    /// the advertised address with ':', '[' and ']' as '_', e.g. 10.0.0.1_7480). A relay
    /// whose id another live relay of the cluster holds refuses to start.
    #[arg(long, value_name = "ID", requires = "etcd")]
    pub relay_id: Option<String>,

    /// With --etcd: the address at which listeners and the other relays reach this relay
    /// (default: the --listen address, when it is not a wildcard).
    #[arg(long, value_name = "HOST:PORT", requires = "etcd")]
    pub advertise: Option<String>,

    /// With --etcd: prefix of the cluster's keys in etcd (several clusters can share one
    /// etcd); a '/' is added when it does not end with one.
    #[arg(
        long,
        value_name = "PREFIX",
        default_value = "msock/",
        requires = "etcd"
    )]
    pub etcd_prefix: String,

    #[arg(long)]
    pub json: bool,
}
