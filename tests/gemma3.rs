//! Gemma 3 270M (the Q4_K_M GGUF of `scripts/fetch_models.py gemma3-270m`: Q5_0, Q4_K, Q6_K and
//! Q8_0 weights, head dimension 256, 15 of 18 layers on a 512-position sliding window, a 262,144
//! token vocabulary) against llama.cpp's reference logits and greedy continuations
//! (tests/data/reference/logits_gemma3_270m.bin and greedy_gemma3_270m.bin, made by
//! scripts/reference/make_gemma_references.py from the same file), on 7 prompts, one of 629
//! tokens (longer than the window).
//!
//! Logits: every prompt token by token through `Session::forward`; at every position the KL
//! divergence on llama.cpp's top-64 tokens (both distributions renormalised over that set) and
//! whether the top-1 token agrees; at the positions with full reference logits the full KLD. Then
//! each prompt as one call, whose last logits must equal the token-by-token ones bit for bit.
//! Greedy: each prompt prefilled, then 32 greedy steps; ids must equal llama.cpp's up to the first
//! step where llama.cpp's own top-1/top-2 margin is below 0.5.
//!
//! Bounds: llama.cpp's own spread on this model and these prompts, measured exactly as this test
//! measures qorus (scripts/reference/make_gemma_references.py prints it; tests/data/README.md has
//! the table). llama.cpp in four valid configurations (one batch = the reference, token by token,
//! flash attention, F16 KV cache), every one against every other at all 741 positions: mean top-64
//! KLD from 5.2e-3 (token by token vs one batch) to 6.5e-3 (one batch vs F16 KV cache), max top-64
//! KLD from 0.039 to 0.186 (F16 KV cache vs flash attention: a near-tie of two tokens at a logit of
//! 35), top-1 from 93.25 % to 94.33 %, and from 0 to 3 top-1 misses where the first run's margin
//! is at least 0.5. Every activation is rounded to 8 bits before each quantized product, so any
//! other valid order of float sums moves logits by up to ~3. Against a float64 run of the same
//! weights (scripts/reference/gemma_ground_truth.py) llama.cpp's mean full KLD is 5.4e-3 and
//! qorus's 2.6e-3 (5.3e-3 before its Q8_K sub-scales, `kernels::kdot`). qorus is held to the
//! envelope: mean <= 6.463e-3, max <= 0.1863, top-1 at least 93.25 %, and at most 3 top-1 misses
//! at a margin of 0.5 or more (llama.cpp's own largest count; until the Q8_K sub-scales the test
//! asked for none, and qorus had none: the sub-scales move qorus toward the float64 truth and away
//! from llama.cpp's roundings, and its 2 misses are both at float64 near-ties where llama.cpp's
//! margin of >= 0.5 is its own rounding: french position 18, truth margin 0.084, qorus 0.083 off;
//! cjk position 8, truth margin 0.187, qorus 0.014 off; the truth's top-1 is llama.cpp's at both).
//! Measured (2026-12-01): mean 6.11e-3, max 0.067, top-1 94.20 %, 2 misses.

mod common;

use std::sync::Arc;

use common::logits::{argmax, kld, read_logits};
use qorus::engine::{Model, Session};

/// llama.cpp's spread (see above): the largest mean and max top-64 KLD and the smallest top-1
/// agreement between two of its valid configurations.
const MEAN_KLD: f64 = 6.463e-3;
const MAX_KLD: f64 = 0.1863;
const TOP1_PCT: f64 = 93.25;
/// Top-1 must agree wherever llama.cpp's top-1/top-2 margin is at least this, but for at most
/// `MISSES` positions (llama.cpp's own configurations miss 0 to 3 against each other).
const MARGIN: f32 = 0.5;
const MISSES: usize = 3;

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

fn f32_at(b: &[u8], o: usize) -> f32 {
    f32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}

fn model() -> Arc<Model> {
    Model::open(&common::fetch_model("gemma3-270m")).unwrap()
}

fn ref_path(name: &str) -> std::path::PathBuf {
    common::root().join("tests/data/reference").join(name)
}

