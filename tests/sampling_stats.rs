//! Statistics of the sampler: 100,000 draws from fixed logits per configuration (plain temperature
//! at T = 0.7 and 1.5, top-k, top-p, both, and a large nucleus), compared with the expected
//! distribution (computed here independently in f64) by a chi-square test at p = 0.001; tokens
//! outside the top-k / top-p set must never appear.
//!
//! Run with `cargo test --release --test sampling_stats` (it also passes, more slowly, in debug).

use qorus::sampling::{sample, Rng, SamplerScratch, SamplingParams};

const DRAWS: usize = 100_000;

// ---------------------------------------------------------------------------------------------
// Chi-square critical values: regularised lower incomplete gamma P(a, x), then bisection.

/// ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; ~1e-15 relative).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, &c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// P(a, x) = γ(a, x) / Γ(a).
fn gamma_p(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    let front = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        // Series.
        let (mut term, mut sum, mut n) = (1.0 / a, 1.0 / a, 1.0);
        while term.abs() > sum.abs() * 1e-16 {
            term *= x / (a + n);
            sum += term;
            n += 1.0;
        }
        sum * front
    } else {
        // Continued fraction for Q (modified Lentz).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..10_000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        1.0 - front * h
    }
}

/// The x with P(chi2_df <= x) = 1 - alpha.
fn chi2_critical(df: usize, alpha: f64) -> f64 {
    let k = df as f64;
    let (mut lo, mut hi) = (0.0, k + 100.0 * k.sqrt() + 100.0);
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if gamma_p(k / 2.0, mid / 2.0) < 1.0 - alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    0.5 * (lo + hi)
}

#[test]
fn critical_values_match_tables() {
    // Standard table values of the 0.999 quantile.
    for (df, want) in [
        (1, 10.828),
        (2, 13.816),
        (5, 20.515),
        (7, 24.322),
        (10, 29.588),
        (20, 45.315),
        (30, 59.703),
        (100, 149.449),
    ] {
        let got = chi2_critical(df, 0.001);
        assert!((got - want).abs() < 2e-3, "df {df}: {got} vs {want}");
    }
}

// ---------------------------------------------------------------------------------------------
// The expected distribution, independently in f64.

/// Expected probability of every id (0 outside the kept set), and the smallest distance between
/// `top_p` and a prefix mass (to make sure the nucleus boundary is not a rounding question).
fn expected(logits: &[f32], t: f64, top_k: u32, top_p: f64) -> (Vec<f64>, f64) {
    let v = logits.len();
    let m = logits.iter().map(|&l| l as f64).fold(f64::MIN, f64::max);
    let w: Vec<f64> = logits.iter().map(|&l| ((l as f64 - m) / t).exp()).collect();
    let z: f64 = w.iter().sum();
    let probs: Vec<f64> = w.iter().map(|x| x / z).collect();
    let mut order: Vec<usize> = (0..v).collect();
    order.sort_by(|&a, &b| probs[b].partial_cmp(&probs[a]).unwrap().then(a.cmp(&b)));
    if top_k > 0 && (top_k as usize) < v {
        order.truncate(top_k as usize);
    }
    let mut margin = f64::INFINITY;
    if top_p > 0.0 && top_p < 1.0 {
        let kept_mass: f64 = order.iter().map(|&i| probs[i]).sum();
        let mut cum = 0.0;
        let mut n = order.len();
        for (j, &i) in order.iter().enumerate() {
            cum += probs[i] / kept_mass;
            margin = margin.min((cum - top_p).abs());
            if cum >= top_p {
                n = j + 1;
                break;
            }
        }
        order.truncate(n);
    }
    let kept_mass: f64 = order.iter().map(|&i| probs[i]).sum();
    let mut out = vec![0.0; v];
    for &i in &order {
        out[i] = probs[i] / kept_mass;
    }
    (out, margin)
}

fn draw_counts(logits: &[f32], params: SamplingParams, seed: u64) -> Vec<u64> {
    let mut rng = Rng::new(seed);
    let mut scratch = SamplerScratch::new(logits.len()).unwrap();
    let mut counts = vec![0u64; logits.len()];
    for _ in 0..DRAWS {
        let id = sample(logits, &params, &mut rng, &mut scratch).unwrap();
        counts[id as usize] += 1;
    }
    counts
}

/// Chi-square statistic over the ids with positive expected probability, and its df.
fn chi_square(counts: &[u64], probs: &[f64]) -> (f64, usize) {
    let mut stat = 0.0;
    let mut cells = 0;
    for (&o, &p) in counts.iter().zip(probs) {
        if p > 0.0 {
            let e = p * DRAWS as f64;
            assert!(e >= 5.0, "expected count {e} too small for the test");
            stat += (o as f64 - e).powi(2) / e;
            cells += 1;
        }
    }
    (stat, cells - 1)
}

