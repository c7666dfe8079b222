//! A listener's service-dispatch table. Services (file transfer, benchmark, ...) plug in from
//! above: a handler per session service, and for raw TCP services a [`Magic`] and a handler.
//! [`Services::route`] turns each classified connection into the task that serves it, the
//! byte-stream client the listener's owner serves itself, or a refusal the client was told of.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::conn::FlowConn;
use super::listener::{Incoming, Magic};
use super::server::{Accepted, Refusal, Server};
use crate::proto::{ErrorCode, Frame, Service};

/// A service's work on one client, to be run by the caller (as a task).
pub type Task<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Serves one client that asked for a session service.
type SessionHandler<T> = Box<dyn Fn(Opening) -> Task<T> + Send + Sync>;

/// Serves one raw TCP client (its magic consumed).
type RawHandler<T> = Box<dyn Fn(TcpStream, SocketAddr) -> Task<T> + Send + Sync>;

/// A client asking to open a session for a service, not yet accepted: the handler accepts it
/// or turns it away.
pub struct Opening {
    conn: FlowConn,
    hello: Frame,
    server: Arc<Server>,
}

impl Opening {
    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.conn.peer
    }

    /// Accepts the session (see [`Server::accept`]).
    pub fn accept(self) -> Result<Accepted, Refusal> {
        self.server.accept(self.conn, &self.hello)
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

/// A byte-stream client, served by the listener's owner itself (it has stdin and stdout).
pub enum StreamClient {
    /// An msock client asking for a byte-stream session.
    Session(Opening),
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
    /// A byte-stream client: the listener's owner serves it.
    Stream(Box<StreamClient>),
    /// Nothing here serves it: a session client was told so with an ERROR; a raw TCP
    /// client (whose magic no service registered) is dropped.
    Refused(Refusal),
}

/// The dispatch table: which service is served by what. `T` is what a service's task ends
/// with (the command's result).
pub struct Services<T> {
    sessions: Vec<(Service, SessionHandler<T>)>,
    raw: Vec<(Magic, RawHandler<T>)>,
}

impl<T> Default for Services<T> {
    fn default() -> Self {
        Services {
            sessions: Vec::new(),
            raw: Vec::new(),
        }
    }
}

impl<T: Send + 'static> Services<T> {
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
            Incoming::Open { conn, hello } => {
                let opening = Opening {
                    conn,
                    hello,
                    server: server.clone(),
                };
                if service == Service::Stream {
                    return Route::Stream(Box::new(StreamClient::Session(opening)));
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
            } => Route::Stream(Box::new(StreamClient::Plain {
                stream,
                initial,
                peer,
            })),
        }
    }
}
