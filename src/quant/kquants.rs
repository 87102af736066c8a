//! The block types issue 12 added — Q5_0, Q5_1, IQ4_NL (32 values) and Q2_K, Q3_K, Q4_K, Q5_K,
//! Q6_K, IQ4_XS (256-value super-blocks) — decoded into one common integer form, and their
//! dequantization, exact to ggml's `dequantize_row_*` (`ggml-quants.c`).
//!
//! Every one of these blocks is, once its bit fields are unpacked ([`decode`]),
//! `value[i] = (d * sc[s]) * q[i] - (dmin * m[s])` with `s = i / sub` the sub-block of value `i`:
//! small signed integer codes `q`, integer sub-block scales `sc` and (for the types with a
//! minimum) integer sub-block mins `m`, and one or two f16 super-scales `d`, `dmin`. The kernels
//! use the same decoded form: per block, the exact integer dots `Σ_s sc[s] Σ_i q[i] a[i]` and
//! `Σ_s m[s] Σ_i a[i]` with the quantized activations, then the scales (see `kernels::scalar`).
//!
//! Q5_1 is the exception: its minimum is an f16 value `m` added as is (`value = q * d + m`), as
//! for Q4_1; [`Decoded::add_min`] holds it.

#![allow(clippy::needless_range_loop)] // bit fields unpacked by index, as ggml-common.h lays them out

use super::blocks::{WeightType, QK, QK_K};
use super::reference::f16_bits_to_f32;

/// IQ4_NL / IQ4_XS code book (`kvalues_iq4nl` in ggml-common.h).
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// One block in the common form (see the module documentation).
#[derive(Clone, Debug)]
pub struct Decoded {
    /// Values in the block (32 or 256).
    pub n: usize,
    /// Values per sub-block (16 or 32; `n` for the 32-value types).
    pub sub: usize,
    /// Signed codes, `n` of them.
    pub q: [i8; QK_K],
    /// Sub-block scales, `n / sub` of them.
    pub sc: [i32; 16],
    /// Sub-block mins (zero for types without), `n / sub` of them.
    pub m: [i32; 16],
    /// Super-scale.
    pub d: f32,
    /// Super-scale of the mins (0 for types without).
    pub dmin: f32,
    /// Whether the type has integer mins (`dmin * m` subtracted).
    pub has_min: bool,
    /// Q5_1's additive f16 minimum, if the type is Q5_1.
    pub add_min: Option<f32>,
}

impl Default for Decoded {
    fn default() -> Self {
        Decoded {
            n: 0,
            sub: 0,
            q: [0; QK_K],
            sc: [0; 16],
            m: [0; 16],
            d: 0.0,
            dmin: 0.0,
            has_min: false,
            add_min: None,
        }
    }
}

#[inline(always)]
fn f16(b: &[u8], off: usize) -> f32 {
    f16_bits_to_f32(u16::from_le_bytes([b[off], b[off + 1]]))
}

/// Scale and min of sub-block `j` (0..8) of a Q4_K / Q5_K block's 12 scale bytes
/// (`get_scale_min_k4`).
#[inline(always)]
pub fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// The 16 six-bit scales of a Q3_K block (0..64, before the `- 32`) from its 12 scale bytes.
#[inline(always)]
pub fn q3k_scales(s: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for j in 0..16 {
        let low = if j < 8 { s[j] & 15 } else { s[j - 8] >> 4 };
        let high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = low | (high << 4);
    }
    out
}

/// Byte offsets of the f16 fields (`d`, `dmin` / `m`) in one block of `ty` (empty for the types
/// of other modules).
pub const fn f16_offsets(ty: WeightType) -> &'static [usize] {
    match ty {
        WeightType::Q5_0 | WeightType::IQ4_NL | WeightType::IQ4_XS => &[0],
        WeightType::Q5_1 | WeightType::Q4_K | WeightType::Q5_K => &[0, 2],
        WeightType::Q2_K => &[80, 82],
        WeightType::Q3_K => &[108],
        WeightType::Q6_K => &[208],
        _ => &[],
    }
}

/// Whether [`decode`] handles `ty`.
pub const fn handles(ty: WeightType) -> bool {
    ty.is_kquant_family()
}

