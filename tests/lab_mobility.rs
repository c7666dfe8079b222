//! Mobility in real network namespaces: during a 200 MB transfer through `msock connect` /
//! `msock listen`, the client's address changes, the server's address changes, both change
//! while apart, or the client's link is down for 5 s. Every time the transfer must complete
//! byte-identical and both processes exit 0.
//!
//! The `saturated_*` tests do the same on a link like the one in issue 19's table (RTT 40 ms,
//! 40 Mbit/s, 50 ms queue: `Topology::SlowMobile`) with an upload that fills it, and bound
//! the stall the receiving application sees (the largest gap between its reads in the second
//! after the change, the one spanning the change counted from it) by 1.5 x the issue's
//! targets, for this machine's noise.
//!
//! They need root; elsewhere they print `SKIPPED: ...` and pass (see `tests/lab/mod.rs`).

mod lab;

use std::fs::File;
use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lab::{assert_same_file, payload, HostsFile, Lab, LabProc, Topology};
use serde_json::Value;
use tempfile::NamedTempFile;

/// Bytes sent in each test.
const SIZE: usize = 200 << 20;
/// The router's egress towards the server is shaped to this, so that the transfer lasts a
/// few seconds and the change happens in the middle of it.
const RATE: u64 = 400_000_000;
/// Deadline of every msock process.
const LIMIT: Duration = Duration::from_secs(90);

/// A transfer in progress: listener in `srv`, client in `cli`.
struct Transfer {
    server: LabProc,
    client: LabProc,
    input: NamedTempFile,
    output: NamedTempFile,
    /// Bytes sent.
    size: usize,
    /// When the listener's output was read, one entry a read.
    arrivals: Arc<Mutex<Vec<Instant>>>,
    /// Copies the listener's output to `output`, recording `arrivals`.
    copier: Option<std::thread::JoinHandle<()>>,
}

impl Transfer {
    /// Starts `msock listen 0` in `srv` and `msock connect DEST:PORT` in `cli` with 200 MB.
    /// `dest` is the server's address or a name the client resolves.
    fn start(lab: &Lab, dest: &str) -> Transfer {
        Transfer::start_sized(lab, dest, SIZE)
    }

    /// [`Transfer::start`] with `size` bytes.
    fn start_sized(lab: &Lab, dest: &str, size: usize) -> Transfer {
        let input = payload(size as u64, 7);
        let output = NamedTempFile::new().expect("temp file");
        let msock = env!("CARGO_BIN_EXE_msock");
        let mut cmd = lab.exec(
            "srv",
            msock,
            &["-v", "listen", "0", "-4", "--recv-only", "--json-events"],
        );
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        let mut server = lab.spawn(cmd, LIMIT);
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let (mut from, mut to) = (server.take_stdout(), output.reopen().unwrap());
        let log = arrivals.clone();
        let copier = std::thread::spawn(move || {
            let mut buf = vec![0u8; 1 << 16];
            while let Ok(n @ 1..) = from.read(&mut buf) {
                log.lock().unwrap().push(Instant::now());
                to.write_all(&buf[..n]).expect("write the output");
            }
        });
        let port = server.wait_stderr_line("msock: listening on 0.0.0.0:", Duration::from_secs(10));
        let dest = format!("{dest}:{}", port.trim());
        let mut cmd = lab.exec("cli", msock, &["-v", "connect", &dest, "--json-events"]);
        cmd.stdin(File::open(input.path()).unwrap())
            .stdout(Stdio::null());
        let client = lab.spawn(cmd, LIMIT);
        Transfer {
            server,
            client,
            input,
            output,
            size,
            arrivals,
            copier: Some(copier),
        }
    }

    /// Waits for a second of transfer, so that the change comes in the middle.
    fn let_it_run(&self) {
        self.run_for(Duration::from_secs(1));
    }

