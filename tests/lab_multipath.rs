//! Multipath in real network namespaces: the client of the `TwoPath` lab has `wifi0` and
//! `cell0` (both through the router to the server); `msock connect` with an interface policy
//! (`--stripe`, `--prefer-wifi`, `--iface`) uploads a payload to `msock listen --recv-only`.
//! Besides a byte-identical copy and exit status 0 on both sides, the tests read the
//! interfaces' `tx_bytes` counters in the client's namespace to check which interfaces
//! really carried the data, also while links go down and come back.
//!
//! They need root; elsewhere they print `SKIPPED: ...` and pass (see `tests/lab/mod.rs`).
//! Run with `cargo test --test lab_multipath -- --nocapture` to see the timelines.

mod lab;

use std::fs::File;
use std::process::Stdio;
use std::thread::sleep;
use std::time::{Duration, Instant};

use lab::{assert_same_file, payload, Lab, LabProc, Topology};
use tempfile::NamedTempFile;

const MB: u64 = 1 << 20;
/// What an interface may send while it carries no flowpath: ARP, IPv6 neighbour discovery
/// and router solicitations, a stray control datagram. Far below one flowpath's data.
const QUIET: u64 = 64 << 10;

/// The client's `tx_bytes` on both interfaces at one moment.
#[derive(Clone, Copy, Debug)]
struct Tx {
    wifi: u64,
    cell: u64,
}

impl Tx {
    fn now(lab: &Lab) -> Tx {
        Tx {
            wifi: lab.tx_bytes("cli", "wifi0"),
            cell: lab.tx_bytes("cli", "cell0"),
        }
    }

    /// What was sent since `earlier`.
    fn since(self, earlier: Tx) -> Tx {
        Tx {
            wifi: self.wifi - earlier.wifi,
            cell: self.cell - earlier.cell,
        }
    }
}

impl std::fmt::Display for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "wifi0 {}, cell0 {}", human(self.wifi), human(self.cell))
    }
}

/// `1.23 MB` or, below a megabyte, `456 KB`.
fn human(bytes: u64) -> String {
    if bytes < MB {
        format!("{} KB", bytes.div_ceil(1024))
    } else {
        format!("{:.2} MB", bytes as f64 / MB as f64)
    }
}

/// An upload in progress: `msock -v listen 0 -4 --recv-only` in `srv`, `msock -v connect`
/// with the policy flags in `cli`, stdin from a payload file.
struct Transfer {
    server: LabProc,
    client: LabProc,
    input: NamedTempFile,
    output: NamedTempFile,
    size: u64,
    started: Instant,
}

impl Transfer {
    fn start(lab: &Lab, policy: &[&str], size: u64, limit: Duration) -> Transfer {
        let input = payload(size, 0x5eed ^ size);
        let output = NamedTempFile::new().expect("temp file");
        let msock = env!("CARGO_BIN_EXE_msock");
        let mut cmd = lab.exec(
            "srv",
            msock,
            &["-v", "listen", "0", "-4", "--recv-only", "--json-events"],
        );
        cmd.stdin(Stdio::null()).stdout(output.reopen().unwrap());
        let mut server = lab.spawn(cmd, limit);
        let port = server.wait_stderr_line("msock: listening on 0.0.0.0:", Duration::from_secs(10));
        let dest = format!("10.99.2.2:{}", port.trim());
        let args = [&["-v", "connect", dest.as_str()], policy].concat();
        let mut cmd = lab.exec("cli", msock, &args);
        cmd.stdin(File::open(input.path()).unwrap())
            .stdout(Stdio::null());
        let client = lab.spawn(cmd, limit);
        Transfer {
            server,
            client,
            input,
            output,
            size,
            started: Instant::now(),
        }
    }

    /// Bytes the server has written so far.
    fn received(&self) -> u64 {
        std::fs::metadata(self.output.path()).map_or(0, |m| m.len())
    }

    /// Panics unless the transfer is still under way (the timeline needs it to be).
    fn assert_running(&self, when: &str) {
        let got = self.received();
        assert!(
            got < self.size,
            "{when}: the transfer should still be running, but all {got} bytes had arrived \
             after {:.1} s (make the payload larger or the shaping slower)",
            self.started.elapsed().as_secs_f64()
        );
    }

