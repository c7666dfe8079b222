//! `msock listen [ADDR:]PORT`: serve sessions (one, or with -k several at once) with stdin
//! and stdout shared as `ncat -k` shares them (see `runtime::shared_stdio`), files and
//! benchmarks alongside. Plain TCP clients are served only with --allow-plain. The
//! concurrency (tasks, limits, busy refusals) lives in `runtime::services`; this command
//! converts arguments and says what a byte-stream session is attached to.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::receive::SaveOptions;
use super::{ctrl_c, family, finish, futures_poll_once, session_config, Exit, Failure};
use crate::cli::{parse_listen_addr, ListenArgs};
use crate::forward::Forward;
use crate::proto::handshake::fingerprint;
use crate::proto::Service;
use crate::runtime::authorized::AuthorizedKeys;
use crate::runtime::events::Events;
use crate::runtime::keys;
use crate::runtime::server::bind_all;
use crate::runtime::server::{Server, ServerConfig};
use crate::runtime::services::{Limits, Next, Opening, Served, Services, StreamClient};
use crate::runtime::{plain, DetectPolicy, Incoming, SharedStdio};

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
    if args.code && args.relay.len() > 1 {
        return Err(Failure::local(
            "--code pairs through one relay: give one --relay",
        ));
    }
    if args.relay_key_file.is_some() && args.relay.is_empty() && !args.code {
        return Err(Failure::local(
            "--relay-key-file is for a relay: give --relay (or --code)",
        ));
    }
    if args.relay.len() > crate::relay::client::MAX_RELAYS {
        return Err(Failure::local(format!(
            "--relay: at most {} relays",
            crate::relay::client::MAX_RELAYS
        )));
    }
    if !args.relay.is_empty() && args.name.is_none() && !args.code {
        return Err(Failure::local(
            "--relay needs --name NAME (the name clients give as NAME@RELAY), or --code",
        ));
    }
    let forward = forward_setup(&args)?;
    let program = super::exec::spec(&args)?;
    if args.allow_anyone && forward.is_none() && program.is_none() {
        return Err(Failure::local(
            "--allow-anyone goes with --exec, --sh-exec or --forward (it lets them run without \
             a client key)",
        ));
    }
    let mut config = session_config(&args.stream)?;
    let authorized = match &args.authorized_keys {
        Some(p) => Some(Arc::new(AuthorizedKeys::load(p).map_err(Failure::local)?)),
        None => None,
    };
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
            SaveOptions::new(
                dir.clone(),
                args.overwrite,
                args.max_size,
                super::consent::Consent::new(args.yes, args.authorized_keys.is_some()),
            )
            .map_err(Failure::local)?,
        )),
        None => None,
    };
    // Stdin and stdout are used only when byte streams are attached to them; stdin not when
    // it answers the questions about file offers.
    let stdio_used = forward.is_none() && program.is_none();
    let asks = save.as_ref().is_some_and(|s| s.consent.uses_stdin());
    let stdio = SharedStdio::start(
        stdio_used && !args.recv_only && !asks,
        stdio_used && !args.send_only,
    );
    let mut services = services(&args, save);
    if let Some(p) = &program {
        super::exec::offer(&mut services, p.clone());
    }
    // What a byte-stream session (or plain TCP client) is attached to: a forward target, a
    // program (which serves program sessions only), or stdin and stdout.
    let (shared, idle, json) = (
        stdio.clone(),
        args.stream.idle_timeout,
        args.stream.json_events,
    );
    // Plain TCP clients prove no key: a program serves them only when no key is required.
    let allow_anyone =
        args.allow_anyone && args.stream.psk_file.is_none() && args.authorized_keys.is_none();
    match (forward, program) {
        (Some(f), _) => services.stream(move |client| forward_one(client, f.clone(), json)),
        (None, Some(p)) => services
            .stream(move |client| super::exec::serve_stream(client, p.clone(), allow_anyone)),
        (None, None) => services.stream(move |client| {
            let stdio = shared.clone();
            async move { serve(client, &stdio, idle, json).await }
        }),
    }
    if args.allow_plain {
        tracing::info!(
            "plain TCP clients are served (--allow-plain): not encrypted, not authenticated"
        );
    } else {
        tracing::info!("plain TCP clients are refused (--allow-plain serves them)");
    }
    // --code: pair with a sender first; its sessions then need the pairing's key.
    let paired = match (args.code, config.identity.as_ref()) {
        (true, Some(id)) => tokio::select! {
            p = super::code::listen_pairing(&args, id.public) => Some(p?),
            _ = interrupted.as_mut() => return Err(Failure::interrupted()),
        },
        _ => None,
    };
    if let Some((_, a)) = &paired {
        config.psk = Some(a.paired.psk);
    }
    let server = Server::new(
        &listeners,
        ServerConfig {
            session: config,
            resume_timeout: args.stream.resume_timeout,
            events: Events::sessions(args.stream.json_events),
            authorized,
            detect: DetectPolicy {
                allow_plain: args.allow_plain,
                magics: services.magics(),
                wait: args.detect_wait,
                handshake_timeout: Duration::from_secs(10),
                max_pending: args.max_sessions.max(64),
            },
        },
    );
    let (tx, mut rx) = mpsc::channel(64);
    for l in listeners {
        server.listen(l, tx.clone());
    }
    let mut relay_lost = match (&paired, &args.name) {
        (Some((relay, a)), _) => {
            let inject = relay_inject(server.clone(), tx.clone());
            let (relays, name) = (std::slice::from_ref(relay), &a.paired.session_name);
            Some(register_at_relay(relays, name, &args, listening, inject).await?)
        }
        (None, Some(name)) if !args.relay.is_empty() => {
            let inject = relay_inject(server.clone(), tx.clone());
            Some(register_at_relay(&args.relay, name, &args, listening, inject).await?)
        }
        _ => None,
    };
    let coded = paired.is_some();
    let coded_name = paired
        .as_ref()
        .map(|(r, a)| (r.clone(), a.paired.session_name.clone()));
    if let Some((_, a)) = paired {
        // The session name is registered: the sender may dial it.
        a.done().await;
    }
    drop(tx);

    let limits = Limits {
        // A coded listener serves its sender's rerun while a killed session still waits.
        keep_open: args.keep_open || coded,
        max_sessions: args.max_sessions,
    };
    let keep_open = args.keep_open;
    let served = services.serve(
        &server,
        &mut rx,
        limits,
        |r| match coded {
            true => super::code::session_ended(r),
            false => session_ended(r, keep_open),
        },
        interrupted,
    );
    let result = tokio::select! {
        s = served => match s {
            Served::Stopped(r) => r,
            Served::Interrupted => Err(Failure::interrupted()),
            Served::Closed => Err(Failure::local("the listening sockets closed")),
        },
        why = registration_lost(&mut relay_lost) => Err(Failure::network(why)),
    };
    drop(services);
    if let (Some((relay, name)), Ok(())) = (&coded_name, &result) {
        super::code::listener_done(relay, name);
    }
    let flushed = stdio.finish().await;
    match (result, flushed) {
        (Ok(()), Err(e)) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Failure::local(format!("writing output: {e}")))
        }
        (r, _) => r,
    }
}

