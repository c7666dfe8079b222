//! Failover across relays on loopback, without a cluster: two standalone `msock proxy`
//! processes, a listener registered at both (`--relay A --relay B`), clients that list both
//! (`NAME@A,B`, or a host name that resolves to both when this machine has one). The relay
//! carrying a session is killed (SIGKILL) during a 100 MB stream and during a send-file: the
//! session resumes through the other relay, byte-identical; the time to resume is printed on
//! stderr. A listener whose second relay is unreachable at the start serves through the
//! first, registers at the second once it comes up, and says where it is registered as
//! relays come and go (and when it is at none).

mod common;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::relay::Relay;
use common::*;
use serde_json::Value;

/// Deadline for bulk transfers (debug build, 2 cores, other tests in parallel).
const BULK: Duration = Duration::from_secs(180);
/// Deadline for short exchanges.
const SHORT: Duration = Duration::from_secs(30);

/// `msock listen --relay A --relay B ... --name NAME EXTRA...`, secrets under `state`.
fn spawn_listener(
    relays: &[String],
    name: &str,
    state: &Path,
    extra: &[&str],
    stdout: Stdio,
) -> Proc {
    let mut args = vec!["listen", "--name", name];
    for r in relays {
        args.extend(["--relay", r.as_str()]);
    }
    args.extend_from_slice(extra);
    let mut cmd = msock(&args);
    cmd.env("MSOCK_STATE_DIR", state)
        .stdin(Stdio::null())
        .stdout(stdout);
    Proc::spawn("msock listen --relay --relay", cmd)
}

/// Waits until the listener's stderr has `n` lines starting with `msock: registered`.
fn wait_registered(l: &mut Proc, n: usize) {
    let t0 = Instant::now();
    while t0.elapsed() < SHORT {
        let got = (l.stderr.text().lines())
            .filter(|x| x.starts_with("msock: registered"))
            .count();
        if got >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    l.kill();
    panic!("listener did not register {n} times:\n{}", l.stderr.text());
}

/// Two relays and the destination that lists both: on a machine where `localhost` resolves
/// to 127.0.0.1 and ::1, one relay on each at the same port and `NAME@localhost:PORT` (a host
/// that lists both); else `NAME@A,B`.
fn two_relays(dir: &Path, name: &str) -> (Relay, Relay, String) {
    let a = Relay::start(dir, "127.0.0.1:0", &[]);
    let port = a.addr.port();
    let both = format!("localhost:{port}")
        .to_socket_addrs()
        .map(|i| i.collect::<Vec<SocketAddr>>())
        .unwrap_or_default();
    let v6 = SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port));
    if both.contains(&a.addr) && both.contains(&v6) {
        let b = Relay::start(dir, &v6.to_string(), &[]);
        return (a, b, format!("{name}@localhost:{port}"));
    }
    eprintln!(
        "note: localhost does not resolve to both 127.0.0.1 and ::1 here; the client lists \
         both relays instead (NAME@A,B)"
    );
    let b = Relay::start(dir, "127.0.0.1:0", &[]);
    let dest = format!("{name}@{},{}", a.addr, b.addr);
    (a, b, dest)
}

/// Which of the two relays spliced a flowpath first (waits for one).
fn carrier(a: &Relay, b: &Relay) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < SHORT {
        if a.count("splice") > 0 {
            return true;
        }
        if b.count("splice") > 0 {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no relay spliced the session");
}

/// The stalls the client's --json-events report (`session_resumed`, `path_moved`), in ms.
fn stalls(stderr: &str) -> Vec<f64> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "session_resumed" || e["event"] == "path_moved")
        .filter_map(|e| e["stall_ms"].as_f64())
        .collect()
}

/// Bytes in the files under `dir` (recursively).
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

