//! The simulated network: links, pipes (one direction of a TCP connection) and connections.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use super::super::session::PendingAttach;
use super::super::{Deframer, Frame, PathId};

/// Largest piece of bytes a pipe moves as one unit (a simulated TCP segment burst).
const SEGMENT: usize = 16 * 1024;

/// Characteristics of one simulated TCP connection.
#[derive(Clone, Copy, Debug)]
pub struct Link {
    /// One-way latency, both directions.
    pub latency: Duration,
    /// Client → server rate in bytes per second.
    pub c2s_rate: u64,
    /// Server → client rate in bytes per second.
    pub s2c_rate: u64,
}

impl Link {
    /// A symmetric link.
    pub fn new(latency_ms: u64, rate: u64) -> Link {
        Link::asymmetric(latency_ms, rate, rate)
    }

    /// A link with different rates per direction.
    pub fn asymmetric(latency_ms: u64, c2s_rate: u64, s2c_rate: u64) -> Link {
        assert!(latency_ms > 0 && c2s_rate > 0 && s2c_rate > 0);
        Link {
            latency: Duration::from_millis(latency_ms),
            c2s_rate,
            s2c_rate,
        }
    }
}

/// One transmitted segment in a pipe.
#[derive(Debug)]
struct Segment {
    /// When its last byte is on the wire (it leaves the send buffer).
    finish: Duration,
    /// When it arrives.
    deliver_at: Duration,
    bytes: Bytes,
}

/// One direction of a simulated TCP connection: reliable, in order, rate-limited, delayed.
#[derive(Debug)]
pub(super) struct Pipe {
    latency: Duration,
    rate: u64,
    /// The wire is busy serializing earlier bytes until then.
    busy_until: Duration,
    /// Nothing is delivered before this (partition).
    pub(super) blocked_until: Duration,
    segments: VecDeque<Segment>,
}

impl Pipe {
    pub(super) fn new(latency: Duration, rate: u64) -> Pipe {
        Pipe {
            latency,
            rate,
            busy_until: Duration::ZERO,
            blocked_until: Duration::ZERO,
            segments: VecDeque::new(),
        }
    }

    /// Queues `bytes` written at `now`. While the pipe is partitioned nothing new goes onto
    /// the wire (no TCP acknowledgements come back), so the send buffer fills up.
    pub(super) fn write(&mut self, now: Duration, mut bytes: Bytes) {
        while !bytes.is_empty() {
            let piece = bytes.split_to(bytes.len().min(SEGMENT));
            let start = now.max(self.busy_until).max(self.blocked_until);
            let finish = start + transmission_time(piece.len(), self.rate);
            self.busy_until = finish;
            self.segments.push_back(Segment {
                finish,
                deliver_at: finish + self.latency,
                bytes: piece,
            });
        }
    }

    /// Bytes written but not yet serialized onto the wire at `now` (the kernel send buffer).
    pub(super) fn backlog(&self, now: Duration) -> usize {
        self.segments
            .iter()
            .rev()
            .take_while(|s| s.finish > now)
            .map(|s| s.bytes.len())
            .sum()
    }

    /// When the next segment arrives.
    pub(super) fn next_delivery(&self) -> Option<Duration> {
        let s = self.segments.front()?;
        Some(s.deliver_at.max(self.blocked_until))
    }

    /// When the send buffer next shrinks (segments written during a partition finish after it).
    pub(super) fn next_drain(&self, now: Duration) -> Option<Duration> {
        self.segments
            .iter()
            .find(|s| s.finish > now)
            .map(|s| s.finish)
    }

    /// Drops everything queued (the connection died).
    pub(super) fn clear(&mut self) {
        self.segments.clear();
    }

    /// Segments written and not yet delivered.
    pub(super) fn queued(&self) -> usize {
        self.segments.len()
    }

    /// Removes and returns everything that has arrived by `now`.
    pub(super) fn take_due(&mut self, now: Duration) -> Vec<Bytes> {
        let mut out = Vec::new();
        if now < self.blocked_until {
            return out;
        }
        while self.segments.front().is_some_and(|s| s.deliver_at <= now) {
            out.push(self.segments.pop_front().expect("checked").bytes);
        }
        out
    }
}

/// Time to serialize `len` bytes at `rate` bytes per second.
fn transmission_time(len: usize, rate: u64) -> Duration {
    Duration::from_nanos((len as u128 * 1_000_000_000 / u128::from(rate)) as u64)
}

