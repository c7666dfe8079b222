//! Smoke tests of the network-namespace lab (`tests/lab`) with real `msock` processes: a
//! transfer through the router, routing after the client's address moves, link down/up,
//! source routing with two client interfaces, and tbf shaping.
//!
//! They need root; elsewhere they print `SKIPPED: ...` and pass (see `tests/lab/mod.rs`).
//! Run with `cargo test --test lab_smoke -- --nocapture` to see skips and timings.

mod lab;

use std::fs::File;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use lab::{Lab, LabProc, Topology};
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use tempfile::NamedTempFile;

/// The server's address in every topology.
const SRV: &str = "10.99.2.2";
/// Deadline of every msock process.
const LIMIT: Duration = Duration::from_secs(30);

/// `len` bytes of seeded random data in a temp file.
fn payload(len: usize, seed: u64) -> NamedTempFile {
    let mut data = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    let mut f = NamedTempFile::new().expect("temp file");
    f.write_all(&data).expect("write payload");
    f
}

fn sha256(path: &Path) -> Vec<u8> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .expect("read file");
    Sha256::digest(&data).to_vec()
}

/// Starts `msock -v listen 10.99.2.2:0` in `srv` (stdin empty, stdout into `out`) and returns
/// it with the port it printed.
fn listen(lab: &Lab, out: &NamedTempFile) -> (LabProc, u16) {
    let mut cmd = lab.exec(
        "srv",
        env!("CARGO_BIN_EXE_msock"),
        &["-v", "listen", &format!("{SRV}:0")],
    );
    cmd.stdin(Stdio::null())
        .stdout(out.reopen().expect("reopen output"));
    let mut p = lab.spawn(cmd, LIMIT);
    let rest = p.wait_stderr_line(
        &format!("msock: listening on {SRV}:"),
        Duration::from_secs(10),
    );
    let port = rest
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("bad port in {rest:?}"));
    (p, port)
}

/// Starts `msock connect ARGS... 10.99.2.2:PORT` in `cli`, stdin from `input`.
fn connect(lab: &Lab, port: u16, args: &[&str], input: &Path, limit: Duration) -> LabProc {
    let dest = format!("{SRV}:{port}");
    let args = [&["connect"], args, &[dest.as_str()]].concat();
    let mut cmd = lab.exec("cli", env!("CARGO_BIN_EXE_msock"), &args);
    cmd.stdin(File::open(input).expect("open input"))
        .stdout(Stdio::null());
    lab.spawn(cmd, limit)
}

/// Sends `input` from the client to a fresh listener and checks that it arrives unchanged,
/// that both exit 0 and (if given) that the listener saw the client at `from`. Returns how
/// long the transfer took.
fn transfer(lab: &Lab, input: &Path, connect_args: &[&str], from: Option<Ipv4Addr>) -> Duration {
    let out = NamedTempFile::new().expect("temp file");
    let (mut server, port) = listen(lab, &out);
    let start = Instant::now();
    let mut client = connect(lab, port, connect_args, input, LIMIT);
    client.expect_exit(0);
    server.expect_exit(0);
    let took = start.elapsed();
    assert!(
        sha256(out.path()) == sha256(input),
        "the listener's output differs from the input"
    );
    if let Some(from) = from {
        let log = server.stderr();
        assert!(
            // "session ID open (SERVICE): CLIENT -> LISTENER"
            log.contains(&format!("): {from}:")),
            "client not seen at {from}; listener stderr:\n{log}"
        );
    }
    took
}

#[test]
fn transfer_then_address_move() {
    let t0 = Instant::now();
    let Some(lab) = Lab::up("transfer_then_address_move", Topology::Mobile) else {
        return;
    };
    eprintln!(
        "lab up in {:?} (with the wait for the lab lock)",
        t0.elapsed()
    );
    let data = payload(5 << 20, 1);
    assert_eq!(lab.addr_of("cli", "eth0"), Ipv4Addr::new(10, 99, 1, 2));

    let took = transfer(&lab, data.path(), &[], Some(Ipv4Addr::new(10, 99, 1, 2)));
    eprintln!("5 MB through the router in {took:?}");

    let new = lab.addr_move("cli", "eth0");
    assert_eq!(new, Ipv4Addr::new(10, 99, 1, 3));
    assert_eq!(lab.addr_of("cli", "eth0"), new);
    if Lab::has_program("ping") {
        let mut ping = lab.spawn(
            lab.exec("cli", "ping", &["-c1", "-W2", SRV]),
            Duration::from_secs(5),
        );
        ping.expect_exit(0);
    } else {
        eprintln!("no ping on this machine: routing after the move is checked with msock only");
    }
    // The default route is back, and the kernel picks the new address as the source.
    let small = payload(64 << 10, 2);
    let took = transfer(&lab, small.path(), &[], Some(new));
    eprintln!("64 KB from the new address in {took:?}");
    let t = Instant::now();
    drop(lab);
    eprintln!("lab down in {:?}; total {:?}", t.elapsed(), t0.elapsed());
}

#[test]
fn link_down_then_up() {
    let Some(lab) = Lab::up("link_down_then_up", Topology::Mobile) else {
        return;
    };
    let data = payload(64 << 10, 3);
    lab.link_down("cli", "eth0");
    // Nothing listens: with the link down the connect must fail before it could be refused.
    let mut c = connect(&lab, 9, &["-w", "1s"], data.path(), Duration::from_secs(10));
    c.expect_exit(1);
    lab.link_up("cli", "eth0");
    transfer(
        &lab,
        data.path(),
        &["-w", "5s"],
        Some(Ipv4Addr::new(10, 99, 1, 2)),
    );
}

#[test]
fn two_path_source_routing() {
    let Some(lab) = Lab::up("two_path_source_routing", Topology::TwoPath) else {
        return;
    };
    let data = payload(64 << 10, 4);
    let (wifi, cell) = (lab.addr_of("cli", "wifi0"), lab.addr_of("cli", "cell0"));
    // Unbound sockets take the default route (wifi0); bound ones leave by their interface.
    transfer(&lab, data.path(), &[], Some(wifi));
    let cell_s = cell.to_string();
    transfer(&lab, data.path(), &["-s", &cell_s], Some(cell));
    // With cell0 down, a socket bound to its address must not leak out of wifi0.
    lab.link_down("cli", "cell0");
    let mut c = connect(
        &lab,
        9,
        &["-w", "1s", "-s", &cell_s],
        data.path(),
        Duration::from_secs(10),
    );
    c.expect_exit(1);
    transfer(&lab, data.path(), &[], Some(wifi));
    lab.link_up("cli", "cell0");
    let new = lab.addr_move("cli", "cell0");
    transfer(&lab, data.path(), &["-s", &new.to_string()], Some(new));
}

#[test]
fn shaping_limits_upload() {
    let Some(lab) = Lab::up("shaping_limits_upload", Topology::Mobile) else {
        return;
    };
    let data = payload(1 << 20, 5);
    // 1 MiB at 10 Mbit/s takes at least 0.84 s (minus one burst); unshaped, a few ms.
    lab.shape("cli", "eth0", 10_000_000);
    let took = transfer(&lab, data.path(), &[], None);
    eprintln!("1 MiB at 10 Mbit/s in {took:?}");
    assert!(
        took >= Duration::from_millis(750),
        "shaping had no effect: {took:?}"
    );
    lab.shape("cli", "eth0", 0);
    let took = transfer(&lab, data.path(), &[], None);
    eprintln!("1 MiB unshaped in {took:?}");
    assert!(
        took < Duration::from_millis(750),
        "the limit was not removed: {took:?}"
    );
}
