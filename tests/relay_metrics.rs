//! The relay's operations side: `msock proxy --metrics` scraped and parsed as Prometheus
//! would (the values move when names register and bytes flow; refusals are counted by
//! reason; the scrape endpoint answers only GET /metrics and bounds what it reads), and the
//! bandwidth cap per name (`--rate-per-name`).

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::relay::{named_listener, Relay};
use common::*;

const SHORT: Duration = Duration::from_secs(30);

/// Where `relay` serves its metrics (from its start-up line).
fn metrics_addr(relay: &Relay) -> SocketAddr {
    let line = relay
        .proc
        .stderr
        .wait_line(STARTUP, |l| {
            l.starts_with("msock: relay metrics at http://")
        })
        .expect("a metrics line");
    line.trim()
        .trim_start_matches("msock: relay metrics at http://")
        .trim_end_matches("/metrics")
        .parse()
        .unwrap()
}

/// One HTTP request (`head` is the request line and headers, without the blank line); the
/// status code and the body.
fn http(addr: SocketAddr, head: &str) -> (u16, String) {
    let mut s = tcp_connect(addr, SHORT);
    s.set_read_timeout(Some(SHORT)).unwrap();
    s.write_all(format!("{head}\r\n\r\n").as_bytes()).unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    (code, body.to_owned())
}

/// A scrape, parsed: sample name (with its labels, as written) → value. Every line that is
/// not a comment must be `NAME[{LABELS}] VALUE`.
fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (code, body) = http(addr, "GET /metrics HTTP/1.1\r\nHost: relay");
    assert_eq!(code, 200, "{body}");
    assert!(body.ends_with("# EOF\n"), "not OpenMetrics text: {body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (name, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let v: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {l:?}"));
            (name.to_owned(), v)
        })
        .collect()
}

fn get(m: &HashMap<String, f64>, name: &str) -> f64 {
    *m.get(name)
        .unwrap_or_else(|| panic!("no sample {name}; have {:?}", m.keys()))
}

#[test]
fn metrics_move_with_registrations_traffic_and_refusals() {
    const LEN: usize = 3 << 20;
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &["--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&relay);
    let before = scrape(addr);
    assert_eq!(get(&before, "msock_relay_registrations_total"), 0.0);
    assert_eq!(get(&before, "msock_relay_bytes_up_total"), 0.0);
    assert_eq!(get(&before, "msock_relay_names"), 0.0);

    let (l_in, _) = write_random_file(dir.path(), "l.in", 1, LEN);
    let (c_in, _) = write_random_file(dir.path(), "c.in", 2, LEN / 2);
    let mut l = named_listener(
        &relay,
        "m",
        &dir.path().join("state"),
        &[],
        stdin_from(&l_in),
        std::process::Stdio::null(),
    );
    let mid = scrape(addr);
    assert_eq!(get(&mid, "msock_relay_registrations_total"), 1.0);
    assert_eq!(get(&mid, "msock_relay_registration_seconds_count"), 1.0);
    assert_eq!(get(&mid, "msock_relay_names"), 1.0);
    assert_eq!(get(&mid, "msock_relay_listeners_connected"), 1.0);

    // Garbage on the relay's port is refused, and counted by its reason.
    let mut g = tcp_connect(relay.addr, SHORT);
    g.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let _ = read_to_end_bounded(&mut g);

    let mut c = connect(
        &relay.dest("m"),
        &[],
        stdin_from(&c_in),
        std::process::Stdio::null(),
    );
    c.expect_code(0, SHORT);
    l.expect_code(0, SHORT);
    let after = scrape(addr);
    assert!(get(&after, "msock_relay_flowpaths_spliced_total") >= 1.0);
    assert!(get(&after, "msock_relay_bytes_up_total") >= (LEN / 2) as f64);
    assert!(get(&after, "msock_relay_bytes_down_total") >= LEN as f64);
    assert!(get(&after, "msock_relay_lookups_total") >= 1.0);
    assert!(get(&after, "msock_relay_lookup_seconds_count") >= 1.0);
    assert_eq!(
        get(&after, "msock_relay_refusals_total{reason=\"garbage\"}"),
        1.0
    );
    assert!(get(&after, "msock_relay_peak_rss_bytes") > 0.0);

    // Only GET /metrics; a request head that never ends is cut off.
    assert_eq!(http(addr, "GET / HTTP/1.1").0, 404);
    assert_eq!(http(addr, "POST /metrics HTTP/1.1").0, 405);
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}", "a".repeat(64 * 1024));
    let mut s = tcp_connect(addr, SHORT);
    s.set_read_timeout(Some(SHORT)).unwrap();
    let _ = s.write_all(huge.as_bytes());
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 431"), "{text:?}");
    let _ = TcpStream::connect(addr).unwrap(); // a scraper that sends nothing
    assert_eq!(http(addr, "GET /metrics HTTP/1.1").0, 200, "still serving");
}

#[test]
fn rate_per_name_caps_the_names_flowpaths() {
    // 3 MiB up at 1 MiB/s: about 2.9 s (after a 100 KiB burst), however fast the machine.
    const LEN: usize = 3 << 20;
    let dir = tempdir();
    let relay = Relay::start(dir.path(), "127.0.0.1:0", &["--rate-per-name", "1M"]);
    let (c_in, c_hash) = write_random_file(dir.path(), "c.in", 3, LEN);
    let out = dir.path().join("l.out");
    let mut l = named_listener(
        &relay,
        "capped",
        &dir.path().join("state"),
        &[],
        std::process::Stdio::null(),
        stdout_to(&out),
    );
    let start = Instant::now();
    let mut c = connect(
        &relay.dest("capped"),
        &[],
        stdin_from(&c_in),
        std::process::Stdio::null(),
    );
    c.expect_code(0, SHORT);
    l.expect_code(0, SHORT);
    let took = start.elapsed();
    let (got, n) = sha256_file(&out);
    assert_eq!((hex(&got), n), (hex(&c_hash), LEN as u64), "bytes differ");
    assert!(
        took >= Duration::from_millis(2500),
        "3 MiB at 1 MiB/s took only {took:?}: the cap did not hold"
    );
}
