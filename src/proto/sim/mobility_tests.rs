//! Mobility over the simulated network: the server moving (RECONNECT), both ends moving at
//! once, moves while the streams close, and a transfer under fifty random moves and failures.
//! The attacks on mobility (forged and replayed RECONNECTs, stale attach proofs after a move)
//! are in `mobility_attacks`.

use std::collections::HashSet;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::tests::{ms, soak_seeds, MB};
use super::{AppSpec, Fault, FaultOnFrame, Link, OnFrame, ServerMove, Side, Sim, SimConfig};
use crate::proto::{ControlAction, Event, PathId};

/// Runs `cfg` to completion; checks both streams, that each side finished exactly once and
/// that no frame was ever rejected. Returns the finished simulation.
fn clean_transfer(cfg: SimConfig) -> Sim {
    clean_transfer_until(cfg, |_| true)
}

/// [`clean_transfer`], but running on after both sessions finished until `also` holds.
fn clean_transfer_until(cfg: SimConfig, also: impl Fn(&Sim) -> bool) -> Sim {
    let mut sim = Sim::new(cfg);
    sim.run_until("both sessions finished, and more", |s| {
        s.assert_no_errors();
        s.client.is_finished() && s.server.is_finished() && also(s)
    });
    sim.assert_streams_identical();
    for side in [Side::Client, Side::Server] {
        assert_eq!(
            sim.log.count_events(side, &Event::Finished),
            1,
            "{side:?}\n{}",
            sim.describe()
        );
    }
    assert!(
        sim.log.errors.iter().all(Vec::is_empty),
        "rejected frames: {:?}",
        sim.log.errors
    );
    sim
}

/// Successful attaches the server completed at or after `t`, as (time, path).
fn attaches_since(sim: &Sim, t: Duration) -> Vec<(Duration, PathId)> {
    sim.log
        .attaches
        .iter()
        .filter(|a| a.at >= t)
        .filter_map(|a| a.result.as_ref().ok().map(|&p| (a.at, p)))
        .collect()
}

/// RECONNECT copies the server wrote, as (time, lost).
fn reconnects_sent(sim: &Sim) -> Vec<(Duration, bool)> {
    sim.log
        .datagrams
        .iter()
        .filter(|d| d.from == Side::Server)
        .map(|d| (d.at, d.lost))
        .collect()
}

/// What the client's `handle_control` returned, in order, as (time, fresh) for RECONNECTs
/// (`None` for an error).
fn client_control(sim: &Sim) -> Vec<(Duration, Option<bool>)> {
    sim.log
        .control
        .iter()
        .filter(|r| r.side == Side::Client)
        .map(|r| match &r.result {
            Ok(ControlAction::Reconnect { fresh, .. }) => (r.at, Some(*fresh)),
            _ => (r.at, None),
        })
        .collect()
}

fn path_dead_events(sim: &Sim) -> usize {
    sim.log
        .events
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::PathDead(_)))
        .count()
}

fn bytes_resent(sim: &Sim) -> u64 {
    [&sim.client, &sim.server]
        .iter()
        .flat_map(|s| {
            s.active_paths()
                .map(|p| s.path_stats(p).unwrap().bytes_resent)
        })
        .sum()
}

/// Asserts that every one of the client's `n_paths` paths now goes to the server's current
/// address, each re-attached exactly once since `since`.
fn assert_all_paths_followed(sim: &Sim, since: Duration, n_paths: u32) {
    let paths: Vec<PathId> = attaches_since(sim, since).iter().map(|a| a.1).collect();
    let expected: Vec<PathId> = (0..n_paths).map(PathId).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        expected,
        "one reattach per path\n{}",
        sim.describe()
    );
    for p in expected {
        assert_eq!(sim.path_destination(p), Some(sim.server_address()), "{p}");
    }
}

fn two_links() -> Vec<Link> {
    vec![Link::new(20, 4 * MB as u64), Link::new(35, 3 * MB as u64)]
}

