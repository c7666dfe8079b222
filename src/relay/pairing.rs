//! Both ends' connections for pairing by code through a relay (see [`super::nameplate`] for
//! the relay's rules): the listener claims a nameplate (REGISTER_CODE, then DIALs answered
//! with SPLICE, as any registration) and tells the relay when it paired (PAIRED); the sender
//! opens a PAIR connection. What the two then say to each other is the pairing exchange,
//! end to end; the relay copies it unread.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::refusal::NAME_TAKEN;
use super::wire::{self, ClientToRelay, ListenerToRelay, Message, Refusal, RelayToListener};
use crate::proto::text::Untrusted;
use crate::proto::{ErrorCode, PREAMBLE};
use crate::runtime::client::connect_any;
use crate::runtime::{resolve, Family};

/// `HOST[:PORT]` with the relay's default port filled in; Err: malformed.
pub fn relay_addr(relay: &str) -> Result<String, String> {
    match super::client::parse(&format!("x@{relay}"))? {
        Some(n) => match <[String; 1]>::try_from(n.relays) {
            Ok([r]) => Ok(r),
            Err(_) => Err(format!("'{relay}' lists several relays; give one")),
        },
        None => Err(format!("'{relay}' is not HOST[:PORT]")),
    }
}

/// Why a nameplate could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Another listener holds this nameplate: draw another.
    #[error("nameplate taken")]
    Taken,
    /// The relay refused (an old relay without pairing, a key it wants, a limit).
    #[error("{0}")]
    Refused(String),
    /// The relay could not be reached, or broke the exchange.
    #[error("{0}")]
    Unreachable(String),
}

/// A claimed nameplate: the pairing connections the relay splices to it arrive on
/// `splices`; dropping it closes the control channel (the relay forgets an unburned
/// nameplate then).
pub struct Nameplate {
    /// Spliced PAIR connections, the client's msock preamble already read by the relay and
    /// passed on (the stream starts with it).
    pub splices: mpsc::Receiver<TcpStream>,
    /// Asks the channel's task to send PAIRED.
    paired: mpsc::Sender<()>,
}

impl Nameplate {
    /// Tells the relay that pairing succeeded: it burns the nameplate.
    pub async fn paired(&self) {
        let _ = self.paired.send(()).await;
    }
}

/// Registers nameplate `name` at `relay` (HOST:PORT) for pairing, proving the operator `key`
/// if given (a relay started with --auth-keys wants one).
pub async fn claim(
    relay: &str,
    family: Family,
    name: &str,
    key: Option<&[u8]>,
) -> Result<Nameplate, ClaimError> {
    let t = Duration::from_secs(10);
    let unreachable =
        |e: &dyn std::fmt::Display| ClaimError::Unreachable(format!("relay {relay}: {e}"));
    let addrs = resolve(relay, family).await.map_err(|e| unreachable(&e))?;
    let s = connect_any(&addrs, None, None, Some(t))
        .await
        .map_err(|e| unreachable(&e))?;
    let relay_sa = s.peer_addr().map_err(|e| unreachable(&e))?;
    let _ = s.set_nodelay(true);
    let (mut rd, mut wr) = s.into_split();
    let hello = ListenerToRelay::RegisterCode {
        name: name.to_owned(),
        addrs: Vec::new(),
    };
    wr.write_all(&hello.with_preamble())
        .await
        .map_err(|e| unreachable(&e))?;
    wire::read_preamble(&mut rd, t)
        .await
        .map_err(|e| unreachable(&e))?;
    let refused = |r: Refusal| match r.code {
        NAME_TAKEN => ClaimError::Taken,
        code => ClaimError::Refused(format!(
            "relay {relay} refused the code's number ({code}): {}",
            Untrusted(&r.reason)
        )),
    };
    let nonce = match wire::read_frame(&mut rd, t)
        .await
        .map_err(|e| unreachable(&e))?
    {
        RelayToListener::Nonce { nonce, .. } => nonce,
        RelayToListener::Error(r) => return Err(refused(r)),
        other => return Err(unreachable(&format!("unexpected {}", other.name()))),
    };
    // A fresh nameplate: no secret to prove (the relay gives one we never need again).
    let prove = ListenerToRelay::Prove {
        name_proof: [0; 32],
        key_proof: key.map_or([0; 32], |k| super::secrets::key_proof(k, name, &nonce)),
    };
    wr.write_all(&prove.encode())
        .await
        .map_err(|e| unreachable(&e))?;
    let keepalive = match wire::read_frame(&mut rd, t)
        .await
        .map_err(|e| unreachable(&e))?
    {
        RelayToListener::Registered { keepalive, .. } => Duration::from_secs(keepalive.into()),
        RelayToListener::Error(r) if r.code == ErrorCode::Protocol => {
            return Err(ClaimError::Refused(format!(
                "relay {relay} does not know codes (an older msock proxy?): {}",
                Untrusted(&r.reason)
            )))
        }
        RelayToListener::Error(r) => return Err(refused(r)),
        other => return Err(unreachable(&format!("unexpected {}", other.name()))),
    };
    let (splice_tx, splices) = mpsc::channel(4);
    let (paired, paired_rx) = mpsc::channel(1);
    let frames = wire::spawn_reader(rd, keepalive * 2 + Duration::from_secs(1));
    tokio::spawn(channel(
        wr, frames, relay_sa, keepalive, splice_tx, paired_rx,
    ));
    Ok(Nameplate { splices, paired })
}