/// What the listener does when a session's task has ended: a client turned away before its
/// session began changes nothing; Ctrl-C stops the listener; with -k other endings are
/// reported and the listener goes on, without it the first session's end is the result.
fn session_ended(
    r: Result<Result<(), Failure>, tokio::task::JoinError>,
    keep_open: bool,
) -> Next<Result<(), Failure>> {
    let r = r.unwrap_or_else(|e| Err(Failure::local(format!("session task failed: {e}"))));
    match r {
        Err(f) if f.kind == Exit::NotStarted => {
            tracing::info!("{}", f.message);
            Next::Continue
        }
        Err(f) if f.kind == Exit::Interrupted => Next::Stop(Err(f)),
        Err(f) if keep_open => {
            eprintln!("msock: {}", f.message);
            Next::Continue
        }
        r if !keep_open => Next::Stop(r),
        _ => Next::Continue,
    }
}

/// --forward's settings, if given: the target, and whether clients must prove a key.
fn forward_setup(args: &ListenArgs) -> Result<Option<Arc<Forward>>, Failure> {
    let Some(target) = &args.forward else {
        return Ok(None);
    };
    let authenticated = args.stream.psk_file.is_some() || args.authorized_keys.is_some();
    let (fam, idle) = (family(&args.stream), args.stream.idle_timeout);
    let f = Forward::new(target, fam, authenticated, args.allow_anyone, idle);
    Ok(Some(Arc::new(f.map_err(Failure::local)?)))
}

