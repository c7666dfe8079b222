//! `src/proto` is the sans-IO core: no async runtime, no sockets, no clock reads, no sleeping.
//! Time is passed in, bytes go in and out as values.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "tokio",
    "Instant::now",
    "SystemTime",
    "std::net::Tcp",
    "std::net::Udp",
    "thread::sleep",
    "std::fs",
    "thread_rng",
    "from_entropy",
];

/// Scans every `.rs` file below `dir`; returns the texts it read (for the sanity check).
fn scan(dir: &Path, hits: &mut Vec<String>) -> Vec<String> {
    let mut texts = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read src/proto") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            texts.extend(scan(&path, hits));
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            for word in FORBIDDEN {
                if code.contains(word) {
                    hits.push(format!("{}:{}: {word}: {line}", path.display(), n + 1));
                }
            }
        }
        texts.push(text);
    }
    texts
}

fn proto_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/proto")
}

#[test]
fn proto_core_does_no_io_and_reads_no_clock() {
    let mut hits = Vec::new();
    scan(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/proto"),
        &mut hits,
    );
    assert!(
        hits.is_empty(),
        "src/proto must stay sans-IO:\n{}",
        hits.join("\n")
    );
}

#[test]
fn the_scan_sees_the_core() {
    // Guards against the test passing because it looked in the wrong place.
    let texts = scan(&proto_dir(), &mut Vec::new());
    assert!(
        texts.len() >= 10,
        "only {} files under src/proto",
        texts.len()
    );
    assert!(texts.iter().any(|t| t.contains("pub fn poll_transmit")));
}
