//! Bandwidth caps of the relay (`--rate-per-name`, `--rate-per-source`): a token bucket per
//! name and per client address and direction, shared by every splice of that name or address,
//! so one busy name (or one client) cannot take the relay's whole uplink from the others.
//!
//! A splice asks its buckets for leave to move up to a pipe's worth of bytes and waits when
//! they are empty; bytes it was granted but did not move go back.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::time::Instant;

/// Smallest grant worth a system call while a bucket refills (unless less is asked).
const MIN_GRANT: usize = 16 * 1024;

/// One token bucket: `rate` bytes per second, at most `burst` saved up.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    /// (tokens, when they were counted). Held only to count, never across an await.
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    /// A full bucket of `rate` bytes per second; it saves up at most 100 ms of traffic (at
    /// least 64 KiB, so that a grant of a pipe's worth is possible).
    pub fn new(rate: u64) -> Bucket {
        let rate = rate.max(1) as f64;
        let burst = (rate / 10.0).max(64.0 * 1024.0);
        Bucket {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Leave to move between 1 and `want` bytes (at least `MIN_GRANT` when `want` is larger):
    /// returns at once while there are tokens, else sleeps until there are.
    pub async fn take(&self, want: usize) -> usize {
        let need = want.clamp(1, MIN_GRANT) as f64;
        loop {
            let wait = {
                let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.rate).min(self.burst);
                s.1 = now;
                if s.0 >= need {
                    let grant = (s.0.floor() as usize).min(want);
                    s.0 -= grant as f64;
                    return grant;
                }
                (need - s.0) / self.rate
            };
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }

    /// Returns `n` granted but unused bytes.
    pub fn give_back(&self, n: usize) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 = (s.0 + n as f64).min(self.burst);
    }
}

/// The buckets a splice's direction draws from, in order.
#[derive(Debug, Default, Clone)]
pub struct Caps(pub Vec<Arc<Bucket>>);

impl Caps {
    /// Leave to move up to `want` bytes from every bucket (the smallest grant; the others get
    /// the difference back).
    pub async fn take(&self, want: usize) -> usize {
        let mut grant = want;
        for (i, b) in self.0.iter().enumerate() {
            let got = b.take(grant).await;
            if got < grant {
                for earlier in &self.0[..i] {
                    earlier.give_back(grant - got);
                }
            }
            grant = got;
        }
        grant
    }

    /// Returns `n` unused bytes to every bucket.
    pub fn give_back(&self, n: usize) {
        for b in &self.0 {
            b.give_back(n);
        }
    }
}

/// Direction of a splice's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Client → listener.
    Up,
    /// Listener → client.
    Down,
}

/// The live buckets by key (name or address) and direction; a bucket lives while a splice
/// holds it.
#[derive(Debug)]
struct Table<K> {
    rate: Option<u64>,
    live: Mutex<HashMap<(K, Dir), Weak<Bucket>>>,
}

impl<K: Eq + Hash + Clone> Table<K> {
    fn new(rate: Option<u64>) -> Table<K> {
        Table {
            rate,
            live: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, key: &K, dir: Dir) -> Option<Arc<Bucket>> {
        let rate = self.rate?;
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = live.get(&(key.clone(), dir)).and_then(Weak::upgrade) {
            return Some(b);
        }
        // Forget the buckets no splice holds any more (bounded by the splices alive).
        live.retain(|_, w| w.strong_count() > 0);
        let b = Arc::new(Bucket::new(rate));
        live.insert((key.clone(), dir), Arc::downgrade(&b));
        Some(b)
    }
}

/// The relay's caps per name and per client address (bytes per second each way).
#[derive(Debug)]
pub struct Limiter {
    names: Table<String>,
    sources: Table<IpAddr>,
}

impl Limiter {
    /// Caps of `per_name` and `per_source` bytes per second each way (`None`: no cap).
    pub fn new(per_name: Option<u64>, per_source: Option<u64>) -> Limiter {
        Limiter {
            names: Table::new(per_name),
            sources: Table::new(per_source),
        }
    }

    /// The caps of a splice for `name` from a client at `source`: (up, down).
    pub fn caps(&self, name: &str, source: IpAddr) -> (Caps, Caps) {
        let one = |dir| {
            let name = self.names.get(&name.to_owned(), dir);
            let source = self.sources.get(&source, dir);
            Caps(name.into_iter().chain(source).collect())
        };
        (one(Dir::Up), one(Dir::Down))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_bucket_paces_to_its_rate() {
        let b = Bucket::new(1_000_000);
        let start = tokio::time::Instant::now();
        let mut moved = 0;
        while moved < 3_000_000 {
            moved += b.take(64 * 1024).await;
        }
        let took = start.elapsed().as_secs_f64();
        // 3 MB at 1 MB/s after a 100 KB burst: about 2.9 s of virtual time.
        assert!((2.8..3.1).contains(&took), "took {took} s");
    }

    #[test]
    fn splices_of_one_name_share_a_bucket_and_others_do_not() {
        let l = Limiter::new(Some(1000), None);
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (a, _) = l.caps("a", ip);
        let (a2, _) = l.caps("a", ip);
        let (b, _) = l.caps("b", ip);
        assert!(Arc::ptr_eq(&a.0[0], &a2.0[0]));
        assert!(!Arc::ptr_eq(&a.0[0], &b.0[0]));
        let none = Limiter::new(None, None);
        assert!(none.caps("a", ip).0 .0.is_empty());
    }
}
