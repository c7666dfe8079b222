//! What the sender shows while it works: an indicatif bar on a terminal (percentage, bytes,
//! rate, ETA, files, flowpaths in use, current file), periodic lines with -v elsewhere,
//! nothing with --quiet. Sizes and rates are in SI units (kB, MB, GB; MB/s) everywhere, as
//! in the summary.

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

/// `n` bytes in SI units, one decimal above 1 kB: `512 B`, `75.9 MB`, `1.2 GB`.
pub fn si_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    // Round first, so that 999.96 kB reads 1.0 MB rather than 1000.0 kB.
    while (v * 10.0).round() / 10.0 >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// A rate in MB/s (SI), the unit of every rate send-file prints.
pub fn si_rate(bytes: u64, secs: f64) -> String {
    format!("{:.1} MB/s", bytes as f64 / secs.max(1e-6) / 1e6)
}

/// Shared counters between the transfer and its display.
pub struct Progress {
    /// File bytes handed to the session so far in this run.
    pub sent: AtomicU64,
    /// File bytes this run will send (known once the receiver answered).
    pub total: AtomicU64,
    /// File bytes the receiver already held from an earlier run (resumed, not sent again).
    resumed: AtomicU64,
    /// Files (and streams) in the offer.
    files: AtomicUsize,
    /// Files done: verified by the receiver, or skipped as identical.
    files_done: AtomicUsize,
    /// [`Progress::plan`] was called.
    planned: AtomicBool,
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
                ProgressStyle::with_template("{bar:20} {wide_msg}").expect("valid template"),
            );
            b
        });
        Progress {
            sent: AtomicU64::new(0),
            total: AtomicU64::new(0),
            resumed: AtomicU64::new(0),
            files: AtomicUsize::new(0),
            files_done: AtomicUsize::new(0),
            planned: AtomicBool::new(false),
            paths: AtomicUsize::new(0),
            file: Mutex::new(String::new()),
            display,
            bar,
            done: AtomicBool::new(false),
        }
    }

    /// What this run does, once the receiver answered: `files` in the offer, of which
    /// `skipped` are already there; `resumed` bytes held from an earlier run; `to_send`
    /// bytes to send now. A resumption is said at once (and the bar starts there).
    pub(crate) fn plan(&self, files: usize, skipped: usize, resumed: u64, to_send: u64) {
        self.files.store(files, Ordering::Relaxed);
        self.files_done.store(skipped, Ordering::Relaxed);
        self.resumed.store(resumed, Ordering::Relaxed);
        self.total.store(to_send, Ordering::Relaxed);
        self.planned.store(true, Ordering::Relaxed);
        if resumed > 0 {
            self.println(&format!(
                "resuming at {} of {}",
                si_bytes(resumed),
                si_bytes(resumed.saturating_add(to_send))
            ));
        }
    }

    /// One more file is done (the receiver's verdict came).
    pub(crate) fn file_done(&self) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
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

    /// Stops the ticker; the bar stays until [`Progress::clear`] or [`Progress::abandon`].
    pub fn finish(&self) {
        self.done.store(true, Ordering::Relaxed);
    }

    /// Removes the bar (the transfer ended; its summary follows).
    pub fn clear(&self) {
        self.finish();
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    /// Leaves the bar as it last was and ends its line (the transfer was interrupted).
    pub fn abandon(&self) {
        self.finish();
        if let Some(b) = &self.bar {
            b.abandon();
            // The bar's line ends here; what follows starts on a line of its own.
            eprintln!();
        }
    }

    /// Where the transfer stands, as `42% (75.9 MB of 180.0 MB)` (resumed bytes count as
    /// done); None before the receiver answered the offer.
    pub fn position(&self) -> Option<String> {
        if !self.planned.load(Ordering::Relaxed) {
            return None;
        }
        let (done, all) = self.bytes();
        Some(format!(
            "{}% ({} of {})",
            percent(done, all),
            si_bytes(done),
            si_bytes(all)
        ))
    }

    /// Bytes done (resumed and sent) and in all.
    fn bytes(&self) -> (u64, u64) {
        let resumed = self.resumed.load(Ordering::Relaxed);
        let sent = self.sent.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed).max(sent);
        (resumed.saturating_add(sent), resumed.saturating_add(total))
    }

    /// The status line: percentage, bytes, rate of this run, ETA, files, paths, resumption,
    /// current file.
    fn status(&self, secs: f64) -> String {
        if !self.planned.load(Ordering::Relaxed) {
            return "waiting for the receiver's answer to the offer".into();
        }
        let (done, all) = self.bytes();
        let sent = self.sent.load(Ordering::Relaxed);
        let paths = self.paths.load(Ordering::Relaxed);
        // The most useful first: a narrow terminal cuts the end.
        let mut line = format!(
            "{:>3}% {}/{}, {}/{} files, {}",
            percent(done, all),
            si_bytes(done),
            si_bytes(all),
            self.files_done.load(Ordering::Relaxed),
            self.files.load(Ordering::Relaxed),
            si_rate(sent, secs)
        );
        let rate = sent as f64 / secs.max(1e-6);
        if sent > 0 && rate > 0.0 {
            line += &format!(", ETA {}", eta((all - done) as f64 / rate));
        }
        line += &format!(", {paths} path{}", if paths == 1 { "" } else { "s" });
        let resumed = self.resumed.load(Ordering::Relaxed);
        if resumed > 0 {
            line += &format!(", resumed at {}", si_bytes(resumed));
        }
        let file = self.file.lock().expect("progress lock");
        if !file.is_empty() {
            // Our own file names, but they may hold control characters.
            line += &format!(", {}", crate::proto::text::escape(&file));
        }
        line
    }

    fn draw(&self, started: Instant, last_line: &mut Instant) {
        let secs = started.elapsed().as_secs_f64();
        match self.display {
            Display::Bar => {
                if let Some(b) = &self.bar {
                    let (done, all) = self.bytes();
                    // An empty bar (not a full one) until the receiver answered.
                    let planned = self.planned.load(Ordering::Relaxed);
                    b.set_length(if planned { all } else { 1 });
                    b.set_position(if planned { done } else { 0 });
                    b.set_message(self.status(secs));
                }
            }
            Display::Lines if last_line.elapsed() >= Duration::from_secs(2) => {
                *last_line = Instant::now();
                eprintln!("msock: {}", self.status(secs));
            }
            _ => {}
        }
    }
}

