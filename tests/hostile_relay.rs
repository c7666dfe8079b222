//! A hostile client against the relay (issue 13, items 1 and 3), on loopback: one source (then
//! ten: 127.0.0.2, 127.0.0.3, ...) flooding idle ROUTEs to a live name must not keep other
//! names' clients from being served; a flood of REGISTERs closed at once must not keep a real
//! listener from registering; a registration flood with `--state` is saved in batches while
//! LOOKUPs keep being answered.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::relay::Relay;
use common::*;
use serde_json::Value;

/// Deadline for a transfer (debug build, 2 shared cores, an attack running alongside).
const BULK: Duration = Duration::from_secs(90);
/// Deadline for short exchanges.
const SHORT: Duration = Duration::from_secs(20);

const REGISTER: u8 = 0x20;
const NONCE: u8 = 0x21;
const PROVE: u8 = 0x22;
const REGISTERED: u8 = 0x23;
const ROUTE: u8 = 0x26;
const LOOKUP: u8 = 0x27;
const FOUND: u8 = 0x28;

/// `msock listen --relay RELAY --name NAME EXTRA...`, registered.
fn named_listener(relay: &Relay, name: &str, state: &Path, extra: &[&str], out: Stdio) -> Proc {
    let relay_addr = relay.addr.to_string();
    let mut args = vec!["listen", "--relay", &relay_addr, "--name", name];
    args.extend_from_slice(extra);
    let mut cmd = msock(&args);
    cmd.env("MSOCK_STATE_DIR", state)
        .stdin(Stdio::null())
        .stdout(out);
    let mut p = Proc::spawn("msock listen --relay", cmd);
    if !p.stderr.wait_contains(STARTUP, "msock: registered") {
        p.kill();
        panic!("listener did not register; stderr:\n{}", p.stderr.text());
    }
    p
}

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::new(from, 0).into())?;
    s.connect_timeout(&to.into(), Duration::from_secs(5))?;
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

fn loopback(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}

/// One frame in msock's framing: length (type + body) u32, type u8, body.
fn frame(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32 + 1).to_be_bytes().to_vec();
    v.push(ty);
    v.extend_from_slice(body);
    v
}

fn name_body(name: &str) -> Vec<u8> {
    let mut b = vec![name.len() as u8];
    b.extend_from_slice(name.as_bytes());
    b
}

/// Reads the preamble (if `preamble`) and one frame; None if the connection ended first.
fn read_frame(s: &mut TcpStream, preamble: bool) -> Option<(u8, Vec<u8>)> {
    if preamble {
        let mut p = [0u8; 6];
        s.read_exact(&mut p).ok()?;
        assert_eq!(&p, PREAMBLE);
    }
    let mut h = [0u8; 5];
    s.read_exact(&mut h).ok()?;
    let len = u32::from_be_bytes(h[..4].try_into().unwrap()) as usize;
    assert!((1..=4096).contains(&len), "frame length {len}");
    let mut body = vec![0u8; len - 1];
    s.read_exact(&mut body).ok()?;
    Some((h[4], body))
}

/// The hostile REGISTER: a name, zero proofs, then the connection is closed at once.
/// True if the relay answered REGISTERED.
fn squat(from: IpAddr, relay: SocketAddr, name: &str) -> bool {
    let Ok(mut s) = connect_from(from, relay) else {
        return false;
    };
    let mut hello = PREAMBLE.to_vec();
    let mut body = name_body(name);
    body.push(0);
    hello.extend(frame(REGISTER, &body));
    if s.write_all(&hello).is_err() {
        return false;
    }
    match read_frame(&mut s, true) {
        Some((NONCE, _)) => {}
        _ => return false,
    }
    if s.write_all(&frame(PROVE, &[0u8; 64])).is_err() {
        return false;
    }
    matches!(read_frame(&mut s, false), Some((REGISTERED, _)))
}

