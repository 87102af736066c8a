//! Code-point classes, lenient UTF-8 decoding and the GPT-2 byte-to-character mapping.

use std::sync::OnceLock;

use super::unicode_data::CLASS_RANGES;

/// General-category class of a code point (see `scripts/gen_unicode_tables.py`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Class {
    /// Unassigned (Cn), or beyond U+10FFFF.
    Undefined = 0,
    /// `\p{N}`
    Number = 1,
    /// `\p{L}`
    Letter = 2,
    /// `\p{Z}`
    Separator = 3,
    /// `\p{M}`
    Mark = 4,
    /// `\p{P}`
    Punctuation = 5,
    /// `\p{S}`
    Symbol = 6,
    /// `\p{C}` other than Cn
    Control = 7,
}

impl Class {
    fn from_u8(v: u8) -> Class {
        match v {
            1 => Class::Number,
            2 => Class::Letter,
            3 => Class::Separator,
            4 => Class::Mark,
            5 => Class::Punctuation,
            6 => Class::Symbol,
            7 => Class::Control,
            _ => Class::Undefined,
        }
    }
}

/// Per-code-point facts the pre-tokenizers test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flags {
    /// General-category class.
    pub class: Class,
    /// In the White_Space set.
    pub whitespace: bool,
}

impl Flags {
    /// `\p{L}`
    #[inline]
    pub fn is_letter(self) -> bool {
        self.class == Class::Letter
    }
    /// `\p{N}`
    #[inline]
    pub fn is_number(self) -> bool {
        self.class == Class::Number
    }
    /// `\p{P}`
    #[inline]
    pub fn is_punctuation(self) -> bool {
        self.class == Class::Punctuation
    }
}

/// The White_Space property (the set `\s` matches in Unicode-aware engines).
#[inline]
pub fn is_whitespace(cp: u32) -> bool {
    matches!(
        cp,
        0x09..=0x0D
            | 0x20
            | 0x85
            | 0xA0
            | 0x1680
            | 0x2000..=0x200A
            | 0x2028
            | 0x2029
            | 0x202F
            | 0x205F
            | 0x3000
    )
}

fn class_slow(cp: u32) -> Class {
    let i = CLASS_RANGES.partition_point(|&(start, _)| start <= cp);
    if i == 0 || cp >= 0x11_0000 {
        return Class::Undefined;
    }
    Class::from_u8(CLASS_RANGES[i - 1].1)
}

/// The class of every code point of the Basic Multilingual Plane, built on first use.
fn bmp_table() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = vec![0u8; 0x1_0000];
        for (i, w) in CLASS_RANGES.windows(2).enumerate() {
            let _ = i;
            let (start, c) = w[0];
            let end = w[1].0.min(0x1_0000);
            if start >= 0x1_0000 {
                break;
            }
            t[start as usize..end as usize].fill(c);
        }
        t
    })
}

/// The class of a code point.
#[inline]
pub fn class(cp: u32) -> Class {
    if cp < 0x1_0000 {
        Class::from_u8(bmp_table()[cp as usize])
    } else {
        class_slow(cp)
    }
}

/// The flags of a code point.
#[inline]
pub fn flags(cp: u32) -> Flags {
    Flags {
        class: class(cp),
        whitespace: is_whitespace(cp),
    }
}

/// Lower-cases ASCII letters (all the pre-tokenizers' case-insensitive contractions need).
#[inline]
pub fn ascii_lower(cp: u32) -> u32 {
    if (b'A' as u32..=b'Z' as u32).contains(&cp) {
        cp + 32
    } else {
        cp
    }
}

/// Length of the UTF-8 sequence a lead byte announces (1 for continuation bytes), as llama.cpp
/// splits text into characters.
#[inline]
pub fn utf8_len(lead: u8) -> usize {
    match lead >> 4 {
        0xC | 0xD => 2,
        0xE => 3,
        0xF => 4,
        _ => 1,
    }
}

/// Decodes UTF-8 leniently: each malformed sequence becomes U+FFFD and consumes one byte (as
/// llama.cpp does). Overlong forms and surrogates are decoded as written.
pub fn decode_utf8_lenient(s: &[u8]) -> Vec<u32> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    let cont = |b: Option<&u8>| matches!(b, Some(&c) if c & 0xC0 == 0x80);
    while i < s.len() {
        let b0 = s[i];
        if b0 < 0x80 {
            out.push(b0 as u32);
            i += 1;
        } else if b0 & 0x40 == 0 {
            out.push(0xFFFD);
            i += 1;
        } else if b0 & 0x20 == 0 {
            if cont(s.get(i + 1)) {
                out.push(((b0 as u32 & 0x1F) << 6) | (s[i + 1] as u32 & 0x3F));
                i += 2;
            } else {
                out.push(0xFFFD);
                i += 1;
            }
        } else if b0 & 0x10 == 0 {
            if cont(s.get(i + 1)) && cont(s.get(i + 2)) {
                out.push(
                    ((b0 as u32 & 0x0F) << 12)
                        | ((s[i + 1] as u32 & 0x3F) << 6)
                        | (s[i + 2] as u32 & 0x3F),
                );
                i += 3;
            } else {
                out.push(0xFFFD);
                i += 1;
            }
        } else if b0 & 0x08 == 0 {
            if cont(s.get(i + 1)) && cont(s.get(i + 2)) && cont(s.get(i + 3)) {
                out.push(
                    ((b0 as u32 & 0x07) << 18)
                        | ((s[i + 1] as u32 & 0x3F) << 12)
                        | ((s[i + 2] as u32 & 0x3F) << 6)
                        | (s[i + 3] as u32 & 0x3F),
                );
                i += 4;
            } else {
                out.push(0xFFFD);
                i += 1;
            }
        } else {
            out.push(0xFFFD);
            i += 1;
        }
    }
    out
}

