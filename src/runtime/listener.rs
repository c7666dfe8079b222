//! Server side, first contact: accept connections, tell msock from plain TCP and from the raw
//! TCP services registered by their first bytes ([`Magic`]), read the first frame, and route
//! session opens to the listener's owner and flowpath attaches to the session they name.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify, OwnedSemaphorePermit, Semaphore};

use super::conn::{bind_listener, ConnError, FlowConn};
use super::driver::AttachRequest;
use super::netwatch::{self, AddrBook};
use crate::proto::deframer::{match_preamble, PREAMBLE_LEN};
use crate::proto::{DeframeError, Deframer, ErrorCode, Frame, PreambleMatch, Service};

/// The classifier hook: a service that takes raw TCP connections (not msock sessions)
/// registers the bytes its clients send first, and the listener hands it every connection
/// that begins with them (consumed). A magic must differ from the msock preamble within its
/// first [`PREAMBLE_LEN`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Magic {
    /// The first bytes of such a connection.
    pub prefix: &'static [u8],
    /// The service they ask for.
    pub service: Service,
}

/// How the listener treats connections that do not start with the msock preamble.
#[derive(Debug, Clone)]
pub struct DetectPolicy {
    /// Serve non-msock clients as plain TCP (else refuse them).
    pub(crate) allow_plain: bool,
    /// Raw TCP services, told apart by their first bytes.
    pub(crate) magics: Arc<[Magic]>,
    /// How long to wait for a client's first bytes before deciding it is plain TCP (at least
    /// 2 s when plain TCP is refused).
    pub wait: Duration,
    /// How long an msock client may take to send its first frame.
    pub handshake_timeout: Duration,
    /// Most connections classified at once (not yet a session, an attach or a refusal); one
    /// beyond is told the listener is busy and closed, so that a flood of silent connections
    /// costs a bounded amount of memory.
    pub max_pending: usize,
}

/// Without --allow-plain, how long a silent client is waited for at least before it is
/// refused as plain TCP.
const REFUSE_SILENT_AFTER: Duration = Duration::from_secs(2);

/// What a plain TCP client is told (one line) when the listener does not serve plain TCP.
pub const PLAIN_REFUSED: &str =
    "msock: this listener speaks msock only; plain TCP clients need `msock listen --allow-plain`\n";

/// The connections a listener is classifying now, bounded by [`DetectPolicy::max_pending`]
/// (shared by every socket of one listener).
///
/// **Relayed flowpaths** (connections the listener dialed back to a relay for a client) all
/// come from a relay's address, whatever client they carry, so they are not counted as one
/// source: they share their own book, three quarters of the places. A relay concentrates many
/// clients (each bounded at the relay by its own address), and when a relay dies or a network
/// changes, every session behind it resumes at once. The book is one for all relays, not one
/// per relay address: a relay chooses where DIAL_AT sends the listener, so a hostile relay
/// could otherwise multiply its share. The last quarter is never relayed: no relay, nor a
/// client behind one, can take the places direct clients need. A relayed flowpath beyond
/// its share waits for a place (up to the handshake timeout; at most as many waiting as
/// there are places) instead of being refused busy: an honest resume gives its place back
/// as soon as its first frame is read, so a burst drains in a few round trips.
#[derive(Clone)]
pub(crate) struct Pending {
    /// One permit per connection in its handshake.
    all: Arc<Semaphore>,
    /// Connections in their handshake per source.
    per_source: Arc<Mutex<HashMap<Source, usize>>>,
    /// Most connections in their handshake from one address: half of all, so that no one
    /// source can fill the listener with handshakes it never completes.
    max_per_source: usize,
    /// Most relayed flowpaths in their handshake: all but a quarter of the places.
    max_relayed: usize,
    /// Relayed flowpaths waiting for a place: one permit each.
    waiting: Arc<Semaphore>,
    /// Told whenever a place is given back.
    freed: Arc<Notify>,
}

/// Whom a connection in its handshake is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Source {
    /// A client that connected to us, by its address.
    Addr(IpAddr),
    /// A flowpath a relay spliced (we dialed the relay back), whichever relay.
    Relayed,
}

impl Pending {
    /// Room for `max` connections at once, half of them from any one address, three
    /// quarters relayed.
    pub(crate) fn new(max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Pending {
            all: Arc::new(Semaphore::new(max)),
            per_source: Arc::default(),
            max_per_source: (max / 2).max(1),
            max_relayed: (max - max / 4).max(1),
            waiting: Arc::new(Semaphore::new(max)),
            freed: Arc::default(),
        }
    }

