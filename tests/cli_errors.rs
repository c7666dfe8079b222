//! End-to-end tests of failures: exit codes and messages for network and usage errors,
//! `msock connect` to servers that do not speak msock, interruption, and garbage sent to a
//! listener (which must answer with an ERROR frame, close, and keep serving).

mod common;

use std::io::Write;
use std::net::{Shutdown, TcpListener};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const SHORT: Duration = Duration::from_secs(15);

/// Nothing listens on the port: exit 1 and a one-line explanation.
#[test]
fn connect_refused_exits_1() {
    let addr = dead_port();
    let e = run(&["connect", &addr.to_string()], SHORT);
    assert_eq!(e.code, Some(1), "stderr: {}", e.stderr);
    assert!(e.stderr.starts_with("msock: "), "stderr: {}", e.stderr);
    let msg = e.stderr.to_lowercase();
    assert!(
        msg.contains("cannot connect") && msg.contains(&addr.to_string()),
        "stderr should say what failed and where: {}",
        e.stderr
    );
}

/// Bad arguments, whether caught by clap or by msock: exit 2 with a message, promptly.
#[test]
fn usage_errors_exit_2() {
    let cases: &[&[&str]] = &[
        &[],
        &["frobnicate"],
        &["connect"],
        &["connect", "nohost"],
        &["listen", "notaport"],
        &["listen", "127.0.0.1:99999"],
        &["listen", "localhost"],
        &["connect", "127.0.0.1:1", "-w", "banana"],
        &["connect", "127.0.0.1:1", "--wait", "-1"],
        &["connect", "127.0.0.1:1", "--no-such-flag"],
        &["listen", "--bogus", "0"],
        &["listen", "--detect-wait", "soon", "0"],
        &["listen", "--idle-timeout", "-5", "0"],
        &["connect", "--recv-only", "--send-only", "127.0.0.1:1"],
        &["connect", "-4", "-6", "127.0.0.1:1"],
        &["connect", "--source", "not-an-ip", "127.0.0.1:1"],
        &["listen", "--plain", "0"],
        &["connect", "-k", "127.0.0.1:1"],
        // No IPv4 address for an IPv6 literal: a local error, not a network one.
        &["connect", "-4", "[::1]:1"],
        // A congestion control the system does not have.
        &[
            "connect",
            "--congestion",
            "no-such-algorithm",
            "127.0.0.1:1",
        ],
        &["listen", "--congestion", "no-such-algorithm", "0"],
        // Interface policies exclude each other and -s.
        &["connect", "--stripe", "--prefer-wifi", "127.0.0.1:1"],
        &["connect", "-s", "127.0.0.1", "--stripe", "127.0.0.1:1"],
        // Plain TCP is one connection: nothing to stripe or resume.
        &["connect", "--plain", "--stripe", "127.0.0.1:1"],
        &[
            "connect",
            "--plain",
            "--resume-timeout",
            "1m",
            "127.0.0.1:1",
        ],
    ];
    let mut failures = Vec::new();
    for args in cases {
        let e = run(args, SHORT);
        if e.code != Some(2) || e.stderr.trim().is_empty() {
            failures.push(format!(
                "msock {:?}: exit {:?}, stderr {:?}",
                args, e.code, e.stderr
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "expected exit 2 with a message:\n{}",
        failures.join("\n")
    );
}

/// `--help` and `--version` are not errors.
#[test]
fn help_and_version_exit_0() {
    for args in [
        &["--help"][..],
        &["--version"],
        &["listen", "--help"],
        &["connect", "-h"],
    ] {
        let mut cmd = msock(args);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped());
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "msock {args:?}");
        assert!(!out.stdout.is_empty(), "msock {args:?} printed nothing");
    }
}

/// `-s` with an address of the other family than every destination address: nothing can be
/// tried, which is the user's mistake (like `-4 [::1]:1`), so exit 2, not 1.
#[test]
fn connect_source_family_mismatch_exits_2() {
    let e = run(&["connect", "-s", "::1", "127.0.0.1:9"], SHORT);
    assert!(e.stderr.contains("family"), "stderr: {}", e.stderr);
    assert_eq!(
        e.code,
        Some(2),
        "a source address that cannot reach any destination is a usage error; stderr: {}",
        e.stderr
    );
}

/// A port some other program listens on: exit 2 (local problem) with a hint.
#[test]
fn listen_on_busy_port_exits_2() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let e = run(&["listen", &addr.to_string()], SHORT);
    assert_eq!(e.code, Some(2), "stderr: {}", e.stderr);
    assert!(
        e.stderr.starts_with("msock: ") && e.stderr.contains(&addr.port().to_string()),
        "stderr: {}",
        e.stderr
    );
}

