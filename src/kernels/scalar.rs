//! Portable reference implementations ("scalar twins") of every kernel. They follow ggml's
//! numerics (see each function) and are what the SIMD versions are tested against.

use super::{Acts, MatRef};
use crate::quant::{WeightType, QK};

#[inline(always)]
pub(crate) fn f16_at(b: &[u8], off: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f32()
}

#[inline(always)]
pub(crate) fn bf16_at(b: &[u8], off: usize) -> f32 {
    f32::from_bits((u16::from_le_bytes([b[off], b[off + 1]]) as u32) << 16)
}

#[inline(always)]
pub(crate) fn f32_at(b: &[u8], off: usize) -> f32 {
    f32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Rounds through binary16 (round to nearest even), as ggml's `GGML_FP32_TO_FP16`.
#[inline(always)]
pub(crate) fn round_f16(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// Quantizes 32-blocks like ggml's AVX `quantize_row_q8_0`/`q8_1`.
pub fn quantize_acts(x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    for (b, xb) in x.chunks_exact(QK).enumerate() {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let dd = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mut sum = 0i32;
        for (j, &v) in xb.iter().enumerate() {
            // Clamped: only matters for degenerate blocks (infinite input, or a subnormal amax
            // whose 127/amax overflows); NaN -> 0.
            let q = (v * id).round_ties_even().clamp(-127.0, 127.0) as i32;
            sum += q;
            qs[b * QK + j] = q as i8;
        }
        d[b] = round_f16(dd);
        s[b] = round_f16(dd * sum as f32);
    }
}

/// Dot product of one weight row (storage format, F32/F16/BF16) with `x`: products in f32,
/// summed in f64 (ggml's scalar `ggml_vec_dot_*` uses `ggml_float` = double).
pub fn dot_row_float(ty: WeightType, w: &[u8], x: &[f32]) -> f32 {
    let mut sum = 0f64;
    match ty {
        WeightType::F32 => {
            for (c, &xv) in x.iter().enumerate() {
                sum += (f32_at(w, 4 * c) * xv) as f64;
            }
        }
        WeightType::F16 => {
            for (c, &xv) in x.iter().enumerate() {
                sum += (f16_at(w, 2 * c) * xv) as f64;
            }
        }
        WeightType::BF16 => {
            for (c, &xv) in x.iter().enumerate() {
                sum += (bf16_at(w, 2 * c) * xv) as f64;
            }
        }
        _ => unreachable!("dot_row_float on a quantized type"),
    }
    sum as f32
}

/// Dot product of one quantized weight row with Q8 activations of the same length. Per block the
/// integer sum is exact; it is scaled and accumulated in f32 like ggml's `vec_dot_*_q8_*`.
pub fn dot_row_q8(ty: WeightType, w: &[u8], qs: &[i8], d: &[f32], s: &[f32]) -> f32 {
    let nb = qs.len() / QK;
    let mut acc = 0f32;
    match ty {
        WeightType::Q4_0 => {
            for b in 0..nb {
                let blk = &w[b * 18..b * 18 + 18];
                let a = &qs[b * QK..b * QK + QK];
                let mut sumi = 0i32;
                for j in 0..16 {
                    let v = blk[2 + j];
                    sumi += ((v & 15) as i32 - 8) * a[j] as i32;
                    sumi += ((v >> 4) as i32 - 8) * a[j + 16] as i32;
                }
                acc += (f16_at(blk, 0) * d[b]) * sumi as f32;
            }
        }
        WeightType::Q4_1 => {
            for b in 0..nb {
                let blk = &w[b * 20..b * 20 + 20];
                let a = &qs[b * QK..b * QK + QK];
                let mut sumi = 0i32;
                for j in 0..16 {
                    let v = blk[4 + j];
                    sumi += (v & 15) as i32 * a[j] as i32;
                    sumi += (v >> 4) as i32 * a[j + 16] as i32;
                }
                acc += (f16_at(blk, 0) * d[b]) * sumi as f32 + f16_at(blk, 2) * s[b];
            }
        }
        WeightType::Q8_0 => {
            for b in 0..nb {
                let blk = &w[b * 34..b * 34 + 34];
                let a = &qs[b * QK..b * QK + QK];
                let mut sumi = 0i32;
                for j in 0..QK {
                    sumi += blk[2 + j] as i8 as i32 * a[j] as i32;
                }
                acc += (f16_at(blk, 0) * d[b]) * sumi as f32;
            }
        }
        WeightType::QorusQ4_0 => {
            for b in 0..nb {
                let blk = &w[b * 20..b * 20 + 20];
                let a = &qs[b * QK..b * QK + QK];
                let mut sumi = 0i32;
                for t in 0..16 {
                    let v = blk[t];
                    sumi += ((v & 15) as i32 - 8) * a[2 * t] as i32;
                    sumi += ((v >> 4) as i32 - 8) * a[2 * t + 1] as i32;
                }
                acc += (f32_at(blk, 16) * d[b]) * sumi as f32;
            }
        }
        _ => unreachable!("dot_row_q8 on a float type"),
    }
    acc
}

/// Scalar matmul; see [`super::matmul`] for the contract (checked by the caller).
///
/// # Safety
/// As [`super::matmul`].
pub unsafe fn matmul(
    w: MatRef<'_>,
    a: Acts<'_>,
    rows: std::ops::Range<usize>,
    out: *mut f32,
    ldo: usize,
) {
    let rb = w.row_bytes();
    match a {
        Acts::F32 { x, n, k } => {
            for i in 0..n {
                let xi = &x[i * k..(i + 1) * k];
                for j in rows.clone() {
                    let v = dot_row_float(w.ty, &w.data[j * rb..(j + 1) * rb], xi);
                    *out.add(i * ldo + j) = v;
                }
            }
        }
        Acts::Q8 { qs, d, s, n, k } if w.ty.is_kquant_family() => {
            let nb = k / QK;
            for i in 0..n {
                let a = super::kdot::ActRow::Q8 {
                    qs: &qs[i * k..(i + 1) * k],
                    d: &d[i * nb..(i + 1) * nb],
                    s: if s.is_empty() {
                        &[][..]
                    } else {
                        &s[i * nb..(i + 1) * nb]
                    },
                };
                for j in rows.clone() {
                    let v = super::kdot::dot_row(w.ty, &w.data[j * rb..(j + 1) * rb], a);
                    *out.add(i * ldo + j) = v;
                }
            }
        }
        Acts::Q8K {
            qs,
            d,
            bsums,
            sh,
            n,
            k,
        } => {
            let nb = k / crate::quant::QK_K;
            for i in 0..n {
                let a = super::kdot::ActRow::Q8K {
                    qs: &qs[i * k..(i + 1) * k],
                    d: &d[i * nb..(i + 1) * nb],
                    bsums: &bsums[i * k / 16..(i + 1) * k / 16],
                    sh: &sh[i * k / 32..(i + 1) * k / 32],
                };
                for j in rows.clone() {
                    let v = super::kdot::dot_row(w.ty, &w.data[j * rb..(j + 1) * rb], a);
                    *out.add(i * ldo + j) = v;
                }
            }
        }
        Acts::Q8 { qs, d, s, n, k } => {
            let nb = k / QK;
            for i in 0..n {
                let q = &qs[i * k..(i + 1) * k];
                let di = &d[i * nb..(i + 1) * nb];
                let si = if s.is_empty() {
                    &[][..]
                } else {
                    &s[i * nb..(i + 1) * nb]
                };
                for j in rows.clone() {
                    let v = dot_row_q8(w.ty, &w.data[j * rb..(j + 1) * rb], q, di, si);
                    *out.add(i * ldo + j) = v;
                }
            }
        }
    }
}

/// Dequantizes row `row` of `w` into `out[..w.cols]`.
pub fn dequantize_row(w: MatRef<'_>, row: usize, out: &mut [f32]) {
    let rb = w.row_bytes();
    let r = &w.data[row * rb..(row + 1) * rb];
    let out = &mut out[..w.cols];
    match w.ty {
        WeightType::F32 => out
            .iter_mut()
            .enumerate()
            .for_each(|(c, o)| *o = f32_at(r, 4 * c)),
        WeightType::F16 => out
            .iter_mut()
            .enumerate()
            .for_each(|(c, o)| *o = f16_at(r, 2 * c)),
        WeightType::BF16 => out
            .iter_mut()
            .enumerate()
            .for_each(|(c, o)| *o = bf16_at(r, 2 * c)),
        WeightType::Q4_0 => {
            for (b, ob) in out.chunks_exact_mut(QK).enumerate() {
                let blk = &r[b * 18..b * 18 + 18];
                let dd = f16_at(blk, 0);
                for j in 0..16 {
                    ob[j] = ((blk[2 + j] & 15) as i32 - 8) as f32 * dd;
                    ob[j + 16] = ((blk[2 + j] >> 4) as i32 - 8) as f32 * dd;
                }
            }
        }
        WeightType::Q4_1 => {
            for (b, ob) in out.chunks_exact_mut(QK).enumerate() {
                let blk = &r[b * 20..b * 20 + 20];
                let (dd, m) = (f16_at(blk, 0), f16_at(blk, 2));
                for j in 0..16 {
                    ob[j] = (blk[4 + j] & 15) as f32 * dd + m;
                    ob[j + 16] = (blk[4 + j] >> 4) as f32 * dd + m;
                }
            }
        }
        WeightType::Q8_0 => {
            for (b, ob) in out.chunks_exact_mut(QK).enumerate() {
                let blk = &r[b * 34..b * 34 + 34];
                let dd = f16_at(blk, 0);
                for j in 0..QK {
                    ob[j] = blk[2 + j] as i8 as f32 * dd;
                }
            }
        }
        WeightType::QorusQ4_0 => {
            for (b, ob) in out.chunks_exact_mut(QK).enumerate() {
                let blk = &r[b * 20..b * 20 + 20];
                let sc = f32_at(blk, 16);
                for t in 0..16 {
                    ob[2 * t] = ((blk[t] & 15) as i32 - 8) as f32 * sc;
                    ob[2 * t + 1] = ((blk[t] >> 4) as i32 - 8) as f32 * sc;
                }
            }
        }
        ty => crate::quant::kquants::dequantize_blocks(ty, r, out),
    }
}

/// ggml's `rms_norm` followed by `mul`: squares in f32 summed in f64, `scale = 1/sqrtf(mean+eps)`,
/// `out = (x * scale) * weight`.
pub fn rmsnorm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0f32 / (mean + eps).sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(weight) {
        *o = (v * scale) * g;
    }
}

/// Products in f32 summed in f64.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(&x, &y)| (x * y) as f64).sum::<f64>() as f32
}

