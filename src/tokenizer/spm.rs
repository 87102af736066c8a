//! SentencePiece-style BPE (GGUF `llama` vocabularies): characters are merged by the score of
//! the token their concatenation forms (highest first, leftmost among equals); characters left
//! without a token fall back to byte tokens `<0xNN>`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(Clone, Copy)]
struct Sym {
    start: usize,
    n: usize,
    prev: usize,
    next: usize,
}

const NONE: usize = usize::MAX;

struct Bigram {
    score: f32,
    left: usize,
    right: usize,
    size: usize,
}

impl PartialEq for Bigram {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Bigram {}
impl PartialOrd for Bigram {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Bigram {
    /// Greater = popped first: higher score, then lower left index.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

/// Tokenizes one fragment (already space-escaped) into `out`.
///
/// `lookup` maps a byte string to a token id; `score` gives a token's score; `byte_token`
/// gives the token for a raw byte.
pub fn tokenize(
    text: &[u8],
    lookup: &dyn Fn(&[u8]) -> Option<u32>,
    score: &dyn Fn(u32) -> f32,
    byte_token: &dyn Fn(u8) -> Option<u32>,
    out: &mut Vec<u32>,
) {
    let mut syms: Vec<Sym> = Vec::with_capacity(text.len());
    let mut off = 0;
    while off < text.len() {
        let n = super::unicode::utf8_len(text[off]).min(text.len() - off);
        let i = syms.len();
        syms.push(Sym {
            start: off,
            n,
            prev: if i == 0 { NONE } else { i - 1 },
            next: if off + n == text.len() { NONE } else { i + 1 },
        });
        off += n;
    }
    let mut heap = BinaryHeap::new();
    let try_add = |heap: &mut BinaryHeap<Bigram>, syms: &[Sym], l: usize, r: usize| {
        if l == NONE || r == NONE {
            return;
        }
        let (a, size) = (syms[l].start, syms[l].n + syms[r].n);
        if let Some(tok) = lookup(&text[a..a + size]) {
            heap.push(Bigram {
                score: score(tok),
                left: l,
                right: r,
                size,
            });
        }
    };
    for i in 1..syms.len() {
        try_add(&mut heap, &syms, i - 1, i);
    }
    while let Some(b) = heap.pop() {
        let (l, r) = (b.left, b.right);
        if syms[l].n == 0 || syms[r].n == 0 || syms[l].n + syms[r].n != b.size {
            continue;
        }
        syms[l].n += syms[r].n;
        syms[r].n = 0;
        let rn = syms[r].next;
        syms[l].next = rn;
        if rn != NONE {
            syms[rn].prev = l;
        }
        try_add(&mut heap, &syms, syms[l].prev, l);
        try_add(&mut heap, &syms, l, syms[l].next);
    }
    let mut i = if syms.is_empty() { NONE } else { 0 };
    while i != NONE {
        let s = syms[i];
        let piece = &text[s.start..s.start + s.n];
        match lookup(piece) {
            Some(t) => out.push(t),
            None => {
                for &byte in piece {
                    if let Some(t) = byte_token(byte) {
                        out.push(t);
                    }
                }
            }
        }
        i = s.next;
    }
}
