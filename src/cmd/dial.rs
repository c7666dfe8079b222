//! The client side every session command shares (connect, send-file, bench): turns the dial
//! flags into a [`ClientConfig`] (with the relay's dial strategy for `NAME@RELAY`) for
//! [`client::dial`], which does the work.

use std::sync::Arc;
use std::time::Duration;

use super::{family, session_config, Failure};
use crate::cli::{DialArgs, PolicyArgs, StreamArgs};
use crate::proto::Service;
use crate::runtime::client::{self, ClientConfig, DialError};
use crate::runtime::events::Events;
use crate::runtime::ifaces::{self, IfaceKind};
use crate::runtime::policy::Mode;
use crate::runtime::policy::Policy;
use crate::runtime::reconnect::{AttemptError, AttemptFuture, DialStrategy, Origin, PlanFuture};
use crate::runtime::ConnectError;
use crate::runtime::{AppSink, AppSource, Driver, Family};

/// The interface policy the flags ask for.
pub fn policy(args: &PolicyArgs) -> Policy {
    let mode = if args.stripe {
        Mode::Stripe
    } else if args.prefer_wifi {
        Mode::Prefer(IfaceKind::Wifi)
    } else if args.prefer_cellular {
        Mode::Prefer(IfaceKind::Cellular)
    } else {
        Mode::Route
    };
    Policy {
        mode,
        only: args.iface.clone(),
        backup: args.backup.clone(),
        kinds: args.iface_kind.iter().cloned().collect(),
        fixed: Vec::new(),
    }
}

/// Checks that `dest` looks like HOST:PORT or NAME@RELAY\[:PORT\] (exit 2 otherwise); true for
/// NAME@RELAY.
pub(crate) fn check_dest(dest: &str) -> Result<bool, Failure> {
    if crate::relay::client::parse(dest)
        .map_err(Failure::local)?
        .is_some()
    {
        return Ok(true);
    }
    if let Some((_, port)) = dest.rsplit_once(':') {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => Ok(false),
            _ => Err(Failure::local(format!(
                "'{port}' in '{dest}' is not a port number (1-65535)"
            ))),
        }
    } else if !dest.is_empty() && dest.bytes().all(|b| b.is_ascii_digit()) {
        Err(Failure::local(format!(
            "'{dest}' is a port without a host: give HOST PORT or HOST:PORT, e.g. example.net 9000"
        )))
    } else {
        Err(Failure::local(format!(
            "'{dest}' has no port: give HOST:PORT or HOST PORT, e.g. example.net:9000 or [::1]:9000, or NAME@RELAY for a listener registered at a relay"
        )))
    }
}

/// Checks that `-s ADDR` is an address of this machine (exit 2 otherwise: the user's flag).
pub(crate) fn check_source(source: Option<std::net::IpAddr>) -> Result<(), Failure> {
    let Some(ip) = source else { return Ok(()) };
    match std::net::UdpSocket::bind((ip, 0)) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Err(Failure::local(format!(
            "-s {ip} is not an address of this machine; give one it has (see `ip addr` or msock connect --list-ifaces)"
        ))),
        // Anything else shows when connecting from it.
        _ => Ok(()),
    }
}

/// Opens a session for `service` to `dest` and returns its driver, ready to run, moving bytes
/// from `input` and to `output`.
pub async fn dial<I: AppSource, O: AppSink>(
    dest: &str,
    dial: &DialArgs,
    stream: &StreamArgs,
    service: Service,
    input: Option<I>,
    output: Option<O>,
) -> Result<Driver<I, O>, Failure> {
    let policy = policy(&dial.policy);
    dial_with_policy(dest, dial, stream, policy, service, input, output).await
}

/// Like [`dial`], with an interface policy given by the caller instead of the flags (e.g.
/// explicit source addresses to stripe over).
pub(crate) async fn dial_with_policy<I: AppSource, O: AppSink>(
    dest: &str,
    dial: &DialArgs,
    stream: &StreamArgs,
    policy: Policy,
    service: Service,
    input: Option<I>,
    output: Option<O>,
) -> Result<Driver<I, O>, Failure> {
    let cfg = client_config(dest, dial, stream, policy, service)?;
    client::dial(cfg, input, output)
        .await
        .map_err(|e| dial_failure(e, service))
}

/// Like [`dial`], but a session that could not be set up comes back as the typed error
/// (inner `Err`), for a caller that reacts to one kind of refusal; the outer `Err` is for
/// flags that cannot work.
pub(crate) async fn try_dial<I: AppSource, O: AppSink>(
    dest: &str,
    dial: &DialArgs,
    stream: &StreamArgs,
    service: Service,
    input: Option<I>,
    output: Option<O>,
) -> Result<Result<Driver<I, O>, DialError>, Failure> {
    let cfg = client_config(dest, dial, stream, policy(&dial.policy), service)?;
    Ok(client::dial(cfg, input, output).await)
}

