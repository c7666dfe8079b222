//! The client's side of a relay: `NAME@HOST[:PORT][,HOST[:PORT]...]` destinations, LOOKUP of
//! a name's direct addresses, and the candidate routes to try in order: direct first (short
//! timeout), then through a relay (a ROUTE header in front of the ordinary msock bytes). Used,
//! as the client's dial strategy (chosen by the command), for the first flowpath and for every
//! reconnect attempt, so a listener that moved is found again through the relay (its name
//! service role).
//!
//! **Failover across relays.** A destination may list several relays (`NAME@A,B`), and each
//! relay host may resolve to several addresses: every address of every relay is a candidate.
//! The name is looked up at all of them at once; the relays that answer FOUND are routed
//! through, first the one that answered first, then those not heard from yet (a relay that
//! refused the name is left out: the listener is not registered there). Connections go out
//! happy-eyeballs style: the next candidate starts [`STAGGER`] after the previous one (or at
//! once when it fails), the first one up wins. Every reconnect attempt plans anew, so a
//! session whose relay died resumes through another relay of the list.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use super::wire::{self, check_name, ClientToRelay, Message, Refusal, RelayToClient};
use super::DEFAULT_PORT;
use crate::proto::{Deframer, SessionError};
use crate::runtime::client::{connect_any, ConnectError, Hop};
use crate::runtime::{resolve, Family, FlowConn};

/// A destination by name: `NAME@RELAY[,RELAY...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// The listener's name.
    pub name: String,
    /// The relays, HOST:PORT each (the default port filled in), as given: at least one, at
    /// most [`MAX_RELAYS`].
    pub relays: Vec<String>,
}

impl Named {
    /// The relays as the user wrote them, for messages.
    fn relays_text(&self) -> String {
        self.relays.join(",")
    }
}

/// Most relays one destination may list.
pub const MAX_RELAYS: usize = 8;

/// Most relay addresses (all relays' resolved addresses together) one plan tries.
const MAX_RELAY_ADDRS: usize = 16;

/// How long a connection is given before the next candidate is started alongside it.
pub const STAGGER: Duration = Duration::from_millis(250);

/// Parses `NAME@HOST`, `NAME@HOST:PORT`, `NAME@[V6]:PORT`, and several relays separated by
/// commas (`NAME@A,B:7481`). Ok(None): not a named destination (no `@`); Err: a malformed one.
pub fn parse(dest: &str) -> Result<Option<Named>, String> {
    let Some((name, relays)) = dest.split_once('@') else {
        return Ok(None);
    };
    check_name(name)?;
    let mut out = Vec::new();
    for relay in relays.split(',') {
        if relay.is_empty() {
            return Err(format!(
                "'{dest}' names no relay{}: give NAME@HOST[:PORT][,HOST[:PORT]...]",
                if relays.is_empty() {
                    ""
                } else {
                    " between two commas"
                }
            ));
        }
        out.push(with_port(relay));
    }
    if out.len() > MAX_RELAYS {
        return Err(format!(
            "'{dest}' lists {} relays; at most {MAX_RELAYS}",
            out.len()
        ));
    }
    Ok(Some(Named {
        name: name.to_owned(),
        relays: out,
    }))
}

/// `relay` with the default port filled in (and a bare IPv6 address bracketed).
fn with_port(relay: &str) -> String {
    let has_port = if relay.starts_with('[') {
        relay.contains("]:")
    } else {
        relay.matches(':').count() == 1
    };
    if has_port {
        relay.to_owned()
    } else if relay.starts_with('[') {
        format!("{relay}:{DEFAULT_PORT}")
    } else if relay.contains(':') {
        format!("[{relay}]:{DEFAULT_PORT}")
    } else {
        format!("{relay}:{DEFAULT_PORT}")
    }
}

/// How long a direct attempt to a named listener may take before the relay is used.
const DIRECT_TIMEOUT: Duration = Duration::from_millis(1000);

/// The hops to try for `dest`, in order: for HOST:PORT its addresses; for NAME@RELAY the
/// name's direct addresses (as a relay knows them now), then the relays that know the name.
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
    let relay_addrs = resolve_relays(&named.relays, family).await?;
    let found = lookup(&named, &relay_addrs, wait).await?;
    let mut hops = Vec::new();
    let direct: Vec<SocketAddr> = (found.direct.into_iter())
        .filter(|a| family.allows(a))
        .collect();
    if !direct.is_empty() {
        hops.push(Hop {
            addrs: direct,
            prefix: Vec::new(),
            timeout: DIRECT_TIMEOUT.min(wait),
        });
    }
    hops.push(Hop {
        addrs: found.relays,
        prefix: ClientToRelay::Route(named.name.clone()).with_preamble(),
        timeout: wait,
    });
    Ok(hops)
}

