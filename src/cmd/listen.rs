//! `msock listen [ADDR:]PORT`: accept one session (or, with -k, one after another) and copy it
//! to stdout, stdin to it. Plain TCP clients are served as plain TCP unless --no-plain.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::{ctrl_c, family, finish, session_config, Failure};
use crate::cli::{parse_listen_addr, ListenArgs};
use crate::proto::{ErrorCode, PathId, Session};
use crate::runtime::conn::bind_listener;
use crate::runtime::control::{self, ControlPlane, ControlRoutes};
use crate::runtime::events;
use crate::runtime::{
    accept_loop, netwatch, plain, resolve, DetectPolicy, Driver, Family, Incoming, Routes,
    StdinSource, StdoutSink,
};

/// Runs `msock listen`.
pub async fn run(args: ListenArgs) -> Result<(), Failure> {
    let (host, port) = parse_listen_addr(&args.addr).map_err(Failure::local)?;
    // Take over Ctrl-C before announcing the port, so that a script that starts us and then
    // interrupts us always sees exit status 130.
    let mut interrupted = Box::pin(ctrl_c());
    futures_poll_once(interrupted.as_mut()).await;
    super::apply_process_settings(&args.stream)?;
    let fam = family(&args.stream);
    let listeners = bind_all(host.as_deref(), port, fam).await?;
    for l in &listeners {
        let a = l.local_addr().map_err(Failure::local)?;
        if port == 0 {
            eprintln!("msock: listening on {a}");
        } else {
            tracing::info!("listening on {a}");
        }
    }
    let policy = DetectPolicy {
        allow_plain: !args.no_plain,
        wait: args.detect_wait,
        handshake_timeout: Duration::from_secs(10),
    };
    let shared = Shared {
        routes: Arc::new(Mutex::new(HashMap::new())),
        control_routes: Arc::new(Mutex::new(HashMap::new())),
        control: bind_control(&listeners),
    };
    for socket in shared.control.iter() {
        tokio::spawn(control::route(
            socket.clone(),
            shared.control_routes.clone(),
        ));
    }
    let (tx, mut rx) = mpsc::channel(64);
    for l in listeners {
        tokio::spawn(accept_loop(l, policy, shared.routes.clone(), tx.clone()));
    }
    drop(tx);

    let mut stdin = (!args.stream.recv_only).then(StdinSource::spawn);
    let mut stdout = (!args.stream.send_only).then(StdoutSink::spawn);
    let mut queue: VecDeque<Incoming> = VecDeque::new();
    loop {
        let next = match queue.pop_front() {
            Some(i) => i,
            None => tokio::select! {
                i = rx.recv() => match i {
                    Some(i) => i,
                    None => return Err(Failure::local("the listening sockets closed")),
                },
                _ = &mut interrupted => return Err(Failure::interrupted()),
            },
        };
        let result = {
            let serve = serve(next, &args, &shared, stdin.as_mut(), stdout.as_mut());
            tokio::pin!(serve);
            // While one session runs, newer clients wait (-k) or are turned away.
            loop {
                tokio::select! {
                    r = &mut serve => break r,
                    Some(i) = rx.recv() => {
                        if args.keep_open {
                            queue.push_back(i);
                        } else {
                            turn_away(i);
                        }
                    }
                }
            }
        };
        match result {
            Err(f) if f.code == 130 => return Err(f),
            Err(f) if args.keep_open => eprintln!("msock: {}", f.message),
            r if !args.keep_open => {
                let flushed = match stdout.take() {
                    Some(s) => s.finish().await,
                    None => Ok(()),
                };
                return match (r, flushed) {
                    (Ok(()), Err(e)) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                        Err(Failure::local(format!("writing output: {e}")))
                    }
                    (r, _) => r,
                };
            }
            _ => {}
        }
    }
}

/// Polls `f` once (registering whatever it waits for), without waiting for it.
async fn futures_poll_once<F: std::future::Future + ?Sized>(f: std::pin::Pin<&mut F>) {
    let mut f = Some(f);
    std::future::poll_fn(|cx| {
        if let Some(f) = f.take() {
            let _ = f.poll(cx);
        }
        std::task::Poll::Ready(())
    })
    .await
}

/// Binds every listening socket `[host:]port` asks for.
async fn bind_all(
    host: Option<&str>,
    port: u16,
    fam: Family,
) -> Result<Vec<tokio::net::TcpListener>, Failure> {
    let addrs: Vec<SocketAddr> = match host {
        Some(h) => resolve(&format!("{}:{port}", bracket(h)), fam).await?,
        None => {
            let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
            let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
            match fam {
                Family::V4 => vec![v4],
                Family::V6 => vec![v6],
                Family::Any => vec![v4, v6],
            }
        }
    };
    let mut out = Vec::new();
    let mut first_err = None;
    let mut port = port;
    for (i, mut a) in addrs.into_iter().enumerate() {
        // With port 0, every socket shares the port the first one got.
        a.set_port(port);
        match bind_listener(a) {
            Ok(l) => {
                if i == 0 {
                    port = l.local_addr().map_err(Failure::local)?.port();
                }
                out.push(l);
            }
            Err(e) => {
                tracing::debug!("cannot listen on {a}: {e}");
                first_err.get_or_insert((a, e));
            }
        }
    }
    match (out.is_empty(), first_err) {
        (true, Some((a, e))) => Err(Failure::local(format!(
            "cannot listen on {a}: {e}{}",
            if e.kind() == std::io::ErrorKind::AddrInUse {
                " (another program uses this port; pick another)"
            } else {
                ""
            }
        ))),
        _ => Ok(out),
    }
}

