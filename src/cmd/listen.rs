//! `msock listen [ADDR:]PORT`: accept one session (or, with -k, one after another) and copy it
//! to stdout, stdin to it. Plain TCP clients are served as plain TCP unless --no-plain.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::accept::{accept, Shared};
use super::receive::SaveOptions;
use super::{ctrl_c, family, finish, futures_poll_once, session_config, Failure, NOT_STARTED};
use crate::cli::{parse_listen_addr, ListenArgs};
use crate::proto::handshake::fingerprint;
use crate::proto::{ErrorCode, Frame, Service};
use crate::runtime::server::bind_all;
use crate::runtime::keys;
use crate::runtime::{
    accept_loop, plain, DetectPolicy, Incoming, StdinSource, StdoutSink,
};

/// Runs `msock listen`.
pub async fn run(args: ListenArgs) -> Result<(), Failure> {
    if args.show_key {
        let id = keys::listener_identity().map_err(Failure::local)?;
        println!("{}", fingerprint(&id.public));
        return Ok(());
    }
    let (host, port) = match &args.addr {
        Some(a) => {
            let (h, p) = parse_listen_addr(a).map_err(Failure::local)?;
            (h, Some(p))
        }
        None => (None, None), // --relay only
    };
    let mut config = session_config(&args.stream)?;
    if config.encrypt {
        let id = keys::listener_identity().map_err(Failure::local)?;
        tracing::info!("listener key {}", fingerprint(&id.public));
        config.identity = Some(id);
    }
    // Take over Ctrl-C before announcing the port, so that a script that starts us and then
    // interrupts us always sees exit status 130.
    let mut interrupted = Box::pin(ctrl_c());
    futures_poll_once(interrupted.as_mut()).await;
    super::apply_process_settings(&args.stream)?;
    crate::runtime::sys::raise_nofile();
    let fam = family(&args.stream);
    let listeners = match port {
        Some(port) => bind_all(host.as_deref(), port, fam).await?,
        None => Vec::new(),
    };
    let mut listening = Vec::new();
    for l in &listeners {
        let a = l.local_addr().map_err(Failure::local)?;
        listening.push(a);
        if port == Some(0) {
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
    let save = match &args.save_dir {
        Some(dir) => Some(Arc::new(
            SaveOptions::new(dir.clone(), args.overwrite, args.max_size).map_err(Failure::local)?,
        )),
        None => None,
    };
    let shared = Shared::new(&listeners, args.stream.clone(), config);
    let (tx, mut rx) = mpsc::channel(64);
    for l in listeners {
        tokio::spawn(accept_loop(l, policy, shared.routes.clone(), tx.clone()));
    }
    let mut relay_lost = match (&args.relay, &args.name) {
        (Some(relay), Some(name)) => {
            let inject = relay_inject(policy, shared.clone(), tx.clone());
            Some(register_at_relay(relay, name, &args, listening, inject).await?)
        }
        _ => None,
    };
    drop(tx);

    let mut stdin = (!args.recv_only).then(StdinSource::spawn);
    let mut stdout = (!args.send_only).then(StdoutSink::spawn);
    let mut queue: VecDeque<Incoming> = VecDeque::new();
    // Sessions other than byte streams (files, benchmarks) run concurrently, as tasks.
    let mut services: JoinSet<Result<(), Failure>> = JoinSet::new();
    let spawn_service = |services: &mut JoinSet<_>, i: Incoming| {
        services.spawn(serve_service(i, shared.clone(), save.clone()));
    };
    loop {
        let next = match queue.pop_front() {
            Some(i) => i,
            None => tokio::select! {
                i = rx.recv() => match i {
                    Some(i) => i,
                    None => return Err(Failure::local("the listening sockets closed")),
                },
                Some(r) = services.join_next() => {
                    let r = r.unwrap_or_else(|e| Err(Failure::local(format!("session task failed: {e}"))));
                    match r {
                        Err(f) if f.code == NOT_STARTED => tracing::info!("{}", f.message),
                        Err(f) if args.keep_open => eprintln!("msock: {}", f.message),
                        r if !args.keep_open => return r,
                        _ => {}
                    }
                    continue;
                }
                _ = &mut interrupted => return Err(Failure::interrupted()),
                why = registration_lost(&mut relay_lost) => return Err(Failure::network(why)),
            },
        };
        if service_of(&next) != Service::Stream {
            if args.keep_open || services.is_empty() {
                spawn_service(&mut services, next);
            } else {
                turn_away(next);
            }
            continue;
        }
        if !args.keep_open && !services.is_empty() {
            turn_away(next);
            continue;
        }
        let result = {
            let serve = serve(next, &args, &shared, stdin.as_mut(), stdout.as_mut());
            tokio::pin!(serve);
            // While one stream session runs, newer stream clients wait (-k) or are turned
            // away; other services run alongside.
            loop {
                tokio::select! {
                    r = &mut serve => break r,
                    Some(i) = rx.recv() => {
                        if !args.keep_open {
                            turn_away(i);
                        } else if service_of(&i) == Service::Stream {
                            queue.push_back(i);
                        } else {
                            spawn_service(&mut services, i);
                        }
                    }
                    Some(r) = services.join_next(), if !services.is_empty() => {
                        match r {
                            Ok(Err(f)) if f.code == NOT_STARTED => tracing::info!("{}", f.message),
                            Ok(Err(f)) => eprintln!("msock: {}", f.message),
                            _ => {}
                        }
                    }
                }
            }
        };
        match result {
            Err(f) if f.code == NOT_STARTED => tracing::info!("{}", f.message),
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

/// Feeds the relay's spliced flowpaths into the same classification as accepted ones.
fn relay_inject(
    policy: DetectPolicy,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Incoming>,
) -> crate::relay::agent::Inject {
    Arc::new(move |stream, peer| {
        crate::runtime::inject(stream, peer, policy, shared.routes.clone(), tx.clone())
    })
}

/// Registers `name` at `relay` (exit 1 if the relay refuses it, 2 for local trouble) and
/// keeps the registration up; the receiver hears if the name is lost for good.
async fn register_at_relay(
    relay: &str,
    name: &str,
    args: &ListenArgs,
    listening: Vec<SocketAddr>,
    inject: crate::relay::agent::Inject,
) -> Result<mpsc::Receiver<String>, Failure> {
    use crate::relay::{agent, client, secrets};
    let named = client::parse(&format!("{name}@{relay}"))
        .map_err(Failure::local)?
        .ok_or_else(|| Failure::local("give --relay HOST[:PORT]"))?;
    let secret_file = secrets::secret_path(&named.relay, name).ok_or_else(|| {
        Failure::local("no state directory for the name's secret: set MSOCK_STATE_DIR or HOME")
    })?;
    let key = match &args.relay_key_file {
        Some(p) => Some(
            secrets::load_keys(p)
                .map_err(Failure::local)?
                .swap_remove(0),
        ),
        None => None,
    };
    let cfg = agent::AgentConfig {
        relay: named.relay,
        name: named.name,
        secret_file,
        key,
        family: family(&args.stream),
        listening,
    };
    agent::start(cfg, inject).await.map_err(|e| match e {
        agent::RegisterError::Local(m) => Failure::local(m),
        agent::RegisterError::Refused(m) => Failure::network(m),
        agent::RegisterError::Transient(m) => {
            Failure::network(format!("cannot register at the relay: {m}"))
        }
    })
}

/// Resolves when the relay registration is lost for good (never without a relay).
async fn registration_lost(rx: &mut Option<mpsc::Receiver<String>>) -> String {
    match rx {
        Some(r) => match r.recv().await {
            Some(why) => why,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// The service an incoming client asks for (plain TCP clients get a byte stream).
fn service_of(i: &Incoming) -> Service {
    match i {
        Incoming::Open { hello, .. } => hello_service(hello),
        Incoming::BenchTcp { .. } => Service::Bench,
        Incoming::Plain { .. } => Service::Stream,
    }
}

fn hello_service(hello: &Frame) -> Service {
    match hello {
        Frame::HelloOpen { service, .. } => *service,
        _ => Service::Stream,
    }
}

/// Serves one file-transfer or benchmark client to its end (refusing what this listener
/// does not offer).
async fn serve_service(
    incoming: Incoming,
    shared: Arc<Shared>,
    save: Option<Arc<SaveOptions>>,
) -> Result<(), Failure> {
    let (mut conn, hello) = match incoming {
        Incoming::Open { conn, hello } => (conn, hello),
        Incoming::BenchTcp { stream, peer } => {
            return super::bench::serve_tcp(stream, peer, &shared.stream).await
        }
        Incoming::Plain { .. } => return Ok(()),
    };
    let why = match (hello_service(&hello), save) {
        (Service::Bench, _) => return super::bench::serve(accept(conn, &hello, &shared)?).await,
        (Service::File, Some(save)) => {
            return super::receive::serve(accept(conn, &hello, &shared)?, &save).await
        }
        (Service::File, None) => {
            eprintln!(
                "msock: refused a file transfer from {}: this listener has no --save-dir",
                conn.peer
            );
            "this listener does not accept files (start it with --save-dir DIR)".to_owned()
        }
        (other, _) => format!("{other} is not offered by this listener (a newer msock?)"),
    };
    let peer = conn.peer;
    conn.queue_preamble();
    conn.refuse(ErrorCode::Refused, why.clone()).await;
    Err(Failure::not_started(format!("refused {peer}: {why}")))
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
        Incoming::Plain { peer, .. } | Incoming::BenchTcp { peer, .. } => {
            tracing::info!("{peer} refused: already serving a session");
        }
    }
}

/// Serves one client to its end.
async fn serve(
    incoming: Incoming,
    args: &ListenArgs,
    shared: &Arc<Shared>,
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
        Incoming::Open { conn, hello } => {
            let (mut driver, _registration) =
                accept(conn, &hello, shared)?.into_driver(stdin, stdout);
            driver.set_interrupt(ctrl_c());
            let (r, totals) = driver.run().await;
            finish(r, totals, started, None).await
        }
        // Bench clients are services (see `service_of`), never byte streams.
        Incoming::BenchTcp { stream, peer } => {
            super::bench::serve_tcp(stream, peer, &args.stream).await
        }
    }
}
