//! Several relays sharing one name registry in etcd (`msock proxy --etcd URL[,URL...]
//! --cluster-key-file FILE`): any relay of the cluster registers any name and reaches any
//! listener, and a name has one owner at a time however relays and etcd fail.
//!
//! Keys, under a prefix (`--etcd-prefix`, default `msock/`):
//! - `relays/<id>` → the relay's advertised address, on the relay's lease ([`RELAY_TTL`],
//!   kept alive every third of it);
//! - `names/<name>` → the name's secret sealed with the cluster key ([`seal`]: never in clear
//!   in the store), on a lease of the name TTL that the relay holding its listener renews;
//! - `at/<name>` → [`At`]: the relay the listener is attached at, its generation and the
//!   published direct addresses, on the relay's lease (gone with the relay), deleted when
//!   the listener's control channel ends (a transaction guarded by our write's revision).
//!
//! As at a single relay, a name whose listener never stayed lives only [`UNATTACHED_TTL`]:
//! `names/<name>` gets a lease of that TTL first, and moves to one of the full name TTL when
//! its listener stays (first keepalive on its channel). The per-relay caps (`--max-names`,
//! `--max-names-per-source`) are checked before the claim.
//!
//! Registering at any relay: the proof is checked against the secret read from the store; a
//! first registration is a transaction "create if absent" (`create_revision == 0`), a
//! re-registration "update if unchanged since read" (`mod_revision` equal), and both write
//! `at/<name>` in the same transaction. Every relay watches `at/` and closes its control
//! channel for a name another relay took over: "a newer registration replaces the older",
//! cluster-wide. Without etcd (down, partitioned, no quorum) a relay keeps the channels and
//! splices it has, and refuses new registrations with "registry unavailable"
//! ([`super::refusal::REGISTRY_UNAVAILABLE`]): a name never has two owners. When its lease
//! comes back it re-asserts `at/<name>` only for names that still point to it (or to no one).
//!
//! A client's ROUTE for a name attached at another relay is forwarded there (FORWARD, see
//! [`forward`]); that relay asks its listener to dial back to this one (DIAL_AT), so that the
//! data path stays one relay hop.

mod at;
pub(crate) mod forward;
mod locate;
mod member;
pub(crate) mod seal;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore;
use tokio::sync::Notify;

use super::etcd::kv::{Cmp, Kv, Op};
use super::etcd::watch::Event;
use super::etcd::{Etcd, EtcdError};
use super::registry::UNATTACHED_TTL;
use super::secrets;
use super::server::Relay;
use super::wire::NONCE_LEN;
pub(crate) use at::At;
pub use seal::KEY_LEN;

/// TTL of a relay's lease: its `relays/` and `at/` keys go this long after it died.
pub const RELAY_TTL: Duration = Duration::from_secs(10);

/// Longest silence of the watch of `at/` before it is read again and watched anew (a member
/// that stopped answering without closing the connection). etcd's progress messages (every
/// 10 minutes by default) or any change reset it; an idle cluster re-reads `at/` this often.
const WATCH_IDLE: Duration = Duration::from_secs(3 * RELAY_TTL.as_secs());

/// How a relay joins a cluster.
#[derive(Debug)]
pub struct ClusterConfig {
    /// The etcd cluster.
    pub etcd: Etcd,
    /// The cluster key (every relay of the cluster has the same).
    pub key: [u8; KEY_LEN],
    /// This relay's id (unique in the cluster).
    pub id: String,
    /// Where the other relays and the listeners reach this relay.
    pub advertise: SocketAddr,
    /// Prefix of every key.
    pub prefix: String,
}

/// Why the cluster did not give a name to a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClaimError {
    /// The name's secret in the store does not verify the proof.
    Taken,
    /// The store cannot be read or written (the reason).
    Unavailable(String),
}

impl From<EtcdError> for ClaimError {
    fn from(e: EtcdError) -> Self {
        ClaimError::Unavailable(e.to_string())
    }
}

