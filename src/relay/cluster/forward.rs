//! Cross-relay DIAL. A client's ROUTE reaches relay A for a name attached at relay B: A
//! keeps the client's half waiting as for a local name and sends B
//! `MSOCK\x01 FORWARD(name, splice id, token, A's address, time, mac)` on a connection of its
//! own; B checks the MAC (cluster key) and the time, and sends DIAL_AT(id, token, A) on the
//! name's control channel; its listener dials back to A with SPLICE, as after a DIAL. B
//! answers A `MSOCK\x01 FOUND()` (the listener was asked) or ERROR (no listener for the name
//! here), and closes. The client's bytes never pass B: one relay hop, as with one relay.
//!
//! The MAC covers the receiving relay's id (a FORWARD for B is refused at C), and B takes
//! each FORWARD once: it remembers the MACs of those it took within [`FORWARD_SKEW`] (at
//! most [`MAX_SEEN`]; beyond, a FORWARD is refused Busy) and refuses a replay.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::seal::forward_mac;
use super::At;
use crate::proto::text::Untrusted;
use crate::proto::ErrorCode;
use crate::relay::registry::unix_now;
use crate::relay::secrets;
use crate::relay::server::{refuse, Relay};
use crate::relay::wire::{
    self, Forward, Message, Refusal, RelayToClient, RelayToListener, FORWARD_SKEW, NONCE_LEN,
};

/// Most FORWARD MACs a relay remembers (those within [`FORWARD_SKEW`]).
pub(crate) const MAX_SEEN: usize = 65536;

/// Why a FORWARD with a good MAC and time is not taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Taken already.
    Seen,
    /// Too many FORWARDs within the window to remember another.
    Full,
}

/// Records a FORWARD's `mac` sent at `time` (unix seconds) into `seen` (MAC → time) at
/// `now`: Err when it was taken already or there is no room.
pub(crate) fn take_once(
    seen: &mut HashMap<[u8; 32], u64>,
    mac: [u8; 32],
    time: u64,
    now: u64,
) -> Result<(), Replay> {
    if seen.contains_key(&mac) {
        return Err(Replay::Seen);
    }
    if seen.len() >= MAX_SEEN {
        let window = FORWARD_SKEW.as_secs();
        seen.retain(|_, t| now.abs_diff(*t) <= window);
        if seen.len() >= MAX_SEEN {
            return Err(Replay::Full);
        }
    }
    seen.insert(mac, time);
    Ok(())
}

impl Relay {
    /// Asks relay `at` to have `name`'s listener dial back here for splice `id`.
    pub(crate) async fn forward_dial(
        &self,
        at: &At,
        name: &str,
        id: u64,
        token: [u8; NONCE_LEN],
    ) -> Result<(), Refusal> {
        let Some(c) = &self.cluster else {
            return Err(Refusal {
                code: ErrorCode::Refused,
                reason: "this relay is in no cluster".into(),
            });
        };
        let mut f = Forward {
            name: name.to_owned(),
            id,
            token,
            at: c.cfg.advertise,
            time: unix_now(),
            mac: [0; 32],
        };
        f.mac = forward_mac(&c.cfg.key, &at.relay, &f.signed());
        let hs = self.cfg.handshake_timeout;
        let busy = |why: String| Refusal {
            code: ErrorCode::Busy,
            reason: why,
        };
        let answer = tokio::time::timeout(hs, async {
            let mut s = TcpStream::connect(at.addr).await?;
            let _ = s.set_nodelay(true);
            s.write_all(&f.with_preamble()).await?;
            wire::read_preamble(&mut s, hs).await?;
            wire::read_frame::<RelayToClient, _>(&mut s, hs).await
        })
        .await;
        match answer {
            Ok(Ok(RelayToClient::Found(_))) => {
                self.metrics.forwarded_dials.inc();
                Ok(())
            }
            Ok(Ok(RelayToClient::Error(r))) => Err(Refusal {
                code: r.code,
                reason: format!(
                    "relay {} (where '{name}' is attached) said: {}",
                    at.relay,
                    Untrusted(&r.reason)
                ),
            }),
            Ok(Err(e)) => Err(busy(format!(
                "cannot reach relay {} at {} where '{name}' is attached: {e}; retry",
                at.relay, at.addr
            ))),
            Err(_) => Err(busy(format!(
                "relay {} at {} where '{name}' is attached did not answer in time; retry",
                at.relay, at.addr
            ))),
        }
    }

