//! Tests of the issue-12 quantizers through [`quantize_row`]: golden bytes made by llama.cpp's
//! own `llama-quantize` (tests/data/quant_golden, scripts/reference/make_quant_golden.py),
//! round-trip error bounds through the engine's dequantizers, and edge blocks.

use crate::quant::test_util::ISSUE12_TYPES as TYPES;
use crate::quant::{dequantize_row, quantize_row, WeightType};

fn golden_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/quant_golden")
}

fn quantize(ty: WeightType, x: &[f32]) -> Vec<u8> {
    let mut q = vec![0u8; ty.row_bytes(x.len()).unwrap()];
    quantize_row(ty, x, &mut q).unwrap();
    q
}

fn dequantize(ty: WeightType, q: &[u8], n: usize) -> Vec<f32> {
    let mut y = vec![0f32; n];
    dequantize_row(ty, q, &mut y).unwrap();
    y
}

#[test]
fn bytes_equal_llama_quantize_golden() {
    const COLS: usize = 256;
    let raw = std::fs::read(golden_dir().join("input.f32")).unwrap();
    let x: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(x.len(), 16 * COLS);
    for ty in TYPES {
        let file = format!("{}.bin", ty.name().to_ascii_lowercase());
        let want = std::fs::read(golden_dir().join(file)).unwrap();
        let got = quantize(ty, &x);
        assert_eq!(got.len(), want.len(), "{}", ty.name());
        let row = ty.row_bytes(COLS).unwrap();
        for (r, (g, w)) in got.chunks(row).zip(want.chunks(row)).enumerate() {
            if let Some(i) = g.iter().zip(w).position(|(a, b)| a != b) {
                panic!(
                    "{}: row {r} differs from llama-quantize at byte {i} (block {}, byte {} of {}): \
                     {:#04x} vs {:#04x}",
                    ty.name(),
                    i / ty.block_bytes(),
                    i % ty.block_bytes(),
                    ty.block_bytes(),
                    g[i],
                    w[i]
                );
            }
        }
    }
}

/// The 2048 x 256 values of `large.txt` (scripts/reference/make_quant_golden.py::large_rows),
/// one IEEE f32 operation at a time in the script's order.
fn large_input() -> Vec<f32> {
    const ROWS: usize = 2048;
    const COLS: usize = 256;
    let mut s: u32 = 0x9E37_79B9;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        (s >> 8) as f32 * (1.0 / 16_777_216.0)
    };
    let mut x = Vec::with_capacity(ROWS * COLS);
    for r in 0..ROWS {
        let scale = 2f32.powi((r % 13) as i32 - 9);
        let offset = ((r % 5) as i32 - 2) as f32 * 0.25;
        for _ in 0..COLS {
            let (a, b, c, d) = (next(), next(), next(), next());
            let g = (((a + b) + c) + d) - 2.0;
            x.push((g + offset) * scale);
        }
    }
    for v in x.iter_mut().step_by(97) {
        *v *= 8.0;
    }
    x
}

fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[test]
fn large_set_hashes_equal_llama_quantize() {
    let text = std::fs::read_to_string(golden_dir().join("large.txt")).unwrap();
    let x = large_input();
    let mut checked = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let ty = *TYPES
            .iter()
            .find(|t| t.name().eq_ignore_ascii_case(f[0]))
            .unwrap();
        assert_eq!(
            f[1].parse::<usize>().unwrap() * f[2].parse::<usize>().unwrap(),
            x.len()
        );
        let want = u64::from_str_radix(f[3], 16).unwrap();
        let got = fnv1a64(&quantize(ty, &x));
        assert_eq!(
            got,
            want,
            "{}: hash {got:016x}, llama-quantize {want:016x}",
            ty.name()
        );
        checked += 1;
    }
    assert_eq!(checked, TYPES.len());
}

/// Deterministic Gaussian-ish values (sum of uniforms) with a per-call scale.
fn gaussian(n: usize, seed: u32, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let mut u = move || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        (s >> 8) as f32 / (1u32 << 24) as f32
    };
    (0..n)
        .map(|_| ((0..4).map(|_| u()).sum::<f32>() - 2.0) * 1.7 * scale)
        .collect()
}

