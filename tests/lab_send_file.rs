//! `msock send-file` rides on the session's mobility and multipath, in real network
//! namespaces: a folder sent while the client's address changes arrives verified, and a
//! striped transfer uses both of the client's interfaces (as its JSON summary reports).
//!
//! They need root; elsewhere they print `SKIPPED: ...` and pass (see `tests/lab/mod.rs`).

mod lab;

use std::path::Path;
use std::time::Duration;

use lab::{assert_same_file, payload, Lab, LabProc, Topology};
use serde_json::Value;

const MB: u64 = 1 << 20;
const LIMIT: Duration = Duration::from_secs(90);

/// Starts `msock listen 0 --save-dir DIR` in `srv`; returns it and its port.
fn receiver(lab: &Lab, dir: &Path) -> (LabProc, String) {
    let msock = env!("CARGO_BIN_EXE_msock");
    let cmd = lab.exec(
        "srv",
        msock,
        &[
            "-v",
            "listen",
            "0",
            "-4",
            "--save-dir",
            dir.to_str().unwrap(),
        ],
    );
    let mut server = lab.spawn(cmd, LIMIT);
    let port = server.wait_stderr_line("msock: listening on 0.0.0.0:", Duration::from_secs(10));
    (server, port.trim().to_owned())
}

/// Starts `msock send-file ARGS... --json` in `cli`, stdout to `out`.
fn sender(lab: &Lab, args: &[&str], out: &tempfile::NamedTempFile) -> LabProc {
    let msock = env!("CARGO_BIN_EXE_msock");
    let args = [&["send-file"], args, &["--json"]].concat();
    let mut cmd = lab.exec("cli", msock, &args);
    cmd.stdout(out.reopen().unwrap());
    lab.spawn(cmd, LIMIT)
}

/// The JSON summary `send-file --json` printed on stdout.
fn summary(p: &LabProc, out: &tempfile::NamedTempFile) -> Value {
    let text = std::fs::read_to_string(out.path()).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "no JSON summary on stdout: {text:?}\nstderr: {}",
                p.stderr()
            )
        });
    serde_json::from_str(line).expect("summary parses")
}

#[test]
fn folder_arrives_verified_across_a_client_address_change() {
    let Some(lab) = Lab::up(
        "folder_arrives_verified_across_a_client_address_change",
        Topology::Mobile,
    ) else {
        return;
    };
    lab.shape("rt", "srv0", 400_000_000);
    let src = tempfile::tempdir().unwrap();
    let tree = src.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    let a = payload(120 * MB, 1);
    let b = payload(3 * MB, 2);
    std::fs::copy(a.path(), tree.join("a.bin")).unwrap();
    std::fs::copy(b.path(), tree.join("sub/b.bin")).unwrap();
    let dst = tempfile::tempdir().unwrap();
    let (mut server, port) = receiver(&lab, dst.path());
    let dest = format!("10.99.2.2:{port}");
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut client = sender(
        &lab,
        &[tree.to_str().unwrap(), &dest, "--json-events"],
        &out,
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !dst.path().join("tree/a.bin").exists(),
        "the move should come mid-transfer, but a.bin was complete after 1 s"
    );
    let new = lab.addr_move("cli", "eth0");
    client.expect_exit(0);
    server.expect_exit(0);
    assert_same_file(a.path(), &dst.path().join("tree/a.bin"));
    assert_same_file(b.path(), &dst.path().join("tree/sub/b.bin"));
    let s = summary(&client, &out);
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["bytes_sent"], 123 * MB, "{s}");
    let moved = client
        .stderr()
        .lines()
        .filter(|l| l.contains("\"path_moved\"") && l.contains(&new.to_string()))
        .count();
    assert_eq!(moved, 1, "client stderr: {}", client.stderr());
}

#[test]
fn striped_send_file_uses_both_interfaces() {
    let Some(lab) = Lab::up("striped_send_file_uses_both_interfaces", Topology::TwoPath) else {
        return;
    };
    lab.shape("cli", "wifi0", 300_000_000);
    lab.shape("cli", "cell0", 150_000_000);
    let file = payload(100 * MB, 3);
    let dst = tempfile::tempdir().unwrap();
    let (mut server, port) = receiver(&lab, dst.path());
    let dest = format!("10.99.2.2:{port}");
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut client = sender(
        &lab,
        &[file.path().to_str().unwrap(), &dest, "--stripe"],
        &out,
    );
    client.expect_exit(0);
    server.expect_exit(0);
    let name = file.path().file_name().unwrap();
    assert_same_file(file.path(), &dst.path().join(name));
    let s = summary(&client, &out);
    let paths = s["paths"].as_array().expect("paths");
    let carried: Vec<u64> = paths
        .iter()
        .map(|p| p["bytes_sent"].as_u64().unwrap())
        .collect();
    assert!(
        carried.len() >= 2 && carried.iter().filter(|&&b| b > 10 * MB).count() >= 2,
        "--stripe should carry the file on both interfaces: {s}"
    );
}
