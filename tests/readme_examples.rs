//! The README's runnable examples, run: every fenced block whose info string is
//! `sh runnable` runs in bash (`set -eo pipefail`) in an empty directory, with the built
//! `msock` first on PATH and its own config and state directories, on loopback. Ports 9000 to
//! 9099 in a block are replaced by free ones (the same number by the same port). Background
//! jobs a block starts are killed when it ends; a block gets 60 s. An HTML comment
//! `<!-- output contains: TEXT -->` right after a block asserts what it prints.

use std::collections::HashMap;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

mod shell;

/// One runnable block: its first line number in README.md, its text, what its output must
/// contain.
struct Block {
    line: usize,
    text: String,
    expect: Vec<String>,
}

fn blocks(readme: &str) -> Vec<Block> {
    let lines: Vec<&str> = readme.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let info = lines[i].trim();
        if let Some(info) = info.strip_prefix("```") {
            let runnable = info.split_whitespace().collect::<Vec<_>>() == ["sh", "runnable"];
            let start = i + 1;
            i += 1;
            while i < lines.len() && lines[i].trim() != "```" {
                i += 1;
            }
            if runnable {
                let text = lines[start..i.min(lines.len())].join("\n");
                let mut expect = Vec::new();
                let mut j = i + 1;
                while let Some(t) = lines
                    .get(j)
                    .and_then(|l| l.trim().strip_prefix("<!-- output contains:"))
                {
                    expect.push(t.trim_end_matches("-->").trim().to_owned());
                    j += 1;
                }
                out.push(Block {
                    line: start,
                    text,
                    expect,
                });
            }
        }
        i += 1;
    }
    out
}

/// Replaces the placeholder ports 9000..=9099 with free loopback ports.
fn with_free_ports(text: &str) -> String {
    let mut map: HashMap<String, u16> = HashMap::new();
    let mut held = Vec::new();
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let at_boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        let digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if at_boundary && digits == 4 && text[i..].starts_with("90") {
            let n = &text[i..i + 4];
            let port = *map.entry(n.to_owned()).or_insert_with(|| {
                let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
                let p = l.local_addr().unwrap().port();
                held.push(l); // held until every port is chosen, so that none repeats
                p
            });
            out.push_str(&port.to_string());
            i += 4;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn run_block(block: &Block) -> Result<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_msock")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!(
        "set -eo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{}\n",
        with_free_ports(&block.text)
    );
    let out_path = dir.path().join(".stdout");
    let err_path = dir.path().join(".stderr");
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&work)
        .env("PATH", path)
        .env("MSOCK_CONFIG_DIR", dir.path().join("config"))
        .env("MSOCK_STATE_DIR", dir.path().join("state"))
        .env_remove("MSOCK_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run bash: {e}"))?;
    let pgid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Whatever the block left running.
    // SAFETY: kill(2) on the process group this test created; no memory is involved.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let _ = child.wait();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let report = |why: String| {
        format!("README.md line {}: {why}\n--- block ---\n{}\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}", block.line, block.text)
    };
    match status {
        None => Err(report("still running after 60 s".into())),
        Some(s) if !s.success() => Err(report(format!("exited with {s}"))),
        Some(_) => match block.expect.iter().find(|e| !stdout.contains(e.as_str())) {
            Some(e) => Err(report(format!("output lacks {e:?}"))),
            None => Ok(stdout),
        },
    }
}

#[test]
fn readme_runnable_examples_work() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let blocks = blocks(&readme);
    assert!(
        blocks.len() >= 5,
        "only {} `sh runnable` blocks in README.md",
        blocks.len()
    );
    let mut failures = Vec::new();
    for b in &blocks {
        match run_block(b) {
            Ok(out) => println!("README.md line {}: ok\n{out}", b.line),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn placeholder_ports_are_replaced_consistently() {
    let s = with_free_ports("listen 9000; connect 127.0.0.1:9000 --local 9001 x9000 19000");
    let words: Vec<&str> = s.split([' ', ':', ';']).collect();
    assert_eq!(words[1], words[5], "{s}");
    assert_ne!(words[1], words[7], "{s}");
    assert!(s.ends_with("x9000 19000"), "{s}");
    assert!(!s.contains(" 9000"), "{s}");
}

/// Every `msock` command line in every shell block of the README (runnable or not) parses
/// with the real CLI; lines holding a `...` placeholder (`--peer-key SHA256:...`) are skipped.
#[test]
fn every_readme_command_parses() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let mut in_sh = false;
    let (mut seen, mut bad) = (0, Vec::new());
    for (n, line) in readme.lines().enumerate() {
        let t = line.trim();
        if let Some(info) = t.strip_prefix("```") {
            in_sh = !in_sh && info.split_whitespace().next() == Some("sh");
            continue;
        }
        if !in_sh {
            continue;
        }
        for argv in shell::msock_invocations(line) {
            if argv.iter().any(|w| w.contains("...")) {
                continue;
            }
            seen += 1;
            if let Err(e) = msock::cli::Cli::try_parse_from(&argv) {
                bad.push(format!("README.md line {}: {line}\n{}", n + 1, e.render()));
            }
        }
    }
    assert!(
        seen > 30,
        "found only {seen} msock command lines in README.md"
    );
    assert!(
        bad.is_empty(),
        "README commands that do not parse:\n{}",
        bad.join("\n")
    );
}
