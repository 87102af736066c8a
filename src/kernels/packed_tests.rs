//! Packed-layout tests: packing round-trips, the scalar twin against an f64 reference, every
//! SIMD level bit-identical to the scalar twin, and outputs independent of the row split and of
//! the number of activation rows.

#![allow(clippy::needless_range_loop)]

use super::*;
use crate::kernels::dispatch::available;
use crate::kernels::tests::{rand_matrix, rand_vec, Fill, Rng};
use crate::kernels::{dequantize_row, quantize_acts_at};

const PTYPES: [WeightType; 3] = [WeightType::Q4_0, WeightType::Q4_1, WeightType::Q8_0];

struct Q8 {
    qs: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
}

fn q8(x: &[f32]) -> Q8 {
    let nb = x.len() / QK;
    let mut a = Q8 {
        qs: vec![0; x.len()],
        d: vec![0.0; nb],
        s: vec![0.0; nb],
    };
    quantize_acts_at(Level::Scalar, x, &mut a.qs, &mut a.d, &mut a.s);
    a
}

fn run(lv: Level, p: PackedRef<'_>, a: &Q8, n: usize, rows: Range<usize>, ldo: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; n * ldo];
    let acts = Acts::Q8 {
        qs: &a.qs,
        d: &a.d,
        s: &a.s,
        n,
        k: p.cols,
    };
    unsafe { matmul_packed_at(lv, p, acts, rows, out.as_mut_ptr(), ldo) };
    out
}

