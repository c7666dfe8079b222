//! A small HTTP/1.1 client for etcd's JSON gateway: one POST per connection
//! (`Connection: close`), bounded everywhere: the head at [`MAX_HEAD`] bytes, a whole body at
//! [`MAX_BODY`], one streamed message at [`MAX_BODY`], every read within a timeout. Bodies
//! come with `Content-Length`, chunked, or until the connection closes.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest response head (status line and headers).
pub(crate) const MAX_HEAD: usize = 16 * 1024;
/// Largest response body, and largest streamed message.
pub(crate) const MAX_BODY: usize = 32 * 1024 * 1024;

/// An etcd member's client URL, `http://HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    /// Host name or address (brackets removed from IPv6).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "http://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "http://{}:{}", self.host, self.port)
        }
    }
}

impl Endpoint {
    /// Parses `http://HOST:PORT` (or `HOST:PORT`); https is refused (no TLS here).
    pub(crate) fn parse(s: &str) -> Result<Endpoint, String> {
        let rest = s.trim().trim_end_matches('/');
        if rest.starts_with("https://") {
            return Err(format!(
                "{s}: https is not supported: reach etcd over http on a private network"
            ));
        }
        let rest = rest.strip_prefix("http://").unwrap_or(rest);
        let bad = || format!("{s}: not an etcd client URL (http://HOST:PORT)");
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, p) = r.split_once("]:").ok_or_else(bad)?;
            (h, p)
        } else {
            rest.rsplit_once(':').ok_or_else(bad)?
        };
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || host.contains('/') || port == 0 {
            return Err(bad());
        }
        Ok(Endpoint {
            host: host.to_owned(),
            port,
        })
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HttpError {
    /// The member could not be reached or stopped answering.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// No answer within the timeout.
    #[error("no answer within {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The answer is not HTTP we accept (the text says how).
    #[error("bad HTTP answer: {0}")]
    Malformed(String),
}

/// An answer: status code and the reader positioned at the body.
pub(crate) struct Response<R> {
    /// HTTP status code.
    pub status: u16,
    body: Body<R>,
}

enum Body<R> {
    Length(BufReader<R>, usize),
    Chunked(BufReader<R>),
    Close(BufReader<R>),
}

/// Connects to `ep` and sends `POST path` with the JSON `body` (within `timeout`); returns
/// the answer's head.
pub(crate) async fn post(
    ep: &Endpoint,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> Result<Response<TcpStream>, HttpError> {
    tokio::time::timeout(timeout, async {
        let mut s = TcpStream::connect((ep.host.as_str(), ep.port)).await?;
        let _ = s.set_nodelay(true);
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            ep.host,
            ep.port,
            body.len()
        );
        let mut req = head.into_bytes();
        req.extend_from_slice(body);
        s.write_all(&req).await?;
        read_head(BufReader::new(s)).await
    })
    .await
    .map_err(|_| HttpError::Timeout(timeout))?
}

