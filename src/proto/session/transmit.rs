//! Outbound frames for one flowpath, and the session's timers.

use std::time::Duration;

use super::{Event, Session, SessionError};
use crate::proto::frame::Frame;
use crate::proto::out_queue::OutQueue;
use crate::proto::path::{Path, PathId, RTT_PROBE};
use crate::proto::record::{SealJob, MAX_PLAIN};

/// How much longer than this path's base RTT (beyond a quarter of it) another path's must be
/// for its bytes in flight to count as lagging: sub-millisecond differences are noise.
const LAG_MARGIN: Duration = Duration::from_millis(1);

/// Most bytes a flowpath that is resuming blind (its HELLO(resume) sent, the peer's RESUMED
/// not yet in) puts on its connection: about what a fresh TCP connection sends in its first
/// round trip (an initial window of ten segments). The peer's RESUMED says where its
/// application waits (the hole it needs re-sent); whatever we had queued in the kernel beyond
/// the first flight would go out ahead of that re-send and hold the receiver up (on a full
/// 40 Mbit/s link, half a megabyte is 100 ms), while the first flight itself is free.
pub(crate) const BLIND_FLIGHT: usize = 14_000;

/// The most plain bytes one record of an encrypted session carries on a connection that has
/// carried `sent` bytes so far: a receiver opens a record only once all of it is in, and a new connection's congestion window starts at about ten segments and
/// doubles every round trip. A 64 KiB record in the first flight of a resumed flowpath
/// arrives whole only in the third or fourth round trip, holding back every byte in it. So
/// the first ones are about a segment, and each may be a quarter of what the connection
/// carried before it (whole in the round trip it is sent in, or the next), up to the
/// caller's budget (which the caller applies: the runtime asks for records larger than one
/// DATA frame when it seals them off its own thread).
pub(crate) fn conn_budget(sent: u64) -> usize {
    /// A segment's worth of plain text, with room for the frame and record headers.
    const FIRST: u64 = 1200;
    usize::try_from((sent / 4).max(FIRST)).unwrap_or(usize::MAX)
}

impl Session {
    /// Appends frames for path `id` to `out` (DATA payloads as slices of the send buffer,
    /// not copies), stopping once `out` holds about `budget` bytes.
    /// Returns true if anything was appended. Control frames come first, then re-sends, then new
    /// data, then FIN.
    ///
    /// In an encrypted session, once the connection is keyed, everything this call produces
    /// goes out as one sealed record (see `proto::record`).
    pub fn poll_transmit(
        &mut self,
        id: PathId,
        now: Duration,
        out: &mut OutQueue,
        budget: usize,
    ) -> bool {
        // The path leaves the map while its frames are made, so that it and the rest of the
        // session can be borrowed at once; it goes back before returning.
        let Some(mut path) = self.paths.remove(&id) else {
            return false;
        };
        let any = self.transmit_on(id, &mut path, now, out, budget, None);
        self.paths.insert(id, path);
        any
    }

    /// [`Session::poll_transmit`], except that in an encrypted session the record is not
    /// sealed here but returned as a [`SealJob`] (its nonce taken), so that the caller can
    /// seal it on another thread. Its bytes go on the wire right after what `out` received
    /// and before any later record of this path; the jobs of one path must be run and
    /// written in order.
    pub fn poll_transmit_deferred(
        &mut self,
        id: PathId,
        now: Duration,
        out: &mut OutQueue,
        budget: usize,
    ) -> (bool, Option<SealJob>) {
        let Some(mut path) = self.paths.remove(&id) else {
            return (false, None);
        };
        let mut job = None;
        let any = self.transmit_on(id, &mut path, now, out, budget, Some(&mut job));
        self.paths.insert(id, path);
        (any, job)
    }

