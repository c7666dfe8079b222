//! The relay's registry: names → their listener's control channel, secret and direct
//! addresses; splices waiting for their listener half; per-source rate limits.
//!
//! A name lives while its listener's control channel is up, and for the name TTL after it
//! went down (so that a listener that moves or restarts gets its name back with its secret).
//! A name whose listener never stayed ([`Name::attached`] false: the channel closed before
//! its first keepalive and carried no session) lives only [`UNATTACHED_TTL`]: squatting a
//! name costs a squatter a connection kept open. After its TTL a name and its secret are
//! forgotten: anyone may register it again. With a state file, names and secrets survive a
//! restart of the relay (the TTL keeps counting).
//!
//! What one source address can hold is bounded ([`Limits`]): its splices (running or
//! waiting), its splices that carry no session yet, the names it registered, and its rate of
//! new flowpaths and of registrations. Splices that carry no session yet are bounded per
//! name too, so that no set of sources fills the relay through one name.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};

use super::secrets;
use super::wire::{RelayToListener, NONCE_LEN, SECRET_LEN};

/// A live control channel: where DIALs (and a close request) go.
#[derive(Debug, Clone)]
pub struct Control {
    /// Frames to write to the listener.
    pub tx: mpsc::Sender<RelayToListener>,
    /// Registration generation (a newer registration replaces this one).
    pub gen: u64,
    /// Tells the channel's task to close (replaced by a newer registration).
    pub close: Arc<Notify>,
}

/// One registered name.
#[derive(Debug)]
pub struct Name {
    /// The name's secret.
    pub secret: [u8; SECRET_LEN],
    /// The listener's control channel, while it is up.
    pub control: Option<Control>,
    /// Direct addresses to publish (those at the address the relay sees the listener at).
    pub addrs: Vec<SocketAddr>,
    /// When the control channel went down (or the name was loaded from the state file).
    pub since: Instant,
    /// Splices waiting for this listener to dial back.
    pub pending: HashSet<u64>,
    /// Splices for this name that carry no session yet (see [`Slot::carrying`]).
    pub unproven: usize,
    /// The address the name was last registered from (its names count against it).
    pub source: IpAddr,
    /// Registered with an operator key: does not count against its source's names.
    pub keyed: bool,
    /// A listener stayed on the name (PINGed its control channel, or a splice for it
    /// carried a session): the name lives the full name TTL after its listener went.
    pub attached: bool,
    /// A nameplate for pairing (REGISTER_CODE): its attempts and whether it is burned; None
    /// for an ordinary name. See [`super::nameplate`].
    pub pairing: Option<super::nameplate::Pairing>,
}

impl Name {
    /// A new name with `secret`, registered from `source`.
    pub fn new(secret: [u8; SECRET_LEN], source: IpAddr, keyed: bool) -> Name {
        Name {
            secret,
            control: None,
            addrs: Vec::new(),
            since: Instant::now(),
            pending: HashSet::new(),
            unproven: 0,
            source,
            keyed,
            attached: false,
            pairing: None,
        }
    }

    /// How long the name outlives its listener.
    fn ttl(&self, ttl: Duration) -> Duration {
        if self.attached && self.pairing.is_none() {
            ttl
        } else {
            ttl.min(UNATTACHED_TTL)
        }
    }
}

/// How long a name whose listener never stayed outlives it (at most the name TTL).
pub const UNATTACHED_TTL: Duration = Duration::from_secs(10 * 60);

/// Registrations per second from one address.
pub const REGISTER_RATE: f64 = 1.0;
/// Burst of registrations from one address.
pub const REGISTER_BURST: f64 = 20.0;

/// What the registry admits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// New client flowpaths (and lookups) per second per source address; 0: no limit.
    pub rate: f64,
    /// Most splices (running or waiting) at once.
    pub max_flowpaths: usize,
    /// Most splices from one source address.
    pub per_source: usize,
    /// Most splices carrying no session yet for one name; one source address may hold half
    /// of them (at least one).
    pub pending_per_name: usize,
    /// Most names registered from one source address without an operator key.
    pub names_per_source: usize,
}

