//! The listener's side of a relay (`msock listen --relay HOST:PORT --name NAME`): keeps a
//! control channel to the relay (REGISTER, keepalive PINGs), re-registers after its own
//! address changes or a lost channel, and answers each DIAL by connecting back to the relay
//! with SPLICE; that connection then carries a client's flowpath and is handed to the
//! listener's normal accept path as if it had been accepted.
//!
//! With several relays (`--relay A --relay B`) the listener keeps one such channel to each,
//! registering the same name at each with that relay's own secret (a proof made with one
//! relay's secret is never shown to another: a relay could pass it on to register the name
//! elsewhere). Each channel reconnects on its own; DIALs from any of them are answered. A
//! relay unreachable at the start is retried in the background while the others serve; the
//! listener gives up only when every relay refused the name for good. `Presence` tells
//! which relays the name is registered at now; every event carries it.
//!
//! **Relays of one cluster** (`listen --relay-cluster`, the user's word that its relays are
//! of one cluster). The listener asks each relay for its cluster id (REGISTER's flag,
//! answered in NONCE; a relay that predates it refuses the flag and is asked again
//! without). At a relay of a cluster the name's secret is the cluster's (one file for every
//! relay of it, see [`secrets`]); the name is registered at one relay, the others stand by
//! and take over as soon as its channel ends (see [`super::standby`]). A relay claiming
//! another cluster than the first one claimed is refused, so no relay makes the listener
//! keep secrets for clusters of its choosing. The cluster id is public and unauthenticated:
//! a relay that only claims the cluster's id is shown proofs made with its secret and could
//! pass one on to the real cluster. Hence the flag: without it no relay is asked, each keeps
//! its own secret and channel, as above. The id is 16 bytes exactly and names the secret's
//! directory in hex.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::refusal::refusal;
use super::secrets;
use super::standby::{Groups, Held, Taken};
use super::wire::{self, ListenerToRelay, Message, Refusal, RelayToListener, NONCE_LEN};
use crate::proto::text::Untrusted;
use crate::runtime::events::Events;
use crate::runtime::{client, netwatch, resolve, Family};

/// Hands a dialed-back connection (and the relay's address) to the listener's accept path.
pub type Inject = Arc<dyn Fn(TcpStream, SocketAddr) + Send + Sync>;

/// What the listener registers, and how.
#[derive(Clone)]
pub struct AgentConfig {
    /// The relay, HOST:PORT.
    pub relay: String,
    /// The name to register.
    pub name: String,
    /// Where the name's secret is kept.
    pub secret_file: PathBuf,
    /// The operator key, if the relay wants one.
    pub key: Option<Vec<u8>>,
    /// Address family for reaching the relay.
    pub family: Family,
    /// The listener's own listening sockets (wildcards are expanded to the machine's
    /// addresses at each registration), published for direct connections.
    pub listening: Vec<SocketAddr>,
    /// Where the registration's ups and downs go: `relay_lost` (`relay`, `error`) when the
    /// control channel ends (once per outage; retries are silent), `relay_registered`
    /// (`name`, `relay`, `first`: never registered there before) when it is registered
    /// (again), and `relay_dropped` (`relay`, `error`) when one of several relays refused the
    /// name for good. Each also carries `given` (the relay as given), `up` (the relays, as
    /// given, the name is registered at now) and `of` (how many relays there are).
    pub events: Events,
    /// The user says the relays are of one cluster: ask each for its cluster id, register at
    /// one relay per cluster with the cluster's secret and stand by at the others. Off, a
    /// relay's claim of a cluster is never asked for (it is not authenticated).
    pub one_cluster: bool,
}

/// Which of the listener's relays the name is registered at now.
struct Presence {
    /// The relays as given, HOST:PORT.
    given: Vec<String>,
    /// Per relay: (registered now, ever registered).
    state: Mutex<Vec<(bool, bool)>>,
}

impl Presence {
    fn new(given: Vec<String>) -> Arc<Self> {
        let state = Mutex::new(vec![(false, false); given.len()]);
        Arc::new(Presence { given, state })
    }

