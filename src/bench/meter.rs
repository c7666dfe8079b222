//! Measuring one direction at one end. A [`Mark`] is the payload counter and every flowpath's
//! counters at one instant; a [`Meter`] turns marks into interval figures and totals.
//!
//! A flowpath's share of in-order bytes: the session knows which flowpath first brought each
//! byte (`bytes_new`, the receiver's) or first sent it (`bytes_sent`, the sender's), not which
//! flowpath's bytes the application has read so far. So the in-order bytes of an interval are
//! divided between the flowpaths in proportion to those counts over the same interval (largest
//! remainder), which makes the flowpaths add up exactly to the total; once everything has
//! arrived, the two agree.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::model::{rate, Interval, PathInterval, PathTotal, Side};
use crate::runtime::Snapshot;

/// Which end of the direction this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// Counts payload delivered in order; flowpaths weighted by first arrivals.
    Receiver,
    /// Counts payload handed to the transport; flowpaths weighted by first transmissions.
    Sender,
}

/// One flowpath's counters at a mark.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct PathCounts {
    /// What its share is weighted by (see [`Role`]).
    pub(super) weight: u64,
    /// Bytes it sent again.
    pub(super) resent: u64,
    /// Bytes that arrived on it, duplicates included.
    pub(super) received: u64,
    /// TCP segments the kernel retransmitted on its current connection.
    pub(super) retrans: u64,
}

/// The counters at one instant.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Mark {
    /// When.
    pub(super) at: Instant,
    /// Payload bytes so far.
    pub(super) bytes: u64,
    /// Flowpath id → its counters.
    pub(super) paths: BTreeMap<u32, PathCounts>,
}

impl Mark {
    /// A mark of `bytes` payload bytes at `at`, with the flowpaths of `snap`.
    pub(super) fn new(role: Role, at: Instant, bytes: u64, snap: &Snapshot) -> Mark {
        let paths = snap
            .paths
            .iter()
            .map(|p| {
                let s = &p.stats;
                let weight = match role {
                    Role::Receiver => s.bytes_new,
                    Role::Sender => s.bytes_sent,
                };
                let counts = PathCounts {
                    weight,
                    resent: s.bytes_resent,
                    received: s.bytes_received,
                    retrans: p.kernel.map_or(0, |k| k.retransmits),
                };
                (p.id.0, counts)
            })
            .collect();
        Mark { at, bytes, paths }
    }

    /// The start of a direction at `at`: nothing counted yet. (Only the few bytes of control
    /// messages went before the first data, so the flowpaths' counters start at zero too.)
    pub(super) fn origin(at: Instant) -> Mark {
        Mark {
            at,
            bytes: 0,
            paths: BTreeMap::new(),
        }
    }

    fn delta(&self, since: &Mark) -> Vec<(u32, PathCounts)> {
        self.paths
            .iter()
            .map(|(&id, c)| {
                let b = since.paths.get(&id).copied().unwrap_or_default();
                let d = PathCounts {
                    weight: c.weight.saturating_sub(b.weight),
                    resent: c.resent.saturating_sub(b.resent),
                    received: c.received.saturating_sub(b.received),
                    retrans: c.retrans.saturating_sub(b.retrans),
                };
                (id, d)
            })
            .collect()
    }
}

/// Divides `total` in proportion to `weights` (largest remainder), so that the parts add up
/// to `total`; with no weight at all, everything goes to the first part.
pub(super) fn apportion(total: u64, weights: &[u64]) -> Vec<u64> {
    let sum: u128 = weights.iter().map(|&w| w as u128).sum();
    let mut out = vec![0u64; weights.len()];
    if weights.is_empty() {
        return out;
    }
    if sum == 0 {
        out[0] = total;
        return out;
    }
    let mut rems = Vec::with_capacity(weights.len());
    for (i, &w) in weights.iter().enumerate() {
        let x = total as u128 * w as u128;
        out[i] = (x / sum) as u64;
        rems.push((x % sum, i));
    }
    let short = total - out.iter().sum::<u64>();
    rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in rems.iter().take(short as usize) {
        out[i] += 1;
    }
    out
}

/// Splits `bytes` between the flowpaths of `delta` by their weights there, or by `overall`
/// where no flowpath gained weight in `delta`.
fn split(bytes: u64, delta: &[(u32, PathCounts)], overall: &[(u32, PathCounts)]) -> Vec<u64> {
    let w: Vec<u64> = delta.iter().map(|(_, c)| c.weight).collect();
    if w.iter().any(|&x| x > 0) {
        return apportion(bytes, &w);
    }
    let by_id: BTreeMap<u32, u64> = overall.iter().map(|(id, c)| (*id, c.weight)).collect();
    let w: Vec<u64> = delta
        .iter()
        .map(|(id, _)| by_id.get(id).copied().unwrap_or(0))
        .collect();
    apportion(bytes, &w)
}

