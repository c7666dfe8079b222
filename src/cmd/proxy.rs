//! `msock proxy [--listen [ADDR:]PORT]`: run a relay (see [`crate::relay`]) until SIGINT
//! (summary, exit 130) or SIGTERM (summary, exit 0).

use super::{ctrl_c, futures_poll_once, Failure};
use crate::cli::{parse_listen_addr, ProxyArgs};
use crate::relay::metrics;
use crate::relay::registry::{Limits, Registry};
use crate::relay::secrets::load_keys;
use crate::relay::server::{Config, Relay};
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
    for l in &listeners {
        let a = l.local_addr().map_err(Failure::local)?;
        eprintln!("msock: relay listening on {a}");
    }
    let relay = Relay::new(
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
    );
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
    print_summary(&relay, args.json);
    result
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
