//! End-to-end tests of plain TCP interop: `msock connect --plain` to an ordinary TCP server,
//! ordinary TCP clients (a std `TcpStream`, and `nc` when installed) talking to
//! `msock listen --allow-plain`, and the default that refuses them.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const SHORT: Duration = Duration::from_secs(15);

/// Accepts one connection within `timeout` (never blocks forever).
fn accept_timeout(l: &TcpListener, timeout: Duration) -> TcpStream {
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(timeout)).unwrap();
                s.set_write_timeout(Some(timeout)).unwrap();
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "no connection within {timeout:?}"
                );
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// Talks to `s` like a well-behaved peer: sends `payload` then half-closes, while reading
/// everything the other side sends until its EOF. Returns what was read.
fn exchange(s: TcpStream, payload: Vec<u8>) -> Vec<u8> {
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        w.write_all(&payload).expect("write to msock");
        w.shutdown(Shutdown::Write).expect("shutdown(write)");
    });
    let mut r = s;
    let (got, res) = read_to_end_bounded(&mut r);
    res.unwrap_or_else(|e| panic!("reading from msock after {} bytes: {e}", got.len()));
    writer.join().expect("writer thread");
    got
}

/// `msock connect --plain` to an ordinary TCP server: no preamble, no framing, bytes arrive
/// unchanged both ways, exit 0 once both directions are done.
#[test]
fn connect_plain_to_tcp_server_bytes_unchanged() {
    let dir = tempdir();
    let to_server = seeded_bytes(20, 1_000_000);
    let from_server = seeded_bytes(21, 1_500_000);
    let c_in = temp_file_with(&to_server);
    let c_out = dir.path().join("connect.out");

    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let reply = from_server.clone();
    let srv = thread::spawn(move || {
        let s = accept_timeout(&server, SHORT);
        exchange(s, reply)
    });
    let mut c = connect(
        &addr.to_string(),
        &["--plain"],
        stdin_from(c_in.path()),
        stdout_to(&c_out),
    );
    let e = c.expect_code(0, SHORT);
    let got = srv.join().expect("server thread");
    assert_bytes_eq(&got, &to_server, "bytes the server received");
    assert_bytes_eq(&read(&c_out), &from_server, "connect --plain stdout");
    assert!(e.stderr.trim().is_empty(), "stderr: {}", e.stderr);
}

/// A server that speaks first (a banner) and a client with nothing to say.
#[test]
fn connect_plain_server_speaks_first() {
    let dir = tempdir();
    let c_out = dir.path().join("connect.out");
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let srv = thread::spawn(move || {
        let s = accept_timeout(&server, SHORT);
        exchange(s, b"220 hello from a plain server\r\n".to_vec())
    });
    let mut c = connect(
        &addr.to_string(),
        &["--plain"],
        Stdio::null(),
        stdout_to(&c_out),
    );
    c.expect_code(0, SHORT);
    assert_eq!(
        srv.join().unwrap(),
        b"",
        "client sent bytes though its stdin was empty"
    );
    assert_bytes_eq(
        &read(&c_out),
        b"220 hello from a plain server\r\n",
        "stdout",
    );
}

/// A plain TCP client (std `TcpStream`, which does not speak msock) to `msock listen`: what
/// the client sends appears on the listener's stdout, the listener's stdin reaches the client.
#[test]
fn plain_tcp_client_to_listen() {
    let dir = tempdir();
    let from_listener = seeded_bytes(22, 800_000);
    let mut from_client = b"GET / HTTP/1.0\r\n\r\n".to_vec();
    from_client.extend(seeded_bytes(23, 600_000));
    let l_in = temp_file_with(&from_listener);
    let l_out = dir.path().join("listen.out");
    let mut l = Listener::start(
        &["--allow-plain"],
        stdin_from(l_in.path()),
        stdout_to(&l_out),
    );

    let s = tcp_connect(l.addr, SHORT);
    let got = exchange(s, from_client.clone());
    l.proc.expect_code(0, SHORT);
    assert_bytes_eq(&got, &from_listener, "bytes the plain client received");
    assert_bytes_eq(&read(&l_out), &from_client, "listener stdout");
}

