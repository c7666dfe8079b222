//! Where results go: stdout, or the --logfile; human lines, one JSON document (`--json`), or
//! one JSON object per line (`--json-stream`). Interval rows of several streams (-P) are
//! printed together once every stream has reported that interval. A reader that goes away
//! (`msock bench | head -2`) ends the program cleanly, with status 0.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::sync::Mutex;

use serde_json::{json, Value};

use super::{json as js, text};
use crate::bench::client::{Dir, Show};
use crate::bench::model::Interval;
use crate::bench::run::Run;
use crate::cmd::Failure;

/// The --logfile, once opened (else stdout).
static LOGFILE: Mutex<Option<File>> = Mutex::new(None);

/// Sends what would go to stdout to `path` instead (appending).
pub(crate) fn set_logfile(path: &std::path::Path) -> Result<(), Failure> {
    let f = File::options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Failure::local(format!("cannot open --logfile {}: {e}", path.display())))?;
    *LOGFILE.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
    Ok(())
}

/// Writes `text` and a newline, now (a pipe reader sees each line as it happens). A closed
/// pipe ends the program with status 0, as for every msock command.
pub(crate) fn line(text: &str) {
    let r = match LOGFILE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        Some(f) => writeln!(f, "{text}").and_then(|_| f.flush()),
        None => {
            let mut out = io::stdout().lock();
            writeln!(out, "{text}").and_then(|_| out.flush())
        }
    };
    match r {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => tracing::warn!("cannot write the results: {e}"),
    }
}

/// How results are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Lines and tables.
    Human,
    /// One JSON document at the end.
    Json,
    /// One JSON object per line as things happen.
    JsonStream,
}

/// The intervals of one direction waiting for every stream's report: interval number →
/// each stream's (from 1) interval.
type Pending = BTreeMap<usize, BTreeMap<usize, Interval>>;

/// Where results go, for the test under way.
pub struct Output {
    /// How.
    pub mode: Mode,
    /// The name of the test under way, when a run has several (prefixes lines and events).
    pub test: Option<String>,
    /// Both directions are measured (lines say which).
    pub bidir: bool,
    /// Both ends run in this process (the built-in run): one CPU figure.
    pub same_process: bool,
    /// The error has been reported already (it is reported once).
    failed: Cell<bool>,
    /// Streams of the test under way.
    streams: Cell<usize>,
    /// Streams that have started, and their `start.connected` entries.
    started: RefCell<Vec<Value>>,
    started_count: Cell<usize>,
    /// The interval header was printed for this test.
    header: Cell<bool>,
    /// Per direction (forward, reverse): intervals counted per stream, and those waiting.
    counts: RefCell<[BTreeMap<usize, usize>; 2]>,
    pending: RefCell<[Pending; 2]>,
}

impl Output {
    /// Output in `mode`.
    pub fn new(mode: Mode) -> Self {
        Output {
            mode,
            test: None,
            bidir: false,
            same_process: false,
            failed: Default::default(),
            streams: Cell::new(1),
            started: Default::default(),
            started_count: Cell::new(0),
            header: Cell::new(false),
            counts: Default::default(),
            pending: Default::default(),
        }
    }

    /// A new test of `streams` streams begins.
    pub fn begin(&mut self, test: Option<String>, streams: usize) {
        self.test = test;
        self.streams.set(streams.max(1));
        self.started.borrow_mut().clear();
        self.started_count.set(0);
        self.header.set(false);
        *self.counts.borrow_mut() = Default::default();
        *self.pending.borrow_mut() = Default::default();
    }