    /// Marks relay `i` up or down; returns whether it was ever up before, and the fields
    /// every event carries (`given`, `up`, `of`).
    fn set(&self, i: usize, up: bool) -> (bool, serde_json::Value) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let ever = s[i].1;
        s[i] = (up, ever || up);
        let now: Vec<&String> = (self.given.iter().zip(s.iter()))
            .filter(|(_, st)| st.0)
            .map(|(g, _)| g)
            .collect();
        let f = serde_json::json!({"given": self.given[i], "up": now, "of": self.given.len()});
        (ever, f)
    }
}

/// `base` (an object) with `more`'s fields added.
fn with(mut base: serde_json::Value, more: serde_json::Value) -> serde_json::Value {
    if let (Some(b), serde_json::Value::Object(m)) = (base.as_object_mut(), more) {
        b.extend(m);
    }
    base
}

/// Why a registration failed.
#[derive(Debug)]
pub enum RegisterError {
    /// The relay refused the name or the key: retrying cannot help (exit 1).
    Refused(String),
    /// Another listener holds the name (its secret, not ours): retrying cannot help (exit 1).
    NameTaken(String),
    /// The relay could not be reached or the channel broke: retry.
    Transient(String),
    /// A local problem (the secret file): the user must fix it (exit 2).
    Local(String),
}

impl std::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegisterError::Refused(m)
            | RegisterError::NameTaken(m)
            | RegisterError::Transient(m)
            | RegisterError::Local(m) => f.write_str(m),
        }
    }
}

/// A registered control channel.
struct Channel {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    relay: SocketAddr,
    local: IpAddr,
    keepalive: Duration,
    /// The relay's cluster, held by this channel until it ends.
    _held: Option<Held>,
}

/// One of the listener's relays: which one, its splices, and what it speaks.
struct Slot {
    /// Its index among the listener's relays.
    me: usize,
    dialed: Dialed,
    /// It refused REGISTER's flags (it predates cluster ids): not asked again.
    legacy: std::sync::atomic::AtomicBool,
    /// The clusters the listener's relays hold.
    groups: Arc<Groups>,
}

/// Why a registration attempt did not give a channel.
enum Attempt {
    /// It failed.
    Failed(RegisterError),
    /// The relay is of a cluster that another of the listener's relays (this index) holds.
    Standby(usize),
    /// The relay refused REGISTER's flags: ask again without.
    Legacy,
}

impl From<RegisterError> for Attempt {
    fn from(e: RegisterError) -> Self {
        Attempt::Failed(e)
    }
}

/// Splices we dialed, with the local address each left from (most recent last), so that
/// after an address change the relay can be told which of them are dead.
type Dialed = Arc<Mutex<VecDeque<(u64, IpAddr)>>>;

/// Most remembered splices.
const DIALED_MAX: usize = 4096;

