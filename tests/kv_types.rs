//! KV cache types (F32, F16, Q8_0) through the Rust `Session`, on SmolLM2-135M Q4_0 with more
//! positions than two attention segments: for every type, a prefill gives bit for bit the logits
//! of token-by-token calls and of uneven chunks, with 1, 2 and 3 threads; the reduced-precision
//! caches stay near the F32 cache (same top token, small logit differences); a Q8_0 cache is
//! refused by name for a head dimension that is not a multiple of 32.

mod common;

use std::sync::Arc;

use qorus::engine::kv_cache::{KvLayout, KvType};
use qorus::engine::{Model, Session};

/// llama.cpp's own largest |logit difference| between its F16 and F32 KV caches on this Q4_0
/// model (1116 positions of the reference prompts, tests/data/README.md "KV cache types").
const LLAMA_Q4_0_F16_CACHE_SPREAD: f32 = 2.09;

fn prompt(n: usize) -> Vec<u32> {
    (0..n)
        .map(|i| ((i * 7919 + 13) % 49000) as u32 + 1)
        .collect()
}

/// Logits after running `toks` in pieces of the given sizes (cycled).
fn run(model: &Arc<Model>, ty: KvType, toks: &[u32], pieces: &[usize]) -> Vec<f32> {
    let mut s = Session::with_kv_type(model.clone(), 1100, ty).unwrap();
    let mut at = 0;
    let mut k = 0;
    while at < toks.len() {
        let n = pieces[k % pieces.len()].min(toks.len() - at);
        s.forward(&toks[at..at + n]).unwrap();
        at += n;
        k += 1;
    }
    s.logits().to_vec()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn argmax(v: &[f32]) -> usize {
    qorus::sampling::argmax(v) as usize
}

#[test]
fn prefill_equals_token_by_token_for_every_cache_type() {
    let model = Model::open(&common::model("q4_0")).unwrap();
    // 1030 positions: attention tiles of 32 and segments of 512 (decode steps on several threads
    // split the keys by segment, prefill chunks of `CHUNK` rows do not), prefill chunks of `CHUNK` rows.
    let toks = prompt(1030);
    let mut f32_logits = Vec::new();
    for ty in KvType::ALL {
        qorus::engine::pool::set_num_threads(2);
        let whole = run(&model, ty, &toks, &[1030]);
        let one = run(&model, ty, &toks, &[1]);
        assert!(
            whole == one,
            "{}: prefill != token by token (max diff {})",
            ty.name(),
            max_diff(&whole, &one)
        );
        let uneven = run(&model, ty, &toks, &[37, 1, 70, 5]);
        assert!(whole == uneven, "{}: uneven chunks differ", ty.name());
        for t in [1, 3] {
            qorus::engine::pool::set_num_threads(t);
            let again = run(&model, ty, &toks, &[1030]);
            assert!(whole == again, "{}: {t} threads differ from 2", ty.name());
        }
        qorus::engine::pool::set_num_threads(0);
        if ty == KvType::F32 {
            f32_logits = whole;
        } else {
            let d = max_diff(&whole, &f32_logits);
            println!("{} cache: max |logit - f32 cache's| = {d:.4}", ty.name());
            assert_eq!(
                argmax(&whole),
                argmax(&f32_logits),
                "{}: top token",
                ty.name()
            );
            assert!(
                d <= LLAMA_Q4_0_F16_CACHE_SPREAD,
                "{}: logits {d} from the f32 cache's, more than llama.cpp's own spread",
                ty.name()
            );
        }
    }
}

#[test]
fn cache_sizes_and_unsupported_head_dim() {
    let l = KvLayout {
        n_layers: 2,
        n_kv_heads: 3,
        max_seq: 10,
        head_dim: 64,
    };
    assert_eq!(l.bytes(KvType::F32).unwrap(), l.floats() * 4);
    assert_eq!(l.bytes(KvType::F16).unwrap(), l.floats() * 2);
    assert_eq!(l.bytes(KvType::Q8_0).unwrap(), l.floats() / 32 * 34);
    let odd = KvLayout { head_dim: 48, ..l };
    let e = odd.bytes(KvType::Q8_0).unwrap_err().to_string();
    assert!(e.contains("q8_0") && e.contains("48"), "{e}");
    assert!(odd.bytes(KvType::F16).is_ok());
    assert_eq!(KvType::parse("Q8_0"), Some(KvType::Q8_0));
    assert_eq!(KvType::parse("f16"), Some(KvType::F16));
    assert_eq!(KvType::parse("q4_0"), None);
}
