//! Client side of mobility: replacing flowpaths that broke. Each replacement is a new TCP
//! connection (to a freshly resolved or announced server address, from whatever local address
//! the routing picks now); once it is up, the driver sends the HELLO for the same path id on
//! it (so that an attempt that never connects does not use up a resume ticket).
//!
//! How an attempt reaches the server is the dial strategy's business: by default happy
//! eyeballs over the server's known addresses and its name, looked up again while connects
//! hang (the plan is [`crate::proto::redial`]'s); a layer above may supply a
//! [`DialStrategy`] of its own (the relay's `NAME@RELAY` lookup), so this module never names
//! it.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Sleep;

use super::client::{resolve, ConnectError, Family, Hop};
use super::conn::{connect_tcp, FlowConn};
use super::policy::Binding;
use crate::proto::redial::{Redial, RedialAction, RedialConfig};
use crate::proto::{Deframer, PathId};

/// Where one reconnect attempt leaves from: the local address and interface of the path
/// being replaced (or the user's pinned source), if any.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// Local address to connect from (port 0).
    pub source: Option<SocketAddr>,
    /// Interface to bind the connection to.
    pub device: Option<String>,
}

/// A dial strategy another layer provides for reaching a server other than by resolving its
/// name and connecting to it (e.g. looking a name up at a relay and connecting directly or
/// through it).
pub trait DialStrategy: Send + Sync {
    /// The ways to reach the server for a session's first flowpath, in order; each
    /// connection attempt may take `wait`.
    fn plan(&self, wait: Duration) -> PlanFuture;
    /// One reconnect attempt from `from`, within `attempt` time. It returns a connection
    /// ready for the path's HELLO (any header the route needs already queued on it).
    fn redial(&self, from: Origin, attempt: Duration) -> AttemptFuture;
}

/// The future of [`DialStrategy::plan`].
pub type PlanFuture = Pin<Box<dyn Future<Output = Result<Vec<Hop>, ConnectError>> + Send>>;

/// The future of one reconnect attempt.
pub type AttemptFuture = Pin<Box<dyn Future<Output = Result<FlowConn, AttemptError>> + Send>>;

/// Why one reconnect attempt failed (it is retried; the message goes to the log and, if the
/// session dies, into its error).
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// No connection within the attempt's time.
    #[error("no connection within {}", humantime::format_duration(*.0))]
    TimedOut(Duration),
    /// Resolving or connecting failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The connection came up but could not be set up as a flowpath (local system).
    #[error("{0}")]
    Setup(io::Error),
    /// The dial strategy failed, for the reason it gives.
    #[error("{0}")]
    Strategy(String),
}

/// How a client reaches its server again.
#[derive(Clone)]
pub struct ReconnectPolicy {
    /// The destination as the user gave it; re-resolved on every attempt, so a server that
    /// moved and updated its name is found again.
    pub dest: String,
    /// Address family restriction.
    pub family: Family,
    /// Local address to connect from, if the user pinned one.
    pub source: Option<IpAddr>,
    /// Give up on one attempt after this long (the attach that follows is bounded by the
    /// session's dead time). A connect to an address the server was known at is bounded by a
    /// few smoothed RTTs instead (see [`crate::proto::redial`]).
    pub attempt_timeout: Duration,
    /// Wait this long between failed attempts.
    pub retry_interval: Duration,
    /// How to reach the server; None: resolve `dest` and connect to it directly.
    pub(crate) strategy: Option<Arc<dyn DialStrategy>>,
}

impl std::fmt::Debug for ReconnectPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconnectPolicy")
            .field("dest", &self.dest)
            .field("family", &self.family)
            .field("source", &self.source)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("retry_interval", &self.retry_interval)
            .field("strategy", &self.strategy.is_some())
            .finish()
    }
}

/// What happened to a replacement.
pub(crate) enum ReplaceEvent {
    /// A TCP connection to the server is up: send the path's HELLO on it.
    Connected(PathId, Box<FlowConn>),
    /// The attempt failed; try again after the given time (at once if the network changed
    /// while it was under way; else when the attempt would have looked the name up next, at
    /// most the retry interval).
    Failed(PathId, AttemptError, Duration),
    /// The retry interval has passed: start a new attempt.
    RetryDue(PathId),
}

/// One attempt: its outcome, and on failure how long until the next one is due (None: the
/// retry interval).
type Attempt =
    Pin<Box<dyn Future<Output = (Result<FlowConn, AttemptError>, Option<Duration>)> + Send>>;

enum Slot {
    /// An attempt in flight, from `bind`; `changed` is set when the network changed
    /// meanwhile, so that a failure is retried at once rather than after the retry interval.
    Connecting {
        attempt: Attempt,
        bind: Option<Binding>,
        changed: bool,
    },
    Waiting(Pin<Box<Sleep>>),
}

