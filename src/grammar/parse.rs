//! GBNF (llama.cpp's grammar format, `grammars/README.md`) to a [`Grammar`].
//!
//! ```text
//! rule     ::= name "::=" alternates            (ends at a newline outside parentheses)
//! alternates ::= sequence ("|" sequence)*      (a newline may follow "::=", "|" and "(")
//! element  ::= "literal" | [class] | [^class] | . | name | "(" alternates ")"
//! repetition: * + ? {m} {m,} {m,n}             # comments run to the end of the line
//! ```
//! Escapes in literals and classes: `\n \r \t \\ \" \[ \] \- \xHH \uHHHH \UHHHHHHHH`. The
//! grammar starts at `root`. Repetitions become helper rules (`x*` is `R ::= x R | ε`), as
//! llama.cpp does. Errors name the line and column (1-based, in characters).

use super::{Elem, Grammar};
use crate::error::{Error, Result};

/// Limits that keep hostile grammars small.
const MAX_REPEAT: u32 = 1000;
const MAX_ELEMS: usize = 1 << 20;

/// One alternative under construction: its elements.
type Alt = Vec<Elem>;

struct Parser<'a> {
    src: &'a [u8],
    text: &'a str,
    pos: usize,
    names: Vec<String>,
    /// Alternatives of each rule (`None`: referenced, not defined yet).
    rules: Vec<Option<Vec<Alt>>>,
    /// Where each rule was first referenced (for "undefined rule" errors).
    first_use: Vec<usize>,
    ranges: Vec<(u32, u32)>,
    n_elems: usize,
    depth: usize,
}

/// Deepest nesting of parentheses.
const MAX_NESTING: usize = 200;

impl<'a> Parser<'a> {
    fn err<T>(&self, at: usize, msg: &str) -> Result<T> {
        let before = &self.text[..at.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Err(Error::InvalidArg(format!(
            "grammar: line {line}, column {col}: {msg}"
        )))
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    /// Skips blanks and comments; newlines too when `newline_ok`.
    fn space(&mut self, newline_ok: bool) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' => self.pos += 1,
                b'#' => {
                    while let Some(c) = self.peek() {
                        if c == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                b'\r' | b'\n' if newline_ok => self.pos += 1,
                _ => break,
            }
        }
    }

    fn is_word(c: u8) -> bool {
        c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
    }

    fn name(&mut self) -> Result<String> {
        let start = self.pos;
        while self.peek().is_some_and(Self::is_word) {
            self.pos += 1;
        }
        if self.pos == start {
            return self.err(start, "expecting a rule name");
        }
        Ok(self.text[start..self.pos].to_string())
    }

    fn rule_id(&mut self, name: &str, at: usize) -> u32 {
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return i as u32;
        }
        self.names.push(name.to_string());
        self.rules.push(None);
        self.first_use.push(at);
        (self.names.len() - 1) as u32
    }

    fn new_rule(&mut self, alts: Vec<Alt>, base: &str) -> Result<u32> {
        self.n_elems += alts.iter().map(|a| a.len() + 1).sum::<usize>();
        if self.n_elems > MAX_ELEMS {
            return self.err(self.pos, "grammar too large");
        }
        let name = format!("{base}_{}", self.names.len());
        self.names.push(name);
        self.rules.push(Some(alts));
        self.first_use.push(self.pos);
        Ok((self.names.len() - 1) as u32)
    }

    fn hex(&mut self, n: usize) -> Result<u32> {
        let start = self.pos;
        let mut v = 0u32;
        for _ in 0..n {
            let d = match self.peek() {
                Some(c) if c.is_ascii_hexdigit() => (c as char).to_digit(16).unwrap_or(0),
                _ => return self.err(start, &format!("expecting {n} hex digits")),
            };
            v = v * 16 + d;
            self.pos += 1;
        }
        if char::from_u32(v).is_none() {
            return self.err(start, &format!("U+{v:X} is not a Unicode scalar value"));
        }
        Ok(v)
    }

    /// One (possibly escaped) character.
    fn char(&mut self) -> Result<u32> {
        let at = self.pos;
        let rest = &self.text[self.pos..];
        let Some(c) = rest.chars().next() else {
            return self.err(at, "unexpected end of input");
        };
        if c != '\\' {
            self.pos += c.len_utf8();
            return Ok(c as u32);
        }
        self.pos += 1;
        let Some(e) = self.peek() else {
            return self.err(at, "unexpected end of input after \\");
        };
        self.pos += 1;
        Ok(match e {
            b'n' => '\n' as u32,
            b'r' => '\r' as u32,
            b't' => '\t' as u32,
            b'\\' | b'"' | b'[' | b']' | b'-' | b'^' | b'\'' => e as u32,
            b'x' => self.hex(2)?,
            b'u' => self.hex(4)?,
            b'U' => self.hex(8)?,
            _ => return self.err(at, &format!("unknown escape \\{}", e as char)),
        })
    }

