//! Property tests of the session's decoders against a hostile peer: random frame sequences to
//! an open session (either side, any flowpath id), random frames and handshake bytes to both
//! halves of the opening handshake, mutated and random control datagrams, random bytes to an
//! encrypted deframer. Each must refuse or go on, never panic, and hold memory bounded by the
//! configuration (the receive window, one frame), not by what the peer claims: a counting
//! allocator ([`probe`]) measures what each step keeps.

use std::time::Duration;

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::frame::tests::arb_frame;
use super::frame::{Frame, MAX_FRAME_LEN};
use super::handshake::Identity;
use super::{
    ClientHandshake, Config, Deframer, OutQueue, PathId, ServerHandshake, Session, PREAMBLE,
};

/// A counting global allocator for the library's tests: per thread, only while armed, so
/// other tests running alongside are neither counted nor slowed beyond a thread-local read.
pub(crate) mod probe {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

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

    // SAFETY: every call goes to the system allocator unchanged; the bookkeeping touches only
    // const-initialised thread-locals (no allocation, no destructor).
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
    pub(crate) struct Usage {
        /// The largest single allocation (or reallocation), bytes.
        pub(crate) largest: usize,
        /// The most bytes it held at once that it allocated (and had not freed).
        pub(crate) peak: usize,
    }

