//! The plain TCP leg of `msock bench --compare-tcp` and of the built-in run: one TCP
//! connection that starts with `BENCH_TCP_MAGIC` (so that a listener serves it to its bench
//! server) and then carries the same bench protocol as a session, moved by [`pump`].

use std::future::Future;
use std::io;
use std::net::{IpAddr, Shutdown};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use bytes::Buf;
use socket2::SockRef;
use tokio::net::TcpStream;

use super::wire::{self, Kind};
use super::{Ends, Error};
use crate::proto::{PathId, PathStats};
use crate::runtime::app::{AppSource, SourceError, CHUNK};
use crate::runtime::client::connect_any;
use crate::runtime::conn::apply_congestion;
use crate::runtime::tcpinfo;
use crate::runtime::{resolve, DriveError, Family, Outcome, PathReport, Snapshot, Totals};

/// What a plain TCP connection from `msock bench --compare-tcp` sends first, so that a listener
/// serves it to its benchmark server rather than as plain TCP to stdin/stdout. It differs from
/// the msock preamble in its third byte.
pub(super) const BENCH_TCP_MAGIC: &[u8; 8] = b"MSBENCH\x01";

/// Opens the plain TCP connection to a listener's bench server at `dest` (HOST:PORT, an
/// address of `family`), from `source` if given, each connection attempt taking at most
/// `wait`.
pub async fn connect(
    dest: &str,
    family: Family,
    source: Option<IpAddr>,
    wait: Duration,
) -> Result<TcpStream, Error> {
    let addrs = resolve(dest, family).await?;
    let source = source.map(|ip| std::net::SocketAddr::new(ip, 0));
    let s = connect_any(&addrs, source, None, Some(wait)).await?;
    apply_congestion(&s);
    let mut magic = &BENCH_TCP_MAGIC[..];
    while !magic.is_empty() {
        s.writable().await.map_err(Error::Tcp)?;
        match s.try_write(magic) {
            Ok(n) => magic = &magic[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(Error::Tcp(e)),
        }
    }
    Ok(s)
}

/// A future that ends the pump when it completes (Ctrl-C).
pub(crate) type Interrupt = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Moves the bench protocol over `stream` until both directions have ended: the source's
/// bytes out, received bytes into the sink, answering snapshot requests on the probe of
/// `ends`. Fails when nothing moved either way for `stall` (the peer vanished or stopped
/// reading).
pub async fn pump(
    stream: TcpStream,
    ends: Ends,
    stall: Duration,
    interrupt: Option<Interrupt>,
) -> Result<Outcome, DriveError> {
    let Ends {
        mut source,
        mut sink,
        mut probe,
    } = ends;
    // Shared by the futures below (atomics only because the whole future must be Send).
    let written = AtomicU64::new(0);
    let read = AtomicU64::new(0);
    let began = Instant::now();
    // When something last moved, in nanoseconds since `began`.
    let progress = AtomicU64::new(0);
    let moved = || progress.store(began.elapsed().as_nanos() as u64, Relaxed);
    let s = &stream;
    let lost = |e: io::Error| DriveError::PathsLost(format!("plain TCP connection: {e}"));
    let writer = async {
        loop {
            let next = std::future::poll_fn(|cx| source.poll_chunk(cx)).await;
            let mut chunk = match next {
                Ok(Some(b)) => b,
                Ok(None) => {
                    let _ = SockRef::from(s).shutdown(Shutdown::Write);
                    return Ok(());
                }
                Err(e) => {
                    let why = match e {
                        SourceError::Abort(why) => why,
                        SourceError::Io(e) => e.to_string(),
                    };
                    // Tell the peer why, as far as the socket takes it at once.
                    let _ = s.try_write(&wire::message(Kind::Error, why.as_bytes()));
                    let _ = SockRef::from(s).shutdown(Shutdown::Both);
                    return Err(DriveError::Aborted(why));
                }
            };
            while !chunk.is_empty() {
                s.writable().await.map_err(lost)?;
                match s.try_write(&chunk) {
                    Ok(n) => {
                        chunk.advance(n);
                        written.fetch_add(n as u64, Relaxed);
                        moved();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(lost(e)),
                }
            }
        }
    };
    let reader = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            s.readable().await.map_err(lost)?;
            match s.try_read(&mut buf) {
                Ok(0) => {
                    // Tells the test's logic that nothing more will come.
                    drop(sink);
                    return Ok::<(), DriveError>(());
                }
                Ok(n) => {
                    sink.feed(&buf[..n]);
                    read.fetch_add(n as u64, Relaxed);
                    moved();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(lost(e)),
            }
        }
    };
    let watch = async {
        let tick = (stall / 4).max(Duration::from_millis(10));
        loop {
            tokio::select! {
                Some(reply) = probe.recv() => {
                    let _ = reply.send(snapshot(s, written.load(Relaxed), read.load(Relaxed)));
                }
                _ = tokio::time::sleep(tick) => {
                    let last = Duration::from_nanos(progress.load(Relaxed));
                    if began.elapsed().saturating_sub(last) >= stall {
                        return Err(DriveError::PathsLost(format!(
                            "nothing moved on the plain TCP connection for {}",
                            humantime::format_duration(stall)
                        )));
                    }
                }
            }
        }
    };
    let interrupted = async {
        match interrupt {
            Some(i) => i.await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        r = async { tokio::try_join!(reader, writer) } => r.map(|_| Outcome::Finished),
        r = watch => r,
        _ = interrupted => Ok(Outcome::Interrupted),
    }
}

/// The connection as one flowpath, for the bench's statistics.
fn snapshot(s: &TcpStream, written: u64, read: u64) -> Snapshot {
    let kernel = tcpinfo::read(s);
    let k = kernel.unwrap_or_default();
    let addr = |a: io::Result<std::net::SocketAddr>| {
        a.unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)))
    };
    let mut stats = PathStats::default();
    stats.bytes_sent = written;
    stats.bytes_resent = k.retransmits * k.mss;
    stats.bytes_received = read;
    stats.bytes_new = read;
    stats.srtt = k.rtt;
    stats.min_rtt = k.min_rtt;
    Snapshot {
        paths: vec![PathReport {
            id: PathId(0),
            local: addr(s.local_addr()),
            peer: addr(s.peer_addr()),
            iface: None,
            up: true,
            kernel,
            stats,
        }],
        totals: Totals {
            sent: written,
            received: read,
        },
    }
}