/// Attempts in progress, at most one per path id.
pub(crate) struct Replacer {
    policy: ReconnectPolicy,
    slots: Vec<(PathId, Slot)>,
    /// An address the server announced (RECONNECT), tried before the name.
    server_hint: Option<SocketAddr>,
    /// The address the server was last reached at (tried at once, next to the name).
    last_server: Option<SocketAddr>,
    /// The session's latest smoothed RTT to the server: it bounds a connect to a known
    /// address.
    rtt: Option<Duration>,
}

impl Replacer {
    /// A replacer with nothing in progress.
    pub fn new(policy: ReconnectPolicy) -> Self {
        Replacer {
            policy,
            slots: Vec::new(),
            server_hint: None,
            last_server: None,
            rtt: None,
        }
    }

    /// True while path `id` is being replaced.
    pub(crate) fn is_replacing(&self, id: PathId) -> bool {
        self.slots.iter().any(|(p, _)| *p == id)
    }

    /// The server announced a new address: use it from now on, before the name.
    pub(crate) fn set_server_hint(&mut self, addr: SocketAddr) {
        self.server_hint = Some(addr);
        // The address we reached it at before is the one it left.
        self.last_server = None;
    }

    /// The server was reached at `addr` (its first flowpath, or a replacement).
    pub(crate) fn set_last_server(&mut self, addr: SocketAddr) {
        self.last_server = Some(addr);
    }

    /// The session measured `rtt` to the server (kept until a newer sample).
    pub(crate) fn set_rtt(&mut self, rtt: Duration) {
        self.rtt = Some(rtt);
    }

    /// Starts connecting a replacement for path `id`, from `bind` if the path has one (else
    /// from the policy's source, or wherever the routing table says).
    pub fn start(&mut self, id: PathId, bind: Option<Binding>) {
        self.slots.retain(|(p, _)| *p != id);
        let attempt = self.attempt(bind.clone());
        self.slots.push((
            id,
            Slot::Connecting {
                attempt,
                bind,
                changed: false,
            },
        ));
    }

    fn attempt(&self, bind: Option<Binding>) -> Attempt {
        let policy = self.policy.clone();
        let mut known: Vec<SocketAddr> = self.server_hint.into_iter().collect();
        known.extend(self.last_server.filter(|a| Some(*a) != self.server_hint));
        Box::pin(connect(policy, known, self.rtt, bind))
    }

    /// Schedules another attempt for `id` after the retry interval, or at once if the
    /// network changed while the failed attempt was under way.
    pub(crate) fn retry_later(&mut self, id: PathId, changed_meanwhile: bool) {
        let wait = if changed_meanwhile {
            Duration::ZERO
        } else {
            self.policy.retry_interval
        };
        self.retry_after(id, wait);
    }

    /// Schedules another attempt for `id` after `wait`.
    pub(crate) fn retry_after(&mut self, id: PathId, wait: Duration) {
        self.slots.retain(|(p, _)| *p != id);
        self.slots
            .push((id, Slot::Waiting(Box::pin(tokio::time::sleep(wait)))));
    }

    /// Something changed (an address, link or route came or went): waiting attempts go now
    /// instead of later, and attempts in flight start over, since one begun before the
    /// change (say, before the route to the server was back) can hang in the kernel for
    /// seconds; a failure of the new one is retried at once.
    pub(crate) fn retry_now(&mut self) {
        let fresh: Vec<(usize, Attempt)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, (_, slot))| match slot {
                Slot::Connecting { bind, .. } => Some((i, self.attempt(bind.clone()))),
                Slot::Waiting(_) => None,
            })
            .collect();
        for (i, new) in fresh {
            if let Slot::Connecting {
                attempt, changed, ..
            } = &mut self.slots[i].1
            {
                *attempt = new;
                *changed = true;
            }
        }
        for (_, slot) in &mut self.slots {
            if let Slot::Waiting(s) = slot {
                s.as_mut().reset(tokio::time::Instant::now());
            }
        }
    }

    /// Forgets every attempt in progress and returns their path ids (to start them over).
    pub(crate) fn take_ids(&mut self) -> Vec<PathId> {
        self.slots.drain(..).map(|(id, _)| id).collect()
    }

    /// Forgets whatever is in progress for `id`.
    pub(crate) fn clear_slot(&mut self, id: PathId) {
        self.slots.retain(|(p, _)| *p != id);
    }

    /// Stops every attempt (the session ended).
    pub fn clear(&mut self) {
        self.slots.clear();
    }

    /// The next thing that happened, if any.
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Option<ReplaceEvent> {
        for i in 0..self.slots.len() {
            let id = self.slots[i].0;
            let ev = match &mut self.slots[i].1 {
                Slot::Connecting {
                    attempt, changed, ..
                } => match attempt.as_mut().poll(cx) {
                    Poll::Ready((Ok(conn), _)) => ReplaceEvent::Connected(id, Box::new(conn)),
                    Poll::Ready((Err(e), next)) => {
                        let interval = self.policy.retry_interval;
                        let wait = match (*changed, next) {
                            (true, _) => Duration::ZERO,
                            (false, Some(next)) => next.min(interval),
                            (false, None) => interval,
                        };
                        ReplaceEvent::Failed(id, e, wait)
                    }
                    Poll::Pending => continue,
                },
                Slot::Waiting(s) => match s.as_mut().poll(cx) {
                    Poll::Ready(()) => ReplaceEvent::RetryDue(id),
                    Poll::Pending => continue,
                },
            };
            self.slots.swap_remove(i);
            return Some(ev);
        }
        None
    }
}

