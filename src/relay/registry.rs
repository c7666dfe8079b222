//! The relay's registry: names → their listener's control channel, secret and direct
//! addresses; splices waiting for their listener half; per-source rate limits.
//!
//! A name lives while its listener's control channel is up, and for the name TTL after it
//! went down (so that a listener that moves or restarts gets its name back with its secret).
//! After the TTL the name and its secret are forgotten: anyone may register it again. With a
//! state file, names and secrets survive a restart of the relay (the TTL keeps counting).

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
}

/// Why a new flowpath is not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Too many new flowpaths from this address lately.
    Rate,
    /// As many flowpaths as the relay takes.
    Flowpaths,
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
                if let (Some(secret), true) = (secret, age < ttl) {
                    let since = Instant::now().checked_sub(age).unwrap_or_else(Instant::now);
                    r.names.insert(
                        name.clone(),
                        Name {
                            secret,
                            control: None,
                            addrs: Vec::new(),
                            since,
                            pending: HashSet::new(),
                        },
                    );
                }
            }
        }
        Ok(r)
    }

    /// The state file and what to write to it (names and secrets) now; None without a state
    /// file. Cheap enough to take under the registry's lock; the writing (and its fsync) is
    /// [`write_state`]'s, done off the lock.
    pub(crate) fn state_doc(&self) -> Option<(PathBuf, String)> {
        let path = self.state.clone()?;
        let now = Instant::now();
        let now_unix = unix_now();
        let names: serde_json::Map<String, serde_json::Value> = self
            .names
            .iter()
            .map(|(n, e)| {
                let seen = if e.control.is_some() {
                    now_unix
                } else {
                    now_unix.saturating_sub(now.duration_since(e.since).as_secs())
                };
                (
                    n.clone(),
                    serde_json::json!({"secret": secrets::hex(&e.secret), "seen": seen}),
                )
            })
            .collect();
        Some((path, serde_json::json!({ "names": names }).to_string()))
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
        if rate <= 0.0 {
            return Ok(());
        }
        let burst = (rate * 2.0).max(1.0);
        let now = Instant::now();
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens < 1.0 {
            return Err(Limit::Rate);
        }
        b.tokens -= 1.0;
        Ok(())
    }

    /// Forgets names whose listener has been gone for `ttl`, and full rate buckets.
    /// Returns the names that expired (the state file is then out of date).
    pub fn sweep(&mut self, ttl: Duration, rate: f64) -> Vec<String> {
        let now = Instant::now();
        let expired: Vec<String> = self
            .names
            .iter()
            .filter(|(_, e)| e.control.is_none() && now.duration_since(e.since) >= ttl)
            .map(|(n, _)| n.clone())
            .collect();
        for n in &expired {
            self.names.remove(n);
        }
        let burst = (rate * 2.0).max(1.0);
        self.buckets
            .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        expired
    }

    /// Running splices and waiting ones.
    pub fn flowpaths(&self) -> usize {
        self.slots.len()
    }
}

/// Writes a [`Registry::state_doc`] to its file (synced, then renamed into place); a failure
/// is logged, and the relay goes on with its names in memory.
pub(crate) fn write_state((path, doc): (PathBuf, String)) {
    if let Err(e) = secrets::write_private(&path, doc.as_bytes()) {
        tracing::warn!("cannot write state file {}: {e}", path.display());
    }
}

fn unix_now() -> u64 {
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
        r.names.insert(
            "a".into(),
            Name {
                secret: [5; 32],
                control: None,
                addrs: Vec::new(),
                since: Instant::now(),
                pending: HashSet::new(),
            },
        );
        write_state(r.state_doc().unwrap());
        let back = Registry::load(Some(path.clone()), Duration::from_secs(60)).unwrap();
        assert_eq!(back.names["a"].secret, [5; 32]);
        assert_eq!(r.sweep(Duration::from_secs(60), 1.0), Vec::<String>::new());
        assert_eq!(r.sweep(Duration::ZERO, 1.0), vec!["a".to_string()]);
        write_state(r.state_doc().unwrap());
        let back = Registry::load(Some(path), Duration::from_secs(60)).unwrap();
        assert!(back.names.is_empty());
    }
}
