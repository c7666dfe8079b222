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
130 interrupted."
)]
pub struct Cli {
    /// More diagnostics on stderr (-v: connections and paths, -vv: protocol detail).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

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
}

/// Options shared by every command that moves a byte stream.
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

    /// Only receive: do not read stdin, close our sending side at once.
    #[arg(long, conflicts_with = "send_only")]
    pub recv_only: bool,

    /// Only send: discard whatever the peer sends instead of writing it to stdout.
    #[arg(long)]
    pub send_only: bool,
}

/// `msock listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Where to listen: PORT (all addresses), ADDR:PORT or [IPV6]:PORT. Port 0 picks a free
    /// port and prints it on stderr.
    #[arg(value_name = "[ADDR:]PORT")]
    pub addr: String,

    /// After a session ends, wait for the next one (sessions are served one at a time).
    #[arg(short, long)]
    pub keep_open: bool,

    /// Refuse clients that do not speak msock instead of serving them as plain TCP.
    #[arg(long)]
    pub no_plain: bool,

    /// How long a new client may stay silent before it is taken for plain TCP.
    #[arg(long, value_name = "DURATION", default_value = "500ms", value_parser = parse_duration)]
    pub detect_wait: Duration,

    #[command(flatten)]
    pub stream: StreamArgs,
}

/// `msock connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// The listener: HOST:PORT or [IPV6]:PORT (not given with --list-ifaces).
    #[arg(value_name = "HOST:PORT", required_unless_present = "list_ifaces")]
    pub dest: Option<String>,

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

    #[command(flatten)]
    pub policy: PolicyArgs,

    #[command(flatten)]
    pub stream: StreamArgs,
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

impl PolicyArgs {
    /// The policy these flags ask for.
    pub fn to_policy(&self) -> crate::runtime::policy::Policy {
        use crate::runtime::policy::{Mode, Policy};
        let mode = if self.stripe {
            Mode::Stripe
        } else if self.prefer_wifi {
            Mode::Prefer(IfaceKind::Wifi)
        } else if self.prefer_cellular {
            Mode::Prefer(IfaceKind::Cellular)
        } else {
            Mode::Route
        };
        Policy {
            mode,
            only: self.iface.clone(),
            backup: self.backup.clone(),
            kinds: self.iface_kind.iter().cloned().collect(),
        }
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
