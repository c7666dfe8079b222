//! Relays sharing one name registry in etcd (`msock proxy --etcd ... --cluster-key-file`),
//! end to end on loopback with a 3-member etcd cluster: a listener attached at relay A reached
//! by a client at relay C (a stream and send-file, byte-identical, one relay hop), name theft
//! at another relay refused, registrations with one etcd member dead, and without quorum: new
//! registrations refused with "registry unavailable" while a live session goes on. Skipped
//! (with a message) where etcd is not installed.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::etcd::EtcdCluster;
use common::relay::{named_listener, spawn_named, Relay};
use common::*;

/// Deadline for bulk transfers (debug build, 2 cores, other tests in parallel).
const BULK: Duration = Duration::from_secs(120);
/// Deadline for short exchanges.
const SHORT: Duration = Duration::from_secs(30);

/// Three relays of one cluster, with the cluster key in `dir`.
fn relays(etcd: &EtcdCluster, dir: &Path) -> Vec<Relay> {
    relays_with(etcd, dir, &[])
}

/// As [`relays`], each started with `extra` flags too.
fn relays_with(etcd: &EtcdCluster, dir: &Path, extra: &[&str]) -> Vec<Relay> {
    let key = dir.join("cluster.key");
    std::fs::write(
        &key,
        "6d736f636b2d746573742d636c75737465722d6b65792d3332627974657321\n",
    )
    .unwrap();
    let urls = etcd.urls();
    ["a", "b", "c"]
        .iter()
        .map(|id| {
            let args = [
                "--etcd",
                &urls,
                "--cluster-key-file",
                key.to_str().unwrap(),
                "--relay-id",
                id,
            ];
            Relay::start(dir, "127.0.0.1:0", &[&args[..], extra].concat())
        })
        .collect()
}

/// A listener attached at relay A, a client at relay C: C forwards the DIAL to A, the
/// listener dials back to C, and the 100 MB stream and a send-file arrive byte-identical,
/// spliced at C alone.
#[test]
fn listener_at_a_reached_by_a_client_at_c() {
    let Some(etcd) = EtcdCluster::start() else {
        return;
    };
    let dir = tempdir();
    let r = relays(&etcd, dir.path());
    const LEN: usize = 100 * 1000 * 1000;
    let (c_in, c_hash) = write_random_file(dir.path(), "c.in", 7, LEN);
    let l_out = dir.path().join("l.out");
    let mut l = named_listener(
        &r[0],
        "far",
        &dir.path().join("state"),
        &["--recv-only"],
        Stdio::null(),
        stdout_to(&l_out),
    );
    let mut c = connect(&r[2].dest("far"), &["-v"], stdin_from(&c_in), Stdio::null());
    let ce = c.expect_code(0, BULK);
    l.expect_code(0, SHORT);
    assert_file_hash(&l_out, &c_hash, LEN, "listener's output");
    assert!(ce.stderr.contains("through the relay"), "{}", ce.stderr);
    // One hop: spliced at C, the DIAL forwarded by A; B saw nothing.
    let ends: Vec<_> = r[2]
        .events()
        .into_iter()
        .filter(|e| e["event"] == "splice_end")
        .collect();
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert!(ends[0]["up"].as_u64().unwrap() > LEN as u64);
    assert!(r[0].count("forwarded_dial") >= 1, "{:?}", r[0].events());
    assert_eq!(r[0].count("splice"), 0, "{:?}", r[0].events());
    assert_eq!(r[1].count("splice") + r[1].count("forwarded_dial"), 0);

    // send-file through C to a listener at A.
    let save = dir.path().join("save");
    let (file, hash) = write_random_file(dir.path(), "photo.bin", 8, 3_000_000);
    let _files = named_listener(
        &r[0],
        "files",
        &dir.path().join("state"),
        &["--save-dir", save.to_str().unwrap(), "-k"],
        Stdio::null(),
        Stdio::null(),
    );
    let mut s = Proc::spawn("msock send-file", {
        let mut c = msock(&[
            "send-file",
            "-q",
            file.to_str().unwrap(),
            &r[2].dest("files"),
        ]);
        c.stdin(Stdio::null()).stdout(Stdio::null());
        c
    });
    s.expect_code(0, BULK);
    assert_file_hash(&save.join("photo.bin"), &hash, 3_000_000, "saved file");
}