    /// A place for a connection from `source`, or why there is none.
    fn take(&self, source: Source) -> Result<PendingPlace, String> {
        let permit = self
            .all
            .clone()
            .try_acquire_owned()
            .map_err(|_| "connections waiting for their handshake".to_owned())?;
        let mut map = self.per_source.lock().expect("pending lock");
        let n = map.entry(source).or_insert(0);
        let max = match source {
            Source::Addr(_) => self.max_per_source,
            Source::Relayed => self.max_relayed,
        };
        if *n >= max {
            return Err(match source {
                Source::Addr(ip) => {
                    format!("{max} connections from {ip} waiting for their handshake")
                }
                Source::Relayed => format!("{max} relayed flowpaths waiting for their handshake"),
            });
        }
        *n += 1;
        Ok(PendingPlace {
            permit: Some(permit),
            source,
            per_source: self.per_source.clone(),
            freed: self.freed.clone(),
        })
    }

    /// A place for a relayed flowpath, waiting up to `wait` for one to be given back if
    /// there is none now (unless as many are waiting as there are places).
    async fn take_relayed(&self, wait: Duration) -> Result<PendingPlace, String> {
        let why = match self.take(Source::Relayed) {
            Ok(place) => return Ok(place),
            Err(why) => why,
        };
        let Ok(_turn) = self.waiting.clone().try_acquire_owned() else {
            return Err(why);
        };
        let waited = tokio::time::timeout(wait, async {
            loop {
                let freed = self.freed.notified();
                tokio::pin!(freed);
                // Registered before trying, so that a place given back in between wakes us.
                freed.as_mut().enable();
                if let Ok(place) = self.take(Source::Relayed) {
                    return place;
                }
                freed.await;
            }
        })
        .await;
        waited.or_else(|_| self.take(Source::Relayed))
    }
}

/// A connection's place among those in their handshake, held until its session is accepted
/// or refused (a client that sends HELLO(open) and then nothing holds it until the handshake
/// times out); given back when dropped.
#[derive(Debug)]
pub struct PendingPlace {
    /// Some until dropped (given back before the waiters are told).
    permit: Option<OwnedSemaphorePermit>,
    source: Source,
    per_source: Arc<Mutex<HashMap<Source, usize>>>,
    freed: Arc<Notify>,
}

impl Drop for PendingPlace {
    fn drop(&mut self) {
        {
            let mut map = self.per_source.lock().expect("pending lock");
            if let Some(n) = map.get_mut(&self.source) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&self.source);
                }
            }
        }
        drop(self.permit.take());
        self.freed.notify_waiters();
    }
}

/// A connection the command must decide about.
// One per connection in its first moments: boxing the common case would cost an allocation
// per client to save a few hundred bytes on the rare others.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Incoming {
    /// An msock client asks to open a session.
    Open {
        /// The connection (peer preamble consumed).
        conn: FlowConn,
        /// Its HELLO(open).
        hello: Frame,
        /// Its place among the connections in their handshake, until accepted or refused.
        place: Box<PendingPlace>,
    },
    /// A raw TCP service's client: a connection that began with a registered [`Magic`]
    /// (consumed).
    Raw {
        /// The service its magic names.
        service: Service,
        /// The connection.
        stream: TcpStream,
        /// Its address.
        peer: SocketAddr,
    },
    /// A client that does not speak msock.
    Plain {
        /// The connection.
        stream: TcpStream,
        /// Bytes already read from it, to be delivered first.
        initial: Vec<u8>,
        /// Its address.
        peer: SocketAddr,
    },
}

impl Incoming {
    /// The service the client asks for (plain TCP clients get a byte stream).
    pub fn service(&self) -> Service {
        match self {
            Incoming::Open {
                hello: Frame::HelloOpen { service, .. },
                ..
            } => *service,
            Incoming::Open { .. } | Incoming::Plain { .. } => Service::Stream,
            Incoming::Raw { service, .. } => *service,
        }
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        match self {
            Incoming::Open { conn, .. } => conn.peer,
            Incoming::Raw { peer, .. } | Incoming::Plain { peer, .. } => *peer,
        }
    }
}

/// Session id → where that session's driver takes new flowpaths.
pub type Routes = Arc<Mutex<HashMap<u64, mpsc::Sender<AttachRequest>>>>;