    /// Both exit 0 and the bytes arrived unchanged; returns how long it took.
    fn finish(mut self) -> Duration {
        self.client.expect_exit(0);
        let took = self.started.elapsed();
        self.server.expect_exit(0);
        assert_same_file(self.input.path(), self.output.path());
        eprintln!(
            "{} MB in {:.2} s ({:.0} Mbit/s)",
            self.size / MB,
            took.as_secs_f64(),
            self.size as f64 * 8e-6 / took.as_secs_f64()
        );
        eprintln!("{}", self.logs());
        took
    }

    /// Both sides' stderr, for failure messages.
    fn logs(&self) -> String {
        let text = |p: &LabProc| {
            let lines: Vec<String> = p
                .stderr()
                .lines()
                .filter(|l| !l.starts_with('{'))
                .map(|l| format!("    {l}\n"))
                .collect();
            lines.concat()
        };
        format!(
            "--- client stderr:\n{}--- server stderr:\n{}",
            text(&self.client),
            text(&self.server)
        )
    }
}

/// A timeline of what happened, printed as it goes and shown with every failed check: the
/// test's notes, and the -v lines of both sides as they appear (approximately timed).
struct Timeline {
    start: Instant,
    lines: Vec<String>,
    /// Lines of (client, server) stderr already in the timeline.
    seen: (usize, usize),
}

impl Timeline {
    fn new() -> Timeline {
        Timeline {
            start: Instant::now(),
            lines: Vec::new(),
            seen: (0, 0),
        }
    }

    fn note(&mut self, what: impl std::fmt::Display) {
        let line = format!("{:6.2} s  {what}", self.start.elapsed().as_secs_f64());
        eprintln!("  {line}");
        self.lines.push(line);
    }

    /// Adds the stderr lines `t`'s processes wrote since the last call.
    fn follow(&mut self, t: &Transfer) {
        for (who, text) in [("client", t.client.stderr()), ("server", t.server.stderr())] {
            let seen = if who == "client" {
                &mut self.seen.0
            } else {
                &mut self.seen.1
            };
            let lines: Vec<String> = text.lines().map(String::from).collect();
            let new = lines.get(*seen..).unwrap_or_default().to_vec();
            *seen = lines.len();
            for l in new.into_iter().filter(|l| !l.starts_with('{')) {
                self.note(format_args!("{who}: {l}"));
            }
        }
    }

    /// Notes what was sent since `since` and what the server wrote so far.
    fn sent(&mut self, what: &str, lab: &Lab, t: &Transfer, since: Tx) -> Tx {
        let now = Tx::now(lab);
        self.follow(t);
        self.note(format_args!(
            "{what}: sent {} (server wrote {:.1} MB)",
            now.since(since),
            t.received() as f64 / MB as f64
        ));
        now
    }

    /// Polls every 50 ms until `done(sent since `since`)` or `timeout`; returns how long it
    /// took (None: timed out, or the transfer ended first) and the counters then.
    fn wait_for(
        &mut self,
        lab: &Lab,
        t: &Transfer,
        since: Tx,
        timeout: Duration,
        done: impl Fn(Tx) -> bool,
    ) -> (Option<Duration>, Tx) {
        let begin = Instant::now();
        loop {
            let now = Tx::now(lab);
            self.follow(t);
            if done(now.since(since)) {
                return (Some(begin.elapsed()), now);
            }
            if begin.elapsed() > timeout || t.received() >= t.size {
                return (None, now);
            }
            sleep(Duration::from_millis(50));
        }
    }

    fn show(&self) -> String {
        self.lines.join("\n")
    }
}

/// The lab with the client's uploads shaped: `wifi_bit_s` out of wifi0, `cell_bit_s` out of
/// cell0.
fn two_path_lab(test: &str, wifi_bit_s: u64, cell_bit_s: u64) -> Option<Lab> {
    let lab = Lab::up(test, Topology::TwoPath)?;
    lab.shape("cli", "wifi0", wifi_bit_s);
    lab.shape("cli", "cell0", cell_bit_s);
    Some(lab)
}

