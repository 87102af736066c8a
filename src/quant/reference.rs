//! Reference (scalar, deterministic) quantizers and dequantizers for every [`WeightType`].
//!
//! These define the bytes qorus writes into model files, so they are written for exactness, not
//! speed:
//!
//! * `F16` / `BF16`: IEEE round-to-nearest-even from f32 (the `half` crate), as ggml does.
//! * `Q8_0`, `Q4_0` (ggml, 18-byte blocks) and `Q4_1` reproduce ggml's reference quantizers
//!   (`quantize_row_*_ref` in `ggml-quants.c`, which `llama-quantize` uses when no importance
//!   matrix is given) bit for bit: the same scale formula in f32, the scale stored as f16 while the
//!   codes are computed with the inverse of the *unrounded* f32 scale, the same rounding of codes
//!   (`roundf` for Q8_0, `+ 8.5` / `+ 0.5` then truncation toward zero and a clamp at 15 for the
//!   4-bit formats).
//! * `QorusQ4_0` (the `.qorus` 20-byte block, spec §2.6): qorus uses ggml's Q4_0 rule — the
//!   element of largest magnitude `m` (first one on ties) gives `scale = m / -8`, so it is
//!   represented exactly by code 0, and the other elements get `code = min(15, trunc(v/scale +
//!   8.5))` — but keeps the scale in f32 (no f16 rounding). This uses all 16 codes, whereas the
//!   original's test tool (`scale = max|v| / 7`) wastes code 0. Dequantization is the spec's
//!   `(code - 8) * scale`. A ggml Q4_0 block therefore converts to a `QorusQ4_0` block losslessly
//!   ([`q4_0_to_qorus`]).
//!
//! Inputs are assumed finite (NaN and infinities are not meaningful weights); the functions never
//! panic on them, but the codes they produce are unspecified.

use half::{bf16, f16};

use crate::error::{Error, Result};
use crate::quant::blocks::*;

/// f32 -> IEEE binary16 bits, round to nearest even (as `GGML_FP32_TO_FP16`).
#[inline]
pub fn f32_to_f16_bits(v: f32) -> u16 {
    f16::from_f32(v).to_bits()
}

/// IEEE binary16 bits -> f32 (exact).
#[inline]
pub fn f16_bits_to_f32(b: u16) -> f32 {
    f16::from_bits(b).to_f32()
}

/// f32 -> bfloat16 bits, round to nearest even (as `GGML_FP32_TO_BF16`).
#[inline]
pub fn f32_to_bf16_bits(v: f32) -> u16 {
    bf16::from_f32(v).to_bits()
}

/// bfloat16 bits -> f32 (exact).
#[inline]
pub fn bf16_bits_to_f32(b: u16) -> f32 {
    bf16::from_bits(b).to_f32()
}

/// ggml's Q4_0 scale and inverse scale for one block: the signed value of largest magnitude over
/// -8, and its inverse (0 for an all-zero block).
#[inline]
fn q4_0_scale(x: &[f32]) -> (f32, f32) {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    (d, id)
}

/// The 4-bit code of `v` for inverse scale `id` (ggml: `MIN(15, (int8_t)(v*id + 8.5f))`).
#[inline]
fn q4_0_code(v: f32, id: f32) -> u8 {
    // Two separate f32 operations, as in ggml (Rust never fuses them into an FMA).
    let t = v * id + 8.5;
    // `as i8` truncates toward zero like the C conversion (and saturates where C is undefined).
    (t as i8).clamp(0, 15) as u8
}

/// Quantizes one block of 32 values to ggml Q4_0 (`quantize_row_q4_0_ref`).
pub fn quantize_block_q4_0(x: &[f32; QK]) -> BlockQ4_0 {
    let (d, id) = q4_0_scale(x);
    let mut qs = [0u8; QK / 2];
    for (j, q) in qs.iter_mut().enumerate() {
        *q = q4_0_code(x[j], id) | (q4_0_code(x[j + QK / 2], id) << 4);
    }
    BlockQ4_0 {
        d: f32_to_f16_bits(d),
        qs,
    }
}

