//! The client side every session command shares (connect, send-file, bench): resolve the
//! destination, pick the first flowpath's interface by the policy, open the session and set up
//! its driver to reconnect, follow the policy and hear the server's moves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{family, session_config, Failure};
use crate::cli::{DialArgs, StreamArgs};
use crate::proto::handshake::fingerprint;
use crate::proto::{PathId, Service};
use crate::runtime::keys::{check_peer, PinCheck};
use crate::runtime::reconnect::{AttemptError, AttemptFuture, Origin, Redial};
use crate::runtime::{
    control::ControlPlane, ifaces, netwatch, policy::Policy, AppSink, AppSource, Driver,
    Family, ReconnectPolicy,
};

/// Checks that `dest` looks like HOST:PORT or NAME@RELAY[:PORT] (exit 2 otherwise); true for
/// NAME@RELAY.
pub fn check_dest(dest: &str) -> Result<bool, Failure> {
    if crate::relay::client::parse(dest)
        .map_err(Failure::local)?
        .is_some()
    {
        return Ok(true);
    }
    if dest.contains(':') {
        Ok(false)
    } else {
        Err(Failure::local(format!(
            "'{dest}' has no port: give HOST:PORT, e.g. example.net:9000 or [::1]:9000, or NAME@RELAY for a listener registered at a relay"
        )))
    }
}

/// Opens a session for `service` to `dest` and returns its driver, ready to run, moving bytes
/// from `input` and to `output`.
pub async fn dial<I: AppSource, O: AppSink>(
    dest: &str,
    dial: &DialArgs,
    stream: &StreamArgs,
    service: Service,
    input: Option<I>,
    output: Option<O>,
) -> Result<Driver<I, O>, Failure> {
    let policy = dial.policy.to_policy();
    dial_with_policy(dest, dial, stream, policy, service, input, output).await
}

/// Like [`dial`], with an interface policy given by the caller instead of the flags (e.g.
/// explicit source addresses to stripe over).
pub async fn dial_with_policy<I: AppSource, O: AppSink>(
    dest: &str,
    dial: &DialArgs,
    stream: &StreamArgs,
    policy: Policy,
    service: Service,
    input: Option<I>,
    output: Option<O>,
) -> Result<Driver<I, O>, Failure> {
    let named = check_dest(dest)?;
    // HOST:PORT, or NAME@RELAY: the name's direct addresses, then the relay.
    let hops = crate::relay::client::plan(dest, family(stream), dial.wait).await?;
    let addrs = &hops[0].addrs;
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
        None => (dial.source.map(|ip| SocketAddr::new(ip, 0)), None),
    };
    let mut config = session_config(stream)?;
    config.service = service;
    let (session, conn, epoch, control) =
        crate::relay::client::open_session(&hops, source, device, config).await?;
    // Nothing of ours has been sent yet: check who answered before anything is.
    match session.peer_static() {
        Some(key) => {
            let how = check_peer(dest, key, dial.peer_key.as_deref()).map_err(Failure::network)?;
            let how = match how {
                PinCheck::Given => "matches --peer-key",
                PinCheck::Known => "matches the key pinned for this destination",
                PinCheck::PinnedNow => "first contact: pinned now",
            };
            tracing::info!(
                "encrypted session (Noise NX, AES-128-GCM); listener key {} ({how})",
                fingerprint(key)
            );
        }
        None => tracing::info!("session NOT encrypted (--no-encrypt)"),
    }
    let server = conn.peer;
    let mut driver = Driver::new(session, epoch, input, output);
    driver.add_path(PathId(0), conn);
    driver.set_resume_timeout(stream.resume_timeout);
    driver.set_netwatch(netwatch::spawn());
    if let Some(socket) = control {
        driver.set_control(ControlPlane::client(socket));
    }
    driver.set_policy(policy, server, first);
    driver.set_reconnect(ReconnectPolicy {
        dest: dest.to_owned(),
        family: family(stream),
        source: dial.source,
        attempt_timeout: dial.wait,
        retry_interval: dial.retry_interval,
        redial: named.then(|| {
            Arc::new(RelayRedial {
                dest: dest.to_owned(),
                family: family(stream),
            }) as Arc<dyn Redial>
        }),
    });
    Ok(driver)
}

/// The dial strategy for `NAME@RELAY`: every attempt looks the name up at the relay again
/// (the listener may have moved) and connects directly or through the relay.
struct RelayRedial {
    dest: String,
    family: Family,
}

impl Redial for RelayRedial {
    fn redial(&self, from: Origin, attempt: Duration) -> AttemptFuture {
        let (dest, family) = (self.dest.clone(), self.family);
        Box::pin(async move {
            let device = from.device.as_deref();
            crate::relay::client::reconnect(&dest, family, from.source, device, attempt)
                .await
                .map_err(AttemptError::Strategy)
        })
    }
}