/// `--stripe` over wifi0 (400 Mbit/s) and cell0 (150 Mbit/s): both carry a share of 200 MB
/// that matches their rates.
#[test]
fn stripe_200mb_uses_both_interfaces() {
    const SIZE: u64 = 200 * MB;
    let Some(lab) = two_path_lab(
        "stripe_200mb_uses_both_interfaces",
        400_000_000,
        150_000_000,
    ) else {
        return;
    };
    let before = Tx::now(&lab);
    let t = Transfer::start(&lab, &["--stripe"], SIZE, Duration::from_secs(40));
    let took = t.finish();
    let sent = Tx::now(&lab).since(before);
    let total = (sent.wifi + sent.cell) as f64;
    let wifi_share = sent.wifi as f64 / total;
    eprintln!(
        "stripe: {sent} in {:.2} s; wifi0 share {:.0}% (tbf rates: 73%)",
        took.as_secs_f64(),
        wifi_share * 100.0
    );
    assert!(
        total >= SIZE as f64,
        "the interfaces sent {total} bytes, less than the {SIZE}-byte payload?"
    );
    for (name, bytes) in [("wifi0", sent.wifi), ("cell0", sent.cell)] {
        assert!(
            bytes >= SIZE * 15 / 100,
            "{name} carried only {bytes} bytes of {SIZE} ({sent}): --stripe should use both"
        );
    }
    // wifi0 may send 400/550 = 73% of what both can; allow for the scheduler's slack.
    assert!(
        (0.55..=0.88).contains(&wifi_share),
        "wifi0 carried {:.0}% ({sent}), but its rate is 73% of the total",
        wifi_share * 100.0
    );
}

/// `--stripe`, then cell0 goes down after a second and comes back 1.5 s later: the transfer
/// completes, wifi0 carries on alone meanwhile, and cell0 is used again once it is back.
#[test]
fn stripe_survives_a_link_going_down() {
    const SIZE: u64 = 200 * MB;
    let Some(lab) = two_path_lab(
        "stripe_survives_a_link_going_down",
        150_000_000,
        100_000_000,
    ) else {
        return;
    };
    let t0 = Tx::now(&lab);
    let t = Transfer::start(&lab, &["--stripe"], SIZE, Duration::from_secs(40));
    let mut tl = Timeline::new();
    sleep(Duration::from_secs(1));
    t.assert_running("before cell0 goes down");
    lab.link_down("cli", "cell0");
    tl.note("cell0 down");
    // Read after the link went down: cell0's counter stands still from now on.
    let at_down = tl.sent("until cell0 went down", &lab, &t, t0);
    sleep(Duration::from_millis(1500));
    t.assert_running("before cell0 comes back");
    let at_up = tl.sent("while cell0 was down", &lab, &t, at_down);
    lab.link_up("cli", "cell0");
    tl.note("cell0 up");
    let (rejoined, _) = tl.wait_for(&lab, &t, at_up, Duration::from_secs(20), |d| {
        d.cell >= 5 * MB
    });
    match rejoined {
        Some(after) => tl.note(format_args!(
            "cell0 carried 5 MB again, {:.2} s after it came up",
            after.as_secs_f64()
        )),
        None => tl.note("cell0 did not carry 5 MB again"),
    }
    // Seen what we wanted to see: let the rest go fast.
    lab.shape("cli", "wifi0", 0);
    lab.shape("cli", "cell0", 0);
    let logs = t.logs();
    t.finish();
    let end = Tx::now(&lab);
    tl.note(format_args!(
        "done; since cell0 came back: {}",
        end.since(at_up)
    ));
    let (before, down, after) = (at_down.since(t0), at_up.since(at_down), end.since(at_up));
    let tl = tl.show();
    assert!(
        before.cell >= 3 * MB && before.wifi >= 3 * MB,
        "both interfaces should carry data before cell0 goes down: {before}\n{tl}\n{logs}"
    );
    assert!(down.cell <= QUIET, "cell0 was down but sent {down}?\n{tl}");
    // wifi0 alone at 150 Mbit/s for 1.5 s could carry 27 MB; it has to take over the stream
    // (including what was stuck on cell0) rather than wait for cell0.
    assert!(
        down.wifi >= 10 * MB,
        "while cell0 was down wifi0 sent only {down}: it did not carry on alone\n{tl}\n{logs}"
    );
    assert!(
        rejoined.is_some() && after.cell >= 5 * MB,
        "cell0 came back but carried only {after} afterwards (while the transfer was shaped: \
         {rejoined:?}): --stripe should use it again\n{tl}\n{logs}"
    );
}

