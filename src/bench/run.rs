//! What a client learns from one test: both ends' figures for each direction, the interval
//! figures, CPU time, and its own flowpaths.

use std::time::SystemTime;

use super::model::{Cpu, Interval, Params, Side};
use crate::runtime::PathReport;

/// One direction's totals from both ends.
#[derive(Debug, Clone)]
pub struct Direction {
    /// The sending end's figures.
    pub sender: Side,
    /// The receiving end's figures (the ones that count).
    pub receiver: Side,
}

/// A finished test, seen from the client.
#[derive(Debug, Clone)]
pub struct Run {
    /// What was asked for.
    pub params: Params,
    /// "msock" or "TCP".
    pub protocol: &'static str,
    /// Where to.
    pub dest: String,
    /// When it started.
    pub started: SystemTime,
    /// Client → listener intervals (the listener's figures as receiver).
    pub intervals: Vec<Interval>,
    /// Listener → client intervals (ours).
    pub intervals_reverse: Vec<Interval>,
    /// Client → listener totals (not with --reverse).
    pub forward: Option<Direction>,
    /// Listener → client totals (with --reverse or --bidir).
    pub reverse: Option<Direction>,
    /// Our CPU time.
    pub cpu_local: Cpu,
    /// The listener's CPU time.
    pub cpu_remote: Cpu,
    /// Our flowpaths at the end.
    pub paths: Vec<PathReport>,
}

impl Run {
    /// The direction that iperf3 calls the test's (listener → client with --reverse).
    pub fn main(&self) -> Option<&Direction> {
        if self.params.reverse {
            self.reverse.as_ref()
        } else {
            self.forward.as_ref()
        }
    }

    /// The second direction of a --bidir test (listener → client).
    pub fn bidir_reverse(&self) -> Option<&Direction> {
        if self.params.bidir {
            self.reverse.as_ref()
        } else {
            None
        }
    }

    /// The receiver's goodput of the main direction, bits per second.
    pub fn goodput(&self) -> f64 {
        self.main().map_or(0.0, |d| d.receiver.bits_per_second)
    }

    /// The interface our flowpath `id` is bound to, if any.
    pub fn iface(&self, id: u32) -> Option<&str> {
        self.paths
            .iter()
            .find(|p| p.id.0 == id)
            .and_then(|p| p.iface.as_deref())
    }
}
