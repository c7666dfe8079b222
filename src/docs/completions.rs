//! Shell completions: clap_complete's scripts, plus values clap cannot know because they are
//! the machine's: interface names (`--iface`, `--backup`), `NAME=KIND` (`--iface-kind`, kinds
//! from the code's list) and the kernel's congestion control algorithms (`--congestion`).
//!
//! The additions are looked up when the user presses TAB (in `/sys/class/net`, else
//! `ip -o link`, and `/proc/sys/net/ipv4/tcp_available_congestion_control`). They are keyed by
//! the options' long names: a script in which an option that exists could not be given its
//! values is an error, never a silent omission.

use std::io;

use clap::Command;
use clap_complete::Shell;

use crate::runtime::ifaces::USER_KINDS;

/// What an option's values are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Values {
    /// A network interface's name.
    Iface,
    /// `NAME=KIND`.
    IfaceKind,
    /// A TCP congestion control algorithm.
    Congestion,
}

impl Values {
    /// The values of the option `--long`, if they are the machine's.
    fn of(long: &str) -> Option<Values> {
        match long {
            "iface" | "backup" => Some(Values::Iface),
            "iface-kind" => Some(Values::IfaceKind),
            "congestion" => Some(Values::Congestion),
            _ => None,
        }
    }

    /// The name of the shell function that lists them (the same in every shell).
    fn function(self) -> &'static str {
        match self {
            Values::Iface => "_msock_ifaces",
            Values::IfaceKind => "_msock_iface_kinds",
            Values::Congestion => "_msock_congestion",
        }
    }
}

/// The kinds `--iface-kind` accepts, from the message the parser itself gives.
fn kinds() -> Vec<String> {
    USER_KINDS
        .split([',', ' '])
        .filter(|w| !w.is_empty() && *w != "or")
        .map(str::to_owned)
        .collect()
}

/// The long options, anywhere in `cmd`, whose values are the machine's.
fn dynamic_options(cmd: &Command) -> Vec<(String, Values)> {
    let mut out: Vec<(String, Values)> = Vec::new();
    let mut stack = vec![cmd];
    while let Some(c) = stack.pop() {
        for a in c.get_arguments() {
            if let Some((long, v)) = a.get_long().and_then(|l| Some((l, Values::of(l)?))) {
                if !out.iter().any(|(l, _)| l == long) {
                    out.push((long.to_owned(), v));
                }
            }
        }
        stack.extend(c.get_subcommands());
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The completion script for `shell`, with the machine's values where clap has none.
pub(super) fn script(shell: Shell, cmd: &Command) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd.clone(), "msock", &mut buf);
    let text = String::from_utf8(buf).map_err(io::Error::other)?;
    let options = dynamic_options(cmd);
    let text = match shell {
        Shell::Bash => bash(&text, &options)?,
        Shell::Zsh => zsh(&text, &options)?,
        Shell::Fish => fish(&text, &options)?,
        _ => text,
    };
    Ok(text.into_bytes())
}

fn missing(shell: &str, what: &str) -> io::Error {
    io::Error::other(format!(
        "{shell} completion: clap_complete's script no longer has {what}; update src/docs/completions.rs"
    ))
}

