//! The sender against a hand-written (hostile) receiver, in memory: what the receiver says is
//! escaped before anything can print it, and a STATUS that does not fit the offer is refused.

use std::path::PathBuf;

use super::*;
use crate::runtime::channel_io::channel_app;
use crate::runtime::{AppSink, AppSource};
use crate::transfer::manifest;
use crate::transfer::progress::Display;

/// Copies what one end's source yields into the other end's sink, until it ends.
async fn pump(mut from: impl AppSource, mut to: impl AppSink) {
    use std::future::poll_fn;
    while let Ok(Some(mut b)) = poll_fn(|cx| from.poll_chunk(cx)).await {
        while !b.is_empty() {
            if poll_fn(|cx| to.poll_write_chunk(cx, &mut b)).await.is_err() {
                return;
            }
        }
    }
}

/// Runs the sender on `paths` against `receiver`, which gets the other ends of the session.
async fn against<F, Fut>(paths: Vec<PathBuf>, receiver: F) -> Result<Sent, SendError>
where
    F: FnOnce(ChannelWriter, ChannelReader) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (s_src, s_sink, mut s_w, mut s_r) = channel_app(16);
    let (r_src, r_sink, r_w, r_r) = channel_app(16);
    let m = manifest::build(&paths, "stdin").unwrap();
    let progress = Progress::new(Display::choose(true, false));
    let sender = async {
        let res = send(&mut s_w, &mut s_r, m, &progress).await;
        drop(s_w);
        res
    };
    let (res, ..) = tokio::join!(
        sender,
        receiver(r_w, r_r),
        pump(s_src, r_sink),
        pump(r_src, s_sink)
    );
    res
}

const EVIL: &str = "\x1b[2J\x1b[Hsent 1 file, verified\x07\u{202E}";

fn no_controls(s: &str) {
    assert!(
        !s.chars()
            .any(|c| c.is_control() || crate::proto::text::is_deceptive_format(c)),
        "raw control characters reach the terminal: {s:?}"
    );
}

#[tokio::test]
async fn a_refusal_is_escaped() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("a.txt");
    std::fs::write(&f, b"hello").unwrap();
    let res = against(vec![f], |mut w, mut r| async move {
        let _: wire::Offer = wire::recv_list(&mut r, tag::OFFER, 10, 1 << 20)
            .await
            .unwrap();
        let st = Status {
            refused: Some(EVIL.into()),
            held: Vec::new(),
            overwrite: false,
            more: false,
        };
        let _ = w.send(wire::control(tag::STATUS, &st)).await;
        w.close();
    })
    .await;
    let e = res.expect_err("refused");
    no_controls(&e.to_string());
}

#[tokio::test]
async fn a_verdicts_error_is_escaped() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("a.txt");
    std::fs::write(&f, b"hello").unwrap();
    let res = against(vec![f], |mut w, mut r| async move {
        let _: wire::Offer = wire::recv_list(&mut r, tag::OFFER, 10, 1 << 20)
            .await
            .unwrap();
        let st = Status {
            refused: None,
            held: Vec::new(),
            overwrite: false,
            more: false,
        };
        let _ = w.send(wire::control(tag::STATUS, &st)).await;
        // START, DATA, END: then a failed verdict with terminal controls in its reason.
        while let Ok(Some(m)) = wire::read_msg(&mut r).await {
            match m {
                Msg::Data(n) => {
                    let _ = r.recv_exact(n).await;
                }
                Msg::Control(tag::END, _) => {
                    let v = Verdict {
                        index: 0,
                        ok: false,
                        error: Some(EVIL.into()),
                        saved_as: None,
                    };
                    let _ = w.send(wire::control(tag::VERDICT, &v)).await;
                }
                Msg::Control(..) => {}
            }
        }
        let done = Done { files: 0, bytes: 5 };
        let _ = w.send(wire::control(tag::DONE, &done)).await;
        w.close();
    })
    .await;
    let sent = res.expect("the transfer ran to its end");
    assert!(!sent.files[0].ok);
    no_controls(sent.files[0].error.as_deref().unwrap());
}

#[tokio::test]
async fn a_status_for_entries_not_offered_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("a.txt");
    std::fs::write(&f, b"hello").unwrap();
    let res = against(vec![f], |mut w, mut r| async move {
        let _: wire::Offer = wire::recv_list(&mut r, tag::OFFER, 10, 1 << 20)
            .await
            .unwrap();
        let st = Status {
            refused: None,
            held: vec![Held {
                index: 7,
                partial: 1,
                existing: false,
            }],
            overwrite: false,
            more: false,
        };
        let _ = w.send(wire::control(tag::STATUS, &st)).await;
        w.close();
    })
    .await;
    assert!(
        matches!(res, Err(SendError::Peer(WireError::Protocol(_)))),
        "{res:?}"
    );
}

/// A peer that never ends a list (every message says `more`) is cut off at the limit, and a
/// long list is cut into messages that each fit the control-message limit.
#[tokio::test]
async fn lists_are_bounded_and_cut_into_messages() {
    use std::future::poll_fn;
    let (_src, mut sink, _w, mut r) = channel_app(64);
    let feed = async move {
        for _ in 0..50 {
            let part = wire::Offer {
                entries: Vec::new(),
                more: true,
            };
            let mut b = wire::control(tag::OFFER, &part);
            if poll_fn(|cx| sink.poll_write_chunk(cx, &mut b))
                .await
                .is_err()
            {
                return;
            }
        }
    };
    let read = wire::recv_list::<wire::Offer>(&mut r, tag::OFFER, 10, 500);
    let (res, ()) = tokio::join!(read, feed);
    assert!(matches!(res, Err(WireError::Limit(_))), "{res:?}");

    let many: Vec<Held> = (0..200_000)
        .map(|index| Held {
            index,
            partial: u64::MAX,
            existing: true,
        })
        .collect();
    let msgs: Vec<_> =
        wire::list_messages(tag::STATUS, &serde_json::Map::new(), "held", &many).collect();
    assert!(msgs.len() > 5, "{} messages", msgs.len());
    assert!(msgs.iter().all(|m| m.len() < wire::MAX_CONTROL));
    let mut back = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let st: Status = wire::decode(tag::STATUS, &m[5..]).unwrap();
        assert_eq!(st.more, i + 1 < msgs.len());
        back.extend(st.held);
    }
    assert_eq!(back, many);
}
