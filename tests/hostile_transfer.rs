//! Hostile file-transfer peers (issue 13, items 4, 6, 7, 9, 11, 12): a small client speaking
//! the file-transfer protocol by hand, from inside the test (the library's own client session,
//! `msock::cmd::dial::dial`, with `--no-encrypt`, carries hand-made messages whose bodies are
//! raw JSON), against a real `msock listen --save-dir`; and real `send-file` runs where the
//! attack is on the sender's side (a killed sender, a huge offer).
//!
//! Each test states the attack and what must hold: nothing outside the save directory is
//! read, disclosed or written; a sender's partial file is nobody else's to learn of, resume or
//! truncate; limits are checked up front and blamed on the right side.

mod common;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

use msock::runtime::channel_io::{channel_app, ChannelReader, ChannelWriter};
use msock::transfer::wire::{self, tag};

/// Deadline for a small exchange (debug build, 2 cores, other tests in parallel).
const SHORT: Duration = Duration::from_secs(20);
/// Deadline for a large transfer.
const LONG: Duration = Duration::from_secs(90);

/// A listener saving into `dir` (`--no-encrypt`, so the hand-written client needs no key).
fn save_listener(dir: &Path, extra: &[&str]) -> Listener {
    let mut args = vec!["--no-encrypt", "--save-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    Listener::start(&args, Stdio::null(), Stdio::null())
}

/// A hand-written file-transfer client on one session.
struct Client {
    w: ChannelWriter,
    r: ChannelReader,
}

impl Client {
    /// Sends one control message with a raw JSON body.
    async fn send(&mut self, t: u8, body: Value) {
        self.w
            .send(wire::control(t, &body))
            .await
            .expect("session open");
    }

    /// Sends raw bytes (hand-framed messages).
    async fn raw(&mut self, b: Vec<u8>) {
        self.w.send(b.into()).await.expect("session open");
    }

    /// Reads the next control message `t` as raw JSON (Err: what came instead, or nothing).
    async fn expect(&mut self, t: u8) -> Result<Value, String> {
        wire::expect::<Value>(&mut self.r, t)
            .await
            .map_err(|e| e.to_string())
    }

    /// Reads every STATUS message (the receiver may split one answer in several).
    async fn status(&mut self) -> Result<Value, String> {
        let mut first = self.expect(tag::STATUS).await?;
        while first["more"] == true {
            let next = self.expect(tag::STATUS).await?;
            if let (Some(a), Some(b)) = (first["held"].as_array_mut(), next["held"].as_array()) {
                a.extend(b.iter().cloned());
            }
            first["more"] = next["more"].clone();
        }
        Ok(first)
    }

    /// Closes our side and reads until the receiver closes its side; returns the raw JSON
    /// of every control message that came.
    async fn close(mut self) -> Vec<Value> {
        self.w.close();
        let mut got = Vec::new();
        while let Ok(Some(m)) = read_any(&mut self.r).await {
            got.push(m);
        }
        got
    }
}

/// Next control message as JSON (DATA is not expected from a receiver).
async fn read_any(r: &mut ChannelReader) -> Result<Option<Value>, String> {
    let Some(head) = r.recv_up_to(1).await else {
        return Ok(None);
    };
    let len = r.recv_exact(4).await.map_err(|_| "ended".to_owned())?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let body = r.recv_exact(len).await.map_err(|_| "ended".to_owned())?;
    let mut v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    v["tag"] = json!((head[0] as char).to_string());
    Ok(Some(v))
}

/// Runs `talk` on a new `--no-encrypt` file session to `dest`, bounded by `deadline`.
async fn session<F, Fut, T>(dest: &str, deadline: Duration, talk: F) -> Result<T, String>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    use clap::Parser;
    use msock::cli::{Cli, Command as Sub};
    let cli = Cli::try_parse_from([
        "msock",
        "send-file",
        "x",
        dest,
        "--wait",
        "5s",
        "--no-encrypt",
    ])
    .unwrap();
    let Sub::SendFile(a) = cli.command else {
        unreachable!()
    };
    let (source, sink, w, r) = channel_app(16);
    let driver = msock::cmd::dial::dial(
        dest,
        &a.dial,
        &a.stream,
        msock::proto::Service::File,
        Some(source),
        Some(sink),
    )
    .await
    .map_err(|f| f.message)?;
    let both = async { tokio::join!(talk(Client { w, r }), driver.run()).0 };
    tokio::time::timeout(deadline, both)
        .await
        .map_err(|_| format!("no end within {deadline:?}"))
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An OFFER body of files (path, size), each with transfer token `token` (64 hex digits).
fn offer(files: &[(&str, u64)], token: &str) -> Value {
    let entries: Vec<Value> = files
        .iter()
        .map(|&(p, size)| json!({"path": p, "kind": "file", "size": size, "token": token}))
        .collect();
    json!({ "entries": entries })
}

/// The partial file's name for `name` offered with `token`, as the protocol specifies it
/// (src/transfer/mod.rs): `.NAME.TAG.msock-part`, TAG the first 16 hex digits of the BLAKE3
/// of the token's 32 bytes.
fn part_name(name: &str, token: &str) -> String {
    let bytes: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&token[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let tag = blake3::hash(&bytes).to_hex();
    format!(".{name}.{}.msock-part", &tag[..16])
}

/// A START, its bytes as DATA and an END with the right size and hash.
fn file_msgs(index: usize, offset: u64, bytes: &[u8], whole: &[u8]) -> Vec<u8> {
    let mut raw = wire::control(tag::START, &json!({"index": index, "offset": offset})).to_vec();
    raw.extend_from_slice(&wire::data_header(bytes.len()));
    raw.extend_from_slice(bytes);
    let end = json!({"index": index, "size": whole.len(), "blake3": blake3::hash(whole).to_hex().to_string()});
    raw.extend_from_slice(&wire::control(tag::END, &end));
    raw
}

const TOKEN_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const TOKEN_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// Item 6. A hard link at the partial name (the old fixed name and the one the protocol
/// derives from the offer's token) to a file outside --save-dir: offering that name with the
/// outside file's size must disclose neither its size nor its BLAKE3, and sending the file
/// must leave the outside file as it was.
#[test]
fn hard_link_at_the_partial_name_is_never_opened() {
    let base = tempdir();
    let dir = base.path().join("save");
    fs::create_dir(&dir).unwrap();
    let outside = base.path().join("secret.key");
    let secret = b"-----BEGIN PRIVATE KEY----- not for strangers -----END-----".to_vec();
    fs::write(&outside, &secret).unwrap();
    let secret_hash = blake3::hash(&secret).to_hex().to_string();
    fs::hard_link(&outside, dir.join(".h.msock-part")).unwrap();
    fs::hard_link(&outside, dir.join(part_name("h", TOKEN_A))).unwrap();

    let mut l = save_listener(&dir, &["-k"]);
    let n = secret.len() as u64;
    let (status, after) = rt()
        .block_on(session(&l.dest(), SHORT, |mut c| async move {
            c.send(tag::OFFER, offer(&[("h", n)], TOKEN_A)).await;
            let st = c.status().await;
            if matches!(&st, Ok(s) if s["refused"].is_null()) {
                let junk = vec![b'X'; n as usize];
                c.raw(file_msgs(0, 0, &junk, &junk)).await;
            }
            (st, c.close().await)
        }))
        .unwrap();
    let status = status.unwrap();
    let text = format!("{status} {after:?}");
    assert!(
        !text.contains(&secret_hash[..16]),
        "the outside file's hash was disclosed: {text}"
    );
    for held in status["held"].as_array().into_iter().flatten() {
        assert_ne!(
            held["partial"],
            json!(n),
            "its size was disclosed: {status}"
        );
    }
    assert_eq!(read(&outside), secret, "the outside file was modified");
    l.proc.assert_running("-k");
}

/// Item 7. A stranger offering the name of a file that exists on the receiver learns at most
/// that it exists: never its hash nor its size.
#[test]
fn existing_files_hash_and_size_are_not_disclosed() {
    let dir = tempdir();
    let doc = b"the receiver's own private notes, 49 bytes long.".to_vec();
    fs::write(dir.path().join("notes.txt"), &doc).unwrap();
    let hash = blake3::hash(&doc).to_hex().to_string();
    let mut l = save_listener(dir.path(), &["-k"]);
    for size in [doc.len() as u64, 1] {
        let st = rt()
            .block_on(session(&l.dest(), SHORT, |mut c| async move {
                c.send(tag::OFFER, offer(&[("notes.txt", size)], TOKEN_B))
                    .await;
                let st = c.status().await;
                c.close().await;
                st
            }))
            .unwrap()
            .unwrap();
        let text = st.to_string();
        assert!(!text.contains(&hash[..16]), "hash disclosed: {text}");
        assert!(
            !text.contains(&format!(":{}", doc.len())),
            "size disclosed: {text}"
        );
    }
    assert_eq!(read(&dir.path().join("notes.txt")), doc);
    l.proc.assert_running("-k");
}

/// Item 7. Sender A leaves a partial file (it stops in the middle). Stranger B, offering the
/// same name, learns nothing of it (no length, no hash) and B's START at offset 0 does not
/// truncate it: A's bytes are still there afterwards, and A (its token) still sees them.
#[test]
fn a_strangers_offer_neither_sees_nor_truncates_a_partial() {
    let dir = tempdir();
    let whole = seeded_bytes(7, 300_000);
    let half = whole[..150_000].to_vec();
    let half_hash = blake3::hash(&half).to_hex().to_string();
    let mut l = save_listener(dir.path(), &["-k"]);
    let n = whole.len() as u64;

    // A sends half the file, then stops (no END).
    let h2 = half.clone();
    rt().block_on(session(&l.dest(), SHORT, |mut c| async move {
        c.send(tag::OFFER, offer(&[("f.bin", n)], TOKEN_A)).await;
        c.status().await.unwrap();
        let mut raw = wire::control(tag::START, &json!({"index": 0, "offset": 0})).to_vec();
        raw.extend_from_slice(&wire::data_header(h2.len()));
        raw.extend_from_slice(&h2);
        c.raw(raw).await;
        c.close().await;
    }))
    .unwrap();
    assert!(
        l.proc.stderr.wait_contains(SHORT, "stopped inside"),
        "{}",
        l.proc.stderr.text()
    );
    let holds_half = |dir: &Path| {
        fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| fs::read(e.unwrap().path()).ok())
            .any(|b| b == half)
    };
    // (The receiver ends its writer thread before it reports the session's end.)
    assert!(holds_half(dir.path()), "A's partial file was not kept");

    // B offers the same name with its own token.
    let st = rt()
        .block_on(session(&l.dest(), SHORT, |mut c| async move {
            c.send(tag::OFFER, offer(&[("f.bin", n)], TOKEN_B)).await;
            let st = c.status().await;
            if st.is_ok() {
                let mut raw = wire::control(tag::START, &json!({"index": 0, "offset": 0})).to_vec();
                raw.extend_from_slice(&wire::data_header(10));
                raw.extend_from_slice(&[0xEE; 10]);
                c.raw(raw).await;
            }
            c.close().await;
            st
        }))
        .unwrap()
        .unwrap();
    let text = st.to_string();
    assert!(
        !text.contains(&half_hash[..16]),
        "A's hash shown to B: {text}"
    );
    assert!(!text.contains("150000"), "A's length shown to B: {text}");
    assert!(
        holds_half(dir.path()),
        "B's START truncated or changed A's partial file"
    );

    // A, again, is told of its partial file.
    let st = rt()
        .block_on(session(&l.dest(), SHORT, |mut c| async move {
            c.send(tag::OFFER, offer(&[("f.bin", n)], TOKEN_A)).await;
            let st = c.status().await;
            c.close().await;
            st
        }))
        .unwrap()
        .unwrap();
    assert!(
        st.to_string().contains("150000"),
        "A no longer sees its own partial file: {st}"
    );
    l.proc.assert_running("-k");
}

/// Item 9. Names with bidirectional overrides or zero-width characters are refused.
#[test]
fn deceptive_names_are_refused() {
    let dir = tempdir();
    let mut l = save_listener(dir.path(), &["-k"]);
    for name in ["invoice\u{202E}fdp.exe", "a\u{200B}b", "x/\u{2067}y"] {
        let st = rt()
            .block_on(session(&l.dest(), SHORT, |mut c| async move {
                c.send(tag::OFFER, offer(&[(name, 1)], TOKEN_A)).await;
                let st = c.status().await;
                c.close().await;
                st
            }))
            .unwrap()
            .unwrap();
        assert!(!st["refused"].is_null(), "{name:?} accepted: {st}");
        let why = st["refused"].as_str().unwrap();
        assert!(
            !why.chars().any(msock::proto::text::is_deceptive_format),
            "the refusal repeats the name raw: {why:?}"
        );
    }
    assert!(fs::read_dir(dir.path()).unwrap().next().is_none());
    l.proc.assert_running("-k");
}

/// Item 12. A 2048-deep path is refused in the STATUS, before any folder is created.
#[test]
fn very_deep_paths_are_refused_up_front() {
    let dir = tempdir();
    let mut l = save_listener(dir.path(), &["-k"]);
    let deep = vec!["d"; 2048].join("/");
    let st = rt()
        .block_on(session(&l.dest(), SHORT, |mut c| async move {
            c.send(tag::OFFER, offer(&[(&deep, 1)], TOKEN_A)).await;
            let st = c.status().await;
            if matches!(&st, Ok(s) if s["refused"].is_null()) {
                c.raw(file_msgs(0, 0, b"x", b"x")).await;
            }
            c.close().await;
            st
        }))
        .unwrap()
        .unwrap();
    assert!(!st["refused"].is_null(), "a 2048-deep path was accepted");
    assert!(
        fs::read_dir(dir.path()).unwrap().next().is_none(),
        "folders were created"
    );
    l.proc.assert_running("-k");
}

/// Bytes free for us on the file system holding `p`.
fn free_space(p: &Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    // SAFETY: statvfs fills the struct we pass; the path is a valid C string.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        assert_eq!(libc::statvfs(c.as_ptr(), &mut s), 0);
        s.f_bavail as u64 * s.f_frsize as u64
    }
}

