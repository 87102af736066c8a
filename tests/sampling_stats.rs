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

// ---------------------------------------------------------------------------------------------
// Sampler chains (issue 15): every stage against an independent f64 reference.

use qorus::sampling::{ChainParams, SamplerChain};

/// The chain's distribution computed independently in f64: bias, penalties over `history`,
/// top-k, typical-p, top-p, min-p at the filters' temperature, then the final temperature.
/// Returns the probabilities and the smallest distance of a mass boundary from its threshold.
fn expected_chain(
    logits: &[f32],
    p: &ChainParams,
    bias: &[(u32, f32)],
    history: &[u32],
) -> (Vec<f64>, f64) {
    let v = logits.len();
    let mut x: Vec<f64> = logits.iter().map(|&l| l as f64).collect();
    for &(id, b) in bias {
        x[id as usize] += b as f64;
    }
    if p.penalty_last_n > 0 {
        let window = &history[history.len().saturating_sub(p.penalty_last_n as usize)..];
        for (id, xi) in x.iter_mut().enumerate() {
            let c = window.iter().filter(|&&h| h as usize == id).count();
            if c > 0 {
                let rp = p.repeat_penalty as f64;
                *xi = if *xi <= 0.0 { *xi * rp } else { *xi / rp };
                *xi -= c as f64 * p.frequency_penalty as f64 + p.presence_penalty as f64;
            }
        }
    }
    let tf = if p.temperature_last {
        1.0
    } else {
        p.temperature as f64
    };
    let probs_of = |set: &[usize]| -> Vec<f64> {
        let m = set.iter().map(|&i| x[i] / tf).fold(f64::MIN, f64::max);
        let w: Vec<f64> = set.iter().map(|&i| (x[i] / tf - m).exp()).collect();
        let z: f64 = w.iter().sum();
        w.iter().map(|e| e / z).collect()
    };
    let mut set: Vec<usize> = (0..v).collect();
    set.sort_by(|&a, &b| x[b].partial_cmp(&x[a]).unwrap().then(a.cmp(&b)));
    let mut margin = f64::INFINITY;
    if p.top_k > 0 && (p.top_k as usize) < v {
        set.truncate(p.top_k as usize);
    }
    if p.typical_p > 0.0 && p.typical_p < 1.0 {
        let q = probs_of(&set);
        let h: f64 = -q.iter().map(|&q| q * q.ln()).sum::<f64>();
        let mut order: Vec<usize> = (0..set.len()).collect();
        order.sort_by(|&a, &b| {
            let ka = (-q[a].ln() - h).abs();
            let kb = (-q[b].ln() - h).abs();
            ka.partial_cmp(&kb).unwrap().then(a.cmp(&b))
        });
        let mut cum = 0.0;
        let mut n = order.len();
        for (j, &o) in order.iter().enumerate() {
            cum += q[o];
            margin = margin.min((cum - p.typical_p as f64).abs());
            if cum > p.typical_p as f64 {
                n = j + 1;
                break;
            }
        }
        let mut kept: Vec<usize> = order[..n].iter().map(|&o| set[o]).collect();
        kept.sort_by(|&a, &b| x[b].partial_cmp(&x[a]).unwrap().then(a.cmp(&b)));
        set = kept;
    }
    if p.top_p > 0.0 && p.top_p < 1.0 {
        let q = probs_of(&set);
        let mut cum = 0.0;
        let mut n = set.len();
        for (j, &qi) in q.iter().enumerate() {
            cum += qi;
            margin = margin.min((cum - p.top_p as f64).abs());
            if cum >= p.top_p as f64 {
                n = j + 1;
                break;
            }
        }
        set.truncate(n);
    }
    if p.min_p > 0.0 {
        let q = probs_of(&set);
        let qmax = q.iter().cloned().fold(0.0, f64::max);
        for &qi in &q {
            margin = margin.min((qi / qmax - p.min_p as f64).abs());
        }
        set = set
            .iter()
            .zip(&q)
            .filter(|(_, &qi)| qi >= p.min_p as f64 * qmax)
            .map(|(&i, _)| i)
            .collect();
    }
    let tl = if p.temperature_last {
        p.temperature as f64
    } else {
        tf
    };
    let m = set.iter().map(|&i| x[i] / tl).fold(f64::MIN, f64::max);
    let z: f64 = set.iter().map(|&i| (x[i] / tl - m).exp()).sum();
    let mut out = vec![0.0; v];
    for &i in &set {
        out[i] = (x[i] / tl - m).exp() / z;
    }
    (out, margin)
}

/// Draws from a chain, checks the support and the chi-square bound.
fn check_chain(name: &str, logits: &[f32], p: ChainParams, bias: &[(u32, f32)], history: &[u32]) {
    let (probs, margin) = expected_chain(logits, &p, bias, history);
    assert!(margin > 1e-3, "{name}: ill-posed boundary ({margin})");
    let mut chain = SamplerChain::new(p, logits.len()).unwrap();
    chain.set_logit_bias(bias).unwrap();
    for &h in history {
        chain.accept(h);
    }
    let mut counts = vec![0u64; logits.len()];
    for _ in 0..DRAWS {
        counts[chain.sample(logits).unwrap() as usize] += 1;
    }
    for (i, (&o, &q)) in counts.iter().zip(&probs).enumerate() {
        if q == 0.0 {
            assert_eq!(o, 0, "{name}: id {i} outside the kept set drawn {o} times");
        }
    }
    let (stat, df) = chi_square(&counts, &probs);
    let crit = chi2_critical(df, 0.001);
    eprintln!(
        "{name}: kept {} ids, chi2 = {stat:.2}, df = {df}, critical = {crit:.2}",
        df + 1
    );
    assert!(stat < crit, "{name}: chi2 {stat} >= {crit} (df {df})");
}