/// Unpacks one block of `ty` (`ty.block_bytes()` bytes) into `out`. Panics if `ty` is not one of
/// this module's types or `blk` is too short.
pub fn decode(ty: WeightType, blk: &[u8], out: &mut Decoded) {
    let blk = &blk[..ty.block_bytes()];
    out.has_min = false;
    out.add_min = None;
    out.dmin = 0.0;
    match ty {
        WeightType::Q5_0 | WeightType::Q5_1 => {
            let (h0, bias) = if ty == WeightType::Q5_0 {
                (2, 16)
            } else {
                (4, 0)
            };
            out.n = QK;
            out.sub = QK;
            out.d = f16(blk, 0);
            if ty == WeightType::Q5_1 {
                out.add_min = Some(f16(blk, 2));
            }
            let qh = u32::from_le_bytes([blk[h0], blk[h0 + 1], blk[h0 + 2], blk[h0 + 3]]);
            let qs = &blk[h0 + 4..h0 + 20];
            for j in 0..16 {
                let lo = (qs[j] & 15) as i32 | ((((qh >> j) & 1) << 4) as i32);
                let hi = (qs[j] >> 4) as i32 | ((((qh >> (j + 16)) & 1) << 4) as i32);
                out.q[j] = (lo - bias) as i8;
                out.q[j + 16] = (hi - bias) as i8;
            }
            out.sc[0] = 1;
            out.m[0] = 0;
        }
        WeightType::IQ4_NL => {
            out.n = QK;
            out.sub = QK;
            out.d = f16(blk, 0);
            for j in 0..16 {
                out.q[j] = KVALUES_IQ4NL[(blk[2 + j] & 15) as usize];
                out.q[j + 16] = KVALUES_IQ4NL[(blk[2 + j] >> 4) as usize];
            }
            out.sc[0] = 1;
            out.m[0] = 0;
        }
        WeightType::Q2_K => {
            // scales[16], qs[64], d, dmin
            out.n = QK_K;
            out.sub = 16;
            out.has_min = true;
            out.d = f16(blk, 80);
            out.dmin = f16(blk, 82);
            for s in 0..16 {
                out.sc[s] = (blk[s] & 15) as i32;
                out.m[s] = (blk[s] >> 4) as i32;
            }
            let qs = &blk[16..80];
            // values 128h + 32j + l (l < 32): bits 2j of qs[32h + l]
            for h in 0..2 {
                for j in 0..4 {
                    for l in 0..32 {
                        out.q[128 * h + 32 * j + l] = ((qs[32 * h + l] >> (2 * j)) & 3) as i8;
                    }
                }
            }
        }
        WeightType::Q3_K => {
            // hmask[32], qs[64], scales[12], d
            out.n = QK_K;
            out.sub = 16;
            out.d = f16(blk, 108);
            let sc = q3k_scales(&blk[96..108]);
            for s in 0..16 {
                out.sc[s] = sc[s] as i32 - 32;
                out.m[s] = 0;
            }
            let (hm, qs) = (&blk[0..32], &blk[32..96]);
            for h in 0..2 {
                for j in 0..4 {
                    let bit = 4 * h + j;
                    for l in 0..32 {
                        let low = ((qs[32 * h + l] >> (2 * j)) & 3) as i8;
                        let high = (hm[l] >> bit) & 1;
                        out.q[128 * h + 32 * j + l] = low - if high != 0 { 0 } else { 4 };
                    }
                }
            }
        }
        WeightType::Q4_K | WeightType::Q5_K => {
            // d, dmin, scales[12], (qh[32],) qs[128]
            out.n = QK_K;
            out.sub = 32;
            out.has_min = true;
            out.d = f16(blk, 0);
            out.dmin = f16(blk, 2);
            let scales = &blk[4..16];
            for s in 0..8 {
                let (sc, m) = scale_min_k4(s, scales);
                out.sc[s] = sc as i32;
                out.m[s] = m as i32;
            }
            let five = ty == WeightType::Q5_K;
            let (qh, qs) = if five {
                (&blk[16..48], &blk[48..176])
            } else {
                (&blk[0..0], &blk[16..144])
            };
            // values 64c + l: low nibble of qs[32c + l]; 64c + 32 + l: high nibble. Q5_K's 5th
            // bits: bit 2c of qh[l], bit 2c+1 of qh[l].
            for c in 0..4 {
                for l in 0..32 {
                    let b = qs[32 * c + l];
                    let (mut lo, mut hi) = ((b & 15) as i8, (b >> 4) as i8);
                    if five {
                        lo += (((qh[l] >> (2 * c)) & 1) << 4) as i8;
                        hi += (((qh[l] >> (2 * c + 1)) & 1) << 4) as i8;
                    }
                    out.q[64 * c + l] = lo;
                    out.q[64 * c + 32 + l] = hi;
                }
            }
        }
        WeightType::Q6_K => {
            // ql[128], qh[64], scales[16] (int8), d
            out.n = QK_K;
            out.sub = 16;
            out.d = f16(blk, 208);
            for s in 0..16 {
                out.sc[s] = blk[192 + s] as i8 as i32;
                out.m[s] = 0;
            }
            let (ql, qh) = (&blk[0..128], &blk[128..192]);
            for h in 0..2 {
                let (ql, qh) = (&ql[64 * h..], &qh[32 * h..]);
                let y = &mut out.q[128 * h..];
                for l in 0..32 {
                    let q1 = (ql[l] & 15) | ((qh[l] & 3) << 4);
                    let q2 = (ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4);
                    let q3 = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                    let q4 = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
                    y[l] = q1 as i8 - 32;
                    y[l + 32] = q2 as i8 - 32;
                    y[l + 64] = q3 as i8 - 32;
                    y[l + 96] = q4 as i8 - 32;
                }
            }
        }
        WeightType::IQ4_XS => {
            // d, scales_h (u16), scales_l[4], qs[128]
            out.n = QK_K;
            out.sub = 32;
            out.d = f16(blk, 0);
            let sh = u16::from_le_bytes([blk[2], blk[3]]);
            let sl = &blk[4..8];
            for s in 0..8 {
                let ls = ((sl[s / 2] >> (4 * (s % 2))) & 15) as i32
                    | ((((sh >> (2 * s)) & 3) as i32) << 4);
                out.sc[s] = ls - 32;
                out.m[s] = 0;
            }
            let qs = &blk[8..136];
            for s in 0..8 {
                for j in 0..16 {
                    let b = qs[16 * s + j];
                    out.q[32 * s + j] = KVALUES_IQ4NL[(b & 15) as usize];
                    out.q[32 * s + j + 16] = KVALUES_IQ4NL[(b >> 4) as usize];
                }
            }
        }
        other => panic!(
            "kquants::decode: {} is not a K-quant family type",
            other.name()
        ),
    }
}

