//! Client side of mobility: replacing flowpaths that broke. Each replacement is a new TCP
//! connection (to a freshly resolved or announced server address, from whatever local address
//! the routing picks now); once it is up, the driver sends the HELLO for the same path id on
//! it (so that an attempt that never connects does not use up a resume ticket).
//!
//! How an attempt reaches the server is the dial strategy's business: by default the
//! destination's name is resolved and connected to directly; a layer above may supply a
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

use super::client::{connect_any, resolve, ConnectError, Family, Hop};
use super::conn::FlowConn;
use super::policy::Binding;
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
    /// Give up on one TCP connect after this long (the attach that follows is bounded by the
    /// session's dead time).
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
    /// The attempt failed; try again after the retry interval (at once if the flag says the
    /// network changed while it was under way).
    Failed(PathId, AttemptError, bool),
    /// The retry interval has passed: start a new attempt.
    RetryDue(PathId),
}

type Attempt = AttemptFuture;

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
}

impl Replacer {
    /// A replacer with nothing in progress.
    pub fn new(policy: ReconnectPolicy) -> Self {
        Replacer {
            policy,
            slots: Vec::new(),
            server_hint: None,
        }
    }

    /// True while path `id` is being replaced.
    pub(crate) fn is_replacing(&self, id: PathId) -> bool {
        self.slots.iter().any(|(p, _)| *p == id)
    }

    /// The server announced a new address: use it from now on, before the name.
    pub(crate) fn set_server_hint(&mut self, addr: SocketAddr) {
        self.server_hint = Some(addr);
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
        let hint = self.server_hint;
        Box::pin(async move {
            tokio::time::timeout(policy.attempt_timeout, connect(policy.clone(), hint, bind))
                .await
                .unwrap_or(Err(AttemptError::TimedOut(policy.attempt_timeout)))
        })
    }

    /// Schedules another attempt for `id` after the retry interval, or at once if the
    /// network changed while the failed attempt was under way.
    pub(crate) fn retry_later(&mut self, id: PathId, changed_meanwhile: bool) {
        self.slots.retain(|(p, _)| *p != id);
        let wait = if changed_meanwhile {
            Duration::ZERO
        } else {
            self.policy.retry_interval
        };
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
                    Poll::Ready(Ok(conn)) => ReplaceEvent::Connected(id, Box::new(conn)),
                    Poll::Ready(Err(e)) => ReplaceEvent::Failed(id, e, *changed),
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

/// One attempt: by the policy's dial strategy, or resolve (the server's announced address
/// first) and connect.
async fn connect(
    policy: ReconnectPolicy,
    hint: Option<SocketAddr>,
    bind: Option<Binding>,
) -> Result<FlowConn, AttemptError> {
    let source = bind
        .as_ref()
        .map(|b| b.addr)
        .or(policy.source)
        .map(|ip| SocketAddr::new(ip, 0));
    let device = bind.map(|b| b.iface);
    if let Some(strategy) = &policy.strategy {
        let from = Origin { source, device };
        return strategy.redial(from, policy.attempt_timeout).await;
    }
    let mut addrs = Vec::new();
    if let Some(h) = hint {
        addrs.push(h);
    }
    match resolve(&policy.dest, policy.family).await {
        Ok(found) => addrs.extend(found.into_iter().filter(|a| Some(*a) != hint)),
        Err(e) if addrs.is_empty() => return Err(e.into()),
        Err(_) => {}
    }
    // Share the attempt's time among the addresses, so that a dead announced address does not
    // keep the name's addresses from being tried.
    let each = (policy.attempt_timeout / addrs.len().max(1) as u32).max(Duration::from_millis(500));
    let stream = connect_any(&addrs, source, device.as_deref(), Some(each)).await?;
    FlowConn::new(stream, Deframer::new()).map_err(AttemptError::Setup)
}
