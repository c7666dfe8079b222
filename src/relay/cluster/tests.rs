//! Unit tests of the cluster membership.

use super::*;

#[test]
fn at_values_round_trip_and_hostile_ones_are_none() {
    let at = At {
        relay: "r1".into(),
        addr: "127.0.0.1:7480".parse().unwrap(),
        gen: 3,
        direct: vec!["192.0.2.1:5".parse().unwrap()],
    };
    assert_eq!(At::decode(&at.encode()), Some(at));
    for bad in [
        &br#"{"relay":"","addr":"1.2.3.4:5","gen":1,"direct":[]}"#[..],
        br#"{"relay":"x","addr":"nope","gen":1,"direct":[]}"#,
        br#"{"relay":"x","addr":"1.2.3.4:5","gen":-1,"direct":[]}"#,
        br#"{"relay":"x","addr":"1.2.3.4:5","gen":1,"direct":[7]}"#,
        br#"[]"#,
        b"\xff",
    ] {
        assert_eq!(At::decode(bad), None);
    }
    let many = format!(
        r#"{{"relay":"x","addr":"1.2.3.4:5","gen":1,"direct":[{}]}}"#,
        vec!["\"1.2.3.4:5\""; 17].join(",")
    );
    assert_eq!(At::decode(many.as_bytes()), None);
}

#[test]
fn a_put_seen_before_the_name_was_ours_still_takes_it() {
    let c = Cluster::new(ClusterConfig {
        etcd: Etcd::new("http://127.0.0.1:1", Duration::from_secs(1)).unwrap(),
        key: [7; KEY_LEN],
        id: "a".into(),
        advertise: "127.0.0.1:1".parse().unwrap(),
        prefix: "msock/".into(),
    });
    assert!(!c.lost("n", 10));
    c.saw("n", 12);
    c.saw("n", 11);
    assert!(c.lost("n", 10) && c.lost("n", 11) && !c.lost("n", 12));
    for i in 0..SEEN_MAX * 2 {
        c.saw(&format!("x{i}"), 1);
    }
    assert!(c.seen.lock().unwrap().len() <= SEEN_MAX);
}

#[tokio::test]
async fn bounded_runs_everything_at_most_in_flight_at_once() {
    use std::sync::atomic::AtomicUsize;
    let now = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    bounded((0..100).collect(), |_: i32| {
        let (now, most, done) = (now.clone(), most.clone(), done.clone());
        async move {
            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
            now.fetch_sub(1, Ordering::SeqCst);
            done.fetch_add(1, Ordering::SeqCst);
        }
    })
    .await;
    assert_eq!(done.load(Ordering::SeqCst), 100);
    let most = most.load(Ordering::SeqCst);
    assert!(most <= IN_FLIGHT && most > 1, "{most}");
}

/// The cluster id told to listeners: the same for the same key and prefix, another for
/// another key or prefix, never all-zero ("no cluster"), and not the key.
#[test]
fn cluster_ids_are_per_key_and_prefix() {
    let (k1, k2) = ([1u8; KEY_LEN], [2u8; KEY_LEN]);
    let id = seal::cluster_id(&k1, "msock/");
    assert_eq!(id, seal::cluster_id(&k1, "msock/"));
    assert_ne!(id, seal::cluster_id(&k2, "msock/"));
    assert_ne!(id, seal::cluster_id(&k1, "other/"));
    assert_ne!(id, [0; 16]);
    assert_ne!(&id[..], &k1[..16]);
}
