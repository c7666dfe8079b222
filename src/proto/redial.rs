//! One reconnect attempt of a client whose flowpath broke: which server addresses it connects
//! to, when it looks the server's name up again, and when it gives up (sans-IO: the caller
//! connects, resolves and keeps the clock).
//!
//! Happy eyeballs for a server that may have moved: the addresses the client already knows
//! (the one the server announced, the one the broken flowpath went to) are connected to at
//! once, and the name is looked up at the same time; every address a lookup yields that is not
//! already being tried is connected to as soon as the lookup answers, racing the connects
//! under way. While no connect has succeeded, the name is looked up again every
//! [`RedialConfig::relookup`], so a name updated while a connect to the stale address hangs
//! is followed within one interval; an address a lookup gives again while its connect still
//! hangs after an interval is dialled once more, racing the old connect (its SYN may have
//! been lost in an outage that has ended, and the kernel's retransmissions back off to
//! seconds). A connect to a known address is bounded by
//! [`RedialConfig::known_bound`], which the caller derives from the path's smoothed RTT
//! ([`RedialConfig::known_bound_for`]): an address that answered in 40 ms yesterday and is
//! silent for a few RTTs now is most likely gone, and must not hold the attempt for the
//! user's `--wait`. No lookup starts after [`RedialConfig::give_up`]; the attempt ends once
//! nothing is left in flight and the last lookup brought nothing new, and the next attempt
//! starts when this one's next lookup would have ([`Redial::retry_in`]), so that the name is
//! looked up every [`RedialConfig::relookup`] from one attempt to the next.

use std::net::SocketAddr;
use std::time::Duration;

/// The fewest a connect to a known address is given, whatever the RTT: a loaded machine or a
/// queue that filled may delay a handshake by more than a few RTTs.
pub const KNOWN_FLOOR: Duration = Duration::from_millis(500);

/// A connect to a known address is given this many smoothed RTTs (above the floor).
pub const KNOWN_RTTS: u32 = 4;

/// How one attempt is paced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedialConfig {
    /// Longest a connect to an address known before the attempt may take.
    pub known_bound: Duration,
    /// Longest a connect to an address a lookup found may take.
    pub fresh_bound: Duration,
    /// How often the name is looked up again while no connect succeeded.
    pub relookup: Duration,
    /// No lookup starts this long after the attempt began (connects under way run to their
    /// own deadlines; a lookup that hangs is abandoned after another `fresh_bound`).
    pub give_up: Duration,
}

impl RedialConfig {
    /// The bound of a connect to a known address: [`KNOWN_RTTS`] smoothed RTTs, at least
    /// [`KNOWN_FLOOR`], at most `wait` (also the bound when no RTT was measured).
    pub fn known_bound_for(srtt: Option<Duration>, wait: Duration) -> Duration {
        match srtt {
            Some(rtt) => (rtt * KNOWN_RTTS).max(KNOWN_FLOOR).min(wait),
            None => wait,
        }
    }
}

/// What the caller does next for the attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedialAction {
    /// Open a TCP connection to `addr`; report [`Redial::connect_failed`] if it fails or is
    /// not up by `deadline` (on the attempt's clock).
    Connect {
        /// Where to.
        addr: SocketAddr,
        /// When to give up on it.
        deadline: Duration,
    },
    /// Look the server's name up; report [`Redial::resolved`].
    Resolve,
}

/// The state of one attempt (see the module documentation).
#[derive(Debug)]
pub struct Redial {
    cfg: RedialConfig,
    /// Every address connected to in this attempt, with when its latest connect began and
    /// its first connect's deadline (a connect made again keeps it: the attempt lasts no
    /// longer for it).
    tried: Vec<(SocketAddr, Duration, Duration)>,
    /// Connects under way (an address twice if it was dialled again).
    in_flight: Vec<SocketAddr>,
    /// Actions not yet handed out.
    queue: std::collections::VecDeque<RedialAction>,
    /// A lookup is under way.
    resolving: bool,
    /// When the next lookup starts (if no connect succeeded by then).
    next_lookup: Duration,
    /// No lookup starts from then on.
    deadline: Duration,
}

