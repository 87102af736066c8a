//! Models whose tensors hold ggml's other block types (issue 12: Q5_0, Q5_1, the K-quants,
//! IQ4_NL, IQ4_XS), built in memory: a tensor of a type qorus does not support is named in the
//! error, never reported missing.

use qorus::format::gguf::Value;
use qorus::format::gguf_write::{GgufWriter, TensorSpec};
use qorus::format::{build_model, open_bytes};
use qorus::quant::kquants::f16_offsets;
use qorus::quant::WeightType;

/// Shape of a tiny LLaMA.
const V: u64 = 32;
const D: u64 = 256;
const H: u64 = 512;
const HEADS: u64 = 4;
const KV: u64 = 2;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
    fn f(&mut self) -> f32 {
        (self.next() as f32 / (1u64 << 31) as f32 - 1.0) * 0.1
    }
}

fn f16_bits(x: f32) -> u16 {
    qorus::quant::reference::f32_to_f16_bits(x)
}

/// Random but finite encoded data of `n` values of `ty`: random bytes with small f16 scales.
fn random_data(ty: WeightType, n: usize, rng: &mut Rng) -> Vec<u8> {
    if !ty.is_kquant_family() {
        let vals: Vec<f32> = (0..n).map(|_| rng.f()).collect();
        let mut b = vec![0u8; ty.row_bytes(n).unwrap()];
        qorus::quant::quantize_row(ty, &vals, &mut b).unwrap();
        return b;
    }
    let mut b: Vec<u8> = (0..ty.row_bytes(n).unwrap())
        .map(|_| rng.next() as u8)
        .collect();
    for blk in b.chunks_exact_mut(ty.block_bytes()) {
        for &o in f16_offsets(ty) {
            let s = 0.002 + 0.002 * (rng.next() % 100) as f32 / 100.0;
            blk[o..o + 2].copy_from_slice(&f16_bits(s).to_le_bytes());
        }
    }
    b
}

/// A tiny LLaMA GGUF whose projection matrices have type `mat` and whose embedding has `embd`;
/// `data` overrides the bytes of named tensors.
fn tiny_llama(mat: WeightType, embd: WeightType) -> Vec<u8> {
    let kvd = D / HEADS * KV;
    let mut ts: Vec<TensorSpec> = Vec::new();
    let mut t = |name: &str, dims: Vec<u64>, ty: WeightType| {
        ts.push(TensorSpec {
            name: name.into(),
            dims,
            ty,
        })
    };
    t("token_embd.weight", vec![D, V], embd);
    t("output_norm.weight", vec![D], WeightType::F32);
    t("blk.0.attn_norm.weight", vec![D], WeightType::F32);
    t("blk.0.attn_q.weight", vec![D, D], mat);
    t("blk.0.attn_k.weight", vec![D, kvd], mat);
    t("blk.0.attn_v.weight", vec![D, kvd], mat);
    t("blk.0.attn_output.weight", vec![D, D], mat);
    t("blk.0.ffn_norm.weight", vec![D], WeightType::F32);
    t("blk.0.ffn_gate.weight", vec![D, H], mat);
    t("blk.0.ffn_up.weight", vec![D, H], mat);
    t("blk.0.ffn_down.weight", vec![H, D], mat);
    let u = |x: u64| Value::U32(x as u32);
    let s = |x: &str| Value::String(x.as_bytes().to_vec());
    let meta = vec![
        ("general.architecture".to_string(), s("llama")),
        ("llama.block_count".to_string(), u(1)),
        ("llama.context_length".to_string(), u(64)),
        ("llama.embedding_length".to_string(), u(D)),
        ("llama.feed_forward_length".to_string(), u(H)),
        ("llama.attention.head_count".to_string(), u(HEADS)),
        ("llama.attention.head_count_kv".to_string(), u(KV)),
        ("llama.rope.freq_base".to_string(), Value::F32(10000.0)),
        (
            "llama.attention.layer_norm_rms_epsilon".to_string(),
            Value::F32(1e-5),
        ),
    ];
    let mut rng = Rng(0x5eed ^ mat as u64);
    let mut buf = Vec::new();
    let mut w = GgufWriter::new(&mut buf, "tiny", &meta, &ts).unwrap();
    for spec in &ts {
        let n: u64 = spec.dims.iter().product();
        let b = if spec.name.ends_with("norm.weight") {
            let v: Vec<f32> = (0..n).map(|_| 1.0 + rng.f()).collect();
            v.iter().flat_map(|x| x.to_le_bytes()).collect()
        } else {
            random_data(spec.ty, n as usize, &mut rng)
        };
        w.write_tensor(&b).unwrap();
    }
    w.finish().unwrap();
    buf
}

/// Rewrites the stored ggml type id of tensor `name` (its info: name, n_dims, dims, type).
fn set_type_id(file: &mut [u8], name: &str, id: u32) {
    let key = [&(name.len() as u64).to_le_bytes()[..], name.as_bytes()].concat();
    let at = file
        .windows(key.len())
        .position(|w| w == key)
        .expect("tensor info")
        + key.len();
    let n_dims = u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) as usize;
    let ty_at = at + 4 + 8 * n_dims;
    file[ty_at..ty_at + 4].copy_from_slice(&id.to_le_bytes());
}

fn load_err(bytes: &[u8]) -> String {
    let f = open_bytes(bytes, "tiny.gguf").expect("the directory parses");
    match build_model(&f, None) {
        Ok(_) => panic!("model built"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unsupported_type_is_named_not_missing() {
    // iq2_xxs (16), q8_1 (9, an activation type), an id ggml never used (50)
    for (id, name) in [(16u32, "iq2_xxs"), (9, "q8_1"), (50, "unknown")] {
        let mut f = tiny_llama(WeightType::Q8_0, WeightType::Q8_0);
        set_type_id(&mut f, "blk.0.attn_k.weight", id);
        let e = load_err(&f);
        assert!(
            e.contains("blk.0.attn_k.weight") && e.contains(name) && !e.contains("missing"),
            "type {id}: {e}"
        );
    }
}

fn logits_of(bytes: &[u8], tokens: &[u32], prefill: bool) -> Vec<f32> {
    let f = open_bytes(bytes, "tiny.gguf").unwrap();
    let m = build_model(&f, None).unwrap();
    let mut s = qorus::engine::Session::new(m, 0).unwrap();
    if prefill {
        return s.forward(tokens).unwrap().to_vec();
    }
    let mut last = Vec::new();
    for &t in tokens {
        last = s.forward(&[t]).unwrap().to_vec();
    }
    last
}

#[test]
fn every_new_type_runs_and_prefill_equals_token_by_token() {
    use WeightType::*;
    let tokens = [1u32, 5, 9, 30, 2, 17];
    for ty in [Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS] {
        // the embedding (and tied LM head) of the same type too
        let f = tiny_llama(ty, ty);
        let a = logits_of(&f, &tokens, true);
        let b = logits_of(&f, &tokens, false);
        assert_eq!(a.len(), V as usize);
        assert!(a.iter().all(|v| v.is_finite()), "{ty:?}");
        assert!(a.iter().any(|&v| v != a[0]), "{ty:?}: constant logits");
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{ty:?}: prefill != token by token"
        );
    }
}
