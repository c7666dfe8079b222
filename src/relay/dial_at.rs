//! Which addresses a relay may send a listener to with DIAL_AT (a relay of the same cluster
//! that holds the client's half of a splice). The listener connects wherever DIAL_AT says, so
//! a hostile relay could otherwise aim it at the listener's own loopback or LAN services. A
//! target is allowed only if it is no closer to the listener than the relay that sent it:
//! a relay on the internet may name relays on the internet, one on the LAN relays on the LAN
//! or the internet, one on loopback any address (a test cluster on one machine).

use std::net::{IpAddr, SocketAddr};

/// How far from the listener an address reaches, nearest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Scope {
    Loopback,
    LinkLocal,
    Private,
    Global,
}

fn scope(ip: IpAddr) -> Option<Scope> {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            if v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() {
                None
            } else if v4.is_loopback() {
                Some(Scope::Loopback)
            } else if v4.is_link_local() {
                Some(Scope::LinkLocal)
            } else if v4.is_private() || v4.octets()[0] == 100 && v4.octets()[1] & 0xc0 == 64 {
                // RFC 1918 and the carrier-grade NAT range 100.64.0.0/10.
                Some(Scope::Private)
            } else {
                Some(Scope::Global)
            }
        }
        IpAddr::V6(v6) => {
            let seg0 = v6.segments()[0];
            if v6.is_unspecified() || v6.is_multicast() {
                None
            } else if v6.is_loopback() {
                Some(Scope::Loopback)
            } else if seg0 & 0xffc0 == 0xfe80 {
                Some(Scope::LinkLocal)
            } else if seg0 & 0xfe00 == 0xfc00 {
                // Unique local addresses, fc00::/7.
                Some(Scope::Private)
            } else {
                Some(Scope::Global)
            }
        }
    }
}

/// Whether a listener registered at `relay` may dial `target` for a DIAL_AT: a usable
/// address (not unspecified, multicast or port 0) no nearer than `relay`'s own.
pub(crate) fn allowed(relay: SocketAddr, target: SocketAddr) -> bool {
    if target.port() == 0 {
        return false;
    }
    match (scope(relay.ip()), scope(target.ip())) {
        (Some(r), Some(t)) => t >= r,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::allowed;

    fn a(s: &str) -> std::net::SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_relay_cannot_send_a_listener_nearer_than_itself() {
        let public = a("203.0.113.5:7480");
        assert!(allowed(public, a("198.51.100.7:7480")));
        assert!(allowed(public, a("[2001:db8::1]:7480")));
        for near in [
            "127.0.0.1:22",
            "[::1]:22",
            "10.0.0.1:80",
            "192.168.1.1:80",
            "172.16.0.1:80",
            "100.64.0.1:80",
            "169.254.169.254:80",
            "[fe80::1]:80",
            "[fd00::1]:80",
            "[::ffff:127.0.0.1]:22",
        ] {
            assert!(!allowed(public, a(near)), "{near}");
        }
        for bad in [
            "0.0.0.0:7480",
            "224.0.0.1:7480",
            "[::]:7480",
            "198.51.100.7:0",
        ] {
            assert!(!allowed(public, a(bad)), "{bad}");
        }
        let lan = a("10.1.2.3:7480");
        assert!(allowed(lan, a("10.1.2.4:7480")));
        assert!(allowed(lan, a("198.51.100.7:7480")));
        assert!(!allowed(lan, a("127.0.0.1:7480")));
        let lo = a("127.0.0.1:7480");
        assert!(allowed(lo, a("127.0.0.1:7481")));
        assert!(allowed(lo, a("10.1.2.4:7480")));
    }
}
