//! A long outage (a laptop's sleep): the client's link is down for 60 s while a paced upload
//! runs, and the server changes its address meanwhile (its RECONNECT cannot reach the client;
//! the name service, here the client's hosts file, learns the new address). When the link
//! comes back the session must resume within 1.5 × (`--retry-interval` + 2 RTT) of the link's
//! return, found by name, byte-identical, and both ends say with `-v` how long the peer was
//! away.
//!
//! This test is long (about 70 s, most of it the outage itself); it needs root and prints
//! `SKIPPED: ...` elsewhere (see `tests/lab/mod.rs`).

mod lab;

use std::thread;
use std::time::{Duration, Instant};

use lab::uploads::{moved_to, wait_all_moved, Uploads};
use lab::{HostsFile, Lab, Topology};

/// How long the link is down.
const OUTAGE: Duration = Duration::from_secs(60);
/// The client's `--retry-interval`.
const RETRY: Duration = Duration::from_secs(1);

/// The seconds of the first "after XmYYs away" (or "after X.Ys away") in `log`.
fn away_secs(log: &str) -> Option<f64> {
    log.lines().find_map(|l| {
        let (before, _) = l.split_once(" away")?;
        let t = before.rsplit_once("after ")?.1;
        match t.split_once('m') {
            Some((m, s)) => {
                Some(m.parse::<f64>().ok()? * 60.0 + s.strip_suffix('s')?.parse::<f64>().ok()?)
            }
            None => t.strip_suffix('s')?.trim().parse().ok(),
        }
    })
}

#[test]
fn sixty_seconds_without_a_link_while_the_server_moves() {
    let Some(lab) = Lab::up(
        "sixty_seconds_without_a_link_while_the_server_moves",
        Topology::Mobile,
    ) else {
        return;
    };
    let hosts = HostsFile::new(&lab.ns("cli"));
    hosts.set("msock-server", "10.99.2.2");
    let retry = format!("{}ms", RETRY.as_millis());
    let up = Uploads::start(
        &lab,
        1,
        &["cli"],
        "msock-server",
        &["--retry-interval", &retry],
    );
    up.wait_established(Duration::from_secs(20));
    thread::sleep(Duration::from_millis(500));
    let down = Instant::now();
    lab.link_down("cli", "eth0");
    thread::sleep(Duration::from_secs(5));
    let new_srv = lab.addr_move("srv", "eth0");
    hosts.set("msock-server", &new_srv.to_string());
    thread::sleep(OUTAGE.saturating_sub(down.elapsed()));
    let back = Instant::now();
    lab.link_up("cli", "eth0");
    let seen = wait_all_moved(&up.clients, back, Duration::from_secs(30));
    let client = &up.clients[0].proc;
    let Some(took) = seen[0] else {
        panic!(
            "no flowpath within 30 s of the link's return; client:\n{}\nserver:\n{}",
            client.stderr(),
            up.server.stderr()
        );
    };
    eprintln!("link down {OUTAGE:?}: flowpath back {took:?} after the link's return");
    assert_eq!(
        moved_to(client).as_deref(),
        Some(new_srv.to_string().as_str())
    );
    // RTT is well under a millisecond in this lab; the slack is for this machine's load.
    let bound = RETRY.mul_f64(1.5);
    assert!(
        took <= bound,
        "flowpath back {took:?} after the link's return (bound {bound:?}); client:\n{}",
        client.stderr()
    );
    // Both ends say how long the peer was away: about the outage.
    let server_log = up.server.stderr();
    thread::sleep(Duration::from_millis(200));
    for (end, log) in [("client", client.stderr()), ("server", server_log)] {
        let away = away_secs(&log).unwrap_or_else(|| panic!("{end} never said how long:\n{log}"));
        eprintln!("{end}: the peer was away {away} s");
        assert!(
            (OUTAGE.as_secs_f64() - 1.0..OUTAGE.as_secs_f64() + 10.0).contains(&away),
            "{end} says the peer was away {away} s; log:\n{log}"
        );
    }
    thread::sleep(Duration::from_millis(500));
    up.finish();
}
