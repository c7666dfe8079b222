//! End-to-end tests of the relay on loopback: `msock proxy`, `msock listen --relay --name`
//! and clients dialing `NAME@RELAY`: bulk transfer both ways through the relay, send-file,
//! direct-first, names held by their secret, expiry, operator keys, garbage and silent
//! clients, and a relay restart under a live session.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::relay::{named_listener, spawn_named, Relay};
use common::*;
use serde_json::Value;

/// Deadline for bulk transfers (debug build, 2 cores, other tests in parallel).
const BULK: Duration = Duration::from_secs(90);
/// Deadline for short exchanges.
const SHORT: Duration = Duration::from_secs(20);

/// 100 MB each way at once through the relay (the listener has no port of its own, so the
/// relay is the only way); both sides get exactly the other's bytes and exit 0, and the relay
/// reports one splice.
#[test]
fn bulk_100mb_each_direction_through_the_relay() {
    const LEN: usize = 100 * 1000 * 1000;
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let (l_in, l_hash) = write_random_file(dir.path(), "l.in", 1, LEN);
    let (c_in, c_hash) = write_random_file(dir.path(), "c.in", 2, LEN);
    let (l_out, c_out) = (dir.path().join("l.out"), dir.path().join("c.out"));
    let mut l = named_listener(
        &relay,
        "bulk",
        &dir.path().join("state"),
        &[],
        stdin_from(&l_in),
        stdout_to(&l_out),
    );
    let mut c = connect(
        &relay.dest("bulk"),
        &["-v"],
        stdin_from(&c_in),
        stdout_to(&c_out),
    );
    let ce = c.expect_code(0, BULK);
    l.expect_code(0, SHORT);
    assert_file_hash(&c_out, &l_hash, LEN, "connector's output");
    assert_file_hash(&l_out, &c_hash, LEN, "listener's output");
    assert!(
        ce.stderr.contains("through the relay"),
        "the session should have gone through the relay: {}",
        ce.stderr
    );
    let splices: Vec<Value> = relay
        .events()
        .into_iter()
        .filter(|e| e["event"] == "splice_end")
        .collect();
    assert_eq!(splices.len(), 1, "{splices:?}");
    assert!(splices[0]["up"].as_u64().unwrap() > LEN as u64);
    assert!(splices[0]["down"].as_u64().unwrap() > LEN as u64);
}

/// A listener that also listens directly, where the relay sees it: the client looks the name
/// up and connects directly; the relay splices nothing.
#[test]
fn reachable_listener_is_dialed_directly() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let data = seeded_bytes(3, 1_000_000);
    let input = temp_file_with(&data);
    let out = dir.path().join("out");
    let mut l = named_listener(
        &relay,
        "direct",
        &dir.path().join("state"),
        &["127.0.0.1:0", "--recv-only"],
        Stdio::null(),
        stdout_to(&out),
    );
    let mut c = connect(
        &relay.dest("direct"),
        &["-v"],
        stdin_from(input.path()),
        Stdio::null(),
    );
    let ce = c.expect_code(0, SHORT);
    l.expect_code(0, SHORT);
    assert_bytes_eq(&read(&out), &data, "listener output");
    assert!(
        !ce.stderr.contains("through the relay"),
        "should have connected directly: {}",
        ce.stderr
    );
    assert_eq!(relay.count("splice"), 0, "{:?}", relay.events());
}

/// send-file to a named listener through the relay: the file arrives verified, and the
/// listener names the sender by its key, via the relay (it used to name only the relay, as if
/// it were the sender).
#[test]
fn send_file_through_the_relay() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let save = dir.path().join("save");
    let (file, hash) = write_random_file(dir.path(), "photo.bin", 4, 5_000_000);
    let save_s = save.to_str().unwrap();
    let l = named_listener(
        &relay,
        "files",
        &dir.path().join("state"),
        &["--save-dir", save_s, "-k"],
        Stdio::null(),
        Stdio::null(),
    );
    let mut s = Proc::spawn("msock send-file", {
        let mut c = msock(&[
            "send-file",
            "-q",
            file.to_str().unwrap(),
            &relay.dest("files"),
        ]);
        c.stdin(Stdio::null()).stdout(Stdio::null());
        c
    });
    s.expect_code(0, BULK);
    assert_file_hash(&save.join("photo.bin"), &hash, 5_000_000, "saved file");
    assert_eq!(relay.count("splice"), 1, "{:?}", relay.events());
    let key = msock(&["connect", "--show-key"]).output().unwrap();
    let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();
    let summary = format!("from {key} via relay {} into", relay.addr);
    assert!(
        l.stderr.wait_contains(SHORT, &summary),
        "the listener's summary should say {summary:?}:\n{}",
        l.stderr.text()
    );
}

