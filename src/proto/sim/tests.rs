//! End-to-end tests of the session core over the simulated network.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{AppSpec, Fault, Link, Side, Sim, SimConfig};
use crate::proto::{Config, ErrorCode, Event, PathId, SessionError};

pub(super) const MB: usize = 1_000_000;

pub(super) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// How many seeds a soak test runs: `MSOCK_SIM_SEEDS`, or `default`.
pub(super) fn soak_seeds(default: u64) -> u64 {
    std::env::var("MSOCK_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Runs `cfg` to completion and checks both streams; returns the finished simulation.
pub(super) fn transfer(cfg: SimConfig) -> Sim {
    let mut sim = Sim::new(cfg);
    sim.run_to_completion();
    sim.assert_streams_identical();
    for side in [Side::Client, Side::Server] {
        assert_eq!(sim.log.count_events(side, &Event::Finished), 1, "{side:?}");
        assert_eq!(
            sim.log.count_events(side, &Event::PeerFinished),
            1,
            "{side:?}"
        );
    }
    sim
}

// ----- the harness itself ------------------------------------------------------------------

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let cfg = SimConfig::new(seed)
            .paths(vec![
                Link::new(10, 4 * MB as u64),
                Link::new(35, 2 * MB as u64),
            ])
            .fault(
                120,
                Fault::Kill {
                    path: PathId(1),
                    reattach_after: Some(ms(50)),
                },
            );
        let sim = transfer(cfg);
        (
            sim.now(),
            sim.log.frames_sent.clone(),
            sim.received(Side::Client).to_vec(),
        )
    };
    assert_eq!(run(3), run(3));
    assert_ne!(run(3).2, run(4).2, "the seed picks the data");
}

// ----- 1. open, transfer, half-close, close ------------------------------------------------

#[test]
fn transfer_with_half_close() {
    // The client's direction is five times faster: it finishes writing first, half-closes, and
    // keeps receiving the server's stream for a good while afterwards.
    // A small server send buffer keeps the server application itself writing throughout.
    let mut cfg = SimConfig::new(1)
        .paths(vec![Link::asymmetric(20, 20 * MB as u64, 4 * MB as u64)])
        .apps(AppSpec::sending(2 * MB), AppSpec::sending(2 * MB));
    cfg.server.send_buffer = 256 << 10;
    let sim = transfer(cfg);
    let [c, s] = &sim.log.milestones;
    let client_fin_acked = c.write_finished_at.expect("client FIN acknowledged");
    let server_closed = s.app_closed_at.expect("server app closed");
    assert!(
        s.peer_finished_at.expect("server read the client's FIN") < server_closed,
        "the server must see the client's FIN while still sending: {c:?} {s:?}"
    );
    assert!(client_fin_acked < server_closed, "{c:?} {s:?}");
    assert!(
        client_fin_acked < s.write_finished_at.unwrap(),
        "{c:?} {s:?}"
    );
    assert!(
        (c.read_at_write_finished as usize) < MB,
        "most of the server's stream must arrive after the client's half-close: {c:?}"
    );
    assert!(sim.client.write_finished() && sim.server.write_finished());
    assert!(sim.client.peer_finished() && sim.server.peer_finished());
    assert_eq!(
        sim.log.sent(Side::Client, "FIN"),
        1,
        "no loss, so no FIN re-send"
    );
    assert_eq!(sim.log.sent(Side::Server, "FIN"), 1);
}

#[test]
fn empty_streams_finish() {
    let sim = transfer(SimConfig::new(2).apps(AppSpec::sending(0), AppSpec::sending(0)));
    assert_eq!(sim.log.sent(Side::Client, "DATA"), 0);
    assert!(
        sim.now() < ms(200),
        "two round trips suffice, took {:?}",
        sim.now()
    );
}

#[test]
fn one_way_transfer_with_silent_server() {
    transfer(SimConfig::new(3).apps(AppSpec::sending(MB), AppSpec::sending(0)));
}

// ----- 2. several flowpaths, reordering ----------------------------------------------------

#[test]
fn reordering_across_three_paths() {
    for seed in 0..4 {
        let cfg = SimConfig::new(seed)
            .paths(vec![
                Link::new(5, MB as u64),
                Link::new(40, 2 * MB as u64),
                Link::new(120, MB as u64),
            ])
            .apps(AppSpec::sending(3 * MB), AppSpec::sending(3 * MB));
        let sim = transfer(cfg);
        for p in 0..3 {
            for s in [&sim.client, &sim.server] {
                let stats = s.path_stats(PathId(p)).expect("all paths survive");
                assert!(
                    stats.bytes_sent > 0,
                    "seed {seed}: path {p} carried no data"
                );
                assert!(
                    stats.srtt.is_some(),
                    "seed {seed}: path {p} has no RTT sample"
                );
            }
        }
    }
}

