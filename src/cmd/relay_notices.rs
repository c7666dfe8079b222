//! What a `listen --relay` says on stderr when its relay goes away and when it is registered
//! again: the relay agent's events turned into lines for a person (with several relays, the
//! line also says which relays the name is registered at now, or that it is at none). With
//! --json-events the events also go out as JSON lines, next to the session events.

use std::sync::Arc;

use serde_json::Value;

use crate::proto::text::defang;
use crate::runtime::events::{Events, Sink};

/// Prints `relay_lost`, `relay_registered` and `relay_dropped` as `msock: ...` lines;
/// ignores other kinds. Passes every event on to `json` too.
struct Notices {
    json: Events,
}

impl Sink for Notices {
    fn event(&self, kind: &str, fields: Value) {
        if let Some(line) = line(kind, &fields) {
            eprintln!("msock: {line}");
        }
        self.json.emit(kind, fields);
    }
}

/// The line for one event (None: not one a person needs). Every field is defanged: the
/// error may quote the relay (already escaped there, so backslashes are kept).
fn line(kind: &str, f: &Value) -> Option<String> {
    let s = |k: &str| defang(f[k].as_str().unwrap_or("?")).into_owned();
    let line = match kind {
        "relay_lost" => format!("relay {} lost: {}; retrying", s("relay"), s("error")),
        "relay_registered" if f["first"] == true => {
            format!("registered {} at {}", s("name"), s("relay"))
        }
        "relay_registered" => format!("re-registered {} at {}", s("name"), s("relay")),
        "relay_dropped" => format!("relay {}: {}; not retrying it", s("relay"), s("error")),
        _ => return None,
    };
    Some(line + &presence(f))
}

/// With several relays: "; registered at A, B (1 of 3 down)", or that it is at none.
fn presence(f: &Value) -> String {
    let of = f["of"].as_u64().unwrap_or(1);
    if of < 2 {
        return String::new();
    }
    let up: Vec<String> = (f["up"].as_array().into_iter().flatten())
        .map(|v| defang(v.as_str().unwrap_or("?")).into_owned())
        .collect();
    if up.is_empty() {
        return format!("; registered at no relay now (all {of} down)");
    }
    let down = of.saturating_sub(up.len() as u64);
    format!("; registered at {} ({down} of {of} down)", up.join(", "))
}

/// The events handle the relay agent reports to; with `json`, its events also go out as
/// --json-events lines.
pub(crate) fn events(json: bool) -> Events {
    Events::to(Arc::new(Notices {
        json: Events::sessions(json),
    }))
}

#[cfg(test)]
mod tests {
    use super::line;
    use serde_json::json;

    #[test]
    fn lines_name_the_relay_and_escape_its_words() {
        let lost = line(
            "relay_lost",
            &json!({"relay": "127.0.0.1:7480", "error": "gone\x1b[2J"}),
        )
        .unwrap();
        assert_eq!(lost, "relay 127.0.0.1:7480 lost: gone\\u{1b}[2J; retrying");
        let back = line(
            "relay_registered",
            &json!({"name": "box", "relay": "127.0.0.1:7480"}),
        )
        .unwrap();
        assert_eq!(back, "re-registered box at 127.0.0.1:7480");
        assert!(line("splice", &json!({})).is_none());
        let first = line(
            "relay_registered",
            &json!({"name": "box", "relay": "127.0.0.1:7481", "first": true,
                "up": ["a:1", "b:2"], "of": 2}),
        )
        .unwrap();
        assert_eq!(
            first,
            "registered box at 127.0.0.1:7481; registered at a:1, b:2 (0 of 2 down)"
        );
    }

    #[test]
    fn with_several_relays_the_line_says_where_the_name_is_and_when_nowhere() {
        let one_left = line(
            "relay_lost",
            &json!({"relay": "127.0.0.1:1", "error": "eof", "up": ["b\x1b:2"], "of": 2}),
        )
        .unwrap();
        assert_eq!(
            one_left,
            "relay 127.0.0.1:1 lost: eof; retrying; registered at b\\u{1b}:2 (1 of 2 down)"
        );
        let none = line(
            "relay_lost",
            &json!({"relay": "127.0.0.1:2", "error": "eof", "up": [], "of": 2}),
        )
        .unwrap();
        assert!(
            none.ends_with("; registered at no relay now (all 2 down)"),
            "{none}"
        );
        let dropped = line(
            "relay_dropped",
            &json!({"relay": "b:2", "error": "name taken", "up": ["a:1"], "of": 2}),
        )
        .unwrap();
        assert_eq!(
            dropped,
            "relay b:2: name taken; not retrying it; registered at a:1 (1 of 2 down)"
        );
    }
}
