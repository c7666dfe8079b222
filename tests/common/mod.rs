//! Shared plumbing for the end-to-end CLI tests: spawning `msock` with a deadline, learning
//! the listener's port from its stderr, seeded payloads in temp files, hashing, polling files.
//!
//! Every child process is killed when its [`Proc`] is dropped, so a failing (panicking) test
//! never leaves an `msock` behind, and every wait has a deadline, so a hang fails the test
//! instead of blocking CI.

#![allow(dead_code)] // each test crate uses a different subset

pub mod etcd;
pub mod relay;
pub mod sshd;
pub mod tmux;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tempfile::{NamedTempFile, TempDir};

/// The msock preamble: magic `MSOCK` and version 1.
pub const PREAMBLE: &[u8; 6] = b"MSOCK\x01";
/// Wire type of the ERROR frame.
pub const FRAME_ERROR: u8 = 0x1f;
/// ERROR code "protocol violation".
pub const CODE_PROTOCOL: u16 = 1;
/// ERROR code "unsupported version".
pub const CODE_VERSION: u16 = 2;

/// How long a listener may take to print its port.
pub const STARTUP: Duration = Duration::from_secs(10);

/// Path of the `msock` binary under test: the one cargo built for this package, unless
/// `MSOCK_TEST_BIN` names another build to run the same tests against.
pub fn bin() -> PathBuf {
    match std::env::var_os("MSOCK_TEST_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_msock")),
    }
}

/// A `Command` for `msock` with `args`, and a clean environment for logging.
pub fn msock(args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args);
    c.env_remove("MSOCK_LOG");
    c.env_remove("RUST_LOG");
    c.env("MSOCK_CONFIG_DIR", test_config_dir());
    c
}

/// The config directory (listener key, pinned keys) of every msock the tests start, so that
/// they never touch the user's own: one per test binary (under cargo's target tmp dir), so
/// that a key pinned for a loopback port by one binary's client is not found by another's
/// when the port comes round again with a listener of another key.
pub fn test_config_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe.file_stem().unwrap_or_default().to_string_lossy();
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("config-{stem}"))
}

/// stderr of a child, collected line by line on a thread (so the child never blocks on it).
#[derive(Clone, Default)]
pub struct StderrLog(Arc<(Mutex<(String, bool)>, Condvar)>);

