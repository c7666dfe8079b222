//! End-to-end tests of `msock listen` / `msock connect` moving bytes between two processes:
//! bulk transfer in both directions, half-close, --recv-only/--send-only, -k, busy listeners,
//! broken pipes and the idle timeout.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// Deadline for a bulk transfer to complete (debug build, 2 cores, other tests in parallel).
const BULK: Duration = Duration::from_secs(50);
/// Deadline for small sessions.
const SHORT: Duration = Duration::from_secs(15);

/// 50 MB of seeded random bytes each way, both directions at once; both sides get exactly the
/// other's bytes (SHA-256) and exit 0.
#[test]
fn bulk_50mb_each_direction_simultaneously() {
    const LEN: usize = 50 * 1000 * 1000;
    let dir = tempdir();
    let (l_in, l_in_hash) = write_random_file(dir.path(), "listen.in", 0x4c49_5354, LEN);
    let (c_in, c_in_hash) = write_random_file(dir.path(), "connect.in", 0x434f_4e4e, LEN);
    let l_out = dir.path().join("listen.out");
    let c_out = dir.path().join("connect.out");

    let mut l = Listener::start(&[], stdin_from(&l_in), stdout_to(&l_out));
    let mut c = connect(&l.dest(), &[], stdin_from(&c_in), stdout_to(&c_out));

    let ce = c.expect_code(0, BULK);
    let le = l.proc.expect_code(0, SHORT);

    let (got, n) = sha256_file(&c_out);
    assert_eq!(n, LEN as u64, "connector received {n} bytes, want {LEN}");
    assert_eq!(
        hex(&got),
        hex(&l_in_hash),
        "connector's stdout differs from listener's stdin"
    );
    let (got, n) = sha256_file(&l_out);
    assert_eq!(n, LEN as u64, "listener received {n} bytes, want {LEN}");
    assert_eq!(
        hex(&got),
        hex(&c_in_hash),
        "listener's stdout differs from connector's stdin"
    );
    // A clean session prints nothing but the port line.
    assert!(ce.stderr.trim().is_empty(), "connect stderr: {}", ce.stderr);
    assert_eq!(
        le.stderr
            .lines()
            .filter(|l| !l.starts_with("msock: listening on"))
            .count(),
        0,
        "listen stderr: {}",
        le.stderr
    );
}

/// Half-close, connector first: the connector sends its data and reaches EOF on stdin (FIN);
/// only after the listener has written all of it to stdout does the test give the listener its
/// reply. The connector must still be running then, must receive the reply, and both exit 0.
#[test]
fn half_close_connector_keeps_receiving_after_its_fin() {
    let dir = tempdir();
    let data = seeded_bytes(1, 300_000);
    let reply = seeded_bytes(2, 200_000);
    let c_in = temp_file_with(&data);
    let l_out = dir.path().join("listen.out");
    let c_out = dir.path().join("connect.out");

    let mut l = Listener::start(&[], Stdio::piped(), stdout_to(&l_out));
    let mut l_stdin = l.proc.take_stdin();
    let mut c = connect(&l.dest(), &[], stdin_from(c_in.path()), stdout_to(&c_out));

    assert!(
        wait_file_len(&l_out, data.len() as u64, SHORT),
        "listener wrote only {} of {} bytes; listen stderr:\n{}\nconnect stderr:\n{}",
        file_len(&l_out),
        data.len(),
        l.proc.stderr.text(),
        c.stderr.text()
    );
    // Give a wrongly eager connector a moment to exit, then check it did not.
    std::thread::sleep(Duration::from_millis(200));
    c.assert_running("its peer has not finished sending yet (half-close)");
    l.proc.assert_running("its stdin is still open");

    l_stdin.write_all(&reply).unwrap();
    drop(l_stdin);

    c.expect_code(0, SHORT);
    l.proc.expect_code(0, SHORT);
    assert_bytes_eq(&read(&l_out), &data, "listener stdout");
    assert_bytes_eq(&read(&c_out), &reply, "connector stdout");
}

