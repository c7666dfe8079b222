//! A small network-namespace lab for integration tests: a client, a router and a server, each
//! in its own network namespace, joined by veth pairs, with operations that move the client's
//! address, take its link down and up again, and shape its upload with `tc tbf`.
//!
//! It only needs `ip` (iproute2), plus `tc` for [`Lab::shape`], and root. Tests use it through
//! `mod lab;` and start with
//!
//! ```ignore
//! let Some(lab) = lab::Lab::up("my_test", lab::Topology::Mobile) else { return };
//! ```
//!
//! [`Lab::up`] prints `SKIPPED: ...` and returns `None` when the machine cannot run the lab
//! (not root, no `ip`, no network namespaces or veth). Set `MSOCK_LAB_REQUIRED=1` (e.g. in CI)
//! to make that a failure instead of a skip.
//!
//! Safety rails:
//! - a process-wide lock: one lab at a time per test binary (cargo runs tests on threads);
//! - namespace names carry the process id (`ms<pid>-cli`), so two test binaries never collide,
//!   and namespaces left by a test binary that was killed are removed by the next run;
//! - dropping the [`Lab`] (also when the test panics) kills every process inside its
//!   namespaces and deletes them; every [`LabProc`] has a deadline and is killed when dropped.
//!
//! Interfaces are created directly inside their namespaces, so their names (`eth0`, `cli0`,
//! ...) need no prefix and stay far below the 15-character limit.
//!
//! Addresses (the same in every lab: they are local to the lab's namespaces, so labs of
//! different processes cannot clash):
//!
//! ```text
//! Mobile:  cli eth0  10.99.1.2 --- 10.99.1.1 cli0  rt  srv0 10.99.2.1 --- 10.99.2.2 eth0 srv
//! TwoPath: cli wifi0 10.99.1.2 --- 10.99.1.1 wifi0 rt  srv0 10.99.2.1 --- 10.99.2.2 eth0 srv
//!          cli cell0 10.99.3.2 --- 10.99.3.1 cell0 rt
//! SlowMobile: as Mobile, but the client's link runs through a middle node `lk` (cli eth0 ---
//!          lka lk lkb --- cli0 rt) that delays every frame by 20 ms each way (RTT 40 ms) and
//!          shapes each direction to 40 Mbit/s with a 50 ms queue (needs `ethtool`)
//! NatServer: as Mobile; rt masquerades 10.99.2.0/24 leaving by cli0 and drops connections
//!          from cli0 to srv0 (needs `nft`)
//! ThreeClients: as Mobile, plus
//!          cli2 eth0 10.99.4.2 --- 10.99.4.1 cli2 rt
//!          cli3 eth0 10.99.5.2 --- 10.99.5.1 cli3 rt
//! ```
//!
//! In `TwoPath` the client's default route is wifi0 (metric 100), then cell0 (metric 200), and
//! source routing (`from 10.99.1.0/24 table 101`, `from 10.99.3.0/24 table 102`) sends a socket
//! bound to an interface's address out of that interface only (unreachable when it is down).

#![allow(dead_code)] // each test crate uses a different subset

mod delay;
pub mod uploads;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Serializes labs within this process: cargo runs the tests of one binary on several threads.
static LAB_LOCK: Mutex<()> = Mutex::new(());

/// The nodes (namespaces) of every topology (`lk` carries `SlowMobile`'s delayed link).
const NODES: [&str; 4] = ["cli", "rt", "srv", "lk"];

/// `SlowMobile`'s one-way delay on the client's link (RTT twice that).
pub const SLOW_ONE_WAY: Duration = Duration::from_millis(20);

/// `SlowMobile`'s rate in each direction of the client's link, bits per second.
pub const SLOW_RATE: u64 = 40_000_000;

/// The further client nodes of [`Topology::ThreeClients`].
const MORE_CLIENTS: [&str; 2] = ["cli2", "cli3"];

/// Whether `node` is a node name some topology has.
fn is_node(node: &str) -> bool {
    NODES.contains(&node) || MORE_CLIENTS.contains(&node)
}

