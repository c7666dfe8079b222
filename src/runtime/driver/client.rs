//! The client's part of a session: it opens the flowpaths, so it replaces those that break
//! (on the same interface, if the policy bound them to one) and follows a server that
//! announced a new address.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::task::Context;

use super::paths::PathLoss;
use super::{Driver, PathConn, Side};
use crate::proto::PathId;
use crate::runtime::app::{AppSink, AppSource};
use crate::runtime::policy::{Binding, Policy};
use crate::runtime::reconnect::{ReconnectPolicy, ReplaceEvent, Replacer};

/// What only a client's driver keeps: how to reach the server again and which interface each
/// flowpath belongs to.
pub struct ClientSide {
    /// Replaces flowpaths that broke.
    pub(super) replacer: Replacer,
    /// The interface policy.
    pub(super) policy: Policy,
    /// The server the policy plans for (the address of the first flowpath's peer).
    pub(super) server: SocketAddr,
    /// Each flowpath's interface binding (None inside: unbound, the routing decides). A path
    /// not in here was closed on purpose and is not replaced.
    pub(super) slots: BTreeMap<PathId, Option<Binding>>,
    /// Flowpaths on interfaces no longer wanted, closed once a wanted one carries data.
    pub(super) retiring: Vec<PathId>,
    /// The interfaces must be looked at again (start, or a change).
    pub(super) replan_due: bool,
}

impl ClientSide {
    /// A client that reconnects as `reconnect` says and chooses interfaces by `policy` for a
    /// session with `server`; the first flowpath (path 0, already attached) left from
    /// `first` (None: wherever the routing sent it).
    pub fn new(
        reconnect: ReconnectPolicy,
        policy: Policy,
        server: SocketAddr,
        first: Option<Binding>,
    ) -> Self {
        let mut replacer = Replacer::new(reconnect);
        replacer.set_last_server(server);
        ClientSide {
            replacer,
            policy,
            server,
            slots: BTreeMap::from([(PathId(0), first)]),
            retiring: Vec::new(),
            replan_due: true,
        }
    }
}

impl<I: AppSource, O: AppSink> Driver<I, O> {
    /// Client: starts replacing path `id` (on the same interface, if it has one), unless the
    /// session no longer needs it or the path was closed on purpose.
    pub(super) fn replace_path(&mut self, id: PathId) {
        let needed = self.session_needs_network() && self.session.error().is_none();
        let rtt = self
            .session
            .all_path_stats()
            .iter()
            .filter_map(|(_, s)| s.srtt)
            .max();
        let Side::Client(c) = &mut self.side else {
            return;
        };
        if let Some(rtt) = rtt {
            c.replacer.set_rtt(rtt);
        }
        let Some(bind) = c.slot(id) else {
            return;
        };
        if needed && !c.replacer.is_replacing(id) {
            tracing::info!("path {id}: reconnecting");
            c.replacer.start(id, bind);
        }
    }

    /// Client: progress of replacements.
    pub(super) fn poll_replacer(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progress = false;
        loop {
            let Side::Client(c) = &mut self.side else {
                return progress;
            };
            let Some(ev) = c.replacer.poll(cx) else {
                return progress;
            };
            progress = true;
            match ev {
                ReplaceEvent::Connected(id, mut conn) => {
                    c.replacer.set_last_server(conn.peer);
                    // HELLO(resume) when we hold a ticket (stream frames may follow at once),
                    // else HELLO(attach); the answer comes through the normal read loop.
                    let now = self.now();
                    let hello = self.session.reattach_path(id, &mut self.rng, now);
                    tracing::debug!("path {id}: {} to {}", hello.name(), conn.peer);
                    self.events.emit(
                        "path_hello",
                        serde_json::json!({"path": id.0, "hello": hello.name(),
                            "local": conn.local.to_string(), "remote": conn.peer.to_string()}),
                    );
                    conn.queue_preamble();
                    conn.queue(&hello);
                    self.conns.push(PathConn::new(id, *conn, false));
                }
                ReplaceEvent::Failed(id, why, wait) => {
                    tracing::info!("path {id}: reconnect failed: {why}");
                    self.last_path_error = why.to_string();
                    c.replacer.retry_after(id, wait);
                }
                ReplaceEvent::RetryDue(id) => {
                    c.replacer.clear_slot(id);
                    self.replace_path(id);
                }
            }
        }
    }

    /// Client: the server announced a new address. The session has retired every flowpath;
    /// their connections go, and replacements connect there (attempts under way to the old
    /// address start over).
    pub(super) fn follow_server(&mut self, addr: SocketAddr) {
        let Side::Client(c) = &mut self.side else {
            return;
        };
        tracing::info!("server moved to {addr}; reconnecting there");
        self.events
            .emit("server_moved", serde_json::json!({"to": addr.to_string()}));
        c.replacer.set_server_hint(addr);
        let restart = c.replacer.take_ids();
        for c in std::mem::take(&mut self.conns) {
            self.lose_path(c, PathLoss::ServerMoved(addr));
        }
        for id in restart {
            self.replace_path(id);
        }
    }
}

impl ClientSide {
    /// The binding of path `id`, if it is one of ours (None inside: the routing decides).
    pub(super) fn slot(&self, id: PathId) -> Option<Option<Binding>> {
        self.slots.get(&id).cloned()
    }
}
