//! `msock connect HOST:PORT`: open a session (or, with --plain, a TCP connection) and copy
//! stdin to it and it to stdout.

use std::net::SocketAddr;
use std::time::Instant;

use super::dial::{check_dest, dial_failure, try_dial};
use super::{ctrl_c, family, finish, Failure};
use crate::cli::ConnectArgs;
use crate::proto::Service;
use crate::runtime::events::Events;
use crate::runtime::{client, ifaces, plain, resolve, StdinSource, StdoutSink};

/// Runs `msock connect`.
pub async fn run(args: ConnectArgs) -> Result<(), Failure> {
    if args.list_ifaces {
        return list_ifaces(&args);
    }
    let Some(dest) = args.dest.clone() else {
        return Err(Failure::local(
            "give HOST:PORT, e.g. example.net:9000 or [::1]:9000",
        ));
    };
    check_dest(&dest)?;
    let started = Instant::now();
    super::apply_process_settings(&args.stream)?;
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
