//! The one codec every msock wire format is written and read with: a bounds-checked
//! big-endian [`Reader`] that rejects trailing bytes, a [`Writer`], and the `[type][len]body`
//! [`Framing`] shared by the session frames ([`super::frame`]), the relay's frames, and the
//! file-transfer and bench messages carried inside a session's stream.
//!
//! Reading never panics and never reads past the slice it is given: a field that does not fit
//! is [`CodecError::Truncated`], bytes left after the last field are
//! [`CodecError::Trailing`] (see [`read_all`]). Each format maps these to its own error type,
//! which says whose fault it was (always the sender's, for bytes that came off the wire).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::BufMut;

/// Why bytes could not be decoded. The sender of the bytes is at fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Fewer bytes than the layout needs.
    #[error("truncated")]
    Truncated,
    /// Bytes left over after the last field.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// A length (of a frame, a field or a list) above what the format allows.
    #[error("length {len} above the limit of {max}")]
    TooLong {
        /// The length found.
        len: usize,
        /// The largest length allowed.
        max: usize,
    },
    /// A frame length of 0 in [`Framing::LenType`], whose length counts the type byte.
    #[error("frame length 0 leaves no room for the type byte")]
    NoType,
    /// Text that is not valid UTF-8.
    #[error("text is not UTF-8")]
    BadUtf8,
    /// A field with a value the format does not allow (named here).
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// Bounds-checked big-endian reader over one message.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    /// Bytes read so far; never above `buf.len()`.
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.left() < n {
            return Err(CodecError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// The next `N` bytes, as an array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    /// A big-endian u16.
    pub fn u16(&mut self) -> Result<u16, CodecError> {
        self.array().map(u16::from_be_bytes)
    }

    /// A big-endian u32.
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        self.array().map(u32::from_be_bytes)
    }

    /// A big-endian u64.
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        self.array().map(u64::from_be_bytes)
    }

    /// A u8 length, then that many bytes.
    pub fn bytes_u8(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.u8()? as usize;
        self.take(n)
    }

    /// A u16 length of at most `max`, then that many bytes.
    pub fn bytes_u16(&mut self, max: usize) -> Result<&'a [u8], CodecError> {
        let n = self.u16()? as usize;
        if n > max {
            return Err(CodecError::TooLong { len: n, max });
        }
        self.take(n)
    }

    /// An IP address and port: family u8 (4 or 6), address \[4 or 16\], port u16.
    pub fn socket_addr(&mut self) -> Result<SocketAddr, CodecError> {
        let ip: IpAddr = match self.u8()? {
            4 => Ipv4Addr::from(self.array::<4>()?).into(),
            6 => Ipv6Addr::from(self.array::<16>()?).into(),
            _ => return Err(CodecError::Invalid("address family")),
        };
        Ok(SocketAddr::new(ip, self.u16()?))
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }

    /// Everything not read yet, as UTF-8 of at most `max` bytes.
    pub fn utf8_rest(&mut self, max: usize) -> Result<&'a str, CodecError> {
        let len = self.left();
        if len > max {
            return Err(CodecError::TooLong { len, max });
        }
        std::str::from_utf8(self.rest()).map_err(|_| CodecError::BadUtf8)
    }

    /// Bytes not read yet.
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Succeeds only if every byte was read.
    pub fn finish(&self) -> Result<(), CodecError> {
        match self.left() {
            0 => Ok(()),
            n => Err(CodecError::Trailing(n)),
        }
    }
}

/// Reads all of `buf` with `f`: bytes `f` leaves unread are [`CodecError::Trailing`].
pub fn read_all<'a, T, E: From<CodecError>>(
    buf: &'a [u8],
    f: impl FnOnce(&mut Reader<'a>) -> Result<T, E>,
) -> Result<T, E> {
    let mut r = Reader::new(buf);
    let v = f(&mut r)?;
    r.finish()?;
    Ok(v)
}

