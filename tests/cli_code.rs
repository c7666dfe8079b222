//! Pairing by code through a loopback relay: `msock listen --relay R --code --save-dir D`
//! and `msock send-file --code CODE FILES R` (and `--text`): files and a folder arrive
//! byte-identical; what the relay sees (every byte through a tapping proxy in front of it)
//! holds neither the code's words nor any file byte; a wrong code fails on both sides with
//! nothing written; three wrong tries burn the code at the relay; a used code cannot pair
//! again; a sender killed with -9 halfway resumes when run again, without a new code, and so
//! does a listener killed with -9 halfway (`listen --code --resume`, then the sender's
//! command again); no ticket or session-name secret is left after a session that ended well;
//! a relay with --auth-keys wants --relay-key-file; a missing last file argument is named as
//! such; the default relay comes from config.toml, and without one the error says how to get
//! one.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::relay::Relay;
use common::*;

/// Deadline for transfers (debug build, loaded machine).
const LONG: Duration = Duration::from_secs(120);
/// Deadline for short exchanges.
const SHORT: Duration = Duration::from_secs(30);

/// A TCP proxy in front of the relay that records every byte either way.
struct Tap {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Tap {
    fn start(relay: SocketAddr) -> Tap {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { return };
                let Ok(r) = TcpStream::connect(relay) else {
                    continue;
                };
                for (mut from, mut to) in [(c.try_clone().unwrap(), r.try_clone().unwrap()), (r, c)]
                {
                    let seen = s2.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 65536];
                        loop {
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    seen.lock().unwrap().extend_from_slice(&buf[..n]);
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Tap { addr, seen }
    }

    fn seen(&self) -> Vec<u8> {
        self.seen.lock().unwrap().clone()
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A side's own config and state directories (keys, tickets) under `dir/who`.
fn env(cmd: &mut std::process::Command, dir: &Path, who: &str) {
    cmd.env("MSOCK_CONFIG_DIR", dir.join(who).join("config"))
        .env("MSOCK_STATE_DIR", dir.join(who).join("state"));
}

/// `msock listen --relay RELAY --code EXTRA...`, waiting for its code.
fn coded_listener(dir: &Path, relay: &str, extra: &[&str], stdout: Stdio) -> (Proc, String) {
    let mut args = vec!["--relay", relay];
    args.extend_from_slice(extra);
    coded_listener_with(dir, &args, stdout)
}

/// `msock listen --code ARGS...` (its relay from ARGS or config.toml), waiting for its code.
fn coded_listener_with(dir: &Path, args: &[&str], stdout: Stdio) -> (Proc, String) {
    let mut all = vec!["listen", "--code"];
    all.extend_from_slice(args);
    let mut cmd = msock(&all);
    env(&mut cmd, dir, "listener");
    cmd.stdin(Stdio::null()).stdout(stdout);
    let mut p = Proc::spawn("msock listen --code", cmd);
    let Some(line) = p.stderr.wait_line(STARTUP, |l| l.starts_with("code: ")) else {
        p.kill();
        panic!("no code printed; stderr:\n{}", p.stderr.text());
    };
    (p, line.trim_start_matches("code: ").trim().to_owned())
}

/// `msock send-file ARGS` as sender `who`.
fn sender(dir: &Path, who: &str, args: &[&str]) -> Proc {
    let mut all = vec!["send-file"];
    all.extend_from_slice(args);
    let mut cmd = msock(&all);
    env(&mut cmd, dir, who);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    Proc::spawn("msock send-file --code", cmd)
}

/// The same code with other words.
fn wrong(code: &str) -> String {
    let n = code.split('-').next().unwrap();
    let w = if code.contains("-abacus-") {
        "zircon"
    } else {
        "abacus"
    };
    format!("{n}-{w}-{w}-{w}")
}

fn words(code: &str) -> Vec<String> {
    code.split('-').skip(1).map(str::to_owned).collect()
}

fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(tree(&p));
        }
        out.push(p);
    }
    out.sort();
    out
}

#[test]
fn files_and_a_folder_arrive_by_code_and_the_relay_sees_no_word_and_no_file_byte() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let tap = Tap::start(relay.addr);
    let via = tap.addr.to_string();
    let src = dir.path().join("src");
    let dst = dir.path().join("dst");
    std::fs::create_dir_all(src.join("folder/sub")).unwrap();
    let data = seeded_bytes(17, 3 << 20);
    std::fs::write(src.join("big.bin"), &data).unwrap();
    let note = b"a note that must not cross the relay in clear: 0123456789abcdef\n".repeat(8);
    std::fs::write(src.join("folder/sub/note.txt"), &note).unwrap();
    let dst_s = dst.to_str().unwrap();
    let (mut l, code) = coded_listener(dir.path(), &via, &["--save-dir", dst_s], Stdio::null());
    let big = src.join("big.bin");
    let folder = src.join("folder");
    let mut s = sender(
        dir.path(),
        "sender",
        &[
            "--code",
            &code,
            big.to_str().unwrap(),
            folder.to_str().unwrap(),
            &via,
        ],
    );
    let e = s.wait(LONG);
    assert_eq!(e.code, Some(0), "sender stderr:\n{}", e.stderr);
    let le = l.expect_code(0, SHORT);
    assert!(le.stderr.contains("paired"), "{}", le.stderr);
    assert_bytes_eq(&read(&dst.join("big.bin")), &data, "big.bin");
    assert_bytes_eq(&read(&dst.join("folder/sub/note.txt")), &note, "note.txt");