/// The config directory (keys, pinned keys) of the msocks a lab starts: one per test binary,
/// under cargo's target tmp dir (as `tests/common`'s), never the user's own.
fn config_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe.file_stem().unwrap_or_default().to_string_lossy();
    std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("config-{stem}"))
}

/// `/etc/netns/NS/hosts`, which `ip netns exec NS` shows as `/etc/hosts` inside NS (how a
/// test makes a name resolve to a moved server); removed on drop.
pub struct HostsFile(std::path::PathBuf);

impl HostsFile {
    pub fn new(ns: &str) -> HostsFile {
        let dir = std::path::PathBuf::from("/etc/netns").join(ns);
        std::fs::create_dir_all(&dir).expect("create /etc/netns/NS");
        HostsFile(dir)
    }

    /// Rewrites the file in place (the bind mount follows the inode, not the name).
    pub fn set(&self, name: &str, ip: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(self.0.join("hosts"))
            .expect("open hosts");
        writeln!(f, "127.0.0.1 localhost\n{ip} {name}").expect("write hosts");
    }
}

impl Drop for HostsFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Which network to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// The client has one interface, `eth0`.
    Mobile,
    /// The client has two interfaces, `wifi0` and `cell0`, both via the router.
    TwoPath,
    /// Like `Mobile`, but the client's link is a real-world one: 20 ms each way, 40 Mbit/s
    /// each way, a 50 ms queue ([`SLOW_ONE_WAY`], [`SLOW_RATE`]).
    SlowMobile,
    /// Like `Mobile`, but the server is behind a NAT on the router (nftables): its traffic
    /// leaves as the router's 10.99.1.1, and no connection from the client's side reaches it.
    NatServer,
    /// Like `Mobile`, plus two more clients `cli2` (eth0 10.99.4.2, router side `cli2`
    /// 10.99.4.1) and `cli3` (eth0 10.99.5.2, router side `cli3` 10.99.5.1), each on a link
    /// of its own.
    ThreeClients,
}

/// How an interface's routes are (re)installed after `link_up` and `addr_move`.
#[derive(Clone, Copy, Debug)]
struct IfRoutes {
    /// Gateway of the default route through this interface (None: no default route).
    gw: Option<Ipv4Addr>,
    /// Metric of that default route in the main table.
    metric: u32,
    /// Policy routing table for packets from this interface's subnet (None: none).
    table: Option<u32>,
}

impl IfRoutes {
    /// No routes of its own (the router's interfaces: their connected routes suffice).
    const NONE: IfRoutes = IfRoutes {
        gw: None,
        metric: 0,
        table: None,
    };

    /// A default route via 10.99.`net`.1 with `metric`, also in policy table `table`.
    fn via(net: u8, metric: u32, table: Option<u32>) -> IfRoutes {
        IfRoutes {
            gw: Some(Ipv4Addr::new(10, 99, net, 1)),
            metric,
            table,
        }
    }
}

/// A running lab. Dropping it kills everything inside and deletes the namespaces.
pub struct Lab {
    /// Namespace name prefix, `ms<pid>-`.
    prefix: String,
    /// Namespaces created so far (all are deleted on drop).
    created: Vec<String>,
    /// Routes to restore, per (node, interface).
    routes: HashMap<(String, String), IfRoutes>,
    /// `SlowMobile`'s delay bridge; stopped before the namespaces go.
    bridge: Option<delay::DelayBridge>,
    /// Held for the lab's lifetime; released after `drop` has cleaned up (fields drop last).
    _lock: MutexGuard<'static, ()>,
}