/// Half-close, listener first: the mirror image.
#[test]
fn half_close_listener_keeps_receiving_after_its_fin() {
    let dir = tempdir();
    let data = seeded_bytes(3, 300_000);
    let reply = seeded_bytes(4, 200_000);
    let l_in = temp_file_with(&data);
    let l_out = dir.path().join("listen.out");
    let c_out = dir.path().join("connect.out");

    let mut l = Listener::start(&[], stdin_from(l_in.path()), stdout_to(&l_out));
    let mut c = connect(&l.dest(), &[], Stdio::piped(), stdout_to(&c_out));
    let mut c_stdin = c.take_stdin();

    assert!(
        wait_file_len(&c_out, data.len() as u64, SHORT),
        "connector wrote only {} of {} bytes; connect stderr:\n{}",
        file_len(&c_out),
        data.len(),
        c.stderr.text()
    );
    std::thread::sleep(Duration::from_millis(200));
    l.proc
        .assert_running("its peer has not finished sending yet (half-close)");

    c_stdin.write_all(&reply).unwrap();
    drop(c_stdin);

    c.expect_code(0, SHORT);
    l.proc.expect_code(0, SHORT);
    assert_bytes_eq(&read(&c_out), &data, "connector stdout");
    assert_bytes_eq(&read(&l_out), &reply, "listener stdout");
}

/// Empty input on both sides: the session opens, both FIN at once, both exit 0 with no output.
#[test]
fn empty_session_both_sides_exit_0() {
    let dir = tempdir();
    let l_out = dir.path().join("listen.out");
    let c_out = dir.path().join("connect.out");
    let mut l = Listener::start(&[], Stdio::null(), stdout_to(&l_out));
    let mut c = connect(&l.dest(), &[], Stdio::null(), stdout_to(&c_out));
    c.expect_code(0, SHORT);
    l.proc.expect_code(0, SHORT);
    assert_eq!(file_len(&l_out), 0);
    assert_eq!(file_len(&c_out), 0);
}

/// --recv-only: the listener never reads stdin (the test keeps that pipe open and never writes
/// to it), so the session still finishes once the connector's data is through.
#[test]
fn recv_only_listener_does_not_wait_for_stdin() {
    let dir = tempdir();
    let data = seeded_bytes(5, 100_000);
    let c_in = temp_file_with(&data);
    let l_out = dir.path().join("listen.out");
    let c_out = dir.path().join("connect.out");

    let mut l = Listener::start(&["--recv-only"], Stdio::piped(), stdout_to(&l_out));
    let _held_open = l.proc.take_stdin();
    let mut c = connect(&l.dest(), &[], stdin_from(c_in.path()), stdout_to(&c_out));
    c.expect_code(0, SHORT);
    l.proc.expect_code(0, SHORT);
    assert_bytes_eq(&read(&l_out), &data, "listener stdout");
    assert_eq!(
        file_len(&c_out),
        0,
        "the --recv-only listener sent something"
    );
}

/// --send-only: the connector discards what arrives; its stdout stays empty while the listener's
/// bytes are still consumed (the listener finishes and exits 0).
#[test]
fn send_only_connector_discards_what_arrives() {
    let dir = tempdir();
    let data = seeded_bytes(6, 100_000);
    let from_listener = seeded_bytes(7, 500_000);
    let c_in = temp_file_with(&data);
    let l_in = temp_file_with(&from_listener);
    let l_out = dir.path().join("listen.out");
    let c_out = dir.path().join("connect.out");

    let mut l = Listener::start(&[], stdin_from(l_in.path()), stdout_to(&l_out));
    let mut c = connect(
        &l.dest(),
        &["--send-only"],
        stdin_from(c_in.path()),
        stdout_to(&c_out),
    );
    c.expect_code(0, SHORT);
    l.proc.expect_code(0, SHORT);
    assert_bytes_eq(&read(&l_out), &data, "listener stdout");
    assert_eq!(file_len(&c_out), 0, "--send-only wrote to stdout");
}

