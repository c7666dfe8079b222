//! `src/proto` is the sans-IO core: no async runtime, no sockets, no clock reads, no sleeping.
//! Time is passed in, bytes go in and out as values.
//!
//! And the layers above it depend only downward:
//! `proto` <- `runtime` <- {`transfer`, `bench`, `relay`, `forward`, `program`} <- `pairing` <- {`cmd`, `cli`, `docs`} <- main.
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

/// The layers of the crate, lowest first: a module may use modules of lower layers only
/// (`proto` <- `runtime` <- {`transfer`, `bench`, `relay`, `program`} <- `cmd` <- `main`). Modules on one
/// layer do not use each other. `cli` (the clap definition: arguments only) is what `cmd`
/// turns into configurations, and `docs` renders it.
const LAYERS: &[&[&str]] = &[
    &["proto"],
    &["runtime"],
    &["transfer", "bench", "relay", "forward", "program"],
    &["pairing"],
    &["cli"],
    &["cmd", "docs"],
];

/// The layer of top-level module `m`, if it is one of [`LAYERS`].
fn layer_of(m: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&m))
}

/// The top-level modules that `text` names through `crate::` paths (`crate::a::b`,
/// `crate::{a, b::c}`), outside comments, with their line numbers.
fn crate_refs(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (n, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let code = code.split(" //").next().unwrap_or(code);
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                // A group may span lines: read up to the matching brace.
                let mut text = group.to_owned();
                let mut k = n + 1;
                while text.matches('}').count() <= text.matches('{').count() && k < lines.len() {
                    text.push_str(lines[k]);
                    k += 1;
                }
                let mut depth = 0;
                let mut item = String::new();
                for c in text.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            out.push((n + 1, first_ident(&item)));
                            item.clear();
                            continue;
                        }
                        _ => {}
                    }
                    item.push(c);
                }
                if !item.trim().is_empty() {
                    out.push((n + 1, first_ident(&item)));
                }
            } else {
                out.push((n + 1, first_ident(after)));
            }
            rest = after;
        }
    }
    out.retain(|(_, m)| !m.is_empty());
    out
}

fn first_ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Every upward or sideways `crate::` reference in the files below `src`, as messages.
fn layering_violations(src: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).expect("below src");
            let top = rel.components().next().expect("a component");
            let top = top.as_os_str().to_string_lossy();
            let module = top.trim_end_matches(".rs");
            if module == "main" || module == "lib" {
                continue;
            }
            let Some(own) = layer_of(module) else {
                bad.push(format!(
                    "{}: module `{module}` is in no layer; add it to LAYERS in {}",
                    rel.display(),
                    file!()
                ));
                continue;
            };
            let text = std::fs::read_to_string(&path).expect("read source");
            bad.extend(check_file(&rel.display().to_string(), module, own, &text));
        }
    }
    bad.sort();
    bad
}

/// The references of one file (of `module`, on layer `own`) that break the layering.
fn check_file(name: &str, module: &str, own: usize, text: &str) -> Vec<String> {
    let mut bad = Vec::new();
    for (line, used) in crate_refs(text) {
        if used == module {
            continue;
        }
        match layer_of(&used) {
            Some(l) if l < own => {}
            Some(_) => bad.push(format!(
                "{name}:{line}: `{module}` (layer {own}) uses `crate::{used}` (layer {}): dependencies point down only",
                layer_of(&used).unwrap_or(0)
            )),
            None => bad.push(format!("{name}:{line}: `crate::{used}` is in no layer")),
        }
    }
    bad
}

#[test]
fn layers_depend_only_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = layering_violations(&src);
    assert!(bad.is_empty(), "layering violations:\n{}", bad.join("\n"));
}

#[test]
fn the_layering_check_sees_upward_and_grouped_imports() {
    // Guards against a checker that cannot fail.
    let runtime = layer_of("runtime").unwrap();
    let upward = "use crate::relay::client;\nfn f() { crate::cmd::peak_rss(); }\n";
    assert_eq!(check_file("x.rs", "runtime", runtime, upward).len(), 2);
    let grouped = "use crate::{\n    proto::Frame,\n    transfer::wire,\n};\n";
    let bad = check_file("x.rs", "runtime", runtime, grouped);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].contains("crate::transfer"));
    let sideways = "use crate::transfer::wire;\n";
    assert_eq!(check_file("x.rs", "relay", 2, sideways).len(), 1);
    let fine = "use crate::proto::Frame; // crate::cmd in a comment\n/// [`crate::cmd`]\n";
    assert!(check_file("x.rs", "runtime", runtime, fine).is_empty());
}