/// A name held at relay A cannot be registered at relay B without its secret; the owner
/// keeps it.
#[test]
fn name_theft_at_another_relay_is_refused() {
    let Some(etcd) = EtcdCluster::start() else {
        return;
    };
    let dir = tempdir();
    let r = relays(&etcd, dir.path());
    let mut owner = named_listener(
        &r[0],
        "mine",
        &dir.path().join("owner"),
        &[],
        Stdio::null(),
        Stdio::null(),
    );
    let mut thief = spawn_named(
        &r[1],
        "mine",
        &dir.path().join("thief"),
        &[],
        Stdio::null(),
        Stdio::null(),
    );
    let e = thief.expect_code(1, SHORT);
    assert!(
        e.stderr.contains("held by another listener"),
        "{}",
        e.stderr
    );
    owner.assert_running("the owner keeps its name");
    assert_eq!(r[1].count("registered"), 0);
}

/// The value of `key` in etcd (`etcdctl get`), empty when absent.
fn etcd_get(etcd: &EtcdCluster, key: &str) -> String {
    let out = std::process::Command::new("etcdctl")
        .args([
            "--endpoints",
            &etcd.urls(),
            "get",
            key,
            "--print-value-only",
        ])
        .output()
        .expect("etcdctl (installed with etcd)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A listener that left its relay is no longer "attached" in the cluster: `at/<name>` is
/// deleted when its control channel ends (it used to stay until the relay died, and every
/// other relay sent clients to a relay with no listener).
#[test]
fn a_listener_that_left_is_no_longer_attached() {
    if !have("etcdctl") {
        println!("SKIPPED: etcdctl is not installed (apt-get install -y etcd-client)");
        return;
    }
    let Some(etcd) = EtcdCluster::start() else {
        return;
    };
    let dir = tempdir();
    let r = relays(&etcd, dir.path());
    let mut l = named_listener(
        &r[0],
        "leaver",
        &dir.path().join("l"),
        &[],
        Stdio::null(),
        Stdio::null(),
    );
    assert!(etcd_get(&etcd, "msock/at/leaver").contains("\"relay\":\"a\""));
    l.kill();
    let deadline = std::time::Instant::now() + SHORT;
    while !etcd_get(&etcd, "msock/at/leaver").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "at/leaver still in etcd after its listener left"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !etcd_get(&etcd, "msock/names/leaver").is_empty(),
        "the secret stays"
    );
}

/// The granted TTL of the lease `names/<name>` lives on (etcdctl), 0 when absent.
fn name_lease_ttl(etcd: &EtcdCluster, name: &str) -> u64 {
    let out = std::process::Command::new("etcdctl")
        .args([
            "--endpoints",
            &etcd.urls(),
            "get",
            &format!("msock/names/{name}"),
        ])
        .args(["-w", "json"])
        .output()
        .expect("etcdctl");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let Some(lease) = v["kvs"][0]["lease"].as_i64() else {
        return 0;
    };
    let out = std::process::Command::new("etcdctl")
        .args(["--endpoints", &etcd.urls(), "lease", "timetolive"])
        .args([format!("{lease:x}"), "-w".into(), "json".into()])
        .output()
        .expect("etcdctl");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (v["granted-ttl"].as_u64())
        .or(v["grantedTTL"].as_u64())
        .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&out.stdout)))
}

