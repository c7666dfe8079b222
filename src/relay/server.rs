//! The relay server (`msock proxy`): accepts connections, tells the four kinds apart by their
//! first frame, and runs each: control channels (REGISTER), client flowpaths (ROUTE),
//! listener dial-backs (SPLICE) and name lookups (LOOKUP). See the module docs of
//! [`crate::relay`] for the protocol.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};

use super::refusal::ControlRefusal;
use super::registry::{self, Control, Limit, Name, Registry, Slot};
use super::secrets;
use super::splice::{self, Counters, End};
use super::wire::{
    self, ClientToRelay, ListenerToRelay, Message, Refusal, RelayToClient, RelayToListener,
    ToRelay, WireError, NONCE_LEN,
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
    /// Most flowpaths (running or waiting splices) at once.
    pub(crate) max_flowpaths: usize,
    /// Most registered names.
    pub(crate) max_names: usize,
    /// New client flowpaths per second per source address (bursts of twice that); 0: no limit.
    pub rate: f64,
    /// A name outlives its listener's control channel by this long.
    pub name_ttl: Duration,
    /// Interval of the listeners' keepalive PINGs; a control channel silent for three of
    /// them is dropped.
    pub keepalive: Duration,
    /// Operator keys; when not empty, registering needs one.
    pub auth_keys: Vec<Vec<u8>>,
}

/// Counters for the summary.
#[derive(Debug, Default)]
pub struct Stats {
    /// Registrations accepted.
    pub registrations: AtomicU64,
    /// Flowpaths spliced.
    pub spliced: AtomicU64,
    /// Bytes client → listener, finished splices.
    pub bytes_up: AtomicU64,
    /// Bytes listener → client, finished splices.
    pub bytes_down: AtomicU64,
    /// Most flowpaths at once.
    pub peak: AtomicU64,
    /// Lookups answered.
    pub lookups: AtomicU64,
    /// Refusals by reason.
    pub refused: Mutex<BTreeMap<&'static str, u64>>,
}

/// A running relay.
pub struct Relay {
    cfg: Config,
    /// Held only briefly, never across an await or a disk write: every splice needs it.
    reg: Mutex<Registry>,
    /// Taken while the state file is written, so that writes happen one at a time and in
    /// the order their contents were taken (the last write is the newest state).
    saving: tokio::sync::Mutex<()>,
    /// Where status events go.
    events: Events,
    /// Counters.
    pub stats: Stats,
    started: Instant,
}

impl Relay {
    /// A relay with `cfg` and the registry `reg`, telling `events` what happens.
    pub fn new(cfg: Config, reg: Registry, events: Events) -> Arc<Relay> {
        Arc::new(Relay {
            cfg,
            reg: Mutex::new(reg),
            saving: tokio::sync::Mutex::new(()),
            events,
            stats: Stats::default(),
            started: Instant::now(),
        })
    }