/// `msock bench` through the relay, both directions: the receiver's figures arrive and add up.
#[test]
fn bench_through_the_relay() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let _l = named_listener(
        &relay,
        "meter",
        &dir.path().join("state"),
        &["-k"],
        Stdio::null(),
        Stdio::null(),
    );
    for extra in [&[][..], &["-R"][..]] {
        let mut args = vec!["bench", "-t", "1s", "-i", "0", "--json"];
        args.extend_from_slice(extra);
        let dest = relay.dest("meter");
        args.push(&dest);
        let out = msock(&args).stdin(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let got = doc["end"]["sum_received"]["bytes"].as_u64().unwrap();
        assert!(
            got > 1_000_000,
            "{extra:?}: only {got} bytes through the relay: {doc}"
        );
    }
    assert!(relay.count("splice") >= 2, "{:?}", relay.events());
}

/// A second listener asking for a name that is held (without its secret) is refused and exits
/// 1 saying so; the owner, restarted with its secret, gets the name back.
#[test]
fn name_theft_is_refused_and_the_owner_gets_its_name_back() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let owner_state = dir.path().join("owner");
    let mut owner = named_listener(
        &relay,
        "mine",
        &owner_state,
        &["-k"],
        Stdio::null(),
        Stdio::null(),
    );
    let mut thief = spawn_named(
        &relay,
        "mine",
        &dir.path().join("thief"),
        &["-k"],
        Stdio::null(),
        Stdio::null(),
    );
    let e = thief.expect_code(1, SHORT);
    assert!(
        e.stderr.contains("held by another listener"),
        "stderr: {}",
        e.stderr
    );
    // A forged secret file does not help either.
    let forged = dir.path().join("forger");
    let sec = owner_state.join("relay-names");
    let relay_dir = std::fs::read_dir(&sec).unwrap().next().unwrap().unwrap();
    let fdir = forged.join("relay-names").join(relay_dir.file_name());
    std::fs::create_dir_all(&fdir).unwrap();
    std::fs::write(fdir.join("mine.secret"), "ab".repeat(32)).unwrap();
    let mut forger = spawn_named(&relay, "mine", &forged, &[], Stdio::null(), Stdio::null());
    forger.expect_code(1, SHORT);
    // The owner restarts (or moves): its secret gets the name back.
    owner.kill();
    let _owner = named_listener(
        &relay,
        "mine",
        &owner_state,
        &["-k"],
        Stdio::null(),
        Stdio::null(),
    );
    assert!(relay.count("registered") >= 2);
}

/// A name whose listener is gone longer than --name-ttl is forgotten: clients are told there
/// is no such listener, and anyone may register the name.
#[test]
fn expired_names_are_forgotten() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &["--name-ttl", "1s"]);
    let mut first = named_listener(
        &relay,
        "brief",
        &dir.path().join("a"),
        &["-k"],
        Stdio::null(),
        Stdio::null(),
    );
    first.kill();
    let deadline = Instant::now() + SHORT;
    while relay.count("expired") == 0 {
        assert!(
            Instant::now() < deadline,
            "never expired: {:?}",
            relay.events()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let e = run(&["connect", "-w", "3s", &relay.dest("brief")], SHORT);
    assert_eq!(e.code, Some(1), "stderr: {}", e.stderr);
    assert!(
        e.stderr.contains("no listener named 'brief'"),
        "{}",
        e.stderr
    );
    // Someone else (no secret) may take it now.
    let _second = named_listener(
        &relay,
        "brief",
        &dir.path().join("b"),
        &["-k"],
        Stdio::null(),
        Stdio::null(),
    );
}

/// With --auth-keys, registering needs a key from the file.
#[test]
fn auth_keys_are_required_when_configured() {
    let dir = tempdir();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "# operators\n0123456789abcdef0123456789abcdef\n").unwrap();
    let relay = Relay::start(
        dir.path(),
        "127.0.0.1:0",
        &["--auth-keys", keys.to_str().unwrap()],
    );
    let mut nokey = spawn_named(
        &relay,
        "k",
        &dir.path().join("s1"),
        &[],
        Stdio::null(),
        Stdio::null(),
    );
    let e = nokey.expect_code(1, SHORT);
    assert!(e.stderr.contains("registration key"), "{}", e.stderr);
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-key-but-long-enough\n").unwrap();
    let mut bad = spawn_named(
        &relay,
        "k",
        &dir.path().join("s2"),
        &["--relay-key-file", wrong.to_str().unwrap()],
        Stdio::null(),
        Stdio::null(),
    );
    bad.expect_code(1, SHORT);
    let _good = named_listener(
        &relay,
        "k",
        &dir.path().join("s3"),
        &["--relay-key-file", keys.to_str().unwrap(), "-k"],
        Stdio::null(),
        Stdio::null(),
    );
}

