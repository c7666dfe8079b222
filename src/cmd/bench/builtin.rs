//! The built-in run (`msock bench` without HOST:PORT): a bench server on loopback, on its own
//! thread with its own single-threaded runtime (like a second process), and three tests
//! against it one after another, each for a third of --time: plain TCP, msock over one
//! flowpath, and msock striped over one flowpath from each of several loopback addresses.

use crate::proto::handshake::{fingerprint, Identity};
use crate::proto::Config;
use crate::runtime::events::Events;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use comfy_table::{presets, CellAlignment, Table};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::dial::Via;
use super::out::{self, Mode, Output};
use super::{goodput, json, params, ratio, streams, text};
use crate::bench::model::Cpu;
use crate::bench::run::Run;
use crate::cli::{BenchArgs, StreamArgs};
use crate::cmd::Failure;
use crate::runtime::conn::bind_listener;
use crate::runtime::ifaces::{self, IfaceKind};
use crate::runtime::policy::{Binding, Policy};
use crate::runtime::server::{Server as Listener, ServerConfig};
use crate::runtime::services::{Limits, Next, Services};
use crate::runtime::DetectPolicy;
use tokio::task::JoinError;

/// Loopback addresses the striped test uses (those this machine lets us bind).
const STRIPE_ADDRS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(127, 0, 0, 1),
    Ipv4Addr::new(127, 0, 0, 2),
    Ipv4Addr::new(127, 0, 0, 3),
];

/// One of the run's tests, as measured.
struct Measured {
    name: String,
    flowpaths: usize,
    /// Its streams (-P).
    runs: Vec<Run>,
    /// CPU time of the whole process (both ends) during the test.
    cpu: Cpu,
}

