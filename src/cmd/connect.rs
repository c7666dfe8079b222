//! `msock connect HOST:PORT`: open a session (or, with --plain, a TCP connection) and copy
//! stdin to it and it to stdout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::dial::{check_dest, check_source, dial_failure, dial_failure_for, try_dial, Hint};
use super::{ctrl_c, family, finish, Failure};
use crate::cli::{parse_listen_addr, ConnectArgs};
use crate::proto::Service;
use crate::runtime::events::Events;
use crate::runtime::server::bind_all;
use crate::runtime::{client, ifaces, plain, resolve, StdinSource, StdoutSink};

/// Runs `msock connect`.
pub async fn run(mut args: ConnectArgs) -> Result<(), Failure> {
    if args.list_ifaces {
        return list_ifaces(&args);
    }
    if let Some(dest) = &args.forget_key {
        return forget_key(dest);
    }
    if args.show_key {
        let id = crate::runtime::keys::client_identity().map_err(Failure::local)?;
        println!("{}", crate::proto::handshake::fingerprint(&id.public));
        return Ok(());
    }
    if let Some(code) = args.code.clone() {
        let relay = args.dest.take();
        let c = super::code::sender_pairing(&code, relay.as_deref(), &mut args.dial, &args.stream)
            .await?;
        args.dest = Some(c.dest.clone());
    }
    let Some(dest) = args.dest.clone() else {
        return Err(Failure::local(
            "give HOST:PORT or HOST PORT, e.g. example.net:9000 or [::1]:9000",
        ));
    };
    check_dest(&dest)?;
    check_source(args.dial.source)?;
    let started = Instant::now();
    super::apply_process_settings(&args.stream)?;
    if let Some(local) = &args.local {
        return forward_local(local, &dest, &args).await;
    }
    let events = Events::sessions(args.stream.json_events);
    let mut input = (!args.recv_only).then(StdinSource::spawn);
    let mut stdout = (!args.send_only).then(StdoutSink::spawn);
    if args.plain {
        let addrs = resolve(&dest, family(&args.stream)).await?;
        let source = args.dial.source.map(|ip| SocketAddr::new(ip, 0));
        let stream = client::connect_any(&addrs, source, None, Some(args.dial.wait)).await?;
        tracing::info!(
            "plain TCP (no msock session, not encrypted) to {}",
            stream.peer_addr().map_or("?".into(), |a| a.to_string())
        );
        let (r, totals) = plain::bridge(
            stream,
            Vec::new(),
            input.as_mut(),
            stdout.as_mut(),
            args.stream.idle_timeout,
            ctrl_c(),
        )
        .await;
        return finish(r, totals, started, stdout, &events).await;
    }
    let stream = Service::Stream;
    let dialed = try_dial(
        &dest,
        &args.dial,
        &args.stream,
        stream,
        input.as_mut(),
        stdout.as_mut(),
    );
    let mut driver = match dialed.await? {
        Ok(d) => d,
        // The listener runs a program for each session: open a program session instead.
        Err(e) if super::exec::wants_program(&e) => {
            return super::exec::connect(&dest, &args, input, stdout, started).await;
        }
        Err(e) => return Err(dial_failure(e, stream)),
    };
    driver.set_interrupt(ctrl_c());
    let (r, totals) = driver.run().await;
    finish(r, totals, started, stdout, &events).await
}

/// `msock connect --local [ADDR:]PORT DEST`: carries each connection to the local port over a
/// session of its own, until interrupted.
async fn forward_local(local: &str, dest: &str, args: &ConnectArgs) -> Result<(), Failure> {
    let (host, port) = parse_listen_addr(local).map_err(Failure::local)?;
    let host = host.unwrap_or_else(|| "127.0.0.1".into());
    // Take over Ctrl-C before announcing the port (exit status 130, as `listen`).
    let mut interrupted = Box::pin(ctrl_c());
    super::futures_poll_once(interrupted.as_mut()).await;
    let listeners = bind_all(Some(&host), port, family(&args.stream)).await?;
    for l in &listeners {
        let a = l.local_addr().map_err(Failure::local)?;
        match port {
            0 => eprintln!("msock: listening on {a}"),
            _ => tracing::info!("listening on {a}"),
        }
    }
    let shared = Arc::new((dest.to_owned(), args.dial.clone(), args.stream.clone()));
    let carry = move |source, sink, peer: SocketAddr| {
        let shared = shared.clone();
        async move {
            let (dest, dial_args, stream) = &*shared;
            let started = Instant::now();
            let run = async {
                let input = Some(source);
                let dialed = try_dial(dest, dial_args, stream, Service::Stream, input, Some(sink));
                let mut driver = dialed
                    .await?
                    .map_err(|e| dial_failure_for(e, Hint::Local))?;
                driver.set_interrupt(ctrl_c());
                let (r, totals) = driver.run().await;
                let events = Events::sessions(stream.json_events);
                finish(r, totals, started, None, &events).await
            };
            let r: Result<(), Failure> = run.await;
            if let Err(f) = &r {
                if !f.message.is_empty() {
                    eprintln!("msock: local connection from {peer}: {}", f.message);
                }
            }
            r.is_err()
        }
    };
    crate::forward::local::serve(listeners, carry, interrupted).await;
    Err(Failure::interrupted())
}

/// `msock connect --forget-key DEST`: removes DEST's pinned keys and says what it removed
/// (exit 0 either way, as `ssh-keygen -R`).
fn forget_key(dest: &str) -> Result<(), Failure> {
    let (file, removed) = crate::runtime::keys::forget_peer(dest).map_err(Failure::local)?;
    if removed.is_empty() {
        eprintln!("msock: no key pinned for {dest} in {}", file.display());
    }
    for line in removed {
        eprintln!("msock: removed from {}: {line}", file.display());
    }
    Ok(())
}

/// `msock connect --list-ifaces`: prints the interfaces and their kinds on stdout.
fn list_ifaces(args: &ConnectArgs) -> Result<(), Failure> {
    use std::io::Write;
    let overrides = args.dial.policy.iface_kind.iter().cloned().collect();
    let found = ifaces::discover(&overrides);
    for name in ifaces::unmatched_overrides(&found, &overrides) {
        tracing::warn!("--iface-kind names '{name}', but there is no such interface");
    }
    match write!(std::io::stdout().lock(), "{}", ifaces::table(&found)) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::local(e)),
        _ => Ok(()),
    }
}