/// Item 12. Two concurrent offers that each fit in the free space but not together: the
/// first accepted one reserves what it needs, so the second is refused (not both accepted to
/// fail later with a full disk); once the first ends, its reservation is released.
#[test]
fn concurrent_offers_cannot_both_claim_the_free_space() {
    let dir = tempdir();
    let mut l = save_listener(dir.path(), &["-k"]);
    let dest = l.dest();
    let size = free_space(dir.path()) / 10 * 6;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (first, second) = rt().block_on(async {
        let a = session(&dest, SHORT, |mut c| async move {
            c.send(tag::OFFER, offer(&[("a.img", size)], TOKEN_A)).await;
            let st = c.status().await;
            // Hold the session (and its claim) open until B has had its answer.
            let _ = rx.await;
            c.close().await;
            st
        });
        let b = async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            let st = session(&dest, SHORT, |mut c| async move {
                c.send(tag::OFFER, offer(&[("b.img", size)], TOKEN_B)).await;
                let st = c.status().await;
                c.close().await;
                st
            })
            .await;
            let _ = tx.send(());
            st
        };
        tokio::join!(a, b)
    });
    let first = first.unwrap().unwrap();
    let second = second.unwrap().unwrap();
    assert!(first["refused"].is_null(), "the first offer: {first}");
    assert!(
        !second["refused"].is_null(),
        "both offers of {size} bytes were accepted with {} bytes free",
        free_space(dir.path())
    );
    assert!(
        second["refused"].as_str().unwrap().contains("free"),
        "{second}"
    );
    // The first transfer ended: its claim is released (when the listener has seen the end,
    // which may come a moment after the client's close).
    let deadline = Instant::now() + SHORT;
    loop {
        let again = rt()
            .block_on(session(&dest, SHORT, |mut c| async move {
                c.send(tag::OFFER, offer(&[("b.img", size)], TOKEN_B)).await;
                let st = c.status().await;
                c.close().await;
                st
            }))
            .unwrap()
            .unwrap();
        if again["refused"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "not released: {again}");
        std::thread::sleep(Duration::from_millis(200));
    }
    l.proc.assert_running("-k");
}

