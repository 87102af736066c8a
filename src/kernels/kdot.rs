//! Scalar kernels of the K-quant family (Q5_0, Q5_1, IQ4_NL with Q8_0/Q8_1 activations; Q2_K,
//! Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS with Q8_K activations, as llama.cpp pairs them in ggml-cpu's
//! `type_traits_cpu[].vec_dot_type`), and the Q8_K activation quantizer.
//!
//! qorus's Q8_K differs from ggml's by per-32 power-of-two sub-scales ([`quantize_acts_k`]):
//! sub-block `j` (32 values) of a 256-block holds codes at scale `d / 2^s_j`, and carries the
//! factor `f_j = 2^(3 - s_j)` (1, 2, 4 or 8; stored as its exponent `e_j = 3 - s_j`), so every
//! code is in the common unit `d / 8` once multiplied by `f_j`.
//!
//! Arithmetic of one output (every path — scalar, unpacked, packed, AVX2, AVX-512 — computes
//! exactly this, so results do not depend on the level, the row split or the batch): with each
//! weight block decoded to `value[i] = (d * sc[s]) * q[i] - (dmin * m[s])`
//! (`quant::kquants::Decoded`) and the activation block `a[i] * da`,
//!
//! * `sumi = Σ_s sc[s] * f_j(s) * Σ_{i in s} q[i] * a[i]` and
//!   `summ = Σ_s m[s] * f_j(s) * Σ_{i in s} a[i]` (`j(s)` the 32-value sub-block holding
//!   sub-block `s`; `f = 1` for Q8_0/Q8_1 activations), exact in i32;
//! * `da = d * 0.125` for Q8_K activations (`d` the 256-block's scale; exact: a power of two), the
//!   block's scale for Q8_0/Q8_1;
//! * `acc = fma(f32(sumi), d * da, acc)`, then for the types with mins
//!   `acc = fma(f32(summ), -(dmin * da), acc)`, and for Q5_1 `acc = fma(m, s_a, acc)` (Q4_1's
//!   rule, `s_a` the Q8_1 block sum times scale);
//! * blocks in order, `acc` starting at 0.
//!
//! Bounds (|a| <= 127 from the quantizers, f <= 8; the SIMD tiles work on unsigned codes
//! `c = q + bias` and take `bias * sc[s] * f * Σ a` back with the pre-scaled activation sums, so
//! their partial sums are bounded with the biased codes too). Per 256-block, `Σ |sc * f * q * a|`
//! is at most `256 * max|q| * max|sc| * 127 * 8`:
//!
//! | type | codes q (signed / as the tiles hold them) | sc | bound (signed; biased) |
//! | --- | --- | --- | --- |
//! | Q2_K | 0..3 | 0..15 | 1.2e7 |
//! | Q3_K | -4..3 / 0..7 (bias 4) | -32..31 | 3.3e7; 5.8e7 |
//! | Q4_K | 0..15 | 0..63 | 2.5e8 |
//! | Q5_K | 0..31 | 0..63 | 5.1e8 |
//! | Q6_K | -32..31 / 0..63 (bias 32) | -128..127 | 1.07e9; 256*63*128*127*8 = 2.097e9 |
//! | IQ4_XS | -127..113 / 1..241 (VNNI: +128) | -32..31 | 1.07e9; 256*241*32*127*8 = 2.01e9 |
//!
//! all below 2^31 = 2.147e9 (the biased-code sums only exist in the SIMD tiles, before the
//! correction is subtracted; the correction itself is at most `256 * bias * max|sc| * 127 * 8`:
//! Q6_K 1.07e9, IQ4_XS 1.07e9, Q3_K 3.3e7). `summ`: at most 256 * 63 * 127 * 8 = 1.6e7. The
//! pre-scaled sums per 16 are at most 16 * 127 * 8 = 16256 and the per-32 sums the tiles form
//! from them 32512, both i16; the i16 pair products of the corrections (`vpmaddwd` /
//! `vpdpwssd`: mins up to 63, or `bias * sc` up to 32 * 128 = 4096 for Q6_K and 128 * 32 for
//! IQ4_XS on VNNI, times a sum up to 32512) are at most 2 * 4096 * 32512 = 2.7e8 per pair. So
//! every integer step is exact (no wrapping) for any weight bits, given activation codes in
//! ±127 and exponents in 0..=3 (which `kernels::matmul` checks).

use crate::quant::kquants::{decode, Decoded};
use crate::quant::scale_search::signed_absmax;
use crate::quant::{WeightType, QK, QK_K};

/// Sub-block shift `s` (0..=3) of a 32-value sub-block whose largest scaled magnitude is
/// `v = |iscale| * amax_j` (f32): the largest `s` with `round_half_even(v * 2^s) <= 127`, i.e.
/// `v * 2^s < 127.5` (`v * 2^s` is exact, and `|fl(iscale * x)|` is at most `v` for every value
/// of the sub-block, rounding being monotonic). NaN gives 0.
#[inline]
pub fn sub_shift(v: f32) -> u32 {
    if v < 127.5 / 8.0 {
        3
    } else if v < 127.5 / 4.0 {
        2
    } else if v < 127.5 / 2.0 {
        1
    } else {
        0
    }
}

