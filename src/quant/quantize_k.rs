//! ggml's K-quant quantizers for 256-value super-blocks, bit for bit: the paths `llama-quantize`
//! takes without an importance matrix (`quantize_q{2,3,4,5,6}_K` with `quant_weights == NULL`,
//! i.e. `quantize_row_q{2,3,4,5,6}_K_ref` in `ggml-quants.c`).
//!
//! Byte layouts (`ggml-common.h`, f16 fields little-endian):
//! * Q2_K (84): `scales[16]` (low nibble scale, high nibble min), `qs[64]`, `d`, `dmin`.
//! * Q3_K (110): `hmask[32]`, `qs[64]`, `scales[12]` (16 six-bit scales), `d`.
//! * Q4_K (144): `d`, `dmin`, `scales[12]` (8 six-bit scales and mins), `qs[128]`.
//! * Q5_K (176): `d`, `dmin`, `scales[12]`, `qh[32]`, `qs[128]`.
//! * Q6_K (210): `ql[128]`, `qh[64]`, `scales[16]` (int8), `d`.
//!
//! See [`crate::quant::scale_search`] for the exactness rules the port follows.

use crate::quant::blocks::QK_K;
use crate::quant::kquants::scale_min_k4;
use crate::quant::reference::{f16_bits_to_f32, f32_to_f16_bits};
use crate::quant::scale_search::{
    make_q3_quants_rmse, make_qkx2_quants, make_qx_quants_rmse1, nearest_int, Qkx2Search,
    GROUP_MAX_EPS,
};

/// Bytes of a Q2_K block.
pub const Q2_K_BYTES: usize = 84;
/// Bytes of a Q3_K block.
pub const Q3_K_BYTES: usize = 110;
/// Bytes of a Q4_K block.
pub const Q4_K_BYTES: usize = 144;
/// Bytes of a Q5_K block.
pub const Q5_K_BYTES: usize = 176;
/// Bytes of a Q6_K block.
pub const Q6_K_BYTES: usize = 210;

/// f32 -> f16 (as `GGML_FP32_TO_FP16`) and back: the value the block stores.
#[inline]
fn f16_round(v: f32) -> (u16, f32) {
    let b = f32_to_f16_bits(v);
    (b, f16_bits_to_f32(b))
}

/// Packs 2-bit codes: byte `l` of each 32-byte group `j/128` holds codes `j+l`, `j+l+32`,
/// `j+l+64`, `j+l+96` at bit offsets 0, 2, 4, 6.
fn pack2(levels: &[u8; QK_K], qs: &mut [u8]) {
    for j in (0..QK_K).step_by(128) {
        for l in 0..32 {
            qs[j / 4 + l] = levels[j + l]
                | (levels[j + l + 32] << 2)
                | (levels[j + l + 64] << 4)
                | (levels[j + l + 96] << 6);
        }
    }
}

