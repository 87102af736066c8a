//! Tokenizers from GGUF metadata: `gpt2` byte-level BPE (with the model's pre-tokenizer) and
//! `llama` SentencePiece BPE, producing the same ids as llama.cpp.
//!
//! Encoding: special tokens are cut out of the text first ([`special`]); each remaining piece is
//! pre-tokenized into words ([`pretokenize`]) and merged by rank ([`bpe`]) for `gpt2`, or merged
//! by score with byte fallback ([`spm`]) for `llama`. Decoding concatenates each token's bytes;
//! [`StreamDecoder`] does it incrementally without splitting characters.

pub mod bpe;
pub mod bytelevel;
pub mod pretokenize;
pub mod special;
pub mod spm;
pub mod stream;
pub mod unicode;
#[rustfmt::skip]
pub mod unicode_data;

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::format::gguf::{Gguf, Value};
use bpe::MergeTable;
use pretokenize::PreKind;
use special::{attr, Fragment};
pub use stream::StreamDecoder;

/// Which algorithm a vocabulary uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// GGUF `gpt2`: byte-level BPE with merges and a pre-tokenizer.
    Bpe {
        /// The pre-tokenizer.
        pre: PreKind,
        /// Words that are whole tokens skip merging (Llama 3).
        ignore_merges: bool,
    },
    /// GGUF `llama`: SentencePiece BPE with scores and byte fallback.
    Spm,
}

/// A tokenizer loaded from GGUF metadata.
#[derive(Debug)]
pub struct Tokenizer {
    model: Model,
    /// Token strings as stored in the file.
    texts: Vec<Vec<u8>>,
    /// The bytes each token decodes to (special tokens as their text).
    pieces: Vec<Vec<u8>>,
    attrs: Vec<u32>,
    scores: Vec<f32>,
    token_to_id: HashMap<Vec<u8>, u32>,
    /// BPE: symbol id (interned string) -> token id.
    sym_token: Vec<Option<u32>>,
    /// BPE: symbol id -> string.
    sym_text: Vec<Vec<u8>>,
    /// BPE: the symbol of each byte's GPT-2 character.
    byte_sym: [u32; 256],
    /// BPE: merge rules over symbol ids.
    merges: MergeTable,
    /// Merge rules as token ids `(left, right, merged)` in rank order (rules whose parts are
    /// not all tokens are left out).
    merge_ids: Vec<(u32, u32, u32)>,
    /// Special tokens, longest text first.
    specials: Vec<u32>,
    bos: Option<u32>,
    eos: Option<u32>,
    unk: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    chat_template: Option<String>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::InvalidConfig(format!("tokenizer: {}", msg.into()))
}

fn string_array<'a>(g: &'a Gguf, key: &str) -> Result<Option<Vec<&'a [u8]>>> {
    match g.get(key) {
        None => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_bytes()
                    .ok_or_else(|| bad(format!("{key} is not strings")))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(_) => Err(bad(format!("{key} is not an array"))),
    }
}

/// Texts llama.cpp promotes to control tokens (end-of-generation and fill-in-the-middle markers)
/// whatever their stored type.
const CONTROL_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<｜end▁of▁sentence｜>",
    "<end_of_utterance>",
    "<|eom_id|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "</s>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "[e~[",
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
    "<|fim_pad|>",
    "<fim-pad>",
    "<fim_pad>",
    "<PAD>",
    "[PAD]",
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
    "<|file_sep|>",
];

/// Interns byte strings as dense symbol ids.
#[derive(Default)]
struct Interner {
    map: HashMap<Vec<u8>, u32>,
    texts: Vec<Vec<u8>>,
}

impl Interner {
    fn intern(&mut self, s: &[u8]) -> u32 {
        if let Some(&i) = self.map.get(s) {
            return i;
        }
        let i = self.texts.len() as u32;
        self.map.insert(s.to_vec(), i);
        self.texts.push(s.to_vec());
        i
    }
}

/// Most bytes a token's piece may grow to by llama.cpp's unknown-character rule below.
const MAX_UNK_PIECE: usize = 1 << 16;

