//! Interface policies: which local interfaces a client's flowpaths use (`--stripe`,
//! `--prefer-wifi`, `--prefer-cellular`, `--iface`, `--backup`). A pure function of the
//! interfaces present now, so it is re-evaluated whenever they change.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::ifaces::{Iface, IfaceKind};

/// How many interfaces to use, and which first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// One flowpath wherever the routing table sends it (no interface is chosen).
    #[default]
    Route,
    /// One flowpath on every usable interface at once.
    Stripe,
    /// One flowpath, on an interface of this kind while there is one, else on another.
    Prefer(IfaceKind),
}

/// The user's interface policy.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// How many interfaces, and which first.
    pub mode: Mode,
    /// `--iface`: only these interfaces (in this order of preference); empty = any.
    pub only: Vec<String>,
    /// `--backup`: interfaces used only while no other is usable.
    pub backup: Vec<String>,
    /// `--iface-kind` overrides of the detected kinds.
    pub kinds: HashMap<String, IfaceKind>,
    /// Explicit bindings, one flowpath from each (of the server's address family), instead of
    /// the interfaces found; e.g. several loopback addresses, which `msock bench`'s built-in
    /// run stripes over. Empty: choose by `mode`, `only` and `backup`.
    pub(crate) fixed: Vec<Binding>,
}

/// Where one flowpath leaves from: an interface and one of its addresses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Binding {
    /// Interface name (the socket is bound to this device where the OS allows).
    pub iface: String,
    /// Local address (the socket's source).
    pub addr: IpAddr,
    /// The interface's kind.
    pub kind: IfaceKind,
}

impl Policy {
    /// True when the routing table decides (no interface is chosen by msock).
    pub(crate) fn follows_routing(&self) -> bool {
        self.mode == Mode::Route
            && self.only.is_empty()
            && self.backup.is_empty()
            && self.fixed.is_empty()
    }

    /// The bindings the policy wants now, best first; empty when nothing is usable (or when
    /// `Policy::follows_routing`: then one unbound flowpath is wanted).
    pub fn plan(&self, ifaces: &[Iface], server: SocketAddr) -> Vec<Binding> {
        if self.follows_routing() {
            return Vec::new();
        }
        if !self.fixed.is_empty() {
            return self
                .fixed
                .iter()
                .filter(|b| b.addr.is_ipv4() == server.is_ipv4())
                .cloned()
                .collect();
        }
        let usable: Vec<Binding> = ifaces.iter().filter_map(|i| usable(i, server)).collect();
        let (backups, mut main): (Vec<Binding>, Vec<Binding>) = usable
            .into_iter()
            .filter(|b| self.only.is_empty() || self.only.contains(&b.iface))
            .partition(|b| self.backup.contains(&b.iface));
        main.sort_by_key(|b| (self.rank(b), b.iface.clone()));
        let pool = if main.is_empty() { backups } else { main };
        match self.mode {
            Mode::Stripe => pool,
            Mode::Route => pool.into_iter().take(1).collect(),
            Mode::Prefer(kind) => {
                let best = pool.iter().position(|b| b.kind == kind).unwrap_or(0);
                pool.into_iter().skip(best).take(1).collect()
            }
        }
    }

    /// Order of preference: the user's --iface order, else wired before wireless before
    /// cellular before the rest.
    fn rank(&self, b: &Binding) -> usize {
        if let Some(i) = self.only.iter().position(|n| *n == b.iface) {
            return i;
        }
        match b.kind {
            IfaceKind::Ethernet => 0,
            IfaceKind::Wifi => 1,
            IfaceKind::Cellular => 2,
            IfaceKind::Other => 3,
            IfaceKind::Tunnel => 4,
            IfaceKind::Loopback => 5,
        }
    }
}

