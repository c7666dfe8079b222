//! Which network interfaces this machine has and what kind each one is (Wi-Fi, cellular,
//! ethernet, loopback, tunnel), so that multipath policies can prefer or avoid kinds.
//!
//! A kind is decided by the first of these that says something, strongest first:
//!
//! 1. the user (`--iface-kind NAME=KIND`);
//! 2. unambiguous Linux sysfs evidence under `/sys/class/net/NAME`: a `wireless` directory or
//!    `phy80211` link or `DEVTYPE=wlan` (Wi-Fi), `DEVTYPE=wwan` (cellular), `type` 772
//!    (loopback), a `tun_flags` file or a tunnel `DEVTYPE` such as `wireguard` (tunnel);
//! 3. the interface name: `wl*`, `wifi*` (Wi-Fi), `ww*`, `rmnet*`, `ccmni*`, `cell*`
//!    (cellular), `en*`, `eth*` (ethernet), `tun*`, `wg*`, `utun*` (tunnel), `lo` (loopback)...;
//! 4. the hardware type in sysfs `type`, which says what a link carries but is shared by
//!    different media: raw IP (519) is cellular, ARPHRD_NONE, PPP and IP tunnels are tunnels;
//! 5. the link flags in sysfs `flags`: IFF_LOOPBACK, IFF_POINTOPOINT (tunnel);
//! 6. otherwise `other`.
//!
//! Names come before hardware types because a name is what the person or system that created
//! the interface meant: the test lab's `wifi0` and `cell0` are veth pairs (sysfs says only
//! "ethernet-like"), and a modem's `wwan0` may well be ARPHRD_NONE like a tunnel. A veth,
//! bridge, bond or VLAN is not evidence of any medium, so those are left to the name.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;

/// Where Linux lists network interfaces.
pub(crate) const SYSFS_NET: &str = "/sys/class/net";

/// What kind of network an interface reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IfaceKind {
    /// Wireless LAN.
    Wifi,
    /// Mobile broadband (a modem, or a phone's data connection).
    Cellular,
    /// Wired LAN (or something that names itself like one).
    Ethernet,
    /// This machine only.
    Loopback,
    /// A VPN or tunnel, carried over some other interface.
    Tunnel,
    /// Anything not recognised (bridges, virtual links, ...).
    Other,
}

/// The words `--iface-kind` accepts, for messages.
pub(crate) const USER_KINDS: &str = "wifi, cellular, ethernet, tunnel or other";

impl IfaceKind {
    /// The lowercase word for the kind, as shown and parsed.
    pub fn as_str(self) -> &'static str {
        match self {
            IfaceKind::Wifi => "wifi",
            IfaceKind::Cellular => "cellular",
            IfaceKind::Ethernet => "ethernet",
            IfaceKind::Loopback => "loopback",
            IfaceKind::Tunnel => "tunnel",
            IfaceKind::Other => "other",
        }
    }
}

impl fmt::Display for IfaceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses the kinds a user may assign (case-insensitive): wifi, cellular, ethernet, tunnel,
/// other. `loopback` is refused: it is detected reliably and nothing else can become one.
impl FromStr for IfaceKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "wifi" => Ok(IfaceKind::Wifi),
            "cellular" => Ok(IfaceKind::Cellular),
            "ethernet" => Ok(IfaceKind::Ethernet),
            "tunnel" => Ok(IfaceKind::Tunnel),
            "other" => Ok(IfaceKind::Other),
            _ => Err(format!("'{s}' is not an interface kind; use {USER_KINDS}")),
        }
    }
}

/// How a kind was decided (see the module documentation for the order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum KindSource {
    /// `--iface-kind` said so.
    User,
    /// Linux sysfs: device type, wireless or tunnel markers, hardware type.
    Sysfs,
    /// The interface name matched a known pattern.
    Name,
    /// The link flags (loopback, point-to-point).
    Flags,
    /// Nothing recognised the interface; the kind is `other`.
    Default,
}