/// Runs a one-connection TCP server on a thread: `serve` gets the accepted stream.
fn one_shot_server(
    serve: impl FnOnce(std::net::TcpStream) + Send + 'static,
) -> (std::net::SocketAddr, thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        l.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + SHORT;
        loop {
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(SHORT)).unwrap();
                    return serve(s);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return;
                    }
                    thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    });
    (addr, h)
}

/// `msock connect` to an HTTP-ish server that answers and closes: exit 1, and the message
/// suggests --plain.
#[test]
fn connect_to_plain_server_suggests_plain() {
    let (addr, srv) = one_shot_server(|mut s| {
        s.write_all(b"HTTP/1.0 200 OK\r\n").unwrap();
        let _ = s.shutdown(Shutdown::Write);
        // Read what the client sent, so the close is a FIN and not a reset.
        let _ = read_to_end_bounded(&mut s);
    });
    let e = run(&["connect", &addr.to_string()], SHORT);
    srv.join().unwrap();
    assert_eq!(e.code, Some(1), "stderr: {}", e.stderr);
    assert!(
        e.stderr.contains("--plain"),
        "stderr should suggest --plain: {}",
        e.stderr
    );
}

/// `send-file` and `bench` to a server that is not msock: exit 1 with a hint each command can
/// act on (they have no --plain).
#[test]
fn send_file_and_bench_to_plain_server_say_what_they_need() {
    for (args, want) in [
        (vec!["send-file", "Cargo.toml"], "msock listen --save-dir"),
        (
            vec!["bench", "-t", "1s"],
            "msock bench needs `msock listen`",
        ),
    ] {
        let (addr, srv) = one_shot_server(|mut s| {
            s.write_all(b"HTTP/1.0 200 OK\r\n").unwrap();
            let _ = s.shutdown(Shutdown::Write);
            let _ = read_to_end_bounded(&mut s);
        });
        let dest = addr.to_string();
        let mut args = args.clone();
        args.push(&dest);
        let e = run(&args, SHORT);
        srv.join().unwrap();
        assert_eq!(e.code, Some(1), "msock {args:?}: {}", e.stderr);
        assert!(e.stderr.contains(want), "msock {args:?}: {}", e.stderr);
        assert!(
            !e.stderr.contains("--plain"),
            "msock {args:?}: {}",
            e.stderr
        );
    }
}

/// The same server, but it closes at once after its reply without reading the client's bytes
/// (so the kernel may send a reset): still exit 1 and the --plain hint, since the reply
/// arrived first.
#[test]
fn connect_to_plain_server_that_closes_abruptly_suggests_plain() {
    let (addr, srv) = one_shot_server(|mut s| {
        // Let the client's preamble arrive first, so that close() resets the connection.
        thread::sleep(Duration::from_millis(100));
        s.write_all(b"HTTP/1.0 200 OK\r\n").unwrap();
    });
    let e = run(&["connect", &addr.to_string()], SHORT);
    srv.join().unwrap();
    assert_eq!(e.code, Some(1), "stderr: {}", e.stderr);
    assert!(
        e.stderr.contains("--plain"),
        "stderr should suggest --plain: {}",
        e.stderr
    );
}