    let seen = tap.seen();
    assert!(
        seen.len() > data.len(),
        "the tap saw only {} bytes",
        seen.len()
    );
    for w in words(&code) {
        assert!(!contains(&seen, w.as_bytes()), "the relay saw the word {w}");
    }
    for at in (0..data.len() - 64).step_by(256 << 10) {
        assert!(
            !contains(&seen, &data[at..at + 64]),
            "the relay saw file bytes at {at}"
        );
    }
    assert!(!contains(&seen, &note[..48]), "the relay saw the note");
    // The relay knows the nameplate (that is how it routes), and nothing else of the code.
    let plate = code.split('-').next().unwrap();
    assert!(relay
        .events()
        .iter()
        .any(|e| e["event"] == "registered" && e["name"] == plate));
    // The sender's ticket is gone after a transfer that ended well, and so are the
    // listener's ticket and its session name's secret.
    for who in ["sender", "listener"] {
        let left = files_in(&dir.path().join(who).join("state"));
        assert!(left.is_empty(), "{who} kept {left:?}");
    }
}

#[test]
fn wrong_code_fails_on_both_sides_and_three_tries_burn_the_code() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let r = relay.addr.to_string();
    let dst = dir.path().join("dst");
    let file = temp_file_with(&seeded_bytes(5, 100_000));
    let f = file.path().to_str().unwrap();
    let (mut l, code) = coded_listener(
        dir.path(),
        &r,
        &["--save-dir", dst.to_str().unwrap()],
        Stdio::null(),
    );
    let bad = wrong(&code);
    for n in 1..=3 {
        let e = sender(
            dir.path(),
            &format!("attacker{n}"),
            &["--code", &bad, f, &r],
        )
        .wait(SHORT);
        assert_eq!(e.code, Some(1), "try {n}: {}", e.stderr);
        assert!(e.stderr.contains("wrong code"), "try {n}: {}", e.stderr);
        assert!(
            l.stderr
                .wait_contains(SHORT, &format!("wrong code (try {n} of 3)")),
            "listener after try {n}:\n{}",
            l.stderr.text()
        );
        // Nothing written: not a file, not a partial one.
        assert!(!dst.exists() || tree(&dst).is_empty(), "{:?}", tree(&dst));
    }
    let le = l.expect_code(1, SHORT);
    assert!(le.stderr.contains("burned"), "{}", le.stderr);
    // The relay burned it: even the right code is refused now, by the relay.
    let e = sender(dir.path(), "owner", &["--code", &code, f, &r]).wait(SHORT);
    assert_eq!(e.code, Some(1), "{}", e.stderr);
    assert!(e.stderr.contains("3 tries and is burned"), "{}", e.stderr);
    assert!(!dst.exists() || tree(&dst).is_empty(), "{:?}", tree(&dst));
}

