//! Kernel tests: scalar twins against independent f64 references, and every SIMD level this
//! machine has against the scalar twin, on random and edge inputs.

#![allow(clippy::needless_range_loop)]

use super::*;
use crate::kernels::dispatch::available;

/// xorshift64* — deterministic test data.
pub(crate) struct Rng(u64);
impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub(crate) fn f(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub(crate) fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
}

/// Input flavours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Fill {
    Random,
    Zero,
    Large,
}

pub(crate) const QTYPES: [WeightType; 4] = [
    WeightType::Q4_0,
    WeightType::Q4_1,
    WeightType::Q8_0,
    WeightType::QorusQ4_0,
];
pub(crate) const FTYPES: [WeightType; 3] = [WeightType::F32, WeightType::F16, WeightType::BF16];

/// A random matrix of `rows x cols` in format `ty`.
pub(crate) fn rand_matrix(
    ty: WeightType,
    rows: usize,
    cols: usize,
    rng: &mut Rng,
    fill: Fill,
) -> Vec<u8> {
    let rb = ty.row_bytes(cols).unwrap();
    let mut v = vec![0u8; rows * rb];
    let mag = match fill {
        Fill::Random => 1.0,
        Fill::Zero => 0.0,
        Fill::Large => 3.0e4,
    };
    let f16b = |x: f32| half::f16::from_f32(x).to_bits().to_le_bytes();
    for r in 0..rows {
        let row = &mut v[r * rb..(r + 1) * rb];
        match ty {
            WeightType::F32 => {
                for c in 0..cols {
                    row[4 * c..4 * c + 4].copy_from_slice(&(rng.f() * mag).to_le_bytes());
                }
            }
            WeightType::F16 => {
                for c in 0..cols {
                    row[2 * c..2 * c + 2].copy_from_slice(&f16b(rng.f() * mag));
                }
            }
            WeightType::BF16 => {
                for c in 0..cols {
                    let b = ((rng.f() * mag).to_bits() >> 16) as u16;
                    row[2 * c..2 * c + 2].copy_from_slice(&b.to_le_bytes());
                }
            }
            _ => {
                let bb = ty.block_bytes();
                for blk in row.chunks_exact_mut(bb) {
                    for b in blk.iter_mut() {
                        *b = if fill == Fill::Zero { 0 } else { rng.byte() };
                    }
                    let sc =
                        rng.f().abs() * 0.05 * mag + if fill == Fill::Zero { 0.0 } else { 1e-3 };
                    match ty {
                        WeightType::Q4_0 | WeightType::Q8_0 => blk[0..2].copy_from_slice(&f16b(sc)),
                        WeightType::Q4_1 => {
                            blk[0..2].copy_from_slice(&f16b(sc));
                            blk[2..4].copy_from_slice(&f16b(-sc * 8.0 * rng.f().abs()));
                        }
                        WeightType::QorusQ4_0 => {
                            blk[16..20].copy_from_slice(&(sc * 1.0001).to_le_bytes())
                        }
                        _ => unreachable!(),
                    }
                }
            }
        }
    }
    v
}

pub(crate) fn rand_vec(n: usize, rng: &mut Rng, fill: Fill) -> Vec<f32> {
    (0..n)
        .map(|_| match fill {
            Fill::Random => rng.f(),
            Fill::Zero => 0.0,
            Fill::Large => rng.f() * 1.0e3,
        })
        .collect()
}

struct Q8Acts {
    qs: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
}

fn q8(x: &[f32], lv: Level) -> Q8Acts {
    let nb = x.len() / QK;
    let mut a = Q8Acts {
        qs: vec![0; x.len()],
        d: vec![0.0; nb],
        s: vec![0.0; nb],
    };
    quantize_acts_at(lv, x, &mut a.qs, &mut a.d, &mut a.s);
    a
}

/// f64 reference dot of a dequantized weight row with a vector; also returns Σ|w x| (a scale for
/// tolerances).
fn ref_dot(w: &[f32], x: &[f64]) -> (f64, f64) {
    let mut s = 0.0;
    let mut m = 0.0;
    for (a, b) in w.iter().zip(x) {
        s += *a as f64 * b;
        m += (*a as f64 * b).abs();
    }
    (s, m)
}

