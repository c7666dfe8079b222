//! The sender's side of an offer: turning PATH arguments into entries, each with where its
//! bytes come from.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::names;
use super::wire::{Entry, Kind, Offer};

/// Where an entry's bytes come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A file on disk.
    File(PathBuf),
    /// Nothing (a folder).
    None,
    /// Standard input.
    Stdin,
}

/// The offer and, entry by entry, its sources.
#[derive(Debug)]
pub struct Manifest {
    /// What is offered.
    pub offer: Offer,
    /// `sources[i]` feeds `offer.entries[i]`.
    pub(crate) sources: Vec<Source>,
    /// Things left out (symlinks, special files), with why, for a warning.
    pub skipped: Vec<String>,
}

/// Builds the manifest for the PATH arguments; `stdin_name` names `-`. Errors are the user's
/// (missing or unreadable paths, names the receiver would refuse).
pub fn build(paths: &[PathBuf], stdin_name: &str) -> Result<Manifest, String> {
    let mut m = Manifest {
        offer: Offer {
            entries: Vec::new(),
            more: false,
        },
        sources: Vec::new(),
        skipped: Vec::new(),
    };
    let mut stdin_used = false;
    for p in paths {
        if p.as_os_str() == "-" {
            if stdin_used {
                return Err("'-' (stdin) given twice".into());
            }
            stdin_used = true;
            check_name(stdin_name, Path::new("--name"))?;
            if stdin_name.contains('/') {
                return Err(format!(
                    "--name {stdin_name:?}: give a file name without '/'"
                ));
            }
            m.push(stdin_name.to_owned(), Kind::Stream, 0, false, Source::Stdin);
            continue;
        }
        let meta = fs::metadata(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        let base = base_name(p)?;
        if meta.is_dir() {
            m.push(base.clone(), Kind::Dir, 0, false, Source::None);
            walk(p, &base, &mut m)?;
        } else if meta.is_file() {
            fs::File::open(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            m.push(
                base,
                Kind::File,
                meta.len(),
                is_exec(&meta),
                Source::File(p.clone()),
            );
        } else {
            return Err(format!(
                "{} is not a file or folder (send a device or pipe's contents with '-')",
                p.display()
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for e in &m.offer.entries {
        if !seen.insert(e.path.as_str()) {
            return Err(format!(
                "two of the paths given would arrive as {:?}; send them separately",
                e.path
            ));
        }
    }
    Ok(m)
}

impl Manifest {
    fn push(&mut self, path: String, kind: Kind, size: u64, exec: bool, src: Source) {
        self.offer.entries.push(Entry {
            path,
            kind,
            size,
            exec,
            token: None,
        });
        self.sources.push(src);
    }
}

/// Adds everything under folder `dir` (sent as `prefix`), sorted by name.
fn walk(dir: &Path, prefix: &str, m: &mut Manifest) -> Result<(), String> {
    let rd = fs::read_dir(dir).map_err(|e| format!("cannot read folder {}: {e}", dir.display()))?;
    let mut children: Vec<_> = rd
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot read folder {}: {e}", dir.display()))?;
    children.sort_by_key(|c| c.file_name());
    for c in children {
        let path = c.path();
        let name = c
            .file_name()
            .into_string()
            .map_err(|n| format!("{}: name {n:?} is not UTF-8", dir.display()))?;
        check_name(&name, &path)?;
        let rel = format!("{prefix}/{name}");
        let ft = c
            .file_type()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if ft.is_symlink() {
            m.skipped.push(format!("{} (symlink)", path.display()));
        } else if ft.is_dir() {
            m.push(rel.clone(), Kind::Dir, 0, false, Source::None);
            walk(&path, &rel, m)?;
        } else if ft.is_file() {
            let meta = c
                .metadata()
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            fs::File::open(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            m.push(
                rel,
                Kind::File,
                meta.len(),
                is_exec(&meta),
                Source::File(path),
            );
        } else {
            m.skipped
                .push(format!("{} (not a regular file)", path.display()));
        }
    }
    Ok(())
}

/// The name a PATH argument arrives under: its last component.
fn base_name(p: &Path) -> Result<String, String> {
    let canon = fs::canonicalize(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
    let name = canon
        .file_name()
        .ok_or_else(|| format!("{} has no name to send it under", p.display()))?
        .to_str()
        .ok_or_else(|| format!("{}: name is not UTF-8", p.display()))?
        .to_owned();
    check_name(&name, p)?;
    Ok(name)
}

/// Refuses, before connecting, a name the receiver would refuse.
fn check_name(name: &str, at: &Path) -> Result<(), String> {
    names::check(name)
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", at.display()))
}

fn is_exec(meta: &fs::Metadata) -> bool {
    meta.permissions().mode() & 0o111 != 0
}
