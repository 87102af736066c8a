//! Unit tests: argmax rules, the spec vector, selection edge cases, and the kept set against a
//! naive f64 reference.

use super::*;

const U_MAX: f32 = 1.0 - 1.0 / 16_777_216.0;

fn params(t: f32, k: u32, p: f32) -> SamplingParams {
    SamplingParams {
        temperature: t,
        top_k: k,
        top_p: p,
    }
}

fn kept(logits: &[f32], k: u32, p: f32) -> Vec<u32> {
    let mut s = SamplerScratch::default();
    distribution(logits, &params(1.0, k, p), &mut s)
        .unwrap()
        .into_iter()
        .filter(|&(_, q)| q > 0.0)
        .map(|(i, _)| i)
        .collect()
}

/// Every id `sample_with_u` returns over a fine grid of u (including the extremes).
fn reachable(logits: &[f32], k: u32, p: f32) -> Vec<u32> {
    let mut s = SamplerScratch::default();
    let mut seen = std::collections::BTreeSet::new();
    let n = 20_000;
    for j in 0..=n {
        let u = if j == n { U_MAX } else { j as f32 / n as f32 };
        seen.insert(sample_with_u(logits, &params(1.0, k, p), u, &mut s).unwrap());
    }
    seen.into_iter().collect()
}

#[test]
fn argmax_first_maximum_and_nan_rules() {
    assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
    assert_eq!(argmax(&[f32::NAN, 5.0, 6.0]), 0);
    assert_eq!(argmax(&[1.0, f32::NAN, 0.5]), 0);
    assert_eq!(argmax(&[f32::NEG_INFINITY, f32::NAN, -3.0]), 2);
    assert_eq!(argmax(&[1.0, f32::NAN, 7.0, 7.0]), 2);
    assert_eq!(argmax(&[f32::NEG_INFINITY; 4]), 0);
    assert_eq!(argmax(&[-0.0, 0.0]), 0);
    assert_eq!(argmax(&[0.0, f32::INFINITY, f32::INFINITY]), 1);
    assert_eq!(argmax(&[]), 0);
}

#[test]
fn spec_vector_8_1() {
    let mut rng = Rng::default();
    let mut s = SamplerScratch::new(8).unwrap();
    let logits = [0f32; 8];
    let p = params(1.0, 8, 0.0);
    let got: Vec<u32> = (0..4)
        .map(|_| sample(&logits, &p, &mut rng, &mut s).unwrap())
        .collect();
    assert_eq!(got, [7, 3, 2, 1]);
    let before = rng;
    assert_eq!(
        sample(&logits, &params(0.0, 8, 0.0), &mut rng, &mut s).unwrap(),
        0
    );
    assert_eq!(rng, before, "greedy must not advance the RNG");
    assert_eq!(sample(&logits, &p, &mut rng, &mut s).unwrap(), 4);
}

#[test]
fn greedy_ignores_filters_and_threshold_is_1e6() {
    let logits = [0.5f32, 2.0, 1.0];
    let mut rng = Rng::default();
    let mut s = SamplerScratch::default();
    for t in [0.0f32, -0.0, 1e-7, 9.99e-7] {
        let before = rng;
        assert_eq!(
            sample(&logits, &params(t, 1, 0.1), &mut rng, &mut s).unwrap(),
            1
        );
        assert_eq!(rng, before);
    }
    let before = rng;
    sample(&logits, &params(1e-6, 0, 0.0), &mut rng, &mut s).unwrap();
    assert_ne!(rng, before, "T = 1e-6 samples (one draw)");
}

#[test]
fn errors_leave_rng_and_nothing_else_touched() {
    let mut rng = Rng::default();
    let mut s = SamplerScratch::default();
    let before = rng;
    assert!(matches!(
        sample(&[], &params(1.0, 0, 0.0), &mut rng, &mut s),
        Err(Error::InvalidSize(_))
    ));
    for t in [-1.0f32, -1e-30, f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        assert!(matches!(
            sample(&[1.0], &params(t, 0, 0.0), &mut rng, &mut s),
            Err(Error::InvalidArg(_))
        ));
    }
    // Size is checked before temperature (spec order).
    assert!(matches!(
        sample(&[], &params(f32::NAN, 0, 0.0), &mut rng, &mut s),
        Err(Error::InvalidSize(_))
    ));
    assert_eq!(rng, before);
    assert!(sample_with_u(&[1.0], &params(1.0, 0, 0.0), 1.0, &mut s).is_err());
}

