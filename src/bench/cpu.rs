//! CPU time of this process (getrusage), as iperf3 measures it.

use std::time::Instant;

use super::model::Cpu;

/// A starting point for measuring CPU time.
pub struct CpuClock {
    at: Instant,
    user: f64,
    system: f64,
}

impl CpuClock {
    /// Starts measuring now.
    pub fn start() -> Self {
        let (user, system) = usage();
        CpuClock {
            at: Instant::now(),
            user,
            system,
        }
    }

    /// CPU time used since the start, and the wall time it was used in.
    pub fn elapsed(&self) -> Cpu {
        let (user, system) = usage();
        Cpu {
            user: user - self.user,
            system: system - self.system,
            wall: self.at.elapsed().as_secs_f64(),
        }
    }
}

/// User and system CPU seconds of the whole process so far (zeros where unknown).
fn usage() -> (f64, f64) {
    #[cfg(unix)]
    {
        // SAFETY: rusage is plain old data, filled in by getrusage.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: a valid pointer to a rusage.
        if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
            return (0.0, 0.0);
        }
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        (secs(ru.ru_utime), secs(ru.ru_stime))
    }
    #[cfg(not(unix))]
    {
        (0.0, 0.0)
    }
}