/// The sub-block search Q2_K and Q4_K/Q5_K share: for each of the `NB` sub-blocks of `N`
/// values, the weights `weigh` gives, then `make_qkx2_quants` (codes into `levels`). Returns the
/// scales, the mins and the largest of each.
fn search_sub_blocks<const N: usize, const NB: usize>(
    x: &[f32; QK_K],
    search: Qkx2Search,
    levels: &mut [u8; QK_K],
    weigh: impl Fn(&[f32], &mut [f32; N]),
) -> ([f32; NB], [f32; NB], f32, f32) {
    let mut aux = [0u8; N];
    let mut weights = [0f32; N];
    let mut mins = [0f32; NB];
    let mut scales = [0f32; NB];
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..NB {
        let xs = &x[N * j..N * j + N];
        weigh(xs, &mut weights);
        let (s, m) = make_qkx2_quants(
            search,
            xs,
            &weights,
            &mut levels[N * j..N * j + N],
            &mut aux,
        );
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    (scales, mins, max_scale, max_min)
}

/// Quantizes 256 values to one Q2_K block (`quantize_row_q2_K_ref`).
pub fn quantize_block_q2_k(x: &[f32; QK_K], out: &mut [u8; Q2_K_BYTES]) {
    const Q4SCALE: f32 = 15.0;
    let search = Qkx2Search {
        nmax: 3,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    let mut levels = [0u8; QK_K];
    let (scales, mins, max_scale, max_min) =
        search_sub_blocks::<16, 16>(x, search, &mut levels, |xs, weights| {
            for (w, v) in weights.iter_mut().zip(xs) {
                *w = v.abs();
            }
        });
    let mut sc = [0u8; 16];
    let d = if max_scale > 0.0 {
        let iscale = Q4SCALE / max_scale;
        for j in 0..16 {
            sc[j] = nearest_int(iscale * scales[j]) as u8;
        }
        f16_round(max_scale / Q4SCALE)
    } else {
        f16_round(0.0)
    };
    let dmin = if max_min > 0.0 {
        let iscale = Q4SCALE / max_min;
        for j in 0..16 {
            let l = nearest_int(iscale * mins[j]);
            sc[j] |= l.wrapping_shl(4) as u8;
        }
        f16_round(max_min / Q4SCALE)
    } else {
        f16_round(0.0)
    };
    for j in 0..16 {
        let dj = d.1 * (sc[j] & 0xf) as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin.1 * (sc[j] >> 4) as f32;
        for ii in 0..16 {
            let l = nearest_int((x[16 * j + ii] + dm) / dj).clamp(0, 3);
            levels[16 * j + ii] = l as u8;
        }
    }
    out[..16].copy_from_slice(&sc);
    pack2(&levels, &mut out[16..80]);
    out[80..82].copy_from_slice(&d.0.to_le_bytes());
    out[82..84].copy_from_slice(&dmin.0.to_le_bytes());
}

/// Quantizes 256 values to one Q3_K block (`quantize_row_q3_K_ref`).
pub fn quantize_block_q3_k(x: &[f32; QK_K], out: &mut [u8; Q3_K_BYTES]) {
    let mut levels = [0i8; QK_K];
    let mut scales = [0f32; 16];
    let mut max_scale = 0.0f32;
    let mut amax = 0.0f32;
    for j in 0..16 {
        scales[j] = make_q3_quants_rmse(4, &x[16 * j..16 * j + 16], &mut levels[16 * j..]);
        let scale = scales[j].abs();
        if scale > amax {
            amax = scale;
            max_scale = scales[j];
        }
    }
    let mut sc = [0u8; 12];
    let d = if max_scale != 0.0 {
        let iscale = -32.0f32 / max_scale;
        for j in 0..16 {
            // int8_t l = nearest_int(...): the int is truncated to 8 bits, then clamped.
            let l = nearest_int(iscale * scales[j]) as i8;
            let l = (l.clamp(-32, 31) + 32) as u8;
            if j < 8 {
                sc[j] = l & 0xf;
            } else {
                sc[j - 8] |= (l & 0xf) << 4;
            }
            sc[j % 4 + 8] |= (l >> 4) << (2 * (j / 4));
        }
        f16_round(1.0 / iscale)
    } else {
        f16_round(0.0)
    };
    for j in 0..16 {
        let lo = if j < 8 { sc[j] & 0xf } else { sc[j - 8] >> 4 };
        let s = (lo | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) as i32 - 32;
        let dj = d.1 * s as f32;
        if dj == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let l = nearest_int(x[16 * j + ii] / dj).clamp(-4, 3);
            levels[16 * j + ii] = (l + 4) as i8;
        }
    }
    let mut hmask = [0u8; 32];
    let mut ul = [0u8; QK_K];
    let mut m = 0;
    let mut hm = 1u8;
    for j in 0..QK_K {
        let mut l = levels[j] as u8;
        if l > 3 {
            hmask[m] |= hm;
            l -= 4;
        }
        ul[j] = l;
        m += 1;
        if m == QK_K / 8 {
            m = 0;
            hm = hm.wrapping_shl(1);
        }
    }
    out[..32].copy_from_slice(&hmask);
    pack2(&ul, &mut out[32..96]);
    out[96..108].copy_from_slice(&sc);
    out[108..110].copy_from_slice(&d.0.to_le_bytes());
}

/// The common part of Q4_K and Q5_K: per 32-value sub-block scale/min search, the 6-bit
/// scales, and the final codes `0..=nmax`. Returns `(d bits, dmin bits, scales, levels)`.
fn quantize_scales_mins_k(x: &[f32; QK_K], search: Qkx2Search) -> (u16, u16, [u8; 12], [u8; QK_K]) {
    let mut levels = [0u8; QK_K];
    let (scales, mins, max_scale, max_min) =
        search_sub_blocks::<32, 8>(x, search, &mut levels, |xs, weights| {
            let mut sum_x2 = 0.0f32;
            for &v in xs {
                sum_x2 += v * v;
            }
            let av_x = (sum_x2 / 32.0).sqrt();
            for (w, v) in weights.iter_mut().zip(xs) {
                *w = av_x + v.abs();
            }
        });
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut sc = [0u8; 12];
    for j in 0..8 {
        // uint8_t ls = nearest_int(...): truncated to 8 bits, then MIN(63, ls)
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
            sc[j - 4] |= (ls >> 4) << 6;
            sc[j] |= (lm >> 4) << 6;
        }
    }
    let d = f16_round(max_scale / 63.0);
    let dmin = f16_round(max_min / 63.0);
    for j in 0..8 {
        let (s, m) = scale_min_k4(j, &sc);
        let dj = d.1 * s as f32;
        if dj == 0.0 {
            continue;
        }
        let dm = dmin.1 * m as f32;
        for ii in 0..32 {
            let l = nearest_int((x[32 * j + ii] + dm) / dj).clamp(0, search.nmax);
            levels[32 * j + ii] = l as u8;
        }
    }
    (d.0, dmin.0, sc, levels)
}