/// Waits until `f()` reaches `at_least` bytes.
fn wait_bytes(f: impl Fn() -> u64, at_least: u64, what: &str) {
    let t0 = Instant::now();
    while f() < at_least {
        assert!(t0.elapsed() < BULK, "{what}: stuck at {} bytes", f());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills the relay that carries the session (SIGKILL) and returns the survivor, when the
/// kill happened, and the survivor's splices before it.
fn kill_carrier(a: Relay, b: Relay) -> (Relay, Instant, usize) {
    let (mut dead, alive) = if carrier(&a, &b) { (a, b) } else { (b, a) };
    let before = alive.count("splice");
    dead.proc.kill();
    (alive, Instant::now(), before)
}

/// How long after `killed` the surviving relay spliced a new flowpath (the session's
/// replacement), in ms.
fn respliced(alive: &Relay, before: usize, killed: Instant) -> f64 {
    while alive.count("splice") <= before {
        assert!(
            killed.elapsed() < SHORT,
            "no new splice at the surviving relay: the session should have resumed through \
             it; its events: {:?}",
            alive.events()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    killed.elapsed().as_secs_f64() * 1e3
}

/// 100 MB through relay A or B (whichever the client reached); that relay is killed after
/// 20 MB; the stream resumes through the other, byte-identical.
#[test]
fn stream_resumes_through_the_other_relay_when_one_is_killed() {
    const LEN: usize = 100 * 1000 * 1000;
    let dir = tempdir();
    let (a, b, dest) = two_relays(dir.path(), "fo");
    let relays = [a.addr.to_string(), b.addr.to_string()];
    let (input, hash) = write_random_file(dir.path(), "in", 11, LEN);
    let out = dir.path().join("out");
    let mut l = spawn_listener(
        &relays,
        "fo",
        &dir.path().join("state"),
        &["--recv-only"],
        stdout_to(&out),
    );
    wait_registered(&mut l, 2);
    let mut c = connect(&dest, &["--json-events"], stdin_from(&input), Stdio::null());
    wait_bytes(
        || file_len(&out),
        20_000_000,
        "listener output before the kill",
    );
    let (alive, killed, before) = kill_carrier(a, b);
    assert!(
        file_len(&out) < LEN as u64,
        "the stream ended before the kill"
    );
    let spliced = respliced(&alive, before, killed);
    let ce = c.expect_code(0, BULK);
    l.expect_code(0, SHORT);
    assert_file_hash(&out, &hash, LEN, "listener output");
    eprintln!(
        "RESUME stream: spliced through the other relay {spliced:.0} ms after the kill \
         (polled every 5 ms); client stalls {:?} ms",
        stalls(&ce.stderr)
    );
}

/// send-file of 60 MB to NAME@A,B; the relay carrying it is killed after 10 MB; the file
/// arrives whole and verified through the other relay.
#[test]
fn send_file_resumes_through_the_other_relay_when_one_is_killed() {
    const LEN: usize = 60 * 1000 * 1000;
    let dir = tempdir();
    let (a, b, dest) = two_relays(dir.path(), "fofile");
    let relays = [a.addr.to_string(), b.addr.to_string()];
    let save = dir.path().join("save");
    std::fs::create_dir_all(&save).unwrap();
    let (file, hash) = write_random_file(dir.path(), "big.bin", 12, LEN);
    let mut l = spawn_listener(
        &relays,
        "fofile",
        &dir.path().join("state"),
        &["-k", "--save-dir", save.to_str().unwrap()],
        Stdio::null(),
    );
    wait_registered(&mut l, 2);
    let mut s = Proc::spawn("msock send-file", {
        let mut c = msock(&[
            "send-file",
            "-q",
            "--json-events",
            file.to_str().unwrap(),
            &dest,
        ]);
        c.stdin(Stdio::null()).stdout(Stdio::null());
        c
    });
    wait_bytes(
        || dir_bytes(&save),
        10_000_000,
        "saved bytes before the kill",
    );
    let (alive, killed, before) = kill_carrier(a, b);
    assert!(
        dir_bytes(&save) < LEN as u64,
        "the file arrived before the kill"
    );
    let spliced = respliced(&alive, before, killed);
    let se = s.expect_code(0, BULK);
    assert_file_hash(&save.join("big.bin"), &hash, LEN, "saved file");
    eprintln!(
        "RESUME send-file: spliced through the other relay {spliced:.0} ms after the kill \
         (polled every 5 ms); sender stalls {:?} ms",
        stalls(&se.stderr)
    );
    l.kill();
}

/// The second relay is unreachable at the start: the listener still registers at the first
/// and serves through it; once the second comes up it registers there too; as relays die it
/// says where it is still registered, and when it is at none.
#[test]
fn unreachable_second_relay_does_not_stop_the_first() {
    let dir = tempdir();
    let a = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let b_addr = dead_port();
    let relays = [a.addr.to_string(), b_addr.to_string()];
    let out = dir.path().join("out");
    let mut l = spawn_listener(
        &relays,
        "half",
        &dir.path().join("state"),
        &["-k", "--recv-only", "--json-events"],
        stdout_to(&out),
    );
    wait_registered(&mut l, 1);
    let said = format!("msock: cannot register at relay {b_addr} yet");
    assert!(l.stderr.wait_contains(SHORT, &said), "{}", l.stderr.text());
    let data = seeded_bytes(13, 1_000_000);
    let input = temp_file_with(&data);
    let dest = format!("half@{},{b_addr}", a.addr);
    let mut c = connect(&dest, &[], stdin_from(input.path()), Stdio::null());
    c.expect_code(0, SHORT);
    assert!(wait_file_len(&out, data.len() as u64, SHORT));
    assert_bytes_eq(
        &read(&out),
        &data,
        "listener output through the first relay",
    );

    // The second relay comes up where it was expected: the listener registers there too.
    let b = Relay::start(dir.path(), &b_addr.to_string(), &[]);
    let both = format!(
        "registered half at {b_addr}; registered at {}, {b_addr} (0 of 2 down)",
        a.addr
    );
    assert!(l.stderr.wait_contains(SHORT, &both), "{}", l.stderr.text());
    let mut a = a;
    let a_addr = a.addr;
    a.proc.kill();
    let left = format!("msock: relay {a_addr} lost: ");
    let still = format!("; registered at {b_addr} (1 of 2 down)");
    assert!(
        l.stderr
            .wait_line(SHORT, |x| x.starts_with(&left) && x.ends_with(&still))
            .is_some(),
        "{}",
        l.stderr.text()
    );
    // --json-events carry the same, naming the relay.
    let json_lost = l.stderr.wait_line(SHORT, |x| {
        serde_json::from_str::<Value>(x).is_ok_and(|e| {
            e["event"] == "relay_lost"
                && e["relay"] == a_addr.to_string()
                && e["up"] == serde_json::json!([b_addr.to_string()])
                && e["of"] == 2
        })
    });
    assert!(json_lost.is_some(), "{}", l.stderr.text());
    // Served through the second alone now.
    let more = seeded_bytes(14, 500_000);
    let input = temp_file_with(&more);
    let mut c = connect(&dest, &[], stdin_from(input.path()), Stdio::null());
    c.expect_code(0, SHORT);
    let want = [data, more].concat();
    assert!(wait_file_len(&out, want.len() as u64, SHORT));
    assert_bytes_eq(
        &read(&out),
        &want,
        "listener output through the second relay",
    );
    assert!(b.count("splice") >= 1, "{:?}", b.events());
    let mut b = b;
    b.proc.kill();
    assert!(
        l.stderr
            .wait_contains(SHORT, "; registered at no relay now (all 2 down)"),
        "{}",
        l.stderr.text()
    );
    l.assert_running("the listener keeps retrying while every relay is down");
    l.kill();
}
