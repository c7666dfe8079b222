//! Port forwarding across moves, in real network namespaces: a program in the client's
//! namespace sends 200 MB over a plain TCP connection to `msock connect --local`, which carries
//! it to `msock listen --forward` in the server's namespace and on to a TCP sink there. The
//! client's address changes and then its link is down for 10 s in the middle; the program's
//! connection must not notice (it exits 0) and the bytes must arrive unchanged.
//!
//! Needs root; elsewhere it prints `SKIPPED: ...` and passes (see `tests/lab/mod.rs`).

mod lab;

use std::fs::File;
use std::process::Stdio;
use std::time::Duration;

use lab::{assert_same_file, payload, Lab, Topology};
use tempfile::NamedTempFile;

/// Bytes sent.
const SIZE: u64 = 200 << 20;
/// The router's egress towards the server is shaped to this, so that the transfer lasts a few
/// seconds and the changes come in the middle of it.
const RATE: u64 = 400_000_000;
/// Deadline of every process.
const LIMIT: Duration = Duration::from_secs(120);
const STARTUP: Duration = Duration::from_secs(10);

#[test]
fn forwarded_connection_survives_address_change_and_link_down() {
    let Some(lab) = Lab::up(
        "forwarded_connection_survives_address_change_and_link_down",
        Topology::Mobile,
    ) else {
        return;
    };
    lab.shape("rt", "srv0", RATE);
    let msock = env!("CARGO_BIN_EXE_msock");
    let input = payload(SIZE, 21);
    let output = NamedTempFile::new().unwrap();

    // The target: a plain TCP sink on the server's loopback (an msock listener serving a
    // plain TCP client writes what it receives to stdout).
    let mut cmd = lab.exec(
        "srv",
        msock,
        &["listen", "127.0.0.1:0", "--recv-only", "--allow-plain"],
    );
    cmd.stdin(Stdio::null()).stdout(output.reopen().unwrap());
    let mut sink = lab.spawn(cmd, LIMIT);
    let sink_port = sink.wait_stderr_line("msock: listening on 127.0.0.1:", STARTUP);
    let target = format!("127.0.0.1:{}", sink_port.trim());
    let args = ["listen", "0", "-4", "--forward", &target, "--allow-anyone"];
    let mut cmd = lab.exec("srv", msock, &args);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut server = lab.spawn(cmd, LIMIT);
    let port = server.wait_stderr_line("msock: listening on 0.0.0.0:", STARTUP);
    let dest = format!("10.99.2.2:{}", port.trim());
    let args = ["-v", "connect", "--local", "0", &dest, "--json-events"];
    let mut cmd = lab.exec("cli", msock, &args);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut local = lab.spawn(cmd, LIMIT);
    let lport = local.wait_stderr_line("msock: listening on 127.0.0.1:", STARTUP);

    // The program: plain TCP to the local port (exits 1 if its connection breaks).
    let to = format!("127.0.0.1:{}", lport.trim());
    let mut cmd = lab.exec("cli", msock, &["connect", "--plain", &to]);
    cmd.stdin(File::open(input.path()).unwrap())
        .stdout(Stdio::null());
    let mut program = lab.spawn(cmd, LIMIT);

    std::thread::sleep(Duration::from_secs(1));
    let got = std::fs::metadata(output.path()).map_or(0, |m| m.len());
    assert!(
        got > 0 && got < SIZE,
        "the move should come mid-transfer, but {got} of {SIZE} bytes had arrived"
    );
    lab.addr_move("cli", "eth0");
    std::thread::sleep(Duration::from_millis(500));
    lab.link_down("cli", "eth0");
    std::thread::sleep(Duration::from_secs(10));
    lab.link_up("cli", "eth0");

    program.expect_exit(0);
    sink.expect_exit(0);
    server.expect_exit(0);
    assert_same_file(input.path(), output.path());
    let events = local.stderr();
    assert!(
        events.contains("\"path_moved\"") || events.contains("\"session_resumed\""),
        "the session should have moved: {events}"
    );
}
