//! The command line, defined once with clap derive; the man pages and shell completions are
//! generated from this definition (see `examples/gen_docs.rs`). One file per side: the
//! commands that serve (`server`), the ones that dial (`client`), and the value parsers
//! (`parse`).

// Help texts show "[IPV6]:PORT" literally; rustdoc must not read it as a link.
#![allow(rustdoc::broken_intra_doc_links)]

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::runtime::ifaces::{parse_kind_override, IfaceKind};

mod client;
pub mod config;
mod parse;
mod server;

pub use client::{BenchArgs, ConnectArgs, SendFileArgs};
pub use parse::*;
pub use server::{ListenArgs, ProxyArgs};

/// msock: netcat and iperf3 for networks that move.
///
/// An msock connection is a session: a reliable byte stream that is not tied to one TCP
/// connection. It survives address changes, can use several network interfaces at once and
/// still talks plain TCP to ordinary tools like nc (`listen --allow-plain`, `connect --plain`).
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

impl Cli {
    /// Parses the command line as [`Parser::parse`] does (a usage error exits 2), then joins
    /// destinations given as HOST PORT (see [`Command::join_destinations`]).
    pub fn parse_joined() -> Cli {
        let mut cli = Cli::parse();
        if let Err(msg) = cli.command.join_destinations() {
            use clap::CommandFactory;
            Cli::command()
                .error(clap::error::ErrorKind::ValueValidation, msg)
                .exit();
        }
        cli
    }
}

/// The long help's section on encryption and keys.
const ENCRYPTION: &str = "\
Exit status: 0 success, 1 network error (refused, reset, timeout, peer vanished, peer error),
2 usage or local error (bad arguments, unreadable input), 130 interrupted.

ENCRYPTION
  Sessions are encrypted and authenticated end to end by default: a Noise handshake
  (Noise_XX_25519_AESGCM_SHA256) when the session opens, then AES-128-GCM records with a key
  of their own on every flowpath. Each listener has a long-term key, created on first use in
  the config directory ($MSOCK_CONFIG_DIR, else $XDG_CONFIG_HOME/msock, else ~/.config/msock,
  file listener.key, mode 0600); `msock listen --show-key` prints its fingerprint. A client
  pins the key it meets first at each host, for all its ports (file known_peers, like ssh's
  known_hosts: a host name and the address it resolved to are recognised together), and
  refuses a different one later, showing both fingerprints and the line that pins the old
  one; `msock connect --forget-key HOST` removes it; --peer-key FINGERPRINT pins explicitly. Each client has a
  long-term key too (file client.key, the same way; connect, send-file and bench use it),
  sent encrypted in the handshake once the listener's key checked out; `msock connect
  --show-key` prints its fingerprint. `msock listen --authorized-keys FILE` admits only the
  clients listed there (re-read when it changes); a refused client is told the fingerprint
  to add. Moved flowpaths rejoin their session by proving its secret, not by key. --psk-file
  FILE (both ends) adds a pre-shared key. --no-encrypt (both ends; a mismatch is refused,
  never downgraded) turns encryption off, and with it client keys (no --authorized-keys).
  Plain TCP peers (nc, connect --plain) are never encrypted.";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Wait for a connection and copy it to stdout, stdin to it (like `nc -l`).
    ///
    /// Serves msock clients as sessions (with -k several at once) and, with --allow-plain,
    /// ordinary TCP clients (nc, telnet, a browser) as plain TCP, told apart by their first
    /// bytes.
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
    /// the receiver reports what it holds of this sender's own partial files, the sender
    /// proves those bytes are its own (their hash), and complete identical files are skipped.
    /// Partial files belong to the sender that created them (a secret in its config
    /// directory, `transfer.secret`): no other sender can see, resume or truncate them.
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

/// How a client reaches its listener: shared by connect, send-file and bench.
#[derive(Debug, Args, Clone)]
pub struct DialArgs {
    /// Give up connecting (TCP connect and msock handshake) after this long. When a session
    /// reconnects, an attempt at an address it already used gets 4 smoothed RTTs (at least
    /// 0.5 s, at most this), while a fresh lookup of the name races it.
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
    /// other key. Without it the key seen first at this host is pinned and later required
    /// (trust on first use, like ssh; see ENCRYPTION in `msock --help`).
    #[arg(long, value_name = "FINGERPRINT", conflicts_with = "no_encrypt", value_parser = parse_fingerprint)]
    pub peer_key: Option<String>,

    #[command(flatten)]
    pub policy: PolicyArgs,

    /// A pre-shared key set by the command itself (pairing by code), not a flag.
    #[arg(skip)]
    pub psk: Option<[u8; 32]>,
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

    /// Only use this interface; repeat for several, in order of preference. A NAME this
    /// machine does not have is warned about and used if it appears; with none of the names
    /// here (--iface and --backup), connecting is refused, listing the interfaces there are.
    #[arg(long, value_name = "NAME")]
    pub iface: Vec<String>,

    /// Use this interface only while no other is usable; repeatable.
    #[arg(long, value_name = "NAME")]
    pub backup: Vec<String>,

    /// Treat interface NAME as KIND (wifi, cellular, ethernet, tunnel or other) instead of what
    /// msock detects, e.g. --iface-kind enx0c5b8f279a64=cellular for a tethered phone.
    /// Repeat for several interfaces. A NAME this machine does not have is warned about (as
    /// with --iface) and applies if it appears.
    #[arg(long, value_name = "NAME=KIND", value_parser = parse_kind_override)]
    pub iface_kind: Vec<(String, IfaceKind)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
