//! Special-token partitioning: before BPE, occurrences of special tokens in the text are cut
//! out and become their ids directly (longest tokens first, as llama.cpp does).

/// Token attributes (llama.cpp's bit values).
pub mod attr {
    /// Unknown token.
    pub const UNKNOWN: u32 = 1 << 0;
    /// Unused token.
    pub const UNUSED: u32 = 1 << 1;
    /// Ordinary token.
    pub const NORMAL: u32 = 1 << 2;
    /// Control token (BOS, EOS, chat markers).
    pub const CONTROL: u32 = 1 << 3;
    /// User-defined token: always matched in text.
    pub const USER_DEFINED: u32 = 1 << 4;
    /// Byte token `<0xNN>`.
    pub const BYTE: u32 = 1 << 5;
    /// Strip white space before the token when matched.
    pub const LSTRIP: u32 = 1 << 7;
    /// Strip white space after the token when matched.
    pub const RSTRIP: u32 = 1 << 8;
}

/// A piece of the input: raw text `[start, end)` or a token id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment {
    /// Byte range of the input still to be tokenized.
    Raw(usize, usize),
    /// A special token found in the text.
    Token(u32),
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        match hay[i..hay.len() - rest.len()]
            .iter()
            .position(|&b| b == first)
        {
            None => return None,
            Some(k) => {
                let at = i + k;
                if &hay[at + 1..at + needle.len()] == rest {
                    return Some(at);
                }
                i = at + 1;
            }
        }
    }
    None
}

/// C `isspace` in the "C" locale.
fn c_isspace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

/// Splits `text` around the given special tokens (`(id, text, attrs)`, longest first).
pub fn partition(text: &[u8], specials: &[(u32, &[u8], u32)]) -> Vec<Fragment> {
    let mut frags = if text.is_empty() {
        Vec::new()
    } else {
        vec![Fragment::Raw(0, text.len())]
    };
    for &(id, tok, at) in specials {
        if tok.is_empty() {
            continue;
        }
        // Cheap skip: the token does not occur at all.
        if find(text, tok).is_none() {
            continue;
        }
        let mut out = Vec::with_capacity(frags.len() + 2);
        for f in frags {
            let Fragment::Raw(mut base, end) = f else {
                out.push(f);
                continue;
            };
            while base < end {
                let Some(k) = find(&text[base..end], tok) else {
                    break;
                };
                let m = base + k;
                let mut left_end = m;
                if at & attr::LSTRIP != 0 {
                    while left_end > base && c_isspace(text[left_end - 1]) {
                        left_end -= 1;
                    }
                }
                if left_end > base {
                    out.push(Fragment::Raw(base, left_end));
                }
                out.push(Fragment::Token(id));
                base = m + tok.len();
                if at & attr::RSTRIP != 0 {
                    while base < end && c_isspace(text[base]) {
                        base += 1;
                    }
                }
            }
            if base < end {
                out.push(Fragment::Raw(base, end));
            }
        }
        frags = out;
    }
    frags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_longest_first() {
        let sp: [(u32, &[u8], u32); 2] = [(7, b"<|im_start|>", 0), (8, b"<|", 0)];
        let f = partition(b"a<|im_start|>b<|c", &sp);
        assert_eq!(
            f,
            vec![
                Fragment::Raw(0, 1),
                Fragment::Token(7),
                Fragment::Raw(13, 14),
                Fragment::Token(8),
                Fragment::Raw(16, 17)
            ]
        );
    }

    #[test]
    fn rstrip_eats_following_space() {
        let sp: [(u32, &[u8], u32); 1] = [(5, b"</s>", attr::RSTRIP)];
        let f = partition(b"x </s>  y", &sp);
        assert_eq!(
            f,
            vec![Fragment::Raw(0, 2), Fragment::Token(5), Fragment::Raw(8, 9)]
        );
    }
}
