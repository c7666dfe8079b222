//! Events for scripts: one JSON object per line for each session and path event
//! (`--json-events`), or for each relay event (`msock proxy --json`).
//!
//! Whoever emits events is handed an [`Events`] by its caller (a driver by whoever builds
//! it, the relay by `msock proxy`); no switch here turns events on or off for the process. An
//! [`Events::off`] handle drops everything.
//!
//! Every object has `"event"` (its kind) and `"t"` (seconds since a clock start: for session
//! events the first session sink the process made, at its start-up; for the relay, its
//! start); the other fields depend on the kind. Sessions:
//! `session_open` (`session`, `local`, `remote`), `path_up` (`path`, `local`, `remote`),
//! `path_down` (`path`, `local`, `remote`, `reason`), `path_moved` (`path`, `from`, `to`,
//! `which` = `local`|`peer`|`none`, `stall_ms`, `away_ms`, `resend_bytes`), `session_resumed`
//! (`stall_ms`), `server_moved` (`to`), `path_hello` (client: a replacement connection is up and
//! its HELLO goes out; `path`, `hello`, `local`, `remote`), `delivery_resumed` (the peer's
//! stream moved on for the first time after a path came back from a loss; `path`, `after_attach_ms`),
//! `session_closed` (`outcome`, `error`, `sent`,
//! `received`, `seconds`). The relay names its own kinds (in its module doc).

use std::io::Write;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use serde_json::{Map, Value};

/// Where events go. Cheap to clone; every clone writes to the same place.
#[derive(Clone, Default)]
pub struct Events {
    /// None: events are dropped.
    sink: Option<Arc<dyn Sink>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.sink.is_some() {
            "Events(on)"
        } else {
            "Events(off)"
        })
    }
}

/// A destination for events.
pub trait Sink: Send + Sync {
    /// Takes one event of kind `kind` with `fields` (an object).
    fn event(&self, kind: &str, fields: Value);
}

/// Which standard stream a `JsonLines` sink writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (the relay's status lines: its output is the log).
    Stdout,
    /// Standard error (session events: standard output carries the stream's bytes).
    Stderr,
}

/// `json` with the characters JSON allows raw in strings but a terminal would act on (DEL,
/// the C1 controls, bidirectional overrides and other invisible formatting characters: peer
/// text may reach an event) written as `\uXXXX` escapes; still the same JSON value. (JSON
/// writers already escape C0 controls.)
fn json_terminal_safe(json: String) -> String {
    let unsafe_char = |c: char| c.is_control() || crate::proto::text::is_deceptive_format(c);
    if !json.chars().any(unsafe_char) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if unsafe_char(c) {
            // All of them are in the Basic Multilingual Plane: one \uXXXX each.
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// JSON lines on a standard stream, `t` rounded to `decimals` places.
pub(crate) struct JsonLines {
    to: Stream,
    start: Instant,
    /// 10^decimals, the rounding of `t`.
    scale: f64,
}

impl Sink for JsonLines {
    fn event(&self, kind: &str, fields: Value) {
        let mut obj = Map::new();
        obj.insert("event".into(), kind.into());
        let t = self.start.elapsed().as_secs_f64();
        obj.insert("t".into(), ((t * self.scale).round() / self.scale).into());
        if let Value::Object(f) = fields {
            obj.extend(f);
        }
        let line = json_terminal_safe(Value::Object(obj).to_string());
        // A closed stream loses the event, never the session.
        let _ = match self.to {
            Stream::Stdout => writeln!(std::io::stdout().lock(), "{line}"),
            Stream::Stderr => writeln!(std::io::stderr().lock(), "{line}"),
        };
    }
}

/// Events as log lines at info level (`kind fields`), for a relay without `--json`.
pub struct LogLines;

impl Sink for LogLines {
    fn event(&self, kind: &str, fields: Value) {
        tracing::info!("{kind} {fields}");
    }
}

impl Events {
    /// Drops every event.
    pub fn off() -> Self {
        Events { sink: None }
    }

    /// JSON lines on `to`, with `t` in seconds from now rounded to `decimals` places.
    pub fn json_lines(to: Stream, decimals: i32) -> Self {
        Events::to(Arc::new(JsonLines {
            to,
            start: Instant::now(),
            scale: 10f64.powi(decimals),
        }))
    }

    /// Session events as `--json-events` prints them (stderr, microseconds), or off. Every
    /// such sink of a process counts `t` from the first one made (the program's start), so
    /// that a client's and a listener's events line up however many sinks they use.
    pub fn sessions(json: bool) -> Self {
        static START: OnceLock<Instant> = OnceLock::new();
        if !json {
            return Events::off();
        }
        Events::to(Arc::new(JsonLines {
            to: Stream::Stderr,
            start: *START.get_or_init(Instant::now),
            scale: 1e6,
        }))
    }

    /// Events to `sink`.
    pub fn to(sink: Arc<dyn Sink>) -> Self {
        Events { sink: Some(sink) }
    }

    /// Emits one event of kind `kind` with `fields` (an object).
    pub fn emit(&self, kind: &str, fields: Value) {
        if let Some(s) = &self.sink {
            s.event(kind, fields);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Collect(Mutex<Vec<(String, Value)>>);

    impl Sink for Collect {
        fn event(&self, kind: &str, fields: Value) {
            self.0.lock().unwrap().push((kind.into(), fields));
        }
    }

    #[test]
    fn clones_share_the_sink_and_off_drops() {
        let c = Arc::new(Collect(Mutex::new(Vec::new())));
        let ev = Events::to(c.clone());
        let ev2 = ev.clone();
        ev.emit("a", serde_json::json!({"x": 1}));
        ev2.emit("b", serde_json::json!({}));
        Events::off().emit("c", serde_json::json!({}));
        let got = c.0.lock().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "a");
        assert_eq!(got[1].0, "b");
    }
}

#[cfg(test)]
mod json_tests {
    use super::json_terminal_safe;
    use serde_json::{json, Value};

    #[test]
    fn events_carry_no_terminal_controls_and_stay_the_same_json() {
        let v = json!({"error": "a\x1b[2J\u{9b}1m\u{7f}\u{202e}z\\"});
        let line = json_terminal_safe(v.to_string());
        assert!(
            !line.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{line:?}"
        );
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back, v);
    }
}