impl fmt::Display for KindSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KindSource::User => "user",
            KindSource::Sysfs => "sysfs",
            KindSource::Name => "name",
            KindSource::Flags => "flags",
            KindSource::Default => "default",
        })
    }
}

/// One network interface as msock sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    /// The OS name (`wlan0`, `enp3s0`, `lo`).
    pub name: String,
    /// What it reaches.
    pub kind: IfaceKind,
    /// How `kind` was decided.
    pub(crate) kind_source: KindSource,
    /// Its IP addresses, sorted (IPv4 first); empty if it has none.
    pub addrs: Vec<IpAddr>,
    /// Whether the link is up (sysfs `operstate`, or the IFF_UP flag where the operstate is
    /// "unknown"); `None` where sysfs does not tell.
    pub up: Option<bool>,
}

// Hardware types (ARPHRD_*) from <linux/if_arp.h>.
const ARPHRD_PPP: u32 = 512;
const ARPHRD_RAWIP: u32 = 519;
const ARPHRD_TUNNEL: u32 = 768;
const ARPHRD_TUNNEL6: u32 = 769;
const ARPHRD_LOOPBACK: u32 = 772;
const ARPHRD_SIT: u32 = 776;
const ARPHRD_IPGRE: u32 = 778;
const ARPHRD_IEEE80211: u32 = 801;
const ARPHRD_IEEE80211_RADIOTAP: u32 = 803;
const ARPHRD_IP6GRE: u32 = 823;
const ARPHRD_NONE: u32 = 65534;

// Link flags from <net/if.h>.
const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;
const IFF_POINTOPOINT: u32 = 0x10;

/// Device types (uevent `DEVTYPE`) of Linux tunnel and overlay drivers.
const TUNNEL_DEVTYPES: &[&str] = &[
    "wireguard",
    "vxlan",
    "geneve",
    "gretap",
    "ip6gretap",
    "erspan",
    "ip6erspan",
    "xfrm",
];

/// Decides the kind of interface `name`: see the module documentation for the order.
/// `sysfs` is normally [`SYSFS_NET`]; a directory that does not exist (other systems) just
/// skips the sysfs steps.
pub(crate) fn classify(
    name: &str,
    sysfs: &Path,
    overrides: &HashMap<String, IfaceKind>,
) -> (IfaceKind, KindSource) {
    if let Some(&kind) = overrides.get(name) {
        return (kind, KindSource::User);
    }
    let dev = SysfsDev::read(sysfs, name);
    if let Some(kind) = dev.as_ref().and_then(SysfsDev::strong_kind) {
        return (kind, KindSource::Sysfs);
    }
    if let Some(kind) = kind_from_name(name) {
        return (kind, KindSource::Name);
    }
    if let Some(kind) = dev.as_ref().and_then(SysfsDev::weak_kind) {
        return (kind, KindSource::Sysfs);
    }
    if let Some(kind) = dev.as_ref().and_then(SysfsDev::flags_kind) {
        return (kind, KindSource::Flags);
    }
    (IfaceKind::Other, KindSource::Default)
}

