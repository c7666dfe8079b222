//! `msock bench` end to end: the built-in run, tests against a listener (directions, JSON that
//! adds up, concurrent clients, clients that vanish), the plain TCP comparison, and argument
//! errors. Tests run for a second or so each.

mod common;

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(60);

/// Runs `msock bench ARGS` to its end; returns the exit and stdout.
fn bench(args: &[&str]) -> (Exit, String) {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    let mut cmd = msock(&all);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let mut p = Proc::spawn(&format!("msock {}", all.join(" ")), cmd);
    let mut out = p.take_stdout();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let exit = p.wait(T);
    (exit, reader.join().unwrap())
}

fn bench_ok(args: &[&str]) -> String {
    let (exit, out) = bench(args);
    assert_eq!(
        exit.code,
        Some(0),
        "msock bench {args:?}: {}\nstdout:\n{out}",
        exit.stderr
    );
    out
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// bytes × 8 / seconds = bits_per_second, within rounding.
fn assert_rate(v: &Value) {
    let want = u(&v["bytes"]) as f64 * 8.0 / f(&v["seconds"]);
    let got = f(&v["bits_per_second"]);
    assert!(
        (got - want).abs() <= want * 1e-9 + 1e-6,
        "rate {got} != {want} in {v}"
    );
}

/// A `-k -v` listener (bench servers log what they received and sent).
fn listener() -> Listener {
    Listener::start(&["-k", "-v"], Stdio::null(), Stdio::null())
}

/// The listener's log line for a finished bench test: (received, sent) payload bytes.
fn served(l: &Listener, nth: usize) -> (u64, u64) {
    let pat = "payload bytes";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = l.proc.stderr.text();
        let lines: Vec<&str> = text.lines().filter(|x| x.contains(pat)).collect();
        if let Some(line) = lines.get(nth) {
            // "... done, received R and sent S payload bytes": the last two numbers before
            // "payload".
            let head = &line[..line.find(pat).unwrap()];
            let nums: Vec<u64> = head
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|w| w.parse().ok())
                .collect();
            let n = nums.len();
            return (nums[n - 2], nums[n - 1]);
        }
        assert!(
            Instant::now() < deadline,
            "no bench log line #{nth}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn builtin_run_compares_tcp_one_and_several_flowpaths() {
    let started = Instant::now();
    let out = bench_ok(&["-t", "1.5s"]);
    for row in [
        "plain TCP",
        "msock, 1 flowpath",
        "flowpaths",
        "vs plain TCP",
        "CPU time",
    ] {
        assert!(out.contains(row), "no {row:?} in:\n{out}");
    }
    let table: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("Gbit/s") || l.contains("Mbit/s"))
        .collect();
    assert!(table.len() >= 3, "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn builtin_json_has_three_tests_and_a_summary() {
    let doc = json(&bench_ok(&["-t", "1.2s", "--json", "-i", "100ms"]));
    let tests = doc["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 3, "{doc}");
    assert_eq!(tests[0]["start"]["test_start"]["protocol"], "TCP");
    assert_eq!(tests[1]["start"]["test_start"]["protocol"], "msock");
    let striped = &tests[2];
    assert!(u(&striped["flowpaths"]) >= 2, "{striped}");
    let paths = striped["end"]["paths"].as_array().unwrap();
    assert_eq!(paths.len() as u64, u(&striped["flowpaths"]), "{striped}");
    let locals: std::collections::BTreeSet<&str> = paths
        .iter()
        .map(|p| p["local_host"].as_str().unwrap())
        .collect();
    assert_eq!(
        locals.len(),
        paths.len(),
        "one flowpath per loopback address: {striped}"
    );
    // Several flowpaths' parts still add up to the total, at the end and every interval.
    let by_path: u64 = paths.iter().map(|p| u(&p["receiver"]["bytes"])).sum();
    assert_eq!(
        by_path,
        u(&striped["end"]["sum_received"]["bytes"]),
        "{striped}"
    );
    for iv in striped["intervals"].as_array().unwrap() {
        let parts: u64 = iv["paths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| u(&p["bytes"]))
            .sum();
        assert_eq!(parts, u(&iv["sum"]["bytes"]), "{iv}");
    }
    let summary = doc["summary"].as_array().unwrap();
    assert_eq!(summary.len(), 3);
    assert!((f(&summary[0]["ratio_to_tcp"]) - 1.0).abs() < 1e-9);
    for s in summary {
        assert!(f(&s["bits_per_second"]) > 0.0, "{s}");
    }
}

#[test]
fn json_numbers_add_up() {
    let l = listener();
    let doc = json(&bench_ok(&["-t", "1s", "-i", "200ms", "--json", &l.dest()]));
    let end = &doc["end"];
    for key in ["sum_sent", "sum_received"] {
        assert_rate(&end[key]);
    }
    assert_eq!(end["sum_sent"]["sender"], true);
    assert_eq!(end["sum_received"]["sender"], false);
    let received = u(&end["sum_received"]["bytes"]);
    assert!(received > 0);
    let paths = end["paths"].as_array().unwrap();
    let by_path: u64 = paths.iter().map(|p| u(&p["receiver"]["bytes"])).sum();
    assert_eq!(by_path, received, "{end}");
    let sent_by_path: u64 = paths.iter().map(|p| u(&p["sender"]["bytes"])).sum();
    assert_eq!(sent_by_path, u(&end["sum_sent"]["bytes"]));
    let intervals = doc["intervals"].as_array().unwrap();
    assert!(intervals.len() >= 4, "{doc}");
    let mut total = 0;
    for iv in intervals {
        assert_rate(&iv["sum"]);
        let paths: u64 = iv["paths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| u(&p["bytes"]))
            .sum();
        assert_eq!(paths, u(&iv["sum"]["bytes"]), "{iv}");
        total += u(&iv["sum"]["bytes"]);
    }
    // A last interval shorter than a tenth is left out, as iperf3 does.
    assert!(
        total <= received && total as f64 >= received as f64 * 0.85,
        "{total} vs {received}"
    );
    for key in ["host_total", "remote_total"] {
        assert!(f(&end["cpu_utilization_percent"][key]) > 0.0, "{end}");
    }
    // The listener's own count agrees with the receiver's figures it reported.
    let (got, sent) = served(&l, 0);
    assert_eq!((got, sent), (received, 0));
}

#[test]
fn directions_follow_reverse_and_bidir() {
    let l = listener();
    let rev = json(&bench_ok(&["-t", "1s", "-R", "--json", &l.dest()]));
    assert_eq!(rev["start"]["test_start"]["reverse"], 1);
    let got = u(&rev["end"]["sum_received"]["bytes"]);
    assert!(got > 0);
    assert_eq!(served(&l, 0), (0, got), "with -R only the listener sends");

    let both = json(&bench_ok(&["-t", "1s", "--bidir", "--json", &l.dest()]));
    let end = &both["end"];
    let up = u(&end["sum_received"]["bytes"]);
    let down = u(&end["sum_received_bidir_reverse"]["bytes"]);
    assert!(up > 0 && down > 0, "{end}");
    assert_eq!(served(&l, 1), (up, down));
    assert_eq!(end["sum_sent_bidir_reverse"]["sender"], true);
}

#[test]
fn byte_count_and_omit() {
    let l = listener();
    let doc = json(&bench_ok(&[
        "-n",
        "50M",
        "-l",
        "1M",
        "-i",
        "0",
        "--json",
        &l.dest(),
    ]));
    assert_eq!(u(&doc["end"]["sum_received"]["bytes"]), 50 << 20);
    assert_eq!(u(&doc["end"]["sum_sent"]["bytes"]), 50 << 20);
    let doc = json(&bench_ok(&[
        "-t",
        "1.5s",
        "--omit",
        "500ms",
        "-i",
        "250ms",
        "--json",
        &l.dest(),
    ]));
    let s = &doc["end"]["sum_received"];
    assert!(
        (f(&s["start"]) - 0.5).abs() < 0.1 && (f(&s["seconds"]) - 1.0).abs() < 0.2,
        "{s}"
    );
    let ivs = doc["intervals"].as_array().unwrap();
    assert_eq!(ivs[0]["sum"]["omitted"], true);
    assert_eq!(ivs.last().unwrap()["sum"]["omitted"], false);
}

#[test]
fn json_stream_prints_events_as_they_happen() {
    let l = listener();
    let out = bench_ok(&["-t", "1s", "-i", "250ms", "--json-stream", &l.dest()]);
    let events: Vec<Value> = out.lines().map(json).collect();
    assert_eq!(events[0]["event"], "start");
    assert_eq!(events.last().unwrap()["event"], "end");
    let intervals = events.iter().filter(|e| e["event"] == "interval").count();
    assert!(intervals >= 3, "{out}");
    assert!(u(&events.last().unwrap()["data"]["sum_received"]["bytes"]) > 0);
}

#[test]
fn compare_tcp_measures_plain_tcp_against_the_same_listener() {
    let l = listener();
    let out = bench_ok(&["-t", "1s", "--compare-tcp", &l.dest()]);
    assert!(out.contains("vs plain TCP"), "{out}");
    let doc = json(&bench_ok(&[
        "-t",
        "1s",
        "-i",
        "0",
        "--compare-tcp",
        "--json",
        &l.dest(),
    ]));
    let tcp = &doc["compare_tcp"];
    assert_eq!(tcp["start"]["test_start"]["protocol"], "TCP");
    assert!(u(&tcp["end"]["sum_received"]["bytes"]) > 0);
    let ratio = f(&tcp["goodput_ratio"]);
    let want = f(&doc["end"]["sum_received"]["bits_per_second"])
        / f(&tcp["end"]["sum_received"]["bits_per_second"]);
    assert!((ratio - want).abs() < 1e-9, "{ratio} vs {want}");
}

#[test]
fn two_clients_at_once_are_served_together() {
    let l = listener();
    let mut cmd = msock(&["bench", "-t", "4s", "-i", "100ms", &l.dest()]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let mut long = Proc::spawn("msock bench (long)", cmd);
    let mut stdout = long.take_stdout();
    let mut first = [0u8; 64];
    stdout.read_exact(&mut first).unwrap();
    // While the long test runs, a short one completes.
    let doc = json(&bench_ok(&["-t", "1s", "-i", "0", "--json", &l.dest()]));
    assert!(u(&doc["end"]["sum_received"]["bytes"]) > 0, "{doc}");
    assert!(
        long.try_exit().is_none(),
        "the long test should still be running"
    );
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    long.expect_code(0, T);
    assert!(rest.contains("receiver"), "{rest}");
}

#[test]
fn a_client_killed_mid_test_does_not_stop_the_listener() {
    let l = Listener::start(
        &["-k", "--resume-timeout", "1s"],
        Stdio::null(),
        Stdio::null(),
    );
    let mut cmd = msock(&["bench", "-t", "30s", "-i", "100ms", &l.dest()]);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let mut victim = Proc::spawn("msock bench (killed)", cmd);
    let mut first = [0u8; 64];
    victim.take_stdout().read_exact(&mut first).unwrap();
    victim.kill();
    // A plain TCP bench client that vanishes after its parameters and some data.
    let mut raw = tcp_connect(l.addr, Duration::from_secs(5));
    raw.write_all(b"MSBENCH\x01").unwrap();
    let params = br#"{"version":1,"time_ms":30000,"bytes":null,"len":1000,"interval_ms":100,"omit_ms":0,"reverse":false,"bidir":false}"#;
    let mut msg = vec![1u8];
    msg.extend_from_slice(&(params.len() as u32).to_be_bytes());
    msg.extend_from_slice(params);
    msg.extend_from_slice(&[2, 0, 0, 3, 232]);
    msg.extend_from_slice(&[0; 600]);
    raw.write_all(&msg).unwrap();
    drop(raw);
    let out = bench_ok(&["-t", "1s", "--json", &l.dest()]);
    assert!(u(&json(&out)["end"]["sum_received"]["bytes"]) > 0);
    // Both abandoned tests end (the session after --resume-timeout).
    assert!(
        l.proc
            .stderr
            .wait_contains(Duration::from_secs(10), "the peer ended its side"),
        "{}",
        l.proc.stderr.text()
    );
    assert!(
        l.proc
            .stderr
            .wait_contains(Duration::from_secs(10), "connection to peer lost"),
        "{}",
        l.proc.stderr.text()
    );
    let mut l = l;
    l.proc.assert_running("-k keeps serving");
}

#[test]
fn garbage_from_a_bench_client_is_refused_cleanly() {
    let mut l = listener();
    let mut raw = tcp_connect(l.addr, Duration::from_secs(5));
    raw.write_all(b"MSBENCH\x01\x09\x00\x00\x00\x00").unwrap();
    let (reply, _) = read_to_end_bounded(&mut raw);
    // The listener tells why (an ERROR message) and closes.
    assert_eq!(reply.first(), Some(&6u8), "{reply:?}");
    assert!(String::from_utf8_lossy(&reply).contains("unknown bench message type 9"));
    bench_ok(&["-t", "0.5s", &l.dest()]);
    l.proc.assert_running("-k keeps serving");
}

#[test]
fn a_plain_client_that_only_looks_like_bench_is_plain_tcp() {
    let dir = tempdir();
    let out = dir.path().join("out");
    let mut l = Listener::start(
        &["--recv-only", "--allow-plain"],
        Stdio::null(),
        stdout_to(&out),
    );
    let mut raw = tcp_connect(l.addr, Duration::from_secs(5));
    raw.write_all(b"MSBENCH? no, just text\n").unwrap();
    drop(raw);
    l.proc.expect_code(0, T);
    assert_eq!(read(&out), b"MSBENCH? no, just text\n");
}

#[test]
fn errors_exit_1_with_json_or_2_for_bad_arguments() {
    let dead = dead_port().to_string();
    let (exit, out) = bench(&["-t", "1s", "--json", &dead]);
    assert_eq!(exit.code, Some(1), "{}", exit.stderr);
    assert!(
        json(&out)["error"]
            .as_str()
            .unwrap()
            .contains("cannot connect"),
        "{out}"
    );
    let bad: &[&[&str]] = &[
        &["-t", "soon"],
        &["-t", "0s"],
        &["-n", "-5"],
        &["-n", "lots"],
        &["-l", "0"],
        &["-l", "1G"],
        &["-i", "1ms"],
        &["-t", "2s", "--omit", "5s"],
        &["-R", "--bidir"],
        &["--stripe"],
        &["-6"],
        &["x.invalid"],
    ];
    for args in bad {
        let (exit, _) = bench(args);
        assert_eq!(exit.code, Some(2), "msock bench {args:?}: {}", exit.stderr);
        assert!(
            exit.stderr.contains("msock") || exit.stderr.contains("error"),
            "{}",
            exit.stderr
        );
        assert!(exit.stderr.len() > 20, "a message for {args:?}");
    }
}
