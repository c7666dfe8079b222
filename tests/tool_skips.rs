//! On a machine without the system tools the tests drive (iproute2, nftables, OpenSSH, tmux,
//! iperf3, ...), `cargo test` still passes: every test that needs one checks for it first and
//! prints `SKIPPED: ... (apt-get install -y PKG)`, and none panics trying to run it.
//!
//! This runs the other test binaries of this build again, as their own processes, with a
//! `PATH` that holds everything the real one does except those tools, and asserts the skips.
//! It needs the sibling test binaries, which `cargo test` builds before it runs any; run alone
//! (`cargo test --test tool_skips`) it uses whatever siblings the last build left, or skips.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use tempfile::TempDir;

/// The programs that some test drives and a fresh machine may lack (`.ci/run` installs them).
const TOOLS: &[&str] = &[
    "ip",
    "tc",
    "nft",
    "ethtool",
    "sshd",
    "ssh",
    "ssh-keygen",
    "iperf3",
    "iperf",
    "socat",
    "ncat",
    "nc",
    "tmux",
    "curl",
    "python3",
    "rsync",
    "jq",
    "etcd",
    "etcdctl",
    "man",
    "mandoc",
    "groff",
    "gnuplot",
    "zsh",
    "fish",
    "script",
];

/// Which tests of which binary need one of [`TOOLS`]; an empty list means every test of it.
const NEEDING: &[(&str, &[&str])] = &[
    ("lab_smoke", &[]),
    ("lab_mobility", &[]),
    ("lab_multipath", &[]),
    ("lab_relay", &[]),
    ("lab_send_file", &[]),
    ("lab_exec", &[]),
    ("lab_forward", &[]),
    ("lab_server_move", &[]),
    ("lab_outage", &[]),
    (
        "relay_cluster",
        &[
            "listener_at_a_reached_by_a_client_at_c",
            "name_theft_at_another_relay_is_refused",
            "registrations_work_with_one_etcd_member_dead",
            "without_quorum_new_registrations_are_refused_and_live_sessions_go_on",
            "forged_forwards_are_refused",
            "a_listener_that_left_is_no_longer_attached",
            "a_name_gets_its_full_ttl_in_the_cluster_once_its_listener_stays",
            "a_listener_given_two_relays_of_one_cluster_registers_once",
            "cluster_relay_killed_mid_transfer_the_session_resumes_through_a_sibling",
        ],
    ),
    (
        "cli_exec",
        &["a_pty_shell_through_tmux_sees_window_sizes_and_the_terminal_is_restored"],
    ),
    (
        "cli_forward",
        &[
            "real_ssh_through_local_forward",
            "real_ssh_with_msock_as_proxy_command",
            "curl_through_forward_and_local",
        ],
    ),
    ("cli_plain", &["nc_client_to_listen"]),
    (
        "man_pages",
        &["pages_read_well_and_refer_only_to_what_exists"],
    ),
    (
        "completions",
        &[
            "fish_completes_interfaces_kinds_and_algorithms",
            "zsh_completes_interfaces_kinds_and_algorithms",
        ],
    ),
    (
        "cli_send_file_ux",
        &[
            "a_listener_on_a_terminal_asks_before_accepting_an_unseen_sender",
            "yes_accepts_without_asking_on_a_terminal",
            "ctrl_c_keeps_the_bar_and_says_how_to_resume",
        ],
    ),
];

/// A folder of symlinks to every program on `PATH` except [`TOOLS`].
fn path_without_tools() -> TempDir {
    let dir = TempDir::new().expect("temp dir");
    let path = std::env::var_os("PATH").unwrap_or_default();
    for d in std::env::split_paths(&path) {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let link = dir.path().join(&name);
            let skip = name.to_str().is_some_and(|n| TOOLS.contains(&n));
            if !skip && !link.exists() {
                let _ = std::os::unix::fs::symlink(e.path(), &link);
            }
        }
    }
    dir
}

/// The newest test binary of `target` next to this one (`target-<hash>`), if built.
fn sibling(target: &str) -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    let deps = me.parent()?;
    let prefix = format!("{target}-");
    let mut best: Option<(SystemTime, PathBuf)> = None;
    for e in std::fs::read_dir(deps).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(hash) = name.strip_prefix(&prefix) else {
            continue;
        };
        if hash.len() != 16 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue; // `name.d` files and other targets sharing the prefix
        }
        let modified = e.metadata().and_then(|m| m.modified()).ok()?;
        if best.as_ref().is_none_or(|(t, _)| modified > *t) {
            best = Some((modified, e.path()));
        }
    }
    best.map(|(_, p)| p)
}

/// Runs `binary`'s `tests` (all when empty) with `path` as PATH; its stdout and stderr.
fn run_with_path(binary: &Path, tests: &[&str], path: &Path) -> (bool, String) {
    let mut cmd = Command::new(binary);
    if !tests.is_empty() {
        cmd.args(tests).arg("--exact");
    }
    let out = cmd
        .args(["--nocapture", "--test-threads=1"])
        .env("PATH", OsString::from(path))
        .env_remove("MSOCK_LAB_REQUIRED")
        .output()
        .expect("run a test binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn tests_that_need_a_missing_tool_skip_and_say_what_to_install() {
    let path = path_without_tools();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let mut ran = 0;
    for (target, tests) in NEEDING {
        let Some(binary) = sibling(target) else {
            println!("SKIPPED: {target} is not built (run the whole suite: cargo test)");
            continue;
        };
        let (ok, text) = run_with_path(&binary, tests, path.path());
        assert!(ok, "{target} failed without the tools:\n{text}");
        let skips: Vec<&str> = text.lines().filter(|l| l.contains("SKIPPED: ")).collect();
        assert!(!skips.is_empty(), "{target}: nothing skipped:\n{text}");
        if !tests.is_empty() {
            assert!(
                skips.len() >= tests.len(),
                "{target}: {} of {} tests skipped:\n{text}",
                skips.len(),
                tests.len()
            );
        }
        for line in skips {
            // Only the lab's "not root" has no package to install.
            let says_what = line.contains("apt-get install -y ");
            assert!(
                says_what || (!root && line.contains("not running as root")),
                "{target}: a skip that does not say what to install: {line}"
            );
        }
        ran += 1;
    }
    println!("{ran} test binaries checked without the tools");
}
