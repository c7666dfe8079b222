//! The relay in network namespaces: the listener sits behind a NAT that lets no connection in
//! (`Topology::NatServer`); the relay and the client are outside, in `cli`. A transfer through
//! the relay completes; and when the listener's address behind the NAT changes mid-transfer,
//! it re-registers, the relay drops the dead spliced halves, and the session resumes
//! byte-identical.
//!
//! They need root and nftables; elsewhere they print `SKIPPED: ...` and pass.

mod lab;

use std::fs::File;
use std::process::Stdio;
use std::time::Duration;

use lab::{assert_same_file, payload, Lab, LabProc, Topology};
use serde_json::Value;
use tempfile::{NamedTempFile, TempDir};

/// Deadline of every msock process.
const LIMIT: Duration = Duration::from_secs(90);

/// Relay and listener up: the relay on 10.99.1.2 in `cli`, the listener in `srv` registered
/// as `name` (also listening on a port of its own, which the NAT makes unreachable).
struct Setup {
    relay: LabProc,
    relay_status: NamedTempFile,
    relay_addr: String,
    listener: LabProc,
    listener_port: String,
    output: NamedTempFile,
    _state: TempDir,
}

fn setup(lab: &Lab, name: &str) -> Setup {
    setup_at(lab, name, "cli", "10.99.1.2", true)
}

/// The relay in `relay_node` on `relay_ip`; the listener in `srv` with a port of its own if
/// `own_port` (else reachable through the relay only).
fn setup_at(lab: &Lab, name: &str, relay_node: &str, relay_ip: &str, own_port: bool) -> Setup {
    let msock = env!("CARGO_BIN_EXE_msock");
    let relay_status = NamedTempFile::new().unwrap();
    let listen = format!("{relay_ip}:0");
    let mut cmd = lab.exec(relay_node, msock, &["proxy", "--listen", &listen, "--json"]);
    cmd.stdin(Stdio::null())
        .stdout(relay_status.reopen().unwrap());
    let mut relay = lab.spawn(cmd, LIMIT);
    let prefix = format!("msock: relay listening on {relay_ip}:");
    let port = relay.wait_stderr_line(&prefix, Duration::from_secs(10));
    let relay_addr = format!("{relay_ip}:{}", port.trim());
    let state = tempfile::tempdir().unwrap();
    let output = NamedTempFile::new().unwrap();
    let mut args = vec![
        "-v",
        "listen",
        "-4",
        "--recv-only",
        "--relay",
        &relay_addr,
        "--name",
        name,
    ];
    if own_port {
        args.push("0");
    }
    let mut cmd = lab.exec("srv", msock, &args);
    cmd.env("MSOCK_STATE_DIR", state.path())
        .stdin(Stdio::null())
        .stdout(output.reopen().unwrap());
    let mut listener = lab.spawn(cmd, LIMIT);
    let listener_port = if own_port {
        listener
            .wait_stderr_line("msock: listening on 0.0.0.0:", Duration::from_secs(10))
            .trim()
            .to_owned()
    } else {
        String::new()
    };
    listener.wait_stderr_line("msock: registered", Duration::from_secs(10));
    Setup {
        relay,
        relay_status,
        relay_addr,
        listener,
        listener_port,
        output,
        _state: state,
    }
}

