//! Control datagrams: the server's authenticated RECONNECT ("I moved, reconnect to ADDR") and
//! the client's RECONNECT_ACK, sent over UDP between the sessions' control sockets.
//!
//! Layout (integers big-endian):
//!
//! ```text
//! magic "MSCT" [4] | version u8 = 1 | type u8 | session_id u64 | seq u64 | body | mac [32]
//! RECONNECT (type 1) body: family u8 (4 or 6) | address [4 or 16] | port u16 | cumulative u64
//! RECONNECT_ACK (type 2) body: empty
//! mac = HMAC-SHA-256(session secret, "msock control v1" || every byte before the mac)
//! ```
//!
//! `cumulative` is the server's received offset when it moved: the client treats it as an
//! acknowledgement, so that it re-sends exactly what was lost in flight to the old address.
//!
//! `seq` counts the server's RECONNECTs of one session from 1. A client acts on a RECONNECT
//! only if its seq is higher than any it accepted before, re-acknowledges the newest one (its
//! ACK may have been lost) and ignores older ones, so a recorded datagram cannot be replayed.
//! A datagram whose mac does not verify is ignored: it was forged or belongs to another session.

use std::net::SocketAddr;

use super::codec::{read_all, CodecError, Reader, Writer};
use super::frame::PROOF_LEN;
use super::session::Session;

const MAGIC: &[u8; 4] = b"MSCT";
const VERSION: u8 = 1;
const RECONNECT: u8 = 1;
const RECONNECT_ACK: u8 = 2;
/// Bytes before the body: magic, version, type, session id, seq.
const HEADER: usize = 4 + 1 + 1 + 8 + 8;
/// Largest control datagram.
pub const MAX_CONTROL_LEN: usize = HEADER + 1 + 16 + 2 + 8 + PROOF_LEN;

/// What a valid control datagram asks of the session that received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlAction {
    /// Client: the server now listens at `addr`: every flowpath has been retired (close their
    /// connections and attach new ones there). Send `ack` back to where the datagram came
    /// from. `fresh` is false for a repeat of the newest RECONNECT
    /// already acted on (only the ACK is needed then).
    Reconnect {
        /// The server's new address.
        addr: SocketAddr,
        /// The server had every client stream byte below this offset when it moved (already
        /// applied: what is left to re-send is known to be missing).
        cumulative: u64,
        /// The RECONNECT_ACK datagram to send.
        ack: Vec<u8>,
        /// True the first time this RECONNECT is seen.
        fresh: bool,
    },
    /// Server: the client acknowledged our RECONNECT number `seq`: stop re-sending it.
    Acked(u64),
}

/// Why a control datagram was ignored. The sender is at fault (or an attacker).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// Not an msock control datagram, or a truncated one.
    #[error("not an msock control datagram")]
    Malformed,
    /// The authentication code did not verify (forged, or another session's).
    #[error("control datagram failed authentication")]
    BadMac,
    /// A RECONNECT older than one already accepted (replayed).
    #[error("stale control datagram (replayed?)")]
    Stale,
    /// A datagram this side of the session never expects (e.g. RECONNECT to a server).
    #[error("unexpected control datagram for this side")]
    Unexpected,
}

/// The session id a control datagram names, to route it; `None` if it is not one.
pub fn session_id_of(datagram: &[u8]) -> Option<u64> {
    if datagram.len() < HEADER + PROOF_LEN {
        return None;
    }
    let head = read_head(&mut Reader::new(datagram)).ok()?;
    (&head.magic == MAGIC).then_some(head.session_id)
}

/// The fields in front of every control datagram's body.
struct Head {
    magic: [u8; 4],
    version: u8,
    ty: u8,
    session_id: u64,
    seq: u64,
}

fn read_head(r: &mut Reader) -> Result<Head, CodecError> {
    Ok(Head {
        magic: r.array()?,
        version: r.u8()?,
        ty: r.u8()?,
        session_id: r.u64()?,
        seq: r.u64()?,
    })
}

impl Session {
    /// Server: a RECONNECT datagram announcing that the session's listener is now at `addr`.
    /// Each call uses the next sequence number; returns it with the datagram.
    pub fn reconnect_datagram(&mut self, addr: SocketAddr) -> (u64, Vec<u8>) {
        self.control_seq += 1;
        let seq = self.control_seq;
        let mut d = header(RECONNECT, self.id(), seq);
        Writer::new(&mut d)
            .socket_addr(&addr)
            .u64(self.recv_cumulative());
        let mac = self.secret().control_mac(&d);
        d.extend_from_slice(&mac);
        (seq, d)
    }

