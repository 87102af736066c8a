//! A grammar applied to a vocabulary: which token ids may come next.
//!
//! Tokens are matched by the code points of their bytes. A token may end inside a UTF-8
//! character (byte-level BPE has such tokens): it is allowed when some stack can take a code
//! point starting with those bytes, and its bytes wait for the next token. Control tokens (and
//! tokens with no bytes) are never allowed; EOS is allowed exactly where the grammar is complete.
//!
//! Checking one sampled id is cheap (its code points through the stacks). The full mask (every
//! id) walks a trie of the vocabulary's code points, so ids sharing a prefix share the work.

use std::sync::Arc;

use super::{Grammar, Stack};
use crate::error::{Error, Result};
use crate::generate::Constraint;

/// How a token's bytes decode.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// Never allowed (control token, no bytes).
    Banned,
    /// Whole code points, then possibly an unfinished character (its possible code points).
    Text(Vec<u32>, Option<(u32, u32)>),
    /// Not valid UTF-8 on its own (e.g. starts with a continuation byte): only usable after an
    /// unfinished character.
    Raw,
}

/// Whole code points and the possible code points of an unfinished last character.
type Decoded = (Vec<u32>, Option<Range>);
/// An inclusive range of code points.
type Range = (u32, u32);

/// Decodes `b` into code points and an unfinished tail; `None` if it is not UTF-8.
fn decode(b: &[u8]) -> Option<Decoded> {
    let mut cps = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let need = match c {
            0x00..=0x7F => 1,
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return None,
        };
        if i + need > b.len() {
            // Unfinished: every continuation byte present must be one.
            let rest = &b[i + 1..];
            if rest.iter().any(|&x| x & 0xC0 != 0x80) {
                return None;
            }
            let mut lo = (c as u32) & (0x7F >> need);
            for &x in rest {
                lo = (lo << 6) | (x as u32 & 0x3F);
            }
            let missing = need - 1 - rest.len();
            let hi = ((lo + 1) << (6 * missing)) - 1;
            // The smallest code point of each length (shorter forms are overlong, invalid).
            let least = [0, 0, 0x80, 0x800, 0x10000][need];
            let lo = (lo << (6 * missing)).max(least);
            let hi = hi.min(0x10FFFF);
            if lo > hi {
                return None;
            }
            return Some((cps, Some((lo, hi))));
        }
        let s = std::str::from_utf8(&b[i..i + need]).ok()?;
        cps.push(s.chars().next()? as u32);
        i += need;
    }
    Some((cps, None))
}

/// [`decode`] for the unit tests.
#[cfg(test)]
pub(crate) fn tests_decode(b: &[u8]) -> Option<Decoded> {
    decode(b)
}

#[derive(Debug, Default, Clone)]
struct Node {
    children: Vec<(u32, u32)>,
    ends: Vec<u32>,
    partial: Vec<(u32, u32, u32)>,
}

/// A vocabulary prepared for grammar checks: each token's bytes and a trie of code points.
#[derive(Debug)]
pub struct VocabIndex {
    bytes: Vec<Vec<u8>>,
    shapes: Vec<Shape>,
    nodes: Vec<Node>,
    eos: Option<u32>,
}

impl VocabIndex {
    /// Indexes `tokens` (each id's bytes and whether it is a control token) with `eos`.
    pub fn new(tokens: Vec<(Vec<u8>, bool)>, eos: Option<u32>) -> VocabIndex {
        let mut shapes = Vec::with_capacity(tokens.len());
        let mut bytes = Vec::with_capacity(tokens.len());
        // (code points, id, unfinished tail)
        let mut entries: Vec<(Vec<u32>, u32, Option<Range>)> = Vec::new();
        for (id, (b, control)) in tokens.into_iter().enumerate() {
            let shape = if control || b.is_empty() {
                Shape::Banned
            } else {
                match decode(&b) {
                    Some((cps, tail)) => {
                        if !(cps.is_empty() && tail.is_none()) {
                            entries.push((cps.clone(), id as u32, tail));
                        }
                        Shape::Text(cps, tail)
                    }
                    None => Shape::Raw,
                }
            };
            shapes.push(shape);
            bytes.push(b);
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut nodes = vec![Node::default()];
        let mut path: Vec<u32> = vec![0];
        let mut prev: &[u32] = &[];
        for (cps, id, tail) in &entries {
            let common = prev.iter().zip(cps).take_while(|(a, b)| a == b).count();
            path.truncate(common + 1);
            for &c in &cps[common..] {
                let parent = *path.last().unwrap_or(&0) as usize;
                let idx = nodes.len() as u32;
                nodes.push(Node::default());
                nodes[parent].children.push((c, idx));
                path.push(idx);
            }
            let at = *path.last().unwrap_or(&0) as usize;
            match tail {
                None => nodes[at].ends.push(*id),
                Some((lo, hi)) => nodes[at].partial.push((*id, *lo, *hi)),
            }
            prev = cps;
        }
        VocabIndex {
            bytes,
            shapes,
            nodes,
            eos,
        }
    }

    /// Indexes a qorus tokenizer's vocabulary.
    pub fn from_tokenizer(tok: &crate::tokenizer::Tokenizer) -> VocabIndex {
        use crate::tokenizer::special::attr;
        let tokens = (0..tok.vocab_size() as u32)
            .map(|i| {
                let control = tok.token_attr(i) & (attr::CONTROL | attr::UNUSED) != 0
                    || Some(i) == tok.eos()
                    || Some(i) == tok.bos();
                (tok.token_bytes(i).unwrap_or(&[]).to_vec(), control)
            })
            .collect();
        VocabIndex::new(tokens, tok.eos())
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        self.shapes.len()
    }

    /// Whether there are no ids.
    pub fn is_empty(&self) -> bool {
        self.shapes.is_empty()
    }
}

/// A grammar's parse state over a vocabulary: the [`Constraint`] of a constrained generation.
pub struct GrammarConstraint {
    g: Arc<Grammar>,
    v: Arc<VocabIndex>,
    stacks: Vec<Stack>,
    /// Bytes of an unfinished character from the last token.
    pending: Vec<u8>,
    /// The last id checked and where it leads.
    cache: Option<(u32, Vec<Stack>, Vec<u8>)>,
    /// Set once EOS was accepted.
    done: bool,
    /// Full masks computed (the sampled id was refused).
    masks: usize,
}

impl GrammarConstraint {
    /// The constraint at the start of `g`.
    pub fn new(g: Arc<Grammar>, v: Arc<VocabIndex>) -> Result<GrammarConstraint> {
        let stacks = g.initial()?;
        Ok(GrammarConstraint {
            g,
            v,
            stacks,
            pending: Vec::new(),
            cache: None,
            done: false,
            masks: 0,
        })
    }

