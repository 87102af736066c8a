//! Pre-tokenizers: split text (as code points) into the words BPE runs on.
//!
//! Each pre-tokenizer is a list of stages applied in turn, as llama.cpp applies a list of regular
//! expressions: a stage splits every current piece into its matches and the gaps between them.
//! The GPT-2, Llama 3 and Qwen2 expressions need look-ahead (`\s+(?!\S)`), which the `regex`
//! crate lacks; they are hand-written here as state machines that follow the expressions'
//! leftmost-first semantics (and llama.cpp's hand-written versions of them, which the reference
//! ids come from). The simpler stages are small matchers over code-point classes.

use super::unicode::{ascii_lower, class, flags, is_whitespace, Class, Flags};
use crate::error::{Error, Result};

/// The pre-tokenizer named by `tokenizer.ggml.pre`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreKind {
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` (GPT-2).
    Gpt2,
    /// Llama 3: case-insensitive contractions, `\p{N}{1,3}`, `\s*[\r\n]+`.
    Llama3,
    /// Qwen2: as Llama 3 but single digits.
    Qwen2,
    /// StarCoder / SmolLM: every digit alone, then GPT-2.
    Starcoder,
    /// DeepSeek LLM (several expressions in turn).
    DeepseekLlm,
    /// DeepSeek Coder.
    DeepseekCoder,
}

impl PreKind {
    /// Maps a `tokenizer.ggml.pre` value (llama.cpp's names) onto a pre-tokenizer, and says
    /// whether that model's BPE ignores merges for words that are whole tokens.
    pub fn from_name(name: &str) -> Result<(PreKind, bool)> {
        Ok(match name {
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es"
            | "jina-v2-de" | "a.x-4.0" | "mellum" | "modern-bert" | "mpt" | "olmo" | "jais"
            | "trillion" | "granite-docling" | "exaone4" | "jina-v1-en" | "jina-v2-code"
            | "roberta-bpe" => (PreKind::Gpt2, false),
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" | "jina-v5-nano" => (PreKind::Llama3, true),
            "dbrx" | "smaug-bpe" => (PreKind::Llama3, false),
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" | "stablelm2"
            | "hunyuan" | "solar-open" => (PreKind::Qwen2, false),
            "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone"
            | "minerva-7b" | "mellum2" => (PreKind::Starcoder, false),
            "deepseek-llm" => (PreKind::DeepseekLlm, false),
            "deepseek-coder" => (PreKind::DeepseekCoder, false),
            other => {
                return Err(Error::InvalidConfig(format!(
                    "tokenizer: pre-tokenizer '{other}' is not supported"
                )))
            }
        })
    }

    /// Splits `cpts` into words; returns `(start, end)` code-point ranges covering all of it.
    pub fn split(self, cpts: &[u32]) -> Vec<(usize, usize)> {
        let mut pieces = vec![(0, cpts.len())];
        if cpts.is_empty() {
            return Vec::new();
        }
        let stages: &[Stage] = match self {
            PreKind::Gpt2 => &[Stage::Gpt2],
            PreKind::Llama3 => &[Stage::Llama3],
            PreKind::Qwen2 => &[Stage::Qwen2],
            PreKind::Starcoder => &[Stage::EachNumber, Stage::Gpt2],
            PreKind::DeepseekLlm => &[
                Stage::EachCrLf,
                Stage::OptWsRun(ClassSet::DeepseekLetters),
                Stage::OptWsRun(ClassSet::DeepseekPunct),
                Stage::TrailingWs,
                Stage::Run(ClassSet::Cjk),
                Stage::Run(ClassSet::Number),
            ],
            PreKind::DeepseekCoder => &[
                Stage::EachCrLf,
                Stage::OptWsRun(ClassSet::Letter),
                Stage::OptWsRun(ClassSet::Punct),
                Stage::Run(ClassSet::Cjk),
                Stage::EachNumber,
            ],
        };
        for stage in stages {
            let mut out = Vec::with_capacity(pieces.len() * 2);
            for &(a, b) in &pieces {
                stage.apply(cpts, a, b, &mut out);
            }
            pieces = out;
        }
        pieces
    }
}

#[derive(Clone, Copy, Debug)]
enum ClassSet {
    Number,
    Letter,
    Punct,
    Cjk,
    DeepseekLetters,
    DeepseekPunct,
}

/// DeepSeek LLM's letter class (Latin, Greek, Cyrillic, Armenian, Georgian, Cherokee, ...).
const DEEPSEEK_LETTERS: &[(u32, u32)] = &[
    (0x41, 0x5A),
    (0x61, 0x7A),
    (0xB5, 0xB5),
    (0xC0, 0xD6),
    (0xD8, 0xF6),
    (0xF8, 0x1BA),
    (0x1BC, 0x1BF),
    (0x1C4, 0x293),
    (0x295, 0x2AF),
    (0x370, 0x373),
    (0x376, 0x377),
    (0x37B, 0x37D),
    (0x37F, 0x37F),
    (0x386, 0x386),
    (0x388, 0x38A),
    (0x38C, 0x38C),
    (0x38E, 0x3A1),
    (0x3A3, 0x3F5),
    (0x3F7, 0x481),
    (0x48A, 0x52F),
    (0x531, 0x556),
    (0x10A0, 0x10C5),
    (0x13A0, 0x13F5),
    (0x13F8, 0x13FD),
    (0x1C90, 0x1CBA),
    (0x1CBD, 0x1CBF),
    (0x1D00, 0x1D2B),
    (0x1D6B, 0x1D77),
    (0x1D79, 0x1D9A),
    (0x1E00, 0x1F15),
    (0x1F18, 0x1F1D),
    (0x1F20, 0x1F45),
    (0x1F48, 0x1F4D),
    (0x1F50, 0x1F57),
    (0x1F59, 0x1F59),
    (0x1F5B, 0x1F5B),
    (0x1F5D, 0x1F5D),
    (0x1F5F, 0x1F7D),
    (0x1F80, 0x1FB4),
    (0x1FB6, 0x1FBC),
    (0x1FBE, 0x1FBE),
    (0x1FC2, 0x1FC4),
    (0x1FC6, 0x1FCC),
    (0x1FD0, 0x1FD3),
    (0x1FD6, 0x1FDB),
    (0x1FE0, 0x1FEC),
    (0x1FF2, 0x1FF4),
    (0x1FF6, 0x1FFC),
    (0x2102, 0x2102),
    (0x2107, 0x2107),
    (0x210A, 0x2113),
    (0x2115, 0x2115),
    (0x2119, 0x211D),
    (0x2124, 0x2124),
    (0x2126, 0x2126),
    (0x2128, 0x2128),
    (0x212A, 0x212D),
    (0x212F, 0x2134),
    (0x2139, 0x2139),
    (0x213C, 0x213F),
    (0x2145, 0x2149),
    (0x214E, 0x214E),
    (0x2183, 0x2184),
    (0x2C00, 0x2C7B),
    (0x2C7E, 0x2CE4),
    (0x2CEB, 0x2CEE),
    (0x2CF2, 0x2CF3),
    (0xA640, 0xA66D),
    (0xA680, 0xA69B),
    (0xA722, 0xA76F),
    (0xA771, 0xA787),
    (0xA78B, 0xA78E),
    (0xAB70, 0xABBF),
    (0xFB00, 0xFB06),
    (0xFB13, 0xFB17),
    (0xFF21, 0xFF3A),
    (0xFF41, 0xFF5A),
    (0x10400, 0x1044F),
    (0x104B0, 0x104D3),
    (0x104D8, 0x104FB),
    (0x10C80, 0x10CB2),
    (0x10CC0, 0x10CF2),
    (0x118A0, 0x118DF),
    (0x1E900, 0x1E943),
];

/// DeepSeek LLM's punctuation class: ASCII punctuation and symbols, their full-width forms,
/// curly quotes, and the ideographic comma and full stop.
const DEEPSEEK_PUNCT: &[(u32, u32)] = &[
    (0x21, 0x2F),
    (0x3A, 0x7E),
    (0xFF01, 0xFF0F),
    (0xFF1A, 0xFF5E),
    (0x2018, 0x201F),
    (0x3000, 0x3002),
];

/// CJK ideographs and Hangul as DeepSeek's expressions write them.
const CJK: &[(u32, u32)] = &[(0x4E00, 0x9FA5), (0x0800, 0x4E00), (0xAC00, 0xD7FF)];

fn in_ranges(cp: u32, r: &[(u32, u32)]) -> bool {
    r.iter().any(|&(a, b)| a <= cp && cp <= b)
}

/// In the expressions without `\p{..}` (matched by llama.cpp with `std::wregex`), non-ASCII
/// white space is first replaced by U+000B, so it matches `\s` and no other class.
#[inline]
fn wide(cp: u32) -> u32 {
    if cp > 0x7F && is_whitespace(cp) {
        0x0B
    } else {
        cp
    }
}

impl ClassSet {
    fn contains(self, cp: u32) -> bool {
        match self {
            // `\p{..}` classes: non-ASCII white space never counts (it is not L/N/P anyway).
            ClassSet::Number => class(cp) == Class::Number && !is_whitespace(cp),
            ClassSet::Letter => class(cp) == Class::Letter && !is_whitespace(cp),
            ClassSet::Punct => class(cp) == Class::Punctuation && !is_whitespace(cp),
            ClassSet::Cjk => in_ranges(wide(cp), CJK),
            ClassSet::DeepseekLetters => in_ranges(wide(cp), DEEPSEEK_LETTERS),
            ClassSet::DeepseekPunct => in_ranges(wide(cp), DEEPSEEK_PUNCT),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Stage {
    Gpt2,
    Llama3,
    Qwen2,
    /// `\p{N}`: every number character alone.
    EachNumber,
    /// `[\r\n]`
    EachCrLf,
    /// `X+`
    Run(ClassSet),
    /// `\s?X+`
    OptWsRun(ClassSet),
    /// `\s+$`
    TrailingWs,
}

/// Emits the matches of a simple matcher over `[a, b)` and the gaps between them.
fn split_matches(
    a: usize,
    b: usize,
    out: &mut Vec<(usize, usize)>,
    mut find: impl FnMut(usize) -> Option<(usize, usize)>,
) {
    let mut pos = a;
    while pos < b {
        match find(pos) {
            Some((m, e)) => {
                if m > pos {
                    out.push((pos, m));
                }
                out.push((m, e));
                pos = e;
            }
            None => break,
        }
    }
    if pos < b {
        out.push((pos, b));
    }
}

impl Stage {
    fn apply(self, cpts: &[u32], a: usize, b: usize, out: &mut Vec<(usize, usize)>) {
        let s = &cpts[..b];
        match self {
            Stage::Gpt2 => gpt2(s, a, b, out),
            Stage::Llama3 => llama3(s, a, b, out, true),
            Stage::Qwen2 => llama3(s, a, b, out, false),
            Stage::EachNumber => split_matches(a, b, out, |p| {
                (p..b)
                    .find(|&i| ClassSet::Number.contains(s[i]))
                    .map(|i| (i, i + 1))
            }),
            Stage::EachCrLf => split_matches(a, b, out, |p| {
                (p..b)
                    .find(|&i| s[i] == '\r' as u32 || s[i] == '\n' as u32)
                    .map(|i| (i, i + 1))
            }),
            Stage::Run(c) => split_matches(a, b, out, |p| {
                let m = (p..b).find(|&i| c.contains(s[i]))?;
                let e = (m..b).find(|&i| !c.contains(s[i])).unwrap_or(b);
                Some((m, e))
            }),
            Stage::OptWsRun(c) => split_matches(a, b, out, |p| {
                for i in p..b {
                    let start = if is_whitespace(s[i]) && i + 1 < b && c.contains(s[i + 1]) {
                        i + 1
                    } else if c.contains(s[i]) {
                        i
                    } else {
                        continue;
                    };
                    let e = (start..b).find(|&j| !c.contains(s[j])).unwrap_or(b);
                    return Some((i, e));
                }
                None
            }),
            Stage::TrailingWs => split_matches(a, b, out, |p| {
                let mut m = b;
                while m > p && is_whitespace(s[m - 1]) {
                    m -= 1;
                }
                (m < b).then_some((m, b))
            }),
        }
    }
}

/// A cursor over one piece `[ini, end)`: reads outside it give "no character".
struct Piece<'a> {
    s: &'a [u32],
    ini: usize,
    end: usize,
}

impl Piece<'_> {
    #[inline]
    fn cpt(&self, pos: usize) -> Option<u32> {
        (self.ini <= pos && pos < self.end).then(|| self.s[pos])
    }
    #[inline]
    fn flags(&self, pos: usize) -> Option<Flags> {
        self.cpt(pos).map(flags)
    }
}

#[inline]
fn is_l(f: Option<Flags>) -> bool {
    f.is_some_and(|f| f.is_letter())
}
#[inline]
fn is_n(f: Option<Flags>) -> bool {
    f.is_some_and(|f| f.is_number())
}
#[inline]
fn is_ws(f: Option<Flags>) -> bool {
    f.is_some_and(|f| f.whitespace)
}
/// `[^\s\p{L}\p{N}]` for a character inside the piece.
#[inline]
fn is_other(f: Option<Flags>) -> bool {
    f.is_some_and(|f| !(f.whitespace || f.is_letter() || f.is_number()))
}

/// `'s|'t|'re|'ve|'m|'ll|'d` (optionally case-insensitive) at `pos`: the match length.
fn contraction(p: &Piece, pos: usize, fold: bool) -> Option<usize> {
    if p.cpt(pos) != Some('\'' as u32) || pos + 1 >= p.end {
        return None;
    }
    let low = |c: Option<u32>| c.map(|c| if fold { ascii_lower(c) } else { c });
    let n1 = low(p.cpt(pos + 1))?;
    if [b's', b't', b'm', b'd'].iter().any(|&c| n1 == c as u32) {
        return Some(2);
    }
    if pos + 2 < p.end {
        let n2 = low(p.cpt(pos + 2))?;
        let pair = (n1, n2);
        let ok = [(b'r', b'e'), (b'v', b'e'), (b'l', b'l')]
            .iter()
            .any(|&(x, y)| pair == (x as u32, y as u32));
        if ok {
            return Some(3);
        }
    }
    None
}