#[test]
fn round_trip_error_is_bounded() {
    // relative RMS error bounds for Gaussian data: 1.15x the worst of the three scales measured
    // on 2026-12-01 (Q5_0 0.0407, Q5_1 0.0371, Q2_K 0.2889, Q3_K 0.1470, Q4_K 0.0693,
    // Q5_K 0.0352, Q6_K 0.0172, IQ4_NL 0.0745, IQ4_XS 0.0749)
    let bounds = [
        (WeightType::Q5_0, 0.047),
        (WeightType::Q5_1, 0.043),
        (WeightType::Q2_K, 0.33),
        (WeightType::Q3_K, 0.17),
        (WeightType::Q4_K, 0.080),
        (WeightType::Q5_K, 0.041),
        (WeightType::Q6_K, 0.020),
        (WeightType::IQ4_NL, 0.086),
        (WeightType::IQ4_XS, 0.087),
    ];
    let n = 256 * 64;
    for (ty, bound) in bounds {
        for (seed, scale) in [(1, 1.0f32), (2, 0.02), (3, 300.0)] {
            let x = gaussian(n, seed, scale);
            let y = dequantize(ty, &quantize(ty, &x), n);
            let err: f64 = x
                .iter()
                .zip(&y)
                .map(|(a, b)| ((a - b) as f64).powi(2))
                .sum::<f64>();
            let sig: f64 = x.iter().map(|a| (*a as f64).powi(2)).sum::<f64>();
            let rel = (err / sig).sqrt();
            assert!(
                rel < bound,
                "{}: relative RMS error {rel:.4} >= {bound}",
                ty.name()
            );
            // and no element is off by more than the largest magnitude (finite, no blow-up)
            let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (a, b) in x.iter().zip(&y) {
                assert!(
                    b.is_finite() && (a - b).abs() <= amax,
                    "{}: {a} -> {b}",
                    ty.name()
                );
            }
        }
    }
}

#[test]
fn edge_blocks() {
    for ty in TYPES {
        let n = 512;
        // all zero: every value comes back exactly zero
        let y = dequantize(ty, &quantize(ty, &vec![0.0; n]), n);
        assert!(y.iter().all(|&v| v == 0.0), "{}: zeros -> {y:?}", ty.name());
        // constant blocks come back close, both signs
        for c in [0.5f32, -0.25, 3.0e-3] {
            let y = dequantize(ty, &quantize(ty, &vec![c; n]), n);
            for &v in &y {
                assert!(
                    (v - c).abs() <= c.abs() * 0.16,
                    "{}: constant {c} -> {v}",
                    ty.name()
                );
            }
        }
        // a block with one large outlier keeps the outlier's sign and size
        let mut x = gaussian(n, 9, 0.01);
        x[100] = 4.0;
        x[300] = -4.0;
        let y = dequantize(ty, &quantize(ty, &x), n);
        for i in [100, 300] {
            assert!(
                (y[i] - x[i]).abs() <= 0.5,
                "{}: outlier {} -> {}",
                ty.name(),
                x[i],
                y[i]
            );
        }
        // tiny values (scales underflow f16): finite output, never larger than the input scale
        let x = gaussian(n, 4, 1e-9);
        let y = dequantize(ty, &quantize(ty, &x), n);
        assert!(
            y.iter().all(|v| v.is_finite() && v.abs() <= 1e-6),
            "{}",
            ty.name()
        );
        // non-finite input does not panic (the codes are unspecified, as in ggml)
        let mut x = gaussian(n, 5, 1.0);
        x[7] = f32::NAN;
        x[260] = f32::INFINITY;
        let _ = quantize(ty, &x);
    }
}

#[test]
fn rows_of_several_blocks_are_quantized_block_by_block() {
    for ty in TYPES {
        let bl = ty.block_len();
        let x = gaussian(bl * 3, 11, 1.0);
        let whole = quantize(ty, &x);
        let parts: Vec<u8> = x.chunks(bl).flat_map(|b| quantize(ty, b)).collect();
        assert_eq!(whole, parts, "{}", ty.name());
        // a row that is not whole blocks is an error, not a panic
        let mut q = vec![0u8; ty.block_bytes()];
        assert!(quantize_row(ty, &x[..bl - 1], &mut q).is_err());
    }
}
