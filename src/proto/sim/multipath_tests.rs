//! Several flowpaths of unequal rate and delay carrying one stream: the aggregate must come
//! close to the sum of the paths, and a slow path must not hold the stream hostage.

use super::tests::{transfer, MB};
use super::{AppSpec, Link, Side, Sim, SimConfig};
use crate::proto::PathId;

/// `n` bytes from client to server only, over a 10 ms path at `fast` bytes/s and a path with
/// `slow_ms` latency at `slow` bytes/s.
fn one_way(seed: u64, n: usize, fast: u64, (slow_ms, slow): (u64, u64)) -> SimConfig {
    SimConfig::new(seed)
        .paths(vec![Link::new(10, fast), Link::new(slow_ms, slow)])
        .apps(AppSpec::sending(n), AppSpec::sending(0))
}

/// Goodput of a finished one-way transfer of `n` bytes, in bytes per second.
fn goodput(sim: &Sim, n: usize) -> f64 {
    n as f64 / sim.now().as_secs_f64()
}

/// Bytes the client sent a second time (on a faster path, or after a path died).
fn resent(sim: &Sim) -> u64 {
    (0..4)
        .filter_map(|p| sim.client.path_stats(PathId(p)))
        .map(|s| s.bytes_resent)
        .sum()
}

#[test]
fn two_unequal_paths_aggregate_close_to_the_sum() {
    // 40 and 15 Mbit/s, 10 and 30 ms: the wifi + cellular case.
    for (fast, slow) in [(5_000_000, 1_875_000), (3_750_000, 1_250_000)] {
        let n = 20 * MB;
        let cfg = one_way(1, n, fast, (30, slow));
        let sim = transfer(cfg);
        let ratio = goodput(&sim, n) / (fast + slow) as f64;
        assert!(ratio >= 0.9, "{fast}+{slow} B/s: {ratio:.3} of the sum");
        // Both paths really carried data, and each path's measured delivery rate is its
        // link's rate.
        for (p, rate) in [(0, fast), (1, slow)] {
            let stats = sim.client.path_stats(PathId(p)).unwrap();
            assert!(stats.bytes_sent > (n as u64) / 10, "path {p}: {stats:?}");
            let measured = stats.delivery_rate.expect("a rate estimate");
            let off = (measured / rate as f64 - 1.0).abs();
            assert!(
                off < 0.15,
                "path {p}: measured {measured:.0} B/s, link {rate} B/s"
            );
        }
    }
}

#[test]
fn a_slow_path_does_not_hold_a_small_window_hostage() {
    // A path 50 times slower and 20 times further away, and a receive window the slow path
    // alone could fill for seconds: chunks stuck there would block in-order delivery and the
    // window. Re-sending them on the fast path keeps the stream near the fast path's rate.
    let (fast, slow) = (5_000_000u64, 100_000u64);
    let n = 5 * MB;
    let cfg = one_way(2, n, fast, (200, slow)).recv_window(256 << 10);
    let sim = transfer(cfg);
    let of_fast = goodput(&sim, n) / fast as f64;
    assert!(of_fast >= 0.85, "{of_fast:.3} of the fast path's rate");
    // Each lagging range is sent at most once more: the extra copies stay a small share.
    assert!(
        resent(&sim) < (n as u64) / 5,
        "{} bytes sent twice",
        resent(&sim)
    );
    assert_eq!(sim.received(Side::Server).len(), n);
    // With bytes sent twice, the receiver's per-path "new bytes" still add up to the stream
    // exactly: what `msock bench` reports as each path's share.
    assert!(resent(&sim) > 0);
    let new: u64 = (0..4)
        .filter_map(|p| sim.server.path_stats(PathId(p)))
        .map(|s| s.bytes_new)
        .sum();
    assert_eq!(new, n as u64);
}

#[test]
fn a_slower_path_with_a_moderate_window() {
    let (fast, slow) = (5_000_000u64, 500_000u64);
    let n = 5 * MB;
    let cfg = one_way(3, n, fast, (150, slow)).recv_window(1 << 20);
    let sim = transfer(cfg);
    let ratio = goodput(&sim, n) / (fast + slow) as f64;
    assert!(ratio >= 0.8, "{ratio:.3} of the sum");
}

/// Three flowpaths of equal latency and rate (striping over loopback addresses), one of
/// which was slow only while it attached (a busy moment: its one RTT sample then is 15 times
/// the others'). Its RTT estimate must not stay that sample for the whole transfer and make
/// the others send its bytes again: with equal paths, (almost) nothing is sent twice, and per
/// path the receiver's new bytes stay within what was sent there.
#[test]
fn equal_paths_do_not_resend_each_others_bytes() {
    use super::Fault;
    use std::time::Duration;
    for seed in 1..4 {
        let n = 16 * MB;
        let mut cfg = SimConfig::new(seed)
            .paths(vec![Link::new(10, 5_000_000); 3])
            .apps(AppSpec::sending(n), AppSpec::sending(0))
            .recv_window(512 << 10);
        // Path 1 stalls from just after its attach for 300 ms: its first RTT sample is
        // about 15 times the others'.
        cfg.faults = vec![(
            Duration::from_millis(30),
            Fault::Partition {
                path: PathId(1),
                duration: Duration::from_millis(300),
            },
        )];
        let sim = transfer(cfg);
        assert_eq!(sim.received(Side::Server).len(), n);
        let stats: Vec<_> = (0..3)
            .map(|p| sim.client.path_stats(PathId(p)).unwrap())
            .collect();
        assert!(
            resent(&sim) == 0,
            "seed {seed}: {} bytes sent twice over equal paths: {stats:?}",
            resent(&sim)
        );
        // Each busy path's RTT was sampled along the way, not only at its attach.
        let probes = (sim.now().as_secs_f64() / 0.2) as u64;
        let pings = sim.log.sent(Side::Client, "PING");
        assert!(pings >= probes * 3 / 2, "{pings} PINGs in {:?}", sim.now());
        for (p, sent) in stats.iter().enumerate() {
            let got = sim.server.path_stats(PathId(p as u32)).unwrap();
            assert!(sent.bytes_resent <= sent.bytes_sent, "path {p}: {sent:?}");
            assert!(
                got.bytes_new <= sent.bytes_sent + sent.bytes_resent,
                "path {p}"
            );
        }
    }
}
