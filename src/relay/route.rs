//! The relay's client flowpaths (ROUTE) and listener dial-backs (SPLICE).
//!
//! A ROUTE is admitted within the limits of [`registry::Limits`] (see there); it then must
//! show the msock preamble of its session within the handshake timeout before the listener
//! is asked to dial back (a ROUTE that carries nothing costs the listener no connection),
//! and the listener must answer through the splice within it too; a pair that stays half
//! closed and quiet for it is closed as well. Until the listener has answered, the splice
//! counts as unproven against its source and its name.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};

use super::cluster::At;
use super::nameplate::{PairRefusal, Pairing};
use super::registry::{Limit, Slot};
use super::secrets;
use super::server::{no_such_name, refuse, Relay};
use super::splice::{self, Counters, End, Timeouts};
use super::wire::{RelayToListener, NONCE_LEN};
use crate::proto::{ErrorCode, PREAMBLE};

/// How long a ROUTE follows a name whose relay cannot be reached (see
/// [`Relay::forward_or_follow`]).
const MOVE_GRACE: Duration = Duration::from_secs(2);
/// How often it looks for the name's listener here meanwhile.
const FOLLOW_POLL: Duration = Duration::from_millis(20);
/// How often it reads where the name is attached meanwhile (a read of the store).
const RELOCATE: Duration = Duration::from_millis(250);

/// Where a followed name went (see [`Relay::forward_or_follow`]).
enum Followed {
    /// Its listener is attached at this relay now.
    Here,
    /// The store says another relay of the cluster has it.
    To(At),
}