/// A server that accepts and never says anything: `-w` bounds the handshake; exit 1 with the
/// --plain hint, soon after the wait.
#[test]
fn connect_to_silent_server_times_out_with_wait() {
    let (addr, srv) = one_shot_server(|mut s| {
        // Hold the connection open, silent, until the client leaves.
        let _ = read_to_end_bounded(&mut s);
    });
    let mut cmd = msock(&["connect", "-w", "500ms", &addr.to_string()]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut p = Proc::spawn("msock connect -w 500ms", cmd);
    let e = p.expect_code(1, Duration::from_secs(5));
    srv.join().unwrap();
    assert!(
        e.elapsed >= Duration::from_millis(500),
        "gave up after {:?}",
        e.elapsed
    );
    assert!(e.stderr.contains("--plain"), "stderr: {}", e.stderr);
}

/// A server that accepts and closes without a word: exit 1.
#[test]
fn connect_to_server_that_hangs_up_exits_1() {
    let (addr, srv) = one_shot_server(drop);
    let e = run(&["connect", &addr.to_string()], SHORT);
    srv.join().unwrap();
    assert_eq!(e.code, Some(1), "stderr: {}", e.stderr);
    assert!(e.stderr.starts_with("msock: "), "stderr: {}", e.stderr);
}

/// Ctrl-C (SIGINT) while waiting for a client, and during a session: exit 130; the peer of an
/// interrupted session is told and exits 1.
#[test]
fn interrupt_exits_130() {
    // While waiting for a client. The listener prints its port a moment before it installs
    // its Ctrl-C handler, so a SIGINT right after the port line may still find the default
    // disposition: dying by SIGINT is what a shell reports as 130 too, so accept either.
    let mut l = Listener::start(&[], Stdio::piped(), Stdio::null());
    sigint(&l.proc);
    let e = l.proc.wait(SHORT);
    assert!(
        e.code == Some(130) || e.signal == Some(2),
        "listen should exit 130 on SIGINT, got code {:?} signal {:?}; stderr: {}",
        e.code,
        e.signal,
        e.stderr
    );
    assert!(!e.stderr.contains("panicked"), "stderr: {}", e.stderr);

    // While waiting for a client, once the handler is installed: exit 130.
    let mut l = Listener::start(&[], Stdio::piped(), Stdio::null());
    assert!(
        catches_sigint(&l.proc, SHORT),
        "listen never installed a SIGINT handler"
    );
    sigint(&l.proc);
    l.proc.expect_code(130, SHORT);

    let dir = tempdir();
    let l_out = dir.path().join("listen.out");
    let mut l = Listener::start(&[], Stdio::piped(), stdout_to(&l_out));
    let _l_in = l.proc.take_stdin();
    let mut c = connect(&l.dest(), &[], Stdio::piped(), Stdio::null());
    let mut c_in = c.take_stdin();
    c_in.write_all(b"x").unwrap();
    assert!(wait_file_len(&l_out, 1, SHORT), "session did not open");
    assert!(
        catches_sigint(&c, SHORT),
        "connect never installed a SIGINT handler"
    );
    sigint(&c);
    c.expect_code(130, SHORT);
    let le = l.proc.expect_code(1, SHORT);
    assert!(
        le.stderr.starts_with("msock: ") || le.stderr.contains("msock: "),
        "{}",
        le.stderr
    );
}

/// The connector's stdin cannot be read (it is a directory): exit 2 (local error) with a
/// message, and the listener is told at once (like on Ctrl-C or a broken pipe) rather than
/// left waiting out its resume window for a client that will never come back.
#[test]
fn connect_input_error_exits_2_and_peer_is_told() {
    let dir = tempdir();
    let l_out = dir.path().join("listen.out");
    let mut l = Listener::start(&[], Stdio::null(), stdout_to(&l_out));
    let mut c = connect(
        &l.dest(),
        &[],
        stdin_from(std::path::Path::new("/")),
        Stdio::null(),
    );
    let e = c.expect_code(2, SHORT);
    assert!(e.stderr.contains("reading input"), "stderr: {}", e.stderr);
    // The listener keeps a session whose client vanished for 10 s (resume wait); an aborted
    // one must end well before that.
    let le = l.proc.wait(Duration::from_secs(5));
    assert_eq!(le.code, Some(1), "listener stderr: {}", le.stderr);
}

/// The connector's stdout fails (disk full): exit 2 with a message; the listener, which is
/// still sending (20 MB: far more than fits in the connector's receive window, so its session
/// cannot have completed), is told and exits 1 promptly.
#[test]
fn connect_output_error_exits_2_and_peer_is_told() {
    if !std::path::Path::new("/dev/full").exists() {
        println!("SKIPPED: no /dev/full");
        return;
    }
    let dir = tempdir();
    let (l_in, _) = write_random_file(dir.path(), "listen.in", 40, 20 * 1000 * 1000);
    let mut l = Listener::start(&[], stdin_from(&l_in), Stdio::null());
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut c = connect(&l.dest(), &[], Stdio::null(), Stdio::from(full));
    let e = c.expect_code(2, SHORT);
    assert!(e.stderr.contains("writing output"), "stderr: {}", e.stderr);
    let le = l.proc.wait(Duration::from_secs(5));
    assert_eq!(le.code, Some(1), "listener stderr: {}", le.stderr);
}

/// The listener's stdout fails: exit 2; the connector, still sending 20 MB, exits 1.
#[test]
fn listen_output_error_exits_2() {
    if !std::path::Path::new("/dev/full").exists() {
        println!("SKIPPED: no /dev/full");
        return;
    }
    let dir = tempdir();
    let (c_in, _) = write_random_file(dir.path(), "connect.in", 41, 20 * 1000 * 1000);
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut l = Listener::start(&[], Stdio::null(), Stdio::from(full));
    let mut c = connect(&l.dest(), &[], stdin_from(&c_in), Stdio::null());
    let le = l.proc.expect_code(2, SHORT);
    assert!(
        le.stderr.contains("writing output"),
        "stderr: {}",
        le.stderr
    );
    c.expect_code(1, SHORT);
}

// ---------------------------------------------------------------------------------------------
// Garbage sent to a listener.

/// Big-endian frame bytes: length (type + body), type, body.
fn frame(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 1) as u32).to_be_bytes().to_vec();
    v.push(ty);
    v.extend_from_slice(body);
    v
}

