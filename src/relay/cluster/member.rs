//! The relay's own key, `relays/<id>` → its advertised address, on its lease: written only
//! where no other relay holds that id, so that two relays started with one `--relay-id` do
//! not both take each other's listeners for their own.

use std::net::SocketAddr;

use crate::relay::etcd::kv::{Cmp, Op};
use crate::relay::etcd::{Etcd, EtcdError};

/// What became of the relay's claim on its id.
pub(crate) enum IdClaim {
    /// `relays/<id>` names us, on `lease`.
    Ours,
    /// Another relay, at this address (as etcd holds it, escaped for printing), holds the id.
    Taken(String),
}

/// Puts `key` → `advertise` on `lease` if the key is absent or already holds `advertise` (a
/// previous run of this relay whose lease has not run out yet).
pub(crate) async fn claim_id(
    etcd: &Etcd,
    key: &[u8],
    advertise: SocketAddr,
    lease: i64,
) -> Result<IdClaim, EtcdError> {
    let me = advertise.to_string().into_bytes();
    let put = [Op::Put(key.to_vec(), me.clone(), lease)];
    if etcd
        .txn(&[Cmp::Created(key.to_vec(), 0)], &put)
        .await?
        .is_some()
    {
        return Ok(IdClaim::Ours);
    }
    match etcd.get(key).await? {
        // It expired between the two requests: try again at the next keepalive.
        None => Err(EtcdError::Unavailable(
            "relay id changed hands; retrying".into(),
        )),
        Some(kv) if kv.value == me => {
            let cmp = [Cmp::Modified(key.to_vec(), kv.mod_revision)];
            match etcd.txn(&cmp, &put).await? {
                Some(_) => Ok(IdClaim::Ours),
                None => Err(EtcdError::Unavailable(
                    "relay id changed hands; retrying".into(),
                )),
            }
        }
        Some(kv) => Ok(IdClaim::Taken(crate::proto::text::escape_bytes(&kv.value))),
    }
}