/// -k: sessions are served one after another and the listener stays up; without -k (other
/// tests) it exits after one session.
#[test]
fn keep_open_serves_sessions_one_after_another() {
    let dir = tempdir();
    let l_out = dir.path().join("listen.out");
    let mut l = Listener::start(&["-k"], Stdio::null(), stdout_to(&l_out));
    let a = seeded_bytes(8, 70_000);
    let b = seeded_bytes(9, 90_000);
    let mut want = Vec::new();
    for (i, part) in [&a, &b, &a].into_iter().enumerate() {
        let f = temp_file_with(part);
        let c_out = dir.path().join(format!("connect{i}.out"));
        let mut c = connect(&l.dest(), &[], stdin_from(f.path()), stdout_to(&c_out));
        c.expect_code(0, SHORT);
        want.extend_from_slice(part);
        assert!(
            wait_file_len(&l_out, want.len() as u64, SHORT),
            "session {i}: listener output has {} bytes, want {}",
            file_len(&l_out),
            want.len()
        );
        assert_eq!(file_len(&c_out), 0);
        l.proc.assert_running("-k keeps serving");
    }
    assert_bytes_eq(&read(&l_out), &want, "listener stdout over three sessions");
}

/// -k: a session that fails (the client is interrupted) is reported on stderr and the listener
/// goes on to serve the next client.
#[test]
fn keep_open_survives_a_failed_session() {
    let dir = tempdir();
    let l_out = dir.path().join("listen.out");
    let mut l = Listener::start(&["-k"], Stdio::null(), stdout_to(&l_out));
    let mut c = connect(&l.dest(), &[], Stdio::piped(), Stdio::null());
    let mut c_in = c.take_stdin();
    c_in.write_all(b"doomed\n").unwrap();
    assert!(
        wait_file_len(&l_out, 7, SHORT),
        "first session did not open"
    );
    assert!(
        catches_sigint(&c, SHORT),
        "connect never installed a SIGINT handler"
    );
    sigint(&c);
    c.expect_code(130, SHORT);
    assert!(
        l.proc.stderr.wait_contains(SHORT, "aborted"),
        "listener should report the aborted session:\n{}",
        l.proc.stderr.text()
    );
    l.proc.assert_running("-k survives a failed session");

    let data = seeded_bytes(12, 50_000);
    let f = temp_file_with(&data);
    let mut c = connect(&l.dest(), &[], stdin_from(f.path()), Stdio::null());
    c.expect_code(0, SHORT);
    let want = [b"doomed\n".as_slice(), &data].concat();
    assert!(wait_file_len(&l_out, want.len() as u64, SHORT));
    assert_bytes_eq(&read(&l_out), &want, "listener stdout");
    l.proc.assert_running("-k");
}

/// Without -k, a second client that arrives while a session runs is refused (busy): it exits 1
/// with a message, and the first session is unaffected.
#[test]
fn second_client_is_refused_busy_without_keep_open() {
    let dir = tempdir();
    let l_out = dir.path().join("listen.out");
    let c1_out = dir.path().join("c1.out");
    let mut l = Listener::start(&[], Stdio::piped(), stdout_to(&l_out));
    let mut l_stdin = l.proc.take_stdin();
    let mut c1 = connect(&l.dest(), &[], Stdio::piped(), stdout_to(&c1_out));
    let mut c1_stdin = c1.take_stdin();
    // Make sure session 1 is established before the second client arrives.
    c1_stdin.write_all(b"first\n").unwrap();
    assert!(
        wait_file_len(&l_out, 6, SHORT),
        "first session did not open"
    );

    let mut c2 = connect(&l.dest(), &[], Stdio::null(), Stdio::null());
    let e = c2.expect_code(1, SHORT);
    let msg = e.stderr.to_lowercase();
    assert!(
        msg.starts_with("msock:") && (msg.contains("busy") || msg.contains("another session")),
        "second client's stderr should say the listener is busy: {}",
        e.stderr
    );

    c1_stdin.write_all(b"still here\n").unwrap();
    drop(c1_stdin);
    l_stdin.write_all(b"bye\n").unwrap();
    drop(l_stdin);
    c1.expect_code(0, SHORT);
    l.proc.expect_code(0, SHORT);
    assert_bytes_eq(&read(&l_out), b"first\nstill here\n", "listener stdout");
    assert_bytes_eq(&read(&c1_out), b"bye\n", "first client's stdout");
}