/// Item 4. A sender killed mid-transfer leaves its session parked on the listener (it waits
/// --resume-timeout for the sender to come back). Running the same send-file again must not
/// be refused as "being received by another transfer": the sender proves the partial file is
/// its own and takes the transfer over, resuming from the bytes already there.
#[test]
fn a_killed_senders_rerun_takes_the_transfer_over() {
    let src = tempdir();
    let dst = tempdir();
    let len: usize = 64 << 20;
    let file = src.path().join("big.img");
    fs::write(&file, seeded_bytes(44, len)).unwrap();
    let mut l = save_listener(dst.path(), &["-k", "--resume-timeout", "5m"]);
    let dest = l.dest();
    let mut first = Proc::spawn("msock send-file (killed)", {
        let mut c = msock(&[
            "send-file",
            "--no-encrypt",
            "-q",
            file.to_str().unwrap(),
            &dest,
        ]);
        c.stdin(Stdio::null()).stdout(Stdio::null());
        c
    });
    let held = |d: &Path| -> u64 {
        fs::read_dir(d)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".msock-part"))
            .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
            .max()
            .unwrap_or(0)
    };
    let deadline = Instant::now() + LONG;
    while held(dst.path()) < (len / 4) as u64 {
        assert!(
            first.try_exit().is_none() && Instant::now() < deadline,
            "the first run ended or stalled before it could be killed: {}",
            first.stderr.text()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    first.kill();
    let have = held(dst.path());
    assert!(have < len as u64, "killed too late");

    let mut again = msock(&[
        "send-file",
        "--no-encrypt",
        "--json",
        file.to_str().unwrap(),
        &dest,
    ]);
    let out = src.path().join("rerun.json");
    again.stdin(Stdio::null()).stdout(stdout_to(&out));
    let exit = Proc::spawn("msock send-file (rerun)", again).wait(LONG);
    let doc: Value = serde_json::from_slice(&read(&out)).unwrap_or(Value::Null);
    assert_eq!(
        exit.code,
        Some(0),
        "the rerun was refused: {}\n{doc}",
        exit.stderr
    );
    let resumed = doc["files"][0]["resumed_from"].as_u64().unwrap_or(0);
    assert!(resumed > 0, "the rerun did not resume: {doc}");
    assert_eq!(read(&dst.path().join("big.img")), seeded_bytes(44, len));
    l.proc.assert_running("-k");
}

/// Item 11. An offer larger than one control message (many long names: about 19 MB of
/// offer, more than the 16 MiB a message may carry) goes through, and every file arrives.
#[test]
fn an_offer_larger_than_one_message_goes_through() {
    let src = tempdir();
    let dst = tempdir();
    // 18 folders of 200-byte names, then 5000 files of 200-byte names: ~3.8 KB per path,
    // ~19.5 MB of offer.
    let mut deep = src.path().join("top");
    for i in 0..18 {
        deep.push(format!("{i:02}{}", "d".repeat(198)));
    }
    fs::create_dir_all(&deep).unwrap();
    let count = 5000;
    for i in 0..count {
        fs::write(deep.join(format!("{i:05}{}", "f".repeat(195))), b"").unwrap();
    }
    let mut l = save_listener(dst.path(), &["-k"]);
    let mut c = msock(&[
        "send-file",
        "--no-encrypt",
        "-q",
        src.path().join("top").to_str().unwrap(),
        &l.dest(),
    ]);
    c.stdin(Stdio::null()).stdout(Stdio::null());
    let mut p = Proc::spawn("msock send-file (big offer)", c);
    // 5000 files, each created and synced on the receiver: slow on a busy debug build.
    let exit = p.wait(4 * LONG);
    assert_eq!(
        exit.code,
        Some(0),
        "{}\nlistener:\n{}",
        exit.stderr,
        l.proc.stderr.text()
    );
    let mut got = dst.path().join("top");
    for i in 0..18 {
        got.push(format!("{i:02}{}", "d".repeat(198)));
    }
    assert_eq!(fs::read_dir(&got).unwrap().count(), count);
    l.proc.assert_running("-k");
}
