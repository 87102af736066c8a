//! Constrained generation (issue 15): GBNF grammars (llama.cpp's format), a JSON-schema subset
//! converted to GBNF, and the generation constraint that keeps every generated text inside the
//! grammar.
//!
//! The recogniser is llama.cpp's: a set of pushdown stacks, each a list of positions in the
//! flattened rules (the top is the next element to match, always a character class). A code point
//! advances every stack whose top accepts it; rule references on top are expanded eagerly, so an
//! empty stack means "the grammar is complete here". Left recursion is refused at build time (it
//! would expand forever).

pub mod json_schema;
mod parse;
pub mod vocab;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::error::{Error, Result};

pub use parse::parse;
pub use vocab::{GrammarConstraint, VocabIndex};

/// One element of an alternative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    /// One code point in (or, negated, outside) the ranges `first .. first + n` of the table.
    Chars {
        /// First range.
        first: u32,
        /// Number of ranges.
        n: u32,
        /// Whether the class is negated.
        negated: bool,
    },
    /// Any code point.
    Any,
    /// A reference to a rule.
    Rule(u32),
    /// End of an alternative (only in the flattened form).
    End,
}

/// A parsed grammar: every alternative flattened into one element array, each ended by `End`.
#[derive(Debug, Clone)]
pub struct Grammar {
    elems: Vec<Elem>,
    ranges: Vec<(u32, u32)>,
    /// Start positions of each rule's alternatives.
    rules: Vec<Vec<u32>>,
    names: Vec<String>,
    root: u32,
}

/// A parse state: one stack of positions (top last).
pub type Stack = Vec<u32>;

/// Distinct stacks in the order first inserted, with a hash index (a linear `contains` made
/// expanding n stacks quadratic).
#[derive(Default)]
struct Stacks {
    v: Vec<Stack>,
    /// Stack hash -> indices in `v`.
    index: HashMap<u64, Vec<usize>>,
}

impl Stacks {
    fn hash(s: &Stack) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        s.hash(&mut h);
        h.finish()
    }

    fn contains(&self, s: &Stack) -> bool {
        self.index
            .get(&Self::hash(s))
            .is_some_and(|ix| ix.iter().any(|&i| self.v[i] == *s))
    }

    /// Adds `s` unless it is already there.
    fn insert(&mut self, s: Stack) {
        let ix = self.index.entry(Self::hash(&s)).or_default();
        if ix.iter().all(|&i| self.v[i] != s) {
            ix.push(self.v.len());
            self.v.push(s);
        }
    }
}

/// At most this many stacks at once (an ambiguous grammar could otherwise grow without bound).
const MAX_STACKS: usize = 4096;
/// At most this many rule references expanded in a row without a character (stack depth).
const MAX_DEPTH: usize = 1000;
/// At most this many positions on one stack.
const MAX_STACK_LEN: usize = 100_000;

impl Grammar {
    /// Parses GBNF text (see [`parse`]).
    pub fn from_gbnf(text: &str) -> Result<Arc<Grammar>> {
        parse(text).map(Arc::new)
    }

    fn build(
        rules: Vec<Vec<Vec<Elem>>>,
        names: Vec<String>,
        ranges: Vec<(u32, u32)>,
        root: u32,
    ) -> Result<Grammar> {
        let mut elems = Vec::new();
        let mut starts = Vec::with_capacity(rules.len());
        for alts in &rules {
            let mut s = Vec::with_capacity(alts.len());
            for a in alts {
                s.push(elems.len() as u32);
                elems.extend_from_slice(a);
                elems.push(Elem::End);
            }
            starts.push(s);
        }
        let g = Grammar {
            elems,
            ranges,
            rules: starts,
            names,
            root,
        };
        g.check_left_recursion()?;
        Ok(g)
    }