/// Runs the built-in comparison.
pub async fn run(args: &BenchArgs, out: &mut Output) -> Result<(), Failure> {
    refuse_peer_flags(args)?;
    let began = Instant::now();
    // The built-in listener has a throwaway key, which the client is told (nothing is pinned
    // or written to the config directory for it; the client uses its own key, as always).
    let mut config = crate::cmd::session_config(&args.stream)?;
    let mut args = args.clone();
    if config.encrypt {
        let id = Identity::generate(&mut rand::rngs::OsRng);
        args.dial.peer_key = Some(fingerprint(&id.public));
        config.identity = Some(id);
    }
    let args = &args;
    let server = Server::start(&args.stream, config)?;
    let dest = server.addr.to_string();
    let time = args.time / 3;
    let params = params(args, time);
    let stripe = stripe_bindings();
    let tests = [
        ("plain TCP".to_owned(), Via::Tcp, 1),
        (
            "msock, 1 flowpath".to_owned(),
            Via::Session(Policy::default()),
            1,
        ),
        (
            format!("msock, {} flowpaths", stripe.len()),
            Via::Session(Policy {
                fixed: stripe.clone(),
                ..Policy::default()
            }),
            stripe.len(),
        ),
    ];
    let mut done: Vec<Measured> = Vec::new();
    out.same_process = true;
    for (name, via, flowpaths) in tests {
        let (runs, cpu) = streams(&dest, args, &via, &params, out, Some(name.clone())).await?;
        if out.mode != Mode::Human {
            out.end(&json::document(&runs, &cpu, true, args.window));
        }
        done.push(Measured {
            name,
            flowpaths,
            runs,
            cpu,
        });
    }
    out.test = None;
    drop(server);
    let wall = began.elapsed();
    match out.mode {
        Mode::Human => print_human(&done, wall, out),
        Mode::Json => {
            let tests: Vec<Value> = done
                .iter()
                .map(|m| {
                    let mut d = json::document(&m.runs, &m.cpu, true, args.window);
                    d["name"] = json!(m.name);
                    d["flowpaths"] = json!(m.flowpaths);
                    d
                })
                .collect();
            let doc = json!({
                "start": {
                    "version": format!("msock {}", env!("CARGO_PKG_VERSION")),
                    "timestamp": {"time": humantime::format_rfc3339_seconds(SystemTime::now()).to_string()},
                    "builtin": true,
                },
                "tests": tests,
                "summary": summary(&done),
                "seconds": wall.as_secs_f64(),
            });
            out::line(&serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        Mode::JsonStream => {
            out.test = Some("summary".into());
            out.end(&json!({"end": {"summary": summary(&done), "seconds": wall.as_secs_f64()}}));
        }
    }
    Ok(())
}

/// The built-in run picks its own paths: flags that choose them are for HOST:PORT.
fn refuse_peer_flags(args: &BenchArgs) -> Result<(), Failure> {
    let p = &args.dial.policy;
    let policy = p.stripe
        || p.prefer_wifi
        || p.prefer_cellular
        || !p.iface.is_empty()
        || !p.backup.is_empty()
        || !p.iface_kind.is_empty();
    if policy || args.dial.source.is_some() {
        return Err(Failure::local(
            "interface flags (--stripe, --iface, -s, ...) need HOST:PORT: the built-in run \
             compares one loopback flowpath with several by itself",
        ));
    }
    if args.stream.ipv6 {
        return Err(Failure::local(
            "the built-in run uses IPv4 loopback (127.0.0.1): -6 needs HOST:PORT, e.g. [::1]:9000",
        ));
    }
    Ok(())
}

/// One binding per loopback address this machine lets us bind.
fn stripe_bindings() -> Vec<Binding> {
    let lo = ifaces::discover(&Default::default())
        .into_iter()
        .find(|i| i.kind == IfaceKind::Loopback)
        .map_or_else(|| "lo".to_owned(), |i| i.name);
    STRIPE_ADDRS
        .iter()
        .filter(|a| std::net::UdpSocket::bind((**a, 0)).is_ok())
        .map(|a| Binding {
            iface: lo.clone(),
            addr: IpAddr::V4(*a),
            kind: IfaceKind::Loopback,
        })
        .collect()
}

fn summary(done: &[Measured]) -> Value {
    let tcp = done.first().map_or(0.0, |m| goodput(&m.runs));
    let rows: Vec<Value> = done
        .iter()
        .map(|m| {
            let (t, u, s) = m.cpu.percent();
            json!({"name": m.name, "flowpaths": m.flowpaths,
                "bits_per_second": goodput(&m.runs),
                "ratio_to_tcp": ratio(goodput(&m.runs), tcp),
                "cpu_seconds": m.cpu.user + m.cpu.system,
                "cpu_utilization_percent": {"total": t, "user": u, "system": s}})
        })
        .collect();
    Value::Array(rows)
}

fn print_human(done: &[Measured], wall: Duration, out: &Output) {
    let tcp = done.first().map_or(0.0, |m| goodput(&m.runs));
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    t.set_header([
        "",
        "flowpaths",
        "goodput",
        "vs plain TCP",
        "CPU time (both ends)",
    ]);
    for m in done {
        t.add_row([
            m.name.clone(),
            m.flowpaths.to_string(),
            text::rate(goodput(&m.runs)),
            ratio(goodput(&m.runs), tcp).map_or("-".into(), |r| format!("{r:.2}")),
            format!("{:.2} s", m.cpu.user + m.cpu.system),
        ]);
    }
    for i in 1..5 {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    if let Some(striped) = done.last().filter(|m| m.flowpaths > 1) {
        out.say(&format!("\n{}, per flowpath:", striped.name));
        out.say(&text::end(&striped.runs, &striped.cpu, true));
    }
    out.say(&format!(
        "\nloopback, client and listener on one thread each, {:.1} s in all:\n{t}",
        wall.as_secs_f64()
    ));
}

/// The run's bench server: a listener on 127.0.0.1, on a thread of its own.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(stream: &StreamArgs, config: Config) -> Result<Server, Failure> {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel();
        let stream = stream.clone();
        let thread = std::thread::Builder::new()
            .name("msock-bench-server".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = addr_tx.send(Err(format!("cannot start its runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(serve(stream, config, addr_tx, stopped));
                rt.shutdown_background();
            })
            .map_err(|e| Failure::local(format!("cannot start the bench server thread: {e}")))?;
        let addr = addr_rx
            .recv()
            .map_err(|_| "it stopped".to_owned())
            .and_then(|r| r)
            .map_err(|e| Failure::local(format!("the built-in bench server failed: {e}")))?;
        Ok(Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The server thread's work: listen, serve bench clients concurrently until told to stop.
async fn serve(
    stream: StreamArgs,
    config: Config,
    addr_tx: std::sync::mpsc::Sender<Result<SocketAddr, String>>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = match bind_listener(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))) {
        Ok(l) => l,
        Err(e) => {
            let _ = addr_tx.send(Err(format!("cannot listen on 127.0.0.1: {e}")));
            return;
        }
    };
    let Ok(addr) = listener.local_addr() else {
        let _ = addr_tx.send(Err("its listening socket has no address".into()));
        return;
    };
    let mut services = Services::default();
    super::offer(&mut services, &stream, true);
    let server = Listener::new(
        std::slice::from_ref(&listener),
        ServerConfig {
            session: config,
            resume_timeout: stream.resume_timeout,
            events: Events::sessions(stream.json_events),
            authorized: None,
            detect: DetectPolicy {
                allow_plain: false,
                magics: services.magics(),
                wait: Duration::from_millis(500),
                handshake_timeout: Duration::from_secs(10),
                max_pending: 64,
            },
        },
    );
    let (tx, mut rx) = mpsc::channel(16);
    server.listen(listener, tx);
    let _ = addr_tx.send(Ok(addr));
    // Bench clients only, served concurrently (byte streams have nothing to talk to here).
    let limits = Limits {
        keep_open: true,
        max_sessions: 64,
    };
    let ended = |r: Result<Result<(), Failure>, JoinError>| {
        match r {
            Ok(Err(f)) => tracing::info!("built-in bench server: {}", f.message),
            Err(e) => tracing::info!("built-in bench server: a test failed: {e}"),
            Ok(Ok(())) => {}
        }
        Next::Continue
    };
    services
        .serve(&server, &mut rx, limits, ended, async {
            let _ = (&mut stop).await;
        })
        .await;
}
