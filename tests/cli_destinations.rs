//! Destinations as nc and iperf3 users type them (`HOST PORT` as well as `HOST:PORT`, in
//! every command that dials), and what each dialling command says when the server at the
//! destination does not speak msock: a hint it can act on with its own flags.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

/// `msock listen -k ARGS... ADDR`; returns it and the address it announced.
fn listen_at(addr: &str, args: &[&str], out: Stdio) -> Option<(Proc, SocketAddr)> {
    let mut all = vec!["listen", "-k"];
    all.extend_from_slice(args);
    all.push(addr);
    let mut cmd = msock(&all);
    cmd.stdin(Stdio::null()).stdout(out);
    let mut p = Proc::spawn("msock listen", cmd);
    let line = p.stderr.wait_line(STARTUP, |l| l.contains("listening on "));
    let Some(line) = line else {
        p.kill();
        return None;
    };
    let a = line.rsplit("listening on ").next()?.trim().parse().ok()?;
    Some((p, a))
}

/// Runs `msock ARGS...` with `data` on stdin, in `cwd`, to its end.
fn run_with(args: &[&str], data: &[u8], cwd: &Path) -> Exit {
    let input = temp_file_with(data);
    let mut cmd = msock(args);
    cmd.current_dir(cwd);
    cmd.stdin(stdin_from(input.path())).stdout(Stdio::null());
    Proc::spawn(&format!("msock {}", args.join(" ")), cmd).wait(T)
}

#[test]
fn connect_takes_host_and_port_as_two_arguments() {
    let out = tempdir();
    let (mut l, addr) = listen_at("127.0.0.1:0", &[], stdout_to(&out.path().join("o"))).unwrap();
    let port = addr.port().to_string();
    let e = run_with(&["connect", "127.0.0.1", &port], b"apart\n", out.path());
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    let e = run_with(&["connect", "127.0.0.1:", &port], b"", out.path());
    assert_eq!(e.code, Some(2), "an empty port is no port: {}", e.stderr);
    let e = run_with(&["connect", &addr.to_string()], b"together\n", out.path());
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    assert!(wait_file_len(&out.path().join("o"), 15, T));
    assert_eq!(read(&out.path().join("o")), b"apart\ntogether\n");
    l.assert_running("-k");
}

#[test]
fn ipv6_host_and_port_apart_bracketed_or_not() {
    let out = tempdir();
    let Some((mut l, addr)) = listen_at("[::1]:0", &[], stdout_to(&out.path().join("o"))) else {
        println!("SKIPPED: no IPv6 loopback here (::1)");
        return;
    };
    let port = addr.port().to_string();
    for (host, data) in [("::1", b"bare\n"), ("[::1]", b"brak\n")] {
        let e = run_with(&["connect", host, &port], data, out.path());
        assert_eq!(e.code, Some(0), "connect {host} {port}: {}", e.stderr);
    }
    assert!(wait_file_len(&out.path().join("o"), 10, T));
    assert_eq!(read(&out.path().join("o")), b"bare\nbrak\n");
    l.assert_running("-k");
}

#[test]
fn send_file_and_bench_take_host_and_port_apart() {
    let (src, save) = (tempdir(), tempdir());
    let (file, _) = write_random_file(src.path(), "f.bin", 7, 10_000);
    let save_arg = save.path().to_str().unwrap();
    let (mut l, addr) = listen_at("127.0.0.1:0", &["--save-dir", save_arg], Stdio::null()).unwrap();
    let port = addr.port().to_string();
    let f = file.to_str().unwrap();
    let e = run_with(&["send-file", "-q", f, "127.0.0.1", &port], b"", src.path());
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    assert_eq!(read(&save.path().join("f.bin")), read(&file));
    let e = run_with(
        &["bench", "-t", "300ms", "127.0.0.1", &port],
        b"",
        src.path(),
    );
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    // The rule: the last two are HOST PORT only if the one before the port is not a file. Here
    // a file is named 127.0.0.1, so it is sent, and the port alone is no destination.
    std::fs::write(src.path().join("127.0.0.1"), b"x").unwrap();
    let e = run_with(&["send-file", f, "127.0.0.1", &port], b"", src.path());
    assert_eq!(e.code, Some(2), "{}", e.stderr);
    assert!(e.stderr.contains("port without a host"), "{}", e.stderr);
    l.assert_running("-k");
}

#[test]
fn host_and_port_mistakes_are_usage_errors() {
    let dir = tempdir();
    let cases: &[(&[&str], &str)] = &[
        (&["connect", "127.0.0.1:9", "9020"], "not both"),
        (&["connect", "127.0.0.1", "0"], "not a port number"),
        (&["connect", "127.0.0.1", "http"], "not a port number"),
        (&["connect", "127.0.0.1", "9", "9"], "unexpected argument"),
        (&["bench", "[::1]:9", "9020"], "not both"),
        (&["connect", "9020"], "port without a host"),
        (&["send-file", "Cargo.toml", "h:1", "9020"], "not both"),
    ];
    let mut failures = Vec::new();
    for (args, want) in cases {
        let e = run_with(args, b"", dir.path());
        if e.code != Some(2) || !e.stderr.contains(want) {
            failures.push(format!("msock {args:?}: exit {:?}, {}", e.code, e.stderr));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A TCP server that is not msock: answers every connection with an HTTP error.
fn not_msock_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = c.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n");
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = c.read(&mut [0; 4096]);
            });
        }
    });
    addr
}

/// Each dialling command's hint for a server that is not msock names what it can do, never
/// a flag it does not have.
#[test]
fn each_command_says_what_to_do_when_the_server_is_not_msock() {
    let dir = tempdir();
    let dest = not_msock_server().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["connect"], "--plain"),
        (&["send-file", "Cargo.toml"], "msock listen --save-dir DIR"),
        (&["bench", "-t", "1s"], "iperf3 -c"),
    ];
    let cwd = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (args, want) in cases {
        let mut all = args.to_vec();
        all.push(&dest);
        let e = run_with(&all, b"", cwd);
        assert_eq!(e.code, Some(1), "msock {all:?}: {}", e.stderr);
        assert!(e.stderr.contains("does not speak msock"), "{}", e.stderr);
        assert!(e.stderr.contains(want), "msock {all:?}: {}", e.stderr);
        if args[0] != "connect" {
            assert!(!e.stderr.contains("--plain"), "msock {all:?}: {}", e.stderr);
        }
    }
    // connect --local carries sessions only (--plain conflicts with it).
    let mut cmd = msock(&["connect", "--local", "127.0.0.1:0", &dest]);
    cmd.current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut p = Proc::spawn("msock connect --local", cmd);
    let line = p
        .stderr
        .wait_line(STARTUP, |l| l.contains("listening on "))
        .unwrap_or_else(|| panic!("no port: {}", p.stderr.text()));
    let local: SocketAddr = line
        .rsplit("listening on ")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut c = tcp_connect(local, T);
    let _ = c.write_all(b"hello\n");
    let _ = read_to_end_bounded(&mut c);
    assert!(
        p.stderr.wait_contains(T, "does not speak msock"),
        "{}",
        p.stderr.text()
    );
    let text = p.stderr.text();
    p.kill();
    assert!(text.contains("msock listen --forward"), "{text}");
    assert!(!text.contains("--plain"), "{text}");
}
