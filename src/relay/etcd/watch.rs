//! Watches: a stream of changes under a prefix.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::TcpStream;

use super::http::{self, Lines};
use super::kv::{prefix_end, Kv};
use super::{answer, b64, field, Etcd, EtcdError};

/// One change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    /// The key was put (its new value).
    Put(Kv),
    /// The key was deleted (or its lease expired).
    Delete(Kv),
}

/// A running watch.
pub(crate) struct Watch {
    lines: Lines<TcpStream>,
    /// Longest silence before the watch counts as dead (a member that stopped answering
    /// without closing the connection); etcd sends progress messages meanwhile.
    idle: Duration,
}

impl Etcd {
    /// Watches every key under `prefix` from revision `from` on, at the first member that
    /// takes it; the watch ends with an error after `idle` without a message.
    pub(crate) async fn watch_prefix(
        &self,
        prefix: &[u8],
        from: i64,
        idle: Duration,
    ) -> Result<Watch, EtcdError> {
        let body = json!({"create_request": {"key": b64(prefix),
            "range_end": b64(&prefix_end(prefix)), "start_revision": from.to_string(),
            "progress_notify": true}})
        .to_string();
        let mut last = String::new();
        for ep in self.endpoints_in_turn() {
            match http::post(ep, "/v3/watch", body.as_bytes(), self.timeout).await {
                Ok(r) if r.status == 200 => {
                    let mut w = Watch {
                        lines: r.lines(),
                        idle,
                    };
                    // The first message says the watch was created.
                    match tokio::time::timeout(self.timeout, w.next()).await {
                        Ok(Ok(ev)) if ev.is_empty() => return Ok(w),
                        Ok(Ok(_)) => {
                            return Err(EtcdError::Malformed("watch began with events".into()))
                        }
                        Ok(Err(e)) => last = format!("{ep}: {e}"),
                        Err(_) => last = format!("{ep}: watch not created in time"),
                    }
                }
                Ok(r) => last = format!("{ep}: HTTP {}", r.status),
                Err(e) => last = format!("{ep}: {e}"),
            }
        }
        Err(EtcdError::Unavailable(format!("cannot watch ({last})")))
    }
}

impl Watch {
    /// The next batch of changes (empty for a watch's created or progress message). An error
    /// (also: no message within the watch's idle bound) ends the watch: the caller reads the
    /// prefix again and watches anew.
    pub(crate) async fn next(&mut self) -> Result<Vec<Event>, EtcdError> {
        let line = tokio::time::timeout(self.idle, self.lines.next())
            .await
            .map_err(|_| {
                EtcdError::Unavailable(format!(
                    "the watch was silent for {} s",
                    self.idle.as_secs_f64()
                ))
            })?
            .map_err(|e| EtcdError::Unavailable(e.to_string()))?
            .ok_or_else(|| EtcdError::Unavailable("the watch stream ended".into()))?;
        parse_events(&answer(200, &line)?)
    }
}

/// The events of one watch message; a cancelled watch (compaction) is an error.
pub(crate) fn parse_events(v: &Value) -> Result<Vec<Event>, EtcdError> {
    if v.get("canceled").and_then(Value::as_bool) == Some(true) {
        let why = v.get("cancel_reason").and_then(Value::as_str).unwrap_or("");
        return Err(EtcdError::Unavailable(format!(
            "watch cancelled (compacted to {}): {}",
            field(v, "compact_revision")?,
            crate::proto::text::escape(&why.chars().take(200).collect::<String>())
        )));
    }
    let Some(evs) = v.get("events") else {
        return Ok(Vec::new());
    };
    let evs = evs
        .as_array()
        .ok_or_else(|| EtcdError::Malformed("events is not a list".into()))?;
    evs.iter()
        .map(|e| {
            let kv = Kv::parse(e.get("kv").unwrap_or(&Value::Null))?;
            match e.get("type").and_then(Value::as_str) {
                None | Some("PUT") => Ok(Event::Put(kv)),
                Some("DELETE") => Ok(Event::Delete(kv)),
                Some(_) => Err(EtcdError::Malformed("unknown event type".into())),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_and_hostile_ones_fail() {
        let v = json!({"header": {}, "events": [
            {"kv": {"key": "YQ==", "value": "Yg==", "mod_revision": "3"}},
            {"type": "DELETE", "kv": {"key": "YQ==", "mod_revision": "4"}}]});
        let evs = parse_events(&v).unwrap();
        assert!(matches!(&evs[0], Event::Put(kv) if kv.value == b"b"));
        assert!(matches!(&evs[1], Event::Delete(kv) if kv.mod_revision == 4));
        assert!(parse_events(&json!({"created": true})).unwrap().is_empty());
        for bad in [
            json!({"canceled": true, "compact_revision": "5"}),
            json!({"events": 3}),
            json!({"events": [{"type": "EXPLODE", "kv": {}}]}),
            json!({"events": [{"kv": 1}]}),
        ] {
            assert!(parse_events(&bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_silent_member_ends_the_watch() {
        // Creates the watch, then says nothing and keeps the connection open.
        let created = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            19\r\n{\"result\":{\"created\":1}}\n\r\n";
        let url = crate::relay::etcd::tests::fake_member(created, true).await;
        let etcd = Etcd::new(&url, Duration::from_secs(2)).unwrap();
        let mut w = etcd
            .watch_prefix(b"p/", 1, Duration::from_millis(300))
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), w.next()).await;
        assert!(matches!(got, Ok(Err(EtcdError::Unavailable(_)))), "{got:?}");
    }
}