/// A plain client that says nothing at first (e.g. `nc` only receiving) is taken for plain TCP
/// after --detect-wait and gets the listener's data; what it sends later still arrives.
#[test]
fn silent_plain_client_is_served_after_detect_wait() {
    let dir = tempdir();
    let from_listener = seeded_bytes(24, 100_000);
    let l_in = temp_file_with(&from_listener);
    let l_out = dir.path().join("listen.out");
    let mut l = Listener::start(
        &["--allow-plain", "--detect-wait", "200ms"],
        stdin_from(l_in.path()),
        stdout_to(&l_out),
    );
    let mut s = tcp_connect(l.addr, SHORT);
    let mut got = vec![0u8; from_listener.len()];
    s.read_exact(&mut got)
        .expect("the listener's data, after the detect wait");
    assert_bytes_eq(&got, &from_listener, "bytes the plain client received");
    s.write_all(b"late words\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (rest, r) = read_to_end_bounded(&mut s);
    r.expect("EOF from the listener");
    assert!(
        rest.is_empty(),
        "extra bytes after the listener's stdin: {rest:02x?}"
    );
    l.proc.expect_code(0, SHORT);
    assert_bytes_eq(&read(&l_out), b"late words\n", "listener stdout");
}

/// A plain client whose first bytes look like the start of the preamble ("MSO") and then stop:
/// after the detect wait it is plain TCP, and the bytes already read are not lost.
#[test]
fn plain_client_with_partial_preamble_keeps_its_bytes() {
    let dir = tempdir();
    let l_in = temp_file_with(b"ready\n");
    let l_out = dir.path().join("listen.out");
    let mut l = Listener::start(
        &["--allow-plain", "--detect-wait", "200ms"],
        stdin_from(l_in.path()),
        stdout_to(&l_out),
    );
    let mut s = tcp_connect(l.addr, SHORT);
    s.write_all(b"MSO").unwrap();
    let mut got = [0u8; 6];
    s.read_exact(&mut got)
        .expect("the listener's data, after the detect wait");
    assert_eq!(&got, b"ready\n");
    s.write_all(b"CKET science\n").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (rest, r) = read_to_end_bounded(&mut s);
    r.expect("EOF from the listener");
    assert!(rest.is_empty());
    l.proc.expect_code(0, SHORT);
    assert_bytes_eq(&read(&l_out), b"MSOCKET science\n", "listener stdout");
}

/// `msock connect --plain` to `msock listen`: the client says nothing msock-like, so the
/// listener takes it for plain TCP (after --detect-wait, or at its first bytes) and the bytes
/// still arrive unchanged both ways.
#[test]
fn connect_plain_to_msock_listen() {
    let dir = tempdir();
    let from_listener = seeded_bytes(30, 400_000);
    let from_client = seeded_bytes(31, 500_000);
    let l_in = temp_file_with(&from_listener);
    let c_in = temp_file_with(&from_client);
    let l_out = dir.path().join("listen.out");
    let c_out = dir.path().join("connect.out");
    let mut l = Listener::start(
        &["--allow-plain", "--detect-wait", "100ms"],
        stdin_from(l_in.path()),
        stdout_to(&l_out),
    );
    let mut c = connect(
        &l.dest(),
        &["--plain"],
        stdin_from(c_in.path()),
        stdout_to(&c_out),
    );
    c.expect_code(0, SHORT);
    l.proc.expect_code(0, SHORT);
    assert_bytes_eq(&read(&c_out), &from_listener, "connect --plain stdout");
    assert_bytes_eq(&read(&l_out), &from_client, "listener stdout");
}

/// The same with a real `nc` (OpenBSD netcat: -N shuts the socket down at stdin EOF).
#[test]
fn nc_client_to_listen() {
    if !have("nc") {
        println!("SKIPPED: nc is not installed (apt-get install -y netcat-openbsd)");
        return;
    }
    let help = Command::new("nc").arg("-h").output().map(|o| {
        let mut t = String::from_utf8_lossy(&o.stdout).into_owned();
        t.push_str(&String::from_utf8_lossy(&o.stderr));
        t
    });
    if !help.as_deref().unwrap_or("").contains("OpenBSD") {
        println!(
            "SKIPPED: nc is not OpenBSD netcat, which has -N (apt-get install -y netcat-openbsd)"
        );
        return;
    }
    let dir = tempdir();
    let from_listener = seeded_bytes(25, 700_000);
    let from_nc = seeded_bytes(26, 900_000);
    let l_in = temp_file_with(&from_listener);
    let nc_in = temp_file_with(&from_nc);
    let l_out = dir.path().join("listen.out");
    let nc_out = dir.path().join("nc.out");
    let mut l = Listener::start(
        &["--allow-plain"],
        stdin_from(l_in.path()),
        stdout_to(&l_out),
    );
    let mut cmd = Command::new("nc");
    cmd.args(["-N", "127.0.0.1", &l.addr.port().to_string()])
        .stdin(stdin_from(nc_in.path()))
        .stdout(stdout_to(&nc_out));
    let mut nc = Proc::spawn("nc", cmd);
    nc.expect_code(0, SHORT);
    l.proc.expect_code(0, SHORT);
    assert_bytes_eq(&read(&nc_out), &from_listener, "nc stdout");
    assert_bytes_eq(&read(&l_out), &from_nc, "listener stdout");
}

/// Without --allow-plain: a plain client is closed without its bytes reaching stdout and
/// without being sent the listener's data (only the one line saying why); a silent one is
/// closed after the detect wait; the -k listener then still serves a real msock client, byte
/// for byte.
#[test]
fn plain_clients_refused_by_default_then_msock_served() {
    let dir = tempdir();
    let from_listener = seeded_bytes(27, 300_000);
    let from_client = seeded_bytes(28, 300_000);
    let l_in = temp_file_with(&from_listener);
    let c_in = temp_file_with(&from_client);
    let l_out = dir.path().join("listen.out");
    let c_out = dir.path().join("connect.out");
    let mut l = Listener::start(
        &["-k", "--detect-wait", "200ms"],
        stdin_from(l_in.path()),
        stdout_to(&l_out),
    );

    // A talkative plain client.
    let mut s = tcp_connect(l.addr, SHORT);
    s.write_all(b"hello").unwrap();
    let (got, r) = read_to_end_bounded(&mut s);
    assert_eq!(
        String::from_utf8_lossy(&got),
        "msock: this listener speaks msock only; plain TCP clients need `msock listen --allow-plain`\n",
        "a refused plain client gets only the line saying why"
    );
    if let Err(e) = r {
        assert!(
            e.kind() == std::io::ErrorKind::ConnectionReset,
            "plain client was not closed: {e}"
        );
    }
    assert!(
        l.proc.stderr.wait_contains(SHORT, "does not speak msock"),
        "listener stderr should say why it closed the client:\n{}",
        l.proc.stderr.text()
    );

    // A silent plain client.
    let started = Instant::now();
    let mut s = tcp_connect(l.addr, SHORT);
    let (got, r) = read_to_end_bounded(&mut s);
    assert_eq!(
        String::from_utf8_lossy(&got),
        "msock: this listener speaks msock only; plain TCP clients need `msock listen --allow-plain`\n",
        "a silent plain client gets only the line saying why"
    );
    assert!(r.is_ok() || r.unwrap_err().kind() == std::io::ErrorKind::ConnectionReset);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "silent client closed only after {:?}",
        started.elapsed()
    );
    l.proc
        .assert_running("-k keeps serving after refusing plain clients");

    // A real msock client is served.
    let mut c = connect(&l.dest(), &[], stdin_from(c_in.path()), stdout_to(&c_out));
    c.expect_code(0, SHORT);
    assert_bytes_eq(&read(&c_out), &from_listener, "connector stdout");
    assert!(
        wait_file_len(&l_out, from_client.len() as u64, SHORT),
        "listener stdout has {} bytes, want {}",
        file_len(&l_out),
        from_client.len()
    );
    assert_bytes_eq(
        &read(&l_out),
        &from_client,
        "listener stdout (no 'hello' in front)",
    );
    l.proc.assert_running("-k");
}