#[test]
fn text_is_printed_by_the_listener_and_a_used_code_cannot_pair_again() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let r = relay.addr.to_string();
    let out = dir.path().join("out.txt");
    let (mut l, code) = coded_listener(dir.path(), &r, &[], stdout_to(&out));
    let e = sender(
        dir.path(),
        "sender",
        &["--code", &code, "--text", "hello by code", &r],
    )
    .wait(SHORT);
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    l.expect_code(0, SHORT);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "hello by code");
    // Another sender (no ticket) with the same code: the relay refuses it.
    let e = sender(
        dir.path(),
        "late",
        &["--code", &code, "--text", "again", &r],
    )
    .wait(SHORT);
    assert_eq!(e.code, Some(1), "{}", e.stderr);
    assert!(e.stderr.contains("already used"), "{}", e.stderr);
}

#[test]
fn killed_sender_resumes_without_a_new_code() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let r = relay.addr.to_string();
    // The sender's relay comes from its config file.
    let cfg = dir.path().join("sender/config");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("config.toml"), format!("relay = \"{r}\"\n")).unwrap();
    let dst = dir.path().join("dst");
    let len: usize = 96 << 20;
    let (file, _) = write_random_file(dir.path(), "disk.img", 0xd15c, len);
    let f = file.to_str().unwrap();
    let (mut l, code) = coded_listener(
        dir.path(),
        &r,
        &["--save-dir", dst.to_str().unwrap()],
        Stdio::null(),
    );
    let mut first = sender(dir.path(), "sender", &["--code", &code, f, "-q"]);
    let deadline = Instant::now() + LONG;
    let part = loop {
        let part = std::fs::read_dir(&dst).ok().and_then(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| p.is_file() && file_len(p) >= len as u64 / 2)
        });
        if let Some(p) = part {
            break p;
        }
        assert!(
            first.try_exit().is_none(),
            "sender ended early:\n{}",
            first.stderr.text()
        );
        assert!(Instant::now() < deadline, "no half file in time");
        std::thread::sleep(Duration::from_millis(2));
    };
    first.kill();
    assert!(!dst.join("disk.img").exists(), "killed too late");
    eprintln!(
        "killed at {} of {len} bytes ({})",
        file_len(&part),
        part.display()
    );
    // The same command again: no new code; it resumes from the partial file.
    let mut again = sender(dir.path(), "sender", &["--code", &code, f, "--json"]);
    let e = again.wait(LONG);
    assert_eq!(e.code, Some(0), "rerun stderr:\n{}", e.stderr);
    assert!(
        e.stderr.contains("resuming the session paired earlier"),
        "{}",
        e.stderr
    );
    l.expect_code(0, LONG);
    let (want, _) = sha256_file(&file);
    let (got, n) = sha256_file(&dst.join("disk.img"));
    assert_eq!((hex(&got), n), (hex(&want), len as u64));
    // One pairing attempt in all: the rerun did not pair again.
    let plate = code.split('-').next().unwrap();
    let splices = relay
        .events()
        .iter()
        .filter(|e| e["event"] == "splice" && e["name"] == plate)
        .count();
    assert_eq!(splices, 1);
}

