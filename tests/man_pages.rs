//! The man pages as a reader sees them: each is rendered to text (man -l, else groff or
//! mandoc) and checked for mis-wrapped paragraphs, references to sections or pages that do
//! not exist, and the sections a page must have. Their examples must parse with the real CLI,
//! and the files and environment variables they name are the ones the binary uses.

mod common;
mod shell;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use clap::{CommandFactory, Parser};
use common::*;
use shell::msock_invocations;

/// Renders a page to plain ASCII text 80 columns wide, or None when no formatter is installed.
fn render(page: &Path) -> Option<String> {
    let tries: [(&str, Vec<&str>); 3] = [
        ("man", vec!["--warnings", "-l"]),
        ("groff", vec!["-man", "-Tascii", "-rLL=80n", "-ww"]),
        ("mandoc", vec!["-Tascii", "-Owidth=80", "-Wwarning"]),
    ];
    for (prog, args) in tries {
        let out = Command::new(prog)
            .args(&args)
            .arg(page)
            .env("LC_ALL", "C")
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_FORMATTING", "")
            .stdin(Stdio::null())
            .output();
        let Ok(out) = out else { continue };
        assert!(
            out.status.success(),
            "{prog} failed on {}: {}",
            page.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(
            warnings.trim().is_empty(),
            "{prog} warns about {}:\n{warnings}",
            page.display()
        );
        // Strip overstriking (bold, underline) should a formatter still emit it.
        let text = String::from_utf8_lossy(&out.stdout);
        let mut clean = String::with_capacity(text.len());
        for c in text.chars() {
            if c == '\u{8}' {
                clean.pop();
            } else {
                clean.push(c);
            }
        }
        return Some(clean);
    }
    None
}

/// The committed pages, `man/*.1`.
fn pages() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("man/")
        .map(|e| e.expect("man/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "1"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no pages in {}", dir.display());
    v
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// What is wrong with the layout of a rendered page: a line that is followed, with no blank
/// line between, by a less indented one (hand-wrapped text that roff filled as it came), or a
/// lone word inside a paragraph.
fn layout_faults(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let mut faults = Vec::new();
    for (i, pair) in lines.windows(2).enumerate() {
        let (a, b) = (pair[0], pair[1]);
        if a.is_empty() || b.is_empty() || i == 0 || i + 2 == lines.len() {
            continue; // the header and footer lines
        }
        if indent(b) < indent(a) {
            faults.push(format!("line {}: {a:?} then less indented {b:?}", i + 1));
        }
        if indent(a) == indent(b) && a.split_whitespace().count() == 1 {
            faults.push(format!(
                "line {}: lone word {a:?} inside a paragraph",
                i + 1
            ));
        }
    }
    faults
}

/// Headings of a rendered page: sections (unindented) and subsections (indented a little).
fn headings(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty() && indent(l) <= 3)
        .map(|l| l.trim().to_owned())
        .collect()
}

/// The sections or subsections a text refers to: `see NAME below`, `see "Name" below`.
fn referred_sections(text: &str) -> Vec<String> {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = Vec::new();
    let mut rest = flat.as_str();
    while let Some(i) = rest.find("see ") {
        rest = &rest[i + 4..];
        let Some(end) = rest.find(" below") else {
            break;
        };
        let what = &rest[..end];
        if what.len() < 40 && !what.contains(['(', ')', ';']) {
            out.push(what.trim_matches('"').to_owned());
        }
    }
    out
}

/// `name(N)` references to msock's own pages.
fn referred_pages(text: &str) -> Vec<String> {
    let flat = text.replace("-\n", "-").replace('\u{2010}', "-");
    let mut out = Vec::new();
    for (i, _) in flat.match_indices("msock") {
        let tail = &flat[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .unwrap_or(tail.len());
        if tail[end..].starts_with("(1)") {
            out.push(tail[..end].to_owned());
        }
    }
    out
}

#[test]
fn pages_read_well_and_refer_only_to_what_exists() {
    let pages = pages();
    let names: Vec<String> = pages
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let mut expected: Vec<String> = std::iter::once("msock".to_owned())
        .chain(
            msock::docs::subcommands()
                .iter()
                .map(|s| format!("msock-{s}")),
        )
        .collect();
    expected.sort();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        sorted, expected,
        "one page for msock and for each subcommand"
    );
    let mut faults = Vec::new();
    for (page, name) in pages.iter().zip(&names) {
        let Some(text) = render(page) else {
            println!("SKIPPED: no man, groff or mandoc to render pages (apt-get install -y man-db groff-base)");
            return;
        };
        for f in layout_faults(&text) {
            faults.push(format!("{name}: {f}"));
        }
        let heads = headings(&text);
        for need in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "EXAMPLES",
            "EXIT STATUS",
            "SEE ALSO",
        ] {
            if !heads.iter().any(|h| h == need) {
                faults.push(format!(
                    "{name}: no {need} section (examples: src/docs/extra.rs)"
                ));
            }
        }
        for what in referred_sections(&text) {
            if !heads.iter().any(|h| h.starts_with(&what)) {
                faults.push(format!(
                    "{name}: refers to \"{what}\" below, which is not there"
                ));
            }
        }
        for p in referred_pages(&text) {
            if !names.contains(&p) {
                faults.push(format!("{name}: refers to {p}(1), which does not exist"));
            }
        }
        let name_line = text
            .lines()
            .skip_while(|l| l.trim() != "NAME")
            .nth(1)
            .unwrap_or("");
        let name_line = name_line.split_whitespace().collect::<Vec<_>>().join(" ");
        if !name_line.starts_with(&format!("{name} - ")) || name_line.contains(": msock") {
            faults.push(format!("{name}: NAME line reads {name_line:?}"));
        }
        let synopsis = text
            .split("SYNOPSIS")
            .nth(1)
            .and_then(|s| s.split("DESCRIPTION").next())
            .unwrap_or("");
        let flat = synopsis.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut cmd = msock::cli::Cli::command();
        cmd.build();
        let cmd = match name.strip_prefix("msock-") {
            Some(sub) => cmd.find_subcommand(sub).expect("subcommand").clone(),
            None => cmd,
        };
        for arg in cmd
            .get_arguments()
            .filter(|a| !a.is_hide_set() && a.get_action().takes_values())
        {
            let (Some(long), Some(value)) = (arg.get_long(), arg.get_value_names()) else {
                continue;
            };
            let shown = format!("--{long} {}", value.join(" "));
            if !flat.contains(&shown) {
                faults.push(format!("{name}: SYNOPSIS does not show {shown:?}"));
            }
        }
    }
    assert!(faults.is_empty(), "man pages:\n{}", faults.join("\n"));
}

