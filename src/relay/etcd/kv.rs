//! Keys: range, put, delete, and transactions (compare revisions, then puts).

use serde_json::{json, Value};

use super::{b64, field, unb64, Etcd, EtcdError};

/// Most keys one prefix read returns.
pub(crate) const MAX_KEYS: usize = 100_000;

/// A key and its value, as etcd holds them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Kv {
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// Revision of the key's creation (0: absent).
    pub create_revision: i64,
    /// Revision of its last change.
    pub mod_revision: i64,
    /// The lease it lives on (0: none).
    pub lease: i64,
}

impl Kv {
    /// Parses one `kv` object of the gateway.
    pub(crate) fn parse(v: &Value) -> Result<Kv, EtcdError> {
        if !v.is_object() {
            return Err(EtcdError::Malformed("a kv is not an object".into()));
        }
        Ok(Kv {
            key: unb64(v, "key")?,
            value: unb64(v, "value")?,
            create_revision: field(v, "create_revision")?,
            mod_revision: field(v, "mod_revision")?,
            lease: field(v, "lease")?,
        })
    }
}

/// A condition of a transaction.
#[derive(Debug, Clone)]
pub(crate) enum Cmp {
    /// The key's create revision equals this (0: the key is absent).
    Created(Vec<u8>, i64),
    /// The key's last change was at this revision.
    Modified(Vec<u8>, i64),
}

/// A write of a transaction.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    /// Put the key with the value, on the lease (0: none).
    Put(Vec<u8>, Vec<u8>, i64),
    /// Delete the key.
    Delete(Vec<u8>),
}

impl Cmp {
    fn json(&self) -> Value {
        match self {
            Cmp::Created(k, r) => json!({"key": b64(k), "target": "CREATE", "result": "EQUAL",
                "create_revision": r.to_string()}),
            Cmp::Modified(k, r) => json!({"key": b64(k), "target": "MOD", "result": "EQUAL",
                "mod_revision": r.to_string()}),
        }
    }
}

impl Op {
    fn json(&self) -> Value {
        match self {
            Op::Put(k, v, lease) => json!({"request_put": put_body(k, v, *lease)}),
            Op::Delete(k) => json!({"request_delete_range": {"key": b64(k)}}),
        }
    }
}

fn put_body(k: &[u8], v: &[u8], lease: i64) -> Value {
    let mut b = json!({"key": b64(k), "value": b64(v)});
    if lease != 0 {
        b["lease"] = json!(lease.to_string());
    }
    b
}

/// The body of a transaction: if every `cmps` holds, `ops`; else nothing.
pub(crate) fn txn_body(cmps: &[Cmp], ops: &[Op]) -> Value {
    json!({
        "compare": cmps.iter().map(Cmp::json).collect::<Vec<_>>(),
        "success": ops.iter().map(Op::json).collect::<Vec<_>>(),
    })
}

/// The end of the range of keys that start with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// The kvs of a range answer and its revision.
pub(crate) fn parse_range(v: &Value) -> Result<(Vec<Kv>, i64), EtcdError> {
    let rev = v.get("header").map_or(Ok(0), |h| field(h, "revision"))?;
    let kvs = match v.get("kvs") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.len() <= MAX_KEYS => {
            a.iter().map(Kv::parse).collect::<Result<_, _>>()?
        }
        Some(Value::Array(_)) => return Err(EtcdError::Malformed("too many keys".into())),
        Some(_) => return Err(EtcdError::Malformed("kvs is not a list".into())),
    };
    Ok((kvs, rev))
}

/// A transaction's answer: the revision its writes got, None when it did not run.
pub(crate) fn parse_txn(v: &Value) -> Result<Option<i64>, EtcdError> {
    let ran = match v.get("succeeded") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(EtcdError::Malformed("succeeded is not a boolean".into())),
    };
    let rev = v.get("header").map_or(Ok(0), |h| field(h, "revision"))?;
    match (ran, rev) {
        (false, _) => Ok(None),
        (true, r) if r > 0 => Ok(Some(r)),
        (true, _) => Err(EtcdError::Malformed(
            "a transaction without a revision".into(),
        )),
    }
}

