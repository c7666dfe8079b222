//! A peer whose process exited (its kernel closed each connection in order, with no session
//! close): the surviving end fails at once with `PeerExited` instead of waiting for a peer
//! that moved; resets and silence (moves) are still waited for.

use super::tests::{ms, MB};
use super::{AppSpec, Fault, Link, Side, Sim, SimConfig};
use crate::proto::{Event, SessionError};

/// A transfer that keeps both sessions busy (neither end ever closes) over `n_paths` paths.
fn busy(seed: u64, n_paths: usize) -> Sim {
    let cfg = SimConfig::new(seed)
        .paths(vec![Link::new(10, 2_000_000); n_paths])
        .apps(
            AppSpec::sending(4 * MB).never_closing(),
            AppSpec::sending(MB).never_closing(),
        );
    let mut sim = Sim::new(cfg);
    sim.run_for(ms(500));
    sim.assert_no_errors();
    sim
}

fn failed_with_exit(sim: &Sim, side: Side) -> bool {
    let s = match side {
        Side::Client => &sim.client,
        Side::Server => &sim.server,
    };
    s.error() == Some(&SessionError::PeerExited)
}

#[test]
fn a_client_that_exits_ends_the_servers_session_at_once() {
    for n_paths in [1, 2, 3] {
        let mut sim = busy(n_paths as u64, n_paths);
        let at = sim.now();
        sim.exit(Side::Client);
        sim.run_until("the server notices", |s| s.server.error().is_some());
        assert!(failed_with_exit(&sim, Side::Server), "{n_paths} paths");
        // As soon as the last FIN arrived: one one-way latency (plus what was in flight).
        assert!(
            sim.now() - at < ms(100),
            "{n_paths} paths: {:?}",
            sim.now() - at
        );
    }
}

#[test]
fn a_server_that_exits_ends_the_clients_session_at_once() {
    for n_paths in [1, 2] {
        let mut sim = busy(10 + n_paths as u64, n_paths);
        let at = sim.now();
        sim.exit(Side::Server);
        sim.run_until("the client notices", |s| s.client.error().is_some());
        assert!(failed_with_exit(&sim, Side::Client), "{n_paths} paths");
        assert!(
            sim.now() - at < ms(100),
            "{n_paths} paths: {:?}",
            sim.now() - at
        );
    }
}

#[test]
fn one_orderly_close_of_several_paths_only_retires_that_path() {
    let mut sim = busy(20, 2);
    let path = sim.client.active_paths().next().unwrap();
    sim.server.path_ended_by_peer(path);
    assert_eq!(sim.server.error(), None);
    assert!(sim.server.active_paths().all(|p| p != path));
    assert_eq!(sim.server.active_paths().count(), 1);
}

#[test]
fn a_client_that_moved_and_then_exited_is_gone_too() {
    // The move (old connections silent) is waited for and survived; the exit afterwards is
    // not waited for.
    let cfg = SimConfig::new(30)
        .paths(vec![Link::new(10, 2_000_000)])
        .apps(
            AppSpec::sending(4 * MB).never_closing(),
            AppSpec::sending(MB).never_closing(),
        )
        .fault(300, Fault::ClientMove);
    let mut sim = Sim::new(cfg);
    sim.run_for(ms(3_000));
    sim.assert_no_errors();
    assert!(
        sim.server.active_paths().count() >= 1,
        "the client came back"
    );
    sim.exit(Side::Client);
    sim.run_until("the server notices", |s| s.server.error().is_some());
    assert!(failed_with_exit(&sim, Side::Server));
}

#[test]
fn an_exit_after_both_streams_completed_is_no_failure() {
    let cfg = SimConfig::new(40)
        .paths(vec![Link::new(10, 2_000_000)])
        .apps(AppSpec::sending(MB), AppSpec::sending(MB));
    let mut sim = Sim::new(cfg);
    sim.run_to_completion();
    sim.exit(Side::Client);
    sim.run_for(ms(1_000));
    assert_eq!(sim.server.error(), None);
    assert!(sim.server.is_finished());
    let failed = sim
        .log
        .events
        .iter()
        .any(|(_, _, e)| matches!(e, Event::Failed(_)));
    assert!(!failed);
}