/// Draws, checks the support and the chi-square bound; returns the counts.
fn check(name: &str, logits: &[f32], t: f32, top_k: u32, top_p: f32, seed: u64) -> Vec<u64> {
    let (probs, margin) = expected(logits, t as f64, top_k, top_p as f64);
    assert!(margin > 1e-3, "{name}: ill-posed top_p boundary ({margin})");
    let params = SamplingParams {
        temperature: t,
        top_k,
        top_p,
    };
    let counts = draw_counts(logits, params, seed);
    for (i, (&o, &p)) in counts.iter().zip(&probs).enumerate() {
        if p == 0.0 {
            assert_eq!(
                o, 0,
                "{name}: id {i} is outside the kept set but was drawn {o} times"
            );
        }
    }
    let (stat, df) = chi_square(&counts, &probs);
    let crit = chi2_critical(df, 0.001);
    eprintln!(
        "{name}: kept {} ids, chi2 = {stat:.2}, df = {df}, critical(0.001) = {crit:.2}",
        df + 1
    );
    assert!(stat < crit, "{name}: chi2 {stat} >= {crit} (df {df})");
    counts
}

/// Twelve distinct logits with every softmax probability well above 5e-5 at the temperatures used.
const LOGITS: [f32; 12] = [
    1.0, 2.5, 0.3, -1.0, 2.0, 0.0, 1.7, -0.5, 3.0, 0.8, -2.0, 1.2,
];

#[test]
fn plain_temperature_0_7() {
    let counts = check("T=0.7", &LOGITS, 0.7, 0, 0.0, 1);
    assert!(counts.iter().all(|&c| c > 0));
    // Power: the same draws are rejected against the distribution of a nearby temperature.
    let (wrong, _) = expected(&LOGITS, 0.8, 0, 0.0);
    let (stat, df) = chi_square(&counts, &wrong);
    assert!(
        stat > chi2_critical(df, 0.001),
        "T=0.7 draws not distinguishable from T=0.8 ({stat})"
    );
}

#[test]
fn plain_temperature_1_5() {
    // top_k >= V and top_p >= 1 are inactive: the same distribution.
    check("T=1.5", &LOGITS, 1.5, 0, 0.0, 2);
    check("T=1.5, k=V, p=1", &LOGITS, 1.5, 12, 1.0, 3);
}

#[test]
fn top_k_only() {
    let counts = check("T=1, top_k=5", &LOGITS, 1.0, 5, 0.0, 4);
    assert_eq!(counts.iter().filter(|&&c| c > 0).count(), 5);
    check("T=0.9, top_k=11", &LOGITS, 0.9, 11, 0.0, 5);
}

#[test]
fn top_p_only() {
    let counts = check("T=1, top_p=0.8", &LOGITS, 1.0, 0, 0.8, 6);
    let n = counts.iter().filter(|&&c| c > 0).count();
    assert!(n > 1 && n < LOGITS.len(), "{n} ids drawn");
}

#[test]
fn top_k_and_top_p() {
    // The nucleus of the renormalised top-5 (4 ids) is smaller than the nucleus alone (5 ids).
    let (both, _) = expected(&LOGITS, 1.2, 5, 0.8);
    let (alone, _) = expected(&LOGITS, 1.2, 0, 0.8);
    let support = |p: &[f64]| p.iter().filter(|&&x| x > 0.0).count();
    assert_ne!(
        support(&both),
        support(&alone),
        "configuration does not separate the two"
    );
    check("T=1.2, top_k=5, top_p=0.8", &LOGITS, 1.2, 5, 0.8, 7);
    check("T=1.5, top_k=6, top_p=0.75", &LOGITS, 1.5, 6, 0.75, 12);
    check("T=1, top_k=4, top_p=0.9", &LOGITS, 1.0, 4, 0.9, 8);
}

#[test]
fn large_nucleus_beyond_the_first_chunk() {
    // 300 tokens with gently varying logits: the 0.6 nucleus holds well over 64 tokens, so the
    // chunked partial selection runs more than one round.
    let logits: Vec<f32> = (0..300)
        .map(|i| ((i * 131) % 300) as f32 / 300.0 * 1.5)
        .collect();
    let (probs, _) = expected(&logits, 1.0, 0, 0.6);
    let kept = probs.iter().filter(|&&p| p > 0.0).count();
    assert!(kept > 64 && kept < 300, "{kept}");
    check("V=300, T=1, top_p=0.6", &logits, 1.0, 0, 0.6, 9);
    check(
        "V=300, T=1, top_k=150, top_p=0.8",
        &logits,
        1.0,
        150,
        0.8,
        10,
    );
}

#[test]
fn neg_inf_logits_never_appear() {
    let mut logits = LOGITS;
    logits[8] = f32::NEG_INFINITY; // the former maximum
    logits[3] = f32::NAN;
    let (probs, _) = expected(
        &logits.map(|l| if l.is_nan() { f32::NEG_INFINITY } else { l }),
        1.0,
        0,
        0.0,
    );
    assert_eq!(probs[8], 0.0);
    let counts = draw_counts(
        &logits,
        SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.0,
        },
        11,
    );
    assert_eq!((counts[8], counts[3]), (0, 0));
    let (stat, df) = chi_square(&counts, &probs);
    assert!(stat < chi2_critical(df, 0.001), "chi2 {stat} (df {df})");
}