    fn class(&mut self) -> Result<Elem> {
        let open = self.pos;
        self.pos += 1; // [
        let negated = self.peek() == Some(b'^');
        if negated {
            self.pos += 1;
        }
        let first = self.ranges.len();
        loop {
            match self.peek() {
                None => return self.err(open, "unterminated character class"),
                Some(b']') => {
                    self.pos += 1;
                    break;
                }
                _ => {}
            }
            let lo = self.char()?;
            let mut hi = lo;
            if self.peek() == Some(b'-') && self.src.get(self.pos + 1) != Some(&b']') {
                self.pos += 1;
                if self.peek().is_none() {
                    return self.err(open, "unterminated character class");
                }
                hi = self.char()?;
                if hi < lo {
                    return self.err(open, "character range out of order");
                }
            }
            self.ranges.push((lo, hi));
        }
        Ok(Elem::Chars {
            first: first as u32,
            n: (self.ranges.len() - first) as u32,
            negated,
        })
    }

    fn number(&mut self) -> Result<u32> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if start == self.pos {
            return self.err(start, "expecting a number");
        }
        match self.text[start..self.pos].parse::<u32>() {
            Ok(v) if v <= MAX_REPEAT => Ok(v),
            _ => self.err(start, &format!("repetition count above {MAX_REPEAT}")),
        }
    }

    /// `x{min,max}` (max None: unbounded) as elements appended to `seq`.
    fn repeat(&mut self, seq: &mut Alt, unit: Alt, min: u32, max: Option<u32>) -> Result<()> {
        let total = (unit.len() as u64) * (max.unwrap_or(min) as u64 + 1);
        if self.n_elems as u64 + total > MAX_ELEMS as u64 {
            return self.err(self.pos, "grammar too large");
        }
        for _ in 0..min {
            seq.extend_from_slice(&unit);
        }
        match max {
            None => {
                // R ::= unit R | ε
                let id = self.new_rule(vec![], "star")?;
                let mut a = unit.clone();
                a.push(Elem::Rule(id));
                self.rules[id as usize] = Some(vec![a, vec![]]);
                self.n_elems += unit.len() + 2;
                seq.push(Elem::Rule(id));
            }
            Some(max) => {
                // Nested optionals: O_k ::= unit O_{k-1} | ε.
                let mut inner: Option<u32> = None;
                for _ in min..max {
                    let mut a = unit.clone();
                    if let Some(i) = inner {
                        a.push(Elem::Rule(i));
                    }
                    inner = Some(self.new_rule(vec![a, vec![]], "opt")?);
                }
                if let Some(i) = inner {
                    seq.push(Elem::Rule(i));
                }
            }
        }
        Ok(())
    }

    fn sequence(&mut self, nested: bool) -> Result<Alt> {
        let mut seq: Alt = Vec::new();
        let mut last_start: Option<usize> = None;
        loop {
            let at = self.pos;
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    last_start = Some(seq.len());
                    loop {
                        match self.peek() {
                            None => return self.err(at, "unterminated string literal"),
                            Some(b'"') => {
                                self.pos += 1;
                                break;
                            }
                            _ => {
                                let c = self.char()?;
                                let first = self.ranges.len() as u32;
                                self.ranges.push((c, c));
                                seq.push(Elem::Chars {
                                    first,
                                    n: 1,
                                    negated: false,
                                });
                            }
                        }
                    }
                    if last_start == Some(seq.len()) {
                        last_start = None; // "" matches nothing: nothing to repeat
                    }
                }
                Some(b'[') => {
                    last_start = Some(seq.len());
                    let e = self.class()?;
                    seq.push(e);
                }
                Some(b'.') => {
                    self.pos += 1;
                    last_start = Some(seq.len());
                    seq.push(Elem::Any);
                }
                Some(b'(') => {
                    self.pos += 1;
                    self.depth += 1;
                    if self.depth > MAX_NESTING {
                        return self.err(at, "parentheses nested too deeply");
                    }
                    self.space(true);
                    let alts = self.alternates(true)?;
                    if self.peek() != Some(b')') {
                        return self.err(at, "expecting ')' to close this '('");
                    }
                    self.pos += 1;
                    self.depth -= 1;
                    let id = self.new_rule(alts, "group")?;
                    last_start = Some(seq.len());
                    seq.push(Elem::Rule(id));
                }
                Some(c) if Self::is_word(c) => {
                    // A name followed by ::= starts the next rule.
                    let save = self.pos;
                    let name = self.name()?;
                    let after = self.pos;
                    self.space(false);
                    if self.src[self.pos..].starts_with(b"::=") {
                        self.pos = save;
                        break;
                    }
                    self.pos = after;
                    let id = self.rule_id(&name, at);
                    last_start = Some(seq.len());
                    seq.push(Elem::Rule(id));
                }
                Some(b'*' | b'+' | b'?' | b'{') => {
                    let Some(start) = last_start.take() else {
                        return self.err(at, "repetition without anything to repeat");
                    };
                    let unit: Alt = seq.split_off(start);
                    let (min, max) = match self.peek() {
                        Some(b'*') => {
                            self.pos += 1;
                            (0, None)
                        }
                        Some(b'+') => {
                            self.pos += 1;
                            (1, None)
                        }
                        Some(b'?') => {
                            self.pos += 1;
                            (0, Some(1))
                        }
                        _ => {
                            self.pos += 1;
                            self.space(false);
                            let min = self.number()?;
                            self.space(false);
                            let max = if self.peek() == Some(b',') {
                                self.pos += 1;
                                self.space(false);
                                if self.peek() == Some(b'}') {
                                    None
                                } else {
                                    Some(self.number()?)
                                }
                            } else {
                                Some(min)
                            };
                            self.space(false);
                            if self.peek() != Some(b'}') {
                                return self.err(at, "expecting '}' to close the repetition");
                            }
                            self.pos += 1;
                            if max.is_some_and(|m| m < min) {
                                return self.err(at, "repetition maximum below its minimum");
                            }
                            (min, max)
                        }
                    };
                    self.repeat(&mut seq, unit, min, max)?;
                }
                _ => break,
            }
            self.space(nested);
        }
        self.n_elems += seq.len() + 1;
        if self.n_elems > MAX_ELEMS {
            return self.err(self.pos, "grammar too large");
        }
        Ok(seq)
    }

    fn alternates(&mut self, nested: bool) -> Result<Vec<Alt>> {
        let mut alts = vec![self.sequence(nested)?];
        while self.peek() == Some(b'|') {
            self.pos += 1;
            self.space(true);
            alts.push(self.sequence(nested)?);
        }
        Ok(alts)
    }

    fn rule(&mut self) -> Result<()> {
        let at = self.pos;
        let name = self.name()?;
        self.space(false);
        if !self.src[self.pos..].starts_with(b"::=") {
            return self.err(self.pos, "expecting ::=");
        }
        self.pos += 3;
        self.space(true);
        let id = self.rule_id(&name, at);
        if self.rules[id as usize].is_some() {
            return self.err(at, &format!("rule {name} is defined twice"));
        }
        let alts = self.alternates(false)?;
        self.rules[id as usize] = Some(alts);
        match self.peek() {
            None | Some(b'\n') | Some(b'\r') => Ok(()),
            Some(_) => self.err(self.pos, "expecting a newline or the end after the rule"),
        }
    }
}

/// Parses GBNF text into a grammar starting at `root`.
pub fn parse(text: &str) -> Result<Grammar> {
    let mut p = Parser {
        src: text.as_bytes(),
        text,
        pos: 0,
        names: Vec::new(),
        rules: Vec::new(),
        first_use: Vec::new(),
        ranges: Vec::new(),
        n_elems: 0,
        depth: 0,
    };
    p.space(true);
    while p.pos < p.src.len() {
        p.rule()?;
        p.space(true);
    }
    for (i, r) in p.rules.iter().enumerate() {
        if r.is_none() {
            return p.err(p.first_use[i], &format!("undefined rule {}", p.names[i]));
        }
    }
    let Some(root) = p.names.iter().position(|n| n == "root") else {
        return Err(Error::InvalidArg(
            "grammar: line 1, column 1: no rule named root".into(),
        ));
    };
    let rules: Vec<Vec<Alt>> = p.rules.into_iter().map(|r| r.unwrap_or_default()).collect();
    Grammar::build(rules, p.names, p.ranges, root as u32)
}
