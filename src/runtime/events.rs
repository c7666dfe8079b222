//! `--json-events`: one JSON object per line on stderr for each session and path event, for
//! scripts. Off unless [`enable`] was called; like the log level, a process-wide setting.
//!
//! Every object has `"event"` (its kind) and `"t"` (seconds since the process started); the
//! other fields depend on the kind: `session_open` (`session`, `local`, `remote`),
//! `path_up` (`path`, `local`, `remote`), `path_down` (`path`, `local`, `remote`, `reason`),
//! `path_moved` (`path`, `from`, `to`, `which` = `local`|`peer`|`none`, `stall_ms`,
//! `resend_bytes`), `session_resumed` (`stall_ms`), `server_moved` (`to`),
//! `session_closed` (`outcome`, `error`, `sent`, `received`, `seconds`).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::{Map, Value};

static ENABLED: AtomicBool = AtomicBool::new(false);
static START: OnceLock<Instant> = OnceLock::new();

/// Turns JSON events on for the rest of the process.
pub fn enable() {
    START.get_or_init(Instant::now);
    ENABLED.store(true, Ordering::Relaxed);
}

/// True when events are being written.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Writes one event line with `fields` (an object) if events are on.
pub fn emit(kind: &str, fields: Value) {
    if !enabled() {
        return;
    }
    let mut obj = Map::new();
    obj.insert("event".into(), kind.into());
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    obj.insert("t".into(), ((t * 1e6).round() / 1e6).into());
    if let Value::Object(f) = fields {
        obj.extend(f);
    }
    let line = Value::Object(obj).to_string();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}