impl Limits {
    fn pending_per_source(&self) -> usize {
        (self.pending_per_name / 2).max(1)
    }
}

/// What one source address holds.
#[derive(Debug, Default, Clone, Copy)]
struct Use {
    /// Its splices.
    slots: usize,
    /// Those of its splices that carry no session yet.
    unproven: usize,
}

/// A splice: the client half waits for the listener's dial-back, then both are copied.
#[derive(Debug)]
pub struct Slot {
    /// The name it is for.
    pub name: String,
    /// What the dial-back must present.
    pub token: [u8; NONCE_LEN],
    /// Hands the listener's half to the waiting client task (None once taken).
    pub waiting: Option<oneshot::Sender<TcpStream>>,
    /// Ends the running splice (GONE, shutdown).
    pub kill: Arc<Notify>,
    /// The client's address (the splice counts against it).
    pub source: IpAddr,
    /// The listener answered through the splice: a session runs on it. Until then the
    /// splice counts as unproven against its source and its name.
    pub carrying: bool,
}

/// Why a new flowpath is not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Too many new flowpaths from this address lately.
    Rate,
    /// As many flowpaths as the relay takes.
    Flowpaths,
    /// As many flowpaths as one source address may hold.
    Source,
    /// As many flowpaths without a session yet as the name (or this source, for the name)
    /// may have.
    Pending,
}

/// Token bucket per source address.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Everything behind the relay's one lock.
#[derive(Debug, Default)]
pub struct Registry {
    /// Names.
    pub names: HashMap<String, Name>,
    /// Splices, waiting or running.
    pub slots: HashMap<u64, Slot>,
    buckets: HashMap<IpAddr, Bucket>,
    /// Registration rate buckets.
    reg_buckets: HashMap<IpAddr, Bucket>,
    /// What each source address holds (only addresses holding something).
    uses: HashMap<IpAddr, Use>,
    next_gen: u64,
    /// The state file (None: names live in memory only).
    pub state: Option<PathBuf>,
}

