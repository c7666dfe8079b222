//! A client for etcd v3 through its JSON gateway (`POST /v3/kv/range`, `/v3/kv/txn`,
//! `/v3/lease/grant`, `/v3/watch`, ...; keys and values base64, 64-bit numbers as strings),
//! over a small HTTP/1.1 client of our own ([`http`]). Why not the `etcd-client` crate: it
//! speaks gRPC through tonic and needs `protoc` at build time, which a fresh machine with only
//! what `.ci/run` and the README install does not have; the gateway is part of every etcd
//! since 3.3 and needs nothing but HTTP and JSON.
//!
//! Several endpoints (`--etcd URL[,URL...]`): a request goes to the member that answered
//! last, then to the others in turn; each attempt is bounded by the request timeout, and a
//! request fails with [`EtcdError::Unavailable`] when no member answered (down, or without
//! quorum: its reads and writes time out). Everything etcd answers is untrusted input:
//! bounded ([`http::MAX_BODY`]), parsed without panics, escaped before it is shown.

mod http;
pub(crate) mod kv;
pub(crate) mod lease;
pub(crate) mod watch;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::Value;

pub(crate) use http::Endpoint;

/// Why an etcd request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EtcdError {
    /// No member answered (down, partitioned, or without quorum).
    #[error("registry unavailable: {0}")]
    Unavailable(String),
    /// A member answered with an error (gRPC code and message, escaped).
    #[error("etcd refused the request: code {code}: {message}")]
    Server {
        /// gRPC status code (5: not found, 9: failed precondition, ...).
        code: i64,
        /// etcd's message.
        message: String,
    },
    /// A member's answer does not have the shape etcd's gateway gives.
    #[error("malformed answer from etcd: {0}")]
    Malformed(String),
}

/// gRPC codes after which another member may do better (unavailable, deadline exceeded,
/// aborted, internal, unknown).
const RETRY_CODES: &[i64] = &[2, 4, 10, 13, 14];

/// An etcd cluster, reached through its members' client URLs.
#[derive(Debug)]
pub struct Etcd {
    endpoints: Vec<Endpoint>,
    /// The member that answered last (tried first).
    preferred: AtomicUsize,
    /// Bound of one attempt at one member.
    timeout: Duration,
}

impl Etcd {
    /// A client for the comma-separated client URLs in `urls` (`http://HOST:PORT`).
    pub fn new(urls: &str, timeout: Duration) -> Result<Etcd, String> {
        let endpoints = urls
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Endpoint::parse)
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err("--etcd needs at least one URL (http://HOST:PORT)".into());
        }
        if endpoints.len() > 16 {
            return Err("--etcd takes at most 16 URLs".into());
        }
        Ok(Etcd {
            endpoints,
            preferred: AtomicUsize::new(0),
            timeout,
        })
    }

    /// The members' URLs, for messages.
    pub fn urls(&self) -> String {
        let v: Vec<String> = self.endpoints.iter().map(|e| e.to_string()).collect();
        v.join(",")
    }

    /// The members, the preferred one first.
    fn endpoints_in_turn(&self) -> impl Iterator<Item = &Endpoint> {
        let first = self.preferred.load(Ordering::Relaxed);
        let n = self.endpoints.len();
        (0..n).map(move |k| &self.endpoints[(first + k) % n])
    }

    /// POSTs `body` to `path` at the members in turn, until one answers; its JSON answer.
    pub(crate) async fn call(&self, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let body = body.to_string().into_bytes();
        let first = self.preferred.load(Ordering::Relaxed);
        let n = self.endpoints.len();
        let mut last = String::new();
        let deadline = Instant::now() + self.timeout * 2;
        for k in 0..n {
            let i = (first + k) % n;
            let ep = &self.endpoints[i];
            if k > 0 && Instant::now() >= deadline {
                break;
            }
            match self.once(ep, path, &body).await {
                Ok(v) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(EtcdError::Server { code, message }) if RETRY_CODES.contains(&code) => {
                    last = format!("{ep}: {message}");
                }
                // Not etcd's gateway (an HTML 404, a proxy's page, garbage): another member
                // may be; only a well-formed etcd error is the cluster's answer.
                Err(EtcdError::Unavailable(e) | EtcdError::Malformed(e)) => {
                    last = format!("{ep}: {e}")
                }
                Err(e) => return Err(e),
            }
        }
        Err(EtcdError::Unavailable(format!(
            "no etcd member answered ({last})"
        )))
    }

    async fn once(&self, ep: &Endpoint, path: &str, body: &[u8]) -> Result<Value, EtcdError> {
        let unavailable = |e: http::HttpError| EtcdError::Unavailable(e.to_string());
        let started = Instant::now();
        let resp = http::post(ep, path, body, self.timeout)
            .await
            .map_err(unavailable)?;
        let status = resp.status;
        let left = self.timeout.saturating_sub(started.elapsed());
        let raw = resp.body(left).await.map_err(unavailable)?;
        // The keepalive endpoint streams: take its first message.
        let first = raw.split(|&b| b == b'\n').next().unwrap_or(&[]);
        answer(status, first)
    }
}

