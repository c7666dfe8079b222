//! Paced uploads through `msock connect` into the receiving programs of one `msock listen -k`
//! in a lab's `srv` node: many sessions at once, each checked byte for byte at the end.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::{Lab, LabProc};

/// Deadline of every msock process.
const LIMIT: Duration = Duration::from_secs(150);
/// Each session writes this many bytes every [`PACE`] (unless started with a pace of its own).
const CHUNK: usize = 300;
const PACE: Duration = Duration::from_millis(20);

/// One session's client and what it was fed so far.
pub struct Client {
    /// Its `msock connect`.
    pub proc: LabProc,
    sent: Arc<Mutex<Vec<u8>>>,
}

/// Paced uploads from `msock connect` processes to one `msock listen -k` in `srv`, whose
/// every session writes what it receives to a file named after the session id.
pub struct Uploads {
    /// The listener.
    pub server: LabProc,
    /// One per session.
    pub clients: Vec<Client>,
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    feeder: Option<thread::JoinHandle<()>>,
}

impl Uploads {
    /// Starts the listener and, per session, a client in one of `nodes` (in turn), which
    /// connects to `dest` (the server's address or a name) at the listener's port with
    /// `extra` flags.
    pub fn start(
        lab: &Lab,
        sessions: usize,
        nodes: &[&str],
        dest: &str,
        extra: &[&str],
    ) -> Uploads {
        Self::start_paced(lab, sessions, nodes, dest, extra, PACE)
    }