/// `y += alpha * x`.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv += alpha * xv;
    }
}

/// `x *= s`.
pub fn scale(x: &mut [f32], s: f32) {
    x.iter_mut().for_each(|v| *v *= s);
}

/// ggml's `ggml_vec_soft_max_f32` + scale: `e = expf(x - max)`, sum in f64, multiply by
/// `(float)(1/sum)`.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut sum = 0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v as f64;
    }
    let inv = (1.0 / sum) as f32;
    x.iter_mut().for_each(|v| *v *= inv);
}

/// `silu(x) = x / (1 + expf(-x))`.
#[inline(always)]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + (-x).exp())
}

/// `out = silu(gate) * up`.
pub fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = silu(g) * u;
    }
}

/// Rotates pairs `(x[2i], x[2i+1])` by `(cos[i], sin[i])` (ggml's NORM rope).
pub fn rope(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    for (i, p) in x.chunks_exact_mut(2).enumerate() {
        let (x0, x1) = (p[0], p[1]);
        let (c, s) = (cos[i], sin[i]);
        p[0] = x0 * c - x1 * s;
        p[1] = x0 * s + x1 * c;
    }
}

/// Rotates pairs `(x[i], x[i + hd/2])` by `(cos[i], sin[i])` (ggml's NEOX rope).
pub fn rope_neox(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let half = x.len() / 2;
    let (lo, hi) = x.split_at_mut(half);
    for i in 0..half {
        let (x0, x1) = (lo[i], hi[i]);
        let (c, s) = (cos[i], sin[i]);
        lo[i] = x0 * c - x1 * s;
        hi[i] = x0 * s + x1 * c;
    }
}