/// Quantizes one block of 32 values to a `.qorus` Q4_0 block (ggml's rule, f32 scale).
pub fn quantize_block_qorus_q4_0(x: &[f32; QK]) -> BlockQorusQ4_0 {
    let (d, id) = q4_0_scale(x);
    let mut qs = [0u8; QK / 2];
    for (j, q) in qs.iter_mut().enumerate() {
        *q = q4_0_code(x[2 * j], id) | (q4_0_code(x[2 * j + 1], id) << 4);
    }
    BlockQorusQ4_0 { qs, scale: d }
}

/// The smallest and largest of `x` as ggml's `quantize_row_q4_1_ref` / `q5_1_ref` find them
/// (starting from `FLT_MAX` / `-FLT_MAX`, strict comparisons: NaN is skipped).
pub(crate) fn min_max(x: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// Quantizes one block of 32 values to ggml Q4_1 (`quantize_row_q4_1_ref`).
pub fn quantize_block_q4_1(x: &[f32; QK]) -> BlockQ4_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let code = |v: f32| -> u8 {
        let t = (v - min) * id + 0.5;
        (t as i8).clamp(0, 15) as u8
    };
    let mut qs = [0u8; QK / 2];
    for (j, q) in qs.iter_mut().enumerate() {
        *q = code(x[j]) | (code(x[j + QK / 2]) << 4);
    }
    BlockQ4_1 {
        d: f32_to_f16_bits(d),
        m: f32_to_f16_bits(min),
        qs,
    }
}

/// Quantizes one block of 32 values to ggml Q8_0 (`quantize_row_q8_0_ref`).
pub fn quantize_block_q8_0(x: &[f32; QK]) -> BlockQ8_0 {
    let mut amax = 0.0f32;
    for &v in x {
        // MAX(amax, fabsf(v)) as the C macro evaluates it.
        let a = v.abs();
        amax = if amax > a { amax } else { a };
    }
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; QK];
    for (q, &v) in qs.iter_mut().zip(x.iter()) {
        // roundf: half away from zero, like f32::round.
        *q = (v * id).round() as i8;
    }
    BlockQ8_0 {
        d: f32_to_f16_bits(d),
        qs,
    }
}

/// Dequantizes a ggml Q4_0 block.
pub fn dequantize_block_q4_0(b: &BlockQ4_0, y: &mut [f32; QK]) {
    let d = f16_bits_to_f32(b.d);
    for j in 0..QK / 2 {
        y[j] = ((b.qs[j] & 0x0F) as i32 - 8) as f32 * d;
        y[j + QK / 2] = ((b.qs[j] >> 4) as i32 - 8) as f32 * d;
    }
}

/// Dequantizes a `.qorus` Q4_0 block: `(code - 8) * scale`, interleaved nibbles.
pub fn dequantize_block_qorus_q4_0(b: &BlockQorusQ4_0, y: &mut [f32; QK]) {
    let scale = b.scale;
    let qs = b.qs;
    for j in 0..QK / 2 {
        y[2 * j] = ((qs[j] & 0x0F) as i32 - 8) as f32 * scale;
        y[2 * j + 1] = ((qs[j] >> 4) as i32 - 8) as f32 * scale;
    }
}

/// Dequantizes a ggml Q4_1 block: `code * d + m`.
pub fn dequantize_block_q4_1(b: &BlockQ4_1, y: &mut [f32; QK]) {
    let d = f16_bits_to_f32(b.d);
    let m = f16_bits_to_f32(b.m);
    for j in 0..QK / 2 {
        y[j] = (b.qs[j] & 0x0F) as f32 * d + m;
        y[j + QK / 2] = (b.qs[j] >> 4) as f32 * d + m;
    }
}

/// Dequantizes a ggml Q8_0 block.
pub fn dequantize_block_q8_0(b: &BlockQ8_0, y: &mut [f32; QK]) {
    let d = f16_bits_to_f32(b.d);
    for (o, &q) in y.iter_mut().zip(b.qs.iter()) {
        *o = q as f32 * d;
    }
}

