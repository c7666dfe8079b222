//! The listener's handshake places under a burst of relayed flowpaths: every flowpath a relay
//! splices comes from the relay's address (the listener dialed it back), so the cap per
//! source address must not turn a burst of relayed resumes into "listener busy" refusals,
//! and no relay (nor a client behind one) may take the places direct clients need.

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::*;
use crate::proto::frame::{NONCE_LEN, PROOF_LEN};

fn policy(max_pending: usize) -> DetectPolicy {
    DetectPolicy {
        allow_plain: false,
        magics: Arc::from(Vec::new()),
        wait: Duration::from_millis(100),
        handshake_timeout: Duration::from_secs(10),
        max_pending,
    }
}

/// A connection to `relay`: (the relay's end, the listener's end, as a dial-back makes it).
async fn dial_back(relay: &TcpListener) -> (TcpStream, TcpStream) {
    let ours = TcpStream::connect(relay.local_addr().unwrap())
        .await
        .unwrap();
    let (theirs, _) = relay.accept().await.unwrap();
    (theirs, ours)
}

/// What the listener answers a HELLO(resume) for session `id` sent on `relay_end`.
async fn resume(relay_end: TcpStream, id: u64) -> Frame {
    let mut conn = FlowConn::new(relay_end, Deframer::new()).unwrap();
    conn.queue_preamble();
    conn.queue(&Frame::HelloResume {
        session_id: id,
        path_id: 1,
        client_nonce: [1; NONCE_LEN],
        server_nonce: [2; NONCE_LEN],
        client_proof: [3; PROOF_LEN],
        cumulative: 0,
    });
    conn.flush().await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), conn.read_frame())
        .await
        .expect("an answer in time")
        .expect("an answer")
}

/// 50 sessions resume through one relay at once (the relay died and they all came back
/// through another, or a network change moved them all): the listener dials back all 50
/// before the relay has spliced the clients' first bytes to any of them. Every resume must
/// reach the session book (here: none of these sessions exists, so "no such session"),
/// none be refused busy because 50 flowpaths came from one address.
#[tokio::test]
async fn a_burst_of_relayed_resumes_is_not_refused_as_one_source() {
    let max = 64;
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let pending = Pending::new(max);
    let routes: Routes = Arc::default();
    let (tx, _rx) = mpsc::channel(64);
    let mut ends = Vec::new();
    for _ in 0..50 {
        let (relay_end, listener_end) = dial_back(&relay).await;
        inject(
            listener_end,
            relay_addr,
            policy(max),
            routes.clone(),
            &pending,
            tx.clone(),
        );
        ends.push(relay_end);
    }
    let mut answers = JoinSet::new();
    for (i, end) in ends.into_iter().enumerate() {
        answers.spawn(resume(end, 1 + i as u64));
    }
    let mut busy = 0;
    while let Some(a) = answers.join_next().await {
        match a.unwrap() {
            Frame::Error {
                code: ErrorCode::UnknownSession,
                ..
            } => {}
            Frame::Error {
                code: ErrorCode::Busy,
                ..
            } => busy += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(busy, 0, "relayed resumes refused as busy");
}

/// The hole the relayed book must not open: a client behind a relay floods it with
/// flowpaths that never say a word. They take at most three quarters of the places, at most
/// as many more wait, the rest are refused busy at once, and a direct client (even from the
/// relay's own address) still gets in.
#[tokio::test]
async fn silent_relayed_flowpaths_leave_direct_clients_a_place() {
    let max = 16;
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let pending = Pending::new(max);
    let routes: Routes = Arc::default();
    let (tx, _rx) = mpsc::channel(64);
    let mut silent = Vec::new();
    for _ in 0..40 {
        let (relay_end, listener_end) = dial_back(&relay).await;
        let (p, r, t) = (policy(max), routes.clone(), tx.clone());
        inject(listener_end, relay_addr, p, r, &pending, t);
        silent.push(relay_end);
    }
    // 12 hold places (silent: held 2 s before they are refused as plain TCP), 16 wait, the
    // last 12 are refused busy at once.
    let mut answers = JoinSet::new();
    for end in silent {
        answers.spawn(async move {
            let mut conn = FlowConn::new(end, Deframer::new()).unwrap();
            let wait = Duration::from_millis(1500);
            tokio::time::timeout(wait, conn.read_frame()).await
        });
    }
    let (direct_end, listener_end) = dial_back(&relay).await;
    let peer = direct_end.local_addr().unwrap();
    spawn_classify(listener_end, peer, policy(max), routes, &pending, tx, false);
    match resume(direct_end, 7).await {
        Frame::Error {
            code: ErrorCode::UnknownSession,
            ..
        } => {}
        other => panic!("the direct client got {other:?}"),
    }
    let mut busy = 0;
    while let Some(a) = answers.join_next().await {
        if let Ok(Ok(Frame::Error {
            code: ErrorCode::Busy,
            ..
        })) = a.unwrap()
        {
            busy += 1;
        }
    }
    assert_eq!(busy, 40 - 12 - 16, "relayed flowpaths refused busy at once");
}

#[test]
fn relayed_flowpaths_share_three_quarters_of_the_places() {
    let pending = Pending::new(8);
    let relayed: Vec<_> = (0..6)
        .map(|_| pending.take(Source::Relayed).expect("room"))
        .collect();
    let why = pending
        .take(Source::Relayed)
        .expect_err("a seventh relayed");
    assert!(why.contains("6 relayed flowpaths"), "{why}");
    // The relay's own address, as a direct client, is another source.
    let lo = Source::Addr("127.0.0.1".parse().unwrap());
    let direct: Vec<_> = (0..2).map(|_| pending.take(lo).expect("room")).collect();
    assert!(pending.take(lo).is_err(), "all 8 places are taken");
    drop(relayed);
    drop(direct);
    assert!(pending.take(Source::Relayed).is_ok());
}