    fn reg(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.reg.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the registry's names to the state file (if there is one), off the registry's
    /// lock and off the runtime's threads; returns once they are on disk.
    pub(crate) async fn persist(&self) {
        let _one_at_a_time = self.saving.lock().await;
        let Some(doc) = self.reg().state_doc() else {
            return;
        };
        if let Err(e) = tokio::task::spawn_blocking(move || registry::write_state(doc)).await {
            tracing::warn!("writing the state file failed: {e}");
        }
    }

    /// Reports a status event.
    fn status(&self, event: &str, fields: serde_json::Value) {
        self.events.emit(event, fields);
    }

    fn refuse_count(&self, why: &'static str) {
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
            let expired = self.reg().sweep(self.cfg.name_ttl, self.cfg.rate);
            if !expired.is_empty() {
                self.persist().await;
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
            "flowpaths_spliced": self.stats.spliced.load(Ordering::Relaxed),
            "flowpaths_peak": self.stats.peak.load(Ordering::Relaxed),
            "bytes_up": self.stats.bytes_up.load(Ordering::Relaxed),
            "bytes_down": self.stats.bytes_down.load(Ordering::Relaxed),
            "registrations": self.stats.registrations.load(Ordering::Relaxed),
            "lookups": self.stats.lookups.load(Ordering::Relaxed),
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
            ToRelay::Client(ClientToRelay::Route(name)) => self.route(s, peer, name).await,
            ToRelay::Client(ClientToRelay::Lookup(name)) => self.lookup(s, peer, name).await,
            ToRelay::Listener(ListenerToRelay::Splice { id, token }) => {
                self.splice_back(s, peer, id, token).await
            }
            ToRelay::Listener(ListenerToRelay::Register { name, addrs }) => {
                self.control(s, peer, name, addrs).await
            }
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
            .admit(peer.ip(), self.cfg.rate, usize::MAX)
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
        self.stats.lookups.fetch_add(1, Ordering::Relaxed);
        let found = self.reg().names.get(&name).map(|n| n.addrs.clone());
        let reply = match found {
            Some(addrs) => RelayToClient::Found(addrs),
            None => RelayToClient::Error(Refusal {
                code: ErrorCode::Refused,
                reason: no_such_name(&name),
            }),
        };
        let _ = tokio::time::timeout(self.cfg.handshake_timeout, async {
            let _ = s.write_all(&reply.with_preamble()).await;
            let _ = s.shutdown().await;
        })
        .await;
    }

    /// ROUTE: a client flowpath for `name`. Ask the listener to dial back, wait for it, splice.
    async fn route(self: Arc<Self>, client: TcpStream, peer: SocketAddr, name: String) {
        let id = rand::random::<u64>();
        let mut token = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut token);
        let (tx, rx) = oneshot::channel();
        let kill = Arc::new(Notify::new());
        let admitted = {
            let mut r = self.reg();
            match r.admit(peer.ip(), self.cfg.rate, self.cfg.max_flowpaths) {
                Err(l) => Err(l),
                Ok(()) => match r.names.get_mut(&name) {
                    None => Ok(false),
                    Some(n) => {
                        n.pending.insert(id);
                        if let Some(c) = &n.control {
                            let _ = c.tx.try_send(RelayToListener::Dial { id, token });
                        }
                        r.slots.insert(
                            id,
                            Slot {
                                name: name.clone(),
                                token,
                                waiting: Some(tx),
                                kill: kill.clone(),
                            },
                        );
                        let now = r.flowpaths() as u64;
                        self.stats.peak.fetch_max(now, Ordering::Relaxed);
                        Ok(true)
                    }
                },
            }
        };
        match admitted {
            Err(Limit::Rate) => {
                self.refuse_count("rate");
                self.status(
                    "refused",
                    serde_json::json!({"from": peer.to_string(), "name": name, "reason": "rate"}),
                );
                let why = "too many new flowpaths from your address; the client retries later";
                return refuse(client, ErrorCode::Busy, why).await;
            }
            Err(Limit::Flowpaths) => {
                self.refuse_count("max_flowpaths");
                self.status("refused", serde_json::json!({"from": peer.to_string(), "name": name, "reason": "max_flowpaths"}));
                let why = "the relay carries as many flowpaths as it will; try later";
                return refuse(client, ErrorCode::Busy, why).await;
            }
            Ok(false) => {
                self.refuse_count("no_such_name");
                self.status("refused", serde_json::json!({"from": peer.to_string(), "name": name, "reason": "no such name"}));
                return refuse(client, ErrorCode::Refused, &no_such_name(&name)).await;
            }
            Ok(true) => {}
        }
        // From here on the slot must go when we return.
        let _slot = SlotGuard {
            relay: self.clone(),
            id,
        };
        let listener = match tokio::time::timeout(self.cfg.handshake_timeout, rx).await {
            Ok(Ok(l)) => l,
            _ => {
                self.refuse_count("listener_timeout");
                self.status("refused", serde_json::json!({"from": peer.to_string(), "name": name, "reason": "the listener did not dial back in time"}));
                let why = format!(
                    "the listener named '{name}' did not answer through the relay within {} (it may be offline or moving); retry",
                    humantime::format_duration(self.cfg.handshake_timeout)
                );
                return refuse(client, ErrorCode::Busy, &why).await;
            }
        };
        let lpeer = listener.peer_addr().ok();
        self.stats.spliced.fetch_add(1, Ordering::Relaxed);
        self.status(
            "splice",
            serde_json::json!({"id": format!("{id:016x}"), "name": name, "client": peer.to_string(),
                "listener": lpeer.map(|a| a.to_string())}),
        );
        let counters = Arc::new(Counters::default());
        let end = splice::run(
            client,
            listener,
            self.cfg.idle_timeout,
            counters.clone(),
            kill,
        )
        .await;
        let (up, down) = (
            counters.up.load(Ordering::Relaxed),
            counters.down.load(Ordering::Relaxed),
        );
        self.stats.bytes_up.fetch_add(up, Ordering::Relaxed);
        self.stats.bytes_down.fetch_add(down, Ordering::Relaxed);
        let how = match end {
            End::Closed => "closed".to_owned(),
            End::Error(e) => format!("error: {e}"),
            End::Idle => "idle timeout".to_owned(),
            End::Killed => "listener half gone".to_owned(),
        };
        self.status(
            "splice_end",
            serde_json::json!({"id": format!("{id:016x}"), "name": name, "up": up, "down": down, "end": how}),
        );
    }

    /// SPLICE: a listener's dial-back; hand it to the waiting client task.
    async fn splice_back(
        self: Arc<Self>,
        s: TcpStream,
        peer: SocketAddr,
        id: u64,
        token: [u8; NONCE_LEN],
    ) {
        let waiting = {
            let mut r = self.reg();
            let slot = r.slots.get_mut(&id).filter(|sl| {
                // Constant-time token check (tokens are 16 bytes; pad to the proof size).
                let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
                a[..NONCE_LEN].copy_from_slice(&sl.token);
                b[..NONCE_LEN].copy_from_slice(&token);
                secrets::same(&a, &b)
            });
            match slot {
                Some(sl) => {
                    let name = sl.name.clone();
                    let w = sl.waiting.take();
                    if let Some(n) = r.names.get_mut(&name) {
                        n.pending.remove(&id);
                    }
                    w
                }
                None => None,
            }
        };
        match waiting {
            Some(w) => {
                let _ = w.send(s);
            }
            None => {
                self.refuse_count("bad_splice");
                tracing::info!("{peer}: SPLICE for unknown or finished splice {id:016x}");
                refuse(
                    s,
                    ErrorCode::Refused,
                    "no such splice (the client gave up waiting)",
                )
                .await;
            }
        }
    }

    /// REGISTER: a listener's control channel.
    async fn control(
        self: Arc<Self>,
        s: TcpStream,
        peer: SocketAddr,
        name: String,
        addrs: Vec<SocketAddr>,
    ) {
        let hs = self.cfg.handshake_timeout;
        let (mut rd, mut wr) = s.into_split();
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        if wr
            .write_all(&RelayToListener::Nonce(nonce).with_preamble())
            .await
            .is_err()
        {
            return;
        }
        let (name_proof, key_proof) = match wire::read_frame(&mut rd, hs).await {
            Ok(ListenerToRelay::Prove {
                name_proof,
                key_proof,
            }) => (name_proof, key_proof),
            Ok(other) => {
                let why = ControlRefusal::NotProve(other.name());
                return self.refuse_control(wr, peer, &name, why).await;
            }
            Err(_) => return,
        };
        if !self.cfg.auth_keys.is_empty()
            && !self
                .cfg
                .auth_keys
                .iter()
                .any(|k| secrets::same(&secrets::key_proof(k, &name, &nonce), &key_proof))
        {
            return self
                .refuse_control(wr, peer, &name, ControlRefusal::BadKey)
                .await;
        }
        // Publish only direct addresses at the address we see the listener at: elsewhere it is
        // behind a NAT, and a private address could reach some other machine.
        let published: Vec<SocketAddr> =
            addrs.into_iter().filter(|a| a.ip() == peer.ip()).collect();
        let (tx, mut rx) = mpsc::channel::<RelayToListener>(1024);
        let close = Arc::new(Notify::new());
        let outcome = self.install(&name, &nonce, &name_proof, &published, tx, close.clone());
        let (gen, reply, redial, fresh) = match outcome {
            Ok(x) => x,
            Err(why) => return self.refuse_control(wr, peer, &name, why).await,
        };
        if fresh {
            // The new secret is on disk before the listener learns it.
            self.persist().await;
        }
        self.stats.registrations.fetch_add(1, Ordering::Relaxed);
        self.status(
            "registered",
            serde_json::json!({"name": name, "from": peer.to_string(),
                "direct": published.iter().map(|a| a.to_string()).collect::<Vec<_>>()}),
        );
        let mut ok = wr.write_all(&reply.encode()).await.is_ok();
        for f in redial {
            ok = ok && wr.write_all(&f.encode()).await.is_ok();
        }
        let mut frames = wire::spawn_reader(rd, self.cfg.keepalive * 3);
        while ok {
            tokio::select! {
                f = frames.recv() => match f.unwrap_or(Err(WireError::ReaderGone)) {
                    Ok(ListenerToRelay::Ping(t)) => ok = wr.write_all(&RelayToListener::Pong(t).encode()).await.is_ok(),
                    Ok(ListenerToRelay::Gone(ids)) => self.kill_splices(&name, &ids),
                    Ok(other) => {
                        tracing::info!("{peer} ({name}): unexpected {} on the control channel; closing", other.name());
                        break;
                    }
                    Err(e) => {
                        tracing::info!("{peer} ({name}): control channel ended: {e}");
                        break;
                    }
                },
                Some(f) = rx.recv() => ok = wr.write_all(&f.encode()).await.is_ok(),
                _ = close.notified() => break,
            }
        }
        let mut r = self.reg();
        if let Some(n) = r.names.get_mut(&name) {
            if n.control.as_ref().is_some_and(|c| c.gen == gen) {
                n.control = None;
                n.since = Instant::now();
                drop(r);
                self.status(
                    "unregistered",
                    serde_json::json!({"name": name, "from": peer.to_string()}),
                );
            }
        }
    }

    /// Checks the name proof and installs a control channel for `name`. Returns its
    /// generation, the REGISTERED reply, DIALs for splices waiting for it and whether the name
    /// is new (the state file must be written); or the refusal.
    #[allow(clippy::type_complexity)]
    fn install(
        &self,
        name: &str,
        nonce: &[u8; NONCE_LEN],
        name_proof: &[u8; 32],
        published: &[SocketAddr],
        tx: mpsc::Sender<RelayToListener>,
        close: Arc<Notify>,
    ) -> Result<(u64, RelayToListener, Vec<RelayToListener>, bool), ControlRefusal> {
        let mut guard = self.reg();
        let r = &mut *guard;
        let known = r.names.get(name).map(|n| n.secret);
        let new_secret = match known {
            Some(secret)
                if secrets::same(&secrets::name_proof(&secret, name, nonce), name_proof) =>
            {
                None
            }
            Some(_) => return Err(ControlRefusal::NameTaken(name.to_owned())),
            None if r.names.len() >= self.cfg.max_names => return Err(ControlRefusal::Full),
            None => {
                let mut s = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut s);
                Some(s)
            }
        };
        let gen = r.next_gen();
        let entry = r.names.entry(name.to_owned()).or_insert_with(|| Name {
            secret: new_secret.unwrap_or([0; 32]),
            control: None,
            addrs: Vec::new(),
            since: Instant::now(),
            pending: HashSet::new(),
        });
        if let Some(old) = entry.control.take() {
            old.close.notify_one();
        }
        entry.control = Some(Control { tx, gen, close });
        entry.addrs = published.to_vec();
        let redial: Vec<RelayToListener> = entry
            .pending
            .iter()
            .filter_map(|id| {
                r.slots.get(id).map(|s| RelayToListener::Dial {
                    id: *id,
                    token: s.token,
                })
            })
            .collect();
        let reply = RelayToListener::Registered {
            secret: new_secret.unwrap_or([0; 32]),
            ttl: self.cfg.name_ttl.as_secs().min(u32::MAX as u64) as u32,
            keepalive: self.cfg.keepalive.as_secs().clamp(1, u32::MAX as u64) as u32,
        };
        Ok((gen, reply, redial, new_secret.is_some()))
    }

