//! The relay's control channels (REGISTER): a listener proves its name (and operator key),
//! gets its name's secret, and keeps the channel for DIALs and keepalives.
//!
//! Registrations are rate limited per source address ([`super::registry::REGISTER_RATE`], bursts of
//! [`super::registry::REGISTER_BURST`]); without `--auth-keys` one address holds at most
//! `--max-names-per-source` names; a name whose listener never stayed (no keepalive on its
//! channel, no session through it) is forgotten after [`super::registry::UNATTACHED_TTL`]. A new
//! name's secret reaches the state file (written in batches, in the background) before the
//! listener learns it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};

use super::cluster::{Claim, ClaimError};
use super::refusal::ControlRefusal;
use super::registry::{Control, Name};
use super::secrets;
use super::server::{refuse, Relay};
use super::wire::{
    self, ListenerToRelay, Message, RelayToListener, WireError, CLUSTER_ID_LEN, NONCE_LEN,
};
use crate::proto::ErrorCode;

/// A new control channel, as [`Relay::install`] takes it.
struct Channel<'a> {
    /// Where the listener registers from.
    source: IpAddr,
    /// Its direct addresses to publish.
    published: &'a [SocketAddr],
    /// Frames to it.
    tx: mpsc::Sender<RelayToListener>,
    /// Closes the channel.
    close: Arc<Notify>,
    /// A nameplate's channel (REGISTER_CODE), see [`super::nameplate`].
    pairing: bool,
}