fn same_bits(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn pack_round_trips_rows() {
    let mut rng = Rng::new(11);
    for ty in PTYPES {
        for &(rows, cols) in &[(1usize, 32usize), (13, 96), (37, 576), (16, 64)] {
            let data = rand_matrix(ty, rows, cols, &mut rng, Fill::Random);
            let w = MatRef {
                ty,
                data: &data,
                rows,
                cols,
            };
            let p = pack(w).expect("packable");
            assert_eq!(p.as_ref().data.as_ptr() as usize % 64, 0, "64-byte aligned");
            let (mut a, mut b) = (vec![0f32; cols], vec![0f32; cols]);
            for r in 0..rows {
                dequantize_row(w, r, &mut a);
                dequantize_row_packed(p.as_ref(), r, &mut b);
                assert!(
                    a.iter().zip(&b).all(|(x, y)| same_bits(*x, *y)),
                    "{ty:?} {rows}x{cols} row {r}"
                );
            }
        }
    }
    assert!(!packable(WeightType::F16, 64) && !packable(WeightType::Q4_0, 48));
    assert!(!packable(WeightType::QorusQ4_0, 64));
}

#[test]
fn packed_scalar_matches_f64_reference() {
    let mut rng = Rng::new(12);
    for ty in PTYPES {
        for &(rows, k, n) in &[(13usize, 64usize, 1usize), (8, 576, 3), (21, 256, 2)] {
            let data = rand_matrix(ty, rows, k, &mut rng, Fill::Random);
            let w = MatRef {
                ty,
                data: &data,
                rows,
                cols: k,
            };
            let p = pack(w).unwrap();
            let x = rand_vec(n * k, &mut rng, Fill::Random);
            let a = q8(&x);
            let out = run(Level::Scalar, p.as_ref(), &a, n, 0..rows, rows);
            let mut wr = vec![0f32; k];
            for j in 0..rows {
                dequantize_row(w, j, &mut wr);
                for i in 0..n {
                    let (mut e, mut m) = (0f64, 0f64);
                    for c in 0..k {
                        let xv = a.qs[i * k + c] as f64 * a.d[(i * k + c) / QK] as f64;
                        e += wr[c] as f64 * xv;
                        m += (wr[c] as f64 * xv).abs();
                    }
                    let tol = if ty == WeightType::Q4_1 { 2e-3 } else { 1e-5 } * m + 1e-6;
                    let got = out[i * rows + j] as f64;
                    assert!((got - e).abs() <= tol, "{ty:?} [{i},{j}]: {got} vs {e}");
                }
            }
        }
    }
}

/// Every level gives exactly the scalar twin's bits, for every row range and n; an output does
/// not depend on the row range it was computed in nor on the other activation rows.
#[test]
fn packed_levels_bit_identical() {
    let mut rng = Rng::new(13);
    for ty in PTYPES {
        for fill in [Fill::Random, Fill::Zero, Fill::Large] {
            for &(rows, k) in &[
                (37usize, 96usize),
                (8, 32),
                (33, 576),
                (64, 1024),
                (19, 160),
                (11, 1600),
                (300, 64), // more than one 256-row panel (AVX-512 VNNI)
            ] {
                let data = rand_matrix(ty, rows, k, &mut rng, fill);
                let w = MatRef {
                    ty,
                    data: &data,
                    rows,
                    cols: k,
                };
                let p = pack(w).unwrap();
                let pr = p.as_ref();
                for n in [1usize, 2, 3, 4, 5, 9, 17] {
                    let x = rand_vec(n * k, &mut rng, fill);
                    let a = q8(&x);
                    let ldo = rows + 3;
                    let full = run(Level::Scalar, pr, &a, n, 0..rows, ldo);
                    for lv in available() {
                        for range in [0..rows, 8..rows, 0..rows.min(5), 16..rows.min(17), 8..8] {
                            if range.start > rows || range.end < range.start {
                                continue;
                            }
                            let got = run(lv, pr, &a, n, range.clone(), ldo);
                            for i in 0..n {
                                for j in 0..ldo {
                                    let idx = i * ldo + j;
                                    if range.contains(&j) {
                                        assert!(
                                            same_bits(got[idx], full[idx]),
                                            "{ty:?} {fill:?} {lv:?} {rows}x{k} n={n} {range:?} [{i},{j}]: {} vs {}",
                                            got[idx],
                                            full[idx]
                                        );
                                    } else {
                                        assert!(got[idx].is_nan(), "wrote outside the range");
                                    }
                                }
                            }
                        }
                        // one activation row alone gives the same bits
                        let last = n - 1;
                        let one = Q8 {
                            qs: a.qs[last * k..(last + 1) * k].to_vec(),
                            d: a.d[last * k / QK..(last + 1) * k / QK].to_vec(),
                            s: a.s[last * k / QK..(last + 1) * k / QK].to_vec(),
                        };
                        let got = run(lv, pr, &one, 1, 0..rows, ldo);
                        for j in 0..rows {
                            assert!(
                                same_bits(got[j], full[last * ldo + j]),
                                "{ty:?} {lv:?} n=1 vs n={n}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// SIMD activation quantization gives the scalar twin's bits, non-finite inputs included.
#[test]
fn quantize_acts_levels_bit_identical() {
    let mut rng = Rng::new(14);
    for fill in [Fill::Random, Fill::Zero, Fill::Large] {
        let mut x = rand_vec(32 * 40, &mut rng, fill);
        x[3] = f32::NAN;
        x[40] = f32::INFINITY;
        x[70] = f32::NEG_INFINITY;
        x[100] = f32::NAN;
        x[101] = 1e30;
        x[200] = -0.0;
        x[300] = 1e-40; // subnormal
        let want = q8(&x);
        for lv in available() {
            let nb = x.len() / QK;
            let mut got = Q8 {
                qs: vec![0; x.len()],
                d: vec![0.0; nb],
                s: vec![0.0; nb],
            };
            quantize_acts_at(lv, &x, &mut got.qs, &mut got.d, &mut got.s);
            assert_eq!(got.qs, want.qs, "{lv:?} {fill:?} qs");
            for b in 0..nb {
                assert!(same_bits(got.d[b], want.d[b]), "{lv:?} d[{b}]");
                assert!(same_bits(got.s[b], want.s[b]), "{lv:?} s[{b}]");
            }
        }
    }
}

/// The Q8_K quantizer gives the same codes, scales and sums at every level, over random blocks,
/// all-zero blocks, ties of magnitude, and blocks holding NaN, infinities or subnormals.
#[test]
fn quantize_acts_k_levels_bit_identical() {
    let mut rng = Rng::new(15);
    let mut seen = [false; 4];
    for fill in [Fill::Random, Fill::Zero, Fill::Large] {
        let mut x = rand_vec(256 * 12, &mut rng, fill);
        assert_eq!(x.len(), 3072);
        // sub-blocks of different magnitudes: every factor exponent occurs
        for c in x.chunks_mut(32) {
            let f = [1.0, 0.4, 0.2, 0.05, 0.01][(rng.next() % 5) as usize];
            c.iter_mut().for_each(|v| *v *= f);
        }
        x[3] = f32::NAN;
        x[256 + 40] = f32::INFINITY;
        x[512 + 70] = f32::NEG_INFINITY;
        x[768 + 1] = 1e30;
        x[1024 + 5] = -0.0;
        x[1280 + 9] = 1e-40; // subnormal
        x[1536 + 10] = 7.5; // a tie of magnitude: the first one's sign wins
        x[1536 + 200] = -7.5;
        x[1792..2048].fill(0.0);
        x[2048..2304]
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (i as f32 - 128.0) * 0.5); // exact halves
        x[2304 + 17] = -3.0e-39;
        x[2560 + 3] = 1e-38; // tiny block: -127 / max is finite
        x[2816..3072].fill(1e-39); // tinier: -127 / max overflows
        let n = x.len();
        let (mut wq, mut wd, mut wb) = (vec![0i8; n], vec![0f32; n / 256], vec![0i16; n / 16]);
        let mut we = vec![0u8; n / 32];
        super::super::kdot::quantize_acts_k(&x, &mut wq, &mut wd, &mut wb, &mut we);
        assert!(we.iter().all(|&e| e <= 3));
        we.iter().for_each(|&e| seen[e as usize] = true);
        for lv in available() {
            let (mut q, mut d, mut b) = (vec![1i8; n], vec![1f32; n / 256], vec![1i16; n / 16]);
            let mut e = vec![9u8; n / 32];
            super::super::quantize_acts_k_at(lv, &x, &mut q, &mut d, &mut b, &mut e);
            let first = e.iter().zip(&we).position(|(a, b)| a != b);
            assert_eq!(first, None, "{lv:?} {fill:?}: first different factor");
            let first = q.iter().zip(&wq).position(|(a, b)| a != b);
            assert_eq!(first, None, "{lv:?} {fill:?}: first different code");
            let first = b.iter().zip(&wb).position(|(a, b)| a != b);
            assert_eq!(first, None, "{lv:?} {fill:?}: first different sum");
            for i in 0..d.len() {
                assert!(
                    same_bits(d[i], wd[i]),
                    "{lv:?} {fill:?} d[{i}]: {} vs {}",
                    d[i],
                    wd[i]
                );
            }
        }
    }
    assert_eq!(seen, [true; 4], "every factor exponent tested");
}

/// With the shifts limited to 0 (`QORUS_Q8K_SUBSCALES=0`), every level gives ggml's plain Q8_K
/// (`quantize_row_q8_K_ref`): codes `round_half_even(iscale * x)`, `d = 1 / iscale`, sums per 16,
/// here carried as factor exponent 3 and sums times 8 (the unit `d / 8`).
#[test]
fn quantize_acts_k_without_subscales_is_ggml_q8_k() {
    let mut rng = Rng::new(16);
    let mut x = rand_vec(256 * 6, &mut rng, Fill::Random);
    for c in x.chunks_mut(32) {
        let f = [1.0, 0.3, 0.02][(rng.next() % 3) as usize];
        c.iter_mut().for_each(|v| *v *= f);
    }
    x[256 + 9] = 7.5; // a tie of magnitude: the first one's sign wins
    x[256 + 100] = -7.5;
    let n = x.len();
    for lv in available() {
        let (mut q, mut d, mut b) = (vec![1i8; n], vec![1f32; n / 256], vec![1i16; n / 16]);
        let mut e = vec![9u8; n / 32];
        super::super::quantize_acts_k_max_at(lv, &x, &mut q, &mut d, &mut b, &mut e, 0);
        assert!(e.iter().all(|&e| e == 3), "{lv:?}: factor exponents");
        for (k, xb) in x.chunks_exact(256).enumerate() {
            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
            let max = *xb.iter().find(|v| v.abs() == amax).unwrap();
            let iscale = -127.0 / max;
            assert!(same_bits(d[k], 1.0 / iscale), "{lv:?} d[{k}]");
            for (i, &v) in xb.iter().enumerate() {
                let want = (iscale * v).round_ties_even().clamp(-127.0, 127.0) as i8;
                assert_eq!(q[256 * k + i], want, "{lv:?} code {}", 256 * k + i);
            }
            for h in 0..16 {
                let sum: i32 = q[256 * k + 16 * h..256 * k + 16 * h + 16]
                    .iter()
                    .map(|&c| c as i32)
                    .sum();
                assert_eq!(b[16 * k + h] as i32, 8 * sum, "{lv:?} sum {}", 16 * k + h);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The K-quant family (packed_k.rs, x86_packed_k.rs)

const KTYPES: [WeightType; 9] = [
    WeightType::Q5_0,
    WeightType::Q5_1,
    WeightType::IQ4_NL,
    WeightType::Q2_K,
    WeightType::Q3_K,
    WeightType::Q4_K,
    WeightType::Q5_K,
    WeightType::Q6_K,
    WeightType::IQ4_XS,
];

/// Random rows of `ty` with f16 scales of the given fill (zero: all scales 0; large: up to 1e3;
/// some NaN/Inf scales too when `nonfinite`).
fn rand_k_matrix(ty: WeightType, rows: usize, cols: usize, rng: &mut Rng, fill: Fill) -> Vec<u8> {
    let mut r = crate::quant::test_util::XorShift(rng.next() | 1);
    let mut data = Vec::with_capacity(rows * ty.row_bytes(cols).unwrap());
    for _ in 0..rows {
        data.extend(crate::quant::test_util::random_k_weights(ty, cols, &mut r));
    }
    if fill != Fill::Random {
        let fields = crate::quant::kquants::f16_offsets(ty);
        for blk in data.chunks_exact_mut(ty.block_bytes()) {
            for &o in fields {
                let v = match fill {
                    Fill::Zero => 0.0,
                    _ => rng.f() * 1.0e3,
                };
                let h = crate::quant::reference::f32_to_f16_bits(v);
                blk[o..o + 2].copy_from_slice(&h.to_le_bytes());
            }
        }
    }
    data
}

/// `rand_vec(n, Random)` with each 32-value sub-block scaled by one of 1, 0.4, 0.2, 0.05, 0.01
/// (at random): every Q8_K factor exponent (0..=3) occurs.
fn rand_vec_sub(n: usize, rng: &mut Rng) -> Vec<f32> {
    let mut x = rand_vec(n, rng, Fill::Random);
    for c in x.chunks_mut(32) {
        let f = [1.0, 0.4, 0.2, 0.05, 0.01][(rng.next() % 5) as usize];
        c.iter_mut().for_each(|v| *v *= f);
    }
    x
}

/// Activations in the form `ty` takes: (codes, scales, sums or bsums as f32/i16).
struct KA {
    qs: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
    bs: Vec<i16>,
    sh: Vec<u8>,
}

fn kacts(ty: WeightType, x: &[f32]) -> KA {
    let n = x.len();
    let mut a = KA {
        qs: vec![0; n],
        d: vec![],
        s: vec![],
        bs: vec![],
        sh: vec![],
    };
    if super::super::wants_q8k(ty) {
        a.d = vec![0.0; n / 256];
        a.bs = vec![0; n / 16];
        a.sh = vec![0; n / 32];
        super::super::quantize_acts_k(x, &mut a.qs, &mut a.d, &mut a.bs, &mut a.sh);
    } else {
        a.d = vec![0.0; n / QK];
        a.s = vec![0.0; n / QK];
        quantize_acts_at(Level::Scalar, x, &mut a.qs, &mut a.d, &mut a.s);
    }
    a
}

fn kview<'a>(ty: WeightType, a: &'a KA, n: usize, k: usize) -> Acts<'a> {
    if super::super::wants_q8k(ty) {
        Acts::Q8K {
            qs: &a.qs,
            d: &a.d,
            bsums: &a.bs,
            sh: &a.sh,
            n,
            k,
        }
    } else {
        Acts::Q8 {
            qs: &a.qs,
            d: &a.d,
            s: &a.s,
            n,
            k,
        }
    }
}

#[test]
fn k_pack_round_trips_rows() {
    let mut rng = Rng::new(21);
    for ty in KTYPES {
        for &(rows, sbs) in &[(1usize, 1usize), (13, 3), (37, 2), (16, 6)] {
            let cols = sbs * ty.block_len();
            let data = rand_k_matrix(ty, rows, cols, &mut rng, Fill::Random);
            let w = MatRef {
                ty,
                data: &data,
                rows,
                cols,
            };
            let p = pack(w).expect("packable");
            let (mut a, mut b) = (vec![0f32; cols], vec![0f32; cols]);
            for r in 0..rows {
                dequantize_row(w, r, &mut a);
                dequantize_row_packed(p.as_ref(), r, &mut b);
                assert!(
                    a.iter().zip(&b).all(|(x, y)| same_bits(*x, *y)),
                    "{ty:?} {rows}x{cols} row {r}"
                );
            }
        }
    }
    assert!(!packable(WeightType::Q4_K, 576) && packable(WeightType::Q5_0, 576));
}

/// Packed products at every level, over row ranges and batch sizes, equal the unpacked scalar
/// kernel (`kdot`) bit for bit; an output does not depend on the other activation rows.
#[test]
fn k_packed_levels_bit_identical_to_unpacked_scalar() {
    let mut rng = Rng::new(22);
    for ty in KTYPES {
        for fill in [Fill::Random, Fill::Zero, Fill::Large] {
            for &(rows, sbs) in &[(37usize, 3usize), (8, 1), (19, 2), (64, 6)] {
                let k = sbs * ty.block_len();
                let data = rand_k_matrix(ty, rows, k, &mut rng, fill);
                let w = MatRef {
                    ty,
                    data: &data,
                    rows,
                    cols: k,
                };
                let p = pack(w).unwrap();
                let pr = p.as_ref();
                for n in [1usize, 3, 9] {
                    let x = rand_vec_sub(n * k, &mut rng);
                    let a = kacts(ty, &x);
                    let ldo = rows + 3;
                    let mut want = vec![f32::NAN; n * ldo];
                    unsafe {
                        crate::kernels::matmul_at(
                            Level::Scalar,
                            w,
                            kview(ty, &a, n, k),
                            0..rows,
                            want.as_mut_ptr(),
                            ldo,
                        )
                    };
                    for lv in available() {
                        for range in [0..rows, 8..rows, 0..rows.min(5), 16..rows.min(17)] {
                            if range.start > rows || range.end < range.start {
                                continue;
                            }
                            let mut got = vec![f32::NAN; n * ldo];
                            let acts = kview(ty, &a, n, k);
                            let o = got.as_mut_ptr();
                            unsafe { matmul_packed_at(lv, pr, acts, range.clone(), o, ldo) };
                            for i in 0..n {
                                for j in 0..ldo {
                                    let idx = i * ldo + j;
                                    if range.contains(&j) {
                                        assert!(
                                            same_bits(got[idx], want[idx]),
                                            "{ty:?} {fill:?} {lv:?} {rows}x{k} n={n} {range:?} [{i},{j}]: {} vs {}",
                                            got[idx],
                                            want[idx]
                                        );
                                    } else {
                                        assert!(got[idx].is_nan(), "wrote outside the range");
                                    }
                                }
                            }
                        }
                        // the last activation row alone
                        let last = n - 1;
                        let one = kacts(ty, &x[last * k..]);
                        let mut got = vec![f32::NAN; ldo];
                        let acts = kview(ty, &one, 1, k);
                        unsafe { matmul_packed_at(lv, pr, acts, 0..rows, got.as_mut_ptr(), ldo) };
                        for j in 0..rows {
                            assert!(
                                same_bits(got[j], want[last * ldo + j]),
                                "{ty:?} {lv:?} n=1 vs n={n}"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Throughput of the packed matmuls at each SIMD level (prints only; run on demand with
/// `cargo test --release --lib k_packed_speed -- --ignored --nocapture`, optionally
/// `QORUS_SPEED_TYPES=q4_K,q4_0`, `QORUS_SPEED_SHAPE=rows,k,n`): by default a 4096 x 4096
/// matrix times 64 activation rows, best of 25 runs timed in thread CPU time (robust to a shared
/// machine).
#[test]
#[ignore = "timing, prints only"]
fn k_packed_speed() {
    let mut rng = Rng::new(23);
    // QORUS_SPEED_SHAPE=rows,k,n
    let shape: Vec<usize> = std::env::var("QORUS_SPEED_SHAPE")
        .unwrap_or_else(|_| "4096,4096,64".into())
        .split(',')
        .map(|v| v.trim().parse().expect("QORUS_SPEED_SHAPE=rows,k,n"))
        .collect();
    let (rows, k, n) = (shape[0], shape[1], shape[2]);
    let only = std::env::var("QORUS_SPEED_TYPES").unwrap_or_default();
    for ty in [
        WeightType::Q4_K,
        WeightType::Q6_K,
        WeightType::Q5_K,
        WeightType::Q3_K,
        WeightType::Q4_0,
        WeightType::Q8_0,
    ] {
        if !only.is_empty() && !only.split(',').any(|t| t.eq_ignore_ascii_case(ty.name())) {
            continue;
        }
        let data = if PTYPES.contains(&ty) {
            rand_matrix(ty, rows, k, &mut rng, Fill::Random)
        } else {
            rand_k_matrix(ty, rows, k, &mut rng, Fill::Random)
        };
        let w = MatRef {
            ty,
            data: &data,
            rows,
            cols: k,
        };
        let p = pack(w).unwrap();
        let x = rand_vec(n * k, &mut rng, Fill::Random);
        let a = kacts(ty, &x);
        let mut out = vec![0f32; n * rows];
        for lv in available().into_iter().filter(|&l| l != Level::Scalar) {
            let mut best = f64::MAX;
            for _ in 0..25 {
                let t = thread_cpu_secs();
                let acts = kview(ty, &a, n, k);
                unsafe { matmul_packed_at(lv, p.as_ref(), acts, 0..rows, out.as_mut_ptr(), rows) };
                best = best.min(thread_cpu_secs() - t);
            }
            let gmac = (rows * k * n) as f64 / best / 1e9;
            println!("{ty:?} {lv:?}: {:.2} ms, {gmac:.1} GMAC/s", best * 1e3);
        }
    }
}

fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
