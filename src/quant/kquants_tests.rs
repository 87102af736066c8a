//! Dequantization of the K-quant family: hand-computed values, and random blocks against a
//! line-by-line transcription of ggml's `dequantize_row_*` loops (a second, independently
//! structured implementation: pointer walks and shifts as in `ggml-quants.c`).

use super::*;
use crate::quant::reference::f32_to_f16_bits;
use crate::quant::test_util::{XorShift, ISSUE12_TYPES as TYPES};

fn h(x: f32) -> [u8; 2] {
    f32_to_f16_bits(x).to_le_bytes()
}

fn deq(ty: WeightType, blk: &[u8]) -> Vec<f32> {
    let mut y = vec![0f32; ty.block_len()];
    dequantize_blocks(ty, blk, &mut y);
    y
}

#[test]
fn q5_0_by_hand() {
    let mut b = [0u8; 22];
    b[0..2].copy_from_slice(&h(0.5));
    b[2..6].copy_from_slice(&(1u32 | 1 << 16 | 1 << 31).to_le_bytes());
    b[6] = 0x3A; // element 0: 0xA | 16 = 26 -> 10; element 16: 3 | 16 = 19 -> 3
    b[6 + 15] = 0xF0; // element 15: 0 -> -16; element 31: 15 | 16 = 31 -> 15
    let y = deq(WeightType::Q5_0, &b);
    assert_eq!(
        (y[0], y[16], y[15], y[31], y[1]),
        (5.0, 1.5, -8.0, 7.5, -8.0)
    );
}

#[test]
fn q5_1_by_hand() {
    let mut b = [0u8; 24];
    b[0..2].copy_from_slice(&h(0.25));
    b[2..4].copy_from_slice(&h(-1.0));
    b[4..8].copy_from_slice(&(1u32 << 17).to_le_bytes());
    b[8 + 1] = 0x27; // element 1: 7 -> 0.75; element 17: 2 | 16 = 18 -> 3.5
    let y = deq(WeightType::Q5_1, &b);
    assert_eq!((y[1], y[17], y[0]), (0.75, 3.5, -1.0));
}

#[test]
fn iq4_nl_by_hand() {
    let mut b = [0u8; 18];
    b[0..2].copy_from_slice(&h(2.0));
    b[2 + 3] = 0xF0; // element 3: code 0 -> -127; element 19: code 15 -> 113
    let y = deq(WeightType::IQ4_NL, &b);
    assert_eq!((y[3], y[19], y[0]), (-254.0, 226.0, -254.0));
}

#[test]
fn q4_k_by_hand() {
    let mut b = [0u8; 144];
    b[0..2].copy_from_slice(&h(0.5)); // d
    b[2..4].copy_from_slice(&h(0.25)); // dmin
                                       // sub-block 1: scale 3, min 5 (j < 4: scales[j] & 63, scales[j + 4] & 63)
    b[4 + 1] = 3;
    b[4 + 5] = 5;
    // sub-block 6: scale = (scales[10] & 15) | (scales[2] >> 6) << 4 = 2 | 1 << 4 = 18,
    // min = (scales[10] >> 4) | (scales[6] >> 6) << 4 = 1 | 2 << 4 = 33
    b[4 + 10] = 0x12;
    b[4 + 2] = 0x40;
    b[4 + 6] = 0x80;
    // value 32 + 7 (sub-block 1): high nibble of qs[7] = 9 -> 0.5*3*9 - 0.25*5 = 12.25
    b[16 + 7] = 0x90;
    // value 192 + 1 (sub-block 6): low nibble of qs[96 + 1] = 4 -> 0.5*18*4 - 0.25*33 = 27.75
    b[16 + 97] = 0x04;
    let y = deq(WeightType::Q4_K, &b);
    assert_eq!((y[39], y[193], y[40]), (12.25, 27.75, -1.25));
}

#[test]
fn q6_k_by_hand() {
    let mut b = [0u8; 210];
    b[208..210].copy_from_slice(&h(0.125));
    b[192 + 9] = (-4i8) as u8; // scale of values 144..160
                               // value 128 + 16 + 2 = 146: ql[64 + 18] low nibble, qh[32 + 18] bits 0..1 (q1 of half 1)
    b[64 + 18] = 0x0B;
    b[128 + 32 + 18] = 0b10;
    // q = 11 | 2 << 4 = 43 -> 43 - 32 = 11 -> 0.125 * -4 * 11 = -5.5
    let y = deq(WeightType::Q6_K, &b);
    assert_eq!(y[146], -5.5);
    assert_eq!(y[147], 0.125 * -4.0 * -32.0);
}

