//! Shell lines of the docs (man page examples, README blocks) taken apart into the `msock`
//! command lines they hold, so that tests can parse those with the real CLI.

/// The `msock ...` command lines of a shell line: split at pipes and separators, quotes
/// respected, and looked for inside quoted words too (ssh's ProxyCommand).
pub fn msock_invocations(line: &str) -> Vec<Vec<String>> {
    let words = shell_words(line);
    let mut out = Vec::new();
    let mut cur: Option<Vec<String>> = None;
    for (w, quoted) in words {
        if !quoted && w.starts_with('#') {
            break; // a comment
        }
        if !quoted && matches!(w.as_str(), "|" | ";" | "&&" | "||" | "&") {
            out.extend(cur.take());
            continue;
        }
        if !quoted && (w.starts_with('>') || w.starts_with('<')) {
            out.extend(cur.take());
            continue;
        }
        if let Some(c) = cur.as_mut() {
            c.push(w);
        } else if w == "msock" {
            cur = Some(vec![w]);
        } else if let Some(i) = w.find("msock ") {
            out.extend(msock_invocations(&w[i..]));
        }
    }
    out.extend(cur);
    out
}

/// Words of a shell line with simple quoting; each with whether it was quoted.
fn shell_words(line: &str) -> Vec<(String, bool)> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut in_word = false;
    let mut q: Option<char> = None;
    for c in line.chars() {
        match (q, c) {
            (Some(open), c) if c == open => q = None,
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                q = Some(c);
                quoted = true;
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push((std::mem::take(&mut cur), quoted));
                }
                quoted = false;
                in_word = false;
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push((cur, quoted));
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_lines_are_split_into_msock_invocations() {
        assert_eq!(
            msock_invocations("tar c x/ | msock connect -v h:1 > out"),
            vec![vec!["msock", "connect", "-v", "h:1"]]
        );
        assert_eq!(
            msock_invocations("ssh -o ProxyCommand='msock connect %h:2' me@h"),
            vec![vec!["msock", "connect", "%h:2"]]
        );
        assert_eq!(
            msock_invocations("msock listen --sh-exec \"$SHELL -l\" 1"),
            vec![vec!["msock", "listen", "--sh-exec", "$SHELL -l", "1"]]
        );
    }

    #[test]
    fn comments_end_a_line() {
        assert_eq!(
            msock_invocations("msock bench h:1   # iperf3 -c h"),
            vec![vec!["msock", "bench", "h:1"]]
        );
    }
}