/// A transfer of 2 MB each way over the first `n_paths` of [`two_links`].
fn moving_cfg(seed: u64, n_paths: usize) -> SimConfig {
    SimConfig::new(seed)
        .paths(two_links()[..n_paths].to_vec())
        .apps(AppSpec::sending(2 * MB), AppSpec::sending(2 * MB))
}

// ----- 1. the server moves and announces it ------------------------------------------------

#[test]
fn server_move_mid_transfer() {
    for n_paths in [1, 2] {
        for closes in [true, false] {
            for seed in 0..3 {
                let at = ms(150 + seed * 37);
                let m = if closes {
                    ServerMove::new()
                } else {
                    ServerMove::new().keeping_paths()
                };
                let cfg =
                    moving_cfg(seed, n_paths).fault(at.as_millis() as u64, Fault::ServerMove(m));
                let sim = clean_transfer(cfg);
                let what = format!("{n_paths} paths, server closes {closes}, seed {seed}");
                assert_eq!(sim.log.server_moves.len(), 1, "{what}");
                // One RECONNECT, accepted once, acknowledged once.
                assert_eq!(reconnects_sent(&sim), [(at, false)], "{what}");
                assert_eq!(client_control(&sim), [(at + ms(20), Some(true))], "{what}");
                assert!(!sim.announcing(), "{what}: the ACK stops the re-sending");
                // Every path followed at once: no dead time, one attach each, soon after.
                assert_eq!(path_dead_events(&sim), 0, "{what}");
                assert_all_paths_followed(&sim, at, n_paths as u32);
                let last = attaches_since(&sim, at).iter().map(|a| a.0).max().unwrap();
                assert!(last <= at + ms(20 + 3 * 35 + 10), "{what}: {last:?}");
                // The move lost bytes in flight and happened before either stream ended.
                assert!(bytes_resent(&sim) > 0, "{what}");
                for m in &sim.log.milestones {
                    assert!(m.peer_finished_at.unwrap() > at, "{what}");
                }
            }
        }
    }
}

#[test]
fn server_move_with_lost_reconnects_is_retransmitted() {
    // The RECONNECT is re-sent 200 ms, then 400 ms later ... until the client acknowledges.
    for (lost, resent_at) in [(1, 200), (2, 600)] {
        for n_paths in [1, 2] {
            let at = ms(200);
            let m = ServerMove::new().losing_reconnects(lost);
            let cfg = moving_cfg(u64::from(lost), n_paths).fault(200, Fault::ServerMove(m));
            let sim = clean_transfer(cfg);
            let what = format!("{lost} lost, {n_paths} paths");
            let sent = reconnects_sent(&sim);
            assert_eq!(sent.len(), lost as usize + 1, "{what}: {sent:?}");
            assert!(sent[..lost as usize].iter().all(|s| s.1), "{what}");
            assert_eq!(sent.last().unwrap(), &(at + ms(resent_at), false), "{what}");
            assert_eq!(
                client_control(&sim),
                [(at + ms(resent_at + 20), Some(true))],
                "{what}"
            );
            assert_eq!(path_dead_events(&sim), 0, "{what}");
            assert_all_paths_followed(&sim, at + ms(resent_at), n_paths as u32);
            assert!(!sim.announcing(), "{what}");
        }
    }
}

#[test]
fn lost_reconnect_acks_do_not_move_the_client_twice() {
    // The client's first two ACKs are lost: the server re-sends, the client acknowledges the
    // repeats (not fresh) and stays where it went the first time.
    for n_paths in [1, 2] {
        let m = ServerMove::new().losing_acks(2);
        let cfg = moving_cfg(5, n_paths).fault(200, Fault::ServerMove(m));
        let sim = clean_transfer_until(cfg, |s| !s.announcing());
        let control: Vec<_> = client_control(&sim).iter().map(|c| c.1).collect();
        assert_eq!(control, [Some(true), Some(false), Some(false)]);
        assert_eq!(reconnects_sent(&sim).len(), 3);
        assert!(!sim.announcing());
        assert_all_paths_followed(&sim, ms(200), n_paths as u32);
        assert_eq!(
            sim.log.sent(Side::Client, "HELLO(attach)")
                + sim.log.sent(Side::Client, "HELLO(resume)"),
            2 * n_paths as u64 - 1,
            "path 1's first attach, then one reattach per path"
        );
    }
}

