//! Attach security over the simulated network: foreign secrets, wrong session ids, tampered,
//! replayed and forged proofs, replayed resumes. Every attack must fail and leave the real
//! transfer intact.

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::tests::{ms, MB};
use super::{AppSpec, Fault, Link, Side, Sim, SimConfig};
use crate::proto::auth::{ProofSide, SessionSecret};
use crate::proto::{
    AttachError, Deframer, ErrorCode, Event, Frame, FrameError, PathId, SessionError,
};

/// A HELLO(attach) for `session_id` / `path_id` with a random nonce.
fn hello_attach(session_id: u64, path_id: u32, rng: &mut impl RngCore) -> Frame {
    let mut client_nonce = [0u8; 16];
    rng.fill_bytes(&mut client_nonce);
    Frame::HelloAttach {
        session_id,
        path_id,
        client_nonce,
    }
}

/// The exchange most attacks are tried against: 1 MB each way over one path.
fn mb_each_way(seed: u64) -> SimConfig {
    SimConfig::new(seed).apps(AppSpec::sending(MB), AppSpec::sending(MB))
}

/// The attack left the server session unharmed, and the transfer completes intact.
fn finish_unharmed(sim: &mut Sim) {
    assert!(sim.server.error().is_none());
    sim.run_to_completion();
    sim.assert_streams_identical();
}

/// A second path is added at 50 ms, and its CHALLENGE is forged (bad server proof).
fn forged_challenge_on_a_new_path() -> Sim {
    let cfg = mb_each_way(14).fault(
        50,
        Fault::AddPath {
            link: Link::new(10, MB as u64),
        },
    );
    let mut sim = Sim::new(cfg);
    sim.forge_next_challenge = true;
    sim
}

/// Runs `sim` until its scripted connection `c` has received `n` frames.
fn await_inbox(sim: &mut Sim, c: usize, n: usize) {
    sim.run_until("scripted inbox", |s| s.scripted_inbox(c).len() >= n);
}

/// [`mb_each_way`] over two paths (10 and 30 ms, 4 MB/s).
fn two_paths_mb_each_way(seed: u64) -> SimConfig {
    mb_each_way(seed).paths(vec![
        Link::new(10, 4 * MB as u64),
        Link::new(30, 4 * MB as u64),
    ])
}

/// [`two_paths_mb_each_way`], 100 ms into the transfer.
fn busy_sim(seed: u64) -> Sim {
    let mut sim = Sim::new(two_paths_mb_each_way(seed));
    sim.run_until("transfer under way", |s| s.now() >= ms(100));
    sim
}

#[test]
fn attach_with_a_foreign_secret_is_rejected() {
    let mut sim = busy_sim(8);
    let sid = sim.server.id();
    let mut rng = StdRng::seed_from_u64(99);
    let hello = hello_attach(sid, 0, &mut rng); // tries to take over path 0
    let c = sim.connect_scripted(Link::new(5, MB as u64), hello.clone());
    await_inbox(&mut sim, c, 1);
    let Frame::Challenge { server_nonce, .. } = sim.scripted_inbox(c)[0].clone() else {
        panic!("expected CHALLENGE, got {:?}", sim.scripted_inbox(c));
    };
    let Frame::HelloAttach { client_nonce, .. } = hello else {
        unreachable!()
    };
    let wrong = SessionSecret::from_bytes([7; 32]);
    let forged = Frame::AttachProof {
        client_proof: wrong.proof(ProofSide::Client, sid, 0, &client_nonce, &server_nonce, 0),
        cumulative: 0,
    };
    sim.send_scripted(c, &forged);
    await_inbox(&mut sim, c, 2);
    sim.assert_refused_for_bad_proof(c);
    assert!(sim.server.error().is_none());
    assert_eq!(
        sim.server.active_paths().collect::<Vec<_>>(),
        [PathId(0), PathId(1)]
    );
    sim.run_to_completion();
    sim.assert_streams_identical();
    assert_eq!(
        sim.log
            .count_events(Side::Server, &Event::PathClosed(PathId(0))),
        0
    );
}

#[test]
fn second_session_cannot_attach_to_the_first() {
    // A genuine but different session asks to join the first one's id: the server challenges
    // (it cannot tell yet), the other client rejects the server's proof, which was made with a
    // secret it does not have, so it never produces an ATTACH_PROOF.
    let mut sim = busy_sim(9);
    let mut other = Sim::new(SimConfig::new(10).apps(
        AppSpec::sending(0).never_closing(),
        AppSpec::sending(0).never_closing(),
    ));
    let (path, mut hello) = other
        .client
        .open_path(&mut StdRng::seed_from_u64(1), other.now());
    let Frame::HelloAttach { session_id, .. } = &mut hello else {
        unreachable!()
    };
    *session_id = sim.server.id();
    let c = sim.connect_scripted(Link::new(5, MB as u64), hello);
    await_inbox(&mut sim, c, 1);
    let challenge = sim.scripted_inbox(c)[0].clone();
    assert!(matches!(challenge, Frame::Challenge { .. }));
    let r = other
        .client
        .handle_frame(path, challenge, &mut Deframer::new(), other.now());
    assert!(matches!(r, Err(FrameError::PathRefused(_))), "{r:?}");
    assert!(
        other.client.path_stats(path).is_none(),
        "the impostor's path is dropped"
    );
    assert!(sim.log.attaches.iter().all(|a| a.conn != c));
    sim.run_to_completion();
    sim.assert_streams_identical();
}

