//! Pairing by code in real network namespaces: a coded `send-file` (through a relay on the
//! server's side) keeps going while the client's address changes, and the file arrives
//! verified; a coded `send-file --stripe` carries the file over both of a client's interfaces.
//!
//! Needs root; elsewhere it prints `SKIPPED: ...` and passes (see `tests/lab/mod.rs`).

mod lab;

use std::time::Duration;

use lab::{assert_same_file, payload, Lab, Topology};

const MB: u64 = 1 << 20;
const LIMIT: Duration = Duration::from_secs(120);

/// A relay and a coded listener (saving into `dst`) in the server's namespace, started with
/// their own state under `state`.
struct Coded {
    relay: lab::LabProc,
    listener: lab::LabProc,
    /// The relay's address (`10.99.2.2:PORT`).
    at: String,
    code: String,
}

fn with_state(
    mut c: std::process::Command,
    state: &std::path::Path,
    who: &str,
) -> std::process::Command {
    c.env("MSOCK_STATE_DIR", state.join(who));
    c.stdin(std::process::Stdio::null());
    c
}

fn coded(lab: &Lab, state: &std::path::Path, dst: &std::path::Path) -> Coded {
    let msock = env!("CARGO_BIN_EXE_msock");
    let relay_cmd = lab.exec("srv", msock, &["proxy", "--listen", "10.99.2.2:0"]);
    let mut relay = lab.spawn(with_state(relay_cmd, state, "relay"), LIMIT);
    let port = relay.wait_stderr_line(
        "msock: relay listening on 10.99.2.2:",
        Duration::from_secs(10),
    );
    let at = format!("10.99.2.2:{}", port.trim());
    let listen = lab.exec(
        "srv",
        msock,
        &[
            "listen",
            "--relay",
            &at,
            "--code",
            "--save-dir",
            dst.to_str().unwrap(),
        ],
    );
    let mut listener = lab.spawn(with_state(listen, state, "listener"), LIMIT);
    let code = listener.wait_stderr_line("code: ", Duration::from_secs(10));
    let code = code.trim().to_owned();
    Coded {
        relay,
        listener,
        at,
        code,
    }
}

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
    let dst = tempfile::tempdir().unwrap();
    let Coded {
        relay: _relay,
        mut listener,
        at,
        code,
    } = coded(&lab, state.path(), dst.path());
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
    let mut sender = lab.spawn(with_state(send, state.path(), "sender"), LIMIT);
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

/// After pairing, a coded session is an ordinary one: `send-file --code --stripe` from a client
/// with two interfaces carries the file over both (each spliced at the relay on its own).
#[test]
fn coded_send_file_stripes_over_two_interfaces() {
    let Some(lab) = Lab::up(
        "coded_send_file_stripes_over_two_interfaces",
        Topology::TwoPath,
    ) else {
        return;
    };
    // Each client link slower than the server's side, so that striping pays off.
    lab.shape("cli", "wifi0", 100_000_000);
    lab.shape("cli", "cell0", 100_000_000);
    let msock = env!("CARGO_BIN_EXE_msock");
    let state = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let Coded {
        relay: _relay,
        mut listener,
        at,
        code,
    } = coded(&lab, state.path(), dst.path());
    let a = payload(30 * MB, 8);
    let (w0, c0) = (lab.tx_bytes("cli", "wifi0"), lab.tx_bytes("cli", "cell0"));
    let send = lab.exec(
        "cli",
        msock,
        &[
            "send-file",
            "--code",
            &code,
            "--stripe",
            a.path().to_str().unwrap(),
            &at,
        ],
    );
    let mut sender = lab.spawn(with_state(send, state.path(), "sender"), LIMIT);
    sender.expect_exit(0);
    listener.expect_exit(0);
    let name = a.path().file_name().unwrap().to_owned();
    assert_same_file(a.path(), &dst.path().join(&name));
    let (w, c) = (
        lab.tx_bytes("cli", "wifi0") - w0,
        lab.tx_bytes("cli", "cell0") - c0,
    );
    assert!(w > 5 * MB && c > 5 * MB, "wifi0 sent {w}, cell0 sent {c}");
}
