//! Client multipath: keeps one flowpath on each interface the policy wants (re-planned when
//! interfaces change), opens the new ones first and closes the ones no longer wanted once a
//! wanted one carries data (make-before-break).

use std::net::SocketAddr;

use super::Driver;
use crate::proto::PathId;
use crate::runtime::app::{AppSink, AppSource};
use crate::runtime::ifaces;
use crate::runtime::policy::{Binding, Policy};

impl<I: AppSource, O: AppSink> Driver<I, O> {
    /// Client: choose interfaces by `policy` for a session with `server`; path 0 (already
    /// attached) left from `first`.
    pub fn set_policy(&mut self, policy: Policy, server: SocketAddr, first: Option<Binding>) {
        self.slots.insert(PathId(0), first);
        self.policy = Some((policy, server));
        self.replan_due = true;
    }

    /// The binding of path `id`, if it is one of ours (None inside: the routing decides).
    pub(super) fn slot(&self, id: PathId) -> Option<Option<Binding>> {
        match &self.policy {
            Some(_) => self.slots.get(&id).cloned(),
            None => Some(None),
        }
    }

    /// Opens a flowpath on every wanted interface that has none, and retires the flowpaths on
    /// interfaces no longer wanted (at once if a wanted one is up, else once one is).
    pub(super) fn replan(&mut self) {
        self.replan_due = false;
        let Some((policy, server)) = &self.policy else {
            return;
        };
        if policy.follows_routing() || !self.session_needs_network() {
            return;
        }
        let want = policy.plan(&ifaces::discover(&policy.kinds), *server);
        for b in &want {
            if self.slots.values().any(|s| s.as_ref() == Some(b)) {
                continue;
            }
            let id = self.session.allocate_path_id();
            tracing::info!("path {id}: opening on {} ({}, {})", b.iface, b.addr, b.kind);
            self.slots.insert(id, Some(b.clone()));
            if let Some(r) = self.replacer.as_mut() {
                r.start(id, Some(b.clone()));
            }
        }
        self.retiring = self
            .slots
            .iter()
            .filter(|(_, b)| b.as_ref().is_some_and(|b| !want.contains(b)))
            .map(|(&id, _)| id)
            .collect();
        self.retire_if_replaced();
    }

    /// Closes the flowpaths on unwanted interfaces once a wanted one carries data.
    pub(super) fn retire_if_replaced(&mut self) {
        if self.retiring.is_empty() {
            return;
        }
        let wanted_up = self
            .session
            .active_paths()
            .any(|id| !self.retiring.contains(&id) && self.slots.contains_key(&id));
        if !wanted_up {
            return;
        }
        for id in std::mem::take(&mut self.retiring) {
            let name = self.slots.remove(&id).flatten().map(|b| b.iface);
            tracing::info!(
                "path {id}: closing (interface {} no longer wanted)",
                name.as_deref().unwrap_or("?")
            );
            if let Some(r) = self.replacer.as_mut() {
                r.clear_slot(id);
            }
            self.conns.retain(|c| c.id != id);
            self.session.path_closed(id);
        }
    }
}
