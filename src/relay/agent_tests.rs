//! Tests of the listener's registration against fake relays.

use super::*;
use tokio::net::TcpListener;

/// A relay that predates REGISTER's flags: a REGISTER with a trailing byte is malformed to
/// it (ERROR(protocol)); without, it registers the name with a fresh secret. Its NONCE
/// claims `cluster` (asked for or not).
async fn old_relay(l: TcpListener, cluster: Option<[u8; wire::CLUSTER_ID_LEN]>) -> usize {
    let mut refused = 0;
    loop {
        let (mut s, _) = l.accept().await.unwrap();
        let t = Duration::from_secs(5);
        wire::read_preamble(&mut s, t).await.unwrap();
        let (ty, body) = wire::read_raw(&mut s, t).await.unwrap();
        assert_eq!(ty, wire::kind::REGISTER);
        // name "pc" (3 bytes), no addresses (1 byte): anything more is the new flags.
        if body.len() > 4 {
            refused += 1;
            let e = Refusal {
                code: crate::proto::ErrorCode::Protocol,
                reason: "malformed".into(),
            };
            s.write_all(&RelayToListener::Error(e).with_preamble())
                .await
                .unwrap();
            continue;
        }
        let nonce = RelayToListener::Nonce {
            nonce: [1; NONCE_LEN],
            cluster,
        };
        s.write_all(&nonce.with_preamble()).await.unwrap();
        let (ty, _) = wire::read_raw(&mut s, t).await.unwrap();
        assert_eq!(ty, wire::kind::PROVE);
        let ok = RelayToListener::Registered {
            secret: [7; 32],
            ttl: 60,
            keepalive: 15,
        };
        s.write_all(&ok.encode()).await.unwrap();
        std::mem::forget(s);
        return refused;
    }
}

/// A listener that asks for the cluster id at a relay that predates it registers anyway:
/// refused once, it asks again without and does not ask that relay again; the secret is
/// kept in the relay's own file (no cluster).
#[tokio::test]
async fn a_relay_that_predates_cluster_ids_is_asked_again_without() {
    let (refused, legacy) = register_at_an_old_relay(true, None).await;
    assert_eq!(refused, 1);
    assert!(legacy);
}

/// Without --relay-cluster a relay's cluster is never asked for (a relay's claim of one is
/// not authenticated): even a relay that predates the flag takes the first REGISTER.
#[tokio::test]
async fn without_relay_cluster_the_cluster_id_is_not_asked_for() {
    let (refused, legacy) = register_at_an_old_relay(false, None).await;
    assert_eq!(refused, 0);
    assert!(!legacy);
}

/// Without --relay-cluster a cluster id the relay sends unasked is ignored: the listener
/// keeps the relay's own secret, never a cluster's (a relay claiming a cluster's id would
/// otherwise get the listener's proof with that cluster's secret, to pass on).
#[tokio::test]
async fn a_cluster_id_sent_unasked_is_ignored() {
    let (refused, legacy) = register_at_an_old_relay(false, Some([9; wire::CLUSTER_ID_LEN])).await;
    assert_eq!(refused, 0);
    assert!(!legacy);
}

/// Registers "pc" at [`old_relay`] (its NONCE claiming `claims`): how often it refused, and
/// whether the listener then took it for a relay that predates cluster ids. The secret is in
/// the relay's own file.
async fn register_at_an_old_relay(
    one_cluster: bool,
    claims: Option<[u8; wire::CLUSTER_ID_LEN]>,
) -> (usize, bool) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let relay = tokio::spawn(old_relay(l, claims));
    let dir = tempfile::tempdir().unwrap();
    let cfg = AgentConfig {
        relay: addr.to_string(),
        name: "pc".into(),
        secret_file: dir.path().join("pc.secret"),
        key: None,
        family: Family::Any,
        listening: vec![],
        events: Events::off(),
        one_cluster,
    };
    let slot = Arc::new(Slot {
        me: 0,
        dialed: Dialed::default(),
        legacy: Default::default(),
        groups: Groups::new(),
    });
    let ch = register(&cfg, &slot).await.map_err(|_| ()).unwrap();
    assert_eq!(ch.relay, addr);
    assert!(ch._held.is_none());
    assert_eq!(
        secrets::load_secret(&cfg.secret_file).unwrap(),
        Some([7; 32])
    );
    let legacy = slot.legacy.load(std::sync::atomic::Ordering::Relaxed);
    (relay.await.unwrap(), legacy)
}
