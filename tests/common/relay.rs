//! A running `msock proxy --json` for the relay tests, its stdout (status lines) in a file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::{catches_sigint, msock, sigint, stdout_to, Proc, STARTUP};

/// A relay process, its address and its status file.
pub struct Relay {
    /// The relay process.
    pub proc: Proc,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its JSON status lines (stdout).
    pub status: PathBuf,
}

impl Relay {
    /// Starts a relay on `listen` (e.g. 127.0.0.1:0) with `extra` flags; its status file goes
    /// in `dir`.
    pub fn start(dir: &Path, listen: &str, extra: &[&str]) -> Relay {
        static N: AtomicU64 = AtomicU64::new(0);
        let status = dir.join(format!("relay-{}.jsonl", N.fetch_add(1, Ordering::Relaxed)));
        let mut args = vec!["proxy", "--json", "--listen", listen];
        args.extend_from_slice(extra);
        let mut cmd = msock(&args);
        cmd.stdin(Stdio::null()).stdout(stdout_to(&status));
        let mut proc = Proc::spawn("msock proxy", cmd);
        let Some(line) = proc
            .stderr
            .wait_line(STARTUP, |l| l.starts_with("msock: relay listening on "))
        else {
            proc.kill();
            panic!("relay did not start; stderr:\n{}", proc.stderr.text());
        };
        let addr = line
            .trim_start_matches("msock: relay listening on ")
            .trim()
            .parse()
            .unwrap();
        Relay { proc, addr, status }
    }

    /// The JSON status lines so far.
    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.status)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
            .collect()
    }

    /// How many status lines of kind `event` so far.
    pub fn count(&self, event: &str) -> usize {
        self.events().iter().filter(|e| e["event"] == event).count()
    }

    /// `NAME@ADDR`.
    pub fn dest(&self, name: &str) -> String {
        format!("{name}@{}", self.addr)
    }

    /// Stops the relay (SIGINT, exit 130 within `wait`) and returns its summary line.
    pub fn summary(mut self, wait: Duration) -> Value {
        assert!(catches_sigint(&self.proc, wait));
        sigint(&self.proc);
        self.proc.expect_code(130, wait);
        self.events()
            .into_iter()
            .find(|e| e["event"] == "summary")
            .expect("a summary line")
    }
}

/// Starts `msock listen --relay RELAY --name NAME EXTRA...` with its secrets under `state`,
/// and waits until it has registered.
pub fn named_listener(
    relay: &Relay,
    name: &str,
    state: &Path,
    extra: &[&str],
    stdin: Stdio,
    stdout: Stdio,
) -> Proc {
    let mut p = spawn_named(relay, name, state, extra, stdin, stdout);
    if !p.stderr.wait_contains(STARTUP, "msock: registered") {
        p.kill();
        panic!("listener did not register; stderr:\n{}", p.stderr.text());
    }
    p
}

/// Starts `msock listen --relay RELAY --name NAME EXTRA...` with its secrets under `state`.
pub fn spawn_named(
    relay: &Relay,
    name: &str,
    state: &Path,
    extra: &[&str],
    stdin: Stdio,
    stdout: Stdio,
) -> Proc {
    let relay_addr = relay.addr.to_string();
    let mut args = vec!["listen", "--relay", &relay_addr, "--name", name];
    args.extend_from_slice(extra);
    let mut cmd = msock(&args);
    cmd.env("MSOCK_STATE_DIR", state)
        .stdin(stdin)
        .stdout(stdout);
    Proc::spawn("msock listen --relay", cmd)
}