/// [`rmsnorm`] with the output over its input (same arithmetic).
pub fn rmsnorm_in_place(x: &mut [f32], weight: &[f32], eps: f32) {
    let sum: f64 = x.iter().map(|&v| (v * v) as f64).sum();
    let mean = (sum / x.len() as f64) as f32;
    let scale = 1.0f32 / (mean + eps).sqrt();
    for (v, &g) in x.iter_mut().zip(weight) {
        *v = (*v * scale) * g;
    }
}

/// `.qorus` Q4_0 matrix (`m` rows of `n` values) times F32 vector, in f32 (the public
/// `q_gemv_q4_f32_avx2`): per block `Σ (q-8)·x` times the scale, accumulated in f32.
pub fn gemv_qorus_f32(w: &[u8], m: usize, n: usize, x: &[f32], out: &mut [f32]) {
    let nb = n / QK;
    for (r, o) in out.iter_mut().enumerate().take(m) {
        let row = &w[r * nb * 20..(r + 1) * nb * 20];
        let mut acc = 0f32;
        for b in 0..nb {
            let blk = &row[b * 20..b * 20 + 20];
            let xb = &x[b * QK..b * QK + QK];
            let mut s = 0f32;
            for t in 0..16 {
                s += ((blk[t] & 15) as i32 - 8) as f32 * xb[2 * t];
                s += ((blk[t] >> 4) as i32 - 8) as f32 * xb[2 * t + 1];
            }
            acc += s * f32_at(blk, 16);
        }
        *o = acc;
    }
}
