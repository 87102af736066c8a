//! Context shift (issue 15): dropping positions and re-rotating the kept keys. After a shift,
//! layer 0's cache (which depends only on each token and its position) equals, up to rounding, the
//! cache of a fresh session that saw only the kept tokens; values move unchanged. A generation
//! with context shift runs past the context length; without it, it stops at a full context.

mod common;

use qorus::engine::{Model, Session};
use qorus::generate::{generate_ex, GenOptions, GenParams, StopReason};
use qorus::sampling::SamplingParams;

fn tokens(n: usize) -> Vec<u32> {
    (0..n).map(|i| 200 + ((i * 7919) % 3000) as u32).collect()
}

#[test]
fn shifted_layer0_cache_equals_a_fresh_one() {
    let model = Model::open(&common::model("q4_1")).unwrap();
    let t = tokens(64);
    let (keep, discard) = (4usize, 30usize);
    let mut s = Session::new(model.clone(), 64).unwrap();
    s.forward(&t).unwrap();
    s.shift(keep, discard, 64).unwrap();
    assert_eq!(s.pos(), 64 - discard);
    let kept: Vec<u32> = t[..keep]
        .iter()
        .chain(&t[keep + discard..])
        .copied()
        .collect();
    let mut f = Session::new(model.clone(), 64).unwrap();
    f.forward(&kept).unwrap();
    let l = s.kv_layout();
    let hd = l.head_dim;
    let (mut worst_k, mut worst_v) = (0f32, 0f32);
    for g in 0..l.n_kv_heads {
        for p in 0..kept.len() {
            let o = l.k_offset(0, g, p);
            for i in 0..hd {
                let (a, b) = (s.kv()[o + i], f.kv()[o + i]);
                worst_k = worst_k.max((a - b).abs() / (1.0 + b.abs()));
                let (a, b) = (s.kv()[o + hd + i], f.kv()[o + hd + i]);
                worst_v = worst_v.max((a - b).abs());
            }
        }
    }
    println!(
        "layer 0 after the shift: keys within {worst_k:e} (relative), values within {worst_v:e}"
    );
    assert!(worst_k < 1e-4, "re-rotated keys differ by {worst_k}");
    assert_eq!(worst_v, 0.0, "values must move unchanged");
    // Layers above 0 do differ (their inputs saw the dropped tokens), so the test can fail.
    let o = l.k_offset(1, 0, kept.len() - 1);
    assert!((0..hd).any(|i| s.kv()[o + i] != f.kv()[o + i]));
    assert!(s.shift(0, 0, 10).is_err());
    assert!(s.shift(10, 30, 34).is_err());
}

#[test]
fn generation_shifts_instead_of_stopping() {
    let model = Model::open(&common::model("q4_1")).unwrap();
    let prompt = tokens(10);
    let params = GenParams {
        max_tokens: 60,
        sampling: SamplingParams::GREEDY,
        eos: None,
    };
    let mut out = vec![0u32; 60];
    let mut s = Session::new(model.clone(), 32).unwrap();
    let plain = generate_ex(
        &mut s,
        &prompt,
        0,
        &params,
        &mut GenOptions::default(),
        &mut out,
        &mut |_, _| true,
    )
    .unwrap();
    assert_eq!(plain.stop, StopReason::ContextFull);
    let first = out[..plain.n_generated].to_vec();
    let mut opts = GenOptions {
        shift_keep: Some(4),
        ..GenOptions::default()
    };
    let shifted = generate_ex(
        &mut s,
        &prompt,
        0,
        &params,
        &mut opts,
        &mut out,
        &mut |_, _| true,
    )
    .unwrap();
    println!(
        "without shift: {} ids then context full; with shift: {} ids, {} shifts, final position {}",
        plain.n_generated, shifted.n_generated, shifted.n_shifts, shifted.pos
    );
    assert_eq!(shifted.stop, StopReason::MaxTokens);
    assert_eq!(shifted.n_generated, 60);
    assert!(shifted.n_shifts >= 2 && shifted.pos <= 32);
    assert_eq!(
        &out[..first.len()],
        &first[..],
        "ids before the first shift change"
    );
}
