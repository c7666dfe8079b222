//! File transfer (`msock send-file` → `msock listen --save-dir`): the messages both ends
//! exchange inside a session's byte stream, the checks the receiver applies to names, and the
//! two ends' logic. The session underneath does reliability, mobility and multipath; this layer
//! adds names, resumption and end-to-end verification.
//!
//! ## Protocol (inside the session stream)
//!
//! Every message is `tag u8, length u32 (big endian), body`. Bodies of control messages are
//! JSON objects (at most [`wire::MAX_CONTROL`] bytes); DATA bodies are file bytes (at most
//! `wire::MAX_DATA` per message). Lists (entries, held files, proofs, checks) may be cut into
//! several messages of the same tag, about 1 MiB each, every one but the last with
//! `"more": true`; an offer holds at most [`wire::MAX_ENTRIES`] entries and
//! [`wire::MAX_OFFER_BYTES`] bytes in all, which the sender checks before it connects.
//!
//! 1. sender → `OFFER`: every entry (relative `/`-separated path, kind file/dir/stream, size,
//!    executable bit, and for files and streams a transfer token, below).
//! 2. receiver → `STATUS`: either a refusal (reason) or the entries of which it holds
//!    something: `partial`, the length of the partial file *this sender* left (found by its
//!    token), and `existing`, whether a file exists under the final name; whether it may
//!    replace existing files. The receiver never sends a hash, an existing file's size, nor
//!    anything of another sender's partial file.
//! 3. If STATUS listed any entry, sender → `PROOF` (one per listed entry): `prefix`, the BLAKE3
//!    of its own first `partial` bytes, and `whole`, the BLAKE3 of its whole file when one
//!    exists on the receiver; receiver → `CHECKED` (one per proof): `resume` when the
//!    partial file's bytes match the prefix, `same` when the existing file has the sender's
//!    size and hash. So the sender proves what it holds; the receiver only says yes or no.
//! 4. sender: an entry found `same` is skipped; an existing file that is not the same is a
//!    conflict unless replacing is allowed (then the sender stops before sending anything).
//!    For each file to send: `START {index, offset}` (offset 0, or `partial` if `resume`),
//!    `DATA`..., `END {size, blake3}` (the hash of the whole file, prefix included).
//! 5. receiver → `VERDICT {index, ok, error}` for each END: it hashed what it holds, and only
//!    a verified file is renamed to its final name (after fsync). Files are synced and
//!    renamed in batches, so a VERDICT may come after later files' bytes; the sender never
//!    waits for one before sending on.
//! 6. sender closes its side; receiver → `DONE {files, bytes}` and closes its side.
//!
//! ## Partial files and transfer tokens
//!
//! A partial file is kept under a hidden name next to its target until it is complete, so
//! that a later run, even days later, resumes it. It belongs to the sender that created it:
//! the sender keeps a random secret (`transfer.secret` in its config directory) and offers
//! each file with a token, the keyed BLAKE3 of its path under that secret (`owner.rs`). The
//! partial file's name is `.NAME.TAG.msock-part`, TAG the first 16 hex digits of the BLAKE3
//! of the token's 32 bytes: the receiver stores only that hash, and a sender with another
//! token (or none: the receiver then draws a random one) never finds, resumes or truncates
//! it. Partial files are created exclusively; an existing one is used only if it is a regular
//! file with one link owned by the receiver's user. A newer transfer with the same token
//! takes an open partial file over from an older one that is still parked on the receiver.

mod checks;
pub mod manifest;
pub(crate) mod names;
pub mod owner;
pub mod progress;
pub mod receiver;
mod reserve;
pub mod sender;
pub mod wire;
#[cfg(test)]
mod wire_fuzz_tests;
pub(crate) mod writer;

use std::io::{self, Read};
use std::path::Path;

/// Hashes the first `n` bytes of `p` (fewer if it is shorter); returns the hasher and the
/// bytes hashed.
pub(crate) fn hash_prefix(p: &Path, n: u64) -> io::Result<(blake3::Hasher, u64)> {
    hash_read(std::fs::File::open(p)?.take(n))
}

/// Hashes everything `f` yields; returns the hasher and the bytes hashed.
pub(crate) fn hash_read(mut f: impl Read) -> io::Result<(blake3::Hasher, u64)> {
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut done = 0u64;
    loop {
        match f.read(&mut buf) {
            Ok(0) => return Ok((h, done)),
            Ok(k) => {
                h.update(&buf[..k]);
                done += k as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