/// Sends `bytes` on a fresh connection (without half-closing) and reads until the listener
/// closes. Returns the ERROR code and reason it answered with, after checking the reply is
/// exactly preamble + one well-formed ERROR frame.
fn expect_error_reply(l: &Listener, bytes: &[u8], what: &str) -> (u16, String) {
    let mut s = tcp_connect(l.addr, SHORT);
    s.write_all(bytes).unwrap();
    let (reply, r) = read_to_end_bounded(&mut s);
    if let Err(e) = r {
        panic!(
            "{what}: the listener did not close the connection cleanly: {e} (read {} bytes: {reply:02x?}); stderr:\n{}",
            reply.len(),
            l.proc.stderr.text()
        );
    }
    assert!(
        reply.len() >= 6 + 7,
        "{what}: reply too short for preamble + ERROR: {reply:02x?}"
    );
    assert_eq!(
        &reply[..6],
        PREAMBLE,
        "{what}: reply must start with the preamble"
    );
    let f = &reply[6..];
    let len = u32::from_be_bytes([f[0], f[1], f[2], f[3]]) as usize;
    assert_eq!(
        f[4], FRAME_ERROR,
        "{what}: reply frame type {:#04x}, want ERROR",
        f[4]
    );
    assert_eq!(
        f.len(),
        4 + len,
        "{what}: reply must be exactly one ERROR frame (length field {len}, {} bytes follow it)",
        f.len() - 4
    );
    assert!(len >= 3, "{what}: ERROR body too short");
    let code = u16::from_be_bytes([f[5], f[6]]);
    let reason = String::from_utf8(f[7..].to_vec())
        .unwrap_or_else(|_| panic!("{what}: ERROR reason is not UTF-8"));
    assert!(reason.len() <= 1024, "{what}: reason too long");
    (code, reason)
}