    fn kill_splices(&self, name: &str, ids: &[u64]) {
        let r = self.reg();
        for id in ids {
            if let Some(s) = r.slots.get(id).filter(|s| s.name == name) {
                s.kill.notify_one();
            }
        }
    }

    async fn refuse_control(
        &self,
        mut wr: tokio::net::tcp::OwnedWriteHalf,
        peer: SocketAddr,
        name: &str,
        why: ControlRefusal,
    ) {
        let count = why.counter();
        self.refuse_count(count);
        self.status(
            "refused",
            serde_json::json!({"from": peer.to_string(), "name": name, "reason": count}),
        );
        let f = why.refusal();
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = wr.write_all(&f.encode()).await;
            let _ = wr.shutdown().await;
        })
        .await;
    }
}

/// Removes a splice's slot (and its pending mark) when the client task ends.
struct SlotGuard {
    relay: Arc<Relay>,
    id: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut r = self.relay.reg();
        if let Some(s) = r.slots.remove(&self.id) {
            if let Some(n) = r.names.get_mut(&s.name) {
                n.pending.remove(&self.id);
            }
        }
    }
}

fn no_such_name(name: &str) -> String {
    format!("no listener named '{name}' is registered at this relay (check the name, or start it with msock listen --relay ... --name {name})")
}

/// Sends the preamble and an ERROR, then closes (best effort, bounded in time).
async fn refuse(mut s: TcpStream, code: ErrorCode, why: &str) {
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