/// Appends the UTF-8 encoding of `cp` (code points up to 0x1FFFFF, surrogates included).
#[inline]
pub fn push_utf8(out: &mut Vec<u8>, cp: u32) {
    if cp < 0x80 {
        out.push(cp as u8);
    } else if cp < 0x800 {
        out.extend_from_slice(&[0xC0 | (cp >> 6) as u8, 0x80 | (cp & 0x3F) as u8]);
    } else if cp < 0x1_0000 {
        out.extend_from_slice(&[
            0xE0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    } else {
        out.extend_from_slice(&[
            0xF0 | ((cp >> 18) & 0x07) as u8,
            0x80 | ((cp >> 12) & 0x3F) as u8,
            0x80 | ((cp >> 6) & 0x3F) as u8,
            0x80 | (cp & 0x3F) as u8,
        ]);
    }
}

/// GPT-2's reversible byte-to-character mapping: printable Latin-1 bytes map to themselves, the
/// other 68 bytes to U+0100.. in byte order. Returns the code point for each byte.
pub fn byte_to_char_table() -> &'static [u32; 256] {
    static T: OnceLock<[u32; 256]> = OnceLock::new();
    T.get_or_init(|| {
        let mut t = [0u32; 256];
        let mut n = 0;
        for (b, slot) in t.iter_mut().enumerate() {
            let printable = (0x21..=0x7E).contains(&b)
                || (0xA1..=0xAC).contains(&b)
                || (0xAE..=0xFF).contains(&b);
            *slot = if printable {
                b as u32
            } else {
                n += 1;
                255 + n
            };
        }
        t
    })
}

/// The inverse of [`byte_to_char_table`]: the byte a GPT-2 character stands for.
pub fn char_to_byte(cp: u32) -> Option<u8> {
    match cp {
        0x21..=0x7E | 0xA1..=0xAC | 0xAE..=0xFF => Some(cp as u8),
        0x100..=0x143 => {
            let k = cp - 0x100;
            // The k-th non-printable byte.
            let mut seen = 0;
            for b in 0u32..256 {
                let printable =
                    (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
                if !printable {
                    if seen == k {
                        return Some(b as u8);
                    }
                    seen += 1;
                }
            }
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_of_known_code_points() {
        assert_eq!(class('a' as u32), Class::Letter);
        assert_eq!(class('7' as u32), Class::Number);
        assert_eq!(class(' ' as u32), Class::Separator);
        assert_eq!(class('!' as u32), Class::Punctuation);
        assert_eq!(class('$' as u32), Class::Symbol);
        assert_eq!(class(0x0301), Class::Mark);
        assert_eq!(class(0x4E2D), Class::Letter); // 中
        assert_eq!(class(0x1F600), Class::Symbol); // 😀
        assert_eq!(class(0x1FAE8), Class::Symbol); // Unicode 15.0
        assert_eq!(class(0x1FAE9), Class::Undefined); // Unicode 16.0: not yet
        assert_eq!(class(0x10FFFF), Class::Undefined);
        assert_eq!(class(0x110000), Class::Undefined);
        for cp in [0u32, 0x41, 0xFFFF, 0x1_0000, 0x2FFFF] {
            assert_eq!(class(cp), class_slow(cp));
        }
    }

    #[test]
    fn byte_mapping_round_trips() {
        let t = byte_to_char_table();
        assert_eq!(t[b' ' as usize], 0x120); // 'Ġ'
        assert_eq!(t[b'\n' as usize], 0x10A); // 'Ċ'
        assert_eq!(t[b'a' as usize], 'a' as u32);
        for b in 0..=255u8 {
            assert_eq!(char_to_byte(t[b as usize]), Some(b));
        }
    }

    #[test]
    fn lenient_decoding() {
        assert_eq!(
            decode_utf8_lenient("aé€😀".as_bytes()),
            vec![0x61, 0xE9, 0x20AC, 0x1F600]
        );
        assert_eq!(
            decode_utf8_lenient(&[0xFF, b'a', 0xC3]),
            vec![0xFFFD, 0x61, 0xFFFD]
        );
        assert_eq!(
            decode_utf8_lenient(&[0xE2, 0x82, b'x']),
            vec![0xFFFD, 0xFFFD, 0x78]
        );
    }
}