// ----- 3. losing whole flowpaths -----------------------------------------------------------

#[test]
fn kill_one_of_two_paths_mid_transfer() {
    let mut resent = 0;
    for seed in 0..20 {
        let mut r = StdRng::seed_from_u64(seed);
        let victim = PathId(r.gen_range(0..2));
        let cfg = SimConfig::new(seed)
            .paths(vec![
                Link::new(r.gen_range(5..30), 4 * MB as u64),
                Link::new(r.gen_range(5..80), 2 * MB as u64),
            ])
            .apps(AppSpec::sending(MB), AppSpec::sending(MB / 2))
            .fault(
                r.gen_range(30..230),
                Fault::Kill {
                    path: victim,
                    reattach_after: None,
                },
            );
        let sim = transfer(cfg);
        for s in [&sim.client, &sim.server] {
            assert_eq!(s.active_paths().collect::<Vec<_>>().len(), 1, "seed {seed}");
            assert!(s.path_stats(victim).is_none(), "seed {seed}");
            resent += s
                .active_paths()
                .map(|p| s.path_stats(p).unwrap().bytes_resent)
                .sum::<u64>();
        }
        // Every activation of the victim ended in exactly one close (it may die mid-attach).
        for side in [Side::Client, Side::Server] {
            let active = sim.log.count_events(side, &Event::PathActive(victim));
            let closed = sim.log.count_events(side, &Event::PathClosed(victim));
            assert_eq!(active, closed, "seed {seed} {side:?}");
        }
    }
    assert!(
        resent > 0,
        "no seed lost bytes in flight: the test exercises nothing"
    );
}

#[test]
fn kill_only_path_and_reattach_after_200ms() {
    let mut resent = 0;
    for seed in 0..20 {
        let mut r = StdRng::seed_from_u64(seed);
        let cfg = SimConfig::new(seed)
            .paths(vec![Link::new(r.gen_range(5..50), 5 * MB as u64)])
            .apps(AppSpec::sending(MB), AppSpec::sending(MB))
            .fault(
                r.gen_range(20..300),
                Fault::Kill {
                    path: PathId(0),
                    reattach_after: Some(ms(200)),
                },
            );
        let sim = transfer(cfg);
        assert_eq!(
            sim.log
                .count_events(Side::Server, &Event::PathActive(PathId(0))),
            2
        );
        assert_eq!(sim.log.attaches.len(), 1, "seed {seed}");
        assert_eq!(sim.log.attaches[0].result, Ok(PathId(0)), "seed {seed}");
        for s in [&sim.client, &sim.server] {
            resent += s.path_stats(PathId(0)).unwrap().bytes_resent;
        }
    }
    assert!(
        resent > 0,
        "no seed lost bytes in flight: the test exercises nothing"
    );
}

#[test]
fn repeated_kills_on_two_paths() {
    for seed in 0..10 {
        let mut r = StdRng::seed_from_u64(seed);
        let mut cfg = SimConfig::new(seed)
            .paths(vec![
                Link::new(10, 3 * MB as u64),
                Link::new(60, 3 * MB as u64),
            ])
            .apps(AppSpec::sending(2 * MB), AppSpec::sending(MB));
        for _ in 0..6 {
            let kill = Fault::Kill {
                path: PathId(r.gen_range(0..2)),
                reattach_after: Some(ms(r.gen_range(1..300))),
            };
            cfg = cfg.fault(r.gen_range(10..900), kill);
        }
        transfer(cfg);
    }
}

#[test]
fn address_change_without_telling_the_server() {
    // The client moves path 0 to a new connection; the server keeps writing into the old one
    // until the new attach replaces it.
    for seed in 0..10 {
        let cfg = SimConfig::new(seed)
            .paths(vec![Link::new(15, 4 * MB as u64)])
            .apps(AppSpec::sending(MB), AppSpec::sending(MB))
            .fault(
                100 + seed * 13,
                Fault::Reattach {
                    path: PathId(0),
                    link: Link::new(45, 2 * MB as u64),
                },
            );
        let sim = transfer(cfg);
        assert_eq!(
            sim.log
                .count_events(Side::Server, &Event::PathClosed(PathId(0))),
            1
        );
        assert_eq!(sim.log.attaches[0].result, Ok(PathId(0)));
    }
}