#[test]
fn every_example_parses() {
    let mut bad = Vec::new();
    let mut seen = 0;
    for sub in std::iter::once(String::new()).chain(msock::docs::subcommands()) {
        for e in msock::docs::examples(&sub) {
            for argv in msock_invocations(e.command) {
                seen += 1;
                if let Err(err) = msock::cli::Cli::try_parse_from(&argv) {
                    bad.push(format!("{}: {}", e.command, err.render()));
                }
            }
        }
    }
    assert!(
        seen > 10,
        "found only {seen} msock command lines in the examples"
    );
    assert!(
        bad.is_empty(),
        "examples that do not parse:\n{}",
        bad.join("\n")
    );
}

/// A page's FILES entry for `file` (relative to CONFIG) must exist, and the binary must create
/// that file in the directory the ENVIRONMENT section says.
fn assert_documented(file: &str, dir_note: &str) {
    assert!(
        msock::docs::FILES
            .iter()
            .any(|f| f.path == format!("CONFIG/{file}")),
        "FILES does not list CONFIG/{file} ({dir_note})"
    );
}

#[test]
fn files_and_environment_are_what_the_binary_uses() {
    for var in ["MSOCK_CONFIG_DIR", "MSOCK_STATE_DIR", "MSOCK_LOG"] {
        assert!(
            msock::docs::ENVIRONMENT
                .iter()
                .any(|e| e.path.contains(var)),
            "ENVIRONMENT does not name {var}"
        );
    }
    // $MSOCK_CONFIG_DIR wins; then $XDG_CONFIG_HOME/msock.
    for (sub, file) in [("listen", "listener.key"), ("connect", "client.key")] {
        let own = tempdir();
        let xdg = tempdir();
        let mut c = msock(&[sub, "--show-key"]);
        c.env("MSOCK_CONFIG_DIR", own.path())
            .env("XDG_CONFIG_HOME", xdg.path());
        let out = c.output().expect("run msock");
        assert!(out.status.success(), "{sub} --show-key: {out:?}");
        assert!(
            own.path().join(file).is_file(),
            "{file} not in MSOCK_CONFIG_DIR"
        );
        let mut c = msock(&[sub, "--show-key"]);
        c.env_remove("MSOCK_CONFIG_DIR")
            .env("XDG_CONFIG_HOME", xdg.path());
        let out = c.output().expect("run msock");
        assert!(out.status.success(), "{sub} --show-key: {out:?}");
        assert!(
            xdg.path().join("msock").join(file).is_file(),
            "{file} not in XDG_CONFIG_HOME/msock"
        );
        assert_documented(file, "created by --show-key");
    }
    // A send-file writes known_peers and transfer.secret into the sender's config directory.
    let save = tempdir();
    let save_dir = save.path().to_str().unwrap().to_owned();
    let mut listener = Listener::start(&["--save-dir", &save_dir], Stdio::null(), Stdio::null());
    let src = tempdir();
    let path = src.path().join("f.txt");
    std::fs::write(&path, b"hello\n").unwrap();
    let conf = tempdir();
    let mut c = msock(&["send-file", "-q", path.to_str().unwrap(), &listener.dest()]);
    c.env("MSOCK_CONFIG_DIR", conf.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let mut p = Proc::spawn("msock send-file", c);
    let exit = p.wait(Duration::from_secs(30));
    listener.proc.kill();
    assert_eq!(exit.code, Some(0), "send-file: {}", exit.stderr);
    for file in ["known_peers", "transfer.secret"] {
        assert!(
            conf.path().join(file).is_file(),
            "send-file did not create {file}"
        );
        assert_documented(file, "created by send-file");
    }
}