/// The binding a flowpath to `server` can have on `iface`, if any: the interface is not
/// down, has an address of the server's family (not IPv6 link-local), and is loopback only
/// when the server is.
fn usable(iface: &Iface, server: SocketAddr) -> Option<Binding> {
    if iface.up == Some(false) {
        return None;
    }
    if (iface.kind == IfaceKind::Loopback) != server.ip().is_loopback() {
        return None;
    }
    let addr = iface.addrs.iter().copied().find(|a| {
        a.is_ipv4() == server.is_ipv4()
            && !matches!(a, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
    })?;
    Some(Binding {
        iface: iface.name.clone(),
        addr,
        kind: iface.kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::ifaces::KindSource;

    fn iface(name: &str, kind: IfaceKind, addr: &str, up: bool) -> Iface {
        Iface {
            name: name.into(),
            kind,
            kind_source: KindSource::Name,
            addrs: vec![addr.parse().unwrap()],
            up: Some(up),
        }
    }

    fn lab(wifi_up: bool, cell_up: bool) -> Vec<Iface> {
        vec![
            iface("lo", IfaceKind::Loopback, "127.0.0.1", true),
            iface("wifi0", IfaceKind::Wifi, "10.99.1.2", wifi_up),
            iface("cell0", IfaceKind::Cellular, "10.99.3.2", cell_up),
            iface("eth1", IfaceKind::Ethernet, "fd00::2", true),
        ]
    }

    fn names(p: &Policy, ifaces: &[Iface]) -> Vec<String> {
        let server: SocketAddr = "10.99.2.2:9000".parse().unwrap();
        p.plan(ifaces, server)
            .into_iter()
            .map(|b| b.iface)
            .collect()
    }

    #[test]
    fn default_follows_routing() {
        let p = Policy::default();
        assert!(p.follows_routing());
        assert!(names(&p, &lab(true, true)).is_empty());
    }

    #[test]
    fn stripe_uses_every_usable_interface_of_the_family() {
        let p = Policy {
            mode: Mode::Stripe,
            ..Policy::default()
        };
        // Not lo (the server is not loopback), not eth1 (IPv6 only), not a link that is down.
        assert_eq!(names(&p, &lab(true, true)), ["wifi0", "cell0"]);
        assert_eq!(names(&p, &lab(false, true)), ["cell0"]);
        assert!(names(&p, &lab(false, false)).is_empty());
    }

    #[test]
    fn prefer_falls_back_and_returns() {
        let p = Policy {
            mode: Mode::Prefer(IfaceKind::Wifi),
            ..Policy::default()
        };
        assert_eq!(names(&p, &lab(true, true)), ["wifi0"]);
        assert_eq!(names(&p, &lab(false, true)), ["cell0"]);
        let c = Policy {
            mode: Mode::Prefer(IfaceKind::Cellular),
            ..Policy::default()
        };
        assert_eq!(names(&c, &lab(true, true)), ["cell0"]);
        assert_eq!(names(&c, &lab(true, false)), ["wifi0"]);
    }

    #[test]
    fn iface_restricts_and_orders_and_backup_waits() {
        let only = Policy {
            mode: Mode::Stripe,
            only: vec!["cell0".into()],
            ..Policy::default()
        };
        assert_eq!(names(&only, &lab(true, true)), ["cell0"]);
        let ordered = Policy {
            only: vec!["cell0".into(), "wifi0".into()],
            ..Policy::default()
        };
        assert_eq!(names(&ordered, &lab(true, true)), ["cell0"]);
        assert_eq!(names(&ordered, &lab(true, false)), ["wifi0"]);
        let backup = Policy {
            mode: Mode::Stripe,
            backup: vec!["cell0".into()],
            ..Policy::default()
        };
        assert_eq!(names(&backup, &lab(true, true)), ["wifi0"]);
        assert_eq!(names(&backup, &lab(false, true)), ["cell0"]);
    }

    #[test]
    fn fixed_bindings_replace_discovery() {
        let bind = |addr: &str| Binding {
            iface: "lo".into(),
            addr: addr.parse().unwrap(),
            kind: IfaceKind::Loopback,
        };
        let p = Policy {
            fixed: vec![bind("127.0.0.1"), bind("::1"), bind("127.0.0.2")],
            ..Policy::default()
        };
        assert!(!p.follows_routing());
        let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let plan = p.plan(&lab(true, true), server);
        assert_eq!(plan, [bind("127.0.0.1"), bind("127.0.0.2")]);
    }

    #[test]
    fn loopback_only_for_a_loopback_server() {
        let p = Policy {
            mode: Mode::Stripe,
            ..Policy::default()
        };
        let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let plan: Vec<String> = p
            .plan(&lab(true, true), server)
            .into_iter()
            .map(|b| b.iface)
            .collect();
        assert_eq!(plan, ["lo"]);
    }
}