fn status(s: &Setup) -> Vec<Value> {
    std::fs::read_to_string(s.relay_status.path())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn client(lab: &Lab, dest: &str, input: &NamedTempFile) -> LabProc {
    client_with(lab, dest, input, &[])
}

fn client_with(lab: &Lab, dest: &str, input: &NamedTempFile, extra: &[&str]) -> LabProc {
    let msock = env!("CARGO_BIN_EXE_msock");
    let mut args = vec!["-v", "connect", dest, "--json-events"];
    args.extend_from_slice(extra);
    let mut cmd = lab.exec("cli", msock, &args);
    cmd.stdin(File::open(input.path()).unwrap())
        .stdout(Stdio::null());
    lab.spawn(cmd, LIMIT)
}

#[test]
fn transfer_through_the_relay_from_behind_nat() {
    let Some(lab) = Lab::up(
        "transfer_through_the_relay_from_behind_nat",
        Topology::NatServer,
    ) else {
        return;
    };
    let s = setup(&lab, "natted");
    // The NAT lets nothing in: a direct connection to the listener fails.
    let msock = env!("CARGO_BIN_EXE_msock");
    let direct = format!("10.99.2.2:{}", s.listener_port);
    let mut cmd = lab.exec("cli", msock, &["connect", "-w", "2s", &direct]);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    lab.spawn(cmd, LIMIT).expect_exit(1);
    // By name, through the relay, it works (the direct address is not even published).
    let input = payload(50 << 20, 11);
    let mut c = client(&lab, &format!("natted@{}", s.relay_addr), &input);
    c.expect_exit(0);
    let mut listener = s.listener;
    listener.expect_exit(0);
    assert_same_file(input.path(), s.output.path());
    let st: Vec<Value> = std::fs::read_to_string(s.relay_status.path())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reg = st.iter().find(|e| e["event"] == "registered").unwrap();
    assert_eq!(reg["direct"], serde_json::json!([]), "{reg}");
    assert!(st.iter().any(|e| e["event"] == "splice"), "{st:?}");
    drop(s.relay);
}

#[test]
fn listener_address_change_behind_nat_mid_transfer() {
    let Some(lab) = Lab::up(
        "listener_address_change_behind_nat_mid_transfer",
        Topology::NatServer,
    ) else {
        return;
    };
    // Shape the way to the listener so that the transfer lasts a few seconds.
    lab.shape("rt", "srv0", 300_000_000);
    let s = setup(&lab, "mover");
    let size = 200u64 << 20;
    let input = payload(size, 12);
    let mut c = client(&lab, &format!("mover@{}", s.relay_addr), &input);
    std::thread::sleep(Duration::from_secs(1));
    let got = std::fs::metadata(s.output.path()).map_or(0, |m| m.len());
    assert!(got > 0 && got < size, "mid-transfer? {got} of {size}");
    lab.addr_move("srv", "eth0");
    c.expect_exit(0);
    let mut listener = s.listener;
    listener.expect_exit(0);
    assert_same_file(input.path(), s.output.path());
    let lerr = listener.stderr();
    assert!(lerr.contains("registered 'mover' again"), "{lerr}");
    let st = status(&Setup { listener, ..s });
    let registrations = st.iter().filter(|e| e["event"] == "registered").count();
    assert!(registrations >= 2, "{st:?}");
    // The relay closed the dead spliced pair when told (GONE), and spliced a new one.
    assert!(
        st.iter()
            .any(|e| e["event"] == "splice_end" && e["end"] == "listener half gone"),
        "{st:?}"
    );
    assert!(
        st.iter().filter(|e| e["event"] == "splice").count() >= 2,
        "{st:?}"
    );
    let cerr = c.stderr();
    assert!(cerr.contains("resumed"), "{cerr}");
}

/// Multipath through the relay: a client with two interfaces stripes one session over both;
/// each flowpath is spliced on its own at the relay (in the router), and both carry data.
#[test]
fn striped_session_through_the_relay() {
    let Some(lab) = Lab::up("striped_session_through_the_relay", Topology::TwoPath) else {
        return;
    };
    // Each client link slower than the relay's side, so that striping pays off.
    lab.shape("cli", "wifi0", 100_000_000);
    lab.shape("cli", "cell0", 100_000_000);
    let s = setup_at(&lab, "striped", "rt", "10.99.2.1", false);
    let input = payload(30 << 20, 13);
    let (w0, c0) = (lab.tx_bytes("cli", "wifi0"), lab.tx_bytes("cli", "cell0"));
    let mut c = client_with(
        &lab,
        &format!("striped@{}", s.relay_addr),
        &input,
        &["--stripe"],
    );
    c.expect_exit(0);
    let mut listener = s.listener;
    listener.expect_exit(0);
    assert_same_file(input.path(), s.output.path());
    let (w, cl) = (
        lab.tx_bytes("cli", "wifi0") - w0,
        lab.tx_bytes("cli", "cell0") - c0,
    );
    assert!(
        w > 5 << 20 && cl > 5 << 20,
        "wifi0 sent {w}, cell0 sent {cl}"
    );
    let st = status(&Setup { listener, ..s });
    let splices = st.iter().filter(|e| e["event"] == "splice").count();
    assert!(splices >= 2, "{st:?}");
}

/// The client moves mid-transfer: its flowpath to the relay breaks, it reconnects through the
/// relay from its new address (looking the name up again), the relay splices a new pair, and
/// the session resumes byte-identical.
#[test]
fn client_address_change_through_the_relay_mid_transfer() {
    let Some(lab) = Lab::up(
        "client_address_change_through_the_relay_mid_transfer",
        Topology::Mobile,
    ) else {
        return;
    };
    lab.shape("rt", "srv0", 300_000_000);
    let s = setup_at(&lab, "roamer", "rt", "10.99.2.1", false);
    let size = 200u64 << 20;
    let input = payload(size, 14);
    let mut c = client(&lab, &format!("roamer@{}", s.relay_addr), &input);
    std::thread::sleep(Duration::from_secs(1));
    let got = std::fs::metadata(s.output.path()).map_or(0, |m| m.len());
    assert!(got > 0 && got < size, "mid-transfer? {got} of {size}");
    let new = lab.addr_move("cli", "eth0");
    c.expect_exit(0);
    let mut listener = s.listener;
    listener.expect_exit(0);
    assert_same_file(input.path(), s.output.path());
    let st = status(&Setup { listener, ..s });
    let splices: Vec<&Value> = st.iter().filter(|e| e["event"] == "splice").collect();
    assert!(splices.len() >= 2, "{st:?}");
    let last = splices.last().unwrap()["client"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        last.starts_with(&format!("{new}:")),
        "{last} should come from {new}"
    );
}

/// On a machine without `nft` the NAT tests skip with the line that installs it, rather than
/// fail: the NAT test is run again (as its own process) with a PATH that holds `ip` and `tc`
/// and nothing else.
#[test]
fn nat_tests_skip_without_nft() {
    let dir = TempDir::new().unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in ["ip", "tc"] {
        if let Some(found) = std::env::split_paths(&path)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
        {
            std::os::unix::fs::symlink(found, dir.path().join(tool)).unwrap();
        }
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "transfer_through_the_relay_from_behind_nat",
            "--exact",
            "--nocapture",
        ])
        .env("PATH", dir.path())
        .env_remove("MSOCK_LAB_REQUIRED")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the test failed without nft:\n{text}");
    assert!(text.contains("SKIPPED: "), "no skip line:\n{text}");
    assert!(text.contains("1 passed"), "the test did not run:\n{text}");
    // As root with `ip`, the missing tool is what it names.
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 && dir.path().join("tc").exists() {
        assert!(
            text.contains("apt-get install -y nftables"),
            "the skip does not say what to install:\n{text}"
        );
    }
}
