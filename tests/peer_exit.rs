//! A peer that exited is gone (issue 14, item 2): a client or listener killed with SIGKILL or
//! SIGTERM ends the other end's session at once ("peer exited without closing", exit 1)
//! instead of parking it for the whole --resume-timeout.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Sends `signal` (e.g. "-TERM", "-KILL") to `p`.
fn signal(p: &Proc, signal: &str) {
    let st = Command::new("kill")
        .args([signal, &p.id().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success());
}

/// Starts a listener and a connected client that has sent a line and stays connected
/// (stdin open): returns both once the line has arrived.
fn connected_pair() -> (Listener, Proc, std::process::ChildStdin) {
    // The default resume timeout (minutes) is what the old behaviour waited for.
    let mut l = Listener::start(&["-v"], Stdio::null(), Stdio::piped());
    let mut c = connect(&l.dest(), &["-v"], Stdio::piped(), Stdio::null());
    let mut stdin = c.take_stdin();
    stdin.write_all(b"hello\n").unwrap();
    stdin.flush().unwrap();
    let mut out = l.proc.take_stdout();
    let mut line = [0u8; 6];
    std::io::Read::read_exact(&mut out, &mut line).unwrap();
    assert_eq!(&line, b"hello\n");
    // Let the session settle (first keepalive exchange done).
    std::thread::sleep(Duration::from_millis(300));
    (l, c, stdin)
}

/// The other end must exit 1 within a second (plus process start-up slack), saying why.
fn assert_ends_promptly(p: &mut Proc, killed_at: Instant, who: &str) {
    let e = p.wait(Duration::from_secs(10));
    let took = killed_at.elapsed();
    assert_eq!(e.code, Some(1), "{who} stderr: {}", e.stderr);
    assert!(
        e.stderr.contains("peer exited without closing"),
        "{who} stderr: {}",
        e.stderr
    );
    assert!(
        took < Duration::from_millis(1500),
        "{who} took {took:?} to notice; stderr: {}",
        e.stderr
    );
}

#[test]
fn a_client_killed_with_sigkill_ends_the_listeners_session() {
    let (mut l, c, _stdin) = connected_pair();
    signal(&c, "-KILL");
    let t = Instant::now();
    assert_ends_promptly(&mut l.proc, t, "listener");
}

#[test]
fn a_client_killed_with_sigterm_ends_the_listeners_session() {
    let (mut l, c, _stdin) = connected_pair();
    signal(&c, "-TERM");
    let t = Instant::now();
    assert_ends_promptly(&mut l.proc, t, "listener");
}

#[test]
fn a_listener_killed_ends_the_client() {
    let (l, mut c, _stdin) = connected_pair();
    signal(&l.proc, "-KILL");
    let t = Instant::now();
    assert_ends_promptly(&mut c, t, "client");
}

/// With -k, the next client is served right after a killed one (not after the resume
/// timeout).
#[test]
fn a_killed_client_does_not_block_a_keep_open_listener() {
    let mut l = Listener::start(&["-k"], Stdio::null(), Stdio::piped());
    let mut first = connect(&l.dest(), &[], Stdio::piped(), Stdio::null());
    let mut stdin = first.take_stdin();
    stdin.write_all(b"one\n").unwrap();
    let mut out = l.proc.take_stdout();
    let mut line = [0u8; 4];
    std::io::Read::read_exact(&mut out, &mut line).unwrap();
    assert_eq!(&line, b"one\n");
    // Killed once quiet: a process killed with bytes still unread in a socket makes its
    // kernel reset the connection instead of closing it, and a reset is waited for.
    std::thread::sleep(Duration::from_millis(300));
    first.kill();
    let t = Instant::now();
    let data = seeded_bytes(3, 100_000);
    let f = temp_file_with(&data);
    let mut second = connect(&l.dest(), &[], stdin_from(f.path()), Stdio::null());
    let mut got = vec![0u8; data.len()];
    std::io::Read::read_exact(&mut out, &mut got).unwrap();
    assert_bytes_eq(&got, &data, "second client's bytes");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "the second client waited {:?}",
        t.elapsed()
    );
    second.expect_code(0, Duration::from_secs(10));
}