impl Registry {
    /// An empty registry, with the names of `state` (if given and readable) not older
    /// than `ttl`.
    pub fn load(state: Option<PathBuf>, ttl: Duration) -> Result<Registry, String> {
        let mut r = Registry {
            state: state.clone(),
            ..Registry::default()
        };
        let Some(path) = state else { return Ok(r) };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(r),
            Err(e) => return Err(format!("cannot read state file {}: {e}", path.display())),
        };
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("state file {} is not JSON: {e}", path.display()))?;
        let now_unix = unix_now();
        if let Some(names) = v.get("names").and_then(|n| n.as_object()) {
            for (name, e) in names {
                let secret = e
                    .get("secret")
                    .and_then(|s| s.as_str())
                    .and_then(secrets::unhex32);
                let seen = e.get("seen").and_then(|s| s.as_u64()).unwrap_or(0);
                let age = Duration::from_secs(now_unix.saturating_sub(seen));
                let source = e
                    .get("source")
                    .and_then(|s| s.as_str())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(IpAddr::from([0, 0, 0, 0]));
                let keyed = e.get("keyed").and_then(|k| k.as_bool()).unwrap_or(false);
                if let Some(secret) = secret {
                    let mut n = Name::new(secret, source, keyed);
                    n.attached = e.get("attached").and_then(|a| a.as_bool()).unwrap_or(true);
                    n.since = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
                    if age < n.ttl(ttl) {
                        r.names.insert(name.clone(), n);
                    }
                }
            }
        }
        Ok(r)
    }

    /// The state file and what to write to it (names and secrets) now; None without a state
    /// file. A copy of small records, cheap enough to take under the registry's lock; the
    /// encoding and the writing (with its fsync) are [`write_state`]'s, done off the lock.
    pub(crate) fn state_doc(&self) -> Option<(PathBuf, Vec<Saved>)> {
        let path = self.state.clone()?;
        let now = Instant::now();
        let now_unix = unix_now();
        let names = self
            .names
            .iter()
            // Nameplates are short-lived: never kept across a restart.
            .filter(|(_, e)| e.pairing.is_none())
            .map(|(n, e)| Saved {
                name: n.clone(),
                secret: e.secret,
                seen: if e.control.is_some() {
                    now_unix
                } else {
                    now_unix.saturating_sub(now.duration_since(e.since).as_secs())
                },
                source: e.source,
                keyed: e.keyed,
                attached: e.attached,
            })
            .collect();
        Some((path, names))
    }

    /// A new registration generation number.
    pub(crate) fn next_gen(&mut self) -> u64 {
        self.next_gen += 1;
        self.next_gen
    }

    /// Takes one token from `ip`'s bucket (`rate` per second, bursts of twice that; 0 means
    /// no limit) and checks the flowpath limit. Err says which limit refused.
    pub(crate) fn admit(
        &mut self,
        ip: IpAddr,
        rate: f64,
        max_flowpaths: usize,
    ) -> Result<(), Limit> {
        if self.slots.len() >= max_flowpaths {
            return Err(Limit::Flowpaths);
        }
        match take(&mut self.buckets, ip, rate, (rate * 2.0).max(1.0)) {
            true => Ok(()),
            false => Err(Limit::Rate),
        }
    }

    /// Admits a new client flowpath from `ip` to `name` (which must exist): the rate, the
    /// relay's flowpaths, the source's flowpaths and unproven ones, the name's unproven ones.
    /// On success the slot is counted (and must leave through [`Registry::close`]).
    pub(crate) fn open(&mut self, id: u64, slot: Slot, lim: &Limits) -> Result<(), Limit> {
        let ip = slot.source;
        let unproven = self.names.get(&slot.name).map_or(0, |n| n.unproven);
        let u = self.uses.get(&ip).copied().unwrap_or_default();
        if self.slots.len() >= lim.max_flowpaths {
            return Err(Limit::Flowpaths);
        }
        if u.slots >= lim.per_source {
            return Err(Limit::Source);
        }
        if unproven >= lim.pending_per_name || u.unproven >= lim.pending_per_source() {
            return Err(Limit::Pending);
        }
        self.admit(ip, lim.rate, lim.max_flowpaths)?;
        let u = self.uses.entry(ip).or_default();
        u.slots += 1;
        u.unproven += 1;
        if let Some(n) = self.names.get_mut(&slot.name) {
            n.unproven += 1;
        }
        self.slots.insert(id, slot);
        Ok(())
    }

    /// The splice `id` carries a session: it no longer counts as unproven, and its name has
    /// had a listener attached.
    pub(crate) fn carrying(&mut self, id: u64) {
        let Some(s) = self.slots.get_mut(&id).filter(|s| !s.carrying) else {
            return;
        };
        s.carrying = true;
        if let Some(u) = self.uses.get_mut(&s.source) {
            u.unproven = u.unproven.saturating_sub(1);
        }
        if let Some(n) = self.names.get_mut(&s.name) {
            n.unproven = n.unproven.saturating_sub(1);
            n.attached = true;
        }
    }

    /// Forgets the splice `id` (and what it counted).
    pub(crate) fn close(&mut self, id: u64) {
        let Some(s) = self.slots.remove(&id) else {
            return;
        };
        if let Some(n) = self.names.get_mut(&s.name) {
            n.pending.remove(&id);
            if !s.carrying {
                n.unproven = n.unproven.saturating_sub(1);
            }
        }
        if let Some(u) = self.uses.get_mut(&s.source) {
            u.slots = u.slots.saturating_sub(1);
            if !s.carrying {
                u.unproven = u.unproven.saturating_sub(1);
            }
            if u.slots == 0 {
                self.uses.remove(&s.source);
            }
        }
    }

    /// Takes one registration token from `ip`'s bucket ([`REGISTER_RATE`] per second, bursts
    /// of [`REGISTER_BURST`]); false: too many registrations from it lately.
    pub(crate) fn may_register(&mut self, ip: IpAddr) -> bool {
        take(&mut self.reg_buckets, ip, REGISTER_RATE, REGISTER_BURST)
    }

    /// Names registered from `ip` without an operator key.
    pub(crate) fn names_from(&self, ip: IpAddr) -> usize {
        self.names
            .values()
            .filter(|n| n.source == ip && !n.keyed)
            .count()
    }

    /// Forgets names whose listener has been gone for their TTL (`ttl`, or
    /// [`UNATTACHED_TTL`] for names no listener stayed on), and full rate buckets. Returns
    /// the names that expired (the state file is then out of date).
    pub fn sweep(&mut self, ttl: Duration, rate: f64) -> Vec<String> {
        let now = Instant::now();
        let expired: Vec<String> = self
            .names
            .iter()
            .filter(|(_, e)| e.control.is_none() && now.duration_since(e.since) >= e.ttl(ttl))
            .map(|(n, _)| n.clone())
            .collect();
        for n in &expired {
            self.names.remove(n);
        }
        let full = |b: &Bucket, rate: f64, burst: f64| {
            b.tokens + now.duration_since(b.at).as_secs_f64() * rate >= burst
        };
        let burst = (rate * 2.0).max(1.0);
        self.buckets.retain(|_, b| !full(b, rate, burst));
        self.reg_buckets
            .retain(|_, b| !full(b, REGISTER_RATE, REGISTER_BURST));
        expired
    }

    /// Running splices and waiting ones.
    pub fn flowpaths(&self) -> usize {
        self.slots.len()
    }
}