/// Registers the name at every relay of `cfgs` at once (so that the caller can report a
/// refusal and exit), then keeps each registration alive in a task of its own; a relay that
/// could not be reached is retried there. Err: some relay refused (or a local problem), or
/// no relay could be reached. The returned channel hears once every relay has refused the
/// name for good; `inject` is kept until that channel is dropped (the listener's accept path
/// stays open while it reports the loss).
pub async fn start(
    cfgs: Vec<AgentConfig>,
    inject: Inject,
) -> Result<mpsc::Receiver<String>, RegisterError> {
    let presence = Presence::new(cfgs.iter().map(|c| c.relay.clone()).collect());
    let all: Vec<&str> = cfgs.iter().map(|c| c.relay.as_str()).collect();
    let all = all.join(",");
    let groups = Groups::new();
    let slots: Vec<Arc<Slot>> = (0..cfgs.len())
        .map(|me| {
            Arc::new(Slot {
                me,
                dialed: Dialed::default(),
                legacy: Default::default(),
                groups: groups.clone(),
            })
        })
        .collect();
    let mut set = tokio::task::JoinSet::new();
    for (i, (cfg, d)) in cfgs.iter().zip(&slots).enumerate() {
        let (cfg, d) = (cfg.clone(), d.clone());
        set.spawn(async move { (i, register(&cfg, &d).await) });
    }
    let mut got: Vec<Option<Result<Channel, Attempt>>> = cfgs.iter().map(|_| None).collect();
    while let Some(j) = set.join_next().await {
        if let Ok((i, r)) = j {
            got[i] = Some(r);
        }
    }
    let mut channels = Vec::new();
    let mut transient = None;
    let mut later = Vec::new();
    for (i, r) in got.into_iter().enumerate() {
        match r {
            Some(Ok(ch)) => channels.push((i, Some(ch))),
            Some(Err(Attempt::Standby(holder))) => {
                channels.push((i, None));
                later.push(format!(
                    "msock: relay {} is of the same cluster as relay {}: standing by there \
                     (the name moves there if {} is lost)",
                    cfgs[i].relay, cfgs[holder].relay, cfgs[holder].relay
                ));
            }
            Some(Err(Attempt::Failed(RegisterError::Transient(e)))) => {
                transient.get_or_insert(RegisterError::Transient(e.clone()));
                channels.push((i, None));
                later.push(format!(
                    "msock: cannot register at relay {} yet ({e}); retrying in the background",
                    cfgs[i].relay
                ));
            }
            Some(Err(Attempt::Failed(e))) => return Err(e),
            Some(Err(Attempt::Legacy)) | None => {
                return Err(RegisterError::Local(
                    "a relay registration task failed".into(),
                ))
            }
        }
    }
    if channels.iter().all(|(_, c)| c.is_none()) {
        return Err(transient.unwrap_or_else(|| RegisterError::Local("no relay given".into())));
    }
    for line in later {
        eprintln!("{line}");
    }
    let (fatal_tx, fatal_rx) = mpsc::channel(1);
    let (each_tx, each_rx) = mpsc::channel(cfgs.len());
    tokio::spawn(supervise(each_rx, cfgs.len(), fatal_tx, inject.clone()));
    for (i, ch) in channels {
        let cfg = cfgs[i].clone();
        if let Some(c) = &ch {
            presence.set(i, true);
            eprintln!(
                "msock: registered '{}' at relay {}; clients connect to {}@{all}",
                cfg.name, c.relay, cfg.name
            );
        }
        let d = slots[i].clone();
        let p = (presence.clone(), i);
        tokio::spawn(keep(cfg, inject.clone(), d, ch, p, each_tx.clone()));
    }
    Ok(fatal_rx)
}

/// Hears each relay's loss for good; once all `n` are lost, passes the last reason on to
/// `fatal` and holds `inject` until it is taken in.
async fn supervise(
    mut each: mpsc::Receiver<String>,
    n: usize,
    fatal: mpsc::Sender<String>,
    inject: Inject,
) {
    let mut lost = 0;
    while let Some(why) = each.recv().await {
        lost += 1;
        if lost == n {
            let _ = fatal.send(why).await;
            fatal.closed().await;
            drop(inject);
            return;
        }
    }
}