#[test]
fn server_moves_again_while_the_client_follows() {
    // The second move blackholes the client's attaches to the first new address; the second
    // RECONNECT (a higher sequence number) moves it again.
    for gap in [5, 30, 60] {
        let cfg = moving_cfg(gap, 2)
            .fault(200, Fault::ServerMove(ServerMove::new()))
            .fault(200 + gap, Fault::ServerMove(ServerMove::new()));
        let sim = clean_transfer(cfg);
        let control: Vec<_> = client_control(&sim).iter().map(|c| c.1).collect();
        assert_eq!(control, [Some(true), Some(true)], "gap {gap}");
        assert_eq!(path_dead_events(&sim), 0, "gap {gap}");
        assert_all_paths_followed(&sim, ms(200 + gap + 20), 2);
        assert!(sim.log.failed_attempts.is_empty(), "gap {gap}");
    }
}

// ----- 2. both ends move while apart -------------------------------------------------------

#[test]
fn both_ends_move_while_apart() {
    // The client's and the server's addresses both change within a few milliseconds: every
    // connection is gone, the RECONNECT goes to the client's old address and is lost, the
    // client's own attaches go to the server's old one. The client keeps retrying, resolving
    // the server's name each time, and gets through once the name follows the server.
    for client_first in [false, true] {
        for n_paths in [1, 2] {
            let seed = u64::from(client_first) * 2 + n_paths as u64;
            let name_after = ms(1_500);
            let m = ServerMove::new().name_updated_after(name_after);
            let (c_at, s_at) = if client_first { (300, 303) } else { (303, 300) };
            let mut cfg = moving_cfg(seed, n_paths)
                .fault(s_at, Fault::ServerMove(m))
                .fault(c_at, Fault::ClientMove);
            cfg.attempt_timeout = ms(700);
            cfg.retry_interval = ms(250);
            let sim = clean_transfer(cfg);
            let what = format!("client first {client_first}, {n_paths} paths");
            let named = ms(s_at) + name_after;
            let sent = reconnects_sent(&sim);
            assert!(
                sent.len() >= 3 && sent.iter().all(|s| !s.1),
                "{what}: {sent:?}"
            );
            assert!(
                client_control(&sim).is_empty(),
                "{what}: nothing reached the client"
            );
            assert!(sim.announcing(), "{what}: never acknowledged");
            assert!(
                sim.log.failed_attempts.len() >= n_paths,
                "{what}: {:?}",
                sim.log.failed_attempts
            );
            // Before the name update nothing got through; right after it, every path did.
            assert!(attaches_since(&sim, ms(300)).iter().all(|a| a.0 > named));
            assert_all_paths_followed(&sim, ms(300), n_paths as u32);
            let last = attaches_since(&sim, ms(300)).iter().map(|a| a.0).max();
            assert!(
                last.unwrap() < named + ms(700 + 250 + 200),
                "{what}: {last:?}"
            );
            assert!(bytes_resent(&sim) > 0, "{what}");
        }
    }
}

// ----- 3. moves while the streams close ----------------------------------------------------

