//! Encrypted sessions under the simulator: the Noise handshake, sealed records on every
//! flowpath (also after migration and resumption), tampering, and nonce uniqueness.

use proptest::prelude::*;

use super::tests::{ms, transfer, MB};
use super::{AppSpec, Fault, Link, Side, SimConfig};
use crate::proto::auth::SEALER_KEYS;
use crate::proto::handshake::Identity;
use crate::proto::{Config, PathId};

/// `cfg` with encryption on both ends (and the listener's key).
fn encrypted(mut cfg: SimConfig, psk: Option<[u8; 32]>) -> SimConfig {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(cfg.seed ^ 0x4b);
    cfg.client.encrypt = true;
    cfg.client.psk = psk;
    cfg.server.encrypt = true;
    cfg.server.psk = psk;
    cfg.server.identity = Some(Identity::generate(&mut rng));
    cfg
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
        let hs = crate::proto::ClientHandshake::new(c, &mut rng, ms(0));
        let e = crate::proto::Session::accept(s, &hs.hello(), &mut rng, ms(0), |_| false)
            .expect_err("refused");
        assert!(e.to_string().contains(want), "{e}");
    }
    // Different pre-shared keys: the server cannot tell, the client fails the handshake.
    let hs = crate::proto::ClientHandshake::new(client(true, Some([1; 32])), &mut rng, ms(0));
    let (_, welcome) = crate::proto::Session::accept(
        server(true, Some([2; 32])),
        &hs.hello(),
        &mut rng,
        ms(0),
        |_| false,
    )
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
        crate::proto::Session::accept(server.clone(), &hello, &mut rng, ms(0), |_| false).unwrap();
    assert!(hs.handle_reply(welcome, ms(1)).is_err());
    // ... or changes the server's control port in WELCOME.
    let hs = crate::proto::ClientHandshake::new(client, &mut rng, ms(0));
    let (_, mut welcome) =
        crate::proto::Session::accept(server, &hs.hello(), &mut rng, ms(0), |_| false).unwrap();
    if let crate::proto::Frame::Welcome { control_port, .. } = &mut welcome {
        *control_port ^= 1;
    }
    let e = hs
        .handle_reply(welcome, ms(1))
        .expect_err("tampering detected");
    assert!(e.to_string().contains("altered"), "{e}");
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