    /// As [`Uploads::start`], each session writing [`CHUNK`] bytes every `pace`.
    pub fn start_paced(
        lab: &Lab,
        sessions: usize,
        nodes: &[&str],
        dest: &str,
        extra: &[&str],
        pace: Duration,
    ) -> Uploads {
        let dir = tempfile::tempdir().expect("temp dir");
        let msock = env!("CARGO_BIN_EXE_msock");
        let mut cmd = lab.exec(
            "srv",
            "env",
            &[
                &format!("OUT={}", dir.path().display()),
                msock,
                "-v",
                "listen",
                "0",
                "-4",
                "-k",
                "--max-sessions",
                "200",
                "--allow-anyone",
                "--sh-exec",
                "exec cat >\"$OUT/$MSOCK_SESSION\"",
            ],
        );
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        let mut server = lab.spawn(cmd, LIMIT);
        let port = server.wait_stderr_line("msock: listening on 0.0.0.0:", Duration::from_secs(10));
        let dest = format!("{dest}:{}", port.trim());
        let mut clients = Vec::new();
        let mut pipes = Vec::new();
        for i in 0..sessions {
            let (read, write) = super::pipe();
            let node = nodes[i % nodes.len()];
            let args = [&["-v", "connect", &dest, "--json-events"], extra].concat();
            let mut cmd = lab.exec(node, msock, &args);
            cmd.stdin(Stdio::from(read)).stdout(Stdio::null());
            let sent = Arc::new(Mutex::new(Vec::new()));
            pipes.push((write, sent.clone(), i as u64));
            clients.push(Client {
                proc: lab.spawn(cmd, LIMIT),
                sent,
            });
            // One client per node at a time: thirty debug builds shaking hands at once on a
            // loaded machine send their first bytes later than a listener waits for them.
            if clients.len() % nodes.len() == 0 || i + 1 == sessions {
                let batch = clients.len().saturating_sub(nodes.len());
                for c in &clients[batch..] {
                    wait_session_open(&c.proc, Duration::from_secs(30));
                }
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let feeder = Some(thread::spawn({
            let stop = stop.clone();
            move || feed(pipes, pace, &stop)
        }));
        Uploads {
            server,
            clients,
            dir,
            stop,
            feeder,
        }
    }

    /// Waits until every client has its session open and its first bytes arrived.
    pub fn wait_established(&self, limit: Duration) {
        let until = Instant::now() + limit;
        loop {
            let established =
                |c: &&Client| session_of(&c.proc).is_some_and(|s| file_len(&self.out(&s)) > 0);
            let Some(waiting) = self.clients.iter().find(|c| !established(c)) else {
                return;
            };
            assert!(
                Instant::now() < until,
                "only {} of {} sessions established within {limit:?}; one that is not:\n{}\n\
                 server:\n{}",
                self.clients.iter().filter(established).count(),
                self.clients.len(),
                waiting.proc.stderr(),
                self.server.stderr()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The file session `sid`'s receiving program writes.
    fn out(&self, sid: &str) -> PathBuf {
        self.dir.path().join(sid)
    }

    /// Ends the inputs; every client exits 0 and every session's bytes arrived unchanged.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.feeder.take().unwrap().join().expect("feeder");
        let dir = self.dir.path().to_owned();
        for (i, c) in self.clients.iter_mut().enumerate() {
            c.proc.expect_exit(0);
            let sid = session_of(&c.proc).expect("session id");
            let want = c.sent.lock().unwrap().clone();
            let path = dir.join(&sid);
            let until = Instant::now() + Duration::from_secs(10);
            while file_len(&path) < want.len() as u64 && Instant::now() < until {
                thread::sleep(Duration::from_millis(20));
            }
            let got = std::fs::read(&path).unwrap_or_default();
            assert!(
                got == want,
                "session {i} ({sid}): {} bytes arrived of {} sent{}",
                got.len(),
                want.len(),
                if got.len() == want.len() {
                    ", but they differ"
                } else {
                    ""
                }
            );
        }
        // The listener (-k) is killed when dropped.
    }
}

/// One session's input: the pipe to its client, what was written into it, and its seed.
type Feed = (File, Arc<Mutex<Vec<u8>>>, u64);

/// Writes [`CHUNK`] seeded bytes to every pipe each `pace` until `stop`, recording them;
/// then closes the pipes (end of input).
fn feed(mut pipes: Vec<Feed>, pace: Duration, stop: &AtomicBool) {
    let mut next = Instant::now();
    let mut round = 0u64;
    while !stop.load(Ordering::SeqCst) {
        for (pipe, sent, seed) in &mut pipes {
            let mut x = (*seed << 32 | round) | 1;
            let chunk: Vec<u8> = (0..CHUNK)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            // A client that exited early shows in its exit status; keep feeding the others.
            if pipe.write_all(&chunk).is_ok() {
                sent.lock().unwrap().extend_from_slice(&chunk);
            }
        }
        round += 1;
        next += pace;
        thread::sleep(next.saturating_duration_since(Instant::now()));
    }
}

/// Waits until `client` has opened its session; panics with its stderr after `limit`.
fn wait_session_open(client: &LabProc, limit: Duration) {
    let until = Instant::now() + limit;
    while session_of(client).is_none() {
        assert!(
            Instant::now() < until,
            "no session within {limit:?}:\n{}",
            client.stderr()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// The session id from a client's `session_open` event.
pub fn session_of(client: &LabProc) -> Option<String> {
    client.stderr().lines().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v["event"] == "session_open").then(|| v["session"].as_str().map(str::to_owned))?
    })
}

/// The `to` of the first `path_moved` event of a client, if any.
pub fn moved_to(client: &LabProc) -> Option<String> {
    client.stderr().lines().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v["event"] == "path_moved").then(|| v["to"].as_str().map(str::to_owned))?
    })
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Waits until every client has a `path_moved` event; returns how long after `since` each
/// was first seen (None: not within `limit`).
pub fn wait_all_moved(
    clients: &[Client],
    since: Instant,
    limit: Duration,
) -> Vec<Option<Duration>> {
    let mut seen = vec![None; clients.len()];
    while since.elapsed() < limit && seen.iter().any(Option::is_none) {
        for (i, c) in clients.iter().enumerate() {
            if seen[i].is_none() && moved_to(&c.proc).is_some() {
                seen[i] = Some(since.elapsed());
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
    seen
}
