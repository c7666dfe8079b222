//! FORWARD, the one relay → relay frame (see the relay's cluster): its fields, the bytes its
//! MAC covers, and its encoding.

use std::net::SocketAddr;
use std::time::Duration;

use super::{kind, read_name, unexpected, write_name, Message, WireError, NONCE_LEN};
use crate::proto::codec::{read_all, Writer};

/// Relay → relay of a cluster: ask the listener of `name` (attached at the receiving relay)
/// to dial back to `at` for splice `id`. Authenticated with the cluster key: `mac` is an HMAC
/// over the other fields, and `time` (Unix seconds) must be within [`FORWARD_SKEW`] of the
/// receiver's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Forward {
    /// The name.
    pub name: String,
    /// The splice id at the sending relay.
    pub id: u64,
    /// The splice token at the sending relay.
    pub token: [u8; NONCE_LEN],
    /// The sending relay's advertised address: where the listener dials back.
    pub at: SocketAddr,
    /// When it was sent (Unix seconds).
    pub time: u64,
    /// `HMAC(key derived from the cluster key, receiving relay's id || the other fields)`
    /// (see `cluster::seal::forward_mac`).
    pub mac: [u8; 32],
}

/// How far a FORWARD's time may be from the receiver's clock.
pub(crate) const FORWARD_SKEW: Duration = Duration::from_secs(30);

impl Forward {
    /// The bytes the MAC covers: the body up to the MAC.
    pub(crate) fn signed(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        let mut w = Writer::new(&mut out);
        write_name(&mut w, &self.name);
        w.u64(self.id)
            .bytes(&self.token)
            .socket_addr(&self.at)
            .u64(self.time);
        out
    }
}

impl Message for Forward {
    fn write_body(&self, w: &mut Writer<'_, Vec<u8>>) -> u8 {
        write_name(w, &self.name);
        w.u64(self.id)
            .bytes(&self.token)
            .socket_addr(&self.at)
            .u64(self.time)
            .bytes(&self.mac);
        kind::FORWARD
    }

    fn decode(t: u8, body: &[u8]) -> Result<Self, WireError> {
        read_all(body, |r| match t {
            kind::FORWARD => Ok(Forward {
                name: read_name(r)?,
                id: r.u64()?,
                token: r.array()?,
                at: r.socket_addr()?,
                time: r.u64()?,
                mac: r.array()?,
            }),
            ty => unexpected(ty, "from a relay to a relay"),
        })
    }
}
