//! A link with a one-way delay, for a kernel without `netem`: a bridge inside a middle
//! namespace that reads every frame arriving on one interface (an `AF_PACKET` socket) and
//! sends it out of the other one `delay` later, in both directions. A `tbf` on each
//! interface's egress (see `Lab::shape`) then sets the rate, and its queue is the link's
//! bottleneck queue, behind the delay like a real link's.
//!
//! Frames must be at most the MTU and carry full checksums: the lab turns the offloads of the
//! link's interfaces off (`ethtool -K`) before starting a bridge.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// `PACKET_IGNORE_OUTGOING` (linux/if_packet.h): the socket does not see what it sends.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// A running bridge; dropping it stops its threads (before the namespace goes).
pub struct DelayBridge {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl DelayBridge {
    /// Bridges interfaces `a` and `b` of the network namespace named `ns` (under
    /// /run/netns), delaying every frame by `delay` in each direction.
    pub fn start(ns: &str, a: &str, b: &str, delay: Duration) -> DelayBridge {
        let (ns, a, b) = (ns.to_string(), a.to_string(), b.to_string());
        // Sockets belong to the namespace of the thread that creates them.
        let (fa, fb) = thread::spawn(move || {
            let f = File::open(format!("/run/netns/{ns}")).expect("open the namespace");
            // SAFETY: setns on a valid namespace descriptor changes only this thread.
            let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
            (packet_socket(&a), packet_socket(&b))
        })
        .join()
        .expect("bridge setup");
        let (fa, fb) = (Arc::new(fa), Arc::new(fb));
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (from, to) in [(fa.clone(), fb.clone()), (fb, fa)] {
            let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
            let stop2 = stop.clone();
            threads.push(thread::spawn(move || {
                read_frames(&from, &tx, &stop2, delay)
            }));
            threads.push(thread::spawn(move || send_frames(&to, &rx)));
        }
        DelayBridge { stop, threads }
    }
}

impl Drop for DelayBridge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Reads frames until stopped, each queued with the time it is due out.
fn read_frames(
    fd: &OwnedFd,
    tx: &mpsc::Sender<(Instant, Vec<u8>)>,
    stop: &AtomicBool,
    delay: Duration,
) {
    let mut buf = vec![0u8; 65536];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: the buffer is valid for its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n <= 0 {
            continue; // the receive timeout (to look at `stop`), or an interrupted call
        }
        let due = Instant::now() + delay;
        if tx.send((due, buf[..n as usize].to_vec())).is_err() {
            return;
        }
    }
}

/// Sends each frame when it is due (the delay is constant, so they come in due order);
/// ends when the reader does. A full egress queue drops the frame, like a link's.
fn send_frames(fd: &OwnedFd, rx: &mpsc::Receiver<(Instant, Vec<u8>)>) {
    while let Ok((due, frame)) = rx.recv() {
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
        // SAFETY: the frame is valid for its length.
        unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    }
}

/// A raw socket bound to interface `name` that sees every frame arriving there.
fn packet_socket(name: &str) -> OwnedFd {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2) call; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto as libc::c_int) };
    assert!(
        raw >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: a new descriptor that nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let cname = CString::new(name).unwrap();
    // SAFETY: a valid NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    assert!(index != 0, "no interface {name}");
    // SAFETY: sockaddr_ll is plain data; all zeroes is a valid start.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = index as i32;
    // SAFETY: sll is a valid sockaddr_ll of the given size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(rc, 0, "bind {name}: {}", std::io::Error::last_os_error());
    let set = |level, opt, val: &[u8]| {
        // SAFETY: val is valid for its length.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                level,
                opt,
                val.as_ptr().cast(),
                val.len() as u32,
            )
        }
    };
    let one = 1i32.to_ne_bytes();
    let big = (8i32 << 20).to_ne_bytes();
    set(libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &one);
    set(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &big);
    set(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &big);
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    // SAFETY: timeval is plain data.
    let tv_bytes = unsafe {
        std::slice::from_raw_parts(
            (&tv as *const libc::timeval).cast::<u8>(),
            std::mem::size_of::<libc::timeval>(),
        )
    };
    set(libc::SOL_SOCKET, libc::SO_RCVTIMEO, tv_bytes);
    fd
}