#[test]
fn q3_k_by_hand() {
    let mut b = [0u8; 110];
    b[108..110].copy_from_slice(&h(1.0));
    // scale 13 (values 208..224): low = scales[5] >> 4, high = (scales[9] >> 6) & 3
    b[96 + 5] = 0x70;
    b[96 + 9] = 0b1100_0000; // -> 7 | 3 << 4 = 55 -> 23
                             // value 208 + 3 = 128 + 2*32 + 16 + 3: qs[32 + 19] bits 4..5, hmask[19] bit 6
    b[32 + 32 + 19] = 0b10_0000; // low 2 bits = 2
    b[19] = 1 << 6; // high bit set: q = 2
    let y = deq(WeightType::Q3_K, &b);
    assert_eq!(y[211], 46.0);
    // value 212: low 0, high bit clear -> -4; scale 23
    assert_eq!(y[212], -92.0);
}

#[test]
fn q2_k_by_hand() {
    let mut b = [0u8; 84];
    b[80..82].copy_from_slice(&h(0.5));
    b[82..84].copy_from_slice(&h(2.0));
    b[3] = 0x2B; // sub-block 3 (values 48..64): scale 11, min 2
                 // value 48 + 5 = 32 + 16 + 5: qs[16 + 5] bits 2..3
    b[16 + 21] = 0b1100;
    let y = deq(WeightType::Q2_K, &b);
    assert_eq!(y[53], 0.5 * 11.0 * 3.0 - 4.0);
    assert_eq!(y[54], -4.0);
}

#[test]
fn iq4_xs_by_hand() {
    let mut b = [0u8; 136];
    b[0..2].copy_from_slice(&h(0.5));
    // sub-block 5: low 4 bits = scales_l[2] >> 4, high 2 bits = (scales_h >> 10) & 3
    b[4 + 2] = 0x30;
    b[2..4].copy_from_slice(&(2u16 << 10).to_le_bytes()); // ls = 3 | 32 = 35 -> 3
    b[8 + 16 * 5 + 4] = 0xE0; // value 160 + 4: code 0 -> -127; value 160 + 20: code 14 -> 89
    let y = deq(WeightType::IQ4_XS, &b);
    assert_eq!((y[164], y[180]), (0.5 * 3.0 * -127.0, 0.5 * 3.0 * 89.0));
}

// ---------------------------------------------------------------------------------------------
// ggml's loops, transcribed

fn f16v(b: &[u8], o: usize) -> f32 {
    f16_bits_to_f32(u16::from_le_bytes([b[o], b[o + 1]]))
}