/// Dequantizes a decoded block into `y[..dec.n]`, in ggml's float order: `dl = d * sc`,
/// `ml = dmin * m`, `y = dl * q - ml` (without the subtraction for types without mins);
/// Q5_0 / IQ4_NL `q * d`; Q5_1 `q * d + m`.
#[inline]
pub fn dequantize_decoded(dec: &Decoded, y: &mut [f32]) {
    let y = &mut y[..dec.n];
    if let Some(m) = dec.add_min {
        for (o, &q) in y.iter_mut().zip(&dec.q[..dec.n]) {
            *o = q as f32 * dec.d + m;
        }
        return;
    }
    for (s, ys) in y.chunks_exact_mut(dec.sub).enumerate() {
        let qs = &dec.q[s * dec.sub..(s + 1) * dec.sub];
        // sc = 1 for the 32-value types: d * 1 = d exactly.
        let dl = dec.d * dec.sc[s] as f32;
        if dec.has_min {
            let ml = dec.dmin * dec.m[s] as f32;
            for (o, &q) in ys.iter_mut().zip(qs) {
                *o = dl * q as f32 - ml;
            }
        } else {
            for (o, &q) in ys.iter_mut().zip(qs) {
                *o = dl * q as f32;
            }
        }
    }
}

/// Dequantizes whole blocks of `ty` (`src` a whole number of blocks, `dst` their values).
/// Panics if the lengths do not match.
pub fn dequantize_blocks(ty: WeightType, src: &[u8], dst: &mut [f32]) {
    let (bb, bl) = (ty.block_bytes(), ty.block_len());
    assert!(
        src.len().is_multiple_of(bb) && dst.len() == src.len() / bb * bl,
        "dequantize_blocks: {} bytes, {} values of {}",
        src.len(),
        dst.len(),
        ty.name()
    );
    let mut dec = Decoded::default();
    for (b, y) in src.chunks_exact(bb).zip(dst.chunks_exact_mut(bl)) {
        decode(ty, b, &mut dec);
        dequantize_decoded(&dec, y);
    }
}

#[cfg(test)]
#[path = "kquants_tests.rs"]
pub(crate) mod tests;