/// A normal msock session through `l` (whose stdin is `l_in_data`, consumed by the first
/// session): byte-identical both ways.
fn normal_session(l: &mut Listener, l_out: &std::path::Path, l_in_data: &[u8]) {
    let dir = tempdir();
    let data = seeded_bytes(99, 200_000);
    let c_in = temp_file_with(&data);
    let c_out = dir.path().join("connect.out");
    let mut c = connect(&l.dest(), &[], stdin_from(c_in.path()), stdout_to(&c_out));
    c.expect_code(0, SHORT);
    assert_bytes_eq(&read(&c_out), l_in_data, "connector stdout");
    assert!(
        wait_file_len(l_out, data.len() as u64, SHORT),
        "listener stdout has {} bytes, want {}",
        file_len(l_out),
        data.len()
    );
    assert_bytes_eq(&read(l_out), &data, "listener stdout");
    l.proc.assert_running("-k keeps serving");
}

/// Preamble then garbage of several kinds: each gets preamble + ERROR(protocol) back and is
/// closed; stderr says "garbage"; a normal session through the same -k listener then works.
#[test]
fn garbage_after_preamble_gets_error_frame_and_listener_keeps_serving() {
    let dir = tempdir();
    let l_data = seeded_bytes(98, 150_000);
    let l_in = temp_file_with(&l_data);
    let l_out = dir.path().join("listen.out");
    let mut l = Listener::start(&["-k"], stdin_from(l_in.path()), stdout_to(&l_out));

    let cat = |a: &[u8], b: &[u8]| [a, b].concat();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // (The length is judged once the whole 5-byte header, length and type, is there.)
        (
            "length 0xFFFFFFFF",
            cat(PREAMBLE, &[0xff, 0xff, 0xff, 0xff, 0x10]),
        ),
        (
            "length 65546 (MAX_FRAME_LEN + 1)",
            cat(PREAMBLE, &[0, 1, 0, 0x0a, 0x10]),
        ),
        ("length 0", cat(PREAMBLE, &[0, 0, 0, 0, 0x01])),
        (
            "unknown frame type 0x7e",
            cat(PREAMBLE, &frame(0x7e, &[0u8; 8])),
        ),
        (
            "HELLO(open) with a short body",
            cat(PREAMBLE, &frame(0x01, &[1, 2, 3, 4])),
        ),
        (
            "PING instead of HELLO",
            cat(PREAMBLE, &frame(0x12, &7u64.to_be_bytes())),
        ),
    ];
    for (what, bytes) in &cases {
        let (code, reason) = expect_error_reply(&l, bytes, what);
        assert_eq!(code, CODE_PROTOCOL, "{what}: ERROR code {code} ({reason})");
        l.proc.assert_running(what);
    }
    assert!(
        l.proc.stderr.wait_contains(SHORT, "garbage"),
        "listener stderr should mention garbage:\n{}",
        l.proc.stderr.text()
    );

    // Right magic, wrong version: ERROR(version).
    let (code, reason) = expect_error_reply(&l, b"MSOCK\x02\x00\x00\x00\x01\x01", "version 2");
    assert_eq!(
        code, CODE_VERSION,
        "version 2: ERROR code {code} ({reason})"
    );

    // A well-formed HELLO(attach) for a session that does not exist: ERROR(unknown session).
    let mut attach = 0x1234_5678_9abc_def0u64.to_be_bytes().to_vec();
    attach.extend_from_slice(&0u32.to_be_bytes());
    attach.extend_from_slice(&[7u8; 16]);
    let (code, reason) = expect_error_reply(&l, &cat(PREAMBLE, &frame(0x02, &attach)), "attach");
    assert_eq!(
        code, 3,
        "attach to unknown session: ERROR code {code} ({reason})"
    );

    normal_session(&mut l, &l_out, &l_data);
}

