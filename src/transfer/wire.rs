//! The file-transfer messages and their framing (see the [module docs](super)): each is
//! `tag u8 | length u32 | body` ([`Framing::TypeLen`]).

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};

use crate::proto::codec::{Framing, Header, HEADER_LEN};
use crate::proto::text::escape;
use crate::runtime::channel_io::ChannelReader;

/// Largest control message body.
pub const MAX_CONTROL: usize = 16 << 20;
/// Largest DATA message body.
pub(crate) const MAX_DATA: usize = 256 << 10;
/// Most entries in one offer.
pub const MAX_ENTRIES: usize = 1_000_000;
/// Most bytes of encoded entries in one offer (all its OFFER messages together): bounds what
/// a receiver holds in memory for one offer. 256 bytes per entry on average, so that
/// [`MAX_ENTRIES`] entries of ordinary names (with their 64-digit tokens) fit.
pub const MAX_OFFER_BYTES: usize = 256 << 20;
/// A list (entries, held files, proofs) is cut into messages of about this many bytes.
const CHUNK_BYTES: usize = 1 << 20;

/// Message tags.
pub mod tag {
    /// sender → receiver: the entries on offer.
    pub const OFFER: u8 = b'O';
    /// receiver → sender: what the receiver holds, or a refusal.
    pub const STATUS: u8 = b'S';
    /// sender → receiver: hashes proving it holds what the receiver has.
    pub const PROOF: u8 = b'P';
    /// receiver → sender: which proofs matched.
    pub const CHECKED: u8 = b'C';
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
    /// The transfer token (64 hex digits) binding the receiver's partial file of this entry
    /// to the sender (files and streams; see the [module docs](super)). Without one, the
    /// receiver uses a token of its own and nothing can resume the partial file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// sender → receiver: everything the sender will send (one part of it when `more`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The entries, folders before what they contain.
    pub entries: Vec<Entry>,
    /// More OFFER messages follow with further entries.
    #[serde(default)]
    pub more: bool,
}

impl Offer {
    /// Bytes of all files (streams count 0); None if the sum overflows (a hostile offer).
    pub(crate) fn total_size(&self) -> Option<u64> {
        self.entries
            .iter()
            .try_fold(0u64, |t, e| t.checked_add(e.size))
    }
}

/// What the receiver already holds of one entry: never a hash, never another sender's
/// partial file, never an existing file's size.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// Index into the offer's entries.
    pub index: usize,
    /// Bytes held in this sender's partial file from an earlier attempt (0: none).
    #[serde(default)]
    pub partial: u64,
    /// A file exists under the final name.
    #[serde(default)]
    pub existing: bool,
}

/// receiver → sender: the answer to an offer (one part of it when `more`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Set when the receiver refuses the whole offer: why, and what to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// The entries of which it holds something, in offer order (empty when refused).
    #[serde(default)]
    pub held: Vec<Held>,
    /// The receiver replaces existing files that differ (`--overwrite`).
    #[serde(default)]
    pub overwrite: bool,
    /// More STATUS messages follow with further held entries.
    #[serde(default)]
    pub more: bool,
}

/// sender → receiver: for one held entry, hashes of the sender's own bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// Index into the offer's entries.
    pub index: usize,
    /// BLAKE3 (hex) of the sender's first `partial` bytes (when it has that many).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// BLAKE3 (hex) of the sender's whole file (when a file exists on the receiver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whole: Option<String>,
}

/// sender → receiver: proofs for the held entries (one part of them when `more`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proofs {
    /// One per held entry, in the STATUS's order.
    pub proofs: Vec<Proof>,
    /// More PROOF messages follow.
    #[serde(default)]
    pub more: bool,
}

/// receiver → sender: what one proof showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// Index into the offer's entries.
    pub index: usize,
    /// The partial file's bytes are the sender's: START may resume at `partial`.
    #[serde(default)]
    pub resume: bool,
    /// The existing file is identical to the sender's: nothing to send.
    #[serde(default)]
    pub same: bool,
}

/// receiver → sender: the outcome of the proofs (one part of it when `more`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    /// One per proof, in order.
    pub checked: Vec<Check>,
    /// More CHECKED messages follow.
    #[serde(default)]
    pub more: bool,
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

/// A message carrying a list that may be cut into several messages (`more`).
pub(crate) trait List: for<'de> Deserialize<'de> {
    /// The list's items.
    type Item;
    /// The items.
    fn items(&mut self) -> &mut Vec<Self::Item>;
    /// More messages follow.
    fn more(&self) -> bool;
    /// The message ends the list early (a refusal).
    fn last(&self) -> bool {
        false
    }
}

