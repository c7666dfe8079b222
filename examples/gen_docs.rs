//! Regenerates `completions/` and `man/` from the CLI definition:
//! `cargo run --example gen_docs`.

fn main() -> std::io::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for path in msock::docs::write_all(root)? {
        println!("wrote {}", path.display());
    }
    Ok(())
}
