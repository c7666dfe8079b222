//! Client multipath: keeps one flowpath on each interface the policy wants (re-planned when
//! interfaces change), opens the new ones first and closes the ones no longer wanted once a
//! wanted one carries data (make-before-break).

use super::{Driver, Side};
use crate::runtime::app::{AppSink, AppSource};
use crate::runtime::ifaces;

impl<I: AppSource, O: AppSink> Driver<I, O> {
    /// Opens a flowpath on every wanted interface that has none, and retires the flowpaths on
    /// interfaces no longer wanted (at once if a wanted one is up, else once one is).
    pub(super) fn replan(&mut self) {
        let needed = self.session_needs_network();
        let Side::Client(c) = &mut self.side else {
            return;
        };
        c.replan_due = false;
        if c.policy.follows_routing() || !needed {
            return;
        }
        let want = c.policy.plan(&ifaces::discover(&c.policy.kinds), c.server);
        for b in &want {
            if c.slots.values().any(|s| s.as_ref() == Some(b)) {
                continue;
            }
            let id = self.session.allocate_path_id();
            tracing::info!("path {id}: opening on {} ({}, {})", b.iface, b.addr, b.kind);
            c.slots.insert(id, Some(b.clone()));
            c.replacer.start(id, Some(b.clone()));
        }
        c.retiring = c
            .slots
            .iter()
            .filter(|(_, b)| b.as_ref().is_some_and(|b| !want.contains(b)))
            .map(|(&id, _)| id)
            .collect();
        self.retire_if_replaced();
    }

    /// Closes the flowpaths on unwanted interfaces once a wanted one carries data.
    pub(super) fn retire_if_replaced(&mut self) {
        let Side::Client(c) = &mut self.side else {
            return;
        };
        if c.retiring.is_empty() {
            return;
        }
        let wanted_up = self
            .session
            .active_paths()
            .any(|id| !c.retiring.contains(&id) && c.slots.contains_key(&id));
        if !wanted_up {
            return;
        }
        for id in std::mem::take(&mut c.retiring) {
            let name = c.slots.remove(&id).flatten().map(|b| b.iface);
            tracing::info!(
                "path {id}: closing (interface {} no longer wanted)",
                name.as_deref().unwrap_or("?")
            );
            c.replacer.clear_slot(id);
            if let Some(i) = self.conns.iter().position(|c| c.id == id) {
                self.conns.swap_remove(i).conn.abandon();
            }
            self.session.path_closed(id);
        }
    }
}
