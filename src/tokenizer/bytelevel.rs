//! The spec's byte-level encoder (spec §3.5.2 steps 3–4) for tokenizer files and hand-built
//! `q_tokenizer` structs: every byte becomes a token id, then the merge rules are applied.
//!
//! Deliberate deviation from the original (issue 3, spec §7 D1): merges are applied in canonical
//! rank order (lowest rule index first, leftmost among equals, newly formed pairs considered
//! immediately) instead of the original's repeated rule-by-rule passes. For the rules
//! `[(X,'a')->W, ('a','a')->X]` "aaaa" becomes `[W, 'a']` (the original gives `[X, X]`).
//! Duplicate pairs use the first (lowest-index) rule.

use super::bpe::{self, MergeTable};

/// Merge rules `(id1, id2, merged)` in priority order as a lookup table.
pub fn merge_table(rules: impl Iterator<Item = (u32, u32, u32)>) -> MergeTable {
    let mut t = MergeTable::default();
    for (rank, (a, b, m)) in rules.enumerate() {
        t.insert(a, b, rank as u32, m);
    }
    t
}

/// Encodes `text`: byte `c` becomes `byte_id(c)`, then merges by rank.
pub fn encode(text: &[u8], byte_id: impl Fn(u8) -> u32, merges: &MergeTable) -> Vec<u32> {
    let mut ids: Vec<u32> = text.iter().map(|&c| byte_id(c)).collect();
    bpe::merge(&mut ids, merges);
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_8_3_vectors_with_canonical_merges() {
        // 256 bytes + "aa" (256) + "aaa" (257); rules [(256,97)->257, (97,97)->256].
        let t = merge_table([(256, 97, 257), (97, 97, 256)].into_iter());
        let ids = encode(b"aaaa", |c| c as u32, &t);
        assert_eq!(ids, vec![257, 97]);
    }
}