/// Converts a ggml Q4_0 block to the `.qorus` block exactly (scale widened to f32, nibbles
/// reordered); dequantizing either gives the same values.
pub fn q4_0_to_qorus(b: &BlockQ4_0) -> BlockQorusQ4_0 {
    let mut codes = [0u8; QK];
    for j in 0..QK / 2 {
        codes[j] = b.qs[j] & 0x0F;
        codes[j + QK / 2] = b.qs[j] >> 4;
    }
    let mut qs = [0u8; QK / 2];
    for (j, q) in qs.iter_mut().enumerate() {
        *q = codes[2 * j] | (codes[2 * j + 1] << 4);
    }
    BlockQorusQ4_0 {
        qs,
        scale: f16_bits_to_f32(b.d),
    }
}

// --- byte (de)serialisation of blocks (little-endian, no alignment assumptions) ---------------

fn read_q4_0(b: &[u8]) -> BlockQ4_0 {
    let mut qs = [0u8; QK / 2];
    qs.copy_from_slice(&b[2..18]);
    BlockQ4_0 {
        d: u16::from_le_bytes([b[0], b[1]]),
        qs,
    }
}

fn write_q4_0(blk: &BlockQ4_0, out: &mut [u8]) {
    out[0..2].copy_from_slice(&blk.d.to_le_bytes());
    out[2..18].copy_from_slice(&blk.qs);
}

fn read_q4_1(b: &[u8]) -> BlockQ4_1 {
    let mut qs = [0u8; QK / 2];
    qs.copy_from_slice(&b[4..20]);
    BlockQ4_1 {
        d: u16::from_le_bytes([b[0], b[1]]),
        m: u16::from_le_bytes([b[2], b[3]]),
        qs,
    }
}

fn write_q4_1(blk: &BlockQ4_1, out: &mut [u8]) {
    out[0..2].copy_from_slice(&blk.d.to_le_bytes());
    out[2..4].copy_from_slice(&blk.m.to_le_bytes());
    out[4..20].copy_from_slice(&blk.qs);
}

fn read_q8_0(b: &[u8]) -> BlockQ8_0 {
    let mut qs = [0i8; QK];
    for (q, &byte) in qs.iter_mut().zip(&b[2..34]) {
        *q = byte as i8;
    }
    BlockQ8_0 {
        d: u16::from_le_bytes([b[0], b[1]]),
        qs,
    }
}

fn write_q8_0(blk: &BlockQ8_0, out: &mut [u8]) {
    out[0..2].copy_from_slice(&blk.d.to_le_bytes());
    for (o, &q) in out[2..34].iter_mut().zip(blk.qs.iter()) {
        *o = q as u8;
    }
}

/// Reads a `.qorus` Q4_0 block from 20 bytes.
pub fn read_qorus_q4_0(b: &[u8]) -> BlockQorusQ4_0 {
    let mut qs = [0u8; QK / 2];
    qs.copy_from_slice(&b[0..16]);
    BlockQorusQ4_0 {
        qs,
        scale: f32::from_le_bytes([b[16], b[17], b[18], b[19]]),
    }
}

/// Writes a `.qorus` Q4_0 block into 20 bytes.
pub fn write_qorus_q4_0(blk: &BlockQorusQ4_0, out: &mut [u8]) {
    let qs = blk.qs;
    let scale = blk.scale;
    out[0..16].copy_from_slice(&qs);
    out[16..20].copy_from_slice(&scale.to_le_bytes());
}

fn check_lengths(ty: WeightType, n: usize, bytes: usize, what: &str) -> Result<()> {
    match ty.row_bytes(n) {
        None => Err(Error::InvalidSize(format!(
            "{what} {}: {n} values are not a whole number of {}-value blocks",
            ty.name(),
            ty.block_len()
        ))),
        Some(b) if b != bytes => Err(Error::InvalidSize(format!(
            "{what} {}: {n} values need {b} bytes, got {bytes}",
            ty.name()
        ))),
        Some(_) => Ok(()),
    }
}