    /// [`Session::poll_transmit`] for `path` (out of the map), sealed when keyed (or, with
    /// `defer`, left for the caller to seal). Encrypted, a young connection carries small
    /// records (see `conn_budget`); what this call puts on the wire, deferred record
    /// included, counts towards the connection's age.
    fn transmit_on(
        &mut self,
        id: PathId,
        path: &mut Path,
        now: Duration,
        out: &mut OutQueue,
        budget: usize,
        mut defer: Option<&mut Option<SealJob>>,
    ) -> bool {
        let budget = if self.encrypted {
            // Half a record's room: what is asked for may be overshot by a frame.
            budget
                .min(conn_budget(path.conn_bytes_sent))
                .min(MAX_PLAIN / 2)
        } else {
            budget
        };
        let before = out.len();
        let any = self.transmit_sealed(id, path, now, out, budget, defer.as_deref_mut());
        let deferred = defer
            .and_then(|job| job.as_ref())
            .map_or(0, SealJob::wire_len);
        path.conn_bytes_sent += (out.len().saturating_sub(before) + deferred) as u64;
        any
    }

    /// [`Session::transmit_on`] once the budget is set.
    fn transmit_sealed(
        &mut self,
        id: PathId,
        path: &mut Path,
        now: Duration,
        out: &mut OutQueue,
        budget: usize,
        defer: Option<&mut Option<SealJob>>,
    ) -> bool {
        let mut any = false;
        if let Some(f) = path.clear_first.take() {
            out.push_frame(&f);
            any = true;
        }
        let Some(mut sealer) = path.seal.take() else {
            if self.encrypted {
                // A connection not keyed yet (waiting for its CHALLENGE or RESUMED) carries
                // nothing but the handshake, which the runtime sends: not even an ERROR,
                // whose reason would go out in clear.
                return any;
            }
            return self.transmit_frames(id, path, now, out, budget) || any;
        };
        let mut plain = std::mem::take(&mut self.plain);
        any |= self.transmit_frames(id, path, now, &mut plain, budget);
        if !plain.is_empty() {
            match defer {
                Some(job) => *job = Some(sealer.seal_later(&mut plain)),
                None => out.push_segment(sealer.seal(&mut plain)),
            }
        }
        plain.clear();
        self.plain = plain;
        path.seal = Some(sealer);
        any
    }

    /// The largest DATA payload for one `poll_transmit` of `budget` bytes: encrypted, no more
    /// than the record it goes into (see `conn_budget`).
    fn chunk_max(&self, budget: usize) -> usize {
        if self.encrypted {
            self.config.max_payload.min(budget)
        } else {
            self.config.max_payload
        }
    }

