//! A listener's service-dispatch table and the loop that serves its clients. Services plug
//! in from above: one handler for byte-stream clients (whatever a stream session is attached
//! to), a handler per other session service, and for raw TCP services a [`Magic`] and
//! a handler. [`Services::route`] turns each classified connection into the task that serves
//! it or a refusal the client was told of; [`Services::serve`] runs those tasks concurrently,
//! bounded by [`Limits`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};

use super::conn::FlowConn;
use super::listener::{Incoming, Magic, PendingPlace};
use super::server::{Accepted, Refusal, Server};
use crate::proto::{ErrorCode, Frame, Service};

/// A service's work on one client, to be run by the caller (as a task).
pub type Task<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Serves one client that asked for a session service.
type SessionHandler<T> = Box<dyn Fn(Opening) -> Task<T> + Send + Sync>;

/// Serves one raw TCP client (its magic consumed).
type RawHandler<T> = Box<dyn Fn(TcpStream, SocketAddr) -> Task<T> + Send + Sync>;

/// Serves one byte-stream client (an msock stream session or a plain TCP client).
type StreamHandler<T> = Box<dyn Fn(StreamClient) -> Task<T> + Send + Sync>;

/// A client asking to open a session for a service, not yet accepted: the handler accepts it
/// or turns it away.
pub struct Opening {
    conn: FlowConn,
    hello: Frame,
    server: Arc<Server>,
    /// Held until the session is accepted or refused.
    place: Box<PendingPlace>,
}

impl Opening {
    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.conn.peer
    }

    /// Accepts the session (see [`Server::accept`]).
    pub async fn accept(self) -> Result<Accepted, Refusal> {
        let accepted = self.server.accept(self.conn, &self.hello).await;
        drop(self.place);
        accepted
    }

    /// Turns the client away with ERROR(refused) saying `why`.
    pub async fn refuse(self, why: String) -> Refusal {
        self.refuse_with(ErrorCode::Refused, why).await
    }

    /// Turns the client away with ERROR(`code`) saying `why`.
    pub async fn refuse_with(self, code: ErrorCode, why: String) -> Refusal {
        let peer = self.peer();
        let mut conn = self.conn;
        conn.queue_preamble();
        conn.refuse(code, why.clone()).await;
        Refusal::NotOffered { peer, why }
    }
}

/// A byte-stream client, for the handler registered with [`Services::stream`].
pub enum StreamClient {
    /// An msock client asking for a byte-stream session.
    Session(Box<Opening>),
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

/// Where [`Services::route`] sends a client.
pub enum Route<T> {
    /// A service's task for it.
    Task(Task<T>),
    /// Nothing here serves it: a session client was told so with an ERROR; a raw TCP
    /// client (whose magic no service registered) is dropped.
    Refused(Refusal),
}

/// The dispatch table: which service is served by what. `T` is what a service's task ends
/// with (the command's result).
pub struct Services<T> {
    stream: Option<StreamHandler<T>>,
    sessions: Vec<(Service, SessionHandler<T>)>,
    raw: Vec<(Magic, RawHandler<T>)>,
}

impl<T> Default for Services<T> {
    fn default() -> Self {
        Services {
            stream: None,
            sessions: Vec::new(),
            raw: Vec::new(),
        }
    }
}

/// How many clients a listener serves at once.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Serve sessions concurrently and keep listening after each (`-k`). Without it, one
    /// session at a time (a client that comes meanwhile is told the listener is busy) and
    /// [`Services::serve`] ends with the first session that began.
    pub keep_open: bool,
    /// Most sessions served at once with `keep_open`; the client beyond is told the listener
    /// is busy ("N sessions").
    pub max_sessions: usize,
}

/// What [`Services::serve`] does after a task ended, as the listener's owner decides.
pub enum Next<T> {
    /// Go on serving.
    Continue,
    /// Stop serving (the other sessions' tasks are dropped) and return this.
    Stop(T),
}

/// How [`Services::serve`] ended.
pub enum Served<T> {
    /// The owner said stop, with this.
    Stopped(T),
    /// The interrupt fired (and the sessions had their grace to end).
    Interrupted,
    /// The listening sockets went away: no more clients can come.
    Closed,
}

/// How long sessions get to end on their own after an interrupt (they see the same signal).
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);