impl Redial {
    /// An attempt starting at `now` that knows `known` (most likely first; repeats ignored).
    /// Its first actions connect to each of them and look the name up.
    pub fn new(now: Duration, known: &[SocketAddr], cfg: RedialConfig) -> Redial {
        let mut r = Redial {
            cfg,
            tried: Vec::new(),
            in_flight: Vec::new(),
            queue: Default::default(),
            resolving: true,
            next_lookup: now + cfg.relookup,
            deadline: now + cfg.give_up,
        };
        for &addr in known {
            r.connect(addr, now, now + cfg.known_bound);
        }
        r.queue.push_back(RedialAction::Resolve);
        r
    }

    /// Connects to `addr` unless a connect to it began less than a relookup interval ago: an
    /// address the name still gives whose connect has hung that long gets a fresh one, with
    /// the same deadline (its SYN may have been lost in an outage that is over now, and the
    /// kernel's retransmissions back off to seconds), racing the old.
    fn connect(&mut self, addr: SocketAddr, now: Duration, mut deadline: Duration) {
        if let Some((_, began, first)) = self.tried.iter_mut().find(|(a, ..)| *a == addr) {
            // One that failed (refused, unreachable, timed out) is not dialled again in this
            // attempt.
            let hung = self.in_flight.contains(&addr) && now >= *began + self.cfg.relookup;
            if !hung || now >= *first {
                return;
            }
            *began = now;
            deadline = *first;
        } else {
            self.tried.push((addr, now, deadline));
        }
        self.in_flight.push(addr);
        self.queue
            .push_back(RedialAction::Connect { addr, deadline });
    }

    /// The next thing to do at `now`, if any (call until None, then wait until
    /// [`Redial::next_wakeup`] or a report).
    pub fn poll(&mut self, now: Duration) -> Option<RedialAction> {
        if let Some(a) = self.queue.pop_front() {
            return Some(a);
        }
        if !self.resolving && now >= self.next_lookup && now < self.deadline {
            self.resolving = true;
            self.next_lookup = now + self.cfg.relookup;
            return Some(RedialAction::Resolve);
        }
        None
    }

    /// A lookup answered at `now` with `addrs` (empty if it failed): new addresses are
    /// connected to at once.
    pub fn resolved(&mut self, now: Duration, addrs: &[SocketAddr]) {
        self.resolving = false;
        for &addr in addrs {
            self.connect(addr, now, now + self.cfg.fresh_bound);
        }
    }

    /// A connect to `addr` failed or timed out (one of them, if it was dialled again).
    pub fn connect_failed(&mut self, addr: SocketAddr) {
        if let Some(i) = self.in_flight.iter().position(|&a| a == addr) {
            self.in_flight.swap_remove(i);
        }
    }

    /// True once the attempt has failed: nothing is in flight or due and the last lookup
    /// brought nothing new (or a lookup hung past the deadline by another `fresh_bound`).
    pub fn failed(&self, now: Duration) -> bool {
        let idle = self.in_flight.is_empty() && !self.resolving && self.queue.is_empty();
        idle || now >= self.deadline + self.cfg.fresh_bound
    }

    /// When [`Redial::poll`] next has something to do without a report (a lookup falls due, or
    /// a hung lookup is given up on).
    pub fn next_wakeup(&self) -> Duration {
        let hard = self.deadline + self.cfg.fresh_bound;
        if self.resolving || self.next_lookup >= self.deadline {
            hard
        } else {
            self.next_lookup
        }
    }

