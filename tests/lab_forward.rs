//! Port forwarding across moves, in real network namespaces: a program in the client's
//! namespace sends 200 MB over a plain TCP connection to `msock connect --local`, which carries
//! it to `msock listen --forward` in the server's namespace and on to a TCP sink there. The
//! client's address changes and then its link is down for 10 s in the middle; the program's
//! connection must not notice (it exits 0) and the bytes must arrive unchanged.
//!
//! The same with a real OpenSSH session: `ssh` in the client's namespace logs in through
//! `msock connect --local` and `msock listen --forward` to an `sshd` on the server's loopback,
//! and the shell it runs keeps answering across the address change and 10 s without a link.
//!
//! Needs root (and OpenSSH for the second test); elsewhere it prints `SKIPPED: ...` and passes
//! (see `tests/lab/mod.rs`).

mod common;
mod lab;

use std::fs::File;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::sshd::{skip_without, SshdFiles};

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
/// Bytes the ssh test uploads, and the rate towards the server that makes it last a few
/// seconds (longer than the setup, shorter than the changes and the outage).
const SSH_BULK: u64 = 60 << 20;
const SSH_RATE: u64 = 40_000_000;

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

/// `cmd` (built to run here) run inside `node` instead.
fn in_node(lab: &Lab, node: &str, cmd: &Command) -> Command {
    let program = cmd.get_program().to_str().expect("a UTF-8 program path");
    let args: Vec<&str> = cmd
        .get_args()
        .map(|a| a.to_str().expect("UTF-8 arguments"))
        .collect();
    lab.exec(node, program, &args)
}

/// Waits until `out` holds the line `line`.
fn wait_for_line(out: &NamedTempFile, line: &str, timeout: Duration) {
    let until = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(out.path()).unwrap_or_default();
        if text.lines().any(|l| l == line) {
            return;
        }
        assert!(
            Instant::now() < until,
            "no line {line:?} from the remote shell; output so far:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_ssh_session_survives_address_change_and_link_down() {
    let test = "an_ssh_session_survives_address_change_and_link_down";
    if skip_without(test, &["ssh", "sshd", "ssh-keygen"]) {
        return;
    }
    let Some(lab) = Lab::up(test, Topology::Mobile) else {
        return;
    };
    lab.shape("rt", "srv0", SSH_RATE);
    let msock = env!("CARGO_BIN_EXE_msock");
    // sshd on the server's loopback only: the client can reach it only through msock.
    let files = SshdFiles::new();
    let mut cmd = in_node(&lab, "srv", &files.command("127.0.0.1", 2222));
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut sshd = lab.spawn(cmd, LIMIT);
    sshd.wait_stderr_line("Server listening on 127.0.0.1", STARTUP);
    let args = [
        "listen",
        "0",
        "-4",
        "-k",
        "--forward",
        "127.0.0.1:2222",
        "--allow-anyone",
    ];
    let mut cmd = lab.exec("srv", msock, &args);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut server = lab.spawn(cmd, LIMIT);
    let port = server.wait_stderr_line("msock: listening on 0.0.0.0:", STARTUP);
    let dest = format!("10.99.2.2:{}", port.trim());
    let args = ["-v", "connect", "--local", "0", &dest, "--json-events"];
    let mut cmd = lab.exec("cli", msock, &args);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut local = lab.spawn(cmd, LIMIT);
    let lport: u16 = local
        .wait_stderr_line("msock: listening on 127.0.0.1:", STARTUP)
        .trim()
        .parse()
        .unwrap();

    // The remote shell answers each line it reads, and says which shell it is.
    let remote = "echo shell-$$; while read l; do echo got-$l; done; echo bye";
    let (input, mut typing) = lab::pipe();
    let out = NamedTempFile::new().unwrap();
    let mut cmd = in_node(&lab, "cli", &files.ssh("127.0.0.1", lport, &[], remote));
    cmd.stdin(Stdio::from(input)).stdout(out.reopen().unwrap());
    let mut ssh = lab.spawn(cmd, LIMIT);

    writeln!(typing, "before").unwrap();
    wait_for_line(&out, "got-before", Duration::from_secs(30));
    // A second login through the same forward carries bulk data up across the changes; the
    // remote end hashes what it got.
    let input = payload(SSH_BULK, 22);
    let (want, _) = common::sha256_file(input.path());
    let sums = NamedTempFile::new().unwrap();
    let ssh_cmd = files.ssh("127.0.0.1", lport, &[], "sha256sum");
    let mut cmd = in_node(&lab, "cli", &ssh_cmd);
    cmd.stdin(File::open(input.path()).unwrap())
        .stdout(sums.reopen().unwrap());
    let mut bulk = lab.spawn(cmd, LIMIT);
    let until = Instant::now() + Duration::from_secs(20);
    while lab.tx_bytes("cli", "eth0") < SSH_BULK / 10 {
        assert!(
            Instant::now() < until,
            "the bulk upload did not start: ssh: {}\nconnect: {}",
            bulk.stderr(),
            local.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = lab.tx_bytes("cli", "eth0");
    assert!(
        sent < SSH_BULK,
        "the move should come mid-upload ({sent} bytes sent)"
    );
    let new = lab.addr_move("cli", "eth0");
    writeln!(typing, "moved").unwrap();
    wait_for_line(&out, "got-moved", Duration::from_secs(20));
    lab.link_down("cli", "eth0");
    // Typed while there is no link: carried once it is back.
    writeln!(typing, "offline").unwrap();
    std::thread::sleep(Duration::from_secs(10));
    lab.link_up("cli", "eth0");
    wait_for_line(&out, "got-offline", Duration::from_secs(30));
    writeln!(typing, "after").unwrap();
    wait_for_line(&out, "got-after", Duration::from_secs(20));
    drop(typing);

    ssh.expect_exit(0);
    bulk.expect_exit(0);
    let got = std::fs::read_to_string(sums.path()).unwrap();
    assert_eq!(
        got.split_whitespace().next(),
        Some(common::hex(&want).as_str()),
        "the bytes sshd got differ from those sent"
    );
    let text = std::fs::read_to_string(out.path()).unwrap();
    let shells = text.lines().filter(|l| l.starts_with("shell-")).count();
    assert_eq!(shells, 1, "one login, one shell:\n{text}");
    assert!(text.ends_with("got-after\nbye\n"), "output:\n{text}");
    let events = local.stderr();
    assert!(
        events
            .lines()
            .any(|l| l.contains("path_moved") && l.contains(&new.to_string())),
        "the session never moved to {new}; stderr:\n{events}"
    );
}
