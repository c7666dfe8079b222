//! tmux as the terminal of the tests that drive a `--pty` shell: a tmux server with a socket
//! of its own (`-L`), one session `t` whose pane runs a script, and what a person at that
//! terminal sees (`capture-pane`) and does (`send-keys`, `resize-window`).

use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// How long [`Tmux::wait_line`] and [`Tmux::wait_text`] wait.
const WAIT: Duration = Duration::from_secs(20);

/// A tmux server of the test's own; killed when dropped.
pub struct Tmux(String);

impl Tmux {
    /// A server named after `tag` and this process (nothing runs until [`Tmux::start`]).
    pub fn new(tag: &str) -> Tmux {
        Tmux(format!("msock-{tag}-{}", std::process::id()))
    }

    /// tmux's arguments that open session `t`, `w` columns by `h` rows, running `sh -c script`
    /// (for a caller that starts tmux elsewhere, e.g. inside a network namespace).
    pub fn start_args(&self, w: u16, h: u16, script: &str) -> Vec<String> {
        let (w, h) = (w.to_string(), h.to_string());
        let args = [
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &w,
            "-y",
            &h,
            "sh",
            "-c",
        ];
        let mut all = self.base_args();
        all.extend(args.iter().map(|s| s.to_string()));
        all.push(script.to_owned());
        all
    }

    /// Starts session `t` here; panics with tmux's error if it does not start.
    pub fn start(&self, w: u16, h: u16, script: &str) {
        let o = Command::new("tmux")
            .args(self.start_args(w, h, script))
            .output()
            .expect("run tmux");
        assert!(
            o.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Runs a tmux command against this server.
    pub fn cmd(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(self.base_args())
            .args(args)
            .output()
            .expect("run tmux")
    }

    /// What the pane shows.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", "t"]).stdout).into_owned()
    }

    /// Waits (bounded) until the screen shows a line equal to `line` (trimmed).
    pub fn wait_line(&self, line: &str) -> bool {
        self.wait(|s| s.lines().any(|l| l.trim() == line))
    }

    /// Waits (bounded) until the screen contains `text`.
    pub fn wait_text(&self, text: &str) -> bool {
        self.wait(|s| s.contains(text))
    }

    /// Types `s` and Enter.
    pub fn type_line(&self, s: &str) {
        self.cmd(&["send-keys", "-t", "t", "-l", s]);
        self.cmd(&["send-keys", "-t", "t", "Enter"]);
    }

    /// Resizes the window (the program in the pane gets SIGWINCH).
    pub fn resize(&self, w: u16, h: u16) {
        let (w, h) = (w.to_string(), h.to_string());
        self.cmd(&["resize-window", "-t", "t", "-x", &w, "-y", &h]);
    }

    /// The line-editing mode of the pane's terminal: "icanon", or "-icanon" (raw).
    pub fn pane_mode(&self) -> String {
        let out = self
            .cmd(&["display", "-p", "-t", "t", "#{pane_tty}"])
            .stdout;
        let tty = String::from_utf8_lossy(&out).trim().to_owned();
        let o = Command::new("stty")
            .args(["-a", "-F", &tty])
            .output()
            .expect("run stty");
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.split([' ', ';', '\n'])
            .find(|w| w.trim_start_matches('-') == "icanon")
            .unwrap_or("")
            .to_owned()
    }

    /// Waits until the pane's terminal mode is `mode` (see [`Tmux::pane_mode`]).
    pub fn wait_mode(&self, mode: &str) -> bool {
        let deadline = Instant::now() + WAIT;
        while self.pane_mode() != mode {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        true
    }

    fn base_args(&self) -> Vec<String> {
        ["-L", &self.0, "-f", "/dev/null"]
            .map(str::to_owned)
            .to_vec()
    }

    fn wait(&self, done: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if done(&self.screen()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}
