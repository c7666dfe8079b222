//! Issue 13 property tests: random bytes and random message sequences fed to every decoder
//! reachable from the library's public API (session frames and the deframer, control
//! datagram routing, the file-transfer wire, the bench wire). Each must return or refuse,
//! never panic, and never allocate on a length field's word beyond its limit: a counting
//! allocator records the largest single allocation and the peak of live bytes while a decoder
//! runs. (Decoders that are not public, the relay's wire and the session's handling of
//! frames, control datagrams and handshakes, have the same tests next to them.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::{BufMut, Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;

use msock::bench::model::{Interval, Params};
use msock::bench::wire as bench_wire;
use msock::proto::control::session_id_of;
use msock::proto::frame::MAX_FRAME_LEN;
use msock::proto::{Deframer, Frame, PREAMBLE};
use msock::transfer::wire as transfer_wire;

// ---------------------------------------------------------------------------------------------
// A counting allocator: per thread, while armed.

struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn on_alloc(size: usize) {
    let _ = ARMED.try_with(|a| {
        if a.get() {
            LARGEST.with(|l| l.set(l.get().max(size)));
            LIVE.with(|l| {
                let now = l.get() + size as isize;
                l.set(now);
                PEAK.with(|p| p.set(p.get().max(now)));
            });
        }
    });
}

