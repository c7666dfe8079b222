//! Port forwarding: sessions joined to TCP connections, so that ordinary programs (ssh, a
//! database client, a browser) keep their connection across the client's moves.
//!
//! - Listener side, `msock listen -k PORT --forward HOST:PORT`: [`serve`] joins each byte-stream
//!   session to a new TCP connection to the target (like `socat TCP-LISTEN,fork TCP:HOST:PORT`).
//!   The session is accepted (and so authenticated) before the target is dialled; a target that
//!   cannot be reached ends the session with ERROR(aborted) naming it, so the client can say
//!   why.
//! - Client side, `msock connect --local [ADDR:]PORT DEST` (like `ssh -L`): [`local::serve`]
//!   accepts local connections and hands each to its caller, which carries it over a session
//!   of its own.
//!
//! Either way the connection is the session's application side through [`tcp_app`]: bytes go
//! between socket and session without a copy task, and half-closes pass through both ways
//! (the program's `shutdown(SHUT_WR)` ends the session's stream that way only; the peer's end of
//! stream becomes our `shutdown(SHUT_WR)`).

pub mod local;
pub mod tcp_app;

use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;

use crate::runtime::app::{AppSource, SourceError};
use crate::runtime::client::connect_any;
use crate::runtime::server::Refusal;
use crate::runtime::services::StreamClient;
use crate::runtime::{plain, resolve, ConnectError, DriveError, Family, Outcome, Totals};
use tcp_app::TcpSink;

/// How long dialling the target may take; less than a client's default handshake wait (10 s),
/// so that the client hears why rather than timing out.
const TARGET_TIMEOUT: Duration = Duration::from_secs(5);

/// What a forwarding listener does with each byte-stream client.
#[derive(Debug, Clone)]
pub struct Forward {
    /// HOST:PORT, resolved for every session (the target may move too).
    target: String,
    family: Family,
    /// Plain TCP clients (which cannot be authenticated) are forwarded too: only when the
    /// listener requires no key at all.
    plain: bool,
    /// Ends a session (or plain connection) with no data either way for this long.
    idle: Option<Duration>,
}

/// Why a forwarding listener may not start (the user's to fix, exit 2).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The target is not HOST:PORT.
    #[error("--forward '{0}': give the target as HOST:PORT, e.g. localhost:22 or [::1]:5432")]
    BadTarget(String),
    /// Nothing restricts who may use the forward.
    #[error("--forward would give a TCP connection to {0} to anyone who reaches this listener: require a key (--authorized-keys FILE or --psk-file FILE), or say --allow-anyone if that is what you want")]
    Unguarded(String),
}

impl Forward {
    /// A forward to `target` (HOST:PORT). `authenticated`: clients must prove a key (a
    /// pre-shared key, an authorized client key); without it `allow_anyone` must be given.
    pub fn new(
        target: &str,
        family: Family,
        authenticated: bool,
        allow_anyone: bool,
        idle: Option<Duration>,
    ) -> Result<Self, SetupError> {
        let bad = || SetupError::BadTarget(target.to_owned());
        let (host, port) = target.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad());
        }
        if !authenticated && !allow_anyone {
            return Err(SetupError::Unguarded(target.to_owned()));
        }
        Ok(Forward {
            target: target.to_owned(),
            family,
            plain: !authenticated,
            idle,
        })
    }

    /// The target, as given.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// A new connection to the target, or why not (phrased for either end).
    async fn dial(&self) -> Result<TcpStream, String> {
        let connect = async {
            let addrs = resolve(&self.target, self.family).await?;
            connect_any(&addrs, None, None, Some(TARGET_TIMEOUT)).await
        };
        let r: Result<TcpStream, ConnectError> = connect.await;
        r.map_err(|e| {
            format!(
                "the listener cannot reach its forward target {}: {e}",
                self.target
            )
        })
    }
}

/// Serves one byte-stream client of a forwarding listener: accepts its session, joins it to a
/// new connection to the target, and runs it to its end (`interrupt` aborts it). A plain TCP
/// client is copied to the target as such, if the listener lets anyone in; else it is refused.
pub async fn serve(
    client: StreamClient,
    fwd: &Forward,
    interrupt: impl Future<Output = ()> + Send + 'static,
) -> Result<(Result<Outcome, DriveError>, Totals), Refusal> {
    match client {
        StreamClient::Session(opening) => {
            let accepted = opening.accept().await?;
            let peer = accepted.peer();
            match fwd.dial().await {
                Ok(stream) => {
                    tracing::info!("{peer}: forwarding to {}", fwd.target);
                    let (source, sink, end) = tcp_app::split(stream);
                    let (mut driver, _reg) = accepted.into_driver(Some(source), Some(sink));
                    driver.set_interrupt(interrupt);
                    let (r, totals) = driver.run().await;
                    end.close(r.is_err());
                    Ok((r, totals))
                }
                Err(why) => {
                    let (driver, _reg) =
                        accepted.into_driver(Some(Abort(Some(why))), None::<TcpSink>);
                    Ok(driver.run().await)
                }
            }
        }
        StreamClient::Plain {
            stream,
            initial,
            peer,
        } => {
            if !fwd.plain {
                let why = "plain TCP clients cannot prove a key; this listener requires one";
                return Err(Refusal::NotOffered {
                    peer,
                    why: why.into(),
                });
            }
            let target = match fwd.dial().await {
                Ok(t) => t,
                Err(why) => {
                    tcp_app::split(stream).2.close(true);
                    return Ok((Err(DriveError::Aborted(why)), Totals::default()));
                }
            };
            tracing::info!(
                "plain TCP client {peer} (not msock: no mobility, not encrypted): forwarding to {}",
                fwd.target
            );
            let (source, sink, end) = tcp_app::split(target);
            let out = plain::bridge(
                stream,
                initial,
                Some(source),
                Some(sink),
                fwd.idle,
                interrupt,
            );
            let (r, totals) = out.await;
            end.close(r.is_err());
            Ok((r, totals))
        }
    }
}

/// An input that ends the session at once, telling the peer why.
struct Abort(Option<String>);

impl AppSource for Abort {
    fn poll_chunk(&mut self, _cx: &mut Context<'_>) -> Poll<Result<Option<Bytes>, SourceError>> {
        Poll::Ready(match self.0.take() {
            Some(why) => Err(SourceError::Abort(why)),
            None => Ok(None),
        })
    }
}
