//! Small random-weight GGUF models of every family qorus runs (`llama` with Llama 3 `rope_freqs`,
//! linear RoPE scaling, biases and an untied head; `qwen2`; `qwen3`; `phi3`; `gemma3`), with the
//! tensor names, shapes and metadata keys llama.cpp's converters write for each family, and the
//! tokenizer metadata of SmolLM2-135M copied over (llama.cpp needs a vocabulary to load a model;
//! the tests feed token ids).
//!
//! Deterministic: the same inputs give the same bytes (the sha256 of each file is pinned in
//! `tests/data/reference/families/SHA256SUMS`, next to the llama.cpp reference logits made from
//! exactly those files by `scripts/reference/make_family_references.py`).

#![allow(dead_code)]

use std::path::Path;

use qorus::format::gguf::{Gguf, Value};
use qorus::format::gguf_write::{GgufWriter, TensorSpec};
use qorus::quant::WeightType;

/// One family's test model.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// GGUF `general.architecture`.
    pub arch: &'static str,
    /// File stem (`<name>.gguf`).
    pub name: &'static str,
    pub dim: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    /// `attention.key_length` when the head dimension is not `dim / heads`.
    pub key_length: Option<usize>,
    pub context: usize,
    pub seed: u64,
}

/// The families' test models.
pub const SPECS: &[Spec] = &[
    Spec {
        arch: "llama",
        name: "llama3_ropefreqs_bias",
        dim: 128,
        hidden: 256,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        key_length: None,
        context: 512,
        seed: 11,
    },
    Spec {
        arch: "qwen2",
        name: "qwen2",
        dim: 128,
        hidden: 320,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        key_length: None,
        context: 512,
        seed: 12,
    },
    Spec {
        arch: "qwen3",
        name: "qwen3",
        dim: 128,
        hidden: 256,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        key_length: Some(64),
        context: 512,
        seed: 13,
    },
    Spec {
        arch: "phi3",
        name: "phi3",
        dim: 128,
        hidden: 256,
        layers: 2,
        heads: 4,
        kv_heads: 4,
        key_length: None,
        context: 4096,
        seed: 14,
    },
    Spec {
        arch: "gemma3",
        name: "gemma3",
        dim: 128,
        hidden: 256,
        layers: 6,
        heads: 4,
        kv_heads: 1,
        key_length: Some(64),
        context: 1024,
        seed: 15,
    },
];

/// Gemma 3 test model's sliding window (shorter than the longer test prompts).
pub const GEMMA_WINDOW: usize = 16;
/// Phi-3 test model's original context: contexts above it use the long RoPE factors.
pub const PHI3_ORIG_CTX: usize = 128;

/// splitmix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    pub fn normals(&mut self, n: usize, scale: f64) -> Vec<f32> {
        (0..n).map(|_| (self.normal() * scale) as f32).collect()
    }

    /// Values in [lo, hi).
    pub fn range(&mut self, n: usize, lo: f64, hi: f64) -> Vec<f32> {
        (0..n)
            .map(|_| (lo + (hi - lo) * self.uniform()) as f32)
            .collect()
    }
}

/// A tensor to write: name, ggml dims (innermost first), type, values.
struct T {
    name: String,
    dims: Vec<u64>,
    ty: WeightType,
    values: Vec<f32>,
}

fn mat(name: String, rows: usize, cols: usize, ty: WeightType, values: Vec<f32>) -> T {
    assert_eq!(values.len(), rows * cols);
    T {
        name,
        dims: vec![cols as u64, rows as u64],
        ty,
        values,
    }
}

fn vector(name: String, values: Vec<f32>) -> T {
    T {
        name,
        dims: vec![values.len() as u64],
        ty: WeightType::F32,
        values,
    }
}

/// The tokenizer metadata (`tokenizer.*`) of a GGUF file, and its vocabulary size.
pub fn tokenizer_metadata(gguf_path: &Path) -> (Vec<(String, Value)>, usize) {
    let bytes = std::fs::read(gguf_path).expect("read the tokenizer's GGUF");
    let g = Gguf::parse(&bytes).expect("parse the tokenizer's GGUF");
    let meta: Vec<(String, Value)> = g
        .metadata
        .iter()
        .filter(|(k, _)| k.starts_with("tokenizer."))
        .cloned()
        .collect();
    let n = g
        .get("tokenizer.ggml.tokens")
        .and_then(|v| v.as_array())
        .map(|a| a.len())
        .expect("tokenizer.ggml.tokens");
    (meta, n)
}

/// Writes the test model of `s` to `path`, with `tok_meta` (a vocabulary of `vocab` tokens).
pub fn write(s: &Spec, tok_meta: &[(String, Value)], vocab: usize, path: &Path) {
    std::fs::write(path, build(s, tok_meta, vocab)).unwrap();
}