/// Whole percent of `done` in `all` (100 when there is nothing to do).
fn percent(done: u64, all: u64) -> u64 {
    if all == 0 {
        100
    } else {
        (done as u128 * 100 / all as u128) as u64
    }
}

/// Seconds left as `8s`, `3m12s` or `2h05m`.
fn eta(secs: f64) -> String {
    crate::proto::text::clock(secs.clamp(0.0, 359_999.0).round() as u64)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_si_with_one_decimal() {
        assert_eq!(si_bytes(0), "0 B");
        assert_eq!(si_bytes(999), "999 B");
        assert_eq!(si_bytes(1000), "1.0 kB");
        assert_eq!(si_bytes(75_900_000), "75.9 MB");
        assert_eq!(si_bytes(999_960), "1.0 MB");
        assert_eq!(si_bytes(1_200_000_000), "1.2 GB");
        assert_eq!(si_rate(12_300_000, 1.0), "12.3 MB/s");
        assert_eq!(eta(8.4), "8s");
        assert_eq!(eta(192.0), "3m12s");
        assert_eq!(eta(7500.0), "2h05m");
    }

    #[test]
    fn status_has_percent_files_and_resumption_and_counts_resumed_bytes_as_done() {
        let p = Progress::new(Display::Summary);
        assert_eq!(p.position(), None);
        p.plan(340, 11, 75_900_000, 24_100_000);
        p.file_done();
        p.sent.store(4_100_000, Ordering::Relaxed);
        p.paths.store(2, Ordering::Relaxed);
        p.set_file("dir/a.bin");
        let s = p.status(1.0);
        assert_eq!(
            s,
            " 80% 80.0 MB/100.0 MB, 12/340 files, 4.1 MB/s, ETA 5s, 2 paths, resumed at \
             75.9 MB, dir/a.bin"
        );
        assert_eq!(p.position().unwrap(), "80% (80.0 MB of 100.0 MB)");
        assert!(!s.contains("MiB"));
    }
}
