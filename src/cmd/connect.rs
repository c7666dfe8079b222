//! `msock connect HOST:PORT`: open a session (or, with --plain, a TCP connection) and copy
//! stdin to it and it to stdout.

use std::net::SocketAddr;
use std::time::Instant;

use super::{ctrl_c, family, finish, session_config, Failure};
use crate::cli::ConnectArgs;
use crate::proto::PathId;
use crate::runtime::{
    client, control::ControlPlane, ifaces, netwatch, open_session, plain, resolve, Driver,
    ReconnectPolicy, StdinSource, StdoutSink,
};

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
    if !dest.contains(':') {
        return Err(Failure::local(format!(
            "'{dest}' has no port: give HOST:PORT, e.g. example.net:9000 or [::1]:9000"
        )));
    }
    let started = Instant::now();
    super::apply_process_settings(&args.stream)?;
    let addrs = resolve(&dest, family(&args.stream)).await?;
    let source = args.source.map(|ip| SocketAddr::new(ip, 0));
    let timeout = Some(args.wait);
    let input = (!args.stream.recv_only).then(StdinSource::spawn);
    let mut stdout = (!args.stream.send_only).then(StdoutSink::spawn);
    let output = stdout.as_mut();
    if args.plain {
        let stream = client::connect_any(&addrs, source, None, timeout).await?;
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
        return finish(r, totals, started, stdout).await;
    }
    let policy = args.policy.to_policy();
    // With a policy, the first flowpath leaves from the interface it ranks first.
    let first = if policy.follows_routing() {
        None
    } else {
        let plan = policy.plan(&ifaces::discover(&policy.kinds), addrs[0]);
        let Some(first) = plan.into_iter().next() else {
            return Err(Failure::network(
                "no usable interface for the chosen interfaces policy (see msock connect --list-ifaces)",
            ));
        };
        Some(first)
    };
    let (source, device) = match &first {
        Some(b) => (Some(SocketAddr::new(b.addr, 0)), Some(b.iface.as_str())),
        None => (source, None),
    };
    let (session, conn, epoch, control) = open_session(
        &addrs,
        source,
        device,
        timeout,
        session_config(&args.stream),
    )
    .await?;
    let server = conn.peer;
    let mut driver = Driver::new(session, epoch, input, output);
    driver.add_path(PathId(0), conn);
    driver.set_resume_timeout(args.stream.resume_timeout);
    driver.set_netwatch(netwatch::spawn());
    if let Some(socket) = control {
        driver.set_control(ControlPlane::client(socket));
    }
    driver.set_policy(policy, server, first);
    driver.set_reconnect(ReconnectPolicy {
        dest,
        family: family(&args.stream),
        source: args.source,
        attempt_timeout: args.wait,
        retry_interval: args.retry_interval,
    });
    driver.set_interrupt(ctrl_c());
    let (r, totals) = driver.run().await;
    finish(r, totals, started, stdout).await
}

/// `msock connect --list-ifaces`: prints the interfaces and their kinds on stdout.
fn list_ifaces(args: &ConnectArgs) -> Result<(), Failure> {
    use std::io::Write;
    let overrides = args.policy.iface_kind.iter().cloned().collect();
    let found = ifaces::discover(&overrides);
    for name in ifaces::unmatched_overrides(&found, &overrides) {
        tracing::warn!("--iface-kind names '{name}', but there is no such interface");
    }
    match write!(std::io::stdout().lock(), "{}", ifaces::table(&found)) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Failure::local(e)),
        _ => Ok(()),
    }
}
