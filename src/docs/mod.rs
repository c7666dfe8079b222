//! Generates the shell completions (`completions/`) and man pages (`man/`) from the one clap
//! definition in [`crate::cli`]. Run `cargo run --example gen_docs` after changing the CLI; a
//! test fails while the committed files are stale.

use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;

mod completions;
mod extra;
mod man;
mod roff;

pub use extra::{examples, Example, File, ENVIRONMENT, FILES};

/// The subcommands that get a page of their own (every visible one but `help`).
pub fn subcommands() -> Vec<String> {
    let mut cmd = Cli::command();
    cmd.build();
    cmd.get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
        .map(|s| s.get_name().to_owned())
        .collect()
}

/// Every generated file: its path relative to the project root, and its contents.
pub fn render() -> io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    let mut cmd = Cli::command();
    cmd.build();
    for shell in [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Elvish,
        Shell::PowerShell,
    ] {
        let buf = completions::script(shell, &cmd)?;
        let name = match shell {
            Shell::Bash => "msock.bash".to_owned(),
            Shell::Zsh => "_msock".to_owned(),
            Shell::Fish => "msock.fish".to_owned(),
            Shell::Elvish => "msock.elv".to_owned(),
            _ => "_msock.ps1".to_owned(),
        };
        files.push((Path::new("completions").join(name), buf));
    }
    let subs = subcommands();
    files.push((PathBuf::from("man/msock.1"), man::page(&cmd, "", &subs)?));
    for sub in &subs {
        let name = man::page_name(sub);
        files.push((
            Path::new("man").join(format!("{name}.1")),
            man::page(&cmd, sub, &subs)?,
        ));
    }
    Ok(files)
}

/// Writes every generated file under `root`; returns the paths written.
pub fn write_all(root: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (rel, contents) in render()? {
        let path = root.join(&rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, contents)?;
        written.push(rel);
    }
    Ok(written)
}
