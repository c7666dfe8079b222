//! Direct writes for the bulk of a large file: its bytes are gathered in a page-aligned
//! buffer and written past the page cache (`O_DIRECT`) in large aligned pieces, so that the
//! disk works while the network does and the fsync before the rename has (almost) nothing
//! left to write. Through the page cache, the same bytes cost a copy and a page's bookkeeping
//! each in the kernel, and its writeback runs far behind the transfer on some disks.
//!
//! Whatever cannot go directly (an unaligned start when resuming, the tail, a file system
//! that refuses `O_DIRECT`) is written through the page cache as before; the caller's fsync
//! covers both. Only Linux writes directly.

use std::fs::File;
use std::io::{self, Write};

/// File offsets and lengths of direct writes are multiples of this (the largest logical
/// block size of common disks), and so is the buffer's address.
const ALIGN: usize = 4096;
/// Bytes gathered before one write.
const STAGE: usize = 4 << 20;
/// Files with at least this many bytes still to come are written directly.
pub(super) const DIRECT_FROM: u64 = 16 << 20;

/// `STAGE` bytes starting at an `ALIGN`-aligned address inside a slightly larger plain
/// allocation, of which the first `len` hold staged bytes.
struct Stage {
    buf: Box<[u8]>,
    /// Where the aligned window starts in `buf`.
    off: usize,
    len: usize,
}

impl Stage {
    fn new() -> Option<Stage> {
        let buf = vec![0u8; STAGE + ALIGN].into_boxed_slice();
        let off = buf.as_ptr().align_offset(ALIGN);
        (off < ALIGN).then_some(Stage { buf, off, len: 0 })
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.off..self.off + self.len]
    }

    /// Forgets the first `n` staged bytes (written out), keeping the rest at the front.
    fn drop_front(&mut self, n: usize) {
        let n = n.min(self.len);
        let at = self.off;
        self.buf.copy_within(at + n..at + self.len, at);
        self.len -= n;
    }

    /// Copies as much of `b` as fits below `cap` bytes (at most `STAGE`); returns how much.
    fn fill(&mut self, b: &[u8], cap: usize) -> usize {
        let n = b.len().min(cap.min(STAGE).saturating_sub(self.len));
        let at = self.off + self.len;
        self.buf[at..at + n].copy_from_slice(&b[..n]);
        self.len += n;
        n
    }
}

/// A file being written directly from its current position on.
pub(super) struct Direct {
    stage: Stage,
    /// The file position of the stage's first byte (where the file's position is).
    pos: u64,
    /// `O_DIRECT` is set on the descriptor now.
    on: bool,
    /// The file system refused a direct write: everything goes through the page cache.
    refused: bool,
}

impl Direct {
    /// Starts writing directly at `pos` (the file's position); None where that cannot be.
    pub(super) fn start(pos: u64) -> Option<Direct> {
        if !cfg!(target_os = "linux") {
            return None;
        }
        Some(Direct {
            stage: Stage::new()?,
            pos,
            on: false,
            refused: false,
        })
    }

    /// Appends `b`: staged, and written whenever the stage is full.
    pub(super) fn write(&mut self, f: &mut File, mut b: &[u8]) -> io::Result<()> {
        while !b.is_empty() {
            // The first stage ends at an aligned position, so that the next ones start at one.
            let cap = STAGE - (self.pos % ALIGN as u64) as usize;
            let n = self.stage.fill(b, cap);
            b = &b[n..];
            if self.stage.len == cap {
                self.flush(f)?;
            }
        }
        Ok(())
    }

    /// Writes what is staged and leaves the descriptor as it was (buffered): the file then
    /// holds every byte given.
    pub(super) fn finish(mut self, f: &mut File) -> io::Result<()> {
        let r = self.flush(f);
        let off = self.set(f, false);
        r.and(off)
    }

    /// Writes the stage out: its aligned part directly when it starts at an aligned
    /// position, the rest through the page cache. On an error, the stage keeps only what was
    /// not written (so that a later `finish` neither repeats nor loses a byte).
    fn flush(&mut self, f: &mut File) -> io::Result<()> {
        let mut done = 0;
        let r = self.flush_from(f, &mut done);
        self.stage.drop_front(done);
        r
    }

    /// The body of `flush`, counting in `done` the bytes written.
    fn flush_from(&mut self, f: &mut File, done: &mut usize) -> io::Result<()> {
        while *done < self.stage.len {
            let left = self.stage.len - *done;
            let aligned = left - left % ALIGN;
            let direct = !self.refused && self.pos % ALIGN as u64 == 0 && aligned > 0;
            if self.set(f, direct).is_err() {
                // The file system does not take direct writes.
                self.refused = true;
                self.on = false;
                continue;
            }
            let piece = if direct { aligned } else { left };
            let bytes = &self.stage.bytes()[*done..*done + piece];
            match f.write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    *done += n;
                    self.pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if direct && e.raw_os_error() == Some(libc::EINVAL) => {
                    self.refused = true;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sets or clears `O_DIRECT` on `f`.
    fn set(&mut self, f: &File, on: bool) -> io::Result<()> {
        if self.on == on {
            return Ok(());
        }
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;
            let fd = f.as_raw_fd();
            // SAFETY: fcntl on a descriptor we own; no memory is involved.
            let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
            if flags < 0 {
                return Err(io::Error::last_os_error());
            }
            let want = if on {
                flags | libc::O_DIRECT
            } else {
                flags & !libc::O_DIRECT
            };
            // SAFETY: as above.
            if unsafe { libc::fcntl(fd, libc::F_SETFL, want) } < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = f;
        self.on = on;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};

    /// Bytes written in uneven pieces from an unaligned start (a resumed file) end up in the
    /// file exactly, direct or not, and the descriptor is buffered again afterwards.
    #[test]
    fn uneven_pieces_from_an_unaligned_start_land_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let head = vec![7u8; 5000];
        std::fs::write(&p, &head).unwrap();
        let body: Vec<u8> = (0..STAGE * 2 + 12345)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        f.seek(SeekFrom::Start(head.len() as u64)).unwrap();
        let mut d = Direct::start(head.len() as u64).unwrap();
        for piece in body.chunks(40_001) {
            d.write(&mut f, piece).unwrap();
        }
        d.finish(&mut f).unwrap();
        f.write_all(b"after").unwrap();
        drop(f);
        let got = std::fs::read(&p).unwrap();
        assert_eq!(got.len(), head.len() + body.len() + 5);
        assert_eq!(&got[..head.len()], &head[..]);
        assert!(got[head.len()..head.len() + body.len()] == body[..]);
        assert_eq!(&got[head.len() + body.len()..], b"after");
    }

    /// What a failed flush wrote is dropped from the front of the stage, and the rest moves
    /// up in order: a later `finish` writes each byte once.
    #[test]
    fn written_bytes_leave_the_stage_and_the_rest_keeps_its_order() {
        let mut st = Stage::new().unwrap();
        let b: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        assert_eq!(st.fill(&b, STAGE), b.len());
        assert_eq!(
            st.bytes().as_ptr() as usize % ALIGN,
            0,
            "direct writes need it aligned"
        );
        st.drop_front(4096);
        assert_eq!(st.bytes(), &b[4096..]);
        st.drop_front(usize::MAX);
        assert!(st.bytes().is_empty());
    }
}