#[test]
fn partition_and_added_path() {
    for seed in 0..5 {
        let cfg = SimConfig::new(seed)
            .apps(AppSpec::sending(MB), AppSpec::sending(MB))
            .fault(
                50,
                Fault::Partition {
                    path: PathId(0),
                    duration: ms(2_000),
                },
            )
            .fault(
                300,
                Fault::AddPath {
                    link: Link::new(70, MB as u64),
                },
            );
        let sim = transfer(cfg);
        assert!(sim.client.path_stats(PathId(1)).unwrap().bytes_sent > 0);
    }
}

// ----- 4. slow readers, small windows ------------------------------------------------------

#[test]
fn slow_reader_with_small_window() {
    let window = 64 << 10;
    let cfg = SimConfig::new(4).recv_window(window).apps(
        AppSpec::sending(256 << 10).slow_reader(4 << 10, 2),
        AppSpec::sending(MB).slow_reader(1 << 10, 1),
    );
    let mut sim = Sim::new(cfg);
    sim.run_until("both finished, windows respected", |s| {
        s.assert_no_errors();
        for sess in [&s.client, &s.server] {
            assert!(sess.readable() <= window as u64, "{}", s.describe());
            assert!(
                sess.bytes_written() - sess.bytes_acked() <= Config::default().send_buffer as u64
            );
        }
        s.client.is_finished() && s.server.is_finished()
    });
    sim.assert_streams_identical();
    // 1 MB read at 4 KiB per 2 ms takes at least half a second: flow control held the server.
    assert!(sim.now() > ms(500), "{:?}", sim.now());
}

#[test]
fn tiny_window_and_tiny_send_buffer() {
    let mut cfg = SimConfig::new(5)
        .recv_window(3000)
        .paths(vec![Link::new(5, MB as u64), Link::new(25, MB as u64)])
        .apps(
            AppSpec::sending(200_000),
            AppSpec::sending(100_000).slow_reader(700, 1),
        );
    cfg.client.send_buffer = 5000;
    cfg.server.send_buffer = 5000;
    cfg.client.max_payload = 1000;
    transfer(cfg);
}

#[test]
fn slow_reader_with_path_failures() {
    for seed in 0..10 {
        let mut r = StdRng::seed_from_u64(seed);
        let mut cfg = SimConfig::new(seed)
            .recv_window(64 << 10)
            .paths(vec![
                Link::new(10, 2 * MB as u64),
                Link::new(30, 2 * MB as u64),
            ])
            .apps(
                AppSpec::sending(512 << 10).slow_reader(8 << 10, 3),
                AppSpec::sending(512 << 10).slow_reader(8 << 10, 3),
            );
        for _ in 0..4 {
            let kill = Fault::Kill {
                path: PathId(r.gen_range(0..2)),
                reattach_after: Some(ms(r.gen_range(10..200))),
            };
            cfg = cfg.fault(r.gen_range(10..400), kill);
        }
        transfer(cfg);
    }
}

// ----- 5. FIN and FIN_ACK lost with a dying path -------------------------------------------

#[test]
fn fin_lost_with_the_only_path() {
    for side in [Side::Client, Side::Server] {
        let cfg = SimConfig::new(6)
            .apps(AppSpec::sending(300_000), AppSpec::sending(200_000))
            .kill_on_frame(side, "FIN", Some(ms(200)));
        let sim = transfer(cfg);
        assert_eq!(
            sim.log.sent(side, "FIN"),
            2,
            "{side:?}: the FIN is re-sent once"
        );
        assert_eq!(sim.log.attaches.len(), 1);
    }
}

/// Two paths (10 ms and `second_ms` latency, 4 MB/s), both ends sending `bytes`; the connection
/// carrying the first `frame` written by the end `seed` picks (even: client) dies for good.
fn lose_on_one_of_two_paths(
    seed: u64,
    second_ms: u64,
    bytes: usize,
    frame: &'static str,
) -> (Side, SimConfig) {
    let side = if seed % 2 == 0 {
        Side::Client
    } else {
        Side::Server
    };
    let cfg = SimConfig::new(seed)
        .paths(vec![
            Link::new(10, 4 * MB as u64),
            Link::new(second_ms, 4 * MB as u64),
        ])
        .apps(AppSpec::sending(bytes), AppSpec::sending(bytes))
        .kill_on_frame(side, frame, None);
    (side, cfg)
}