    /// How many full masks were computed (each time a sampled id was refused).
    pub fn masks_computed(&self) -> usize {
        self.masks
    }

    /// Whether the text so far is a complete sentence.
    pub fn is_complete(&self) -> bool {
        self.pending.is_empty() && Grammar::is_complete(&self.stacks)
    }

    /// Where token `id` leads (`None`: not allowed).
    fn step(&self, id: u32) -> Option<(Vec<Stack>, Vec<u8>)> {
        if self.done {
            return None;
        }
        let shape = self.v.shapes.get(id as usize)?;
        let owned;
        let (cps, tail, raw): (&[u32], Option<(u32, u32)>, &[u8]) = if self.pending.is_empty() {
            match shape {
                Shape::Text(c, t) => (c, *t, &self.v.bytes[id as usize]),
                _ => return None,
            }
        } else {
            if *shape == Shape::Banned {
                return None;
            }
            let mut b = self.pending.clone();
            b.extend_from_slice(&self.v.bytes[id as usize]);
            owned = (decode(&b)?, b);
            (&owned.0 .0, owned.0 .1, &owned.1)
        };
        let mut st = self.stacks.clone();
        for &c in cps {
            st = self.g.accept(&st, c).ok()?;
            if st.is_empty() {
                return None;
            }
        }
        let pending = match tail {
            Some((lo, hi)) => {
                if !self.g.accepts_range(&st, lo, hi) {
                    return None;
                }
                let k = crate::tokenizer::stream::complete_prefix(raw);
                raw[k..].to_vec()
            }
            None => Vec::new(),
        };
        Some((st, pending))
    }

    fn dfs(&self, node: usize, stacks: &[Stack], allowed: &mut [bool]) {
        let n = &self.v.nodes[node];
        for &t in &n.ends {
            allowed[t as usize] = true;
        }
        for &(t, lo, hi) in &n.partial {
            if self.g.accepts_range(stacks, lo, hi) {
                allowed[t as usize] = true;
            }
        }
        for &(c, child) in &n.children {
            if let Ok(next) = self.g.accept(stacks, c) {
                if !next.is_empty() {
                    self.dfs(child as usize, &next, allowed);
                }
            }
        }
    }

    /// Which ids may come next.
    pub fn allowed(&self) -> Vec<bool> {
        let mut allowed = vec![false; self.v.len()];
        if self.done {
            return allowed;
        }
        if self.pending.is_empty() {
            self.dfs(0, &self.stacks, &mut allowed);
        } else {
            for (i, a) in allowed.iter_mut().enumerate() {
                *a = self.step(i as u32).is_some();
            }
        }
        if let Some(e) = self.v.eos {
            if let Some(a) = allowed.get_mut(e as usize) {
                *a = self.is_complete();
            }
        }
        allowed
    }
}

impl Constraint for GrammarConstraint {
    fn allows(&mut self, id: u32) -> bool {
        if self.v.eos == Some(id) {
            return !self.done && self.is_complete();
        }
        match self.step(id) {
            Some((st, p)) => {
                self.cache = Some((id, st, p));
                true
            }
            None => false,
        }
    }

    fn mask(&mut self, logits: &mut [f32]) {
        self.masks += 1;
        let allowed = self.allowed();
        for (l, a) in logits
            .iter_mut()
            .zip(allowed.iter().chain(std::iter::repeat(&false)))
        {
            if !a {
                *l = f32::NEG_INFINITY;
            }
        }
    }

    fn accept(&mut self, id: u32) -> Result<()> {
        if self.v.eos == Some(id) {
            if !self.is_complete() {
                return Err(Error::InvalidArg(
                    "EOS before the grammar is complete".into(),
                ));
            }
            self.done = true;
            return Ok(());
        }
        let next = match self.cache.take() {
            Some((c, st, p)) if c == id => Some((st, p)),
            _ => self.step(id),
        };
        let Some((st, p)) = next else {
            return Err(Error::InvalidArg(format!(
                "token {id} is not allowed by the grammar here"
            )));
        };
        self.stacks = st;
        self.pending = p;
        Ok(())
    }
}