/// Serves one byte-stream client of a --forward listener (its own task).
async fn forward_one(c: StreamClient, f: Arc<Forward>, json: bool) -> Result<(), Failure> {
    let started = Instant::now();
    let (r, totals) = crate::forward::serve(c, &f, ctrl_c()).await?;
    finish(r, totals, started, None, &Events::sessions(json)).await
}

/// The services this listener offers besides byte streams: benchmarks always (in a session,
/// and over plain TCP unless clients must prove a key), files with --save-dir (else they are refused, saying why).
fn services(args: &ListenArgs, save: Option<Arc<SaveOptions>>) -> Services<Result<(), Failure>> {
    let mut services = Services::default();
    // Plain TCP benchmarks (bench --compare-tcp) prove no key: not where one is required.
    let keyless = args.stream.psk_file.is_none() && args.authorized_keys.is_none();
    super::bench::offer(&mut services, &args.stream, keyless);
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
            super::receive::serve(o.accept().await?, &save).await
        }
    });
    services
}

/// Feeds the relay's spliced flowpaths into the same classification as accepted ones.
fn relay_inject(server: Arc<Server>, tx: mpsc::Sender<Incoming>) -> crate::relay::agent::Inject {
    Arc::new(move |stream, peer| server.inject(stream, peer, tx.clone()))
}

/// Registers `name` at each of `relays` (exit 1 if a relay refuses it or none can be reached,
/// 2 for local trouble) and keeps the registrations up; the receiver hears if the name is
/// lost for good at every relay.
async fn register_at_relay(
    relays: &[String],
    name: &str,
    args: &ListenArgs,
    listening: Vec<SocketAddr>,
    inject: crate::relay::agent::Inject,
) -> Result<mpsc::Receiver<String>, Failure> {
    use crate::relay::{agent, client, secrets};
    let key = match &args.relay_key_file {
        Some(p) => Some(
            secrets::load_keys(p)
                .map_err(Failure::local)?
                .swap_remove(0),
        ),
        None => None,
    };
    let events = super::relay_notices::events(args.stream.json_events);
    let mut cfgs: Vec<agent::AgentConfig> = Vec::new();
    for relay in relays {
        let named = client::parse(&format!("{name}@{relay}"))
            .map_err(|e| Failure::local(format!("--relay {relay}: {e}")))?
            .ok_or_else(|| Failure::local("give --relay HOST[:PORT]"))?;
        let [relay] = <[String; 1]>::try_from(named.relays)
            .map_err(|_| Failure::local("--relay: one relay per HOST[:PORT]"))?;
        if cfgs.iter().any(|c| c.relay == relay) {
            return Err(Failure::local(format!("--relay {relay} is given twice")));
        }
        let secret_file = secrets::secret_path(&relay, name).ok_or_else(|| {
            Failure::local("no state directory for the name's secret: set MSOCK_STATE_DIR or HOME")
        })?;
        cfgs.push(agent::AgentConfig {
            relay,
            name: named.name,
            secret_file,
            key: key.clone(),
            family: family(&args.stream),
            listening: listening.clone(),
            events: events.clone(),
            one_cluster: args.relay_cluster,
        });
    }
    agent::start(cfgs, inject).await.map_err(|e| match e {
        agent::RegisterError::Local(m) => Failure::local(m),
        agent::RegisterError::Refused(m) | agent::RegisterError::NameTaken(m) => {
            Failure::network(m)
        }
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

/// Serves one byte-stream client to its end, with its share of stdin and stdout.
async fn serve(
    client: StreamClient,
    stdio: &SharedStdio,
    idle: Option<Duration>,
    json_events: bool,
) -> Result<(), Failure> {
    let started = Instant::now();
    let events = Events::sessions(json_events);
    match client {
        StreamClient::Plain {
            stream,
            initial,
            peer,
        } => {
            eprintln!("msock: plain TCP client {peer}: not encrypted, not authenticated");
            let (input, output) = stdio.session();
            let (r, totals) = plain::bridge(stream, initial, input, output, idle, ctrl_c()).await;
            finish(r, totals, started, None, &events).await
        }
        StreamClient::Session(opening) => {
            let accepted = opening.accept().await?;
            let (input, output) = stdio.session();
            let (mut driver, _registration) = accepted.into_driver(input, output);
            driver.set_interrupt(ctrl_c());
            let (r, totals) = driver.run().await;
            finish(r, totals, started, None, &events).await
        }
    }
}