/// The nameplate's control channel: DIALs, keepalives, PAIRED; ends when the relay goes or
/// the [`Nameplate`] is dropped.
async fn channel(
    mut wr: OwnedWriteHalf,
    mut frames: mpsc::Receiver<Result<RelayToListener, wire::WireError>>,
    relay: SocketAddr,
    keepalive: Duration,
    splices: mpsc::Sender<TcpStream>,
    mut paired: mpsc::Receiver<()>,
) {
    let mut ping = tokio::time::interval(keepalive.max(Duration::from_secs(1)));
    ping.tick().await;
    let mut token = 0u64;
    let dials = std::sync::Arc::new(tokio::sync::Semaphore::new(
        crate::relay::nameplate::PAIR_ATTEMPTS as usize,
    ));
    loop {
        tokio::select! {
            f = frames.recv() => match f {
                Some(Ok(RelayToListener::Dial { id, token })) => {
                    // At most as many dial-backs at once as a code has tries: a hostile
                    // relay's flood of DIALs opens no more connections than that.
                    let Ok(slot) = dials.clone().try_acquire_owned() else {
                        tracing::info!("relay: DIAL beyond the code's tries ignored");
                        continue;
                    };
                    let tx = splices.clone();
                    tokio::spawn(async move {
                        if let Some(s) = dial_back(relay, id, token).await {
                            let _ = tx.send(s).await;
                        }
                        drop(slot);
                    });
                }
                Some(Ok(RelayToListener::Pong(_))) => {}
                Some(Ok(other)) => {
                    tracing::info!("relay: unexpected {} on the code's channel", other.name());
                    return;
                }
                Some(Err(e)) => {
                    tracing::info!("relay: the code's channel ended: {e}");
                    return;
                }
                None => return,
            },
            _ = ping.tick() => {
                token += 1;
                if wr.write_all(&ListenerToRelay::Ping(token).encode()).await.is_err() {
                    return;
                }
            }
            p = paired.recv() => {
                if p.is_some() {
                    let _ = wr.write_all(&ListenerToRelay::Paired.encode()).await;
                }
                let _ = wr.shutdown().await;
                return;
            }
        }
    }
}

/// Connects back to the relay for splice `id` (as the relay asked).
async fn dial_back(relay: SocketAddr, id: u64, token: [u8; wire::NONCE_LEN]) -> Option<TcpStream> {
    let mut s = connect_any(&[relay], None, None, Some(Duration::from_secs(5)))
        .await
        .ok()?;
    let _ = s.set_nodelay(true);
    s.write_all(&ListenerToRelay::Splice { id, token }.with_preamble())
        .await
        .ok()?;
    Some(s)
}

/// The sender's pairing connection to nameplate `name` at `relay` (HOST:PORT): PAIR, msock's
/// preamble and `first` (the exchange's first frame) are written at once; the exchange
/// follows. The relay's refusal, if any, arrives as the first frame (after its preamble).
pub async fn open(
    relay: &str,
    family: Family,
    name: &str,
    wait: Duration,
    first: &[u8],
) -> Result<TcpStream, String> {
    let addrs = resolve(relay, family).await.map_err(|e| e.to_string())?;
    let mut s = connect_any(&addrs, None, None, Some(wait))
        .await
        .map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    let mut out = ClientToRelay::Pair(name.to_owned()).with_preamble();
    out.extend_from_slice(&PREAMBLE);
    out.extend_from_slice(first);
    s.write_all(&out).await.map_err(|e| e.to_string())?;
    Ok(s)
}
