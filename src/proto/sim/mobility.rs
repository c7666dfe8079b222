//! Addresses, the control channel and the client's retry loop: what the harness needs to move
//! either end of a session.
//!
//! Each end has one address at a time. The server's changes with [`Fault::ServerMove`], the
//! client's with [`Fault::ClientMove`] (a [`Fault::Reattach`] changes only the client's address
//! on that one flowpath). A connection goes to the server address it was dialled to; when that
//! address goes away the connection is blackholed.
//!
//! Control datagrams (RECONNECT, RECONNECT_ACK) take the one-way latency of the first
//! configured link. They may be lost ([`SimConfig::control_loss`], [`ServerMove`]) and are
//! delivered only if their destination is still the receiver's address. The server announces
//! a move like the runtime: the RECONNECT goes to the client's control socket at the client
//! address of the server's newest connection, and is re-sent (first after 200 ms, doubling up
//! to 3 s) until `handle_control` reports [`ControlAction::Acked`] for it. A fresh
//! [`ControlAction::Reconnect`] has retired every flowpath of the client session; the client
//! replaces them all at the announced address (like the runtime, which also starts over any
//! attempt under way).
//!
//! The client dials like the runtime's replacer: the address of the newest RECONNECT it
//! accepted, then whatever the server's name resolves to. If neither is the server's current
//! address the connection goes nowhere. An attach with no answer after
//! [`SimConfig::attempt_timeout`] is abandoned and tried again (with a fresh HELLO(attach))
//! [`SimConfig::retry_interval`] later.
//!
//! [`SimConfig::control_loss`]: super::SimConfig::control_loss
//! [`SimConfig::attempt_timeout`]: super::SimConfig::attempt_timeout
//! [`SimConfig::retry_interval`]: super::SimConfig::retry_interval

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use rand::Rng;

use super::net::{ClientEnd, ConnState, ServerEnd};
use super::scenario::{ControlRecord, DatagramRecord};
use super::{Fault, Link, ServerMove, Side, Sim};
use crate::proto::{ControlAction, ControlError, PathId};

/// First retransmission interval of a RECONNECT (as in the runtime).
const FIRST_RESEND: Duration = Duration::from_millis(200);
/// Longest interval between RECONNECT retransmissions (as in the runtime).
const MAX_RESEND: Duration = Duration::from_secs(3);

/// The server's address number `epoch` (0 initially). Even ones are IPv4 and odd ones IPv6,
/// so that RECONNECTs use both address encodings.
pub fn server_addr(epoch: u32) -> SocketAddr {
    let ip: IpAddr = if epoch % 2 == 0 {
        Ipv4Addr::from(0x0a00_0000 | (epoch & 0x00ff_ffff)).into()
    } else {
        Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            (epoch >> 16) as u16,
            epoch as u16,
        )
        .into()
    };
    SocketAddr::new(ip, 7000)
}

/// The client's address number `epoch` (0 initially), where its control socket listens.
pub fn client_addr(epoch: u32) -> SocketAddr {
    SocketAddr::new(
        Ipv4Addr::from(0x6440_0000 | (epoch & 0x003f_ffff)).into(),
        9000,
    )
}

/// The addressing and control-channel state of a simulation.
#[derive(Debug, Default)]
pub(super) struct Mobility {
    /// Number of the server's current address.
    server_epoch: u32,
    /// Number of the client's current address.
    client_epoch: u32,
    /// What the server's name resolves to (the server's first address until updated).
    name: Option<SocketAddr>,
    /// The address of the newest RECONNECT the client accepted.
    hint: Option<SocketAddr>,
    /// The server's unacknowledged RECONNECT, if any.
    announce: Option<Announce>,
    /// The client's RECONNECT_ACKs still to be lost.
    lose_acks: u32,
    /// Datagrams on their way.
    in_flight: Vec<Datagram>,
    /// Client paths waiting for their next attach attempt: when, over which link.
    redials: BTreeMap<PathId, (Duration, Link)>,
}

/// The server's announcement of its newest address, re-sent until acknowledged.
#[derive(Debug)]
struct Announce {
    seq: u64,
    bytes: Vec<u8>,
    /// The client control address it goes to.
    dest: SocketAddr,
    next_send: Duration,
    interval: Duration,
    /// Copies still to be lost.
    lose: u32,
}

/// A control datagram in the network.
#[derive(Debug)]
struct Datagram {
    deliver_at: Duration,
    to: Side,
    src: SocketAddr,
    dest: SocketAddr,
    bytes: Vec<u8>,
}

impl Sim {
    /// The server's current address.
    pub fn server_address(&self) -> SocketAddr {
        server_addr(self.mob.server_epoch)
    }

    /// The client's current address.
    pub fn client_address(&self) -> SocketAddr {
        client_addr(self.mob.client_epoch)
    }

    /// `side`'s current address.
    fn address(&self, side: Side) -> SocketAddr {
        match side {
            Side::Client => self.client_address(),
            Side::Server => self.server_address(),
        }
    }

    /// The server address the client's current connection for `path` was dialled to.
    pub fn path_destination(&self, path: PathId) -> Option<SocketAddr> {
        self.client_conn.get(&path).map(|&c| self.conns[c].to)
    }

