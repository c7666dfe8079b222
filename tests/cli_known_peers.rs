//! Listener keys pinned the way ssh pins host keys: per host (every port of it), the name
//! and the address it resolved to recognised together, the matching line named, old files
//! migrated, and `msock connect --forget-key DEST`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

/// `msock ARGS...` with its own config directory.
fn msock_in(dir: &Path, args: &[&str]) -> std::process::Command {
    let mut c = msock(args);
    c.env("MSOCK_CONFIG_DIR", dir);
    c
}

/// `msock listen -k 127.0.0.1:0` with config dir `dir` (its key); returns it and its address.
fn listen_in(dir: &Path) -> (Proc, SocketAddr) {
    let mut cmd = msock_in(dir, &["listen", "-k", "127.0.0.1:0"]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
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

/// `msock -v connect ARGS...` (config dir `dir`, nothing on stdin) to its end.
fn connect_in(dir: &Path, args: &[&str]) -> Exit {
    let mut all = vec!["-v", "connect"];
    all.extend_from_slice(args);
    let mut cmd = msock_in(dir, &all);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    Proc::spawn(&format!("msock {}", all.join(" ")), cmd).wait(T)
}

fn fingerprint_of(dir: &Path) -> String {
    let out = msock_in(dir, &["listen", "--show-key"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The lines of `known_peers` that pin keys (not the header).
fn entries(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join("known_peers")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn localhost_is_127_0_0_1() -> bool {
    use std::net::ToSocketAddrs;
    ("localhost", 1)
        .to_socket_addrs()
        .is_ok_and(|mut a| a.any(|a| a.ip().to_string() == "127.0.0.1"))
}

/// Ephemeral ports do not pile up lines, and `localhost` after `127.0.0.1` is no new first
/// contact: the line that matched is named.
#[test]
fn one_line_per_host_whatever_the_port_or_the_name() {
    let (client, srv) = (tempdir(), tempdir());
    let fp = fingerprint_of(srv.path());
    let mut ports = Vec::new();
    for i in 0..3 {
        let (mut l, addr) = listen_in(srv.path());
        let e = connect_in(client.path(), &[&addr.to_string()]);
        assert_eq!(e.code, Some(0), "{}", e.stderr);
        let want = if i == 0 {
            "pinned now"
        } else {
            "matches known_peers line 2 (127.0.0.1)"
        };
        assert!(e.stderr.contains(want), "port {i}: {}", e.stderr);
        ports.push(addr.port());
        l.kill();
    }
    assert_eq!(entries(client.path()), vec![format!("127.0.0.1 {fp}")]);
    if !localhost_is_127_0_0_1() {
        println!("SKIPPED (the name part): localhost does not resolve to 127.0.0.1 here");
        return;
    }
    let (mut l, addr) = listen_in(srv.path());
    let e = connect_in(client.path(), &["localhost", &addr.port().to_string()]);
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    assert!(
        e.stderr
            .contains("matches known_peers line 2 (127.0.0.1, by the address"),
        "{}",
        e.stderr
    );
    assert_eq!(
        entries(client.path()),
        vec![format!("127.0.0.1,localhost {fp}")]
    );
    let e = connect_in(client.path(), &[&format!("localhost:{}", addr.port())]);
    assert!(e.stderr.contains("(127.0.0.1,localhost)"), "{}", e.stderr);
    l.kill();
}

/// Another key at a pinned host is refused naming the file and line; --forget-key removes
/// it (saying what it removed) and the next connection pins the new key; a line for one port
/// admits a second listener of its own there.
#[test]
fn a_changed_key_names_its_line_and_forget_key_removes_it() {
    let (client, srv1, srv2) = (tempdir(), tempdir(), tempdir());
    let (fp1, fp2) = (fingerprint_of(srv1.path()), fingerprint_of(srv2.path()));
    let (mut l1, a1) = listen_in(srv1.path());
    let e = connect_in(client.path(), &[&a1.to_string()]);
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    let (mut l2, a2) = listen_in(srv2.path());
    let e = connect_in(client.path(), &[&a2.to_string()]);
    assert_eq!(e.code, Some(1), "{}", e.stderr);
    let file = client.path().join("known_peers");
    for want in [
        fp1.clone(),
        fp2.clone(),
        format!("{} line 2", file.display()),
        "--forget-key 127.0.0.1".to_owned(),
        format!("[127.0.0.1]:{}", a2.port()),
    ] {
        assert!(e.stderr.contains(&want), "want {want}: {}", e.stderr);
    }
    // A line for that one port admits the second listener; the first keeps its pin.
    let pinned = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, format!("{pinned}[127.0.0.1]:{} {fp2}\n", a2.port())).unwrap();
    let e = connect_in(client.path(), &[&a2.to_string()]);
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    assert!(e.stderr.contains("line 3"), "{}", e.stderr);
    assert_eq!(connect_in(client.path(), &[&a1.to_string()]).code, Some(0));
    std::fs::write(&file, &pinned).unwrap();
    // Forget it: what went is said, exit 0; again, nothing is pinned, still exit 0.
    let out = msock_in(client.path(), &["connect", "--forget-key", "127.0.0.1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("removed from {}: 127.0.0.1 {fp1}", file.display())),
        "{err}"
    );
    assert!(entries(client.path()).is_empty());
    let out = msock_in(client.path(), &["connect", "--forget-key", &a1.to_string()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("no key pinned for"), "{err}");
    let e = connect_in(client.path(), &[&a2.to_string()]);
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    assert!(e.stderr.contains("pinned now"), "{}", e.stderr);
    l1.kill();
    l2.kill();
}

/// A known_peers file of the old format (one `HOST:PORT FINGERPRINT` line per destination)
/// keeps its pins and is rewritten with one line per host.
#[test]
fn old_known_peers_files_are_migrated() {
    let (client, srv) = (tempdir(), tempdir());
    let fp = fingerprint_of(srv.path());
    let other = "SHA256:".to_owned() + &"B".repeat(43);
    let old = format!(
        "127.0.0.1:40001 {fp}\n127.0.0.1:40002 {fp}\n[::1]:40003 {fp}\nexample.net:1 {other}\n"
    );
    std::fs::write(client.path().join("known_peers"), old).unwrap();
    let (mut l, addr) = listen_in(srv.path());
    let e = connect_in(client.path(), &[&addr.to_string()]);
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    assert!(e.stderr.contains("matches known_peers"), "{}", e.stderr);
    assert_eq!(
        entries(client.path()),
        vec![
            format!("127.0.0.1 {fp}"),
            format!("::1 {fp}"),
            format!("example.net {other}")
        ]
    );
    l.kill();
}
