//! Our forward pass against an independent float64 NumPy reference
//! (scripts/reference/numpy_forward.py) on small random-weight F32 models of several shapes.
//!
//! Each shape is written as a GGUF file by our GGUF writer (seeded random weights scaled so that
//! activations stay O(1)), the script computes the logits at every position of a prompt in
//! float64, and the engine runs the same prompt through `Session::forward`:
//! - one token per call (logits at every position),
//! - the whole prompt as one call (logits at the last position),
//! - the prompt in two calls (logits at the end of each part).
//!
//! Error measure, per position p: `rel_p = max_v |ours[v] - ref[v]| / max_v |ref[v]|`; a shape
//! passes when every `rel_p <= 1e-4`. The maximum absolute difference is printed too. F32 weights
//! keep F32 activations in the engine (no 8-bit activation rounding), so the remaining difference
//! is float32 rounding only. The reference computes the RoPE angles exactly (`p * base^(-2i/hd)`
//! in float64) while the engine computes them as ggml does, in float32 (spec section 5.1); at the
//! later positions of the 80-token prompt that is most of the difference (measured: rel 1.0e-5
//! against the exact angles, 1.7e-6 with `QORUS_NUMPY_REF_ARGS=--rope-f32`, which passes extra
//! arguments to the script). Measured with the bound at 1e-4: RMSNorm eps left out, split-half
//! RoPE or another GQA head mapping in the reference give rel 0.2 to 1.6.
//!
//! `c_api_matches_numpy` runs one shape through the C API (`llama_build_graph` /
//! `llama_forward`, c_tests/numpy_ref_forward.c), with the dispatched kernels and with
//! `QORUS_KERNELS=scalar`.
//!
//! Needs python3; numpy is the machine's or installed into target/test-tools on first use
//! (tests/common/tools.rs).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use qorus::engine::{Model, Session};
use qorus::format::gguf::Value;
use qorus::format::gguf_write::{GgufWriter, TensorSpec};
use qorus::quant::WeightType;

/// Relative error bound (see the module doc).
const REL_BOUND: f64 = 1e-4;

/// One model shape.
#[derive(Clone, Copy, Debug)]
struct Shape {
    name: &'static str,
    dim: usize,
    hidden: usize,
    layers: usize,
    heads: usize,
    kv_heads: usize,
    vocab: usize,
    rope_base: f32,
    eps: f32,
    tied: bool,
    /// Standard deviation of the embedding values.
    embd_scale: f64,
    prompt_len: usize,
    seed: u64,
}

const SHAPES: &[Shape] = &[
    // 1 query head per kv head, head_dim 64, output.weight present
    Shape {
        name: "mha_hd64",
        dim: 256,
        hidden: 640,
        layers: 3,
        heads: 4,
        kv_heads: 4,
        vocab: 1000,
        rope_base: 10000.0,
        eps: 1e-5,
        tied: false,
        embd_scale: 0.01, // mean x^2 = 1e-4 at the first norm: eps changes it by 10 %
        prompt_len: 40,
        seed: 1,
    },
    // 2 query heads per kv head, head_dim 64, tied output, rope base 500000
    Shape {
        name: "gqa2_hd64_tied",
        dim: 512,
        hidden: 1408,
        layers: 2,
        heads: 8,
        kv_heads: 4,
        vocab: 2001,
        rope_base: 500000.0,
        eps: 1e-6,
        tied: true,
        embd_scale: 0.18, // 4 / sqrt(d): logits of a few units
        prompt_len: 40,
        seed: 2,
    },
    // 4 query heads per kv head, head_dim 128, hidden not a multiple of 32
    Shape {
        name: "gqa4_hd128",
        dim: 512,
        hidden: 1000,
        layers: 4,
        heads: 4,
        kv_heads: 1,
        vocab: 777,
        rope_base: 500000.0,
        eps: 1e-5,
        tied: false,
        embd_scale: 1.0,
        prompt_len: 40,
        seed: 3,
    },
    // 2 query heads per kv head, head_dim 128, tied, a prompt longer than the engine's 64-row
    // chunk, hidden not a multiple of 8
    Shape {
        name: "gqa2_hd128_tied_long",
        dim: 256,
        hidden: 692,
        layers: 2,
        heads: 2,
        kv_heads: 1,
        vocab: 515,
        rope_base: 10000.0,
        eps: 1e-6,
        tied: true,
        embd_scale: 0.25, // 4 / sqrt(d)
        prompt_len: 80,
        seed: 4,
    },
];