/// The writer's integer methods: each appends one big-endian integer and returns the writer.
macro_rules! put_ints {
    ($($(#[$doc:meta])* $t:ident $put:ident;)*) => {$(
        $(#[$doc])*
        pub fn $t(&mut self, v: $t) -> &mut Self {
            self.out.$put(v);
            self
        }
    )*};
}

/// Appends big-endian fields to a buffer (a `Vec<u8>` or a `BytesMut`).
#[derive(Debug)]
pub struct Writer<'a, B: BufMut> {
    out: &'a mut B,
}

impl<'a, B: BufMut> Writer<'a, B> {
    /// A writer appending to `out`.
    pub fn new(out: &'a mut B) -> Self {
        Writer { out }
    }

    put_ints! {
        /// One byte.
        u8 put_u8;
        /// A big-endian u16.
        u16 put_u16;
        /// A big-endian u32.
        u32 put_u32;
        /// A big-endian u64.
        u64 put_u64;
    }

    /// Raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.out.put_slice(b);
        self
    }

    /// A u8 length, then the bytes (cut to 255: callers bound their fields below that).
    pub fn bytes_u8(&mut self, b: &[u8]) -> &mut Self {
        let b = &b[..b.len().min(u8::MAX as usize)];
        self.u8(b.len() as u8).bytes(b)
    }

    /// A u16 length, then the bytes (cut to `max`, at most 65535).
    pub fn bytes_u16(&mut self, b: &[u8], max: usize) -> &mut Self {
        let b = &b[..b.len().min(max).min(u16::MAX as usize)];
        self.u16(b.len() as u16).bytes(b)
    }

    /// An IP address and port, as [`Reader::socket_addr`] reads them.
    pub fn socket_addr(&mut self, a: &SocketAddr) -> &mut Self {
        match a.ip() {
            IpAddr::V4(ip) => self.u8(4).bytes(&ip.octets()),
            IpAddr::V6(ip) => self.u8(6).bytes(&ip.octets()),
        };
        self.u16(a.port())
    }

    /// `s` cut to at most `max` bytes without splitting a character.
    pub fn utf8_truncated(&mut self, s: &str, max: usize) -> &mut Self {
        self.bytes(truncate_utf8(s, max).as_bytes())
    }
}

/// Cuts `s` to at most `max` bytes without splitting a character.
fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Bytes in a frame header, in either [`Framing`].
pub const HEADER_LEN: usize = 5;

/// The two layouts of a `[type][len]body` frame. Both have a 5-byte header with a big-endian
/// u32 length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `length u32 | type u8 | body`, the length counting the type byte (so it is at least 1):
    /// the session frames and the relay's frames.
    LenType,
    /// `type u8 | length u32 | body`, the length counting the body only: the file-transfer
    /// and bench messages inside a session's byte stream.
    TypeLen,
}

/// A frame header, as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// The type byte.
    pub ty: u8,
    /// Bytes of body that follow the header.
    pub body_len: usize,
}

impl Header {
    /// Reads a [`Framing::TypeLen`] header (any 5 bytes are one).
    pub fn type_len(h: &[u8; HEADER_LEN]) -> Header {
        Header {
            ty: h[0],
            body_len: u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize,
        }
    }

    /// The header, if its body is at most `max` bytes.
    pub fn within(self, max: usize) -> Result<Header, CodecError> {
        if self.body_len > max {
            return Err(CodecError::TooLong {
                len: self.body_len,
                max,
            });
        }
        Ok(self)
    }
}

