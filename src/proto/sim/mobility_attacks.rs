//! Attacks on mobility over the simulated network: forged and replayed RECONNECT datagrams,
//! and attach proofs recorded before or during a move replayed after it.

use std::time::Duration;

use super::tests::{ms, MB};
use super::{server_addr, AppSpec, Fault, Link, ServerMove, Side, Sim, SimConfig};
use crate::proto::auth::SessionSecret;
use crate::proto::{ControlAction, ControlError, Event, Frame, PathId};

/// Bytes of a control datagram before its 32-byte mac.
fn signed_part(datagram: &[u8]) -> &[u8] {
    &datagram[..datagram.len() - 32]
}

/// `datagram` with its sequence number (bytes 14..22) replaced and another server address
/// (the first address byte, after the family byte at 22, changed), the mac recomputed with
/// `key` (`None`: the original mac is kept).
fn rewrite(datagram: &[u8], seq: u64, key: Option<&SessionSecret>) -> Vec<u8> {
    let mut d = datagram.to_vec();
    d[14..22].copy_from_slice(&seq.to_be_bytes());
    d[23] ^= 0x40;
    if let Some(key) = key {
        let n = d.len();
        let mac = key.control_mac(signed_part(&d));
        d[n - 32..].copy_from_slice(&mac);
    }
    d
}

/// What the client's `handle_control` returned for datagrams handled at or after `t`.
fn client_results(sim: &Sim, t: Duration) -> Vec<Result<ControlAction, ControlError>> {
    sim.log
        .control
        .iter()
        .filter(|r| r.side == Side::Client && r.at >= t)
        .map(|r| r.result.clone())
        .collect()
}

/// Everything that would show the client moving: HELLO(attach)s written, the paths' server
/// addresses, path closes.
fn client_position(sim: &Sim) -> (u64, Vec<Option<std::net::SocketAddr>>, usize) {
    let closes = sim
        .log
        .events
        .iter()
        .filter(|(_, side, e)| *side == Side::Client && matches!(e, Event::PathClosed(_)))
        .count();
    let dests = (0..2).map(|p| sim.path_destination(PathId(p))).collect();
    (
        sim.log.sent(Side::Client, "HELLO(attach)") + sim.log.sent(Side::Client, "HELLO(resume)"),
        dests,
        closes,
    )
}

#[test]
fn forged_and_replayed_reconnects_are_ignored() {
    let cfg = SimConfig::new(21)
        .paths(vec![
            Link::new(20, 2 * MB as u64),
            Link::new(30, 2 * MB as u64),
        ])
        .apps(AppSpec::sending(3 * MB), AppSpec::sending(3 * MB))
        .fault(200, Fault::ServerMove(ServerMove::new()))
        .fault(400, Fault::ServerMove(ServerMove::new()));
    let mut sim = Sim::new(cfg);
    let attacker = SessionSecret::from_bytes([7; 32]);

    // Before any genuine RECONNECT: a forgery pointing the client elsewhere.
    sim.run_until("transfer under way", |s| s.now() >= ms(100));
    let before = client_position(&sim);
    // The session's own RECONNECT format, made by a session with another secret.
    let mut impostor = Sim::new(SimConfig::new(20).apps(AppSpec::sending(0), AppSpec::sending(0)));
    let (_, template) = impostor.server.reconnect_datagram(server_addr(5));
    let mut forged = template;
    forged[6..14].copy_from_slice(&sim.client.id().to_be_bytes());
    let forged = rewrite(&forged, 1, Some(&attacker));
    sim.inject_datagram(Side::Client, forged);
    sim.run_for(ms(50));
    assert_eq!(client_results(&sim, ms(100)), [Err(ControlError::BadMac)]);
    assert_eq!(client_position(&sim), before, "a forgery moved the client");

    // Two genuine moves, both followed.
    sim.run_until("second move followed", |s| {
        s.log
            .control
            .iter()
            .filter(|r| r.side == Side::Server)
            .count()
            == 2
            && (0..2).all(|p| s.client.active_paths().any(|a| a == PathId(p)))
            && (0..2).all(|p| s.path_destination(PathId(p)) == Some(server_addr(2)))
    });
    let genuine: Vec<Vec<u8>> = sim
        .log
        .datagrams
        .iter()
        .filter(|d| d.from == Side::Server)
        .map(|d| d.bytes.clone())
        .collect();
    assert_eq!(genuine.len(), 2);
    let (first, second) = (&genuine[0], &genuine[1]);

    // The attacks, after the newer RECONNECT was accepted.
    let t = sim.now();
    let before = client_position(&sim);
    let other = Sim::new(SimConfig::new(22).apps(AppSpec::sending(0), AppSpec::sending(0)));
    let mut other_server = other.server;
    let (_, foreign) = other_server.reconnect_datagram(server_addr(9));
    let attacks = [
        // A replay of the older genuine RECONNECT (to the address it left since).
        first.clone(),
        // A replay of the newest one: acknowledged again, not acted on.
        second.clone(),
        // The newest one with a higher sequence number and another address, its mac kept.
        rewrite(second, 3, None),
        // The same with a mac made with a key that is not the session's.
        rewrite(second, 3, Some(&attacker)),
        // Another session's genuine RECONNECT.
        foreign,
        // Truncated.
        second[..30].to_vec(),
    ];
    for a in attacks {
        sim.inject_datagram(Side::Client, a);
        sim.run_for(ms(5));
    }
    sim.run_for(ms(100));
    let results = client_results(&sim, t);
    assert_eq!(results.len(), 6, "{results:?}");
    assert_eq!(results[0], Err(ControlError::Stale));
    assert!(
        matches!(
            results[1],
            Ok(ControlAction::Reconnect { fresh: false, .. })
        ),
        "{:?}",
        results[1]
    );
    let bad_mac = Err(ControlError::BadMac);
    assert_eq!(results[2..5], [bad_mac.clone(), bad_mac.clone(), bad_mac]);
    assert_eq!(results[5], Err(ControlError::Malformed));
    assert_eq!(client_position(&sim), before, "an attack moved the client");

    sim.run_to_completion();
    sim.assert_streams_identical();
    assert_eq!(client_position(&sim), before);
    assert!(
        sim.log.errors.iter().all(Vec::is_empty),
        "{:?}",
        sim.log.errors
    );
}

