//! The figures a bench test exchanges and reports: test parameters, interval figures and final
//! figures per direction, serialised with iperf3's key names where they apply.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::wire::MAX_BLOCK;

/// The bench protocol version this build speaks (in [`Params`]).
pub const VERSION: u32 = 1;
/// Shortest interval between reports a listener agrees to send.
pub const MIN_INTERVAL_MS: u64 = 10;
/// Longest test a listener agrees to run.
pub const MAX_TIME_MS: u64 = 24 * 3600 * 1000;

/// What the client asks for (PARAMS).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// [`VERSION`].
    pub version: u32,
    /// Send for this long (milliseconds), or
    pub time_ms: Option<u64>,
    /// send this many payload bytes.
    pub bytes: Option<u64>,
    /// Payload bytes per DATA block.
    pub len: u64,
    /// The receiver reports every this many milliseconds (0: never).
    pub interval_ms: u64,
    /// The first this many milliseconds are left out of the totals.
    pub omit_ms: u64,
    /// The listener sends, the client receives.
    pub reverse: bool,
    /// Both send.
    pub bidir: bool,
    /// Each sender paces its data to this many bits per second (0: as fast as it can).
    #[serde(default)]
    pub rate: u64,
}

impl Params {
    /// The client sends data.
    pub(super) fn client_sends(&self) -> bool {
        !self.reverse
    }

    /// The listener sends data.
    pub(super) fn server_sends(&self) -> bool {
        self.reverse || self.bidir
    }

    /// Checks parameters that came from the network; the reason names the offending field.
    pub(super) fn check(&self) -> Result<(), String> {
        if self.version != VERSION {
            return Err(format!(
                "bench protocol version {} is not {VERSION} (run the same msock version on both ends)",
                self.version
            ));
        }
        match (self.time_ms, self.bytes) {
            (Some(t), None) if t > 0 && t <= MAX_TIME_MS => {
                if self.omit_ms >= t {
                    return Err("--omit is not shorter than --time".into());
                }
            }
            (None, Some(b)) if b > 0 => {}
            _ => return Err("give either a positive time of at most a day or a byte count".into()),
        }
        if self.len == 0 || self.len > MAX_BLOCK {
            return Err(format!("block length {} is not 1..={MAX_BLOCK}", self.len));
        }
        if self.interval_ms != 0 && self.interval_ms < MIN_INTERVAL_MS {
            return Err(format!(
                "interval {} ms is under {MIN_INTERVAL_MS} ms",
                self.interval_ms
            ));
        }
        if self.omit_ms > MAX_TIME_MS {
            return Err("omit is longer than a day".into());
        }
        if self.interval_ms > MAX_TIME_MS {
            return Err("interval is longer than a day".into());
        }
        if self.reverse && self.bidir {
            return Err("reverse and bidir together".into());
        }
        Ok(())
    }

    /// What a sender of this test sends.
    pub(super) fn plan(&self) -> Plan {
        Plan {
            len: self.len as usize,
            time: self.time_ms.map(Duration::from_millis),
            bytes: self.bytes,
            rate: self.rate,
        }
    }

    /// The reporting interval (None: no interval reports).
    pub(super) fn interval(&self) -> Option<Duration> {
        (self.interval_ms > 0).then(|| Duration::from_millis(self.interval_ms))
    }

    /// The omitted start.
    pub(super) fn omit(&self) -> Duration {
        Duration::from_millis(self.omit_ms)
    }

    /// How long a timed test may take at most, from its start to the last figures, before
    /// either end decides the other has stopped (half as long again, and 10 s, for
    /// start-up and slow ends). None for a byte count (the transport's timers decide).
    pub(super) fn deadline(&self) -> Option<Duration> {
        let t = Duration::from_millis(self.time_ms?);
        Some(t + t / 2 + Duration::from_secs(10))
    }
}

/// How much a sender sends.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Plan {
    /// Payload bytes per DATA block.
    pub(super) len: usize,
    /// For this long, or
    pub(super) time: Option<Duration>,
    /// this many payload bytes,
    pub(super) bytes: Option<u64>,
    /// at most this many bits per second (0: no limit).
    pub(super) rate: u64,
}

/// One flowpath's part of an interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathInterval {
    /// The flowpath's id (the same at both ends).
    pub id: u32,
    /// In-order payload bytes attributed to it (see `Meter`).
    pub bytes: u64,
    /// `bytes` × 8 / the interval's seconds.
    pub bits_per_second: f64,
    /// Smoothed RTT at the end of the interval, microseconds.
    pub rtt: Option<u64>,
    /// The sending client's kernel figures for the flowpath's connection (never from the
    /// network: the client fills them in when it is the sender).
    #[serde(skip)]
    pub sender_tcp: Option<SenderTcp>,
}

/// A sender's TCP_INFO figures for one flowpath over one interval (iperf3's Retr and Cwnd).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderTcp {
    /// Segments retransmitted in the interval.
    pub retransmits: u64,
    /// Congestion window at its end, bytes.
    pub snd_cwnd: u64,
}