/// A client that sends the preamble and half a frame header, then goes away (close, and
/// half-close): the listener just drops it and keeps serving.
#[test]
fn truncated_frame_then_close_listener_keeps_serving() {
    let dir = tempdir();
    let l_data = seeded_bytes(97, 100_000);
    let l_in = temp_file_with(&l_data);
    let l_out = dir.path().join("listen.out");
    let mut l = Listener::start(&["-k"], stdin_from(l_in.path()), stdout_to(&l_out));

    // Close outright.
    let mut s = tcp_connect(l.addr, SHORT);
    s.write_all(&[PREAMBLE.as_slice(), &[0, 0]].concat())
        .unwrap();
    drop(s);

    // Half-close and wait for the listener to close its side.
    let mut s = tcp_connect(l.addr, SHORT);
    s.write_all(&[PREAMBLE.as_slice(), &[0, 0, 0, 9, 0x12, 1, 2]].concat())
        .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (got, r) = read_to_end_bounded(&mut s);
    assert!(
        r.is_ok() || r.as_ref().unwrap_err().kind() == std::io::ErrorKind::ConnectionReset,
        "listener did not close a truncated client: {r:?}"
    );
    // Nothing but (at most) a preamble and an ERROR is acceptable here; no session data.
    assert!(
        got.len() < 64,
        "listener sent {} bytes to a truncated client",
        got.len()
    );
    l.proc.assert_running("after truncated clients");

    normal_session(&mut l, &l_out, &l_data);
}

/// Garbage from a client while a session is running (no -k): the garbage client is answered
/// and closed; the running session is not disturbed.
#[test]
fn garbage_during_a_session_does_not_disturb_it() {
    let dir = tempdir();
    let l_out = dir.path().join("listen.out");
    let c_out = dir.path().join("connect.out");
    let mut l = Listener::start(&[], Stdio::piped(), stdout_to(&l_out));
    let mut l_in = l.proc.take_stdin();
    let mut c = connect(&l.dest(), &[], Stdio::piped(), stdout_to(&c_out));
    let mut c_in = c.take_stdin();
    c_in.write_all(b"before\n").unwrap();
    assert!(wait_file_len(&l_out, 7, SHORT), "session did not open");

    let (code, _) = expect_error_reply(
        &l,
        &[PREAMBLE.as_slice(), &[0xff, 0xff, 0xff, 0xff, 0x10]].concat(),
        "garbage during a session",
    );
    assert_eq!(code, CODE_PROTOCOL);

    c_in.write_all(b"after\n").unwrap();
    drop(c_in);
    l_in.write_all(b"reply\n").unwrap();
    drop(l_in);
    c.expect_code(0, SHORT);
    l.proc.expect_code(0, SHORT);
    assert_bytes_eq(&read(&l_out), b"before\nafter\n", "listener stdout");
    assert_bytes_eq(&read(&c_out), b"reply\n", "connector stdout");
}

/// Runs `msock ARGS` and asserts exit 2 with a stderr line containing every one of `says`
/// (case-insensitive).
fn expect_usage_error(args: &[&str], says: &[&str]) {
    let e = run(args, SHORT);
    assert_eq!(
        e.code,
        Some(2),
        "msock {args:?} is the user's or the machine's fault (exit 2); stderr: {}",
        e.stderr
    );
    let msg = e.stderr.to_lowercase();
    for s in says {
        assert!(
            msg.contains(&s.to_lowercase()),
            "msock {args:?}: stderr should say {s:?}: {}",
            e.stderr
        );
    }
    assert!(
        !e.stderr.contains("panicked"),
        "msock {args:?} panicked: {}",
        e.stderr
    );
}

/// A port number out of range is the user's typo, not a network failure.
#[test]
fn connect_to_port_out_of_range_exits_2() {
    expect_usage_error(&["connect", "127.0.0.1:99999"], &["99999", "port"]);
    expect_usage_error(&["send-file", "Cargo.toml", "127.0.0.1:70000"], &["70000"]);
}

