//! Minimal reproductions of core bugs found with the simulator, driven by hand: two sessions,
//! frames moved (or dropped) one call at a time, no simulated network. Each test names the
//! exact sequence of calls that used to leave a session stuck or failed.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::proto::{
    ClientHandshake, Config, Deframer, Frame, FrameError, OutQueue, PathId, Session,
};

use super::Side;

const P0: PathId = PathId(0);

/// Two sessions and a clock; frames are exchanged explicitly.
struct Duo {
    client: Session,
    server: Session,
    rng: StdRng,
    now: Duration,
    /// Everything each side's application has read: [client, server].
    read: [Vec<u8>; 2],
}

impl Duo {
    fn open(config: Config) -> Duo {
        let mut rng = StdRng::seed_from_u64(1);
        let now = Duration::ZERO;
        let hs = ClientHandshake::new(config.clone(), &mut rng, now);
        let (server, welcome) =
            Session::accept(config, &hs.hello(), &mut rng, now, |_| false).unwrap();
        let client = hs.handle_reply(welcome, now).unwrap();
        let mut duo = Duo {
            client,
            server,
            rng,
            now,
            read: [Vec::new(), Vec::new()],
        };
        duo.settle();
        duo
    }

    /// A session without resume tickets whose client has just opened a path: that path and
    /// the server's CHALLENGE for it, not yet delivered (for tests that tamper with it).
    fn challenged_path() -> (Duo, PathId, Frame) {
        let mut d = Duo::open(Config {
            resume_tickets: false,
            ..Config::default()
        });
        let (id, hello) = d.client.open_path(&mut d.rng, d.now);
        let (_, challenge) = d.server.challenge_attach(&hello, &mut d.rng).unwrap();
        (d, id, challenge)
    }

    /// [`Duo::open`] with a receive window of `bytes` at both ends.
    fn open_with_window(bytes: usize) -> Duo {
        Duo::open(Config {
            recv_window: bytes,
            ..Config::default()
        })
    }

    /// The client reads everything; its window update (an ACK raising the limit to `limit`)
    /// is taken off path 0 and never delivered.
    fn read_all_and_lose_window_update(&mut self, limit: u64) {
        self.read_all();
        let lost = self.take(Side::Client, P0);
        assert!(
            lost.iter()
                .any(|f| matches!(f, Frame::Ack { limit: l, .. } if *l == limit)),
            "{lost:?}"
        );
    }

    /// [`Duo::open`] with default configs and a second path, attached and settled.
    fn open_two_paths() -> (Duo, PathId) {
        let mut d = Duo::open(Config::default());
        let p1 = d.attach(None).unwrap();
        d.settle();
        (d, p1)
    }