impl Relay {
    /// REGISTER: a listener's control channel.
    pub(super) async fn control(
        self: Arc<Self>,
        s: TcpStream,
        peer: SocketAddr,
        name: String,
        addrs: Vec<SocketAddr>,
        pairing: bool,
        ask_cluster: bool,
    ) {
        let hs = self.cfg.handshake_timeout;
        if !self.reg().may_register(peer.ip()) {
            self.refuse_count("register_rate");
            self.status(
                "refused",
                serde_json::json!({"from": peer.to_string(), "name": name, "reason": "register_rate"}),
            );
            let why = "too many registrations from your address; retry in a few seconds";
            return refuse(s, ErrorCode::Busy, why).await;
        }
        let (mut rd, mut wr) = s.into_split();
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        // Asked for, the cluster's id: a listener keeps one secret for every relay of it.
        let cluster = ask_cluster.then(|| {
            self.cluster.as_ref().map_or([0; CLUSTER_ID_LEN], |c| {
                super::cluster::seal::cluster_id(&c.cfg.key, &c.cfg.prefix)
            })
        });
        if wr
            .write_all(&RelayToListener::Nonce { nonce, cluster }.with_preamble())
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
        let proved = std::time::Instant::now();
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
        // A nameplate publishes nothing: its attempts must go through the relay, which
        // counts them.
        let published: Vec<SocketAddr> = addrs
            .into_iter()
            .filter(|a| a.ip() == peer.ip() && !pairing)
            .collect();
        let (tx, mut rx) = mpsc::channel::<RelayToListener>(1024);
        let close = Arc::new(Notify::new());
        let channel = Channel {
            source: peer.ip(),
            published: &published,
            tx,
            close: close.clone(),
            pairing,
        };
        // A cluster relay: the store decides who holds the name (see `super::cluster`), after
        // this relay's own caps.
        let claimed = match (&self.cluster, pairing) {
            (Some(c), false) => {
                if let Err(why) = self.caps(&name, peer.ip()) {
                    return self.refuse_control(wr, peer, &name, why).await;
                }
                let got = c
                    .claim(&name, &nonce, &name_proof, &published, self.cfg.name_ttl)
                    .await;
                match got {
                    Ok(claim) => Some(claim),
                    Err(ClaimError::Taken) => {
                        let why = ControlRefusal::NameTaken(name.clone());
                        return self.refuse_control(wr, peer, &name, why).await;
                    }
                    Err(ClaimError::Unavailable(e)) => {
                        let why = ControlRefusal::Unavailable(e);
                        return self.refuse_control(wr, peer, &name, why).await;
                    }
                }
            }
            _ => None,
        };
        let outcome = self.install(&name, &nonce, &name_proof, channel, claimed);
        let (gen, reply, redial, fresh) = match outcome {
            Ok(x) => x,
            Err(why) => {
                if let (Some(c), Some(claim)) = (&self.cluster, claimed) {
                    c.detach(&name, claim.gen).await;
                }
                return self.refuse_control(wr, peer, &name, why).await;
            }
        };
        // Another relay's registration may have landed between our claim and now, its `at/`
        // put seen before this name was ours: the newer registration wins.
        if let (Some(c), Some(claim)) = (&self.cluster, claimed) {
            if c.lost(&name, claim.rev) {
                self.taken_elsewhere(&name);
                let why = ControlRefusal::NameTaken(name.clone());
                return self.refuse_control(wr, peer, &name, why).await;
            }
        }
        if fresh {
            // The new secret is on disk before the listener learns it.
            self.persist().await;
        }
        self.metrics.registrations.inc();
        self.status(
            "registered",
            serde_json::json!({"name": name, "from": peer.to_string(),
                "direct": published.iter().map(|a| a.to_string()).collect::<Vec<_>>()}),
        );
        let mut ok = wr.write_all(&reply.encode()).await.is_ok();
        self.metrics.registered(proved);
        for f in redial {
            ok = ok && wr.write_all(&f.encode()).await.is_ok();
        }
        let mut frames = wire::spawn_reader(rd, self.cfg.keepalive * 3);
        let mut stayed = false;
        // The name's lease in the cluster has its full TTL (see `super::cluster`).
        let mut full = false;
        let mut extending: Option<tokio::task::JoinHandle<bool>> = None;
        while ok {
            tokio::select! {
                f = frames.recv() => match f.unwrap_or(Err(WireError::ReaderGone)) {
                    Ok(ListenerToRelay::Ping(t)) => {
                        if !stayed {
                            // A listener that keeps its channel up: the name lives its full TTL.
                            stayed = true;
                            if let Some(n) = self.reg().names.get_mut(&name) {
                                n.attached = true;
                            }
                        }
                        // In a cluster too (in the background; again at the next keepalive
                        // until the store took it).
                        if let (Some(c), Some(claim), false) = (&self.cluster, claimed, full) {
                            if extending.as_ref().is_none_or(|t| t.is_finished()) {
                                if let Some(t) = extending.take() {
                                    full = t.await.unwrap_or(false);
                                }
                                if !full {
                                    let (c, name, ttl) = (c.clone(), name.clone(), self.cfg.name_ttl);
                                    extending = Some(tokio::spawn(async move {
                                        c.stayed(&name, claim.gen, ttl).await
                                    }));
                                }
                            }
                        }
                        ok = wr.write_all(&RelayToListener::Pong(t).encode()).await.is_ok();
                    }
                    Ok(ListenerToRelay::Gone(ids)) => self.kill_splices(&name, &ids),
                    Ok(ListenerToRelay::Paired) => {
                        self.reg().paired(&name);
                        self.status("paired", serde_json::json!({"name": name}));
                    }
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
        let ended = {
            let mut r = self.reg();
            match r.names.get_mut(&name) {
                Some(n) if n.control.as_ref().is_some_and(|c| c.gen == gen) => {
                    n.control = None;
                    n.since = Instant::now();
                    r.drop_unburned(&name);
                    true
                }
                _ => false,
            }
        };
        if ended {
            // The listener is no longer attached here: the cluster stops sending clients.
            if let (Some(c), Some(claim)) = (&self.cluster, claimed) {
                c.detach(&name, claim.gen).await;
            }
            self.status(
                "unregistered",
                serde_json::json!({"name": name, "from": peer.to_string()}),
            );
        }
    }

    /// Checks the name proof and installs a control channel for `name`. Returns its
    /// generation, the REGISTERED reply, DIALs for splices waiting for it and whether the name
    /// is new (the state file must be written); or the refusal. With `claimed`, the cluster
    /// already checked the proof against the store and gave the name's secret.
    #[allow(clippy::type_complexity)]
    fn install(
        &self,
        name: &str,
        nonce: &[u8; NONCE_LEN],
        name_proof: &[u8; 32],
        ch: Channel<'_>,
        claimed: Option<Claim>,
    ) -> Result<(u64, RelayToListener, Vec<RelayToListener>, bool), ControlRefusal> {
        // With --auth-keys every listener proved an operator key: no cap per address.
        let keyed = !self.cfg.auth_keys.is_empty();
        let mut guard = self.reg();
        let r = &mut *guard;
        let known = r.names.get(name).map(|n| n.secret);
        // A nameplate and an ordinary name never take each other's place.
        if r.names
            .get(name)
            .is_some_and(|n| n.pairing.is_some() != ch.pairing)
        {
            return Err(ControlRefusal::NameTaken(name.to_owned()));
        }
        let new_secret = match (claimed, known) {
            (Some(c), known) => {
                if known.is_none() {
                    // Checked before the claim too; other registrations ran meanwhile.
                    self.caps_in(r, ch.source)?;
                }
                if let Some(n) = r.names.get_mut(name) {
                    n.secret = c.secret;
                }
                c.fresh.then_some(c.secret)
            }
            (None, Some(secret))
                if secrets::same(&secrets::name_proof(&secret, name, nonce), name_proof) =>
            {
                None
            }
            (None, Some(_)) => return Err(ControlRefusal::NameTaken(name.to_owned())),
            (None, None) => {
                self.caps_in(r, ch.source)?;
                let mut s = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut s);
                Some(s)
            }
        };
        let secret = claimed.map(|c| c.secret).or(new_secret).unwrap_or([0; 32]);
        let gen = r.next_gen();
        let entry = r.names.entry(name.to_owned()).or_insert_with(|| {
            let mut n = Name::new(secret, ch.source, keyed);
            n.pairing = ch.pairing.then(Default::default);
            n
        });
        if let Some(old) = entry.control.take() {
            old.close.notify_one();
        }
        entry.control = Some(Control {
            tx: ch.tx,
            gen,
            close: ch.close,
        });
        entry.addrs = ch.published.to_vec();
        entry.source = ch.source;
        entry.keyed = keyed;
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

    /// The caps on names (`--max-names`, `--max-names-per-source`) for a registration of
    /// `name` from `source`: a name this relay knows already is never refused by them.
    fn caps(&self, name: &str, source: IpAddr) -> Result<(), ControlRefusal> {
        let r = self.reg();
        if r.names.contains_key(name) {
            return Ok(());
        }
        self.caps_in(&r, source)
    }

    /// [`Relay::caps`] for a name not in `r`.
    fn caps_in(&self, r: &super::registry::Registry, source: IpAddr) -> Result<(), ControlRefusal> {
        let keyed = !self.cfg.auth_keys.is_empty();
        if r.names.len() >= self.cfg.max_names {
            return Err(ControlRefusal::Full);
        }
        if !keyed && r.names_from(source) >= self.cfg.limits.names_per_source {
            return Err(ControlRefusal::TooManyNames(
                self.cfg.limits.names_per_source,
            ));
        }
        Ok(())
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
