//! Leases: grant, keep alive, revoke.

use serde_json::json;

use super::{field, Etcd, EtcdError};

impl Etcd {
    /// A new lease of `ttl` seconds; its id.
    pub(crate) async fn grant(&self, ttl: u64) -> Result<i64, EtcdError> {
        let v = self
            .call("/v3/lease/grant", &json!({"TTL": ttl.to_string()}))
            .await?;
        match field(&v, "ID")? {
            0 => Err(EtcdError::Malformed("lease grant without an ID".into())),
            id => Ok(id),
        }
    }

    /// Renews lease `id`: its TTL now, None when the lease is gone (expired or revoked).
    pub(crate) async fn keepalive(&self, id: i64) -> Result<Option<i64>, EtcdError> {
        let v = self
            .call("/v3/lease/keepalive", &json!({"ID": id.to_string()}))
            .await;
        match v {
            Ok(v) => Ok(Some(field(&v, "TTL")?).filter(|t| *t > 0)),
            Err(EtcdError::Server { code: 5, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Revokes lease `id` (its keys go with it).
    pub(crate) async fn revoke(&self, id: i64) -> Result<(), EtcdError> {
        match self
            .call("/v3/lease/revoke", &json!({"ID": id.to_string()}))
            .await
        {
            Ok(_) | Err(EtcdError::Server { code: 5, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