/// `msock connect ... | head -c 1000`: the reader goes away while the listener still sends
/// 20 MB; connect must exit 0 (a broken pipe on stdout is a normal way to stop), promptly.
#[test]
fn broken_pipe_on_connect_stdout_exits_0() {
    let dir = tempdir();
    let (l_in, _) = write_random_file(dir.path(), "listen.in", 10, 20 * 1000 * 1000);
    let mut l = Listener::start(&[], stdin_from(&l_in), Stdio::null());
    let mut c = connect(&l.dest(), &[], Stdio::null(), Stdio::piped());
    let mut out = c.take_stdout();
    let mut first = vec![0u8; 1000];
    // Bounded by the connector's deadline below: if it never writes, read_exact returns at
    // its exit (EOF) and fails.
    let reader = std::thread::spawn(move || {
        let r = out.read_exact(&mut first);
        (r, first) // `out` dropped here: the pipe's read end closes
    });
    let e = c.wait(SHORT);
    let (r, first) = reader.join().unwrap();
    r.expect("connect should have written at least 1000 bytes");
    let want = &std::fs::read(&l_in).unwrap()[..1000];
    assert_bytes_eq(&first, want, "first 1000 bytes");
    assert_eq!(
        e.code,
        Some(0),
        "connect should exit 0 on a broken stdout pipe; stderr:\n{}",
        e.stderr
    );
    // The listener is told the session was aborted (a peer error) and exits 1, not hang.
    l.proc.expect_code(1, SHORT);
}

/// The same on the listening side: `msock listen ... | head -c 1000` exits 0.
#[test]
fn broken_pipe_on_listen_stdout_exits_0() {
    let dir = tempdir();
    let (c_in, _) = write_random_file(dir.path(), "connect.in", 11, 20 * 1000 * 1000);
    let mut l = Listener::start(&[], Stdio::null(), Stdio::piped());
    let mut out = l.proc.take_stdout();
    let mut c = connect(&l.dest(), &[], stdin_from(&c_in), Stdio::null());
    let reader = std::thread::spawn(move || {
        let mut first = vec![0u8; 1000];
        let r = out.read_exact(&mut first);
        (r, first)
    });
    let e = l.proc.wait(SHORT);
    let (r, first) = reader.join().unwrap();
    r.expect("listen should have written at least 1000 bytes");
    let want = &std::fs::read(&c_in).unwrap()[..1000];
    assert_bytes_eq(&first, want, "first 1000 bytes");
    assert_eq!(
        e.code,
        Some(0),
        "listen should exit 0 on a broken stdout pipe; stderr:\n{}",
        e.stderr
    );
    c.expect_code(1, SHORT);
}

/// --idle-timeout on connect: both stdins stay open and silent, so nothing moves; the
/// connector gives up with exit 1 and says why, not before the timeout, well within seconds.
#[test]
fn idle_timeout_on_connect_exits_1() {
    let mut l = Listener::start(&[], Stdio::piped(), Stdio::null());
    let _l_stdin = l.proc.take_stdin();
    let mut c = connect(
        &l.dest(),
        &["--idle-timeout", "300ms"],
        Stdio::piped(),
        Stdio::null(),
    );
    let _c_stdin = c.take_stdin();
    let e = c.expect_code(1, Duration::from_secs(5));
    assert!(
        e.stderr.to_lowercase().contains("idle"),
        "stderr should mention the idle timeout: {}",
        e.stderr
    );
    assert!(
        e.elapsed >= Duration::from_millis(300),
        "gave up after {:?}, before the 300ms idle timeout",
        e.elapsed
    );
    // The listener is told (ERROR idle timeout) and ends too, as a peer error.
    let le = l.proc.expect_code(1, SHORT);
    assert!(
        le.stderr.to_lowercase().contains("idle"),
        "listener stderr should say why the session ended: {}",
        le.stderr
    );
}
