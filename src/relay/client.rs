//! The client's side of a relay: `NAME@HOST[:PORT]` destinations, LOOKUP of a name's direct
//! addresses, and the candidate routes to try in order: direct first (short timeout), then
//! through the relay (a ROUTE header in front of the ordinary msock bytes). Used, as the
//! client's dial strategy (chosen by the command), for the first flowpath and for every
//! reconnect attempt, so a listener that moved is found again through the relay (its name
//! service role).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::wire::{self, check_name, ClientToRelay, Message, Refusal, RelayToClient};
use super::DEFAULT_PORT;
use crate::proto::{Deframer, SessionError};
use crate::runtime::client::{connect_any, ConnectError, Hop};
use crate::runtime::{resolve, Family, FlowConn};

/// A destination by name: `NAME@RELAY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// The listener's name.
    pub name: String,
    /// The relay, HOST:PORT (the default port filled in).
    pub relay: String,
}

/// Parses `NAME@HOST`, `NAME@HOST:PORT`, `NAME@[V6]:PORT`. Ok(None): not a named destination
/// (no `@`); Err: a malformed one.
pub fn parse(dest: &str) -> Result<Option<Named>, String> {
    let Some((name, relay)) = dest.split_once('@') else {
        return Ok(None);
    };
    check_name(name)?;
    if relay.is_empty() {
        return Err(format!("'{dest}' names no relay: give NAME@HOST[:PORT]"));
    }
    let has_port = if relay.starts_with('[') {
        relay.contains("]:")
    } else {
        relay.matches(':').count() == 1
    };
    let relay = if has_port {
        relay.to_owned()
    } else if relay.starts_with('[') {
        format!("{relay}:{DEFAULT_PORT}")
    } else if relay.contains(':') {
        format!("[{relay}]:{DEFAULT_PORT}")
    } else {
        format!("{relay}:{DEFAULT_PORT}")
    };
    Ok(Some(Named {
        name: name.to_owned(),
        relay,
    }))
}

/// How long a direct attempt to a named listener may take before the relay is used.
const DIRECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// The hops to try for `dest`, in order: for HOST:PORT its addresses; for NAME@RELAY the
/// name's direct addresses (as the relay knows them now), then the relay.
pub async fn plan(dest: &str, family: Family, wait: Duration) -> Result<Vec<Hop>, ConnectError> {
    let named = match parse(dest) {
        Ok(Some(n)) => n,
        Ok(None) => {
            return Ok(vec![Hop {
                addrs: resolve(dest, family).await?,
                prefix: Vec::new(),
                timeout: wait,
            }])
        }
        Err(e) => return Err(ConnectError::Resolve(dest.to_owned(), e)),
    };
    let relay_addrs = resolve(&named.relay, family).await?;
    let (relay, direct) = lookup(&named, &relay_addrs, wait).await?;
    let mut hops = Vec::new();
    let direct: Vec<SocketAddr> = direct.into_iter().filter(|a| family.allows(a)).collect();
    if !direct.is_empty() {
        hops.push(Hop {
            addrs: direct,
            prefix: Vec::new(),
            timeout: DIRECT_TIMEOUT.min(wait),
        });
    }
    hops.push(Hop {
        addrs: vec![relay],
        prefix: ClientToRelay::Route(named.name.clone()).with_preamble(),
        timeout: wait,
    });
    Ok(hops)
}

/// Asks the relay where `named` listens directly. Returns the relay address that answered and
/// the direct addresses (possibly none).
pub(crate) async fn lookup(
    named: &Named,
    relay_addrs: &[SocketAddr],
    wait: Duration,
) -> Result<(SocketAddr, Vec<SocketAddr>), ConnectError> {
    let mut s = connect_any(relay_addrs, None, None, Some(wait)).await?;
    let relay = s
        .peer_addr()
        .map_err(|e| ConnectError::Connect(relay_addrs[0], e))?;
    let _ = s.set_nodelay(true);
    let broke = |e: String| {
        ConnectError::NotMsock(
            relay,
            format!("{e}; is {} an msock relay (msock proxy)?", named.relay),
        )
    };
    s.write_all(&ClientToRelay::Lookup(named.name.clone()).with_preamble())
        .await
        .map_err(|e| ConnectError::Connect(relay, e))?;
    wire::read_preamble(&mut s, wait)
        .await
        .map_err(|e| broke(e.to_string()))?;
    match wire::read_frame(&mut s, wait)
        .await
        .map_err(|e| broke(e.to_string()))?
    {
        RelayToClient::Found(addrs) => Ok((relay, addrs)),
        RelayToClient::Error(Refusal { code, reason }) => Err(ConnectError::Handshake(
            relay,
            SessionError::PeerError { code, reason },
        )),
    }
}

/// One reconnect attempt for a named destination: look the name up again, then connect
/// directly or through the relay. The ROUTE header is queued on the returned connection.
pub async fn reconnect(
    dest: &str,
    family: Family,
    source: Option<SocketAddr>,
    device: Option<&str>,
    attempt: Duration,
) -> Result<FlowConn, String> {
    let hops = plan(dest, family, attempt)
        .await
        .map_err(|e| e.to_string())?;
    let mut last = String::new();
    for hop in &hops {
        match connect_any(&hop.addrs, source, device, Some(hop.timeout)).await {
            Ok(stream) => {
                let mut conn = FlowConn::new(stream, Deframer::new()).map_err(|e| e.to_string())?;
                conn.out.push_slice(&hop.prefix);
                return Ok(conn);
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_destinations() {
        let n = |name: &str, relay: &str| {
            Some(Named {
                name: name.into(),
                relay: relay.into(),
            })
        };
        assert_eq!(parse("host:9000"), Ok(None));
        assert_eq!(parse("pc@relay.example"), Ok(n("pc", "relay.example:7480")));
        assert_eq!(
            parse("pc@relay.example:99"),
            Ok(n("pc", "relay.example:99"))
        );
        assert_eq!(parse("pc@[::1]:99"), Ok(n("pc", "[::1]:99")));
        assert_eq!(parse("pc@[::1]"), Ok(n("pc", "[::1]:7480")));
        assert_eq!(parse("pc@::1"), Ok(n("pc", "[::1]:7480")));
        assert!(parse("@relay:1").is_err());
        assert!(parse("a b@relay:1").is_err());
        assert!(parse("pc@").is_err());
    }
}
