//! Where a name's listener is attached, from `at/<name>` in the store, for ROUTE and LOOKUP
//! of names not attached here. Bounded: at most [`MAX_GETS`] reads in flight per relay
//! (beyond, the request is refused Busy, "retry"), and a name found absent is answered
//! absent for [`ABSENT_FOR`] without asking the store again (at most [`MAX_ABSENT`] names;
//! forgotten at once when a registration of it is seen).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::{At, Cluster};
use crate::relay::etcd::EtcdError;

/// Most `at/` reads in flight at one relay.
pub(crate) const MAX_GETS: usize = 64;
/// How long a name found absent is answered absent from memory.
pub(crate) const ABSENT_FOR: Duration = Duration::from_secs(1);
/// Most names remembered absent.
const MAX_ABSENT: usize = 4096;

/// The bounds of a relay's lookups in the store.
#[derive(Debug)]
pub(crate) struct Lookups {
    gets: Semaphore,
    /// Names found absent, and when.
    absent: Mutex<HashMap<String, Instant>>,
}

impl Default for Lookups {
    fn default() -> Self {
        Lookups {
            gets: Semaphore::new(MAX_GETS),
            absent: Mutex::default(),
        }
    }
}

impl Lookups {
    fn absent(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.absent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `name` was found absent within [`ABSENT_FOR`].
    fn known_absent(&self, name: &str) -> bool {
        self.absent()
            .get(name)
            .is_some_and(|t| t.elapsed() < ABSENT_FOR)
    }

    fn note_absent(&self, name: &str) {
        let mut a = self.absent();
        if a.len() >= MAX_ABSENT {
            a.retain(|_, t| t.elapsed() < ABSENT_FOR);
            if a.len() >= MAX_ABSENT {
                return;
            }
        }
        a.insert(name.to_owned(), Instant::now());
    }

    /// `name` was registered somewhere: it is no longer known absent.
    pub(crate) fn registered(&self, name: &str) {
        self.absent().remove(name);
    }
}

impl Cluster {
    /// Where `name`'s listener is attached, from the store (see the module doc for the
    /// bounds). Err: the store cannot be read, or too many reads are in flight.
    pub(crate) async fn locate(&self, name: &str) -> Result<Option<At>, EtcdError> {
        if self.lookups.known_absent(name) {
            return Ok(None);
        }
        let Ok(_permit) = self.lookups.gets.try_acquire() else {
            return Err(EtcdError::Unavailable(format!(
                "this relay has {MAX_GETS} name lookups in etcd in flight; retry in a moment"
            )));
        };
        let kv = self.cfg.etcd.get(&self.key("at", name)).await?;
        let at = kv.and_then(|kv| At::decode(&kv.value));
        if at.is_none() {
            self.lookups.note_absent(name);
        }
        Ok(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_names_are_remembered_briefly_and_boundedly() {
        let l = Lookups::default();
        assert!(!l.known_absent("x"));
        l.note_absent("x");
        assert!(l.known_absent("x"));
        l.registered("x");
        assert!(!l.known_absent("x"));
        for i in 0..MAX_ABSENT * 2 {
            l.note_absent(&format!("n{i}"));
        }
        assert!(l.absent().len() <= MAX_ABSENT);
        l.absent().insert("old".into(), Instant::now() - ABSENT_FOR);
        assert!(!l.known_absent("old"));
    }

    #[tokio::test]
    async fn lookups_beyond_the_bound_are_refused_not_queued() {
        let c = Cluster::new(super::super::ClusterConfig {
            etcd: crate::relay::etcd::Etcd::new("http://127.0.0.1:1", Duration::from_secs(1))
                .unwrap(),
            key: [7; super::super::KEY_LEN],
            id: "a".into(),
            advertise: "127.0.0.1:1".parse().unwrap(),
            prefix: "msock/".into(),
        });
        let _all = c.lookups.gets.try_acquire_many(MAX_GETS as u32).unwrap();
        let e = c.locate("x").await;
        assert!(
            matches!(&e, Err(EtcdError::Unavailable(m)) if m.contains("in flight")),
            "{e:?}"
        );
        drop(_all);
        c.lookups.note_absent("x");
        assert_eq!(
            c.locate("x").await.unwrap(),
            None,
            "from memory, not the store"
        );
    }
}