/// `--prefer-wifi` at 80 Mbit/s on both: only wifi0 carries data; when it goes down the
/// session moves to cell0; when it comes back the session returns to wifi0 and cell0 falls
/// silent.
#[test]
fn prefer_wifi_falls_back_and_returns() {
    const SIZE: u64 = 150 * MB;
    let Some(lab) = two_path_lab("prefer_wifi_falls_back_and_returns", 80_000_000, 80_000_000)
    else {
        return;
    };
    let t0 = Tx::now(&lab);
    let t = Transfer::start(&lab, &["--prefer-wifi"], SIZE, Duration::from_secs(50));
    let mut tl = Timeline::new();
    sleep(Duration::from_millis(1500));
    t.assert_running("while on wifi0");
    let a = tl.sent("on wifi0", &lab, &t, t0);
    let first = a.since(t0);
    let fail = |tl: &Timeline, t: &Transfer| format!("{}\n{}", tl.show(), t.logs());
    assert!(
        first.wifi >= 5 * MB,
        "wifi0 should carry the data: {first}\n{}",
        fail(&tl, &t)
    );
    assert!(
        first.cell <= QUIET,
        "--prefer-wifi with wifi0 up, but cell0 sent {first}\n{}",
        fail(&tl, &t)
    );

    lab.link_down("cli", "wifi0");
    tl.note("wifi0 down");
    let (fallback, _) = tl.wait_for(&lab, &t, a, Duration::from_secs(5), |d| d.cell >= 4 * MB);
    let Some(fallback) = fallback else {
        panic!(
            "wifi0 went down, but cell0 did not carry 4 MB within 5 s\n{}",
            fail(&tl, &t)
        );
    };
    tl.note(format_args!(
        "cell0 carried 4 MB {:.2} s after wifi0 went down",
        fallback.as_secs_f64()
    ));
    sleep(Duration::from_secs(2).saturating_sub(fallback));
    t.assert_running("before wifi0 comes back");
    let b = tl.sent("while wifi0 was down", &lab, &t, a);

    lab.link_up("cli", "wifi0");
    tl.note("wifi0 up");
    // Now ~3.2 s: the first connect on wifi0 starts in the ~10 ms between `link set up` and
    // the routes' return, where the kernel takes the server for on-link (the socket is bound
    // to the device) and the attempt hangs until ARP for 10.99.2.2 fails after 3 s.
    let (back, _) = tl.wait_for(&lab, &t, b, Duration::from_secs(2), |d| d.wifi >= MB);
    let Some(back) = back else {
        panic!(
            "wifi0 came back, but in 2 s it did not carry 1 MB: no (timely) return\n{}",
            fail(&tl, &t)
        );
    };
    tl.note(format_args!(
        "wifi0 carries data again, {:.2} s after it came up",
        back.as_secs_f64()
    ));
    // cell0's flowpath closes once wifi0's carries data; let its last bytes drain.
    sleep(Duration::from_secs(1));
    let c = tl.sent("switching back", &lab, &t, b);
    sleep(Duration::from_millis(1500));
    t.assert_running("after the return to wifi0");
    let d = tl.sent("back on wifi0 (1.5 s)", &lab, &t, c);
    let window = d.since(c);
    assert!(
        window.wifi >= 4 * MB,
        "wifi0 is back but in 1.5 s sent only {window}\n{}",
        fail(&tl, &t)
    );
    assert!(
        window.cell <= QUIET,
        "wifi0 is back and carries the data, but cell0 still sent {window}\n{}",
        fail(&tl, &t)
    );
    // Seen what we wanted to see: let the rest go fast (still on wifi0 only).
    lab.shape("cli", "wifi0", 0);
    let logs = fail(&tl, &t);
    t.finish();
    let tail = Tx::now(&lab).since(d);
    assert!(
        tail.cell <= QUIET,
        "cell0 sent {tail} after the return to wifi0\n{logs}"
    );
}

/// `--iface cell0`: everything goes over cell0, although wifi0 has the default route.
#[test]
fn iface_pins_one_interface() {
    const SIZE: u64 = 40 * MB;
    let Some(lab) = two_path_lab("iface_pins_one_interface", 200_000_000, 200_000_000) else {
        return;
    };
    let before = Tx::now(&lab);
    let t = Transfer::start(&lab, &["--iface", "cell0"], SIZE, Duration::from_secs(30));
    t.finish();
    let sent = Tx::now(&lab).since(before);
    eprintln!("--iface cell0: {sent}");
    assert!(
        sent.cell >= SIZE,
        "cell0 sent only {} ({sent}), less than the {SIZE}-byte payload",
        human(sent.cell)
    );
    assert!(sent.wifi <= QUIET, "--iface cell0, but wifi0 sent {sent}");
}
