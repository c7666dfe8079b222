//! What the sender shows while it works: an indicatif bar on a terminal (bytes, rate, ETA,
//! current file, flowpaths in use), periodic lines with -v elsewhere, nothing with --quiet.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::{mpsc, oneshot};

use crate::runtime::Snapshot;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// Nothing but errors.
    Quiet,
    /// A bar on stderr (a terminal).
    Bar,
    /// A line on stderr every few seconds (-v, not a terminal).
    Lines,
    /// Nothing while running (not a terminal, no -v); the summary still prints.
    Summary,
}

impl Display {
    /// The display for these flags and this stderr.
    pub fn choose(quiet: bool, verbose: bool) -> Display {
        if quiet {
            Display::Quiet
        } else if std::io::stderr().is_terminal() {
            Display::Bar
        } else if verbose {
            Display::Lines
        } else {
            Display::Summary
        }
    }
}

/// Shared counters between the transfer and its display.
pub struct Progress {
    /// File bytes handed to the session so far.
    pub sent: AtomicU64,
    /// File bytes this run will send (known once the receiver answered).
    pub total: AtomicU64,
    /// Flowpaths carrying data, as of the last look.
    pub paths: AtomicUsize,
    file: Mutex<String>,
    display: Display,
    bar: Option<ProgressBar>,
    done: AtomicBool,
}

impl Progress {
    /// A progress display of the given kind.
    pub fn new(display: Display) -> Progress {
        let bar = (display == Display::Bar).then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{bar:24} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {wide_msg}",
                )
                .expect("valid template"),
            );
            b
        });
        Progress {
            sent: AtomicU64::new(0),
            total: AtomicU64::new(0),
            paths: AtomicUsize::new(0),
            file: Mutex::new(String::new()),
            display,
            bar,
            done: AtomicBool::new(false),
        }
    }

    /// The file now being sent.
    pub(crate) fn set_file(&self, name: &str) {
        *self.file.lock().expect("progress lock") = name.to_owned();
    }

    /// Prints a message above the bar (or on its own line), unless quiet.
    pub fn println(&self, msg: &str) {
        match (&self.bar, self.display) {
            (_, Display::Quiet) => {}
            (Some(b), _) => b.println(format!("msock: {msg}")),
            (None, _) => eprintln!("msock: {msg}"),
        }
    }

    /// Stops the display (the ticker ends, the bar is cleared).
    pub fn finish(&self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn draw(&self, started: Instant, last_line: &mut Instant) {
        let sent = self.sent.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        let file = self.file.lock().expect("progress lock").clone();
        let paths = self.paths.load(Ordering::Relaxed);
        let paths = format!("{paths} path{}", if paths == 1 { "" } else { "s" });
        match self.display {
            Display::Bar => {
                if let Some(b) = &self.bar {
                    b.set_length(total.max(sent));
                    b.set_position(sent);
                    b.set_message(format!("{file} ({paths})"));
                }
            }
            Display::Lines if last_line.elapsed() >= Duration::from_secs(2) => {
                *last_line = Instant::now();
                let secs = started.elapsed().as_secs_f64().max(1e-3);
                eprintln!(
                    "msock: {sent} of {total} bytes ({:.1} MB/s), {paths}, {file}",
                    sent as f64 / secs / 1e6
                );
            }
            _ => {}
        }
    }
}

/// Updates the display until [`Progress::finish`], asking the session (through `probe`) how
/// many flowpaths carry data.
pub async fn ticker(p: &Progress, probe: mpsc::Sender<oneshot::Sender<Snapshot>>) {
    if matches!(p.display, Display::Quiet | Display::Summary) {
        return;
    }
    let started = Instant::now();
    let mut last_line = Instant::now();
    let mut every = tokio::time::interval(Duration::from_millis(200));
    while !p.done.load(Ordering::Relaxed) {
        every.tick().await;
        let (tx, rx) = oneshot::channel();
        if probe.send(tx).await.is_ok() {
            if let Ok(s) = rx.await {
                p.paths
                    .store(s.paths.iter().filter(|x| x.up).count(), Ordering::Relaxed);
            }
        }
        p.draw(started, &mut last_line);
    }
}
