//! Port forwarding end to end: `msock listen -k --forward HOST:PORT` behind `msock connect
//! --local PORT`, with small TCP servers of our own (echo, half-closing ones), then real
//! programs nobody here wrote: OpenSSH (`ssh` through `--local` and as a ProxyCommand to a
//! throwaway `sshd`) and `curl` fetching from `python3 -m http.server`.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::sshd::{skip_without, Sshd};
use common::*;
use sha2::{Digest, Sha256};

/// Bound on every wait in these tests.
const T: Duration = Duration::from_secs(60);

/// A forwarding listener and a `connect --local` in front of it.
struct Chain {
    listener: Listener,
    local: Proc,
    /// Where programs connect: the `--local` port.
    addr: SocketAddr,
}

/// Starts `listen -k --forward TARGET LISTEN_EXTRA...` and `connect --local 0 CONNECT_EXTRA...`
/// to it; waits until both listen.
fn chain(target: SocketAddr, listen_extra: &[&str], connect_extra: &[&str]) -> Chain {
    let target = target.to_string();
    let mut args = vec!["-k", "--forward", &target];
    args.extend_from_slice(listen_extra);
    let listener = Listener::start(&args, Stdio::null(), Stdio::null());
    let dest = listener.dest();
    let mut args = vec!["connect", "--local", "0"];
    args.extend_from_slice(connect_extra);
    args.push(&dest);
    let mut cmd = msock(&args);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut local = Proc::spawn("msock connect --local", cmd);
    let Some(line) = (local.stderr).wait_line(STARTUP, |l| l.starts_with("msock: listening on "))
    else {
        local.kill();
        panic!("connect --local did not listen: {}", local.stderr.text());
    };
    let addr = line["msock: listening on ".len()..].trim().parse().unwrap();
    Chain {
        listener,
        local,
        addr,
    }
}

/// A TCP server on loopback that runs `serve` on each connection, in a thread of its own;
/// counts the connections it accepted.
fn server(serve: impl Fn(TcpStream) + Send + Sync + 'static) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let (serve, n) = (Arc::new(serve), count.clone());
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            n.fetch_add(1, Ordering::SeqCst);
            s.set_read_timeout(Some(T)).unwrap();
            let serve = serve.clone();
            thread::spawn(move || serve(s));
        }
    });
    (addr, count)
}

/// Echoes until end of input, then ends its own sending side.
fn echo(mut s: TcpStream) {
    let mut r = s.try_clone().unwrap();
    let _ = std::io::copy(&mut r, &mut s);
    let _ = s.shutdown(Shutdown::Write);
}

/// Sends `data` on a thread of its own and ends the sending side; returns what came back
/// until the peer's end of stream.
fn round_trip(addr: SocketAddr, data: Vec<u8>) -> Vec<u8> {
    let mut s = tcp_connect(addr, T);
    let mut w = s.try_clone().unwrap();
    let writer = thread::spawn(move || {
        w.write_all(&data).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let (got, r) = read_to_end_bounded(&mut s);
    r.unwrap_or_else(|e| panic!("reading the echo: {e} after {} bytes", got.len()));
    writer.join().unwrap();
    got
}

#[test]
fn forward_and_local_carry_concurrent_connections_byte_identical() {
    let (target, accepted) = server(echo);
    let c = chain(target, &["--allow-anyone"], &[]);
    // One connection stays open the whole time: the others must not wait for it.
    let mut held = tcp_connect(c.addr, T);
    held.write_all(b"first").unwrap();
    let mut buf = [0u8; 5];
    held.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"first");
    let clients: Vec<_> = (0..4u64)
        .map(|i| {
            let addr = c.addr;
            thread::spawn(move || {
                let data = seeded_bytes(i, 3 << 20);
                let got = round_trip(addr, data.clone());
                assert_bytes_eq(&got, &data, &format!("client {i}'s echo"));
            })
        })
        .collect();
    for t in clients {
        t.join().unwrap();
    }
    held.write_all(b" and last").unwrap();
    held.shutdown(Shutdown::Write).unwrap();
    let (rest, r) = read_to_end_bounded(&mut held);
    r.unwrap();
    assert_eq!(rest, b" and last");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        5,
        "one target connection each"
    );
    let mut c = c;
    c.listener.proc.assert_running("a -k forward listener");
    c.local
        .assert_running("connect --local serves until interrupted");
    // Ctrl-C ends connect --local with 130.
    assert!(catches_sigint(&c.local, T));
    sigint(&c.local);
    c.local.expect_code(130, T);
}

