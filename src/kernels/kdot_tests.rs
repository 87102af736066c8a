//! The K-quant family's scalar dot products and the Q8_K quantizer.

use super::*;
use crate::kernels::scalar::quantize_acts;
use crate::quant::kquants::dequantize_blocks;
use crate::quant::test_util::{random_k_weights, XorShift, ISSUE12_TYPES as TYPES};

#[test]
fn q8_k_by_hand() {
    let mut x = vec![0f32; 512];
    x[3] = 2.0;
    x[7] = -2.54; // largest magnitude: iscale = -127 / -2.54 = 50
    x[20] = 1.01; // 50.5 -> 50 (ties to even)
    x[21] = 1.03; // 51.5 -> 52
                  // second block all zero
    let (mut qs, mut d, mut bs) = (vec![0i8; 512], vec![9f32; 2], vec![9i16; 32]);
    quantize_acts_k(&x, &mut qs, &mut d, &mut bs);
    let iscale = -127.0f32 / -2.54;
    assert_eq!(d[0], 1.0 / iscale);
    assert_eq!(qs[3], (2.0 * iscale).round_ties_even() as i8);
    assert_eq!(qs[7], -127);
    assert_eq!(qs[20], (1.01f32 * iscale).round_ties_even() as i8);
    assert_eq!(bs[0], qs[3] as i16 + qs[7] as i16);
    assert_eq!(bs[1], qs[20] as i16 + qs[21] as i16);
    assert_eq!((d[1], bs[16..].iter().any(|&v| v != 0)), (0.0, false));
    assert!(qs[256..].iter().all(|&v| v == 0));
    // ties in magnitude: the first one sets the sign of the scale
    let mut y = vec![0f32; 256];
    y[0] = -1.0;
    y[1] = 1.0;
    quantize_acts_k(&y, &mut qs, &mut d, &mut bs);
    assert_eq!((qs[0], qs[1], d[0]), (-127, 127, 1.0 / 127.0));
}

#[test]
fn q8_k_non_finite_inputs_do_not_panic() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-45] {
        let mut x = vec![0.5f32; 256];
        x[10] = bad;
        let (mut qs, mut d, mut bs) = (vec![0i8; 256], vec![0f32; 1], vec![0i16; 16]);
        quantize_acts_k(&x, &mut qs, &mut d, &mut bs);
        assert!(qs.iter().all(|&q| q >= -127));
    }
}

/// The quantized dot equals the f64 dot of the dequantized weights with the dequantized
/// activations up to f32 rounding (the integer parts are exact), and the f32 dot with the
/// original activations up to the activations' 8-bit rounding.
#[test]
fn dot_matches_dequantized_dot() {
    let mut rng = XorShift(0x1234_5678_9abc_def1);
    let n = 512;
    for ty in TYPES {
        for _ in 0..20 {
            let w = random_k_weights(ty, n, &mut rng);
            let mut wf = vec![0f32; n];
            dequantize_blocks(ty, &w, &mut wf);
            let x: Vec<f32> = (0..n).map(|_| rng.f()).collect();
            let mut qs = vec![0i8; n];
            let (got, adeq): (f32, Vec<f64>) = if ty.block_len() == QK {
                let (mut d, mut s) = (vec![0f32; n / QK], vec![0f32; n / QK]);
                quantize_acts(&x, &mut qs, &mut d, &mut s);
                let a = ActRow::Q8 {
                    qs: &qs,
                    d: &d,
                    s: &s,
                };
                let got = dot_row(ty, &w, a);
                // Q5_1's min term uses s = f16(d_unrounded * sum): compare against that form.
                let adeq = (0..n).map(|i| d[i / QK] as f64 * qs[i] as f64).collect();
                if ty == WeightType::Q5_1 {
                    // value = q*dw + m: Σ q*dw*a + m*s per block
                    let mut want = 0f64;
                    for b in 0..n / QK {
                        let blk = &w[b * 24..b * 24 + 24];
                        let m = crate::quant::reference::f16_bits_to_f32(u16::from_le_bytes([
                            blk[2], blk[3],
                        ])) as f64;
                        for i in b * QK..(b + 1) * QK {
                            want += (wf[i] as f64 - m) * (d[b] as f64 * qs[i] as f64);
                        }
                        want += m * s[b] as f64;
                    }
                    let scale: f64 = (0..n).map(|i| (wf[i] as f64 * x[i] as f64).abs()).sum();
                    assert!(
                        (got as f64 - want).abs() <= 1e-5 * scale + 1e-6,
                        "{ty:?}: {got} vs {want}"
                    );
                    continue;
                }
                (got, adeq)
            } else {
                let (mut d, mut bs) = (vec![0f32; n / QK_K], vec![0i16; n / 16]);
                quantize_acts_k(&x, &mut qs, &mut d, &mut bs);
                let a = ActRow::Q8K {
                    qs: &qs,
                    d: &d,
                    bsums: &bs,
                };
                let adeq = (0..n).map(|i| d[i / QK_K] as f64 * qs[i] as f64).collect();
                (dot_row(ty, &w, a), adeq)
            };
            let want: f64 = wf.iter().zip(&adeq).map(|(&w, &a)| w as f64 * a).sum();
            let scale: f64 = wf
                .iter()
                .zip(&adeq)
                .map(|(&w, &a)| (w as f64 * a).abs())
                .sum();
            assert!(
                (got as f64 - want).abs() <= 1e-5 * scale + 1e-6,
                "{ty:?}: {got} vs {want} (scale {scale})"
            );
            // and close to the unquantized product (activation rounding: 1/254 of amax per value)
            let exact: f64 = wf.iter().zip(&x).map(|(&w, &a)| w as f64 * a as f64).sum();
            let wabs: f64 = wf.iter().map(|&w| (w as f64).abs()).sum();
            assert!(
                (got as f64 - exact).abs() <= wabs / 254.0 * 1.01 + 1e-4,
                "{ty:?}: {got} vs unquantized {exact}"
            );
        }
    }
}