    /// Refuses rules that can reach themselves without consuming a character.
    fn check_left_recursion(&self) -> Result<()> {
        let n = self.rules.len();
        // Nullable rules, to a fixed point.
        let mut nullable = vec![false; n];
        loop {
            let mut changed = false;
            for r in 0..n {
                if nullable[r] {
                    continue;
                }
                let any = self.rules[r].iter().any(|&s| {
                    let mut p = s as usize;
                    loop {
                        match self.elems[p] {
                            Elem::End => return true,
                            Elem::Rule(q) if nullable[q as usize] => p += 1,
                            _ => return false,
                        }
                    }
                });
                if any {
                    nullable[r] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        // Edges r -> q when q can come first in r; a cycle is left recursion.
        let mut edges = vec![Vec::new(); n];
        for (r, e) in edges.iter_mut().enumerate() {
            for &s in &self.rules[r] {
                let mut p = s as usize;
                while let Elem::Rule(q) = self.elems[p] {
                    e.push(q as usize);
                    if !nullable[q as usize] {
                        break;
                    }
                    p += 1;
                }
            }
        }
        // Iterative DFS with colours.
        let mut colour = vec![0u8; n];
        for start in 0..n {
            if colour[start] != 0 {
                continue;
            }
            let mut stack = vec![(start, 0usize)];
            colour[start] = 1;
            while let Some(&mut (r, ref mut i)) = stack.last_mut() {
                if *i < edges[r].len() {
                    let q = edges[r][*i];
                    *i += 1;
                    match colour[q] {
                        0 => {
                            colour[q] = 1;
                            stack.push((q, 0));
                        }
                        1 => {
                            return Err(Error::InvalidArg(format!(
                                "grammar: rule {} is left-recursive",
                                self.display_name(q)
                            )))
                        }
                        _ => {}
                    }
                } else {
                    colour[r] = 2;
                    stack.pop();
                }
            }
        }
        Ok(())
    }

    /// A rule's name as written (helper rules are named after what they came from).
    fn display_name(&self, r: usize) -> &str {
        &self.names[r]
    }

    /// Number of rules (helper rules included).
    pub fn n_rules(&self) -> usize {
        self.rules.len()
    }

    fn matches(&self, e: Elem, c: u32) -> bool {
        match e {
            Elem::Any => true,
            Elem::Chars { first, n, negated } => {
                let r = &self.ranges[first as usize..(first + n) as usize];
                r.iter().any(|&(lo, hi)| lo <= c && c <= hi) != negated
            }
            _ => false,
        }
    }

    /// Whether the top element can match some code point in `lo ..= hi`.
    fn matches_range(&self, e: Elem, lo: u32, hi: u32) -> bool {
        match e {
            Elem::Any => true,
            Elem::Chars {
                first,
                n,
                negated: false,
            } => self.ranges[first as usize..(first + n) as usize]
                .iter()
                .any(|&(a, b)| a <= hi && lo <= b),
            Elem::Chars {
                first,
                n,
                negated: true,
            } => {
                // Some code point of lo..=hi outside every range.
                let mut r: Vec<(u32, u32)> =
                    self.ranges[first as usize..(first + n) as usize].to_vec();
                r.sort_unstable();
                let mut next = lo;
                for (a, b) in r {
                    if a > next {
                        break;
                    }
                    next = next.max(b.saturating_add(1));
                }
                next <= hi
            }
            _ => false,
        }
    }

    /// Expands rule references on top of `stack` and adds the resulting stacks to `out`.
    fn advance(&self, stack: Stack, out: &mut Stacks) -> Result<()> {
        self.advance_at(stack, out, 0)
    }

    fn advance_at(&self, stack: Stack, out: &mut Stacks, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(Error::InvalidArg(format!(
                "grammar nests rule references deeper than {MAX_DEPTH}"
            )));
        }
        let Some(&top) = stack.last() else {
            out.insert(stack);
            return Ok(());
        };
        match self.elems[top as usize] {
            Elem::Rule(r) => {
                let next = top + 1;
                let mut base = stack;
                base.pop();
                if self.elems[next as usize] != Elem::End {
                    base.push(next);
                }
                for &s in &self.rules[r as usize] {
                    let mut ns = base.clone();
                    if self.elems[s as usize] != Elem::End {
                        ns.push(s);
                    }
                    self.advance_at(ns, out, depth + 1)?;
                }
            }
            _ => {
                if stack.len() > MAX_STACK_LEN {
                    return Err(Error::InvalidArg(
                        "grammar nests deeper than 100000 open rules".into(),
                    ));
                }
                if !out.contains(&stack) {
                    if out.v.len() >= MAX_STACKS {
                        return Err(Error::InvalidArg(format!(
                            "grammar is too ambiguous (more than {MAX_STACKS} parse stacks)"
                        )));
                    }
                    out.insert(stack);
                }
            }
        }
        Ok(())
    }

    /// The stacks at the start of the grammar.
    pub fn initial(&self) -> Result<Vec<Stack>> {
        let mut out = Stacks::default();
        for &s in &self.rules[self.root as usize] {
            let st = if self.elems[s as usize] == Elem::End {
                vec![]
            } else {
                vec![s]
            };
            self.advance(st, &mut out)?;
        }
        Ok(out.v)
    }

    /// The stacks after code point `c` (empty: `c` is not allowed).
    pub fn accept(&self, stacks: &[Stack], c: u32) -> Result<Vec<Stack>> {
        let mut out = Stacks::default();
        // Stacks that reach the same continuation (alternatives of one rule that all take `c`)
        // are advanced once: expanding each again made `("a" | "a" | ...)*` cubic in the number
        // of alternatives (a 28 s fuzz input).
        let mut done = Stacks::default();
        for st in stacks {
            let Some(&top) = st.last() else { continue };
            let e = self.elems[top as usize];
            if !self.matches(e, c) {
                continue;
            }
            let mut ns = st.clone();
            ns.pop();
            if self.elems[top as usize + 1] != Elem::End {
                ns.push(top + 1);
            }
            if done.contains(&ns) {
                continue;
            }
            done.insert(ns.clone());
            self.advance(ns, &mut out)?;
        }
        Ok(out.v)
    }

    /// Whether some stack can take a code point in `lo ..= hi`.
    pub fn accepts_range(&self, stacks: &[Stack], lo: u32, hi: u32) -> bool {
        stacks.iter().any(|st| {
            st.last()
                .is_some_and(|&t| self.matches_range(self.elems[t as usize], lo, hi))
        })
    }

    /// Whether the grammar may end here.
    pub fn is_complete(stacks: &[Stack]) -> bool {
        stacks.iter().any(|s| s.is_empty())
    }

    /// Whether `text` (UTF-8) is a complete sentence of the grammar.
    pub fn matches_text(&self, text: &str) -> Result<bool> {
        let mut st = self.initial()?;
        for c in text.chars() {
            st = self.accept(&st, c as u32)?;
            if st.is_empty() {
                return Ok(false);
            }
        }
        Ok(Self::is_complete(&st))
    }
}

#[cfg(test)]
mod tests;
