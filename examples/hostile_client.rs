//! A hostile msock client for `tests/hostile_session.rs` and `tests/bench-hostile-memory.sh`
//! (issue 13, item 5). It speaks the `--no-encrypt` wire by hand (the library's handshake,
//! then raw frames) and does two things a real client never does:
//!
//! - `--fragment`: opens sessions and sends 1-byte DATA frames at every other offset of the
//!   listener's 4 MiB window (nothing ever becomes readable; each byte is a separate piece
//!   for the reorder buffer to hold);
//! - `--attach-flood N --session HEX`: sends N HELLO(attach) for session HEX (the session id
//!   travels in the clear) on N connections and never answers the CHALLENGEs.
//!
//! Each session or connection is held open for `--hold` after its last byte, so that the
//! listener's memory can be measured while it holds them. Prints one line per session on
//! stderr: how many frames went out and whether the listener ended the session.
//!
//! `cargo run --release --example hostile_client -- --fragment --sessions 100 127.0.0.1:9000`

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use clap::Parser;
use msock::proto::{ClientHandshake, Config, Deframer, Frame, Service, PREAMBLE};

/// A hostile client speaking the --no-encrypt wire.
#[derive(Parser)]
struct Args {
    /// The listener, HOST:PORT (started with --no-encrypt).
    dest: String,
    /// Send 1-byte DATA frames at every other offset of the window.
    #[arg(long)]
    fragment: bool,
    /// How many fragmenting sessions, all at once.
    #[arg(long, default_value = "1")]
    sessions: usize,
    /// Ask for the file-transfer service (listeners with --save-dir serve these sessions
    /// concurrently) instead of the byte stream.
    #[arg(long)]
    file: bool,
    /// The receive window to fill, in bytes (the listener's default).
    #[arg(long, default_value_t = 4 << 20)]
    window: u64,
    /// Send this many HELLO(attach) for `--session` and never answer them.
    #[arg(long, default_value = "0")]
    attach_flood: usize,
    /// The session id (16 hex digits) the HELLO(attach) flood names.
    #[arg(long)]
    session: Option<String>,
    /// Keep every connection open this long after the attack (seconds).
    #[arg(long, default_value = "3")]
    hold: f64,
}

fn main() {
    let args = Args::parse();
    msock::runtime::sys::raise_nofile();
    let hold = Duration::from_secs_f64(args.hold);
    let mut threads = Vec::new();
    if args.fragment {
        for n in 0..args.sessions {
            let (dest, file, window) = (args.dest.clone(), args.file, args.window);
            threads.push(std::thread::spawn(move || {
                let line = match fragment(&dest, file, window, hold) {
                    Ok(s) => s,
                    Err(e) => format!("failed: {e}"),
                };
                eprintln!("hostile session {n}: {line}");
            }));
        }
    }
    if args.attach_flood > 0 {
        let Some(id) = args.session.as_deref() else {
            eprintln!("hostile_client: --attach-flood needs --session HEX");
            std::process::exit(2);
        };
        let Ok(id) = u64::from_str_radix(id, 16) else {
            eprintln!("hostile_client: --session takes 16 hex digits");
            std::process::exit(2);
        };
        let dest = args.dest.clone();
        let n = args.attach_flood;
        threads.push(std::thread::spawn(move || {
            let sent = attach_flood(&dest, id, n, hold);
            eprintln!("attach flood: {sent} HELLO(attach) sent for {id:016x}");
        }));
    }
    for t in threads {
        let _ = t.join();
    }
}

/// Opens a session and sends the fragmentation pattern; says how it went.
pub fn fragment(dest: &str, file: bool, window: u64, hold: Duration) -> std::io::Result<String> {
    let mut s = TcpStream::connect(dest)?;
    s.set_nodelay(true)?;
    let config = Config {
        encrypt: false,
        service: if file { Service::File } else { Service::Stream },
        ..Config::default()
    };
    let mut rng = rand::thread_rng();
    let hs = ClientHandshake::new(config, &mut rng, Duration::ZERO);
    let mut out = BytesMut::new();
    out.extend_from_slice(&PREAMBLE);
    hs.hello().encode(&mut out);
    s.write_all(&out)?;
    let mut rx = Deframer::new();
    let welcome = loop {
        if let Some(f) = rx.next_frame().map_err(std::io::Error::other)? {
            break f;
        }
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        rx.extend(&buf[..n]);
    };
    let session = hs
        .handle_reply_on(welcome, &mut rx, Duration::ZERO)
        .map_err(std::io::Error::other)?;
    // Drain what the listener sends (ACKs, PINGs, its ERROR) so that it is never blocked on
    // us, and notice when it closes.
    let mut reader = s.try_clone()?;
    let closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = closed.clone();
    let drained = std::thread::spawn(move || {
        let mut buf = [0u8; 16 << 10];
        while matches!(reader.read(&mut buf), Ok(n) if n > 0) {}
        seen.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let ended = || closed.load(std::sync::atomic::Ordering::SeqCst);
    let started = Instant::now();
    let mut frames = 0u64;
    let mut offset = 1;
    let mut refused = None;
    while offset < window && !ended() {
        out.clear();
        for _ in 0..4096 {
            if offset >= window {
                break;
            }
            Frame::Data {
                offset,
                payload: bytes::Bytes::from_static(b"x"),
            }
            .encode(&mut out);
            offset += 2;
        }
        if let Err(e) = s.write_all(&out) {
            refused = Some(e);
            break;
        }
        frames += 4096;
    }
    let secs = started.elapsed().as_secs_f64();
    std::thread::sleep(hold);
    if refused.is_none() && ended() {
        refused = Some(std::io::Error::other("it closed the connection"));
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = drained.join();
    Ok(format!(
        "session {:016x}: {frames} frames in {secs:.2} s, {}",
        session.id(),
        match refused {
            Some(e) => format!("ended by the listener ({e})"),
            None => "all sent".into(),
        }
    ))
}

/// Sends `n` HELLO(attach) for session `id`, each on its own connection, holds them, and
/// returns how many went out.
pub fn attach_flood(dest: &str, id: u64, n: usize, hold: Duration) -> usize {
    let mut held = Vec::new();
    for i in 0..n {
        let Ok(mut s) = TcpStream::connect(dest) else {
            continue;
        };
        let mut out = BytesMut::new();
        out.extend_from_slice(&PREAMBLE);
        Frame::HelloAttach {
            session_id: id,
            path_id: 1000 + i as u32,
            client_nonce: rand::random(),
        }
        .encode(&mut out);
        if s.write_all(&out).is_ok() {
            held.push(s);
        }
    }
    let sent = held.len();
    std::thread::sleep(hold);
    sent
}
