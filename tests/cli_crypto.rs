//! Encryption end to end: keys, pinning, refusals that never downgrade, pre-shared keys, and a
//! middlebox that flips one bit (the flowpath dies, the stream arrives intact).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

/// `msock ARGS...` with its own config directory.
fn msock_in(dir: &Path, args: &[&str]) -> std::process::Command {
    let mut c = msock(args);
    c.env("MSOCK_CONFIG_DIR", dir);
    c
}

/// Starts `msock listen ARGS... ADDR` with config dir `dir`; returns it and its address.
fn listen_in(dir: &Path, addr: &str, args: &[&str], out: Stdio) -> (Proc, SocketAddr) {
    // -v: a listener on a fixed port announces it only in its log.
    let mut all = vec!["-v", "listen"];
    all.extend_from_slice(args);
    all.push(addr);
    let mut cmd = msock_in(dir, &all);
    cmd.stdin(Stdio::null()).stdout(out);
    let p = Proc::spawn("msock listen", cmd);
    let line = p
        .stderr
        .wait_line(STARTUP, |l| l.contains("listening on "))
        .unwrap_or_else(|| panic!("no port; stderr:\n{}", p.stderr.text()));
    let a = line
        .rsplit("listening on ")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (p, a)
}

/// Sends `data` with `msock connect ARGS... DEST` (config dir `dir`); returns its exit.
fn send(dir: &Path, dest: &str, args: &[&str], data: &[u8]) -> Exit {
    let input = temp_file_with(data);
    let mut all = vec!["connect"];
    all.extend_from_slice(args);
    all.push(dest);
    let mut cmd = msock_in(dir, &all);
    cmd.stdin(stdin_from(input.path())).stdout(Stdio::null());
    let mut p = Proc::spawn("msock connect", cmd);
    p.wait(T)
}