#[test]
fn quantize_acts_follows_ggml() {
    let mut rng = Rng::new(1);
    let mut x = rand_vec(32 * 7, &mut rng, Fill::Random);
    x[32..64].iter_mut().for_each(|v| *v = 0.0); // an all-zero block
    x[64] = 127.0; // exact halves after scaling: 0.5 * 127/127
    x[65] = 0.5;
    x[66] = -1.5;
    x[67] = 2.5;
    for lv in available() {
        let a = q8(&x, lv);
        for b in 0..7 {
            let xb = &x[b * 32..b * 32 + 32];
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert_eq!(
                a.d[b],
                half::f16::from_f32(amax / 127.0).to_f32(),
                "{lv:?} d[{b}]"
            );
            let id = if amax == 0.0 { 0.0 } else { 127.0 / amax };
            let mut sum = 0;
            for j in 0..32 {
                let q = (xb[j] * id).round_ties_even() as i32;
                assert_eq!(a.qs[b * 32 + j] as i32, q, "{lv:?} qs[{b},{j}]");
                sum += q;
            }
            assert_eq!(
                a.s[b],
                half::f16::from_f32(amax / 127.0 * sum as f32).to_f32(),
                "{lv:?} s[{b}]"
            );
        }
        assert!(a.qs[32..64].iter().all(|&q| q == 0) && a.d[1] == 0.0 && a.s[1] == 0.0);
        // round half to even: 0.5 -> 0, -1.5 -> -2, 2.5 -> 2
        assert_eq!(&a.qs[64..68], &[127, 0, -2, 2], "{lv:?}");
    }
}

#[test]
fn dequantize_row_matches_block_definitions() {
    // Hand-built blocks: value = (q - 8) * d etc.
    let mut rng = Rng::new(2);
    for ty in QTYPES.iter().chain(FTYPES.iter()).copied() {
        let cols = 64;
        let data = rand_matrix(ty, 3, cols, &mut rng, Fill::Random);
        let w = MatRef {
            ty,
            data: &data,
            rows: 3,
            cols,
        };
        let mut out = vec![0f32; cols];
        dequantize_row(w, 2, &mut out);
        let row = &data[2 * w.row_bytes()..];
        for c in 0..cols {
            let (b, j) = (c / 32, c % 32);
            let expect = match ty {
                WeightType::F32 => scalar::f32_at(row, 4 * c),
                WeightType::F16 => scalar::f16_at(row, 2 * c),
                WeightType::BF16 => scalar::bf16_at(row, 2 * c),
                WeightType::Q4_0 => {
                    let blk = &row[b * 18..];
                    let byte = blk[2 + j % 16];
                    let q = if j < 16 { byte & 15 } else { byte >> 4 };
                    (q as f32 - 8.0) * scalar::f16_at(blk, 0)
                }
                WeightType::Q4_1 => {
                    let blk = &row[b * 20..];
                    let byte = blk[4 + j % 16];
                    let q = if j < 16 { byte & 15 } else { byte >> 4 };
                    q as f32 * scalar::f16_at(blk, 0) + scalar::f16_at(blk, 2)
                }
                WeightType::Q8_0 => {
                    let blk = &row[b * 34..];
                    blk[2 + j] as i8 as f32 * scalar::f16_at(blk, 0)
                }
                WeightType::QorusQ4_0 => {
                    let blk = &row[b * 20..];
                    let byte = blk[j / 2];
                    let q = if j % 2 == 0 { byte & 15 } else { byte >> 4 };
                    (q as f32 - 8.0) * scalar::f32_at(blk, 16)
                }
                other => unreachable!("{other:?} is not in this test's type list"),
            };
            assert_eq!(out[c], expect, "{ty:?} col {c}");
        }
    }
}

/// Runs `matmul_at(lv)` and returns `out` (n x ldo, NaN where not written).
fn run_matmul(
    lv: Level,
    w: MatRef<'_>,
    x: &[f32],
    n: usize,
    rows: Range<usize>,
    ldo: usize,
) -> Vec<f32> {
    let k = w.cols;
    let mut out = vec![f32::NAN; n * ldo];
    if wants_q8(w.ty) {
        let a = q8(x, Level::Scalar);
        let acts = Acts::Q8 {
            qs: &a.qs,
            d: &a.d,
            s: &a.s,
            n,
            k,
        };
        unsafe { matmul_at(lv, w, acts, rows, out.as_mut_ptr(), ldo) };
    } else {
        unsafe { matmul_at(lv, w, Acts::F32 { x, n, k }, rows, out.as_mut_ptr(), ldo) };
    }
    out
}