/// The GGUF bytes of the test model of `s`, with `tok_meta` (a vocabulary of `vocab` tokens).
pub fn build(s: &Spec, tok_meta: &[(String, Value)], vocab: usize) -> Vec<u8> {
    use WeightType::{F16, Q8_0};
    let a = s.arch;
    let (d, h) = (s.dim, s.hidden);
    let hd = s.key_length.unwrap_or(d / s.heads);
    let (qd, kvd) = (s.heads * hd, s.kv_heads * hd);
    let mut rng = Rng(s.seed.wrapping_mul(0x1234_5678_9abc_def1));
    let is = |x: usize| 1.0 / (x as f64).sqrt();
    // Matrix types: a mix of F16 and Q8_0 (the weight types of the test models).
    let (attn_ty, ffn_ty, embd_ty) = match a {
        "llama" | "qwen3" => (F16, F16, F16),
        "qwen2" | "phi3" => (Q8_0, Q8_0, Q8_0),
        _ => (F16, Q8_0, Q8_0),
    };
    let gains = |rng: &mut Rng, n: usize| rng.range(n, 0.7, 1.3);
    let embd_scale = if a == "gemma3" { 0.05 } else { 1.0 };
    let mut ts: Vec<T> = vec![mat(
        "token_embd.weight".into(),
        vocab,
        d,
        embd_ty,
        rng.normals(vocab * d, embd_scale),
    )];
    ts.push(vector("output_norm.weight".into(), gains(&mut rng, d)));
    let untied = matches!(a, "llama" | "phi3");
    if untied {
        ts.push(mat(
            "output.weight".into(),
            vocab,
            d,
            embd_ty,
            rng.normals(vocab * d, 4.0 * is(d)),
        ));
    }
    if a == "qwen2" {
        ts.push(vector("output.bias".into(), rng.normals(vocab, 0.5)));
    }
    match a {
        // Llama 3.1-style frequency factors: 1 for the fast pairs, up to 8 for the slow ones.
        "llama" => {
            let f: Vec<f32> = (0..hd / 2)
                .map(|i| 1.0 + 7.0 * (i as f32 / (hd / 2 - 1) as f32).powi(2))
                .collect();
            ts.push(vector("rope_freqs.weight".into(), f));
        }
        "phi3" => {
            ts.push(vector(
                "rope_factors_long.weight".into(),
                rng.range(hd / 2, 1.0, 6.0),
            ));
            ts.push(vector(
                "rope_factors_short.weight".into(),
                rng.range(hd / 2, 1.0, 1.5),
            ));
        }
        _ => {}
    }
    for l in 0..s.layers {
        let n = |t: &str| format!("blk.{l}.{t}.weight");
        let b = |t: &str| format!("blk.{l}.{t}.bias");
        ts.push(vector(n("attn_norm"), gains(&mut rng, d)));
        if a == "phi3" {
            let mut w = rng.normals(qd * d, 1.5 * is(d));
            w.extend(rng.normals(kvd * d, 1.5 * is(d)));
            w.extend(rng.normals(kvd * d, is(d)));
            ts.push(mat(n("attn_qkv"), qd + 2 * kvd, d, attn_ty, w));
        } else {
            ts.push(mat(
                n("attn_q"),
                qd,
                d,
                attn_ty,
                rng.normals(qd * d, 1.5 * is(d)),
            ));
            ts.push(mat(
                n("attn_k"),
                kvd,
                d,
                attn_ty,
                rng.normals(kvd * d, 1.5 * is(d)),
            ));
            ts.push(mat(
                n("attn_v"),
                kvd,
                d,
                attn_ty,
                rng.normals(kvd * d, is(d)),
            ));
        }
        if matches!(a, "llama" | "qwen2") {
            ts.push(vector(b("attn_q"), rng.normals(qd, 0.5)));
            ts.push(vector(b("attn_k"), rng.normals(kvd, 0.5)));
            ts.push(vector(b("attn_v"), rng.normals(kvd, 0.5)));
        }
        if matches!(a, "qwen3" | "gemma3") {
            ts.push(vector(n("attn_q_norm"), gains(&mut rng, hd)));
            ts.push(vector(n("attn_k_norm"), gains(&mut rng, hd)));
        }
        ts.push(mat(
            n("attn_output"),
            d,
            qd,
            attn_ty,
            rng.normals(d * qd, is(qd)),
        ));
        if a == "llama" {
            ts.push(vector(b("attn_output"), rng.normals(d, 0.2)));
        }
        if a == "gemma3" {
            ts.push(vector(n("post_attention_norm"), gains(&mut rng, d)));
        }
        ts.push(vector(n("ffn_norm"), gains(&mut rng, d)));
        if a == "phi3" {
            let mut w = rng.normals(h * d, is(d));
            w.extend(rng.normals(h * d, is(d)));
            ts.push(mat(n("ffn_up"), 2 * h, d, ffn_ty, w));
        } else {
            ts.push(mat(n("ffn_gate"), h, d, ffn_ty, rng.normals(h * d, is(d))));
            ts.push(mat(n("ffn_up"), h, d, ffn_ty, rng.normals(h * d, is(d))));
        }
        ts.push(mat(n("ffn_down"), d, h, ffn_ty, rng.normals(d * h, is(h))));
        if a == "llama" {
            ts.push(vector(b("ffn_gate"), rng.normals(h, 0.2)));
            ts.push(vector(b("ffn_up"), rng.normals(h, 0.2)));
            ts.push(vector(b("ffn_down"), rng.normals(d, 0.2)));
        }
        if a == "gemma3" {
            ts.push(vector(n("post_ffw_norm"), gains(&mut rng, d)));
        }
    }

    let u = |v: usize| Value::U32(v as u32);
    let str_ = |v: &str| Value::String(v.as_bytes().to_vec());
    let k = |key: &str| format!("{a}.{key}");
    let mut meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), str_(a)),
        // Not the family's name: llama.cpp's vocabulary loader keys special-token rules on
        // general.name ("phi3" looks up a "</s>" that SmolLM2's vocabulary does not have).
        (
            "general.name".into(),
            str_(&format!("qorus test model {}", s.seed)),
        ),
        (k("context_length"), u(s.context)),
        (k("embedding_length"), u(d)),
        (k("feed_forward_length"), u(h)),
        (k("block_count"), u(s.layers)),
        (k("attention.head_count"), u(s.heads)),
        (k("attention.head_count_kv"), u(s.kv_heads)),
        (
            k("attention.layer_norm_rms_epsilon"),
            Value::F32(if a == "llama" { 1e-5 } else { 1e-6 }),
        ),
    ];
    if let Some(kl) = s.key_length {
        meta.push((k("attention.key_length"), u(kl)));
        meta.push((k("attention.value_length"), u(kl)));
    }
    match a {
        "llama" => {
            meta.push((k("rope.dimension_count"), u(hd)));
            meta.push((k("rope.freq_base"), Value::F32(500000.0)));
            meta.push((k("rope.scaling.type"), str_("linear")));
            meta.push((k("rope.scaling.factor"), Value::F32(2.0)));
        }
        "qwen2" | "qwen3" => meta.push((k("rope.freq_base"), Value::F32(1000000.0))),
        "phi3" => {
            meta.push((k("rope.dimension_count"), u(hd)));
            meta.push((k("rope.freq_base"), Value::F32(10000.0)));
            meta.push((k("rope.scaling.attn_factor"), Value::F32(1.19)));
            meta.push((k("rope.scaling.original_context_length"), u(PHI3_ORIG_CTX)));
        }
        "gemma3" => {
            meta.push((k("rope.freq_base"), Value::F32(1000000.0)));
            meta.push((k("attention.sliding_window"), u(GEMMA_WINDOW)));
            meta.push((k("final_logit_softcapping"), Value::F32(30.0)));
        }
        _ => unreachable!("family {a}"),
    }
    meta.extend(tok_meta.iter().cloned());

    let specs: Vec<TensorSpec> = ts
        .iter()
        .map(|t| TensorSpec {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ty: t.ty,
        })
        .collect();
    let mut out = Vec::new();
    let mut w = GgufWriter::new(&mut out, s.name, &meta, &specs).unwrap();
    for t in &ts {
        let mut bytes = vec![0u8; t.ty.row_bytes(t.values.len()).unwrap()];
        qorus::quant::quantize_row(t.ty, &t.values, &mut bytes).unwrap();
        w.write_tensor(&bytes).unwrap();
    }
    w.finish().unwrap();
    out
}

