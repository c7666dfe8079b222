//! Which names a receiver accepts: relative paths that stay inside its directory, made of
//! ordinary components. Pure checks on strings; the receiver also refuses to go through
//! symlinks it finds on disk.

/// Longest path accepted, in bytes.
pub(crate) const MAX_PATH: usize = 4096;
/// Longest path component accepted, in bytes: the file system's 255, less what the partial
/// file's name adds (`.` and [`PART_SUFFIX`]).
pub(crate) const MAX_COMPONENT: usize = 255 - 1 - PART_SUFFIX.len();

/// Names Windows reserves for devices (refused everywhere, so that a tree received on Linux
/// can be copied on).
const DEVICE_NAMES: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// Splits an offered path into its components, or says why it is refused: absolute paths,
/// `..`, `.`, empty components, backslashes, control characters, device names, over-long
/// names, and our own partial-file names.
pub fn check(path: &str) -> Result<Vec<&str>, String> {
    let bad = |why: &str| Err(format!("refused name {path:?}: {why}"));
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
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" => return bad("empty component"),
            "." | ".." => return bad("'.' or '..' component"),
            _ => {}
        }
        if c.len() > MAX_COMPONENT {
            return bad("component longer than 243 bytes");
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

/// The partial file's name for a final name: hidden, next to it.
pub(crate) fn part_name(final_name: &str) -> String {
    format!(".{final_name}{PART_SUFFIX}")
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
        ] {
            assert!(check(p).is_err(), "{p:?} passed");
        }
        assert!(check(&"a".repeat(244)).is_err());
        assert!(check(&"a".repeat(243)).is_ok());
        assert!(check(&"a/".repeat(3000)).is_err());
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