/// Reads the status line and headers.
pub(crate) async fn read_head<R: AsyncRead + Unpin>(
    mut r: BufReader<R>,
) -> Result<Response<R>, HttpError> {
    let mut used = 0usize;
    let mut line = Vec::new();
    let mut status = None;
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        let n = (&mut r)
            .take((MAX_HEAD - used) as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        used += n;
        if n == 0 {
            return Err(HttpError::Malformed("connection closed in the head".into()));
        }
        if used > MAX_HEAD || !line.ends_with(b"\n") {
            return Err(HttpError::Malformed(format!(
                "head longer than {MAX_HEAD} bytes"
            )));
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if status.is_none() {
            let mut parts = text.split(' ');
            let (v, code) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            if !v.starts_with("HTTP/1.") {
                return Err(HttpError::Malformed("not an HTTP/1.x status line".into()));
            }
            status = Some(
                code.parse::<u16>()
                    .map_err(|_| HttpError::Malformed("status code is not a number".into()))?,
            );
            continue;
        }
        if text.is_empty() {
            break;
        }
        let Some((k, v)) = text.split_once(':') else {
            return Err(HttpError::Malformed("header line without ':'".into()));
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k == "content-length" {
            let n: usize = v
                .parse()
                .map_err(|_| HttpError::Malformed("bad Content-Length".into()))?;
            length = Some(n);
        } else if k == "transfer-encoding" {
            chunked = v.eq_ignore_ascii_case("chunked");
            if !chunked {
                return Err(HttpError::Malformed(format!(
                    "unsupported Transfer-Encoding {}",
                    crate::proto::text::escape(v)
                )));
            }
        }
    }
    let body = match (chunked, length) {
        (true, _) => Body::Chunked(r),
        (false, Some(n)) if n > MAX_BODY => {
            return Err(HttpError::Malformed(format!(
                "body of {n} bytes is larger than {MAX_BODY}"
            )))
        }
        (false, Some(n)) => Body::Length(r, n),
        (false, None) => Body::Close(r),
    };
    Ok(Response {
        status: status.unwrap_or(0),
        body,
    })
}

impl<R: AsyncRead + Unpin> Response<R> {
    /// The whole body (at most [`MAX_BODY`]), within `timeout`.
    pub(crate) async fn body(self, timeout: Duration) -> Result<Vec<u8>, HttpError> {
        tokio::time::timeout(timeout, async {
            match self.body {
                Body::Length(mut r, n) => {
                    let mut v = vec![0u8; n];
                    r.read_exact(&mut v).await?;
                    Ok(v)
                }
                Body::Close(r) => {
                    let mut v = Vec::new();
                    r.take(MAX_BODY as u64 + 1).read_to_end(&mut v).await?;
                    if v.len() > MAX_BODY {
                        return Err(HttpError::Malformed("body too large".into()));
                    }
                    Ok(v)
                }
                Body::Chunked(mut r) => {
                    let mut v = Vec::new();
                    while let Some(c) = read_chunk(&mut r, MAX_BODY - v.len()).await? {
                        v.extend_from_slice(&c);
                    }
                    Ok(v)
                }
            }
        })
        .await
        .map_err(|_| HttpError::Timeout(timeout))?
    }

    /// A streamed answer split into newline-terminated messages (etcd's gateway writes one
    /// JSON object per line).
    pub(crate) fn lines(self) -> Lines<R> {
        Lines {
            body: self.body,
            buf: Vec::new(),
            done: false,
        }
    }
}

/// Messages of a streamed answer.
pub(crate) struct Lines<R> {
    body: Body<R>,
    buf: Vec<u8>,
    done: bool,
}

impl<R: AsyncRead + Unpin> Lines<R> {
    /// The next message (without its newline); None at the end of the stream. Waits as long
    /// as the server is silent (the caller bounds that).
    pub(crate) async fn next(&mut self) -> Result<Option<Vec<u8>>, HttpError> {
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let rest = self.buf.split_off(i + 1);
                let mut line = std::mem::replace(&mut self.buf, rest);
                line.pop();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Ok(Some(line));
            }
            if self.done {
                if self.buf.iter().all(u8::is_ascii_whitespace) {
                    return Ok(None);
                }
                return Ok(Some(std::mem::take(&mut self.buf)));
            }
            let room = MAX_BODY.saturating_sub(self.buf.len());
            if room == 0 {
                return Err(HttpError::Malformed(format!(
                    "a streamed message is longer than {MAX_BODY} bytes"
                )));
            }
            let got = match &mut self.body {
                Body::Chunked(r) => read_chunk(r, room).await?,
                Body::Length(r, left) => {
                    let mut b = vec![0u8; (*left).min(64 * 1024)];
                    let n = if b.is_empty() {
                        0
                    } else {
                        r.read(&mut b).await?
                    };
                    *left -= n;
                    b.truncate(n);
                    (n > 0).then_some(b)
                }
                Body::Close(r) => {
                    let mut b = vec![0u8; 64 * 1024];
                    let n = r.read(&mut b).await?;
                    b.truncate(n);
                    (n > 0).then_some(b)
                }
            };
            match got {
                Some(c) => self.buf.extend_from_slice(&c),
                None => self.done = true,
            }
        }
    }
}