/// Rewrites a GGUF file's bytes after `edit` changed its metadata and tensors (name, dims,
/// type, data): for hand-made hostile files.
pub fn rewrite(
    bytes: &[u8],
    edit: impl FnOnce(&mut Vec<(String, Value)>, &mut Vec<(TensorSpec, Vec<u8>)>),
) -> Vec<u8> {
    let g = Gguf::parse(bytes).unwrap();
    let mut meta = g.metadata.clone();
    let mut ts: Vec<(TensorSpec, Vec<u8>)> = g
        .tensors
        .iter()
        .map(|t| {
            (
                TensorSpec {
                    name: t.name.clone(),
                    dims: t.dims.clone(),
                    ty: t.ty.unwrap(),
                },
                g.tensor_bytes(bytes, t).unwrap().to_vec(),
            )
        })
        .collect();
    edit(&mut meta, &mut ts);
    let specs: Vec<TensorSpec> = ts.iter().map(|(s, _)| s.clone()).collect();
    let mut out = Vec::new();
    let mut w = GgufWriter::new(&mut out, "rewrite", &meta, &specs).unwrap();
    for (_, b) in &ts {
        w.write_tensor(b).unwrap();
    }
    w.finish().unwrap();
    out
}

/// The test prompts of a family model: token ids (seeded), of lengths 6, 25, 40 and 70 (the
/// longer ones exceed the Gemma test model's sliding window).
pub fn prompts(s: &Spec, vocab: usize) -> Vec<Vec<u32>> {
    let mut rng = Rng(s.seed ^ 0xabcd);
    [6usize, 25, 40, 70]
        .iter()
        .map(|&n| {
            (0..n)
                .map(|_| (rng.next_u64() % vocab as u64) as u32)
                .collect()
        })
        .collect()
}
