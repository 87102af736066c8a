//! ggml's non-linear 4-bit quantizers, bit for bit: `quantize_iq4_nl` and `quantize_iq4_xs`
//! without an importance matrix (both go through `quantize_row_iq4_nl_impl` with `ntry = 7`
//! and weights `x^2`; this is what `llama-quantize` runs, not `quantize_row_iq4_nl_ref`, which
//! uses `ntry = -1`).
//!
//! Layouts (`ggml-common.h`): IQ4_NL (18 bytes) = f16 `d` + `qs[16]`; element `j < 16` is the
//! low nibble of `qs[j]`, element `j + 16` the high nibble; value = `d * KVALUES[code]`.
//! IQ4_XS (136 bytes, 256 values) = f16 `d`, u16 `scales_h`, `scales_l[4]`, `qs[128]`: eight
//! 32-value sub-blocks with 6-bit scales `ls` (low 4 bits in `scales_l`, nibble `ib % 2` of byte
//! `ib / 2`; high 2 bits at bit `2 * ib` of `scales_h`), value = `d * (ls - 32) * KVALUES[code]`.

use crate::quant::reference::f32_to_f16_bits;
use crate::quant::scale_search::{best_index_int8, nearest_int, signed_absmax, GROUP_MAX_EPS};

/// The 16 non-linear levels (`kvalues_iq4nl`).
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];
/// Bytes of an IQ4_NL block (32 values).
pub const IQ4_NL_BYTES: usize = 18;
/// Bytes of an IQ4_XS block (256 values).
pub const IQ4_XS_BYTES: usize = 136;

/// Candidate steps either side of the first scale (`ntry` in `quantize_iq4_nl`/`_xs`).
const NTRY: i32 = 7;

/// The scale search of one 32-value sub-block (the per-block part of
/// `quantize_row_iq4_nl_impl`): returns the scale and writes the first codes into `levels`
/// (left untouched for an all-zero block, whose scale is 0).
fn iq4_block_scale(xb: &[f32], levels: &mut [u8]) -> f32 {
    let values = &KVALUES_IQ4NL;
    let v0 = values[0] as f32;
    let (max, amax) = signed_absmax(xb);
    if amax < GROUP_MAX_EPS {
        return 0.0;
    }
    let mut d = -max / v0;
    let mut id = 1.0 / d;
    let mut sumqx = 0.0f32;
    let mut sumq2 = 0.0f32;
    for (j, &x) in xb.iter().enumerate() {
        let l = best_index_int8(values, id * x);
        levels[j] = l as u8;
        let q = values[l] as f32;
        let w = x * x;
        sumqx += w * q * x;
        sumq2 += w * q * q;
    }
    d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for itry in -NTRY..=NTRY {
        id = (itry + values[0] as i32) as f32 / max;
        sumqx = 0.0;
        sumq2 = 0.0;
        for &x in xb {
            let q = values[best_index_int8(values, id * x)] as f32;
            let w = x * x;
            sumqx += w * q * x;
            sumq2 += w * q * q;
        }
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    d
}

/// Packs 32 codes per 16 bytes (`q4[16*i + j] = L[32*i + j] | L[32*i + 16 + j] << 4`).
fn pack_nibbles(levels: &[u8], qs: &mut [u8]) {
    for (i, q) in qs.chunks_exact_mut(16).enumerate() {
        for j in 0..16 {
            q[j] = levels[32 * i + j] | (levels[32 * i + 16 + j] << 4);
        }
    }
}

/// Quantizes 32 values to one IQ4_NL block (`quantize_iq4_nl`, no importance matrix).
pub fn quantize_block_iq4_nl(x: &[f32; 32], out: &mut [u8; IQ4_NL_BYTES]) {
    let mut levels = [0u8; 32];
    let scale = iq4_block_scale(x, &mut levels);
    out[..2].copy_from_slice(&f32_to_f16_bits(scale).to_le_bytes());
    let id = if scale != 0.0 { 1.0 / scale } else { 0.0 };
    for (l, &v) in levels.iter_mut().zip(x) {
        *l = best_index_int8(&KVALUES_IQ4NL, id * v) as u8;
    }
    pack_nibbles(&levels, &mut out[2..]);
}

/// Quantizes 256 values to one IQ4_XS block (`quantize_iq4_xs`, no importance matrix).
pub fn quantize_block_iq4_xs(x: &[f32; 256], out: &mut [u8; IQ4_XS_BYTES]) {
    let mut levels = [0u8; 256];
    let mut scales = [0f32; 8];
    let mut max_scale = 0.0f32;
    let mut amax_scale = 0.0f32;
    for ib in 0..8 {
        let d = iq4_block_scale(
            &x[32 * ib..32 * ib + 32],
            &mut levels[32 * ib..32 * ib + 32],
        );
        scales[ib] = d;
        let a = d.abs();
        if a > amax_scale {
            amax_scale = a;
            max_scale = d;
        }
    }
    let d = -max_scale / 32.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut scales_h = 0u16;
    let mut scales_l = [0u8; 4];
    for ib in 0..8 {
        let l = nearest_int(id * scales[ib]).clamp(-32, 31);
        let dl = d * l as f32;
        let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
        for j in 32 * ib..32 * ib + 32 {
            levels[j] = best_index_int8(&KVALUES_IQ4NL, idl * x[j]) as u8;
        }
        let l = (l + 32) as u8;
        if ib % 2 == 0 {
            scales_l[ib / 2] = l & 0xf;
        } else {
            scales_l[ib / 2] |= (l & 0xf) << 4;
        }
        scales_h |= ((l >> 4) as u16) << (2 * (ib % 8));
    }
    out[..2].copy_from_slice(&f32_to_f16_bits(d).to_le_bytes());
    out[2..4].copy_from_slice(&scales_h.to_le_bytes());
    out[4..8].copy_from_slice(&scales_l);
    pack_nibbles(&levels, &mut out[8..]);
}