#[test]
fn moves_during_close() {
    // A kill (reattached 50 ms later), a client address change, or a server move, exactly
    // while a FIN or FIN_ACK is in flight, from either side.
    let actions = |seed: u64| {
        [
            OnFrame::Kill {
                reattach_after: Some(ms(50)),
            },
            OnFrame::Reattach,
            OnFrame::Fault(Fault::ServerMove(ServerMove::new())),
            OnFrame::Fault(Fault::ServerMove(
                ServerMove::new().losing_reconnects(1).keeping_paths(),
            )),
            OnFrame::Fault(Fault::ServerMove(
                ServerMove::new().losing_acks(seed as u32),
            )),
        ]
    };
    let mut runs = 0;
    for seed in 0..4 {
        for action in actions(seed) {
            for side in [Side::Client, Side::Server] {
                for frame in ["FIN", "FIN_ACK"] {
                    let n_paths = 1 + (seed as usize % 2);
                    let mut cfg = SimConfig::new(seed)
                        .paths(two_links()[..n_paths].to_vec())
                        .apps(AppSpec::sending(200_000), AppSpec::sending(300_000));
                    cfg.on_frame = vec![FaultOnFrame {
                        side,
                        frame,
                        action: action.clone(),
                    }];
                    cfg.max_time = Duration::from_secs(30);
                    let sim = clean_transfer(cfg);
                    let what = format!("seed {seed} {side:?} {frame} {action:?}");
                    assert_eq!(sim.log.triggered.len(), 1, "{what}");
                    // Nobody waited for a dead time: the move itself was acted on.
                    assert!(
                        sim.now() < Duration::from_secs(2),
                        "{what}: {:?}",
                        sim.now()
                    );
                    runs += 1;
                }
            }
        }
    }
    assert_eq!(runs, 4 * 5 * 2 * 2);
}

#[test]
fn moves_on_both_closing_frames() {
    // Both FINs and both FIN_ACKs each trigger a move of their own in one run.
    for seed in 0..6 {
        let mut cfg = SimConfig::new(seed)
            .paths(two_links()[..1 + seed as usize % 2].to_vec())
            .apps(AppSpec::sending(150_000), AppSpec::sending(150_000));
        let server_move = || OnFrame::Fault(Fault::ServerMove(ServerMove::new()));
        let (first, second) = if seed % 3 == 0 {
            (OnFrame::Reattach, server_move())
        } else {
            (server_move(), OnFrame::Reattach)
        };
        cfg.on_frame = vec![
            FaultOnFrame {
                side: Side::Client,
                frame: "FIN",
                action: first,
            },
            FaultOnFrame {
                side: Side::Server,
                frame: "FIN_ACK",
                action: second,
            },
            FaultOnFrame {
                side: Side::Server,
                frame: "FIN",
                action: server_move(),
            },
            FaultOnFrame {
                side: Side::Client,
                frame: "FIN_ACK",
                action: OnFrame::Reattach,
            },
        ];
        cfg = cfg.kill_on_frame(Side::Client, "ATTACH_PROOF", Some(ms(10)));
        let sim = clean_transfer(cfg);
        assert_eq!(sim.log.triggered.len(), 4, "seed {seed}");
        assert!(sim.now() < Duration::from_secs(3), "seed {seed}");
    }
}

// ----- 4. fifty moves and failures during one transfer -------------------------------------

/// 4 MB each way over one or two paths, with fifty faults in the first 2.5 seconds: client
/// address changes, kills with reattach, partitions shorter and longer than the dead time, new
/// paths and server moves (some of their RECONNECTs and ACKs lost, 20 % of all datagrams lost).
fn fifty_faults(seed: u64) -> SimConfig {
    random_moves(seed, 4 * MB, false)
}