/// Checks one JSON answer: an error object becomes [`EtcdError::Server`]; a stream message
/// `{"result": ...}` is unwrapped.
pub(crate) fn answer(status: u16, raw: &[u8]) -> Result<Value, EtcdError> {
    let v: Value = serde_json::from_slice(raw).map_err(|e| {
        if status >= 500 {
            EtcdError::Unavailable(format!("HTTP {status}"))
        } else {
            EtcdError::Malformed(format!("HTTP {status}, not JSON: {e}"))
        }
    })?;
    let err = v.get("error").filter(|e| !e.is_null()).cloned();
    if let Some(e) = err {
        let inner = if e.is_object() { e } else { v.clone() };
        let code = inner.get("code").and_then(num).unwrap_or(2);
        let message = inner
            .get("message")
            .or_else(|| v.get("error"))
            .and_then(Value::as_str)
            .unwrap_or("(no message)");
        return Err(EtcdError::Server {
            code,
            message: crate::proto::text::escape(&message.chars().take(512).collect::<String>()),
        });
    }
    if status != 200 {
        return Err(if status >= 500 {
            EtcdError::Unavailable(format!("HTTP {status}"))
        } else {
            EtcdError::Malformed(format!("HTTP {status}"))
        });
    }
    match v {
        Value::Object(mut m) if m.contains_key("result") => {
            Ok(m.remove("result").unwrap_or_default())
        }
        v if v.is_object() => Ok(v),
        _ => Err(EtcdError::Malformed("answer is not a JSON object".into())),
    }
}

/// A 64-bit number as the gateway writes it (a string) or as a JSON number.
pub(crate) fn num(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// A field that is a 64-bit number, 0 when absent (proto3 JSON leaves zeros out).
pub(crate) fn field(v: &Value, k: &str) -> Result<i64, EtcdError> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(0),
        Some(x) => num(x).ok_or_else(|| EtcdError::Malformed(format!("{k} is not a number"))),
    }
}

/// Bytes as the gateway wants them.
pub(crate) fn b64(b: &[u8]) -> String {
    B64.encode(b)
}

/// A base64 field (empty when absent).
pub(crate) fn unb64(v: &Value, k: &str) -> Result<Vec<u8>, EtcdError> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => B64
            .decode(s)
            .map_err(|_| EtcdError::Malformed(format!("{k} is not base64"))),
        Some(_) => Err(EtcdError::Malformed(format!("{k} is not a string"))),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_member_that_is_not_etcd_is_skipped() {
        let html = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\n\
            Content-Length: 14\r\n\r\n<html>no</html";
        let good =
            b"HTTP/1.1 200 OK\r\nContent-Length: 27\r\n\r\n{\"header\":{\"revision\":\"5\"}}";
        let refused = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 40\r\n\r\n\
            {\"error\":\"bad\",\"message\":\"bad\",\"code\":3}";
        let (bad, ok) = (
            fake_member(html, false).await,
            fake_member(good, false).await,
        );
        let etcd = Etcd::new(&format!("{bad},{ok}"), Duration::from_secs(2)).unwrap();
        let v = etcd
            .call("/v3/kv/range", &serde_json::json!({}))
            .await
            .unwrap();
        assert_eq!(field(&v["header"], "revision").unwrap(), 5);
        // A well-formed etcd error is the answer: the next member is not asked.
        let no = fake_member(refused, false).await;
        let etcd = Etcd::new(&format!("{no},{ok}"), Duration::from_secs(2)).unwrap();
        let e = etcd.call("/v3/kv/range", &serde_json::json!({})).await;
        assert!(matches!(e, Err(EtcdError::Server { code: 3, .. })), "{e:?}");
    }

    /// A fake member on loopback: answers every request with `raw`, then closes (or holds
    /// the connection open with `hold`). Its URL.
    pub(crate) async fn fake_member(raw: &'static [u8], hold: bool) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65536];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(raw).await;
                    if hold {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                });
            }
        });
        url
    }

    #[test]
    fn answers_errors_and_results() {
        let ok = answer(200, br#"{"header":{"revision":"5"}}"#).unwrap();
        assert_eq!(field(&ok["header"], "revision").unwrap(), 5);
        let r = answer(200, br#"{"result":{"ID":"7","TTL":"10"}}"#).unwrap();
        assert_eq!(field(&r, "TTL").unwrap(), 10);
        match answer(
            404,
            br#"{"error":"lease not found","message":"lease not found","code":5}"#,
        ) {
            Err(EtcdError::Server { code: 5, message }) => assert_eq!(message, "lease not found"),
            other => panic!("{other:?}"),
        }
        let e = answer(
            200,
            br#"{"error":{"grpc_code":14,"code":14,"message":"x\u001b[2J"}}"#,
        );
        match e {
            Err(EtcdError::Server { code: 14, message }) => assert!(!message.contains('\x1b')),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            answer(502, b"<html>"),
            Err(EtcdError::Unavailable(_))
        ));
        assert!(matches!(
            answer(200, b"[1,2]"),
            Err(EtcdError::Malformed(_))
        ));
        assert!(matches!(answer(200, b""), Err(EtcdError::Malformed(_))));
        assert!(matches!(
            answer(200, br#"{"TTL":{}}"#).and_then(|v| field(&v, "TTL")),
            Err(EtcdError::Malformed(_))
        ));
        assert!(unb64(&serde_json::json!({"k": "!!"}), "k").is_err());
        assert!(Etcd::new("", Duration::from_secs(1)).is_err());
    }
}
