//! Per-flowpath state: attach progress, what was sent on it, feedback timers, RTT estimate.

use std::collections::VecDeque;
use std::time::Duration;

use super::frame::{Frame, NONCE_LEN};
use super::record::{Opener, Sealer};

/// A flowpath's id within its session. Chosen by the client; 0 is the path that opened the
/// session. Re-attaching an id that is in use replaces that flowpath (migration).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathId(pub u32);

impl std::fmt::Display for PathId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where a flowpath is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum PathState {
    /// Client: HELLO(attach) sent with this nonce, waiting for the server's CHALLENGE.
    AwaitChallenge {
        /// Our nonce, to check the server's proof against.
        client_nonce: [u8; NONCE_LEN],
    },
    /// Client: HELLO(resume) sent with these nonces (the server's from a ticket), waiting for
    /// RESUMED. Stream frames may already go out behind the HELLO.
    AwaitResumed {
        /// Our nonce.
        client_nonce: [u8; NONCE_LEN],
        /// The ticket's nonce.
        server_nonce: [u8; NONCE_LEN],
    },
    /// Carries stream data.
    Active,
}

/// Counters and estimates of one flowpath, for the scheduler and for the user.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PathStats {
    /// Stream bytes sent on this path for the first time.
    pub bytes_sent: u64,
    /// Stream bytes sent on this path that had been sent before (on any path).
    pub bytes_resent: u64,
    /// Stream bytes received on this path (duplicates included).
    pub bytes_received: u64,
    /// Stream bytes received on this path that no path had brought before: the path's
    /// contribution to goodput (over all paths these add up to the bytes received in order).
    pub bytes_new: u64,
    /// Stream bytes the peer reports having received on this path.
    pub peer_received: u64,
    /// Smoothed round-trip time, once a sample exists.
    pub srtt: Option<Duration>,
    /// Lowest RTT sample seen.
    pub min_rtt: Option<Duration>,
    /// Smoothed rate at which the peer reports receiving our bytes on this path, in bytes
    /// per second, once two reports far enough apart exist.
    pub delivery_rate: Option<f64>,
    /// The last report used for a rate sample: (when, the peer's byte count then).
    rate_mark: Option<(Duration, u64)>,
}

/// While a path carries data, its RTT is sampled (a PING) at least this often, so that its
/// estimates follow the path rather than the moment it was attached.
pub(crate) const RTT_PROBE: Duration = Duration::from_millis(200);

/// Reports closer together than this are folded into the next sample (too noisy alone).
const RATE_SAMPLE_MIN: Duration = Duration::from_millis(20);

impl PathStats {
    /// The counters carried over to a new connection of the same path; RTT and rate
    /// estimates start afresh (the route may differ).
    pub(super) fn for_new_connection(&self) -> PathStats {
        PathStats {
            srtt: None,
            min_rtt: None,
            delivery_rate: None,
            rate_mark: None,
            ..self.clone()
        }
    }

    /// Folds the peer's report "I have received `bytes` on this connection" at `now` into the
    /// delivery-rate estimate. A count that goes down (a new connection) restarts it. The
    /// count is the peer's word: it is capped at what this path has sent on all its
    /// connections, so that a lying peer can neither inflate the rate the scheduler uses nor
    /// the figures shown to the user.
    pub(super) fn on_peer_received(&mut self, bytes: u64, now: Duration) {
        let bytes = bytes.min(self.bytes_sent.saturating_add(self.bytes_resent));
        self.peer_received = bytes;
        match self.rate_mark {
            Some((t, b)) if bytes >= b => {
                let dt = now.saturating_sub(t);
                if dt < RATE_SAMPLE_MIN {
                    return;
                }
                let sample = (bytes - b) as f64 / dt.as_secs_f64();
                self.delivery_rate = Some(match self.delivery_rate {
                    None => sample,
                    Some(r) => 0.75 * r + 0.25 * sample,
                });
                self.rate_mark = Some((now, bytes));
            }
            _ => self.rate_mark = Some((now, bytes)),
        }
    }

    /// Folds one RTT sample into the smoothed estimate (RFC 6298 weights).
    pub(super) fn on_rtt_sample(&mut self, rtt: Duration) {
        self.srtt = Some(match self.srtt {
            None => rtt,
            Some(s) => (s * 7 + rtt) / 8,
        });
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
    }
}