#[test]
fn one_draw_per_non_greedy_call() {
    let mut rng = Rng::new(99);
    let mut reference = Rng::new(99);
    let mut s = SamplerScratch::default();
    for (k, p) in [(0, 0.0), (1, 0.0), (3, 0.5), (0, 0.9), (100, 1.0)] {
        sample(&[1.0, 2.0, 3.0, 0.5], &params(0.8, k, p), &mut rng, &mut s).unwrap();
        reference.next_u32();
        assert_eq!(rng, reference);
    }
    // A single-token vocabulary still draws.
    assert_eq!(
        sample(&[3.0], &params(1.0, 0, 0.0), &mut rng, &mut s).unwrap(),
        0
    );
    reference.next_u32();
    assert_eq!(rng, reference);
}

#[test]
fn top_k_one_is_the_argmax_with_lower_id_on_ties() {
    assert_eq!(kept(&[0.1, 3.0, -2.0, 2.9], 1, 0.0), [1]);
    assert_eq!(reachable(&[0.1, 3.0, -2.0, 2.9], 1, 0.0), [1]);
    assert_eq!(kept(&[1.0, 5.0, 5.0, 5.0], 1, 0.0), [1]);
}

#[test]
fn top_k_v_minus_one_drops_the_minimum() {
    assert_eq!(kept(&[0.0, 1.0, -1.0, 2.0], 3, 0.0), [0, 1, 3]);
    assert_eq!(reachable(&[0.0, 1.0, -1.0, 2.0], 3, 0.0), [0, 1, 3]);
    // Tied minimum: the higher id goes.
    assert_eq!(kept(&[0.0, 1.0, 0.0, 2.0], 3, 0.0), [0, 1, 3]);
    // k >= V: every token, unfiltered.
    assert_eq!(kept(&[0.0, 1.0, 0.0, 2.0], 4, 0.0), [0, 1, 2, 3]);
    assert_eq!(kept(&[0.0, 1.0, 0.0, 2.0], 40, 0.0), [0, 1, 2, 3]);
}

#[test]
fn ties_are_broken_by_lower_id() {
    let logits = [2.0f32; 10];
    assert_eq!(kept(&logits, 3, 0.0), [0, 1, 2]);
    let mut s = SamplerScratch::default();
    let d = distribution(&logits, &params(1.0, 3, 0.0), &mut s).unwrap();
    assert!(d.iter().all(|&(_, q)| (q - 1.0 / 3.0).abs() < 1e-12));
    // Nucleus of a flat distribution: 0.25 of 10 tokens needs 3 (0.3 >= 0.25).
    assert_eq!(kept(&logits, 0, 0.25), [0, 1, 2]);
    // Tie straddling the top-k boundary.
    assert_eq!(kept(&[0.0, 1.0, 3.0, 1.0, 1.0], 3, 0.0), [1, 2, 3]);
}

#[test]
fn tiny_top_p_keeps_only_the_top_token() {
    assert_eq!(kept(&[0.0, 1.0, 0.5, 0.9], 0, 1e-9), [1]);
    assert_eq!(kept(&[0.0, 1.0, 0.5, 1.0], 0, f32::MIN_POSITIVE), [1]);
    assert_eq!(reachable(&[0.0, 1.0, 0.5, 0.9], 0, 1e-9), [1]);
    assert_eq!(kept(&[0.0, 1.0, 0.5, 0.9], 2, 1e-9), [1]);
}

#[test]
fn top_p_close_to_one_drops_only_a_negligible_tail() {
    // exp(-20) ≈ 2e-9 of the mass: outside the 0.999999 nucleus.
    assert_eq!(kept(&[0.0, 0.0, -20.0], 0, 0.999_999), [0, 1]);
    assert_eq!(reachable(&[0.0, 0.0, -20.0], 0, 0.999_999), [0, 1]);
    // exp(-9) ≈ 6e-5 per token twice: inside it.
    assert_eq!(kept(&[0.0, -9.0, 0.0, -9.0], 0, 0.999_999), [0, 1, 2, 3]);
    // top_p >= 1 (and NaN, and <= 0) is inactive; with top-k it leaves the top-k set (E3).
    for p in [1.0f32, 1.5, f32::NAN, 0.0, -0.5] {
        assert_eq!(kept(&[0.0, 3.0, 1.0, 2.0], 2, p), [1, 3], "p = {p}");
        assert_eq!(reachable(&[0.0, 3.0, 1.0, 2.0], 2, p), [1, 3], "p = {p}");
    }
}