/// Clients of unknown names, and plain msock clients that forget the name, get clear errors.
#[test]
fn unknown_names_and_unrouted_clients_are_refused() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let e = run(&["connect", &relay.dest("nobody")], SHORT);
    assert_eq!(e.code, Some(1), "{}", e.stderr);
    assert!(
        e.stderr.contains("no listener named 'nobody'"),
        "{}",
        e.stderr
    );
    let e = run(&["connect", &relay.addr.to_string()], SHORT);
    assert_eq!(e.code, Some(1), "{}", e.stderr);
    assert!(e.stderr.contains("NAME@HOST:PORT"), "{}", e.stderr);
    let e = run(&["connect", "bad name@127.0.0.1:1"], SHORT);
    assert_eq!(e.code, Some(2), "{}", e.stderr);
}

/// During a live session through the relay: garbage on the relay's port is answered with an
/// ERROR and closed, a client that sends nothing and one that stops mid-frame are dropped after
/// the handshake timeout, and the session carries on unharmed.
#[test]
fn garbage_and_slow_clients_do_not_disturb_live_sessions() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &["--handshake-timeout", "1s"]);
    let out = dir.path().join("out");
    let mut l = named_listener(
        &relay,
        "live",
        &dir.path().join("state"),
        &["--recv-only"],
        Stdio::null(),
        stdout_to(&out),
    );
    let mut c = connect(&relay.dest("live"), &[], Stdio::piped(), Stdio::null());
    let mut stdin = c.take_stdin();
    let first = seeded_bytes(5, 2_000_000);
    stdin.write_all(&first).unwrap();
    assert!(wait_file_len(&out, first.len() as u64, SHORT), "first part");

    // Garbage: an HTTP request.
    let mut g = tcp_connect(relay.addr, SHORT);
    g.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (reply, r) = read_to_end_bounded(&mut g);
    r.expect("the relay should answer garbage and close");
    assert_eq!(&reply[..6], PREAMBLE, "reply {reply:?}");
    assert_eq!(reply[10], FRAME_ERROR, "reply {reply:?}");
    // An oversized frame length after a valid preamble.
    let mut g = tcp_connect(relay.addr, SHORT);
    g.write_all(b"MSOCK\x01\xff\xff\xff\xff\x26").unwrap();
    let (reply, r) = read_to_end_bounded(&mut g);
    r.expect("closed");
    assert_eq!(reply[10], FRAME_ERROR);
    // Silent and slow clients: dropped after the handshake timeout, without an answer.
    let started = Instant::now();
    let mut silent = tcp_connect(relay.addr, SHORT);
    let mut slow = tcp_connect(relay.addr, SHORT);
    slow.write_all(b"MSOCK\x01\x00\x00").unwrap();
    for s in [&mut silent, &mut slow] {
        let mut b = [0u8; 16];
        let n = s.read(&mut b).expect("the relay should close, not hang");
        assert_eq!(n, 0);
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(8),
        "{took:?}"
    );

    let second = seeded_bytes(6, 2_000_000);
    stdin.write_all(&second).unwrap();
    drop(stdin);
    c.expect_code(0, SHORT);
    l.expect_code(0, SHORT);
    assert_bytes_eq(&read(&out), &[first, second].concat(), "listener output");
    assert!(relay.count("dropped") >= 2, "{:?}", relay.events());
    relay_summary_on_sigint(relay);
}

/// SIGINT: the relay prints a JSON summary and exits 130.
fn relay_summary_on_sigint(mut relay: Relay) {
    assert!(catches_sigint(&relay.proc, SHORT));
    sigint(&relay.proc);
    relay.proc.expect_code(130, SHORT);
    let summary = relay
        .events()
        .into_iter()
        .find(|e| e["event"] == "summary")
        .expect("a summary line");
    assert!(
        summary["flowpaths_spliced"].as_u64().unwrap() >= 1,
        "{summary}"
    );
    assert!(
        summary["refused"]["garbage"].as_u64().unwrap() >= 2,
        "{summary}"
    );
}