/// One chunk of a chunked body (None: the last one), at most `room` bytes.
async fn read_chunk<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    room: usize,
) -> Result<Option<Vec<u8>>, HttpError> {
    let mut line = Vec::new();
    (&mut *r).take(256).read_until(b'\n', &mut line).await?;
    if !line.ends_with(b"\n") {
        return Err(HttpError::Malformed("bad chunk size line".into()));
    }
    let text = String::from_utf8_lossy(&line);
    let hex = text.trim().split(';').next().unwrap_or("").trim();
    let n = usize::from_str_radix(hex, 16)
        .map_err(|_| HttpError::Malformed("chunk size is not hex".into()))?;
    if n > room {
        return Err(HttpError::Malformed(format!(
            "body larger than {MAX_BODY} bytes"
        )));
    }
    if n == 0 {
        // Trailers, if any, up to the empty line.
        loop {
            line.clear();
            let k = (&mut *r).take(1024).read_until(b'\n', &mut line).await?;
            if k == 0 || line == b"\r\n" || line == b"\n" {
                return Ok(None);
            }
        }
    }
    let mut v = vec![0u8; n];
    r.read_exact(&mut v).await?;
    let mut crlf = [0u8; 2];
    r.read_exact(&mut crlf).await?;
    if &crlf != b"\r\n" {
        return Err(HttpError::Malformed("chunk not followed by CRLF".into()));
    }
    Ok(Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(raw: &[u8]) -> Result<(u16, Vec<u8>), HttpError> {
        let r = read_head(BufReader::new(raw)).await?;
        let s = r.status;
        Ok((s, r.body(Duration::from_secs(1)).await?))
    }

    #[tokio::test]
    async fn bodies_by_length_chunks_and_close() {
        let (s, b) = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            .await
            .unwrap();
        assert_eq!((s, b.as_slice()), (200, &b"{}"[..]));
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n3;x=y\r\n\":1\r\n1\r\n}\r\n0\r\n\r\n";
        assert_eq!(parse(raw).await.unwrap().1, b"{\"a\":1}");
        assert_eq!(
            parse(b"HTTP/1.0 404 X\r\n\r\nnope").await.unwrap(),
            (404, b"nope".to_vec())
        );
    }

    #[tokio::test]
    async fn hostile_answers_are_errors_not_panics() {
        let huge = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let long_head = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        let big_chunk = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            MAX_BODY + 1
        );
        for raw in [
            huge.as_bytes(),
            long_head.as_bytes(),
            big_chunk.as_bytes(),
            b"SSH-2.0-x\r\n\r\n",
            b"HTTP/1.1 abc\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200",
            b"",
        ] {
            assert!(
                parse(raw).await.is_err(),
                "{:?}",
                String::from_utf8_lossy(&raw[..raw.len().min(60)])
            );
        }
    }

    #[tokio::test]
    async fn streamed_lines_split_across_chunks() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n6\r\n:1}\n{}\r\n1\r\n\n\r\n0\r\n\r\n";
        let mut l = read_head(BufReader::new(&raw[..])).await.unwrap().lines();
        assert_eq!(l.next().await.unwrap().unwrap(), b"{\"a\":1}");
        assert_eq!(l.next().await.unwrap().unwrap(), b"{}");
        assert!(l.next().await.unwrap().is_none());
    }

    #[test]
    fn endpoints_parse() {
        let e = Endpoint::parse("http://127.0.0.1:2379/").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 2379));
        assert_eq!(Endpoint::parse("[::1]:1").unwrap().host, "::1");
        assert_eq!(e.to_string(), "http://127.0.0.1:2379");
        for bad in ["https://a:1", "a", "a:0", "a:x", "http://:5", "a/b:1"] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
