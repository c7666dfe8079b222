//! End-to-end tests of `msock listen -k` as a concurrent server: many sessions served at once
//! (stdout gets each client's bytes, stdin goes to every connected client, as `ncat -k`),
//! `--max-sessions` refusing with "busy", idle TCP connections that do not hold anyone up,
//! plain TCP clients only with `--allow-plain`, and nc's exit rule for a terminal on stdin.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::process::{ChildStdin, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const SHORT: Duration = Duration::from_secs(20);

/// A distinct, recognisable payload for client `i` (one chunk: well under 256 KiB).
fn payload(i: usize) -> Vec<u8> {
    let mut p = format!("<client {i:03} ").into_bytes();
    p.extend(hex(&seeded_bytes(1000 + i as u64, 600)).into_bytes());
    p.extend_from_slice(b">\n");
    p
}

/// How many times `needle` occurs in `hay`.
fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

/// Polls `path` until every payload of `want` occurs in it; false on timeout.
fn wait_all_in(path: &std::path::Path, want: &[Vec<u8>], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let got = std::fs::read(path).unwrap_or_default();
        if want.iter().all(|p| count(&got, p) >= 1) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A client whose stdin stays open (so that its session lasts) after it sent `data`.
fn holding_client(dest: &str, data: &[u8], out: Stdio) -> (Proc, ChildStdin) {
    let mut c = connect(dest, &[], Stdio::piped(), out);
    let mut stdin = c.take_stdin();
    stdin.write_all(data).unwrap();
    stdin.flush().unwrap();
    (c, stdin)
}

/// 50 clients at once on one -k listener: every session is up at the same time (each one's
/// bytes reach the listener's stdout while all 50 are still connected), each payload arrives
/// exactly once and whole, and every client exits 0.
#[test]
fn fifty_clients_at_once_each_byte_identical() {
    let dir = tempdir();
    let l_out = dir.path().join("listen.out");
    let mut l = Listener::start(&["-k"], Stdio::null(), stdout_to(&l_out));
    let payloads: Vec<Vec<u8>> = (0..50).map(payload).collect();
    let mut clients = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let out = dir.path().join(format!("c{i}.out"));
        clients.push((holding_client(&l.dest(), p, stdout_to(&out)), out));
    }
    assert!(
        wait_all_in(&l_out, &payloads, SHORT),
        "not every client's bytes reached stdout while all 50 were connected; stdout has {} \
         bytes; listener stderr:\n{}",
        file_len(&l_out),
        l.proc.stderr.text()
    );
    for ((mut c, stdin), out) in clients {
        drop(stdin);
        c.expect_code(0, SHORT);
        assert_bytes_eq(&read(&out), b"", "client stdout (listener stdin is empty)");
    }
    let got = read(&l_out);
    for (i, p) in payloads.iter().enumerate() {
        assert_eq!(
            count(&got, p),
            1,
            "client {i}'s payload on the listener's stdout"
        );
    }
    let total: usize = payloads.iter().map(Vec::len).sum();
    assert_eq!(
        got.len(),
        total,
        "listener stdout holds exactly the 50 payloads"
    );
    l.proc.assert_running("-k");
}

/// As `ncat -k`: what the listener reads on stdin goes to every client connected at the
/// time, and its end ends every session's sending side.
#[test]
fn stdin_goes_to_every_connected_client() {
    let dir = tempdir();
    let l_out = dir.path().join("listen.out");
    let mut l = Listener::start(&["-k"], Stdio::piped(), stdout_to(&l_out));
    let mut l_in = l.proc.take_stdin();
    let hellos: Vec<Vec<u8>> = (0..3).map(payload).collect();
    let mut clients = Vec::new();
    for (i, h) in hellos.iter().enumerate() {
        let out = dir.path().join(format!("c{i}.out"));
        clients.push((holding_client(&l.dest(), h, stdout_to(&out)), out));
    }
    assert!(
        wait_all_in(&l_out, &hellos, SHORT),
        "the 3 clients are not all connected; stderr:\n{}",
        l.proc.stderr.text()
    );
    l_in.write_all(b"to everyone\n").unwrap();
    drop(l_in);
    for ((mut c, stdin), out) in clients {
        assert!(
            wait_file_len(&out, 12, SHORT),
            "a client did not get the listener's stdin; listener stderr:\n{}",
            l.proc.stderr.text()
        );
        drop(stdin);
        c.expect_code(0, SHORT);
        assert_bytes_eq(&read(&out), b"to everyone\n", "client stdout");
    }
    l.proc.assert_running("-k");
}

