//! `msock listen --exec/--sh-exec [--pty] [--stderr]` with `msock connect`: the program's
//! environment, its exit status as connect's, stderr, the refusal to serve a program to anyone
//! without --psk-file or --allow-anyone, a program that outlives its input, SIGHUP when the
//! session ends, plain TCP clients, and a pseudo-terminal (driven through tmux when installed).

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::tmux::Tmux;
use common::*;

/// Deadline for a short program session (debug build, shared cores).
const SHORT: Duration = Duration::from_secs(20);

/// A program listener (-k, --allow-anyone unless `extra` says otherwise) running `prog`.
fn program_listener(extra: &[&str]) -> Listener {
    Listener::start(extra, Stdio::null(), Stdio::null())
}

/// Runs `msock connect` to `l` with `input` on stdin; returns (exit, stdout).
fn run_connect(l: &Listener, extra: &[&str], input: &[u8]) -> (Exit, Vec<u8>) {
    let mut c = connect(&l.dest(), extra, Stdio::piped(), Stdio::piped());
    let mut stdin = c.take_stdin();
    let data = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let mut stdout = c.take_stdout();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let e = c.wait(SHORT);
    let _ = feeder.join();
    (e, reader.join().unwrap())
}

#[test]
fn sh_exec_sees_the_session_environment_and_its_status_is_connects() {
    let l = program_listener(&[
        "-k",
        "--allow-anyone",
        "--sh-exec",
        "echo \"S=$MSOCK_SESSION A=$MSOCK_PEER_ADDR K=${MSOCK_PEER_KEY-unset}\"; exit 7",
    ]);
    let (e, out) = run_connect(&l, &[], b"");
    assert_eq!(e.code, Some(7), "connect stderr: {}", e.stderr);
    let out = String::from_utf8_lossy(&out).into_owned();
    let line = out.trim();
    let s = line
        .strip_prefix("S=")
        .and_then(|r| r.split(' ').next())
        .unwrap_or("");
    assert!(
        s.len() == 16 && s.chars().all(|c| c.is_ascii_hexdigit()),
        "MSOCK_SESSION is not 16 hex digits: {line:?}"
    );
    assert!(line.contains(" A=127.0.0.1:"), "MSOCK_PEER_ADDR: {line:?}");
    // The client's key, as `msock connect --show-key` prints it.
    let key = msock(&["connect", "--show-key"]).output().unwrap();
    let key = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    assert!(key.starts_with("SHA256:"), "connect --show-key: {key:?}");
    assert!(
        line.ends_with(&format!(" K={key}")),
        "MSOCK_PEER_KEY: {line:?}"
    );
    // A second session gets another id, and a status of 0 is connect's 0.
    let l2 = program_listener(&["--allow-anyone", "--exec", "/bin/echo hello   world\\ !"]);
    let (e, out) = run_connect(&l2, &[], b"");
    assert_eq!(e.code, Some(0), "connect stderr: {}", e.stderr);
    assert_eq!(out, b"hello world !\n");
}

#[test]
fn a_program_killed_by_a_signal_exits_connect_with_128_plus_it() {
    let l = program_listener(&["--allow-anyone", "--sh-exec", "kill -9 $$"]);
    let (e, _) = run_connect(&l, &[], b"");
    assert_eq!(e.code, Some(137), "connect stderr: {}", e.stderr);
}

#[test]
fn input_reaches_the_program_byte_for_byte() {
    let l = program_listener(&["--allow-anyone", "--exec", "sha256sum"]);
    let data = seeded_bytes(14, 3_000_000);
    let (e, out) = run_connect(&l, &[], &data);
    assert_eq!(e.code, Some(0), "connect stderr: {}", e.stderr);
    let want = {
        use sha2::Digest;
        hex(&sha2::Sha256::digest(&data))
    };
    let got = String::from_utf8_lossy(&out);
    assert!(
        got.starts_with(&want),
        "sha256sum said {got:?}, want {want}"
    );
}

