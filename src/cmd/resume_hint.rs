//! The command line that resumes an interrupted `msock send-file`: this process's own
//! arguments, each quoted so that a POSIX shell reads it back unchanged and a terminal shows
//! it without acting on any of its characters.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// This process's command line, quoted for a shell.
pub(crate) fn command_line() -> String {
    let args: Vec<String> = std::env::args_os().map(|a| quote(&a)).collect();
    args.join(" ")
}

/// Characters a terminal would act on or that hide text.
fn needs_escape(c: char) -> bool {
    c.is_control() || crate::proto::text::is_deceptive_format(c)
}

/// Bytes a shell takes literally outside quotes.
fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b)
}

/// One argument for a POSIX shell: as is when plain, in single quotes when printable, else
/// in `$'...'` with escapes for control characters, invisible formatting characters and
/// bytes that are not UTF-8.
pub(crate) fn quote(arg: &OsStr) -> String {
    let b = arg.as_bytes();
    if !b.is_empty() && b.iter().all(|&c| plain(c)) {
        return String::from_utf8_lossy(b).into_owned();
    }
    let printable = std::str::from_utf8(b).is_ok_and(|s| !s.chars().any(needs_escape));
    if printable {
        let s = String::from_utf8_lossy(b);
        return format!("'{}'", s.replace('\'', r"'\''"));
    }
    let mut out = String::from("$'");
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str(r"\\"),
                '\'' => out.push_str(r"\'"),
                c if c.is_ascii_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
                c if needs_escape(c) => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        for x in chunk.invalid() {
            out.push_str(&format!("\\x{x:02x}"));
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::quote;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn arguments_are_quoted_for_a_shell_and_safe_on_a_terminal() {
        let q = |b: &[u8]| quote(OsStr::from_bytes(b));
        assert_eq!(q(b"photo.jpg"), "photo.jpg");
        assert_eq!(q(b"127.0.0.1:9000"), "127.0.0.1:9000");
        assert_eq!(q(b""), "''");
        assert_eq!(q(b"my file's.txt"), r"'my file'\''s.txt'");
        assert_eq!(q(b"$(rm -rf ~)"), "'$(rm -rf ~)'");
        assert_eq!(q(b"a\x1b[2Jb\n"), r"$'a\x1b[2Jb\x0a'");
        assert_eq!(q(b"x\xffy'\\"), r"$'x\xffy\'\\'");
        assert_eq!(q("a\u{202e}b".as_bytes()), r"$'a\u202eb'");
    }
}
