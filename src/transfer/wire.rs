//! The file-transfer messages and their framing (see the [module docs](super)): each is
//! `tag u8 | length u32 | body` ([`Framing::TypeLen`]).

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::proto::codec::{Framing, Header, HEADER_LEN};
use crate::runtime::channel_io::ChannelReader;

/// Largest control message body.
pub const MAX_CONTROL: usize = 16 << 20;
/// Largest DATA message body.
pub(crate) const MAX_DATA: usize = 256 << 10;
/// Most entries in one offer.
pub(crate) const MAX_ENTRIES: usize = 1_000_000;

/// Message tags.
pub mod tag {
    /// sender → receiver: the entries on offer.
    pub const OFFER: u8 = b'O';
    /// receiver → sender: what the receiver holds, or a refusal.
    pub const STATUS: u8 = b'S';
    /// sender → receiver: a file's bytes follow from an offset.
    pub const START: u8 = b'F';
    /// sender → receiver: file bytes.
    pub const DATA: u8 = b'D';
    /// sender → receiver: the file is complete; its size and hash.
    pub const END: u8 = b'E';
    /// receiver → sender: a file verified (or not).
    pub(crate) const VERDICT: u8 = b'V';
    /// receiver → sender: everything was handled.
    pub(crate) const DONE: u8 = b'Z';
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file of known size.
    File,
    /// A folder (sent so that empty folders arrive too).
    Dir,
    /// Bytes of unknown length (stdin); not resumable.
    Stream,
}

/// One entry of an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Relative path, `/`-separated (checked by the receiver: see `super::names`).
    pub path: String,
    /// File, folder or stream.
    pub kind: Kind,
    /// Size in bytes (files; 0 for folders and streams).
    pub size: u64,
    /// The executable bit (files).
    #[serde(default)]
    pub exec: bool,
}

/// sender → receiver: everything the sender will send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The entries, folders before what they contain.
    pub entries: Vec<Entry>,
}

impl Offer {
    /// Bytes of all files (streams count 0); None if the sum overflows (a hostile offer).
    pub(crate) fn total_size(&self) -> Option<u64> {
        self.entries
            .iter()
            .try_fold(0u64, |t, e| t.checked_add(e.size))
    }
}

/// What the receiver already holds of one entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Bytes held in a partial file from an earlier attempt (0: none).
    #[serde(default)]
    pub partial: u64,
    /// BLAKE3 (hex) of those bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) partial_hash: Option<String>,
    /// Size of a complete file already under the final name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub existing: Option<u64>,
    /// BLAKE3 (hex) of that file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) existing_hash: Option<String>,
}

/// receiver → sender: the answer to an offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Set when the receiver refuses the whole offer: why, and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Per entry, in offer order (empty when refused).
    #[serde(default)]
    pub held: Vec<Held>,
    /// The receiver replaces existing files that differ (`--overwrite`).
    #[serde(default)]
    pub overwrite: bool,
}

/// sender → receiver: the bytes of entry `index` follow, from `offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Start {
    /// Index into the offer's entries.
    pub index: usize,
    /// Where the bytes start (0, or a verified partial's length).
    pub offset: u64,
}

/// sender → receiver: entry `index` is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct End {
    /// Index into the offer's entries.
    pub index: usize,
    /// The file's full size.
    pub size: u64,
    /// BLAKE3 (hex) of the whole file.
    pub blake3: String,
}

/// receiver → sender: the outcome of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Verdict {
    /// Index into the offer's entries.
    pub index: usize,
    /// Verified and saved under its final name.
    pub ok: bool,
    /// What went wrong, if not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where it was saved, relative to the receiver's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) saved_as: Option<String>,
}

/// receiver → sender: the transfer is over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Done {
    /// Files verified and saved.
    pub files: usize,
    /// File bytes written in this transfer.
    pub bytes: u64,
}

/// Encodes a control message.
pub fn control<T: Serialize>(tag: u8, body: &T) -> Bytes {
    let json = serde_json::to_vec(body).expect("plain structs serialize");
    let mut b = BytesMut::with_capacity(HEADER_LEN + json.len());
    Framing::TypeLen.frame(&mut b, |w| {
        w.bytes(&json);
        tag
    });
    b.freeze()
}

/// The 5-byte header of a DATA message of `len` bytes.
pub fn data_header(len: usize) -> Bytes {
    Bytes::copy_from_slice(&Framing::TypeLen.header(tag::DATA, len))
}

/// A message read from the peer.
#[derive(Debug)]
pub enum Msg {
    /// A control message: its tag and JSON body.
    Control(u8, Bytes),
    /// A DATA message of this many bytes, which the caller reads next (in pieces, with
    /// [`ChannelReader::recv_up_to`], so that file bytes are never copied).
    Data(usize),
}

/// What the peer did wrong (or that it left).
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The peer's stream ended where a message was expected or inside one.
    #[error("the peer ended the transfer early")]
    Ended,
    /// The peer broke the protocol.
    #[error("the peer broke the file-transfer protocol: {0}")]
    Protocol(String),
}

/// Reads the next message; `Ok(None)` at a clean end of the peer's stream.
pub(crate) async fn read_msg(ch: &mut ChannelReader) -> Result<Option<Msg>, WireError> {
    let Some(first) = ch.recv_up_to(1).await else {
        return Ok(None);
    };
    let len = ch.recv_exact(4).await.map_err(|_| WireError::Ended)?;
    let mut h = [first[0]; HEADER_LEN];
    h[1..].copy_from_slice(&len);
    let header = Header::type_len(&h);
    let (tag, len) = (header.ty, header.body_len);
    let max = if tag == tag::DATA {
        MAX_DATA
    } else {
        MAX_CONTROL
    };
    header.within(max).map_err(|_| {
        WireError::Protocol(format!(
            "message of {len} bytes (tag {tag:#04x}); at most {max} allowed"
        ))
    })?;
    if tag == tag::DATA {
        return Ok(Some(Msg::Data(len)));
    }
    let body = ch.recv_exact(len).await.map_err(|_| WireError::Ended)?;
    Ok(Some(Msg::Control(tag, body)))
}

/// Reads a control message with tag `want` and decodes its body.
pub async fn expect<T: for<'de> Deserialize<'de>>(
    ch: &mut ChannelReader,
    want: u8,
) -> Result<T, WireError> {
    match read_msg(ch).await? {
        None => Err(WireError::Ended),
        Some(Msg::Control(t, body)) if t == want => decode(t, &body),
        Some(Msg::Control(t, _)) => Err(unexpected(t, want)),
        Some(Msg::Data(_)) => Err(unexpected(tag::DATA, want)),
    }
}

/// Decodes a control body.
pub fn decode<T: for<'de> Deserialize<'de>>(tag: u8, body: &[u8]) -> Result<T, WireError> {
    serde_json::from_slice(body)
        .map_err(|e| WireError::Protocol(format!("bad {} message: {e}", name(tag))))
}

/// The error for message `got` where `want` was expected.
pub fn unexpected(got: u8, want: u8) -> WireError {
    WireError::Protocol(format!("{} where {} was expected", name(got), name(want)))
}

/// A tag's name, for messages.
pub fn name(t: u8) -> String {
    match t {
        tag::OFFER => "OFFER".into(),
        tag::STATUS => "STATUS".into(),
        tag::START => "START".into(),
        tag::DATA => "DATA".into(),
        tag::END => "END".into(),
        tag::VERDICT => "VERDICT".into(),
        tag::DONE => "DONE".into(),
        t => format!("unknown message {t:#04x}"),
    }
}