fn rtt_us(snap: &Snapshot, id: u32) -> Option<u64> {
    let p = snap.paths.iter().find(|p| p.id.0 == id)?;
    p.stats.srtt.map(|d| d.as_micros() as u64)
}

/// Interval figures and totals of one direction at one end, from marks taken as it goes.
pub(super) struct Meter {
    role: Role,
    /// When the first data went out or arrived: time 0.
    origin: Mark,
    interval: Option<Duration>,
    omit: Duration,
    /// The end of the last interval reported.
    prev: Mark,
    /// Where the totals start (after --omit), once reached.
    omit_mark: Option<Mark>,
    /// The next interval ends at origin + `next_tick` × interval.
    next_tick: u32,
}

impl Meter {
    /// A meter starting at `origin`, reporting every `interval`, leaving out `omit`.
    pub(super) fn new(
        role: Role,
        origin: Mark,
        interval: Option<Duration>,
        omit: Duration,
    ) -> Meter {
        Meter {
            role,
            omit_mark: omit.is_zero().then(|| origin.clone()),
            prev: origin.clone(),
            origin,
            interval,
            omit,
            next_tick: 1,
        }
    }

    fn secs(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.origin.at).as_secs_f64()
    }

    /// When the meter wants its next mark (an interval's end, or the end of --omit).
    pub(super) fn next_wake(&self) -> Option<Instant> {
        let tick = self.interval.map(|i| self.origin.at + i * self.next_tick);
        let omit = self.omit_mark.is_none().then(|| self.origin.at + self.omit);
        match (tick, omit) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes a mark; returns an interval if one ended.
    pub(super) fn on_mark(&mut self, mark: &Mark, snap: &Snapshot) -> Option<Interval> {
        if self.omit_mark.is_none() && mark.at >= self.origin.at + self.omit {
            self.omit_mark = Some(mark.clone());
        }
        let i = self.interval?;
        if mark.at < self.origin.at + i * self.next_tick {
            return None;
        }
        let iv = self.interval_to(mark, snap);
        let elapsed = mark.at.saturating_duration_since(self.origin.at);
        self.next_tick = (elapsed.as_nanos() / i.as_nanos().max(1)) as u32 + 1;
        Some(iv)
    }

    fn interval_to(&mut self, mark: &Mark, snap: &Snapshot) -> Interval {
        let bytes = mark.bytes.saturating_sub(self.prev.bytes);
        let delta = mark.delta(&self.prev);
        let overall = mark.delta(&self.origin);
        let parts = split(bytes, &delta, &overall);
        let (start, end) = (self.secs(self.prev.at), self.secs(mark.at));
        let seconds = end - start;
        let paths = delta
            .iter()
            .zip(parts)
            .filter(|((id, c), b)| *b > 0 || c.weight > 0 || rtt_us(snap, *id).is_some())
            .map(|((id, _), b)| PathInterval {
                id: *id,
                bytes: b,
                bits_per_second: rate(b, seconds),
                rtt: rtt_us(snap, *id),
                sender_tcp: None,
            })
            .collect();
        let omitted = self.prev.at < self.origin.at + self.omit;
        self.prev = mark.clone();
        Interval {
            start,
            end,
            seconds,
            bytes,
            bits_per_second: rate(bytes, seconds),
            omitted,
            paths,
        }
    }

    /// The last mark: the final (partial) interval, if long enough to mean something (a tenth
    /// of an interval), and the totals after --omit. Fails if the data ended within --omit.
    pub(super) fn finish(
        &mut self,
        mark: &Mark,
        snap: &Snapshot,
    ) -> Result<(Option<Interval>, Side), String> {
        let last = match self.interval {
            Some(i) if mark.at.saturating_duration_since(self.prev.at) >= i / 10 => {
                Some(self.interval_to(mark, snap))
            }
            _ => None,
        };
        let Some(om) = &self.omit_mark else {
            return Err(format!(
                "the data ended {:.2} s after it began, within --omit {}; nothing was left to measure",
                self.secs(mark.at),
                humantime::format_duration(self.omit)
            ));
        };
        let bytes = mark.bytes.saturating_sub(om.bytes);
        let (start, end) = (self.secs(om.at), self.secs(mark.at));
        let seconds = end - start;
        let delta = mark.delta(om);
        let parts = split(bytes, &delta, &mark.delta(&self.origin));
        let mut paths = Vec::new();
        for ((id, c), b) in delta.iter().zip(parts) {
            let Some(p) = snap.paths.iter().find(|p| p.id.0 == *id) else {
                continue;
            };
            paths.push(PathTotal {
                id: *id,
                local: p.local.to_string(),
                remote: p.peer.to_string(),
                bytes: b,
                bits_per_second: rate(b, seconds),
                resent_bytes: c.resent,
                received_bytes: c.received,
                retransmits: c.retrans,
                rtt: rtt_us(snap, *id),
            });
        }
        let side = Side {
            start,
            end,
            seconds,
            bytes,
            bits_per_second: rate(bytes, seconds),
            resent_bytes: paths.iter().map(|p| p.resent_bytes).sum(),
            retransmits: paths.iter().map(|p| p.retransmits).sum(),
            sender: self.role == Role::Sender,
            paths,
        };
        Ok((last, side))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{PathId, PathStats};
    use crate::runtime::PathReport;

    #[test]
    fn apportion_adds_up() {
        assert_eq!(apportion(10, &[1, 1, 1]), [4, 3, 3]);
        assert_eq!(apportion(0, &[5, 0]), [0, 0]);
        assert_eq!(apportion(7, &[0, 0]), [7, 0]);
        assert_eq!(apportion(100, &[3, 1]), [75, 25]);
        assert!(apportion(5, &[]).is_empty());
        let w = [u64::MAX, 3, u64::MAX / 7];
        assert_eq!(
            apportion(u64::MAX, &w)
                .iter()
                .map(|&x| x as u128)
                .sum::<u128>(),
            u64::MAX as u128
        );
    }

    fn snap(news: &[u64]) -> Snapshot {
        Snapshot {
            paths: news
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    let mut stats = PathStats::default();
                    stats.bytes_new = n;
                    PathReport {
                        id: PathId(i as u32),
                        local: "127.0.0.1:1".parse().unwrap(),
                        peer: "127.0.0.1:2".parse().unwrap(),
                        iface: None,
                        up: true,
                        kernel: None,
                        stats,
                    }
                })
                .collect(),
            totals: Default::default(),
        }
    }

    #[test]
    fn intervals_and_totals_add_up_over_paths() {
        let t0 = Instant::now();
        let s0 = snap(&[100, 0]);
        let origin = Mark::new(Role::Receiver, t0, 0, &s0);
        let sec = Duration::from_secs(1);
        let mut m = Meter::new(Role::Receiver, origin, Some(sec), sec);
        assert_eq!(m.next_wake(), Some(t0 + sec));
        // Second 1 (omitted): path 0 only; 10 bytes still in the reorder buffer.
        let s1 = snap(&[1100, 0]);
        let iv = m
            .on_mark(&Mark::new(Role::Receiver, t0 + sec, 990, &s1), &s1)
            .unwrap();
        assert!(iv.omitted);
        assert_eq!((iv.bytes, iv.paths.len(), iv.paths[0].bytes), (990, 1, 990));
        // Second 2: both paths.
        let s2 = snap(&[1600, 1500]);
        let iv = m
            .on_mark(&Mark::new(Role::Receiver, t0 + 2 * sec, 3000, &s2), &s2)
            .unwrap();
        assert!(!iv.omitted);
        assert_eq!(iv.paths.iter().map(|p| p.bytes).sum::<u64>(), iv.bytes);
        assert!((iv.bits_per_second - 2010.0 * 8.0).abs() < 1e-6);
        // The end, half a second later.
        let s3 = snap(&[2100, 2000]);
        let end = Mark::new(Role::Receiver, t0 + sec * 5 / 2, 4000, &s3);
        let (last, side) = m.finish(&end, &s3).unwrap();
        assert_eq!(last.unwrap().bytes, 1000);
        assert_eq!(side.bytes, 4000 - 990);
        assert!((side.seconds - 1.5).abs() < 1e-9);
        assert_eq!(side.paths.iter().map(|p| p.bytes).sum::<u64>(), side.bytes);
        assert!(!side.sender);
    }

    #[test]
    fn ending_within_omit_is_an_error() {
        let t0 = Instant::now();
        let s = snap(&[0]);
        let origin = Mark::new(Role::Sender, t0, 0, &s);
        let mut m = Meter::new(Role::Sender, origin, None, Duration::from_secs(5));
        let end = Mark::new(Role::Sender, t0 + Duration::from_secs(1), 10, &s);
        assert!(m.finish(&end, &s).unwrap_err().contains("--omit"));
    }
}
