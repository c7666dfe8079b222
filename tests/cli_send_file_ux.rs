//! What a person sees around `msock send-file` and `msock listen --save-dir`: the sender's
//! progress bar (percentage, file count, SI units, resumption) and its Ctrl-C (the bar kept,
//! the command to resume, exit 130); the receiver's summary naming the sender's key and
//! address; and, on a terminal, the listener asking before it accepts files from a key it has
//! not seen (`--yes` skips; a refusal reaches the sender).
//!
//! Terminals are pseudo-terminals made by util-linux `script` (skipped without it).

mod common;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Deadline for a small transfer (debug build, 2 cores, other tests in parallel).
const SHORT: Duration = Duration::from_secs(20);
/// Deadline for a large transfer.
const LONG: Duration = Duration::from_secs(90);

/// `s` quoted for sh.
fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// This (test) client's key fingerprint.
fn client_key() -> String {
    let out = msock(&["connect", "--show-key"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Prints the skip line and returns false when `script` is missing.
fn have_script() -> bool {
    if have("script") {
        return true;
    }
    println!("SKIPPED: util-linux script is not installed (apt-get install -y bsdutils)");
    false
}

/// `msock ARGS...` on a pseudo-terminal (stdin, stdout and stderr), through `script`: its
/// terminal output goes to `out`; the returned process's stdin types into the terminal. The
/// program replaces the shell (`exec`), so it is the script's child.
///
/// The listener there keeps the key of the other tests' listeners (copied into `config`):
/// their senders pin one key per host.
fn on_terminal(args: &[&str], config: &Path, out: &Path) -> Proc {
    let shared = test_config_dir().join("listener.key");
    if !shared.exists() {
        let made = msock(&["listen", "--show-key"]).output().unwrap();
        assert!(made.status.success(), "{made:?}");
    }
    if !config.join("listener.key").exists() {
        fs::copy(&shared, config.join("listener.key")).unwrap();
    }
    let mut line = format!("exec {}", sh(p(&bin())));
    for a in args {
        line += &format!(" {}", sh(a));
    }
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .env_remove("MSOCK_LOG")
        .env_remove("RUST_LOG")
        .env("MSOCK_CONFIG_DIR", config)
        .env("COLUMNS", "200")
        .stdin(Stdio::piped())
        .stdout(stdout_to(out));
    Proc::spawn(&format!("script: msock {}", args.join(" ")), cmd)
}

/// The pid of the program `script` (process `s`) runs.
fn child_of(s: &Proc) -> u32 {
    let deadline = Instant::now() + SHORT;
    loop {
        let kids =
            fs::read_to_string(format!("/proc/{0}/task/{0}/children", s.id())).unwrap_or_default();
        if let Some(k) = kids.split_whitespace().next() {
            return k.parse().unwrap();
        }
        assert!(Instant::now() < deadline, "script started no program");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the terminal output in `out` satisfies `f`; returns it (panics on timeout).
fn wait_output(out: &Path, what: &str, f: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + SHORT;
    loop {
        let text = String::from_utf8_lossy(&fs::read(out).unwrap_or_default()).into_owned();
        if f(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {what} on the terminal; it shows:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `msock send-file ARGS...` (not on a terminal) to its end.
fn send(args: &[&str], timeout: Duration) -> Exit {
    let mut all = vec!["send-file"];
    all.extend_from_slice(args);
    run(&all, timeout)
}

/// A file of `len` seeded bytes (1 MiB blocks, each numbered so that none repeats).
fn big_file(path: &Path, len: u64) {
    let block = seeded_bytes(0xb16, 1 << 20);
    let mut f = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let mut b = block.clone();
    let (mut left, mut i) = (len, 0u64);
    while left > 0 {
        b[..8].copy_from_slice(&i.to_le_bytes());
        let n = left.min(b.len() as u64) as usize;
        f.write_all(&b[..n]).unwrap();
        left -= n as u64;
        i += 1;
    }
    f.flush().unwrap();
}

/// Bytes in the receiver's partial files under `dir`.
fn partial_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".msock-part"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum()
}

/// The receiver's summary names the sender by its key and its address, and the offer is
/// logged (a listener not on a terminal accepts without asking); sizes and rates are SI on
/// both ends (it used to name only an address, and the bar said MiB/s where the summary said
/// MB/s).
#[test]
fn receiver_names_the_senders_key_and_address() {
    let (src, dst) = (tempdir(), tempdir());
    let (file, _) = write_random_file(src.path(), "a.bin", 7, 3_000_000);
    let mut l = Listener::start(&["--save-dir", p(dst.path())], Stdio::null(), Stdio::null());
    let e = send(&[p(&file), &l.dest()], SHORT);
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    assert!(
        e.stderr.contains("(3.0 MB, 3000000 bytes)") && e.stderr.contains(" MB/s"),
        "sender summary in SI units: {}",
        e.stderr
    );
    let le = l.proc.expect_code(0, SHORT);
    let key = client_key();
    assert!(
        le.stderr.contains(&format!(
            "accepting 1 file, 3.0 MB from {key} at 127.0.0.1:"
        )),
        "the offer is logged:\n{}",
        le.stderr
    );
    assert!(
        le.stderr.contains(&format!(
            "received 1 file (3.0 MB, 3000000 bytes) from {key} at 127.0.0.1:"
        )),
        "the summary names the sender's key and address:\n{}",
        le.stderr
    );
}

/// On a terminal, a --save-dir listener asks before accepting files from a key it has not
/// seen: "n" refuses (the sender exits 1 saying the receiver declined; nothing is written;
/// the listener waits on), "y" accepts and remembers the key in `accepted_senders`, and the
/// same sender is not asked about again.
#[test]
fn a_listener_on_a_terminal_asks_before_accepting_an_unseen_sender() {
    if !have_script() {
        return;
    }
    let (src, dst, config) = (tempdir(), tempdir(), tempdir());
    let (file, _) = write_random_file(src.path(), "doc.txt", 8, 1_200_000);
    let out = src.path().join("terminal.txt");
    let mut l = on_terminal(
        &["listen", "-k", "127.0.0.1:0", "--save-dir", p(dst.path())],
        config.path(),
        &out,
    );
    let mut keys = l.take_stdin();
    let text = wait_output(&out, "listening line", |t| {
        t.contains("listening on ") && t[t.find("listening on ").unwrap()..].contains('\n')
    });
    let at = text.find("listening on ").unwrap() + "listening on ".len();
    let dest = text[at..].lines().next().unwrap().trim().to_owned();
    let key = client_key();
    let question = format!("accept 1 file, 1.2 MB, from {key} at 127.0.0.1:");

    // Declined.
    let mut first = {
        let mut cmd = msock(&["send-file", p(&file), &dest]);
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        Proc::spawn("send-file (declined)", cmd)
    };
    wait_output(&out, "question", |t| {
        t.contains(&question) && t.contains("? [y/N] ")
    });
    keys.write_all(b"n\n").unwrap();
    let e = first.expect_code(1, SHORT);
    assert!(
        e.stderr.contains("the receiver declined"),
        "sender: {}",
        e.stderr
    );
    assert!(fs::read_dir(dst.path()).unwrap().next().is_none());

    // Accepted, and remembered.
    let mut second = {
        let mut cmd = msock(&["send-file", p(&file), &dest]);
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        Proc::spawn("send-file (accepted)", cmd)
    };
    wait_output(&out, "second question", |t| {
        t.matches(&question).count() == 2
    });
    keys.write_all(b"y\n").unwrap();
    second.expect_code(0, SHORT);
    assert_eq!(
        fs::read(dst.path().join("doc.txt")).unwrap(),
        fs::read(&file).unwrap()
    );
    let accepted = fs::read_to_string(config.path().join("accepted_senders")).unwrap();
    assert!(accepted.starts_with(&key), "{accepted}");

    // Seen: not asked again.
    fs::remove_file(dst.path().join("doc.txt")).unwrap();
    let e = send(&[p(&file), &dest], SHORT);
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    let text = fs::read_to_string(&out).unwrap();
    assert_eq!(text.matches("[y/N]").count(), 2, "asked again:\n{text}");
    assert!(
        text.contains(&format!("accepting 1 file, 1.2 MB from {key}")),
        "{text}"
    );
    drop(keys);
    l.kill();
}

/// `--yes`: a listener on a terminal accepts without asking (and logs the offer).
#[test]
fn yes_accepts_without_asking_on_a_terminal() {
    if !have_script() {
        return;
    }
    let (src, dst, config) = (tempdir(), tempdir(), tempdir());
    let (file, _) = write_random_file(src.path(), "y.bin", 9, 1000);
    let out = src.path().join("terminal.txt");
    let mut l = on_terminal(
        &[
            "listen",
            "127.0.0.1:0",
            "--yes",
            "--save-dir",
            p(dst.path()),
        ],
        config.path(),
        &out,
    );
    let _keys = l.take_stdin();
    let text = wait_output(&out, "listening line", |t| {
        t.contains("listening on ") && t[t.find("listening on ").unwrap()..].contains('\n')
    });
    let at = text.find("listening on ").unwrap() + "listening on ".len();
    let dest = text[at..].lines().next().unwrap().trim().to_owned();
    let e = send(&[p(&file), &dest], SHORT);
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    let text = wait_output(&out, "summary", |t| t.contains("received 1 file"));
    assert!(!text.contains("[y/N]"), "{text}");
    assert!(
        text.contains("accepting 1 file, 1.0 kB from SHA256:"),
        "{text}"
    );
    l.expect_code(0, SHORT);
}

/// The bar on a terminal shows the percentage, the file count and SI rates; Ctrl-C leaves
/// its last state on its own line, says where it stopped and the command that resumes (the
/// same one, quoted for the shell: the file name has a space and a quote), and exits 130.
/// That command, run by a shell, resumes: "resuming at" from the start, "resumed from" at
/// the end.
#[test]
fn ctrl_c_keeps_the_bar_and_says_how_to_resume() {
    if !have_script() {
        return;
    }
    let (src, dst) = (tempdir(), tempdir());
    let len: u64 = 256 << 20;
    let file: PathBuf = src.path().join("it's big.img");
    big_file(&file, len);
    let mut l = Listener::start(
        &["-k", "--save-dir", p(dst.path())],
        Stdio::null(),
        Stdio::null(),
    );
    let out = src.path().join("terminal.txt");
    let mut s = on_terminal(
        &["send-file", p(&file), &l.dest()],
        &test_config_dir(),
        &out,
    );
    let _keys = s.take_stdin();
    let pid = child_of(&s);
    // Interrupt once the bar is drawn and the receiver holds some of the file (not all).
    let deadline = Instant::now() + LONG;
    loop {
        let text = String::from_utf8_lossy(&fs::read(&out).unwrap_or_default()).into_owned();
        if text.contains("0/1 files") && partial_bytes(dst.path()) >= 4 << 20 {
            break;
        }
        assert!(
            s.try_exit().is_none() && Instant::now() < deadline,
            "no bar, or the transfer ended first; terminal:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let st = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let e = s.wait(SHORT);
    let text = fs::read_to_string(&out).unwrap();
    assert_eq!(e.code, Some(130), "terminal:\n{text}");
    assert!(
        !dst.path().join("it's big.img").exists(),
        "interrupted too late"
    );
    assert!(text.contains("%") && text.contains(" MB/s"), "{text}");
    assert!(!text.contains("MiB"), "one unit family: {text}");
    let msg = text
        .find("msock: interrupted at ")
        .unwrap_or_else(|| panic!("no interruption message:\n{text}"));
    assert!(
        text[..msg].ends_with('\n'),
        "the bar's line is ended before the message:\n{text:?}"
    );
    let after = &text[msg..];
    assert!(
        after.contains("To resume, run the same command again:"),
        "{text}"
    );
    let cmdline = after.lines().nth(1).unwrap().trim().to_owned();
    assert!(cmdline.contains(r"/it'\''s big.img' "), "{cmdline}");

    // The printed command, run by a shell, resumes the transfer.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &cmdline])
        .env_remove("MSOCK_LOG")
        .env_remove("RUST_LOG")
        .env("MSOCK_CONFIG_DIR", test_config_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut again = Proc::spawn("the resume command", cmd);
    let e = again.expect_code(0, LONG);
    assert!(e.stderr.contains("msock: resuming at "), "{}", e.stderr);
    assert!(e.stderr.contains("resumed from "), "{}", e.stderr);
    assert_eq!(file_len(&dst.path().join("it's big.img")), len);
    l.proc.kill();
}
