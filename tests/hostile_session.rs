//! Hostile sessions against a listener (issue 13, item 5): a hand-written client speaking the
//! --no-encrypt wire fragments its stream into 1-byte pieces at every other offset of the
//! window, and floods HELLO(attach) for a legitimate session's id (the id travels in the
//! clear). The listener ends the fragmenting session (it would hold far more than twice its
//! window), and the legitimate session running alongside delivers every byte, unharmed.
//! Memory and goodput figures: tests/bench-hostile-memory.sh.

mod common;

#[allow(dead_code)]
#[path = "../examples/hostile_client.rs"]
mod hostile;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use common::*;

/// The session id a `connect -v` logs ("session 0123456789abcdef open: ...").
fn session_id(line: &str) -> String {
    let at = line.find("session ").expect("a session line") + "session ".len();
    line[at..at + 16].to_owned()
}

#[test]
fn fragmentation_and_an_attach_flood_leave_a_legitimate_session_intact() {
    let dir = tempdir();
    let save = dir.path().to_str().unwrap().to_owned();
    let mut l = Listener::start(
        &["--no-encrypt", "-k", "-v", "--save-dir", &save],
        Stdio::null(),
        Stdio::piped(),
    );
    let dest = l.dest();
    let data = seeded_bytes(13, 24 << 20);
    let mut out = l.proc.take_stdout();
    let want = data.len();
    let reader = std::thread::spawn(move || {
        let mut got = vec![0u8; want];
        out.read_exact(&mut got).map(|_| got)
    });
    let mut c = connect(
        &dest,
        &["--no-encrypt", "-v"],
        Stdio::piped(),
        Stdio::null(),
    );
    let mut stdin = c.take_stdin();
    stdin.write_all(&data[..1 << 20]).unwrap();
    let line = c
        .stderr
        .wait_line(STARTUP, |l| l.contains("session ") && l.contains(" open"))
        .unwrap_or_else(|| panic!("no session line: {}", c.stderr.text()));
    let id = session_id(&line);

    // The attacks run while the rest of the legitimate stream goes through.
    let (d1, d2) = (dest.clone(), dest.clone());
    let frag = std::thread::spawn(move || {
        hostile::fragment(&d1, true, 4 << 20, Duration::from_millis(500)).unwrap()
    });
    let flood = std::thread::spawn(move || {
        let id = u64::from_str_radix(&id, 16).unwrap();
        hostile::attach_flood(&d2, id, 3000, Duration::from_secs(1))
    });
    for part in data[1 << 20..].chunks(1 << 20) {
        stdin.write_all(part).unwrap();
    }
    drop(stdin);
    let frag = frag.join().unwrap();
    let sent = flood.join().unwrap();
    assert!(sent > 1000, "only {sent} HELLO(attach) went out");
    assert!(
        frag.contains("ended by the listener"),
        "the fragmenting session was not ended: {frag}"
    );
    c.expect_code(0, Duration::from_secs(60));
    let got = reader.join().unwrap().expect("the listener's output");
    assert_bytes_eq(&got, &data, "the legitimate session's bytes");
    assert!(
        l.proc
            .stderr
            .wait_contains(Duration::from_secs(5), "fragmented its stream"),
        "the listener should say why it ended the hostile session: {}",
        l.proc.stderr.text()
    );
}