/// Quantizes `src` (a whole number of blocks) into `dst`, which must be exactly
/// `ty.row_bytes(src.len())` bytes. Works for any number of consecutive rows.
pub fn quantize_row(ty: WeightType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    check_lengths(ty, src.len(), dst.len(), "quantize_row")?;
    if ty.is_kquant_family() {
        return crate::quant::quantize_blocks::quantize_row_issue12(ty, src, dst);
    }
    let bb = ty.block_bytes();
    match ty {
        WeightType::F32 => {
            for (o, v) in dst.chunks_exact_mut(4).zip(src) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        WeightType::F16 => {
            for (o, &v) in dst.chunks_exact_mut(2).zip(src) {
                o.copy_from_slice(&f32_to_f16_bits(v).to_le_bytes());
            }
        }
        WeightType::BF16 => {
            for (o, &v) in dst.chunks_exact_mut(2).zip(src) {
                o.copy_from_slice(&f32_to_bf16_bits(v).to_le_bytes());
            }
        }
        _ => {
            for (x, o) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(bb)) {
                let x: &[f32; QK] = x.try_into().map_err(|_| Error::Internal("block".into()))?;
                match ty {
                    WeightType::Q4_0 => write_q4_0(&quantize_block_q4_0(x), o),
                    WeightType::Q4_1 => write_q4_1(&quantize_block_q4_1(x), o),
                    WeightType::Q8_0 => write_q8_0(&quantize_block_q8_0(x), o),
                    WeightType::QorusQ4_0 => write_qorus_q4_0(&quantize_block_qorus_q4_0(x), o),
                    WeightType::F32 | WeightType::F16 | WeightType::BF16 => unreachable!(),
                    _ => unreachable!("rejected above"),
                }
            }
        }
    }
    Ok(())
}

/// Dequantizes `src` into `dst` (`dst.len()` values; `src` must be exactly their encoded size).
pub fn dequantize_row(ty: WeightType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    check_lengths(ty, dst.len(), src.len(), "dequantize_row")?;
    if ty.is_kquant_family() {
        crate::quant::kquants::dequantize_blocks(ty, src, dst);
        return Ok(());
    }
    let bb = ty.block_bytes();
    match ty {
        WeightType::F32 => {
            for (o, b) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        WeightType::F16 => {
            for (o, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *o = f16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        WeightType::BF16 => {
            for (o, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *o = bf16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]));
            }
        }
        _ => {
            for (b, y) in src.chunks_exact(bb).zip(dst.chunks_exact_mut(QK)) {
                let y: &mut [f32; QK] =
                    y.try_into().map_err(|_| Error::Internal("block".into()))?;
                match ty {
                    WeightType::Q4_0 => dequantize_block_q4_0(&read_q4_0(b), y),
                    WeightType::Q4_1 => dequantize_block_q4_1(&read_q4_1(b), y),
                    WeightType::Q8_0 => dequantize_block_q8_0(&read_q8_0(b), y),
                    WeightType::QorusQ4_0 => dequantize_block_qorus_q4_0(&read_qorus_q4_0(b), y),
                    WeightType::F32 | WeightType::F16 | WeightType::BF16 => unreachable!(),
                    _ => unreachable!("rejected above"),
                }
            }
        }
    }
    Ok(())
}