macro_rules! list {
    ($t:ty, $item:ty, $field:ident) => {
        impl List for $t {
            type Item = $item;
            fn items(&mut self) -> &mut Vec<$item> {
                &mut self.$field
            }
            fn more(&self) -> bool {
                self.more
            }
        }
    };
}
list!(Offer, Entry, entries);
list!(Proofs, Proof, proofs);
list!(Checked, Check, checked);

impl List for Status {
    type Item = Held;
    fn items(&mut self) -> &mut Vec<Held> {
        &mut self.held
    }
    fn more(&self) -> bool {
        self.more
    }
    fn last(&self) -> bool {
        self.refused.is_some()
    }
}

/// Encodes a list message: the fields of `head` (a struct), then `key: items` and `more`.
/// Each message holds about [`CHUNK_BYTES`] of items, so the list may be of any length; the
/// messages are made one at a time, as they are taken (so a long list never blocks the
/// session's task for long).
pub(crate) fn list_messages<'a, H: Serialize, T: Serialize>(
    t: u8,
    head: &H,
    key: &'a str,
    items: &'a [T],
) -> ListMessages<'a, T> {
    let mut open = serde_json::to_vec(head).expect("plain structs serialize");
    // `{...}` without its closing brace, and a comma if it has fields.
    open.pop();
    if open.len() > 1 {
        open.push(b',');
    }
    ListMessages {
        t,
        open,
        key,
        items,
        done: false,
    }
}

/// The messages of one list (see [`list_messages`]).
pub(crate) struct ListMessages<'a, T> {
    t: u8,
    /// The head's fields, as `{...,`.
    open: Vec<u8>,
    key: &'a str,
    /// The items not sent yet.
    items: &'a [T],
    done: bool,
}

impl<T: Serialize> Iterator for ListMessages<'_, T> {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        if self.done {
            return None;
        }
        let mut body = self.open.clone();
        body.extend_from_slice(format!("\"{}\":[", self.key).as_bytes());
        let mut n = 0;
        while n < self.items.len() && (n == 0 || body.len() < CHUNK_BYTES) {
            if n > 0 {
                body.push(b',');
            }
            serde_json::to_writer(&mut body, &self.items[n]).expect("plain structs serialize");
            n += 1;
        }
        self.items = &self.items[n..];
        let more = !self.items.is_empty();
        self.done = !more;
        body.extend_from_slice(format!("],\"more\":{more}}}").as_bytes());
        let mut b = BytesMut::with_capacity(HEADER_LEN + body.len());
        Framing::TypeLen.frame(&mut b, |w| {
            w.bytes(&body);
            self.t
        });
        Some(b.freeze())
    }
}

/// Reads a list sent as one or more messages of tag `want`, joined into the first; at most
/// `max_items` items and `max_bytes` bytes of message bodies ([`WireError::Limit`] beyond).
pub(crate) async fn recv_list<M: List>(
    ch: &mut ChannelReader,
    want: u8,
    max_items: usize,
    max_bytes: usize,
) -> Result<M, WireError> {
    let mut whole: Option<M> = None;
    let mut bytes = 0usize;
    loop {
        let body = match read_msg(ch).await? {
            None => return Err(WireError::Ended),
            Some(Msg::Control(t, body)) if t == want => body,
            Some(Msg::Control(t, _)) => return Err(unexpected(t, want)),
            Some(Msg::Data(_)) => return Err(unexpected(tag::DATA, want)),
        };
        bytes = bytes.saturating_add(body.len());
        if bytes > max_bytes {
            return Err(WireError::Limit(format!(
                "{} of more than {max_bytes} bytes",
                name(want)
            )));
        }
        let mut part: M = decode(want, &body)?;
        let more = part.more() && !part.last();
        match whole.as_mut() {
            None => whole = Some(part),
            Some(w) => {
                let items = std::mem::take(part.items());
                w.items().extend(items);
            }
        }
        let w = whole.as_mut().expect("set above");
        if w.items().len() > max_items {
            return Err(WireError::Limit(format!(
                "{} of more than {max_items} items",
                name(want)
            )));
        }
        if !more {
            return Ok(whole.expect("set above"));
        }
    }
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
    /// The peer sent more than this end accepts (a list too long).
    #[error("the peer sent a {0}")]
    Limit(String),
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
    // serde's message may quote the peer's text: escaped.
    serde_json::from_slice(body).map_err(|e| {
        WireError::Protocol(format!(
            "bad {} message: {}",
            name(tag),
            escape(&e.to_string())
        ))
    })
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
        tag::PROOF => "PROOF".into(),
        tag::CHECKED => "CHECKED".into(),
        tag::START => "START".into(),
        tag::DATA => "DATA".into(),
        tag::END => "END".into(),
        tag::VERDICT => "VERDICT".into(),
        tag::DONE => "DONE".into(),
        t => format!("unknown message {t:#04x}"),
    }
}