/// The kind an interface name suggests, from common naming conventions (Linux kernel and
/// systemd names, Android, macOS/BSD, Windows friendly names); case-insensitive.
pub(crate) fn kind_from_name(name: &str) -> Option<IfaceKind> {
    let n = name.to_ascii_lowercase();
    // `prefix` followed by anything (including nothing).
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| n.starts_with(p));
    // `prefix` followed by a digit: for prefixes too short to trust alone.
    let numbered = |prefixes: &[&str]| {
        prefixes.iter().any(|p| {
            n.strip_prefix(p)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
    };
    if n == "lo"
        || n.strip_prefix("lo")
            .is_some_and(|r| r.bytes().all(|b| b.is_ascii_digit()))
    {
        return Some(IfaceKind::Loopback);
    }
    if starts(&["wl", "wifi", "wi-fi"]) || numbered(&["ath"]) {
        return Some(IfaceKind::Wifi);
    }
    // ww: wwan0 and systemd's wwp0s20u4; pdp_ip: macOS and iOS.
    if starts(&["ww", "rmnet", "ccmni", "cell", "pdp_ip"]) {
        return Some(IfaceKind::Cellular);
    }
    if starts(&[
        "tun",
        "tap",
        "wg",
        "ppp",
        "utun",
        "ipsec",
        "tailscale",
        "zt",
        "gif",
        "stf",
        "gre",
        "ipip",
        "ip6tnl",
        "ip6gre",
        "vti",
        "ip_vti",
        "nordlynx",
    ]) || numbered(&["sit"])
    {
        return Some(IfaceKind::Tunnel);
    }
    if starts(&["en", "eth"]) || numbered(&["em"]) {
        return Some(IfaceKind::Ethernet);
    }
    None
}

/// What sysfs says about one interface.
#[derive(Debug, Default)]
struct SysfsDev {
    wireless: bool,
    tun: bool,
    devtype: Option<String>,
    hw_type: Option<u32>,
    flags: Option<u32>,
    operstate: Option<String>,
}

impl SysfsDev {
    /// Reads `<sysfs>/<name>`; `None` if there is no such directory.
    fn read(sysfs: &Path, name: &str) -> Option<SysfsDev> {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') {
            return None;
        }
        let dir = sysfs.join(name);
        if !dir.is_dir() {
            return None;
        }
        let text = |file: &str| {
            std::fs::read_to_string(dir.join(file))
                .ok()
                .map(|s| s.trim().to_owned())
        };
        let devtype = text("uevent").and_then(|u| {
            u.lines()
                .find_map(|l| l.trim().strip_prefix("DEVTYPE=").map(str::to_owned))
        });
        Some(SysfsDev {
            wireless: dir.join("wireless").exists() || dir.join("phy80211").exists(),
            tun: dir.join("tun_flags").exists(),
            devtype,
            hw_type: text("type").and_then(|t| t.parse().ok()),
            flags: text("flags").and_then(|f| parse_hex(&f)),
            operstate: text("operstate"),
        })
    }

    /// Evidence that beats the name.
    fn strong_kind(&self) -> Option<IfaceKind> {
        let devtype = self.devtype.as_deref();
        if self.hw_type == Some(ARPHRD_LOOPBACK) {
            Some(IfaceKind::Loopback)
        } else if self.wireless
            || devtype == Some("wlan")
            || matches!(
                self.hw_type,
                Some(ARPHRD_IEEE80211..=ARPHRD_IEEE80211_RADIOTAP)
            )
        {
            Some(IfaceKind::Wifi)
        } else if devtype == Some("wwan") {
            Some(IfaceKind::Cellular)
        } else if self.tun || devtype.is_some_and(|d| TUNNEL_DEVTYPES.contains(&d)) {
            Some(IfaceKind::Tunnel)
        } else {
            None
        }
    }

    /// The hardware type, which the name beats.
    fn weak_kind(&self) -> Option<IfaceKind> {
        match self.hw_type? {
            ARPHRD_RAWIP => Some(IfaceKind::Cellular),
            ARPHRD_PPP | ARPHRD_TUNNEL | ARPHRD_TUNNEL6 | ARPHRD_SIT | ARPHRD_IPGRE
            | ARPHRD_IP6GRE | ARPHRD_NONE => Some(IfaceKind::Tunnel),
            _ => None,
        }
    }

    /// The link flags, the last resort.
    fn flags_kind(&self) -> Option<IfaceKind> {
        let flags = self.flags?;
        if flags & IFF_LOOPBACK != 0 {
            Some(IfaceKind::Loopback)
        } else if flags & IFF_POINTOPOINT != 0 {
            Some(IfaceKind::Tunnel)
        } else {
            None
        }
    }

    /// Up per `operstate`; where that is "unknown" (loopback, many tunnels), the IFF_UP flag.
    fn up(&self) -> Option<bool> {
        match self.operstate.as_deref() {
            Some("up") => Some(true),
            Some("unknown") | Some("") | None => self.flags.map(|f| f & IFF_UP != 0),
            Some(_) => Some(false),
        }
    }
}

