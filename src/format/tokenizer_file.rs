//! The original's tokenizer file (spec §4.2): a 32-byte header, length-prefixed vocabulary
//! entries and 12-byte merge records.
//!
//! Reading checks, in this order, with the spec's codes: short read anywhere ->
//! `Q_ERR_FILE_OPEN`; bad magic -> `Q_ERR_INVALID_MAGIC`; version != 1 -> `Q_ERR_INVALID_ARG`;
//! vocabulary size 0 or > 1 000 000 -> `Q_ERR_INVALID_SIZE`; more than 1 000 000 merges ->
//! `Q_ERR_INVALID_SIZE`; an entry of length 0 -> `Q_ERR_INVALID_SIZE`; a merge id >= vocabulary
//! size -> `Q_ERR_INVALID_ARG`. Bytes after the merges are ignored.
//!
//! [`write_from_gguf`] converts a GGUF `gpt2` vocabulary: entry `i` holds the bytes token `i`
//! decodes to (control tokens: their text), merges are `(left, right, merged)` token ids in rank
//! order. The format cannot hold an entry longer than 255 bytes or an empty one: a token whose
//! bytes are longer makes the conversion fail with `Q_ERR_INVALID_SIZE` naming the token
//! (truncating would silently change the vocabulary); a token that decodes to nothing (unused
//! or undefined types) is written as its stored text.

use std::path::Path;

use crate::error::{Error, Result};
use crate::format::gguf::Gguf;
use crate::tokenizer::{Model, Tokenizer};

/// Magic of a tokenizer file, read little-endian (bytes "RKTQ").
pub const TOKENIZER_MAGIC: u32 = 0x5154_4B52;
/// The only version.
pub const TOKENIZER_VERSION: u32 = 1;
/// Most vocabulary entries / merges a file may declare.
pub const MAX_COUNT: u32 = 1_000_000;

/// The contents of a tokenizer file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenizerFile {
    /// Entry `i` is the byte string of token `i` (1..=255 bytes).
    pub vocab: Vec<Vec<u8>>,
    /// Merge rules `(id1, id2, merged)` in priority order.
    pub merges: Vec<(u32, u32, u32)>,
    /// Beginning-of-sequence id.
    pub bos: u32,
    /// End-of-sequence id.
    pub eos: u32,
    /// Padding id.
    pub pad: u32,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a str,
}

