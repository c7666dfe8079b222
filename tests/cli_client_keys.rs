//! Client keys end to end: `connect --show-key`, and `listen --authorized-keys FILE` admitting
//! only the clients listed (stream, file and bench sessions alike), refusing the others with one
//! line at each end, and picking up edits of FILE without a restart.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
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

/// Runs `msock ARGS...` (config dir `dir`, stdin from `data`) to its end.
fn run_in(dir: &Path, args: &[&str], data: &[u8]) -> Exit {
    let input = temp_file_with(data);
    let mut cmd = msock_in(dir, args);
    cmd.stdin(stdin_from(input.path())).stdout(Stdio::null());
    let mut p = Proc::spawn(&format!("msock {}", args.join(" ")), cmd);
    p.wait(T)
}

/// The client key fingerprint `msock connect --show-key` prints for config dir `dir`.
fn client_key(dir: &Path) -> String {
    let out = msock_in(dir, &["connect", "--show-key"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let fp = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(fp.starts_with("SHA256:") && fp.len() == 50, "{fp}");
    fp
}

/// Starts `msock -k listen --authorized-keys FILE --save-dir SAVE 127.0.0.1:0` (its own
/// config dir), stdout to `out`; returns it and its address.
fn listener(srv: &Path, keys: &Path, save: &Path, out: &Path) -> (Proc, String) {
    let args = [
        "listen",
        "-k",
        "--authorized-keys",
        keys.to_str().unwrap(),
        "--save-dir",
        save.to_str().unwrap(),
        "127.0.0.1:0",
    ];
    let mut cmd = msock_in(srv, &args);
    cmd.stdin(Stdio::null()).stdout(stdout_to(out));
    let p = Proc::spawn("msock listen", cmd);
    let line = p
        .stderr
        .wait_line(STARTUP, |l| l.contains("listening on "))
        .unwrap_or_else(|| panic!("no port; stderr:\n{}", p.stderr.text()));
    let addr = line
        .rsplit("listening on ")
        .next()
        .unwrap()
        .trim()
        .to_owned();
    (p, addr)
}

#[test]
fn show_key_is_stable_and_private_and_not_the_listener_key() {
    let dir = tempdir();
    let a = client_key(dir.path());
    assert_eq!(a, client_key(dir.path()), "the key is created once");
    let path = dir.path().join("client.key");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        !text.contains(&a),
        "the file holds the private key, not the fingerprint"
    );
    assert!(!dir.path().join("listener.key").exists());
    assert_ne!(
        a,
        client_key(tempdir().path()),
        "each config dir has its own key"
    );
    let out = msock_in(dir.path(), &["listen", "--show-key"])
        .output()
        .unwrap();
    let listener = String::from_utf8(out.stdout).unwrap();
    assert_ne!(a, listener.trim(), "the client key is not the listener key");
}

#[test]
fn only_authorized_clients_are_admitted_and_edits_apply_at_once() {
    let (srv, alice, mallory) = (tempdir(), tempdir(), tempdir());
    let work = tempdir();
    let (save, out) = (work.path().join("saved"), work.path().join("out"));
    let keys = work.path().join("authorized");
    let (a, m) = (client_key(alice.path()), client_key(mallory.path()));
    std::fs::write(
        &keys,
        format!("# who may connect\n\n{a} alice's laptop\n# {m} (not yet)\n"),
    )
    .unwrap();
    let (mut l, dest) = listener(srv.path(), &keys, &save, &out);

    // An authorized client: a byte stream, a file and a benchmark all go through.
    let e = run_in(alice.path(), &["connect", &dest], b"from alice\n");
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    let file = work.path().join("note.txt");
    std::fs::write(&file, b"a file from alice\n").unwrap();
    let e = run_in(
        alice.path(),
        &["send-file", "-q", file.to_str().unwrap(), &dest],
        b"",
    );
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    assert_eq!(read(&save.join("note.txt")), b"a file from alice\n");
    let e = run_in(alice.path(), &["bench", "-t", "300ms", &dest], b"");
    assert_eq!(e.code, Some(0), "{}", e.stderr);

    // An unknown client is refused, every service alike: one line at each end naming its key.
    for args in [
        vec!["connect", dest.as_str()],
        vec!["send-file", "-q", file.to_str().unwrap(), dest.as_str()],
        vec!["bench", "-t", "300ms", dest.as_str()],
    ] {
        let e = run_in(mallory.path(), &args, b"from mallory\n");
        assert_eq!(e.code, Some(1), "{args:?}: {}", e.stderr);
        let want = format!(
            "listener refused key {m}: not in its authorized keys (ask its owner to add this line)"
        );
        assert!(e.stderr.contains(&want), "{args:?}: {}", e.stderr);
    }
    let refused = format!("key {m} (not in {})", keys.display());
    assert!(
        l.stderr.wait_contains(T, &refused),
        "listener: {}",
        l.stderr.text()
    );
    assert!(
        l.stderr.text().contains("refused client 127.0.0.1:"),
        "{}",
        l.stderr.text()
    );
    // Nothing of mallory's reached the listener's output.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(read(&out), b"from alice\n");
    l.assert_running("a refused client does not stop a -k listener");

    // Adding mallory's line admits its next session, without restarting the listener.
    let text = std::fs::read_to_string(&keys).unwrap();
    std::fs::write(&keys, format!("{text}{m}\n")).unwrap();
    let e = run_in(mallory.path(), &["connect", &dest], b"from mallory\n");
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    // Removing alice's (commenting it out) refuses hers.
    std::fs::write(&keys, format!("# {a}\n{m}\n")).unwrap();
    let e = run_in(alice.path(), &["connect", &dest], b"again\n");
    assert_eq!(e.code, Some(1), "{}", e.stderr);
    assert!(e.stderr.contains(&a), "{}", e.stderr);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(read(&out), b"from alice\nfrom mallory\n");
    l.assert_running("-k");
}

#[test]
fn bad_authorized_keys_files_are_usage_errors() {
    let (srv, work) = (tempdir(), tempdir());
    let keys = work.path().join("authorized");
    std::fs::write(&keys, "SHA256:not-a-key\n").unwrap();
    let k = keys.to_str().unwrap();
    let e = run_in(srv.path(), &["listen", "--authorized-keys", k, "0"], b"");
    assert_eq!(e.code, Some(2), "{}", e.stderr);
    assert!(
        e.stderr.contains("line 1") && e.stderr.contains("not a key fingerprint"),
        "{}",
        e.stderr
    );
    let missing = work.path().join("missing");
    let e = run_in(
        srv.path(),
        &[
            "listen",
            "--authorized-keys",
            missing.to_str().unwrap(),
            "0",
        ],
        b"",
    );
    assert_eq!(e.code, Some(2), "{}", e.stderr);
    assert!(e.stderr.contains("cannot read"), "{}", e.stderr);
    // No encryption, no client keys: the combination is refused.
    std::fs::write(&keys, "").unwrap();
    let e = run_in(
        srv.path(),
        &["listen", "--no-encrypt", "--authorized-keys", k, "0"],
        b"",
    );
    assert_eq!(e.code, Some(2), "{}", e.stderr);
}

/// Where clients must prove a key, nothing that proves none gets in: plain TCP cannot be
/// allowed alongside a key requirement, and a plain TCP benchmark (which starts with the
/// bench magic rather than msock's preamble) is refused like any plain client.
#[test]
fn nothing_keyless_reaches_a_listener_that_requires_keys() {
    let (srv, work) = (tempdir(), tempdir());
    let keys = work.path().join("authorized");
    std::fs::write(&keys, "").unwrap();
    let k = keys.to_str().unwrap();
    for extra in [
        &["--allow-plain"][..],
        &["--allow-plain", "--allow-anyone", "--sh-exec", "echo shell"][..],
    ] {
        let mut args = vec!["listen", "--authorized-keys", k, "0"];
        args.extend_from_slice(extra);
        let e = run_in(srv.path(), &args, b"");
        assert_eq!(e.code, Some(2), "{args:?}: {}", e.stderr);
        assert!(e.stderr.contains("--allow-plain"), "{}", e.stderr);
    }
    let (mut l, dest) = {
        let out = work.path().join("out");
        listener(srv.path(), &keys, work.path(), &out)
    };
    let addr: std::net::SocketAddr = dest.parse().unwrap();
    let mut s = tcp_connect(addr, Duration::from_secs(5));
    s.write_all(b"MSBENCH\x01").unwrap();
    let (got, _) = read_to_end_bounded(&mut s);
    assert!(
        got.starts_with(b"msock: this listener speaks msock only"),
        "a plain bench client got {:?}",
        String::from_utf8_lossy(&got)
    );
    l.assert_running("-k");
}