/// The relay restarts (same port, same state file) under a live session: the listener
/// re-registers with its secret, the client reconnects through the relay, and the session
/// resumes byte-identical.
#[test]
fn relay_restart_resumes_sessions() {
    let dir = tempdir();
    let state = dir.path().join("relay-state.json");
    let state_s = state.to_str().unwrap().to_owned();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &["--state", &state_s]);
    let addr = relay.addr.to_string();
    let out = dir.path().join("out");
    let mut l = named_listener(
        &relay,
        "steady",
        &dir.path().join("state"),
        &["--recv-only"],
        Stdio::null(),
        stdout_to(&out),
    );
    let mut c = connect(
        &relay.dest("steady"),
        &["-v"],
        Stdio::piped(),
        Stdio::null(),
    );
    let mut stdin = c.take_stdin();
    let first = seeded_bytes(7, 1_000_000);
    stdin.write_all(&first).unwrap();
    assert!(wait_file_len(&out, first.len() as u64, SHORT), "first part");

    let secret_file = |state: &Path| {
        let d = state.join("relay-names");
        let sub = std::fs::read_dir(&d)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::read(sub.join("steady.secret")).unwrap()
    };
    let secret = secret_file(&dir.path().join("state"));
    let mut relay = relay;
    relay.proc.kill();
    let relay2 = Relay::start(dir.path(), &addr, &["--state", &state_s]);
    let second = seeded_bytes(8, 1_000_000);
    stdin.write_all(&second).unwrap();
    drop(stdin);
    let ce = c.expect_code(0, BULK);
    l.expect_code(0, SHORT);
    assert_bytes_eq(&read(&out), &[first, second].concat(), "listener output");
    assert!(ce.stderr.contains("resumed"), "{}", ce.stderr);
    // The listener proved its secret to the restarted relay: no new secret was issued.
    assert!(relay2.count("registered") >= 1, "{:?}", relay2.events());
    assert_eq!(secret_file(&dir.path().join("state")), secret);
}

/// The relay restarts without --state and, before the listener is back, someone else
/// registers its name: the listener exits 1 saying "registration lost: name taken" (it used
/// to exit 2 "the listening sockets closed", as if the fault were local).
#[test]
fn listener_whose_name_was_taken_after_a_relay_restart_exits_1() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let addr = relay.addr;
    let mut l = named_listener(
        &relay,
        "taken",
        &dir.path().join("state"),
        &["-k"],
        Stdio::null(),
        Stdio::null(),
    );
    let mut relay = relay;
    relay.proc.kill();
    // The listener's retries back off (up to 5 s); the usurper registers first.
    std::thread::sleep(Duration::from_secs(4));
    let _relay2 = Relay::start(dir.path(), &addr.to_string(), &[]);
    let mut usurper = tcp_connect(addr, SHORT);
    let mut hello = PREAMBLE.to_vec();
    hello.extend_from_slice(&[0, 0, 0, 8, 0x20, 5]);
    hello.extend_from_slice(b"taken");
    hello.push(0);
    usurper.write_all(&hello).unwrap();
    let mut nonce = [0u8; 6 + 5 + 16];
    usurper.read_exact(&mut nonce).unwrap();
    assert_eq!(nonce[10], 0x21, "{nonce:?}");
    let mut prove = vec![0, 0, 0, 65, 0x22];
    prove.extend_from_slice(&[0; 64]);
    usurper.write_all(&prove).unwrap();
    let mut registered = [0u8; 5 + 40];
    usurper.read_exact(&mut registered).unwrap();
    assert_eq!(registered[4], 0x23, "{registered:?}");
    let e = l.wait(SHORT);
    assert_eq!(e.code, Some(1), "stderr: {}", e.stderr);
    assert!(
        e.stderr.contains("registration lost: name taken"),
        "stderr: {}",
        e.stderr
    );
}

/// The relay goes away and comes back on the same port: the listener says on stderr that it
/// lost the relay and that it registered its name again (it used to say nothing).
#[test]
fn listener_says_when_its_relay_is_lost_and_when_it_is_back() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let addr = relay.addr.to_string();
    let mut l = named_listener(
        &relay,
        "noisy",
        &dir.path().join("state"),
        &["-k"],
        Stdio::null(),
        Stdio::null(),
    );
    let mut relay = relay;
    relay.proc.kill();
    let lost = format!("msock: relay {addr} lost: ");
    assert!(
        l.stderr.wait_contains(SHORT, &lost),
        "no loss reported; stderr:\n{}",
        l.stderr.text()
    );
    let _relay2 = Relay::start(dir.path(), &addr, &[]);
    let back = format!("msock: re-registered noisy at {addr}");
    assert!(
        l.stderr.wait_contains(SHORT, &back),
        "no re-registration reported; stderr:\n{}",
        l.stderr.text()
    );
    let text = l.stderr.text();
    let lost_line = text.lines().find(|x| x.contains(&lost)).unwrap();
    assert!(lost_line.ends_with("; retrying"), "{lost_line}");
    assert_eq!(
        text.matches(&lost).count(),
        1,
        "one line per outage: {text}"
    );
    l.kill();
}

/// Names of digits only are codes' numbers (`listen --code`): an ordinary registration of one
/// is refused, so that nobody can squat a code's number for a name's whole TTL.
#[test]
fn names_of_digits_only_are_refused() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let mut l = spawn_named(
        &relay,
        "123",
        &dir.path().join("state"),
        &[],
        Stdio::null(),
        Stdio::null(),
    );
    let e = l.wait(SHORT);
    assert_ne!(e.code, Some(0), "{}", e.stderr);
    assert!(e.stderr.contains("code's number"), "{}", e.stderr);
}