fn gpt2_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for cp in unicode::decode_utf8_lenient(text) {
        match unicode::char_to_byte(cp) {
            Some(b) => out.push(b),
            None => {
                let mut utf8 = Vec::new();
                unicode::push_utf8(&mut utf8, cp);
                out.extend_from_slice(b"[UNK_BYTE_0x");
                for b in utf8 {
                    out.extend_from_slice(format!("{b:02x}").as_bytes());
                }
                // llama.cpp appends the whole token text after each unknown character, which
                // grows quadratically with the token's length (a hostile vocabulary entry of
                // a megabyte would need hundreds of gigabytes): do so only while the piece
                // stays under MAX_UNK_PIECE bytes.
                if out.len() + text.len() <= MAX_UNK_PIECE {
                    out.extend_from_slice(text);
                }
                out.push(b']');
            }
        }
    }
    out
}

fn parse_byte_token(text: &[u8]) -> Option<u8> {
    let hex = text.strip_prefix(b"<0x")?.strip_suffix(b">")?;
    u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

fn replace_all(s: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

const SPACE_MARK: &[u8] = "\u{2581}".as_bytes();

impl Tokenizer {
    /// Builds the tokenizer described by a GGUF file's `tokenizer.ggml.*` metadata.
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer> {
        let model_name = g
            .get_str("tokenizer.ggml.model")
            .ok_or_else(|| bad("no tokenizer.ggml.model"))?;
        let pre_name = g.get_str("tokenizer.ggml.pre").unwrap_or("default");
        let tokens = string_array(g, "tokenizer.ggml.tokens")?
            .ok_or_else(|| bad("no tokenizer.ggml.tokens"))?;
        let n = tokens.len();
        if n == 0 || n > u32::MAX as usize / 2 {
            return Err(bad(format!("{n} tokens")));
        }
        let (model, mut bos, mut eos, mut unk, mut add_bos, mut add_space_prefix) = match model_name
        {
            "gpt2" => {
                if pre_name == "default" {
                    return Err(bad("gpt2 vocabulary without a supported pre-tokenizer"));
                }
                let (pre, ignore_merges) = PreKind::from_name(pre_name)?;
                let add_bos = pre == PreKind::Llama3 && ignore_merges;
                (
                    Model::Bpe { pre, ignore_merges },
                    Some(11),
                    Some(11),
                    None,
                    add_bos,
                    false,
                )
            }
            "llama" => (Model::Spm, Some(1), Some(2), Some(0), true, true),
            other => return Err(bad(format!("tokenizer model '{other}' is not supported"))),
        };
        let mut add_eos = false;

        let texts: Vec<Vec<u8>> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| {
                if t.is_empty() {
                    format!("[EMPTY_{i}]").into_bytes()
                } else {
                    t.to_vec()
                }
            })
            .collect();
        let mut token_to_id = HashMap::with_capacity(n);
        for (i, t) in texts.iter().enumerate() {
            token_to_id.insert(t.clone(), i as u32);
        }

        let mut scores = vec![0f32; n];
        if let Some(v) = g.get("tokenizer.ggml.scores") {
            let a = v.as_array().ok_or_else(|| bad("scores is not an array"))?;
            if a.len() < n {
                return Err(bad("fewer scores than tokens"));
            }
            for (s, v) in scores.iter_mut().zip(a) {
                *s = v.as_f64().ok_or_else(|| bad("score is not a number"))? as f32;
            }
        }
        let mut attrs = vec![attr::NORMAL; n];
        if let Some(v) = g.get("tokenizer.ggml.token_type") {
            let a = v
                .as_array()
                .ok_or_else(|| bad("token_type is not an array"))?;
            if a.len() < n {
                return Err(bad("fewer token types than tokens"));
            }
            for (at, v) in attrs.iter_mut().zip(a) {
                let t = match *v {
                    Value::I32(t) => t as i64,
                    ref other => other.as_u64().map(|x| x as i64).unwrap_or(-1),
                };
                *at = match t {
                    1 => attr::NORMAL,
                    2 => attr::UNKNOWN,
                    3 => attr::CONTROL,
                    4 => attr::USER_DEFINED,
                    5 => attr::UNUSED,
                    6 => attr::BYTE,
                    _ => 0,
                };
            }
        }

        let in_range = |id: Option<u32>| id.filter(|&i| (i as usize) < n);
        let key_id = |k: &str| g.get_u64(k).filter(|&i| i < n as u64).map(|i| i as u32);
        bos = in_range(bos);
        eos = in_range(eos);
        unk = in_range(unk);
        let mut pad = None;
        if let Some(i) = key_id("tokenizer.ggml.bos_token_id") {
            bos = Some(i);
        }
        if let Some(i) = key_id("tokenizer.ggml.eos_token_id") {
            eos = Some(i);
        }
        if let Some(i) = key_id("tokenizer.ggml.unknown_token_id") {
            unk = Some(i);
        }
        if let Some(i) = key_id("tokenizer.ggml.padding_token_id") {
            pad = Some(i);
        }
        let flag = |k: &str| g.get(k).and_then(Value::as_bool);
        if let Some(b) = flag("tokenizer.ggml.add_bos_token") {
            add_bos = b;
        }
        if let Some(b) = flag("tokenizer.ggml.add_eos_token") {
            add_eos = b;
        }
        if let Some(b) = flag("tokenizer.ggml.add_space_prefix") {
            add_space_prefix = b;
        }

        for t in CONTROL_TEXTS {
            if let Some(&i) = token_to_id.get(t.as_bytes()) {
                attrs[i as usize] |= attr::CONTROL;
            }
        }
        for t in ["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"] {
            if let Some(&i) = token_to_id.get(t.as_bytes()) {
                attrs[i as usize] = attr::USER_DEFINED;
            }
        }

        let mut specials: Vec<u32> = (0..n as u32)
            .filter(|&i| {
                attrs[i as usize] & (attr::CONTROL | attr::USER_DEFINED | attr::UNKNOWN) != 0
            })
            .collect();
        specials.sort_by(|&a, &b| texts[b as usize].len().cmp(&texts[a as usize].len()));

        // Phi-3 strips white space after its special tokens.
        let general = g.get_str("general.name").unwrap_or("").to_lowercase();
        if general.contains("phi-3") || general.contains("phi3") {
            for &i in &specials {
                attrs[i as usize] |= attr::RSTRIP;
            }
            let mut set = |t: &str, on: bool| {
                if let Some(&i) = token_to_id.get(t.as_bytes()) {
                    if on {
                        attrs[i as usize] |= attr::RSTRIP;
                    } else {
                        attrs[i as usize] &= !attr::RSTRIP;
                    }
                }
            };
            set("</s>", true);
            for t in ["<unk>", "<s>", "<|endoftext|>"] {
                set(t, false);
            }
        }

        // Pieces: what each token decodes to.
        let pieces: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                let (t, a) = (&texts[i], attrs[i]);
                if a & (attr::CONTROL | attr::UNKNOWN | attr::USER_DEFINED) != 0 {
                    t.clone()
                } else if a & attr::NORMAL != 0 {
                    match model {
                        Model::Bpe { .. } => gpt2_decode(t),
                        Model::Spm => replace_all(t, SPACE_MARK, b" "),
                    }
                } else if a & attr::BYTE != 0 {
                    parse_byte_token(t).map(|b| vec![b]).unwrap_or_default()
                } else {
                    Vec::new()
                }
            })
            .collect();

        // BPE merges over interned strings.
        let mut interner = Interner::default();
        let mut merges = MergeTable::default();
        let mut merge_ids = Vec::new();
        let mut byte_sym = [0u32; 256];
        if let Model::Bpe { .. } = model {
            for t in &texts {
                interner.intern(t);
            }
            let list = string_array(g, "tokenizer.ggml.merges")?
                .ok_or_else(|| bad("no tokenizer.ggml.merges"))?;
            merges = MergeTable::with_capacity(list.len());
            merge_ids.reserve(list.len());
            let mut joined = Vec::new();
            for (rank, m) in list.iter().enumerate() {
                // Split at the first space after the first byte (a part may start with one).
                let (l, r) = match m.iter().skip(1).position(|&b| b == b' ') {
                    Some(p) => (&m[..p + 1], &m[p + 2..]),
                    None => (&m[..0], &m[..0]),
                };
                joined.clear();
                joined.extend_from_slice(l);
                joined.extend_from_slice(r);
                let (li, ri, ji) = (
                    interner.intern(l),
                    interner.intern(r),
                    interner.intern(&joined),
                );
                merges.insert(li, ri, rank as u32, ji);
                if let (Some(&a), Some(&b), Some(&c)) = (
                    token_to_id.get(l),
                    token_to_id.get(r),
                    token_to_id.get(&joined[..]),
                ) {
                    merge_ids.push((a, b, c));
                }
            }
            let table = unicode::byte_to_char_table();
            let mut buf = Vec::with_capacity(4);
            for (b, slot) in byte_sym.iter_mut().enumerate() {
                buf.clear();
                unicode::push_utf8(&mut buf, table[b]);
                *slot = interner.intern(&buf);
            }
        }
        let sym_token: Vec<Option<u32>> = interner
            .texts
            .iter()
            .map(|t| token_to_id.get(t).copied())
            .collect();

        Ok(Tokenizer {
            model,
            texts,
            pieces,
            attrs,
            scores,
            token_to_id,
            sym_token,
            sym_text: interner.texts,
            byte_sym,
            merges,
            merge_ids,
            specials,
            bos,
            eos,
            unk,
            pad,
            add_bos,
            add_eos,
            add_space_prefix,
            chat_template: g.get_str("tokenizer.chat_template").map(str::to_owned),
        })
    }

    /// Number of tokens.
    pub fn vocab_size(&self) -> usize {
        self.texts.len()
    }
    /// The algorithm.
    pub fn model(&self) -> Model {
        self.model
    }
    /// Beginning-of-sequence id.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }
    /// End-of-sequence id.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    /// Unknown-token id.
    pub fn unk(&self) -> Option<u32> {
        self.unk
    }
    /// Padding id.
    pub fn pad(&self) -> Option<u32> {
        self.pad
    }
    /// Whether the model asks for a BOS token in front of prompts.
    pub fn add_bos_default(&self) -> bool {
        self.add_bos
    }
    /// Whether the model asks for an EOS token after prompts.
    pub fn add_eos_default(&self) -> bool {
        self.add_eos
    }
    /// Whether SentencePiece-style text gets a leading space.
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }
    /// The token that ends a chat turn, if the vocabulary has one (`<end_of_turn>` for Gemma,
    /// `<|im_end|>` for ChatML models, `<|eot_id|>` for Llama 3, `<|end|>` for Phi-3).
    pub fn end_of_turn(&self) -> Option<u32> {
        ["<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|end|>"]
            .iter()
            .find_map(|t| self.token_id(t.as_bytes()))
    }

    /// The chat template, if the file has one.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }
    /// Token string as stored in the vocabulary.
    pub fn token_text(&self, id: u32) -> Option<&[u8]> {
        self.texts.get(id as usize).map(Vec::as_slice)
    }
    /// The bytes a token decodes to (special tokens as their text).
    pub fn token_bytes(&self, id: u32) -> Option<&[u8]> {
        self.pieces.get(id as usize).map(Vec::as_slice)
    }
    /// Token attributes (bits of [`special::attr`]).
    pub fn token_attr(&self, id: u32) -> u32 {
        self.attrs.get(id as usize).copied().unwrap_or(0)
    }
    /// The id of an exact token string.
    pub fn token_id(&self, text: &[u8]) -> Option<u32> {
        self.token_to_id.get(text).copied()
    }
    /// Merge rules as token ids `(left, right, merged)` in rank order.
    pub fn merge_ids(&self) -> &[(u32, u32, u32)] {
        &self.merge_ids
    }

    /// Tokenizes `text`. `add_bos` puts the BOS id in front (when the vocabulary has one);
    /// `parse_special` lets control tokens written in the text become their ids (user-defined
    /// tokens always do).
    pub fn encode(&self, text: &[u8], add_bos: bool, parse_special: bool) -> Vec<u32> {
        self.encode_with(text, add_bos, false, parse_special)
    }

    /// As [`Tokenizer::encode`], optionally appending the EOS id.
    pub fn encode_with(
        &self,
        text: &[u8],
        add_bos: bool,
        add_eos: bool,
        parse_special: bool,
    ) -> Vec<u32> {
        let specials: Vec<(u32, &[u8], u32)> = self
            .specials
            .iter()
            .filter(|&&i| {
                parse_special || self.attrs[i as usize] & (attr::CONTROL | attr::UNKNOWN) == 0
            })
            .map(|&i| (i, self.texts[i as usize].as_slice(), self.attrs[i as usize]))
            .collect();
        let frags = special::partition(text, &specials);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_bos {
            out.extend(self.bos);
        }
        match self.model {
            Model::Bpe { pre, ignore_merges } => {
                for f in frags {
                    match f {
                        Fragment::Token(t) => out.push(t),
                        Fragment::Raw(a, b) => {
                            self.bpe_fragment(&text[a..b], pre, ignore_merges, &mut out)
                        }
                    }
                }
            }
            Model::Spm => {
                let mut prev_special = true;
                for f in frags {
                    match f {
                        Fragment::Token(t) => {
                            out.push(t);
                            prev_special = true;
                        }
                        Fragment::Raw(a, b) => {
                            let mut s = Vec::with_capacity(b - a + 1);
                            if self.add_space_prefix && prev_special {
                                s.push(b' ');
                            }
                            s.extend_from_slice(&text[a..b]);
                            let s = replace_all(&s, b" ", SPACE_MARK);
                            spm::tokenize(
                                &s,
                                &|t| self.token_to_id.get(t).copied(),
                                &|id| self.scores[id as usize],
                                &|byte| self.byte_token(byte),
                                &mut out,
                            );
                            prev_special = false;
                        }
                    }
                }
            }
        }
        if add_eos {
            out.extend(self.eos);
        }
        out
    }

    fn byte_token(&self, b: u8) -> Option<u32> {
        let hex = format!("<0x{b:02X}>");
        self.token_to_id
            .get(hex.as_bytes())
            .or_else(|| self.token_to_id.get(&[b][..]))
            .copied()
            .or(self.unk)
    }

    fn bpe_fragment(&self, raw: &[u8], pre: PreKind, ignore_merges: bool, out: &mut Vec<u32>) {
        let cpts = unicode::decode_utf8_lenient(raw);
        let table = unicode::byte_to_char_table();
        let mut word = Vec::new();
        let mut syms = Vec::new();
        let mut enc = Vec::new();
        for (a, b) in pre.split(&cpts) {
            word.clear();
            for &cp in &cpts[a..b] {
                unicode::push_utf8(&mut word, cp);
            }
            if ignore_merges {
                enc.clear();
                for &byte in &word {
                    unicode::push_utf8(&mut enc, table[byte as usize]);
                }
                if let Some(&t) = self.token_to_id.get(&enc) {
                    out.push(t);
                    continue;
                }
            }
            syms.clear();
            syms.extend(word.iter().map(|&byte| self.byte_sym[byte as usize]));
            bpe::merge(&mut syms, &self.merges);
            for &s in &syms {
                match self.sym_token[s as usize] {
                    Some(t) => out.push(t),
                    None => {
                        for &byte in &self.sym_text[s as usize] {
                            if let Some(&t) = self.token_to_id.get(&[byte][..]) {
                                out.push(t);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Concatenates the bytes of `ids` (unknown ids are skipped). For SentencePiece
    /// vocabularies with a space prefix, the first token's leading space is removed.
    pub fn decode(&self, ids: &[u32]) -> Vec<u8> {
        let mut d = self.stream_decoder();
        let mut out = Vec::new();
        for &i in ids {
            out.extend(d.push(i));
        }
        out.extend(d.finish());
        out
    }

    /// An incremental decoder that only ever returns whole UTF-8 characters (until `finish`).
    pub fn stream_decoder(&self) -> StreamDecoder<'_> {
        StreamDecoder::new(self)
    }
}