/// Every address of every relay (in the order given, each once, at most
/// [`MAX_RELAY_ADDRS`]). A relay that does not resolve is skipped while another does.
async fn resolve_relays(
    relays: &[String],
    family: Family,
) -> Result<Vec<SocketAddr>, ConnectError> {
    let mut set = JoinSet::new();
    for (i, r) in relays.iter().enumerate() {
        let r = r.clone();
        set.spawn(async move { (i, resolve(&r, family).await) });
    }
    let mut got: Vec<Option<Result<Vec<SocketAddr>, ConnectError>>> =
        relays.iter().map(|_| None).collect();
    while let Some(j) = set.join_next().await {
        if let Ok((i, r)) = j {
            got[i] = Some(r);
        }
    }
    let mut addrs: Vec<SocketAddr> = Vec::new();
    let mut first_err = None;
    for r in got.into_iter().flatten() {
        match r {
            Ok(a) => {
                for a in a {
                    if !addrs.contains(&a) && addrs.len() < MAX_RELAY_ADDRS {
                        addrs.push(a);
                    }
                }
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match (addrs.is_empty(), first_err) {
        (true, Some(e)) => Err(e),
        (true, None) => Err(ConnectError::NoAddress(relays.join(","), "usable")),
        (false, Some(e)) => {
            tracing::info!("a relay is left out: {e}");
            Ok(addrs)
        }
        (false, None) => Ok(addrs),
    }
}

/// What the relays said of a name.
#[derive(Debug)]
pub(crate) struct Found {
    /// The relays to route through, the one that answered FOUND first in front, then the
    /// others that answered FOUND or had not answered yet (never one that refused).
    pub relays: Vec<SocketAddr>,
    /// The name's direct addresses, as the first relay to find it knows them.
    pub direct: Vec<SocketAddr>,
}

/// Looks `named` up at every relay address at once; returns as soon as one finds it. Err:
/// none did (a relay's refusal, such as "no such name", is preferred to a connection error).
pub(crate) async fn lookup(
    named: &Named,
    relay_addrs: &[SocketAddr],
    wait: Duration,
) -> Result<Found, ConnectError> {
    let mut set = JoinSet::new();
    for &addr in relay_addrs {
        let (name, text) = (named.name.clone(), named.relays_text());
        set.spawn(async move { (addr, lookup_one(&name, &text, addr, wait).await) });
    }
    let mut refused: Vec<SocketAddr> = Vec::new();
    let mut refusal = None;
    let mut other = None;
    while let Some(j) = set.join_next().await {
        let Ok((addr, r)) = j else { continue };
        match r {
            Ok(direct) => {
                let mut relays = vec![addr];
                relays.extend(
                    (relay_addrs.iter())
                        .filter(|a| **a != addr && !refused.contains(a))
                        .copied(),
                );
                return Ok(Found { relays, direct });
            }
            Err(e @ ConnectError::Handshake(..)) => {
                refused.push(addr);
                tracing::info!("relay {addr}: {e}");
                refusal.get_or_insert(e);
            }
            Err(e) => {
                refused.push(addr);
                tracing::info!("relay {addr}: {e}");
                other.get_or_insert(e);
            }
        }
    }
    Err(refusal
        .or(other)
        .unwrap_or_else(|| ConnectError::NoAddress(named.relays_text(), "usable")))
}

/// Asks the relay at `relay` where `name` listens directly (possibly nowhere).
async fn lookup_one(
    name: &str,
    relays_text: &str,
    relay: SocketAddr,
    wait: Duration,
) -> Result<Vec<SocketAddr>, ConnectError> {
    let mut s = connect_any(&[relay], None, None, Some(wait)).await?;
    let _ = s.set_nodelay(true);
    let broke = |e: String| {
        ConnectError::NotMsock(
            relay,
            format!("{e}; is {relays_text} an msock relay (msock proxy)?"),
        )
    };
    s.write_all(&ClientToRelay::Lookup(name.to_owned()).with_preamble())
        .await
        .map_err(|e| ConnectError::Connect(relay, e))?;
    wire::read_preamble(&mut s, wait)
        .await
        .map_err(|e| broke(e.to_string()))?;
    match wire::read_frame(&mut s, wait)
        .await
        .map_err(|e| broke(e.to_string()))?
    {
        RelayToClient::Found(addrs) => Ok(addrs),
        RelayToClient::Error(Refusal { code, reason }) => Err(ConnectError::Handshake(
            relay,
            SessionError::PeerError { code, reason },
        )),
    }
}

/// Connects to one of `addrs`, happy-eyeballs style: the next address is started
/// [`STAGGER`] after the previous one or as soon as it fails, each bounded by `timeout`; the
/// first connection up wins (the others are dropped).
pub(crate) async fn connect_race(
    addrs: &[SocketAddr],
    source: Option<SocketAddr>,
    device: Option<&str>,
    timeout: Duration,
) -> Result<TcpStream, ConnectError> {
    let usable: Vec<SocketAddr> = (addrs.iter())
        .filter(|a| source.is_none_or(|s| s.is_ipv4() == a.is_ipv4()))
        .copied()
        .collect();
    if usable.len() <= 1 {
        return connect_any(addrs, source, device, Some(timeout)).await;
    }
    let mut set = JoinSet::new();
    let mut next = usable.into_iter();
    let mut last = None;
    let start = |set: &mut JoinSet<_>, addr: SocketAddr| {
        let device = device.map(str::to_owned);
        set.spawn(
            async move { connect_any(&[addr], source, device.as_deref(), Some(timeout)).await },
        );
    };
    if let Some(a) = next.next() {
        start(&mut set, a);
    }
    loop {
        tokio::select! {
            j = set.join_next() => match j {
                Some(Ok(Ok(s))) => return Ok(s),
                Some(Ok(Err(e))) => {
                    last = Some(e);
                    if let Some(a) = next.next() {
                        start(&mut set, a);
                    }
                }
                Some(Err(_)) => {}
                None => match next.next() {
                    Some(a) => start(&mut set, a),
                    None => break,
                },
            },
            _ = tokio::time::sleep(STAGGER), if next.len() > 0 => {
                if let Some(a) = next.next() {
                    start(&mut set, a);
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| ConnectError::NoAddress(String::new(), "usable")))
}

/// One reconnect attempt for a named destination: look the name up again at every relay,
/// then connect directly or through a relay that knows it. The ROUTE header is queued on the
/// returned connection.
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
        match connect_race(&hop.addrs, source, device, hop.timeout).await {
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
                relays: vec![relay.into()],
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

    #[test]
    fn several_relays_each_with_its_port() {
        let n = parse("pc@a,b:99,[::1],::2,10.0.0.1:1").unwrap().unwrap();
        assert_eq!(n.name, "pc");
        assert_eq!(
            n.relays,
            ["a:7480", "b:99", "[::1]:7480", "[::2]:7480", "10.0.0.1:1"]
        );
        assert!(parse("pc@a,").is_err());
        assert!(parse("pc@,a").is_err());
        assert!(parse("pc@a,,b").is_err());
        let nine = ["r"; MAX_RELAYS + 1].join(",");
        assert!(parse(&format!("pc@{nine}")).is_err());
        let eight = ["r"; MAX_RELAYS].join(",");
        assert_eq!(
            parse(&format!("pc@{eight}")).unwrap().unwrap().relays.len(),
            8
        );
    }

    /// A relay that refuses the name is left out; the one that finds it is routed through
    /// first; one that cannot be reached does not hold the answer up.
    #[tokio::test]
    async fn lookup_prefers_the_relay_that_finds_the_name() {
        use tokio::io::AsyncReadExt;
        use tokio::net::TcpListener;
        async fn fake(answer: Option<RelayToClient>) -> SocketAddr {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let a = l.local_addr().unwrap();
            tokio::spawn(async move {
                let (mut s, _) = l.accept().await.unwrap();
                let mut b = [0u8; 64];
                let _ = s.read(&mut b).await;
                match answer {
                    Some(m) => s.write_all(&m.with_preamble()).await.unwrap(),
                    None => std::future::pending::<()>().await,
                }
            });
            a
        }
        let direct: SocketAddr = "192.0.2.7:9".parse().unwrap();
        let no = fake(Some(RelayToClient::Error(Refusal {
            code: crate::proto::ErrorCode::Refused,
            reason: "no such name".into(),
        })))
        .await;
        let silent = fake(None).await;
        let yes = fake(Some(RelayToClient::Found(vec![direct]))).await;
        let named = Named {
            name: "pc".into(),
            relays: vec!["x".into()],
        };
        let t0 = std::time::Instant::now();
        let wait = Duration::from_secs(5);
        let found = lookup(&named, &[no, silent, yes], wait).await.unwrap();
        assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
        assert_eq!(found.relays[0], yes);
        assert!(!found.relays.contains(&no), "{:?}", found.relays);
        assert_eq!(found.direct, vec![direct]);
        // Nobody has it: the refusal is what the user hears.
        let no2 = fake(Some(RelayToClient::Error(Refusal {
            code: crate::proto::ErrorCode::Refused,
            reason: "no such name".into(),
        })))
        .await;
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let e = lookup(&named, &[dead, no2], wait).await.unwrap_err();
        assert!(matches!(e, ConnectError::Handshake(..)), "{e}");
    }

    /// The race: a dead address gives way to the next at once, and the live one wins.
    #[tokio::test]
    async fn connect_race_gets_past_a_dead_address() {
        let live = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let live_addr = live.local_addr().unwrap();
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let s = connect_race(&[dead, live_addr], None, None, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(s.peer_addr().unwrap(), live_addr);
        let e = connect_race(&[dead, dead], None, None, Duration::from_secs(1)).await;
        assert!(matches!(e, Err(ConnectError::Connect(..))));
    }
}
