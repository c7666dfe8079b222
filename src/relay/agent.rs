//! The listener's side of a relay (`msock listen --relay HOST:PORT --name NAME`): keeps a
//! control channel to the relay (REGISTER, keepalive PINGs), re-registers after its own
//! address changes or a lost channel, and answers each DIAL by connecting back to the relay
//! with SPLICE; that connection then carries a client's flowpath and is handed to the
//! listener's normal accept path as if it had been accepted.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::refusal::NAME_TAKEN;
use super::secrets;
use super::wire::{self, ListenerToRelay, Message, Refusal, RelayToListener, NONCE_LEN};
use crate::proto::text::Untrusted;
use crate::runtime::events::Events;
use crate::runtime::{client, netwatch, resolve, Family};

/// Hands a dialed-back connection (and the relay's address) to the listener's accept path.
pub type Inject = Arc<dyn Fn(TcpStream, SocketAddr) + Send + Sync>;

/// What the listener registers, and how.
#[derive(Clone)]
pub struct AgentConfig {
    /// The relay, HOST:PORT.
    pub relay: String,
    /// The name to register.
    pub name: String,
    /// Where the name's secret is kept.
    pub secret_file: PathBuf,
    /// The operator key, if the relay wants one.
    pub key: Option<Vec<u8>>,
    /// Address family for reaching the relay.
    pub family: Family,
    /// The listener's own listening sockets (wildcards are expanded to the machine's
    /// addresses at each registration), published for direct connections.
    pub listening: Vec<SocketAddr>,
    /// Where the registration's ups and downs go: `relay_lost` (`relay`, `error`) when the
    /// control channel ends (once per outage; retries are silent) and `relay_registered`
    /// (`name`, `relay`) when it is registered again.
    pub events: Events,
}

/// Why a registration failed.
#[derive(Debug)]
pub enum RegisterError {
    /// The relay refused the name or the key: retrying cannot help (exit 1).
    Refused(String),
    /// Another listener holds the name (its secret, not ours): retrying cannot help (exit 1).
    NameTaken(String),
    /// The relay could not be reached or the channel broke: retry.
    Transient(String),
    /// A local problem (the secret file): the user must fix it (exit 2).
    Local(String),
}

impl std::fmt::Display for RegisterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegisterError::Refused(m)
            | RegisterError::NameTaken(m)
            | RegisterError::Transient(m)
            | RegisterError::Local(m) => f.write_str(m),
        }
    }
}

/// A registered control channel.
struct Channel {
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
    relay: SocketAddr,
    local: IpAddr,
    keepalive: Duration,
}

/// Splices we dialed, with the local address each left from (most recent last), so that
/// after an address change the relay can be told which of them are dead.
type Dialed = Arc<Mutex<VecDeque<(u64, IpAddr)>>>;

/// Most remembered splices.
const DIALED_MAX: usize = 4096;

/// Registers the name once (so that the caller can report a refusal and exit), then keeps
/// the registration alive in a task. The task sends a message on the returned channel if the
/// name is lost for good (refused on re-registration), and keeps `inject` until that channel
/// is dropped (the listener's accept path stays open while it reports the loss).
pub async fn start(
    cfg: AgentConfig,
    inject: Inject,
) -> Result<mpsc::Receiver<String>, RegisterError> {
    let dialed: Dialed = Arc::default();
    let ch = register(&cfg, &dialed).await?;
    eprintln!(
        "msock: registered '{}' at relay {}; clients connect to {}@{}",
        cfg.name, ch.relay, cfg.name, cfg.relay
    );
    let (fatal_tx, fatal_rx) = mpsc::channel(1);
    tokio::spawn(keep(cfg, inject, dialed, ch, fatal_tx));
    Ok(fatal_rx)
}

/// Runs the channel; re-registers whenever it ends.
async fn keep(
    cfg: AgentConfig,
    inject: Inject,
    dialed: Dialed,
    first: Channel,
    fatal: mpsc::Sender<String>,
) {
    let mut changes = netwatch::spawn();
    let mut ch = Some(first);
    let mut wait = Duration::from_millis(250);
    loop {
        if let Some(c) = ch.take() {
            let relay = c.relay;
            let why = run_channel(c, &inject, &dialed, &mut changes).await;
            tracing::info!("relay control channel ended ({why}); registering again");
            cfg.events.emit(
                "relay_lost",
                serde_json::json!({"relay": relay.to_string(), "error": why}),
            );
            wait = Duration::from_millis(250);
        }
        match register(&cfg, &dialed).await {
            Ok(c) => {
                tracing::info!("registered '{}' again at relay {}", cfg.name, c.relay);
                cfg.events.emit(
                    "relay_registered",
                    serde_json::json!({"name": cfg.name, "relay": c.relay.to_string()}),
                );
                ch = Some(c);
            }
            Err(RegisterError::Transient(e)) => {
                tracing::info!("cannot register at the relay ({e}); retrying in {wait:?}");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    Some(()) = changes.recv() => {}
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                let why = match e {
                    RegisterError::NameTaken(m) => format!("registration lost: name taken: {m}"),
                    e => format!("relay registration lost: {e}"),
                };
                let _ = fatal.send(why).await;
                // Hold `inject` (the listener's accept path) until the loss is taken in: a
                // closed accept path would race with it and read as a local failure.
                fatal.closed().await;
                return;
            }
        }
    }
}

