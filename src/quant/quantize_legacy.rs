//! ggml's 5-bit 32-value block quantizers, bit for bit (`quantize_row_q5_0_ref`,
//! `quantize_row_q5_1_ref` in `ggml-quants.c`, which `llama-quantize` uses without an importance
//! matrix).
//!
//! Layouts (`ggml-common.h`): Q5_0 = f16 `d`, 4 bytes `qh`, 16 bytes `qs` (22 bytes); Q5_1 = f16
//! `d`, f16 `m`, `qh`, `qs` (24 bytes). Element `j < 16` has its low 4 bits in the low nibble of
//! `qs[j]`, element `j + 16` in the high nibble; bit 4 of element `j` is bit `j` of the
//! little-endian u32 `qh`. Values are `(q - 16) * d` (Q5_0) and `q * d + m` (Q5_1).

use crate::quant::reference::{f32_to_f16_bits, min_max};

/// Bytes of a Q5_0 block.
pub const Q5_0_BYTES: usize = 22;
/// Bytes of a Q5_1 block.
pub const Q5_1_BYTES: usize = 24;

/// Packs 32 five-bit codes into `qh` (u32 LE) and `qs`.
fn pack5(codes: &[u8; 32], qh_out: &mut [u8], qs: &mut [u8]) {
    let mut qh = 0u32;
    for j in 0..16 {
        let (a, b) = (codes[j], codes[j + 16]);
        qs[j] = (a & 0x0f) | ((b & 0x0f) << 4);
        qh |= (((a & 0x10) >> 4) as u32) << j;
        qh |= (((b & 0x10) >> 4) as u32) << (j + 16);
    }
    qh_out.copy_from_slice(&qh.to_le_bytes());
}

/// Quantizes 32 values to one Q5_0 block (`quantize_row_q5_0_ref`).
pub fn quantize_block_q5_0(x: &[f32; 32], out: &mut [u8; Q5_0_BYTES]) {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut codes = [0u8; 32];
    for (c, &v) in codes.iter_mut().zip(x) {
        // MIN(31, (int8_t)(x*id + 16.5f)): truncation toward zero; `as i8` saturates where C
        // is undefined (non-finite input).
        *c = ((v * id + 16.5) as i8).min(31) as u8;
    }
    out[..2].copy_from_slice(&f32_to_f16_bits(d).to_le_bytes());
    let (qh, qs) = out[2..].split_at_mut(4);
    pack5(&codes, qh, qs);
}

/// Quantizes 32 values to one Q5_1 block (`quantize_row_q5_1_ref`).
pub fn quantize_block_q5_1(x: &[f32; 32], out: &mut [u8; Q5_1_BYTES]) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut codes = [0u8; 32];
    for (c, &v) in codes.iter_mut().zip(x) {
        // (uint8_t)((x - min)*id + 0.5f), no clamp in C: the code is at most 31 for finite input.
        *c = ((v - min) * id + 0.5) as u8;
    }
    out[..2].copy_from_slice(&f32_to_f16_bits(d).to_le_bytes());
    out[2..4].copy_from_slice(&f32_to_f16_bits(min).to_le_bytes());
    let (qh, qs) = out[4..].split_at_mut(4);
    pack5(&codes, qh, qs);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::reference::f16_bits_to_f32;

    /// Test-only decoder (the engine's dequantizers are the real ones).
    fn codes(b: &[u8]) -> [u8; 32] {
        let qh = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let qs = &b[4..];
        let mut c = [0u8; 32];
        for j in 0..16 {
            c[j] = (qs[j] & 0x0f) | ((((qh >> j) & 1) as u8) << 4);
            c[j + 16] = (qs[j] >> 4) | ((((qh >> (j + 16)) & 1) as u8) << 4);
        }
        c
    }

    fn sample(seed: u32) -> [f32; 32] {
        let mut s = seed;
        std::array::from_fn(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((s >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 3.0
        })
    }

    #[test]
    fn q5_0_round_trip_error_is_within_half_a_step() {
        for seed in 0..50 {
            let x = sample(seed);
            let mut b = [0u8; Q5_0_BYTES];
            quantize_block_q5_0(&x, &mut b);
            let d = f16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]));
            let c = codes(&b[2..]);
            let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
            for (j, &v) in x.iter().enumerate() {
                let y = (c[j] as f32 - 16.0) * d;
                // half a step (plus the f16 rounding of d over 16 steps); a whole step at code
                // 31, where the side opposite to the largest magnitude is cut at 15 * |d|
                let step = if c[j] == 31 { 1.0 } else { 0.5 };
                assert!(
                    (y - v).abs() <= d.abs() * step + amax * 2e-3,
                    "{seed} {j}: {v} {y}"
                );
            }
            // the largest magnitude element is code 0 (value -16*d = max)
            let jmax = (0..32).find(|&j| x[j].abs() == amax).unwrap();
            assert_eq!(c[jmax], 0);
        }
    }

    #[test]
    fn q5_1_round_trip_error_is_within_half_a_step() {
        for seed in 0..50 {
            let x = sample(seed);
            let mut b = [0u8; Q5_1_BYTES];
            quantize_block_q5_1(&x, &mut b);
            let d = f16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]));
            let m = f16_bits_to_f32(u16::from_le_bytes([b[2], b[3]]));
            let c = codes(&b[4..]);
            for (j, &v) in x.iter().enumerate() {
                assert!(c[j] <= 31);
                let y = c[j] as f32 * d + m;
                assert!((y - v).abs() <= d * 0.5 + 3.0 * 3e-3, "{seed} {j}: {v} {y}");
            }
        }
    }

    #[test]
    fn edge_blocks() {
        let mut b = [0xffu8; Q5_0_BYTES];
        quantize_block_q5_0(&[0.0; 32], &mut b);
        // d = 0 / -16 = -0 (f16 0x8000, as ggml writes it), every code 16: qs nibbles 0, qh ones
        assert_eq!(&b[..2], &[0x00, 0x80]);
        assert_eq!(&b[2..6], &[0xff; 4]);
        assert_eq!(&b[6..], &[0; 16]);
        let mut b = [0u8; Q5_0_BYTES];
        quantize_block_q5_0(&[-2.0; 32], &mut b);
        // d = -2/-16 = 0.125; -2 * 8 + 16.5 = 0.5 -> code 0
        assert_eq!(f16_bits_to_f32(u16::from_le_bytes([b[0], b[1]])), 0.125);
        assert_eq!(codes(&b[2..]), [0; 32]);
        let mut b = [0xffu8; Q5_1_BYTES];
        quantize_block_q5_1(&[1.5; 32], &mut b);
        // max == min: d = 0, m = 1.5, codes 0
        assert_eq!(&b[..2], &[0, 0]);
        assert_eq!(f16_bits_to_f32(u16::from_le_bytes([b[2], b[3]])), 1.5);
        assert_eq!(codes(&b[4..]), [0; 32]);
        // non-finite input does not panic
        let mut x = [1.0f32; 32];
        x[3] = f32::NAN;
        x[4] = f32::INFINITY;
        quantize_block_q5_0(&x, &mut [0; Q5_0_BYTES]);
        quantize_block_q5_1(&x, &mut [0; Q5_1_BYTES]);
    }
}