#[test]
fn stderr_goes_to_the_client_only_with_the_flag() {
    let script = "echo out; echo to-stderr >&2; exit 0";
    let mut l = program_listener(&["--allow-anyone", "--sh-exec", script]);
    let (e, out) = run_connect(&l, &[], b"");
    assert_eq!(e.code, Some(0), "connect stderr: {}", e.stderr);
    assert_eq!(out, b"out\n");
    assert!(
        !e.stderr.contains("to-stderr"),
        "client got stderr: {}",
        e.stderr
    );
    l.proc.wait(SHORT);
    assert!(
        l.proc.stderr.text().contains("to-stderr"),
        "listener stderr: {}",
        l.proc.stderr.text()
    );

    let l = program_listener(&["--allow-anyone", "--stderr", "--sh-exec", script]);
    let (e, out) = run_connect(&l, &[], b"");
    assert_eq!(e.code, Some(0), "connect stderr: {}", e.stderr);
    assert_eq!(out, b"out\n");
    assert!(
        e.stderr.contains("to-stderr"),
        "client stderr: {}",
        e.stderr
    );
}

#[test]
fn exec_refuses_to_start_without_a_key_or_allow_anyone() {
    for flags in [&["--exec", "cat"][..], &["-c", "cat", "--pty"][..]] {
        let mut args = vec!["listen"];
        args.extend_from_slice(flags);
        args.push("127.0.0.1:0");
        let e = run(&args, SHORT);
        assert_eq!(e.code, Some(2), "{args:?}: stderr {}", e.stderr);
        assert!(
            e.stderr.contains("--allow-anyone") && e.stderr.contains("--psk-file"),
            "the refusal should say what to add: {}",
            e.stderr
        );
    }
    // With a pre-shared key it runs, for clients that have the key.
    let dir = tempdir();
    let psk = dir.path().join("psk");
    std::fs::write(&psk, "a shared secret for the exec test\n").unwrap();
    let psk = psk.to_str().unwrap();
    let l = program_listener(&["--psk-file", psk, "--exec", "cat"]);
    let (e, out) = run_connect(&l, &["--psk-file", psk], b"with the key\n");
    assert_eq!(e.code, Some(0), "connect stderr: {}", e.stderr);
    assert_eq!(out, b"with the key\n");
}

#[test]
fn the_program_keeps_running_after_its_input_ends() {
    let l = program_listener(&[
        "--allow-anyone",
        "--sh-exec",
        "cat; sleep 1; echo after-eof; exit 5",
    ]);
    let started = Instant::now();
    let (e, out) = run_connect(&l, &[], b"input\n");
    assert_eq!(e.code, Some(5), "connect stderr: {}", e.stderr);
    assert_eq!(out, b"input\nafter-eof\n");
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[test]
fn the_program_gets_sighup_when_its_session_ends() {
    let dir = tempdir();
    let mark = dir.path().join("hup");
    let script = format!(
        "trap 'echo hup > {}; exit 0' HUP; echo ready; while :; do sleep 0.1; done",
        mark.display()
    );
    let l = program_listener(&[
        "--allow-anyone",
        "--resume-timeout",
        "1s",
        "--sh-exec",
        &script,
    ]);
    let mut c = connect(&l.dest(), &[], Stdio::piped(), Stdio::piped());
    let mut out = c.take_stdout();
    let mut buf = [0u8; 6];
    out.read_exact(&mut buf).expect("the program's first line");
    assert_eq!(&buf, b"ready\n");
    assert!(!mark.exists());
    // The client vanishes without closing: the session ends when its resume time is up.
    c.kill();
    let deadline = Instant::now() + SHORT;
    while !mark.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(mark.exists(), "the program never got SIGHUP");
}

#[test]
fn a_plain_tcp_client_gets_the_programs_raw_stdio_only_with_allow_anyone() {
    let l = program_listener(&[
        "-k",
        "--allow-plain",
        "--allow-anyone",
        "--sh-exec",
        "echo plain; cat",
    ]);
    let mut s = tcp_connect(l.addr, SHORT);
    s.write_all(b"raw bytes\n").unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let (got, _) = read_to_end_bounded(&mut s);
    assert_eq!(got, b"plain\nraw bytes\n");

    let dir = tempdir();
    let psk = dir.path().join("psk");
    std::fs::write(&psk, "another shared secret for exec\n").unwrap();
    // A plain client (no key) gets nothing from the program, only the listener's one line.
    let l = program_listener(&[
        "--psk-file",
        psk.to_str().unwrap(),
        "--sh-exec",
        "echo leaked",
    ]);
    let mut s = tcp_connect(l.addr, SHORT);
    let _ = s.write_all(b"hello\n");
    let (got, _) = read_to_end_bounded(&mut s);
    assert!(
        got.starts_with(b"msock: ") && !got.windows(6).any(|w| w == b"leaked"),
        "a keyless plain client got {got:?}"
    );
}

#[test]
fn pty_programs_have_a_terminal() {
    let l = program_listener(&[
        "--allow-anyone",
        "--pty",
        "--sh-exec",
        "tty; echo TERM=$TERM; exit 4",
    ]);
    let mut c = connect(&l.dest(), &[], Stdio::null(), Stdio::piped());
    let mut out = c.take_stdout();
    let mut got = Vec::new();
    let _ = out.read_to_end(&mut got);
    let e = c.wait(SHORT);
    assert_eq!(e.code, Some(4), "connect stderr: {}", e.stderr);
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("/dev/pts/"), "tty said {got:?}");
}