/// As at a single relay, a name no listener stayed on lives 10 minutes: its `names/` lease
/// is short first and gets the full name TTL (24 h) once the listener sent a keepalive.
#[test]
fn a_name_gets_its_full_ttl_in_the_cluster_once_its_listener_stays() {
    if !have("etcdctl") {
        println!("SKIPPED: etcdctl is not installed (apt-get install -y etcd-client)");
        return;
    }
    let Some(etcd) = EtcdCluster::start() else {
        return;
    };
    let dir = tempdir();
    let key = dir.path().join("cluster.key");
    std::fs::write(
        &key,
        "6d736f636b2d746573742d636c75737465722d6b65792d3332627974657321\n",
    )
    .unwrap();
    let urls = etcd.urls();
    let r = Relay::start(
        dir.path(),
        "127.0.0.1:0",
        &[
            "--etcd",
            &urls,
            "--cluster-key-file",
            key.to_str().unwrap(),
            "--keepalive",
            "1s",
        ],
    );
    let mut l = named_listener(
        &r,
        "stayer",
        &dir.path().join("l"),
        &[],
        Stdio::null(),
        Stdio::null(),
    );
    let first = name_lease_ttl(&etcd, "stayer");
    assert!(first > 0 && first <= 600, "first lease: {first} s");
    let deadline = std::time::Instant::now() + SHORT;
    while name_lease_ttl(&etcd, "stayer") != 24 * 3600 {
        assert!(
            std::time::Instant::now() < deadline,
            "the name's lease never got the full TTL"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    l.assert_running("the listener stays");
}

/// With one etcd member killed the cluster has quorum: new names register at any relay.
#[test]
fn registrations_work_with_one_etcd_member_dead() {
    let Some(mut etcd) = EtcdCluster::start() else {
        return;
    };
    let dir = tempdir();
    let r = relays(&etcd, dir.path());
    etcd.kill(0);
    let mut l = named_listener(
        &r[1],
        "survivor",
        &dir.path().join("s"),
        &[],
        Stdio::null(),
        Stdio::null(),
    );
    l.assert_running("registered with one member down");
    let mut m = named_listener(
        &r[2],
        "another",
        &dir.path().join("t"),
        &[],
        Stdio::null(),
        Stdio::null(),
    );
    m.assert_running("registered with one member down");
}

/// Two of three members dead (no quorum): a live session through the cluster goes on, and a
/// new registration is refused with "registry unavailable" (exit 1) instead of risking two
/// owners of a name.
#[test]
fn without_quorum_new_registrations_are_refused_and_live_sessions_go_on() {
    let Some(mut etcd) = EtcdCluster::start() else {
        return;
    };
    let dir = tempdir();
    let r = relays(&etcd, dir.path());
    let out = dir.path().join("out");
    let mut l = named_listener(
        &r[0],
        "live",
        &dir.path().join("l"),
        &["--recv-only"],
        Stdio::null(),
        stdout_to(&out),
    );
    let mut c = connect(&r[2].dest("live"), &[], Stdio::piped(), Stdio::null());
    let mut stdin = c.take_stdin();
    let first = seeded_bytes(11, 1_000_000);
    stdin.write_all(&first).unwrap();
    assert!(
        wait_file_len(&out, first.len() as u64, SHORT),
        "first part did not arrive"
    );
    etcd.kill(0);
    etcd.kill(1);
    let mut late = spawn_named(
        &r[1],
        "late",
        &dir.path().join("late"),
        &[],
        Stdio::null(),
        Stdio::null(),
    );
    let e = late.expect_code(1, SHORT);
    assert!(e.stderr.contains("registry unavailable"), "{}", e.stderr);
    let second = seeded_bytes(12, 1_000_000);
    stdin.write_all(&second).unwrap();
    drop(stdin);
    c.expect_code(0, SHORT);
    l.expect_code(0, SHORT);
    let mut want = first;
    want.extend_from_slice(&second);
    assert_bytes_eq(&read(&out), &want, "listener output across the etcd outage");
}

/// A FORWARD whose MAC was not made with the cluster key is refused (the listener is asked
/// nothing), and one from a relay in no cluster is a protocol error.
#[test]
fn forged_forwards_are_refused() {
    let Some(etcd) = EtcdCluster::start() else {
        return;
    };
    let dir = tempdir();
    let r = relays(&etcd, dir.path());
    let _l = named_listener(
        &r[0],
        "prey",
        &dir.path().join("p"),
        &[],
        Stdio::null(),
        Stdio::null(),
    );
    let mut body = vec![4u8];
    body.extend_from_slice(b"prey");
    body.extend_from_slice(&7u64.to_be_bytes());
    body.extend_from_slice(&[1; 16]);
    body.extend_from_slice(&[4, 127, 0, 0, 1, 0x1f, 0x40]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    body.extend_from_slice(&now.as_secs().to_be_bytes());
    body.extend_from_slice(&[9; 32]);
    let mut msg = PREAMBLE.to_vec();
    msg.extend_from_slice(&(body.len() as u32 + 1).to_be_bytes());
    msg.push(0x2d);
    msg.extend_from_slice(&body);
    let mut s = tcp_connect(r[0].addr, SHORT);
    s.write_all(&msg).unwrap();
    let (got, _) = read_to_end_bounded(&mut s);
    assert_eq!(&got[..6], PREAMBLE);
    assert_eq!(got[10], FRAME_ERROR, "{got:?}");
    assert!(
        String::from_utf8_lossy(&got).contains("not authenticated"),
        "{got:?}"
    );
    assert_eq!(r[0].count("forwarded_dial"), 0);
}

/// `--etcd` without a usable cluster key is a usage error (exit 2) that says what to do.
#[test]
fn a_missing_or_short_cluster_key_is_a_usage_error() {
    let dir = tempdir();
    let short = dir.path().join("short.key");
    std::fs::write(&short, "too short\n").unwrap();
    let missing = dir.path().join("missing.key");
    for (key, says) in [
        (&short, "at least 32 characters"),
        (&missing, "cannot read it"),
    ] {
        let e = run(
            &[
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--etcd",
                "http://127.0.0.1:9",
                "--cluster-key-file",
                key.to_str().unwrap(),
            ],
            SHORT,
        );
        assert_eq!(e.code, Some(2), "{}", e.stderr);
        assert!(e.stderr.contains(says), "{}", e.stderr);
    }
    let e = run(
        &[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--etcd",
            "http://127.0.0.1:9",
        ],
        SHORT,
    );
    assert_eq!(e.code, Some(2), "{}", e.stderr);
    assert!(e.stderr.contains("--cluster-key-file"), "{}", e.stderr);
}

/// A relay started with the id of a live relay of the cluster refuses to start (exit 2),
/// naming the relay that holds it: two relays of one id would each take the other's
/// listeners for their own.
#[test]
fn a_relay_id_held_by_another_relay_is_refused() {
    let Some(etcd) = EtcdCluster::start() else {
        return;
    };
    let dir = tempdir();
    let r = relays(&etcd, dir.path());
    let key = dir.path().join("cluster.key");
    let e = run(
        &[
            "proxy",
            "--listen",
            "127.0.0.1:0",
            "--etcd",
            &etcd.urls(),
            "--cluster-key-file",
            key.to_str().unwrap(),
            "--relay-id",
            "a",
        ],
        SHORT,
    );
    assert_eq!(e.code, Some(2), "{}", e.stderr);
    assert!(
        e.stderr.contains("--relay-id a") && e.stderr.contains(&r[0].addr.to_string()),
        "{}",
        e.stderr
    );
}

/// `msock listen --relay R1 --relay R2 ... --relay-cluster --name NAME EXTRA...`, secrets
/// under `state`.
fn listen_at(relays: &[&Relay], name: &str, state: &Path, extra: &[&str], out: Stdio) -> Proc {
    let addrs: Vec<String> = relays.iter().map(|r| r.addr.to_string()).collect();
    let mut args = vec!["listen", "--relay-cluster", "--name", name];
    for a in &addrs {
        args.extend(["--relay", a.as_str()]);
    }
    args.extend_from_slice(extra);
    let mut cmd = msock(&args);
    cmd.env("MSOCK_STATE_DIR", state)
        .stdin(Stdio::null())
        .stdout(out);
    Proc::spawn("msock listen --relay --relay", cmd)
}

/// Which of `relays` the listener registered its name at (from its "registered" line),
/// once it also said it stands by at the other.
fn registered_at(l: &mut Proc, relays: &[&Relay]) -> usize {
    let line = l
        .stderr
        .wait_line(SHORT, |x| x.starts_with("msock: registered"));
    let standby = l.stderr.wait_contains(SHORT, "standing by there");
    let (Some(line), true) = (line, standby) else {
        l.kill();
        panic!(
            "the listener did not register at one relay of the cluster and stand by at the \
             other:\n{}",
            l.stderr.text()
        );
    };
    (relays.iter())
        .position(|r| line.contains(&format!("at relay {};", r.addr)))
        .unwrap_or_else(|| panic!("registered where? {line}"))
}

/// Sends `sig` (STOP, CONT) to the relay.
fn signal(r: &Relay, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &r.proc.id().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success());
}

/// A listener given two relays of one cluster (`--relay A --relay B --relay-cluster`) is not refused "name
/// taken" at the second: the relays say they are of one cluster, the listener keeps one
/// secret for the cluster, registers at one relay and stands by at the other; a client at
/// relay C reaches it.
#[test]
fn a_listener_given_two_relays_of_one_cluster_registers_once() {
    let Some(etcd) = EtcdCluster::start() else {
        return;
    };
    let dir = tempdir();
    let r = relays(&etcd, dir.path());
    let state = dir.path().join("state");
    let out = dir.path().join("out");
    let mut l = listen_at(
        &[&r[0], &r[1]],
        "pair",
        &state,
        &["--recv-only"],
        stdout_to(&out),
    );
    registered_at(&mut l, &[&r[0], &r[1]]);
    let (input, hash) = write_random_file(dir.path(), "in", 21, 2_000_000);
    let mut c = connect(&r[2].dest("pair"), &[], stdin_from(&input), Stdio::null());
    c.expect_code(0, SHORT);
    let le = l.expect_code(0, SHORT);
    assert_file_hash(&out, &hash, 2_000_000, "listener's output");
    assert!(!le.stderr.contains("taken"), "{}", le.stderr);
    // One secret, the cluster's; none per relay.
    let clusters: Vec<_> = std::fs::read_dir(state.join("relay-clusters"))
        .expect("a cluster secret directory")
        .flatten()
        .collect();
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    assert!(clusters[0].path().join("pair.secret").exists());
    assert!(!state.join("relay-names").exists());
}

/// Relay killed mid-transfer in a cluster: the listener is registered at relay H (of `--relay
/// B --relay A`, standing by at the other, O), a 50 MB stream goes through H (O is paused
/// while the client plans, so that the client picks H); H is killed (SIGKILL) after 10 MB.
/// The listener registers at O with the cluster's secret at once, the session resumes
/// through O, and the bytes arrive identical.
#[test]
fn cluster_relay_killed_mid_transfer_the_session_resumes_through_a_sibling() {
    let Some(etcd) = EtcdCluster::start() else {
        return;
    };
    const LEN: usize = 50 * 1000 * 1000;
    let dir = tempdir();
    let mut r = relays(&etcd, dir.path());
    let out = dir.path().join("out");
    let mut l = listen_at(
        &[&r[1], &r[0]],
        "moving",
        &dir.path().join("state"),
        &["--recv-only"],
        stdout_to(&out),
    );
    let h = [1, 0][registered_at(&mut l, &[&r[1], &r[0]])];
    let o = 1 - h;
    let dest = format!("moving@{},{}", r[h].addr, r[o].addr);
    let (input, hash) = write_random_file(dir.path(), "in", 22, LEN);
    signal(&r[o], "STOP");
    let mut c = connect(&dest, &["--json-events"], stdin_from(&input), Stdio::null());
    let t0 = std::time::Instant::now();
    while r[h].count("splice") == 0 {
        assert!(t0.elapsed() < SHORT, "no splice at the listener's relay");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&r[o], "CONT");
    let t0 = std::time::Instant::now();
    while file_len(&out) < 10_000_000 {
        assert!(t0.elapsed() < BULK, "stuck at {} bytes", file_len(&out));
        std::thread::sleep(Duration::from_millis(10));
    }
    let before = r[o].count("splice");
    r[h].proc.kill();
    let killed = std::time::Instant::now();
    assert!(
        file_len(&out) < LEN as u64,
        "the stream ended before the kill"
    );
    while r[o].count("splice") <= before {
        assert!(
            killed.elapsed() < SHORT,
            "no new splice at the sibling relay; listener:\n{}\nsibling: {:?}",
            l.stderr.text(),
            r[o].events()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let spliced = killed.elapsed().as_secs_f64() * 1e3;
    c.expect_code(0, BULK);
    let le = l.expect_code(0, SHORT);
    assert_file_hash(&out, &hash, LEN, "listener's output");
    assert!(
        r[o].count("registered") >= 1,
        "the listener did not move to the sibling: {}",
        le.stderr
    );
    eprintln!("RESUME cluster stream: spliced through the sibling {spliced:.0} ms after the kill");
}

/// A frozen relay (SIGSTOP: its kernel still accepts connections, nothing answers, as from a
/// host that died mid-way) holds a name whose listener moves to the sibling it stands by at
/// (relays with `--keepalive 1s`: the listener drops the silent channel after 3 s). A client
/// that starts at the third relay while the name still points at the frozen one is spliced
/// through the sibling within seconds: the third relay's FORWARD to the frozen one hangs, and
/// the ROUTE follows the name meanwhile instead of waiting out the 10 s handshake timeout.
#[test]
fn a_route_follows_a_name_away_from_a_frozen_relay() {
    let Some(etcd) = EtcdCluster::start() else {
        return;
    };
    let dir = tempdir();
    let r = relays_with(&etcd, dir.path(), &["--keepalive", "1s"]);
    let out = dir.path().join("out");
    let mut l = listen_at(
        &[&r[0], &r[1]],
        "frozen",
        &dir.path().join("state"),
        &["--recv-only", "-k"],
        stdout_to(&out),
    );
    let h = registered_at(&mut l, &[&r[0], &r[1]]);
    let o = 1 - h;
    signal(&r[h], "STOP");
    // The listener drops the silent channel 3 s after the last answer it had (2 to 3 s after
    // the freeze) and re-registers at the sibling: start the client before that, so that its
    // ROUTE finds the name still at the frozen relay and follows it within its 2 s.
    std::thread::sleep(Duration::from_millis(1500));
    let before = r[o].count("registered");
    assert_eq!(
        before, 0,
        "the listener moved to the sibling too early for this test"
    );
    let input = dir.path().join("in");
    std::fs::write(&input, "after the freeze\n").unwrap();
    let t0 = std::time::Instant::now();
    let mut c = connect(&r[2].dest("frozen"), &[], stdin_from(&input), Stdio::null());
    let ce = c.expect_code(0, SHORT);
    let took = t0.elapsed();
    signal(&r[h], "CONT");
    assert!(
        took < Duration::from_secs(7),
        "the session took {took:?} (the FORWARD to the frozen relay was waited out); \
         client:\n{}\nrelay c: {:?}",
        ce.stderr,
        r[2].events()
    );
    assert!(r[o].count("registered") >= 1, "{}", l.stderr.text());
    l.kill();
}