    /// Runs `f`, counting its allocations on this thread.
    pub(crate) fn measure<R>(f: impl FnOnce() -> R) -> (R, Usage) {
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

    #[test]
    fn counts() {
        let (_, u) = measure(|| vec![0u8; 1 << 20]);
        assert!(u.largest >= 1 << 20 && u.peak >= 1 << 20, "{u:?}");
        assert_eq!(measure(|| 5).1.largest, 0);
    }
}

use probe::measure;

/// Bookkeeping that needs no explanation.
const SLACK: usize = 256 << 10;
/// The receive window the fuzzed sessions advertise (small, so that a peer filling it shows).
const WINDOW: usize = 256 << 10;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config() -> Config {
    Config {
        recv_window: WINDOW,
        send_buffer: WINDOW,
        ..Config::default()
    }
}

/// A client and a server session, opened through the real handshake (encrypted or not), with
/// the deframers each would read the other with.
fn pair(seed: u64, encrypt: bool) -> (Session, Deframer, Session, Deframer) {
    let mut rng = StdRng::seed_from_u64(seed);
    let client_cfg = Config {
        encrypt,
        ..config()
    };
    let server_cfg = Config {
        encrypt,
        identity: encrypt.then(|| Identity::generate(&mut rng)),
        ..config()
    };
    let hs = ClientHandshake::new(client_cfg, &mut rng, ms(0));
    let mut server_rx = Deframer::after_preamble();
    let (open, welcome) =
        ServerHandshake::accept(server_cfg, &hs.hello(), &mut rng, |_| false).expect("accepted");
    let mut client_rx = Deframer::after_preamble();
    let mut client = hs
        .handle_reply_on(welcome, &mut client_rx, ms(1))
        .expect("opened");
    let finish = if open.awaits_finish() {
        let mut out = OutQueue::with_capacity(64 << 10);
        client.poll_transmit(PathId(0), ms(1), &mut out, 64 << 10);
        server_rx.extend(&out.take_bytes());
        Some(
            server_rx
                .next_frame()
                .expect("a frame")
                .expect("HELLO(finish)"),
        )
    } else {
        None
    };
    let server = open
        .finish_on(finish.as_ref(), &mut server_rx, ms(1))
        .expect("finished");
    (client, client_rx, server, server_rx)
}

/// Lets `s` send what it wants on its flowpaths (it must not choke on what it was fed).
fn drain(s: &mut Session, now: Duration) {
    let mut out = OutQueue::with_capacity(64 << 10);
    let ids: Vec<PathId> = s.active_paths().collect();
    for id in ids {
        for _ in 0..4 {
            if !s.poll_transmit(id, now, &mut out, 256 << 10) {
                break;
            }
            out.clear();
        }
    }
    while s.poll_event().is_some() {}
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Any sequence of frames, on any flowpath id, to either side of an open session: no
    /// panic, and the session never holds much more than its window however the frames claim
    /// offsets, windows and lengths.
    #[test]
    fn random_frame_sequences_to_an_open_session(
        seed in any::<u64>(),
        to_server in any::<bool>(),
        frames in vec((0u32..4, arb_frame()), 1..40),
        read in any::<bool>(),
    ) {
        let (mut client, mut client_rx, mut server, mut server_rx) = pair(seed, false);
        let (s, rx) = if to_server {
            (&mut server, &mut server_rx)
        } else {
            (&mut client, &mut client_rx)
        };
        let (_, u) = measure(|| {
            for (i, (path, f)) in frames.into_iter().enumerate() {
                let now = ms(2 + i as u64 * 7);
                let _ = s.handle_frame(PathId(path), f, rx, now);
                s.handle_timeout(now);
                drain(s, now);
                if read {
                    while s.read_chunk(64 << 10).is_some() {}
                }
            }
        });
        let limit = 4 * WINDOW + SLACK;
        prop_assert!(u.peak <= limit, "{u:?}, limit {limit}");
    }

}

proptest! {
    // The handshakes do X25519 and AES in a debug build: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// A server takes any first frame: a session, or a refusal; never a panic. HELLO(open)
    /// with random Noise bytes too short for a key is refused by an encrypting server.
    #[test]
    fn random_first_frames_to_a_server(
        seed in any::<u64>(),
        f in arb_frame(),
        noise in vec(any::<u8>(), 0..200),
        encrypt in any::<bool>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let cfg = Config {
            encrypt,
            identity: encrypt.then(|| Identity::generate(&mut rng)),
            ..config()
        };
        let _ = Session::accept(cfg.clone(), &f, &mut rng, ms(0), |_| false);
        let short = noise.len() < 32;
        let hs = ClientHandshake::new(Config { encrypt, ..config() }, &mut rng, ms(0));
        let mut hello = hs.hello();
        if let Frame::HelloOpen { handshake, .. } = &mut hello {
            *handshake = Bytes::from(noise);
        }
                let r = Session::accept(cfg, &hello, &mut rng, ms(0), |_| false);
        // (Any 32 bytes are an ephemeral key: the first Noise message authenticates nothing.)
        if encrypt && short {
            prop_assert!(r.is_err(), "a Noise message shorter than a key was accepted");
        }
    }

    /// A client takes any reply to its HELLO: a session, or an error; never a panic. A
    /// WELCOME with random Noise bytes fails an encrypting client.
    #[test]
    fn random_replies_to_a_client(
        seed in any::<u64>(),
        f in arb_frame(),
        noise in vec(any::<u8>(), 0..200),
        encrypt in any::<bool>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let cfg = Config { encrypt, ..config() };
        let hs = ClientHandshake::new(cfg.clone(), &mut rng, ms(0));
        let _ = hs.handle_reply(f, ms(1));
        let hs = ClientHandshake::new(cfg, &mut rng, ms(0));
        let welcome = Frame::Welcome {
            session_id: rng.next_u64_for_test(),
            server_random: [7; 32],
            window: u64::MAX,
            control_port: 1,
            handshake: Bytes::from(noise),
        };
        let r = hs.handle_reply(welcome, ms(1));
        if encrypt {
            prop_assert!(r.is_err(), "random Noise bytes were accepted");
        }
    }

    /// Genuine control datagrams with bytes flipped, cut or added, and random ones: refused
    /// unless unchanged, never a panic.
    #[test]
    fn mutated_control_datagrams(
        seed in any::<u64>(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        extra in vec(any::<u8>(), 0..8),
        random in vec(any::<u8>(), 0..120),
    ) {
        let (mut client, _, mut server, _) = pair(seed, false);
        let (_, d) = server.reconnect_datagram("192.0.2.1:9".parse().unwrap());
        let mut bad = d.clone();
        for (i, x) in &edits {
            let i = i.index(bad.len());
            bad[i] ^= x;
        }
        bad.truncate(cut.index(bad.len() + 1));
        bad.extend(&extra);
        let r = client.handle_control(&bad);
        if bad != d {
            prop_assert!(r.is_err(), "an altered datagram was accepted");
        }
        prop_assert!(client.handle_control(&random).is_err());
        prop_assert!(server.handle_control(&random).is_err());
        let _ = super::control::session_id_of(&random);
    }

    /// Random bytes where an encrypted peer's records belong: refused, never a panic, and the
    /// deframer holds at most one record whatever its length field says.
    #[test]
    fn random_records_to_an_encrypted_session(
        seed in any::<u64>(),
        junk in vec(any::<u8>(), 0..3000),
        claim in any::<u32>(),
        cut in 1usize..500,
    ) {
        let (_, _, _, mut rx) = pair(seed, true);
        let mut stream = claim.to_be_bytes().to_vec();
        stream.extend(&junk);
        let (_, u) = measure(|| {
            'feed: for piece in stream.chunks(cut) {
                rx.extend(piece);
                loop {
                    match rx.next_frame() {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        });
        let limit = 2 * (4 + MAX_FRAME_LEN) + SLACK;
        prop_assert!(u.peak <= limit, "{u:?}, limit {limit}");
    }
}

/// `RngCore::next_u64` under a name that does not need the trait in scope in the macro.
trait NextU64 {
    fn next_u64_for_test(&mut self) -> u64;
}

impl NextU64 for StdRng {
    fn next_u64_for_test(&mut self) -> u64 {
        rand::RngCore::next_u64(self)
    }
}

/// The preamble, then a frame whose length field claims the most a u32 can: a plain deframer
/// does not reserve for it.
#[test]
fn a_huge_length_claim_reserves_nothing() {
    let mut s = PREAMBLE.to_vec();
    s.extend(u32::MAX.to_be_bytes());
    s.push(0x10);
    let (_, fresh) = measure(Deframer::new);
    let (_, u) = measure(|| {
        let mut d = Deframer::new();
        d.extend(&s);
        let _ = d.next_frame();
    });
    assert!(
        u.peak <= fresh.peak + SLACK,
        "{u:?} vs a fresh deframer {fresh:?}"
    );
}