fn fingerprint_of(dir: &Path) -> String {
    let out = msock_in(dir, &["listen", "--show-key"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let fp = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(fp.starts_with("SHA256:"), "{fp}");
    fp
}

fn client_key(dir: &Path) -> String {
    let out = msock_in(dir, &["connect", "--show-key"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn show_key_is_stable_and_private() {
    let dir = tempdir();
    let a = fingerprint_of(dir.path());
    assert_eq!(a, fingerprint_of(dir.path()), "the key is created once");
    let meta = std::fs::metadata(dir.path().join("listener.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_ne!(
        a,
        fingerprint_of(tempdir().path()),
        "each listener has its own key"
    );
}

#[test]
fn a_changed_listener_key_is_refused_with_both_fingerprints() {
    let (client, srv1, srv2) = (tempdir(), tempdir(), tempdir());
    let out = tempdir();
    let (mut l, addr) = listen_in(
        srv1.path(),
        "127.0.0.1:0",
        &[],
        stdout_to(&out.path().join("1")),
    );
    let dest = addr.to_string();
    let e = send(client.path(), &dest, &["-v"], b"first contact\n");
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    assert!(e.stderr.contains("pinned now"), "{}", e.stderr);
    l.expect_code(0, T);
    // Another listener (another key) on the same address.
    let (mut l2, _) = listen_in(srv2.path(), &dest, &[], stdout_to(&out.path().join("2")));
    let e = send(client.path(), &dest, &[], b"must not arrive\n");
    assert_eq!(e.code, Some(1), "{}", e.stderr);
    let (old, new) = (fingerprint_of(srv1.path()), fingerprint_of(srv2.path()));
    assert!(
        e.stderr.contains(&old) && e.stderr.contains(&new),
        "{}",
        e.stderr
    );
    assert!(
        e.stderr.contains("known_peers"),
        "says where the pin is: {}",
        e.stderr
    );
    // Nothing reached the impostor's output, and it still waits for a real session.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(std::fs::read(out.path().join("2")).unwrap(), b"");
    // The client's key went to the listener it trusted, never to the impostor: it is sent
    // (encrypted) only after the listener's key checked out.
    let client_fp = client_key(client.path());
    let log1 = l.stderr.text();
    assert!(log1.contains(&format!("client key {client_fp}")), "{log1}");
    assert!(
        l2.stderr.wait_contains(T, "before sending its key"),
        "{}",
        l2.stderr.text()
    );
    assert!(
        !l2.stderr.text().contains(&client_fp),
        "{}",
        l2.stderr.text()
    );
    l2.assert_running("a listener whose client refused it keeps waiting");
}

#[test]
fn peer_key_pins_explicitly() {
    let (client, srv) = (tempdir(), tempdir());
    let fp = fingerprint_of(srv.path());
    let (mut l, addr) = listen_in(srv.path(), "127.0.0.1:0", &["-k"], Stdio::null());
    let dest = addr.to_string();
    let e = send(client.path(), &dest, &["--peer-key", &fp], b"ok\n");
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    let wrong = fingerprint_of(tempdir().path());
    let e = send(client.path(), &dest, &["--peer-key", &wrong], b"no\n");
    assert_eq!(e.code, Some(1), "{}", e.stderr);
    assert!(e.stderr.contains("--peer-key"), "{}", e.stderr);
    // --peer-key pins nothing.
    assert!(!client.path().join("known_peers").exists());
    l.assert_running("-k");
}

#[test]
fn no_encrypt_mismatch_is_refused_both_ways_and_never_downgraded() {
    let (client, srv) = (tempdir(), tempdir());
    for (listen_flags, connect_flags, want) in [
        (vec![], vec!["--no-encrypt"], "requires encryption"),
        (vec!["--no-encrypt"], vec![], "encryption off"),
    ] {
        let out = tempdir();
        let file = out.path().join("got");
        let (mut l, addr) = listen_in(srv.path(), "127.0.0.1:0", &listen_flags, stdout_to(&file));
        let e = send(
            client.path(),
            &addr.to_string(),
            &connect_flags,
            b"secret\n",
        );
        assert_eq!(e.code, Some(1), "{}", e.stderr);
        assert!(
            e.stderr.contains(want) && e.stderr.contains("--no-encrypt"),
            "{}",
            e.stderr
        );
        // The listener (no -k) is still there: a refused client is not a session.
        l.assert_running("refused client");
        assert_eq!(std::fs::read(&file).unwrap(), b"");
        // And with matching flags the same listener serves the next client.
        let e = send(client.path(), &addr.to_string(), &listen_flags, b"fine\n");
        assert_eq!(e.code, Some(0), "{}", e.stderr);
        l.expect_code(0, T);
        assert_eq!(std::fs::read(&file).unwrap(), b"fine\n");
    }
}

#[test]
fn pre_shared_keys_must_match() {
    let (client, srv, files) = (tempdir(), tempdir(), tempdir());
    let (a, b) = (files.path().join("a"), files.path().join("b"));
    std::fs::write(&a, "correct horse\n").unwrap();
    std::fs::write(&b, "battery staple\n").unwrap();
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let got = files.path().join("got");
    let (mut l, addr) = listen_in(
        srv.path(),
        "127.0.0.1:0",
        &["--psk-file", a],
        stdout_to(&got),
    );
    let dest = addr.to_string();
    let e = send(client.path(), &dest, &["--psk-file", b], b"wrong key\n");
    assert_eq!(e.code, Some(1), "{}", e.stderr);
    assert!(e.stderr.contains("pre-shared keys differ"), "{}", e.stderr);
    let e = send(client.path(), &dest, &[], b"no key\n");
    assert_eq!(e.code, Some(1), "{}", e.stderr);
    assert!(e.stderr.contains("--psk-file"), "{}", e.stderr);
    let e = send(client.path(), &dest, &["--psk-file", a], b"right key\n");
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    l.expect_code(0, T);
    assert_eq!(std::fs::read(&got).unwrap(), b"right key\n");
}

/// A TCP relay to `to` that flips one bit of the client's bytes, once, `at` bytes into the
/// first connection; later connections pass untouched.
fn bit_flipper(to: SocketAddr, at: usize) -> (SocketAddr, Arc<AtomicBool>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let flipped = Arc::new(AtomicBool::new(false));
    let f2 = flipped.clone();
    std::thread::spawn(move || {
        let mut first = true;
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let Ok(mut s) = TcpStream::connect(to) else {
                return;
            };
            let (mut c2, mut s2) = (c.try_clone().unwrap(), s.try_clone().unwrap());
            // The listener's reset, seen by the writing thread: a socket reports its error
            // to one call only, so the reading thread may then see an end of stream instead.
            let reset = Arc::new(AtomicBool::new(false));
            let reset2 = reset.clone();
            std::thread::spawn(move || {
                // Like a network path: an end of stream passes as one, a reset as a reset.
                let copied = std::io::copy(&mut s2, &mut c2).map(|_| {
                    // Give the other thread time to say the end was a reset it consumed.
                    std::thread::sleep(Duration::from_millis(100));
                });
                match copied {
                    Ok(()) if !reset2.load(Ordering::SeqCst) => {
                        let _ = c2.shutdown(std::net::Shutdown::Write);
                    }
                    _ => {
                        let _ = socket2::SockRef::from(&c2).set_linger(Some(Duration::ZERO));
                        // Wakes the other direction's reader; the last close then resets.
                        let _ = c2.shutdown(std::net::Shutdown::Read);
                    }
                }
            });
            let tamper = std::mem::take(&mut first);
            let f3 = f2.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 << 10];
                let mut seen = 0usize;
                loop {
                    let n = match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if tamper && !f3.load(Ordering::SeqCst) && seen + n > at {
                        buf[at - seen] ^= 0x10;
                        f3.store(true, Ordering::SeqCst);
                    }
                    seen += n;
                    if s.write_all(&buf[..n]).is_err() {
                        reset.store(true, Ordering::SeqCst);
                        break;
                    }
                }
                let _ = s.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, flipped)
}

#[test]
fn a_flipped_bit_kills_the_flowpath_not_the_stream() {
    let (client, srv, files) = (tempdir(), tempdir(), tempdir());
    let data = seeded_bytes(8, 20 << 20);
    let got = files.path().join("got");
    let (mut l, addr) = listen_in(srv.path(), "127.0.0.1:0", &[], stdout_to(&got));
    let (via, flipped) = bit_flipper(addr, 3 << 20);
    let e = send(client.path(), &via.to_string(), &["-v"], &data);
    if e.code != Some(0) {
        l.kill();
        panic!(
            "the client failed ({:?}):\n{}\nthe listener said:\n{}",
            e.code,
            e.stderr,
            l.stderr.text()
        );
    }
    let le = l.expect_code(0, T);
    assert!(flipped.load(Ordering::SeqCst), "the relay flipped a bit");
    assert!(
        le.stderr.contains("failed authentication"),
        "the listener noticed: {}",
        le.stderr
    );
    assert_bytes_eq(&read(&got), &data, "stream through the bit-flipping relay");
}

/// A mistyped --peer-key (truncated, without `SHA256:`, a stray character) is a usage error
/// said before connecting (exit 2; nothing listens on the port, so a connection attempt would
/// have exited 1), in every command that dials.
#[test]
fn malformed_peer_key_is_a_usage_error() {
    let digest = "A".repeat(43);
    let bad = [
        "SHA256:abc".to_owned(),
        digest.clone(),
        format!("SHA256:{}!", &digest[..42]),
        format!("SHA256:{digest}A"),
    ];
    let mut failures = Vec::new();
    for fp in &bad {
        for cmd in [
            vec!["connect", "--peer-key", fp, "127.0.0.1:1"],
            vec!["send-file", "--peer-key", fp, "Cargo.toml", "127.0.0.1:1"],
            vec!["bench", "--peer-key", fp, "127.0.0.1:1"],
        ] {
            let e = run(&cmd, Duration::from_secs(20));
            if e.code != Some(2) || !e.stderr.contains("not a key fingerprint") {
                failures.push(format!("msock {cmd:?}: exit {:?}, {}", e.code, e.stderr));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // A well-formed fingerprint passes the check (and the refused connection exits 1).
    let good = format!("SHA256:{digest}");
    let e = run(
        &["connect", "--peer-key", &good, "127.0.0.1:1"],
        Duration::from_secs(20),
    );
    assert_eq!(e.code, Some(1), "{}", e.stderr);
}