    /// True while the server re-sends a RECONNECT nobody acknowledged.
    pub fn announcing(&self) -> bool {
        self.mob.announce.is_some()
    }

    /// Sends `bytes` as a control datagram to `to`'s current address (an attacker's, or a
    /// replay: it arrives from an address that is not the other end's).
    pub fn inject_datagram(&mut self, to: Side, bytes: Vec<u8>) {
        let dest = self.address(to);
        let src = SocketAddr::new(Ipv4Addr::new(203, 0, 113, 66).into(), 6666);
        self.post(to, src, dest, bytes);
    }

    /// Where the client connects now and whether the server is there: the announced address
    /// first, then the name.
    pub(super) fn dial(&self) -> (SocketAddr, bool) {
        let here = self.server_address();
        let name = self.mob.name.unwrap_or(server_addr(0));
        let candidates = [self.mob.hint, Some(name)];
        match candidates.iter().flatten().find(|&&a| a == here) {
            Some(&a) => (a, true),
            None => (self.mob.hint.unwrap_or(name), false),
        }
    }

    /// Forgets a pending retry of `path` (a new attempt starts now).
    pub(super) fn cancel_redial(&mut self, path: PathId) {
        self.mob.redials.remove(&path);
    }

    /// One-way latency of control datagrams: that of the first configured link.
    fn control_latency(&self) -> Duration {
        self.cfg.paths[0].latency
    }

    // ----- faults ----------------------------------------------------------------------------

    /// [`Fault::ServerMove`]: blackholes every connection to the old address, closes the
    /// server's paths if `m` says so, starts announcing the new address.
    pub(super) fn server_move(&mut self, m: ServerMove) {
        let old = self.server_address();
        self.mob.server_epoch += 1;
        let new = self.server_address();
        self.log.server_moves.push((self.now, new));
        // The client's control socket, at the client address of the newest connection the
        // server attached (the runtime takes it from a connection it loses in the move, so it
        // announces nothing if it has none at that moment).
        let dest = self
            .conns
            .iter()
            .rev()
            .find(|c| {
                matches!(c.client_end, ClientEnd::Session)
                    && matches!(c.server_end, ServerEnd::Attached(_))
            })
            .map(|c| c.from);
        for conn in self.conns.iter_mut() {
            if conn.state == ConnState::Open && conn.to == old {
                conn.state = ConnState::Blackholed;
                conn.c2s.clear();
                conn.s2c.clear();
            }
        }
        if m.server_closes_paths {
            for (path, _) in std::mem::take(&mut self.server_conn) {
                self.server.path_closed(path);
            }
        }
        self.mob.lose_acks = m.lose_acks;
        if let Some(dest) = dest {
            let (seq, bytes) = self.server.reconnect_datagram(new);
            self.mob.announce = Some(Announce {
                seq,
                bytes,
                dest,
                next_send: self.now,
                interval: FIRST_RESEND,
                lose: m.lose_reconnects,
            });
            self.announce_due();
        }
        if let Some(after) = m.name_updated_after {
            self.schedule(self.now + after, Fault::NameUpdate);
        }
    }

    /// [`Fault::ClientMove`]: a new client address; every path with a connection is replaced.
    pub(super) fn client_move(&mut self) {
        self.mob.client_epoch += 1;
        self.reattach_client_paths();
    }

    /// Replaces the connection of every client path that has one.
    fn reattach_client_paths(&mut self) {
        let paths: Vec<(PathId, Link)> = self
            .client_conn
            .iter()
            .map(|(&p, &c)| (p, self.conns[c].link))
            .collect();
        for (path, link) in paths {
            self.apply_fault(Fault::Reattach { path, link });
        }
    }

    /// [`Fault::NameUpdate`]: the server's name resolves to its current address.
    pub(super) fn name_update(&mut self) {
        self.mob.name = Some(self.server_address());
    }

    // ----- driving ---------------------------------------------------------------------------