/// Converts ggml Q4_0 bytes to `.qorus` Q4_0 bytes block by block, losslessly.
pub fn transcode_q4_0_to_qorus(src: &[u8], dst: &mut [u8]) -> Result<()> {
    let n = src.len() / WeightType::Q4_0.block_bytes();
    if !src.len().is_multiple_of(WeightType::Q4_0.block_bytes())
        || dst.len() != n * WeightType::QorusQ4_0.block_bytes()
    {
        return Err(Error::InvalidSize(format!(
            "transcode_q4_0_to_qorus: {} source bytes, {} destination bytes",
            src.len(),
            dst.len()
        )));
    }
    for (s, d) in src.chunks_exact(18).zip(dst.chunks_exact_mut(20)) {
        write_qorus_q4_0(&q4_0_to_qorus(&read_q4_0(s)), d);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::test_util::ORIGINAL_TYPES as ALL;

    /// A deterministic pseudo-random generator for test data (xorshift32).
    struct Rng(u32);
    impl Rng {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            (self.0 >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        }
        fn vec(&mut self, n: usize, amp: f32) -> Vec<f32> {
            (0..n).map(|_| self.next() * amp).collect()
        }
    }

    fn roundtrip(ty: WeightType, x: &[f32]) -> Vec<f32> {
        let mut q = vec![0u8; ty.row_bytes(x.len()).unwrap()];
        quantize_row(ty, x, &mut q).unwrap();
        let mut y = vec![0f32; x.len()];
        dequantize_row(ty, &q, &mut y).unwrap();
        y
    }

    #[test]
    fn spec_8_2_vector() {
        let mut b = [0u8; 20];
        for k in 0..16u8 {
            b[k as usize] = k | ((15 - k) << 4);
        }
        b[16..20].copy_from_slice(&1.0f32.to_le_bytes());
        let mut y = [0f32; 32];
        dequantize_row(WeightType::QorusQ4_0, &b, &mut y).unwrap();
        assert_eq!(&y[..8], &[-8.0, 7.0, -7.0, 6.0, -6.0, 5.0, -5.0, 4.0]);
        // and the whole block: element 2k = k - 8, element 2k+1 = 7 - k
        for k in 0..16 {
            assert_eq!(y[2 * k], k as f32 - 8.0);
            assert_eq!(y[2 * k + 1], 7.0 - k as f32);
        }
    }

    #[test]
    fn round_trip_error_bounds() {
        let mut rng = Rng(0x1234_5678);
        for amp in [1e-3f32, 0.05, 1.0, 300.0] {
            for _ in 0..50 {
                let x = rng.vec(256, amp);
                for ty in ALL {
                    let y = roundtrip(ty, &x);
                    for (blk_x, blk_y) in x.chunks(32).zip(y.chunks(32)) {
                        let amax = blk_x.iter().fold(0f32, |m, v| m.max(v.abs()));
                        let (mn, mx) = blk_x
                            .iter()
                            .fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
                        for (&a, &b) in blk_x.iter().zip(blk_y) {
                            let err = (a - b).abs();
                            // rounding error of a value stored as f16 (subnormals included)
                            let h = |v: f32| v.abs() * 2f32.powi(-11) + 2f32.powi(-25);
                            let bound = match ty {
                                WeightType::F32 => 0.0,
                                WeightType::F16 => h(a),
                                WeightType::BF16 => a.abs() * 2f32.powi(-8),
                                // half a step of amax/127, plus 127 times the scale's f16 error
                                WeightType::Q8_0 => amax / 254.0 + 127.0 * h(amax / 127.0),
                                // one step of amax/8 (the code clamped at 15), plus the f16 error
                                WeightType::Q4_0 => amax / 8.0 + 8.0 * h(amax / 8.0),
                                WeightType::QorusQ4_0 => amax / 8.0 * 1.0001,
                                WeightType::Q4_1 => {
                                    let d = (mx - mn) / 15.0;
                                    d * 0.5 * 1.0001 + 15.0 * h(d) + h(mn)
                                }
                                other => unreachable!("{other:?} is not in ALL"),
                            };
                            assert!(
                                err <= bound,
                                "{ty:?} amp {amp}: {a} -> {b}, err {err} > {bound}"
                            );
                        }
                        // the largest-magnitude element is exact for QorusQ4_0
                        if ty == WeightType::QorusQ4_0 {
                            let i = blk_x.iter().position(|v| v.abs() == amax).unwrap();
                            assert_eq!(blk_y[i], blk_x[i]);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn zeros_stay_zero() {
        let x = [0f32; 64];
        for ty in ALL {
            let y = roundtrip(ty, &x);
            assert!(y.iter().all(|&v| v == 0.0), "{ty:?}");
            let mut q = vec![0u8; ty.row_bytes(64).unwrap()];
            quantize_row(ty, &x, &mut q).unwrap();
            match ty {
                // scale 0 / -8 = -0.0 (as in ggml); codes 8 (value 0) for the symmetric formats
                WeightType::Q4_0 => assert!(q
                    .chunks(18)
                    .all(|b| b[..2] == [0, 0x80] && b[2..].iter().all(|&c| c == 0x88))),
                WeightType::QorusQ4_0 => assert!(q
                    .chunks(20)
                    .all(|b| b[..16].iter().all(|&c| c == 0x88) && b[16..] == [0, 0, 0, 0x80])),
                WeightType::Q8_0 | WeightType::Q4_1 => assert!(q.iter().all(|&c| c == 0)),
                _ => {}
            }
        }
    }

    #[test]
    fn extremes_are_finite_and_exact_at_the_peak() {
        for big in [
            f32::MAX,
            -f32::MAX,
            65504.0,
            -65504.0,
            1e-30,
            f32::MIN_POSITIVE,
        ] {
            let mut x = [0f32; 32];
            x[3] = big;
            x[7] = -big / 3.0;
            x[31] = big / 2.0;
            let y = roundtrip(WeightType::QorusQ4_0, &x);
            assert!(y.iter().all(|v| v.is_finite()), "{big}: {y:?}");
            assert_eq!(y[3], big);
            for ty in ALL {
                let y = roundtrip(ty, &x);
                let f16_scaled = matches!(
                    ty,
                    WeightType::F16 | WeightType::Q8_0 | WeightType::Q4_0 | WeightType::Q4_1
                );
                if f16_scaled && big.abs() > 65504.0 {
                    continue; // the value or the scale is not representable in f16
                }
                assert!(y.iter().all(|v| !v.is_nan()), "{ty:?} {big}: {y:?}");
            }
        }
        // +-max in one block: the first of equal magnitudes sets the sign
        let mut x = [0f32; 32];
        x[0] = 1.0;
        x[1] = -1.0;
        let y = roundtrip(WeightType::QorusQ4_0, &x);
        assert_eq!(y[0], 1.0);
        assert_eq!(y[1], -0.875); // clamped to code 15: 7 * (1 / -8) ... = -7/8
    }

    #[test]
    fn hand_computed_q8_0() {
        // amax 127 -> d = 1, codes are roundf of the values (half away from zero)
        let mut x = [0f32; 32];
        x[0] = 127.0;
        x[1] = -2.5;
        x[2] = 2.5;
        x[3] = 0.49;
        x[4] = -126.5;
        let b = quantize_block_q8_0(&x);
        assert_eq!(b.d, 0x3C00); // 1.0 in f16
        assert_eq!(&b.qs[..5], &[127, -3, 3, 0, -127]);
        let mut bytes = [0u8; 34];
        quantize_row(WeightType::Q8_0, &x, &mut bytes).unwrap();
        assert_eq!(bytes[0..2], [0x00, 0x3C]);
        assert_eq!(bytes[2..7], [127, 253, 3, 0, 129]);
    }

    #[test]
    fn hand_computed_q4_0() {
        // max (by magnitude) -16 -> d = 2, id = 0.5; code = min(15, trunc(v/2 + 8.5))
        let mut x = [0f32; 32];
        x[0] = -16.0; // 0
        x[1] = 14.0; // 15
        x[2] = 16.0 - 1e-3; // trunc(16.4995) = 16 -> clamp 15
        x[3] = 1.0; // trunc(9.0) = 9
        x[4] = -1.0; // trunc(8.0) = 8
        x[5] = 0.99; // trunc(8.995) = 8
        x[16] = 3.0; // trunc(10.0) = 10
        x[17] = -3.0; // trunc(7.0) = 7
        let b = quantize_block_q4_0(&x);
        assert_eq!(b.d, 0x4000); // 2.0
        let lo: Vec<u8> = b.qs.iter().map(|q| q & 15).collect();
        let hi: Vec<u8> = b.qs.iter().map(|q| q >> 4).collect();
        assert_eq!(&lo[..6], &[0, 15, 15, 9, 8, 8]);
        assert_eq!(&hi[..2], &[10, 7]);
        assert!(lo[6..].iter().chain(&hi[2..]).all(|&c| c == 8));
        // the same block in the .qorus layout: element j in byte j/2
        let q = quantize_block_qorus_q4_0(&x);
        let qs = q.qs;
        assert_eq!(qs[0], 15 << 4); // codes 0 (low) and 15 (high)
        assert_eq!(qs[1], 15 | (9 << 4));
        assert_eq!(qs[2], 8 | (8 << 4));
        assert_eq!(qs[8], 10 | (7 << 4));
        assert_eq!({ q.scale }, 2.0);
        assert_eq!(q4_0_to_qorus(&b).qs, qs);
    }

    #[test]
    fn hand_computed_q4_1() {
        // min -1, max 14 -> d = 1, m = -1; code = min(15, trunc(v + 1 + 0.5))
        let mut x = [0f32; 32];
        x[0] = -1.0;
        x[1] = 14.0;
        x[2] = 0.49; // trunc(1.99) = 1
        x[3] = 0.5; // trunc(2.0) = 2
        let b = quantize_block_q4_1(&x);
        assert_eq!(b.d, 0x3C00);
        assert_eq!(b.m, 0xBC00);
        assert_eq!(b.qs[0] & 15, 0);
        assert_eq!(b.qs[1] & 15, 15);
        assert_eq!(b.qs[2] & 15, 1);
        assert_eq!(b.qs[3] & 15, 2);
        assert_eq!(b.qs[0] >> 4, 1); // x[16] = 0 -> trunc(1.5) = 1
    }

    #[test]
    fn f16_rounding_is_nearest_even() {
        // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1.0)
        assert_eq!(f32_to_f16_bits(1.0 + 2f32.powi(-11)), 0x3C00);
        // 1 + 3*2^-11 is halfway between 1+2^-10 and 1+2^-9: ties to even (1 + 2^-9)
        assert_eq!(f32_to_f16_bits(1.0 + 3.0 * 2f32.powi(-11)), 0x3C02);
        assert_eq!(f32_to_f16_bits(65520.0), 0x7C00); // rounds up to infinity
        assert_eq!(f32_to_f16_bits(5.960_464_5e-8), 0x0001); // smallest subnormal
        assert_eq!(f32_to_bf16_bits(1.0 + 2f32.powi(-8)), 0x3F80);
        assert_eq!(f32_to_bf16_bits(1.0 + 3.0 * 2f32.powi(-8)), 0x3F82);
    }

    #[test]
    fn transcode_matches_requantizing() {
        let mut rng = Rng(99);
        let x = rng.vec(32 * 40, 0.3);
        let mut g = vec![0u8; 18 * 40];
        quantize_row(WeightType::Q4_0, &x, &mut g).unwrap();
        let mut deq = vec![0f32; x.len()];
        dequantize_row(WeightType::Q4_0, &g, &mut deq).unwrap();
        let mut t = vec![0u8; 20 * 40];
        transcode_q4_0_to_qorus(&g, &mut t).unwrap();
        let mut back = vec![0f32; x.len()];
        dequantize_row(WeightType::QorusQ4_0, &t, &mut back).unwrap();
        assert_eq!(deq, back);
        // requantizing the dequantized values with the .qorus rule gives the same bytes
        let mut r = vec![0u8; 20 * 40];
        quantize_row(WeightType::QorusQ4_0, &deq, &mut r).unwrap();
        assert_eq!(r, t);
    }

    #[test]
    fn length_errors() {
        let mut q = [0u8; 18];
        assert!(quantize_row(WeightType::Q4_0, &[0.0; 31], &mut q).is_err());
        assert!(quantize_row(WeightType::Q4_0, &[0.0; 32], &mut q[..17]).is_err());
        let mut y = [0f32; 33];
        assert!(dequantize_row(WeightType::Q8_0, &[0u8; 34], &mut y).is_err());
        assert!(dequantize_row(WeightType::F16, &[0u8; 3], &mut y[..2]).is_err());
        assert!(transcode_q4_0_to_qorus(&[0u8; 18], &mut [0u8; 19]).is_err());
    }
}