/// bash: a function in front of clap's that completes the options above and hands every
/// other word to clap's `_msock`.
fn bash(text: &str, options: &[(String, Values)]) -> io::Result<String> {
    let registration = "complete -F _msock ";
    if !text.contains(registration) {
        return Err(missing("bash", "`complete -F _msock`"));
    }
    let cases: String = options
        .iter()
        .map(|(long, v)| format!("        --{long}) vals=($({})) ;;\n", v.function()))
        .collect();
    let kinds = kinds().join(" ");
    let extra = format!(
        r#"
# Values clap does not know, looked up when TAB is pressed (added by src/docs/completions.rs).
_msock_ifaces() {{
    local d
    if [[ -d /sys/class/net ]]; then
        for d in /sys/class/net/*; do [[ -e $d ]] && printf '%s\n' "${{d##*/}}"; done
    elif command -v ip >/dev/null 2>&1; then
        ip -o link show 2>/dev/null | sed -n 's/^[0-9]*: \([^:@ ]*\).*/\1/p'
    fi
}}
_msock_iface_kinds() {{
    local i k
    if [[ $_msock_word == *=* ]]; then
        for k in {kinds}; do printf '%s\n' "${{_msock_word%%=*}}=$k"; done
    else
        for i in $(_msock_ifaces); do printf '%s\n' "$i="; done
    fi
}}
_msock_congestion() {{
    local f=/proc/sys/net/ipv4/tcp_available_congestion_control
    [[ -r $f ]] && tr ' ' '\n' < "$f"
}}
_msock_dynamic() {{
    local line="${{COMP_LINE:0:COMP_POINT}}" opt _msock_word="" prefix="" vals=() c i cut=""
    local -a words
    read -ra words <<< "$line"
    (( ${{#words[@]}} )) || {{ _msock "$@"; return; }}
    if [[ $line == *[[:space:]] ]]; then
        opt="${{words[${{#words[@]}}-1]}}"
    else
        _msock_word="${{words[${{#words[@]}}-1]}}"
        opt="${{words[${{#words[@]}}-2]}}"
        if [[ $_msock_word == --*=* ]]; then
            opt="${{_msock_word%%=*}}"
            prefix="$opt="
            _msock_word="${{_msock_word#*=}}"
        fi
    fi
    case "$opt" in
{cases}        *) _msock "$@"; return ;;
    esac
    # bash replaces only what follows the word's last COMP_WORDBREAKS character.
    local typed="$prefix$_msock_word"
    for ((i = ${{#typed}} - 1; i >= 0; i--)); do
        c="${{typed:i:1}}"
        if [[ $COMP_WORDBREAKS == *"$c"* ]]; then cut="${{typed:0:i+1}}"; break; fi
    done
    COMPREPLY=()
    for c in "${{vals[@]}}"; do
        c="$prefix$c"
        [[ $c == "$typed"* ]] && COMPREPLY+=("${{c#"$cut"}}")
    done
    if [[ ${{#COMPREPLY[@]}} -eq 1 && ${{COMPREPLY[0]}} == *= ]]; then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}}
"#
    );
    let mut out = String::new();
    let mut added = false;
    for line in text.split_inclusive('\n') {
        if !added && line.starts_with("if [[ \"${BASH_VERSINFO[0]}\"") {
            out.push_str(&extra);
            out.push('\n');
            added = true;
        }
        out.push_str(&line.replace(registration, "complete -F _msock_dynamic "));
    }
    if !added {
        return Err(missing("bash", "the BASH_VERSINFO test before `complete`"));
    }
    Ok(out)
}

/// zsh: the options' actions in `_arguments` become functions defined at the top.
fn zsh(text: &str, options: &[(String, Values)]) -> io::Result<String> {
    let kinds = kinds().join(" ");
    let extra = format!(
        r#"
# Values clap does not know, looked up when TAB is pressed (added by src/docs/completions.rs).
(( $+functions[_msock_ifaces] )) ||
_msock_ifaces() {{
    local -a ifs
    ifs=(/sys/class/net/*(N:t))
    if (( ! $#ifs )) && (( $+commands[ip] )); then
        ifs=(${{${{${{(f)"$(ip -o link show 2>/dev/null)"}}#*: }}%%[:@ ]*}})
    fi
    compadd "$@" -a ifs
}}
(( $+functions[_msock_iface_kinds] )) ||
_msock_iface_kinds() {{
    local -a kinds ifs
    if compset -P '*='; then
        kinds=({kinds})
        compadd "$@" -a kinds
    else
        ifs=(/sys/class/net/*(N:t))
        compadd "$@" -q -S '=' -a ifs
    fi
}}
(( $+functions[_msock_congestion] )) ||
_msock_congestion() {{
    local -a algos
    algos=(${{=$(cat /proc/sys/net/ipv4/tcp_available_congestion_control 2>/dev/null)}})
    compadd "$@" -a algos
}}
"#
    );
    let anchor = "autoload -U is-at-least\n";
    if !text.contains(anchor) {
        return Err(missing("zsh", "`autoload -U is-at-least`"));
    }
    let mut out = String::new();
    let mut done: Vec<&str> = Vec::new();
    for line in text.split_inclusive('\n') {
        let spec = line
            .trim_start()
            .trim_start_matches('\'')
            .trim_start_matches('*');
        let hit = options.iter().find(|(long, _)| {
            spec.starts_with(&format!("--{long}=[")) || spec.starts_with(&format!("--{long}+["))
        });
        // `'--long=[help]:VALUE:ACTION' \`: whatever clap chose as ACTION is replaced.
        let action_at = line
            .trim_end()
            .strip_suffix("' \\")
            .and_then(|l| l.rfind(':'));
        match (hit, action_at) {
            (Some((long, v)), Some(at)) => {
                out.push_str(&format!("{}:{}' \\\n", &line[..at], v.function()));
                done.push(long);
            }
            _ => out.push_str(line),
        }
        if line == anchor {
            out.push_str(&extra);
        }
    }
    for (long, _) in options {
        if !done.contains(&long.as_str()) {
            return Err(missing(
                "zsh",
                &format!("a `--{long}=[...]:VALUE:ACTION` spec"),
            ));
        }
    }
    Ok(out)
}

/// fish: the options' `complete` lines get `-f -a '(function)'`, the functions defined first.
fn fish(text: &str, options: &[(String, Values)]) -> io::Result<String> {
    let kinds = kinds().join(" ");
    let mut out = format!(
        r#"# Values clap does not know, looked up when TAB is pressed (added by src/docs/completions.rs).
function _msock_ifaces
    if test -d /sys/class/net
        for d in /sys/class/net/*
            string replace -r '.*/' '' -- $d
        end
    else if command -q ip
        ip -o link show 2>/dev/null | string replace -rf '^\d+: ([^:@ ]+).*' '$1'
    end
end
function _msock_iface_kinds
    set -l tok (commandline -ct | string replace -r '^--iface-kind=' '')
    if string match -q '*=*' -- $tok
        set -l name (string split -m1 = -- $tok)[1]
        for k in {kinds}
            echo $name=$k
        end
    else
        for i in (_msock_ifaces)
            echo $i=
        end
    end
end
function _msock_congestion
    set -l f /proc/sys/net/ipv4/tcp_available_congestion_control
    test -r $f; and string split ' ' -- (string trim < $f)
end

"#
    );
    let mut done: Vec<&str> = Vec::new();
    for line in text.split_inclusive('\n') {
        let head = line.split(" -d '").next().unwrap_or(line);
        let hit = options.iter().find(|(long, _)| {
            head.split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w == ["-l", long.as_str()])
        });
        match hit {
            Some((long, v)) if line.trim_end().ends_with(" -r") => {
                out.push_str(line.trim_end());
                out.push_str(&format!(" -f -a '({})'\n", v.function()));
                done.push(long);
            }
            _ => out.push_str(line),
        }
    }
    for (long, _) in options {
        if !done.contains(&long.as_str()) {
            return Err(missing("fish", &format!("a `-l {long} ... -r` line")));
        }
    }
    Ok(out)
}