/// `-s` naming an address this machine does not have: exit 2, saying so (192.0.2.0/24 is
/// reserved for documentation, so no test machine has it).
#[test]
fn connect_from_an_address_not_of_this_machine_exits_2() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let dest = l.local_addr().unwrap().to_string();
    expect_usage_error(&["connect", "-s", "192.0.2.77", &dest], &["192.0.2.77"]);
}

/// `--iface` naming an interface the machine lacks: the user's flags (exit 2).
#[test]
fn connect_with_an_interface_this_machine_lacks_exits_2() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let dest = l.local_addr().unwrap().to_string();
    expect_usage_error(&["connect", "--iface", "nosuch0", &dest], &["nosuch0"]);
}

/// A malformed `--peer-key` is refused before anything is sent (exit 2).
#[test]
fn malformed_peer_key_exits_2() {
    expect_usage_error(
        &["connect", "--peer-key", "SHA256:nope", "127.0.0.1:9"],
        &["fingerprint"],
    );
    expect_usage_error(
        &["connect", "--peer-key", "nope", "127.0.0.1:9"],
        &["SHA256:"],
    );
}

/// A `known_peers` that cannot be read (here a directory) is the local system's problem:
/// exit 2, naming the file, not a network failure.
#[test]
fn unreadable_known_peers_exits_2() {
    let mut l = Listener::start(&[], Stdio::null(), Stdio::null());
    let dir = tempdir();
    std::fs::create_dir(dir.path().join("known_peers")).unwrap();
    let mut cmd = msock(&["connect", &l.dest()]);
    cmd.env("MSOCK_CONFIG_DIR", dir.path());
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let e = Proc::spawn("msock connect", cmd).wait(SHORT);
    l.proc.kill();
    assert_eq!(e.code, Some(2), "stderr: {}", e.stderr);
    assert!(e.stderr.contains("known_peers"), "stderr: {}", e.stderr);
}

/// Durations and sizes too large to mean anything are usage errors that state the limit,
/// never a panic (`1e30` used to panic while parsing, `--keepalive 1e19` once a session ran).
#[test]
fn huge_durations_and_sizes_exit_2_with_the_limit() {
    let cases: &[&[&str]] = &[
        &["connect", "--wait", "1e30", "127.0.0.1:9"],
        &["connect", "--keepalive", "1e19", "127.0.0.1:9"],
        &["connect", "--keepalive", "300000000000y", "127.0.0.1:9"],
        &["connect", "--dead-time", "1e30", "127.0.0.1:9"],
        &["connect", "--idle-timeout", "inf", "127.0.0.1:9"],
        &["connect", "--resume-timeout", "2y", "127.0.0.1:9"],
        &["connect", "--retry-interval", "1e30", "127.0.0.1:9"],
        &["listen", "--detect-wait", "1e30", "0"],
        &["bench", "-t", "1e30", "127.0.0.1:9"],
        &["bench", "-i", "1e30", "127.0.0.1:9"],
        // A listener refuses intervals over a day: the client says so first, as the user's.
        &["bench", "-i", "2d", "127.0.0.1:9"],
        &["bench", "--len", "1T", "127.0.0.1:9"],
        &["bench", "-n", "1e30", "127.0.0.1:9"],
        &["proxy", "--name-ttl", "1e30"],
        &["proxy", "--handshake-timeout", "1e19"],
        &["proxy", "--idle-timeout", "300000000000y"],
    ];
    let mut failures = Vec::new();
    for args in cases {
        let e = run(args, SHORT);
        let says_limit = e.stderr.contains("at most");
        if e.code != Some(2) || !says_limit || e.stderr.contains("panicked") {
            failures.push(format!(
                "msock {args:?}: exit {:?}, stderr {:?}",
                e.code, e.stderr
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "expected exit 2 saying the limit (\"at most ...\"):\n{}",
        failures.join("\n")
    );
}