#[test]
fn without_a_relay_the_error_says_how_to_run_and_name_one() {
    let dir = tempdir();
    let mut cmd = msock(&["listen", "--code"]);
    env(&mut cmd, dir.path(), "listener");
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let e = Proc::spawn("listen --code", cmd).wait(SHORT);
    assert_eq!(e.code, Some(2), "{}", e.stderr);
    assert!(
        e.stderr.contains("msock proxy") && e.stderr.contains("relay = \"HOST:PORT\""),
        "{}",
        e.stderr
    );
    assert!(e.stderr.contains("config.toml"), "{}", e.stderr);
    // A malformed code is the user's to fix (exit 2), named as such.
    let e = sender(
        dir.path(),
        "s",
        &["--code", "7-nosuchword-able-zircon", "x", "127.0.0.1:1"],
    )
    .wait(SHORT);
    assert_eq!(e.code, Some(2), "{}", e.stderr);
    assert!(e.stderr.contains("nosuchword"), "{}", e.stderr);
}

/// The relay preamble and a PAIR frame (0x2A) for `code`'s nameplate.
fn pair_frame(code: &str) -> Vec<u8> {
    let plate = code.split('-').next().unwrap();
    let mut pair = PREAMBLE.to_vec();
    pair.extend_from_slice(&((2 + plate.len()) as u32).to_be_bytes());
    pair.push(0x2A);
    pair.push(plate.len() as u8);
    pair.extend_from_slice(plate.as_bytes());
    pair
}

/// A hostile sender that sends garbage (an oversized frame) after its PAIR: the listener
/// counts the try, says so, and goes on; the right code still pairs afterwards.
#[test]
fn garbage_from_a_sender_is_one_failed_try_and_the_listener_goes_on() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let r = relay.addr.to_string();
    let out = dir.path().join("out.txt");
    let (mut l, code) = coded_listener(dir.path(), &r, &[], stdout_to(&out));
    let mut pair = pair_frame(&code);
    pair.extend_from_slice(PREAMBLE);
    // A START frame claiming 1 GB.
    pair.extend_from_slice(&(1u32 << 30).to_be_bytes());
    pair.push(0x40);
    pair.extend_from_slice(&[0xAA; 64]);
    let mut s = tcp_connect(relay.addr, SHORT);
    s.write_all(&pair).unwrap();
    assert!(
        l.stderr.wait_contains(SHORT, "(try 1 of 3)"),
        "{}",
        l.stderr.text()
    );
    drop(s);
    l.assert_running("after a garbage try");
    let e = sender(
        dir.path(),
        "sender",
        &["--code", &code, "--text", "still fine", &r],
    )
    .wait(SHORT);
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    l.expect_code(0, SHORT);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "still fine");
}

/// PAIRs that never reach the listener (garbage where the session's preamble belongs, or
/// nothing at all) are not tries: three of them do not burn the code behind the listener's
/// back, and the right code still pairs afterwards.
#[test]
fn pairs_that_never_reach_the_listener_do_not_burn_its_code() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let r = relay.addr.to_string();
    let out = dir.path().join("out.txt");
    let (mut l, code) = coded_listener(dir.path(), &r, &[], stdout_to(&out));
    for junk in [&b"GARBAGE!"[..], b"", b"MSOCK"] {
        let mut pair = pair_frame(&code);
        pair.extend_from_slice(junk);
        let mut s = tcp_connect(relay.addr, SHORT);
        s.write_all(&pair).unwrap();
        let _ = s.shutdown(std::net::Shutdown::Write);
        let _ = read_to_end_bounded(&mut s);
    }
    l.assert_running("after PAIRs that carried no session");
    let e = sender(
        dir.path(),
        "sender",
        &["--code", &code, "--text", "not burned", &r],
    )
    .wait(SHORT);
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    l.expect_code(0, SHORT);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "not burned");
}

