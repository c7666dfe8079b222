//! What a `listen --relay` says on stderr when its relay goes away and when it is registered
//! again: the relay agent's events turned into lines for a person.

use std::sync::Arc;

use serde_json::Value;

use crate::proto::text::defang;
use crate::runtime::events::{Events, Sink};

/// Prints `relay_lost` and `relay_registered` as `msock: ...` lines; ignores other kinds.
struct Notices;

impl Sink for Notices {
    fn event(&self, kind: &str, fields: Value) {
        if let Some(line) = line(kind, &fields) {
            eprintln!("msock: {line}");
        }
    }
}

/// The line for one event (None: not one a person needs). Every field is defanged: the
/// error may quote the relay (already escaped there, so backslashes are kept).
fn line(kind: &str, f: &Value) -> Option<String> {
    let s = |k: &str| defang(f[k].as_str().unwrap_or("?")).into_owned();
    match kind {
        "relay_lost" => Some(format!(
            "relay {} lost: {}; retrying",
            s("relay"),
            s("error")
        )),
        "relay_registered" => Some(format!("re-registered {} at {}", s("name"), s("relay"))),
        _ => None,
    }
}

/// The events handle the relay agent reports to.
pub(crate) fn events() -> Events {
    Events::to(Arc::new(Notices))
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
    }
}