/// The generator behind [`fifty_faults`]. `wild` adds moves of the client's every address,
/// random windows, buffers and slow readers, and smaller transfers.
fn random_moves(seed: u64, len: usize, wild: bool) -> SimConfig {
    let mut r = StdRng::seed_from_u64(seed ^ 0x50fa_u64);
    let link = |r: &mut StdRng| Link::new(r.gen_range(5..60), r.gen_range(MB..4 * MB) as u64);
    let n0 = r.gen_range(1..=2u32);
    let paths = (0..n0).map(|_| link(&mut r)).collect();
    let mut cfg = SimConfig::new(seed)
        .paths(paths)
        .apps(AppSpec::sending(len), AppSpec::sending(len));
    if wild {
        for app in [&mut cfg.client_app, &mut cfg.server_app] {
            *app = AppSpec::sending(r.gen_range(0..len));
            if r.gen_bool(0.3) {
                *app = app
                    .clone()
                    .slow_reader(r.gen_range(1_000..50_000), r.gen_range(1..5));
            }
        }
        cfg.sndbuf = r.gen_range(4_000..200_000);
        for c in [&mut cfg.client, &mut cfg.server] {
            c.recv_window = r.gen_range(10_000..2_000_000);
            c.send_buffer = r.gen_range(10_000..2_000_000);
            c.max_payload = r.gen_range(500..=64 * 1024);
        }
    }
    let dead = 1_000;
    for c in [&mut cfg.client, &mut cfg.server] {
        c.keepalive = ms(250);
        c.dead_time = ms(dead);
    }
    cfg.attempt_timeout = ms(1_500);
    cfg.retry_interval = ms(300);
    cfg.control_loss = 0.2;
    let mut times: Vec<u64> = (0..50).map(|_| r.gen_range(0..2_500)).collect();
    times.sort_unstable();
    let mut n_paths = n0;
    for at in times {
        let path = PathId(r.gen_range(0..n_paths));
        let fault = match r.gen_range(0..if wild { 13 } else { 12 }) {
            0..=2 => Fault::Reattach {
                path,
                link: link(&mut r),
            },
            3 | 4 => Fault::Kill {
                path,
                reattach_after: Some(ms(r.gen_range(1..400))),
            },
            5 | 6 => Fault::Partition {
                path,
                duration: ms(r.gen_range(20..dead * 8 / 10)),
            },
            7 => Fault::Partition {
                path,
                duration: ms(r.gen_range(dead * 12 / 10..3 * dead)),
            },
            8 if n_paths < 5 => {
                n_paths += 1;
                Fault::AddPath { link: link(&mut r) }
            }
            12 => Fault::ClientMove,
            _ => {
                let mut m = ServerMove::new()
                    .losing_reconnects(r.gen_range(0..3))
                    .losing_acks(r.gen_range(0..2))
                    .name_updated_after(ms(r.gen_range(300..4_000)));
                m.server_closes_paths = r.gen_bool(0.7);
                Fault::ServerMove(m)
            }
        };
        cfg = cfg.fault(at, fault);
    }
    cfg.max_time = Duration::from_secs(120);
    cfg
}

#[test]
fn fifty_random_moves_and_failures_during_one_transfer() {
    let mut kinds = HashSet::new();
    for seed in 0..10 {
        let cfg = fifty_faults(seed);
        let scheduled: Vec<(Duration, Fault)> = cfg.faults.clone();
        let sim = clean_transfer(cfg);
        // A fault strikes at its time if the simulation is still running then.
        let struck: Vec<&Fault> = scheduled
            .iter()
            .filter(|(at, _)| *at <= sim.now())
            .map(|(_, f)| f)
            .collect();
        assert!(
            struck.len() >= 45,
            "seed {seed}: only {} struck",
            struck.len()
        );
        kinds.extend(struck.iter().map(|f| std::mem::discriminant(*f)));
        assert!(!sim.log.server_moves.is_empty(), "seed {seed}");
    }
    assert_eq!(kinds.len(), 5, "every kind of fault struck");
}

/// Many more, wilder runs: `MSOCK_SIM_SEEDS=500 cargo test --release --lib moves_soak -- --ignored`.
#[test]
#[ignore = "slow; run explicitly"]
fn random_moves_soak() {
    let n = soak_seeds(200);
    for seed in 0..n {
        clean_transfer(random_moves(1_000 + seed, 2 * MB, true));
    }
}