#[test]
fn half_closes_pass_through_both_ways() {
    // Client stops sending first: the target reads end of stream, then still answers.
    let (target, _) = server(|mut s| {
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        let mut answer = Sha256::digest(&got).to_vec();
        answer.extend_from_slice(&seeded_bytes(7, 1 << 20));
        s.write_all(&answer).unwrap();
    });
    let c = chain(target, &["--allow-anyone"], &[]);
    let data = seeded_bytes(3, 2 << 20);
    let got = round_trip(c.addr, data.clone());
    assert_eq!(got.len(), 32 + (1 << 20), "hash and answer after our EOF");
    assert_eq!(
        &got[..32],
        Sha256::digest(&data).as_slice(),
        "what the target read"
    );
    assert_bytes_eq(
        &got[32..],
        &seeded_bytes(7, 1 << 20),
        "the answer after our EOF",
    );

    // The target stops sending first: we read end of stream, then still send.
    let (tx, rx) = mpsc::channel();
    let (target, _) = server(move |mut s| {
        s.write_all(&seeded_bytes(8, 1 << 20)).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        let r = s.read_to_end(&mut got);
        tx.send((r.map(|_| got), Instant::now())).unwrap();
    });
    let c2 = chain(target, &["--allow-anyone"], &[]);
    let mut s = tcp_connect(c2.addr, T);
    let (greeting, r) = read_to_end_bounded(&mut s);
    r.expect("the target's bytes, then end of stream");
    assert_bytes_eq(&greeting, &seeded_bytes(8, 1 << 20), "the target's bytes");
    let late = seeded_bytes(9, 1 << 20);
    s.write_all(&late)
        .expect("sending after the peer's end of stream");
    s.shutdown(Shutdown::Write).unwrap();
    let (got, _) = rx.recv_timeout(T).expect("the target read to its end");
    assert_bytes_eq(&got.unwrap(), &late, "what the target read after its EOF");
    drop(c);
}

#[test]
fn an_unreachable_target_is_named_at_both_ends() {
    let dead = dead_port().to_string();
    let l = Listener::start(
        &["--forward", &dead, "--allow-anyone"],
        Stdio::null(),
        Stdio::null(),
    );
    let mut c = connect(&l.dest(), &[], Stdio::null(), Stdio::null());
    let e = c.expect_code(1, T);
    assert!(
        e.stderr.contains(&format!("forward target {dead}")),
        "the client names the target: {}",
        e.stderr
    );
    let mut l = l;
    let e = l.proc.expect_code(1, T);
    assert!(e.stderr.contains(&dead), "the listener too: {}", e.stderr);

    // Through --local: the program's connection ends without a byte, and connect says why.
    let c = chain(dead.parse().unwrap(), &["--allow-anyone"], &[]);
    let mut s = tcp_connect(c.addr, T);
    let (got, _) = read_to_end_bounded(&mut s);
    assert!(got.is_empty());
    assert!(
        c.local
            .stderr
            .wait_contains(T, &format!("forward target {dead}")),
        "{}",
        c.local.stderr.text()
    );
}

#[test]
fn forward_needs_a_key_or_allow_anyone() {
    let e = run(&["listen", "--forward", "127.0.0.1:22", "127.0.0.1:0"], T);
    assert_eq!(e.code, Some(2), "{}", e.stderr);
    assert!(e.stderr.contains("--psk-file") && e.stderr.contains("--allow-anyone"));
    let e = run(
        &["listen", "--forward", "nowhere", "--allow-anyone", "0"],
        T,
    );
    assert_eq!(e.code, Some(2), "{}", e.stderr);
    assert!(e.stderr.contains("HOST:PORT"), "{}", e.stderr);

    // With a pre-shared key it runs; clients without the key, and plain TCP clients (which
    // cannot prove one: they are told so in a line), never reach the target.
    let psk = temp_file_with(b"forwarding test key");
    let psk = psk.path().to_str().unwrap().to_owned();
    let (target, accepted) = server(echo);
    let c = chain(target, &["--psk-file", &psk], &["--psk-file", &psk]);
    assert_eq!(
        round_trip(c.addr, b"with the key".to_vec()),
        b"with the key"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    let mut nokey = connect(&c.listener.dest(), &[], Stdio::null(), Stdio::null());
    nokey.expect_code(1, T);
    let mut plain = tcp_connect(c.listener.addr, T);
    plain.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let (got, _) = read_to_end_bounded(&mut plain);
    assert!(
        got.starts_with(b"msock: ") && !got.windows(3).any(|w| w == b"GET"),
        "a plain client got {got:?}"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "only the client with the key"
    );
}

/// Reads `r` to its end, hashing; returns the hex SHA-256 and the length.
fn hash_stream(mut r: impl Read) -> (String, u64) {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(k) => {
                h.update(&buf[..k]);
                n += k as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("reading ssh's output: {e}"),
        }
    }
    (hex(&h.finalize()), n)
}

