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
pub const SYSFS_NET: &str = "/sys/class/net";

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
pub const USER_KINDS: &str = "wifi, cellular, ethernet, tunnel or other";

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
pub enum KindSource {
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
    pub kind_source: KindSource,
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
pub fn classify(
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
pub fn kind_from_name(name: &str) -> Option<IfaceKind> {
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
/// [`KindSource`]), state, addresses.
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
mod tests {
    use super::*;
    use std::fs;

    /// A fake `/sys/class/net`.
    struct FakeSysfs(tempfile::TempDir);

    impl FakeSysfs {
        fn new() -> Self {
            FakeSysfs(tempfile::tempdir().unwrap())
        }
        fn path(&self) -> &Path {
            self.0.path()
        }
        /// Adds interface `name` with hardware type `hw_type` and a uevent carrying `devtype`.
        fn dev(&self, name: &str, hw_type: u32, devtype: Option<&str>) -> std::path::PathBuf {
            let dir = self.path().join(name);
            fs::create_dir_all(&dir).unwrap();
            let mut uevent = format!("INTERFACE={name}\nIFINDEX=7\n");
            if let Some(d) = devtype {
                uevent = format!("DEVTYPE={d}\n{uevent}");
            }
            fs::write(dir.join("uevent"), uevent).unwrap();
            fs::write(dir.join("type"), format!("{hw_type}\n")).unwrap();
            fs::write(dir.join("flags"), "0x1003\n").unwrap();
            fs::write(dir.join("operstate"), "up\n").unwrap();
            dir
        }
    }

    fn none() -> HashMap<String, IfaceKind> {
        HashMap::new()
    }

    fn kind(name: &str, sys: &FakeSysfs) -> (IfaceKind, KindSource) {
        classify(name, sys.path(), &none())
    }

    #[test]
    fn sysfs_wireless_dir_and_devtypes() {
        let sys = FakeSysfs::new();
        let d = sys.dev("radio0", 1, None);
        fs::create_dir(d.join("wireless")).unwrap();
        sys.dev("radio1", 1, Some("wlan"));
        sys.dev("modem0", 1, Some("wwan"));
        sys.dev("home", 65534, Some("wireguard"));
        let d = sys.dev("vpn7", 65534, None);
        fs::write(d.join("tun_flags"), "0x1001\n").unwrap();
        sys.dev("loop", ARPHRD_LOOPBACK, None);
        assert_eq!(kind("radio0", &sys), (IfaceKind::Wifi, KindSource::Sysfs));
        assert_eq!(kind("radio1", &sys), (IfaceKind::Wifi, KindSource::Sysfs));
        assert_eq!(
            kind("modem0", &sys),
            (IfaceKind::Cellular, KindSource::Sysfs)
        );
        assert_eq!(kind("home", &sys), (IfaceKind::Tunnel, KindSource::Sysfs));
        assert_eq!(kind("vpn7", &sys), (IfaceKind::Tunnel, KindSource::Sysfs));
        assert_eq!(kind("loop", &sys), (IfaceKind::Loopback, KindSource::Sysfs));
    }

    #[test]
    fn strong_sysfs_evidence_beats_the_name() {
        let sys = FakeSysfs::new();
        // A USB Wi-Fi stick that udev renamed like ethernet; a tun device called cell0.
        sys.dev("eth1", 1, Some("wlan"));
        let d = sys.dev("cell0", 65534, None);
        fs::write(d.join("tun_flags"), "0x1001\n").unwrap();
        assert_eq!(kind("eth1", &sys), (IfaceKind::Wifi, KindSource::Sysfs));
        assert_eq!(kind("cell0", &sys), (IfaceKind::Tunnel, KindSource::Sysfs));
    }

    #[test]
    fn names_beat_veths_and_hardware_types() {
        let sys = FakeSysfs::new();
        // The lab: veth pairs (ethernet-like, no DEVTYPE) named after what they stand for.
        for n in ["wifi0", "cell0", "eth0", "veth1a2b"] {
            sys.dev(n, 1, None);
        }
        // A modem with ARPHRD_NONE and no DEVTYPE: the name, not "a tunnel".
        sys.dev("wwan0", 65534, None);
        assert_eq!(kind("wifi0", &sys), (IfaceKind::Wifi, KindSource::Name));
        assert_eq!(kind("cell0", &sys), (IfaceKind::Cellular, KindSource::Name));
        assert_eq!(kind("eth0", &sys), (IfaceKind::Ethernet, KindSource::Name));
        assert_eq!(kind("wwan0", &sys), (IfaceKind::Cellular, KindSource::Name));
        assert_eq!(
            kind("veth1a2b", &sys),
            (IfaceKind::Other, KindSource::Default)
        );
    }

    #[test]
    fn hardware_type_and_flags_when_the_name_says_nothing() {
        let sys = FakeSysfs::new();
        sys.dev("qmapmux0", ARPHRD_RAWIP, None);
        sys.dev("corp", ARPHRD_NONE, None);
        sys.dev("mysit", ARPHRD_SIT, None);
        let d = sys.dev("link9", 1, None);
        fs::write(d.join("flags"), "0x1091\n").unwrap(); // UP | POINTOPOINT | NOARP
        let d = sys.dev("odd", 1, None);
        fs::write(d.join("flags"), "0x9\n").unwrap(); // UP | LOOPBACK
        assert_eq!(
            kind("qmapmux0", &sys),
            (IfaceKind::Cellular, KindSource::Sysfs)
        );
        assert_eq!(kind("corp", &sys), (IfaceKind::Tunnel, KindSource::Sysfs));
        assert_eq!(kind("mysit", &sys), (IfaceKind::Tunnel, KindSource::Sysfs));
        assert_eq!(kind("link9", &sys), (IfaceKind::Tunnel, KindSource::Flags));
        assert_eq!(kind("odd", &sys), (IfaceKind::Loopback, KindSource::Flags));
    }

    #[test]
    fn overrides_beat_everything() {
        let sys = FakeSysfs::new();
        sys.dev("lo", ARPHRD_LOOPBACK, None);
        let d = sys.dev("wlan0", 1, Some("wlan"));
        fs::create_dir(d.join("wireless")).unwrap();
        let overrides: HashMap<String, IfaceKind> = [
            ("wlan0".to_owned(), IfaceKind::Cellular),
            ("lo".to_owned(), IfaceKind::Wifi),
            ("enx0c5b8f279a64".to_owned(), IfaceKind::Cellular),
        ]
        .into();
        let c = |n| classify(n, sys.path(), &overrides);
        assert_eq!(c("wlan0"), (IfaceKind::Cellular, KindSource::User));
        assert_eq!(c("lo"), (IfaceKind::Wifi, KindSource::User));
        assert_eq!(
            c("enx0c5b8f279a64"),
            (IfaceKind::Cellular, KindSource::User)
        );
        // Overrides match whole names only.
        assert_eq!(c("wlan1"), (IfaceKind::Wifi, KindSource::Name));
    }

    #[test]
    fn name_patterns() {
        use IfaceKind::*;
        let cases = [
            ("lo", Loopback),
            ("lo0", Loopback),
            ("wlan0", Wifi),
            ("wlp2s0", Wifi),
            ("wifi0", Wifi),
            ("Wi-Fi", Wifi),
            ("ath0", Wifi),
            ("wwan0", Cellular),
            ("wwp0s20f0u6", Cellular),
            ("rmnet_data0", Cellular),
            ("ccmni1", Cellular),
            ("cell0", Cellular),
            ("Cellular", Cellular),
            ("pdp_ip0", Cellular),
            ("eth0", Ethernet),
            ("enp3s0", Ethernet),
            ("en0", Ethernet),
            ("em1", Ethernet),
            ("Ethernet 2", Ethernet),
            ("tun0", Tunnel),
            ("tap3", Tunnel),
            ("wg0", Tunnel),
            ("ppp0", Tunnel),
            ("utun4", Tunnel),
            ("ipsec0", Tunnel),
            ("tailscale0", Tunnel),
            ("sit0", Tunnel),
        ];
        for (name, want) in cases {
            assert_eq!(kind_from_name(name), Some(want), "{name}");
        }
        for name in [
            "lowpan0", "emacs", "athena", "usb0", "docker0", "br0", "bond0", "ifb0",
        ] {
            assert_eq!(kind_from_name(name), None, "{name}");
        }
    }

    #[test]
    fn no_sysfs_falls_back_to_names() {
        let missing = Path::new("/nonexistent/msock-test/sys/class/net");
        assert_eq!(
            classify("wlan0", missing, &none()),
            (IfaceKind::Wifi, KindSource::Name)
        );
        assert_eq!(
            classify("x", missing, &none()),
            (IfaceKind::Other, KindSource::Default)
        );
        // Names that would escape the sysfs directory are never looked up there.
        assert!(SysfsDev::read(missing, "../..").is_none());
    }

    #[test]
    fn discovery_merges_sysfs_and_addresses() {
        let sys = FakeSysfs::new();
        sys.dev("lo", ARPHRD_LOOPBACK, None);
        fs::write(sys.path().join("lo/operstate"), "unknown\n").unwrap();
        fs::write(sys.path().join("lo/flags"), "0x9\n").unwrap();
        sys.dev("wifi0", 1, None);
        let d = sys.dev("ifb0", 1, None);
        fs::write(d.join("operstate"), "down\n").unwrap();
        let addrs = vec![
            ("wifi0".to_owned(), "fe80::1".parse().unwrap()),
            ("wifi0".to_owned(), "10.0.0.2".parse().unwrap()),
            ("lo".to_owned(), "::1".parse().unwrap()),
            ("lo".to_owned(), "127.0.0.1".parse().unwrap()),
            ("lo".to_owned(), "127.0.0.1".parse().unwrap()),
            ("utun3".to_owned(), "100.64.0.1".parse().unwrap()),
        ];
        let overrides: HashMap<String, IfaceKind> =
            [("wifi0".to_owned(), IfaceKind::Cellular)].into();
        let found = discover_in(sys.path(), addrs, &overrides);
        let names: Vec<&str> = found.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["ifb0", "lo", "utun3", "wifi0"]);
        let get = |n: &str| found.iter().find(|i| i.name == n).unwrap();
        assert_eq!(get("ifb0").addrs, Vec::<IpAddr>::new());
        assert_eq!(get("ifb0").up, Some(false));
        assert_eq!(get("ifb0").kind, IfaceKind::Other);
        assert_eq!(
            get("lo").addrs,
            [
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(get("lo").up, Some(true));
        assert_eq!(get("lo").kind, IfaceKind::Loopback);
        assert_eq!(get("utun3").up, None);
        assert_eq!(get("utun3").kind, IfaceKind::Tunnel);
        assert_eq!(
            (get("wifi0").kind, get("wifi0").kind_source),
            (IfaceKind::Cellular, KindSource::User)
        );
        assert_eq!(get("wifi0").addrs[0], "10.0.0.2".parse::<IpAddr>().unwrap());
        let more: HashMap<String, IfaceKind> = [
            ("wifi0".to_owned(), IfaceKind::Wifi),
            ("wlan9".to_owned(), IfaceKind::Wifi),
        ]
        .into();
        assert_eq!(unmatched_overrides(&found, &more), ["wlan9"]);
        let text = table(&found);
        assert!(text.contains("INTERFACE"), "{text}");
        let row = text.lines().find(|l| l.starts_with("wifi0"));
        let row: Vec<&str> = row.unwrap().split_whitespace().collect();
        assert_eq!(
            row,
            ["wifi0", "cellular", "user", "up", "10.0.0.2", "fe80::1"]
        );
    }

    #[test]
    fn kind_words() {
        for k in [
            IfaceKind::Wifi,
            IfaceKind::Cellular,
            IfaceKind::Ethernet,
            IfaceKind::Tunnel,
            IfaceKind::Other,
        ] {
            assert_eq!(k.to_string().parse::<IfaceKind>(), Ok(k));
        }
        assert_eq!("WiFi".parse::<IfaceKind>(), Ok(IfaceKind::Wifi));
        assert_eq!(IfaceKind::Loopback.to_string(), "loopback");
        let e = "loopback".parse::<IfaceKind>().unwrap_err();
        assert!(e.contains("wifi, cellular, ethernet"), "{e}");
    }

    #[test]
    fn kind_overrides_parse() {
        assert_eq!(
            parse_kind_override("wlan0=cellular"),
            Ok(("wlan0".to_owned(), IfaceKind::Cellular))
        );
        assert_eq!(
            parse_kind_override(" usb0 = ethernet"),
            Ok(("usb0".to_owned(), IfaceKind::Ethernet))
        );
        for bad in ["nonsense", "=wifi", "lo=banana", "lo=", "lo=loopback"] {
            let e = parse_kind_override(bad).unwrap_err();
            assert!(
                e.contains("wifi, cellular, ethernet, tunnel or other") || e.contains("e.g."),
                "{bad}: {e}"
            );
        }
        assert!(parse_kind_override("lo=banana")
            .unwrap_err()
            .contains("wifi, cellular, ethernet, tunnel or other"));
        assert!(parse_kind_override("nonsense")
            .unwrap_err()
            .contains("wifi, cellular, ethernet, tunnel or other"));
    }
}
