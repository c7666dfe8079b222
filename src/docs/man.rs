//! The man pages: clap_mangen renders the title, description and options; this module writes
//! the rest (NAME, SYNOPSIS with values, the long help's notes as real paragraphs, EXAMPLES,
//! EXIT STATUS, FILES, ENVIRONMENT, SEE ALSO), so that `man` fills and wraps every paragraph.

use std::fmt::Write as _;
use std::io;

use clap::{Arg, ArgAction, Command};

use super::extra::{self, File};
use super::roff::{escape, parse_notes, protect_options, Block};

/// The sections of a page's long help notes: `(section title, blocks)`, in order; notes
/// before any titled section go under NOTES, and an "Exit status:" paragraph under EXIT STATUS.
type Sections = Vec<(String, Vec<Block>)>;

/// Splits `cmd`'s after-help into sections.
fn note_sections(cmd: &Command) -> Sections {
    let text = cmd
        .get_after_long_help()
        .or_else(|| cmd.get_after_help())
        .map(|t| t.to_string())
        .unwrap_or_default();
    let mut sections: Sections = Vec::new();
    let mut current = "NOTES".to_owned();
    for block in parse_notes(&text) {
        match block {
            Block::Section(title) => current = title,
            Block::Para(p) if p.starts_with("Exit status:") => {
                let rest = p["Exit status:".len()..].trim().to_owned();
                push(&mut sections, "EXIT STATUS", Block::Para(rest));
            }
            b => push(&mut sections, &current, b),
        }
    }
    sections
}

fn push(sections: &mut Sections, title: &str, block: Block) {
    match sections.iter_mut().find(|(t, _)| t == title) {
        Some((_, blocks)) => blocks.push(block),
        None => sections.push((title.to_owned(), vec![block])),
    }
}

/// Renders the page of `cmd` (`msock` itself when `sub` is empty, else its subcommand `sub`);
/// `top` is the whole command, whose notes fill in sections the subcommand's text refers to
/// ("see ENCRYPTION below") and its exit status when the subcommand says none.
pub(super) fn page(top: &Command, sub: &str, all_subs: &[String]) -> io::Result<Vec<u8>> {
    let cmd = if sub.is_empty() {
        top.clone()
    } else {
        top.find_subcommand(sub)
            .cloned()
            .ok_or_else(|| io::Error::other(format!("no subcommand {sub}")))?
    };
    let title = page_name(sub);
    let man = clap_mangen::Man::new(cmd.clone().name(title.clone()).bin_name(title.clone()));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    let mut r = String::new();
    r.push_str(".SH NAME\n");
    let about = cmd.get_about().map(|a| a.to_string()).unwrap_or_default();
    let _ = writeln!(r, "{} \\- {}", escape(&title), escape(&name_line(&about)));
    r.push_str(".SH SYNOPSIS\n");
    r.push_str(&synopsis(&cmd, sub));
    out.extend_from_slice(r.as_bytes());
    let mut generated = Vec::new();
    man.render_description_section(&mut generated)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut generated)?;
    }
    out.extend_from_slice(protect_options(&String::from_utf8_lossy(&generated)).as_bytes());
    let mut r = String::new();
    if sub.is_empty() {
        r.push_str(".SH COMMANDS\n");
        for s in top
            .get_subcommands()
            .filter(|s| all_subs.iter().any(|n| n == s.get_name()))
        {
            let about = s.get_about().map(|a| a.to_string()).unwrap_or_default();
            let _ = writeln!(
                r,
                ".TP\n\\fBmsock {}\\fR (see \\fB{}\\fR(1))\n{}",
                escape(s.get_name()),
                escape(&page_name(s.get_name())),
                escape(&about)
            );
        }
    }
    let mut sections = note_sections(&cmd);
    if !sub.is_empty() {
        let own = format!("{}\n{}", String::from_utf8_lossy(&out), r);
        for (title, blocks) in note_sections(top) {
            let referred = own.contains(&format!("see {title} below"));
            let missing = !sections.iter().any(|(t, _)| *t == title);
            if missing && (referred || title == "EXIT STATUS") {
                sections.push((title, blocks));
            }
        }
    }
    let notes_order = |t: &str| match t {
        "EXIT STATUS" => 2,
        "NOTES" => 0,
        _ => 1,
    };
    sections.sort_by_key(|(t, _)| notes_order(t));
    let mut exit = None;
    for (title, blocks) in sections {
        if title == "EXIT STATUS" {
            exit = Some(blocks);
            continue;
        }
        let _ = writeln!(r, ".SH {}", escape(&title));
        write_blocks(&mut r, &blocks);
    }
    write_examples(&mut r, sub);
    if let Some(blocks) = exit {
        r.push_str(".SH \"EXIT STATUS\"\n");
        write_blocks(&mut r, &blocks);
        if let Some(more) = extra::exit_status_more(sub) {
            let _ = writeln!(r, ".PP\n{}", escape(more));
        }
    }
    write_files(&mut r, "ENVIRONMENT", extra::ENVIRONMENT, sub);
    write_files(&mut r, "FILES", extra::FILES, sub);
    write_see_also(&mut r, sub, all_subs);
    out.extend_from_slice(r.as_bytes());
    Ok(out)
}

/// `msock` or `msock-SUB`.
pub(super) fn page_name(sub: &str) -> String {
    if sub.is_empty() {
        "msock".to_owned()
    } else {
        format!("msock-{sub}")
    }
}

