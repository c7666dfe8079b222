//! The value of `at/<name>` in the store: which relay a name's listener is attached to.

use std::net::SocketAddr;

use crate::relay::wire::MAX_ADDRS;

/// Where a name's listener is attached: the value of `at/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct At {
    /// The relay's id.
    pub relay: String,
    /// The relay's advertised address.
    pub addr: SocketAddr,
    /// The registration's generation at that relay.
    pub gen: u64,
    /// The listener's published direct addresses.
    pub direct: Vec<SocketAddr>,
}

impl At {
    pub(super) fn encode(&self) -> Vec<u8> {
        serde_json::json!({"relay": self.relay, "addr": self.addr.to_string(), "gen": self.gen,
            "direct": self.direct.iter().map(|a| a.to_string()).collect::<Vec<_>>()})
        .to_string()
        .into_bytes()
    }

    /// Parses a value from the store (untrusted: bounded, None when malformed).
    pub(crate) fn decode(b: &[u8]) -> Option<At> {
        if b.len() > 4096 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(b).ok()?;
        let relay = v.get("relay")?.as_str()?;
        if relay.is_empty() || relay.len() > 64 {
            return None;
        }
        let direct = v.get("direct")?.as_array()?;
        if direct.len() > MAX_ADDRS {
            return None;
        }
        Some(At {
            relay: relay.to_owned(),
            addr: v.get("addr")?.as_str()?.parse().ok()?,
            gen: v.get("gen")?.as_u64()?,
            direct: direct
                .iter()
                .map(|a| a.as_str()?.parse().ok())
                .collect::<Option<_>>()?,
        })
    }
}