/// The remote command: 100 MiB of random bytes on stdout, their SHA-256 on stderr.
const DOWNLOAD: &str =
    "bash -c '{ head -c 100M /dev/urandom | tee /dev/fd/3 | sha256sum >&2; } 3>&1'";

/// Runs `cmd` (ssh) with its output hashed; asserts it succeeded and that the hash the remote
/// side printed on stderr is the hash of what arrived.
fn check_download(name: &str, mut cmd: Command) {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let mut p = Proc::spawn(name, cmd);
    let (got, len) = hash_stream(p.take_stdout());
    let e = p.expect_code(0, T);
    assert_eq!(len, 100 << 20, "{name}: bytes; stderr: {}", e.stderr);
    assert!(
        e.stderr.contains(&got),
        "{name}: the remote hash differs from {got}: {}",
        e.stderr
    );
}

const SSH_TOOLS: &[&str] = &["sshd", "ssh", "ssh-keygen", "bash", "sha256sum"];

#[test]
fn real_ssh_through_local_forward() {
    if skip_without("real_ssh_through_local_forward", SSH_TOOLS) {
        return;
    }
    let sshd = Sshd::start();
    let psk = temp_file_with(b"ssh test key");
    let psk = psk.path().to_str().unwrap().to_owned();
    let target: SocketAddr = format!("127.0.0.1:{}", sshd.port).parse().unwrap();
    let c = chain(target, &["--psk-file", &psk], &["--psk-file", &psk]);
    let ssh = sshd.ssh("127.0.0.1", c.addr.port(), &[], DOWNLOAD);
    check_download("ssh via connect --local", ssh);
}

#[test]
fn real_ssh_with_msock_as_proxy_command() {
    if skip_without("real_ssh_with_msock_as_proxy_command", SSH_TOOLS) {
        return;
    }
    let sshd = Sshd::start();
    let target = format!("127.0.0.1:{}", sshd.port);
    let l = Listener::start(
        &["-k", "--forward", &target, "--allow-anyone"],
        Stdio::null(),
        Stdio::null(),
    );
    let proxy = format!(
        "ProxyCommand={} connect %h:{}",
        bin().display(),
        l.addr.port()
    );
    let with_proxy = |remote: &str| {
        let mut c = sshd.ssh("127.0.0.1", 1, &["-o", &proxy], remote);
        c.env("MSOCK_CONFIG_DIR", test_config_dir());
        c
    };
    check_download("ssh with ProxyCommand", with_proxy(DOWNLOAD));
    // Upload: ssh's stdin through msock's stdin, binary clean.
    let dir = tempdir();
    let (file, want) = write_random_file(dir.path(), "up.bin", 11, 20 << 20);
    let mut up = with_proxy("sha256sum");
    up.stdin(stdin_from(&file)).stdout(Stdio::piped());
    let mut p = Proc::spawn("ssh upload with ProxyCommand", up);
    let mut out = String::new();
    p.take_stdout().read_to_string(&mut out).unwrap();
    p.expect_code(0, T);
    assert!(
        out.starts_with(&hex(&want)),
        "remote hash {out}, sent {}",
        hex(&want)
    );
}

#[test]
fn curl_through_forward_and_local() {
    if skip_without("curl_through_forward_and_local", &["curl", "python3"]) {
        return;
    }
    let dir = tempdir();
    let (_, want) = write_random_file(dir.path(), "file.bin", 5, 30 << 20);
    let port = dead_port().port();
    let mut http = Command::new("python3");
    http.args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"]);
    http.arg(dir.path()).arg(port.to_string());
    http.stdin(Stdio::null()).stdout(Stdio::null());
    let _http = Proc::spawn("python3 -m http.server", http);
    let target: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + T;
    while TcpStream::connect(target).is_err() {
        assert!(Instant::now() < deadline, "http.server did not start");
        thread::sleep(Duration::from_millis(20));
    }
    let c = chain(target, &["--allow-anyone"], &[]);
    let out = dir.path().join("got.bin");
    let mut curl = Command::new("curl");
    curl.args(["-sS", "--fail", "--max-time", "60", "-o"])
        .arg(&out);
    curl.arg(format!("http://{}/file.bin", c.addr));
    curl.stdin(Stdio::null()).stdout(Stdio::null());
    Proc::spawn("curl", curl).expect_code(0, T);
    let (got, len) = sha256_file(&out);
    assert_eq!(len, 30 << 20);
    assert_eq!(hex(&got), hex(&want), "curl's download differs");
}
