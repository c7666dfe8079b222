//! Sealing and opening records off the driver's thread. An encrypted session's driver would
//! otherwise copy, encrypt, write, read and decrypt every byte on one core; with a helper
//! thread the AEAD work of one record overlaps the socket work of the next, so that both cores
//! of a small machine carry a bulk transfer.
//!
//! Jobs of every connection go to one thread, in order, and come back in the same order, so
//! that records keep their sequence per connection. A connection is named by its serial (not
//! its path id, which a replacement connection reuses), and results for a connection that is
//! gone are dropped: its bytes are lost with it, as bytes in its socket buffer would be.
//! Small records with nothing of their connection in flight are done in place: an interactive
//! line gains nothing from a thread hop.

use std::collections::{HashMap, VecDeque};
use std::sync::{mpsc, Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};

use crate::proto::record::{OpenJob, RecordError, SealJob};

/// Records smaller than this are sealed or opened in place when nothing of their connection
/// is in flight.
pub(super) const OFFLOAD_MIN: usize = 16 * 1024;
/// Most records of one connection and direction with the helper thread at once: enough to
/// keep it busy while the driver writes or reads, few enough to bound the memory.
pub(super) const MAX_IN_FLIGHT: usize = 3;

/// Work for the helper thread.
enum Job {
    /// Seal `job`; its record goes out after `prefix` (bytes queued in clear before it).
    Seal {
        conn: u64,
        prefix: Option<Bytes>,
        job: Option<SealJob>,
    },
    /// Open a received record.
    Open { conn: u64, job: OpenJob },
}

/// A finished job.
pub(super) enum Done {
    /// `bytes` (a clear prefix and a sealed record) go on connection `conn`'s wire next.
    Sealed { conn: u64, bytes: Vec<Bytes> },
    /// The plaintext of connection `conn`'s next record, or why it failed.
    Opened {
        conn: u64,
        plain: Result<BytesMut, RecordError>,
    },
}

/// The helper thread, started on the first job worth sending it.
struct Worker {
    jobs: mpsc::Sender<Job>,
    done: mpsc::Receiver<Done>,
    /// Woken by the thread after each finished job.
    waker: Arc<Mutex<Option<Waker>>>,
}

/// The driver's end of the helper thread, with the count of jobs in flight per connection.
#[derive(Default)]
pub(super) struct Crypto {
    worker: Option<Worker>,
    /// (seal jobs, open jobs) in flight per connection serial; no entry for none.
    in_flight: HashMap<u64, (usize, usize)>,
    /// Wire bytes (clear prefix and sealed record) of the seal jobs in flight per connection
    /// serial: bytes the session counts as sent that are not on the connection yet.
    sealing_bytes: HashMap<u64, u64>,
    /// Jobs done here because the thread was gone, not yet taken.
    pending_here: VecDeque<Done>,
}

impl Crypto {
    /// Seal jobs of connection `conn` in flight.
    pub(super) fn seals(&self, conn: u64) -> usize {
        self.in_flight.get(&conn).map_or(0, |c| c.0)
    }

    /// Open jobs of connection `conn` in flight.
    pub(super) fn opens(&self, conn: u64) -> usize {
        self.in_flight.get(&conn).map_or(0, |c| c.1)
    }

    /// Wire bytes of connection `conn`'s seal jobs in flight.
    pub(super) fn sealing_bytes(&self, conn: u64) -> u64 {
        self.sealing_bytes.get(&conn).copied().unwrap_or(0)
    }

    /// True while any seal job is in flight (its bytes are not on any connection yet).
    pub(super) fn sealing(&self) -> bool {
        self.in_flight.values().any(|c| c.0 > 0)
    }

    /// Hands out `job` to be sealed, to go out after `prefix`; or seals it here (returning the
    /// bytes to queue now) when it is small and nothing of `conn` is in flight.
    pub(super) fn seal(
        &mut self,
        conn: u64,
        prefix: Option<Bytes>,
        job: Option<SealJob>,
    ) -> Option<Vec<Bytes>> {
        let small = job.as_ref().is_none_or(|j| j.len() < OFFLOAD_MIN);
        if small && self.seals(conn) == 0 {
            return Some(prefix.into_iter().chain(job.map(SealJob::run)).collect());
        }
        self.in_flight.entry(conn).or_default().0 += 1;
        let wire =
            prefix.as_ref().map_or(0, Bytes::len) + job.as_ref().map_or(0, SealJob::wire_len);
        *self.sealing_bytes.entry(conn).or_default() += wire as u64;
        self.submit(Job::Seal { conn, prefix, job });
        None
    }

    /// Hands out `job` to be opened; or opens it here (returning the plaintext) when it is
    /// small and nothing of `conn` is in flight.
    pub(super) fn open(
        &mut self,
        conn: u64,
        job: OpenJob,
    ) -> Option<Result<BytesMut, RecordError>> {
        if job.len() < OFFLOAD_MIN && self.opens(conn) == 0 {
            return Some(job.run());
        }
        self.in_flight.entry(conn).or_default().1 += 1;
        self.submit(Job::Open { conn, job });
        None
    }