/// Whitespace at `pos` for the `\s+(?!\S)|\s+` tail: the new position.
fn whitespace_tail(p: &Piece, pos: usize) -> usize {
    let mut n = 0;
    while is_ws(p.flags(pos + n)) {
        n += 1;
    }
    if n > 1 && p.cpt(pos + n).is_some() {
        pos + n - 1
    } else if n > 0 {
        pos + n
    } else {
        pos + 1
    }
}

fn gpt2(s: &[u32], ini: usize, end: usize, out: &mut Vec<(usize, usize)>) {
    let p = Piece { s, ini, end };
    let mut pos = ini;
    while pos < end {
        let start = pos;
        let cpt = s[pos];
        let f = p.flags(pos);
        if let Some(n) = contraction(&p, pos, false) {
            pos += n;
        } else {
            let space = cpt == ' ' as u32;
            let f2 = if space { p.flags(pos + 1) } else { f };
            if is_l(f2) {
                pos += space as usize;
                while is_l(p.flags(pos)) {
                    pos += 1;
                }
            } else if is_n(f2) {
                pos += space as usize;
                while is_n(p.flags(pos)) {
                    pos += 1;
                }
            } else if is_other(f2) {
                pos += space as usize;
                while is_other(p.flags(pos)) {
                    pos += 1;
                }
            } else {
                pos = whitespace_tail(&p, pos);
            }
        }
        out.push((start, pos));
    }
}