impl<T: Send + 'static> Services<T> {
    /// Byte-stream clients (msock stream sessions, and plain TCP clients where the listener
    /// allows them) go to `handler`, one call per client. Without one, they are refused.
    pub fn stream<F, Fut>(&mut self, handler: F)
    where
        F: Fn(StreamClient) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.stream = Some(Box::new(move |c| Box::pin(handler(c))));
    }

    /// Sessions opened for `service` go to `handler`.
    pub fn session<F, Fut>(&mut self, service: Service, handler: F)
    where
        F: Fn(Opening) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.sessions
            .push((service, Box::new(move |o| Box::pin(handler(o)))));
    }

    /// TCP connections that begin with `magic` go to `handler` (the listener must be set up
    /// with `Services::magics` to recognise them).
    pub fn raw<F, Fut>(&mut self, magic: Magic, handler: F)
    where
        F: Fn(TcpStream, SocketAddr) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        self.raw
            .push((magic, Box::new(move |s, p| Box::pin(handler(s, p)))));
    }

    /// The magics of the raw services, for the listener's classifier.
    pub(crate) fn magics(&self) -> Arc<[Magic]> {
        self.raw.iter().map(|(m, _)| *m).collect()
    }

    /// Sends `incoming` (from `server`'s listener) to its service.
    pub fn route(&self, incoming: Incoming, server: &Arc<Server>) -> Route<T> {
        let service = incoming.service();
        match incoming {
            Incoming::Open { conn, hello, place } => {
                let opening = Opening {
                    conn,
                    hello,
                    server: server.clone(),
                    place,
                };
                if service == Service::Stream {
                    if let Some(h) = &self.stream {
                        return Route::Task(h(StreamClient::Session(Box::new(opening))));
                    }
                }
                match self.sessions.iter().find(|(s, _)| *s == service) {
                    Some((_, h)) => Route::Task(h(opening)),
                    None => {
                        let why =
                            format!("{service} is not offered by this listener (a newer msock?)");
                        let peer = opening.peer();
                        tokio::spawn(opening.refuse(why.clone()));
                        Route::Refused(Refusal::NotOffered { peer, why })
                    }
                }
            }
            Incoming::Raw {
                service,
                stream,
                peer,
            } => match self.raw.iter().find(|(m, _)| m.service == service) {
                Some((_, h)) => Route::Task(h(stream, peer)),
                None => Route::Refused(Refusal::NotOffered {
                    peer,
                    why: format!("{service} over plain TCP is not offered"),
                }),
            },
            Incoming::Plain {
                stream,
                initial,
                peer,
            } => match &self.stream {
                Some(h) => Route::Task(h(StreamClient::Plain {
                    stream,
                    initial,
                    peer,
                })),
                None => Route::Refused(Refusal::NotOffered {
                    peer,
                    why: "plain TCP is not served here".into(),
                }),
            },
        }
    }

    /// Serves the clients arriving on `rx` (from `server`'s listening sockets), each in its
    /// own task, within `limits`, until `ended` (told of each task's end) says stop, `rx`
    /// closes or `interrupt` fires. Sessions that move and wait for their client to come back
    /// hold a place among `max_sessions` and nothing else: no one waits behind them.
    pub async fn serve(
        &self,
        server: &Arc<Server>,
        rx: &mut mpsc::Receiver<Incoming>,
        limits: Limits,
        mut ended: impl FnMut(Result<T, JoinError>) -> Next<T>,
        interrupt: impl Future<Output = ()>,
    ) -> Served<T> {
        let mut tasks: JoinSet<T> = JoinSet::new();
        // When to give ended sessions' memory back (a moment after a burst of them ended).
        let mut trim_at: Option<tokio::time::Instant> = None;
        tokio::pin!(interrupt);
        loop {
            tokio::select! {
                i = rx.recv() => {
                    let Some(i) = i else { return Served::Closed };
                    if let Some(why) = busy(&limits, tasks.len()) {
                        turn_away(i, why);
                        continue;
                    }
                    match self.route(i, server) {
                        Route::Task(t) => {
                            tasks.spawn(t);
                        }
                        Route::Refused(r) => tracing::info!("{r}"),
                    }
                }
                Some(r) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Next::Stop(t) = ended(r) {
                        return Served::Stopped(t);
                    }
                    trim_at.get_or_insert_with(|| tokio::time::Instant::now() + TRIM_DELAY);
                }
                _ = tokio::time::sleep_until(trim_at.unwrap_or_else(tokio::time::Instant::now)), if trim_at.is_some() => {
                    trim_at = None;
                    trim();
                }
                _ = &mut interrupt => break,
            }
        }
        // Interrupted: the sessions see the same signal and end, telling their peers.
        let grace = tokio::time::sleep(INTERRUPT_GRACE);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                r = tasks.join_next() => match r {
                    Some(r) => {
                        if let Next::Stop(t) = ended(r) {
                            return Served::Stopped(t);
                        }
                    }
                    None => return Served::Interrupted,
                },
                _ = &mut grace => return Served::Interrupted,
            }
        }
    }
}

/// How long after a session ended its memory is given back (one trim for a burst of ends).
const TRIM_DELAY: Duration = Duration::from_millis(200);

/// Gives the memory of ended sessions back to the system: their buffers are freed, but the
/// allocator would otherwise keep the freed pages.
fn trim() {
    super::sys::release_memory();
}

/// Why a new client cannot be served now, with `running` tasks: the reason the client is
/// told ("listener busy: ...").
fn busy(limits: &Limits, running: usize) -> Option<String> {
    if !limits.keep_open && running > 0 {
        Some("serving another session (start it with -k to serve several at once)".into())
    } else if running >= limits.max_sessions {
        Some(format!("{} sessions", limits.max_sessions))
    } else {
        None
    }
}

/// Tells a client the listener is busy, and closes it: an msock client with ERROR(busy), a
/// plain TCP one with a line of text; a raw service's client is just closed.
fn turn_away(i: Incoming, why: String) {
    tracing::info!("{} refused: listener busy ({why})", i.peer());
    match i {
        Incoming::Open { mut conn, .. } => {
            conn.queue_preamble();
            tokio::spawn(conn.refuse(ErrorCode::Busy, why));
        }
        Incoming::Plain { mut stream, .. } => {
            tokio::spawn(async move {
                let line = format!("msock: listener busy: {why}\n");
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    let _ = stream.write_all(line.as_bytes()).await;
                    let _ = stream.shutdown().await;
                })
                .await;
            });
        }
        Incoming::Raw { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_says_why_a_client_is_turned_away() {
        let k = |max_sessions| Limits {
            keep_open: true,
            max_sessions,
        };
        assert_eq!(busy(&k(2), 1), None);
        assert_eq!(busy(&k(2), 2).as_deref(), Some("2 sessions"));
        let one = Limits {
            keep_open: false,
            max_sessions: 100,
        };
        assert_eq!(busy(&one, 0), None);
        assert!(busy(&one, 1).unwrap().contains("-k"));
    }
}
