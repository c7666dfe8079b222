//! `src/proto` is the sans-IO core: no async runtime, no sockets, no clock reads, no sleeping.
//! Time is passed in, bytes go in and out as values.
//!
//! And the layers above it depend only downward:
//! `proto` <- `runtime` <- {`transfer`, `bench`, `relay`} <- {`cmd`, `cli`, `docs`} <- main.
//! A module that names (`crate::x`) a module of a layer above fails the test, and so does a
//! service naming another service (only the top layer's modules share with each other).

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

/// Each top-level module of the crate and its layer (higher depends on lower only).
const LAYERS: &[(&str, u8)] = &[
    ("proto", 0),
    ("runtime", 1),
    ("transfer", 2),
    ("bench", 2),
    ("relay", 2),
    ("cmd", 3),
    ("cli", 3),
    ("docs", 3),
];

/// The layer whose modules (the command line) may use each other.
const TOP: u8 = 3;

fn layer_of(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// Every `crate::MODULE` a code line (not a comment) of `text` names.
fn named_modules(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            out.push((n + 1, name));
        }
    }
    out
}

/// The upward (or sideways) imports of the files below `src/<module>` (or `src/<module>.rs`).
fn upward_imports(root: &Path, module: &str, layer: u8, found: &mut Vec<(String, String)>) {
    let dir = root.join(module);
    let mut files = vec![root.join(format!("{module}.rs"))];
    let mut dirs = vec![dir];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                files.push(p);
            }
        }
    }
    for f in files.into_iter().filter(|f| f.is_file()) {
        let text = std::fs::read_to_string(&f).expect("read source");
        let rel = f
            .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")))
            .unwrap_or(&f)
            .display()
            .to_string();
        for (line, named) in named_modules(&text) {
            let Some(l) = layer_of(&named) else { continue };
            let sideways = l == layer && layer < TOP;
            if named != module && (l > layer || sideways) {
                found.push((format!("{rel}: {named}"), format!("{rel}:{line}")));
            }
        }
    }
}

#[test]
fn layers_depend_only_downward() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for (module, layer) in LAYERS {
        upward_imports(&root, module, *layer, &mut found);
    }
    let at: Vec<&str> = found.iter().map(|(_, at)| at.as_str()).collect();
    assert!(
        at.is_empty(),
        "imports from a higher layer or another service (see the module doc):\n{}",
        at.join("\n")
    );
}

#[test]
fn the_layering_scan_sees_imports() {
    // Guards against the test passing because it parsed nothing.
    let mut found = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    upward_imports(&root, "runtime", 0, &mut found);
    assert!(found.iter().any(|(key, _)| key.ends_with(": proto")));
    assert_eq!(
        named_modules("use crate::cmd::x; // crate::relay\n// crate::bench"),
        vec![(1, "cmd".to_owned()), (1, "relay".to_owned())]
    );
}