/// `msock connect --code CODE RELAY`: a byte stream to the coded listener's stdout.
#[test]
fn connect_by_code_carries_a_stream() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let r = relay.addr.to_string();
    let out = dir.path().join("out.txt");
    let (mut l, code) = coded_listener(dir.path(), &r, &[], stdout_to(&out));
    let input = temp_file_with(b"a stream by code\n");
    let mut cmd = msock(&["connect", "--code", &code, &r]);
    env(&mut cmd, dir.path(), "client");
    cmd.stdin(stdin_from(input.path())).stdout(Stdio::null());
    let e = Proc::spawn("msock connect --code", cmd).wait(SHORT);
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    l.expect_code(0, SHORT);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "a stream by code\n");
    // A session that ended well leaves no ticket (client) and no session name's secret
    // (listener) behind.
    for who in ["client", "listener"] {
        let left = files_in(&dir.path().join(who).join("state"));
        assert!(left.is_empty(), "{who} kept {left:?}");
    }
}

/// The files under `dir` (recursively), not folders: what a side left in its state directory.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    if !dir.exists() {
        return Vec::new();
    }
    tree(dir).into_iter().filter(|p| p.is_file()).collect()
}

/// Waits until a file under `dst` holds at least `len` bytes; None if `p` ended first.
fn half_file(dst: &Path, len: u64, p: &mut Proc) -> PathBuf {
    let deadline = Instant::now() + LONG;
    loop {
        let part = std::fs::read_dir(dst).ok().and_then(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| p.is_file() && file_len(p) >= len)
        });
        if let Some(p) = part {
            return p;
        }
        assert!(
            p.try_exit().is_none(),
            "sender ended early:\n{}",
            p.stderr.text()
        );
        assert!(Instant::now() < deadline, "no half file in time");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The listener killed with -9 halfway: `msock listen --code --resume` (same relay and
/// --save-dir) serves the same pairing again without a new code, the sender runs its command
/// again, and the file ends byte-identical, resumed from the partial file. Afterwards neither
/// side keeps a ticket, and the listener no session name's secret.
#[test]
fn killed_listener_resumes_with_resume_and_no_new_code() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let r = relay.addr.to_string();
    let dst = dir.path().join("dst");
    let dst_s = dst.to_str().unwrap();
    let len: usize = 96 << 20;
    let (file, _) = write_random_file(dir.path(), "disk.img", 0x1157, len);
    let f = file.to_str().unwrap();
    let (mut l, code) = coded_listener(dir.path(), &r, &["--save-dir", dst_s], Stdio::null());
    let mut first = sender(dir.path(), "sender", &["--code", &code, f, &r]);
    let part = half_file(&dst, len as u64 / 2, &mut first);
    l.kill();
    assert!(!dst.join("disk.img").exists(), "killed too late");
    let at = file_len(&part);
    eprintln!("listener killed at {at} of {len} bytes");
    // Without --resume's ticket for this save dir, --resume refuses (exit 2), saying why.
    let other = dir.path().join("elsewhere");
    let mut cmd = msock(&["listen", "--relay", &r, "--code", "--resume"]);
    cmd.args(["--save-dir", other.to_str().unwrap()]);
    env(&mut cmd, dir.path(), "listener");
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let e = Proc::spawn("listen --code --resume elsewhere", cmd).wait(SHORT);
    assert_eq!(e.code, Some(2), "{}", e.stderr);
    assert!(
        e.stderr.contains("no coded session to resume"),
        "{}",
        e.stderr
    );
    // The documented rerun: the same listener command with --resume; no code is printed.
    let mut cmd = msock(&["listen", "--relay", &r, "--code", "--resume"]);
    cmd.args(["--save-dir", dst_s]);
    env(&mut cmd, dir.path(), "listener");
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut again = Proc::spawn("listen --code --resume", cmd);
    assert!(
        again.stderr.wait_contains(SHORT, "registered"),
        "{}",
        again.stderr.text()
    );
    // The first sender's session is gone with the killed listener: it fails, saying how to
    // resume.
    let e = first.wait(LONG);
    assert_eq!(e.code, Some(1), "first sender:\n{}", e.stderr);
    assert!(
        e.stderr.contains("run the same command again"),
        "{}",
        e.stderr
    );
    let e = sender(dir.path(), "sender", &["--code", &code, f, &r]).wait(LONG);
    assert_eq!(e.code, Some(0), "rerun sender:\n{}", e.stderr);
    let le = again.expect_code(0, LONG);
    assert!(!le.stderr.contains("code: "), "a new code:\n{}", le.stderr);
    assert!(le.stderr.contains("resumed from"), "{}", le.stderr);
    let (want, _) = sha256_file(&file);
    let (got, n) = sha256_file(&dst.join("disk.img"));
    assert_eq!((hex(&got), n), (hex(&want), len as u64));
    // One pairing in all.
    let plate = code.split('-').next().unwrap();
    let splices = relay
        .events()
        .iter()
        .filter(|e| e["event"] == "splice" && e["name"] == plate)
        .count();
    assert_eq!(splices, 1);
    for who in ["sender", "listener"] {
        let left = files_in(&dir.path().join(who).join("state"));
        assert!(left.is_empty(), "{who} kept {left:?}");
    }
}

