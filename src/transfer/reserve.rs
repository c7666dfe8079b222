//! The free-space ledger: what accepted offers still need, per save directory, in this
//! process. An offer is accepted only if the free space less what the other transfers into
//! the same directory have reserved covers it; its reservation shrinks as its bytes are
//! written (they then show in the free space) and is released when the transfer ends.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Bytes reserved per save directory.
fn ledger() -> &'static Mutex<HashMap<PathBuf, u64>> {
    static L: OnceLock<Mutex<HashMap<PathBuf, u64>>> = OnceLock::new();
    L.get_or_init(Default::default)
}

/// Bytes an accepted offer may still write into its save directory; released when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    dir: PathBuf,
    /// Still reserved (never more than was claimed).
    left: u64,
}

/// Reserves `needed` bytes in `dir`, whose file system has `free` bytes available (None:
/// unknown, nothing is checked but the claim still counts). Err: why not, for the sender.
pub(crate) fn claim(dir: &Path, needed: u64, free: Option<u64>) -> Result<Reservation, String> {
    let mut l = ledger().lock().expect("ledger lock");
    let held = l.get(dir).copied().unwrap_or(0);
    if let Some(free) = free {
        let room = free.saturating_sub(held);
        if needed > room {
            return Err(if held > 0 {
                format!(
                    "it needs {needed} bytes and the receiver's --save-dir has {free} bytes \
                     free, {held} of them promised to transfers in progress; try again later"
                )
            } else {
                format!(
                    "it needs {needed} bytes and the receiver's --save-dir has {free} bytes free"
                )
            });
        }
    }
    *l.entry(dir.to_owned()).or_insert(0) += needed;
    Ok(Reservation {
        dir: dir.to_owned(),
        left: needed,
    })
}

impl Reservation {
    /// `n` bytes were written (they now show in the free space).
    pub(crate) fn consume(&mut self, n: u64) {
        let n = n.min(self.left);
        if n == 0 {
            return;
        }
        self.left -= n;
        let mut l = ledger().lock().expect("ledger lock");
        if let Some(v) = l.get_mut(&self.dir) {
            *v = v.saturating_sub(n);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut l = ledger().lock().expect("ledger lock");
        if let Some(v) = l.get_mut(&self.dir) {
            *v = v.saturating_sub(self.left);
            if *v == 0 {
                l.remove(&self.dir);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_add_up_and_are_released() {
        let d = Path::new("/reserve-test/a");
        let a = claim(d, 60, Some(100)).unwrap();
        let e = claim(d, 60, Some(100)).unwrap_err();
        assert!(e.contains("promised"), "{e}");
        let mut a = a;
        a.consume(50);
        // 50 written: the disk now shows 50 free, 10 still promised.
        assert!(claim(d, 41, Some(50)).is_err());
        let b = claim(d, 40, Some(50)).unwrap();
        drop(a);
        drop(b);
        assert!(!ledger().lock().unwrap().contains_key(d));
        // Another directory is counted apart.
        let _c = claim(Path::new("/reserve-test/b"), 100, Some(100)).unwrap();
    }
}