impl StderrLog {
    fn collect(&self, r: impl Read + Send + 'static) -> JoinHandle<()> {
        let me = self.clone();
        thread::spawn(move || {
            let mut r = BufReader::new(r);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = r.read_until(b'\n', &mut line).unwrap_or(0);
                let (lock, cv) = &*me.0;
                let mut g = lock.lock().unwrap();
                if n == 0 {
                    g.1 = true;
                    cv.notify_all();
                    return;
                }
                g.0.push_str(&String::from_utf8_lossy(&line));
                cv.notify_all();
            }
        })
    }

    /// Everything read so far.
    pub fn text(&self) -> String {
        self.0 .0.lock().unwrap().0.clone()
    }

    /// Waits until a line satisfying `f` appears (returns it) or `timeout` passes or the
    /// stream ends (None).
    pub fn wait_line(&self, timeout: Duration, f: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.0;
        let mut g = lock.lock().unwrap();
        loop {
            if let Some(l) = g.0.lines().find(|l| f(l)) {
                return Some(l.to_owned());
            }
            let now = Instant::now();
            if g.1 || now >= deadline {
                return None;
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }

    /// Waits until stderr contains `pat` (case-insensitive).
    pub fn wait_contains(&self, timeout: Duration, pat: &str) -> bool {
        let pat = pat.to_lowercase();
        self.wait_line(timeout, |l| l.to_lowercase().contains(&pat))
            .is_some()
    }

    /// Waits for the end of the stream (the child exited and closed stderr).
    fn wait_eof(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.0;
        let mut g = lock.lock().unwrap();
        while !g.1 {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            g = cv.wait_timeout(g, deadline - now).unwrap().0;
        }
    }
}

/// How a child ended.
#[derive(Debug)]
pub struct Exit {
    /// Exit code (None: killed by a signal).
    pub code: Option<i32>,
    /// The signal that killed it, if one did.
    pub signal: Option<i32>,
    /// Its whole stderr.
    pub stderr: String,
    /// Time from spawn to exit (as observed by polling).
    pub elapsed: Duration,
}

/// A running child process that is killed when dropped.
pub struct Proc {
    /// Name for messages.
    pub name: String,
    child: Child,
    /// Its stderr.
    pub stderr: StderrLog,
    started: Instant,
    exited: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` with stderr captured. stdin/stdout are whatever `cmd` was given (the
    /// default is inherited: set them explicitly).
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {name} ({cmd:?}): {e}"));
        let stderr = StderrLog::default();
        stderr.collect(child.stderr.take().unwrap());
        Proc {
            name: name.to_owned(),
            child,
            stderr,
            started,
            exited: None,
        }
    }

    /// The child's stdin, if it was piped.
    pub fn take_stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("stdin was not piped")
    }

    /// The child's stdout, if it was piped.
    pub fn take_stdout(&mut self) -> ChildStdout {
        self.child.stdout.take().expect("stdout was not piped")
    }

    /// OS process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Has it exited? (non-blocking)
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("try_wait");
        }
        self.exited
    }

    /// Waits up to `timeout` for the child to exit. Returns None (child still running) on
    /// timeout.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Exit> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_exit() {
                let elapsed = self.started.elapsed();
                // Let the collector read the rest of stderr.
                self.stderr.wait_eof(Duration::from_secs(5));
                use std::os::unix::process::ExitStatusExt;
                return Some(Exit {
                    code: st.code(),
                    signal: st.signal(),
                    stderr: self.stderr.text(),
                    elapsed,
                });
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits up to `timeout` for the child to exit; kills it and fails the test if it does not.
    pub fn wait(&mut self, timeout: Duration) -> Exit {
        match self.wait_timeout(timeout) {
            Some(e) => e,
            None => {
                self.kill();
                panic!(
                    "{} did not exit within {:?} (killed); stderr so far:\n{}",
                    self.name,
                    timeout,
                    self.stderr.text()
                );
            }
        }
    }

    /// Waits and asserts the exit code.
    pub fn expect_code(&mut self, code: i32, timeout: Duration) -> Exit {
        let e = self.wait(timeout);
        assert_eq!(
            e.code,
            Some(code),
            "{} exited with {:?}, expected {code}; stderr:\n{}",
            self.name,
            e.code,
            e.stderr
        );
        e
    }

    /// Kills the child (if still running) and reaps it.
    pub fn kill(&mut self) {
        if self.try_exit().is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
    }

    /// Asserts the child is still running (e.g. a -k listener).
    pub fn assert_running(&mut self, why: &str) {
        if let Some(st) = self.try_exit() {
            self.stderr.wait_eof(Duration::from_secs(2));
            panic!(
                "{} exited ({st}) but should still be running: {why}; stderr:\n{}",
                self.name,
                self.stderr.text()
            );
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A listener that has announced its port.
pub struct Listener {
    /// The process.
    pub proc: Proc,
    /// Where it listens (127.0.0.1:PORT).
    pub addr: SocketAddr,
}

impl Listener {
    /// `msock listen <extra...> 127.0.0.1:0` with the given stdin and stdout; waits (bounded)
    /// for the "listening on" line on stderr and parses the port from it.
    pub fn start(extra: &[&str], stdin: Stdio, stdout: Stdio) -> Listener {
        let mut args = vec!["listen"];
        args.extend_from_slice(extra);
        args.push("127.0.0.1:0");
        let mut cmd = msock(&args);
        cmd.stdin(stdin).stdout(stdout);
        let mut proc = Proc::spawn("msock listen", cmd);
        let line = proc
            .stderr
            .wait_line(STARTUP, |l| l.starts_with("msock: listening on "));
        let Some(line) = line else {
            proc.kill();
            panic!(
                "msock listen did not announce its port within {STARTUP:?}; stderr:\n{}",
                proc.stderr.text()
            );
        };
        let addr: SocketAddr = line
            .trim_start_matches("msock: listening on ")
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("bad listening line {line:?}: {e}"));
        assert_eq!(addr.ip().to_string(), "127.0.0.1", "line: {line}");
        assert_ne!(addr.port(), 0, "line: {line}");
        Listener { proc, addr }
    }

    /// "127.0.0.1:PORT".
    pub fn dest(&self) -> String {
        self.addr.to_string()
    }
}

/// Spawns `msock connect <extra...> DEST` with the given stdin and stdout.
pub fn connect(dest: &str, extra: &[&str], stdin: Stdio, stdout: Stdio) -> Proc {
    let mut args = vec!["connect"];
    args.extend_from_slice(extra);
    args.push(dest);
    let mut cmd = msock(&args);
    cmd.stdin(stdin).stdout(stdout);
    Proc::spawn("msock connect", cmd)
}

/// Runs msock to completion with stdin and stdout null; bounded by `timeout`.
pub fn run(args: &[&str], timeout: Duration) -> Exit {
    let mut cmd = msock(args);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut p = Proc::spawn(&format!("msock {}", args.join(" ")), cmd);
    p.wait(timeout)
}

/// Deterministic pseudo-random bytes (splitmix64), so failures are reproducible.
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut s = seed;
    while out.len() < len {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A temp directory for one test's files.
pub fn tempdir() -> TempDir {
    tempfile::Builder::new()
        .prefix("msock-cli-test")
        .tempdir()
        .expect("tempdir")
}

/// Writes `data` to a new temp file and returns it.
pub fn temp_file_with(data: &[u8]) -> NamedTempFile {
    let mut f = NamedTempFile::new().expect("temp file");
    f.write_all(data).expect("write temp file");
    f.flush().unwrap();
    f
}

/// Writes `len` seeded random bytes to a new file in `dir`, streaming (no big allocation kept),
/// and returns the file's path and the SHA-256 of its contents.
pub fn write_random_file(dir: &Path, name: &str, seed: u64, len: usize) -> (PathBuf, [u8; 32]) {
    let path = dir.join(name);
    let mut f = std::io::BufWriter::new(File::create(&path).expect("create payload"));
    let mut h = Sha256::new();
    let mut left = len;
    let mut chunk_seed = seed;
    while left > 0 {
        let n = left.min(1 << 20);
        let b = seeded_bytes(chunk_seed, n);
        h.update(&b);
        f.write_all(&b).unwrap();
        left -= n;
        chunk_seed = chunk_seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    f.flush().unwrap();
    (path, h.finalize().into())
}

/// SHA-256 and length of a file.
pub fn sha256_file(path: &Path) -> ([u8; 32], u64) {
    let mut f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    (h.finalize().into(), total)
}

/// Asserts that the file at `path` has `len` bytes whose SHA-256 is `want`.
pub fn assert_file_hash(path: &Path, want: &[u8; 32], len: usize, what: &str) {
    let (got, n) = sha256_file(path);
    assert_eq!(n, len as u64, "{what}: {n} bytes, want {len}");
    assert_eq!(hex(&got), hex(want), "{what}: bytes differ");
}

/// Hex of a digest, for messages.
pub fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Stdio reading from `path`.
pub fn stdin_from(path: &Path) -> Stdio {
    Stdio::from(File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display())))
}

/// Stdio writing to a new file at `path`.
pub fn stdout_to(path: &Path) -> Stdio {
    Stdio::from(File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display())))
}

/// Length of a file (0 if it does not exist).
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Polls until `path` holds at least `len` bytes; false on timeout.
pub fn wait_file_len(path: &Path, len: u64, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if file_len(path) >= len {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Reads a whole file.
pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Asserts two byte strings are equal, with a short message instead of a megabyte dump.
#[track_caller]
pub fn assert_bytes_eq(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first_diff = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        let show = |b: &[u8]| {
            let s = &b[first_diff.min(b.len())..(first_diff + 32).min(b.len())];
            format!("{s:02x?}")
        };
        panic!(
            "{what}: got {} bytes, want {} bytes; first difference at byte {first_diff}: got {} want {}",
            got.len(),
            want.len(),
            show(got),
            show(want)
        );
    }
}

/// A TCP connection to `addr` with read/write timeouts (so a test never blocks forever).
pub fn tcp_connect(addr: SocketAddr, timeout: Duration) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, timeout)
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    s.set_read_timeout(Some(timeout)).unwrap();
    s.set_write_timeout(Some(timeout)).unwrap();
    s
}

/// Reads until EOF; Err on timeout or error. Returns what was read before the error too.
pub fn read_to_end_bounded(s: &mut TcpStream) -> (Vec<u8>, std::io::Result<()>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, Ok(())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return (out, Err(e)),
        }
    }
}

/// A free local TCP port with nothing listening on it (bound, then released).
pub fn dead_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

/// `which prog`: true if `prog` is on PATH.
pub fn have(prog: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {prog} >/dev/null 2>&1"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Waits until `p` catches SIGINT (Linux: the SigCgt mask in /proc/PID/status). Without
/// /proc, waits a moment and hopes.
pub fn catches_sigint(p: &Proc, timeout: Duration) -> bool {
    let path = format!("/proc/{}/status", p.id());
    let deadline = Instant::now() + timeout;
    loop {
        let Ok(status) = std::fs::read_to_string(&path) else {
            thread::sleep(Duration::from_millis(500));
            return true;
        };
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
            .unwrap_or(0);
        if caught & (1 << (2 - 1)) != 0 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// Sends SIGINT (what Ctrl-C sends) to `p`.
pub fn sigint(p: &Proc) {
    let st = Command::new("kill")
        .args(["-INT", &p.id().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success());
}
