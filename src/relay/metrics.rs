//! The relay's Prometheus metrics (`msock proxy --metrics ADDR:PORT`): counters of what it
//! did (registrations, lookups, splices, bytes each way, refusals by reason), gauges of what
//! it holds now (names, listeners connected, flowpaths open, peak RSS), and histograms of how
//! long it took to answer a registration and a lookup. Served as OpenMetrics text on
//! `GET /metrics` by a minimal HTTP/1.x responder: one request per connection, requests
//! bounded in size and time, a few scrapes at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::splice::Totals;

/// Labels of the refusal counter: `reason`.
type ReasonLabel = Vec<(&'static str, &'static str)>;

/// Every metric of a relay. The counters are the relay's own statistics (its summary reads
/// them too); the gauges are set from the registry at each scrape.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Registrations accepted.
    pub registrations: Counter,
    /// Lookups answered.
    pub lookups: Counter,
    /// Flowpaths spliced.
    pub spliced: Counter,
    /// Bytes each way, counted as they move.
    pub bytes: Arc<Totals>,
    refused: Family<ReasonLabel, Counter>,
    names: Gauge,
    listeners: Gauge,
    flowpaths: Gauge,
    peak_rss: Gauge,
    register_seconds: Histogram,
    lookup_seconds: Histogram,
}

/// What the relay holds now, set into the gauges at a scrape.
#[derive(Debug, Clone, Copy)]
pub struct Holding {
    /// Names registered.
    pub names: usize,
    /// Names whose listener has its control channel up.
    pub listeners: usize,
    /// Client flowpaths (starting or spliced).
    pub flowpaths: usize,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// All metrics at zero, registered under the prefix `msock_relay`.
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("msock_relay"),
            registrations: Counter::default(),
            lookups: Counter::default(),
            spliced: Counter::default(),
            bytes: Arc::default(),
            refused: Family::default(),
            names: Gauge::default(),
            listeners: Gauge::default(),
            flowpaths: Gauge::default(),
            peak_rss: Gauge::default(),
            // 100 µs to about 3 s.
            register_seconds: Histogram::new(exponential_buckets(1e-4, 2.0, 16)),
            lookup_seconds: Histogram::new(exponential_buckets(1e-4, 2.0, 16)),
        };
        let r = &mut m.registry;
        r.register(
            "registrations",
            "Registrations accepted",
            m.registrations.clone(),
        );
        r.register("lookups", "Lookups answered", m.lookups.clone());
        r.register(
            "flowpaths_spliced",
            "Client flowpaths spliced to their listener",
            m.spliced.clone(),
        );
        r.register(
            "bytes_up",
            "Bytes moved from clients to listeners",
            m.bytes.up.clone(),
        );
        r.register(
            "bytes_down",
            "Bytes moved from listeners to clients",
            m.bytes.down.clone(),
        );
        r.register(
            "refusals",
            "Connections refused or dropped, by reason",
            m.refused.clone(),
        );
        r.register("names", "Names registered", m.names.clone());
        r.register(
            "listeners_connected",
            "Names whose listener is connected",
            m.listeners.clone(),
        );
        r.register(
            "flowpaths_open",
            "Client flowpaths starting or spliced now",
            m.flowpaths.clone(),
        );
        r.register(
            "peak_rss_bytes",
            "Peak resident memory of the relay",
            m.peak_rss.clone(),
        );
        r.register(
            "registration_seconds",
            "Time from a listener's proof to the relay's answer",
            m.register_seconds.clone(),
        );
        r.register(
            "lookup_seconds",
            "Time to answer a lookup",
            m.lookup_seconds.clone(),
        );
        m
    }

    /// Counts a refusal for `reason`.
    pub fn refused(&self, reason: &'static str) {
        self.refused.get_or_create(&vec![("reason", reason)]).inc();
    }

    /// Records how long a registration took since `since`.
    pub fn registered(&self, since: Instant) {
        self.register_seconds.observe(since.elapsed().as_secs_f64());
    }

    /// Records how long a lookup took since `since`.
    pub fn looked_up(&self, since: Instant) {
        self.lookup_seconds.observe(since.elapsed().as_secs_f64());
    }

    /// The metrics as OpenMetrics text, with the gauges set to `now`.
    pub fn render(&self, now: Holding) -> String {
        self.names.set(now.names as i64);
        self.listeners.set(now.listeners as i64);
        self.flowpaths.set(now.flowpaths as i64);
        let rss = crate::runtime::sys::peak_rss().unwrap_or(0);
        self.peak_rss.set((rss as i64).saturating_mul(1024));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Longest request head read, and how long a scraper may take to send it or read the answer.
const MAX_REQUEST: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes served at once; more wait for their turn.
const MAX_SCRAPES: usize = 8;

/// Serves `GET /metrics` on `listener` forever; `render` makes the body.
pub async fn serve(listener: TcpListener, render: Arc<dyn Fn() -> String + Send + Sync>) {
    let turns = Arc::new(Semaphore::new(MAX_SCRAPES));
    loop {
        let Ok((s, _)) = listener.accept().await else {
            // Out of descriptors, or similar: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(turn) = turns.clone().acquire_owned().await else {
            return;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(s, &*render)).await;
            drop(turn);
        });
    }
}

/// Reads one request head and answers it.
async fn answer(mut s: TcpStream, render: &(dyn Fn() -> String + Send + Sync)) {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
        if head.len() > MAX_REQUEST {
            return reply(
                &mut s,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request too large\n",
            )
            .await;
        }
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.trim_ascii().split(|&b| b == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    match (method, path) {
        (b"GET", b"/metrics") => {
            let body = render();
            let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
            reply(&mut s, "200 OK", kind, &body).await
        }
        (b"GET", _) => {
            reply(
                &mut s,
                "404 Not Found",
                "text/plain",
                "the metrics are at /metrics\n",
            )
            .await
        }
        _ => reply(&mut s, "405 Method Not Allowed", "text/plain", "only GET\n").await,
    }
}

async fn reply(s: &mut TcpStream, status: &str, kind: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes()).await;
    let _ = s.write_all(body.as_bytes()).await;
    let _ = s.shutdown().await;
}