/// Runs one relay's channel (`first`, if registered already); re-registers whenever it
/// ends. `at`: the listener's relays, and which one this is.
async fn keep(
    cfg: AgentConfig,
    inject: Inject,
    slot: Arc<Slot>,
    first: Option<Channel>,
    at: (Arc<Presence>, usize),
    fatal: mpsc::Sender<String>,
) {
    let (presence, me) = at;
    let mut changes = netwatch::spawn();
    let mut ch = first;
    let mut wait = Duration::from_millis(250);
    let mut freed = slot.groups.watch();
    let dialed = &slot.dialed;
    loop {
        if let Some(c) = ch.take() {
            let relay = c.relay;
            let why = run_channel(c, &inject, dialed, &mut changes).await;
            tracing::info!("relay control channel ended ({why}); registering again");
            let (_, f) = presence.set(me, false);
            cfg.events.emit(
                "relay_lost",
                with(
                    serde_json::json!({"relay": relay.to_string(), "error": why}),
                    f,
                ),
            );
            wait = Duration::from_millis(250);
        }
        freed.borrow_and_update();
        match register(&cfg, &slot).await {
            Ok(c) => {
                tracing::info!("registered '{}' again at relay {}", cfg.name, c.relay);
                let (ever, f) = presence.set(me, true);
                cfg.events.emit(
                    "relay_registered",
                    with(
                        serde_json::json!({"name": cfg.name, "relay": c.relay.to_string(),
                            "first": !ever}),
                        f,
                    ),
                );
                ch = Some(c);
            }
            Err(Attempt::Standby(holder)) => {
                tracing::info!(
                    "relay {} is of the cluster relay {} holds: standing by",
                    cfg.relay,
                    presence.given[holder]
                );
                // Woken when a relay lets its cluster go (its channel ended).
                if freed.changed().await.is_err() {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                wait = Duration::from_millis(250);
            }
            Err(Attempt::Failed(RegisterError::Transient(e))) => {
                tracing::info!("cannot register at the relay ({e}); retrying in {wait:?}");
                // A cluster this attempt held and let go woke `freed`: not a sibling's release.
                freed.borrow_and_update();
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    Some(()) = changes.recv() => {}
                    // Another relay let its cluster go: this one may be its sibling.
                    Ok(()) = freed.changed() => {}
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(Attempt::Legacy) => {}
            Err(Attempt::Failed(e)) => {
                let why = match e {
                    RegisterError::NameTaken(m) => format!("registration lost: name taken: {m}"),
                    e => format!("relay registration lost: {e}"),
                };
                let (_, f) = presence.set(me, false);
                if presence.given.len() > 1 {
                    cfg.events.emit(
                        "relay_dropped",
                        with(serde_json::json!({"relay": cfg.relay, "error": why}), f),
                    );
                }
                let _ = fatal.send(why).await;
                return;
            }
        }
    }
}

/// Serves DIALs and keepalives until the channel breaks or our address under it goes away.
async fn run_channel(
    mut c: Channel,
    inject: &Inject,
    dialed: &Dialed,
    changes: &mut mpsc::Receiver<()>,
) -> String {
    let mut ping = tokio::time::interval(c.keepalive);
    ping.tick().await;
    let mut token = 0u64;
    let mut frames = wire::spawn_reader(c.rd, c.keepalive * 2 + Duration::from_secs(1));
    let dials: Dials = (
        Arc::new(tokio::sync::Semaphore::new(DIALS_MAX)),
        Arc::new(tokio::sync::Semaphore::new(DIALS_QUEUED)),
    );
    loop {
        tokio::select! {
            f = frames.recv() => match f.unwrap_or(Err(wire::WireError::ReaderGone)) {
                Ok(RelayToListener::Dial { id, token }) => {
                    dial(&dials, c.relay, id, token, inject, dialed);
                }
                Ok(RelayToListener::DialAt { id, token, relay }) => {
                    if super::dial_at::allowed(c.relay, relay) {
                        dial(&dials, relay, id, token, inject, dialed);
                    } else {
                        tracing::info!(
                            "relay {} asked us to dial {relay}, nearer than itself: refused",
                            c.relay
                        );
                    }
                }
                Ok(RelayToListener::Pong(_)) => {}
                Ok(RelayToListener::Error(Refusal { code, reason })) => return format!("relay said {code}: {}", Untrusted(&reason)),
                Ok(other) => return format!("unexpected {} from the relay", other.name()),
                Err(e) => return e.to_string(),
            },
            _ = ping.tick() => {
                token += 1;
                if c.wr.write_all(&ListenerToRelay::Ping(token).encode()).await.is_err() {
                    return "cannot write to the relay".into();
                }
            }
            Some(()) = changes.recv() => {
                if !netwatch::local_addrs().contains(&c.local) {
                    return format!("our address {} went away", c.local);
                }
            }
        }
    }
}

/// Dial-backs one control channel may have in flight; more wait for their turn.
const DIALS_MAX: usize = 64;
/// Dial-backs one control channel may have started or waiting: a relay that sends DIALs
/// faster than they complete gets the rest dropped (their clients time out) instead of as
/// many connections, or waiting tasks, as it asks for.
const DIALS_QUEUED: usize = 1024;

/// The dial-backs of one control channel: (in flight, started or waiting).
type Dials = (Arc<tokio::sync::Semaphore>, Arc<tokio::sync::Semaphore>);

/// Starts a dial-back to `relay` for splice `id` (once one of the channel's `DIALS_MAX` is
/// free) if fewer than `DIALS_QUEUED` are started or waiting.
fn dial(
    dials: &Dials,
    relay: SocketAddr,
    id: u64,
    token: [u8; NONCE_LEN],
    inject: &Inject,
    dialed: &Dialed,
) {
    let Ok(queued) = dials.1.clone().try_acquire_owned() else {
        tracing::info!("{DIALS_QUEUED} dial-backs to relays pending: splice {id:016x} dropped");
        return;
    };
    let (running, inject, dialed) = (dials.0.clone(), inject.clone(), dialed.clone());
    tokio::spawn(async move {
        if let Ok(_turn) = running.acquire_owned().await {
            dial_back(relay, id, token, inject, dialed).await;
        }
        drop(queued);
    });
}

/// Connects back to the relay for splice `id` and hands the connection to the listener.
async fn dial_back(
    relay: SocketAddr,
    id: u64,
    token: [u8; NONCE_LEN],
    inject: Inject,
    dialed: Dialed,
) {
    let mut s = match client::connect_any(&[relay], None, None, Some(Duration::from_secs(5))).await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::info!("cannot dial back to the relay for a client: {e}");
            return;
        }
    };
    if let Err(e) = s
        .write_all(&ListenerToRelay::Splice { id, token }.with_preamble())
        .await
    {
        tracing::info!("cannot dial back to the relay for a client: {e}");
        return;
    }
    if let Ok(local) = s.local_addr() {
        let mut d = dialed.lock().unwrap_or_else(|e| e.into_inner());
        if d.len() >= DIALED_MAX {
            d.pop_front();
        }
        d.push_back((id, local.ip()));
    }
    tracing::debug!("splice {id:016x}: dialed back to the relay");
    inject(s, relay);
}

