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

fn scan(dir: &Path, hits: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read src/proto") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            scan(&path, hits);
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
    }
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
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/proto/session/mod.rs");
    let text = std::fs::read_to_string(core).expect("session source exists");
    assert!(text.contains("pub fn poll_transmit"));
}
