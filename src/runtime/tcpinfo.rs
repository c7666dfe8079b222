//! The kernel's view of one TCP connection (TCP_INFO): its retransmissions, congestion window
//! and RTT, for statistics (`msock bench`'s Retr and Cwnd columns).

use std::time::Duration;

use tokio::net::TcpStream;

/// What TCP_INFO says about a connection at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelTcp {
    /// Segments retransmitted over the connection's life (tcpi_total_retrans).
    pub retransmits: u64,
    /// Congestion window in bytes (tcpi_snd_cwnd × tcpi_snd_mss).
    pub cwnd_bytes: u64,
    /// Sender's maximum segment size in bytes.
    pub mss: u64,
    /// Smoothed RTT.
    pub rtt: Option<Duration>,
    /// Lowest RTT seen.
    pub min_rtt: Option<Duration>,
}

/// TCP_INFO of `s` (None where the system does not tell).
#[cfg(target_os = "linux")]
pub fn read(s: &TcpStream) -> Option<KernelTcp> {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain old data; getsockopt writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a valid socket descriptor, a buffer of `len` bytes and its length.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if r != 0 {
        return None;
    }
    let us = |x: u32| (x > 0).then(|| Duration::from_micros(x as u64));
    Some(KernelTcp {
        retransmits: info.tcpi_total_retrans as u64,
        cwnd_bytes: info.tcpi_snd_cwnd as u64 * info.tcpi_snd_mss as u64,
        mss: info.tcpi_snd_mss as u64,
        rtt: us(info.tcpi_rtt),
        min_rtt: us(info.tcpi_min_rtt),
    })
}

/// How many of the last bytes written to `s` the peer lacks when the connection is given up:
/// those the kernel never sent (SIOCOUTQNSD; e.g. written after the local address went
/// away), or, while the connection is recovering from a loss (TCP_INFO's congestion state
/// Disorder, Recovery or Loss: the peer's stream waits at our first unacknowledged byte),
/// every unacknowledged one (SIOCOUTQ). 0 where the system does not tell.
#[cfg(target_os = "linux")]
pub fn undelivered_tail(s: &TcpStream) -> u64 {
    use std::os::fd::AsRawFd;
    let fd = s.as_raw_fd();
    // SAFETY: tcp_info is plain old data; getsockopt writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: a valid socket descriptor and a buffer of `len` bytes and its length.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    // tcp_ca_state: Open 0, Disorder 1, CWR 2, Recovery 3, Loss 4.
    let recovering = r == 0 && matches!(info.tcpi_ca_state, 1 | 3 | 4);
    let request = if recovering {
        libc::TIOCOUTQ // SIOCOUTQ on a socket
    } else {
        libc::SIOCOUTQNSD
    };
    let mut n: libc::c_int = 0;
    // SAFETY: a valid socket descriptor and a pointer to an int, which this ioctl writes.
    if unsafe { libc::ioctl(fd, request as _, &mut n as *mut libc::c_int) } != 0 {
        return 0;
    }
    u64::try_from(n).unwrap_or(0)
}

/// How many of the last bytes written to `s` the peer lacks (0: the system does not tell).
#[cfg(not(target_os = "linux"))]
pub fn undelivered_tail(_s: &TcpStream) -> u64 {
    0
}

/// TCP_INFO of `s` (None where the system does not tell).
#[cfg(not(target_os = "linux"))]
pub fn read(_s: &TcpStream) -> Option<KernelTcp> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_loopback_connection_has_a_window() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let _s = l.accept().await.unwrap();
        if cfg!(target_os = "linux") {
            let k = read(&c).unwrap();
            assert!(k.cwnd_bytes > 0 && k.mss > 0, "{k:?}");
        }
    }
}
