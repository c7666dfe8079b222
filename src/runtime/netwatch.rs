//! Watches the machine's network addresses and links, so that a flowpath whose local address
//! disappeared is replaced at once instead of after a dead time.
//!
//! On Linux a netlink socket subscribed to address, link and route changes wakes us within
//! milliseconds of `ip addr del`, a DHCP renumbering or a link going down. Elsewhere the
//! address list is polled once a second. Either way the watcher only says "something changed";
//! the driver then compares the addresses it uses with [`local_addrs`].

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::mpsc;

/// The IP addresses currently assigned to this machine's interfaces.
pub fn local_addrs() -> HashSet<IpAddr> {
    if_addrs::get_if_addrs()
        .map(|v| v.into_iter().map(|i| i.ip()).collect())
        .unwrap_or_default()
}

/// Which interface holds each local address, at one moment.
#[derive(Debug, Clone, Default)]
pub(crate) struct AddrBook {
    by_ip: HashMap<IpAddr, String>,
}

impl AddrBook {
    /// The addresses now.
    pub fn snapshot() -> Self {
        let by_ip = if_addrs::get_if_addrs()
            .map(|v| v.into_iter().map(|i| (i.ip(), i.name)).collect())
            .unwrap_or_default();
        AddrBook { by_ip }
    }

    /// True if `ip` is assigned to an interface.
    pub fn contains(&self, ip: &IpAddr) -> bool {
        self.by_ip.contains_key(ip)
    }

    /// The interface that holds `ip`.
    pub(crate) fn iface_of(&self, ip: &IpAddr) -> Option<String> {
        self.by_ip.get(ip).cloned()
    }

    /// An address to use now instead of `old`, which was on interface `iface`: one of the
    /// same family on that interface (a renumbering), else any other of the same family that
    /// is not loopback or IPv6 link-local.
    pub fn replacement(&self, old: IpAddr, iface: Option<&str>) -> Option<IpAddr> {
        let usable = |ip: &IpAddr| {
            ip.is_ipv4() == old.is_ipv4()
                && *ip != old
                && (!ip.is_loopback() || old.is_loopback())
                && !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
        };
        let mut candidates: Vec<(&IpAddr, &String)> =
            self.by_ip.iter().filter(|(ip, _)| usable(ip)).collect();
        candidates.sort_by_key(|(ip, name)| (Some(name.as_str()) != iface, **ip));
        candidates.first().map(|(ip, _)| **ip)
    }
}

/// Starts watching; each change (coalesced) arrives as one `()` on the returned channel. The
/// watcher stops when the receiver is dropped.
pub fn spawn() -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel(1);
    #[cfg(target_os = "linux")]
    match linux::NetlinkWatch::open() {
        Ok(w) => {
            tokio::spawn(w.run(tx));
            return rx;
        }
        Err(e) => tracing::debug!("netlink unavailable ({e}); polling addresses instead"),
    }
    tokio::spawn(poll(tx));
    rx
}

/// Fallback: compares the address list every second.
async fn poll(tx: mpsc::Sender<()>) {
    let mut last = local_addrs();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = local_addrs();
        if now != last {
            last = now;
            if tx.send(()).await.is_err() {
                return;
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    use tokio::io::unix::AsyncFd;
    use tokio::sync::mpsc;

    /// A netlink route socket subscribed to link, address and route changes.
    pub(crate) struct NetlinkWatch {
        fd: AsyncFd<OwnedFd>,
    }

    impl NetlinkWatch {
        pub fn open() -> io::Result<Self> {
            // SAFETY: plain socket/bind syscalls on a descriptor we own; the sockaddr is
            // zero-initialised and sized correctly; the OwnedFd stays inside the AsyncFd (and
            // so open) for as long as it is registered.
            unsafe {
                let fd = libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                    libc::NETLINK_ROUTE,
                );
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let fd = OwnedFd::from_raw_fd(fd);
                let mut sa: libc::sockaddr_nl = std::mem::zeroed();
                sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
                sa.nl_groups = (libc::RTMGRP_LINK
                    | libc::RTMGRP_IPV4_IFADDR
                    | libc::RTMGRP_IPV6_IFADDR
                    | libc::RTMGRP_IPV4_ROUTE
                    | libc::RTMGRP_IPV6_ROUTE) as u32;
                let r = libc::bind(
                    fd.as_raw_fd(),
                    &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                );
                if r < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(NetlinkWatch {
                    fd: AsyncFd::register(fd)?,
                })
            }
        }

        /// Drains notifications and signals `tx` (without queueing more than one signal).
        pub async fn run(self, tx: mpsc::Sender<()>) {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let Ok(mut guard) = self.fd.readable().await else {
                    return;
                };
                let mut got = false;
                loop {
                    // SAFETY: recv into a buffer we own, of the length we pass.
                    let n = unsafe {
                        libc::recv(
                            self.fd.get_ref().as_raw_fd(),
                            buf.as_mut_ptr() as *mut libc::c_void,
                            buf.len(),
                            0,
                        )
                    };
                    if n > 0 {
                        got = true;
                        continue;
                    }
                    let e = io::Error::last_os_error();
                    if n < 0 && e.kind() == io::ErrorKind::WouldBlock {
                        guard.clear_ready();
                        break;
                    }
                    // ENOBUFS (we missed messages) still means "something changed".
                    got |= e.raw_os_error() == Some(libc::ENOBUFS);
                    if n == 0 || e.raw_os_error() != Some(libc::ENOBUFS) {
                        guard.clear_ready();
                        break;
                    }
                }
                if got && tx.try_send(()).is_err() && tx.is_closed() {
                    return;
                }
            }
        }
    }
}
