//! Process-wide helpers that talk to the operating system: resource limits and memory use.

/// This process's peak resident memory in KiB, where the OS tells it.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Raises the open-files limit to the hard limit (a relay or a listener with many sessions
/// holds a few descriptors per flowpath); best effort.
pub fn raise_nofile() {
    #[cfg(unix)]
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// `base + d` as a timer deadline; a `d` so long that the sum overflows the clock (a
/// duration meant as "never") gives a deadline about thirty years away instead of a panic.
pub(crate) fn deadline_after(
    base: std::time::Instant,
    d: std::time::Duration,
) -> tokio::time::Instant {
    const FAR: std::time::Duration = std::time::Duration::from_secs(30 * 365 * 86_400);
    let at = base
        .checked_add(d)
        .or_else(|| base.checked_add(FAR))
        .unwrap_or(base);
    tokio::time::Instant::from_std(at)
}

/// Hands freed heap memory back to the operating system, where the allocator keeps it
/// otherwise (glibc keeps what a session's buffers used; a listener that served a big or
/// hostile session would stay that large). Called when a session ends; best effort.
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[test]
    fn deadlines_never_overflow() {
        let now = Instant::now();
        let far = super::deadline_after(now, Duration::MAX);
        assert!(far.into_std() > now + Duration::from_secs(365 * 86_400));
        let soon = super::deadline_after(now, Duration::from_secs(3));
        assert_eq!(soon.into_std(), now + Duration::from_secs(3));
    }
}
