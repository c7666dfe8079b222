//! The commands that serve: `msock listen` and `msock proxy`.

// Help texts show "[IPV6]:PORT" literally; rustdoc must not read it as a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::time::Duration;

use clap::Args;

use super::parse::*;
use super::StreamArgs;

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

    /// Run a program for each session, its stdin and stdout wired to the session (as ncat
    /// -e): PROG and its ARGS, split at spaces (a backslash keeps the next character; no
    /// shell). `msock connect` exits with the program's exit status. It keeps running while
    /// its client moves, and gets EOF then SIGHUP when the session ends. Its environment adds
    /// MSOCK_PEER_ADDR (the client's address at the start), MSOCK_SESSION (the session id)
    /// and MSOCK_PEER_KEY (the client's key fingerprint, when the client has a key). Needs
    /// --psk-file, or --allow-anyone.
    #[arg(short = 'e', long, value_name = "\"PROG [ARGS]\"", conflicts_with_all = [
        "sh_exec", "save_dir", "recv_only", "send_only",
    ])]
    pub exec: Option<String>,

    /// Like --exec, but CMD runs in /bin/sh -c (pipes, variables, redirections; as ncat -c).
    #[arg(short = 'c', long, value_name = "CMD", conflicts_with_all = [
        "save_dir", "recv_only", "send_only",
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

    /// Let --exec/--sh-exec run for any client, with no key to check (without it they need
    /// --psk-file). Plain TCP clients (which have no key) are served a program only with it.
    #[arg(long)]
    pub allow_anyone: bool,

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
