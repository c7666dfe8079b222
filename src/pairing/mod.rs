//! Pairing by code phrase (`msock listen --code`, `send-file --code`, `connect --code`): the
//! pairing exchange ([`crate::proto::pake`]) run over a relay's nameplate
//! ([`crate::relay::pairing`]), and the tickets that let a sender rerun without pairing
//! again ([`ticket`]).
//!
//! The listener claims a random nameplate at the relay (drawing another if one is taken),
//! prints the code and waits; each PAIR connection the relay splices to it is one attempt.
//! A wrong code is told to the sender (WRONG) and counted; after
//! [`crate::relay::nameplate::PAIR_ATTEMPTS`] the listener gives up (the relay, which counts
//! the same attempts, has burned the nameplate). A right one makes both sides derive the
//! session's psk and relay name; the listener tells the relay (PAIRED: burned), registers
//! the session name, and then says DONE, after which the sender opens an ordinary session to
//! `NAME@RELAY` whose Noise handshake uses the psk.

pub mod ticket;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::proto::code::Code;
use crate::proto::codec::{Framing, HEADER_LEN};
use crate::proto::handshake::KEY_LEN;
use crate::proto::pake::{self, Paired, PakeError, PakeFrame};
use crate::proto::text::Untrusted;
use crate::proto::PREAMBLE;
use crate::relay::nameplate::PAIR_ATTEMPTS;
use crate::relay::pairing::{self as relay_pairing, ClaimError, Nameplate};
use crate::runtime::Family;

/// How long one pairing attempt may take at the listener (a sender that stalls is counted
/// as a failed attempt after this).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why pairing failed, and whose fault it is.
#[derive(Debug, thiserror::Error)]
pub enum PairingError {
    /// The codes differ (the peer's, or this side's check failed).
    #[error("wrong code")]
    WrongCode,
    /// Every attempt the nameplate had was used by wrong codes (listener).
    #[error("wrong code: {PAIR_ATTEMPTS} tries with a wrong code; the code is burned (run msock listen --code again for a new one)")]
    Burned,
    /// The relay or the listener refused or broke the exchange, or could not be reached.
    #[error("{0}")]
    Network(String),
}

/// A claimed nameplate with its code, waiting for the sender.
pub struct Waiting {
    plate: Nameplate,
    code: Code,
}

/// Claims a random free nameplate at `relay` (HOST:PORT) and draws the code's words.
pub async fn claim(relay: &str, family: Family) -> Result<Waiting, PairingError> {
    let mut rng = rand::rngs::OsRng;
    for _ in 0..20 {
        let nameplate = Code::random_nameplate(&mut rng);
        match relay_pairing::claim(relay, family, &nameplate.to_string()).await {
            Ok(plate) => {
                let code = Code::generate(nameplate, &mut rng);
                return Ok(Waiting { plate, code });
            }
            Err(ClaimError::Taken) => continue,
            Err(e) => return Err(PairingError::Network(e.to_string())),
        }
    }
    Err(PairingError::Network(format!(
        "relay {relay}: no free code number after 20 tries; try again later"
    )))
}

/// A listener that paired: its sender waits for [`Accepted::done`].
pub struct Accepted {
    /// What pairing gave.
    pub paired: Paired,
    conn: TcpStream,
}

impl Accepted {
    /// Tells the sender it may open its session (the session name is registered by now).
    pub async fn done(mut self) {
        let _ = self.conn.write_all(&PakeFrame::Done.encode()).await;
        let _ = self.conn.shutdown().await;
    }
}

impl Waiting {
    /// The code to show.
    pub fn code(&self) -> &Code {
        &self.code
    }

    /// Serves pairing attempts one at a time until one has the right code (the relay is told
    /// at once: PAIRED) or every attempt is used. `wrong(n)` is called after the n-th failed
    /// attempt.
    pub async fn pair(
        mut self,
        listener_key: [u8; KEY_LEN],
        mut wrong: impl FnMut(u8, &PairingError),
    ) -> Result<Accepted, PairingError> {
        let responder = pake::Responder::new(&self.code, listener_key);
        let mut failures = 0u8;
        while failures < PAIR_ATTEMPTS {
            let Some(mut conn) = self.plate.splices.recv().await else {
                return Err(PairingError::Network(
                    "the relay closed the code's registration".into(),
                ));
            };
            let attempt = tokio::time::timeout(ATTEMPT_TIMEOUT, respond(&responder, &mut conn));
            let err = match attempt.await {
                Ok(Ok(paired)) => {
                    self.plate.paired().await;
                    return Ok(Accepted { paired, conn });
                }
                Ok(Err(e)) => e,
                Err(_) => PairingError::Network("the sender stopped answering".into()),
            };
            failures += 1;
            wrong(failures, &err);
        }
        Err(PairingError::Burned)
    }
}