/// Parses sysfs hex like `0x1003`.
fn parse_hex(s: &str) -> Option<u32> {
    let s = s.trim();
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    u32::from_str_radix(digits, 16).ok()
}

/// Every interface this machine has, sorted by name: those with IP addresses (from
/// `getifaddrs`) and, on Linux, those sysfs lists without any.
pub fn discover(overrides: &HashMap<String, IfaceKind>) -> Vec<Iface> {
    let addrs: Vec<(String, IpAddr)> = if_addrs::get_if_addrs()
        .map(|v| v.into_iter().map(|i| (i.name.clone(), i.ip())).collect())
        .unwrap_or_default();
    discover_in(Path::new(SYSFS_NET), addrs, overrides)
}

/// [`discover`] with the sysfs directory and the address list given.
fn discover_in(
    sysfs: &Path,
    addrs: Vec<(String, IpAddr)>,
    overrides: &HashMap<String, IfaceKind>,
) -> Vec<Iface> {
    let mut by_name: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir(sysfs) {
        for entry in dir.flatten() {
            if let Ok(name) = entry.file_name().into_string() {
                by_name.entry(name).or_default();
            }
        }
    }
    for (name, ip) in addrs {
        by_name.entry(name).or_default().push(ip);
    }
    by_name
        .into_iter()
        .map(|(name, mut addrs)| {
            addrs.sort();
            addrs.dedup();
            let (kind, kind_source) = classify(&name, sysfs, overrides);
            let up = SysfsDev::read(sysfs, &name).and_then(|d| d.up());
            Iface {
                name,
                kind,
                kind_source,
                addrs,
                up,
            }
        })
        .collect()
}

/// The `--iface-kind` names that match no interface in `ifaces`, sorted (likely typos).
pub fn unmatched_overrides<'a>(
    ifaces: &[Iface],
    overrides: &'a HashMap<String, IfaceKind>,
) -> Vec<&'a str> {
    let mut names: Vec<&str> = overrides
        .keys()
        .map(String::as_str)
        .filter(|n| !ifaces.iter().any(|i| i.name == *n))
        .collect();
    names.sort_unstable();
    names
}

/// The interfaces as a table for people, one line per interface (plus a header) and no
/// borders, so that it also reads well in `grep` and `awk`: interface, kind, how (the
/// `KindSource`), state, addresses.
pub fn table(ifaces: &[Iface]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header(["INTERFACE", "KIND", "HOW", "STATE", "ADDRESSES"]);
    for i in ifaces {
        let state = match i.up {
            Some(true) => "up",
            Some(false) => "down",
            None => "-",
        };
        let addrs = if i.addrs.is_empty() {
            "-".to_owned()
        } else {
            i.addrs
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(" ")
        };
        t.add_row([
            i.name.clone(),
            i.kind.to_string(),
            i.kind_source.to_string(),
            state.to_owned(),
            addrs,
        ]);
    }
    for column in t.column_iter_mut() {
        column.set_padding((0, 2));
    }
    let mut out = String::new();
    for line in t.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Parses `NAME=KIND` (for `--iface-kind`).
pub fn parse_kind_override(s: &str) -> Result<(String, IfaceKind), String> {
    let (name, kind) = s.split_once('=').ok_or_else(|| {
        format!("'{s}' is not NAME=KIND; write e.g. wlan0=cellular (KIND is {USER_KINDS})")
    })?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!(
            "'{s}' has no interface name; write e.g. wlan0=cellular"
        ));
    }
    Ok((name.to_owned(), kind.parse()?))
}

#[cfg(test)]
#[path = "ifaces_tests.rs"]
mod tests;
