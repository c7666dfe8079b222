//! The listener's figures (REPORT and RESULT) checked before they are shown: a listener is a
//! peer, and what it claims is printed in the user's tables and JSON. Times and CPU seconds
//! must be finite, not negative and within the longest test; a rate is recomputed here from
//! the bytes and the seconds (never taken as sent); flowpaths are few and their bytes add up
//! to no more than the total; addresses are addresses. Anything else is the listener breaking
//! the protocol.

use super::model::{rate, Cpu, Interval, PathInterval, PathTotal, Side, MAX_TIME_MS};

/// The latest second a figure may name: the longest test, half as long again, and a minute.
const MAX_SECONDS: f64 = MAX_TIME_MS as f64 / 1000.0 * 1.5 + 60.0;
/// At most this many flowpaths in one figure (far more than any session opens).
pub(super) const MAX_PATHS: usize = 1024;
/// CPU seconds per wall-clock second that a listener may claim: this many cores.
const MAX_CORES: f64 = 4096.0;

/// A time in seconds since the start of the test, or an error naming `what`.
fn seconds(x: f64, what: &str) -> Result<f64, String> {
    if x.is_finite() && (0.0..=MAX_SECONDS).contains(&x) {
        Ok(x)
    } else {
        Err(format!("{what} {x} is not a time within the test"))
    }
}

/// Checks the flowpaths' byte counts against the total `bytes`.
fn path_bytes(count: usize, mut each: impl Iterator<Item = u64>, bytes: u64) -> Result<(), String> {
    if count > MAX_PATHS {
        return Err(format!("{count} flowpaths (at most {MAX_PATHS})"));
    }
    let sum = each.try_fold(0u64, |s, b| s.checked_add(b));
    match sum {
        Some(s) if s <= bytes => Ok(()),
        _ => Err(format!(
            "flowpath byte counts add up to more than the total {bytes}"
        )),
    }
}

/// A listener's interval figures, checked; its rates recomputed.
pub(super) fn interval(iv: Interval) -> Result<Interval, String> {
    let start = seconds(iv.start, "interval start")?;
    let end = seconds(iv.end, "interval end")?;
    if end < start {
        return Err(format!("interval ends ({end}) before it starts ({start})"));
    }
    path_bytes(iv.paths.len(), iv.paths.iter().map(|p| p.bytes), iv.bytes)?;
    let secs = end - start;
    let paths = (iv.paths.into_iter())
        .map(|p| PathInterval {
            bits_per_second: rate(p.bytes, secs),
            sender_tcp: None,
            ..p
        })
        .collect();
    Ok(Interval {
        start,
        end,
        seconds: secs,
        bytes: iv.bytes,
        bits_per_second: rate(iv.bytes, secs),
        omitted: iv.omitted,
        paths,
    })
}

/// A listener's totals for one direction, checked; its rates recomputed.
pub(super) fn side(s: Side) -> Result<Side, String> {
    let start = seconds(s.start, "start")?;
    let end = seconds(s.end, "end")?;
    if end < start {
        return Err(format!("totals end ({end}) before they start ({start})"));
    }
    path_bytes(s.paths.len(), s.paths.iter().map(|p| p.bytes), s.bytes)?;
    let secs = end - start;
    let mut paths = Vec::with_capacity(s.paths.len());
    for p in s.paths {
        for a in [&p.local, &p.remote] {
            if a.parse::<std::net::SocketAddr>().is_err() {
                return Err(format!(
                    "flowpath {} address {} is not an address",
                    p.id,
                    crate::proto::text::Untrusted(a)
                ));
            }
        }
        paths.push(PathTotal {
            bits_per_second: rate(p.bytes, secs),
            ..p
        });
    }
    let retransmits = paths
        .iter()
        .map(|p| p.retransmits)
        .fold(0u64, u64::saturating_add);
    Ok(Side {
        start,
        end,
        seconds: secs,
        bits_per_second: rate(s.bytes, secs),
        retransmits,
        paths,
        ..s
    })
}

/// A listener's CPU time, checked: finite, not negative, within the test, and at most
/// [`MAX_CORES`] busy cores.
pub(super) fn cpu(c: Cpu) -> Result<Cpu, String> {
    let wall = seconds(c.wall, "CPU wall-clock time")?;
    let user = seconds(c.user / MAX_CORES, "user CPU time / cores")? * MAX_CORES;
    let system = seconds(c.system / MAX_CORES, "system CPU time / cores")? * MAX_CORES;
    if user + system > wall * MAX_CORES {
        return Err(format!(
            "{} CPU seconds in {wall} s is more than {MAX_CORES} cores",
            user + system
        ));
    }
    Ok(Cpu { user, system, wall })
}