    fn session(&mut self, side: Side) -> &mut Session {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// What `side` sends on `path` now (through the codec).
    fn take(&mut self, side: Side, path: PathId) -> Vec<Frame> {
        let now = self.now;
        let mut queue = OutQueue::default();
        self.session(side)
            .poll_transmit(path, now, &mut queue, 1 << 20);
        let buf = queue.take_bytes();
        let mut d = Deframer::after_preamble();
        d.extend(&buf);
        std::iter::from_fn(|| d.next_frame().unwrap()).collect()
    }

    /// Hands `frames` to `to` as received on `path`.
    fn give(&mut self, to: Side, path: PathId, frames: Vec<Frame>) {
        let now = self.now;
        for f in frames {
            self.session(to)
                .handle_frame(path, f, &mut Deframer::new(), now)
                .unwrap();
        }
    }

    /// Moves whatever `from` sends on `path` to the other side; true if anything moved.
    fn carry(&mut self, from: Side, path: PathId) -> bool {
        let frames = self.take(from, path);
        let to = from.peer();
        let any = !frames.is_empty();
        self.give(to, path, frames);
        any
    }

    /// Both applications read everything they can.
    fn read_all(&mut self) {
        for side in [Side::Client, Side::Server] {
            while let Some(c) = self.session(side).read_chunk(usize::MAX) {
                self.read[side as usize].extend_from_slice(&c);
            }
        }
    }

    /// Exchanges frames on every active path, 1 ms at a time, for 100 ms of quiet or 10 s.
    fn settle(&mut self) {
        let mut quiet = 0;
        for _ in 0..10_000 {
            self.now += Duration::from_millis(1);
            self.read_all();
            let paths: Vec<_> = self.client.active_paths().collect();
            let mut any = false;
            for p in paths {
                any |= self.carry(Side::Client, p);
                any |= self.carry(Side::Server, p);
            }
            quiet = if any { 0 } else { quiet + 1 };
            if quiet == 100 {
                return;
            }
        }
    }

    /// The connection of `path` dies; both sides are told.
    fn kill(&mut self, path: PathId) {
        self.client.path_closed(path);
        self.server.path_closed(path);
    }

    /// Full attach handshake for `path` (a new path if `None`); returns its id.
    fn attach(&mut self, path: Option<PathId>) -> Result<PathId, String> {
        let (id, hello) = match path {
            Some(p) => (p, self.client.reattach_path(p, &mut self.rng, self.now)),
            None => self.client.open_path(&mut self.rng, self.now),
        };
        if let Frame::HelloResume { .. } = hello {
            let (_, resumed) = self
                .server
                .resume_attach(&hello, &mut Deframer::new(), self.now)
                .map_err(|e| e.to_string())?;
            self.client
                .handle_frame(id, resumed, &mut Deframer::new(), self.now)
                .map_err(|e| e.to_string())?;
            return Ok(id);
        }
        let (pending, challenge) = self
            .server
            .challenge_attach(&hello, &mut self.rng)
            .map_err(|e| e.to_string())?;
        self.client
            .handle_frame(id, challenge, &mut Deframer::new(), self.now)
            .map_err(|e| e.to_string())?;
        let mut frames = self.take(Side::Client, id).into_iter();
        let proof = frames.next().expect("ATTACH_PROOF comes first");
        self.server
            .complete_attach(pending, &proof, &mut Deframer::new(), self.now)
            .map_err(|e| e.to_string())?;
        self.give(Side::Server, id, frames.collect());
        Ok(id)
    }
}

fn has(frames: &[Frame], name: &str) -> bool {
    frames.iter().any(|f| f.name() == name)
}

/// FIN arrives on path 0, its FIN_ACK leaves on path 1 and dies with it. Path 0 is healthy,
/// so the FIN is never re-sent: the server waited forever for a FIN_ACK.
#[test]
fn fin_ack_lost_on_another_path_is_resent() {
    let (mut d, p1) = Duo::open_two_paths();
    d.server.close_write();
    d.carry(Side::Server, P0); // FIN(0) on path 0
    d.take(Side::Client, p1); // lost with path 1 (the FIN_ACK, if it goes there)
    d.kill(p1);
    d.settle();
    assert!(
        d.server.write_finished(),
        "server never learns its FIN arrived"
    );
}

/// The client reads its full window; the window update (ACK with the new limit) is lost with
/// the only path; after the reattach nobody re-advertises the window: the server stays
/// blocked at the old limit forever.
#[test]
fn window_update_lost_with_the_only_path_is_resent_after_reattach() {
    let mut d = Duo::open_with_window(4000);
    assert_eq!(d.server.write(&[7; 8000]), 8000);
    d.carry(Side::Server, P0); // 4000 bytes: the whole window
    d.read_all_and_lose_window_update(8000);
    d.kill(P0);
    d.attach(Some(P0)).unwrap();
    d.settle();
    assert_eq!(d.read[0].len(), 8000, "server stuck at the old window");
}

/// Same with two paths: the window update is lost with path 0 after the data it covers was
/// acknowledged, so nothing is re-sent on path 1 that would carry a fresh ACK.
#[test]
fn window_update_lost_with_one_of_two_paths_is_resent() {
    let mut d = Duo::open_with_window(4000);
    d.attach(None).unwrap();
    d.settle();
    assert_eq!(d.server.write(&[7; 8000]), 8000);
    d.carry(Side::Server, P0); // 4000 bytes: the whole window
    d.now += Duration::from_millis(10);
    d.carry(Side::Client, P0); // delayed ACK(cumulative 4000, limit 4000) arrives
    d.read_all_and_lose_window_update(8000);
    d.kill(P0);
    d.settle();
    assert_eq!(d.read[0].len(), 8000, "server stuck at the old window");
}

/// Both FINs are exchanged; the server's FIN_ACK (its last frame) is lost with the only path.
/// The server is already finished, so it refused the client's reattach with "session has
/// ended", and the client could never finish.
#[test]
fn finished_server_accepts_a_reattach_to_resend_its_fin_ack() {
    let mut d = Duo::open(Config::default());
    d.client.close_write();
    d.server.close_write();
    d.carry(Side::Server, P0); // FIN(0)
    d.carry(Side::Client, P0); // FIN_ACK(0), FIN(0)
    let lost = d.take(Side::Server, P0);
    assert!(has(&lost, "FIN_ACK"), "{lost:?}");
    assert!(d.server.is_finished());
    d.kill(P0);
    d.attach(Some(P0))
        .expect("a finished server still takes the reattach");
    d.settle();
    assert!(d.client.is_finished());
}

/// An impostor's CHALLENGE (bad server proof) on a new path fails the whole client session,
/// not just that path, although the path was never trusted.
#[test]
fn forged_challenge_fails_only_that_path() {
    let (mut d, id, mut challenge) = Duo::challenged_path();
    if let Frame::Challenge { server_proof, .. } = &mut challenge {
        server_proof[0] ^= 1;
    }
    let r = d
        .client
        .handle_frame(id, challenge, &mut Deframer::new(), d.now);
    assert!(matches!(r, Err(FrameError::PathRefused(_))));
    assert!(d.client.path_stats(id).is_none());
    assert!(
        d.client.error().is_none(),
        "session failed: {:?}",
        d.client.error()
    );
}

/// Someone on the way raises the resume offset in a CHALLENGE (or an ATTACH_PROOF), which
/// would make the other end drop bytes it still has to re-send: the proofs bind the offset,
/// so the change is caught and only that path is refused.
#[test]
fn a_raised_resume_offset_is_caught_by_the_proofs() {
    let (mut d, id, mut challenge) = Duo::challenged_path();
    if let Frame::Challenge { cumulative, .. } = &mut challenge {
        *cumulative += 1;
    }
    let r = d
        .client
        .handle_frame(id, challenge, &mut Deframer::new(), d.now);
    // Refused for its proof (checked before the offset itself).
    assert!(
        matches!(&r, Err(FrameError::PathRefused(m)) if m.contains("attach proof")),
        "{r:?}"
    );
    assert!(d.client.error().is_none());
    // The other direction: the client's proof with a raised offset is refused by the server.
    let (id, hello) = d.client.open_path(&mut d.rng, d.now);
    let (pending2, challenge) = d.server.challenge_attach(&hello, &mut d.rng).unwrap();
    d.client
        .handle_frame(id, challenge, &mut Deframer::new(), d.now)
        .unwrap();
    let mut out = OutQueue::default();
    d.client.poll_transmit(id, d.now, &mut out, 1 << 20);
    let buf = out.take_bytes();
    let mut de = Deframer::after_preamble();
    de.extend(&buf);
    let Some(Frame::AttachProof {
        client_proof,
        cumulative,
    }) = de.next_frame().unwrap()
    else {
        panic!("expected ATTACH_PROOF first");
    };
    let raised = Frame::AttachProof {
        client_proof,
        cumulative: cumulative + 1,
    };
    assert!(matches!(
        d.server
            .complete_attach(pending2, &raised, &mut Deframer::new(), d.now),
        Err(crate::proto::AttachError::BadProof)
    ));
}

/// The server's FIN arrives on path 0; the client's FIN_ACK, owed session-wide, leaves on
/// path 1, which dies silently right after (an address change nobody noticed yet). The client
/// has finished, so it runs no timers and never notices. The server's FIN waits on path 0,
/// which stays healthy (keepalives are answered), so it is never re-sent: the server waits
/// for the FIN_ACK forever. Fixed by answering a FIN on the path it arrived on.
#[test]
fn fin_ack_sent_on_a_silently_dead_path_after_finishing_is_recovered() {
    let (mut d, p1) = Duo::open_two_paths();
    d.client.close_write();
    d.carry(Side::Client, P0); // the client's FIN
    d.carry(Side::Server, P0); // its FIN_ACK
    d.server.close_write();
    d.carry(Side::Server, P0); // the server's FIN, on path 0
    d.read_all();
    // The FIN_ACK, if it goes on path 1, vanishes with it. Path 0 works, path 1 delivers
    // nothing from now on; both sides run their timers.
    d.take(Side::Client, p1);
    for _ in 0..60_000 {
        d.now += Duration::from_millis(1);
        for s in [&mut d.client, &mut d.server] {
            if s.poll_timeout().is_some_and(|t| t <= d.now) {
                s.handle_timeout(d.now);
            }
        }
        d.carry(Side::Client, P0);
        d.carry(Side::Server, P0);
        d.take(Side::Client, p1);
        d.take(Side::Server, p1);
        if d.server.is_finished() {
            break;
        }
    }
    assert!(
        d.server.write_finished(),
        "the server never learns that its FIN arrived"
    );
}