    /// What stream `stream` (from 1) shows.
    pub fn stream(&self, stream: usize) -> StreamShow<'_> {
        StreamShow { out: self, stream }
    }

    fn event(&self, event: &str, data: Value) {
        let mut v = json!({"event": event, "data": data});
        if let Some(t) = &self.test {
            v["test"] = json!(t);
        }
        line(&v.to_string());
    }

    /// A human line, prefixed with the test's name when a run has several.
    pub fn say(&self, text: &str) {
        for l in text.lines() {
            line(&format!("{}{l}", self.prefix()));
        }
    }

    /// A test ended (`--json-stream`: its `end` object).
    pub fn end(&self, doc: &Value) {
        if self.mode == Mode::JsonStream {
            self.event("end", doc["end"].clone());
        }
    }

    /// The run failed (JSON modes: the error object or document, with `partial` results if
    /// any; human: nothing, the message goes to stderr). Only the first call counts.
    pub fn error(&self, message: &str, partial: Option<Value>) {
        if self.failed.replace(true) {
            return;
        }
        match self.mode {
            Mode::Human => {}
            Mode::Json => {
                let mut doc = partial.unwrap_or_else(|| json!({}));
                doc["error"] = json!(message);
                line(&serde_json::to_string_pretty(&doc).unwrap_or_default());
            }
            Mode::JsonStream => self.event("error", json!(message)),
        }
    }

    fn prefix(&self) -> String {
        match &self.test {
            Some(t) => format!("[{t}] "),
            None => String::new(),
        }
    }

    /// Prints the intervals of direction `d` that every stream has reported (all that wait,
    /// with `all`: the streams have ended).
    fn release(&self, d: usize, all: bool) {
        loop {
            let ready = {
                let mut pending = self.pending.borrow_mut();
                let Some((&k, got)) = pending[d].first_key_value() else {
                    return;
                };
                if got.len() < self.streams.get() && !all {
                    return;
                }
                pending[d].remove(&k).unwrap_or_default()
            };
            self.print_interval(d, &ready);
        }
    }

    fn print_interval(&self, d: usize, ivs: &BTreeMap<usize, Interval>) {
        let list: Vec<(usize, &Interval)> = ivs.iter().map(|(s, iv)| (*s, iv)).collect();
        match self.mode {
            Mode::Human => {
                if !self.header.replace(true) {
                    let retr = list
                        .iter()
                        .any(|(_, iv)| iv.paths.iter().any(|p| p.sender_tcp.is_some()));
                    self.say(&text::header(retr));
                }
                let tag = match (self.bidir, d) {
                    (false, _) => "",
                    (true, 0) => "  [TX-C]",
                    (true, _) => "  [RX-C]",
                };
                self.say(&text::interval_rows(&list, tag).join("\n"));
            }
            Mode::Json => {}
            Mode::JsonStream => {
                let v = if d == 1 && self.bidir {
                    let mut v = js::interval(&[], &list, false);
                    if let Some(o) = v.as_object_mut() {
                        o.remove("sum");
                    }
                    v
                } else {
                    js::interval(&list, &[], d == 0)
                };
                self.event("interval", v);
            }
        }
    }

    /// Every stream of the test has ended: prints the intervals still waiting.
    pub fn flush_intervals(&self) {
        self.release(0, true);
        self.release(1, true);
    }
}

/// What one stream of a test shows.
pub struct StreamShow<'a> {
    out: &'a Output,
    stream: usize,
}

impl Show for StreamShow<'_> {
    fn start(&self, run: &Run) {
        let out = self.out;
        out.started
            .borrow_mut()
            .extend(js::connected(run, self.stream));
        let n = out.started_count.get() + 1;
        out.started_count.set(n);
        match out.mode {
            Mode::Human => {
                if n == 1 {
                    let p = &run.params;
                    let what = match (p.reverse, p.bidir) {
                        (true, _) => "the listener sends",
                        (_, true) => "both send",
                        _ => "we send",
                    };
                    out.say(&format!(
                        "Connecting to {} over {} ({what})",
                        run.dest, run.protocol
                    ));
                }
                for p in &run.paths {
                    out.say(&format!(
                        "[{:>3}] local {} port {} connected to {} port {} (flowpath {}{})",
                        self.stream,
                        p.local.ip(),
                        p.local.port(),
                        p.peer.ip(),
                        p.peer.port(),
                        p.id.0,
                        p.iface
                            .as_deref()
                            .map_or(String::new(), |i| format!(", {i}"))
                    ));
                }
            }
            Mode::Json => {}
            Mode::JsonStream if n == out.streams.get() => {
                let mut start = js::start(std::slice::from_ref(run), None);
                start["connected"] = json!(out.started.borrow().clone());
                start["test_start"]["num_streams"] = json!(n);
                out.event("start", start);
            }
            Mode::JsonStream => {}
        }
    }

    fn interval(&self, dir: Dir, iv: &Interval) {
        let d = match dir {
            Dir::Forward => 0,
            Dir::Reverse => 1,
        };
        let k = {
            let mut counts = self.out.counts.borrow_mut();
            let c = counts[d].entry(self.stream).or_insert(0);
            *c += 1;
            *c - 1
        };
        self.out.pending.borrow_mut()[d]
            .entry(k)
            .or_default()
            .insert(self.stream, iv.clone());
        self.out.release(d, false);
    }
}