    /// FORWARD from another relay: checks it, asks the name's listener to dial back there.
    pub(crate) async fn forwarded(self: Arc<Self>, mut s: TcpStream, peer: SocketAddr, f: Forward) {
        let Some(c) = &self.cluster else {
            self.refuse_count("garbage");
            let why = "this relay is in no cluster (msock proxy --etcd): it takes no FORWARD";
            return refuse(s, ErrorCode::Protocol, why).await;
        };
        let mac = forward_mac(&c.cfg.key, &c.cfg.id, &f.signed());
        if !secrets::same(&mac, &f.mac) {
            self.refuse_count("bad_forward");
            self.status(
                "refused",
                serde_json::json!({"from": peer.to_string(), "reason": "bad_forward"}),
            );
            let why = "FORWARD not authenticated: is --cluster-key-file the same at every relay?";
            return refuse(s, ErrorCode::AuthFailed, why).await;
        }
        let skew = unix_now().abs_diff(f.time);
        if Duration::from_secs(skew) > FORWARD_SKEW {
            self.refuse_count("bad_forward");
            let why =
                format!("FORWARD sent {skew} s away from this relay's clock; sync the clocks");
            return refuse(s, ErrorCode::AuthFailed, &why).await;
        }
        let once = take_once(&mut c.forwards(), f.mac, f.time, unix_now());
        if let Err(e) = once {
            self.refuse_count("bad_forward");
            self.status(
                "refused",
                serde_json::json!({"from": peer.to_string(), "reason": "bad_forward"}),
            );
            return match e {
                Replay::Seen => {
                    let why = "FORWARD replayed: this relay took it already";
                    refuse(s, ErrorCode::AuthFailed, why).await
                }
                Replay::Full => {
                    let why = "too many FORWARDs to this relay just now; retry";
                    refuse(s, ErrorCode::Busy, why).await
                }
            };
        }
        let sent = {
            let r = self.reg();
            r.names
                .get(&f.name)
                .and_then(|n| n.control.as_ref())
                .map(|ctl| {
                    ctl.tx
                        .try_send(RelayToListener::DialAt {
                            id: f.id,
                            token: f.token,
                            relay: f.at,
                        })
                        .is_ok()
                })
        };
        match sent {
            Some(true) => {
                self.status(
                    "forwarded_dial",
                    serde_json::json!({"name": f.name, "to": f.at.to_string()}),
                );
                let _ = tokio::time::timeout(self.cfg.handshake_timeout, async {
                    let _ = s
                        .write_all(&RelayToClient::Found(Vec::new()).with_preamble())
                        .await;
                    let _ = s.shutdown().await;
                })
                .await;
            }
            Some(false) => {
                let why = "the listener's control channel is full; retry";
                refuse(s, ErrorCode::Busy, why).await
            }
            None => {
                let why = format!(
                    "no listener named '{}' is attached here now (it may be re-registering); retry",
                    f.name
                );
                refuse(s, ErrorCode::Busy, &why).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forward_is_taken_once_and_the_memory_is_bounded() {
        let mut seen = HashMap::new();
        assert_eq!(take_once(&mut seen, [1; 32], 100, 100), Ok(()));
        assert_eq!(take_once(&mut seen, [1; 32], 100, 101), Err(Replay::Seen));
        for i in 1..MAX_SEEN as u64 {
            let mut mac = [0; 32];
            mac[..8].copy_from_slice(&i.to_be_bytes());
            assert_eq!(take_once(&mut seen, mac, 100, 100), Ok(()));
        }
        assert_eq!(take_once(&mut seen, [2; 32], 100, 100), Err(Replay::Full));
        // Later, the old ones are out of the window (and would fail the time check).
        let later = 100 + FORWARD_SKEW.as_secs() + 1;
        assert_eq!(take_once(&mut seen, [2; 32], later, later), Ok(()));
        assert_eq!(seen.len(), 1);
    }
}