#[test]
fn top_p_applies_to_the_renormalised_top_k() {
    let logits: Vec<f32> = [0.4f64, 0.3, 0.2, 0.1]
        .iter()
        .map(|p| p.ln() as f32)
        .collect();
    // Alone: 0.4 < 0.5 <= 0.7, two tokens.
    assert_eq!(kept(&logits, 0, 0.5), [0, 1]);
    // After top-2: 4/7 >= 0.5, one token.
    assert_eq!(kept(&logits, 2, 0.5), [0]);
    // After top-3 renormalised (4/9, 3/9, 2/9) the 0.75 nucleus is {0, 1} (7/9 ≈ 0.78).
    assert_eq!(kept(&logits, 3, 0.75), [0, 1]);
    // Without top-k, 0.75 needs three tokens (0.7 < 0.75 <= 0.9).
    assert_eq!(kept(&logits, 0, 0.75), [0, 1, 2]);
}

#[test]
fn neg_inf_logits_are_never_drawn() {
    let ninf = f32::NEG_INFINITY;
    let logits = [ninf, 1.0, ninf, 0.0, ninf];
    for (k, p) in [(0, 0.0), (4, 0.0), (0, 0.99), (4, 0.999_999), (2, 0.0)] {
        assert_eq!(reachable(&logits, k, p), [1, 3], "k = {k}, p = {p}");
    }
    // NaN counts as -inf outside greedy.
    let logits = [f32::NAN, 1.0, f32::NAN, 0.0];
    assert_eq!(reachable(&logits, 0, 0.0), [1, 3]);
    // Only +inf tokens carry mass.
    let logits = [1.0, f32::INFINITY, 0.0, f32::INFINITY];
    assert_eq!(reachable(&logits, 0, 0.0), [1, 3]);
    assert_eq!(reachable(&logits, 1, 0.0), [1]);
    // Nothing finite: uniform over everything (or over the top-k set).
    let all = [ninf, f32::NAN, ninf, ninf];
    assert_eq!(reachable(&all, 0, 0.0), [0, 1, 2, 3]);
    assert_eq!(reachable(&all, 2, 0.0), [0, 1]);
    // Overflow of logits / T is the +inf case.
    let mut s = SamplerScratch::default();
    let id = sample_with_u(&[3e38, 1.0, 2e38], &params(1e-5, 0, 0.0), 0.9, &mut s).unwrap();
    assert!(id == 0 || id == 2);
}

#[test]
fn draw_extremes_and_inverse_cdf_order() {
    let mut s = SamplerScratch::default();
    let logits = [0f32; 4];
    let pick = |u: f32, s: &mut SamplerScratch| {
        sample_with_u(&logits, &params(1.0, 0, 0.0), u, s).unwrap()
    };
    assert_eq!(pick(0.0, &mut s), 0);
    assert_eq!(pick(0.2499, &mut s), 0);
    assert_eq!(pick(0.25, &mut s), 1, "running sum must exceed u strictly");
    assert_eq!(pick(0.75, &mut s), 3);
    assert_eq!(pick(U_MAX, &mut s), 3);
    // Kept ids are walked in ascending id order, not in probability order.
    let logits = [0.0f32, 5.0, 4.9, -1.0];
    let first = sample_with_u(&logits, &params(1.0, 2, 0.0), 0.0, &mut s).unwrap();
    assert_eq!(first, 1);
    let last = sample_with_u(&logits, &params(1.0, 2, 0.0), U_MAX, &mut s).unwrap();
    assert_eq!(last, 2);
}

