//! End-to-end tests of `msock send-file` → `msock listen --save-dir DIR`: single files,
//! folders (paths, empty folders, the executable bit, symlinks left out), stdin, the --json
//! report, skipping identical files, conflicts and --overwrite, refusals (no --save-dir,
//! --max-size, a full disk, hostile names), resuming after both ends were killed and after a
//! corrupted partial file, a disk that fills up mid-transfer, and usage errors.
//!
//! The hostile-name tests speak the file-transfer protocol by hand, from inside the test: the
//! library's own client session (`msock::cmd::dial::dial`) carries a hand-made OFFER.

mod common;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Deadline for a small transfer (debug build, 2 cores, other tests in parallel).
const SHORT: Duration = Duration::from_secs(20);
/// Deadline for a large transfer.
const LONG: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Helpers

/// A listener saving into `dir`, with `extra` flags; stdin and stdout null.
fn save_listener(dir: &Path, extra: &[&str]) -> Listener {
    let mut args = vec!["--save-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    Listener::start(&args, Stdio::null(), Stdio::null())
}

/// Where the receiver in `dst` keeps the partial file of offered `path` sent by the tests'
/// send-file runs: named after their transfer token (the secret is in the tests' config
/// directory).
fn part_of(dst: &Path, path: &str) -> std::path::PathBuf {
    dst.join(msock::transfer::owner::partial_path(&test_config_dir(), path).unwrap())
}

/// `msock send-file <args...>` with `stdin`, stdout captured into a temp file (read at exit).
struct Sender {
    proc: Proc,
    out: tempfile::NamedTempFile,
}

impl Sender {
    fn spawn(args: &[&str], stdin: Stdio) -> Sender {
        let out = tempfile::NamedTempFile::new().unwrap();
        let mut all = vec!["send-file"];
        all.extend_from_slice(args);
        let mut cmd = msock(&all);
        cmd.stdin(stdin).stdout(Stdio::from(out.reopen().unwrap()));
        Sender {
            proc: Proc::spawn(&format!("msock send-file {}", args.join(" ")), cmd),
            out,
        }
    }

    /// Waits for the exit; returns it and stdout.
    fn finish(mut self, timeout: Duration) -> Done {
        let exit = self.proc.wait(timeout);
        let stdout = fs::read_to_string(self.out.path()).unwrap();
        Done { exit, stdout }
    }
}

/// A finished send-file.
#[derive(Debug)]
struct Done {
    exit: Exit,
    stdout: String,
}

impl Done {
    /// Asserts the exit code, with stderr and stdout in the message.
    #[track_caller]
    fn code(&self, want: i32) -> &Self {
        assert_eq!(
            self.exit.code,
            Some(want),
            "send-file exited with {:?}, expected {want}; stderr:\n{}\nstdout:\n{}",
            self.exit.code,
            self.exit.stderr,
            self.stdout
        );
        self
    }

    /// The --json object: exactly one line on stdout, parsed.
    #[track_caller]
    fn json(&self) -> Value {
        let lines: Vec<_> = self.stdout.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "--json should print exactly one line on stdout, got:\n{}",
            self.stdout
        );
        serde_json::from_str(lines[0])
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `msock send-file <args...>` (stdin null) to its end.
fn send(args: &[&str], timeout: Duration) -> Done {
    Sender::spawn(args, Stdio::null()).finish(timeout)
}

/// BLAKE3 (hex) of a file.
fn blake3_file(p: &Path) -> String {
    let mut h = blake3::Hasher::new();
    h.update_reader(fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display())))
        .unwrap();
    h.finalize().to_hex().to_string()
}

/// Asserts two files have the same bytes (compared in chunks; no megabyte dumps).
#[track_caller]
fn assert_same_file(got: &Path, want: &Path) {
    use std::io::Read;
    let (gl, wl) = (file_len(got), file_len(want));
    assert!(got.exists(), "{} was not created", got.display());
    assert_eq!(gl, wl, "{} has {gl} bytes, want {wl}", got.display());
    let mut a = fs::File::open(got).unwrap();
    let mut b = fs::File::open(want).unwrap();
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    let mut at = 0u64;
    loop {
        let n = a.read(&mut ba).unwrap();
        if n == 0 {
            return;
        }
        b.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            let i = ba[..n]
                .iter()
                .zip(&bb[..n])
                .position(|(x, y)| x != y)
                .unwrap();
            panic!(
                "{} differs from {} at byte {}",
                got.display(),
                want.display(),
                at + i as u64
            );
        }
        at += n as u64;
    }
}

/// Writes a file of `len` seeded bytes quickly: 1 MiB of seeded bytes, repeated with each
/// block's first 8 bytes replaced by its index (so no two blocks are equal).
fn write_big_file(path: &Path, seed: u64, len: u64) {
    use std::io::Write;
    let block = seeded_bytes(seed, 1 << 20);
    let mut f = std::io::BufWriter::new(fs::File::create(path).unwrap());
    let mut left = len;
    let mut i = 0u64;
    let mut b = block.clone();
    while left > 0 {
        b[..8].copy_from_slice(&i.to_le_bytes());
        let n = left.min(b.len() as u64) as usize;
        f.write_all(&b[..n]).unwrap();
        left -= n as u64;
        i += 1;
    }
    f.flush().unwrap();
}