    /// Waits for the first bytes (at most 10 s: a loaded machine may take seconds to open
    /// the session), then for `how_long` of transfer, so that the change comes in the middle.
    fn run_for(&self, how_long: Duration) {
        let until = Instant::now() + Duration::from_secs(10);
        while self.arrivals.lock().unwrap().is_empty() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(how_long);
        let got = std::fs::metadata(self.output.path()).map_or(0, |m| m.len());
        let size = self.size;
        assert!(
            got > 0 && got < size as u64,
            "the change should come mid-transfer, but {got} of {size} bytes had arrived"
        );
    }

    /// Both exit 0 and the bytes arrived unchanged; returns the JSON events of (client, server).
    fn finish(mut self) -> (Vec<Value>, Vec<Value>) {
        self.client.expect_exit(0);
        self.server.expect_exit(0);
        if let Some(c) = self.copier.take() {
            c.join().expect("output copier");
        }
        assert_same_file(self.input.path(), self.output.path());
        (events(&self.client.stderr()), events(&self.server.stderr()))
    }

    /// The stall the receiving application saw for a change at `at`: the largest gap
    /// between two of its reads in the second after `at`, the one that spans `at` counted
    /// from `at` (as issue 19's table measures: the largest gap, not how late after the
    /// change a later gap ends).
    fn stall_after(&self, at: Instant) -> Duration {
        let arr = self.arrivals.lock().unwrap();
        let mut best: Option<Duration> = None;
        for w in arr.windows(2) {
            if w[1] <= at {
                continue;
            }
            if w[0] >= at + Duration::from_secs(1) {
                break;
            }
            let gap = w[1] - w[0].max(at);
            best = Some(best.map_or(gap, |b| b.max(gap)));
        }
        best.expect("reads after the change")
    }
}

/// The `--json-events` objects in a process's stderr.
fn events(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad event {l:?}: {e}")))
        .collect()
}

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["event"] == kind).count()
}

/// The lab with the router's egress towards the server shaped.
fn lab(test: &str) -> Option<Lab> {
    let lab = Lab::up(test, Topology::Mobile)?;
    lab.shape("rt", "srv0", RATE);
    Some(lab)
}

#[test]
fn client_address_change_mid_transfer() {
    let Some(lab) = lab("client_address_change_mid_transfer") else {
        return;
    };
    let t = Transfer::start(&lab, "10.99.2.2");
    t.let_it_run();
    let new = lab.addr_move("cli", "eth0");
    let (client, _) = t.finish();
    let moved: Vec<&Value> = client
        .iter()
        .filter(|e| e["event"] == "path_moved")
        .collect();
    assert_eq!(moved.len(), 1, "{client:?}");
    assert_eq!(moved[0]["which"], "local");
    assert_eq!(moved[0]["to"], new.to_string());
}

#[test]
fn server_address_change_mid_transfer() {
    let Some(lab) = lab("server_address_change_mid_transfer") else {
        return;
    };
    let t = Transfer::start(&lab, "10.99.2.2");
    t.let_it_run();
    let new = lab.addr_move("srv", "eth0");
    let (client, server) = t.finish();
    // The server told the client where it went, and the client followed.
    let followed = client.iter().any(|e| {
        e["event"] == "server_moved" && e["to"].as_str().unwrap().starts_with(&new.to_string())
    });
    assert!(followed, "client events: {client:?}");
    assert!(
        count(&server, "path_moved") >= 1,
        "server events: {server:?}"
    );
}

#[test]
fn both_ends_move_while_apart() {
    let Some(lab) = lab("both_ends_move_while_apart") else {
        return;
    };
    let hosts = HostsFile::new(&lab.ns("cli"));
    hosts.set("msock-server", "10.99.2.2");
    let t = Transfer::start(&lab, "msock-server");
    t.let_it_run();
    // The client drops off the network; meanwhile the server moves, so its RECONNECT cannot
    // reach the client; the name service (here the hosts file) learns the new address; the
    // client comes back with a new address and must find the server by name.
    lab.link_down("cli", "eth0");
    let new_srv = lab.addr_move("srv", "eth0");
    hosts.set("msock-server", &new_srv.to_string());
    std::thread::sleep(Duration::from_millis(500));
    lab.link_up("cli", "eth0");
    lab.addr_move("cli", "eth0");
    let (client, _) = t.finish();
    assert!(count(&client, "path_moved") >= 1, "{client:?}");
}

