//! The committed man pages and completions must match the CLI definition.

use std::path::Path;

#[test]
fn generated_docs_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stale = Vec::new();
    for (rel, contents) in msock::docs::render().expect("render docs") {
        match std::fs::read(root.join(&rel)) {
            Ok(committed) if committed == contents => {}
            Ok(_) => stale.push(format!("{} differs", rel.display())),
            Err(e) => stale.push(format!("{} unreadable: {e}", rel.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "generated files are stale; run `cargo run --example gen_docs` and commit:\n{}",
        stale.join("\n")
    );
}
