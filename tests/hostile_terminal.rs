//! Issue 13 item 9: a peer cannot drive the user's terminal. An impostor listener (a plain
//! socket, no msock) answers every client with an msock ERROR whose reason clears the screen,
//! rings the bell and fakes a success line; the client must say the peer refused, with every
//! control character escaped: no ESC, BEL, CR or other C0/C1 byte on its stderr.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const SHORT: Duration = Duration::from_secs(15);

/// The reason the impostor sends: a screen clear, a cursor move, a fake verified line, a bell,
/// a carriage return, a C1 CSI and a right-to-left override.
const EVIL: &str = "\x1b[2J\x1b[Hsent 1 file, verified\x07\r\n\u{9b}31m\u{202e}gpj.exe";

/// Big-endian frame bytes: length (type + body), type, body.
fn frame(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 1) as u32).to_be_bytes().to_vec();
    v.push(ty);
    v.extend_from_slice(body);
    v
}

/// Accepts connections until `stop` is set; to each, after reading what the client sends
/// first, answers preamble + ERROR(code, EVIL) and closes.
fn impostor(code: u16, stop: Arc<AtomicBool>) -> (std::net::SocketAddr, thread::JoinHandle<()>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = thread::spawn(move || {
        l.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + SHORT;
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            match l.accept() {
                Ok((mut s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(500)))
                        .unwrap();
                    let mut buf = [0u8; 4096];
                    let _ = s.read(&mut buf);
                    let mut body = code.to_be_bytes().to_vec();
                    body.extend_from_slice(EVIL.as_bytes());
                    let mut reply = PREAMBLE.to_vec();
                    reply.extend(frame(FRAME_ERROR, &body));
                    let _ = s.write_all(&reply);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    thread::sleep(Duration::from_millis(5))
                }
                Err(e) => panic!("accept: {e}"),
            }
        }
    });
    (addr, h)
}

/// The characters that must never reach the terminal from a peer.
fn terminal_controls(s: &str) -> Vec<char> {
    s.chars()
        .filter(|&c| (c.is_control() && c != '\n') || c == '\u{202e}')
        .collect()
}

/// Runs `msock ARGS... ADDR` against an impostor answering ERROR(code): exit 1, stderr shows
/// the reason escaped, with no control character and the fake line not on a line of its own.
fn check_client(args: &[&str], code: u16) {
    let stop = Arc::new(AtomicBool::new(false));
    let (addr, h) = impostor(code, stop.clone());
    let dest = addr.to_string();
    let mut all = args.to_vec();
    all.push(&dest);
    let mut cmd = msock(&all);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let e = Proc::spawn(&format!("msock {}", args.join(" ")), cmd).wait(SHORT);
    stop.store(true, Ordering::Relaxed);
    h.join().unwrap();
    assert_eq!(e.code, Some(1), "msock {args:?}; stderr: {:?}", e.stderr);
    let bad = terminal_controls(&e.stderr);
    assert!(
        bad.is_empty(),
        "msock {args:?} printed the peer's control characters {bad:?}: {:?}",
        e.stderr
    );
    assert!(
        e.stderr.contains("\\u{1b}[2J"),
        "the peer's reason is shown, escaped: {:?}",
        e.stderr
    );
    assert!(
        !e.stderr
            .lines()
            .any(|l| l.trim_start().starts_with("sent 1 file")),
        "a peer's text starts no line of its own: {:?}",
        e.stderr
    );
}

/// connect, encrypted (the default) and not: the refusal is shown escaped.
#[test]
fn connect_escapes_an_impostors_error_reason() {
    check_client(&["connect"], 9);
    check_client(&["connect", "--no-encrypt"], 9);
    check_client(&["connect", "-v"], 4);
}

/// send-file and bench too.
#[test]
fn send_file_and_bench_escape_an_impostors_error_reason() {
    let dir = tempdir();
    let (f, _) = write_random_file(dir.path(), "a.bin", 1, 1000);
    check_client(&["send-file", f.to_str().unwrap()], 9);
    check_client(&["bench", "-t", "1s"], 9);
}
