//! Which names a receiver accepts: relative paths that stay inside its directory, made of
//! ordinary components. Pure checks on strings; the receiver also refuses to go through
//! symlinks it finds on disk.

use crate::proto::text::{escape, is_deceptive_format};

/// Longest path accepted, in bytes.
pub(crate) const MAX_PATH: usize = 4096;
/// Longest path component accepted, in bytes: the file system's 255, less what the partial
/// file's name adds (`.`, `.` and the owner tag, and [`PART_SUFFIX`]).
pub(crate) const MAX_COMPONENT: usize = 255 - 2 - OWNER_TAG_LEN - PART_SUFFIX.len();
/// Most components in a path (folders included): deeper trees are refused up front, before
/// any folder is created.
pub(crate) const MAX_DEPTH: usize = 128;
/// Hex digits of the owner tag in a partial file's name.
pub(crate) const OWNER_TAG_LEN: usize = 16;

/// Names Windows reserves for devices (refused everywhere, so that a tree received on Linux
/// can be copied on).
const DEVICE_NAMES: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Splits an offered path into its components, or says why it is refused: absolute paths,
/// `..`, `.`, empty components, backslashes, control characters, characters that reorder or
/// hide text (bidirectional overrides, zero-width marks), device names, over-long or too deep
/// names, and our own partial-file names. The refusal quotes the name escaped.
pub fn check(path: &str) -> Result<Vec<&str>, String> {
    let bad = |why: &str| Err(format!("refused name \"{}\": {why}", escape(path)));
    if path.is_empty() {
        return bad("empty");
    }
    if path.len() > MAX_PATH {
        return bad("too long");
    }
    if path.starts_with('/') {
        return bad("absolute path");
    }
    if path.contains('\\') {
        return bad("backslash (a Windows path separator)");
    }
    if path.chars().any(char::is_control) {
        return bad("control character");
    }
    if path.chars().any(is_deceptive_format) {
        return bad("bidirectional override or invisible character");
    }
    if path.split('/').count() > MAX_DEPTH {
        return bad("more than 128 levels of folders");
    }
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" => return bad("empty component"),
            "." | ".." => return bad("'.' or '..' component"),
            _ => {}
        }
        if c.len() > MAX_COMPONENT {
            return bad("component longer than 226 bytes");
        }
        let stem = c.split('.').next().unwrap_or(c).trim_end();
        if DEVICE_NAMES.iter().any(|d| d.eq_ignore_ascii_case(stem)) {
            return bad("device name");
        }
        if c.ends_with(PART_SUFFIX) {
            return bad("reserved for partial files");
        }
        out.push(c);
    }
    Ok(out)
}

/// Suffix of partial files.
pub(crate) const PART_SUFFIX: &str = ".msock-part";

/// The partial file's name for a final name and its owner's tag (see [`owner_tag`]): hidden,
/// next to it, `.NAME.TAG.msock-part`.
pub(crate) fn part_name(final_name: &str, tag: &str) -> String {
    format!(".{final_name}.{tag}{PART_SUFFIX}")
}

/// The owner tag of a transfer token (32 bytes): the first [`OWNER_TAG_LEN`] hex digits of
/// its BLAKE3. The receiver keeps only this (in the partial file's name), never the token.
pub(crate) fn owner_tag(token: &[u8; 32]) -> String {
    blake3::hash(token).to_hex()[..OWNER_TAG_LEN].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ordinary_names_pass() {
        assert_eq!(check("a.txt").unwrap(), vec!["a.txt"]);
        assert_eq!(check("dir/sub/f").unwrap(), vec!["dir", "sub", "f"]);
        assert_eq!(check(".hidden").unwrap(), vec![".hidden"]);
        assert_eq!(check("..foo").unwrap(), vec!["..foo"]);
        assert_eq!(check("été 2026.jpg").unwrap(), vec!["été 2026.jpg"]);
    }

    #[test]
    fn hostile_names_are_refused() {
        for p in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "..",
            ".",
            "a\\..\\b",
            "x\ny",
            "nul",
            "dir/COM1.txt",
            "Aux",
            ".f.msock-part",
            "invoice\u{202E}fdp.exe",
            "zero\u{200B}width",
            "dir/\u{2067}isolate",
        ] {
            assert!(check(p).is_err(), "{p:?} passed");
        }
        assert!(check(&"a".repeat(227)).is_err());
        assert!(check(&"a".repeat(226)).is_ok());
        assert!(check(&"a/".repeat(3000)).is_err());
        assert!(check(&vec!["d"; 129].join("/")).is_err());
        assert!(check(&vec!["d"; 128].join("/")).is_ok());
        let why = check("x\u{202E}y").unwrap_err();
        assert!(!why.chars().any(is_deceptive_format), "{why:?}");
    }

    proptest! {
        /// Whatever passes stays inside the directory: no component can climb out or be
        /// absolute, whatever the input.
        #[test]
        fn nothing_that_passes_escapes(p in "[a-z./\\\\]{0,12}") {
            if let Ok(parts) = check(&p) {
                for c in parts {
                    prop_assert!(!c.is_empty() && c != "." && c != "..");
                    prop_assert!(!c.contains('/') && !c.contains('\\'));
                }
                prop_assert!(!p.starts_with('/'));
            }
        }
    }
}
