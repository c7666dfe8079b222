//! A 3-member etcd cluster on loopback for the relay cluster tests: free ports, a temporary
//! data directory, every member killed on drop. Members can be killed one by one (quorum
//! lost after two).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{dead_port, have};

/// Why the cluster tests skip on a machine without etcd.
pub const SKIP: &str = "SKIPPED: etcd is not installed (apt-get install -y etcd-server)";

/// One member.
struct Member {
    child: Option<Child>,
    client: String,
}

/// One etcd cluster at a time per test binary: three members each on a loaded machine with
/// two cores are slow enough to start.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A running 3-member etcd cluster.
pub struct EtcdCluster {
    members: Vec<Member>,
    _turn: MutexGuard<'static, ()>,
    /// Data directories and logs.
    pub dir: TempDir,
}

impl EtcdCluster {
    /// Starts three members and waits until each answers `/health`; None (after printing
    /// [`SKIP`]) when etcd is not installed.
    pub fn start() -> Option<EtcdCluster> {
        if !have("etcd") {
            println!("{SKIP}");
            return None;
        }
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().unwrap();
        let clients: Vec<u16> = (0..3).map(|_| dead_port().port()).collect();
        let peers: Vec<u16> = (0..3).map(|_| dead_port().port()).collect();
        let initial: Vec<String> = peers
            .iter()
            .enumerate()
            .map(|(i, p)| format!("m{i}=http://127.0.0.1:{p}"))
            .collect();
        let token = format!("msock-test-{}-{}", std::process::id(), clients[0]);
        let mut members = Vec::new();
        for i in 0..3 {
            let log = std::fs::File::create(dir.path().join(format!("m{i}.log"))).unwrap();
            let client = format!("http://127.0.0.1:{}", clients[i]);
            let peer = format!("http://127.0.0.1:{}", peers[i]);
            let data: PathBuf = dir.path().join(format!("m{i}"));
            let child = Command::new("etcd")
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(&data)
                .args([
                    "--listen-client-urls",
                    &client,
                    "--advertise-client-urls",
                    &client,
                ])
                .args([
                    "--listen-peer-urls",
                    &peer,
                    "--initial-advertise-peer-urls",
                    &peer,
                ])
                .args(["--initial-cluster", &initial.join(",")])
                .args([
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    &token,
                ])
                .args(["--heartbeat-interval", "100", "--election-timeout", "1500"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start etcd");
            members.push(Member {
                child: Some(child),
                client,
            });
        }
        let c = EtcdCluster {
            members,
            _turn: turn,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(90);
        for m in &c.members {
            while !healthy(&m.client) {
                if Instant::now() >= deadline {
                    let log = std::fs::read_to_string(c.dir.path().join("m0.log"));
                    let log = log.unwrap_or_default();
                    let tail = &log[log.len().saturating_sub(3000)..];
                    panic!("etcd did not become healthy; m0's log ends:\n{tail}");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Some(c)
    }

    /// The client URLs, comma-separated (for `--etcd`).
    pub fn urls(&self) -> String {
        let v: Vec<&str> = self.members.iter().map(|m| m.client.as_str()).collect();
        v.join(",")
    }

    /// Kills member `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.members[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}

/// Whether the member at `url` answers `GET /health` with health true.
fn healthy(url: &str) -> bool {
    let addr = url.trim_start_matches("http://");
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut out = Vec::new();
    let _ = s.take(64 * 1024).read_to_end(&mut out);
    String::from_utf8_lossy(&out).contains("\"health\":\"true\"")
}
