//! Encrypted sessions under the simulator: the Noise XX handshake (both long-term keys learned,
//! the client's third message), sealed records on every flowpath (also after migration and
//! resumption), tampering, key refusal, and nonce uniqueness.

use proptest::prelude::*;

use super::tests::{ms, transfer, MB};
use super::{AppSpec, Fault, Link, Side, SimConfig};
use crate::proto::auth::SEALER_KEYS;
use crate::proto::handshake::{fingerprint, Identity};
use crate::proto::{
    ClientHandshake, Config, Deframer, ErrorCode, Frame, OutQueue, PathId, ServerHandshake,
    Session, SessionError,
};

/// `cfg` with encryption on both ends (and the listener's key).
fn encrypted(mut cfg: SimConfig, psk: Option<[u8; 32]>) -> SimConfig {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(cfg.seed ^ 0x4b);
    cfg.client.encrypt = true;
    cfg.client.psk = psk;
    cfg.server.encrypt = true;
    cfg.server.psk = psk;
    cfg.server.identity = Some(Identity::generate(&mut rng));
    cfg.client.identity = Some(Identity::generate(&mut rng));
    cfg
}

/// The frames `s` sends on path 0 now, as bytes.
fn sent(s: &mut Session) -> bytes::Bytes {
    let mut q = OutQueue::default();
    s.poll_transmit(PathId(0), ms(1), &mut q, 64 << 10);
    q.take_bytes()
}

/// Opens a session between `c` and `s` frame by frame, with `tamper` applied to the
/// client's HELLO(finish); returns both ends and their deframers, or the server's error.
#[allow(clippy::type_complexity)]
fn open_pair(
    c: Config,
    s: Config,
    tamper: impl FnOnce(&mut Frame),
    rng: &mut rand::rngs::StdRng,
) -> Result<(Session, Deframer, Session, Deframer), SessionError> {
    let hs = ClientHandshake::new(c, rng, ms(0));
    let (open, welcome) = ServerHandshake::accept(s, &hs.hello(), rng, |_| false)?;
    assert!(open.awaits_finish());
    let mut crx = Deframer::after_preamble();
    let mut client = hs.handle_reply_on(welcome, &mut crx, ms(1))?;
    let mut srx = Deframer::after_preamble();
    srx.extend(&sent(&mut client));
    let mut finish = srx.next_frame().unwrap().expect("HELLO(finish) first");
    assert!(matches!(finish, Frame::HelloFinish { .. }), "{finish:?}");
    tamper(&mut finish);
    let server = open.finish_on(Some(&finish), &mut srx, ms(1))?;
    Ok((client, crx, server, srx))
}

fn client_with(id: &Identity) -> Config {
    Config {
        encrypt: true,
        identity: Some(id.clone()),
        ..Config::default()
    }
}

fn two_paths(seed: u64) -> SimConfig {
    SimConfig::new(seed)
        .paths(vec![
            Link::new(10, 4 * MB as u64),
            Link::new(30, 2 * MB as u64),
        ])
        .apps(AppSpec::sending(3 * MB), AppSpec::sending(2 * MB))
}

#[test]
fn encrypted_multipath_transfer_is_byte_identical() {
    let sim = transfer(encrypted(two_paths(1), None));
    assert!(sim.client.is_encrypted() && sim.server.is_encrypted());
    let pinned = sim.client.peer_static().copied();
    assert_eq!(pinned, sim.cfg.server.identity.as_ref().map(|i| i.public));
    // ... and the listener learned the client's key (XX's third message).
    let client_key = sim.server.peer_static().copied();
    assert_eq!(
        client_key,
        sim.cfg.client.identity.as_ref().map(|i| i.public)
    );
    // Both paths carried data, sealed.
    for p in [0, 1] {
        let s = sim.client.path_stats(PathId(p)).unwrap();
        assert!(s.bytes_sent > 100_000, "path {p}: {s:?}");
    }
}

