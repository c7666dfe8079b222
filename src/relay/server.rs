//! The relay server (`msock proxy`): accepts connections, tells the four kinds apart by their
//! first frame, and runs each: control channels (REGISTER, in `control`), client flowpaths
//! (ROUTE) and listener dial-backs (SPLICE, both in `route`), and name lookups (LOOKUP). See
//! the module docs of [`crate::relay`] for the protocol.
//!
//! The state file is written by one background task ([`Relay::saver`]), in batches: a change
//! asks for a save and, where it must (a new secret), waits until a write that includes it is
//! on disk; many registrations share one write, and no write happens under the registry's
//! lock.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use super::cluster::Cluster;
use super::metrics::{Holding, Metrics};
use super::rate::Limiter;
use super::registry::{self, Limits, Registry};
use super::wire::{
    self, ClientToRelay, ListenerToRelay, Message, Refusal, RelayToClient, ToRelay, WireError,
};
use crate::proto::frame::ty;
use crate::proto::ErrorCode;
use crate::runtime::events::Events;

/// The relay's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// A client must send its first frame, and a listener must dial back, within this.
    pub handshake_timeout: Duration,
    /// A spliced pair that moved no byte for this long is closed.
    pub idle_timeout: Duration,
    /// Most registered names.
    pub(crate) max_names: usize,
    /// What one source address (and one name) may hold, the rate of new flowpaths.
    pub limits: Limits,
    /// A name outlives its listener's control channel by this long.
    pub name_ttl: Duration,
    /// Interval of the listeners' keepalive PINGs; a control channel silent for three of
    /// them is dropped.
    pub keepalive: Duration,
    /// Operator keys; when not empty, registering needs one.
    pub auth_keys: Vec<Vec<u8>>,
    /// Bytes per second each way that the splices of one name may move (`None`: no cap).
    pub rate_per_name: Option<u64>,
    /// Bytes per second each way that the splices of one client address may move.
    pub rate_per_source: Option<u64>,
}

/// Counters for the summary (besides those in [`Metrics`]).
#[derive(Debug, Default)]
pub struct Stats {
    /// Most flowpaths at once.
    pub peak: AtomicU64,
    /// Refusals by reason.
    pub refused: Mutex<BTreeMap<&'static str, u64>>,
    /// Writes of the state file.
    pub state_writes: AtomicU64,
}

/// Background saving of the state file: generations asked for, and written.
struct Saves {
    /// The newest save asked for (a counter).
    wanted: AtomicU64,
    /// Wakes the saver.
    kick: Notify,
    /// The newest save on disk (the `wanted` value it covered).
    done: watch::Sender<u64>,
}

/// A running relay.
pub struct Relay {
    pub(super) cfg: Config,
    /// Held only briefly, never across an await or a disk write: every splice needs it.
    reg: Mutex<Registry>,
    /// State file saves (see the module doc).
    saves: Saves,
    /// Where status events go.
    events: Events,
    /// Counters.
    pub stats: Stats,
    /// The Prometheus metrics, which hold the main counters.
    pub metrics: Metrics,
    /// Bandwidth caps per name and per source.
    pub(super) limiter: Limiter,
    started: Instant,
    /// The cluster this relay belongs to (`--etcd`); None: a single relay, names in memory.
    pub(super) cluster: Option<Arc<Cluster>>,
}

impl Relay {
    /// A relay with `cfg` and the registry `reg`, telling `events` what happens.
    pub fn new(cfg: Config, reg: Registry, events: Events) -> Arc<Relay> {
        Relay::in_cluster(cfg, reg, events, None)
    }

    /// [`Relay::new`], sharing its names with the relays of `cluster` (see
    /// [`super::cluster`]); run [`Relay::cluster_lease`] and [`Relay::cluster_watch`] too.
    pub fn in_cluster(
        cfg: Config,
        reg: Registry,
        events: Events,
        cluster: Option<Arc<Cluster>>,
    ) -> Arc<Relay> {
        let limiter = Limiter::new(cfg.rate_per_name, cfg.rate_per_source);
        Arc::new(Relay {
            cfg,
            reg: Mutex::new(reg),
            saves: Saves {
                wanted: AtomicU64::new(0),
                kick: Notify::new(),
                done: watch::channel(0).0,
            },
            events,
            stats: Stats::default(),
            metrics: Metrics::new(),
            limiter,
            started: Instant::now(),
            cluster,
        })
    }