    /// After a failed attempt, how long until the next one should start at `now`: when this
    /// one would have looked the name up next.
    pub fn retry_in(&self, now: Duration) -> Duration {
        self.next_lookup.saturating_sub(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n], 7000))
    }

    fn cfg() -> RedialConfig {
        RedialConfig {
            known_bound: ms(500),
            fresh_bound: ms(5000),
            relookup: ms(1000),
            give_up: ms(10_000),
        }
    }

    fn drain(r: &mut Redial, now: Duration) -> Vec<RedialAction> {
        std::iter::from_fn(|| r.poll(now)).collect()
    }

    #[test]
    fn known_addresses_and_a_lookup_go_at_once() {
        let mut r = Redial::new(ms(0), &[addr(1), addr(2), addr(1)], cfg());
        let acts = drain(&mut r, ms(0));
        assert_eq!(
            acts,
            vec![
                RedialAction::Connect {
                    addr: addr(1),
                    deadline: ms(500)
                },
                RedialAction::Connect {
                    addr: addr(2),
                    deadline: ms(500)
                },
                RedialAction::Resolve,
            ]
        );
        // The lookup finds one known address and a new one: only the new one is dialled.
        r.resolved(ms(30), &[addr(2), addr(3)]);
        assert_eq!(
            drain(&mut r, ms(30)),
            vec![RedialAction::Connect {
                addr: addr(3),
                deadline: ms(5030)
            }]
        );
    }

    #[test]
    fn a_hanging_connect_does_not_stop_the_name_being_looked_up_again() {
        let mut r = Redial::new(ms(0), &[], cfg());
        assert_eq!(drain(&mut r, ms(0)), vec![RedialAction::Resolve]);
        r.resolved(ms(10), &[addr(1)]); // the stale address, which never answers
        drain(&mut r, ms(10));
        assert_eq!(r.next_wakeup(), ms(1000));
        assert!(drain(&mut r, ms(999)).is_empty());
        assert_eq!(drain(&mut r, ms(1000)), vec![RedialAction::Resolve]);
        r.resolved(ms(1010), &[addr(2)]);
        assert_eq!(
            drain(&mut r, ms(1010)),
            vec![RedialAction::Connect {
                addr: addr(2),
                deadline: ms(6010)
            }]
        );
        assert!(!r.failed(ms(1010)));
    }

    #[test]
    fn the_attempt_fails_when_nothing_is_left_and_retries_at_its_next_lookup() {
        let mut r = Redial::new(ms(0), &[addr(1)], cfg());
        drain(&mut r, ms(0));
        r.resolved(ms(5), &[addr(1)]);
        assert!(!r.failed(ms(5)));
        r.connect_failed(addr(1));
        assert!(r.failed(ms(500)));
        assert_eq!(r.retry_in(ms(500)), ms(500));
        // A lookup that never answers is given up on.
        let mut r = Redial::new(ms(0), &[], cfg());
        drain(&mut r, ms(0));
        assert!(!r.failed(ms(14_999)));
        assert!(r.failed(ms(15_000)));
        assert_eq!(r.next_wakeup(), ms(15_000));
    }

    #[test]
    fn no_lookup_starts_after_the_deadline() {
        let mut r = Redial::new(ms(0), &[addr(1)], cfg());
        drain(&mut r, ms(0));
        r.resolved(ms(5), &[]);
        assert!(drain(&mut r, ms(9_000)).contains(&RedialAction::Resolve));
        r.resolved(ms(9_005), &[]);
        assert!(drain(&mut r, ms(10_000)).is_empty());
        assert_eq!(r.next_wakeup(), ms(15_000));
    }

    #[test]
    fn an_address_whose_connect_hangs_is_dialled_again_at_the_next_lookup() {
        let mut r = Redial::new(ms(0), &[], cfg());
        drain(&mut r, ms(0));
        // The name gives the server's new address while the network is still out: the SYN
        // is lost and the connect hangs for its fresh bound.
        r.resolved(ms(10), &[addr(2)]);
        drain(&mut r, ms(10));
        // A lookup before the interval has passed brings nothing new.
        assert_eq!(drain(&mut r, ms(1000)), vec![RedialAction::Resolve]);
        r.resolved(ms(1005), &[addr(2)]);
        assert!(drain(&mut r, ms(1005)).is_empty());
        // One interval after the connect began, the same answer dials it again.
        assert_eq!(drain(&mut r, ms(2005)), vec![RedialAction::Resolve]);
        r.resolved(ms(2010), &[addr(2)]);
        assert_eq!(
            drain(&mut r, ms(2010)),
            vec![RedialAction::Connect {
                addr: addr(2),
                deadline: ms(5010)
            }]
        );
        // One connect fails; the other still runs, so the attempt goes on.
        r.connect_failed(addr(2));
        assert!(!r.failed(ms(3000)));
        // An address whose connect failed outright is not dialled again in this attempt.
        r.connect_failed(addr(2));
        assert_eq!(drain(&mut r, ms(3010)), vec![RedialAction::Resolve]);
        r.resolved(ms(3015), &[addr(2)]);
        assert!(drain(&mut r, ms(3015)).is_empty());
    }

    #[test]
    fn the_known_bound_follows_the_rtt_between_a_floor_and_the_wait() {
        let wait = ms(10_000);
        assert_eq!(
            RedialConfig::known_bound_for(Some(ms(40)), wait),
            KNOWN_FLOOR
        );
        assert_eq!(RedialConfig::known_bound_for(Some(ms(300)), wait), ms(1200));
        assert_eq!(RedialConfig::known_bound_for(Some(ms(5000)), wait), wait);
        assert_eq!(RedialConfig::known_bound_for(None, wait), wait);
    }
}
