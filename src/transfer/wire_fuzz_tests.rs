//! Property tests of the file-transfer wire's reader against a hostile peer: random byte
//! streams (headers claiming any length, then random bytes, then the end) to `read_msg`. It
//! must refuse or read, never panic, and allocate for a message's body only as the body
//! arrives: a header claiming the largest control message, followed by nothing, must not cost
//! that much memory. (The control bodies' decoding is tested through the public API in
//! tests/hostile_decoders.rs.)

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;

use super::wire::{read_msg, tag, MAX_CONTROL};
use crate::proto::fuzz_tests::probe::measure;
use crate::runtime::app::AppSink;
use crate::runtime::channel_io::channel_app;

/// Bookkeeping that needs no explanation.
const SLACK: usize = 256 << 10;

/// Reads messages from `stream` (as one session would deliver it, then its end) until the
/// end or an error; returns how many were read.
fn read_all(rt: &tokio::runtime::Runtime, stream: Vec<u8>) -> usize {
    rt.block_on(async move {
        let (_source, mut sink, _writer, mut reader) = channel_app(4);
        let feed = async move {
            for piece in stream.chunks(1000) {
                let mut b = Bytes::copy_from_slice(piece);
                if std::future::poll_fn(|cx| sink.poll_write_chunk(cx, &mut b))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // Dropping the sink ends the stream.
        };
        let read = async {
            let mut n = 0;
            while let Ok(Some(_)) = read_msg(&mut reader).await {
                n += 1;
            }
            n
        };
        let (_, n) = tokio::join!(feed, read);
        n
    })
}

fn header(t: u8, len: u32) -> Vec<u8> {
    let mut v = vec![t];
    v.extend(len.to_be_bytes());
    v
}

#[test]
fn a_length_claim_alone_costs_no_memory() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut stream = header(tag::OFFER, MAX_CONTROL as u32);
    stream.extend(b"{\"entries\":");
    let (_, u) = measure(|| read_all(&rt, stream));
    assert!(
        u.largest < MAX_CONTROL / 4,
        "a {MAX_CONTROL}-byte claim followed by 11 bytes allocated {u:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_streams_to_the_reader(
        parts in vec(
            prop_oneof![
                vec(any::<u8>(), 0..300),
                (
                    prop_oneof![Just(tag::OFFER), Just(tag::DATA), Just(tag::STATUS), any::<u8>()],
                    prop_oneof![any::<u32>(), Just(u32::MAX), Just(MAX_CONTROL as u32), 0u32..400],
                )
                    .prop_map(|(t, l)| header(t, l)),
            ],
            0..10,
        ),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let stream = parts.concat();
        let n = stream.len();
        let (_, u) = measure(|| read_all(&rt, stream));
        prop_assert!(u.largest <= 2 * n + SLACK, "{u:?} for a {n}-byte stream");
    }
}
