//! A flowpath resuming blind: what it sends before the server's RESUMED, and what first after.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::proto::deframer::Deframer;
use crate::proto::frame::Frame;
use crate::proto::out_queue::OutQueue;
use crate::proto::path::PathId;
use crate::proto::session::transmit::BLIND_FLIGHT;
use crate::proto::session::Session;
use crate::proto::{ClientHandshake, Config};

const P0: PathId = PathId(0);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Everything `from` sends on path 0 now (up to `rounds` polls), as frames.
fn sent(from: &mut Session, now: Duration, rounds: usize) -> (usize, Vec<Frame>) {
    let mut out = OutQueue::with_capacity(64 << 10);
    for _ in 0..rounds {
        if !from.poll_transmit(P0, now, &mut out, 256 << 10) {
            break;
        }
    }
    let bytes = out.take_bytes();
    let mut rx = Deframer::after_preamble();
    rx.extend(&bytes);
    let mut frames = Vec::new();
    while let Some(f) = rx.next_frame().expect("our own frames decode") {
        frames.push(f);
    }
    (bytes.len(), frames)
}

/// A client and server session (seeded) whose client holds the server's resume tickets.
fn open_with_tickets() -> (StdRng, Session, Session) {
    let mut rng = StdRng::seed_from_u64(19);
    let hs = ClientHandshake::new(Config::default(), &mut rng, ms(0));
    let (mut server, welcome) =
        Session::accept(Config::default(), &hs.hello(), &mut rng, ms(0), |_| false).unwrap();
    let mut client = hs.handle_reply(welcome, ms(0)).unwrap();
    let (_, frames) = sent(&mut server, ms(1), 4);
    for f in frames {
        client
            .handle_frame(P0, f, &mut Deframer::new(), ms(1))
            .unwrap();
    }
    (rng, client, server)
}

/// The payload bytes of the DATA frames among `frames`, and the first one's offset.
fn data(frames: &[Frame]) -> (usize, Option<u64>) {
    let mut first = None;
    let mut total = 0;
    for f in frames {
        if let Frame::Data { offset, payload } = f {
            first.get_or_insert(*offset);
            total += payload.len();
        }
    }
    (total, first)
}

/// A client with a megabyte in flight (and another to send) loses its connection and resumes it. Before RESUMED it
/// sends one first flight of new bytes, not everything it could (what it queued in the
/// kernel would go out ahead of the re-send that the server's application waits for); once
/// RESUMED says where the server's stream stops, the first DATA re-sends exactly that hole.
#[test]
fn a_blind_resume_sends_one_flight_then_the_hole_first() {
    let (mut rng, mut client, mut server) = open_with_tickets();
    // A megabyte goes out; the server receives the first 100 KB of it, the rest is lost
    // with the connection.
    assert_eq!(client.write(&vec![7u8; 2 << 20]), 2 << 20);
    let (_, frames) = sent(&mut client, ms(2), 4);
    let mut arrived = 0;
    for f in frames {
        if matches!(&f, Frame::Data { offset, .. } if *offset < 100_000) {
            if let Frame::Data { offset, payload } = &f {
                arrived = arrived.max(offset + payload.len() as u64);
            }
            server
                .handle_frame(P0, f, &mut Deframer::new(), ms(3))
                .unwrap();
        }
    }
    assert!(arrived > 0);
    let hello = client.reattach_path(P0, &mut rng, ms(10));
    assert!(matches!(hello, Frame::HelloResume { .. }), "{hello:?}");
    // Blind: one first flight of new bytes, however often it is polled.
    let (len, frames) = sent(&mut client, ms(10), 16);
    let (bytes, _) = data(&frames);
    assert!(bytes > 0, "the first flight carries data");
    // (The flight counts payloads; control frames and a frame header may come on top.)
    assert!(
        len <= BLIND_FLIGHT + 100,
        "{len} bytes sent before RESUMED (one flight is {BLIND_FLIGHT})"
    );
    // RESUMED: the first DATA fills the server's hole.
    let (_, resumed) = server
        .resume_attach(&hello, &mut Deframer::new(), ms(30))
        .unwrap();
    client
        .handle_frame(P0, resumed, &mut Deframer::new(), ms(50))
        .unwrap();
    let (_, frames) = sent(&mut client, ms(50), 1);
    assert_eq!(data(&frames).1, Some(arrived), "the hole goes first");
}

/// Bytes that never left the client (written to its connection after its address went away)
/// are the hole the server's application waits for: a blind resume re-sends them first,
/// instead of a flight of new bytes that the server could only buffer until RESUMED had
/// asked for the hole a round trip later.
#[test]
fn a_blind_resume_resends_first_what_never_left() {
    let (mut rng, mut client, mut server) = open_with_tickets();
    // 50 KB go out; the last 8 KB of them never leave the host (the kernel kept them).
    assert_eq!(client.write(&[7u8; 50_000]), 50_000);
    let (_, frames) = sent(&mut client, ms(2), 4);
    let total: u64 = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Data { offset, payload } => Some(offset + payload.len() as u64),
            _ => None,
        })
        .max()
        .unwrap();
    assert_eq!(total, 50_000);
    let hole = 42_000;
    for f in frames {
        if matches!(&f, Frame::Data { offset, .. } if *offset < hole) {
            server
                .handle_frame(P0, f, &mut Deframer::new(), ms(3))
                .unwrap();
        }
    }
    // More is written while the path is down.
    assert_eq!(client.write(&[8u8; 30_000]), 30_000);
    client.path_unsent_tail(P0, total - hole);
    client.path_closed(P0);
    let hello = client.reattach_path(P0, &mut rng, ms(10));
    assert!(matches!(hello, Frame::HelloResume { .. }), "{hello:?}");
    let (_, frames) = sent(&mut client, ms(10), 16);
    assert_eq!(
        data(&frames).1,
        Some(hole),
        "the blind flight starts with what never left"
    );
    // Once the server has it, its application has everything up to the new bytes.
    for f in frames {
        server
            .handle_frame(P0, f, &mut Deframer::new(), ms(30))
            .unwrap();
    }
    let n = server.readable();
    assert!(
        n > total,
        "{n} bytes readable, not more than the {total} before the loss"
    );
}