#[test]
fn fin_lost_with_one_of_two_paths() {
    for seed in 0..6 {
        let (side, cfg) = lose_on_one_of_two_paths(seed, 40, 300_000, "FIN");
        let sim = transfer(cfg);
        assert!(
            sim.log.sent(side, "FIN") >= 2,
            "seed {seed}: FIN must be re-sent"
        );
    }
}

#[test]
fn fin_ack_lost_with_the_only_path() {
    for side in [Side::Client, Side::Server] {
        let cfg = SimConfig::new(7)
            .apps(AppSpec::sending(100_000), AppSpec::sending(100_000))
            .kill_on_frame(side, "FIN_ACK", Some(ms(200)));
        transfer(cfg);
    }
}

#[test]
fn fin_ack_lost_with_one_of_two_paths() {
    // The FIN may arrive on one path and its FIN_ACK leave on the other; if the FIN_ACK's path
    // dies, the FIN's path is still healthy, so the FIN is never re-sent by itself.
    for seed in 0..12 {
        let (_, mut cfg) = lose_on_one_of_two_paths(seed, 12, 200_000, "FIN_ACK");
        cfg.max_time = Duration::from_secs(60);
        transfer(cfg);
    }
}

// ----- 7. idle timeout ---------------------------------------------------------------------

#[test]
fn idle_timeout_fires_in_virtual_time() {
    let idle = Duration::from_secs(3);
    let mut cfg = SimConfig::new(15).apps(
        AppSpec::sending(0).never_closing(),
        AppSpec::sending(0).never_closing(),
    );
    cfg.server.idle_timeout = Some(idle);
    let mut sim = Sim::new(cfg);
    sim.run_until("server times out", |s| s.server.error().is_some());
    assert_eq!(sim.server.error(), Some(&SessionError::IdleTimeout(idle)));
    // The last traffic was the opening PING/PONG, well within the first 100 ms.
    assert!(
        sim.now() >= idle && sim.now() <= idle + ms(100),
        "{:?}",
        sim.now()
    );
    sim.run_until_client_fails("client told", ErrorCode::IdleTimeout);
}

#[test]
fn keepalive_holds_an_idle_session_open() {
    let mut cfg = SimConfig::new(16).apps(
        AppSpec::sending(0).never_closing(),
        AppSpec::sending(0).never_closing(),
    );
    for c in [&mut cfg.client, &mut cfg.server] {
        c.keepalive = Duration::from_secs(1);
        c.dead_time = Duration::from_secs(2);
    }
    let mut sim = Sim::new(cfg);
    sim.run_for(Duration::from_secs(30));
    sim.assert_no_errors();
    // A side pings after a second without hearing anything; every PING is answered, so no
    // path is ever declared dead.
    let pings = sim.log.sent(Side::Client, "PING") + sim.log.sent(Side::Server, "PING");
    let pongs = sim.log.sent(Side::Client, "PONG") + sim.log.sent(Side::Server, "PONG");
    assert!(pings >= 15, "{:?}", sim.log.frames_sent);
    assert!(pongs + 2 >= pings, "{:?}", sim.log.frames_sent);
    assert!(
        !sim.log
            .events
            .iter()
            .any(|(_, _, e)| matches!(e, Event::PathDead(_))),
        "a path that answers its PINGs is not dead"
    );
}

#[test]
fn idle_timeout_ignores_keepalives() {
    let idle = Duration::from_secs(3);
    let mut cfg = SimConfig::new(19).apps(
        AppSpec::sending(0).never_closing(),
        AppSpec::sending(0).never_closing(),
    );
    for c in [&mut cfg.client, &mut cfg.server] {
        c.keepalive = Duration::from_millis(500);
        c.idle_timeout = Some(idle);
    }
    let mut sim = Sim::new(cfg);
    sim.run_until("a side times out", |s| {
        s.client.error().is_some() || s.server.error().is_some()
    });
    assert!(sim.log.sent(Side::Client, "PING") + sim.log.sent(Side::Server, "PING") >= 4);
    assert!(
        sim.now() >= idle && sim.now() <= idle + ms(100),
        "{:?}",
        sim.now()
    );
}