#[test]
fn encrypted_session_survives_kills_moves_and_resumes() {
    let cfg = two_paths(2)
        .fault(
            80,
            Fault::Kill {
                path: PathId(0),
                reattach_after: Some(ms(40)),
            },
        )
        .fault(300, Fault::ClientMove);
    let sim = transfer(encrypted(cfg, Some([9; 32])));
    assert!(sim.client.is_encrypted());
}

#[test]
fn a_flipped_bit_kills_only_that_flowpath() {
    for from in [Side::Client, Side::Server] {
        let cfg = two_paths(3).fault(
            150,
            Fault::Corrupt {
                path: PathId(0),
                from,
            },
        );
        // The damaged connection is dropped by the receiver; its bytes are re-sent on the
        // other path, and the streams still arrive intact (checked by `transfer`).
        let sim = transfer(encrypted(cfg, None));
        let receiver = from.peer();
        let errors = &sim.log.errors[receiver.idx()];
        assert!(
            errors
                .iter()
                .any(|(_, e)| e.to_string().contains("failed authentication")),
            "{from:?}: {errors:?}"
        );
    }
}

#[test]
fn mismatched_encryption_is_refused_not_downgraded() {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(5);
    let id = Identity::generate(&mut rng);
    let server = |encrypt: bool, psk: Option<[u8; 32]>| Config {
        encrypt,
        psk,
        identity: Some(id.clone()),
        ..Config::default()
    };
    let client = |encrypt: bool, psk: Option<[u8; 32]>| Config {
        encrypt,
        psk,
        ..Config::default()
    };
    for (c, s, want) in [
        (
            client(false, None),
            server(true, None),
            "requires encryption",
        ),
        (client(true, None), server(false, None), "encryption off"),
        (
            client(true, None),
            server(true, Some([1; 32])),
            "pre-shared key",
        ),
        (
            client(true, Some([1; 32])),
            server(true, None),
            "pre-shared key",
        ),
    ] {
        let hs = ClientHandshake::new(c, &mut rng, ms(0));
        let e = ServerHandshake::accept(s, &hs.hello(), &mut rng, |_| false).expect_err("refused");
        assert!(e.to_string().contains(want), "{e}");
    }
    // An older client (Noise NX, codes 1 and 2) is told to upgrade, not failed obscurely.
    for code in [1, 2] {
        let mut hello = ClientHandshake::new(client(true, None), &mut rng, ms(0)).hello();
        if let Frame::HelloOpen { crypto, .. } = &mut hello {
            *crypto = code;
        }
        let e = ServerHandshake::accept(server(true, None), &hello, &mut rng, |_| false)
            .expect_err("refused");
        assert!(e.to_string().contains("older msock"), "{e}");
    }
    // Different pre-shared keys: the server cannot tell, the client fails the handshake.
    let hs = ClientHandshake::new(client(true, Some([1; 32])), &mut rng, ms(0));
    let (_, welcome) =
        ServerHandshake::accept(server(true, Some([2; 32])), &hs.hello(), &mut rng, |_| {
            false
        })
        .unwrap();
    let e = hs
        .handle_reply(welcome, ms(1))
        .expect_err("handshake fails");
    assert!(e.to_string().contains("pre-shared keys differ"), "{e}");
}

#[test]
fn a_tampered_hello_or_welcome_fails_the_handshake() {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(6);
    let id = Identity::generate(&mut rng);
    let server = Config {
        encrypt: true,
        identity: Some(id),
        ..Config::default()
    };
    let client = Config {
        encrypt: true,
        ..Config::default()
    };
    // A middlebox lowers the client's window in HELLO(open): the prologue differs.
    let hs = crate::proto::ClientHandshake::new(client.clone(), &mut rng, ms(0));
    let mut hello = hs.hello();
    if let crate::proto::Frame::HelloOpen { window, .. } = &mut hello {
        *window = 1;
    }
    let (_, welcome) =
        ServerHandshake::accept(server.clone(), &hello, &mut rng, |_| false).unwrap();
    assert!(hs.handle_reply(welcome, ms(1)).is_err());
    // ... or changes the server's control port in WELCOME.
    let hs = crate::proto::ClientHandshake::new(client, &mut rng, ms(0));
    let (_, mut welcome) =
        ServerHandshake::accept(server, &hs.hello(), &mut rng, |_| false).unwrap();
    if let crate::proto::Frame::Welcome { control_port, .. } = &mut welcome {
        *control_port ^= 1;
    }
    let e = hs
        .handle_reply(welcome, ms(1))
        .expect_err("tampering detected");
    assert!(e.to_string().contains("altered"), "{e}");
}