impl Lab {
    /// Builds `topo`, or prints `SKIPPED: <test>: ...` on stderr and returns `None` when this
    /// machine cannot run lab tests. Blocks while another lab of this process is up.
    pub fn up(test: &str, topo: Topology) -> Option<Lab> {
        let lock = LAB_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let skip = |why: String| {
            let msg = format!("{test}: needs root and network namespaces ({why})");
            if std::env::var_os("MSOCK_LAB_REQUIRED").is_some_and(|v| v != "0" && !v.is_empty()) {
                panic!("MSOCK_LAB_REQUIRED is set but the lab cannot run: {msg}");
            }
            eprintln!("SKIPPED: {msg}");
            None
        };
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return skip("not running as root".into());
        }
        if let Err(e) = Command::new("ip").arg("-V").output() {
            return skip(format!("cannot run `ip`: {e}; apt-get install -y iproute2"));
        }
        // Most labs shape a link; iproute2 ships `tc` with `ip`, but a PATH may lack it.
        if !Lab::has_program("tc") {
            return skip("no `tc` on the PATH; apt-get install -y iproute2".into());
        }
        // Checked before anything is built: `ip netns exec` would start, then fail to exec it.
        if topo == Topology::NatServer && !Lab::has_program("nft") {
            return skip("no `nft` on the PATH; apt-get install -y nftables".into());
        }
        if topo == Topology::SlowMobile && !Lab::has_program("ethtool") {
            return skip("no `ethtool` on the PATH; apt-get install -y ethtool".into());
        }
        let mut lab = Lab {
            prefix: format!("ms{}-", std::process::id()),
            created: Vec::new(),
            routes: HashMap::new(),
            bridge: None,
            _lock: lock,
        };
        remove_stale_namespaces();
        let more: &[&str] = if topo == Topology::ThreeClients {
            &MORE_CLIENTS
        } else {
            &[]
        };
        for &node in NODES.iter().chain(more) {
            let ns = lab.ns(node);
            delete_namespace(&ns); // a leftover with our name (an earlier lab that crashed)
            match cmd("ip", &["netns", "add", &ns]).output() {
                Ok(o) if o.status.success() => lab.created.push(ns),
                Ok(o) => return skip(format!("ip netns add: {}", stderr_of(&o))),
                Err(e) => return skip(format!("ip netns add: {e}")),
            }
            // Loopback up; no reverse-path filter (it drops multi-homed traffic); the router
            // forwards.
            lab.ip(node, &["link", "set", "lo", "up"]);
            let forward = if node == "rt" { "1" } else { "0" };
            lab.sysctl(node, "net/ipv4/conf/all/rp_filter", "0");
            lab.sysctl(node, "net/ipv4/conf/default/rp_filter", "0");
            lab.sysctl(node, "net/ipv4/ip_forward", forward);
        }
        let net = |i: u8, host: u8| format!("10.99.{i}.{host}/24");
        if let Err(why) = lab.veth("rt", "srv0", "srv", "eth0") {
            return skip(why);
        }
        lab.iface("rt", "srv0", &net(2, 1), IfRoutes::NONE);
        lab.iface("srv", "eth0", &net(2, 2), IfRoutes::via(2, 100, None));
        match topo {
            Topology::Mobile | Topology::NatServer | Topology::ThreeClients => {
                lab.veth("cli", "eth0", "rt", "cli0")
                    .unwrap_or_else(|e| panic!("{e}"));
                lab.iface("rt", "cli0", &net(1, 1), IfRoutes::NONE);
                lab.iface("cli", "eth0", &net(1, 2), IfRoutes::via(1, 100, None));
                for (node, i) in more.iter().zip(4..) {
                    lab.veth(node, "eth0", "rt", node)
                        .unwrap_or_else(|e| panic!("{e}"));
                    lab.iface("rt", node, &net(i, 1), IfRoutes::NONE);
                    lab.iface(node, "eth0", &net(i, 2), IfRoutes::via(i, 100, None));
                }
            }
            Topology::SlowMobile => {
                lab.veth("cli", "eth0", "lk", "lka")
                    .unwrap_or_else(|e| panic!("{e}"));
                lab.veth("lk", "lkb", "rt", "cli0")
                    .unwrap_or_else(|e| panic!("{e}"));
                // The bridge forwards frames as they are: at most the MTU, checksums filled.
                for (node, ifc) in [
                    ("cli", "eth0"),
                    ("lk", "lka"),
                    ("lk", "lkb"),
                    ("rt", "cli0"),
                ] {
                    let off = [
                        "-K", ifc, "tx", "off", "sg", "off", "tso", "off", "gso", "off",
                    ];
                    run_ok(lab.exec(node, "ethtool", &[&off[..], &["gro", "off"]].concat()));
                }
                lab.shape("lk", "lka", SLOW_RATE);
                lab.shape("lk", "lkb", SLOW_RATE);
                lab.bridge = Some(delay::DelayBridge::start(
                    &lab.ns("lk"),
                    "lka",
                    "lkb",
                    SLOW_ONE_WAY,
                ));
                lab.iface("rt", "cli0", &net(1, 1), IfRoutes::NONE);
                lab.iface("cli", "eth0", &net(1, 2), IfRoutes::via(1, 100, None));
            }
            Topology::TwoPath => {
                for (ifc, i, metric, table) in [("wifi0", 1, 100, 101), ("cell0", 3, 200, 102)] {
                    lab.veth("cli", ifc, "rt", ifc)
                        .unwrap_or_else(|e| panic!("{e}"));
                    lab.iface("rt", ifc, &net(i, 1), IfRoutes::NONE);
                    let (subnet, t) = (format!("10.99.{i}.0/24"), table.to_string());
                    let pref = (1000 + table).to_string();
                    lab.ip(
                        "cli",
                        &["rule", "add", "from", &subnet, "table", &t, "pref", &pref],
                    );
                    // With the interface down, its table answers "unreachable" instead of
                    // falling through to the other interface.
                    let args = ["route", "add", "unreachable", "default", "metric", "9999"];
                    lab.ip("cli", &[&args[..], &["table", &t]].concat());
                    lab.iface(
                        "cli",
                        ifc,
                        &net(i, 2),
                        IfRoutes::via(i, metric, Some(table)),
                    );
                }
            }
        }
        if topo == Topology::NatServer {
            if let Err(why) = lab.nat_server() {
                return skip(why);
            }
        }
        Some(lab)
    }

    /// Masquerades the server's subnet behind the router's client-side address and drops
    /// connections from the client's side to the server (answers to the server's own
    /// connections pass). Err: why nftables is unusable (no `nft`).
    fn nat_server(&self) -> Result<(), String> {
        let rules = "table ip msnat {
  chain masq { type nat hook postrouting priority 100; oifname \"cli0\" ip saddr 10.99.2.0/24 masquerade; }
  chain inbound { type filter hook forward priority 0; ct state established,related accept; iifname \"cli0\" oifname \"srv0\" drop; }
}";
        let mut c = self.exec("rt", "nft", &["-f", "-"]);
        c.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = c
            .spawn()
            .map_err(|e| format!("cannot run nft: {e}; apt-get install -y nftables"))?;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(rules.as_bytes())
            .map_err(|e| e.to_string())?;
        let o = child.wait_with_output().map_err(|e| e.to_string())?;
        assert!(o.status.success(), "nft: {}", stderr_of(&o));
        Ok(())
    }

    /// The full namespace name of `node` (`cli`, `rt` or `srv`), e.g. `ms4242-cli`.
    pub fn ns(&self, node: &str) -> String {
        assert!(
            is_node(node),
            "the lab has no node {node:?} (nodes: {NODES:?}, {MORE_CLIENTS:?})"
        );
        format!("{}{node}", self.prefix)
    }

    /// A `Command` that runs `program args...` inside `node` (`ip netns exec NS ...`; `ip`
    /// execs the program, so a spawned child's pid is the program's).
    pub fn exec(&self, node: &str, program: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(node), program])
            .args(args)
            .env("MSOCK_CONFIG_DIR", config_dir());
        c
    }

    /// Spawns `cmd` (usually from [`Lab::exec`]) with its stderr collected, to be killed after
    /// `limit` (see [`LabProc::wait`]) or when the returned handle is dropped. Set stdin and
    /// stdout on `cmd` before; stdin defaults to inherited, so give servers `Stdio::null()`.
    pub fn spawn(&self, mut cmd: Command, limit: Duration) -> LabProc {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (mut pipe, log) = (child.stderr.take().unwrap(), stderr.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                log.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        LabProc {
            child,
            what,
            stderr,
            deadline: Instant::now() + limit,
            status: None,
        }
    }

    /// Runs `ip ARGS` inside `node`; panics on failure; returns its stdout.
    pub fn ip(&self, node: &str, args: &[&str]) -> String {
        let ns = self.ns(node);
        run_ok(cmd("ip", &[&["-n", ns.as_str()], args].concat()))
    }

    /// The (first) IPv4 address of `iface` in `node`.
    pub fn addr_of(&self, node: &str, iface: &str) -> Ipv4Addr {
        let out = self.ip(
            node,
            &["-4", "-o", "addr", "show", "dev", iface, "scope", "global"],
        );
        // "2: eth0    inet 10.99.1.2/24 brd ... scope global eth0 ..."
        let cidr = out.split_whitespace().skip_while(|w| *w != "inet").nth(1);
        let addr = cidr.and_then(|c| c.split('/').next()?.parse().ok());
        addr.unwrap_or_else(|| panic!("{node}/{iface} has no IPv4 address: {out:?}"))
    }

    /// Renumbers `iface` in `node` like a phone getting a new address from the same network:
    /// deletes the old address, adds the next one in its /24 (host part + 1; after .254, .2)
    /// and re-installs the routes (deleting an address drops the routes that use it). Returns
    /// the new address. Open sockets bound to the old address are now stranded.
    pub fn addr_move(&self, node: &str, iface: &str) -> Ipv4Addr {
        let [a, b, c, h] = self.addr_of(node, iface).octets();
        let new = Ipv4Addr::new(a, b, c, if h >= 254 { 2 } else { h + 1 });
        let old = format!("{}/24", Ipv4Addr::new(a, b, c, h));
        self.ip(node, &["addr", "del", &old, "dev", iface]);
        self.ip(node, &["addr", "add", &format!("{new}/24"), "dev", iface]);
        self.restore_routes(node, iface);
        new
    }

    /// Takes `iface` in `node` down (the kernel drops its routes; the peer loses carrier).
    pub fn link_down(&self, node: &str, iface: &str) {
        self.ip(node, &["link", "set", "dev", iface, "down"]);
    }

    /// Brings `iface` in `node` back up and re-installs its routes.
    pub fn link_up(&self, node: &str, iface: &str) {
        self.ip(node, &["link", "set", "dev", iface, "up"]);
        self.restore_routes(node, iface);
    }

    /// Limits what `node` sends out of `iface` to `rate_bit_s` bits per second with a tbf
    /// (burst about 2 ms of traffic, at least two frames; queue up to 50 ms, then tail drop).
    /// `0` removes the limit. Shapes one direction: for the client's upload shape its own
    /// interface, for its download the router's side of the link. Needs `tc`.
    pub fn shape(&self, node: &str, iface: &str, rate_bit_s: u64) {
        let ns = self.ns(node);
        let base = ["-n", ns.as_str(), "qdisc"];
        if rate_bit_s == 0 {
            // Fails harmlessly when there is no qdisc to delete.
            let _ = cmd("tc", &[&base[..], &["del", "dev", iface, "root"]].concat()).output();
            return;
        }
        let burst = (rate_bit_s / 8 / 500).max(3028).to_string();
        let rate = rate_bit_s.to_string(); // tc reads a bare number as bits per second
        let args = [
            "replace", "dev", iface, "root", "tbf", "rate", &rate, "burst", &burst,
        ];
        run_ok(cmd(
            "tc",
            &[&base[..], &args, &["latency", "50ms"]].concat(),
        ));
    }

    /// How many bytes `node` has sent out of `iface` so far: its `tx_bytes` counter (link
    /// headers included, counted after the qdisc; kept while the link is down).
    pub fn tx_bytes(&self, node: &str, iface: &str) -> u64 {
        // Inside `ip netns exec`, /sys shows that namespace's interfaces.
        let path = format!("/sys/class/net/{iface}/statistics/tx_bytes");
        let out = run_ok(self.exec(node, "cat", &[&path]));
        out.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{node}/{iface}: bad tx_bytes {out:?}"))
    }

    /// Whether `program` is on the PATH (e.g. `ping`, which not every machine has).
    pub fn has_program(program: &str) -> bool {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path).any(|dir| dir.join(program).is_file())
    }

    // --- building blocks ---

    /// Writes a sysctl inside `node` (through /proc, so procps is not needed).
    fn sysctl(&self, node: &str, key: &str, value: &str) {
        let script = format!("echo {value} >/proc/sys/{key}");
        run_ok(self.exec(node, "sh", &["-c", &script]));
    }

    /// A veth pair `a_if` in `a` <-> `b_if` in `b`, both ends up. Err: why veth is unusable.
    fn veth(&self, a: &str, a_if: &str, b: &str, b_if: &str) -> Result<(), String> {
        let (na, nb) = (self.ns(a), self.ns(b));
        let args = [
            "link", "add", a_if, "netns", &na, "type", "veth", "peer", "name", b_if, "netns", &nb,
        ];
        match cmd("ip", &args).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => return Err(format!("cannot create a veth pair: {}", stderr_of(&o))),
            Err(e) => return Err(format!("cannot create a veth pair: {e}")),
        }
        self.ip(a, &["link", "set", "dev", a_if, "up"]);
        self.ip(b, &["link", "set", "dev", b_if, "up"]);
        Ok(())
    }

    /// Gives `iface` its address and routes, remembering the routes for `link_up`/`addr_move`.
    fn iface(&mut self, node: &str, iface: &str, cidr: &str, routes: IfRoutes) {
        self.ip(node, &["addr", "add", cidr, "dev", iface]);
        self.routes.insert((node.into(), iface.into()), routes);
        self.restore_routes(node, iface);
    }

    /// (Re)installs the default route(s) through `iface`, unless it is down.
    fn restore_routes(&self, node: &str, iface: &str) {
        let Some(r) = self.routes.get(&(node.to_string(), iface.to_string())) else {
            return;
        };
        let Some(gw) = r.gw else { return };
        let show = self.ip(node, &["link", "show", "dev", iface]); // "2: eth0@if3: <...,UP,...>"
        let flags = show.split(['<', '>']).nth(1).unwrap_or_default();
        if !flags.split(',').any(|f| f == "UP") {
            return; // `link_up` will add them
        }
        let (gw, metric) = (gw.to_string(), r.metric.to_string());
        let route = ["route", "replace", "default", "via", &gw, "dev", iface];
        self.ip(node, &[&route[..], &["metric", &metric]].concat());
        if let Some(t) = r.table {
            self.ip(node, &[&route[..], &["table", &t.to_string()]].concat());
        }
    }
}