/// One name as the state file keeps it.
#[derive(Debug)]
pub(crate) struct Saved {
    name: String,
    secret: [u8; SECRET_LEN],
    /// Unix time the listener was last seen.
    seen: u64,
    source: IpAddr,
    keyed: bool,
    attached: bool,
}

/// Writes a [`Registry::state_doc`] to its file (synced, then renamed into place); a failure
/// is logged, and the relay goes on with its names in memory.
pub(crate) fn write_state((path, names): (PathBuf, Vec<Saved>)) {
    let names: serde_json::Map<String, serde_json::Value> = names
        .into_iter()
        .map(|s| {
            let v = serde_json::json!({"secret": secrets::hex(&s.secret), "seen": s.seen,
                "source": s.source.to_string(), "keyed": s.keyed, "attached": s.attached});
            (s.name, v)
        })
        .collect();
    let doc = serde_json::json!({ "names": names }).to_string();
    if let Err(e) = secrets::write_private(&path, doc.as_bytes()) {
        tracing::warn!("cannot write state file {}: {e}", path.display());
    }
}

/// Takes a token from `ip`'s bucket in `buckets` (refilled at `rate` per second up to
/// `burst`); `rate` 0 means no limit. False if the bucket is empty.
fn take(buckets: &mut HashMap<IpAddr, Bucket>, ip: IpAddr, rate: f64, burst: f64) -> bool {
    if rate <= 0.0 {
        return true;
    }
    let now = Instant::now();
    let b = buckets.entry(ip).or_insert(Bucket {
        tokens: burst,
        at: now,
    });
    b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
    b.at = now;
    if b.tokens < 1.0 {
        return false;
    }
    b.tokens -= 1.0;
    true
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_refills() {
        let mut r = Registry::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        // Burst of 2 x rate, then refused.
        assert!(r.admit(ip, 2.0, 100).is_ok());
        assert!(r.admit(ip, 2.0, 100).is_ok());
        assert!(r.admit(ip, 2.0, 100).is_ok());
        assert!(r.admit(ip, 2.0, 100).is_ok());
        assert_eq!(r.admit(ip, 2.0, 100), Err(Limit::Rate));
        // Another address has its own bucket; no rate means no limit.
        assert!(r.admit("192.0.2.2".parse().unwrap(), 2.0, 100).is_ok());
        assert!(r.admit(ip, 0.0, 100).is_ok());
        assert_eq!(r.admit(ip, 0.0, 0), Err(Limit::Flowpaths));
    }

    #[test]
    fn names_expire_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.json");
        let mut r = Registry::load(Some(path.clone()), Duration::from_secs(60)).unwrap();
        let mut n = Name::new([5; 32], "192.0.2.9".parse().unwrap(), false);
        n.attached = true;
        r.names.insert("a".into(), n);
        write_state(r.state_doc().unwrap());
        let back = Registry::load(Some(path.clone()), Duration::from_secs(60)).unwrap();
        assert_eq!(back.names["a"].secret, [5; 32]);
        assert_eq!(r.sweep(Duration::from_secs(60), 1.0), Vec::<String>::new());
        assert_eq!(r.sweep(Duration::ZERO, 1.0), vec!["a".to_string()]);
        write_state(r.state_doc().unwrap());
        let back = Registry::load(Some(path), Duration::from_secs(60)).unwrap();
        assert!(back.names.is_empty());
    }

    fn slot(name: &str, source: &str) -> Slot {
        Slot {
            name: name.into(),
            token: [0; NONCE_LEN],
            waiting: None,
            kill: Arc::new(Notify::new()),
            source: source.parse().unwrap(),
            carrying: false,
        }
    }

    #[test]
    fn one_source_holds_a_bounded_share() {
        let lim = Limits {
            rate: 0.0,
            max_flowpaths: 100,
            per_source: 10,
            pending_per_name: 8,
            names_per_source: 4,
        };
        let mut r = Registry::default();
        for n in ["a", "b"] {
            r.names.insert(
                n.into(),
                Name::new([0; 32], "192.0.2.9".parse().unwrap(), false),
            );
        }
        // Four unproven splices per source (half the name's eight).
        for id in 1..5 {
            assert!(r.open(id, slot("a", "192.0.2.1"), &lim).is_ok());
        }
        assert_eq!(r.open(5, slot("b", "192.0.2.1"), &lim), Err(Limit::Pending));
        // Once they carry sessions, the source may open more, up to its share.
        for id in 1..5 {
            r.carrying(id);
        }
        r.carrying(2);
        assert_eq!(r.names["a"].unproven, 0);
        assert!(r.names["a"].attached && !r.names["b"].attached);
        for id in 5..11 {
            assert!(r.open(id, slot("b", "192.0.2.1"), &lim).is_ok());
            r.carrying(id);
        }
        assert_eq!(r.open(11, slot("b", "192.0.2.1"), &lim), Err(Limit::Source));
        // Other sources: the name's unproven splices are bounded.
        for id in 20..28 {
            let src = if id < 24 { "192.0.2.2" } else { "192.0.2.3" };
            assert!(r.open(id, slot("a", src), &lim).is_ok());
        }
        assert_eq!(
            r.open(28, slot("a", "192.0.2.6"), &lim),
            Err(Limit::Pending)
        );
        assert!(r.open(28, slot("b", "192.0.2.6"), &lim).is_ok());
        // Closing gives everything back.
        for id in 1..29 {
            r.close(id);
        }
        assert!(r.slots.is_empty() && r.uses.is_empty());
        assert_eq!(r.names["a"].unproven + r.names["b"].unproven, 0);
    }

    #[test]
    fn registrations_are_rate_limited_and_unattached_names_die_young() {
        let mut r = Registry::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let granted = (0..100).filter(|_| r.may_register(ip)).count();
        assert_eq!(granted, REGISTER_BURST as usize);
        assert!(r.may_register("192.0.2.2".parse().unwrap()));
        let mut old = Name::new([1; 32], ip, false);
        old.since = Instant::now() - UNATTACHED_TTL;
        r.names.insert("squat".into(), old);
        let mut kept = Name::new([2; 32], ip, true);
        kept.since = Instant::now() - UNATTACHED_TTL;
        kept.attached = true;
        r.names.insert("kept".into(), kept);
        assert_eq!(r.names_from(ip), 1);
        let day = Duration::from_secs(86400);
        assert_eq!(r.sweep(day, 1.0), vec!["squat".to_string()]);
        assert!(r.names.contains_key("kept"));
    }
}
