//! Pairing by code in real network namespaces: a coded `send-file` (through a relay on the
//! server's side) keeps going while the client's address changes, and the file arrives
//! verified.
//!
//! Needs root; elsewhere it prints `SKIPPED: ...` and passes (see `tests/lab/mod.rs`).

mod lab;

use std::time::Duration;

use lab::{assert_same_file, payload, Lab, Topology};

const MB: u64 = 1 << 20;
const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn coded_send_file_survives_a_client_address_change() {
    let Some(lab) = Lab::up(
        "coded_send_file_survives_a_client_address_change",
        Topology::Mobile,
    ) else {
        return;
    };
    lab.shape("rt", "srv0", 400_000_000);
    let msock = env!("CARGO_BIN_EXE_msock");
    let state = tempfile::tempdir().unwrap();
    let with_state = |mut c: std::process::Command, who: &str| {
        c.env("MSOCK_STATE_DIR", state.path().join(who));
        c.stdin(std::process::Stdio::null());
        c
    };
    let relay_cmd = lab.exec("srv", msock, &["proxy", "--listen", "10.99.2.2:0"]);
    let mut relay = lab.spawn(with_state(relay_cmd, "relay"), LIMIT);
    let port = relay.wait_stderr_line(
        "msock: relay listening on 10.99.2.2:",
        Duration::from_secs(10),
    );
    let at = format!("10.99.2.2:{}", port.trim());
    let dst = tempfile::tempdir().unwrap();
    let listen = lab.exec(
        "srv",
        msock,
        &[
            "listen",
            "--relay",
            &at,
            "--code",
            "--save-dir",
            dst.path().to_str().unwrap(),
        ],
    );
    let mut listener = lab.spawn(with_state(listen, "listener"), LIMIT);
    let code = listener.wait_stderr_line("code: ", Duration::from_secs(10));
    let code = code.trim().to_owned();
    let a = payload(120 * MB, 7);
    let send = lab.exec(
        "cli",
        msock,
        &[
            "send-file",
            "--code",
            &code,
            a.path().to_str().unwrap(),
            &at,
            "--json-events",
        ],
    );
    let mut sender = lab.spawn(with_state(send, "sender"), LIMIT);
    // Move once the session is up and the file is on its way.
    let name = a.path().file_name().unwrap().to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !sender.stderr().contains("\"path_up\"") && !sender.stderr().contains("\"session_open") {
        assert!(
            std::time::Instant::now() < deadline,
            "no session: {}",
            sender.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !dst.path().join(&name).exists(),
        "the move should come mid-transfer, but the file was complete"
    );
    let new = lab.addr_move("cli", "eth0");
    sender.expect_exit(0);
    listener.expect_exit(0);
    assert_same_file(a.path(), &dst.path().join(&name));
    let moved = sender
        .stderr()
        .lines()
        .filter(|l| l.contains("\"path_moved\"") || l.contains("\"path_up\""))
        .any(|l| l.contains(&new.to_string()));
    assert!(moved, "no path from {new}: {}", sender.stderr());
}