/// The NAME line's description: the about text without a repeated "msock:" prefix, code
/// marks or the final period, starting in lower case.
fn name_line(about: &str) -> String {
    let s = about.trim().strip_prefix("msock:").unwrap_or(about).trim();
    let s = s.trim_end_matches('.').replace('`', "");
    let mut chars = s.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if a.is_ascii_uppercase() && b.is_ascii_lowercase() => {
            format!("{}{}", a.to_ascii_lowercase(), &s[1..])
        }
        _ => s,
    }
}

/// The SYNOPSIS paragraph: every visible option with its value, then the operands.
fn synopsis(cmd: &Command, sub: &str) -> String {
    let mut s = String::from(".nh\n.ad l\n");
    let invocation = if sub.is_empty() {
        "msock".to_owned()
    } else {
        format!("msock {sub}")
    };
    let _ = write!(s, "\\fB{}\\fR", escape(&invocation));
    let visible = |a: &&Arg| !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version");
    for arg in cmd
        .get_arguments()
        .filter(visible)
        .filter(|a| !a.is_positional())
    {
        let flag = match (arg.get_short(), arg.get_long()) {
            (Some(c), Some(l)) => format!("\\fB\\-{c}\\fR|\\fB\\-\\-{}\\fR", escape(l)),
            (Some(c), None) => format!("\\fB\\-{c}\\fR"),
            (None, Some(l)) => format!("\\fB\\-\\-{}\\fR", escape(l)),
            (None, None) => continue,
        };
        let value = if arg.get_action().takes_values() {
            format!("\\ \\fI{}\\fR", escape(&value_name(arg)))
        } else {
            String::new()
        };
        let repeat = if matches!(arg.get_action(), ArgAction::Append | ArgAction::Count) {
            "..."
        } else {
            ""
        };
        if arg.is_required_set() {
            let _ = write!(s, " {flag}{value}{repeat}");
        } else {
            let _ = write!(s, " [{flag}{value}]{repeat}");
        }
    }
    for arg in cmd.get_positionals().filter(visible) {
        let name = value_name(arg);
        let many =
            matches!(arg.get_num_args(), Some(r) if r.max_values() > 1) && !name.contains("...");
        let name = format!("\\fI{}\\fR{}", escape(&name), if many { "..." } else { "" });
        if arg.is_required_set() {
            let _ = write!(s, " {name}");
        } else {
            let _ = write!(s, " [{name}]");
        }
    }
    if cmd.has_subcommands() {
        s.push_str(" \\fICOMMAND\\fR [\\fIARGS\\fR]");
    }
    s.push_str("\n.ad\n.hy\n");
    s
}

/// An argument's value name(s), or its id in capitals.
fn value_name(arg: &Arg) -> String {
    match arg.get_value_names() {
        Some(v) if !v.is_empty() => v.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(" "),
        _ => arg.get_id().as_str().to_uppercase(),
    }
}

/// Notes blocks as roff: headings as subsections, paragraphs, two-column lists.
fn write_blocks(r: &mut String, blocks: &[Block]) {
    for b in blocks {
        match b {
            Block::Section(t) => {
                let _ = writeln!(r, ".SH {}", escape(t));
            }
            Block::Heading(t) => {
                let _ = writeln!(r, ".SS \"{}\"", escape(t).replace('"', "\\(dq"));
            }
            Block::Para(p) => {
                let _ = writeln!(r, ".PP\n{}", escape(p));
            }
            Block::Item(tag, text) => {
                let _ = writeln!(r, ".TP\n\\fB{}\\fR\n{}", escape(tag), escape(text));
            }
        }
    }
}

/// EXAMPLES: each one's purpose, then its command unfilled and indented.
fn write_examples(r: &mut String, sub: &str) {
    let examples = extra::examples(sub);
    if examples.is_empty() {
        return;
    }
    r.push_str(".SH EXAMPLES\n");
    for e in examples {
        let _ = writeln!(
            r,
            ".PP\n{}\n.PP\n.RS 4\n.nf\n\\fB{}\\fR\n.fi\n.RE",
            escape(e.what),
            escape(e.command)
        );
    }
}

/// FILES or ENVIRONMENT: the entries that concern the page `sub`.
fn write_files(r: &mut String, title: &str, entries: &[File], sub: &str) {
    let mine: Vec<&File> = entries.iter().filter(|f| f.pages.contains(&sub)).collect();
    if mine.is_empty() {
        return;
    }
    let _ = writeln!(r, ".SH {title}");
    if title == "FILES" {
        let mut dirs =
            vec!["CONFIG is $MSOCK_CONFIG_DIR, else $XDG_CONFIG_HOME/msock, else ~/.config/msock"];
        if mine.iter().any(|f| f.path.starts_with("STATE/")) {
            dirs.push(
                "STATE is $MSOCK_STATE_DIR, else $XDG_STATE_HOME/msock, else ~/.local/state/msock",
            );
        }
        let _ = writeln!(r, ".PP\n{}.", escape(&dirs.join("; ")));
    }
    for f in mine {
        let _ = writeln!(r, ".TP\n\\fI{}\\fR\n{}", escape(f.path), escape(f.what));
    }
}

/// SEE ALSO: msock's other pages, then other programs'.
fn write_see_also(r: &mut String, sub: &str, all_subs: &[String]) {
    let mut refs: Vec<String> = std::iter::once(String::new())
        .chain(all_subs.iter().cloned())
        .filter(|s| s != sub)
        .map(|s| format!("\\fB{}\\fR(1)", escape(&page_name(&s))))
        .collect();
    refs.extend(extra::see_also_others(sub).iter().map(|p| {
        let (name, sect) = p.split_once('(').unwrap_or((p, "1)"));
        format!("\\fB{}\\fR({}", escape(name), sect)
    }));
    let _ = writeln!(r, ".SH \"SEE ALSO\"\n{}", refs.join(", "));
}