#[test]
fn scalar_matmul_matches_f64_reference() {
    let mut rng = Rng::new(3);
    for ty in QTYPES.iter().chain(FTYPES.iter()).copied() {
        for &(rows, k, n) in &[(5usize, 64usize, 1usize), (7, 96, 3), (3, 256, 2)] {
            let data = rand_matrix(ty, rows, k, &mut rng, Fill::Random);
            let w = MatRef {
                ty,
                data: &data,
                rows,
                cols: k,
            };
            let x = rand_vec(n * k, &mut rng, Fill::Random);
            let out = run_matmul(Level::Scalar, w, &x, n, 0..rows, rows);
            // Reference: dequantized weights times (dequantized, if Q8) activations in f64.
            let xr: Vec<f64> = if wants_q8(ty) {
                let a = q8(&x, Level::Scalar);
                (0..n * k)
                    .map(|c| a.qs[c] as f64 * a.d[c / 32] as f64)
                    .collect()
            } else {
                x.iter().map(|&v| v as f64).collect()
            };
            let mut wr = vec![0f32; k];
            for j in 0..rows {
                dequantize_row(w, j, &mut wr);
                for i in 0..n {
                    let (e, m) = ref_dot(&wr, &xr[i * k..(i + 1) * k]);
                    // Q4_1 uses s = f16(d * Σq): allow its rounding (2^-11 relative per block).
                    let tol = if ty == WeightType::Q4_1 {
                        2e-3 * m
                    } else {
                        1e-5 * m
                    } + 1e-6;
                    let got = out[i * rows + j] as f64;
                    assert!(
                        (got - e).abs() <= tol,
                        "{ty:?} ({rows},{k},{n}) [{i},{j}]: {got} vs {e}"
                    );
                }
            }
        }
    }
}

/// Every level against the scalar twin: random and edge inputs, odd row ranges, n = 1..9.
#[test]
fn matmul_levels_match_scalar() {
    let mut rng = Rng::new(4);
    for ty in QTYPES.iter().chain(FTYPES.iter()).copied() {
        for fill in [Fill::Random, Fill::Zero, Fill::Large] {
            for &(rows, k) in &[
                (37usize, 96usize),
                (19, 32),
                (33, 576),
                (5, 1024),
                (64, 160),
            ] {
                let data = rand_matrix(ty, rows, k, &mut rng, fill);
                let w = MatRef {
                    ty,
                    data: &data,
                    rows,
                    cols: k,
                };
                for n in 1..=9 {
                    let x = rand_vec(n * k, &mut rng, fill);
                    let ldo = rows + 3;
                    for range in [
                        0..rows,
                        1..rows.min(12),
                        3..rows,
                        rows / 2..rows / 2 + 1,
                        2..2,
                    ] {
                        let want = run_matmul(Level::Scalar, w, &x, n, range.clone(), ldo);
                        for lv in available() {
                            let got = run_matmul(lv, w, &x, n, range.clone(), ldo);
                            compare_out(&want, &got, n, ldo, &range, &w, &x, &format!("{ty:?} {fill:?} {lv:?} rows={rows} k={k} n={n} range={range:?}"));
                        }
                    }
                }
            }
        }
    }
}

/// Elements inside `range` agree to a tolerance scaled by Σ|w x|; elements outside are untouched.
#[allow(clippy::too_many_arguments)]
fn compare_out(
    want: &[f32],
    got: &[f32],
    n: usize,
    ldo: usize,
    range: &Range<usize>,
    w: &MatRef<'_>,
    x: &[f32],
    what: &str,
) {
    let k = w.cols;
    let mut wr = vec![0f32; k];
    for j in 0..ldo {
        let inside = range.contains(&j);
        if inside {
            dequantize_row(*w, j, &mut wr);
        }
        for i in 0..n {
            let (a, b) = (want[i * ldo + j], got[i * ldo + j]);
            if !inside {
                assert!(b.is_nan(), "{what}: wrote outside rows at [{i},{j}]");
                continue;
            }
            let m: f64 = wr
                .iter()
                .zip(&x[i * k..(i + 1) * k])
                .map(|(p, q)| (*p as f64 * *q as f64).abs())
                .sum();
            let tol = 2e-5 * m + 1e-30;
            assert!(
                ((a - b) as f64).abs() <= tol,
                "{what}: [{i},{j}] scalar {a} vs {b} (tol {tol})"
            );
        }
    }
}