/// Serves DIALs and keepalives until the channel breaks or our address under it goes away.
async fn run_channel(
    mut c: Channel,
    inject: &Inject,
    dialed: &Dialed,
    changes: &mut mpsc::Receiver<()>,
) -> String {
    let mut ping = tokio::time::interval(c.keepalive);
    ping.tick().await;
    let mut token = 0u64;
    let mut frames = wire::spawn_reader(c.rd, c.keepalive * 2 + Duration::from_secs(1));
    loop {
        tokio::select! {
            f = frames.recv() => match f.unwrap_or(Err(wire::WireError::ReaderGone)) {
                Ok(RelayToListener::Dial { id, token }) => {
                    tokio::spawn(dial_back(c.relay, id, token, inject.clone(), dialed.clone()));
                }
                Ok(RelayToListener::Pong(_)) => {}
                Ok(RelayToListener::Error(Refusal { code, reason })) => return format!("relay said {code}: {}", Untrusted(&reason)),
                Ok(other) => return format!("unexpected {} from the relay", other.name()),
                Err(e) => return e.to_string(),
            },
            _ = ping.tick() => {
                token += 1;
                if c.wr.write_all(&ListenerToRelay::Ping(token).encode()).await.is_err() {
                    return "cannot write to the relay".into();
                }
            }
            Some(()) = changes.recv() => {
                if !netwatch::local_addrs().contains(&c.local) {
                    return format!("our address {} went away", c.local);
                }
            }
        }
    }
}

/// Connects back to the relay for splice `id` and hands the connection to the listener.
async fn dial_back(
    relay: SocketAddr,
    id: u64,
    token: [u8; NONCE_LEN],
    inject: Inject,
    dialed: Dialed,
) {
    let mut s = match client::connect_any(&[relay], None, None, Some(Duration::from_secs(5))).await
    {
        Ok(s) => s,
        Err(e) => {
            tracing::info!("cannot dial back to the relay for a client: {e}");
            return;
        }
    };
    if let Err(e) = s
        .write_all(&ListenerToRelay::Splice { id, token }.with_preamble())
        .await
    {
        tracing::info!("cannot dial back to the relay for a client: {e}");
        return;
    }
    if let Ok(local) = s.local_addr() {
        let mut d = dialed.lock().unwrap_or_else(|e| e.into_inner());
        if d.len() >= DIALED_MAX {
            d.pop_front();
        }
        d.push_back((id, local.ip()));
    }
    tracing::debug!("splice {id:016x}: dialed back to the relay");
    inject(s, relay);
}

/// The addresses to publish for direct connections.
fn published(listening: &[SocketAddr]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    let mine = netwatch::local_addrs();
    for l in listening {
        if l.ip().is_unspecified() {
            let mut ips: Vec<IpAddr> = mine
                .iter()
                .filter(|ip| ip.is_ipv4() == l.is_ipv4())
                .filter(|ip| !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80))
                .copied()
                .collect();
            ips.sort();
            out.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, l.port())));
        } else {
            out.push(*l);
        }
    }
    out.truncate(wire::MAX_ADDRS);
    out
}