/// State of one flowpath inside a session.
#[derive(Debug)]
pub(crate) struct Path {
    /// Attach progress.
    pub(super) state: PathState,
    /// Stream ranges sent on this path and not yet covered by the peer's cumulative ack, in
    /// send order. If the path dies they are queued for re-sending on the others.
    pub(super) inflight: VecDeque<(u64, u64)>,
    /// A FIN was sent on this path and is not yet acknowledged.
    pub(super) fin_inflight: bool,
    /// Counters and estimates.
    pub(super) stats: PathStats,
    /// Stream bytes received on this connection since it was attached (reported in our ACKs).
    pub(super) conn_bytes_received: u64,
    /// Bytes received since our last ACK on this path.
    pub(super) unacked_bytes: u64,
    /// An ACK must go out on this path as soon as possible.
    pub(super) ack_now: bool,
    /// An ACK must go out on this path by then (delayed ack).
    pub(super) ack_deadline: Option<Duration>,
    /// A PONG owed to the peer, with its token.
    pub(super) pong_due: Option<u64>,
    /// Our outstanding PING: token and when it was sent.
    pub(super) ping_outstanding: Option<(u64, Duration)>,
    /// A PING is wanted now (RTT probe at attach).
    pub(super) ping_now: bool,
    /// When our last PING went out (None: never).
    pub(super) last_ping: Option<Duration>,
    /// When we last put a frame on this path.
    pub(super) last_sent: Duration,
    /// When we last received a frame on this path.
    pub(super) last_recv: Duration,
    /// Since when we have been waiting for the peer to answer on this path: something is
    /// outstanding (unacknowledged data, a PING, a FIN) and nothing has arrived since. None
    /// while nothing is outstanding.
    pub(super) awaiting_since: Option<Duration>,
    /// Handshake frames to send before anything else.
    pub(super) control: VecDeque<Frame>,
    /// Encrypted sessions: a handshake frame to send in clear before the first record (the
    /// client's ATTACH_PROOF).
    pub(super) clear_first: Option<Frame>,
    /// Encrypted sessions: seals what this side sends on this connection (None: send in clear,
    /// i.e. no encryption, or not yet).
    pub(super) seal: Option<Sealer>,
    /// Client, HELLO(resume) sent: the opener to hand over once RESUMED (in clear) arrived.
    pub(super) opener_after_reply: Option<Opener>,
    /// Frame bytes put on this connection so far (they size its records and DATA frames
    /// while its congestion window grows: see `session::transmit`).
    pub(super) conn_bytes_sent: u64,
}

impl Path {
    /// A path in `state`, created at `now`.
    pub(super) fn new(state: PathState, now: Duration) -> Self {
        let state_awaits = state != PathState::Active;
        Path {
            state,
            inflight: VecDeque::new(),
            fin_inflight: false,
            stats: PathStats::default(),
            conn_bytes_received: 0,
            unacked_bytes: 0,
            ack_now: false,
            ack_deadline: None,
            pong_due: None,
            ping_outstanding: None,
            ping_now: false,
            last_ping: None,
            last_sent: now,
            last_recv: now,
            // Until attached, the path owes us its CHALLENGE or RESUMED.
            awaiting_since: (state_awaits).then_some(now),
            control: VecDeque::new(),
            clear_first: None,
            seal: None,
            opener_after_reply: None,
            conn_bytes_sent: 0,
        }
    }

    /// True once the path carries stream data.
    pub(super) fn is_active(&self) -> bool {
        self.state == PathState::Active
    }

    /// True when stream frames may go out on the path: attached, or resuming (the server reads
    /// them once it has checked the HELLO(resume) in front of them).
    pub(super) fn can_send(&self) -> bool {
        matches!(
            self.state,
            PathState::Active | PathState::AwaitResumed { .. }
        )
    }

    /// True while the peer owes this path an answer: unacknowledged data, a PING or a FIN.
    pub(super) fn has_outstanding(&self) -> bool {
        !self.inflight.is_empty() || self.ping_outstanding.is_some() || self.fin_inflight
    }

    /// True when the peer has owed an answer for `dead_time` and said nothing.
    pub(super) fn is_dead(&self, now: Duration, dead_time: Duration) -> bool {
        self.awaiting_since
            .is_some_and(|t| now.saturating_sub(t) >= dead_time)
    }

    /// Records that `[start, end)` was sent on this path.
    pub(super) fn record_sent(&mut self, start: u64, end: u64) {
        match self.inflight.back_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => self.inflight.push_back((start, end)),
        }
    }

    /// Forgets in-flight ranges below the cumulative ack `cum`.
    pub(super) fn on_cumulative(&mut self, cum: u64) {
        while let Some(front) = self.inflight.front_mut() {
            if front.1 <= cum {
                self.inflight.pop_front();
            } else {
                front.0 = front.0.max(cum);
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_peers_byte_count_is_capped_at_what_was_sent() {
        let mut st = PathStats {
            bytes_sent: 1000,
            bytes_resent: 24,
            ..PathStats::default()
        };
        st.on_peer_received(10, Duration::from_millis(0));
        st.on_peer_received(u64::MAX / 3, Duration::from_millis(100));
        assert_eq!(st.peer_received, 1024);
        let rate = st.delivery_rate.expect("a sample");
        assert!(rate <= 1014.0 / 0.1 + 1.0, "rate {rate}");
    }
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn delivery_rate_follows_the_peer_reports() {
        // (Reports count only bytes this path sent: plenty here.)
        let mut s = PathStats {
            bytes_sent: 1 << 40,
            ..PathStats::default()
        };
        s.on_peer_received(0, ms(0));
        assert_eq!(s.delivery_rate, None);
        // 10 ms later: too close for a sample; folded into the next one.
        s.on_peer_received(10_000, ms(10));
        assert_eq!(s.delivery_rate, None);
        s.on_peer_received(100_000, ms(100)); // 1 MB/s over 100 ms
        assert_eq!(s.delivery_rate, Some(1_000_000.0));
        s.on_peer_received(300_000, ms(200)); // 2 MB/s: smoothed towards it
        assert_eq!(s.delivery_rate, Some(1_250_000.0));
        // A new connection counts from 0 again: the estimate restarts from there.
        s.on_peer_received(5, ms(300));
        assert_eq!(s.delivery_rate, Some(1_250_000.0));
        s.on_peer_received(50_005, ms(350));
        assert_eq!(
            s.delivery_rate,
            Some(0.75 * 1_250_000.0 + 0.25 * 1_000_000.0)
        );
        let fresh = s.for_new_connection();
        assert_eq!((fresh.delivery_rate, fresh.srtt), (None, None));
        assert_eq!(fresh.peer_received, s.peer_received);
    }
}
