//! Tests of the relay's frames: every message of every direction round-trips; hostile bodies,
//! another direction's frames and oversized lengths are refused.

use super::*;

fn roundtrip<M: Message + PartialEq + std::fmt::Debug>(f: M) {
    let bytes = f.encode();
    let len = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
    assert_eq!(len, bytes.len() - 4);
    assert_eq!(M::decode(bytes[4], &bytes[5..]).unwrap(), f);
}

fn refusal() -> Refusal {
    Refusal {
        code: ErrorCode::Refused,
        reason: "no".into(),
    }
}

#[test]
fn frames_roundtrip() {
    let a: SocketAddr = "10.0.0.1:9000".parse().unwrap();
    let b: SocketAddr = "[2001:db8::1]:80".parse().unwrap();
    for ask_cluster in [false, true] {
        roundtrip(ListenerToRelay::Register {
            name: "laptop-1".into(),
            addrs: vec![a, b],
            ask_cluster,
        });
    }
    for cluster in [None, Some([0; 16]), Some([9; 16])] {
        roundtrip(RelayToListener::Nonce {
            nonce: [7; 16],
            cluster,
        });
    }
    roundtrip(ListenerToRelay::Prove {
        name_proof: [1; 32],
        key_proof: [2; 32],
    });
    roundtrip(RelayToListener::Registered {
        secret: [3; 32],
        ttl: 86400,
        keepalive: 15,
    });
    roundtrip(RelayToListener::Dial {
        id: 42,
        token: [4; 16],
    });
    roundtrip(ListenerToRelay::Splice {
        id: 42,
        token: [4; 16],
    });
    roundtrip(ClientToRelay::Route("x".into()));
    roundtrip(ClientToRelay::Lookup("x.y_z".into()));
    roundtrip(ClientToRelay::Pair("7".into()));
    roundtrip(ListenerToRelay::RegisterCode {
        name: "7".into(),
        addrs: vec![],
    });
    roundtrip(ListenerToRelay::Paired);
    roundtrip(RelayToClient::Found(vec![b]));
    roundtrip(ListenerToRelay::Gone(vec![1, 2, 3]));
    roundtrip(ListenerToRelay::Ping(9));
    roundtrip(RelayToListener::Pong(9));
    roundtrip(RelayToClient::Error(refusal()));
    roundtrip(RelayToListener::Error(refusal()));
    roundtrip(refusal());
}

#[test]
fn hostile_frames_are_refused() {
    // Bad names, truncated bodies, stray bytes, unknown types, oversized lists.
    assert!(ClientToRelay::decode(kind::ROUTE, &[0]).is_err());
    assert!(ClientToRelay::decode(kind::ROUTE, &[3, b'a', b'/', b'b']).is_err());
    assert!(ClientToRelay::decode(kind::ROUTE, &[5, b'a']).is_err());
    assert!(ClientToRelay::decode(kind::ROUTE, &[1, b'a', 0]).is_err());
    assert!(ToRelay::decode(0x77, &[]).is_err());
    assert!(RelayToClient::decode(0x77, &[]).is_err());
    assert!(RelayToClient::decode(kind::FOUND, &[200]).is_err());
    assert!(ListenerToRelay::decode(kind::GONE, &[0xff, 0xff]).is_err());
    assert!(RelayToListener::decode(kind::DIAL, &[0; 10]).is_err());
    assert!(ListenerToRelay::decode(kind::REGISTER, &[1, b'a', 1, 9, 0, 0]).is_err());
}

/// The optional trailing fields of REGISTER (flags) and NONCE (cluster id): absent is the
/// old frame; present, they have their exact length (a hostile relay's cluster id is 16
/// bytes or the frame is refused); unknown flag bits are ignored.
#[test]
fn optional_trailing_fields_are_bounded() {
    let reg = |tail: &[u8]| {
        let mut b = vec![1, b'a', 0];
        b.extend_from_slice(tail);
        ListenerToRelay::decode(kind::REGISTER, &b)
    };
    let asks = |r: Result<ListenerToRelay, WireError>| match r {
        Ok(ListenerToRelay::Register { ask_cluster, .. }) => Some(ask_cluster),
        _ => None,
    };
    assert_eq!(asks(reg(&[])), Some(false));
    assert_eq!(asks(reg(&[1])), Some(true));
    assert_eq!(asks(reg(&[0xfe])), Some(false));
    assert_eq!(asks(reg(&[1, 0])), None);
    // The old REGISTER (no flags) is what an old listener sends: byte for byte as before.
    let old = ListenerToRelay::Register {
        name: "a".into(),
        addrs: vec![],
        ask_cluster: false,
    }
    .encode();
    assert_eq!(&old[4..], &[kind::REGISTER, 1, b'a', 0]);
    let nonce = |len: usize| RelayToListener::decode(kind::NONCE, &vec![5; 16 + len]);
    assert!(matches!(
        nonce(0),
        Ok(RelayToListener::Nonce { cluster: None, .. })
    ));
    assert!(matches!(
        nonce(16),
        Ok(RelayToListener::Nonce {
            cluster: Some(c),
            ..
        }) if c == [5; 16]
    ));
    for bad in [1, 15, 17, 32, 4000] {
        assert!(nonce(bad).is_err(), "{bad}");
    }
    assert!(RelayToListener::decode(kind::NONCE, &[5; 15]).is_err());
}