#[test]
fn a_pty_shell_through_tmux_sees_window_sizes_and_the_terminal_is_restored() {
    if !have("tmux") {
        println!("SKIPPED: tmux is not installed (apt-get install -y tmux)");
        return;
    }
    let l = program_listener(&[
        "--allow-anyone",
        "--pty",
        "--sh-exec",
        "PS1='rsh$ ' exec sh",
    ]);
    let tmux = Tmux::new("exec");
    // The outer shell runs msock connect, then shows its status and whether the terminal has
    // its line editing (icanon) back.
    let script = format!(
        "MSOCK_CONFIG_DIR='{}' '{}' connect {}; echo EXIT=$?; stty -a | tr ' ;' '\\n\\n' | grep -x -- '-*icanon'; sleep 60",
        test_config_dir().display(),
        bin().display(),
        l.dest()
    );
    tmux.start(80, 24, &script);
    // Type only once the remote shell is there (and our terminal raw): typed earlier, the
    // line is echoed by the local terminal too.
    assert!(
        tmux.wait_line("rsh$"),
        "no prompt; screen:\n{}",
        tmux.screen()
    );
    tmux.type_line("stty size");
    assert!(tmux.wait_line("24 80"), "screen:\n{}", tmux.screen());
    // While connected, the local terminal (tmux's pane) is in raw mode.
    assert_eq!(tmux.pane_mode(), "-icanon", "screen:\n{}", tmux.screen());
    tmux.resize(100, 30);
    std::thread::sleep(Duration::from_millis(300));
    tmux.type_line("clear; stty size");
    assert!(tmux.wait_line("30 100"), "screen:\n{}", tmux.screen());
    tmux.type_line("tty | sed s/pts/PTS/");
    assert!(tmux.wait_text("/dev/PTS/"), "screen:\n{}", tmux.screen());
    tmux.type_line("exit 5");
    assert!(tmux.wait_line("EXIT=5"), "screen:\n{}", tmux.screen());
    // Raw mode is off again: icanon, not -icanon.
    assert!(tmux.wait_line("icanon"), "screen:\n{}", tmux.screen());
    assert_eq!(tmux.pane_mode(), "icanon");
}

#[test]
fn a_terminated_client_restores_its_terminal_first() {
    if !have("tmux") {
        println!("SKIPPED: tmux is not installed (apt-get install -y tmux)");
        return;
    }
    let l = program_listener(&[
        "--allow-anyone",
        "--pty",
        "--sh-exec",
        "PS1='rsh$ ' exec sh",
    ]);
    let tmux = Tmux::new("exec-term");
    let script = format!(
        "sh -c 'echo PID=$$; MSOCK_CONFIG_DIR=\"{}\" exec \"{}\" connect {}'; echo EXIT=$?; sleep 60",
        test_config_dir().display(),
        bin().display(),
        l.dest()
    );
    tmux.start(80, 24, &script);
    tmux.wait_mode("-icanon");
    assert_eq!(tmux.pane_mode(), "-icanon", "screen:\n{}", tmux.screen());
    let pid = tmux
        .screen()
        .lines()
        .find_map(|l| l.trim().strip_prefix("PID=").map(str::to_owned))
        .expect("the PID line");
    let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(st.success());
    assert!(tmux.wait_text("EXIT=143"), "screen:\n{}", tmux.screen());
    assert_eq!(tmux.pane_mode(), "icanon", "screen:\n{}", tmux.screen());
}
