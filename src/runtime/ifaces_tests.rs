//! Tests of interface discovery and classification, against a fake `/sys/class/net`.

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
    let overrides: HashMap<String, IfaceKind> = [("wifi0".to_owned(), IfaceKind::Cellular)].into();
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
