//! `msock listen [ADDR:]PORT`: accept one session (or, with -k, one after another) and copy it
//! to stdout, stdin to it. Plain TCP clients are served as plain TCP unless --no-plain.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::receive::SaveOptions;
use super::{ctrl_c, family, finish, futures_poll_once, session_config, Exit, Failure};
use crate::cli::{parse_listen_addr, ListenArgs};
use crate::proto::handshake::fingerprint;
use crate::proto::{ErrorCode, Service};
use crate::runtime::events::Events;
use crate::runtime::keys;
use crate::runtime::server::bind_all;
use crate::runtime::server::{Server, ServerConfig};
use crate::runtime::services::{Opening, Route, Services, StreamClient};
use crate::runtime::{plain, DetectPolicy, Incoming, StdinSource, StdoutSink};

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
    let program = super::exec::spec(&args)?;
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
    let save = match &args.save_dir {
        Some(dir) => Some(Arc::new(
            SaveOptions::new(dir.clone(), args.overwrite, args.max_size).map_err(Failure::local)?,
        )),
        None => None,
    };
    let mut services = services(&args, save);
    if let Some(p) = &program {
        super::exec::offer(&mut services, p.clone());
    }
    let server = Server::new(
        &listeners,
        ServerConfig {
            session: config,
            resume_timeout: args.stream.resume_timeout,
            events: Events::sessions(args.stream.json_events),
            detect: DetectPolicy {
                allow_plain: !args.no_plain,
                magics: services.magics(),
                wait: args.detect_wait,
                handshake_timeout: Duration::from_secs(10),
            },
        },
    );
    let (tx, mut rx) = mpsc::channel(64);
    for l in listeners {
        server.listen(l, tx.clone());
    }
    let mut relay_lost = match (&args.relay, &args.name) {
        (Some(relay), Some(name)) => {
            let inject = relay_inject(server.clone(), tx.clone());
            Some(register_at_relay(relay, name, &args, listening, inject).await?)
        }
        _ => None,
    };
    drop(tx);

    // A program listener's sessions go to its program, not to our stdin and stdout.
    let mut stdin = (!args.recv_only && program.is_none()).then(StdinSource::spawn);
    let mut stdout = (!args.send_only && program.is_none()).then(StdoutSink::spawn);
    let mut queue: VecDeque<Box<StreamClient>> = VecDeque::new();
    // Sessions other than byte streams (files, benchmarks) run concurrently, as tasks.
    let mut tasks: JoinSet<Result<(), Failure>> = JoinSet::new();
    loop {
        let next = match queue.pop_front() {
            Some(c) => c,
            None => {
                let i = tokio::select! {
                    i = rx.recv() => match i {
                        Some(i) => i,
                        None => return Err(Failure::local("the listening sockets closed")),
                    },
                    Some(r) = tasks.join_next() => {
                        let r = r.unwrap_or_else(|e| Err(Failure::local(format!("session task failed: {e}"))));
                        match r {
                            Err(f) if f.kind == Exit::NotStarted => tracing::info!("{}", f.message),
                            Err(f) if args.keep_open => eprintln!("msock: {}", f.message),
                            r if !args.keep_open => return r,
                            _ => {}
                        }
                        continue;
                    }
                    _ = &mut interrupted => return Err(Failure::interrupted()),
                    why = registration_lost(&mut relay_lost) => return Err(Failure::network(why)),
                };
                if !args.keep_open && !tasks.is_empty() {
                    turn_away(i);
                    continue;
                }
                match services.route(i, &server) {
                    Route::Task(t) => {
                        tasks.spawn(t);
                        continue;
                    }
                    Route::Refused(r) => {
                        tracing::info!("{r}");
                        continue;
                    }
                    Route::Stream(c) => c,
                }
            }
        };
        let result = {
            let serve = serve(*next, &args, &program, stdin.as_mut(), stdout.as_mut());
            tokio::pin!(serve);
            // While one stream session runs, newer stream clients wait (-k) or are turned
            // away; other services run alongside.
            loop {
                tokio::select! {
                    r = &mut serve => break r,
                    Some(i) = rx.recv() => {
                        if !args.keep_open {
                            turn_away(i);
                            continue;
                        }
                        match services.route(i, &server) {
                            Route::Task(t) => { tasks.spawn(t); }
                            Route::Stream(c) => queue.push_back(c),
                            Route::Refused(r) => tracing::info!("{r}"),
                        }
                    }
                    Some(r) = tasks.join_next(), if !tasks.is_empty() => {
                        match r {
                            Ok(Err(f)) if f.kind == Exit::NotStarted => tracing::info!("{}", f.message),
                            Ok(Err(f)) => eprintln!("msock: {}", f.message),
                            _ => {}
                        }
                    }
                }
            }
        };
        match result {
            Err(f) if f.kind == Exit::NotStarted => tracing::info!("{}", f.message),
            Err(f) if f.kind == Exit::Interrupted => return Err(f),
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

/// The services this listener offers besides byte streams: benchmarks always (in a session
/// or over plain TCP), files with --save-dir (else they are refused, saying why).
fn services(args: &ListenArgs, save: Option<Arc<SaveOptions>>) -> Services<Result<(), Failure>> {
    let mut services = Services::default();
    super::bench::offer(&mut services, &args.stream);
    services.session(Service::File, move |o: Opening| {
        let save = save.clone();
        async move {
            let Some(save) = save else {
                eprintln!(
                    "msock: refused a file transfer from {}: this listener has no --save-dir",
                    o.peer()
                );
                let why = "this listener does not accept files (start it with --save-dir DIR)";
                return Err(o.refuse(why.to_owned()).await.into());
            };
            super::receive::serve(o.accept()?, &save).await
        }
    });
    services
}

/// Feeds the relay's spliced flowpaths into the same classification as accepted ones.
fn relay_inject(server: Arc<Server>, tx: mpsc::Sender<Incoming>) -> crate::relay::agent::Inject {
    Arc::new(move |stream, peer| server.inject(stream, peer, tx.clone()))
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
        Incoming::Plain { peer, .. } | Incoming::Raw { peer, .. } => {
            tracing::info!("{peer} refused: already serving a session");
        }
    }
}

/// Serves one byte-stream client to its end.
async fn serve(
    client: StreamClient,
    args: &ListenArgs,
    program: &Option<Arc<crate::program::Spec>>,
    stdin: Option<&mut StdinSource>,
    stdout: Option<&mut StdoutSink>,
) -> Result<(), Failure> {
    if let Some(p) = program {
        return super::exec::serve_stream(client, p.clone(), args.allow_anyone).await;
    }
    let started = Instant::now();
    let events = Events::sessions(args.stream.json_events);
    match client {
        StreamClient::Plain {
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
            finish(r, totals, started, None, &events).await
        }
        StreamClient::Session(opening) => {
            let (mut driver, _registration) = opening.accept()?.into_driver(stdin, stdout);
            driver.set_interrupt(ctrl_c());
            let (r, totals) = driver.run().await;
            finish(r, totals, started, None, &events).await
        }
    }
}