fn bracket(h: &str) -> String {
    if h.contains(':') {
        format!("[{h}]")
    } else {
        h.to_owned()
    }
}

/// Refuses a client because a session is already running (without -k).
fn turn_away(i: Incoming) {
    match i {
        Incoming::Open { mut conn, .. } => {
            tracing::info!("{} refused: already serving a session", conn.peer);
            conn.queue_preamble();
            tokio::spawn(conn.refuse(
                ErrorCode::Busy,
                "the listener is serving another session (start it with -k to queue clients)",
            ));
        }
        Incoming::Plain { peer, .. } => {
            tracing::info!("{peer} refused: already serving a session");
        }
    }
}

/// What every session of the listener shares.
struct Shared {
    /// Session id → its driver, for attaching flowpaths.
    routes: Routes,
    /// Session id → its driver, for control datagrams.
    control_routes: ControlRoutes,
    /// The control sockets (one per address family), on the listening port.
    control: Vec<Arc<UdpSocket>>,
}

/// One UDP control socket per address family the listener uses, on the listening port and
/// the family's wildcard address (so that it survives the listener's own address changes).
fn bind_control(listeners: &[tokio::net::TcpListener]) -> Vec<Arc<UdpSocket>> {
    let mut out: Vec<Arc<UdpSocket>> = Vec::new();
    for l in listeners {
        let Ok(a) = l.local_addr() else { continue };
        if out
            .iter()
            .any(|s| s.local_addr().is_ok_and(|s| s.is_ipv4() == a.is_ipv4()))
        {
            continue;
        }
        let any: IpAddr = if a.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        match control::bind_server(SocketAddr::new(any, a.port())) {
            Ok(s) => out.push(Arc::new(s)),
            Err(e) => tracing::warn!(
                "no UDP control socket on port {} ({e}): clients will not hear of our moves",
                a.port()
            ),
        }
    }
    out
}

/// Serves one client to its end.
async fn serve(
    incoming: Incoming,
    args: &ListenArgs,
    shared: &Shared,
    stdin: Option<&mut StdinSource>,
    stdout: Option<&mut StdoutSink>,
) -> Result<(), Failure> {
    let started = Instant::now();
    match incoming {
        Incoming::Plain {
            stream,
            initial,
            peer,
        } => {
            tracing::info!("plain TCP client {peer} (not msock: no mobility, not encrypted)");
            let (r, totals) = plain::bridge(
                stream,
                initial,
                stdin,
                stdout,
                args.stream.idle_timeout,
                ctrl_c(),
            )
            .await;
            finish(r, totals, started, None).await
        }
        Incoming::Open { mut conn, hello } => {
            let epoch = Instant::now();
            let mut rng = StdRng::from_entropy();
            let routes = &shared.routes;
            let taken = |id| routes.lock().expect("routes lock").contains_key(&id);
            let socket = shared.control.iter().find(|s| {
                s.local_addr()
                    .is_ok_and(|a| a.is_ipv4() == conn.local.is_ipv4())
            });
            let mut config = session_config(&args.stream);
            config.control_port = socket.map_or(0, |_| conn.local.port());
            let (session, welcome) =
                Session::accept(config, &hello, &mut rng, Duration::ZERO, taken)
                    .map_err(Failure::network)?;
            let id = session.id();
            tracing::info!("session {id:016x} open: {} -> {}", conn.peer, conn.local);
            events::emit(
                "session_open",
                serde_json::json!({"session": format!("{id:016x}"),
                    "local": conn.local.to_string(), "remote": conn.peer.to_string()}),
            );
            conn.queue_preamble();
            conn.queue(&welcome);
            let (atx, arx) = mpsc::channel(16);
            routes.lock().expect("routes lock").insert(id, atx);
            let mut driver = Driver::new(session, epoch, stdin, stdout);
            driver.add_path(PathId(0), conn);
            driver.set_incoming(arx);
            driver.set_resume_timeout(args.stream.resume_timeout);
            driver.set_netwatch(netwatch::spawn());
            if let Some(socket) = socket {
                let (ctx, crx) = mpsc::channel(16);
                shared
                    .control_routes
                    .lock()
                    .expect("control routes lock")
                    .insert(id, ctx);
                driver.set_control(ControlPlane::server(socket.clone(), crx));
            }
            driver.set_interrupt(ctrl_c());
            let (r, totals) = driver.run().await;
            routes.lock().expect("routes lock").remove(&id);
            shared
                .control_routes
                .lock()
                .expect("control routes lock")
                .remove(&id);
            finish(r, totals, started, None).await
        }
    }
}