fn ggml_dequant(ty: WeightType, x: &[u8], y: &mut [f32]) {
    match ty {
        WeightType::Q5_0 | WeightType::Q5_1 => {
            let one = ty == WeightType::Q5_1;
            let d = f16v(x, 0);
            let m = if one { f16v(x, 2) } else { 0.0 };
            let o = if one { 4 } else { 2 };
            let qh = u32::from_le_bytes(x[o..o + 4].try_into().unwrap());
            for j in 0..16 {
                let xh_0 = (((qh >> j) << 4) & 0x10) as i32;
                let xh_1 = ((qh >> (j + 12)) & 0x10) as i32;
                let x0 = ((x[o + 4 + j] & 0x0F) as i32) | xh_0;
                let x1 = ((x[o + 4 + j] >> 4) as i32) | xh_1;
                if one {
                    y[j] = x0 as f32 * d + m;
                    y[j + 16] = x1 as f32 * d + m;
                } else {
                    y[j] = (x0 - 16) as f32 * d;
                    y[j + 16] = (x1 - 16) as f32 * d;
                }
            }
        }
        WeightType::IQ4_NL => {
            let d = f16v(x, 0);
            for j in 0..16 {
                y[j] = d * KVALUES_IQ4NL[(x[2 + j] & 0xf) as usize] as f32;
                y[j + 16] = d * KVALUES_IQ4NL[(x[2 + j] >> 4) as usize] as f32;
            }
        }
        WeightType::Q2_K => {
            let (d, min) = (f16v(x, 80), f16v(x, 82));
            let mut q = 16;
            let (mut is, mut yi) = (0, 0);
            for _n in 0..2 {
                let mut shift = 0;
                for _j in 0..4 {
                    for half in 0..2 {
                        let sc = x[is];
                        is += 1;
                        let dl = d * (sc & 0xF) as f32;
                        let ml = min * (sc >> 4) as f32;
                        for l in 0..16 {
                            y[yi] = dl * ((x[q + l + 16 * half] >> shift) & 3) as f32 - ml;
                            yi += 1;
                        }
                    }
                    shift += 2;
                }
                q += 32;
            }
        }
        WeightType::Q3_K => {
            let d_all = f16v(x, 108);
            let mut aux = [0u32; 4];
            for (i, a) in aux.iter_mut().enumerate().take(3) {
                *a = u32::from_le_bytes(x[96 + 4 * i..100 + 4 * i].try_into().unwrap());
            }
            let (kmask1, kmask2) = (0x0303_0303u32, 0x0f0f_0f0fu32);
            let tmp = aux[2];
            aux[2] = ((aux[0] >> 4) & kmask2) | (((tmp >> 4) & kmask1) << 4);
            aux[3] = ((aux[1] >> 4) & kmask2) | (((tmp >> 6) & kmask1) << 4);
            aux[0] = (aux[0] & kmask2) | ((tmp & kmask1) << 4);
            aux[1] = (aux[1] & kmask2) | (((tmp >> 2) & kmask1) << 4);
            let scales: Vec<i8> = aux
                .iter()
                .flat_map(|a| a.to_le_bytes())
                .map(|b| b as i8)
                .collect();
            let (mut q, mut m, mut is, mut yi) = (32usize, 1u8, 0, 0);
            for _n in 0..2 {
                let mut shift = 0;
                for _j in 0..4 {
                    for half in 0..2 {
                        let dl = d_all * (scales[is] as i32 - 32) as f32;
                        is += 1;
                        for l in 16 * half..16 * half + 16 {
                            let v = ((x[q + l] >> shift) & 3) as i32
                                - if x[l] & m != 0 { 0 } else { 4 };
                            y[yi] = dl * v as f32;
                            yi += 1;
                        }
                    }
                    shift += 2;
                    m <<= 1;
                }
                q += 32;
            }
        }
        WeightType::Q4_K | WeightType::Q5_K => {
            let five = ty == WeightType::Q5_K;
            let (d, min) = (f16v(x, 0), f16v(x, 2));
            let mut ql = if five { 48 } else { 16 };
            let (mut is, mut yi, mut u1, mut u2) = (0, 0, 1u8, 2u8);
            for _j in 0..4 {
                let (sc, m) = scale_min_k4(is, &x[4..16]);
                let (d1, m1) = (d * sc as f32, min * m as f32);
                let (sc, m) = scale_min_k4(is + 1, &x[4..16]);
                let (d2, m2) = (d * sc as f32, min * m as f32);
                for l in 0..32 {
                    let hb = if five && x[16 + l] & u1 != 0 { 16 } else { 0 };
                    y[yi] = d1 * ((x[ql + l] & 0xF) + hb) as f32 - m1;
                    yi += 1;
                }
                for l in 0..32 {
                    let hb = if five && x[16 + l] & u2 != 0 { 16 } else { 0 };
                    y[yi] = d2 * ((x[ql + l] >> 4) + hb) as f32 - m2;
                    yi += 1;
                }
                ql += 32;
                is += 2;
                u1 <<= 2;
                u2 <<= 2;
            }
        }
        WeightType::Q6_K => {
            let d = f16v(x, 208);
            for n in 0..2 {
                let (ql, qh, sc) = (64 * n, 128 + 32 * n, 192 + 8 * n);
                for l in 0..32 {
                    let is = l / 16;
                    let q1 = ((x[ql + l] & 0xF) | ((x[qh + l] & 3) << 4)) as i32 - 32;
                    let q2 = ((x[ql + l + 32] & 0xF) | (((x[qh + l] >> 2) & 3) << 4)) as i32 - 32;
                    let q3 = ((x[ql + l] >> 4) | (((x[qh + l] >> 4) & 3) << 4)) as i32 - 32;
                    let q4 = ((x[ql + l + 32] >> 4) | (((x[qh + l] >> 6) & 3) << 4)) as i32 - 32;
                    let s = |k: usize| x[sc + is + k] as i8 as f32;
                    y[128 * n + l] = d * s(0) * q1 as f32;
                    y[128 * n + l + 32] = d * s(2) * q2 as f32;
                    y[128 * n + l + 64] = d * s(4) * q3 as f32;
                    y[128 * n + l + 96] = d * s(6) * q4 as f32;
                }
            }
        }
        WeightType::IQ4_XS => {
            let d = f16v(x, 0);
            let sh = u16::from_le_bytes([x[2], x[3]]) as i32;
            for ib in 0..8 {
                let ls = ((x[4 + ib / 2] >> (4 * (ib % 2))) & 0xf) as i32
                    | (((sh >> (2 * ib)) & 3) << 4);
                let dl = d * (ls - 32) as f32;
                for j in 0..16 {
                    let b = x[8 + 16 * ib + j];
                    y[32 * ib + j] = dl * KVALUES_IQ4NL[(b & 0xf) as usize] as f32;
                    y[32 * ib + j + 16] = dl * KVALUES_IQ4NL[(b >> 4) as usize] as f32;
                }
            }
        }
        _ => unreachable!(),
    }
}

#[test]
fn random_blocks_match_ggml_loops() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for ty in TYPES {
        for _ in 0..200 {
            let mut b: Vec<u8> = (0..ty.block_bytes()).map(|_| rng.next() as u8).collect();
            for &o in f16_offsets(ty) {
                // finite scales of varied magnitude and sign
                let v = ((rng.next() % 2001) as f32 - 1000.0) * 1e-3;
                b[o..o + 2].copy_from_slice(&h(v));
            }
            let got = deq(ty, &b);
            let mut want = vec![0f32; ty.block_len()];
            ggml_dequant(ty, &b, &mut want);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "{ty:?} value {i}: {g} vs {w}");
            }
        }
    }
}