    fn submit(&mut self, job: Job) {
        if self.worker.is_none() {
            self.worker = spawn();
        }
        let Some(w) = self.worker.as_ref() else {
            // No thread could be started (a process or cgroup limit on threads): do the job
            // here, slower but without losing the session.
            self.pending_here.push_back(run(job));
            return;
        };
        if let Err(mpsc::SendError(job)) = w.jobs.send(job) {
            // The thread is gone (only a bug would make it panic): do the job here rather
            // than lose bytes; a new thread starts with the next one.
            self.worker = None;
            self.pending_here.push_back(run(job));
        }
    }

    /// The next finished job, in order; Pending (with a wake-up due) if none.
    pub(super) fn poll_done(&mut self, cx: &mut Context<'_>) -> Poll<Done> {
        if let Some(d) = self.take_here() {
            return Poll::Ready(self.account(d));
        }
        let Some(w) = self.worker.as_ref() else {
            return Poll::Pending;
        };
        let mut r = w.done.try_recv();
        if r.is_err() {
            *w.waker.lock().expect("crypto waker lock") = Some(cx.waker().clone());
            // A job may have finished before the waker was in place.
            r = w.done.try_recv();
        }
        match r {
            Ok(d) => Poll::Ready(self.account(d)),
            Err(mpsc::TryRecvError::Empty) => Poll::Pending,
            Err(mpsc::TryRecvError::Disconnected) => {
                // The thread died with jobs in flight (a bug): their bytes are lost, as with
                // a broken connection; the session's timers take it from there.
                self.worker = None;
                self.in_flight.clear();
                self.sealing_bytes.clear();
                Poll::Pending
            }
        }
    }

    /// Waits for every job in flight and returns them, in order (for the session's end, when
    /// what was sealed must still go out).
    pub(super) fn settle(&mut self) -> Vec<Done> {
        let mut out = Vec::new();
        while let Some(d) = self.take_here() {
            out.push(self.account(d));
        }
        while self.in_flight.values().any(|c| c.0 + c.1 > 0) {
            let Some(Ok(d)) = self.worker.as_ref().map(|w| w.done.recv()) else {
                self.in_flight.clear();
                self.sealing_bytes.clear();
                break;
            };
            out.push(self.account(d));
        }
        out
    }

    fn take_here(&mut self) -> Option<Done> {
        self.pending_here.pop_front()
    }

    fn account(&mut self, d: Done) -> Done {
        let (conn, seal) = match &d {
            Done::Sealed { conn, bytes } => {
                let wire: u64 = bytes.iter().map(|b| b.len() as u64).sum();
                if let Some(n) = self.sealing_bytes.get_mut(conn) {
                    *n = n.saturating_sub(wire);
                    if *n == 0 {
                        self.sealing_bytes.remove(conn);
                    }
                }
                (*conn, true)
            }
            Done::Opened { conn, .. } => (*conn, false),
        };
        if let Some(c) = self.in_flight.get_mut(&conn) {
            let n = if seal { &mut c.0 } else { &mut c.1 };
            *n = n.saturating_sub(1);
            if *c == (0, 0) {
                self.in_flight.remove(&conn);
            }
        }
        d
    }
}

/// Runs one job.
fn run(job: Job) -> Done {
    match job {
        Job::Seal { conn, prefix, job } => Done::Sealed {
            conn,
            bytes: prefix.into_iter().chain(job.map(SealJob::run)).collect(),
        },
        Job::Open { conn, job } => Done::Opened {
            conn,
            plain: job.run(),
        },
    }
}

/// Starts the helper thread (None if the system refuses one); it ends when the driver's end
/// is dropped.
fn spawn() -> Option<Worker> {
    let (jobs, jobs_rx) = mpsc::channel::<Job>();
    let (done_tx, done) = mpsc::channel();
    let waker: Arc<Mutex<Option<Waker>>> = Arc::default();
    let w2 = waker.clone();
    std::thread::Builder::new()
        .name("msock-crypto".into())
        .spawn(move || {
            while let Ok(job) = jobs_rx.recv() {
                if done_tx.send(run(job)).is_err() {
                    return;
                }
                if let Some(w) = w2.lock().expect("crypto waker lock").as_ref() {
                    w.wake_by_ref();
                }
            }
        })
        .inspect_err(|e| tracing::warn!("cannot start a crypto thread ({e}): sealing inline"))
        .ok()?;
    Some(Worker { jobs, done, waker })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::record::Sealer;

    /// What a lost connection's resume re-sends first counts the records still being sealed:
    /// their bytes are in flight for the session but on no wire yet.
    #[test]
    fn seal_jobs_in_flight_count_their_wire_bytes_until_done() {
        let mut c = Crypto::default();
        let mut s = Sealer::new(&[9; 32]);
        let job = s.seal_later(&mut Bytes::from(vec![1u8; 64 * 1024]));
        let wire = job.wire_len() as u64;
        let prefix = Bytes::from_static(b"clear");
        assert!(
            c.seal(7, Some(prefix), Some(job)).is_none(),
            "a large job goes off"
        );
        assert_eq!(c.sealing_bytes(7), wire + 5);
        assert_eq!(c.sealing_bytes(8), 0);
        let done = c.settle();
        assert_eq!(done.len(), 1);
        let Done::Sealed { bytes, .. } = &done[0] else {
            panic!("a seal job comes back sealed");
        };
        assert_eq!(bytes.iter().map(|b| b.len() as u64).sum::<u64>(), wire + 5);
        assert_eq!(c.sealing_bytes(7), 0);
    }
}
