//! File transfer (`msock send-file` → `msock listen --save-dir`): the messages both ends
//! exchange inside a session's byte stream, the checks the receiver applies to names, and the
//! two ends' logic. The session underneath does reliability, mobility and multipath; this layer
//! adds names, resumption and end-to-end verification.
//!
//! ## Protocol (inside the session stream)
//!
//! Every message is `tag u8, length u32 (big endian), body`. Bodies of control messages are
//! JSON objects (at most [`wire::MAX_CONTROL`] bytes); DATA bodies are file bytes (at most
//! `wire::MAX_DATA` per message).
//!
//! 1. sender → `OFFER`: every entry (relative `/`-separated path, kind file/dir/stream, size,
//!    executable bit) and the total size.
//! 2. receiver → `STATUS`: either a refusal (reason) or, per entry, what it already holds: the
//!    length and BLAKE3 of a partial file left by an earlier attempt, or the size and BLAKE3
//!    of a complete file of that name; and whether it may replace existing files.
//! 3. sender: for each file, hashes its own first `have` bytes; if they match, it resumes at
//!    `have`, else it starts over at 0; a complete identical file is skipped; a complete
//!    different file is a conflict unless replacing is allowed (then the sender stops before
//!    sending anything). For each file to send: `START {index, offset}`, `DATA`..., `END
//!    {size, blake3}` (the hash of the whole file, prefix included).
//! 4. receiver → `VERDICT {index, ok, error}` for each END: it hashed what it holds, and only
//!    a verified file is renamed to its final name (after fsync).
//! 5. sender closes its side; receiver → `DONE {files, bytes}` and closes its side.
//!
//! A partial file is kept under a hidden name next to its target (`.NAME.msock-part`) until it
//! is complete, so that a later run, even days later, resumes it.

pub mod manifest;
pub(crate) mod names;
pub mod progress;
pub mod receiver;
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
    let mut f = std::fs::File::open(p)?.take(n);
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