impl Etcd {
    /// The key `key`, if present.
    pub(crate) async fn get(&self, key: &[u8]) -> Result<Option<Kv>, EtcdError> {
        let v = self.call("/v3/kv/range", &json!({"key": b64(key)})).await?;
        Ok(parse_range(&v)?.0.into_iter().find(|kv| kv.key == key))
    }

    /// Every key starting with `prefix` (at most [`MAX_KEYS`]), and the revision read at.
    pub(crate) async fn get_prefix(&self, prefix: &[u8]) -> Result<(Vec<Kv>, i64), EtcdError> {
        let body = json!({"key": b64(prefix), "range_end": b64(&prefix_end(prefix)),
            "limit": MAX_KEYS.to_string()});
        parse_range(&self.call("/v3/kv/range", &body).await?)
    }

    /// Runs `ops` if every condition of `cmps` holds: the revision they were written at, or
    /// None when a condition failed.
    pub(crate) async fn txn(&self, cmps: &[Cmp], ops: &[Op]) -> Result<Option<i64>, EtcdError> {
        let v = self.call("/v3/kv/txn", &txn_body(cmps, ops)).await?;
        parse_txn(&v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_encoding() {
        let b = txn_body(
            &[
                Cmp::Created(b"n/a".to_vec(), 0),
                Cmp::Modified(b"x".to_vec(), 42),
            ],
            &[
                Op::Put(b"n/a".to_vec(), vec![0, 255], 7),
                Op::Put(b"y".to_vec(), vec![], 0),
            ],
        );
        let want = json!({
            "compare": [
                {"key": "bi9h", "target": "CREATE", "result": "EQUAL", "create_revision": "0"},
                {"key": "eA==", "target": "MOD", "result": "EQUAL", "mod_revision": "42"}],
            "success": [
                {"request_put": {"key": "bi9h", "value": "AP8=", "lease": "7"}},
                {"request_put": {"key": "eQ==", "value": ""}}]});
        assert_eq!(b, want);
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b");
        assert_eq!(prefix_end(&[0xff]), vec![0]);
    }

    #[test]
    fn txn_answers_parse() {
        let ok = json!({"header": {"revision": "12"}, "succeeded": true});
        assert_eq!(parse_txn(&ok).unwrap(), Some(12));
        assert_eq!(
            parse_txn(&json!({"header": {"revision": "12"}})).unwrap(),
            None
        );
        assert!(parse_txn(&json!({"succeeded": "yes"})).is_err());
        assert!(parse_txn(&json!({"succeeded": true})).is_err());
    }

    #[test]
    fn range_answers_parse_and_hostile_ones_fail() {
        let v = json!({"header": {"revision": "9"}, "kvs": [{"key": "YQ==", "value": "Yg==",
            "create_revision": "3", "mod_revision": "8", "lease": "5"}], "count": "1"});
        let (kvs, rev) = parse_range(&v).unwrap();
        assert_eq!(rev, 9);
        assert_eq!(
            kvs[0],
            Kv {
                key: b"a".to_vec(),
                value: b"b".to_vec(),
                create_revision: 3,
                mod_revision: 8,
                lease: 5
            }
        );
        assert!(parse_range(&json!({"header": {}})).unwrap().0.is_empty());
        for bad in [
            json!({"kvs": {}}),
            json!({"kvs": [1]}),
            json!({"kvs": [{"key": 5}]}),
            json!({"kvs": [{"key": "YQ==", "mod_revision": "x"}]}),
            json!({"header": {"revision": []}}),
        ] {
            assert!(parse_range(&bad).is_err(), "{bad}");
        }
    }
}