/// Accepts connections forever, classifying each in its own task. Opens and plain clients go to
/// `tx`; attaches go straight to their session via `routes`. A listener bound to a specific
/// address that goes away moves to the address that replaces it, on the same port.
pub(crate) async fn accept_loop(
    mut listener: TcpListener,
    policy: DetectPolicy,
    routes: Routes,
    pending: Pending,
    tx: mpsc::Sender<Incoming>,
) {
    let mut changes = netwatch::spawn();
    let mut book = AddrBook::snapshot();
    let mut home = listener.local_addr().ok();
    let iface = home.and_then(|a| book.iface_of(&a.ip()));
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    tracing::debug!("connection from {peer}");
                    let (policy, routes, tx) = (policy.clone(), routes.clone(), tx.clone());
                    spawn_classify(stream, peer, policy, routes, &pending, tx, false);
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(()) = changes.recv() => {
                book = AddrBook::snapshot();
                let Some(at) = home.filter(|a| !a.ip().is_unspecified()) else { continue };
                if book.contains(&at.ip()) {
                    continue;
                }
                let Some(ip) = book.replacement(at.ip(), iface.as_deref()) else {
                    tracing::info!("listening address {} went away; waiting for a new one", at.ip());
                    continue;
                };
                let new = SocketAddr::new(ip, at.port());
                match bind_listener(new) {
                    Ok(l) => {
                        tracing::info!("listening address {} went away; now listening on {new}", at.ip());
                        listener = l;
                        home = Some(new);
                    }
                    Err(e) => tracing::warn!("cannot listen on {new}: {e}"),
                }
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

/// How many bytes to read to tell whether `initial` is one of `magics`: the length of the
/// shortest magic it is a proper start of (None: it is one, or can be none).
fn magic_wants(magics: &[Magic], initial: &[u8]) -> Option<usize> {
    if magics.iter().any(|m| m.prefix == initial) {
        return None;
    }
    magics
        .iter()
        .filter(|m| m.prefix.len() > initial.len() && m.prefix.starts_with(initial))
        .map(|m| m.prefix.len())
        .min()
}

/// Treats `stream` (a connection we made, such as a relay's spliced flowpath) exactly like
/// an accepted one from `peer`: classified in its own task, then routed as `accept_loop` does.
pub(crate) fn inject(
    stream: TcpStream,
    peer: SocketAddr,
    policy: DetectPolicy,
    routes: Routes,
    pending: &Pending,
    tx: mpsc::Sender<Incoming>,
) {
    spawn_classify(stream, peer, policy, routes, pending, tx, true);
}

/// Classifies `stream` in its own task if there is room among the pending connections, else
/// tells it the listener is busy. `relayed`: a flowpath spliced by a relay (which waits for
/// a place, see [`Pending`]).
fn spawn_classify(
    stream: TcpStream,
    peer: SocketAddr,
    policy: DetectPolicy,
    routes: Routes,
    pending: &Pending,
    tx: mpsc::Sender<Incoming>,
    relayed: bool,
) {
    if relayed {
        let pending = pending.clone();
        tokio::spawn(async move {
            match pending.take_relayed(policy.handshake_timeout).await {
                Ok(place) => classify(stream, peer, policy, routes, place, tx, true).await,
                Err(why) => refuse_busy(stream, peer, why).await,
            }
        });
        return;
    }
    match pending.take(Source::Addr(peer.ip())) {
        Ok(place) => {
            tokio::spawn(classify(stream, peer, policy, routes, place, tx, false));
        }
        Err(why) => {
            tokio::spawn(refuse_busy(stream, peer, why));
        }
    }
}

/// Tells a connection there is no place for it among those in their handshake.
async fn refuse_busy(stream: TcpStream, peer: SocketAddr, why: String) {
    tracing::info!("{peer} refused: {why}");
    if let Ok(mut conn) = FlowConn::new(stream, Deframer::after_preamble()) {
        conn.queue_preamble();
        conn.refuse(ErrorCode::Busy, why).await;
    }
}

/// Tells a plain TCP client, in one line, that this listener does not serve it, and closes
/// the connection (after reading a little of what it sent, so that the line is not lost to
/// a reset).
async fn refuse_plain(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        stream.write_all(PLAIN_REFUSED.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left = 64 * 1024;
        while left > 0 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => left -= n.min(left),
            }
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
}

async fn classify(
    mut stream: TcpStream,
    peer: SocketAddr,
    policy: DetectPolicy,
    routes: Routes,
    place: PendingPlace,
    tx: mpsc::Sender<Incoming>,
    relayed: bool,
) {
    let mut initial = Vec::with_capacity(PREAMBLE_LEN);
    // A listener that refuses plain TCP loses little by waiting longer for a silent client,
    // and refusing a slow msock client (a loaded machine, a far network) as plain would be
    // worse: it waits at least REFUSE_SILENT_AFTER.
    let wait = if policy.allow_plain {
        policy.wait
    } else {
        policy.wait.max(REFUSE_SILENT_AFTER)
    };
    let verdict = tokio::time::timeout(wait, async {
        loop {
            let m = match_preamble(&initial);
            // Read no further than the msock preamble while it may still be one (its frames
            // follow), else up to the end of a service's magic while it may be that.
            let want = if m == PreambleMatch::Partial {
                PREAMBLE_LEN
            } else if let Some(len) = magic_wants(&policy.magics, &initial) {
                len
            } else {
                return m;
            };
            let mut b = vec![0u8; want - initial.len()];
            match stream.read(&mut b).await {
                Ok(0) | Err(_) => return PreambleMatch::Foreign,
                Ok(n) => initial.extend_from_slice(&b[..n]),
            }
        }
    })
    .await
    .unwrap_or(PreambleMatch::Foreign);
    if let Some(m) = policy.magics.iter().find(|m| m.prefix == initial) {
        let service = m.service;
        let _ = tx
            .send(Incoming::Raw {
                service,
                stream,
                peer,
            })
            .await;
        return;
    }
    match verdict {
        PreambleMatch::Msock => {}
        PreambleMatch::WrongVersion(v) => {
            tracing::warn!("{peer} speaks msock version {v}; refused");
            if let Ok(conn) = FlowConn::new(stream, Deframer::after_preamble()) {
                let mut conn = conn;
                conn.queue_preamble();
                conn.refuse(ErrorCode::Version, &DeframeError::Version(v).to_string())
                    .await;
            }
            return;
        }
        PreambleMatch::Foreign | PreambleMatch::Partial => {
            if policy.allow_plain {
                let _ = tx
                    .send(Incoming::Plain {
                        stream,
                        initial,
                        peer,
                    })
                    .await;
            } else {
                tracing::warn!(
                    "{peer} does not speak msock; closed (plain TCP clients need --allow-plain)"
                );
                // The permit is held through the refusal: a flood of plain clients stays bounded.
                refuse_plain(stream).await;
                drop(place);
            }
            return;
        }
    }
    let Ok(mut conn) = FlowConn::new(stream, Deframer::after_preamble()) else {
        return;
    };
    if relayed {
        conn.mark_relayed();
    }
    let first = tokio::time::timeout(policy.handshake_timeout, conn.read_frame()).await;
    let hello = match first {
        Ok(Ok(f)) => f,
        Ok(Err(ConnError::Deframe(e))) => {
            tracing::warn!("{peer} sent garbage: {e}; closed");
            conn.queue_preamble();
            conn.refuse(ErrorCode::Protocol, &e.to_string()).await;
            return;
        }
        Ok(Err(e)) => {
            tracing::info!("{peer} left during the handshake: {e}");
            return;
        }
        Err(_) => {
            tracing::info!("{peer} sent no HELLO in time; closed");
            return;
        }
    };
    match hello {
        // Still pending until its session is accepted (the rest of the handshake).
        Frame::HelloOpen { .. } => {
            let place = Box::new(place);
            let _ = tx.send(Incoming::Open { conn, hello, place }).await;
        }
        Frame::HelloAttach { session_id, .. } | Frame::HelloResume { session_id, .. } => {
            let route = routes
                .lock()
                .expect("routes lock")
                .get(&session_id)
                .cloned();
            match route {
                Some(r) => {
                    // A session takes a bounded number of waiting flowpaths: one beyond is
                    // refused instead of waiting (ids travel in clear; a stranger can send
                    // attaches for someone else's session).
                    if let Err(mpsc::error::TrySendError::Full(a)) =
                        r.try_send(AttachRequest { conn, hello })
                    {
                        tracing::info!("{peer}: too many flowpaths waiting to attach to session {session_id:016x}; refused");
                        let mut conn = a.conn;
                        conn.queue_preamble();
                        conn.refuse(ErrorCode::Busy, "too many flowpaths waiting to attach")
                            .await;
                    }
                }
                None => {
                    tracing::info!("{peer} asked for unknown session {session_id:016x}");
                    conn.queue_preamble();
                    conn.refuse(ErrorCode::UnknownSession, "no such session")
                        .await;
                }
            }
        }
        other => {
            tracing::warn!(
                "{peer} opened with {} instead of HELLO; closed",
                other.name()
            );
            conn.queue_preamble();
            conn.refuse(ErrorCode::Protocol, "expected HELLO").await;
        }
    }
}

#[cfg(test)]
mod pending_tests {
    use super::*;

    #[test]
    fn one_source_holds_at_most_half_of_the_handshake_places() {
        let pending = Pending::new(8);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let (a, b) = (Source::Addr(a), Source::Addr(b));
        let held: Vec<_> = (0..4).map(|_| pending.take(a).expect("room")).collect();
        let why = pending.take(a).expect_err("a fifth from one source");
        assert!(why.contains("from 192.0.2.1"), "{why}");
        // Another source still gets in, and a place given back is free again.
        let other = pending.take(b).expect("another source");
        drop(held);
        assert!(pending.take(a).is_ok());
        drop(other);
    }
}

#[cfg(test)]
#[path = "listener_tests.rs"]
mod burst_tests;
