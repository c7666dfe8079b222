//! A listener's relays that turn out to be of one cluster (`listen --relay A --relay B`, and
//! A and B send the same cluster id with their NONCE): the name is registered at one of them
//! at a time, the others stand by. Two control channels of one listener in one cluster would
//! fight: the cluster gives a name to the newest registration and closes the older channel,
//! which then registers again and closes the other. The relay whose registration reaches the
//! NONCE first holds the cluster ([`Held`]) until its channel ends; then the relays standing
//! by are woken at once and the first one up registers the name (same secret: the cluster's),
//! well before the dead relay's lease runs out.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::wire::ClusterId;

/// Which of the listener's relays holds each cluster now.
pub(super) struct Groups {
    /// Cluster id → the index (in the listener's relays) of the relay holding it.
    held: Mutex<HashMap<ClusterId, usize>>,
    /// The first cluster id a relay claimed: the listener's relays are of one cluster, so a
    /// relay claiming another (or a new one at each registration) is refused, not given a
    /// secret file of its own each time.
    cluster: Mutex<Option<ClusterId>>,
    /// Bumped whenever a relay lets a cluster go: wakes the relays standing by.
    freed: watch::Sender<u64>,
}

/// Why a relay may not take the cluster now.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Taken {
    /// Another of the listener's relays (this index) holds it: stand by.
    HeldBy(usize),
    /// The relay claims another cluster than the one the listener's relays are of.
    OtherCluster,
}

/// A cluster held by one relay of the listener, let go when dropped (its control channel
/// ended, or its registration failed).
pub(super) struct Held {
    groups: Arc<Groups>,
    id: ClusterId,
    me: usize,
}

impl Groups {
    /// No cluster held yet.
    pub(super) fn new() -> Arc<Groups> {
        Arc::new(Groups {
            held: Mutex::default(),
            cluster: Mutex::default(),
            freed: watch::channel(0).0,
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<ClusterId, usize>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hears each time a cluster is let go (mark it seen before a registration attempt, so
    /// that a release during the attempt is not missed).
    pub(super) fn watch(&self) -> watch::Receiver<u64> {
        self.freed.subscribe()
    }

    /// Relay `me` takes cluster `id`.
    pub(super) fn take(self: &Arc<Self>, id: ClusterId, me: usize) -> Result<Held, Taken> {
        {
            let mut c = self.cluster.lock().unwrap_or_else(|e| e.into_inner());
            if *c.get_or_insert(id) != id {
                return Err(Taken::OtherCluster);
            }
        }
        let mut h = self.held();
        match h.get(&id) {
            Some(&other) if other != me => Err(Taken::HeldBy(other)),
            _ => {
                h.insert(id, me);
                Ok(Held {
                    groups: self.clone(),
                    id,
                    me,
                })
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut h = self.groups.held();
        if h.get(&self.id) == Some(&self.me) {
            h.remove(&self.id);
        }
        drop(h);
        self.groups.freed.send_modify(|n| *n += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_relay_per_cluster_and_the_others_hear_when_it_lets_go() {
        let g = Groups::new();
        let (x, y) = ([1; 16], [2; 16]);
        let mut rx = g.watch();
        rx.borrow_and_update();
        let a = g.take(x, 0).unwrap();
        assert_eq!(g.take(x, 1).err(), Some(Taken::HeldBy(0)));
        // A relay claiming another cluster is refused, whoever holds the first.
        assert_eq!(g.take(y, 1).err(), Some(Taken::OtherCluster));
        assert!(!rx.has_changed().unwrap());
        drop(a);
        tokio::time::timeout(std::time::Duration::from_secs(1), rx.changed())
            .await
            .unwrap()
            .unwrap();
        let _c = g.take(x, 1).unwrap();
        assert_eq!(g.take(x, 0).err(), Some(Taken::HeldBy(1)));
        assert_eq!(g.take(y, 0).err(), Some(Taken::OtherCluster));
    }
}
