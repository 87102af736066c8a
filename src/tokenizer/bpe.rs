//! Canonical rank-ordered BPE merging over a linked list of symbols with a priority queue
//! (O(n log n) per word): repeatedly merge the adjacent pair with the lowest rank, the leftmost
//! among equals, then queue the pairs the new symbol forms with its neighbours.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// A fast hasher for integer keys (multiplicative, like FxHash).
#[derive(Default, Clone, Copy)]
pub struct IntHasher(u64);

impl Hasher for IntHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }
    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// A `HashMap` keyed by integers, with [`IntHasher`].
pub type IntMap<K, V> = HashMap<K, V, BuildHasherDefault<IntHasher>>;

/// Merge rules: `(left, right) -> (rank, merged)`, over any integer symbol ids.
#[derive(Debug, Default, Clone)]
pub struct MergeTable {
    map: IntMap<u64, (u32, u32)>,
}

#[inline]
fn key(a: u32, b: u32) -> u64 {
    ((a as u64) << 32) | b as u64
}

impl MergeTable {
    /// An empty table with room for `n` rules.
    pub fn with_capacity(n: usize) -> MergeTable {
        MergeTable {
            map: IntMap::with_capacity_and_hasher(n, Default::default()),
        }
    }

    /// Adds a rule; the first rule for a pair wins (its rank is the lowest).
    pub fn insert(&mut self, left: u32, right: u32, rank: u32, merged: u32) {
        self.map.entry(key(left, right)).or_insert((rank, merged));
    }

    /// The rule for a pair.
    #[inline]
    pub fn get(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        self.map.get(&key(left, right)).copied()
    }

    /// Number of distinct pairs.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[derive(Clone, Copy)]
struct Sym {
    id: u32,
    prev: usize,
    next: usize,
    alive: bool,
}

const NONE: usize = usize::MAX;

/// Merges `ids` in place by rank. `ids` holds symbol ids; merging only looks at the ids.
pub fn merge(ids: &mut Vec<u32>, table: &MergeTable) {
    let n = ids.len();
    if n < 2 || table.is_empty() {
        return;
    }
    let mut syms: Vec<Sym> = (0..n)
        .map(|i| Sym {
            id: ids[i],
            prev: if i == 0 { NONE } else { i - 1 },
            next: if i + 1 == n { NONE } else { i + 1 },
            alive: true,
        })
        .collect();
    // (rank, left index) -> pops lowest rank, then leftmost; plus the ids seen when queued.
    let mut heap: BinaryHeap<Reverse<(u32, usize, u32, u32)>> = BinaryHeap::new();
    let push = |heap: &mut BinaryHeap<_>, syms: &[Sym], l: usize| {
        if l == NONE {
            return;
        }
        let r = syms[l].next;
        if r == NONE {
            return;
        }
        if let Some((rank, _)) = table.get(syms[l].id, syms[r].id) {
            heap.push(Reverse((rank, l, syms[l].id, syms[r].id)));
        }
    };
    for i in 0..n - 1 {
        push(&mut heap, &syms, i);
    }
    while let Some(Reverse((_, l, lid, rid))) = heap.pop() {
        let r = syms[l].next;
        // Stale entries: the left symbol was absorbed or changed, or its neighbour did.
        if !syms[l].alive || r == NONE || syms[l].id != lid || syms[r].id != rid {
            continue;
        }
        let Some((_, merged)) = table.get(lid, rid) else {
            continue;
        };
        syms[l].id = merged;
        syms[r].alive = false;
        let rn = syms[r].next;
        syms[l].next = rn;
        if rn != NONE {
            syms[rn].prev = l;
        }
        push(&mut heap, &syms, syms[l].prev);
        push(&mut heap, &syms, l);
    }
    ids.clear();
    let mut i = 0;
    while i != NONE {
        ids.push(syms[i].id);
        i = syms[i].next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_order_not_rule_order_passes() {
        // Spec §3.5.2 example: rules [(X,'a')->W, ('a','a')->X] on "aaaa" give [W, 'a'].
        let (a, x, w) = (97, 256, 257);
        let mut t = MergeTable::default();
        t.insert(x, a, 0, w);
        t.insert(a, a, 1, x);
        let mut ids = vec![a, a, a, a];
        merge(&mut ids, &t);
        assert_eq!(ids, vec![w, a]);
    }

    #[test]
    fn leftmost_among_equal_ranks() {
        let mut t = MergeTable::default();
        t.insert(1, 1, 0, 9);
        let mut ids = vec![1, 1, 1];
        merge(&mut ids, &t);
        assert_eq!(ids, vec![9, 1]);
    }

    #[test]
    fn long_input_is_fast() {
        let mut t = MergeTable::default();
        t.insert(1, 1, 0, 2);
        t.insert(2, 2, 1, 3);
        let mut ids = vec![1; 1 << 16];
        merge(&mut ids, &t);
        assert_eq!(ids, vec![3; 1 << 14]);
    }
}
