//! `msock connect HOST:PORT`: open a session (or, with --plain, a TCP connection) and copy
//! stdin to it and it to stdout.

use std::net::SocketAddr;
use std::time::Instant;

use super::dial::{check_dest, check_source, dial};
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
    if args.show_key {
        let id = crate::runtime::keys::client_identity().map_err(Failure::local)?;
        println!("{}", crate::proto::handshake::fingerprint(&id.public));
        return Ok(());
    }
    let Some(dest) = args.dest.clone() else {
        return Err(Failure::local(
            "give HOST:PORT, e.g. example.net:9000 or [::1]:9000",
        ));
    };
    check_dest(&dest)?;
    check_source(args.dial.source)?;
    let started = Instant::now();
    super::apply_process_settings(&args.stream)?;
    let events = Events::sessions(args.stream.json_events);
    let input = (!args.recv_only).then(StdinSource::spawn);
    let mut stdout = (!args.send_only).then(StdoutSink::spawn);
    let output = stdout.as_mut();
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
            input,
            output,
            args.stream.idle_timeout,
            ctrl_c(),
        )
        .await;
        return finish(r, totals, started, stdout, &events).await;
    }
    let mut driver = dial(
        &dest,
        &args.dial,
        &args.stream,
        Service::Stream,
        input,
        output,
    )
    .await?;
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
