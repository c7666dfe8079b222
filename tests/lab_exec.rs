//! A shell under a pseudo-terminal (`msock listen --sh-exec sh --pty`) in a real network
//! namespace lab: the same shell process answers before and after the client's address
//! changes, and `msock connect` exits with the shell's status.
//!
//! Needs root; elsewhere it prints `SKIPPED: ...` and passes (see `tests/lab/mod.rs`).

mod common;
mod lab;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::have;
use common::tmux::Tmux;
use lab::{Lab, Topology};
use tempfile::NamedTempFile;

/// Deadline of every msock process.
const LIMIT: Duration = Duration::from_secs(60);

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

    let (input, mut typing) = lab::pipe();
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

/// The whole terminal experience across a move: tmux is the user's terminal in the client's
/// namespace; the remote shell sees its window size, then the new size after a resize that
/// comes right after the client's address changed; the local terminal is raw while connected
/// and has its line editing back after the shell exits.
#[test]
fn a_pty_shell_in_tmux_follows_resizes_across_a_move_and_restores_the_terminal() {
    let test = "a_pty_shell_in_tmux_follows_resizes_across_a_move_and_restores_the_terminal";
    if !have("tmux") {
        println!("SKIPPED: {test}: tmux is not installed (apt-get install -y tmux)");
        return;
    }
    let Some(lab) = Lab::up(test, Topology::Mobile) else {
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
        "PS1='rsh$ ' exec sh",
    ];
    let mut cmd = lab.exec("srv", msock, &args);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let mut server = lab.spawn(cmd, LIMIT);
    let port = server.wait_stderr_line("msock: listening on 0.0.0.0:", Duration::from_secs(10));
    let dest = format!("10.99.2.2:{}", port.trim());

    // The pane's shell runs msock connect (its events to a file), then shows its status and
    // whether the terminal has its line editing (icanon) back.
    let events = NamedTempFile::new().expect("temp file");
    let script = format!(
        "'{msock}' connect {dest} --json-events 2>'{}'; echo EXIT=$?; \
         stty -a | tr ' ;' '\\n\\n' | grep -x -- '-*icanon'; sleep 60",
        events.path().display()
    );
    let tmux = Tmux::new("lab-exec");
    let o = lab
        .exec("cli", "tmux", &[])
        .args(tmux.start_args(80, 24, &script))
        .output()
        .expect("run tmux");
    assert!(
        o.status.success(),
        "tmux: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let screen = || tmux.screen();
    assert!(tmux.wait_line("rsh$"), "no prompt; screen:\n{}", screen());
    tmux.type_line("stty size");
    assert!(tmux.wait_line("24 80"), "screen:\n{}", screen());
    assert_eq!(tmux.pane_mode(), "-icanon", "raw while connected");

    let new = lab.addr_move("cli", "eth0");
    tmux.resize(100, 30);
    tmux.type_line("clear; stty size");
    assert!(tmux.wait_line("30 100"), "screen:\n{}", screen());
    tmux.type_line("echo moved-$((6*7))");
    assert!(tmux.wait_line("moved-42"), "screen:\n{}", screen());
    tmux.type_line("exit 5");
    assert!(tmux.wait_line("EXIT=5"), "screen:\n{}", screen());
    assert!(tmux.wait_line("icanon"), "screen:\n{}", screen());
    assert_eq!(tmux.pane_mode(), "icanon", "the terminal was not restored");
    server.expect_exit(0);
    let events = std::fs::read_to_string(events.path()).unwrap_or_default();
    assert!(
        events
            .lines()
            .any(|l| l.contains("path_moved") && l.contains(&new.to_string())),
        "the client never moved to {new}; its stderr:\n{events}"
    );
}