/// The receiver's figures for one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Seconds since the first DATA arrived, at the interval's start.
    pub start: f64,
    /// ... and at its end.
    pub end: f64,
    /// `end - start`.
    pub seconds: f64,
    /// In-order payload bytes delivered in the interval.
    pub bytes: u64,
    /// `bytes` × 8 / `seconds`.
    pub bits_per_second: f64,
    /// Within --omit (left out of the totals).
    pub omitted: bool,
    /// Per flowpath; their bytes add up to `bytes`.
    pub paths: Vec<PathInterval>,
}

/// One flowpath's part of a direction's totals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PathTotal {
    /// The flowpath's id.
    pub id: u32,
    /// This end's address.
    pub local: String,
    /// The other end's address.
    pub remote: String,
    /// Sender: payload bytes sent on it for the first time; receiver: in-order payload bytes
    /// attributed to it.
    pub bytes: u64,
    /// `bytes` × 8 / the direction's seconds.
    pub bits_per_second: f64,
    /// Sender: bytes it sent again (msock: any re-sent stream byte; plain TCP: retransmitted
    /// segments × MSS).
    pub resent_bytes: u64,
    /// Receiver: stream bytes that arrived on it, duplicates included.
    pub received_bytes: u64,
    /// Sender: TCP segments the kernel retransmitted on its connections (TCP_INFO).
    #[serde(default)]
    pub retransmits: u64,
    /// Smoothed RTT at the end, microseconds.
    pub rtt: Option<u64>,
}

/// One end's totals for one direction (iperf3's `sum_sent` / `sum_received`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Side {
    /// Seconds since the first data, where the totals start (the omitted time).
    pub start: f64,
    /// Seconds since the first data, where they end.
    pub end: f64,
    /// `end - start`.
    pub seconds: f64,
    /// Payload bytes: handed to the transport (sender), or delivered in order (receiver).
    pub bytes: u64,
    /// `bytes` × 8 / `seconds`.
    pub bits_per_second: f64,
    /// Sender: bytes sent again, over all flowpaths.
    pub resent_bytes: u64,
    /// Sender: TCP segments the kernel retransmitted, over all flowpaths (iperf3's
    /// `retransmits`).
    #[serde(default)]
    pub retransmits: u64,
    /// These are the sender's figures.
    pub sender: bool,
    /// Per flowpath; their bytes add up to `bytes` (receiver).
    pub paths: Vec<PathTotal>,
}

/// CPU time one process used during a test.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Cpu {
    /// User CPU seconds.
    pub user: f64,
    /// System CPU seconds.
    pub system: f64,
    /// Wall-clock seconds it was measured over.
    pub wall: f64,
}

impl Cpu {
    /// Percent of one core: (user + system) / wall.
    pub fn percent(&self) -> (f64, f64, f64) {
        let p = |x: f64| {
            if self.wall > 0.0 {
                x / self.wall * 100.0
            } else {
                0.0
            }
        };
        (p(self.user + self.system), p(self.user), p(self.system))
    }
}

/// The listener's final figures (RESULT).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Outcome {
    /// As receiver of the client's data (not with --reverse).
    pub(super) receiver: Option<Side>,
    /// As sender (with --reverse or --bidir).
    pub(super) sender: Option<Side>,
    /// The listener process's CPU time during the test.
    pub(super) cpu: Cpu,
}

/// Bits per second of `bytes` over `seconds` (0 for no time).
pub(super) fn rate(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 * 8.0 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params {
            version: VERSION,
            time_ms: Some(1000),
            bytes: None,
            len: 128 << 10,
            interval_ms: 1000,
            omit_ms: 0,
            reverse: false,
            bidir: false,
            rate: 0,
        }
    }

    #[test]
    fn bad_parameters_are_refused_with_a_reason() {
        assert_eq!(params().check(), Ok(()));
        let bad = [
            Params {
                version: 2,
                ..params()
            },
            Params {
                time_ms: None,
                ..params()
            },
            Params {
                bytes: Some(5),
                ..params()
            },
            Params {
                time_ms: Some(0),
                ..params()
            },
            Params { len: 0, ..params() },
            Params {
                len: MAX_BLOCK + 1,
                ..params()
            },
            Params {
                interval_ms: 1,
                ..params()
            },
            // A peer's interval too long for the clock (it used to panic the meter).
            Params {
                interval_ms: u64::MAX,
                ..params()
            },
            Params {
                interval_ms: MAX_TIME_MS + 1,
                ..params()
            },
            Params {
                omit_ms: 1000,
                ..params()
            },
            Params {
                reverse: true,
                bidir: true,
                ..params()
            },
        ];
        for p in bad {
            assert!(p.check().is_err(), "{p:?}");
        }
        let by_bytes = Params {
            time_ms: None,
            bytes: Some(1),
            ..params()
        };
        assert_eq!(by_bytes.check(), Ok(()));
    }
}
