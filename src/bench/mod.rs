//! The bench domain: an iperf3-class throughput test with a per-flowpath breakdown, run over an
//! msock session or one plain TCP connection.
//!
//! Inside the session (or the TCP connection) both ends speak the small bench protocol of
//! [`wire`]. The receiving end measures (`meter`, `progress`); its figures are the ones
//! that count, so the listener ([`server`]) reports its intervals and totals back to the
//! client ([`client`]), which collects them in a [`run::Run`]. `msock bench` itself (flags,
//! printing, the built-in loopback comparison) is `cmd::bench`, which sets up the transport
//! (an msock session's driver, or [`tcp`]) with the [`Ends`] of a [`link`] and hands the
//! [`Link`] to [`client::run`] or [`server::serve`]. Failures are an [`Error`], which says
//! whose fault they are.

mod app;
mod checked;
pub mod client;
pub mod cpu;
mod error;
mod meter;
pub mod model;
mod progress;
pub mod run;
pub mod server;
pub mod tcp;
mod transport;
pub mod wire;

pub use app::{BenchSink, BenchSource, Link, ProbeRx};
pub use error::{Error, Fault};

use std::convert::Infallible;
use std::time::Duration;

use crate::proto::Service;
use crate::runtime::listener::Magic;

/// The classifier hook's entry for `msock bench --compare-tcp`: its plain TCP connections
/// begin with these bytes, so a listener hands them to the bench server.
pub const TCP_MAGIC: Magic = Magic {
    prefix: tcp::BENCH_TCP_MAGIC,
    service: Service::Bench,
};

/// Waits forever (for a transport whose end decides the result).
async fn never() -> Infallible {
    std::future::pending().await
}

/// Completes after `after`, if given (else never).
async fn expire(after: Option<Duration>) {
    match after {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// What a test's transport moves: the test's outgoing bytes, the sink for incoming ones, and
/// the channel on which the test asks for [`Snapshot`](crate::runtime::Snapshot)s.
pub struct Ends {
    /// The bytes to send (the transport's input).
    pub source: BenchSource,
    /// Where received bytes go (the transport's output).
    pub sink: BenchSink,
    /// Snapshot requests the transport answers.
    pub probe: ProbeRx,
}

/// A transport's [`Ends`] and the test logic's [`Link`] to them.
pub fn link() -> (Ends, Link) {
    let (source, sink, probe, link) = app::link();
    (
        Ends {
            source,
            sink,
            probe,
        },
        link,
    )
}