#[test]
fn plain_temperature_is_the_exact_softmax() {
    let logits: Vec<f32> = (0..300).map(|i| ((i * 37) % 101) as f32 * 0.05).collect();
    for t in [0.3f32, 1.0, 2.5] {
        let mut s = SamplerScratch::default();
        let d = distribution(&logits, &params(t, 0, 0.0), &mut s).unwrap();
        assert_eq!(d.len(), logits.len());
        let m = logits
            .iter()
            .cloned()
            .fold(f64::MIN, |a, b| a.max(b as f64));
        let z: f64 = logits
            .iter()
            .map(|&l| ((l as f64 - m) / t as f64).exp())
            .sum();
        for (i, q) in d {
            let want = ((logits[i as usize] as f64 - m) / t as f64).exp() / z;
            assert!(
                (q - want).abs() <= 1e-6 * want + 1e-12,
                "{i}: {q} vs {want}"
            );
        }
    }
}

/// The naive reference: f64 softmax, full sort (prob desc, id asc), top-k, renormalise, nucleus.
fn reference_kept(logits: &[f32], t: f32, k: u32, p: f32) -> (Vec<u32>, f64) {
    let m = logits
        .iter()
        .cloned()
        .fold(f64::MIN, |a, b| a.max(b as f64));
    let probs: Vec<f64> = logits
        .iter()
        .map(|&l| ((l as f64 - m) / t as f64).exp())
        .collect();
    let mut order: Vec<u32> = (0..logits.len() as u32).collect();
    order.sort_by(|&a, &b| {
        probs[b as usize]
            .partial_cmp(&probs[a as usize])
            .unwrap()
            .then(a.cmp(&b))
    });
    if k > 0 && (k as usize) < logits.len() {
        order.truncate(k as usize);
    }
    // Distance of p from the nearest prefix mass: how ambiguous the boundary is.
    let mut margin = f64::INFINITY;
    if p > 0.0 && p < 1.0 {
        let total: f64 = order.iter().map(|&i| probs[i as usize]).sum();
        let mut cum = 0.0;
        let mut n = order.len();
        for (j, &i) in order.iter().enumerate() {
            cum += probs[i as usize] / total;
            margin = margin.min((cum - p as f64).abs());
            if cum >= p as f64 {
                n = j + 1;
                break;
            }
        }
        order.truncate(n);
    }
    order.sort_unstable();
    (order, margin)
}

#[test]
fn kept_set_matches_a_naive_reference_including_large_nuclei() {
    let mut rng = Rng::new(2024);
    let mut s = SamplerScratch::default();
    let mut checked = 0;
    for case in 0..60 {
        let v = [5usize, 64, 65, 300, 1000, 5000][case % 6];
        let spread = [0.01f32, 0.5, 3.0, 10.0][case % 4];
        let logits: Vec<f32> = (0..v).map(|_| (rng.next_unit() - 0.5) * spread).collect();
        for (k, p) in [
            (0, 0.5f32),
            (0, 0.9),
            (0, 0.99),
            (1, 0.0),
            (7, 0.0),
            (40, 0.8),
            (200, 0.95),
            (v as u32 - 1, 0.3),
        ] {
            for t in [0.7f32, 1.3] {
                let (want, margin) = reference_kept(&logits, t, k, p);
                if margin < 1e-6 {
                    continue; // the boundary is within rounding: either answer is right
                }
                let got: Vec<u32> = distribution(&logits, &params(t, k, p), &mut s)
                    .unwrap()
                    .into_iter()
                    .map(|(i, _)| i)
                    .collect();
                assert_eq!(got, want, "v = {v}, k = {k}, p = {p}, t = {t}");
                checked += 1;
            }
        }
    }
    assert!(checked > 900, "only {checked} unambiguous cases");
}

#[test]
fn scratch_is_reused_across_sizes() {
    let mut s = SamplerScratch::new(100).unwrap();
    assert_eq!(s.capacity(), 100);
    let mut rng = Rng::default();
    let big: Vec<f32> = (0..100).map(|i| i as f32 * 0.01).collect();
    sample(&big, &params(1.0, 10, 0.9), &mut rng, &mut s).unwrap();
    let id = sample(&[0.0, 9.0, 0.0], &params(1.0, 1, 0.0), &mut rng, &mut s).unwrap();
    assert_eq!(id, 1);
    assert_eq!(s.capacity(), 100);
    let mut small = SamplerScratch::default();
    sample(&big, &params(1.0, 0, 0.0), &mut rng, &mut small).unwrap();
    assert_eq!(small.capacity(), 100);
}
