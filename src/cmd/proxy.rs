//! `msock proxy [--listen [ADDR:]PORT]`: run a relay (see [`crate::relay`]) until SIGINT
//! (summary, exit 130) or SIGTERM (summary, exit 0).

use super::{ctrl_c, futures_poll_once, Failure};
use crate::cli::{parse_listen_addr, ProxyArgs};
use crate::relay::cluster::{Cluster, ClusterConfig};
use crate::relay::etcd::Etcd;
use crate::relay::metrics;
use crate::relay::registry::{Limits, Registry};
use crate::relay::secrets::load_keys;
use crate::relay::server::{Config, Relay};
use crate::relay::wire::check_name;
use crate::runtime::events::{Events, LogLines, Stream};
use crate::runtime::server::bind_all;
use crate::runtime::Family;

/// Runs `msock proxy`.
pub async fn run(args: ProxyArgs) -> Result<(), Failure> {
    let (host, port) = parse_listen_addr(&args.listen).map_err(Failure::local)?;
    let mut interrupted = Box::pin(ctrl_c());
    futures_poll_once(interrupted.as_mut()).await;
    let mut terminated = Box::pin(sigterm());
    futures_poll_once(terminated.as_mut()).await;
    if args.rate < 0.0 || !args.rate.is_finite() {
        return Err(Failure::local(
            "--rate must be 0 (no limit) or a positive number",
        ));
    }
    crate::runtime::sys::raise_nofile();
    let auth_keys = match &args.auth_keys {
        Some(p) => load_keys(p).map_err(Failure::local)?,
        None => Vec::new(),
    };
    let reg = Registry::load(args.state.clone(), args.name_ttl).map_err(Failure::local)?;
    let listeners = bind_all(host.as_deref(), port, Family::Any).await?;
    let mut bound = Vec::new();
    for l in &listeners {
        bound.push(l.local_addr().map_err(Failure::local)?);
    }
    let cluster = match &args.etcd {
        Some(urls) => Some(join_cluster(&args, urls, &bound).await?),
        None => None,
    };
    let relay = Relay::in_cluster(
        Config {
            handshake_timeout: args.handshake_timeout,
            idle_timeout: args.idle_timeout,
            max_names: args.max_names,
            limits: Limits {
                rate: args.rate,
                max_flowpaths: args.max_flowpaths,
                per_source: args.max_flowpaths_per_source,
                pending_per_name: args.max_pending_per_name,
                names_per_source: args.max_names_per_source,
            },
            name_ttl: args.name_ttl,
            keepalive: args.keepalive,
            auth_keys,
            rate_per_name: args.rate_per_name,
            rate_per_source: args.rate_per_source,
        },
        reg,
        relay_events(args.json),
        cluster.clone(),
    );
    if let Some(c) = &cluster {
        tokio::spawn(relay.clone().cluster_lease());
        tokio::spawn(relay.clone().cluster_watch());
        // Listeners may register as soon as we say we listen: take the lease first.
        let t = std::time::Instant::now();
        while !c.healthy() && t.elapsed() < std::time::Duration::from_secs(10) {
            if let Some(holder) = c.id_taken_by() {
                return Err(Failure::local(format!(
                    "--relay-id {}: the relay at {holder} of this cluster has that id; give \
                     each relay its own (--relay-id), or stop the other",
                    c.cfg.id
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        match c.healthy() {
            true => eprintln!(
                "msock: relay {} joined the cluster at {} (advertised as {})",
                c.cfg.id,
                c.cfg.etcd.urls(),
                c.cfg.advertise
            ),
            false => eprintln!(
                "msock: warning: etcd at {} does not answer; new registrations are refused \
                 until it does",
                c.cfg.etcd.urls()
            ),
        }
    }
    for a in &bound {
        eprintln!("msock: relay listening on {a}");
    }
    for l in listeners {
        tokio::spawn(relay.clone().serve(l));
    }
    if let Some(addr) = args.metrics {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Failure::local(format!("--metrics {addr}: cannot listen there: {e}")))?;
        let a = l.local_addr().map_err(Failure::local)?;
        eprintln!("msock: relay metrics at http://{a}/metrics");
        let r = relay.clone();
        tokio::spawn(metrics::serve(
            l,
            std::sync::Arc::new(move || r.render_metrics()),
        ));
    }
    tokio::spawn(relay.clone().sweep());
    tokio::spawn(relay.clone().saver());
    let result = tokio::select! {
        _ = &mut interrupted => Err(Failure::interrupted()),
        _ = &mut terminated => Ok(()),
    };
    relay.cluster_leave().await;
    print_summary(&relay, args.json);
    result
}

/// The cluster membership of `--etcd URLS --cluster-key-file ... [--relay-id] [--advertise]`;
/// `bound` are the addresses the relay listens at.
async fn join_cluster(
    args: &ProxyArgs,
    urls: &str,
    bound: &[std::net::SocketAddr],
) -> Result<std::sync::Arc<Cluster>, Failure> {
    let etcd = Etcd::new(urls, std::time::Duration::from_secs(3))
        .map_err(|e| Failure::local(format!("--etcd: {e}")))?;
    let Some(path) = &args.cluster_key_file else {
        return Err(Failure::local("--etcd needs --cluster-key-file FILE"));
    };
    let key = load_cluster_key(path).map_err(Failure::local)?;
    let advertise = match &args.advertise {
        Some(a) => tokio::net::lookup_host(a.as_str())
            .await
            .ok()
            .and_then(|mut it| it.next())
            .ok_or_else(|| {
                Failure::local(format!(
                    "--advertise {a}: not an address HOST:PORT that resolves"
                ))
            })?,
        None => *bound
            .iter()
            .find(|a| !a.ip().is_unspecified())
            .ok_or_else(|| {
                Failure::local(
                    "--etcd: give --advertise HOST:PORT (the relay listens on a wildcard address, \
                 which the other relays cannot dial)",
                )
            })?,
    };
    let id = args
        .relay_id
        .clone()
        .unwrap_or_else(|| advertise.to_string().replace([':', '[', ']'], "_"));
    check_name(&id).map_err(|e| Failure::local(format!("--relay-id: {e}")))?;
    Ok(Cluster::new(ClusterConfig {
        etcd,
        key,
        id,
        advertise,
        prefix: match args.etcd_prefix.ends_with('/') {
            true => args.etcd_prefix.clone(),
            false => format!("{}/", args.etcd_prefix),
        },
    }))
}

/// Reads a cluster key file (as [`crate::relay::secrets::load_keys`]: its first key), at
/// least 32 characters; the key is derived from it.
fn load_cluster_key(path: &std::path::Path) -> Result<[u8; 32], String> {
    if let Err(e) = std::fs::metadata(path) {
        return Err(format!(
            "--cluster-key-file {}: cannot read it: {e}",
            path.display()
        ));
    }
    let line = crate::relay::secrets::load_keys(path)
        .map(|mut k| k.swap_remove(0))
        .unwrap_or_default();
    if line.len() < 32 {
        return Err(format!(
            "--cluster-key-file {}: the key must be at least 32 characters (make one with \
             `openssl rand -hex 32`; every relay of the cluster needs the same)",
            path.display()
        ));
    }
    Ok(blake3::derive_key("msock relay cluster key v1", &line))
}

/// The relay's status events: JSON lines on stdout with `--json` (`t` in milliseconds), else
/// log lines.
fn relay_events(json: bool) -> Events {
    if json {
        Events::json_lines(Stream::Stdout, 3)
    } else {
        Events::to(std::sync::Arc::new(LogLines))
    }
}

fn print_summary(relay: &Relay, json: bool) {
    let s = relay.summary();
    if json {
        let mut obj = serde_json::json!({"event": "summary"});
        if let (Some(o), serde_json::Value::Object(f)) = (obj.as_object_mut(), s) {
            o.extend(f);
        }
        println!("{obj}");
        return;
    }
    let n = |k: &str| s[k].as_u64().unwrap_or(0);
    let refused: Vec<String> = s["refused"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k} {v}")).collect())
        .unwrap_or_default();
    eprintln!(
        "msock: relay summary: {} names ({} listeners connected), {} flowpaths spliced (peak {} at once, {} now), {} bytes up, {} bytes down, {} registrations, {} lookups, refused: {}{}",
        n("names"),
        n("listeners_connected"),
        n("flowpaths_spliced"),
        n("flowpaths_peak"),
        n("flowpaths_now"),
        n("bytes_up"),
        n("bytes_down"),
        n("registrations"),
        n("lookups"),
        if refused.is_empty() { "none".to_owned() } else { refused.join(", ") },
        s["peak_rss_kib"].as_u64().map_or(String::new(), |k| format!(", peak RSS {k} KiB")),
    );
}

/// Resolves on SIGTERM (never where there is no such signal).
async fn sigterm() {
    #[cfg(unix)]
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        s.recv().await;
        return;
    }
    std::future::pending::<()>().await;
}