/// Waits until the client's stderr has a `path_moved` event; returns how long that took.
fn wait_path_moved(client: &LabProc, limit: Duration) -> Duration {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if client
            .stderr()
            .lines()
            .any(|l| l.contains("\"path_moved\""))
        {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("no path_moved within {limit:?}:\n{}", client.stderr());
}

/// Both ends move while apart, and the name service learns the server's new address only
/// after the client is back and has begun reconnecting to the stale one (whose connect goes
/// unanswered). The client must look the name up again while that connect hangs: its
/// flowpath is back within 1.5 x (retry interval 1 s + lookup + 2 RTT) of the name's update,
/// not after the stale attempt's `--wait` (10 s).
#[test]
fn both_ends_move_and_the_name_follows_late() {
    let Some(lab) = lab("both_ends_move_and_the_name_follows_late") else {
        return;
    };
    let hosts = HostsFile::new(&lab.ns("cli"));
    hosts.set("msock-server", "10.99.2.2");
    let t = Transfer::start(&lab, "msock-server");
    t.let_it_run();
    lab.link_down("cli", "eth0");
    let new_srv = lab.addr_move("srv", "eth0");
    lab.link_up("cli", "eth0");
    lab.addr_move("cli", "eth0");
    // The client reconnects to the stale address now; the name follows a little later.
    std::thread::sleep(Duration::from_millis(300));
    hosts.set("msock-server", &new_srv.to_string());
    let took = wait_path_moved(&t.client, Duration::from_secs(30));
    eprintln!("both ends moved, name updated late: flowpath back {took:?} after the update");
    // Lookup and RTT are a few ms in this lab; the retry interval is the default 1 s.
    assert!(
        took <= Duration::from_millis(1500),
        "flowpath back only {took:?} after the name was updated"
    );
    let (client, _) = t.finish();
    assert!(count(&client, "path_moved") >= 1, "{client:?}");
}

#[test]
fn link_down_for_five_seconds() {
    let Some(lab) = lab("link_down_for_five_seconds") else {
        return;
    };
    let t = Transfer::start(&lab, "10.99.2.2");
    t.let_it_run();
    lab.link_down("cli", "eth0");
    std::thread::sleep(Duration::from_secs(5));
    lab.link_up("cli", "eth0");
    let (client, _) = t.finish();
    // Either the TCP connection survived the outage or the path was replaced; both are
    // fine as long as the bytes arrived (checked in finish). Say which, for the log.
    eprintln!(
        "link down 5 s: {} path replacement(s)",
        count(&client, "path_moved")
    );
}

// ----- saturated link (issue 19's table) ----------------------------------------------------

/// Bytes of the saturated uploads: about 8 s at 40 Mbit/s.
const SATURATED_SIZE: usize = 40 << 20;
/// How long the upload runs before the change: slow start is over and the link's queue full.
const SATURATE: Duration = Duration::from_secs(2);
/// `SlowMobile`'s round-trip time.
const RTT: Duration = Duration::from_millis(40);

/// Issue 19's targets for a move at RTT 40 ms on a saturated link, times 1.5 for this
/// machine's noise.
const CLIENT_MOVE_LIMIT: Duration = Duration::from_millis(150 * 3 / 2);
const SERVER_MOVE_LIMIT: Duration = Duration::from_millis(170 * 3 / 2);

/// Prints (for `--nocapture`) what the stall is made of, as far as the network shows it: the
/// receiving application's gaps of over 5 ms in the second after the change, the client's
/// SYN retransmissions (a SYN dropped by the full queue costs a 1 s timeout) and the
/// bottleneck queue's drops and backlog.
fn explain(lab: &Lab, t: &Transfer, at: Instant) {
    let gaps: Vec<String> = t
        .arrivals
        .lock()
        .unwrap()
        .windows(2)
        .filter(|w| w[1] > at && w[0] < at + Duration::from_secs(1))
        .filter(|w| w[1] - w[0] > Duration::from_millis(5))
        .map(|w| format!("{:?}..{:?}", w[0].saturating_duration_since(at), w[1] - at))
        .collect();
    eprintln!(
        "reads resumed after gaps (from the change): {}",
        gaps.join(" ")
    );
    for (who, p) in [("client", &t.client), ("server", &t.server)] {
        for e in events(&p.stderr()) {
            let kind = e["event"].as_str().unwrap_or_default();
            let shown = [
                "path_down",
                "path_hello",
                "path_moved",
                "server_moved",
                "path_up",
            ];
            if shown.contains(&kind) || kind == "delivery_resumed" {
                eprintln!("{who}: {e}");
            }
        }
    }
    let o = lab
        .exec("cli", "cat", &["/proc/net/netstat"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    if let [names, values, ..] = &lines[..] {
        for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
            if n == "TCPSynRetrans" {
                eprintln!("client SYN retransmissions: {v}");
            }
        }
    }
    let o = lab
        .exec("lk", "tc", &["-s", "qdisc", "show", "dev", "lkb"])
        .output()
        .unwrap();
    eprintln!(
        "upload bottleneck: {}",
        String::from_utf8_lossy(&o.stdout).trim()
    );
}

/// Asserts that the stall is within `limit`, saying what was measured either way.
fn assert_stall(what: &str, stall: Duration, limit: Duration) {
    eprintln!("{what}: stall {stall:?} (limit {limit:?})");
    assert!(stall <= limit, "{what}: stall {stall:?}, over {limit:?}");
}

#[test]
fn saturated_client_move_stall() {
    let Some(lab) = Lab::up("saturated_client_move_stall", Topology::SlowMobile) else {
        return;
    };
    let t = Transfer::start_sized(&lab, "10.99.2.2", SATURATED_SIZE);
    t.run_for(SATURATE);
    let at = Instant::now();
    lab.addr_move("cli", "eth0");
    std::thread::sleep(Duration::from_secs(2));
    let stall = t.stall_after(at);
    explain(&lab, &t, at);
    let (client, _) = t.finish();
    assert_eq!(count(&client, "path_moved"), 1, "{client:?}");
    assert_stall("client move, saturated", stall, CLIENT_MOVE_LIMIT);
}

#[test]
fn saturated_server_move_stall() {
    let Some(lab) = Lab::up("saturated_server_move_stall", Topology::SlowMobile) else {
        return;
    };
    let t = Transfer::start_sized(&lab, "10.99.2.2", SATURATED_SIZE);
    t.run_for(SATURATE);
    let at = Instant::now();
    lab.addr_move("srv", "eth0");
    std::thread::sleep(Duration::from_secs(2));
    let stall = t.stall_after(at);
    explain(&lab, &t, at);
    let (client, _) = t.finish();
    assert!(count(&client, "server_moved") >= 1, "{client:?}");
    assert_stall("server move, saturated", stall, SERVER_MOVE_LIMIT);
}

/// Both ends move while apart (the client finds the server again by name); the stall is
/// counted from the moment both are reachable again and bounded by 1.5 x (the retry
/// interval, 1 s by default, + lookup + 2 RTT).
#[test]
fn saturated_both_move_stall() {
    let Some(lab) = Lab::up("saturated_both_move_stall", Topology::SlowMobile) else {
        return;
    };
    let hosts = HostsFile::new(&lab.ns("cli"));
    hosts.set("msock-server", "10.99.2.2");
    let t = Transfer::start_sized(&lab, "msock-server", SATURATED_SIZE);
    t.run_for(SATURATE);
    lab.link_down("cli", "eth0");
    let new_srv = lab.addr_move("srv", "eth0");
    hosts.set("msock-server", &new_srv.to_string());
    std::thread::sleep(Duration::from_millis(500));
    lab.link_up("cli", "eth0");
    let at = Instant::now();
    lab.addr_move("cli", "eth0");
    std::thread::sleep(Duration::from_secs(3));
    let stall = t.stall_after(at);
    explain(&lab, &t, at);
    let (client, _) = t.finish();
    assert!(count(&client, "path_moved") >= 1, "{client:?}");
    let limit = (Duration::from_secs(1) + 2 * RTT) * 3 / 2;
    assert_stall("both move, saturated", stall, limit);
}