    /// The frames of [`Session::poll_transmit`], unsealed.
    fn transmit_frames(
        &mut self,
        id: PathId,
        path: &mut Path,
        now: Duration,
        out: &mut OutQueue,
        budget: usize,
    ) -> bool {
        let start_len = out.len();
        let cum = self.recv.contiguous_end();
        let limit = self.recv.limit();
        let fin_ack_here = self.recv_close.fin_ack_owed() && self.fin_ack_goes_on(id);
        while let Some(f) = path.control.pop_front() {
            out.push_frame(&f);
        }
        if self.error.is_some() || !path.can_send() {
            return Self::sent(path, out, start_len, now);
        }
        if let Some(token) = path.pong_due.take() {
            out.push_frame(&Frame::Pong { token });
        }
        let ack_due = path.ack_now || path.ack_deadline.is_some_and(|d| d <= now);
        if ack_due {
            out.push_frame(&Frame::Ack {
                cumulative: cum,
                limit,
                path_bytes: path.conn_bytes_received,
            });
            path.ack_now = false;
            path.ack_deadline = None;
            path.unacked_bytes = 0;
            self.advertised_limit = self.advertised_limit.max(limit);
        }
        if fin_ack_here {
            if let Some(fin) = self.recv.is_complete().then(|| self.recv.contiguous_end()) {
                out.push_frame(&Frame::FinAck { final_offset: fin });
            }
            self.recv_close.fin_ack_sent();
        }
        let keepalive_due = now.saturating_sub(path.last_recv) >= self.config.keepalive;
        // A busy path's RTT is sampled now and then: one sample at attach (perhaps at a
        // busy moment) would otherwise be its estimate for the whole transfer.
        let probe_due = path.is_active()
            && !path.inflight.is_empty()
            && path
                .last_ping
                .is_none_or(|t| now.saturating_sub(t) >= RTT_PROBE);
        if (path.ping_now || keepalive_due || probe_due) && path.ping_outstanding.is_none() {
            let token = self.next_token;
            self.next_token += 1;
            out.push_frame(&Frame::Ping { token });
            path.ping_outstanding = Some((token, now));
            path.last_ping = Some(now);
            path.ping_now = false;
        }
        // Whether stream bytes (or FIN) go out: that, not keepalives, is activity.
        let mut sent_stream = false;
        // A path resuming blind carries one first flight of stream bytes (see BLIND_FLIGHT).
        let budget = if path.is_active() {
            budget
        } else {
            budget.min(BLIND_FLIGHT.saturating_sub(path.conn_bytes_sent as usize))
        };
        // Re-sends of bytes lost with a dead path (on a path resuming blind, only once the
        // peer has said what it lacks).
        let resend_now = self.send.resend_confirmed() || path.is_active();
        let blind = !path.is_active();
        while resend_now && out.len() - start_len < budget {
            let mut max = self.chunk_max(budget);
            if blind {
                max = max.min(budget - (out.len() - start_len));
            }
            let max = max as u64;
            let Some((start, chunk)) = self.send.poll_retransmit(max) else {
                break;
            };
            let end = start + chunk.len() as u64;
            path.stats.bytes_resent += chunk.len() as u64;
            out.push_data(start, chunk);
            path.record_sent(start, end);
        }
        // Blind, lost bytes that never left this host go first: the peer's application
        // waits for the lowest of them, and they cannot be duplicates.
        while blind && !resend_now && out.len() - start_len < budget {
            let max = self.chunk_max(budget).min(budget - (out.len() - start_len)) as u64;
            let Some((start, chunk)) = self.send.poll_missing(max) else {
                break;
            };
            let end = start + chunk.len() as u64;
            path.stats.bytes_resent += chunk.len() as u64;
            out.push_data(start, chunk);
            path.record_sent(start, end);
        }
        // New bytes, within the peer's window.
        while out.len() - start_len < budget {
            let mut max = self.chunk_max(budget);
            if blind {
                max = max.min(budget - (out.len() - start_len));
            }
            let Some((start, chunk)) = self.send.poll_new(self.peer_limit, max) else {
                break;
            };
            let end = start + chunk.len() as u64;
            path.stats.bytes_sent += chunk.len() as u64;
            out.push_data(start, chunk);
            path.record_sent(start, end);
            sent_stream = true;
        }
        let send = &self.send;
        if let Some(fin) = self.send_close.take_fin(|fin| send.all_sent_to(fin)) {
            out.push_frame(&Frame::Fin { final_offset: fin });
            path.fin_inflight = true;
            sent_stream = true;
        }
        // Nothing new may go out (the peer's window is full, or everything was sent): bytes
        // stuck on a slower path are what everything waits for, so send them here too.
        if self.send.new_blocked(self.peer_limit) {
            sent_stream |= self.resend_lagging(id, path, out, start_len, budget, now);
        }
        if sent_stream {
            self.last_activity = now;
        }
        let any = Self::sent(path, out, start_len, now);
        self.check_finished();
        any
    }