impl Relay {
    /// ROUTE: a client flowpath for `name`. Wait for the client's session to begin, ask the
    /// listener to dial back, wait for it, splice. With `pair`, a PAIR: the same for a
    /// nameplate, counted as one of its attempts (see [`super::nameplate`]).
    pub(super) async fn route(
        self: Arc<Self>,
        mut client: TcpStream,
        peer: SocketAddr,
        name: String,
        pair: bool,
    ) {
        let id = rand::random::<u64>();
        let mut token = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut token);
        let (tx, rx) = oneshot::channel();
        let kill = Arc::new(Notify::new());
        // A cluster relay: a name attached at another relay is reached through it.
        let mut remote = match self.remote(&name, pair).await {
            Ok(at) => at,
            Err(why) => {
                self.refuse_count("registry_unavailable");
                return refuse(client, ErrorCode::Busy, &why).await;
            }
        };
        let mut kind = Ok(());
        let admitted = {
            let mut r = self.reg();
            if remote.is_some() {
                let slot = Slot {
                    name: name.clone(),
                    token,
                    waiting: Some(tx),
                    kill: kill.clone(),
                    source: peer.ip(),
                    carrying: false,
                };
                let got = r.open(id, slot, &self.cfg.limits);
                let now = r.flowpaths() as u64;
                self.stats.peak.fetch_max(now, Ordering::Relaxed);
                got.map(|()| true)
            } else if r.names.contains_key(&name) {
                // What the name is, and the attempt counted, under the same lock as the
                // admission: concurrent PAIRs cannot pass the count together.
                kind = r
                    .names
                    .get(&name)
                    .map_or(Ok(()), |n| nameplate_kind(n.pairing, pair));
                let slot = Slot {
                    name: name.clone(),
                    token,
                    waiting: Some(tx),
                    kill: kill.clone(),
                    source: peer.ip(),
                    carrying: false,
                };
                let got = match kind {
                    Ok(()) => r.open(id, slot, &self.cfg.limits),
                    Err(_) => Ok(()),
                };
                if got.is_ok() && kind.is_ok() {
                    kind = r.pair_attempt(&name, pair, false);
                }
                if kind.is_err() {
                    r.close(id);
                }
                let now = r.flowpaths() as u64;
                self.stats.peak.fetch_max(now, Ordering::Relaxed);
                got.map(|()| true)
            } else {
                r.admit(peer.ip(), self.cfg.limits.rate, usize::MAX)
                    .map(|()| false)
            }
        };
        let refused = |why: &'static str, reason: &str| {
            self.refuse_count(why);
            self.status(
                "refused",
                serde_json::json!({"from": peer.to_string(), "name": name, "reason": reason}),
            );
        };
        match admitted {
            Err(Limit::Rate) => {
                refused("rate", "rate");
                let why = "too many new flowpaths from your address; the client retries later";
                return refuse(client, ErrorCode::Busy, why).await;
            }
            Err(Limit::Flowpaths) => {
                refused("max_flowpaths", "max_flowpaths");
                let why = "the relay carries as many flowpaths as it will; try later";
                return refuse(client, ErrorCode::Busy, why).await;
            }
            Err(Limit::Source) => {
                refused("max_flowpaths_per_source", "max_flowpaths_per_source");
                let why = "the relay carries as many flowpaths from your address as it will; \
                           end some sessions or try later";
                return refuse(client, ErrorCode::Busy, why).await;
            }
            Err(Limit::Pending) => {
                refused("max_pending_per_name", "max_pending_per_name");
                let why = format!(
                    "too many flowpaths to '{name}' are still starting (from your address or \
                     in all); retry in a few seconds"
                );
                return refuse(client, ErrorCode::Busy, &why).await;
            }
            Ok(false) => {
                refused("no_such_name", "no such name");
                return refuse(client, ErrorCode::Refused, &no_such_name(&name)).await;
            }
            Ok(true) => {}
        }
        if let Err(why) = kind {
            refused("pairing", &why.to_string());
            // Take in what the sender sent with its PAIR (its first pairing frame), so that
            // closing does not reset the connection before the refusal is read.
            let mut sink = [0u8; 512];
            let wait = std::time::Duration::from_millis(500);
            let _ = tokio::time::timeout(wait, client.read(&mut sink)).await;
            return refuse(client, ErrorCode::Refused, &why.to_string()).await;
        }
        // From here on the slot must go when we return.
        let slot = SlotGuard {
            relay: self.clone(),
            id,
        };
        // The client's session begins with the msock preamble, sent with the ROUTE: no
        // listener connection for a ROUTE that carries nothing.
        let mut first = [0u8; PREAMBLE.len()];
        let hs = self.cfg.handshake_timeout;
        match tokio::time::timeout(hs, client.read_exact(&mut first)).await {
            Ok(Ok(_)) if first == PREAMBLE => {}
            Ok(Ok(_)) => {
                refused("garbage", "no msock session after ROUTE");
                let why = "a ROUTE must be followed by an msock session (MSOCK\\x01 HELLO...)";
                return refuse(client, ErrorCode::Protocol, why).await;
            }
            Ok(Err(_)) => return,
            Err(_) => {
                self.refuse_count("no_session");
                self.status("dropped", serde_json::json!({"from": peer.to_string(), "name": name, "reason": "no session after ROUTE in time"}));
                return;
            }
        }
        if let Some(at) = remote.clone() {
            match self.forward_or_follow(at, &name, id, token).await {
                Ok(true) => {}
                // The listener moved here meanwhile: ask it directly.
                Ok(false) => remote = None,
                Err(why) => {
                    refused("forward_failed", &why.reason);
                    return refuse(client, why.code, &why.reason).await;
                }
            }
        }
        let (known, counted) = if remote.is_some() {
            (true, Ok(()))
        } else {
            let mut r = self.reg();
            // A PAIR counts as an attempt here, when the listener is asked to dial back (and
            // so sees it), under the same lock: concurrent PAIRs cannot pass the count.
            let counted = r.pair_attempt(&name, pair, true);
            let n = r.names.get_mut(&name);
            if let (Some(n), Ok(())) = (&n, counted) {
                if let Some(c) = &n.control {
                    let _ = c.tx.try_send(RelayToListener::Dial { id, token });
                }
            }
            let known = n
                .map(|n| counted.is_err() || n.pending.insert(id))
                .is_some();
            (known, counted)
        };
        if let Err(why) = counted {
            refused("pairing", &why.to_string());
            return refuse(client, ErrorCode::Refused, &why.to_string()).await;
        }
        if !known {
            refused("no_such_name", "no such name");
            return refuse(client, ErrorCode::Refused, &no_such_name(&name)).await;
        }
        let mut listener = match tokio::time::timeout(hs, rx).await {
            Ok(Ok(l)) => l,
            _ => {
                refused("listener_timeout", "the listener did not dial back in time");
                let why = format!(
                    "the listener named '{name}' did not answer through the relay within {} (it may be offline or moving); retry",
                    humantime::format_duration(hs)
                );
                return refuse(client, ErrorCode::Busy, &why).await;
            }
        };
        if listener.write_all(&first).await.is_err() {
            return;
        }
        let lpeer = listener.peer_addr().ok();
        self.metrics.spliced.inc();
        self.status(
            "splice",
            serde_json::json!({"id": format!("{id:016x}"), "name": name, "client": peer.to_string(),
                "listener": lpeer.map(|a| a.to_string())}),
        );
        let caps = self.limiter.caps(&name, peer.ip());
        let counters = Arc::new(Counters::new(self.metrics.bytes.clone(), caps));
        let t = Timeouts {
            idle: self.cfg.idle_timeout,
            session: hs,
        };
        let relay = self.clone();
        let on_session = move || relay.reg().carrying(id);
        let end = splice::run(client, listener, t, counters.clone(), kill, on_session).await;
        drop(slot);
        let (up, down) = (
            counters.up.load(Ordering::Relaxed),
            counters.down.load(Ordering::Relaxed),
        );
        let how = match end {
            End::Closed => "closed".to_owned(),
            End::Error(e) => format!("error: {e}"),
            End::Idle => "idle timeout".to_owned(),
            End::Killed => "listener half gone".to_owned(),
            End::NoSession => {
                self.refuse_count("no_session");
                "no session: the listener did not answer in time".to_owned()
            }
        };
        self.status(
            "splice_end",
            serde_json::json!({"id": format!("{id:016x}"), "name": name, "up": up, "down": down, "end": how}),
        );
    }

    /// Where a client's flowpath to `name` goes when the name is attached at another relay of
    /// the cluster (None: here, or no cluster). A nameplate is always local. Err: the store
    /// cannot be read and the name is not here.
    async fn remote(&self, name: &str, pair: bool) -> Result<Option<At>, String> {
        let Some(c) = self.cluster.as_ref().filter(|_| !pair) else {
            return Ok(None);
        };
        let (here, live) = {
            let r = self.reg();
            let n = r.names.get(name);
            (n.is_some(), n.is_some_and(|n| n.control.is_some()))
        };
        if live {
            return Ok(None);
        }
        match c.locate(name).await {
            Ok(Some(at)) if !c.is_me(&at) => Ok(Some(at)),
            Ok(Some(_)) if !here => {
                // Attached here in the store, not yet in memory: a registration here is
                // between its claim and its channel. Wait for it a moment.
                let t0 = Instant::now();
                while t0.elapsed() < MOVE_GRACE.min(self.cfg.handshake_timeout)
                    && !self.reg().names.contains_key(name)
                {
                    tokio::time::sleep(FOLLOW_POLL).await;
                }
                Ok(None)
            }
            Ok(_) => Ok(None),
            Err(_) if here => Ok(None),
            Err(e) => Err(format!("cannot find '{name}': {e}; retry")),
        }
    }

    /// FORWARDs the splice to relay `at`, where `name` is attached. If that relay cannot be
    /// reached (it died: the listener re-registers at a relay of the cluster within a moment,
    /// long before the dead relay's lease runs out), or the name moves while the FORWARD is
    /// still unanswered (a dead host may drop our SYN, a frozen relay's kernel accept it and
    /// nothing answer: the FORWARD would wait out the handshake timeout), the name is
    /// followed for [`MOVE_GRACE`]: Ok(false) when its listener is attached here now,
    /// Ok(true) when a relay took the FORWARD; Err: the last refusal.
    async fn forward_or_follow(
        &self,
        mut at: At,
        name: &str,
        id: u64,
        token: [u8; NONCE_LEN],
    ) -> Result<bool, super::wire::Refusal> {
        let t0 = Instant::now();
        let grace = MOVE_GRACE.min(self.cfg.handshake_timeout);
        loop {
            let next = {
                let forward = self.forward_dial(&at, name, id, token);
                tokio::pin!(forward);
                tokio::select! {
                    r = &mut forward => match r {
                        Ok(()) => return Ok(true),
                        // Only "cannot reach it, retry" is worth following; a refusal is final.
                        Err(why) if why.code != ErrorCode::Busy => return Err(why),
                        Err(why) => match self.follow(name, &at, t0, grace).await {
                            Some(next) => next,
                            None => return Err(why),
                        },
                    },
                    next = self.follow(name, &at, t0, grace) => match next {
                        Some(next) => next,
                        // The name stayed: the FORWARD may only be slow.
                        None => return forward.await.map(|()| true),
                    },
                }
            };
            match next {
                Followed::Here => return Ok(false),
                Followed::To(next) => at = next,
            }
        }
    }

    /// Watches `name` from `t0` until `grace` for a move away from relay `from`: None if it
    /// did not move within the grace.
    async fn follow(
        &self,
        name: &str,
        from: &At,
        t0: Instant,
        grace: Duration,
    ) -> Option<Followed> {
        let mut located = Instant::now();
        loop {
            if t0.elapsed() >= grace {
                return None;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
            if self
                .reg()
                .names
                .get(name)
                .is_some_and(|n| n.control.is_some())
            {
                return Some(Followed::Here);
            }
            let Some(c) = self
                .cluster
                .as_ref()
                .filter(|_| located.elapsed() >= RELOCATE)
            else {
                continue;
            };
            located = Instant::now();
            match c.locate(name).await {
                Ok(Some(next)) if next.relay != from.relay && !c.is_me(&next) => {
                    return Some(Followed::To(next));
                }
                _ => {}
            }
        }
    }

    /// SPLICE: a listener's dial-back; hand it to the waiting client task.
    pub(super) async fn splice_back(
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
}

/// Removes a splice's slot (and what it counted) when the client task ends.
struct SlotGuard {
    relay: Arc<Relay>,
    id: u64,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.relay.reg().close(self.id);
    }
}

/// Whether a PAIR (`pair`) or a ROUTE suits a name (a nameplate: `pairing` is Some), before
/// any attempt is counted.
fn nameplate_kind(pairing: Option<Pairing>, pair: bool) -> Result<(), PairRefusal> {
    match (pairing, pair) {
        (None, true) => Err(PairRefusal::NotACode),
        (Some(_), false) => Err(PairRefusal::IsACode),
        _ => Ok(()),
    }
}
