//! A shell under a pseudo-terminal (`msock listen --sh-exec sh --pty`) in a real network
//! namespace lab: the same shell process answers before and after the client's address
//! changes, and `msock connect` exits with the shell's status.
//!
//! Needs root; elsewhere it prints `SKIPPED: ...` and passes (see `tests/lab/mod.rs`).

mod lab;

use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use lab::{Lab, Topology};
use tempfile::NamedTempFile;

/// Deadline of every msock process.
const LIMIT: Duration = Duration::from_secs(60);

/// A pipe: (read end, write end).
fn pipe() -> (OwnedFd, File) {
    let mut fds = [0; 2];
    // SAFETY: pipe writes two new descriptors into the array.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

/// Waits until `out` holds a line `PREFIX-<digits>` and returns the digits.
fn wait_tagged(out: &NamedTempFile, prefix: &str) -> String {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(out.path()).unwrap_or_default();
        // The terminal echoes the command too (`echo before-$$`): only digits count.
        let found = text.split_whitespace().find_map(|w| {
            let rest = w.strip_prefix(prefix)?.strip_prefix('-')?;
            (!rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())).then(|| rest.to_owned())
        });
        if let Some(pid) = found {
            return pid;
        }
        assert!(
            Instant::now() < until,
            "no {prefix}-PID line; output:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_pty_shell_survives_a_client_address_change() {
    let Some(lab) = Lab::up(
        "a_pty_shell_survives_a_client_address_change",
        Topology::Mobile,
    ) else {
        return;
    };
    let msock = env!("CARGO_BIN_EXE_msock");
    let args = [
        "listen",
        "0",
        "-4",
        "--allow-anyone",
        "--pty",
        "--sh-exec",
        "exec sh",
    ];
    let mut cmd = lab.exec("srv", msock, &args);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut server = lab.spawn(cmd, LIMIT);
    let port = server.wait_stderr_line("msock: listening on 0.0.0.0:", Duration::from_secs(10));
    let dest = format!("10.99.2.2:{}", port.trim());

    let (input, mut typing) = pipe();
    let out = NamedTempFile::new().expect("temp file");
    let mut cmd = lab.exec("cli", msock, &["connect", &dest, "--json-events"]);
    cmd.stdin(Stdio::from(input)).stdout(out.reopen().unwrap());
    let mut client = lab.spawn(cmd, LIMIT);

    // `$$` is the shell's pid: the same one after the move means the same shell.
    writeln!(typing, "echo before-$$").unwrap();
    let before = wait_tagged(&out, "before");
    let new = lab.addr_move("cli", "eth0");
    writeln!(typing, "echo after-$$").unwrap();
    let after = wait_tagged(&out, "after");
    assert_eq!(before, after, "another shell answered after the move");
    writeln!(typing, "exit 3").unwrap();
    client.expect_exit(3);
    server.expect_exit(0);
    let events = client.stderr();
    assert!(
        events
            .lines()
            .any(|l| l.contains("path_moved") && l.contains(&new.to_string())),
        "the client never moved to {new}; stderr:\n{events}"
    );
}