/// splitmix64: a small seeded generator (the weights only need to be reproducible).
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }

    fn normals(&mut self, n: usize, scale: f64) -> Vec<f32> {
        (0..n).map(|_| (self.normal() * scale) as f32).collect()
    }

    /// Norm gains in [0.7, 1.3).
    fn gains(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| (0.7 + 0.6 * self.uniform()) as f32)
            .collect()
    }
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("qorus-numpy-ref-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the shape's random F32 model as GGUF to `path`.
fn write_model(s: &Shape, path: &Path) {
    let hd = s.dim / s.heads;
    let kvd = s.kv_heads * hd;
    let (d, h) = (s.dim, s.hidden);
    let mut rng = Rng(s.seed.wrapping_mul(0x1234_5678_9abc_def1));
    let is = |x: usize| 1.0 / (x as f64).sqrt();

    // (name, rows, cols, values): rows == 1 for vectors. Matrices are [out, in].
    let mut tensors: Vec<(String, usize, usize, Vec<f32>)> = Vec::new();
    tensors.push((
        "token_embd.weight".into(),
        s.vocab,
        d,
        rng.normals(s.vocab * d, s.embd_scale),
    ));
    for l in 0..s.layers {
        let n = |t: &str| format!("blk.{l}.{t}.weight");
        tensors.push((n("attn_norm"), 1, d, rng.gains(d)));
        // q and k a little larger so that the softmax is far from uniform.
        tensors.push((n("attn_q"), d, d, rng.normals(d * d, 1.5 * is(d))));
        tensors.push((n("attn_k"), kvd, d, rng.normals(kvd * d, 1.5 * is(d))));
        tensors.push((n("attn_v"), kvd, d, rng.normals(kvd * d, is(d))));
        tensors.push((n("attn_output"), d, d, rng.normals(d * d, is(d))));
        tensors.push((n("ffn_norm"), 1, d, rng.gains(d)));
        tensors.push((n("ffn_gate"), h, d, rng.normals(h * d, is(d))));
        tensors.push((n("ffn_up"), h, d, rng.normals(h * d, is(d))));
        tensors.push((n("ffn_down"), d, h, rng.normals(d * h, is(h))));
    }
    tensors.push(("output_norm.weight".into(), 1, d, rng.gains(d)));
    if !s.tied {
        tensors.push((
            "output.weight".into(),
            s.vocab,
            d,
            rng.normals(s.vocab * d, 4.0 * is(d)),
        ));
    }

    let u = |v: usize| Value::U32(v as u32);
    let meta: Vec<(String, Value)> = vec![
        (
            "general.architecture".into(),
            Value::String(b"llama".to_vec()),
        ),
        (
            "general.name".into(),
            Value::String(format!("numpy-ref-{}", s.name).into_bytes()),
        ),
        ("llama.context_length".into(), u(128)),
        ("llama.embedding_length".into(), u(d)),
        ("llama.feed_forward_length".into(), u(h)),
        ("llama.block_count".into(), u(s.layers)),
        ("llama.attention.head_count".into(), u(s.heads)),
        ("llama.attention.head_count_kv".into(), u(s.kv_heads)),
        ("llama.rope.dimension_count".into(), u(hd)),
        ("llama.rope.freq_base".into(), Value::F32(s.rope_base)),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            Value::F32(s.eps),
        ),
    ];
    let specs: Vec<TensorSpec> = tensors
        .iter()
        .map(|(name, rows, cols, _)| TensorSpec {
            name: name.clone(),
            dims: if *rows == 1 {
                vec![*cols as u64]
            } else {
                vec![*cols as u64, *rows as u64]
            },
            ty: WeightType::F32,
        })
        .collect();
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut w = GgufWriter::new(file, &path.display().to_string(), &meta, &specs).unwrap();
    for (_, _, _, v) in &tensors {
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        w.write_tensor(&bytes).unwrap();
    }
    w.finish().unwrap();
}