    pub(super) fn reg(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.reg.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the saver to write the state file (if there is one) with the names as they are
    /// now; returns the save's number.
    fn save_soon(&self) -> u64 {
        let n = self.saves.wanted.fetch_add(1, Ordering::SeqCst) + 1;
        self.saves.kick.notify_one();
        n
    }

    /// Asks for a save and returns once a write that includes the names as they are now is
    /// on disk (at once without a state file, or if the saver is not running).
    pub(super) async fn persist(&self) {
        if self.reg().state.is_none() {
            return;
        }
        let n = self.save_soon();
        let mut done = self.saves.done.subscribe();
        let _ = done.wait_for(|d| *d >= n).await;
    }

    /// Writes the state file whenever asked, forever: after a first request it waits
    /// [`SAVE_BATCH`] for more, then writes them all at once, off the registry's lock and off
    /// the runtime's threads.
    pub async fn saver(self: Arc<Self>) {
        loop {
            self.saves.kick.notified().await;
            tokio::time::sleep(SAVE_BATCH).await;
            let n = self.saves.wanted.load(Ordering::SeqCst);
            if *self.saves.done.borrow() >= n {
                continue;
            }
            let doc = self.reg().state_doc();
            if let Some(doc) = doc {
                if let Err(e) =
                    tokio::task::spawn_blocking(move || registry::write_state(doc)).await
                {
                    tracing::warn!("writing the state file failed: {e}");
                }
                self.stats.state_writes.fetch_add(1, Ordering::Relaxed);
            }
            self.saves.done.send_replace(n);
        }
    }

    /// Reports a status event.
    pub(super) fn status(&self, event: &str, fields: serde_json::Value) {
        self.events.emit(event, fields);
    }

    pub(super) fn refuse_count(&self, why: &'static str) {
        self.metrics.refused(why);
        *self
            .stats
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(why)
            .or_default() += 1;
    }

    /// Accepts connections on `listener` forever.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(self.clone().connection(stream, peer));
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Forgets expired names every second, forever.
    pub async fn sweep(self: Arc<Self>) {
        let mut t = tokio::time::interval(
            Duration::from_secs(1)
                .min(self.cfg.name_ttl / 2)
                .max(Duration::from_millis(100)),
        );
        loop {
            t.tick().await;
            let expired = self.reg().sweep(self.cfg.name_ttl, self.cfg.limits.rate);
            if !expired.is_empty() {
                self.save_soon();
            }
            for name in expired {
                self.status("expired", serde_json::json!({"name": name}));
            }
        }
    }

    /// The summary printed at exit.
    pub fn summary(&self) -> serde_json::Value {
        let (names, live, flowpaths) = {
            let r = self.reg();
            let live = r.names.values().filter(|n| n.control.is_some()).count();
            (r.names.len(), live, r.flowpaths())
        };
        let refused = self
            .stats
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        serde_json::json!({
            "seconds": (self.started.elapsed().as_secs_f64() * 1e3).round() / 1e3,
            "names": names, "listeners_connected": live,
            "flowpaths_now": flowpaths,
            "flowpaths_spliced": self.metrics.spliced.get(),
            "flowpaths_peak": self.stats.peak.load(Ordering::Relaxed),
            "bytes_up": self.metrics.bytes.up.get(),
            "bytes_down": self.metrics.bytes.down.get(),
            "registrations": self.metrics.registrations.get(),
            "lookups": self.metrics.lookups.get(),
            "state_writes": self.stats.state_writes.load(Ordering::Relaxed),
            "refused": refused,
            "peak_rss_kib": crate::runtime::sys::peak_rss(),
        })
    }

    /// One accepted connection, classified by its first frame.
    async fn connection(self: Arc<Self>, mut s: TcpStream, peer: SocketAddr) {
        let hs = self.cfg.handshake_timeout;
        let first = match wire::read_preamble(&mut s, hs).await {
            Ok(()) => wire::read_raw(&mut s, hs).await,
            Err(e) => Err(e),
        };
        let (t, body) = match first {
            Ok(f) => f,
            Err(WireError::Timeout(_)) => {
                self.refuse_count("handshake_timeout");
                self.status("dropped", serde_json::json!({"from": peer.to_string(), "reason": "no first frame in time"}));
                return;
            }
            Err(WireError::Io(_)) => return,
            Err(e) => {
                self.refuse_count("garbage");
                self.status(
                    "refused",
                    serde_json::json!({"from": peer.to_string(), "reason": e.to_string()}),
                );
                let why = format!("{e}: this is an msock relay (msock proxy); connect to NAME@HOST:PORT with msock");
                refuse(s, ErrorCode::Protocol, &why).await;
                return;
            }
        };
        if matches!(t, ty::HELLO_OPEN | ty::HELLO_ATTACH | ty::HELLO_RESUME) {
            self.refuse_count("not_routed");
            let why = "this is an msock relay, not a listener: connect to NAME@HOST:PORT";
            refuse(s, ErrorCode::Refused, why).await;
            return;
        }
        let frame = match ToRelay::decode(t, &body) {
            Ok(f) => f,
            Err(e) => {
                self.refuse_count("garbage");
                refuse(s, ErrorCode::Protocol, &e.to_string()).await;
                return;
            }
        };
        match frame {
            ToRelay::Client(ClientToRelay::Route(name)) => self.route(s, peer, name, false).await,
            ToRelay::Client(ClientToRelay::Pair(name)) => self.route(s, peer, name, true).await,
            ToRelay::Client(ClientToRelay::Lookup(name)) => self.lookup(s, peer, name).await,
            ToRelay::Listener(ListenerToRelay::Splice { id, token }) => {
                self.splice_back(s, peer, id, token).await
            }
            ToRelay::Listener(ListenerToRelay::Register { name, .. })
                if name.bytes().all(|b| b.is_ascii_digit()) =>
            {
                // Names of digits only are codes' numbers (nameplates): an ordinary name
                // there would squat a code's number for its whole TTL.
                self.refuse_count("digits_name");
                let why = format!(
                    "'{name}' is a code's number (msock listen --code): pick a name with a \
                     letter in it"
                );
                refuse(s, ErrorCode::Refused, &why).await;
            }
            ToRelay::Listener(ListenerToRelay::Register {
                name,
                addrs,
                ask_cluster,
            }) => self.control(s, peer, name, addrs, false, ask_cluster).await,
            ToRelay::Listener(ListenerToRelay::RegisterCode { name, addrs }) => {
                self.control(s, peer, name, addrs, true, false).await
            }
            ToRelay::Peer(f) => self.forwarded(s, peer, f).await,
            ToRelay::Listener(other) => {
                self.refuse_count("garbage");
                let why = format!("{} cannot open a connection to a relay", other.name());
                refuse(s, ErrorCode::Protocol, &why).await;
            }
        }
    }

    /// LOOKUP: answers the name's published direct addresses.
    async fn lookup(self: Arc<Self>, mut s: TcpStream, peer: SocketAddr, name: String) {
        if self
            .reg()
            .admit(peer.ip(), self.cfg.limits.rate, usize::MAX)
            .is_err()
        {
            self.refuse_count("rate");
            refuse(
                s,
                ErrorCode::Busy,
                "too many requests from your address; slow down",
            )
            .await;
            return;
        }
        let asked = Instant::now();
        self.metrics.lookups.inc();
        let found = self
            .reg()
            .names
            .get(&name)
            .map(|n| (n.addrs.clone(), n.control.is_some()));
        let reply = match (found, &self.cluster) {
            (Some((addrs, true)), _) | (Some((addrs, _)), None) => RelayToClient::Found(addrs),
            // A cluster relay answers from the store for names attached elsewhere.
            (here, Some(c)) => match c.locate(&name).await {
                Ok(Some(at)) => RelayToClient::Found(at.direct),
                Ok(None) if here.is_some() => RelayToClient::Found(Vec::new()),
                Ok(None) => RelayToClient::Error(Refusal {
                    code: ErrorCode::Refused,
                    reason: no_such_name(&name),
                }),
                Err(e) => RelayToClient::Error(Refusal {
                    code: ErrorCode::Busy,
                    reason: e.to_string(),
                }),
            },
            (None, None) => RelayToClient::Error(Refusal {
                code: ErrorCode::Refused,
                reason: no_such_name(&name),
            }),
        };
        let _ = tokio::time::timeout(self.cfg.handshake_timeout, async {
            let _ = s.write_all(&reply.with_preamble()).await;
            self.metrics.looked_up(asked);
            let _ = s.shutdown().await;
        })
        .await;
    }

    /// The metrics as OpenMetrics text (`--metrics`), with the gauges as they are now.
    pub fn render_metrics(&self) -> String {
        let now = {
            let r = self.reg();
            Holding {
                names: r.names.len(),
                listeners: r.names.values().filter(|n| n.control.is_some()).count(),
                flowpaths: r.flowpaths(),
            }
        };
        self.metrics.render(now)
    }
}

/// How long the saver waits after a first request for more (one write for all of them).
const SAVE_BATCH: Duration = Duration::from_millis(50);

pub(super) fn no_such_name(name: &str) -> String {
    format!("no listener named '{name}' is registered at this relay (check the name, or start it with msock listen --relay ... --name {name})")
}

/// Sends the preamble and an ERROR, then closes (best effort, bounded in time).
pub(super) async fn refuse(mut s: TcpStream, code: ErrorCode, why: &str) {
    let f = Refusal {
        code,
        reason: why.to_owned(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = s.write_all(&f.with_preamble()).await;
        let _ = s.shutdown().await;
    })
    .await;
}