#[test]
fn both_ends_learn_each_others_key_and_a_tampered_finish_is_refused() {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(7);
    let (sid, cid) = (Identity::generate(&mut rng), Identity::generate(&mut rng));
    let server = Config {
        encrypt: true,
        identity: Some(sid.clone()),
        ..Config::default()
    };
    let (client, _, srv, _) = open_pair(client_with(&cid), server.clone(), |_| {}, &mut rng)
        .expect("the handshake completes");
    assert_eq!(client.peer_static(), Some(&sid.public));
    assert_eq!(srv.peer_static(), Some(&cid.public));
    // Any flipped bit in the client's third message (its key, encrypted) is refused.
    for bit in [0usize, 8 * 20, 8 * 40 + 3, 8 * 63] {
        let e = open_pair(
            client_with(&cid),
            server.clone(),
            |f| {
                if let Frame::HelloFinish { handshake } = f {
                    let mut h = handshake.to_vec();
                    let i = (bit / 8).min(h.len() - 1);
                    h[i] ^= 1 << (bit % 8);
                    *handshake = h.into();
                }
            },
            &mut rng,
        )
        .map(|_| ())
        .expect_err("tampering detected");
        assert!(e.to_string().contains("does not verify"), "{e}");
    }
    // Another session's third message (another client's key) does not finish this one.
    let hs_other = ClientHandshake::new(client_with(&sid), &mut rng, ms(0));
    let (_, w_other) =
        ServerHandshake::accept(server.clone(), &hs_other.hello(), &mut rng, |_| false).unwrap();
    let mut other = hs_other.handle_reply(w_other, ms(1)).unwrap();
    let mut d = Deframer::after_preamble();
    d.extend(&sent(&mut other));
    let foreign = d.next_frame().unwrap().unwrap();
    let e = open_pair(client_with(&cid), server, |f| *f = foreign, &mut rng)
        .map(|_| ())
        .expect_err("a spliced HELLO(finish) is refused");
    assert!(matches!(e, SessionError::Handshake(_)), "{e}");
}

