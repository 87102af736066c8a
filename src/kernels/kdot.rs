//! Scalar kernels of the K-quant family (Q5_0, Q5_1, IQ4_NL with Q8_0/Q8_1 activations; Q2_K,
//! Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS with Q8_K activations, as llama.cpp pairs them in ggml-cpu's
//! `type_traits_cpu[].vec_dot_type`), and the Q8_K activation quantizer.
//!
//! Arithmetic of one output (every path — scalar, unpacked, packed, AVX2, AVX-512 — computes
//! exactly this, so results do not depend on the level, the row split or the batch): with each
//! weight block decoded to `value[i] = (d * sc[s]) * q[i] - (dmin * m[s])`
//! (`quant::kquants::Decoded`) and the activation block `a[i] * da`,
//!
//! * `sumi = Σ_s sc[s] * Σ_{i in s} q[i] * a[i]` and `summ = Σ_s m[s] * Σ_{i in s} a[i]`, exact in
//!   i32 (at most 256 * 63 * 127 * 127 in magnitude);
//! * `acc = fma(f32(sumi), d * da, acc)`, then for the types with mins
//!   `acc = fma(f32(summ), -(dmin * da), acc)`, and for Q5_1 `acc = fma(m, s_a, acc)` (Q4_1's
//!   rule, `s_a` the Q8_1 block sum times scale);
//! * blocks in order, `acc` starting at 0.

use crate::quant::kquants::{decode, Decoded};
use crate::quant::scale_search::signed_absmax;
use crate::quant::{WeightType, QK, QK_K};

/// Quantizes `x` (a multiple of 256 values) per 256-block like ggml's `quantize_row_q8_K_ref`
/// (which every x86 build uses): `max` the value of largest magnitude (first on ties),
/// `iscale = -127 / max`, `qs = min(127, round_half_even(iscale * x))`, `d = 1 / iscale` (f32),
/// `bsums[j]` the sum of `qs` over values `16j..16j+16`; an all-zero block gets `d = 0` and zero
/// codes. Non-finite inputs (not meaningful activations) give NaN -> 0 codes, clamped to ±127,
/// never a panic.
pub fn quantize_acts_k(x: &[f32], qs: &mut [i8], d: &mut [f32], bsums: &mut [i16]) {
    for (b, xb) in x.chunks_exact(QK_K).enumerate() {
        let (max, amax) = signed_absmax(xb);
        let q = &mut qs[b * QK_K..(b + 1) * QK_K];
        if amax == 0.0 {
            d[b] = 0.0;
            q.fill(0);
            bsums[b * 16..(b + 1) * 16].fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        for (o, &v) in q.iter_mut().zip(xb) {
            *o = (iscale * v).round_ties_even().clamp(-127.0, 127.0) as i8;
        }
        for (j, s) in bsums[b * 16..(b + 1) * 16].iter_mut().enumerate() {
            *s = q[16 * j..16 * j + 16].iter().map(|&v| v as i16).sum();
        }
        d[b] = 1.0 / iscale;
    }
}

/// The activation side of one dot product.
#[derive(Clone, Copy, Debug)]
pub enum ActRow<'a> {
    /// Q8_0 / Q8_1 per 32 values: codes, scales, scaled sums (`s` may be empty unless Q5_1).
    Q8 {
        /// Codes.
        qs: &'a [i8],
        /// Scales.
        d: &'a [f32],
        /// Block sums times scale.
        s: &'a [f32],
    },
    /// Q8_K per 256 values: codes, scales, sums per 16.
    Q8K {
        /// Codes.
        qs: &'a [i8],
        /// Scales.
        d: &'a [f32],
        /// Sums per 16 values.
        bsums: &'a [i16],
    },
}

/// The integer parts `(sumi, summ)` of one decoded block with activation codes `a`.
#[inline]
pub fn block_sums(dec: &Decoded, a: &[i8]) -> (i32, i32) {
    let (mut sumi, mut summ) = (0i32, 0i32);
    for s in 0..dec.n / dec.sub {
        let r = s * dec.sub..(s + 1) * dec.sub;
        let dot: i32 = dec.q[r.clone()]
            .iter()
            .zip(&a[r.clone()])
            .map(|(&q, &v)| q as i32 * v as i32)
            .sum();
        sumi += dec.sc[s] * dot;
        if dec.has_min {
            let asum: i32 = a[r].iter().map(|&v| v as i32).sum();
            summ += dec.m[s] * asum;
        }
    }
    (sumi, summ)
}

/// One block's step of the accumulation (module documentation). `s_a` is used by Q5_1 only.
#[inline(always)]
pub fn combine(acc: f32, dec: &Decoded, sumi: i32, summ: i32, da: f32, s_a: f32) -> f32 {
    let mut acc = (sumi as f32).mul_add(dec.d * da, acc);
    if dec.has_min {
        acc = (summ as f32).mul_add(-(dec.dmin * da), acc);
    }
    if let Some(m) = dec.add_min {
        acc = m.mul_add(s_a, acc);
    }
    acc
}

/// Dot product of one weight row of `ty` (a K-quant family type) with its activations.
/// Panics if the activation form does not fit the type.
pub fn dot_row(ty: WeightType, w: &[u8], a: ActRow<'_>) -> f32 {
    let (bb, bl) = (ty.block_bytes(), ty.block_len());
    let mut dec = Decoded::default();
    let mut acc = 0f32;
    match a {
        ActRow::Q8 { qs, d, s } => {
            assert_eq!(bl, QK, "dot_row: {} takes Q8_K activations", ty.name());
            for (b, blk) in w.chunks_exact(bb).enumerate().take(qs.len() / QK) {
                decode(ty, blk, &mut dec);
                let (sumi, summ) = block_sums(&dec, &qs[b * QK..(b + 1) * QK]);
                let s_a = if dec.add_min.is_some() { s[b] } else { 0.0 };
                acc = combine(acc, &dec, sumi, summ, d[b], s_a);
            }
        }
        ActRow::Q8K { qs, d, .. } => {
            assert_eq!(bl, QK_K, "dot_row: {} takes Q8 activations", ty.name());
            for (b, blk) in w.chunks_exact(bb).enumerate().take(qs.len() / QK_K) {
                decode(ty, blk, &mut dec);
                let (sumi, summ) = block_sums(&dec, &qs[b * QK_K..(b + 1) * QK_K]);
                acc = combine(acc, &dec, sumi, summ, d[b], 0.0);
            }
        }
    }
    acc
}

#[cfg(test)]
#[path = "kdot_tests.rs"]
pub(crate) mod tests;