/// Keeps idle ROUTEs to `name` open from each of `sources` (at most `per_source` each,
/// replacing those the relay closes) until `stop`; counts how many were opened.
fn flood_routes(
    relay: SocketAddr,
    name: &'static str,
    sources: Vec<IpAddr>,
    per_source: usize,
    with_preamble: bool,
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut msg = PREAMBLE.to_vec();
        msg.extend(frame(ROUTE, &name_body(name)));
        if with_preamble {
            msg.extend_from_slice(PREAMBLE);
        }
        let mut held: Vec<Vec<TcpStream>> = sources.iter().map(|_| Vec::new()).collect();
        while !stop.load(Ordering::Relaxed) {
            for (i, src) in sources.iter().enumerate() {
                // Keep the ones the relay still holds open; replace the others.
                held[i].retain(|s| {
                    let mut b = [0u8; 1];
                    matches!(s.peek(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
                });
                if held[i].len() >= per_source {
                    continue;
                }
                if let Ok(mut s) = connect_from(*src, relay) {
                    if s.write_all(&msg).is_ok() && s.set_nonblocking(true).is_ok() {
                        opened.fetch_add(1, Ordering::Relaxed);
                        held[i].push(s);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    })
}

/// A legitimate 1 MB transfer from `from` to `name` through the relay; returns whether the
/// listener got it byte-identical and the client exited 0.
fn legit_transfer(relay: &Relay, listener_out: &Path, from: &str, seed: u64) -> Result<(), String> {
    let data = seeded_bytes(seed, 1_000_000);
    let input = temp_file_with(&data);
    let mut c = connect(
        &relay.dest(name_of(listener_out)),
        &["-s", from],
        stdin_from(input.path()),
        Stdio::null(),
    );
    let e = c.wait(BULK);
    if e.code != Some(0) {
        return Err(format!("client exited {:?}: {}", e.code, e.stderr));
    }
    if !wait_file_len(listener_out, data.len() as u64, SHORT) {
        return Err(format!("listener got {} bytes", file_len(listener_out)));
    }
    if read(listener_out) != data {
        return Err("bytes differ".into());
    }
    Ok(())
}

/// Listener outputs are named after their listener's name.
fn name_of(out: &Path) -> &str {
    out.file_name().unwrap().to_str().unwrap()
}

fn route_flood(sources: Vec<IpAddr>, per_source: usize, with_preamble: bool, check_a: bool) {
    let dir = tempdir();
    let relay = Relay::start(
        dir.path(),
        "127.0.0.1:0",
        &["--max-flowpaths", "100", "--rate", "0"],
    );
    let (out_a, out_b) = (dir.path().join("a"), dir.path().join("b"));
    let mut la = named_listener(&relay, "a", &dir.path().join("sa"), &[], stdout_to(&out_a));
    let mut lb = named_listener(&relay, "b", &dir.path().join("sb"), &[], stdout_to(&out_b));
    let (stop, opened) = (Arc::new(AtomicBool::new(false)), Arc::default());
    let attack = flood_routes(
        relay.addr,
        "a",
        sources,
        per_source,
        with_preamble,
        stop.clone(),
        Arc::clone(&opened),
    );
    // Let the attack fill what it can.
    while opened.load(Ordering::Relaxed) < 300 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let b = legit_transfer(&relay, &out_b, "127.0.0.200", 1);
    let a = check_a.then(|| legit_transfer(&relay, &out_a, "127.0.0.201", 2));
    stop.store(true, Ordering::Relaxed);
    attack.join().unwrap();
    la.kill();
    lb.kill();
    let summary = relay.summary(SHORT);
    b.unwrap_or_else(|e| panic!("client of another name during the flood: {e}; {summary}"));
    if let Some(a) = a {
        a.unwrap_or_else(|e| panic!("client of the flooded name: {e}; {summary}"));
    }
}

/// Idle ROUTEs (nothing after the ROUTE frame) from one source to a live name: clients of
/// another name, and other sources' clients of the same name, are served.
#[test]
fn one_source_flooding_idle_routes_cannot_fill_the_relay() {
    route_flood(vec![loopback(2)], 300, false, true);
}

/// ROUTEs followed by the msock preamble and then silence, from ten sources: clients of
/// another name are served.
#[test]
fn ten_sources_flooding_routes_cannot_fill_the_relay() {
    route_flood((2..12).map(loopback).collect(), 40, true, false);
}

/// 300 REGISTERs from one address, each closed at once, against `--max-names 300`: a real
/// listener still registers, and the squatter got few names.
#[test]
fn register_flood_from_one_source_leaves_room_for_real_listeners() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &["--max-names", "300"]);
    let mut got = 0;
    for i in 0..300 {
        if squat(loopback(2), relay.addr, &format!("squat{i}")) {
            got += 1;
        }
    }
    let mut real = named_listener(
        &relay,
        "real",
        &dir.path().join("s"),
        &["-k"],
        Stdio::null(),
    );
    real.assert_running("registered");
    real.kill();
    let summary = relay.summary(SHORT);
    assert!(got <= 32, "one address registered {got} names; {summary}");
    assert!(
        summary["refused"]
            .as_object()
            .is_some_and(|r| !r.is_empty()),
        "{summary}"
    );
}

/// A registration flood (30 addresses) with `--state`: every name reaches the state file,
/// written in batches rather than once per registration, and LOOKUPs of a live name are all
/// answered meanwhile.
#[test]
fn registration_flood_with_state_is_saved_in_batches() {
    let dir = tempdir();
    let state = dir.path().join("relay-state.json");
    let relay = Relay::start(
        dir.path(),
        "127.0.0.1:0",
        &["--state", state.to_str().unwrap()],
    );
    let mut live = named_listener(
        &relay,
        "live",
        &dir.path().join("s"),
        &["-k"],
        Stdio::null(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (addr, stop2) = (relay.addr, stop.clone());
    let lookups = std::thread::spawn(move || {
        let (mut found, mut other) = (0, Vec::new());
        while !stop2.load(Ordering::Relaxed) {
            let mut s = connect_from(loopback(5), addr).unwrap();
            let mut m = PREAMBLE.to_vec();
            m.extend(frame(LOOKUP, &name_body("live")));
            s.write_all(&m).unwrap();
            match read_frame(&mut s, true) {
                Some((FOUND, _)) => found += 1,
                f => other.push(format!("{f:?}")),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (found, other)
    });
    let squatters: Vec<_> = (10..40u8)
        .map(|src| {
            std::thread::spawn(move || {
                (0..10)
                    .filter(|i| squat(loopback(src), addr, &format!("n{src}x{i}")))
                    .count()
            })
        })
        .collect();
    let registered: usize = squatters.into_iter().map(|t| t.join().unwrap()).sum();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (found, other) = lookups.join().unwrap();
    live.kill();
    let summary = relay.summary(SHORT);
    assert_eq!(registered, 300, "{summary}");
    assert!(
        found > 0 && other.is_empty(),
        "lookups: {found} found, other {other:?}"
    );
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["names"].as_object().unwrap().len(), 301);
    let writes = summary["state_writes"]
        .as_u64()
        .expect("state_writes in the summary");
    assert!(
        writes >= 1 && writes * 4 <= 300,
        "{writes} writes for 301 names; {summary}"
    );
}