/// A name given to a registration: its secret (new or proved), and whether it is new.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim {
    /// The name's secret.
    pub secret: [u8; 32],
    /// A new name: the listener is sent the secret.
    pub fresh: bool,
    /// The revision of our write of `at/<name>`.
    pub rev: i64,
    /// The generation written in `at/<name>`.
    pub gen: u64,
}

/// A name whose `at/` key this relay wrote.
#[derive(Debug, Clone, Copy)]
struct Owned {
    /// The lease of its `names/` key.
    name_lease: i64,
    /// That lease has the full name TTL (else [`UNATTACHED_TTL`]: no listener stayed yet).
    full: bool,
    /// The generation written.
    gen: u64,
    /// The revision of our write of `at/<name>`: older changes seen later say nothing.
    rev: i64,
}

/// A relay's membership in a cluster.
#[derive(Debug)]
pub struct Cluster {
    pub(crate) cfg: ClusterConfig,
    /// The relay's lease (0: none yet, or expired).
    lease: AtomicI64,
    /// etcd answered the last keepalive.
    healthy: AtomicBool,
    owned: Mutex<HashMap<String, Owned>>,
    gens: AtomicU64,
    /// Wakes the watcher to read `at/` again (after the lease came back).
    rewatch: Notify,
    /// The newest revision of a put of `at/<name>` by another relay, per name, and when it
    /// was seen: a registration here whose write is older lost the name, even when the put
    /// arrived before this relay knew the name was its own. At most [`SEEN_MAX`] names.
    seen: Mutex<HashMap<String, (i64, std::time::Instant)>>,
    /// MACs of the FORWARDs taken, with their time (see [`forward::take_once`]).
    forwards: Mutex<HashMap<[u8; 32], u64>>,
    /// Bounds of the reads of `at/` for ROUTE and LOOKUP.
    lookups: locate::Lookups,
    /// The address of another relay found holding our id (see [`member`]).
    id_taken: Mutex<Option<String>>,
}

/// Most names [`Cluster`] remembers other relays' `at/` puts for.
const SEEN_MAX: usize = 4096;
/// How long such a put is remembered when the map is full (a registration's claim and
/// install take far less).
const SEEN_FOR: Duration = Duration::from_secs(60);

impl Cluster {
    /// A cluster membership (no lease yet: [`Relay::cluster_lease`] takes one).
    pub fn new(cfg: ClusterConfig) -> Arc<Cluster> {
        Arc::new(Cluster {
            cfg,
            lease: AtomicI64::new(0),
            healthy: AtomicBool::new(false),
            owned: Mutex::default(),
            gens: AtomicU64::new(0),
            rewatch: Notify::new(),
            seen: Mutex::default(),
            forwards: Mutex::default(),
            lookups: locate::Lookups::default(),
            id_taken: Mutex::default(),
        })
    }

    fn forwards(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], u64>> {
        self.forwards.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Another relay put `at/<name>` at revision `rev`.
    fn saw(&self, name: &str, rev: i64) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= SEEN_MAX && !seen.contains_key(name) {
            seen.retain(|_, (_, at)| at.elapsed() < SEEN_FOR);
            if seen.len() >= SEEN_MAX {
                seen.clear();
            }
        }
        let e = seen
            .entry(name.to_owned())
            .or_insert((0, std::time::Instant::now()));
        if rev > e.0 {
            *e = (rev, std::time::Instant::now());
        }
    }

