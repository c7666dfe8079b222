//! A set of disjoint half-open `u64` ranges, kept merged.

use std::collections::BTreeMap;
use std::ops::Range;

/// Disjoint, non-adjacent half-open ranges, keyed by start. Used for stream bytes that must be
/// re-sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// start -> end; invariant: ranges are non-empty, disjoint and never touch.
    map: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// True when no range is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Total length of all ranges.
    pub fn len_bytes(&self) -> u64 {
        self.map.iter().map(|(s, e)| e - s).sum()
    }

    /// Adds `r`, merging with neighbours.
    pub fn insert(&mut self, r: Range<u64>) {
        if r.start >= r.end {
            return;
        }
        let (mut start, mut end) = (r.start, r.end);
        // A range starting at or before `start` that reaches it.
        if let Some((&s, &e)) = self.map.range(..=start).next_back() {
            if e >= start {
                start = s;
                end = end.max(e);
                self.map.remove(&s);
            }
        }
        // Ranges starting inside [start, end].
        while let Some((&s, &e)) = self.map.range(start..=end).next() {
            end = end.max(e);
            self.map.remove(&s);
        }
        self.map.insert(start, end);
    }

    /// Removes everything below `offset`.
    pub fn remove_below(&mut self, offset: u64) {
        while let Some((&s, &e)) = self.map.iter().next() {
            if s >= offset {
                break;
            }
            self.map.remove(&s);
            if e > offset {
                self.map.insert(offset, e);
                break;
            }
        }
    }

    /// Takes up to `max` bytes from the front of the lowest range.
    pub fn pop_front(&mut self, max: u64) -> Option<Range<u64>> {
        self.pop_from(0, max)
    }

    /// Takes up to `max` bytes from the lowest held bytes at or above `at`.
    pub fn pop_from(&mut self, at: u64, max: u64) -> Option<Range<u64>> {
        let (s, e) = match self.map.range(..=at).next_back() {
            Some((&s, &e)) if e > at => (s, e),
            _ => self.map.range(at..).next().map(|(&s, &e)| (s, e))?,
        };
        self.map.remove(&s);
        let start = s.max(at);
        if s < start {
            self.map.insert(s, start);
        }
        let end = e.min(start.saturating_add(max));
        if end < e {
            self.map.insert(end, e);
        }
        Some(start..end)
    }

    /// The parts of `r` that the set does not cover, in order.
    pub fn gaps_in(&self, r: Range<u64>) -> Vec<Range<u64>> {
        let mut gaps = Vec::new();
        let mut at = r.start;
        // A held range starting before `r` may cover its beginning.
        if let Some((_, &e)) = self.map.range(..=at).next_back() {
            at = at.max(e);
        }
        if at >= r.end {
            return gaps;
        }
        for (&s, &e) in self.map.range(at..r.end) {
            if s > at {
                gaps.push(at..s);
            }
            at = at.max(e);
        }
        if at < r.end {
            gaps.push(at..r.end);
        }
        gaps
    }

    /// Iterates the ranges in order.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.map.iter().map(|(&s, &e)| s..e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_pops() {
        let mut s = RangeSet::new();
        s.insert(10..20);
        s.insert(30..40);
        s.insert(20..30);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![10..40]);
        s.insert(5..12);
        s.insert(45..50);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![5..40, 45..50]);
        s.remove_below(7);
        assert_eq!(s.pop_front(3), Some(7..10));
        assert_eq!(s.len_bytes(), 30 + 5);
        s.remove_below(48);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![48..50]);
        s.insert(60..70);
        assert_eq!(s.gaps_in(40..80), vec![40..48, 50..60, 70..80]);
        assert_eq!(s.gaps_in(62..68), Vec::<Range<u64>>::new());
        assert_eq!(s.gaps_in(65..75), vec![70..75]);
        assert_eq!(s.pop_front(100), Some(48..50));
        assert_eq!(s.pop_front(100), Some(60..70));
        assert!(s.is_empty());
    }

    #[test]
    fn pops_from_an_offset() {
        let mut s = RangeSet::new();
        s.insert(10..40);
        s.insert(50..60);
        // From inside a range: the part below stays.
        assert_eq!(s.pop_from(20, 5), Some(20..25));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![10..20, 25..40, 50..60]);
        // From a gap: the next range.
        assert_eq!(s.pop_from(42, 100), Some(50..60));
        assert_eq!(s.pop_from(45, 100), None);
        assert_eq!(s.pop_from(0, 100), Some(10..20));
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![25..40]);
    }
}