/// Quantizes 256 values to one Q4_K block (`quantize_row_q4_K_ref`).
pub fn quantize_block_q4_k(x: &[f32; QK_K], out: &mut [u8; Q4_K_BYTES]) {
    let search = Qkx2Search {
        nmax: 15,
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };
    let (d, dmin, sc, levels) = quantize_scales_mins_k(x, search);
    out[..2].copy_from_slice(&d.to_le_bytes());
    out[2..4].copy_from_slice(&dmin.to_le_bytes());
    out[4..16].copy_from_slice(&sc);
    let qs = &mut out[16..];
    for (g, j) in (0..QK_K).step_by(64).enumerate() {
        for l in 0..32 {
            qs[32 * g + l] = levels[j + l] | (levels[j + l + 32] << 4);
        }
    }
}

/// Quantizes 256 values to one Q5_K block (`quantize_row_q5_K_ref`).
pub fn quantize_block_q5_k(x: &[f32; QK_K], out: &mut [u8; Q5_K_BYTES]) {
    let search = Qkx2Search {
        nmax: 31,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    let (d, dmin, sc, levels) = quantize_scales_mins_k(x, search);
    out[..2].copy_from_slice(&d.to_le_bytes());
    out[2..4].copy_from_slice(&dmin.to_le_bytes());
    out[4..16].copy_from_slice(&sc);
    let mut qh = [0u8; 32];
    let qs = &mut out[48..];
    let (mut m1, mut m2) = (1u8, 2u8);
    for (g, n) in (0..QK_K).step_by(64).enumerate() {
        for j in 0..32 {
            let mut l1 = levels[n + j];
            if l1 > 15 {
                l1 -= 16;
                qh[j] |= m1;
            }
            let mut l2 = levels[n + j + 32];
            if l2 > 15 {
                l2 -= 16;
                qh[j] |= m2;
            }
            qs[32 * g + j] = l1 | (l2 << 4);
        }
        m1 = m1.wrapping_shl(2);
        m2 = m2.wrapping_shl(2);
    }
    out[16..48].copy_from_slice(&qh);
}

/// Quantizes 256 values to one Q6_K block (`quantize_row_q6_K_ref`).
pub fn quantize_block_q6_k(x: &[f32; QK_K], out: &mut [u8; Q6_K_BYTES]) {
    let mut levels = [0i8; QK_K];
    let mut scales = [0f32; 16];
    let mut max_scale = 0.0f32;
    let mut max_abs_scale = 0.0f32;
    for ib in 0..16 {
        let s = make_qx_quants_rmse1(32, &x[16 * ib..16 * ib + 16], &mut levels[16 * ib..]);
        scales[ib] = s;
        let a = s.abs();
        if a > max_abs_scale {
            max_abs_scale = a;
            max_scale = s;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        out.fill(0);
        return;
    }
    let iscale = -128.0f32 / max_scale;
    let d = f16_round(1.0 / iscale);
    let mut sc = [0i8; 16];
    for ib in 0..16 {
        // int8_t = MIN(127, nearest_int(...)): truncated to 8 bits
        sc[ib] = nearest_int(iscale * scales[ib]).min(127) as i8;
    }
    for j in 0..16 {
        let dj = d.1 * sc[j] as f32;
        if dj == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let l = nearest_int(x[16 * j + ii] / dj).clamp(-32, 31);
            levels[16 * j + ii] = (l + 32) as i8;
        }
    }
    let (ql, rest) = out.split_at_mut(128);
    let (qh, rest) = rest.split_at_mut(64);
    for (g, j) in (0..QK_K).step_by(128).enumerate() {
        for l in 0..32 {
            let q = |k: usize| levels[j + l + k] as u8;
            ql[64 * g + l] = (q(0) & 0xf) | ((q(64) & 0xf) << 4);
            ql[64 * g + l + 32] = (q(32) & 0xf) | ((q(96) & 0xf) << 4);
            qh[32 * g + l] =
                (q(0) >> 4) | ((q(32) >> 4) << 2) | ((q(64) >> 4) << 4) | ((q(96) >> 4) << 6);
        }
    }
    for (o, s) in rest[..16].iter_mut().zip(sc) {
        *o = s as u8;
    }
    rest[16..18].copy_from_slice(&d.0.to_le_bytes());
}
