//! The free-space ledger: what accepted offers still need, per save directory and per partial
//! file, in this process. An offer is accepted only if the free space less what the other
//! transfers into the same directory have reserved covers it; a reservation shrinks as its
//! bytes are written (they then show in the free space) and is released when the transfer
//! ends. A newer transfer of the same sender (same partial file: same token) takes the older
//! one's claim on that file over, so a parked transfer never keeps its own sender's rerun
//! from fitting.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Every claim in the process.
#[derive(Default)]
struct Ledger {
    /// Bytes reserved per save directory.
    per_dir: HashMap<PathBuf, u64>,
    /// Per partial file: the claim holding it and the bytes still reserved for it.
    per_part: HashMap<PathBuf, (u64, u64)>,
}

fn ledger() -> &'static Mutex<Ledger> {
    static L: OnceLock<Mutex<Ledger>> = OnceLock::new();
    L.get_or_init(Default::default)
}

/// What an accepted offer may still write into its save directory; released when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    dir: PathBuf,
    /// This claim's id in the ledger.
    id: u64,
    /// The partial files it claimed (some may have been taken over since).
    parts: Vec<PathBuf>,
}

/// Reserves `needs` (bytes per partial file) in `dir`, whose file system has `free` bytes
/// available (None: unknown, nothing is checked but the claim still counts). Err: why not,
/// for the sender.
pub(crate) fn claim(
    dir: &Path,
    needs: Vec<(PathBuf, u64)>,
    free: Option<u64>,
) -> Result<Reservation, String> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut l = ledger().lock().expect("ledger lock");
    // What older claims hold on our own partial files is ours to take over.
    let taken: u64 = needs
        .iter()
        .filter_map(|(p, _)| l.per_part.get(p).map(|&(_, left)| left))
        .sum();
    let held = l
        .per_dir
        .get(dir)
        .copied()
        .unwrap_or(0)
        .saturating_sub(taken);
    let needed = needs.iter().fold(0u64, |t, (_, n)| t.saturating_add(*n));
    if let Some(free) = free {
        if needed > free.saturating_sub(held) {
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
    let Ledger { per_dir, per_part } = &mut *l;
    let total = per_dir.entry(dir.to_owned()).or_insert(0);
    let mut parts = Vec::with_capacity(needs.len());
    for (p, n) in needs {
        if let Some((_, left)) = per_part.insert(p.clone(), (id, n)) {
            *total = total.saturating_sub(left);
        }
        *total = total.saturating_add(n);
        parts.push(p);
    }
    Ok(Reservation {
        dir: dir.to_owned(),
        id,
        parts,
    })
}

impl Reservation {
    /// `n` bytes were written into partial file `part` (they now show in the free space).
    pub(crate) fn consume(&mut self, part: &Path, n: u64) {
        let mut l = ledger().lock().expect("ledger lock");
        let Ledger { per_dir, per_part } = &mut *l;
        let Some((id, left)) = per_part.get_mut(part) else {
            return;
        };
        if *id != self.id {
            return;
        }
        let n = n.min(*left);
        *left -= n;
        if let Some(v) = per_dir.get_mut(&self.dir) {
            *v = v.saturating_sub(n);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut l = ledger().lock().expect("ledger lock");
        let Ledger { per_dir, per_part } = &mut *l;
        let mut freed = 0u64;
        for p in &self.parts {
            if per_part.get(p).is_some_and(|&(id, _)| id == self.id) {
                freed += per_part.remove(p).map_or(0, |(_, left)| left);
            }
        }
        if let Some(v) = per_dir.get_mut(&self.dir) {
            *v = v.saturating_sub(freed);
            if *v == 0 {
                per_dir.remove(&self.dir);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn claims_add_up_and_are_released() {
        let d = Path::new("/reserve-test/a");
        let mut a = claim(d, vec![(p("/reserve-test/a/.x"), 60)], Some(100)).unwrap();
        let e = claim(d, vec![(p("/reserve-test/a/.y"), 60)], Some(100)).unwrap_err();
        assert!(e.contains("promised"), "{e}");
        a.consume(Path::new("/reserve-test/a/.x"), 50);
        // 50 written: the disk now shows 50 free, 10 still promised.
        assert!(claim(d, vec![(p("/reserve-test/a/.y"), 41)], Some(50)).is_err());
        let b = claim(d, vec![(p("/reserve-test/a/.y"), 40)], Some(50)).unwrap();
        drop(a);
        drop(b);
        assert!(!ledger().lock().unwrap().per_dir.contains_key(d));
        // Another directory is counted apart.
        let _c = claim(
            Path::new("/reserve-test/b"),
            vec![(p("/b/.z"), 100)],
            Some(100),
        )
        .unwrap();
    }

    #[test]
    fn a_newer_claim_on_the_same_partial_file_takes_the_older_over() {
        let d = Path::new("/reserve-test/c");
        let part = p("/reserve-test/c/.f.TAG.msock-part");
        let old = claim(d, vec![(part.clone(), 80)], Some(100)).unwrap();
        // The same sender again (same partial file): the parked claim does not count.
        let new = claim(d, vec![(part.clone(), 80)], Some(100)).unwrap();
        // A stranger (another partial file) still finds the space promised.
        assert!(claim(d, vec![(p("/reserve-test/c/.f.OTHER"), 80)], Some(100)).is_err());
        // The old claim ending releases nothing of the new one's.
        drop(old);
        assert_eq!(ledger().lock().unwrap().per_dir[d], 80);
        drop(new);
        assert!(!ledger().lock().unwrap().per_dir.contains_key(d));
    }
}