#[test]
fn a_refused_key_is_named_to_the_client() {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(8);
    let (sid, cid) = (Identity::generate(&mut rng), Identity::generate(&mut rng));
    let server = Config {
        encrypt: true,
        identity: Some(sid),
        ..Config::default()
    };
    let (mut client, mut crx, mut srv, _) =
        open_pair(client_with(&cid), server, |_| {}, &mut rng).unwrap();
    srv.refuse_peer_key();
    let fp = fingerprint(&cid.public);
    assert_eq!(srv.error(), Some(&SessionError::KeyRefused(fp.clone())));
    // The ERROR goes out sealed; the client reads it as a refusal of its own key.
    crx.extend(&sent(&mut srv));
    let mut got = None;
    while let Some(f) = crx.next_frame().expect("the server's records open") {
        if let Frame::Error { code, .. } = &f {
            assert_eq!(*code, ErrorCode::KeyRefused);
        }
        if let Err(e) = client.handle_frame(PathId(0), f, &mut crx, ms(2)) {
            got = Some(e.to_string());
            break;
        }
    }
    let got = got.expect("the client fails");
    assert!(
        got.contains(&format!("listener refused key {fp}")) && got.contains("add this line"),
        "{got}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// No sealing key is ever derived twice, whatever the kills, moves and extra paths: with
    /// per-key record counters, no (key, nonce) pair repeats, although the same stream bytes
    /// are re-sent on other flowpaths and on replacement connections.
    #[test]
    fn sealing_keys_never_repeat(seed in 0u64..1000, kill_at in 20u64..300, add in any::<bool>()) {
        SEALER_KEYS.with(|k| k.borrow_mut().clear());
        let mut cfg = two_paths(seed)
            .fault(kill_at, Fault::Kill { path: PathId(1), reattach_after: Some(ms(20)) })
            .fault(kill_at + 60, Fault::ClientMove);
        if add {
            cfg = cfg.fault(kill_at / 2, Fault::AddPath { link: Link::new(5, 3 * MB as u64) });
        }
        let sim = transfer(encrypted(cfg, None));
        let resent: u64 = (0..4)
            .filter_map(|p| sim.client.path_stats(PathId(p)))
            .map(|s| s.bytes_resent)
            .sum();
        let keys = SEALER_KEYS.with(|k| k.borrow().clone());
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        prop_assert_eq!(unique.len(), keys.len(), "a sealing key repeated ({} bytes re-sent)", resent);
        prop_assert!(keys.len() >= 4, "only {} connections keyed", keys.len());
    }
}

#[test]
fn a_young_connection_carries_small_records_that_grow() {
    // A record is opened only once all of it is in; a fresh connection's congestion window
    // starts at about ten segments. With 256 KiB queued, the first records on a connection
    // must each fit about a segment, not 64 KiB (which would arrive whole only after three
    // or four round trips), and grow with what the connection has carried.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(19);
    let id = Identity::generate(&mut rng);
    let server_cfg = Config {
        encrypt: true,
        identity: Some(Identity::generate(&mut rng)),
        ..Config::default()
    };
    let (mut client, _, _, _) =
        open_pair(client_with(&id), server_cfg, |_| {}, &mut rng).expect("handshake");
    assert_eq!(client.write(&vec![7u8; 256 << 10]), 256 << 10);
    let mut sizes = Vec::new();
    let mut total = 0;
    while total < 200 << 10 {
        let mut q = OutQueue::default();
        if !client.poll_transmit(PathId(0), ms(2), &mut q, 64 << 10) {
            break;
        }
        let n = q.take_bytes().len();
        sizes.push(n);
        total += n;
    }
    assert!(sizes[1] <= 1400, "first records: {sizes:?}");
    assert!(
        sizes.iter().take(8).all(|&n| n <= 4096),
        "first records: {sizes:?}"
    );
    assert!(
        *sizes.last().unwrap() > 16 << 10,
        "records never grow: {sizes:?}"
    );
}

#[test]
fn records_sealed_later_are_small_on_a_young_connection_and_grow_past_a_frame() {
    // The same for records handed out to be sealed elsewhere (`poll_transmit_deferred`): they
    // start about a segment, count towards the connection's age, and grow up to the caller's
    // budget, past one DATA frame.
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(18);
    let id = Identity::generate(&mut rng);
    let server_cfg = Config {
        encrypt: true,
        identity: Some(Identity::generate(&mut rng)),
        ..Config::default()
    };
    let (mut client, _, _, _) =
        open_pair(client_with(&id), server_cfg, |_| {}, &mut rng).expect("handshake");
    let queued = client.write(&vec![7u8; 4 << 20]);
    assert!(queued >= 1 << 20, "only {queued} bytes queued");
    let mut sizes = Vec::new();
    let mut total = 0;
    while total < queued {
        let mut q = OutQueue::default();
        let (any, job) = client.poll_transmit_deferred(PathId(0), ms(2), &mut q, 256 << 10);
        if !any {
            break;
        }
        let n = q.take_bytes().len() + job.map_or(0, |j| j.len());
        sizes.push(n);
        total += n;
    }
    assert!(sizes[1] <= 1400, "first records: {sizes:?}");
    assert!(
        sizes.iter().take(8).all(|&n| n <= 4096),
        "first records: {sizes:?}"
    );
    assert!(
        sizes.iter().any(|&n| n > 128 << 10),
        "records never grow past a frame: {sizes:?}"
    );
    assert!(
        sizes.iter().all(|&n| n <= (256 << 10) + (64 << 10) + 256),
        "a record beyond the budget: {sizes:?}"
    );
}