/// The listener, as receiver, claims more in-order bytes than this client sent.
pub(super) fn received_at_most_sent(receiver: &Side, sender: &Side) -> Result<(), String> {
    if receiver.bytes > sender.bytes {
        return Err(format!(
            "the listener claims {} bytes received of the {} sent",
            receiver.bytes, sender.bytes
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv() -> Interval {
        Interval {
            start: 1.0,
            end: 2.0,
            seconds: 1.0,
            bytes: 1000,
            bits_per_second: 8000.0,
            omitted: false,
            paths: vec![PathInterval {
                id: 0,
                bytes: 1000,
                bits_per_second: 8000.0,
                rtt: Some(100),
                sender_tcp: None,
            }],
        }
    }

    fn side() -> Side {
        Side {
            start: 0.0,
            end: 2.0,
            seconds: 2.0,
            bytes: 1000,
            bits_per_second: 4000.0,
            resent_bytes: 0,
            retransmits: 0,
            sender: false,
            paths: vec![PathTotal {
                id: 0,
                local: "127.0.0.1:1".into(),
                remote: "[::1]:2".into(),
                bytes: 1000,
                bits_per_second: 4000.0,
                resent_bytes: 0,
                received_bytes: 1000,
                retransmits: 0,
                rtt: None,
            }],
        }
    }

    #[test]
    fn plausible_figures_pass_and_rates_are_recomputed() {
        assert_eq!(interval(iv()), Ok(iv()));
        let claimed = Interval {
            bits_per_second: 1.2e21,
            seconds: 1e-9,
            ..iv()
        };
        let shown = interval(claimed).unwrap();
        assert_eq!((shown.seconds, shown.bits_per_second), (1.0, 8000.0));
        assert_eq!(super::side(side()), Ok(side()));
        let c = Cpu {
            user: 1.0,
            system: 0.5,
            wall: 2.0,
        };
        assert_eq!(cpu(c), Ok(c));
    }

    #[test]
    fn implausible_figures_are_refused() {
        let bad_iv = [
            Interval {
                start: f64::NAN,
                ..iv()
            },
            Interval {
                end: f64::INFINITY,
                ..iv()
            },
            Interval {
                start: -1.0,
                ..iv()
            },
            Interval { start: 3.0, ..iv() },
            Interval { end: 1e15, ..iv() },
            Interval { bytes: 10, ..iv() },
            Interval {
                paths: vec![iv().paths[0].clone(); MAX_PATHS + 1],
                bytes: u64::MAX,
                ..iv()
            },
            Interval {
                paths: vec![
                    PathInterval {
                        bytes: u64::MAX,
                        ..iv().paths[0].clone()
                    },
                    PathInterval {
                        bytes: 2,
                        ..iv().paths[0].clone()
                    },
                ],
                bytes: u64::MAX,
                ..iv()
            },
        ];
        for b in bad_iv {
            assert!(interval(b.clone()).is_err(), "{b:?}");
        }
        let mut evil = side();
        evil.paths[0].local = "\x1b[2J".into();
        let e = super::side(evil).unwrap_err();
        assert!(!e.contains('\x1b'), "{e:?}");
        assert!(super::side(Side {
            end: f64::NAN,
            ..side()
        })
        .is_err());
        for c in [
            Cpu {
                user: f64::NAN,
                system: 0.0,
                wall: 1.0,
            },
            Cpu {
                user: -1.0,
                system: 0.0,
                wall: 1.0,
            },
            Cpu {
                user: 1e9,
                system: 0.0,
                wall: 1e-9,
            },
            Cpu {
                user: 0.0,
                system: 0.0,
                wall: f64::INFINITY,
            },
        ] {
            assert!(cpu(c).is_err(), "{c:?}");
        }
        let sent = Side {
            sender: true,
            bytes: 999,
            ..side()
        };
        assert!(received_at_most_sent(&side(), &sent).is_err());
        assert!(received_at_most_sent(
            &side(),
            &Side {
                bytes: 1000,
                ..sent
            }
        )
        .is_ok());
    }
}