/// The client configuration the flags ask for.
fn client_config(
    dest: &str,
    dial: &DialArgs,
    stream: &StreamArgs,
    policy: Policy,
    service: Service,
) -> Result<ClientConfig, Failure> {
    let named = check_dest(dest)?;
    check_source(dial.source)?;
    warn_unknown_ifaces(&policy);
    let mut session = session_config(stream)?;
    session.service = service;
    if dial.psk.is_some() {
        // Paired by code: the pairing's key.
        session.psk = dial.psk;
    }
    if session.encrypt {
        // The client's long-term key, which the listener may authorize (--authorized-keys).
        let id = crate::runtime::keys::client_identity().map_err(Failure::local)?;
        session.identity = Some(id);
    }
    Ok(ClientConfig {
        dest: dest.to_owned(),
        family: family(stream),
        source: dial.source,
        wait: dial.wait,
        retry_interval: dial.retry_interval,
        peer_key: dial.peer_key.clone(),
        policy,
        session,
        resume_timeout: stream.resume_timeout,
        events: Events::sessions(stream.json_events),
        strategy: named.then(|| {
            Arc::new(ViaRelay {
                dest: dest.to_owned(),
                family: family(stream),
            }) as Arc<dyn DialStrategy>
        }),
    })
}

/// Which command dialled, for what to tell its user when the server does not speak msock:
/// each gets a hint it can act on with its own flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hint {
    /// `msock connect` (a byte stream or a program): it has --plain.
    Connect,
    /// `msock connect --local`: carries sessions only (no --plain there).
    Local,
    /// `msock send-file`.
    SendFile,
    /// `msock bench`.
    Bench,
}

impl Hint {
    /// The command that opens sessions of `service`.
    fn of(service: Service) -> Hint {
        match service {
            Service::Stream | Service::Program | Service::Other(_) => Hint::Connect,
            Service::File => Hint::SendFile,
            Service::Bench => Hint::Bench,
        }
    }

    /// What to do when the server does not speak msock.
    fn not_msock(self) -> &'static str {
        match self {
            Hint::Connect => "to talk to a plain TCP server use --plain",
            Hint::Local => {
                "connect --local carries msock sessions only: the far end needs `msock listen \
                 --forward HOST:PORT` (for a plain TCP server, point the program at it directly)"
            }
            Hint::SendFile => {
                "send-file needs `msock listen --save-dir DIR` on the far end (nc or a web server cannot take it)"
            }
            Hint::Bench => {
                "msock bench needs `msock listen` on the far end (an iperf3 server is not one: use iperf3 -c for it)"
            }
        }
    }
}

/// The command's failure for a session of `service` that could not be set up.
pub(crate) fn dial_failure(e: DialError, service: Service) -> Failure {
    dial_failure_for(e, Hint::of(service))
}

/// Like [`dial_failure`], for the command `hint` names.
pub(crate) fn dial_failure_for(e: DialError, hint: Hint) -> Failure {
    match e {
        DialError::Connect(e @ ConnectError::NotMsock(..)) => {
            Failure::network(format!("{e}; {}", hint.not_msock()))
        }
        // A listener serving all it will: say so plainly (it is no fault of ours or theirs).
        DialError::Connect(ConnectError::Handshake(
            addr,
            crate::proto::SessionError::PeerError {
                code: crate::proto::ErrorCode::Busy,
                reason,
            },
        )) => Failure::network(format!(
            "{addr}: listener busy: {}; try again later",
            crate::proto::text::Untrusted(&reason)
        )),
        e => e.into(),
    }
}

/// Warns about each interface that `--iface`, `--backup` or `--iface-kind` names and this
/// machine does not have now (a typo, or one that has not appeared yet: the flag applies if
/// it does). The same rule for all three: only when `--iface`/`--backup` leave no interface at
/// all is it refused (exit 2, naming them and listing what exists), when dialling.
fn warn_unknown_ifaces(policy: &Policy) {
    if policy.kinds.is_empty() && policy.only.is_empty() && policy.backup.is_empty() {
        return;
    }
    let found = ifaces::discover(&policy.kinds);
    let missing = |n: &String| !found.iter().any(|i| &i.name == n);
    let mut kinds: Vec<&String> = policy.kinds.keys().filter(|n| missing(n)).collect();
    kinds.sort();
    let usable = |names: &[String]| names.iter().any(|n| !missing(n));
    // With none of them here, the refusal says it all.
    if usable(&policy.only) || usable(&policy.backup) {
        for (flag, names) in [("--iface", &policy.only), ("--backup", &policy.backup)] {
            for name in names.iter().filter(|n| missing(n)) {
                tracing::warn!(
                    "{flag} {name}: there is no interface {name} now (it is used if one appears; see msock connect --list-ifaces)"
                );
            }
        }
    }
    for name in kinds {
        tracing::warn!(
            "--iface-kind {name}=...: there is no interface {name} now (it applies if one appears; see msock connect --list-ifaces)"
        );
    }
}

/// The dial strategy for `NAME@RELAY`: the name's direct addresses (as the relay knows them
/// now), then the relay; every reconnect attempt looks the name up again (the listener may
/// have moved).
struct ViaRelay {
    dest: String,
    family: Family,
}

impl DialStrategy for ViaRelay {
    fn plan(&self, wait: Duration) -> PlanFuture {
        let (dest, family) = (self.dest.clone(), self.family);
        Box::pin(async move { crate::relay::client::plan(&dest, family, wait).await })
    }

    fn redial(&self, from: Origin, attempt: Duration) -> AttemptFuture {
        let (dest, family) = (self.dest.clone(), self.family);
        Box::pin(async move {
            let device = from.device.as_deref();
            crate::relay::client::reconnect(&dest, family, from.source, device, attempt)
                .await
                .map_err(AttemptError::Strategy)
        })
    }
}