impl Drop for Lab {
    /// Kills every process inside the lab's namespaces, then deletes them. Never panics.
    fn drop(&mut self) {
        drop(self.bridge.take());
        for ns in self.created.iter().rev() {
            delete_namespace(ns);
        }
    }
}

/// A process started with [`Lab::spawn`]. Killed (and reaped) when dropped.
pub struct LabProc {
    child: Child,
    /// The command line, for messages.
    what: String,
    /// Everything the process wrote on stderr so far.
    stderr: Arc<Mutex<String>>,
    /// When [`LabProc::wait`] gives up and kills it.
    deadline: Instant,
    /// Its exit status, once reaped.
    status: Option<ExitStatus>,
}

impl LabProc {
    /// Its pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Its stdout, when it was spawned with `Stdio::piped()` (once).
    pub fn take_stdout(&mut self) -> std::process::ChildStdout {
        self.child.stdout.take().expect("stdout piped, taken once")
    }

    /// What it wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until a stderr line starts with `prefix` and returns the rest of that line;
    /// panics (the process is killed on drop) after `timeout` or if it exits first.
    pub fn wait_stderr_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let until = Instant::now() + timeout;
        loop {
            let text = self.stderr();
            if let Some(line) = text.lines().find_map(|l| l.strip_prefix(prefix)) {
                return line.to_string();
            }
            let exited = self.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > until {
                thread::sleep(Duration::from_millis(50)); // let the stderr reader catch up
                panic!(
                    "{}: no stderr line {prefix:?} (exited: {exited:?}); stderr:\n{}",
                    self.what,
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for it to exit; at its deadline kills it and panics with its stderr.
    pub fn wait(&mut self) -> ExitStatus {
        loop {
            if let Some(s) = self.status.or_else(|| self.child.try_wait().ok().flatten()) {
                self.status = Some(s);
                // The child is gone; give the reader thread a moment to take the last bytes.
                thread::sleep(Duration::from_millis(20));
                return s;
            }
            if Instant::now() > self.deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                thread::sleep(Duration::from_millis(50));
                panic!(
                    "{}: still running at its deadline; killed; stderr:\n{}",
                    self.what,
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (see [`LabProc::wait`]) and panics unless its exit code is `code`.
    pub fn expect_exit(&mut self, code: i32) {
        let status = self.wait();
        assert_eq!(
            status.code(),
            Some(code),
            "{}: exit status {status}, expected {code}; stderr:\n{}",
            self.what,
            self.stderr()
        );
    }
}

impl Drop for LabProc {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// --- helpers ---

fn cmd(program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args);
    c
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_string()
}

/// Runs a short configuration command to completion; panics unless it succeeds.
fn run_ok(mut c: Command) -> String {
    let o = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(o.status.success(), "{c:?} failed: {}", stderr_of(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Kills every process inside namespace `ns` (TERM, then KILL), then deletes it. Quiet: the
/// namespace may not exist.
fn delete_namespace(ns: &str) {
    if !std::path::Path::new("/run/netns").join(ns).exists() {
        return;
    }
    for round in 0..20 {
        let pids = cmd("ip", &["netns", "pids", ns])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default();
        let pids: Vec<i32> = String::from_utf8_lossy(&pids)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            break;
        }
        let sig = if round < 10 {
            libc::SIGTERM
        } else {
            libc::SIGKILL
        };
        for pid in pids {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(pid, sig) };
        }
        thread::sleep(Duration::from_millis(50));
    }
    if let Ok(o) = cmd("ip", &["netns", "del", ns]).output() {
        if !o.status.success() {
            eprintln!("lab: warning: ip netns del {ns}: {}", stderr_of(&o));
        }
    }
}

/// Deletes lab namespaces (`ms<pid>-<node>`) whose process is gone, e.g. after a test binary
/// was killed with SIGKILL and could not clean up.
fn remove_stale_namespaces() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((pid, node)) = name.strip_prefix("ms").and_then(|r| r.split_once('-')) else {
            continue;
        };
        let pid_ok = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
        if pid_ok && is_node(node) && !std::path::Path::new("/proc").join(pid).exists() {
            eprintln!("lab: removing namespace {name} left by a dead process");
            delete_namespace(&name);
        }
    }
}

// ----- payloads ----------------------------------------------------------------------------

/// `len` pseudo-random bytes (xorshift, seeded) in a temp file; fast even in a debug build.
pub fn payload(len: u64, seed: u64) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f.as_file_mut());
    let mut x = seed | 1;
    let mut left = len;
    while left > 0 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = left.min(8);
        w.write_all(&x.to_le_bytes()[..n as usize])
            .expect("write payload");
        left -= n;
    }
    w.flush().expect("flush payload");
    drop(w);
    f
}

/// Panics unless the two files have the same bytes.
pub fn assert_same_file(a: &std::path::Path, b: &std::path::Path) {
    let (mut fa, mut fb) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut offset = 0u64;
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        let n = na.min(nb);
        if ba[..n] != bb[..n] {
            let i = (0..n).find(|&i| ba[i] != bb[i]).unwrap_or(n);
            panic!(
                "output differs from the input at byte {}",
                offset + i as u64
            );
        }
        assert_eq!(
            na,
            nb,
            "lengths differ: output has {} bytes where the input has {}",
            offset + nb as u64,
            offset + na as u64
        );
        if na == 0 {
            return;
        }
        offset += na as u64;
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).expect("read") {
            0 => break,
            k => n += k,
        }
    }
    n
}

/// A pipe: (read end, write end), e.g. a child's stdin that the test types into. Both ends
/// are close-on-exec, so a child spawned later does not inherit the write end (and keep the
/// reader from ever seeing the end of its input).
pub fn pipe() -> (std::os::fd::OwnedFd, std::fs::File) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into the array.
    assert_eq!(
        unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) },
        0,
        "pipe"
    );
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe {
        (
            OwnedFd::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}