/// Seeded prompt of `n` token ids below `vocab`.
fn prompt(s: &Shape) -> Vec<u32> {
    let mut rng = Rng(s.seed ^ 0xdead_beef);
    (0..s.prompt_len)
        .map(|_| (rng.next_u64() % s.vocab as u64) as u32)
        .collect()
}

/// `python3` with numpy (installed for the tests when the machine has none; panics saying how to
/// get it when that fails).
fn python_numpy() -> Command {
    common::python_with(&[("numpy", "numpy")])
}

/// Makes sure numpy is there before a test starts its work (see [`python_numpy`]).
fn require_numpy() {
    let o = python_numpy()
        .args(["-c", "import numpy"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 ({e}); install Python 3"));
    assert!(
        o.status.success(),
        "python3 cannot import numpy:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Extra arguments for the script from `QORUS_NUMPY_REF_ARGS` (diagnosis, e.g. `--rope-f32`).
fn extra_args() -> Vec<String> {
    std::env::var("QORUS_NUMPY_REF_ARGS")
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Runs the NumPy reference on `model` and returns the logits at every position (`n` rows of
/// `vocab` values).
fn reference(model: &Path, tokens: &[u32], vocab: usize, out: &Path) -> Vec<Vec<f64>> {
    let script = common::root().join("scripts/reference/numpy_forward.py");
    let list: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
    let o = python_numpy()
        .arg(&script)
        .arg(model)
        .arg("--tokens")
        .arg(list.join(","))
        .arg("--out")
        .arg(out)
        .args(extra_args())
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    eprint!("{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        o.status.success(),
        "{} failed ({:?})",
        script.display(),
        o.status
    );
    let bytes = std::fs::read(out).unwrap();
    assert_eq!(
        bytes.len(),
        tokens.len() * vocab * 8,
        "reference output has the wrong size"
    );
    bytes
        .chunks_exact(vocab * 8)
        .map(|row| {
            row.chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                .collect()
        })
        .collect()
}

/// (relative error, max |Δ|) of `ours` against `reference` (see the module doc).
fn error(ours: &[f32], reference: &[f64]) -> (f64, f64) {
    assert_eq!(ours.len(), reference.len());
    let mut max_abs = 0f64;
    let mut max_ref = 0f64;
    for (&a, &r) in ours.iter().zip(reference) {
        let dv = (a as f64 - r).abs();
        // NaN counts as an infinite error.
        max_abs = if dv.is_nan() {
            f64::INFINITY
        } else {
            max_abs.max(dv)
        };
        max_ref = max_ref.max(r.abs());
    }
    (max_abs / max_ref, max_abs)
}

fn maxdiff(x: &[f32], y: &[f32]) -> f32 {
    x.iter().zip(y).fold(0f32, |m, (a, b)| m.max((a - b).abs()))
}

/// Worst error over several comparisons.
#[derive(Default)]
struct Worst {
    rel: f64,
    abs: f64,
    at: usize,
}

impl Worst {
    fn add(&mut self, (rel, abs): (f64, f64), pos: usize) {
        if rel > self.rel || rel.is_nan() {
            self.rel = rel;
            self.at = pos;
        }
        self.abs = self.abs.max(abs);
    }
}

fn check_shape(s: &Shape, dir: &Path) -> String {
    let path = dir.join(format!("{}.gguf", s.name));
    write_model(s, &path);
    let tokens = prompt(s);
    let refs = reference(
        &path,
        &tokens,
        s.vocab,
        &dir.join(format!("{}.f64", s.name)),
    );
    let max_logit = refs
        .iter()
        .flat_map(|r| r.iter())
        .fold(0f64, |m, &x| m.max(x.abs()));

    let model: Arc<Model> = Model::open(&path).unwrap();
    let c = model.config;
    assert_eq!(
        (
            c.dim,
            c.hidden_dim,
            c.n_layers,
            c.n_heads,
            c.n_kv_heads,
            c.vocab_size
        ),
        (s.dim, s.hidden, s.layers, s.heads, s.kv_heads, s.vocab),
        "{}: configuration read back",
        s.name
    );
    assert_eq!(model.tied_output, s.tied, "{}: tied output", s.name);

    // One token per call.
    let mut sess = Session::new(model.clone(), 0).unwrap();
    let mut step = Worst::default();
    let mut last_step = Vec::new();
    for (i, &t) in tokens.iter().enumerate() {
        let logits = sess.forward(&[t]).unwrap();
        step.add(error(logits, &refs[i]), i);
        last_step = logits.to_vec();
    }

    // The whole prompt as one call, then in two calls.
    let n = tokens.len();
    let mut prefill = Worst::default();
    let mut sess = Session::new(model.clone(), 0).unwrap();
    let whole = sess.forward(&tokens).unwrap().to_vec();
    prefill.add(error(&whole, &refs[n - 1]), n - 1);
    let split = n / 2 + 3;
    let mut sess = Session::new(model, 0).unwrap();
    let a = sess.forward(&tokens[..split]).unwrap().to_vec();
    prefill.add(error(&a, &refs[split - 1]), split - 1);
    let b = sess.forward(&tokens[split..]).unwrap().to_vec();
    prefill.add(error(&b, &refs[n - 1]), n - 1);

    let same = whole == last_step && b == whole;
    let line = format!(
        "{:<22} d={:<4} h={:<5} L={} H={} G={} hd={:<3} V={:<5} base={:<6} eps={:<5} {:<6} n={:<3} \
         max|logit| {:>6.2}  token-by-token: rel {:.2e} (pos {}) abs {:.2e}  prefill: rel {:.2e} abs {:.2e}  \
         prefill == token-by-token: {}",
        s.name,
        s.dim,
        s.hidden,
        s.layers,
        s.heads,
        s.kv_heads,
        s.dim / s.heads,
        s.vocab,
        s.rope_base,
        s.eps,
        if s.tied { "tied" } else { "output" },
        n,
        max_logit,
        step.rel,
        step.at,
        step.abs,
        prefill.rel,
        prefill.abs,
        same
    );
    println!("{line}");
    assert!(
        step.rel <= REL_BOUND && prefill.rel <= REL_BOUND,
        "{}: relative error above {REL_BOUND:e}\n{line}",
        s.name
    );
    assert!(
        same,
        "{}: the whole prompt in one call, in two calls and token by token give different \
         last-token logits (max |one call - token by token| {:e}, |two calls - one call| {:e})\n{line}",
        s.name,
        maxdiff(&whole, &last_step),
        maxdiff(&b, &whole)
    );
    line
}

#[test]
fn engine_matches_numpy() {
    require_numpy();
    let dir = TempDir::new("rust");
    let mut lines = Vec::new();
    for s in SHAPES {
        lines.push(check_shape(s, &dir.0));
    }
    println!(
        "\nsummary (relative error = max|Δ| / max|ref logit| per position, bound {REL_BOUND:e}):"
    );
    for l in lines {
        println!("{l}");
    }
}

/// Runs `tokens` through the C API (c_tests/numpy_ref_forward.c: one token per call, then one
/// prefill) on `model`, with each kernel level in `kernels` ("" = the dispatched one), and
/// compares with the reference `refs`.
fn c_api_check(
    label: &str,
    model: &Path,
    tokens: &[u32],
    refs: &[Vec<f64>],
    kernels: &[&str],
    dir: &Path,
) {
    let vocab = refs[0].len();
    let exe = common::build_c_once("numpy_ref_forward", "numpy");
    let list: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
    let list = list.join(",");
    let n = tokens.len();
    for &kernels in kernels {
        let out = dir.join(format!("c_{kernels}.f32"));
        let model_arg = model.display().to_string();
        let out_arg = out.display().to_string();
        let mut envs = vec![];
        if !kernels.is_empty() {
            envs.push(("QORUS_KERNELS", kernels.to_string()));
        }
        common::run(&exe, &[&model_arg, &list, &out_arg], &envs);
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(bytes.len(), (n + 1) * vocab * 4, "C output size");
        let rows: Vec<Vec<f32>> = bytes
            .chunks_exact(vocab * 4)
            .map(|r| {
                r.chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect()
            })
            .collect();
        let mut step = Worst::default();
        let mut top1 = 0;
        for (i, row) in rows[..n].iter().enumerate() {
            step.add(error(row, &refs[i]), i);
            top1 +=
                (argmax(row.iter().map(|&x| x as f64)) == argmax(refs[i].iter().copied())) as usize;
        }
        let mut prefill = Worst::default();
        prefill.add(error(&rows[n], &refs[n - 1]), n - 1);
        let kname = if kernels.is_empty() {
            "dispatched"
        } else {
            kernels
        };
        let line = format!(
            "C API {label} ({kname} kernels), {n} tokens: token-by-token rel {:.2e} (pos {}) abs {:.2e}, \
             top-1 {top1}/{n}; prefill rel {:.2e} abs {:.2e}",
            step.rel, step.at, step.abs, prefill.rel, prefill.abs
        );
        println!("{line}");
        assert!(
            step.rel <= REL_BOUND && prefill.rel <= REL_BOUND,
            "relative error above {REL_BOUND:e}: {line}"
        );
    }
}

fn argmax(v: impl Iterator<Item = f64>) -> usize {
    v.enumerate()
        .fold(
            (0, f64::NEG_INFINITY),
            |b, (i, x)| if x > b.1 { (i, x) } else { b },
        )
        .0
}

/// The C API on the GQA-2 / head_dim 64 / tied shape (the C API wants hidden_dim % 32 == 0),
/// with the dispatched kernels and with the scalar ones.
#[test]
fn c_api_matches_numpy() {
    require_numpy();
    let s = SHAPES
        .iter()
        .find(|s| s.name == "gqa2_hd64_tied")
        .expect("shape");
    let dir = TempDir::new("c");
    let path = dir.0.join(format!("{}.gguf", s.name));
    write_model(s, &path);
    let tokens = prompt(s);
    let refs = reference(&path, &tokens, s.vocab, &dir.0.join("ref.f64"));
    c_api_check(s.name, &path, &tokens, &refs, &["", "scalar"], &dir.0);
}

/// The real model: SmolLM2-135M-Instruct with F16 weights (the engine keeps F32 activations for
/// them), through the C API, against the reference reading the same F16 values into float64.
#[test]
fn smollm2_f16_matches_numpy() {
    require_numpy();
    let model = common::model("f16");
    // "<|im_start|>user\nWhat is the capital of France?<|im_end|>" (as in model_forward.c),
    // twice, so that the second half can copy from the first.
    let one = [
        6403, 1980, 253, 655, 28, 665, 436, 253, 1345, 2240, 282, 23324,
    ];
    let tokens: Vec<u32> = one.iter().chain(&one).copied().collect();
    let dir = TempDir::new("smollm2");
    let refs = reference(&model, &tokens, 49152, &dir.0.join("ref.f64"));
    c_api_check("SmolLM2-135M F16", &model, &tokens, &refs, &[""], &dir.0);
}

// ---------------------------------------------------------------------------------------------
// Issue 12: ground truth. For a quantized model, the float64 reference runs the model's own
// dequantized weights (scripts/reference/ggml_dequant.py, bit-identical to ggml's
// dequantize_row_*) with every other operation in float64: what the quantized model computes
// without rounding. qorus and llama.cpp both round (activations quantized to 8 bits before each
// product, float32 sums); the test holds qorus to be no farther from the truth than llama.cpp,
// variant by variant (issue 12's goal): mean KLD(truth || qorus) over the full vocabulary at every
// position of the reference prompts (636 positions, qorus fed token by token) <= llama.cpp's (one
// batch, as the reference files), strictly (see `ground_truth`). scripts/reference/ground_truth.py
// measured llama.cpp (also token by token, with
// flash attention and with an F16 KV cache, printed for scale); tests/data/reference/
// ground_truth.tsv and ground_truth_positions.tsv hold it (tests/data/README.md has the table). The float64 logits are computed here (measured ~16 s per SmolLM2 variant on an idle
// 2-core machine), not committed.
// ---------------------------------------------------------------------------------------------

/// The token ids of every prompt of a reference logits file (format: tests/data/README.md).
fn reference_prompts(path: &Path) -> Vec<Vec<u32>> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as usize;
    assert_eq!(&b[..4], b"QRLG", "{}: not a logits file", path.display());
    let (n_vocab, n_prompts, top_k) = (u32_at(8), u32_at(12), u32_at(16));
    let mut off = 96 + 8 * n_prompts;
    let mut out = Vec::new();
    for i in 0..n_prompts {
        let (n_tok, n_full) = (u32_at(96 + 8 * i), u32_at(96 + 8 * i + 4));
        out.push((0..n_tok).map(|t| u32_at(off + 4 * t) as u32).collect());
        off += 4 * (n_tok + n_full + n_full * n_vocab + 2 * n_tok * top_k);
    }
    assert_eq!(off, b.len(), "{}: size", path.display());
    out
}

/// KL(P || Q) of the softmaxes of two logit rows.
fn kld(p: &[f64], q: &[f32]) -> f64 {
    let mp = p.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
    let mq = q.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let lsp = mp + p.iter().map(|&x| (x - mp).exp()).sum::<f64>().ln();
    let lsq = mq + q.iter().map(|&x| (x as f64 - mq).exp()).sum::<f64>().ln();
    let k: f64 = p
        .iter()
        .zip(q)
        .map(|(&a, &b)| {
            let lp = a - lsp;
            lp.exp() * (lp - (b as f64 - lsq))
        })
        .sum();
    k.max(0.0)
}

/// qorus against the float64 truth on the prompts of `logits_<label>.bin`; asserts qorus's mean
/// KLD is no larger than llama.cpp's (one batch).
fn ground_truth(model_path: &Path, label: &str) {
    use std::io::Read;
    require_numpy();
    let reference = common::root().join(format!("tests/data/reference/logits_{label}.bin"));
    let prompts = reference_prompts(&reference);
    let dir = TempDir::new(&format!("truth-{label}"));
    let out = dir.0.join("truth.f64");
    let script = common::root().join("scripts/reference/numpy_forward.py");
    let t0 = std::time::Instant::now();
    let o = python_numpy()
        .arg(&script)
        .arg(model_path)
        .arg("--prompts-from")
        .arg(&reference)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    eprint!("{}", String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{} failed", script.display());
    let t_ref = t0.elapsed().as_secs_f64();

    let model: Arc<Model> = Model::open(model_path).unwrap();
    let vocab = model.config.vocab_size;
    let mut truth = std::io::BufReader::new(std::fs::File::open(&out).unwrap());
    let mut raw = vec![0u8; vocab * 8];
    let mut row = vec![0f64; vocab];
    let (mut sum, mut max, mut top1, mut n) = (0f64, 0f64, 0usize, 0usize);
    let mut ours_kld = Vec::new();
    for p in &prompts {
        let mut sess = Session::new(model.clone(), 0).unwrap();
        for &t in p {
            let ours = sess.forward(&[t]).unwrap();
            truth
                .read_exact(&mut raw)
                .expect("float64 reference shorter than the prompts");
            for (r, b) in row.iter_mut().zip(raw.chunks_exact(8)) {
                *r = f64::from_le_bytes(b.try_into().unwrap());
            }
            let k = kld(&row, ours);
            assert!(k.is_finite(), "{label}: KLD is not finite");
            ours_kld.push(k);
            sum += k;
            max = max.max(k);
            top1 +=
                (argmax(row.iter().copied()) == argmax(ours.iter().map(|&x| x as f64))) as usize;
            n += 1;
        }
    }
    assert!(
        truth.read(&mut raw[..1]).unwrap() == 0,
        "float64 reference longer than the prompts"
    );
    let mean = sum / n as f64;
    let r = common::ground_truth_row(label);
    let llama = r["llama_f64_kld_mean"];
    assert_eq!(n as f64, r["positions"], "{label}: positions");
    // qorus rounds the Q8_K activations of the 256-block K types more finely than llama.cpp
    // (per-32 power-of-two sub-scales, `kernels::kdot`), which puts it at 0.53-0.82 of
    // llama.cpp's distance on the K variants; Q8_0 and Q4_0 (no K products) do llama.cpp's
    // arithmetic in another summation order and are below it too (ratio ~0.98). So the mean is
    // held strictly to llama.cpp's one-batch mean, every variant. Printed beside: llama.cpp's
    // other valid settings (token by token, flash attention, F16 KV cache: how much its own
    // arithmetic order moves it), and the paired difference per position (qorus - llama.cpp one
    // batch) with two standard errors (positions treated as independent, which they are not
    // quite: errors carry through the KV cache).
    let theirs = llama_positions(label);
    assert_eq!(theirs.len(), n, "{label}: per-position KLDs");
    let d: Vec<f64> = ours_kld.iter().zip(&theirs).map(|(a, b)| a - b).collect();
    let md = d.iter().sum::<f64>() / n as f64;
    let sd = (d.iter().map(|x| (x - md) * (x - md)).sum::<f64>() / (n - 1) as f64).sqrt();
    let se = sd / (n as f64).sqrt();
    let theirs_mean = theirs.iter().sum::<f64>() / n as f64;
    assert!(
        (theirs_mean - llama).abs() <= 1e-4 * llama,
        "{label}: ground_truth_positions.tsv does not match ground_truth.tsv"
    );
    let settings = [
        ("token by token", r["tbt_f64_kld_mean"]),
        ("flash attention", r["flash_f64_kld_mean"]),
        ("F16 KV cache", r["kvf16_f64_kld_mean"]),
    ];
    let line = format!(
        "{label:<14} vs float64 truth, {n} positions: qorus mean KLD {mean:.3e} (max {max:.3e}, top-1 {:.2} %); \
         llama.cpp one batch {llama:.3e} (max {:.3e}, top-1 {:.2} %), token by token {:.3e}, flash {:.3e}, \
         F16 KV {:.3e}; qorus - llama.cpp {md:+.2e} (2 SE {:.2e}), ratio {:.3}; reference {t_ref:.1} s",
        100.0 * top1 as f64 / n as f64,
        r["llama_f64_kld_max"],
        r["llama_f64_top1"],
        settings[0].1,
        settings[1].1,
        settings[2].1,
        2.0 * se,
        mean / llama
    );
    println!("{line}");
    assert!(
        settings.iter().all(|s| s.1.is_finite() && s.1 > 0.0),
        "{label}: ground_truth.tsv lacks llama.cpp's settings"
    );
    assert!(
        mean <= llama,
        "{label}: qorus is farther from the float64 truth than llama.cpp ({llama:.3e})\n{line}"
    );
}

/// llama.cpp's per-position KLD to the truth (one batch) for `label`, from
/// tests/data/reference/ground_truth_positions.tsv (scripts/reference/ground_truth.py --update).
fn llama_positions(label: &str) -> Vec<f64> {
    let path = common::root().join("tests/data/reference/ground_truth_positions.tsv");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut f = line.split('\t');
        if f.next() == Some(label) {
            return f
                .map(|x| {
                    x.parse()
                        .unwrap_or_else(|_| panic!("{}: {x:?}", path.display()))
                })
                .collect();
        }
    }
    panic!("{} has no row for {label}", path.display());
}

#[test]
fn ground_truth_q8_0() {
    ground_truth(&common::model("q8_0"), "Q8_0");
}

#[test]
fn ground_truth_q4_0() {
    ground_truth(&common::model("q4_0"), "Q4_0");
}

/// Issue 12's variants (need branches kquant-quantizer and kquant-engine).
fn ground_truth_kquant(variant: &str) {
    let m = common::KQUANT_MODELS
        .iter()
        .find(|m| m.variant == variant)
        .expect("variant");
    ground_truth(&common::kquant_model(variant), m.label);
}

#[test]
fn ground_truth_q4_k_m() {
    ground_truth_kquant("q4_k_m");
}

#[test]
fn ground_truth_q5_k_m() {
    ground_truth_kquant("q5_k_m");
}

#[test]
fn ground_truth_q6_k() {
    ground_truth_kquant("q6_k");
}

#[test]
fn ground_truth_q3_k_m() {
    ground_truth_kquant("q3_k_m");
}

#[test]
fn ground_truth_q2_k() {
    ground_truth_kquant("q2_k");
}

#[test]
fn ground_truth_iq4_xs() {
    ground_truth_kquant("iq4_xs");
}

#[test]
fn ground_truth_random_d512_q4_k_m() {
    ground_truth_kquant("rnd512_q4_k_m");
}

#[test]
fn ground_truth_random_d512_q6_k() {
    ground_truth_kquant("rnd512_q6_k");
}
