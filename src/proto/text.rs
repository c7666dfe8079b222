//! Text a peer supplied (error reasons, file names, relay messages), made safe to print.
//!
//! Anything that came from the network is shown through [`Untrusted`] or [`escape`]: control
//! characters (C0, DEL, C1: ESC, BEL, CR, backspace...) and the invisible formatting characters
//! that reorder or hide text (bidirectional overrides and isolates such as U+202E, zero-width
//! marks) are written as `\u{..}` escapes, so a peer can neither drive the terminal (clear the
//! screen, move the cursor, fake a "verified" line) nor make a name read differently from what
//! it is. Tabs and newlines are escaped too: one peer string is one line.
//!
//! [`clock`] writes durations as people read them, for the messages around such text.

use std::fmt;

/// True for characters that reorder or hide text without being control characters: the
/// bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), the
/// directional marks (U+200E, U+200F, U+061C) and the zero-width and invisible characters
/// (U+200B–U+200D, U+2060–U+2064, U+FEFF). File names containing one are refused.
pub fn is_deceptive_format(c: char) -> bool {
    matches!(c,
        '\u{202A}'..='\u{202E}'
        | '\u{2066}'..='\u{2069}'
        | '\u{200B}'..='\u{200F}'
        | '\u{061C}'
        | '\u{2060}'..='\u{2064}'
        | '\u{FEFF}')
}

/// True if `c` must not reach a terminal as is.
fn needs_escape(c: char) -> bool {
    c.is_control() || is_deceptive_format(c)
}

/// A peer-supplied string, displayed with every control and deceptive formatting character
/// escaped (see the module doc). Backslashes are doubled, so the escapes cannot be forged.
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a>(pub &'a str);

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c == '\\' {
                f.write_str("\\\\")?;
            } else if needs_escape(c) {
                write!(f, "\\u{{{:x}}}", c as u32)?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// [`Untrusted`] as an owned string, for storing a peer's text in an error value.
pub fn escape(s: &str) -> String {
    Untrusted(s).to_string()
}

/// A last guard for a message about to be printed that was assembled from parts, some
/// perhaps from a peer: every control and deceptive formatting character is escaped as in
/// [`Untrusted`], but backslashes are kept, so parts already escaped are not escaped twice.
/// (Peer text itself goes through [`Untrusted`] where it enters a message; this only makes
/// sure nothing that slipped through can drive the terminal.)
pub fn defang(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Like [`escape`], for bytes that may not be UTF-8 (invalid sequences become U+FFFD).
pub fn escape_bytes(b: &[u8]) -> String {
    escape(&String::from_utf8_lossy(b))
}

/// A whole number of seconds as a person reads a clock: `42s`, `3m05s`, `1h02m`.
pub fn clock(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_are_escaped() {
        let fake = "\x1b[2J\x1b[Hsent 1 file, verified\x07\r\n";
        let shown = escape(fake);
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert_eq!(
            shown,
            "\\u{1b}[2J\\u{1b}[Hsent 1 file, verified\\u{7}\\u{d}\\u{a}"
        );
    }

    #[test]
    fn bidi_and_c1_are_escaped_and_plain_text_is_kept() {
        assert_eq!(escape("invoice\u{202E}fdp.exe"), "invoice\\u{202e}fdp.exe");
        assert_eq!(escape("a\u{9b}b"), "a\\u{9b}b");
        assert_eq!(escape("héllo wörld 日本"), "héllo wörld 日本");
        assert!(is_deceptive_format('\u{2067}'));
        assert!(!is_deceptive_format('é'));
    }

    #[test]
    fn defang_escapes_controls_once() {
        assert_eq!(defang("plain \\ text"), "plain \\ text");
        assert_eq!(
            defang("a\x1b[2Jb\x07\u{202e}"),
            "a\\u{1b}[2Jb\\u{7}\\u{202e}"
        );
        // A message holding an already escaped part and a raw control: the part is kept.
        let msg = format!("peer said ({}) then \x1b", Untrusted("x\x1by"));
        assert_eq!(defang(&msg), "peer said (x\\u{1b}y) then \\u{1b}");
    }

    #[test]
    fn escapes_cannot_be_forged() {
        assert_eq!(escape("\\u{1b}"), "\\\\u{1b}");
        assert_eq!(escape_bytes(b"ok\xff\x1b"), "ok\u{FFFD}\\u{1b}");
    }
}