#[test]
fn stale_attach_proofs_are_rejected_after_a_move() {
    // Path 1 attaches at the start; the server moves and both paths re-attach at its new
    // address. An eavesdropper replays, against the new address, the HELLO(attach) and
    // ATTACH_PROOF of path 1's first attach and of both re-attaches: each gets a fresh
    // CHALLENGE, so each old proof fails and the real paths stay.
    let move_at = ms(150);
    let cfg = SimConfig::new(23)
        .paths(vec![
            Link::new(10, 3 * MB as u64),
            Link::new(30, 3 * MB as u64),
        ])
        .apps(AppSpec::sending(2 * MB), AppSpec::sending(2 * MB))
        .fault(150, Fault::ServerMove(ServerMove::new()));
    // The two-step attach is the subject here (one-flight resumes: `replayed_resume_is_refused`).
    let mut cfg = cfg;
    cfg.client.resume_tickets = false;
    cfg.server.resume_tickets = false;
    let mut sim = Sim::new(cfg);
    sim.run_until("both paths re-attached", |s| {
        s.log.attaches.iter().filter(|a| a.at >= move_at).count() == 2
    });
    let recorded: Vec<(Frame, Frame)> = sim
        .log
        .attaches
        .iter()
        .map(|a| {
            assert!(a.result.is_ok(), "{a:?}");
            (a.hello.clone(), a.proof.clone())
        })
        .collect();
    assert_eq!(
        recorded.len(),
        3,
        "path 1's attach, then one re-attach per path"
    );
    assert!(sim.log.attaches[0].at < move_at);

    let closes = |s: &Sim| {
        s.log
            .events
            .iter()
            .filter(|(_, side, e)| *side == Side::Server && matches!(e, Event::PathClosed(_)))
            .count()
    };
    let closed_before = closes(&sim);
    for (hello, proof) in &recorded {
        let c = sim.connect_scripted(Link::new(5, MB as u64), hello.clone());
        sim.run_until("CHALLENGE", |s| !s.scripted_inbox(c).is_empty());
        assert!(matches!(sim.scripted_inbox(c)[0], Frame::Challenge { .. }));
        sim.send_scripted(c, proof);
        sim.run_until("verdict", |s| s.scripted_inbox(c).len() >= 2);
        sim.assert_refused_for_bad_proof(c);
    }
    assert!(sim.server.error().is_none());
    assert_eq!(
        closes(&sim),
        closed_before,
        "a replay displaced a real path"
    );
    assert_eq!(
        sim.server.active_paths().collect::<Vec<_>>(),
        [PathId(0), PathId(1)]
    );
    sim.run_to_completion();
    sim.assert_streams_identical();
}

#[test]
fn moves_under_attack_still_complete() {
    // Forgeries and replays keep arriving while the server moves three times.
    let cfg = SimConfig::new(24)
        .paths(vec![Link::new(15, 2 * MB as u64)])
        .apps(AppSpec::sending(2 * MB), AppSpec::sending(2 * MB))
        .fault(100, Fault::ServerMove(ServerMove::new()))
        .fault(
            350,
            Fault::ServerMove(ServerMove::new().losing_reconnects(1)),
        )
        .fault(700, Fault::ServerMove(ServerMove::new().keeping_paths()));
    let mut sim = Sim::new(cfg);
    let attacker = SessionSecret::from_bytes([9; 32]);
    let mut injected = 0;
    while !(sim.client.is_finished() && sim.server.is_finished()) {
        sim.run_for(ms(40));
        sim.assert_no_errors();
        assert!(sim.now() < Duration::from_secs(30), "{}", sim.describe());
        let genuine: Vec<Vec<u8>> = sim
            .log
            .datagrams
            .iter()
            .filter(|d| d.from == Side::Server && !d.lost)
            .map(|d| d.bytes.clone())
            .collect();
        if let Some(oldest) = genuine.first() {
            sim.inject_datagram(Side::Client, oldest.clone());
            let seq = genuine.len() as u64 + 1;
            sim.inject_datagram(Side::Client, rewrite(oldest, seq, Some(&attacker)));
            injected += 2;
        }
    }
    sim.assert_streams_identical();
    let accepted = sim
        .log
        .control
        .iter()
        .filter(|r| {
            r.side == Side::Client
                && matches!(r.result, Ok(ControlAction::Reconnect { fresh: true, .. }))
        })
        .count();
    assert_eq!(accepted, 3, "only the three genuine moves are followed");
    assert!(injected >= 20, "{injected}");
}