    /// Checks and interprets a control datagram addressed to this session.
    pub fn handle_control(&mut self, datagram: &[u8]) -> Result<ControlAction, ControlError> {
        let Some(signed_len) = datagram.len().checked_sub(PROOF_LEN) else {
            return Err(ControlError::Malformed);
        };
        let (signed, mac) = datagram.split_at(signed_len);
        let mut r = Reader::new(signed);
        let head = read_head(&mut r).map_err(|_| ControlError::Malformed)?;
        if &head.magic != MAGIC || head.version != VERSION {
            return Err(ControlError::Malformed);
        }
        let mac: &[u8; PROOF_LEN] = mac.try_into().map_err(|_| ControlError::Malformed)?;
        if head.session_id != self.id() || !self.secret().verify_control_mac(signed, mac) {
            return Err(ControlError::BadMac);
        }
        let seq = head.seq;
        let body = r.rest();
        match (head.ty, self.role()) {
            (RECONNECT, super::Role::Client) => {
                let (addr, cumulative) = read_all(body, |r| Ok((r.socket_addr()?, r.u64()?)))
                    .map_err(|_: CodecError| ControlError::Malformed)?;
                if seq < self.control_seq {
                    return Err(ControlError::Stale);
                }
                let fresh = seq > self.control_seq;
                if fresh {
                    if cumulative > self.bytes_sent_once() {
                        return Err(ControlError::Malformed);
                    }
                    // Every flowpath went to the old address: they are dead. What they had in
                    // flight above the server's offset is known to be missing.
                    self.retire_all_paths();
                    self.apply_peer_cumulative(cumulative);
                }
                self.control_seq = seq;
                let mut ack = header(RECONNECT_ACK, self.id(), seq);
                let mac = self.secret().control_mac(&ack);
                ack.extend_from_slice(&mac);
                Ok(ControlAction::Reconnect {
                    addr,
                    cumulative,
                    ack,
                    fresh,
                })
            }
            (RECONNECT_ACK, super::Role::Server) if body.is_empty() => {
                Ok(ControlAction::Acked(seq))
            }
            (RECONNECT | RECONNECT_ACK, _) => Err(ControlError::Unexpected),
            _ => Err(ControlError::Malformed),
        }
    }
}

fn header(ty: u8, sid: u64, seq: u64) -> Vec<u8> {
    let mut d = Vec::with_capacity(MAX_CONTROL_LEN);
    Writer::new(&mut d)
        .bytes(MAGIC)
        .u8(VERSION)
        .u8(ty)
        .u64(sid)
        .u64(seq);
    d
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;
    use crate::proto::{ClientHandshake, Config};

    /// A connected client and server session, opened through the real handshake.
    fn pair(seed: u64) -> (Session, Session) {
        let mut rng = StdRng::seed_from_u64(seed);
        let hs = ClientHandshake::new(Config::default(), &mut rng, Duration::ZERO);
        let (server, welcome) = Session::accept(
            Config::default(),
            &hs.hello(),
            &mut rng,
            Duration::ZERO,
            |_| false,
        )
        .unwrap();
        let client = hs.handle_reply(welcome, Duration::ZERO).unwrap();
        (client, server)
    }

    fn addr() -> SocketAddr {
        "[2001:db8::7]:9000".parse().unwrap()
    }

    #[test]
    fn reconnect_round_trip_and_ack() {
        let (mut client, mut server) = pair(1);
        let (seq, d) = server.reconnect_datagram(addr());
        assert_eq!(session_id_of(&d), Some(server.id()));
        let ControlAction::Reconnect {
            addr: a,
            ack,
            fresh,
            ..
        } = client.handle_control(&d).unwrap()
        else {
            panic!("expected a reconnect")
        };
        assert_eq!((a, fresh), (addr(), true));
        assert_eq!(server.handle_control(&ack), Ok(ControlAction::Acked(seq)));
        let v4: SocketAddr = "192.0.2.9:80".parse().unwrap();
        let (_, d4) = server.reconnect_datagram(v4);
        assert!(matches!(
            client.handle_control(&d4),
            Ok(ControlAction::Reconnect { addr, fresh: true, .. }) if addr == v4
        ));
    }

    #[test]
    fn repeats_are_acked_but_not_acted_on_and_replays_are_stale() {
        let (mut client, mut server) = pair(2);
        let (_, first) = server.reconnect_datagram(addr());
        let (_, second) = server.reconnect_datagram(addr());
        assert!(matches!(
            client.handle_control(&second),
            Ok(ControlAction::Reconnect { fresh: true, .. })
        ));
        assert!(matches!(
            client.handle_control(&second),
            Ok(ControlAction::Reconnect { fresh: false, .. })
        ));
        assert_eq!(client.handle_control(&first), Err(ControlError::Stale));
    }

    #[test]
    fn forged_or_foreign_datagrams_are_ignored() {
        let (mut client, mut server) = pair(3);
        let (_, mut other) = pair(4);
        let (_, d) = server.reconnect_datagram(addr());
        // Every single flipped bit breaks it.
        for i in 0..d.len() {
            let mut bad = d.clone();
            bad[i] ^= 0x10;
            assert!(
                client.handle_control(&bad).is_err(),
                "bit flip at byte {i} accepted"
            );
        }
        // Another session's client cannot use it, even with the session id rewritten.
        let mut foreign = d.clone();
        foreign[6..14].copy_from_slice(&other.id().to_be_bytes());
        assert_eq!(other.handle_control(&foreign), Err(ControlError::BadMac));
        // A server does not take RECONNECTs; a truncated datagram is malformed.
        assert_eq!(server.handle_control(&d), Err(ControlError::Unexpected));
        assert_eq!(
            client.handle_control(&d[..10]),
            Err(ControlError::Malformed)
        );
        // The genuine one still works afterwards.
        assert!(client.handle_control(&d).is_ok());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_or_act(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let (mut client, mut server) = pair(5);
            let _ = session_id_of(&bytes);
            prop_assert!(client.handle_control(&bytes).is_err());
            prop_assert!(server.handle_control(&bytes).is_err());
        }
    }
}