/// The addresses to publish for direct connections.
fn published(listening: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    let mine = netwatch::local_addrs();
    for l in listening {
        if l.ip().is_unspecified() {
            let mut ips: Vec<IpAddr> = mine
                .iter()
                .filter(|ip| ip.is_ipv4() == l.is_ipv4())
                .filter(|ip| !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80))
                .copied()
                .collect();
            ips.sort();
            out.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, l.port())));
        } else {
            out.push(*l);
        }
    }
    out.truncate(wire::MAX_ADDRS);
    out
}

/// One registration: connect, REGISTER, answer the NONCE, read REGISTERED, keep the secret.
async fn register(cfg: &AgentConfig, slot: &Arc<Slot>) -> Result<Channel, Attempt> {
    match try_register(cfg, slot).await {
        Err(Attempt::Legacy) => try_register(cfg, slot).await,
        r => r,
    }
}

/// [`register`], once: asks for the cluster id unless the relay refused that before.
async fn try_register(cfg: &AgentConfig, slot: &Arc<Slot>) -> Result<Channel, Attempt> {
    use std::sync::atomic::Ordering::Relaxed;
    let t = Duration::from_secs(10);
    let addrs = resolve(&cfg.relay, cfg.family)
        .await
        .map_err(|e| RegisterError::Transient(e.to_string()))?;
    let s = client::connect_any(&addrs, None, None, Some(t))
        .await
        .map_err(|e| RegisterError::Transient(format!("cannot reach the relay: {e}")))?;
    let relay = s
        .peer_addr()
        .map_err(|e| RegisterError::Transient(e.to_string()))?;
    let local = s
        .local_addr()
        .map_err(|e| RegisterError::Transient(e.to_string()))?
        .ip();
    let _ = s.set_nodelay(true);
    let (mut rd, mut wr) = s.into_split();
    let transient =
        |e: &dyn std::fmt::Display| RegisterError::Transient(format!("relay {relay}: {e}"));
    let ask_cluster = cfg.one_cluster && !slot.legacy.load(Relaxed);
    let hello = ListenerToRelay::Register {
        name: cfg.name.clone(),
        addrs: published(&cfg.listening),
        ask_cluster,
    };
    wr.write_all(&hello.with_preamble())
        .await
        .map_err(|e| transient(&e))?;
    wire::read_preamble(&mut rd, t).await.map_err(|e| match e {
        wire::WireError::NotMsock => RegisterError::Refused(format!(
            "{relay} is not an msock relay (it does not speak msock)"
        )),
        e => transient(&e),
    })?;
    let nonce = match wire::read_frame(&mut rd, t)
        .await
        .map_err(|e| transient(&e))?
    {
        RelayToListener::Nonce { nonce, cluster } => (nonce, cluster),
        RelayToListener::Error(r) if ask_cluster && r.code == crate::proto::ErrorCode::Protocol => {
            tracing::info!("relay {relay} predates cluster ids; asking again without");
            slot.legacy.store(true, Relaxed);
            return Err(Attempt::Legacy);
        }
        RelayToListener::Error(r) => return Err(refusal(relay, r).into()),
        other => return Err(transient(&format!("unexpected {}", other.name())).into()),
    };
    let (nonce, cluster) = nonce;
    // A relay of a cluster: one registration per cluster, with the cluster's secret. Only
    // when asked (--relay-cluster): a cluster id is the relay's unauthenticated claim.
    let cluster = cluster.filter(|c| ask_cluster && *c != [0; wire::CLUSTER_ID_LEN]);
    let (held, secret_file) = match cluster {
        Some(id) => {
            let held = slot.groups.take(id, slot.me).map_err(|e| match e {
                Taken::HeldBy(other) => Attempt::Standby(other),
                Taken::OtherCluster => Attempt::Failed(RegisterError::Refused(format!(
                    "relay {relay} says it is of another cluster than the listener's other \
                     relays; --relay-cluster takes relays of one cluster"
                ))),
            })?;
            let file = secrets::cluster_secret_path(&id, &cfg.name).ok_or_else(|| {
                RegisterError::Local("no state directory for the name's secret".into())
            })?;
            (Some(held), file)
        }
        None => (None, cfg.secret_file.clone()),
    };
    let mut secret = secrets::load_secret(&secret_file).map_err(RegisterError::Local)?;
    // Registered at this relay before it told its cluster: its own secret is the cluster's.
    let adopt = held.is_some() && secret.is_none();
    if adopt {
        secret = secrets::load_secret(&cfg.secret_file).map_err(RegisterError::Local)?;
    }
    let prove = ListenerToRelay::Prove {
        name_proof: secret.map_or([0; 32], |s| secrets::name_proof(&s, &cfg.name, &nonce)),
        key_proof: cfg
            .key
            .as_ref()
            .map_or([0; 32], |k| secrets::key_proof(k, &cfg.name, &nonce)),
    };
    wr.write_all(&prove.encode())
        .await
        .map_err(|e| transient(&e))?;
    let (fresh, keepalive) = match wire::read_frame(&mut rd, t)
        .await
        .map_err(|e| transient(&e))?
    {
        RelayToListener::Registered {
            secret, keepalive, ..
        } => (secret, keepalive),
        RelayToListener::Error(r) => return Err(refusal(relay, r).into()),
        other => return Err(transient(&format!("unexpected {}", other.name())).into()),
    };
    let keep = match (fresh != [0; 32], secret) {
        (true, _) => Some(fresh),
        (false, Some(s)) if adopt => Some(s),
        _ => None,
    };
    if let Some(s) = keep {
        secrets::write_private(&secret_file, secrets::hex(&s).as_bytes()).map_err(|e| {
            RegisterError::Local(format!(
                "cannot keep the name's secret in {}: {e} (set MSOCK_STATE_DIR to a writable directory)",
                secret_file.display()
            ))
        })?;
        tracing::info!(
            "secret for '{}' kept in {}",
            cfg.name,
            secret_file.display()
        );
    }
    // Splices whose local address is gone: tell the relay, so that their clients reconnect
    // now rather than after their dead time.
    let gone: Vec<u64> = {
        let mine = netwatch::local_addrs();
        let mut d = slot.dialed.lock().unwrap_or_else(|e| e.into_inner());
        let gone = d
            .iter()
            .filter(|(_, ip)| !mine.contains(ip))
            .map(|(id, _)| *id)
            .collect();
        d.retain(|(_, ip)| mine.contains(ip));
        gone
    };
    for chunk in gone.chunks(wire::MAX_GONE) {
        tracing::info!(
            "telling the relay that {} spliced flowpaths lost our address",
            chunk.len()
        );
        wr.write_all(&ListenerToRelay::Gone(chunk.to_vec()).encode())
            .await
            .map_err(|e| transient(&e))?;
    }
    Ok(Channel {
        rd,
        wr,
        relay,
        local,
        keepalive: Duration::from_secs(keepalive.clamp(1, 3600) as u64),
        _held: held,
    })
}

#[cfg(test)]
#[path = "agent_tests.rs"]
mod tests;
