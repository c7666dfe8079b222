//! Both ends moving while apart: the client's reconnect attempts ([`Redial`]) against a server
//! whose old address went silent (connects to it never complete) and whose name is updated
//! at some moment, over seeded random RTTs, lookup times and update moments. The client runs
//! the runtime's loop: an attempt, and after a failed one the retry interval, then the next.

use std::net::SocketAddr;
use std::time::Duration;

use rand::{Rng, SeedableRng};

use crate::proto::redial::{Redial, RedialAction, RedialConfig};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const STALE: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    7000,
);
const FRESH: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)),
    7000,
);

/// One world: the name points at [`STALE`] until `name_update`, then at [`FRESH`], which
/// answers a connect in one `rtt`; connects to [`STALE`] never complete.
#[derive(Debug, Clone, Copy)]
struct World {
    rtt: Duration,
    lookup: Duration,
    name_update: Duration,
    retry_interval: Duration,
    wait: Duration,
    /// The smoothed RTT the client measured before the move, if any.
    srtt: Option<Duration>,
}

/// When the client's flowpath is back: a connection to [`FRESH`] is up and its resume took
/// one more RTT. Events are processed in time order; a connect or lookup in flight is
/// (completion time, what).
fn recovery(w: World) -> Duration {
    let cfg = RedialConfig {
        known_bound: RedialConfig::known_bound_for(w.srtt, w.wait),
        fresh_bound: w.wait,
        relookup: w.retry_interval,
        give_up: w.wait,
    };
    let mut attempt_start = Duration::ZERO;
    for _ in 0..100 {
        let mut plan = Redial::new(Duration::ZERO, &[STALE], cfg);
        // Times are on the attempt's clock.
        let mut connects: Vec<(Duration, SocketAddr)> = Vec::new(); // (deadline or success, addr)
        let mut lookup: Option<Duration> = None;
        let mut now = Duration::ZERO;
        loop {
            while let Some(a) = plan.poll(now) {
                match a {
                    RedialAction::Connect { addr, deadline } if addr == FRESH => {
                        let up = now + w.rtt;
                        if up <= deadline {
                            connects.push((up, addr));
                        } else {
                            connects.push((deadline, STALE)); // fails at its deadline
                        }
                    }
                    RedialAction::Connect { deadline, .. } => connects.push((deadline, STALE)),
                    RedialAction::Resolve => lookup = Some(now + w.lookup),
                }
            }
            if plan.failed(now) {
                break;
            }
            let next_connect = connects.iter().map(|c| c.0).min();
            let next = [next_connect, lookup, Some(plan.next_wakeup())]
                .into_iter()
                .flatten()
                .min()
                .expect("the deadline is always there");
            now = next;
            if lookup == Some(now) {
                lookup = None;
                let at = attempt_start + now;
                // A lookup answers with what the name said when it was asked.
                let asked = at.saturating_sub(w.lookup);
                let addr = if asked >= w.name_update { FRESH } else { STALE };
                plan.resolved(now, &[addr]);
            }
            if let Some(i) = connects.iter().position(|c| c.0 == now) {
                let (_, addr) = connects.swap_remove(i);
                if addr == FRESH {
                    return attempt_start + now + w.rtt; // + the resume's round trip
                }
                plan.connect_failed(STALE);
            }
        }
        // The runtime starts the next attempt when this one would have looked up next.
        attempt_start += now + plan.retry_in(now);
    }
    panic!("never recovered in {w:?}");
}

#[test]
fn a_stale_address_that_never_answers_does_not_delay_a_fresh_lookup() {
    // No RTT known: the stale connect may hang for the whole --wait (10 s); the name is
    // updated 300 ms in. The lookup made 1 s in (the retry interval) finds the new address.
    let w = World {
        rtt: ms(40),
        lookup: ms(5),
        name_update: ms(300),
        retry_interval: ms(1000),
        wait: ms(10_000),
        srtt: None,
    };
    let t = recovery(w);
    assert!(t <= ms(1000) + ms(5) + ms(80), "recovered after {t:?}");
}

#[test]
fn both_ends_recover_within_retry_interval_and_two_rtts_over_random_worlds() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(19);
    for _ in 0..2000 {
        let w = World {
            rtt: ms(rng.gen_range(5..400)),
            lookup: ms(rng.gen_range(0..100)),
            name_update: ms(rng.gen_range(0..5000)),
            retry_interval: ms(rng.gen_range(100..3000)),
            wait: ms(rng.gen_range(2000..30_000)),
            srtt: rng.gen_bool(0.5).then(|| ms(rng.gen_range(5..400))),
        };
        let t = recovery(w);
        // Reachable again (the name updated) at name_update: back within one retry interval
        // (the next lookup), the lookup, the connect's and the resume's round trips.
        let bound = w.name_update + w.retry_interval + w.lookup + 2 * w.rtt;
        assert!(
            t <= bound,
            "recovered after {t:?}, bound {bound:?}, in {w:?}"
        );
    }
}