    /// Sends on `path` (id `id`, out of the map) the lowest bytes still in flight on paths
    /// slower than it, each range at most once more; the receiver keeps whichever copy
    /// arrives first. True if anything was sent.
    ///
    /// Slower means a longer base RTT (the lowest sample, by more than a quarter and the
    /// noise in ours: how far our smoothed RTT is above it, at least [`LAG_MARGIN`]): queueing makes equal paths' smoothed RTTs differ from moment to
    /// moment, and re-sending on that would only send the same bytes twice (and make the
    /// path re-sent on look slower in turn). A path with no RTT sample yet is slower once it
    /// has kept us waiting for an answer twice that long.
    fn resend_lagging(
        &mut self,
        id: PathId,
        path: &mut Path,
        out: &mut OutQueue,
        start_len: usize,
        budget: usize,
        now: Duration,
    ) -> bool {
        if !path.is_active() {
            return false;
        }
        let Some(my_rtt) = path.stats.min_rtt else {
            return false;
        };
        // What our own smoothed RTT adds to our base RTT now is queueing and scheduling
        // noise, which the others' base RTT samples carry too.
        let noise = path
            .stats
            .srtt
            .map_or(LAG_MARGIN, |s| s.saturating_sub(my_rtt).max(LAG_MARGIN));
        let slower = my_rtt + my_rtt / 4 + noise;
        let acked = self.send.acked();
        let mut lagging: Vec<(u64, u64)> = self
            .paths
            .iter()
            .filter(|&(&other, p)| {
                other != id
                    && match p.stats.min_rtt {
                        Some(rtt) => rtt > slower,
                        // No sample yet: slower once it has kept us waiting twice as long.
                        None => p
                            .awaiting_since
                            .is_some_and(|t| now.saturating_sub(t) > slower * 2),
                    }
            })
            .flat_map(|(_, p)| p.inflight.iter().copied())
            .filter(|&(_, e)| e > acked)
            .collect();
        if lagging.is_empty() {
            return false;
        }
        lagging.sort_unstable();
        let mut any = false;
        for (s, e) in lagging {
            for gap in self.send.unduplicated(s, e) {
                let mut at = gap.start;
                while at < gap.end {
                    if out.len() - start_len >= budget {
                        return any;
                    }
                    let max = ((gap.end - at) as usize).min(self.config.max_payload);
                    let Some(chunk) = self.send.duplicate(at, max) else {
                        break;
                    };
                    let end = at + chunk.len() as u64;
                    let len = chunk.len() as u64;
                    out.push_data(at, chunk);
                    path.record_sent(at, end);
                    path.stats.bytes_resent += len;
                    any = true;
                    at = end;
                }
            }
        }
        any
    }

    fn sent(path: &mut Path, out: &OutQueue, start_len: usize, now: Duration) -> bool {
        let any = out.len() > start_len;
        if any {
            path.last_sent = now;
            if path.awaiting_since.is_none() && path.has_outstanding() {
                path.awaiting_since = Some(now);
            }
        }
        any
    }

    /// Whether an owed FIN_ACK may go out on path `id`: on the path the peer's FIN arrived on
    /// while that one is active, else on any.
    fn fin_ack_goes_on(&self, id: PathId) -> bool {
        match self.fin_path {
            Some(p) if p != id => !self.paths.get(&p).is_some_and(|p| p.is_active()),
            _ => true,
        }
    }

    /// The earliest time at which [`Session::handle_timeout`] (or a `poll_transmit`) has work.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.error.is_some() || self.finished {
            return None;
        }
        let mut t: Option<Duration> = None;
        let mut min = |d: Duration| t = Some(t.map_or(d, |x| x.min(d)));
        if let Some(idle) = self.config.idle_timeout {
            min(self.last_activity + idle);
        }
        for p in self.paths.values() {
            if let Some(since) = p.awaiting_since {
                min(since + self.config.dead_time);
            }
            if !p.is_active() {
                continue;
            }
            if let Some(d) = p.ack_deadline {
                min(d);
            }
            if p.ping_outstanding.is_none() {
                min(p.last_recv + self.config.keepalive);
            }
        }
        t
    }

    /// Advances timers to `now`. Idle timeout fails the session; due ACKs and keepalives are
    /// produced by the next `poll_transmit` on a path.
    pub fn handle_timeout(&mut self, now: Duration) {
        if self.error.is_some() || self.finished {
            return;
        }
        if let Some(idle) = self.config.idle_timeout {
            if now >= self.last_activity + idle {
                self.fail(SessionError::IdleTimeout(idle));
                return;
            }
        }
        let dead: Vec<PathId> = self
            .paths
            .iter()
            .filter(|(_, p)| p.is_dead(now, self.config.dead_time))
            .map(|(&id, _)| id)
            .collect();
        for id in dead {
            self.events.push_back(Event::PathDead(id));
            self.path_closed(id);
        }
    }
}