/// Quantizes `x` (a multiple of 256 values) per 256-block like ggml's `quantize_row_q8_K_ref`
/// (which every x86 build uses) for the scale: `max` the value of largest magnitude (first on
/// ties), `iscale = -127 / max`, `d = 1 / iscale` (f32); then per 32-value sub-block `j` the
/// shift `s_j` ([`sub_shift`] of `|iscale| * amax_j`) and the codes
/// `qs = clamp(round_half_even((iscale * x) * 2^s_j), ±127)` (the clamp only acts at `s_j = 0`,
/// as ggml's), `sh[j] = 3 - s_j` (the factor `f_j = 2^sh[j]` that brings the codes to the unit
/// `d / 8`), `bsums[h]` the sum of `qs` over values `16h..16h+16` times `f_j`. An all-zero block
/// gets `d = 0`, zero codes and `sh = 0`. Non-finite inputs (not meaningful activations) give
/// NaN -> 0 codes, never a panic.
pub fn quantize_acts_k(x: &[f32], qs: &mut [i8], d: &mut [f32], bsums: &mut [i16], sh: &mut [u8]) {
    quantize_acts_k_max(x, qs, d, bsums, sh, max_shift())
}

/// Largest sub-block shift the Q8_K activation quantizer uses: 3, qorus's per-32 sub-scales; or
/// 0 when the environment has `QORUS_Q8K_SUBSCALES=0`, which gives ggml's plain Q8_K codes (every
/// `sh` is 3: the factor 8 times the unit `d / 8` is ggml's `d`, exactly), so that qorus rounds
/// activations as llama.cpp does, for comparing the two rounding for rounding
/// (`tests/reference.rs`). Read once per process.
pub fn max_shift() -> u32 {
    static SHIFT: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *SHIFT.get_or_init(|| match std::env::var("QORUS_Q8K_SUBSCALES") {
        Ok(v) if v.trim() == "0" => 0,
        _ => 3,
    })
}

/// [`quantize_acts_k`] with the sub-block shifts limited to `smax` (0..=3; 0: ggml's Q8_K).
pub fn quantize_acts_k_max(
    x: &[f32],
    qs: &mut [i8],
    d: &mut [f32],
    bsums: &mut [i16],
    sh: &mut [u8],
    smax: u32,
) {
    let smax = smax.min(3);
    for (b, xb) in x.chunks_exact(QK_K).enumerate() {
        let (max, amax) = signed_absmax(xb);
        let q = &mut qs[b * QK_K..(b + 1) * QK_K];
        let shb = &mut sh[b * 8..(b + 1) * 8];
        if amax == 0.0 {
            d[b] = 0.0;
            q.fill(0);
            bsums[b * 16..(b + 1) * 16].fill(0);
            shb.fill(0);
            continue;
        }
        let iscale = -127.0 / max;
        for (j, (qj, xj)) in q.chunks_exact_mut(32).zip(xb.chunks_exact(32)).enumerate() {
            let s = sub_shift(iscale.abs() * signed_absmax(xj).1).min(smax);
            let p2 = (1u32 << s) as f32;
            for (o, &v) in qj.iter_mut().zip(xj) {
                *o = ((iscale * v) * p2).round_ties_even().clamp(-127.0, 127.0) as i8;
            }
            shb[j] = 3 - s as u8;
        }
        for (h, s) in bsums[b * 16..(b + 1) * 16].iter_mut().enumerate() {
            let sum: i16 = q[16 * h..16 * h + 16].iter().map(|&v| v as i16).sum();
            *s = sum << shb[h / 2];
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
    /// Q8_K per 256 values ([`quantize_acts_k`]): codes, scales, sums per 16 (times the
    /// factors), factor exponents per 32.
    Q8K {
        /// Codes.
        qs: &'a [i8],
        /// Scales.
        d: &'a [f32],
        /// Sums per 16 values, times their sub-block's factor.
        bsums: &'a [i16],
        /// Factor exponents per 32 values (0..=3).
        sh: &'a [u8],
    },
}

/// The integer parts `(sumi, summ)` of one decoded block with activation codes `a` and the
/// factor exponents `sh` of its 32-value sub-blocks (empty: factor 1, Q8_0/Q8_1 activations).
#[inline]
pub fn block_sums(dec: &Decoded, a: &[i8], sh: &[u8]) -> (i32, i32) {
    let (mut sumi, mut summ) = (0i32, 0i32);
    for s in 0..dec.n / dec.sub {
        let r = s * dec.sub..(s + 1) * dec.sub;
        let dot: i32 = dec.q[r.clone()]
            .iter()
            .zip(&a[r.clone()])
            .map(|(&q, &v)| q as i32 * v as i32)
            .sum::<i32>();
        let e = sh.get(s * dec.sub / 32).map_or(0, |&e| e as u32);
        sumi += dec.sc[s] * (dot << e);
        if dec.has_min {
            let asum: i32 = a[r].iter().map(|&v| v as i32).sum();
            summ += dec.m[s] * (asum << e);
        }
    }
    (sumi, summ)
}

/// One block's step of the accumulation (module documentation): `da` the activation unit
/// (`d * 0.125` for Q8_K). `s_a` is used by Q5_1 only.
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
                let (sumi, summ) = block_sums(&dec, &qs[b * QK..(b + 1) * QK], &[]);
                let s_a = if dec.add_min.is_some() { s[b] } else { 0.0 };
                acc = combine(acc, &dec, sumi, summ, d[b], s_a);
            }
        }
        ActRow::Q8K { qs, d, sh, .. } => {
            assert_eq!(bl, QK_K, "dot_row: {} takes Q8 activations", ty.name());
            for (b, blk) in w.chunks_exact(bb).enumerate().take(qs.len() / QK_K) {
                decode(ty, blk, &mut dec);
                let (a, e) = (&qs[b * QK_K..(b + 1) * QK_K], &sh[b * 8..(b + 1) * 8]);
                let (sumi, summ) = block_sums(&dec, a, e);
                acc = combine(acc, &dec, sumi, summ, d[b] * 0.125, 0.0);
            }
        }
    }
    acc
}

#[cfg(test)]
#[path = "kdot_tests.rs"]
pub(crate) mod tests;