#[test]
fn unknown_session_id_is_refused() {
    let mut sim = busy_sim(11);
    let hello = hello_attach(sim.server.id() ^ 1, 0, &mut StdRng::seed_from_u64(5));
    let c = sim.connect_scripted(Link::new(5, MB as u64), hello);
    await_inbox(&mut sim, c, 1);
    assert!(matches!(
        sim.scripted_inbox(c)[0],
        Frame::Error {
            code: ErrorCode::UnknownSession,
            ..
        }
    ));
    assert_eq!(sim.log.refusals, [(c, ErrorCode::UnknownSession)]);
    sim.run_to_completion();
    sim.assert_streams_identical();
}

#[test]
fn tampered_attach_proof_is_rejected() {
    // The genuine client attaches path 1; its ATTACH_PROOF is altered on the way.
    let cfg = two_paths_mb_each_way(12);
    let mut sim = Sim::new(cfg);
    sim.tamper_next_attach_proof = true;
    sim.run_until("attach attempt", |s| !s.log.attaches.is_empty());
    assert_eq!(sim.log.attaches[0].result, Err(AttachError::BadProof));
    assert!(
        sim.server.error().is_none(),
        "a bad proof does not hurt the session"
    );
    assert_eq!(sim.server.active_paths().collect::<Vec<_>>(), [PathId(0)]);
    // The genuine client is told ERROR(authentication failed) on that path.
    sim.run_until_client_fails("client learns", ErrorCode::AuthFailed);
}

#[test]
fn replayed_attach_proof_is_rejected() {
    let mut cfg = mb_each_way(13).fault(
        100,
        Fault::Kill {
            path: PathId(0),
            reattach_after: Some(ms(20)),
        },
    );
    // The two-step attach is the subject here (one-flight resumes: the test below).
    cfg.client.resume_tickets = false;
    cfg.server.resume_tickets = false;
    let mut sim = Sim::new(cfg);
    sim.run_until("reattached", |s| !s.log.attaches.is_empty());
    let record = &sim.log.attaches[0];
    assert_eq!(record.result, Ok(PathId(0)));
    assert!(
        record.at >= ms(140),
        "kill at 100 ms, reattach 20 ms later, one RTT"
    );
    let (hello, proof) = (record.hello.clone(), record.proof.clone());

    // Replayed through the network: same HELLO, same proof, fresh CHALLENGE.
    let c = sim.connect_scripted(Link::new(5, MB as u64), hello.clone());
    await_inbox(&mut sim, c, 1);
    sim.send_scripted(c, &proof);
    await_inbox(&mut sim, c, 2);
    assert_eq!(sim.log.attaches[1].result, Err(AttachError::BadProof));

    // And directly against the API.
    let mut rng = StdRng::seed_from_u64(77);
    let (pending, _) = sim.server.challenge_attach(&hello, &mut rng).unwrap();
    let r = sim
        .server
        .complete_attach(pending, &proof, &mut Deframer::new(), sim.now());
    assert_eq!(r, Err(AttachError::BadProof));

    finish_unharmed(&mut sim);
}

/// A recorded HELLO(resume) replayed on a new connection finds its ticket used up; so does a
/// second use of the same ticket through the API. The session is unaffected.
#[test]
fn replayed_resume_is_refused() {
    let cfg = mb_each_way(31).fault(
        100,
        Fault::Kill {
            path: PathId(0),
            reattach_after: Some(ms(20)),
        },
    );
    let mut sim = Sim::new(cfg);
    sim.run_until("reattached", |s| !s.log.attaches.is_empty());
    let record = &sim.log.attaches[0];
    let (hello, result) = (record.hello.clone(), record.result.clone());
    assert_eq!(result, Ok(PathId(0)));
    assert!(
        matches!(hello, Frame::HelloResume { .. }),
        "the client held a ticket and resumed in one flight: {hello:?}"
    );
    // Through the network: refused with ERROR(authentication failed).
    let c = sim.connect_scripted(Link::new(5, MB as u64), hello.clone());
    await_inbox(&mut sim, c, 1);
    assert!(matches!(
        sim.scripted_inbox(c)[0],
        Frame::Error {
            code: ErrorCode::AuthFailed,
            ..
        }
    ));
    assert_eq!(
        sim.log.attaches.last().unwrap().result,
        Err(AttachError::StaleTicket)
    );
    // Directly against the API.
    let now = sim.now();
    assert_eq!(
        sim.server
            .resume_attach(&hello, &mut Deframer::new(), now)
            .unwrap_err(),
        AttachError::StaleTicket
    );
    finish_unharmed(&mut sim);
}

#[test]
fn forged_challenge_is_rejected_by_the_client() {
    let mut sim = forged_challenge_on_a_new_path();
    sim.run_until("client reacts to the CHALLENGE", |s| {
        !s.log.errors[0].is_empty()
    });
    let (_, e) = &sim.log.errors[0][0];
    assert!(
        matches!(e, SessionError::Protocol(m) if m.contains("proof")),
        "{e:?}"
    );
    assert!(
        sim.client.path_stats(PathId(1)).is_none(),
        "impostor path dropped"
    );
    assert_eq!(
        sim.log.sent(Side::Client, "ATTACH_PROOF"),
        0,
        "no proof for an impostor"
    );
    assert!(sim.log.attaches.is_empty());
}

/// The client should drop only the impostor's connection, as the comment at the check in
/// `handle_frame` says, rather than fail the whole session.
#[test]
fn forged_challenge_leaves_the_session_usable() {
    let mut sim = forged_challenge_on_a_new_path();
    sim.run_to_completion();
    sim.assert_streams_identical();
}