impl Framing {
    /// The header of a frame of type `ty` with `body_len` bytes of body.
    pub fn header(self, ty: u8, body_len: usize) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        match self {
            Framing::LenType => {
                h[..4].copy_from_slice(&(body_len as u32 + 1).to_be_bytes());
                h[4] = ty;
            }
            Framing::TypeLen => {
                h[0] = ty;
                h[1..].copy_from_slice(&(body_len as u32).to_be_bytes());
            }
        }
        h
    }

    /// Reads a header. Only [`Framing::LenType`] can fail (a length of 0 counts no type byte).
    pub fn parse(self, h: &[u8; HEADER_LEN]) -> Result<Header, CodecError> {
        match self {
            Framing::LenType => {
                let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
                let body_len = len.checked_sub(1).ok_or(CodecError::NoType)?;
                Ok(Header { ty: h[4], body_len })
            }
            Framing::TypeLen => Ok(Header::type_len(h)),
        }
    }

    /// Appends one frame to `out`: `body` writes the body and returns the frame's type; the
    /// header is filled in afterwards.
    pub fn frame<B: BufMut + AsMut<[u8]>>(
        self,
        out: &mut B,
        body: impl FnOnce(&mut Writer<'_, B>) -> u8,
    ) {
        let start = out.as_mut().len();
        out.put_slice(&[0; HEADER_LEN]);
        let ty = body(&mut Writer::new(out));
        let buf = out.as_mut();
        let body_len = buf.len() - start - HEADER_LEN;
        debug_assert!(body_len < u32::MAX as usize);
        buf[start..start + HEADER_LEN].copy_from_slice(&self.header(ty, body_len));
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn reader_reads_big_endian_and_stops_at_the_end() {
        let buf = [1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 9];
        let mut r = Reader::new(&buf);
        assert_eq!(r.u8(), Ok(1));
        assert_eq!(r.u16(), Ok(2));
        assert_eq!(r.u32(), Ok(3));
        assert_eq!(r.u64(), Ok(4));
        assert_eq!(r.finish(), Err(CodecError::Trailing(1)));
        assert_eq!(r.u16(), Err(CodecError::Truncated));
        assert_eq!(r.left(), 1, "a failed read consumes nothing");
        assert_eq!(r.u8(), Ok(9));
        assert_eq!(r.finish(), Ok(()));
        assert_eq!(r.u8(), Err(CodecError::Truncated));
    }

    #[test]
    fn read_all_rejects_trailing_bytes() {
        let two = |r: &mut Reader| r.u16();
        assert_eq!(read_all(&[0, 7], two), Ok(7));
        assert_eq!(read_all(&[0, 7, 0], two), Err(CodecError::Trailing(1)));
        assert_eq!(read_all(&[0], two), Err(CodecError::Truncated));
    }

    #[test]
    fn length_prefixed_fields_round_trip_and_are_bounded() {
        let mut out = Vec::new();
        Writer::new(&mut out)
            .bytes_u8(b"name")
            .bytes_u16(b"handshake", 100)
            .utf8_truncated("ééé", 5);
        let mut r = Reader::new(&out);
        assert_eq!(r.bytes_u8(), Ok(&b"name"[..]));
        assert_eq!(r.bytes_u16(100), Ok(&b"handshake"[..]));
        assert_eq!(r.utf8_rest(5), Ok("éé"));
        assert_eq!(
            Reader::new(&[0, 9]).bytes_u16(8),
            Err(CodecError::TooLong { len: 9, max: 8 })
        );
        assert_eq!(Reader::new(&[3, 1]).bytes_u8(), Err(CodecError::Truncated));
        assert_eq!(
            Reader::new(&[0xff, 0xfe]).utf8_rest(10),
            Err(CodecError::BadUtf8)
        );
        assert_eq!(
            Reader::new(b"abc").utf8_rest(2),
            Err(CodecError::TooLong { len: 3, max: 2 })
        );
    }

    #[test]
    fn socket_addresses_round_trip() {
        for a in ["192.0.2.1:80", "[2001:db8::7]:9000"] {
            let a: SocketAddr = a.parse().unwrap();
            let mut out = Vec::new();
            Writer::new(&mut out).socket_addr(&a);
            assert_eq!(read_all(&out, |r| r.socket_addr()), Ok(a));
        }
        assert_eq!(
            Reader::new(&[5, 0, 0]).socket_addr(),
            Err(CodecError::Invalid("address family"))
        );
    }

    #[test]
    fn the_two_framings_differ_only_in_their_headers() {
        let mut a = Vec::new();
        Framing::LenType.frame(&mut a, |w| {
            w.bytes(b"xy");
            0x26
        });
        assert_eq!(a, [0, 0, 0, 3, 0x26, b'x', b'y']);
        let mut b = BytesMut::from(&b"keep"[..]);
        Framing::TypeLen.frame(&mut b, |w| {
            w.bytes(b"xy");
            b'O'
        });
        assert_eq!(&b[..], b"keepO\0\0\0\x02xy");
        assert_eq!(
            Framing::LenType.parse(&[0, 0, 0, 0, 1]),
            Err(CodecError::NoType)
        );
        let h = Header::type_len(&[b'D', 0, 1, 0, 0]);
        assert_eq!(h.within(65536), Ok(h));
        assert_eq!(
            h.within(100),
            Err(CodecError::TooLong {
                len: 65536,
                max: 100
            })
        );
    }

    proptest! {
        #[test]
        fn headers_round_trip(ty in any::<u8>(), len in 0usize..u32::MAX as usize) {
            let want = Header { ty, body_len: len };
            for f in [Framing::LenType, Framing::TypeLen] {
                prop_assert_eq!(f.parse(&f.header(ty, len)), Ok(want));
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut r = Reader::new(&buf);
            let _ = (r.bytes_u8(), r.bytes_u16(8), r.u64(), r.utf8_rest(4));
            prop_assert!(r.left() <= buf.len());
        }
    }
}
