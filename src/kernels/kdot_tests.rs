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
                  // sub-block 1: largest scaled magnitude 0.6 * 50 = 30 < 127.5 / 4: shift 2 (factor 2)
    x[40] = 0.6; // 30 * 4 = 120
    x[41] = -0.01; // -0.5 * 4 = -2
    x[50] = 0.0101; // 0.505 * 4 = 2.02 -> 2
                    // sub-block 2: 63.75 / 50 = 1.275 exactly at the bound (127.5 would round to 128): shift 0
    x[64] = 1.275;
    // sub-block 3: just under: 63.7 * 2 = 127.4 -> 127, shift 1 (factor 4)
    x[96] = 1.274;
    // sub-block 4: tiny: 0.1 * 50 = 5 -> 40, shift 3 (factor 1)
    x[128] = -0.1;
    // second block all zero
    let (mut qs, mut d, mut bs) = (vec![0i8; 512], vec![9f32; 2], vec![9i16; 32]);
    let mut sh = vec![9u8; 16];
    quantize_acts_k(&x, &mut qs, &mut d, &mut bs, &mut sh);
    let iscale = -127.0f32 / -2.54;
    assert_eq!(iscale, 50.0);
    assert_eq!(d[0], 1.0 / iscale);
    assert_eq!(qs[3], (2.0 * iscale).round_ties_even() as i8);
    assert_eq!(qs[7], -127);
    assert_eq!(qs[20], (1.01f32 * iscale).round_ties_even() as i8);
    assert_eq!(bs[0], 8 * (qs[3] as i16 + qs[7] as i16));
    assert_eq!(bs[1], 8 * (qs[20] as i16 + qs[21] as i16));
    assert_eq!(&sh[..8], &[3, 1, 3, 2, 0, 0, 0, 0]);
    let want = |v: f32, s: i32| ((v * iscale) * (1 << s) as f32).round_ties_even() as i8;
    assert_eq!((qs[40], qs[41], qs[50]), (want(0.6, 2), -2, 2));
    assert_eq!(qs[64], want(1.275, 0));
    assert_eq!(qs[96], want(1.274, 1));
    assert_eq!(qs[96], 127);
    assert_eq!(qs[128], want(-0.1, 3));
    assert_eq!(bs[2], 2 * (qs[40] as i16 + qs[41] as i16));
    assert_eq!(bs[3], 2 * qs[50] as i16);
    assert_eq!(bs[8], qs[128] as i16);
    assert_eq!((d[1], bs[16..].iter().any(|&v| v != 0)), (0.0, false));
    assert!(qs[256..].iter().all(|&v| v == 0));
    assert!(sh[8..].iter().all(|&v| v == 0));
    // ties in magnitude: the first one sets the sign of the scale
    let mut y = vec![0f32; 256];
    y[0] = -1.0;
    y[1] = 1.0;
    quantize_acts_k(&y, &mut qs, &mut d, &mut bs, &mut sh);
    assert_eq!((qs[0], qs[1], d[0]), (-127, 127, 1.0 / 127.0));
}

#[test]
fn q8_k_non_finite_inputs_do_not_panic() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e-45] {
        let mut x = vec![0.5f32; 256];
        x[10] = bad;
        let (mut qs, mut d, mut bs) = (vec![0i8; 256], vec![0f32; 1], vec![0i16; 16]);
        let mut sh = vec![0u8; 8];
        quantize_acts_k(&x, &mut qs, &mut d, &mut bs, &mut sh);
        assert!(sh.iter().all(|&e| e <= 3));
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
                let mut sh = vec![0u8; n / 32];
                quantize_acts_k(&x, &mut qs, &mut d, &mut bs, &mut sh);
                let a = ActRow::Q8K {
                    qs: &qs,
                    d: &d,
                    bsums: &bs,
                    sh: &sh,
                };
                // code i in units of d / 8 times its factor
                let adeq = (0..n)
                    .map(|i| d[i / QK_K] as f64 / 8.0 * (qs[i] as f64 * (1 << sh[i / 32]) as f64))
                    .collect();
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
