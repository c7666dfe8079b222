//! Mobility: reacting to the machine's own address changes, and the UDP control channel
//! (the server announces its new address with RECONNECT; the client follows it).

use std::net::SocketAddr;
use std::task::{Context, Poll};

use super::paths::PathLoss;
use super::server::MovedFrom;
use super::{Driver, PathConn, Side};
use crate::proto::ControlAction;
use crate::runtime::app::{AppSink, AppSource};
use crate::runtime::control::{self, Announce};
use crate::runtime::netwatch::AddrBook;

impl<I: AppSource, O: AppSink> Driver<I, O> {
    /// After an address or link change: paths whose local address is gone are dead now (no
    /// need to wait for the dead time), and waiting reconnects try again at once.
    pub(super) fn poll_netwatch(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(rx) = self.netwatch.as_mut() else {
            return false;
        };
        let mut changed = false;
        loop {
            match rx.poll_recv(cx) {
                Poll::Ready(Some(())) => changed = true,
                Poll::Ready(None) => {
                    self.netwatch = None;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if !changed {
            return false;
        }
        let before = std::mem::replace(&mut self.addr_book, AddrBook::snapshot());
        let mut i = 0;
        while i < self.conns.len() {
            let ip = self.conns[i].conn.local.ip();
            if self.addr_book.contains(&ip) {
                i += 1;
                continue;
            }
            let c = self.conns.swap_remove(i);
            if matches!(self.side, Side::Server(_)) {
                self.announce_move(&before, &c);
            }
            self.lose_path(c, PathLoss::AddressGone(ip));
        }
        // A RECONNECT already under way: if the address it announces went away too (we moved
        // again before the client came back), announce the new one; else send it again now,
        // since the change may be the route that lets it reach the client.
        match &mut self.side {
            Side::Server(server) => {
                if let Some(a) = self.control.as_mut().and_then(|cp| cp.announce.as_mut()) {
                    if self.addr_book.contains(&a.announced.ip()) {
                        a.send_now();
                    } else if server.moved_from.is_none() {
                        server.moved_from = Some(MovedFrom {
                            ip: a.announced.ip(),
                            iface: before.iface_of(&a.announced.ip()),
                            port: a.announced.port(),
                            client: a.dest,
                        });
                    }
                } else if server.moved_from.is_none() {
                    // The client acknowledged where we were, but had not come back when that
                    // address went away too: tell it again.
                    if let Some((announced, dest)) = server.acked {
                        if !self.addr_book.contains(&announced.ip()) {
                            server.acked = None;
                            server.moved_from = Some(MovedFrom {
                                ip: announced.ip(),
                                iface: before.iface_of(&announced.ip()),
                                port: announced.port(),
                                client: dest,
                            });
                        }
                    }
                }
                self.try_announce();
            }
            Side::Client(client) => {
                client.replacer.retry_now();
                client.replan_due = true;
            }
        }
        true
    }

    /// Server: our end of `c` lost its address. Remember it, and tell the client where we
    /// are as soon as an address replaces it (now, or at a later change).
    pub(super) fn announce_move(&mut self, before: &AddrBook, c: &PathConn) {
        let port = self.session.peer_control_port();
        let Side::Server(server) = &mut self.side else {
            return;
        };
        if self.control.is_none() || port == 0 {
            return;
        }
        server.moved_from = Some(MovedFrom {
            ip: c.conn.local.ip(),
            iface: before.iface_of(&c.conn.local.ip()),
            port: c.conn.local.port(),
            client: SocketAddr::new(c.conn.peer.ip(), port),
        });
        self.try_announce();
    }

    /// Server: sends the RECONNECT for a remembered move once a new address exists.
    pub(super) fn try_announce(&mut self) {
        let Side::Server(server) = &mut self.side else {
            return;
        };
        let Some(m) = server.moved_from.take() else {
            return;
        };
        let Some(ip) = self.addr_book.replacement(m.ip, m.iface.as_deref()) else {
            tracing::info!("our address {} went away and none replaced it yet", m.ip);
            server.moved_from = Some(m);
            return;
        };
        let new = SocketAddr::new(ip, m.port);
        let (seq, datagram) = self.session.reconnect_datagram(new);
        tracing::info!(
            "our address moved {} -> {ip}; telling the client at {} (RECONNECT {seq})",
            m.ip,
            m.client
        );
        let give_up = self.resume_timeout;
        if let Some(cp) = self.control.as_mut() {
            cp.announce = Some(Announce::new(seq, datagram, new, m.client, give_up));
        }
    }

    /// Control datagrams in, RECONNECT retransmissions out.
    pub(super) fn poll_control(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        loop {
            let Some(cp) = self.control.as_mut() else {
                return progress;
            };
            let datagram = match cp.inbox.as_mut() {
                Some(rx) => match rx.poll_recv(cx) {
                    Poll::Ready(Some(d)) => Some(d),
                    _ => None,
                },
                None => control::poll_recv(&cp.socket, cx),
            };
            let Some((bytes, from)) = datagram else {
                break;
            };
            progress = true;
            match self.session.handle_control(&bytes) {
                Ok(ControlAction::Reconnect {
                    addr, ack, fresh, ..
                }) => {
                    if let Some(cp) = self.control.as_ref() {
                        let _ = cp.socket.try_send_to(&ack, from);
                    }
                    if fresh {
                        self.follow_server(addr);
                    }
                }
                Ok(ControlAction::Acked(seq)) => {
                    if let Some(cp) = self.control.as_mut() {
                        if let Some(a) = cp.announce.take_if(|a| a.seq == seq) {
                            tracing::info!("client acknowledged RECONNECT {seq}");
                            if let Side::Server(server) = &mut self.side {
                                server.acked = Some((a.announced, a.dest));
                            }
                        }
                    }
                }
                Err(e) => tracing::debug!("control datagram from {from} ignored: {e}"),
            }
        }
        if let Some(cp) = self.control.as_mut() {
            if cp.announce.as_ref().is_some_and(Announce::expired) {
                tracing::info!("the client never answered our RECONNECT; no longer sending it");
                cp.announce = None;
            }
            if let Some(a) = cp.announce.as_mut() {
                progress |= a.poll_send(&cp.socket, cx);
            }
        }
        progress
    }
}