/// --max-sessions N: the client beyond N is told the listener is busy (exit 1, within 5 s,
/// no hint about plain TCP); once a session ends, the next client is served.
#[test]
fn max_sessions_refusal_says_busy() {
    let dir = tempdir();
    let l_out = dir.path().join("listen.out");
    let mut l = Listener::start(
        &["-k", "--max-sessions", "2"],
        Stdio::null(),
        stdout_to(&l_out),
    );
    let held: Vec<Vec<u8>> = (0..2).map(payload).collect();
    let mut clients: Vec<_> = held
        .iter()
        .map(|p| holding_client(&l.dest(), p, Stdio::null()))
        .collect();
    assert!(
        wait_all_in(&l_out, &held, SHORT),
        "{}",
        l.proc.stderr.text()
    );

    let third = temp_file_with(b"third\n");
    let mut c = connect(&l.dest(), &[], stdin_from(third.path()), Stdio::null());
    let e = c.expect_code(1, Duration::from_secs(5));
    assert!(
        e.stderr.contains("listener busy: 2 sessions"),
        "stderr: {}",
        e.stderr
    );
    assert!(!e.stderr.contains("--plain"), "stderr: {}", e.stderr);
    assert!(!e.stderr.contains("does not speak msock"), "{}", e.stderr);

    let (mut first, stdin) = clients.remove(0);
    drop(stdin);
    first.expect_code(0, SHORT);
    let mut c = connect(&l.dest(), &[], stdin_from(third.path()), Stdio::null());
    c.expect_code(0, SHORT);
    assert!(wait_file_len(
        &l_out,
        (held[0].len() + held[1].len() + 6) as u64,
        SHORT
    ));
    assert_eq!(count(&read(&l_out), b"third\n"), 1);
    l.proc.assert_running("-k");
}

/// A session whose client vanished (killed with -9: to the listener it may just have moved)
/// waits for its client in the background; the next client is served at once, and the
/// listener's stdin still reaches it.
#[test]
fn parked_session_does_not_block_the_next_client() {
    let dir = tempdir();
    let l_out = dir.path().join("listen.out");
    let mut l = Listener::start(&["-k"], Stdio::piped(), stdout_to(&l_out));
    let mut l_in = l.proc.take_stdin();
    let first = payload(1);
    let (mut victim, _stdin) = holding_client(&l.dest(), &first, Stdio::null());
    assert!(
        wait_all_in(&l_out, &[first], SHORT),
        "{}",
        l.proc.stderr.text()
    );
    victim.kill();
    let second = payload(2);
    let out = dir.path().join("c2.out");
    let started = Instant::now();
    let (mut c, c_in) = holding_client(&l.dest(), &second, stdout_to(&out));
    assert!(
        wait_all_in(&l_out, &[second], Duration::from_secs(5)),
        "the next client was not served while the first one's session waits; stderr:\n{}",
        l.proc.stderr.text()
    );
    l_in.write_all(b"still here\n").unwrap();
    assert!(
        wait_file_len(&out, 11, Duration::from_secs(5)),
        "stdin did not reach the second client; stderr:\n{}",
        l.proc.stderr.text()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(c_in);
    drop(l_in);
    c.expect_code(0, SHORT);
    assert_bytes_eq(&read(&out), b"still here\n", "second client's stdout");
    l.proc.assert_running("-k");
}

/// An idle TCP connection (one that never sends) holds no one up: an msock client that comes
/// after it is served at once, with and without --allow-plain.
#[test]
fn idle_tcp_connection_does_not_delay_an_msock_client() {
    for extra in [&["-k"][..], &["-k", "--allow-plain"][..]] {
        let dir = tempdir();
        let l_out = dir.path().join("listen.out");
        let mut l = Listener::start(extra, Stdio::null(), stdout_to(&l_out));
        let idle = tcp_connect(l.addr, SHORT);
        // Well past the time a silent client is taken for plain TCP.
        thread::sleep(Duration::from_millis(800));
        let data = payload(7);
        let c_in = temp_file_with(&data);
        let started = Instant::now();
        let mut c = connect(&l.dest(), &[], stdin_from(c_in.path()), Stdio::null());
        let e = c.wait(SHORT);
        assert_eq!(e.code, Some(0), "{extra:?}: stderr: {}", e.stderr);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{extra:?}: the msock client took {:?}",
            started.elapsed()
        );
        assert!(!e.stderr.contains("--plain"), "{extra:?}: {}", e.stderr);
        assert!(wait_file_len(&l_out, data.len() as u64, SHORT));
        assert_bytes_eq(&read(&l_out), &data, "listener stdout");
        drop(idle);
        l.proc.assert_running("-k");
    }
}