/// Who drives the client end of a connection.
#[derive(Debug)]
pub(super) enum ClientEnd {
    /// The client [`Session`].
    Session,
    /// The test, by hand (an intruder or a replay); received frames are collected.
    Scripted { inbox: Vec<Frame> },
}

/// The server harness's view of a connection.
#[derive(Debug)]
pub(super) enum ServerEnd {
    /// Waiting for HELLO(attach).
    AwaitHello,
    /// CHALLENGE sent; waiting for ATTACH_PROOF.
    Challenged {
        hello: Frame,
        pending: PendingAttach,
    },
    /// Carries path `.0` of the server session.
    Attached(PathId),
    /// Refused: the last frame (an ERROR) is on its way, then the connection closes.
    Closing,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ConnState {
    Open,
    /// Abandoned by the client without telling the server (address change), or to an
    /// address that is gone (server move): writes are accepted, nothing is delivered.
    Blackholed,
    Dead,
}

/// One simulated TCP connection.
#[derive(Debug)]
pub(super) struct Conn {
    /// The flowpath the client opened it for.
    pub(super) path: PathId,
    /// Its latency and rates (a replacement after a kill uses the same).
    pub(super) link: Link,
    /// Client → server bytes.
    pub(super) c2s: Pipe,
    /// Server → client bytes.
    pub(super) s2c: Pipe,
    pub(super) client_rx: Deframer,
    pub(super) server_rx: Deframer,
    pub(super) client_end: ClientEnd,
    pub(super) server_end: ServerEnd,
    pub(super) server_preamble_sent: bool,
    pub(super) state: ConnState,
    /// The server address it was dialled to.
    pub(super) to: SocketAddr,
    /// The client address it was dialled from.
    pub(super) from: SocketAddr,
    /// When the client opened it.
    pub(super) opened_at: Duration,
    /// The process at this end exited: its kernel closes the connection in order (FIN) once
    /// the bytes it had written have been delivered.
    pub(super) fin_from: Option<super::Side>,
}

impl Conn {
    /// A connection for `path` from `from` to `to`, opened at `now`.
    pub(super) fn new(
        path: PathId,
        link: Link,
        client_end: ClientEnd,
        (from, to): (SocketAddr, SocketAddr),
        now: Duration,
    ) -> Conn {
        Conn {
            path,
            link,
            to,
            from,
            opened_at: now,
            fin_from: None,
            c2s: Pipe::new(link.latency, link.c2s_rate),
            s2c: Pipe::new(link.latency, link.s2c_rate),
            client_rx: Deframer::new(),
            server_rx: Deframer::new(),
            client_end,
            server_end: ServerEnd::AwaitHello,
            server_preamble_sent: false,
            state: ConnState::Open,
        }
    }
}

impl Conn {
    pub(super) fn server_end_name(&self) -> String {
        match &self.server_end {
            ServerEnd::AwaitHello => "await-hello".into(),
            ServerEnd::Challenged { .. } => "challenged".into(),
            ServerEnd::Attached(p) => format!("attached({p})"),
            ServerEnd::Closing => "closing".into(),
        }
    }
}

mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn pipe_delivers_in_order_at_rate_plus_latency() {
        let mut p = Pipe::new(ms(10), 1_000_000); // 1 byte per µs
        p.write(ms(0), vec![1u8; 1000].into()); // on the wire 0..1 ms
        p.write(ms(0), vec![2u8; 1000].into()); // queued behind it: 1..2 ms
        assert_eq!(p.backlog(ms(0)), 2000);
        assert_eq!(p.backlog(ms(1)), 1000);
        assert_eq!(p.next_drain(ms(1)), Some(ms(2)));
        p.write(ms(5), vec![3u8; 500].into()); // idle wire: 5..5.5 ms
        assert_eq!(p.next_delivery(), Some(ms(11)));
        assert!(p.take_due(ms(10)).is_empty());
        assert_eq!(p.take_due(ms(12)).len(), 2);
        assert_eq!(p.next_delivery(), Some(Duration::from_micros(15_500)));
        p.blocked_until = ms(40);
        assert!(p.take_due(ms(20)).is_empty(), "partitioned");
        assert_eq!(p.next_delivery(), Some(ms(40)));
        p.write(ms(20), vec![4u8; 1000].into()); // held back until the partition ends
        assert_eq!(p.backlog(ms(39)), 1000);
        assert_eq!(p.next_drain(ms(20)), Some(ms(41)));
        assert_eq!(p.take_due(ms(40))[0][..], [3u8; 500][..]);
        assert_eq!(p.next_delivery(), Some(ms(51)));
    }
}