#[test]
fn vector_kernels_levels_match_scalar() {
    let mut rng = Rng::new(5);
    for len in [1usize, 2, 7, 8, 15, 16, 17, 31, 64, 100, 576, 1537] {
        for fill in [Fill::Random, Fill::Zero, Fill::Large] {
            let x = rand_vec(len, &mut rng, fill);
            let y = rand_vec(len, &mut rng, fill);
            let g = rand_vec(len, &mut rng, Fill::Random);
            for lv in available() {
                let what = format!("{lv:?} len={len} {fill:?}");
                // dot
                let (a, b) = (scalar::dot(&x, &y), dot_at(lv, &x, &y));
                let m: f32 = x.iter().zip(&y).map(|(p, q)| (p * q).abs()).sum();
                assert!((a - b).abs() <= 1e-5 * m + 1e-30, "dot {what}: {a} vs {b}");
                // axpy
                let mut y1 = y.clone();
                let mut y2 = y.clone();
                scalar::axpy(0.37, &x, &mut y1);
                axpy_at(lv, 0.37, &x, &mut y2);
                for i in 0..len {
                    assert!(
                        (y1[i] - y2[i]).abs() <= 1e-6 * (y[i].abs() + (0.37 * x[i]).abs()) + 1e-30,
                        "axpy {what} [{i}]"
                    );
                }
                // scale: exact
                let mut s1 = x.clone();
                let mut s2 = x.clone();
                scalar::scale(&mut s1, -1.7);
                scale_at(lv, &mut s2, -1.7);
                assert_eq!(s1, s2, "scale {what}");
                // rmsnorm
                let mut o1 = vec![0f32; len];
                let mut o2 = vec![0f32; len];
                scalar::rmsnorm(&x, &g, 1e-5, &mut o1);
                rmsnorm_at(lv, &x, &g, 1e-5, &mut o2);
                for i in 0..len {
                    assert!(
                        (o1[i] - o2[i]).abs() <= 2e-6 * o1[i].abs() + 1e-30,
                        "rmsnorm {what} [{i}] {} vs {}",
                        o1[i],
                        o2[i]
                    );
                }
                // softmax
                let mut p1 = x.clone();
                let mut p2 = x.clone();
                scalar::softmax(&mut p1);
                softmax_at(lv, &mut p2);
                for i in 0..len {
                    assert!(
                        (p1[i] - p2[i]).abs() <= 4e-6 * p1[i] + 1e-38,
                        "softmax {what} [{i}] {} vs {}",
                        p1[i],
                        p2[i]
                    );
                }
                // swiglu
                scalar::swiglu(&x, &g, &mut o1);
                swiglu_at(lv, &x, &g, &mut o2);
                for i in 0..len {
                    assert!(
                        (o1[i] - o2[i]).abs() <= 4e-6 * o1[i].abs() + 1e-37,
                        "swiglu {what} [{i}] x={} {} vs {}",
                        x[i],
                        o1[i],
                        o2[i]
                    );
                }
                // rope
                let ang: Vec<f32> = (0..len / 2).map(|i| i as f32 * 0.37).collect();
                let (c, s): (Vec<f32>, Vec<f32>) = ang.iter().map(|a| (a.cos(), a.sin())).unzip();
                let mut r1 = x.clone();
                let mut r2 = x.clone();
                scalar::rope(&mut r1, &c, &s);
                rope_at(lv, &mut r2, &c, &s);
                for i in 0..len {
                    assert!(
                        (r1[i] - r2[i]).abs()
                            <= 1e-6 * (x[i].abs() + x[if i ^ 1 < len { i ^ 1 } else { i }].abs())
                                + 1e-30,
                        "rope {what} [{i}]"
                    );
                }
            }
        }
    }
}

#[test]
fn softmax_and_silu_are_accurate() {
    // Against f64 math: softmax and swiglu within a few ulps.
    let mut rng = Rng::new(6);
    for lv in available() {
        let mut x: Vec<f32> = (0..300).map(|_| rng.f() * 40.0).collect();
        x[5] = -1e30;
        let mut p = x.clone();
        softmax_at(lv, &mut p);
        let m = x.iter().fold(f32::MIN, |a, &b| a.max(b));
        // The f32 subtraction x - max is part of the definition; the rest in f64.
        let z: f64 = x.iter().map(|&v| ((v - m) as f64).exp()).sum();
        for i in 0..x.len() {
            let e = ((x[i] - m) as f64).exp() / z;
            assert!(
                (p[i] as f64 - e).abs() <= 1e-6 * e + 1e-40,
                "{lv:?} softmax[{i}] {} vs {e}",
                p[i]
            );
        }
        let g: Vec<f32> = (0..300).map(|i| (i as f32 - 150.0) * 0.7).collect();
        let u = vec![1f32; 300];
        let mut o = vec![0f32; 300];
        swiglu_at(lv, &g, &u, &mut o);
        for i in 0..300 {
            let gv = g[i] as f64;
            let e = gv / (1.0 + (-gv).exp());
            assert!(
                (o[i] as f64 - e).abs() <= 1e-6 * e.abs() + 1e-35,
                "{lv:?} silu({gv}) = {} vs {e}",
                o[i]
            );
        }
    }
}

#[test]
fn rmsnorm_matches_definition() {
    let x = [1.0f32, -2.0, 3.0, 4.0];
    let w = [1.0f32, 0.5, 2.0, -1.0];
    let mut out = [0f32; 4];
    for lv in available() {
        rmsnorm_at(lv, &x, &w, 1e-5, &mut out);
        let r = 1.0 / ((30.0f64 / 4.0) + 1e-5).sqrt();
        for i in 0..4 {
            assert!(
                (out[i] as f64 - x[i] as f64 * r * w[i] as f64).abs() < 1e-6,
                "{lv:?}"
            );
        }
    }
}