impl Reader<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8]> {
        if self.buf.len() - self.pos < n {
            return Err(Error::FileOpen {
                path: self.path.to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "tokenizer file ends inside the {what} (offset {})",
                        self.pos
                    ),
                ),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

impl TokenizerFile {
    /// Parses a whole file's bytes; `path` is only used in messages.
    pub fn parse(buf: &[u8], path: &str) -> Result<TokenizerFile> {
        let mut r = Reader { buf, pos: 0, path };
        let magic = r.u32("header")?;
        if magic != TOKENIZER_MAGIC {
            return Err(Error::InvalidMagic(format!(
                "{path}: not a tokenizer file (magic {magic:#010x})"
            )));
        }
        let version = r.u32("header")?;
        if version != TOKENIZER_VERSION {
            return Err(Error::InvalidArg(format!(
                "{path}: tokenizer file version {version}"
            )));
        }
        let vocab_size = r.u32("header")?;
        if vocab_size == 0 || vocab_size > MAX_COUNT {
            return Err(Error::InvalidSize(format!(
                "{path}: vocabulary size {vocab_size}"
            )));
        }
        let num_merges = r.u32("header")?;
        if num_merges > MAX_COUNT {
            return Err(Error::InvalidSize(format!("{path}: {num_merges} merges")));
        }
        let bos = r.u32("header")?;
        let eos = r.u32("header")?;
        let pad = r.u32("header")?;
        let _reserved = r.u32("header")?;
        // Each entry takes at least 2 bytes: never reserve more than the file can hold.
        let mut vocab = Vec::with_capacity((vocab_size as usize).min(buf.len() / 2));
        for i in 0..vocab_size {
            let len = r.take(1, "vocabulary")?[0];
            if len == 0 {
                return Err(Error::InvalidSize(format!(
                    "{path}: vocabulary entry {i} has length 0"
                )));
            }
            vocab.push(r.take(len as usize, "vocabulary")?.to_vec());
        }
        let mut merges = Vec::with_capacity((num_merges as usize).min(buf.len() / 12));
        for i in 0..num_merges {
            let (a, b, m) = (r.u32("merges")?, r.u32("merges")?, r.u32("merges")?);
            if a >= vocab_size || b >= vocab_size || m >= vocab_size {
                return Err(Error::InvalidArg(format!(
                    "{path}: merge {i} ({a}, {b}) -> {m} names an id >= {vocab_size}"
                )));
            }
            merges.push((a, b, m));
        }
        Ok(TokenizerFile {
            vocab,
            merges,
            bos,
            eos,
            pad,
        })
    }

    /// Reads and parses a file.
    pub fn read(path: &Path) -> Result<TokenizerFile> {
        let shown = path.display().to_string();
        let buf = std::fs::read(path).map_err(|source| Error::FileOpen {
            path: shown.clone(),
            source,
        })?;
        TokenizerFile::parse(&buf, &shown)
    }

    /// The file's bytes. Fails if an entry is empty or longer than 255 bytes, a count exceeds
    /// 1 000 000, or a merge names an id outside the vocabulary.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let n = self.vocab.len();
        if n == 0 || n > MAX_COUNT as usize || self.merges.len() > MAX_COUNT as usize {
            return Err(Error::InvalidSize(format!(
                "tokenizer file: {n} entries, {} merges",
                self.merges.len()
            )));
        }
        let mut b = Vec::with_capacity(32 + n * 8 + self.merges.len() * 12);
        for v in [
            TOKENIZER_MAGIC,
            TOKENIZER_VERSION,
            n as u32,
            self.merges.len() as u32,
            self.bos,
            self.eos,
            self.pad,
            0,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for (i, e) in self.vocab.iter().enumerate() {
            if e.is_empty() || e.len() > 255 {
                return Err(Error::InvalidSize(format!(
                    "tokenizer file: token {i} is {} bytes ({:?}); entries hold 1 to 255 bytes",
                    e.len(),
                    String::from_utf8_lossy(&e[..e.len().min(40)])
                )));
            }
            b.push(e.len() as u8);
            b.extend_from_slice(e);
        }
        for &(x, y, m) in &self.merges {
            if x as usize >= n || y as usize >= n || m as usize >= n {
                return Err(Error::InvalidArg(format!(
                    "tokenizer file: merge ({x}, {y}) -> {m} outside the vocabulary"
                )));
            }
            for v in [x, y, m] {
                b.extend_from_slice(&v.to_le_bytes());
            }
        }
        Ok(b)
    }

    /// Writes the file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let b = self.to_bytes()?;
        std::fs::write(path, b).map_err(|source| Error::FileOpen {
            path: path.display().to_string(),
            source,
        })
    }

    /// The tokenizer-file form of a GGUF `gpt2` vocabulary (see the module documentation).
    /// BOS falls back to EOS and PAD to EOS when the model names none; a model without EOS is
    /// refused.
    pub fn from_tokenizer(tok: &Tokenizer) -> Result<TokenizerFile> {
        if !matches!(tok.model(), Model::Bpe { .. }) {
            return Err(Error::InvalidArg(
                "only gpt2 (byte-level BPE) vocabularies convert to a tokenizer file".into(),
            ));
        }
        let eos = tok
            .eos()
            .ok_or_else(|| Error::InvalidArg("the vocabulary has no EOS token".into()))?;
        let vocab = (0..tok.vocab_size() as u32)
            .map(|i| {
                let b = tok.token_bytes(i).unwrap_or(&[]);
                if b.is_empty() {
                    tok.token_text(i).unwrap_or(&[]).to_vec()
                } else {
                    b.to_vec()
                }
            })
            .collect();
        Ok(TokenizerFile {
            vocab,
            merges: tok.merge_ids().to_vec(),
            bos: tok.bos().unwrap_or(eos),
            eos,
            pad: tok.pad().unwrap_or(eos),
        })
    }
}

/// Converts the tokenizer of a GGUF model (a `gpt2` vocabulary) into a tokenizer file.
pub fn write_from_gguf(g: &Gguf, path: &Path) -> Result<()> {
    let tok = Tokenizer::from_gguf(g)?;
    TokenizerFile::from_tokenizer(&tok)?.write(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::types::*;

    fn sample() -> TokenizerFile {
        TokenizerFile {
            vocab: vec![b"a".to_vec(), b"b".to_vec(), b"ab".to_vec()],
            merges: vec![(0, 1, 2)],
            bos: 7,
            eos: 8,
            pad: 9,
        }
    }

    #[test]
    fn round_trip() {
        let f = sample();
        let b = f.to_bytes().unwrap();
        assert_eq!(b.len(), 32 + 2 + 2 + 3 + 12);
        assert_eq!(&b[..4], b"RKTQ");
        assert_eq!(TokenizerFile::parse(&b, "t").unwrap(), f);
    }

    #[test]
    fn errors_in_spec_order() {
        let b = sample().to_bytes().unwrap();
        let code = |b: &[u8]| TokenizerFile::parse(b, "t").unwrap_err().code();
        for n in 0..b.len() {
            assert_eq!(code(&b[..n]), Q_ERR_FILE_OPEN, "truncated at {n}");
        }
        let mut m = b.clone();
        m[0] = b'X';
        assert_eq!(code(&m), Q_ERR_INVALID_MAGIC);
        let mut v = b.clone();
        v[4] = 2;
        assert_eq!(code(&v), Q_ERR_INVALID_ARG);
        let mut z = b.clone();
        z[8..12].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(code(&z), Q_ERR_INVALID_SIZE);
        let mut big = b.clone();
        big[12..16].copy_from_slice(&1_000_001u32.to_le_bytes());
        assert_eq!(code(&big), Q_ERR_INVALID_SIZE);
        let mut e = b.clone();
        e[32] = 0;
        assert_eq!(code(&e), Q_ERR_INVALID_SIZE);
        let mut mid = b.clone();
        let at = b.len() - 4;
        mid[at..].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(code(&mid), Q_ERR_INVALID_ARG);
        let mut extra = b.clone();
        extra.extend_from_slice(b"trailing");
        assert!(TokenizerFile::parse(&extra, "t").is_ok());
    }

    #[test]
    fn long_entries_are_refused() {
        let mut f = sample();
        f.vocab[1] = vec![b'x'; 256];
        assert_eq!(f.to_bytes().unwrap_err().code(), Q_ERR_INVALID_SIZE);
    }
}
