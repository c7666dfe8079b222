//! A throwaway OpenSSH server for the tests that carry real programs: host and user keys made
//! with `ssh-keygen` in a temporary folder, `sshd -D -e` on 127.0.0.1 and a free port with a
//! config of its own (no PAM, keys only, the current user may log in; root too, when the tests
//! run as root), and the `ssh` command line that logs in to it with the user key.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use super::{dead_port, have, tempdir, Proc};

/// What to install when a program these tests drive is missing.
pub const INSTALL: &str = "apt-get install -y openssh-server openssh-client curl";

/// Where sshd lives on Debian and most distributions (it is often not on a user's PATH).
const SSHD: &str = "/usr/sbin/sshd";

/// The first of `progs` that is missing, if any (sshd also at /usr/sbin).
pub fn missing(progs: &[&str]) -> Option<String> {
    progs
        .iter()
        .find(|p| !(have(p) || (**p == "sshd" && Path::new(SSHD).exists())))
        .map(|p| p.to_string())
}

/// Prints the skip line and returns true if any of `progs` is missing.
pub fn skip_without(test: &str, progs: &[&str]) -> bool {
    match missing(progs) {
        Some(p) => {
            println!("SKIPPED: {test}: {p} is not installed ({INSTALL})");
            true
        }
        None => false,
    }
}

/// A throwaway sshd's folder: host and user keys, `authorized_keys`, and a config per listen
/// address. Removed when dropped.
pub struct SshdFiles {
    /// The user that logs in (the current one).
    pub user: String,
    dir: TempDir,
}

impl SshdFiles {
    /// Generates the host and user keys and authorizes the user key.
    pub fn new() -> SshdFiles {
        let dir = tempdir();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("user_key"));
        std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
        SshdFiles {
            user: whoami(),
            dir,
        }
    }

    /// The command that runs sshd in the foreground (`-D -e`, its log on stderr) on
    /// `listen:port` with a config of its own (no PAM, keys only, the current user may log in;
    /// root too). Starts with sshd's absolute path: sshd re-executes itself.
    pub fn command(&self, listen: &str, port: u16) -> Command {
        let d = self.dir.path();
        let config = format!(
            "ListenAddress {listen}\n\
             HostKey {d}/host_key\n\
             PidFile none\n\
             UsePAM no\n\
             AuthorizedKeysFile {d}/authorized_keys\n\
             StrictModes no\n\
             PermitRootLogin yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             PubkeyAuthentication yes\n\
             AllowUsers {user}\n",
            d = d.display(),
            user = self.user
        );
        let path = d.join(format!("sshd_config_{listen}_{port}"));
        std::fs::write(&path, config).unwrap();
        if self.user == "root" {
            // sshd as root needs its privilege separation folder (the package makes it at boot).
            let _ = std::fs::create_dir_all("/run/sshd");
        }
        let mut cmd = Command::new(sshd_path());
        cmd.arg("-D").arg("-e").arg("-f").arg(path);
        cmd.args(["-p", &port.to_string()]);
        cmd.stdin(Stdio::null()).stdout(Stdio::null());
        cmd
    }

    /// The private key that logs in.
    pub fn user_key(&self) -> PathBuf {
        self.dir.path().join("user_key")
    }

    /// `ssh` with the user key and no user config, host key checking or agent, to `user@HOST`
    /// on `port` (the forward's, not necessarily sshd's), running `remote`. Extra options
    /// (e.g. a ProxyCommand) go before the destination.
    pub fn ssh(&self, host: &str, port: u16, extra: &[&str], remote: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args(["-F", "/dev/null", "-i"]).arg(self.user_key());
        c.args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=20",
            "-p",
            &port.to_string(),
        ]);
        c.args(extra);
        c.arg(format!("{}@{host}", self.user));
        c.arg(remote);
        c
    }
}

/// A running sshd on 127.0.0.1; killed (and its folder removed) when dropped.
pub struct Sshd {
    /// The server process.
    pub proc: Proc,
    /// Its port on 127.0.0.1.
    pub port: u16,
    files: SshdFiles,
}

impl Sshd {
    /// Generates the keys, writes the config and starts sshd; waits (bounded) until it says it
    /// listens. Panics with sshd's stderr if it does not start.
    pub fn start() -> Sshd {
        let files = SshdFiles::new();
        let port = dead_port().port();
        let mut proc = Proc::spawn("sshd", files.command("127.0.0.1", port));
        if !proc
            .stderr
            .wait_contains(Duration::from_secs(10), "Server listening on 127.0.0.1")
        {
            proc.kill();
            panic!("sshd did not start; stderr:\n{}", proc.stderr.text());
        }
        Sshd { proc, port, files }
    }

    /// See [`SshdFiles::ssh`].
    pub fn ssh(&self, host: &str, port: u16, extra: &[&str], remote: &str) -> Command {
        self.files.ssh(host, port, extra, remote)
    }
}

/// sshd's absolute path: from PATH, else the usual place.
fn sshd_path() -> PathBuf {
    let out = Command::new("sh")
        .args(["-c", "command -v sshd"])
        .output()
        .expect("run sh");
    let found = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if found.starts_with('/') {
        found.into()
    } else {
        SSHD.into()
    }
}

/// An ed25519 key pair at `path` and `path`.pub, no passphrase.
fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "msock-test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("run ssh-keygen");
    assert!(st.success(), "ssh-keygen failed for {}", path.display());
}

/// The current user's name.
fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