fn plain(t: f32, seed: u64) -> ChainParams {
    ChainParams {
        temperature: t,
        temperature_last: true,
        seed,
        ..ChainParams::GREEDY
    }
}

#[test]
fn chain_logit_bias() {
    let bias = [(8, -1.5), (10, 2.0), (3, f32::NEG_INFINITY)];
    check_chain("bias", &LOGITS, plain(1.0, 21), &bias, &[]);
}

#[test]
fn chain_penalties() {
    let hist = [8, 8, 1, 3, 8, 6, 0];
    let p = ChainParams {
        repeat_penalty: 1.3,
        penalty_last_n: 5, // sees 3, 8, 6, 0 and one 1... the last five: 1, 3, 8, 6, 0
        ..plain(1.0, 22)
    };
    check_chain("repeat", &LOGITS, p, &[], &hist);
    let p = ChainParams {
        frequency_penalty: 0.4,
        presence_penalty: 0.3,
        penalty_last_n: 7,
        ..plain(0.9, 23)
    };
    check_chain("frequency+presence", &LOGITS, p, &[], &hist);
}

#[test]
fn chain_top_k_and_temperature_last() {
    let p = ChainParams {
        top_k: 6,
        ..plain(1.4, 24)
    };
    check_chain("top_k=6, T=1.4 last", &LOGITS, p, &[], &[]);
    check_chain("T=0.6 last", &LOGITS, plain(0.6, 25), &[], &[]);
}

#[test]
fn chain_typical_p() {
    let p = ChainParams {
        typical_p: 0.6,
        ..plain(1.0, 26)
    };
    let (probs, _) = expected_chain(&LOGITS, &p, &[], &[]);
    let n = probs.iter().filter(|&&q| q > 0.0).count();
    assert!(n > 1 && n < LOGITS.len(), "{n}");
    // typical-p may drop the most probable id
    check_chain("typical=0.6", &LOGITS, p, &[], &[]);
    let p = ChainParams {
        typical_p: 0.85,
        top_k: 9,
        ..plain(1.3, 27)
    };
    check_chain("top_k=9, typical=0.85, T=1.3", &LOGITS, p, &[], &[]);
}

#[test]
fn chain_top_p_sees_temperature_one_when_last() {
    let p = ChainParams {
        top_p: 0.8,
        ..plain(1.8, 28)
    };
    // Differs from the original order (top-p after temperature).
    let first = ChainParams {
        temperature_last: false,
        ..p
    };
    let support = |q: &[f64]| q.iter().filter(|&&x| x > 0.0).count();
    assert_ne!(
        support(&expected_chain(&LOGITS, &p, &[], &[]).0),
        support(&expected_chain(&LOGITS, &first, &[], &[]).0)
    );
    check_chain("top_p=0.8, T=1.8 last", &LOGITS, p, &[], &[]);
    check_chain("top_p=0.8, T=1.8 first", &LOGITS, first, &[], &[]);
    let logits: Vec<f32> = (0..300)
        .map(|i| ((i * 131) % 300) as f32 / 300.0 * 1.5)
        .collect();
    let p = ChainParams {
        top_p: 0.6,
        ..plain(1.2, 29)
    };
    check_chain("V=300, top_p=0.6 last", &logits, p, &[], &[]);
}

#[test]
fn chain_min_p() {
    let p = ChainParams {
        min_p: 0.15,
        ..plain(1.0, 30)
    };
    let (probs, _) = expected_chain(&LOGITS, &p, &[], &[]);
    let n = probs.iter().filter(|&&q| q > 0.0).count();
    assert!(n > 1 && n < LOGITS.len(), "{n}");
    check_chain("min_p=0.15", &LOGITS, p, &[], &[]);
    let first = ChainParams {
        min_p: 0.3,
        temperature_last: false,
        ..plain(1.5, 31)
    };
    check_chain("min_p=0.3, T=1.5 first", &LOGITS, first, &[], &[]);
}

#[test]
fn chain_every_stage_together() {
    let p = ChainParams {
        temperature: 0.9,
        top_k: 10,
        typical_p: 0.97,
        top_p: 0.93,
        min_p: 0.05,
        repeat_penalty: 1.1,
        frequency_penalty: 0.1,
        presence_penalty: 0.05,
        penalty_last_n: 4,
        seed: 32,
        temperature_last: true,
    };
    let bias = [(2, 0.7), (9, -0.3)];
    let (probs, _) = expected_chain(&LOGITS, &p, &bias, &[8, 4, 1, 4]);
    assert!(probs.iter().filter(|&&q| q > 0.0).count() >= 3);
    check_chain("all stages", &LOGITS, p, &bias, &[8, 4, 1, 4]);
}