/// Each decoder takes its own direction's frames only: what a relay sends does not decode
/// as something sent to a relay, and the other way round.
#[test]
fn frames_of_another_direction_do_not_decode() {
    let registered = RelayToListener::Registered {
        secret: [3; 32],
        ttl: 1,
        keepalive: 1,
    }
    .encode();
    let (t, body) = (registered[4], &registered[5..]);
    assert!(matches!(
        ToRelay::decode(t, body),
        Err(WireError::Unexpected {
            ty: kind::REGISTERED,
            ..
        })
    ));
    assert!(ListenerToRelay::decode(t, body).is_err());
    assert!(RelayToClient::decode(t, body).is_err());
    let route = ClientToRelay::Route("x".into()).encode();
    assert!(RelayToListener::decode(route[4], &route[5..]).is_err());
    assert!(ListenerToRelay::decode(route[4], &route[5..]).is_err());
    assert!(matches!(
        ToRelay::decode(route[4], &route[5..]),
        Ok(ToRelay::Client(ClientToRelay::Route(_)))
    ));
    let dial = RelayToListener::Dial {
        id: 1,
        token: [0; 16],
    }
    .encode();
    assert!(RelayToClient::decode(dial[4], &dial[5..]).is_err());
    // HELLO(open) from an msock client is not a relay frame either.
    assert!(ToRelay::decode(ty::HELLO_OPEN, &[]).is_err());
}

#[tokio::test]
async fn reader_refuses_oversized_and_foreign() {
    let mut big: &[u8] = &[0, 0x10, 0, 0, kind::ROUTE];
    assert!(matches!(
        read_raw(&mut big, Duration::from_secs(1)).await,
        Err(WireError::Malformed(_))
    ));
    let mut empty: &[u8] = &[0, 0, 0, 0, kind::ROUTE];
    assert!(matches!(
        read_raw(&mut empty, Duration::from_secs(1)).await,
        Err(WireError::Malformed(CodecError::NoType))
    ));
    let mut foreign: &[u8] = b"GET / HTTP/1.1\r\n";
    assert!(matches!(
        read_preamble(&mut foreign, Duration::from_secs(1)).await,
        Err(WireError::NotMsock)
    ));
}

#[test]
fn names() {
    assert!(check_name("home-pc.lan_1").is_ok());
    assert!(check_name("").is_err());
    assert!(check_name("a@b").is_err());
    assert!(check_name(&"x".repeat(65)).is_err());
}

#[test]
fn cluster_frames_roundtrip_and_go_one_way() {
    let at: SocketAddr = "127.0.0.1:7480".parse().unwrap();
    let dial = RelayToListener::DialAt {
        id: 9,
        token: [5; 16],
        relay: at,
    };
    roundtrip(dial.clone());
    let f = Forward {
        name: "pc".into(),
        id: 9,
        token: [5; 16],
        at,
        time: 1_700_000_000,
        mac: [6; 32],
    };
    roundtrip(f.clone());
    let bytes = f.encode();
    assert!(matches!(
        ToRelay::decode(bytes[4], &bytes[5..]),
        Ok(ToRelay::Peer(_))
    ));
    // The MAC covers every field but itself.
    let mut g = f.clone();
    g.id = 10;
    assert_ne!(f.signed(), g.signed());
    assert_eq!(
        f.signed(),
        Forward {
            mac: [0; 32],
            ..f.clone()
        }
        .signed()
    );
    // Neither decodes in another direction, nor truncated.
    let d = dial.encode();
    assert!(ClientToRelay::decode(d[4], &d[5..]).is_err());
    assert!(RelayToListener::decode(d[4], &d[5..d.len() - 1]).is_err());
    assert!(RelayToListener::decode(bytes[4], &bytes[5..]).is_err());
    assert!(Forward::decode(bytes[4], &bytes[5..bytes.len() - 1]).is_err());
}