/// Without --allow-plain a plain TCP client (a std `TcpStream`, and `nc` when installed) gets
/// one line saying why and is closed; nothing it sent reaches stdout, and the listener goes
/// on waiting for an msock client.
#[test]
fn plain_client_without_allow_plain_gets_one_line_and_is_closed() {
    let dir = tempdir();
    let l_out = dir.path().join("listen.out");
    let l_in = temp_file_with(b"secret listener data\n");
    let mut l = Listener::start(&[], stdin_from(l_in.path()), stdout_to(&l_out));
    let mut s = tcp_connect(l.addr, SHORT);
    s.write_all(b"EVIL CONTENT\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (got, r) = read_to_end_bounded(&mut s);
    r.expect("the listener closes the connection after its line");
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.lines().count(), 1, "one line: {text:?}");
    assert!(text.ends_with('\n'), "{text:?}");
    assert!(text.contains("--allow-plain"), "{text:?}");
    assert!(!text.contains("secret"), "{text:?}");
    assert!(
        l.proc.stderr.wait_contains(SHORT, "does not speak msock"),
        "{}",
        l.proc.stderr.text()
    );
    if have("nc") {
        let mut cmd = std::process::Command::new("nc");
        cmd.args(["127.0.0.1", &l.addr.port().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut nc = Proc::spawn("nc", cmd);
        let mut nc_in = nc.take_stdin();
        nc_in.write_all(b"EVIL CONTENT\n").unwrap();
        let mut line = String::new();
        let mut out = nc.take_stdout();
        let mut b = [0u8; 1];
        while !line.ends_with('\n') && out.read(&mut b).unwrap_or(0) == 1 {
            line.push(b[0] as char);
        }
        assert!(line.contains("--allow-plain"), "nc got {line:?}");
        drop(nc_in);
        nc.kill();
    } else {
        println!("SKIPPED (nc part): nc is not installed (apt-get install -y netcat-openbsd)");
    }
    l.proc
        .assert_running("a refused plain client does not end the listener");
    let c_in = temp_file_with(b"real client\n");
    let mut c = connect(&l.dest(), &[], stdin_from(c_in.path()), Stdio::null());
    c.expect_code(0, SHORT);
    l.proc.expect_code(0, SHORT);
    assert_bytes_eq(&read(&l_out), b"real client\n", "listener stdout");
}

/// With --allow-plain the plain client is served, and the listener says on stderr that it
/// is neither encrypted nor authenticated; -v says at start that plain clients are allowed.
#[test]
fn allow_plain_serves_plain_clients_with_a_warning() {
    let dir = tempdir();
    let l_out = dir.path().join("listen.out");
    let l_in = temp_file_with(b"hello plain\n");
    let mut l = Listener::start(
        &["-v", "--allow-plain"],
        stdin_from(l_in.path()),
        stdout_to(&l_out),
    );
    let mut s = tcp_connect(l.addr, SHORT);
    let me = s.local_addr().unwrap();
    s.write_all(b"from nc\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (got, r) = read_to_end_bounded(&mut s);
    r.unwrap();
    assert_bytes_eq(
        &got,
        b"hello plain\n",
        "plain client got the listener's stdin",
    );
    let e = l.proc.expect_code(0, SHORT);
    assert_bytes_eq(&read(&l_out), b"from nc\n", "listener stdout");
    let want = format!("plain TCP client {me}: not encrypted, not authenticated");
    assert!(e.stderr.contains(&want), "want {want:?} in:\n{}", e.stderr);
    assert!(
        e.stderr.contains("--allow-plain"),
        "-v should say plain clients are allowed:\n{}",
        e.stderr
    );
}

/// nc's exit rule for the Quick start: `msock listen PORT > file` with a terminal on stdin
/// (nobody types) and `... | msock connect` both finish by themselves once the client has
/// sent everything.
#[test]
fn terminal_stdin_that_sent_nothing_ends_the_session_when_the_peer_is_done() {
    let Some((master, slave)) = open_pty() else {
        println!("SKIPPED: no pseudo-terminal available (openpty failed)");
        return;
    };
    let dir = tempdir();
    let l_out = dir.path().join("received");
    let mut l = Listener::start(&[], Stdio::from(slave), stdout_to(&l_out));
    let data = seeded_bytes(77, 300_000);
    let c_in = temp_file_with(&data);
    let mut c = connect(&l.dest(), &[], stdin_from(c_in.path()), Stdio::null());
    c.expect_code(0, SHORT);
    l.proc.expect_code(0, SHORT);
    assert_bytes_eq(&read(&l_out), &data, "received");
    drop(master);
}

/// A pseudo-terminal pair (master, slave) as files, or None.
fn open_pty() -> Option<(std::fs::File, std::fs::File)> {
    use std::os::fd::FromRawFd;
    let (mut m, mut s) = (0, 0);
    // SAFETY: openpty writes two new descriptors into m and s; the other arguments may be null.
    let r = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if r != 0 {
        return None;
    }
    // SAFETY: both descriptors are new and owned by nothing else.
    Some(unsafe { (std::fs::File::from_raw_fd(m), std::fs::File::from_raw_fd(s)) })
}