/// The file's entry in a --json report.
#[track_caller]
fn entry<'a>(doc: &'a Value, path: &str) -> &'a Value {
    doc["files"]
        .as_array()
        .expect("files[] in the report")
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("no {path:?} in files[]: {doc}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Every entry under `dir`, relative, sorted (to show that nothing else was created).
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, at: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(at).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Ordinary transfers

/// One file: it arrives byte for byte under its name, both ends exit 0, the listener says so,
/// and --json reports every documented key with the right numbers (the BLAKE3 is the file's).
#[test]
fn single_file_arrives_verified_with_json_report() {
    let src = tempdir();
    let dst = tempdir();
    let len = 3 * 1000 * 1000 + 17;
    let (file, _) = write_random_file(src.path(), "photo.jpg", 0x5eed, len);
    let mut l = save_listener(dst.path(), &[]);

    let d = send(&[s(&file), &l.dest(), "--json"], SHORT);
    d.code(0);
    let le = l.proc.expect_code(0, SHORT);

    let got = dst.path().join("photo.jpg");
    assert_same_file(&got, &file);
    assert_eq!(tree(dst.path()), vec!["photo.jpg"], "nothing else is left");
    assert_eq!(mode(&got), 0o644, "a non-executable file arrives as 0644");
    assert!(
        le.stderr.contains("received 1 file") && le.stderr.contains(&format!("{len} bytes")),
        "listener should report what it received:\n{}",
        le.stderr
    );

    let doc = d.json();
    for k in [
        "ok",
        "files",
        "bytes",
        "bytes_sent",
        "resumed_bytes",
        "skipped_files",
        "seconds",
        "bytes_per_second",
        "bits_per_second",
        "paths",
        "dest",
    ] {
        assert!(doc.get(k).is_some(), "--json lacks {k:?}: {doc}");
    }
    assert!(doc.get("error").is_none(), "no error on success: {doc}");
    assert_eq!(doc["ok"], true, "{doc}");
    assert_eq!(doc["dest"], l.dest().as_str());
    assert_eq!(u(&doc["bytes"]), len as u64);
    assert_eq!(u(&doc["bytes_sent"]), len as u64);
    assert_eq!(u(&doc["resumed_bytes"]), 0);
    assert_eq!(u(&doc["skipped_files"]), 0);
    let secs = doc["seconds"].as_f64().unwrap();
    assert!(secs > 0.0 && secs < SHORT.as_secs_f64(), "{doc}");
    let bps = doc["bytes_per_second"].as_f64().unwrap();
    assert!(
        (bps * secs - len as f64).abs() < len as f64 * 0.01,
        "bytes_per_second × seconds should be the bytes sent: {doc}"
    );
    let bits = doc["bits_per_second"].as_f64().unwrap();
    assert!((bits - 8.0 * bps).abs() < 1e-6 * bits, "{doc}");
    assert!(
        !doc["paths"].as_array().unwrap().is_empty(),
        "at least one flowpath carried it: {doc}"
    );
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{doc}");
    let f = entry(&doc, "photo.jpg");
    assert_eq!(f["kind"], "file");
    assert_eq!(u(&f["size"]), len as u64);
    assert_eq!(u(&f["sent"]), len as u64);
    assert_eq!(u(&f["resumed_from"]), 0);
    assert_eq!(f["skipped"], false);
    assert_eq!(f["ok"], true);
    assert!(f.get("error").is_none(), "{doc}");
    assert_eq!(f["blake3"].as_str().unwrap(), blake3_file(&file));
}

/// A folder tree and a separate file in one command: relative paths, nested and empty folders,
/// an empty file and the executable bit arrive; a symlink inside the folder is left out with
/// a "not sent:" warning and nothing of it appears on the receiver.
#[test]
fn folder_tree_keeps_paths_empty_folders_and_exec_bit_and_skips_symlinks() {
    let src = tempdir();
    let dst = tempdir();
    let root = src.path().join("proj");
    fs::create_dir_all(root.join("src/deep/er")).unwrap();
    fs::create_dir_all(root.join("empty/inner-empty")).unwrap();
    let files: Vec<(&str, usize)> = vec![
        ("README", 1234),
        ("src/main.rs", 200_000),
        ("src/deep/er/data.bin", 700_001),
        ("src/zero", 0),
        ("run.sh", 333),
    ];
    for (i, (name, len)) in files.iter().enumerate() {
        fs::write(root.join(name), seeded_bytes(i as u64 + 100, *len)).unwrap();
    }
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(root.join("README"), fs::Permissions::from_mode(0o600)).unwrap();
    symlink("/etc/passwd", root.join("src/passwd-link")).unwrap();
    symlink("src", root.join("src-link")).unwrap();
    let (single, _) = write_random_file(src.path(), "single.txt", 77, 5000);

    let mut l = save_listener(dst.path(), &[]);
    let d = send(&[s(&root), s(&single), &l.dest(), "--json"], SHORT);
    d.code(0);
    l.proc.expect_code(0, SHORT);

    let got = dst.path().join("proj");
    for (name, _) in &files {
        assert_same_file(&got.join(name), &root.join(name));
    }
    assert_same_file(&dst.path().join("single.txt"), &single);
    assert!(
        got.join("empty/inner-empty").is_dir(),
        "empty folders arrive"
    );
    assert_eq!(
        mode(&got.join("run.sh")),
        0o755,
        "the executable bit is kept"
    );
    assert_eq!(mode(&got.join("src/main.rs")) & 0o111, 0, "no exec bit");
    assert_eq!(mode(&got.join("README")) & 0o111, 0, "no exec bit");
    assert_eq!(
        tree(dst.path()),
        vec![
            "proj",
            "proj/README",
            "proj/empty",
            "proj/empty/inner-empty",
            "proj/run.sh",
            "proj/src",
            "proj/src/deep",
            "proj/src/deep/er",
            "proj/src/deep/er/data.bin",
            "proj/src/main.rs",
            "proj/src/zero",
            "single.txt",
        ],
        "exactly the tree, without the symlinks or partial files"
    );
    let warnings: Vec<_> = d
        .exit
        .stderr
        .lines()
        .filter(|l| l.contains("not sent:"))
        .collect();
    assert_eq!(
        warnings.len(),
        2,
        "one warning per symlink:\n{}",
        d.exit.stderr
    );
    assert!(
        warnings.iter().any(|w| w.contains("passwd-link"))
            && warnings.iter().any(|w| w.contains("src-link")),
        "the warnings name the symlinks:\n{}",
        d.exit.stderr
    );

    let doc = d.json();
    let total: u64 = files.iter().map(|(_, n)| *n as u64).sum::<u64>() + 5000;
    assert_eq!(u(&doc["bytes"]), total, "{doc}");
    assert_eq!(u(&doc["bytes_sent"]), total, "{doc}");
    assert_eq!(entry(&doc, "proj")["kind"], "dir");
    assert_eq!(entry(&doc, "proj/empty/inner-empty")["kind"], "dir");
    let f = entry(&doc, "proj/src/deep/er/data.bin");
    assert_eq!(f["kind"], "file");
    assert_eq!(
        f["blake3"].as_str().unwrap(),
        blake3_file(&root.join("src/deep/er/data.bin"))
    );
    assert_eq!(u(&entry(&doc, "proj/src/zero")["size"]), 0);
    assert!(
        doc["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["ok"] == true && !f["path"].as_str().unwrap().contains("link")),
        "{doc}"
    );
}

/// `-` sends stdin under --name; -q prints nothing on stderr; the report says it was a stream.
#[test]
fn stdin_is_saved_under_its_name_and_quiet_is_quiet() {
    let src = tempdir();
    let dst = tempdir();
    let (input, _) = write_random_file(src.path(), "in", 9, 1_500_000);
    let mut l = save_listener(dst.path(), &[]);
    let d = Sender::spawn(
        &["-", &l.dest(), "--name", "from-pipe.bin", "-q", "--json"],
        stdin_from(&input),
    )
    .finish(SHORT);
    d.code(0);
    l.proc.expect_code(0, SHORT);
    assert_same_file(&dst.path().join("from-pipe.bin"), &input);
    assert_eq!(tree(dst.path()), vec!["from-pipe.bin"]);
    assert!(
        d.exit.stderr.trim().is_empty(),
        "-q should print nothing on success:\n{}",
        d.exit.stderr
    );
    let doc = d.json();
    let f = entry(&doc, "from-pipe.bin");
    assert_eq!(f["kind"], "stream");
    assert_eq!(u(&f["size"]), 1_500_000, "a stream's size is what was read");
    assert_eq!(u(&f["sent"]), 1_500_000);
    assert_eq!(f["blake3"].as_str().unwrap(), blake3_file(&input));
}

/// Sending the same file twice to a -k listener: the second run sends nothing and reports the
/// file as skipped (identical), and the receiver's copy stays as it was.
#[test]
fn identical_file_is_skipped_on_a_second_run() {
    let src = tempdir();
    let dst = tempdir();
    let (file, _) = write_random_file(src.path(), "same.bin", 5, 2_000_000);
    let mut l = save_listener(dst.path(), &["-k"]);

    send(&[s(&file), &l.dest()], SHORT).code(0);
    assert_same_file(&dst.path().join("same.bin"), &file);

    let d = send(&[s(&file), &l.dest(), "--json"], SHORT);
    d.code(0);
    let doc = d.json();
    assert_eq!(doc["ok"], true, "{doc}");
    assert_eq!(
        u(&doc["bytes_sent"]),
        0,
        "nothing should be sent again: {doc}"
    );
    assert_eq!(u(&doc["skipped_files"]), 1, "{doc}");
    let f = entry(&doc, "same.bin");
    assert_eq!(f["skipped"], true, "{doc}");
    assert_eq!(u(&f["sent"]), 0, "{doc}");
    assert_eq!(f["ok"], true, "{doc}");
    assert_eq!(f["blake3"].as_str().unwrap(), blake3_file(&file));
    assert_same_file(&dst.path().join("same.bin"), &file);
    assert!(
        d.exit.stderr.contains("skipped"),
        "the summary should mention the skipped file:\n{}",
        d.exit.stderr
    );
    l.proc.assert_running("-k");
}

/// An existing file with other contents on the receiver, no --overwrite: the sender exits 1,
/// names the file and suggests --overwrite; nothing of the offer is written (not even the
/// other, new file), the existing file is untouched, and --json says ok=false with the error.
#[test]
fn different_existing_file_is_a_conflict_without_overwrite() {
    let src = tempdir();
    let dst = tempdir();
    let (a, _) = write_random_file(src.path(), "report.pdf", 1, 400_000);
    let (b, _) = write_random_file(src.path(), "new.txt", 2, 300_000);
    let theirs = seeded_bytes(3, 400_000); // same size, other contents
    fs::write(dst.path().join("report.pdf"), &theirs).unwrap();
    let mut l = save_listener(dst.path(), &["-k"]);

    let d = send(&[s(&b), s(&a), &l.dest(), "--json"], SHORT);
    d.code(1);
    let err = d.exit.stderr.to_lowercase();
    assert!(
        err.contains("report.pdf") && err.contains("--overwrite"),
        "stderr should name the file and suggest --overwrite:\n{}",
        d.exit.stderr
    );
    assert!(!err.contains("new.txt\""), "only the conflict is named");
    let doc = d.json();
    assert_eq!(doc["ok"], false, "{doc}");
    assert!(
        doc["error"].as_str().unwrap_or("").contains("report.pdf"),
        "{doc}"
    );
    assert_bytes_eq(
        &read(&dst.path().join("report.pdf")),
        &theirs,
        "the receiver's existing file",
    );
    assert_eq!(
        tree(dst.path()),
        vec!["report.pdf"],
        "nothing else written (no new.txt, no partial files)"
    );
    l.proc.assert_running("-k survives a refused transfer");

    // A file of another size is a conflict too.
    fs::write(dst.path().join("report.pdf"), b"short").unwrap();
    send(&[s(&a), &l.dest()], SHORT).code(1);
    assert_eq!(read(&dst.path().join("report.pdf")), b"short");
}

/// With --overwrite, a different existing file is replaced (and its mode follows the
/// sender's); an identical one is still skipped.
#[test]
fn overwrite_replaces_a_different_existing_file() {
    let src = tempdir();
    let dst = tempdir();
    let (a, _) = write_random_file(src.path(), "conf.bin", 10, 250_000);
    let (b, _) = write_random_file(src.path(), "same.bin", 11, 250_000);
    fs::set_permissions(&a, fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(dst.path().join("conf.bin"), seeded_bytes(12, 1_000_000)).unwrap();
    fs::copy(&b, dst.path().join("same.bin")).unwrap();
    let mut l = save_listener(dst.path(), &["--overwrite"]);

    let d = send(&[s(&a), s(&b), &l.dest(), "--json"], SHORT);
    d.code(0);
    l.proc.expect_code(0, SHORT);
    assert_same_file(&dst.path().join("conf.bin"), &a);
    assert_same_file(&dst.path().join("same.bin"), &b);
    assert_eq!(mode(&dst.path().join("conf.bin")), 0o755);
    assert_eq!(tree(dst.path()), vec!["conf.bin", "same.bin"]);
    let doc = d.json();
    assert_eq!(entry(&doc, "conf.bin")["skipped"], false, "{doc}");
    assert_eq!(u(&entry(&doc, "conf.bin")["sent"]), 250_000, "{doc}");
    assert_eq!(entry(&doc, "same.bin")["skipped"], true, "{doc}");
    assert_eq!(u(&doc["bytes_sent"]), 250_000, "{doc}");
}

// ---------------------------------------------------------------------------------------------
// Refusals and errors

/// A listener without --save-dir refuses file offers: the sender exits 1 and points at
/// --save-dir; the listener says it refused one, and (with -k) keeps running.
#[test]
fn listener_without_save_dir_refuses_files() {
    let src = tempdir();
    let (file, _) = write_random_file(src.path(), "f", 1, 10_000);
    let mut l = Listener::start(&["-k"], Stdio::null(), Stdio::null());
    let d = send(&[s(&file), &l.dest()], SHORT);
    d.code(1);
    assert!(
        d.exit.stderr.contains("--save-dir"),
        "the sender should say the listener needs --save-dir:\n{}",
        d.exit.stderr
    );
    assert!(
        l.proc
            .stderr
            .wait_contains(SHORT, "refused a file transfer"),
        "listener stderr:\n{}",
        l.proc.stderr.text()
    );
    l.proc.assert_running("-k");
}

/// --json prints its one object (ok=false, error) also when the session cannot even open:
/// nobody listening, or a listener that refuses files.
#[test]
fn json_report_is_printed_when_the_session_cannot_open() {
    let src = tempdir();
    let (file, _) = write_random_file(src.path(), "f", 1, 100);
    let l = Listener::start(&["-k"], Stdio::null(), Stdio::null());
    for (dest, what) in [
        (dead_port().to_string(), "nobody listening"),
        (l.dest(), "listener without --save-dir"),
    ] {
        let d = send(&[s(&file), &dest, "--wait", "2s", "--json"], SHORT);
        d.code(1);
        assert!(d.exit.stderr.starts_with("msock:"), "{}", d.exit.stderr);
        assert_eq!(
            d.stdout.lines().count(),
            1,
            "{what}: --json should print one object on stdout also on failure; stdout:\n{}\n\
             stderr:\n{}",
            d.stdout,
            d.exit.stderr
        );
        let doc = d.json();
        assert_eq!(doc["ok"], false, "{what}: {doc}");
        assert_eq!(doc["dest"], dest.as_str(), "{what}: {doc}");
        assert!(
            doc["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: {doc}"
        );
    }
}

/// --max-size: a larger offer is refused up front (exit 1, the message names --max-size,
/// nothing is written); an offer within the limit passes.
#[test]
fn max_size_refuses_a_larger_offer() {
    let src = tempdir();
    let dst = tempdir();
    let (big, _) = write_random_file(src.path(), "big", 1, 1_200_000);
    let (small, _) = write_random_file(src.path(), "small", 2, 900_000);
    // 1M is 1,000,000 or 1,048,576 bytes: either way between the two files.
    let mut l = save_listener(dst.path(), &["-k", "--max-size", "1M"]);
    let d = send(&[s(&big), &l.dest()], SHORT);
    d.code(1);
    assert!(
        d.exit.stderr.contains("--max-size"),
        "stderr should name --max-size:\n{}",
        d.exit.stderr
    );
    assert!(tree(dst.path()).is_empty(), "{:?}", tree(dst.path()));
    send(&[s(&small), &l.dest()], SHORT).code(0);
    assert_same_file(&dst.path().join("small"), &small);
    l.proc.assert_running("-k");
}

/// --max-size also bounds stdin, whose size is unknown up front: the receiver cuts the
/// stream off once it passes the limit; the sender exits 1 naming --max-size, the listener
/// reports it, and no file appears.
#[test]
fn max_size_cuts_off_a_stream() {
    let src = tempdir();
    let dst = tempdir();
    let (big, _) = write_random_file(src.path(), "big", 1, 3_000_000);
    let mut l = save_listener(dst.path(), &["-k", "--max-size", "1M"]);
    let d = Sender::spawn(&["-", &l.dest(), "--name", "s"], stdin_from(&big)).finish(SHORT);
    d.code(1);
    assert!(
        d.exit.stderr.contains("--max-size"),
        "stderr should name --max-size:\n{}",
        d.exit.stderr
    );
    assert!(
        l.proc.stderr.wait_contains(SHORT, "--max-size"),
        "listener stderr:\n{}",
        l.proc.stderr.text()
    );
    assert!(!dst.path().join("s").exists());
    assert!(
        file_len(&part_of(dst.path(), "s")) <= 1 << 20,
        "more than --max-size was written"
    );
    l.proc.assert_running("-k");
}

/// Usage and local errors exit 2 before connecting (the destination is a dead port: a
/// connection attempt would be exit 1).
#[test]
fn usage_errors_exit_2() {
    let src = tempdir();
    let (file, _) = write_random_file(src.path(), "f", 1, 100);
    let dead = dead_port().to_string();
    let missing = src.path().join("no-such-file");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![s(&missing), &dead], "no-such-file"),
        (vec![s(&file), "localhost"], "port"),
        (vec![&dead], "HOST:PORT"),
        (vec![], ""),
        (vec!["-", "-", &dead], "twice"),
        (vec!["-", &dead, "--name", "a/b"], "a/b"),
        (vec!["-", &dead, "--name", ".."], ".."),
    ];
    for (args, want) in cases {
        let mut all = vec!["send-file"];
        all.extend_from_slice(&args);
        let e = run(&all, SHORT);
        assert_eq!(
            e.code,
            Some(2),
            "msock {all:?} exited with {:?}, want 2; stderr:\n{}",
            e.code,
            e.stderr
        );
        assert!(
            e.stderr.contains(want),
            "msock {all:?}: stderr should mention {want:?}:\n{}",
            e.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Resuming

/// A partial file with the sender's first bytes (as an interrupted run leaves it): only the
/// rest is sent, exactly; the result is the whole file.
#[test]
fn partial_file_is_resumed_and_only_the_rest_is_sent() {
    let src = tempdir();
    let dst = tempdir();
    let len = 3_000_000u64;
    let have = 1_234_567u64;
    let (file, _) = write_random_file(src.path(), "video.mp4", 21, len as usize);
    fs::create_dir(dst.path().join("clips")).unwrap();
    let part = part_of(dst.path(), "clips/video.mp4");
    fs::write(&part, &read(&file)[..have as usize]).unwrap();
    // The folder's entry is "clips": send the folder holding the file.
    let clips = src.path().join("clips");
    fs::create_dir(&clips).unwrap();
    fs::rename(&file, clips.join("video.mp4")).unwrap();
    let file = clips.join("video.mp4");

    let mut l = save_listener(dst.path(), &[]);
    let d = send(&[s(&clips), &l.dest(), "--json"], SHORT);
    d.code(0);
    let le = l.proc.expect_code(0, SHORT);
    assert_same_file(&dst.path().join("clips/video.mp4"), &file);
    assert!(!part.exists(), "the partial file is gone once complete");
    let doc = d.json();
    let f = entry(&doc, "clips/video.mp4");
    assert_eq!(u(&f["resumed_from"]), have, "{doc}");
    assert_eq!(u(&f["sent"]), len - have, "{doc}");
    assert_eq!(u(&doc["resumed_bytes"]), have, "{doc}");
    assert_eq!(u(&doc["bytes_sent"]), len - have, "{doc}");
    assert_eq!(u(&doc["bytes"]), len, "{doc}");
    assert_eq!(f["blake3"].as_str().unwrap(), blake3_file(&file));
    assert!(
        d.exit
            .stderr
            .contains(&format!("resumed from {have} bytes")),
        "sender summary:\n{}",
        d.exit.stderr
    );
    assert!(
        le.stderr.contains(&format!("resumed from {have} bytes")),
        "listener summary:\n{}",
        le.stderr
    );
}

/// A partial file whose bytes differ from the sender's (corrupted, or from another file of
/// that name) is detected: the file is sent again from 0 and arrives intact.
#[test]
fn corrupted_partial_file_is_detected_and_resent_from_zero() {
    let src = tempdir();
    let dst = tempdir();
    let len = 2_000_000usize;
    let (file, _) = write_random_file(src.path(), "db.sqlite", 31, len);
    let mut partial = read(&file)[..1_500_000].to_vec();
    partial[1_000_000] ^= 0x01; // one flipped bit in the middle
    let part = part_of(dst.path(), "db.sqlite");
    fs::write(&part, &partial).unwrap();

    let mut l = save_listener(dst.path(), &[]);
    let d = send(&[s(&file), &l.dest(), "--json"], SHORT);
    d.code(0);
    l.proc.expect_code(0, SHORT);
    assert_same_file(&dst.path().join("db.sqlite"), &file);
    assert!(!part.exists(), "the partial file is gone once complete");
    assert_eq!(tree(dst.path()), vec!["db.sqlite"]);
    let doc = d.json();
    let f = entry(&doc, "db.sqlite");
    assert_eq!(u(&f["resumed_from"]), 0, "{doc}");
    assert_eq!(u(&f["sent"]), len as u64, "{doc}");
    assert_eq!(u(&doc["resumed_bytes"]), 0, "{doc}");
}

/// Edge cases of partial files: one that already holds every byte (the receiver was killed
/// between the last write and the rename) is verified and renamed with nothing sent; one
/// longer than the file is not trusted and the file is sent from 0.
#[test]
fn complete_and_oversized_partial_files() {
    let src = tempdir();
    let dst = tempdir();
    let len = 700_000usize;
    let (a, _) = write_random_file(src.path(), "whole.bin", 51, len);
    let (b, _) = write_random_file(src.path(), "long.bin", 52, len);
    fs::copy(&a, part_of(dst.path(), "whole.bin")).unwrap();
    let mut longer = read(&b);
    longer.extend_from_slice(b"trailing junk");
    fs::write(part_of(dst.path(), "long.bin"), &longer).unwrap();

    let mut l = save_listener(dst.path(), &[]);
    let d = send(&[s(&a), s(&b), &l.dest(), "--json"], SHORT);
    d.code(0);
    l.proc.expect_code(0, SHORT);
    assert_same_file(&dst.path().join("whole.bin"), &a);
    assert_same_file(&dst.path().join("long.bin"), &b);
    assert_eq!(tree(dst.path()), vec!["long.bin", "whole.bin"]);
    let doc = d.json();
    let w = entry(&doc, "whole.bin");
    assert_eq!(u(&w["resumed_from"]), len as u64, "{doc}");
    assert_eq!(u(&w["sent"]), 0, "{doc}");
    assert_eq!(w["ok"], true, "{doc}");
    let lg = entry(&doc, "long.bin");
    assert_eq!(u(&lg["resumed_from"]), 0, "{doc}");
    assert_eq!(u(&lg["sent"]), len as u64, "{doc}");
    assert_eq!(u(&doc["bytes_sent"]), len as u64, "{doc}");
}

/// Both ends killed (SIGKILL) in the middle of a large file; a new listener on the same
/// folder and the same send-file command finish it, sending only the rest: resumed_from > 0,
/// bytes_sent = size − resumed_from, and the file is the sender's, byte for byte.
#[test]
fn killed_mid_transfer_resumes_after_restart() {
    let src = tempdir();
    let dst = tempdir();
    let len: u64 = 256 << 20;
    let file = src.path().join("disk.img");
    write_big_file(&file, 0xd15c, len);
    let part = part_of(dst.path(), "disk.img");
    let target = dst.path().join("disk.img");

    let mut l = save_listener(dst.path(), &[]);
    let mut first = Sender::spawn(&[s(&file), &l.dest(), "-q"], Stdio::null());
    // Kill both once the receiver holds a good part of the file (but not all of it).
    let deadline = Instant::now() + LONG;
    loop {
        let have = file_len(&part);
        if have >= len / 2 {
            break;
        }
        assert!(
            !target.exists() && first.proc.try_exit().is_none(),
            "the first transfer ended before it could be interrupted (at {have} of {len} \
             bytes); sender stderr:\n{}",
            first.proc.stderr.text()
        );
        assert!(
            Instant::now() < deadline,
            "the receiver got only {have} of {len} bytes within {LONG:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    l.proc.kill();
    first.proc.kill();
    let have = file_len(&part);
    assert!(
        !target.exists() && have < len,
        "killed too late: the file was complete ({have} of {len} bytes)"
    );
    eprintln!(
        "killed at {have} of {len} bytes ({:.0}%)",
        have as f64 * 100.0 / len as f64
    );

    let mut l = save_listener(dst.path(), &[]);
    let d = send(&[s(&file), &l.dest(), "--json"], LONG);
    d.code(0);
    let le = l.proc.expect_code(0, SHORT);
    let doc = d.json();
    let f = entry(&doc, "disk.img");
    let resumed = u(&f["resumed_from"]);
    assert_eq!(
        resumed, have,
        "resumed_from should be the partial file's length: {doc}"
    );
    assert_eq!(u(&f["sent"]), len - resumed, "{doc}");
    assert_eq!(u(&doc["bytes_sent"]), len - resumed, "{doc}");
    assert_eq!(u(&doc["resumed_bytes"]), resumed, "{doc}");
    assert!(
        le.stderr.contains(&format!("resumed from {resumed} bytes")),
        "listener summary:\n{}",
        le.stderr
    );
    assert_eq!(f["blake3"].as_str().unwrap(), blake3_file(&file));
    assert_same_file(&target, &file);
    assert!(!part.exists());
}

/// Many small files are synced and renamed in batches. The receiver killed in the middle of
/// them leaves no file under its final name that is not complete (the sender's bytes); files
/// verified but not yet renamed stay complete under their partial names. The run after it
/// sends only what did not arrive: files under their final names are proved and skipped, and
/// partial files resume from what they hold (a complete one from its end: no bytes at all).
#[test]
fn receiver_killed_mid_batch_leaves_only_complete_files_and_the_rerun_sends_the_rest() {
    let src = tempdir();
    let dst = tempdir();
    let n = 3000usize;
    let tree_dir = src.path().join("many");
    fs::create_dir(&tree_dir).unwrap();
    let content = |i: usize| seeded_bytes(i as u64 + 7, 4096);
    for i in 0..n {
        fs::write(tree_dir.join(format!("f{i:05}")), content(i)).unwrap();
    }
    let got = dst.path().join("many");
    // Files under their final names (not the hidden partial ones).
    let finals = || -> Vec<String> {
        fs::read_dir(&got)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| !name.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut l = save_listener(dst.path(), &[]);
    let mut first = Sender::spawn(&[s(&tree_dir), &l.dest(), "-q"], Stdio::null());
    let deadline = Instant::now() + LONG;
    while finals().len() < n / 10 {
        assert!(
            first.proc.try_exit().is_none(),
            "the first transfer ended before it could be interrupted; stderr:\n{}",
            first.proc.stderr.text()
        );
        assert!(
            Instant::now() < deadline,
            "no files arrived within {LONG:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    l.proc.kill();
    first.proc.kill();
    let done = finals();
    assert!(done.len() < n, "killed too late: every file had arrived");
    for name in &done {
        let i: usize = name[1..].parse().unwrap();
        assert_eq!(
            fs::read(got.join(name)).unwrap(),
            content(i),
            "{name} is under its final name but not complete"
        );
    }
    let parts = fs::read_dir(&got).unwrap().count() - done.len();
    eprintln!(
        "killed with {} of {n} files under their final names, {parts} partial",
        done.len()
    );

    let mut l = save_listener(dst.path(), &[]);
    let d = send(&[s(&tree_dir), &l.dest(), "--json"], LONG);
    d.code(0);
    l.proc.expect_code(0, SHORT);
    let doc = d.json();
    for name in &done {
        let f = entry(&doc, &format!("many/{name}"));
        assert_eq!(
            f["skipped"], true,
            "{name} was there and should be skipped: {f}"
        );
        assert_eq!(u(&f["sent"]), 0, "{f}");
    }
    let left = (n - done.len()) as u64 * 4096;
    assert!(
        u(&doc["bytes_sent"]) <= left,
        "the rerun sent {} bytes, more than the {left} bytes of the files that had not arrived",
        u(&doc["bytes_sent"])
    );
    let mut names = fs::read_dir(&got)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    names.sort();
    assert_eq!(names.len(), n, "partial files left over or files missing");
    for (i, name) in names.iter().enumerate() {
        assert_eq!(name, &format!("f{i:05}"));
        assert_eq!(fs::read(got.join(name)).unwrap(), content(i), "{name}");
    }
}

// ---------------------------------------------------------------------------------------------
// A full disk (needs root, for a small tmpfs)

/// A tmpfs mounted for one test, unmounted (lazily) when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. "4m"); None (with a message) when that is not possible.
    fn mount(size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("SKIPPED: not root, cannot mount a small tmpfs for the full-disk test");
            return None;
        }
        let dir = tempdir();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status();
        match st {
            Ok(st) if st.success() => Some(Tmpfs { dir }),
            other => {
                eprintln!("SKIPPED: cannot mount a tmpfs ({other:?}) for the full-disk test");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A 10 MB file to a 4 MB file system: refused up front by the free-space check, with a
/// message saying so; nothing is written.
#[test]
fn full_disk_offer_is_refused_up_front() {
    let Some(fs4) = Tmpfs::mount("4m") else {
        return;
    };
    let src = tempdir();
    let (file, _) = write_random_file(src.path(), "ten.bin", 1, 10_000_000);
    let mut l = save_listener(fs4.path(), &["-k"]);
    let d = send(&[s(&file), &l.dest(), "--json"], SHORT);
    d.code(1);
    let err = d.exit.stderr.to_lowercase();
    assert!(
        err.contains("free") && err.contains("10000000"),
        "stderr should say the receiver lacks the space:\n{}",
        d.exit.stderr
    );
    assert_eq!(d.json()["ok"], false);
    assert!(tree(fs4.path()).is_empty(), "{:?}", tree(fs4.path()));
    l.proc.assert_running("-k");
}

/// Stdin has no size up front, so no free-space check: 10 MB into a 4 MB file system fills
/// it mid-transfer. The receiver stops with a disk-full message, the sender exits 1 with the
/// receiver's reason, and no (final) file appears.
#[test]
fn disk_full_mid_transfer_is_reported_to_both_ends() {
    let Some(fs4) = Tmpfs::mount("4m") else {
        return;
    };
    let src = tempdir();
    let (input, _) = write_random_file(src.path(), "in", 2, 10_000_000);
    let mut l = save_listener(fs4.path(), &["-k"]);
    let d = Sender::spawn(
        &["-", &l.dest(), "--name", "big.bin", "--json"],
        stdin_from(&input),
    )
    .finish(SHORT);
    d.code(1);
    let err = d.exit.stderr.to_lowercase();
    assert!(
        err.contains("disk is full") || err.contains("no space"),
        "the sender should pass on the receiver's reason (disk full):\n{}",
        d.exit.stderr
    );
    let doc = d.json();
    assert_eq!(doc["ok"], false, "{doc}");
    assert!(
        l.proc.stderr.wait_contains(SHORT, "disk is full"),
        "the listener should say its disk is full:\n{}",
        l.proc.stderr.text()
    );
    assert!(
        !fs4.path().join("big.bin").exists(),
        "no final file for a failed transfer"
    );
    l.proc.assert_running("-k");
}

/// Two files that each fit but not together, sent at once by two senders: both offers may
/// pass the free-space check, so the disk can fill in the middle of a file. Whoever fails
/// exits 1 saying why (no room up front, or the disk filled), gets no final file, and once
/// space is freed the same command finishes it, resuming what was kept.
#[test]
fn disk_filled_by_concurrent_senders_then_resumed() {
    let Some(fs6) = Tmpfs::mount("6m") else {
        return;
    };
    let src = tempdir();
    let len = 4_000_000u64;
    let files: Vec<_> = (0..2)
        .map(|i| write_random_file(src.path(), &format!("f{i}.bin"), 40 + i, len as usize).0)
        .collect();
    let mut l = save_listener(fs6.path(), &["-k"]);
    let senders: Vec<_> = files
        .iter()
        .map(|f| Sender::spawn(&[s(f), &l.dest(), "--json"], Stdio::null()))
        .collect();
    let done: Vec<_> = senders.into_iter().map(|s| s.finish(SHORT)).collect();
    let mut failed = Vec::new();
    for (f, d) in files.iter().zip(&done) {
        let name = f.file_name().unwrap().to_str().unwrap();
        let got = fs6.path().join(name);
        match d.exit.code {
            Some(0) => assert_same_file(&got, f),
            Some(1) => {
                let err = d.exit.stderr.to_lowercase();
                assert!(
                    err.contains("free") || err.contains("disk is full"),
                    "{name}: the failure should be about space:\n{}",
                    d.exit.stderr
                );
                assert_eq!(d.json()["ok"], false);
                assert!(!got.exists(), "{name}: a failed file got its final name");
                failed.push((f.clone(), name.to_owned()));
            }
            other => panic!("{name}: exit {other:?}; stderr:\n{}", d.exit.stderr),
        }
    }
    assert!(
        !failed.is_empty(),
        "8 MB cannot fit in 6 MB, yet both sends succeeded"
    );
    l.proc.assert_running("-k survives a full disk");

    // Free the space (everything but the first failed file's partial bytes), then resend it.
    let (f, name) = failed.swap_remove(0);
    let keep = part_of(fs6.path(), &name);
    for e in fs::read_dir(fs6.path()).unwrap() {
        let p = e.unwrap().path();
        if p != keep {
            fs::remove_file(p).unwrap();
        }
    }
    {
        let kept = file_len(&keep);
        let d = send(&[s(&f), &l.dest(), "--json"], SHORT);
        d.code(0);
        let doc = d.json();
        assert_eq!(
            u(&entry(&doc, &name)["resumed_from"]),
            kept,
            "resumes from the bytes kept: {doc}"
        );
        assert_eq!(u(&doc["bytes_sent"]), len - kept, "{doc}");
        assert_same_file(&fs6.path().join(&name), &f);
    }
}

// ---------------------------------------------------------------------------------------------
// Hostile senders (speaking the protocol by hand, in-process)

mod hostile {
    use super::*;
    use clap::Parser;
    use msock::cli::{Cli, Command as Sub};
    use msock::proto::Service;
    use msock::runtime::channel_io::channel_app;
    use msock::transfer::wire::{self, tag, Entry, Kind, Offer, Status};

    /// Opens a file-transfer session to `dest`, sends `offer` and returns the receiver's
    /// STATUS (or why there was none). Then, if `then` is given, sends those raw bytes before
    /// closing. Everything is bounded by a deadline.
    pub fn offer(dest: &str, offer: &Offer, then: Option<Vec<u8>>) -> Result<Status, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // The listeners the tests start share one key (in the tests' config directory): name
        // it, so that this in-process client neither reads nor pins anything in the user's
        // own known_peers.
        static KEY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let key = KEY.get_or_init(|| {
            let out = msock(&["listen", "--show-key"]).output().unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        });
        rt.block_on(async {
            let args = [
                "msock",
                "send-file",
                "x",
                dest,
                "--wait",
                "5s",
                "--peer-key",
                key,
            ];
            let cli = Cli::try_parse_from(args).unwrap();
            let Sub::SendFile(a) = cli.command else {
                unreachable!()
            };
            let (source, sink, mut w, mut r) = channel_app(16);
            let driver = msock::cmd::dial::dial(
                dest,
                &a.dial,
                &a.stream,
                Service::File,
                Some(source),
                Some(sink),
            )
            .await
            .map_err(|f| f.message)?;
            let talk = async {
                w.send(wire::control(tag::OFFER, offer))
                    .await
                    .map_err(|e| e.to_string())?;
                let st: Result<Status, String> = wire::expect(&mut r, tag::STATUS)
                    .await
                    .map_err(|e| e.to_string());
                if let (Ok(_), Some(raw)) = (&st, then) {
                    let _ = w.send(raw.into()).await;
                }
                w.close();
                while r.recv().await.is_some() {}
                st
            };
            let both = async { tokio::join!(talk, driver.run()).0 };
            tokio::time::timeout(SHORT, both)
                .await
                .map_err(|_| format!("no end within {SHORT:?}"))?
        })
    }

    pub fn file(path: &str, size: u64) -> Entry {
        Entry {
            path: path.into(),
            kind: Kind::File,
            size,
            exec: false,
            token: None,
        }
    }
}

/// Offers with hostile names (absolute, `..`, backslashes, control characters, device names,
/// our partial-file suffix, a path through a symlink on the receiver) are each refused in the
/// STATUS, and nothing is created inside or outside the save directory; a sibling file next
/// to it stays untouched. A well-formed offer on the same listener is accepted afterwards.
#[test]
fn hostile_names_are_refused_and_nothing_is_written() {
    use msock::transfer::wire::{Entry, Kind, Offer};
    let base = tempdir();
    let dir = base.path().join("save");
    let outside = base.path().join("outside");
    fs::create_dir_all(&dir).unwrap();
    fs::create_dir_all(&outside).unwrap();
    let sibling = base.path().join("sibling.txt");
    fs::write(&sibling, b"keep me").unwrap();
    // A symlink inside the save dir that points out of it.
    symlink(&outside, dir.join("escape")).unwrap();
    symlink(&sibling, dir.join("sib-link")).unwrap();
    let before = tree(base.path());

    let mut l = save_listener(&dir, &["-k"]);
    let abs = format!("{}/abs.txt", outside.display());
    let hostile: Vec<Vec<Entry>> = vec![
        vec![hostile::file(&abs, 10)],
        vec![hostile::file("../sibling.txt", 10)],
        vec![hostile::file("a/../../sibling.txt", 10)],
        vec![hostile::file("..", 10)],
        vec![hostile::file("./x", 10)],
        vec![hostile::file("a//b", 10)],
        vec![hostile::file("..\\sibling.txt", 10)],
        vec![hostile::file("line\nbreak", 10)],
        vec![hostile::file("tab\there", 10)],
        vec![hostile::file("NUL", 10)],
        vec![hostile::file("sub/com1.txt", 10)],
        vec![hostile::file(".x.msock-part", 10)],
        vec![hostile::file(&"n".repeat(256), 10)],
        vec![hostile::file("", 10)],
        // Through (or onto) a symlink the receiver has.
        vec![hostile::file("escape/evil.txt", 10)],
        vec![hostile::file("sib-link", 10)],
        vec![Entry {
            path: "escape".into(),
            kind: Kind::Dir,
            size: 0,
            exec: false,
            token: None,
        }],
        // One bad entry spoils a whole offer, even after good ones.
        vec![
            Entry {
                path: "fine".into(),
                kind: Kind::Dir,
                size: 0,
                exec: false,
                token: None,
            },
            hostile::file("fine/ok.txt", 10),
            hostile::file("fine/../../sibling.txt", 10),
        ],
        // The same name twice.
        vec![hostile::file("dup", 1), hostile::file("dup", 1)],
    ];
    for entries in hostile {
        let names: Vec<_> = entries.iter().map(|e| e.path.clone()).collect();
        let st = hostile::offer(
            &l.dest(),
            &Offer {
                entries,
                more: false,
            },
            None,
        )
        .unwrap_or_else(|e| panic!("offer {names:?}: no STATUS: {e}"));
        let why = st
            .refused
            .unwrap_or_else(|| panic!("offer {names:?} was accepted: {:?}", st.held));
        assert!(!why.is_empty(), "offer {names:?}: refused without a reason");
        assert!(
            st.held.is_empty(),
            "offer {names:?}: held given with a refusal"
        );
        l.proc.assert_running("-k survives hostile offers");
    }
    assert_eq!(
        tree(base.path()),
        before,
        "hostile offers created or removed something"
    );
    assert_eq!(read(&sibling), b"keep me");
    assert!(fs::read_dir(&outside).unwrap().next().is_none());

    // The listener still serves an honest offer.
    let st = hostile::offer(
        &l.dest(),
        &Offer {
            entries: vec![hostile::file("ok.txt", 0)],
            more: false,
        },
        None,
    )
    .unwrap();
    assert!(st.refused.is_none(), "an ordinary name was refused: {st:?}");
}

/// A sender that lies about a file's size (more DATA than offered) is stopped: the receiver
/// ends the transfer, no final file appears, and it writes no byte beyond the offered size.
#[test]
fn more_bytes_than_offered_are_refused() {
    use msock::transfer::wire::{self, tag, Offer, Start};
    let dir = tempdir();
    let mut l = save_listener(dir.path(), &["-k"]);
    let mut raw = wire::control(
        tag::START,
        &Start {
            index: 0,
            offset: 0,
        },
    )
    .to_vec();
    raw.extend_from_slice(&wire::data_header(100));
    raw.extend_from_slice(&[0xAA; 100]);
    let st = hostile::offer(
        &l.dest(),
        &Offer {
            entries: vec![hostile::file("small.txt", 10)],
            more: false,
        },
        Some(raw),
    )
    .unwrap();
    assert!(st.refused.is_none(), "{st:?}");
    assert!(
        l.proc.stderr.wait_contains(SHORT, "more bytes than"),
        "the listener should report the protocol violation:\n{}",
        l.proc.stderr.text()
    );
    assert!(!dir.path().join("small.txt").exists());
    // The partial file (named after a token the receiver drew: this client sent none).
    for e in fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        assert!(
            file_len(&p) <= 10,
            "wrote {} bytes into {}",
            file_len(&p),
            p.display()
        );
    }
    l.proc.assert_running("-k");
}

/// Sizes chosen so that their sum overflows 64 bits must not slip past --max-size or the
/// free-space check: the offer is refused in its STATUS (not accepted, not a crash), and
/// nothing is written.
#[test]
fn offer_sizes_that_overflow_are_refused() {
    let dir = tempdir();
    let mut l = save_listener(dir.path(), &["-k", "--max-size", "1M"]);
    for sizes in [[u64::MAX, 2], [u64::MAX / 2 + 1, u64::MAX / 2 + 1]] {
        let entries = vec![hostile::file("a", sizes[0]), hostile::file("b", sizes[1])];
        let st = hostile::offer(
            &l.dest(),
            &msock::transfer::wire::Offer {
                entries,
                more: false,
            },
            None,
        )
        .unwrap_or_else(|e| {
            panic!(
                "sizes {sizes:?}: no STATUS (the receiver failed): {e}; listener stderr:\n{}",
                l.proc.stderr.text()
            )
        });
        assert!(
            st.refused.is_some(),
            "sizes {sizes:?} (sum wraps to {}) were accepted despite --max-size 1M",
            sizes[0].wrapping_add(sizes[1])
        );
        l.proc.assert_running("-k");
    }
    assert!(tree(dir.path()).is_empty(), "{:?}", tree(dir.path()));
}
