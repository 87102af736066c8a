//! Incremental decoding for generation: token pieces are emitted as soon as they form whole
//! UTF-8 characters, so no call ever returns half a character.

use super::Tokenizer;

/// Decodes tokens one at a time; see [`Tokenizer::stream_decoder`].
#[derive(Debug)]
pub struct StreamDecoder<'a> {
    tok: &'a Tokenizer,
    pending: Vec<u8>,
    first: bool,
}

/// Length of the prefix of `b` that does not end inside an incomplete UTF-8 sequence.
/// Malformed bytes are not held back (they can never complete).
pub fn complete_prefix(b: &[u8]) -> usize {
    let n = b.len();
    // Look back at most 3 bytes for the lead byte of a possibly unfinished sequence.
    for back in 1..=n.min(4) {
        let i = n - back;
        let c = b[i];
        if c & 0xC0 == 0x80 {
            continue; // continuation byte: keep looking for its lead
        }
        let need = match c {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 1,
        };
        return if need > back { i } else { n };
    }
    n
}

impl<'a> StreamDecoder<'a> {
    pub(super) fn new(tok: &'a Tokenizer) -> StreamDecoder<'a> {
        StreamDecoder {
            tok,
            pending: Vec::new(),
            first: true,
        }
    }

    /// Adds one token; returns the bytes that are now complete characters.
    pub fn push(&mut self, id: u32) -> Vec<u8> {
        let piece = self.tok.token_bytes(id).unwrap_or(&[]);
        let piece = if self.first && self.tok.add_space_prefix() {
            piece.strip_prefix(b" ").unwrap_or(piece)
        } else {
            piece
        };
        self.first = false;
        self.pending.extend_from_slice(piece);
        let k = complete_prefix(&self.pending);
        let rest = self.pending.split_off(k);
        std::mem::replace(&mut self.pending, rest)
    }

    /// Returns whatever is still held back (an incomplete character at the very end).
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.pending)
    }
}

#[cfg(test)]
mod tests {
    use super::complete_prefix;

    #[test]
    fn holds_back_partial_characters() {
        let e = "é€😀".as_bytes();
        assert_eq!(complete_prefix(e), e.len());
        assert_eq!(complete_prefix(&e[..1]), 0);
        assert_eq!(complete_prefix(&e[..3]), 2);
        assert_eq!(complete_prefix(&e[..4]), 2);
        assert_eq!(complete_prefix(&e[..7]), 5);
        assert_eq!(complete_prefix(b"ab\xff"), 3);
        assert_eq!(complete_prefix(b"\x80\x80"), 2);
    }
}
