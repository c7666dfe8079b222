//! Plain help text to roff: escaping, and the hand-wrapped notes of the long help (headings,
//! indented paragraphs, two-column lists) turned back into paragraphs that roff fills itself.

/// Marks every option in roff text rendered elsewhere (`\-\-name` after a space or at a line's
/// start) as not to be hyphenated, and its `code` spans bold, as [`escape`] does.
pub(super) fn protect_options(roff: &str) -> String {
    let mut out = String::with_capacity(roff.len() + 64);
    for line in roff.split_inclusive('\n') {
        let code = line.matches('`').count();
        let bolded;
        let line = if code > 0 && code % 2 == 0 && !line.starts_with('.') {
            // `code` spans of the help text in bold, as escape() does.
            bolded = line
                .split('`')
                .enumerate()
                .map(|(i, part)| match i % 2 {
                    1 => format!("\\fB{part}\\fR"),
                    _ => part.to_owned(),
                })
                .collect::<String>();
            bolded.as_str()
        } else {
            line
        };
        let mut prev = ' ';
        let mut rest = line;
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("\\-") && matches!(prev, ' ' | '(' | '[' | '"') {
                out.push_str("\\%");
            }
            out.push(c);
            prev = c;
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Escapes `s` for use in roff text: backslashes, hyphens (so that options stay hyphens and are
/// not broken at), apostrophes and a leading control character; `code` spans become bold.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let spans: Vec<&str> = s.split('`').collect();
    let balanced = spans.len() % 2 == 1;
    for (i, span) in spans.iter().enumerate() {
        let code = balanced && i % 2 == 1;
        if code {
            out.push_str("\\fB");
        } else if !balanced && i > 0 {
            out.push('`');
        }
        for c in span.chars() {
            match c {
                '\\' => out.push_str("\\e"),
                '-' => {
                    if out.is_empty()
                        || out.ends_with([' ', '(', '[', '"'])
                        || out.ends_with("\\fB")
                    {
                        // An option: no hyphenation inside it.
                        out.push_str("\\%");
                    }
                    out.push_str("\\-")
                }
                '\'' => out.push_str("\\(aq"),
                c => out.push(c),
            }
        }
        if code {
            out.push_str("\\fR");
        }
    }
    if out.starts_with('.') || out.starts_with('\'') {
        out.insert_str(0, "\\&");
    }
    out
}

/// One piece of the notes text, as found by [`parse_notes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Block {
    /// A line of capitals on its own: a section of the page (`ENCRYPTION`).
    Section(String),
    /// An unindented line ending in `:` followed by indented lines: a subsection title
    /// (without the colon).
    Heading(String),
    /// A paragraph, its hand-wrapped lines joined.
    Para(String),
    /// A two-column entry (`  goodput   benchmark payload ...`): the term and its text.
    Item(String, String),
}

/// A paragraph being collected: its first line's indent, the indent its later lines have
/// (known from the second line), and whether it is a two-column entry.
struct Open {
    text: String,
    tag: Option<String>,
    indent: usize,
    cont: Option<usize>,
    last: String,
}

/// Splits hand-wrapped help text into blocks. A line continues the paragraph above when it
/// has that paragraph's continuation indent and the line above did not end a sentence with
/// room to spare (a wrapped line is full: the next word would not have fitted). This undoes
/// the wrapping of whatever text the CLI carries, so it needs no markup in the help.
pub(super) fn parse_notes(text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let width = lines.iter().map(|l| l.trim_end().len()).max().unwrap_or(0);
    let mut blocks = Vec::new();
    let mut open: Option<Open> = None;
    for (i, raw) in lines.iter().enumerate() {
        let line = raw.trim_end();
        let body = line.trim_start();
        if body.is_empty() {
            close(&mut open, &mut blocks);
            continue;
        }
        let indent = line.len() - body.len();
        let next_indent = lines.get(i + 1).and_then(|l| {
            let t = l.trim();
            (!t.is_empty()).then(|| l.len() - l.trim_start().len())
        });
        if indent == 0 && is_section_title(body) {
            close(&mut open, &mut blocks);
            blocks.push(Block::Section(body.to_owned()));
            continue;
        }
        if indent == 0 && body.ends_with(':') && next_indent.is_some_and(|n| n > 0) {
            close(&mut open, &mut blocks);
            blocks.push(Block::Heading(body.trim_end_matches(':').to_owned()));
            continue;
        }
        if let Some(o) = open.as_mut() {
            let cont_ok = match o.cont {
                Some(c) => indent == c,
                None => o.tag.is_none() && (indent == o.indent || indent == o.indent + 2),
            };
            let first_word = body.split_whitespace().next().unwrap_or("");
            let full = o.last.len() + 1 + first_word.len() + 2 > width;
            // "stdin: read only while ..." after a finished sentence starts a paragraph of
            // its own even when the line above happens to be full.
            let labelled = ends_sentence(&o.last) && first_word.ends_with(':');
            let continues = !ends_sentence(&o.last) || (full && !labelled);
            if cont_ok && continues && two_columns(body).is_none() {
                o.cont = Some(indent);
                o.text.push(' ');
                o.text.push_str(body);
                o.last = line.to_owned();
                continue;
            }
        }
        close(&mut open, &mut blocks);
        open = Some(match two_columns(body) {
            Some((tag, rest, col))
                if next_indent.is_none_or(|n| n == indent + col || n <= indent) =>
            {
                Open {
                    text: rest.to_owned(),
                    tag: Some(tag.to_owned()),
                    indent,
                    cont: Some(indent + col),
                    last: line.to_owned(),
                }
            }
            _ => Open {
                text: body.to_owned(),
                tag: None,
                indent,
                cont: None,
                last: line.to_owned(),
            },
        });
    }
    close(&mut open, &mut blocks);
    blocks
}

/// Ends the open paragraph, if any.
fn close(open: &mut Option<Open>, blocks: &mut Vec<Block>) {
    if let Some(o) = open.take() {
        blocks.push(match o.tag {
            Some(tag) => Block::Item(tag, o.text),
            None => Block::Para(o.text),
        });
    }
}

/// `ENCRYPTION`, `EXIT STATUS`: capitals and spaces only.
fn is_section_title(s: &str) -> bool {
    s.len() > 2
        && s.chars().all(|c| c.is_ascii_uppercase() || c == ' ')
        && s.chars().any(|c| c.is_ascii_uppercase())
}

/// Whether a line ends where a paragraph may end.
fn ends_sentence(line: &str) -> bool {
    line.ends_with(['.', ':', ';', ')', '!', '?', '"'])
}

/// `goodput   benchmark payload ...`: a short term, two or more spaces, its text; returns
/// the term, the text and the text's column relative to the line's indent.
fn two_columns(body: &str) -> Option<(&str, &str, usize)> {
    let term_end = body.find(' ')?;
    let term = &body[..term_end];
    let after = &body[term_end..];
    let rest = after.trim_start();
    let gap = after.len() - rest.len();
    (gap >= 2 && term.len() <= 16 && !rest.is_empty()).then_some((term, rest, term_end + gap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_hyphens_backslashes_and_code() {
        assert_eq!(
            escape("--iface `msock -v` a-b"),
            "\\%\\-\\-iface \\fBmsock \\%\\-v\\fR a\\-b"
        );
        assert_eq!(escape(".x a\\b it's"), "\\&.x a\\eb it\\(aqs");
        assert_eq!(escape("odd ` tick"), "odd ` tick");
    }

    #[test]
    fn protects_options_and_bolds_code_in_rendered_roff() {
        assert_eq!(
            protect_options("see `msock \\-v` and \\-\\-iface\n.TP\n"),
            "see \\fBmsock \\%\\-v\\fR and \\%\\-\\-iface\n.TP\n"
        );
    }

    #[test]
    fn joins_wrapped_lines_and_keeps_paragraphs_apart() {
        let text = "\
Heading here:
  One sentence that goes on and on until the line is full and has to wrap at the
  end. Short end.
  Next paragraph starts here, and it is a long one that fills the whole line to the end.
  label: a new paragraph after a full line.
Plain TCP clients are served only with --allow-plain: they are neither
  encrypted nor authenticated.
ENCRYPTION
  Keys.
  goodput   what the
            receiver got.
  RTT       round trip.";
        assert_eq!(
            parse_notes(text),
            vec![
                Block::Heading("Heading here".into()),
                Block::Para(
                    "One sentence that goes on and on until the line is full and has to wrap \
                     at the end. Short end."
                        .into()
                ),
                Block::Para(
                    "Next paragraph starts here, and it is a long one that fills the whole \
                     line to the end."
                        .into()
                ),
                Block::Para("label: a new paragraph after a full line.".into()),
                Block::Para(
                    "Plain TCP clients are served only with --allow-plain: they are neither \
                     encrypted nor authenticated."
                        .into()
                ),
                Block::Section("ENCRYPTION".into()),
                Block::Para("Keys.".into()),
                Block::Item("goodput".into(), "what the receiver got.".into()),
                Block::Item("RTT".into(), "round trip.".into()),
            ]
        );
    }
}