#[test]
fn idle_timeout_does_not_fire_during_a_transfer() {
    let mut cfg = SimConfig::new(17)
        .paths(vec![Link::new(20, 200_000)])
        .apps(AppSpec::sending(MB), AppSpec::sending(0));
    cfg.client.idle_timeout = Some(Duration::from_secs(1));
    cfg.server.idle_timeout = Some(Duration::from_secs(1));
    let sim = transfer(cfg);
    assert!(
        sim.now() > Duration::from_secs(4),
        "the transfer outlasts the idle timeout"
    );
}

// ----- everything at once ------------------------------------------------------------------

/// A random scenario: 1–3 paths, random windows, buffers, payload sizes and readers, and a
/// handful of kills, reattaches, address changes, partitions and new paths.
fn random_scenario(seed: u64) -> SimConfig {
    let mut r = StdRng::seed_from_u64(seed ^ 0x5ce9_a210);
    let link = |r: &mut StdRng| Link::new(r.gen_range(1..150), r.gen_range(100_000..8_000_000));
    let paths = (0..r.gen_range(1..=3))
        .map(|_| link(&mut r))
        .collect::<Vec<_>>();
    let app = |r: &mut StdRng| {
        let spec = AppSpec::sending(r.gen_range(0..600_000));
        if r.gen_bool(0.3) {
            spec.slow_reader(r.gen_range(100..20_000), r.gen_range(1..10))
        } else {
            spec
        }
    };
    let mut cfg = SimConfig::new(seed)
        .paths(paths)
        .apps(app(&mut r), app(&mut r));
    cfg.sndbuf = r.gen_range(2_000..200_000);
    for c in [&mut cfg.client, &mut cfg.server] {
        c.recv_window = r.gen_range(1_000..1_000_000);
        c.send_buffer = r.gen_range(1_000..1_000_000);
        c.max_payload = r.gen_range(1..=64 * 1024);
        c.ack_every = r.gen_range(1..200_000);
    }
    let mut next_path = cfg.paths.len() as u32;
    for _ in 0..r.gen_range(0..8) {
        let path = PathId(r.gen_range(0..next_path));
        let fault = match r.gen_range(0..5) {
            0 | 1 => Fault::Kill {
                path,
                reattach_after: Some(ms(r.gen_range(1..500))),
            },
            2 => Fault::Reattach {
                path,
                link: link(&mut r),
            },
            3 => Fault::Partition {
                path,
                duration: ms(r.gen_range(1..3_000)),
            },
            _ => {
                next_path += 1;
                Fault::AddPath { link: link(&mut r) }
            }
        };
        cfg = cfg.fault(r.gen_range(0..2_000), fault);
    }
    cfg.max_time = Duration::from_secs(600);
    cfg
}

#[test]
fn random_scenarios() {
    for seed in 0..40 {
        transfer(random_scenario(seed));
    }
}

/// Many more random scenarios: `MSOCK_SIM_SEEDS=5000 cargo test --lib soak -- --ignored`.
#[test]
#[ignore = "slow; run explicitly"]
fn random_scenarios_soak() {
    let n = soak_seeds(1000);
    for seed in 40..40 + n {
        transfer(random_scenario(seed));
    }
}

#[test]
fn dead_time_detects_a_partition_and_the_client_moves() {
    // During a long partition the PING goes unanswered: after the dead time both ends retire
    // the path, the client attaches a replacement, and the transfer completes.
    let mut cfg = SimConfig::new(18)
        .apps(AppSpec::sending(4 * MB), AppSpec::sending(MB))
        .fault(
            300,
            Fault::Partition {
                path: PathId(0),
                duration: Duration::from_secs(600),
            },
        );
    for c in [&mut cfg.client, &mut cfg.server] {
        c.keepalive = Duration::from_secs(1);
        c.dead_time = Duration::from_secs(2);
    }
    let sim = transfer(cfg);
    let dead: Vec<_> = sim
        .log
        .events
        .iter()
        .filter(|(_, side, e)| *side == Side::Client && matches!(e, Event::PathDead(_)))
        .map(|(t, _, _)| *t)
        .collect();
    assert_eq!(dead.len(), 1, "{:?}", sim.log.events);
    // At worst the path is probed a keepalive after it went silent and declared dead a dead
    // time after that; at best the dead time runs from the partition itself.
    assert!(
        dead[0] >= ms(300 + 2_000) && dead[0] <= ms(300 + 1_000 + 2_000 + 100),
        "{:?}",
        dead[0]
    );
    assert!(sim.now() < Duration::from_secs(60), "{:?}", sim.now());
}
