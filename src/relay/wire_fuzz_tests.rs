//! Property tests of the relay's wire against a hostile peer: random frame types and bodies to
//! every decoder (what a relay reads from clients and listeners, what a listener and a client
//! read from a relay), and random byte streams to the frame reader. Each must refuse or
//! decode, never panic, and never allocate beyond the frame limit whatever the length field
//! claims.

use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;

use super::wire::*;
use crate::proto::fuzz_tests::probe::measure;

/// Bookkeeping that needs no explanation.
const SLACK: usize = 16 << 10;

fn decode_everything(t: u8, body: &[u8]) {
    let _ = ToRelay::decode(t, body);
    let _ = <RelayToListener as Message>::decode(t, body);
    let _ = <RelayToClient as Message>::decode(t, body);
    let _ = <ClientToRelay as Message>::decode(t, body);
    let _ = <ListenerToRelay as Message>::decode(t, body);
    let _ = <Refusal as Message>::decode(t, body);
}

/// Types a relay frame may have, and any other.
fn frame_type() -> impl Strategy<Value = u8> {
    prop_oneof![0x1du8..=0x2a, any::<u8>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Any type and body: decoded or refused, allocating at most a few times the body.
    #[test]
    fn random_bodies(t in frame_type(), body in vec(any::<u8>(), 0..MAX_RELAY_FRAME + 100)) {
        let n = body.len();
        let (_, u) = measure(|| decode_everything(t, &body));
        prop_assert!(u.peak <= 4 * n + SLACK, "{u:?} for {n} bytes");
    }

    /// Bodies that start like real ones: counts and lengths (names, address lists, GONE
    /// lists) at their limits and beyond, then random bytes.
    #[test]
    fn bodies_with_hostile_counts(
        t in frame_type(),
        head in vec(prop_oneof![Just(0u8), Just(0xff), Just(MAX_NAME as u8 + 1), Just(MAX_ADDRS as u8 + 1), any::<u8>()], 0..8),
        tail in vec(any::<u8>(), 0..600),
    ) {
        let body = [head, tail].concat();
        let n = body.len();
        let (_, u) = measure(|| decode_everything(t, &body));
        prop_assert!(u.peak <= 4 * n + SLACK, "{u:?} for {n} bytes");
    }

    /// A byte stream (a length field claiming anything, then random bytes) to the frame
    /// reader: at most one frame of the limit is allocated.
    #[test]
    fn random_streams_to_the_reader(
        claim in prop_oneof![any::<u32>(), Just(u32::MAX), 0u32..MAX_RELAY_FRAME as u32 + 10],
        t in frame_type(),
        rest in vec(any::<u8>(), 0..MAX_RELAY_FRAME + 100),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let mut stream = claim.to_be_bytes().to_vec();
        stream.push(t);
        stream.extend(rest);
        let (_, u) = measure(|| {
            rt.block_on(async {
                let mut r: &[u8] = &stream;
                if let Ok((t, body)) = read_raw(&mut r, Duration::from_secs(5)).await {
                    let _ = ToRelay::decode(t, &body);
                }
                let mut r: &[u8] = &stream;
                let _ = read_frame::<RelayToListener, _>(&mut r, Duration::from_secs(5)).await;
            })
        });
        prop_assert!(u.largest <= MAX_RELAY_FRAME + SLACK, "{u:?}");
    }
}