/// One registration: connect, REGISTER, answer the NONCE, read REGISTERED, keep the secret.
async fn register(cfg: &AgentConfig, dialed: &Dialed) -> Result<Channel, RegisterError> {
    let t = Duration::from_secs(10);
    let addrs = resolve(&cfg.relay, cfg.family)
        .await
        .map_err(|e| RegisterError::Transient(e.to_string()))?;
    let s = client::connect_any(&addrs, None, None, Some(t))
        .await
        .map_err(|e| RegisterError::Transient(format!("cannot reach the relay: {e}")))?;
    let relay = s
        .peer_addr()
        .map_err(|e| RegisterError::Transient(e.to_string()))?;
    let local = s
        .local_addr()
        .map_err(|e| RegisterError::Transient(e.to_string()))?
        .ip();
    let _ = s.set_nodelay(true);
    let (mut rd, mut wr) = s.into_split();
    let transient =
        |e: &dyn std::fmt::Display| RegisterError::Transient(format!("relay {relay}: {e}"));
    let hello = ListenerToRelay::Register {
        name: cfg.name.clone(),
        addrs: published(&cfg.listening),
    };
    wr.write_all(&hello.with_preamble())
        .await
        .map_err(|e| transient(&e))?;
    wire::read_preamble(&mut rd, t).await.map_err(|e| match e {
        wire::WireError::NotMsock => RegisterError::Refused(format!(
            "{relay} is not an msock relay (it does not speak msock)"
        )),
        e => transient(&e),
    })?;
    let nonce = match wire::read_frame(&mut rd, t)
        .await
        .map_err(|e| transient(&e))?
    {
        RelayToListener::Nonce(n) => n,
        RelayToListener::Error(r) => return Err(refusal(relay, r)),
        other => return Err(transient(&format!("unexpected {}", other.name()))),
    };
    let secret = secrets::load_secret(&cfg.secret_file).map_err(RegisterError::Local)?;
    let prove = ListenerToRelay::Prove {
        name_proof: secret.map_or([0; 32], |s| secrets::name_proof(&s, &cfg.name, &nonce)),
        key_proof: cfg
            .key
            .as_ref()
            .map_or([0; 32], |k| secrets::key_proof(k, &cfg.name, &nonce)),
    };
    wr.write_all(&prove.encode())
        .await
        .map_err(|e| transient(&e))?;
    let (fresh, keepalive) = match wire::read_frame(&mut rd, t)
        .await
        .map_err(|e| transient(&e))?
    {
        RelayToListener::Registered {
            secret, keepalive, ..
        } => (secret, keepalive),
        RelayToListener::Error(r) => return Err(refusal(relay, r)),
        other => return Err(transient(&format!("unexpected {}", other.name()))),
    };
    if fresh != [0; 32] {
        secrets::write_private(&cfg.secret_file, secrets::hex(&fresh).as_bytes()).map_err(|e| {
            RegisterError::Local(format!(
                "cannot keep the name's secret in {}: {e} (set MSOCK_STATE_DIR to a writable directory)",
                cfg.secret_file.display()
            ))
        })?;
        tracing::info!(
            "new secret for '{}' kept in {}",
            cfg.name,
            cfg.secret_file.display()
        );
    }
    // Splices whose local address is gone: tell the relay, so that their clients reconnect
    // now rather than after their dead time.
    let gone: Vec<u64> = {
        let mine = netwatch::local_addrs();
        let mut d = dialed.lock().unwrap_or_else(|e| e.into_inner());
        let gone = d
            .iter()
            .filter(|(_, ip)| !mine.contains(ip))
            .map(|(id, _)| *id)
            .collect();
        d.retain(|(_, ip)| mine.contains(ip));
        gone
    };
    for chunk in gone.chunks(wire::MAX_GONE) {
        tracing::info!(
            "telling the relay that {} spliced flowpaths lost our address",
            chunk.len()
        );
        wr.write_all(&ListenerToRelay::Gone(chunk.to_vec()).encode())
            .await
            .map_err(|e| transient(&e))?;
    }
    Ok(Channel {
        rd,
        wr,
        relay,
        local,
        keepalive: Duration::from_secs(keepalive.clamp(1, 3600) as u64),
    })
}

/// The relay's refusal, classified by its code (its reason is the relay's text: escaped).
fn refusal(relay: SocketAddr, Refusal { code, reason }: Refusal) -> RegisterError {
    use crate::proto::ErrorCode;
    let reason = Untrusted(&reason);
    match code {
        NAME_TAKEN => {
            RegisterError::NameTaken(format!("relay {relay} refused the registration: {reason}"))
        }
        ErrorCode::AuthFailed | ErrorCode::Refused | ErrorCode::Protocol | ErrorCode::Version => {
            RegisterError::Refused(format!("relay {relay} refused the registration: {reason}"))
        }
        _ => RegisterError::Transient(format!("relay {relay}: {code}: {reason}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ErrorCode;

    #[test]
    fn refusals_are_classified_by_code_and_their_text_escaped() {
        let relay: SocketAddr = "192.0.2.1:7480".parse().unwrap();
        let r = |code, reason: &str| {
            refusal(
                relay,
                Refusal {
                    code,
                    reason: reason.into(),
                },
            )
        };
        assert!(matches!(r(NAME_TAKEN, "x"), RegisterError::NameTaken(_)));
        assert!(matches!(
            r(ErrorCode::AuthFailed, "x"),
            RegisterError::Refused(_)
        ));
        assert!(matches!(
            r(ErrorCode::Busy, "x"),
            RegisterError::Transient(_)
        ));
        let shown = r(ErrorCode::Refused, "\x1b[2Jfake\x07").to_string();
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(shown.contains("\\u{1b}[2Jfake"), "{shown:?}");
    }
}