/// One attempt: by the policy's dial strategy, or happy eyeballs over the server's known
/// addresses (`known`: the announced one first) and its name, looked up again while connects
/// hang (see [`crate::proto::redial`]); a connect to a known address is bounded by `rtt`.
async fn connect(
    policy: ReconnectPolicy,
    known: Vec<SocketAddr>,
    rtt: Option<Duration>,
    bind: Option<Binding>,
) -> (Result<FlowConn, AttemptError>, Option<Duration>) {
    let source = bind
        .as_ref()
        .map(|b| b.addr)
        .or(policy.source)
        .map(|ip| SocketAddr::new(ip, 0));
    let device = bind.map(|b| b.iface);
    if let Some(strategy) = &policy.strategy {
        let from = Origin { source, device };
        let r = tokio::time::timeout(
            policy.attempt_timeout,
            strategy.redial(from, policy.attempt_timeout),
        )
        .await
        .unwrap_or(Err(AttemptError::TimedOut(policy.attempt_timeout)));
        return (r, None);
    }
    let cfg = RedialConfig {
        known_bound: RedialConfig::known_bound_for(rtt, policy.attempt_timeout),
        fresh_bound: policy.attempt_timeout,
        relookup: policy.retry_interval.max(MIN_RELOOKUP),
        give_up: policy.attempt_timeout,
    };
    // A source address fixes the family: skip destinations it cannot reach.
    let usable = |a: &SocketAddr| source.is_none_or(|s| s.is_ipv4() == a.is_ipv4());
    let known: Vec<SocketAddr> = known.into_iter().filter(|a| usable(a)).collect();
    let start = tokio::time::Instant::now();
    let mut plan = Redial::new(Duration::ZERO, &known, cfg);
    let mut connects = tokio::task::JoinSet::new();
    let mut lookup: Option<tokio::task::JoinHandle<Result<Vec<SocketAddr>, ConnectError>>> = None;
    let mut last: Option<AttemptError> = None;
    loop {
        let now = start.elapsed();
        while let Some(action) = plan.poll(now) {
            match action {
                RedialAction::Connect { addr, deadline } => {
                    let (device, wait) = (device.clone(), deadline.saturating_sub(now));
                    tracing::debug!("connecting to {addr} (for at most {wait:?})");
                    connects.spawn(async move {
                        (
                            addr,
                            connect_tcp(addr, source, device.as_deref(), Some(wait)).await,
                        )
                    });
                }
                RedialAction::Resolve => {
                    let (dest, family) = (policy.dest.clone(), policy.family);
                    lookup = Some(tokio::spawn(async move { resolve(&dest, family).await }));
                }
            }
        }
        if plan.failed(now) {
            let e = last.unwrap_or(AttemptError::TimedOut(policy.attempt_timeout));
            return (Err(e), Some(plan.retry_in(now)));
        }
        let wake = start + plan.next_wakeup();
        tokio::select! {
            Some(done) = connects.join_next(), if !connects.is_empty() => {
                let Ok((addr, result)) = done else { continue };
                match result {
                    Ok(stream) => {
                        let conn = FlowConn::new(stream, Deframer::new());
                        return (conn.map_err(AttemptError::Setup), None);
                    }
                    Err(e) => {
                        tracing::info!("connect to {addr} failed: {e}");
                        plan.connect_failed(addr);
                        last = Some(ConnectError::Connect(addr, e).into());
                    }
                }
            }
            found = async { lookup.as_mut().expect("guarded").await }, if lookup.is_some() => {
                lookup = None;
                let now = start.elapsed();
                match found {
                    Ok(Ok(addrs)) => {
                        let addrs: Vec<SocketAddr> = addrs.into_iter().filter(usable).collect();
                        if addrs.is_empty() && last.is_none() {
                            let first = known.first().copied();
                            if let (Some(s), Some(a)) = (source, first) {
                                last = Some(ConnectError::SourceFamily(s, a).into());
                            }
                        }
                        plan.resolved(now, &addrs);
                    }
                    Ok(Err(e)) => {
                        tracing::info!("looking up {} failed: {e}", policy.dest);
                        last.get_or_insert(e.into());
                        plan.resolved(now, &[]);
                    }
                    Err(_) => plan.resolved(now, &[]),
                }
            }
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

/// Looking the name up again more often than this helps nobody (and loads a DNS server).
const MIN_RELOOKUP: Duration = Duration::from_millis(200);
