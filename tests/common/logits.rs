//! Reference logits in `QRLG` files (tests/data/README.md), and what tests compare them by.

use std::path::Path;

/// One prompt of a reference file.
pub struct RefPrompt {
    pub tokens: Vec<u32>,
    /// The positions whose full logits are stored.
    pub full_pos: Vec<usize>,
    /// The full logits at `full_pos`.
    pub full: Vec<Vec<f32>>,
    /// The top-k ids at every position, most probable first.
    pub top_ids: Vec<Vec<u32>>,
    /// Their logits.
    pub top_vals: Vec<Vec<f32>>,
}

impl RefPrompt {
    /// The reference's top-1 minus top-2 logit at position `p`.
    pub fn margin(&self, p: usize) -> f32 {
        self.top_vals[p][0] - self.top_vals[p][1]
    }
}

/// Reads a `QRLG` logits file: the vocabulary size and the prompts.
pub fn read_logits(path: &Path) -> (usize, Vec<RefPrompt>) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let f32_at = |o: usize| f32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    assert_eq!(&b[0..4], b"QRLG", "{}", path.display());
    let (n_vocab, n_prompts, k) = (u32_at(8) as usize, u32_at(12) as usize, u32_at(16) as usize);
    let mut off = 96;
    let mut table = Vec::new();
    for _ in 0..n_prompts {
        table.push((u32_at(off) as usize, u32_at(off + 4) as usize));
        off += 8;
    }
    let mut prompts = Vec::new();
    for (n_tok, n_full) in table {
        let tokens = (0..n_tok).map(|i| u32_at(off + 4 * i)).collect();
        off += 4 * n_tok;
        let full_pos = (0..n_full).map(|i| u32_at(off + 4 * i) as usize).collect();
        off += 4 * n_full;
        let full = (0..n_full)
            .map(|j| {
                (0..n_vocab)
                    .map(|v| f32_at(off + 4 * (j * n_vocab + v)))
                    .collect()
            })
            .collect();
        off += 4 * n_full * n_vocab;
        let top_ids = (0..n_tok)
            .map(|p| (0..k).map(|i| u32_at(off + 4 * (p * k + i))).collect())
            .collect();
        off += 4 * n_tok * k;
        let top_vals = (0..n_tok)
            .map(|p| (0..k).map(|i| f32_at(off + 4 * (p * k + i))).collect())
            .collect();
        off += 4 * n_tok * k;
        prompts.push(RefPrompt {
            tokens,
            full_pos,
            full,
            top_ids,
            top_vals,
        });
    }
    assert_eq!(off, b.len(), "{}: trailing bytes", path.display());
    (n_vocab, prompts)
}

/// KL(softmax(p) || softmax(q)) in f64, over the given values.
pub fn kld(p: &[f32], q: &[f32]) -> f64 {
    let lse = |x: &[f32]| {
        let m = x.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
        m + x.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln()
    };
    let (lp, lq) = (lse(p), lse(q));
    p.iter()
        .zip(q)
        .map(|(&a, &b)| {
            let la = a as f64 - lp;
            la.exp() * (la - (b as f64 - lq))
        })
        .sum()
}

/// The first index of the largest value.
pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best as u32
}