/// A relay started with --auth-keys: a coded listener without --relay-key-file is refused,
/// saying what to give; with the key (and the relay from config.toml) it pairs and the text
/// arrives.
#[test]
fn code_at_a_relay_with_auth_keys_needs_the_relay_key() {
    let dir = tempdir();
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "# operators\n0123456789abcdef0123456789abcdef\n").unwrap();
    let relay = Relay::start(
        dir.path(),
        "127.0.0.1:0",
        &["--auth-keys", keys.to_str().unwrap()],
    );
    let r = relay.addr.to_string();
    let mut cmd = msock(&["listen", "--relay", &r, "--code"]);
    env(&mut cmd, dir.path(), "listener");
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let e = Proc::spawn("listen --code without a key", cmd).wait(SHORT);
    assert_eq!(e.code, Some(1), "{}", e.stderr);
    assert!(
        e.stderr.contains("registration key") && e.stderr.contains("--relay-key-file"),
        "{}",
        e.stderr
    );
    assert!(!e.stderr.contains("code: "), "{}", e.stderr);
    let out = dir.path().join("out.txt");
    let k = keys.to_str().unwrap();
    // The relay from config.toml (no --relay): --relay-key-file goes with --code alone.
    let cfg = dir.path().join("listener/config");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("config.toml"), format!("relay = \"{r}\"\n")).unwrap();
    let (mut l, code) = coded_listener_with(dir.path(), &["--relay-key-file", k], stdout_to(&out));
    let e = sender(
        dir.path(),
        "sender",
        &["--code", &code, "--text", "keyed", &r],
    )
    .wait(SHORT);
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    l.expect_code(0, SHORT);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keyed");
}

/// `send-file --code CODE FILE fiel.txt` with a relay in config.toml: the missing last
/// argument is a mistyped file, said so (exit 2), and no relay is asked for anything (a PAIR
/// for the unregistered nameplate would show as a refusal at the relay).
#[test]
fn a_missing_last_argument_is_named_as_a_mistyped_file() {
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &[]);
    let cfg = dir.path().join("sender/config");
    std::fs::create_dir_all(&cfg).unwrap();
    let r = relay.addr.to_string();
    std::fs::write(cfg.join("config.toml"), format!("relay = \"{r}\"\n")).unwrap();
    let file = temp_file_with(b"present\n");
    let missing = dir.path().join("fiel.txt");
    let args = [
        "--code",
        "7-able-able-able",
        file.path().to_str().unwrap(),
        missing.to_str().unwrap(),
    ];
    let e = sender(dir.path(), "sender", &args).wait(SHORT);
    assert_eq!(e.code, Some(2), "{}", e.stderr);
    assert!(
        e.stderr.contains("fiel.txt: no such file or folder"),
        "{}",
        e.stderr
    );
    assert!(!e.stderr.contains("cannot reach"), "{}", e.stderr);
    assert!(
        !relay.events().iter().any(|e| e["event"] == "refused"),
        "{:?}",
        relay.events()
    );
}