fn on_free(size: usize) {
    let _ = ARMED.try_with(|a| {
        if a.get() {
            LIVE.with(|l| l.set(l.get() - size as isize));
        }
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the bookkeeping only
// touches const-initialised thread-locals (no allocation, no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        on_alloc(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        on_free(layout.size());
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        on_free(layout.size());
        on_alloc(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// What a piece of code allocated on this thread.
#[derive(Debug, Clone, Copy)]
struct Usage {
    /// The largest single allocation (or reallocation), bytes.
    largest: usize,
    /// The most bytes it held at once (allocated and not yet freed).
    peak: usize,
}

/// Runs `f`, counting its allocations on this thread.
fn measure<R>(f: impl FnOnce() -> R) -> (R, Usage) {
    LARGEST.with(|l| l.set(0));
    LIVE.with(|l| l.set(0));
    PEAK.with(|p| p.set(0));
    ARMED.with(|a| a.set(true));
    let r = f();
    ARMED.with(|a| a.set(false));
    let usage = Usage {
        largest: LARGEST.with(|l| l.get()),
        peak: PEAK.with(|p| p.get()).max(0) as usize,
    };
    (r, usage)
}

/// Allocation that needs no explanation: small bookkeeping.
const SLACK: usize = 64 << 10;

#[test]
fn the_counting_allocator_counts() {
    let (_, u) = measure(|| vec![0u8; 1 << 20]);
    assert!(u.largest >= 1 << 20 && u.peak >= 1 << 20, "{u:?}");
    let (_, u) = measure(|| 5);
    assert_eq!(u.largest, 0);
}

// ---------------------------------------------------------------------------------------------
// Session frames.

/// A frame header claiming any length, then some bytes of body.
fn header_claim() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![
            Just(u32::MAX),
            any::<u32>(),
            0u32..(MAX_FRAME_LEN as u32 + 4)
        ],
        any::<u8>(),
        vec(any::<u8>(), 0..300),
    )
        .prop_map(|(len, ty, body)| {
            let mut v = len.to_be_bytes().to_vec();
            v.push(ty);
            v.extend(body);
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any type byte and body: a frame or a refusal, and no allocation beyond the body.
    #[test]
    fn frame_decode_of_random_bodies(ty in any::<u8>(), body in vec(any::<u8>(), 0..3000)) {
        let n = body.len();
        let (_, u) = measure(|| { let _ = Frame::decode(ty, Bytes::from(body)); });
        prop_assert!(u.largest <= n + SLACK, "{u:?} for a {n}-byte body");
    }

    /// A stream of preamble (or not) then random bytes and header claims, cut anywhere: the
    /// deframer refuses or yields frames, and holds no more than one frame however long the
    /// length fields say the frames are.
    #[test]
    fn deframer_of_random_streams(
        with_preamble in any::<bool>(),
        parts in vec(prop_oneof![vec(any::<u8>(), 0..200), header_claim()], 0..12),
        cut in 1usize..700,
    ) {
        let mut stream = Vec::new();
        if with_preamble {
            stream.extend_from_slice(&PREAMBLE);
        }
        for p in parts {
            stream.extend(p);
        }
        let (_, u) = measure(|| {
            let mut d = Deframer::new();
            'feed: for piece in stream.chunks(cut) {
                d.extend(piece);
                loop {
                    match d.next_frame() {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        });
        let limit = deframer_limit();
        prop_assert!(u.peak <= limit, "{u:?}, limit {limit}");
    }

    /// Control datagrams are routed by a header anyone can write: any bytes are a session id
    /// or not, and nothing is allocated.
    #[test]
    fn control_datagram_routing_of_random_bytes(d in vec(any::<u8>(), 0..200)) {
        let (_, u) = measure(|| session_id_of(&d));
        prop_assert_eq!(u.largest, 0);
    }
}

/// What a deframer may hold: its own read buffer (allocated when it is made, whatever comes)
/// and one frame of the largest size beyond it.
fn deframer_limit() -> usize {
    let (_, fresh) = measure(Deframer::new);
    fresh.peak + 4 + MAX_FRAME_LEN + SLACK
}

/// The largest length field the deframer can be sent, and the largest legal DATA frame, with
/// nothing behind them: the deframer allocates for at most one frame.
#[test]
fn deframer_length_claims_do_not_allocate() {
    for claim in [
        u32::MAX,
        MAX_FRAME_LEN as u32,
        MAX_FRAME_LEN as u32 + 1,
        1 << 30,
    ] {
        let mut s = PREAMBLE.to_vec();
        s.put_u32(claim);
        s.put_u8(0x10);
        let (_, u) = measure(|| {
            let mut d = Deframer::new();
            d.extend(&s);
            let _ = d.next_frame();
        });
        assert!(u.peak <= deframer_limit(), "claim {claim}: {u:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The file-transfer wire: control bodies are JSON of at most MAX_CONTROL bytes.

/// JSON-looking bytes: brackets, quotes, digits, keys the messages use, and noise.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b",".to_vec()),
        Just(b":".to_vec()),
        Just(b"\"entries\"".to_vec()),
        Just(b"\"path\"".to_vec()),
        Just(b"\"size\"".to_vec()),
        Just(b"\"held\"".to_vec()),
        Just(b"\"index\"".to_vec()),
        Just(b"\"offset\"".to_vec()),
        Just(b"\"blake3\"".to_vec()),
        Just(b"18446744073709551615".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"1e400".to_vec()),
        Just(b"null".to_vec()),
        Just(b"\"\\u001b[2J\"".to_vec()),
        vec(any::<u8>(), 0..8),
    ];
    vec(token, 0..60).prop_map(|t| t.concat())
}

fn decode_all_transfer(tag: u8, body: &[u8]) {
    use transfer_wire::*;
    let _ = decode::<Offer>(tag, body);
    let _ = decode::<Status>(tag, body);
    let _ = decode::<Start>(tag, body);
    let _ = decode::<End>(tag, body);
    let _ = decode::<Done>(tag, body);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn transfer_wire_of_random_bodies(
        tag in any::<u8>(),
        body in prop_oneof![vec(any::<u8>(), 0..2000), jsonish()],
    ) {
        let n = body.len();
        let (_, u) = measure(|| decode_all_transfer(tag, &body));
        // JSON text costs at most a small multiple of its length once decoded.
        prop_assert!(u.peak <= 16 * n + SLACK, "{u:?} for {n} bytes");
    }
}

/// Deeply nested JSON in a control body is refused, not a stack overflow.
#[test]
fn transfer_wire_refuses_deep_nesting() {
    let deep = [vec![b'['; 100_000], vec![b']'; 100_000]].concat();
    decode_all_transfer(transfer_wire::tag::OFFER, &deep);
    let deep = b"{\"entries\":".repeat(50_000);
    decode_all_transfer(transfer_wire::tag::OFFER, &deep);
}

// ---------------------------------------------------------------------------------------------
// The bench wire: control messages of at most MAX_CONTROL bytes, DATA payload skipped.

fn bench_header(kind: u8, len: u32) -> Vec<u8> {
    let mut v = BytesMut::new();
    v.put_u8(kind);
    v.put_u32(len);
    v.to_vec()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn bench_wire_of_random_streams(
        parts in vec(
            prop_oneof![
                vec(any::<u8>(), 0..100),
                (0u8..12, prop_oneof![any::<u32>(), 0u32..70_000, Just(u32::MAX)])
                    .prop_map(|(k, l)| bench_header(k, l)),
            ],
            0..12,
        ),
        cut in 1usize..300,
    ) {
        let stream = parts.concat();
        let (_, u) = measure(|| {
            let mut p = bench_wire::Parser::default();
            for c in stream.chunks(cut) {
                let r = p.feed(c, |f| {
                    if let bench_wire::Found::Control(c) = f {
                        // The bodies a client or listener then decodes.
                        let _ = serde_json::from_slice::<Params>(&c.body);
                        let _ = serde_json::from_slice::<Interval>(&c.body);
                    }
                });
                if r.is_err() {
                    break;
                }
            }
        });
        let limit = bench_wire::MAX_CONTROL + SLACK;
        prop_assert!(u.largest <= limit, "{u:?}, limit {limit}");
    }
}