    /// Whether another relay wrote `at/<name>` after our write at revision `rev`.
    pub(crate) fn lost(&self, name: &str, rev: i64) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(name).is_some_and(|(r, _)| *r > rev)
    }

    fn key(&self, kind: &str, name: &str) -> Vec<u8> {
        format!("{}{kind}/{name}", self.cfg.prefix).into_bytes()
    }

    /// The address of the relay that holds this relay's id, if one was found doing so.
    pub fn id_taken_by(&self) -> Option<String> {
        self.id_taken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether etcd answered the relay's last keepalive.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    fn owned(&self) -> std::sync::MutexGuard<'_, HashMap<String, Owned>> {
        self.owned.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives `name` to a registration at this relay whose proof over `nonce` is `proof`,
    /// publishing `direct`; the name lives `ttl` after its listener left.
    pub(crate) async fn claim(
        &self,
        name: &str,
        nonce: &[u8; NONCE_LEN],
        proof: &[u8; 32],
        direct: &[SocketAddr],
        ttl: Duration,
    ) -> Result<Claim, ClaimError> {
        let etcd = &self.cfg.etcd;
        let relay_lease = self.lease.load(Ordering::Relaxed);
        if relay_lease == 0 {
            return Err(ClaimError::Unavailable(
                "this relay holds no lease in etcd (etcd is unreachable or without quorum)".into(),
            ));
        }
        let (nk, ak) = (self.key("names", name), self.key("at", name));
        let ttl = ttl.as_secs().max(1);
        for _ in 0..3 {
            let (secret, fresh, cmp, sealed, old_lease) = match etcd.get(&nk).await? {
                Some(kv) => {
                    let Some(secret) = seal::open(&self.cfg.key, name, &kv.value) else {
                        return Err(ClaimError::Unavailable(format!(
                            "the name's record in etcd does not open with this relay's cluster \
                             key (is --cluster-key-file the same at every relay of {}?)",
                            etcd.urls()
                        )));
                    };
                    let want = secrets::name_proof(&secret, name, nonce);
                    if !secrets::same(&want, proof) {
                        return Err(ClaimError::Taken);
                    }
                    let cmp = Cmp::Modified(nk.clone(), kv.mod_revision);
                    (secret, false, cmp, kv.value, kv.lease)
                }
                None => {
                    let mut s = [0u8; 32];
                    rand::thread_rng().fill_bytes(&mut s);
                    let sealed = seal::seal(&self.cfg.key, name, &s);
                    (s, true, Cmp::Created(nk.clone(), 0), sealed, 0)
                }
            };
            // A listener that never stayed holds its name only as long as at a single relay:
            // a short lease first, the full TTL once it stays ([`Cluster::stayed`]).
            let short = ttl.min(UNATTACHED_TTL.as_secs());
            let (lease, lease_ttl) = match old_lease {
                0 => (etcd.grant(short).await?, short),
                l => match etcd.keepalive(l).await? {
                    Some(t) => (l, u64::try_from(t).unwrap_or(0)),
                    None => (etcd.grant(short).await?, short),
                },
            };
            let gen = self.gens.fetch_add(1, Ordering::Relaxed) + 1;
            let at = At {
                relay: self.cfg.id.clone(),
                addr: self.cfg.advertise,
                gen,
                direct: direct.to_vec(),
            };
            let ops = [
                Op::Put(nk.clone(), sealed, lease),
                Op::Put(ak.clone(), at.encode(), relay_lease),
            ];
            if let Some(rev) = etcd.txn(&[cmp], &ops).await? {
                self.lookups.registered(name);
                self.owned().insert(
                    name.to_owned(),
                    Owned {
                        name_lease: lease,
                        full: lease_ttl >= ttl,
                        gen,
                        rev,
                    },
                );
                return Ok(Claim {
                    secret,
                    fresh,
                    rev,
                    gen,
                });
            }
        }
        Err(ClaimError::Unavailable(
            "the name changed in etcd while it was being registered, three times; retry".into(),
        ))
    }

    /// `name`'s listener (registration `gen` of [`Claim`]) stayed: its `names/` key moves to
    /// a lease of the full name `ttl` (guarded: unless the key changed meanwhile). False when
    /// the store could not be written (the caller tries again later).
    pub(crate) async fn stayed(&self, name: &str, gen: u64, ttl: Duration) -> bool {
        let old = match self.owned().get(name) {
            Some(o) if o.gen == gen && !o.full => o.name_lease,
            _ => return true,
        };
        let etcd = &self.cfg.etcd;
        let nk = self.key("names", name);
        let moved = async {
            let Some(kv) = etcd.get(&nk).await? else {
                return Ok(None);
            };
            if kv.lease != old {
                return Ok(None);
            }
            let lease = etcd.grant(ttl.as_secs().max(1)).await?;
            let cmp = [Cmp::Modified(nk.clone(), kv.mod_revision)];
            let done = etcd.txn(&cmp, &[Op::Put(nk, kv.value, lease)]).await?;
            Ok::<_, EtcdError>(done.map(|_| lease))
        }
        .await;
        match moved {
            Ok(got) => {
                if let Some(o) = self.owned().get_mut(name).filter(|o| o.gen == gen) {
                    o.full = true;
                    if let Some(lease) = got {
                        o.name_lease = lease;
                    }
                }
                if got.is_some() {
                    let _ = etcd.revoke(old).await;
                }
                true
            }
            Err(e) => {
                tracing::info!("cannot give '{name}' its full TTL in etcd: {e}");
                false
            }
        }
    }

    /// `name`'s listener (registration `gen` of [`Claim`]) left this relay: deletes
    /// `at/<name>` unless another write replaced ours, and forgets the name as ours. The
    /// name's `names/` key (its secret) stays on its own lease.
    pub(crate) async fn detach(&self, name: &str, gen: u64) {
        let rev = {
            let mut owned = self.owned();
            match owned.get(name) {
                Some(o) if o.gen == gen => {
                    let rev = o.rev;
                    owned.remove(name);
                    rev
                }
                _ => return,
            }
        };
        let ak = self.key("at", name);
        let cmp = [Cmp::Modified(ak.clone(), rev)];
        if let Err(e) = self.cfg.etcd.txn(&cmp, &[Op::Delete(ak)]).await {
            tracing::info!(
                "cannot delete at/{name} in etcd (it goes with this relay's lease): {e}"
            );
        }
    }

    /// Whether `at` is this relay.
    pub(crate) fn is_me(&self, at: &At) -> bool {
        at.relay == self.cfg.id
    }
}

impl Relay {
    /// Keeps this relay's lease in etcd, forever: takes one (and publishes `relays/<id>`),
    /// renews it every third of [`RELAY_TTL`], takes a new one when it expired (etcd was
    /// away longer than the TTL) and then re-asserts the names that still point here.
    pub async fn cluster_lease(self: Arc<Self>) {
        let Some(c) = self.cluster.clone() else {
            return;
        };
        let etcd = &c.cfg.etcd;
        let mut name_renewal = tokio::time::Instant::now();
        let mut renewing: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let lease = c.lease.load(Ordering::Relaxed);
            let ok = if lease == 0 {
                let got = async {
                    let l = etcd.grant(RELAY_TTL.as_secs()).await?;
                    let key = c.key("relays", &c.cfg.id);
                    match member::claim_id(etcd, &key, c.cfg.advertise, l).await {
                        Ok(member::IdClaim::Ours) => Ok(l),
                        Ok(member::IdClaim::Taken(holder)) => {
                            let _ = etcd.revoke(l).await;
                            self.status(
                                "relay_id_taken",
                                serde_json::json!({"relay": c.cfg.id, "by": holder}),
                            );
                            *c.id_taken.lock().unwrap_or_else(|e| e.into_inner()) = Some(holder);
                            Err(EtcdError::Unavailable("--relay-id is taken".into()))
                        }
                        Err(e) => {
                            let _ = etcd.revoke(l).await;
                            Err(e)
                        }
                    }
                }
                .await;
                match got {
                    Ok(l) => {
                        c.lease.store(l, Ordering::Relaxed);
                        self.status("cluster_lease", serde_json::json!({"relay": c.cfg.id}));
                        // Not in this loop: with many names it would outlast the lease.
                        tokio::spawn(self.clone().reassert(c.clone()));
                        c.rewatch.notify_waiters();
                        true
                    }
                    Err(e) => {
                        tracing::info!("cannot take a lease in etcd: {e}");
                        false
                    }
                }
            } else {
                match etcd.keepalive(lease).await {
                    Ok(Some(_)) => true,
                    Ok(None) => {
                        tracing::info!("the relay's lease in etcd expired; taking a new one");
                        c.lease.store(0, Ordering::Relaxed);
                        continue;
                    }
                    Err(e) => {
                        tracing::info!("cannot renew the relay's lease in etcd: {e}");
                        false
                    }
                }
            };
            let was = c.healthy.swap(ok, Ordering::Relaxed);
            if was != ok {
                self.metrics.etcd_healthy.set(i64::from(ok));
                self.status("etcd", serde_json::json!({"healthy": ok}));
            }
            if ok
                && name_renewal.elapsed() >= (self.cfg.name_ttl / 3).min(Duration::from_secs(3600))
                && renewing.as_ref().is_none_or(|t| t.is_finished())
            {
                // Its own task: the relay's lease is renewed meanwhile.
                renewing = Some(tokio::spawn(self.clone().renew_names(c.clone())));
                name_renewal = tokio::time::Instant::now();
            }
            tokio::time::sleep(RELAY_TTL / 3).await;
        }
    }

    /// Leaves the cluster (at exit): revokes the relay's lease, so that its `at/` keys go at
    /// once and clients are sent to the relays their listeners move to.
    pub async fn cluster_leave(&self) {
        let Some(c) = &self.cluster else { return };
        let lease = c.lease.swap(0, Ordering::Relaxed);
        if lease != 0 {
            let _ = tokio::time::timeout(Duration::from_secs(3), c.cfg.etcd.revoke(lease)).await;
        }
    }

    /// Renews the `names/` leases of the names whose listener is attached here.
    async fn renew_names(self: Arc<Self>, c: Arc<Cluster>) {
        let live: Vec<i64> = {
            let r = self.reg();
            c.owned()
                .iter()
                .filter(|(n, _)| r.names.get(*n).is_some_and(|n| n.control.is_some()))
                .map(|(_, o)| o.name_lease)
                .collect()
        };
        bounded(live, |l| {
            let c = c.clone();
            async move {
                if let Err(e) = c.cfg.etcd.keepalive(l).await {
                    tracing::info!("cannot renew a name's lease: {e}");
                }
            }
        })
        .await;
    }

    /// With a new lease: writes `at/<name>` again for each name attached here that points
    /// here or nowhere; closes the channels of names another relay took meanwhile.
    async fn reassert(self: Arc<Self>, c: Arc<Cluster>) {
        let lease = c.lease.load(Ordering::Relaxed);
        let mine: Vec<(String, u64)> = {
            let r = self.reg();
            c.owned()
                .iter()
                .filter(|(n, _)| r.names.get(*n).is_some_and(|n| n.control.is_some()))
                .map(|(n, o)| (n.clone(), o.gen))
                .collect()
        };
        bounded(mine, |(name, gen)| {
            let (me, c) = (self.clone(), c.clone());
            async move { me.reassert_one(&c, lease, name, gen).await }
        })
        .await;
    }

    /// [`Relay::reassert`] for one name.
    async fn reassert_one(&self, c: &Cluster, lease: i64, name: String, gen: u64) {
        let ak = c.key("at", &name);
        let direct = self
            .reg()
            .names
            .get(&name)
            .map(|n| n.addrs.clone())
            .unwrap_or_default();
        let at = At {
            relay: c.cfg.id.clone(),
            addr: c.cfg.advertise,
            gen,
            direct,
        };
        let done = match c.cfg.etcd.get(&ak).await {
            Ok(None) => {
                c.cfg
                    .etcd
                    .txn(
                        &[Cmp::Created(ak.clone(), 0)],
                        &[Op::Put(ak, at.encode(), lease)],
                    )
                    .await
            }
            Ok(Some(kv)) if At::decode(&kv.value).is_some_and(|a| c.is_me(&a)) => {
                c.cfg
                    .etcd
                    .txn(
                        &[Cmp::Modified(ak.clone(), kv.mod_revision)],
                        &[Op::Put(ak, at.encode(), lease)],
                    )
                    .await
            }
            Ok(Some(_)) => Ok(None),
            Err(e) => Err(e),
        };
        match done {
            Ok(Some(rev)) => {
                if let Some(o) = c.owned().get_mut(&name) {
                    o.rev = rev;
                }
            }
            Ok(None) => self.taken_elsewhere(&name),
            Err(e) => tracing::info!("cannot re-assert '{name}' in etcd: {e}"),
        }
    }

    /// Another relay holds `name` now: close its control channel here.
    pub(crate) fn taken_elsewhere(&self, name: &str) {
        if let Some(c) = &self.cluster {
            c.owned().remove(name);
        }
        let mut r = self.reg();
        let closed = r
            .names
            .get_mut(name)
            .and_then(|n| n.control.take())
            .map(|ctl| ctl.close.notify_one())
            .is_some();
        if r.names.get(name).is_some_and(|n| n.pending.is_empty()) {
            r.names.remove(name);
        }
        drop(r);
        if closed {
            self.status("taken_elsewhere", serde_json::json!({"name": name}));
        }
    }

    /// Watches `at/`, forever: a name this relay holds that another relay took is closed
    /// here. After an error (or a new lease) it reads `at/` again and watches anew.
    pub async fn cluster_watch(self: Arc<Self>) {
        let Some(c) = self.cluster.clone() else {
            return;
        };
        let prefix = c.key("at", "");
        loop {
            let kick = c.rewatch.notified();
            tokio::pin!(kick);
            kick.as_mut().enable();
            let listed = c.cfg.etcd.get_prefix(&prefix).await;
            let rev = match listed {
                Ok((kvs, rev)) => {
                    for kv in kvs {
                        self.seen_at(&c, &prefix, &kv, true);
                    }
                    rev
                }
                Err(e) => {
                    tracing::debug!("cannot read at/ from etcd: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            match c.cfg.etcd.watch_prefix(&prefix, rev + 1, WATCH_IDLE).await {
                Ok(mut w) => loop {
                    tokio::select! {
                        evs = w.next() => match evs {
                            Ok(evs) => for e in evs {
                                match e {
                                    Event::Put(kv) => self.seen_at(&c, &prefix, &kv, true),
                                    Event::Delete(kv) => self.seen_at(&c, &prefix, &kv, false),
                                }
                            },
                            Err(e) => {
                                tracing::debug!("the watch of at/ ended: {e}");
                                break;
                            }
                        },
                        _ = &mut kick => break,
                    }
                },
                Err(e) => tracing::debug!("cannot watch at/: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// `at/<name>` was put (`put`) or deleted as `kv` says. A put by another relay newer
    /// than our own write takes the name from us.
    fn seen_at(&self, c: &Cluster, prefix: &[u8], kv: &Kv, put: bool) {
        let Some(name) = kv
            .key
            .strip_prefix(prefix)
            .and_then(|n| std::str::from_utf8(n).ok())
        else {
            return;
        };
        let Some(at) = At::decode(&kv.value).filter(|_| put) else {
            return;
        };
        c.lookups.registered(name);
        if c.is_me(&at) {
            return;
        }
        c.saw(name, kv.mod_revision);
        let newer = c.owned().get(name).is_some_and(|o| kv.mod_revision > o.rev);
        if newer {
            self.taken_elsewhere(name);
        }
    }
}

/// Most etcd requests of one background job (name renewal, re-assertion) in flight.
const IN_FLIGHT: usize = 16;

/// Runs `f` on every item, at most [`IN_FLIGHT`] at a time; returns when all are done.
async fn bounded<T, F, Fut>(items: Vec<T>, f: F)
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for item in items {
        if set.len() >= IN_FLIGHT {
            let _ = set.join_next().await;
        }
        set.spawn(f(item));
    }
    while set.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests;