#[test]
fn gemma3_logits_match_llama_cpp() {
    let model = model();
    let (_, refs) = read_logits(&ref_path("logits_gemma3_270m.bin"));
    assert!(refs.iter().any(|r| r.tokens.len() > 512));
    let (mut klds, mut full_klds, mut n, mut top1, mut clear_miss) =
        (Vec::new(), Vec::new(), 0, 0, 0);
    for r in &refs {
        let mut sess = Session::new(model.clone(), 1024).unwrap();
        let mut last = Vec::new();
        let first = klds.len();
        for (p, &t) in r.tokens.iter().enumerate() {
            let logits = sess.forward(&[t]).unwrap();
            let ours: Vec<f32> = r.top_ids[p].iter().map(|&i| logits[i as usize]).collect();
            klds.push(kld(&r.top_vals[p], &ours));
            let same = argmax(logits) == r.top_ids[p][0];
            top1 += same as usize;
            clear_miss += (!same && r.margin(p) >= MARGIN) as usize;
            n += 1;
            if let Some(j) = r.full_pos.iter().position(|&f| f == p) {
                full_klds.push(kld(&r.full[j], logits));
            }
            last = logits.to_vec();
        }
        let k = &klds[first..];
        println!(
            "prompt of {} tokens: top-64 KLD mean {:.3e}, max {:.3e}",
            k.len(),
            k.iter().sum::<f64>() / k.len() as f64,
            k.iter().cloned().fold(0.0, f64::max)
        );
        let mut sess = Session::new(model.clone(), 1024).unwrap();
        let batch = sess.forward(&r.tokens).unwrap();
        assert!(
            batch
                .iter()
                .zip(&last)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "prefill of {} tokens differs from token by token",
            r.tokens.len()
        );
    }
    let mean = klds.iter().sum::<f64>() / n as f64;
    let max = klds.iter().cloned().fold(0.0, f64::max);
    let top1 = 100.0 * top1 as f64 / n as f64;
    println!(
        "gemma3-270m Q4_K_M, {n} positions: top-64 KLD mean {mean:.3e}, max {max:.3e}; full KLD at {full_klds:?}; top-1 {top1:.2} % ({clear_miss} misses at a margin >= {MARGIN})"
    );
    println!(
        "bounds from llama.cpp's spread: mean <= {MEAN_KLD:e}, max <= {MAX_KLD}, top-1 >= {TOP1_PCT} %, <= {MISSES} misses"
    );
    assert!(mean <= MEAN_KLD, "mean top-64 KLD {mean:e} > {MEAN_KLD:e}");
    assert!(max <= MAX_KLD, "max top-64 KLD {max:e} > {MAX_KLD}");
    assert!(top1 >= TOP1_PCT, "top-1 {top1:.2} % < {TOP1_PCT} %");
    assert!(
        clear_miss <= MISSES,
        "{clear_miss} top-1 misses at a margin >= {MARGIN} (llama.cpp's own: <= {MISSES})"
    );
}

#[test]
fn gemma3_greedy_matches_llama_cpp() {
    let model = model();
    let b = std::fs::read(ref_path("greedy_gemma3_270m.bin")).unwrap();
    assert_eq!(&b[0..4], b"QRGR");
    let np = u32_at(&b, 12) as usize;
    let mut off = 96;
    let table: Vec<(usize, usize)> = (0..np)
        .map(|i| {
            (
                u32_at(&b, off + 8 * i) as usize,
                u32_at(&b, off + 8 * i + 4) as usize,
            )
        })
        .collect();
    off += 8 * np;
    let (mut same_total, mut gen_total) = (0, 0);
    for (npr, ngen) in table {
        let prompt: Vec<u32> = (0..npr).map(|i| u32_at(&b, off + 4 * i)).collect();
        off += 4 * npr;
        let want: Vec<u32> = (0..ngen).map(|i| u32_at(&b, off + 4 * i)).collect();
        off += 4 * ngen;
        let margins: Vec<f32> = (0..ngen).map(|i| f32_at(&b, off + 4 * i)).collect();
        off += 4 * ngen;
        let mut sess = Session::new(model.clone(), 1024).unwrap();
        let mut logits = sess.forward(&prompt).unwrap().to_vec();
        let mut got = Vec::new();
        for _ in 0..ngen {
            let t = argmax(&logits);
            got.push(t);
            logits = sess.forward(&[t]).unwrap().to_vec();
        }
        let same = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
        same_total += same;
        gen_total += ngen;
        println!(
            "prompt of {npr} tokens: {same}/{ngen} greedy ids equal llama.cpp's{}",
            if same < ngen {
                format!(
                    " (parting at step {same}, llama.cpp margin {:.3})",
                    margins[same]
                )
            } else {
                String::new()
            }
        );
        if same < ngen {
            assert!(
                margins[..=same].iter().any(|&m| m < MARGIN),
                "greedy ids part from llama.cpp's at step {same} with no step of margin < {MARGIN} before it"
            );
        }
    }
    println!("{same_total}/{gen_total} greedy ids equal before a parting");
}