/// `msock listen | head -c 1000` with a plain client sending lots: the listener exits 0.
#[test]
fn plain_session_broken_pipe_on_listen_stdout_exits_0() {
    let mut l = Listener::start(&["--allow-plain"], Stdio::null(), Stdio::piped());
    let mut out = l.proc.take_stdout();
    let reader = thread::spawn(move || {
        let mut first = vec![0u8; 1000];
        let r = out.read_exact(&mut first);
        (r, first)
    });
    let s = tcp_connect(l.addr, SHORT);
    let writer = thread::spawn(move || {
        let mut s = s;
        let chunk = seeded_bytes(29, 1 << 20);
        // Ends with an error once the listener is gone.
        for _ in 0..20 {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let e = l.proc.wait(SHORT);
    let (r, first) = reader.join().unwrap();
    r.expect("listen should have written at least 1000 bytes");
    assert_bytes_eq(&first, &seeded_bytes(29, 1000), "first 1000 bytes");
    assert_eq!(e.code, Some(0), "stderr:\n{}", e.stderr);
    writer.join().unwrap();
}

/// --idle-timeout applies to plain sessions too: a plain client that goes quiet (and a listener
/// stdin that stays open) ends the session with exit 1 and a message.
#[test]
fn idle_timeout_on_plain_session_exits_1() {
    let mut l = Listener::start(
        &[
            "--allow-plain",
            "--idle-timeout",
            "300ms",
            "--detect-wait",
            "100ms",
        ],
        Stdio::piped(),
        Stdio::null(),
    );
    let _held = l.proc.take_stdin();
    let mut s = tcp_connect(l.addr, SHORT);
    s.write_all(b"one line and then silence\n").unwrap();
    let e = l.proc.expect_code(1, Duration::from_secs(5));
    assert!(
        e.stderr.to_lowercase().contains("idle"),
        "stderr should mention the idle timeout: {}",
        e.stderr
    );
    // The listener closed the client.
    let (_, r) = read_to_end_bounded(&mut s);
    assert!(r.is_ok() || r.unwrap_err().kind() == std::io::ErrorKind::ConnectionReset);
}
