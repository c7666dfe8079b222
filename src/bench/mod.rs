//! The bench domain: an iperf3-class throughput test with a per-flowpath breakdown, run over an
//! msock session or one plain TCP connection.
//!
//! Inside the session (or the TCP connection) both ends speak the small bench protocol of
//! [`wire`]. The receiving end measures ([`meter`], [`progress`]); its figures are the ones
//! that count, so the listener ([`server`]) reports its intervals and totals back to the
//! client ([`client`]), which collects them in a [`run::Run`]. `msock bench` itself (flags,
//! printing, the built-in loopback comparison) is `cmd::bench`.

mod app;
pub mod client;
pub mod cpu;
mod meter;
pub mod model;
mod progress;
pub mod run;
pub mod server;
mod tcp;
mod transport;
pub mod wire;

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