    /// Delivers due datagrams, re-sends the RECONNECT, gives up on unanswered attaches and
    /// starts due retries.
    pub(super) fn drive_mobility(&mut self) {
        let now = self.now;
        let (due, later) = std::mem::take(&mut self.mob.in_flight)
            .into_iter()
            .partition(|d| d.deliver_at <= now);
        self.mob.in_flight = later;
        for d in due {
            match d.to {
                Side::Client if d.dest == self.client_address() => self.client_datagram(d),
                Side::Server if d.dest == self.server_address() => self.server_datagram(d),
                _ => {} // its destination address is gone
            }
        }
        self.announce_due();
        self.expire_attempts();
        let due: Vec<(PathId, Link)> = self
            .mob
            .redials
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(&p, &(_, link))| (p, link))
            .collect();
        for (path, link) in due {
            self.apply_fault(Fault::Reattach { path, link });
        }
    }

    /// When the mobility machinery next has something to do.
    pub(super) fn mobility_next_event(&self) -> Option<Duration> {
        let deliveries = self.mob.in_flight.iter().map(|d| d.deliver_at);
        let announce = self.mob.announce.iter().map(|a| a.next_send);
        let redials = self.mob.redials.values().map(|(at, _)| *at);
        let attempts = self.attempts().into_iter().map(|(_, _, deadline)| deadline);
        deliveries
            .chain(announce)
            .chain(redials)
            .chain(attempts)
            .min()
    }

    /// Client attaches under way: path, connection, deadline.
    fn attempts(&self) -> Vec<(PathId, usize, Duration)> {
        let active: BTreeSet<PathId> = self.client.active_paths().collect();
        self.client_conn
            .iter()
            .filter(|(p, _)| !active.contains(p))
            .map(|(&p, &c)| (p, c, self.conns[c].opened_at + self.cfg.attempt_timeout))
            .collect()
    }

    /// Attaches without an answer for the attempt timeout fail: the connection is dropped
    /// (the server never attached it) and the path is retried after the retry interval.
    fn expire_attempts(&mut self) {
        for (path, c, deadline) in self.attempts() {
            if deadline > self.now {
                continue;
            }
            self.client_conn.remove(&path);
            self.kill_conn(c);
            self.log.failed_attempts.push((self.now, path));
            let link = self.conns[c].link;
            let at = self.now + self.cfg.retry_interval;
            self.mob.redials.insert(path, (at, link));
        }
    }

    fn announce_due(&mut self) {
        let now = self.now;
        let Some(a) = self.mob.announce.as_mut().filter(|a| a.next_send <= now) else {
            return;
        };
        a.next_send = now + a.interval;
        a.interval = (a.interval * 2).min(MAX_RESEND);
        let lost = a.lose > 0;
        a.lose = a.lose.saturating_sub(1);
        let (dest, bytes) = (a.dest, a.bytes.clone());
        self.send_datagram(Side::Server, dest, bytes, lost);
    }

    /// Writes a datagram from `from`'s current address to `dest`; `lost` drops it.
    fn send_datagram(&mut self, from: Side, dest: SocketAddr, bytes: Vec<u8>, lost: bool) {
        let loss = self.cfg.control_loss.clamp(0.0, 1.0);
        let lost = lost || (loss > 0.0 && self.rng.gen_bool(loss));
        self.log.datagrams.push(DatagramRecord {
            at: self.now,
            from,
            bytes: bytes.clone(),
            lost,
        });
        if lost {
            return;
        }
        self.post(from.peer(), self.address(from), dest, bytes);
    }

    /// Puts a datagram from `src` to `dest` in flight; it reaches `to` after the control latency.
    fn post(&mut self, to: Side, src: SocketAddr, dest: SocketAddr, bytes: Vec<u8>) {
        self.mob.in_flight.push(Datagram {
            deliver_at: self.now + self.control_latency(),
            to,
            src,
            dest,
            bytes,
        });
    }

    /// `side`'s session handles a control datagram; the result is logged and returned.
    fn handle_control(&mut self, side: Side, bytes: &[u8]) -> Result<ControlAction, ControlError> {
        let result = self.session(side).handle_control(bytes);
        self.log.control.push(ControlRecord {
            at: self.now,
            side,
            result: result.clone(),
        });
        result
    }

    /// The client runtime's part: acknowledge a RECONNECT, follow a fresh one.
    fn client_datagram(&mut self, d: Datagram) {
        let result = self.handle_control(Side::Client, &d.bytes);
        let Ok(ControlAction::Reconnect {
            addr, ack, fresh, ..
        }) = result
        else {
            return;
        };
        let lost = self.mob.lose_acks > 0;
        self.mob.lose_acks = self.mob.lose_acks.saturating_sub(1);
        self.send_datagram(Side::Client, d.src, ack, lost);
        if fresh {
            self.mob.hint = Some(addr);
            self.reattach_client_paths();
        }
    }

    /// The server runtime's part: stop re-sending an acknowledged RECONNECT.
    fn server_datagram(&mut self, d: Datagram) {
        let result = self.handle_control(Side::Server, &d.bytes);
        if let Ok(ControlAction::Acked(seq)) = result {
            if self.mob.announce.as_ref().is_some_and(|a| a.seq == seq) {
                self.mob.announce = None;
            }
        }
    }

    /// One line on addresses and control traffic, for failure messages.
    pub(super) fn describe_mobility(&self, d: &mut String) {
        let m = &self.mob;
        let _ = writeln!(
            d,
            "  server at {} (name {:?}, client hint {:?}); client at {}; announcing {:?}; \
             {} datagrams in flight; redials {:?}; failed attempts {}",
            self.server_address(),
            m.name,
            m.hint,
            self.client_address(),
            m.announce.as_ref().map(|a| (a.seq, a.dest, a.next_send)),
            m.in_flight.len(),
            m.redials,
            self.log.failed_attempts.len(),
        );
    }
}

mod tests {
    use super::*;

    #[test]
    fn addresses_are_distinct() {
        let servers: BTreeSet<_> = (0..600).map(server_addr).collect();
        assert_eq!(servers.len(), 600);
        assert!(server_addr(0).is_ipv4() && server_addr(1).is_ipv6());
        assert_ne!(client_addr(0), client_addr(1));
    }
}
