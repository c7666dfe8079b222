//! The applications at both ends: seeded data written as capacity allows, reads by policy.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use super::super::Session;
use super::Milestones;

/// How an application consumes the peer's stream.
#[derive(Clone, Copy, Debug)]
pub enum ReadPolicy {
    /// Reads everything available whenever anything is.
    Greedy,
    /// Reads at most `chunk` bytes, then waits `every` before reading again.
    Slow {
        /// Bytes per read.
        chunk: usize,
        /// Pause between reads.
        every: Duration,
    },
}

/// What one application does.
#[derive(Clone, Debug)]
pub struct AppSpec {
    /// Bytes of seeded random data to write.
    pub send_len: usize,
    /// Virtual time at which it starts writing.
    pub write_start: Duration,
    /// Whether it calls `close_write` once everything is written.
    pub close: bool,
    /// How it reads.
    pub read: ReadPolicy,
}

impl AppSpec {
    /// Writes `n` bytes from the start, closes, reads greedily.
    pub fn sending(n: usize) -> AppSpec {
        AppSpec {
            send_len: n,
            write_start: Duration::ZERO,
            close: true,
            read: ReadPolicy::Greedy,
        }
    }

    /// Same, but reading `chunk` bytes every `every_ms` milliseconds.
    pub fn slow_reader(self, chunk: usize, every_ms: u64) -> AppSpec {
        AppSpec {
            read: ReadPolicy::Slow {
                chunk,
                every: Duration::from_millis(every_ms),
            },
            ..self
        }
    }

    /// Same, but never closing its direction.
    pub fn never_closing(self) -> AppSpec {
        AppSpec {
            close: false,
            ..self
        }
    }
}

/// One application: what it must write, what it has read.
#[derive(Debug)]
pub(super) struct App {
    pub(super) spec: AppSpec,
    pub(super) data: Vec<u8>,
    pub(super) written: usize,
    pub(super) received: Vec<u8>,
    pub(super) next_read: Duration,
}

impl App {
    pub(super) fn new(spec: AppSpec, seed: u64) -> App {
        let mut data = vec![0u8; spec.send_len];
        StdRng::seed_from_u64(seed).fill_bytes(&mut data);
        App {
            spec,
            data,
            written: 0,
            received: Vec::new(),
            next_read: Duration::ZERO,
        }
    }

    /// Writes as much as the session takes, closes when done, reads per policy.
    pub(super) fn drive(&mut self, now: Duration, s: &mut Session, m: &mut Milestones) {
        if now >= self.spec.write_start {
            while self.written < self.data.len() {
                let n = s.write(&self.data[self.written..]);
                if n == 0 {
                    break;
                }
                self.written += n;
            }
            if self.written == self.data.len() && self.spec.close && m.app_closed_at.is_none() {
                s.close_write();
                m.app_closed_at = Some(now);
            }
        }
        match self.spec.read {
            ReadPolicy::Greedy => {
                while let Some(c) = s.read_chunk(usize::MAX) {
                    self.received.extend_from_slice(&c);
                }
            }
            ReadPolicy::Slow { chunk, every } => {
                if now >= self.next_read {
                    if let Some(c) = s.read_chunk(chunk) {
                        self.received.extend_from_slice(&c);
                        self.next_read = now + every;
                    }
                }
            }
        }
    }

    /// The next time this application wants to act by itself.
    pub(super) fn next_tick(&self, now: Duration, s: &Session) -> Option<Duration> {
        let write = (self.written < self.data.len() && self.spec.write_start > now)
            .then_some(self.spec.write_start);
        let read = match self.spec.read {
            ReadPolicy::Slow { .. } if s.readable() > 0 => Some(self.next_read),
            _ => None,
        };
        [write, read].into_iter().flatten().min()
    }
}