/// Llama 3 (`three_digits`) and Qwen2 (single digits).
fn llama3(s: &[u32], ini: usize, end: usize, out: &mut Vec<(usize, usize)>, three_digits: bool) {
    let p = Piece { s, ini, end };
    let mut pos = ini;
    let cr_lf = |c: Option<u32>| c == Some('\r' as u32) || c == Some('\n' as u32);
    while pos < end {
        let start = pos;
        let cpt = s[pos];
        let f = p.flags(pos);
        if let Some(n) = contraction(&p, pos, true) {
            pos += n;
            out.push((start, pos));
            continue;
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if !(cr_lf(Some(cpt)) || is_n(f)) && (is_l(f) || is_l(p.flags(pos + 1))) {
            pos += 1;
            while is_l(p.flags(pos)) {
                pos += 1;
            }
            out.push((start, pos));
            continue;
        }
        // \p{N}{1,3} or \p{N}
        if is_n(f) {
            if three_digits {
                let mut chunk = pos;
                while is_n(p.flags(pos)) {
                    pos += 1;
                    if pos - chunk >= 3 {
                        out.push((chunk, pos));
                        chunk = pos;
                    }
                }
                if pos > chunk {
                    out.push((chunk, pos));
                }
            } else {
                pos += 1;
                out.push((start, pos));
            }
            continue;
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*' (llama.cpp tests the character after a space, which
        // may lie outside the piece: a lone trailing space is then taken here, as `\s+` would)
        let space = cpt == ' ' as u32;
        let f2 = if space { p.flags(pos + 1) } else { f };
        let f2_other = match f2 {
            None => true,
            Some(g) => !(g.whitespace || g.is_letter() || g.is_number()),
        };
        if f2_other {
            pos += space as usize;
            while is_other(p.flags(pos)) {
                pos += 1;
            }
            while cr_lf(p.cpt(pos)) {
                pos += 1;
            }
            out.push((start, pos));
            continue;
        }
        // \s*[\r\n]+
        let mut n = 0;
        let mut last_crlf = None;
        while is_ws(p.flags(pos + n)) {
            if cr_lf(p.cpt(pos + n)) {
                last_crlf = Some(pos + n + 1);
            }
            n += 1;
        }
        pos = match last_crlf {
            Some(e) => e,
            None => whitespace_tail(&p, pos),
        };
        out.push((start, pos));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(kind: PreKind, s: &str) -> Vec<String> {
        let cpts: Vec<u32> = s.chars().map(|c| c as u32).collect();
        kind.split(&cpts)
            .into_iter()
            .map(|(a, b)| {
                cpts[a..b]
                    .iter()
                    .map(|&c| char::from_u32(c).unwrap())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn gpt2_splits() {
        assert_eq!(
            words(PreKind::Gpt2, "Hello world's  end!!\n\n x"),
            ["Hello", " world", "'s", " ", " end", "!!", "\n\n", " x"]
        );
        assert_eq!(words(PreKind::Gpt2, "a   "), ["a", "   "]);
    }

    #[test]
    fn starcoder_isolates_digits() {
        assert_eq!(
            words(PreKind::Starcoder, "ab 1234x"),
            ["ab", " ", "1", "2", "3", "4", "x"]
        );
    }

    #[test]
    fn llama3_splits() {
        assert_eq!(
            words(PreKind::Llama3, "I'M 12345 ok\n\n  x"),
            ["I", "'M", " ", "123", "45", " ok", "\n\n", " ", " x"]
        );
        assert_eq!(words(PreKind::Qwen2, "x 12"), ["x", " ", "1", "2"]);
    }

    #[test]
    fn deepseek_splits() {
        assert_eq!(
            words(PreKind::DeepseekLlm, "Hello, 世界 123\n"),
            ["Hello", ",", " ", "世界", " ", "123", "\n"]
        );
    }
}