/// One attempt at the listener.
async fn respond(r: &pake::Responder, conn: &mut TcpStream) -> Result<Paired, PairingError> {
    read_preamble(conn).await?;
    let start = read_frame(conn).await?;
    let (reply, awaiting) = match r.on_start(start, &mut rand::rngs::OsRng) {
        Ok(x) => x,
        Err(e) => {
            let refusal = PakeFrame::Error(crate::proto::ErrorCode::Version, e.to_string());
            let _ = conn.write_all(&with_preamble(&refusal)).await;
            return Err(pake_error(e));
        }
    };
    let mut out = PREAMBLE.to_vec();
    out.extend_from_slice(&reply);
    conn.write_all(&out).await.map_err(net)?;
    let confirm = read_frame(conn).await?;
    match awaiting.on_confirm(confirm) {
        Ok(p) => Ok(p),
        Err(e) => {
            if e == PakeError::WrongCode {
                let _ = conn.write_all(&PakeFrame::Wrong.encode()).await;
            }
            Err(pake_error(e))
        }
    }
}

/// The sender's side: pairs with the listener waiting under `code` at `relay`.
pub async fn pair_with(
    relay: &str,
    family: Family,
    code: &Code,
    wait: Duration,
) -> Result<Paired, PairingError> {
    let (sender, start) = pake::Sender::start(code, &mut rand::rngs::OsRng);
    let mut conn = relay_pairing::open(relay, family, &code.name(), wait, &start)
        .await
        .map_err(|e| PairingError::Network(format!("cannot reach the relay {relay}: {e}")))?;
    // The relay's refusal or the listener's answer; the listener may take the relay's
    // handshake timeout to dial back.
    let reply = tokio::time::timeout(wait + ATTEMPT_TIMEOUT, async {
        read_preamble(&mut conn).await?;
        read_frame(&mut conn).await
    })
    .await
    .map_err(|_| PairingError::Network("the listener did not answer in time".into()))??;
    let (confirm, paired) = match sender.on_reply(reply) {
        Ok(x) => x,
        Err(e) => {
            if e == PakeError::WrongCode {
                let _ = conn.write_all(&PakeFrame::Wrong.encode()).await;
                let _ = conn.shutdown().await;
            }
            return Err(pake_error(e));
        }
    };
    conn.write_all(&confirm).await.map_err(net)?;
    let done = tokio::time::timeout(ATTEMPT_TIMEOUT, read_frame(&mut conn))
        .await
        .map_err(|_| PairingError::Network("the listener did not confirm in time".into()))??;
    pake::on_done(done).map_err(pake_error)?;
    Ok(paired)
}

fn with_preamble(f: &PakeFrame) -> Vec<u8> {
    let mut v = PREAMBLE.to_vec();
    v.extend_from_slice(&f.encode());
    v
}

fn net(e: std::io::Error) -> PairingError {
    PairingError::Network(format!("pairing connection: {e}"))
}

fn pake_error(e: PakeError) -> PairingError {
    match e {
        PakeError::WrongCode => PairingError::WrongCode,
        PakeError::Refused(code, why) => {
            PairingError::Network(format!("refused ({code}): {}", Untrusted(&why)))
        }
        PakeError::Protocol(m) => PairingError::Network(m),
    }
}

async fn read_preamble(conn: &mut TcpStream) -> Result<(), PairingError> {
    let mut p = [0u8; PREAMBLE.len()];
    conn.read_exact(&mut p).await.map_err(net)?;
    if p != PREAMBLE {
        return Err(PairingError::Network(
            "the peer does not speak msock's pairing".into(),
        ));
    }
    Ok(())
}

/// Reads one pairing frame (bounded by [`pake::MAX_FRAME`]).
async fn read_frame(conn: &mut TcpStream) -> Result<PakeFrame, PairingError> {
    let mut h = [0u8; HEADER_LEN];
    conn.read_exact(&mut h).await.map_err(net)?;
    let h = Framing::LenType
        .parse(&h)
        .and_then(|h| h.within(pake::MAX_FRAME - 1))
        .map_err(|e| PairingError::Network(format!("bad pairing frame: {e}")))?;
    let mut body = vec![0u8; h.body_len];
    conn.read_exact(&mut body).await.map_err(net)?;
    PakeFrame::decode(h.ty, &body).map_err(pake_error)
}
