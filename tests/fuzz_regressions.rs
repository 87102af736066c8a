//! Fuzzing regressions (issue 8): every committed seed under `fuzz/corpus/<target>/` and every
//! crasher or hand-made hostile input under `tests/data/fuzz_regressions/<target>/` goes through
//! the same code as the cargo-fuzz target of that name (`fuzz/src/lib.rs`, included below), which
//! asserts an error or a checked result, never a panic.
//!
//! `cargo test --release --test fuzz_regressions -- --ignored write_seed_corpora` regenerates
//! the hand-made seeds (tiny GGUF and `.qorus` models, tokenizer files, texts, ids).
//!
//! The tokenize/detokenize inputs need the SmolLM2 Q4_1 model (`tests/common::model("q4_1")`).

mod common;
mod family_models;

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::PathBuf;

use qorus::ffi::types::{q_model_header, Q_MAGIC};
use qorus::format::gguf::{Gguf, Value};
use qorus::format::gguf_write::{GgufWriter, TensorSpec};
use qorus::format::qorus_file::{header_bytes, layout, ALIGN};
use qorus::format::tokenizer_file::TokenizerFile;
use qorus::quant::{quantize_row, WeightType};
use qorus::tokenizer::Tokenizer;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file of `fuzz/corpus/<target>` and `tests/data/fuzz_regressions/<target>`, sorted.
fn inputs(target: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for dir in [
        root().join("fuzz/corpus").join(target),
        root().join("tests/data/fuzz_regressions").join(target),
    ] {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            v.extend(rd.map(|e| e.unwrap().path()).filter(|p| p.is_file()));
        }
    }
    v.sort();
    v
}

fn run(target: &str, f: fn(&[u8])) {
    let files = inputs(target);
    assert!(!files.is_empty(), "no inputs for {target}");
    for p in &files {
        let data = std::fs::read(p).unwrap();
        eprintln!("{target}: {} ({} bytes)", p.display(), data.len());
        f(&data);
    }
}

#[test]
fn gguf_reader() {
    run("gguf_reader", harness::gguf_reader);
}

#[test]
fn qorus_reader() {
    run("qorus_reader", harness::qorus_reader);
}

#[test]
fn tokenizer_file() {
    run("tokenizer_file", harness::tokenizer_file);
}

#[test]
fn tokenize() {
    common::model("q4_1");
    run("tokenize", harness::tokenize);
}

#[test]
fn detokenize() {
    common::model("q4_1");
    run("detokenize", harness::detokenize);
}

// ---------------------------------------------------------------------------------------------
// Seed generator

struct Lcg(u32);

impl Lcg {
    fn f(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(1_103_515_245).wrapping_add(12345);
        ((self.0 >> 9) as f32 / (1u32 << 23) as f32 - 0.5) * 0.2
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f()).collect()
    }
}

/// Shapes of a LLaMA model.
#[derive(Clone, Copy)]
struct Shape {
    v: u64,
    d: u64,
    h: u64,
    l: u64,
    heads: u64,
    kv: u64,
    ctx: u64,
}

fn u32v(x: u64) -> Value {
    Value::U32(x as u32)
}

fn s(x: &str) -> Value {
    Value::String(x.as_bytes().to_vec())
}

fn strings(xs: &[Vec<u8>]) -> Value {
    Value::Array(xs.iter().map(|x| Value::String(x.clone())).collect())
}

/// GPT-2 style vocabulary: the 256 byte characters, a few merged tokens and two control tokens.
fn gpt2_tokenizer_meta() -> Vec<(String, Value)> {
    let table = qorus::tokenizer::unicode::byte_to_char_table();
    let mut tokens: Vec<Vec<u8>> = (0..256)
        .map(|b| char::from_u32(table[b]).unwrap().to_string().into_bytes())
        .collect();
    let merges = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r"];
    for m in merges {
        tokens.push(m.replace(' ', "").into_bytes());
    }
    tokens.push(b"<|im_start|>".to_vec());
    tokens.push(b"<|im_end|>".to_vec());
    let n = tokens.len();
    let mut types = vec![Value::I32(1); n];
    types[n - 2] = Value::I32(3);
    types[n - 1] = Value::I32(3);
    vec![
        ("tokenizer.ggml.model".into(), s("gpt2")),
        ("tokenizer.ggml.pre".into(), s("smollm")),
        ("tokenizer.ggml.tokens".into(), strings(&tokens)),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
        (
            "tokenizer.ggml.merges".into(),
            strings(
                &merges
                    .iter()
                    .map(|m| m.as_bytes().to_vec())
                    .collect::<Vec<_>>(),
            ),
        ),
        ("tokenizer.ggml.bos_token_id".into(), u32v(n as u64 - 2)),
        ("tokenizer.ggml.eos_token_id".into(), u32v(n as u64 - 1)),
        (
            "tokenizer.chat_template".into(),
            s("{% for m in messages %}<|im_start|>{{ m.content }}<|im_end|>{% endfor %}"),
        ),
    ]
}

/// SentencePiece style vocabulary with scores, byte tokens and control tokens.
fn spm_tokenizer_meta() -> Vec<(String, Value)> {
    let mut tokens: Vec<Vec<u8>> = vec![b"<unk>".to_vec(), b"<s>".to_vec(), b"</s>".to_vec()];
    let mut types = vec![Value::I32(2), Value::I32(3), Value::I32(3)];
    for b in [0x0Au8, 0x41, 0xC3, 0xA9] {
        tokens.push(format!("<0x{b:02X}>").into_bytes());
        types.push(Value::I32(6));
    }
    for t in [
        "\u{2581}",
        "\u{2581}a",
        "b",
        "ab",
        "\u{2581}ab",
        "\u{e9}",
        "c",
    ] {
        tokens.push(t.as_bytes().to_vec());
        types.push(Value::I32(1));
    }
    let scores = (0..tokens.len()).map(|i| Value::F32(-(i as f32))).collect();
    vec![
        ("tokenizer.ggml.model".into(), s("llama")),
        ("tokenizer.ggml.tokens".into(), strings(&tokens)),
        ("tokenizer.ggml.scores".into(), Value::Array(scores)),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(true)),
    ]
}

/// A LLaMA GGUF: `mat` for the projection matrices, `embd` for the embedding, an output matrix
/// of type `out` (tied when `None`), plus `extra` metadata.
fn llama_gguf(
    sh: Shape,
    mat: WeightType,
    embd: WeightType,
    out: Option<WeightType>,
    extra: Vec<(String, Value)>,
) -> Vec<u8> {
    let Shape {
        v,
        d,
        h,
        l,
        heads,
        kv,
        ctx,
    } = sh;
    let kvd = d / heads * kv;
    let mut ts: Vec<TensorSpec> = Vec::new();
    let mut t =
        |name: String, dims: Vec<u64>, ty: WeightType| ts.push(TensorSpec { name, dims, ty });
    t("token_embd.weight".into(), vec![d, v], embd);
    t("output_norm.weight".into(), vec![d], WeightType::F32);
    if let Some(o) = out {
        t("output.weight".into(), vec![d, v], o);
    }
    for i in 0..l {
        let n = |x: &str| format!("blk.{i}.{x}.weight");
        t(n("attn_norm"), vec![d], WeightType::F32);
        t(n("attn_q"), vec![d, d], mat);
        t(n("attn_k"), vec![d, kvd], mat);
        t(n("attn_v"), vec![d, kvd], mat);
        t(n("attn_output"), vec![d, d], mat);
        t(n("ffn_norm"), vec![d], WeightType::F32);
        t(n("ffn_gate"), vec![d, h], mat);
        t(n("ffn_up"), vec![d, h], mat);
        t(n("ffn_down"), vec![h, d], mat);
    }
    let mut meta = vec![
        ("general.architecture".to_string(), s("llama")),
        ("general.name".to_string(), s("fuzz seed")),
        ("llama.block_count".to_string(), u32v(l)),
        ("llama.context_length".to_string(), u32v(ctx)),
        ("llama.embedding_length".to_string(), u32v(d)),
        ("llama.feed_forward_length".to_string(), u32v(h)),
        ("llama.attention.head_count".to_string(), u32v(heads)),
        ("llama.attention.head_count_kv".to_string(), u32v(kv)),
        ("llama.rope.freq_base".to_string(), Value::F32(10000.0)),
        (
            "llama.attention.layer_norm_rms_epsilon".to_string(),
            Value::F32(1e-5),
        ),
    ];
    meta.extend(extra);
    let mut rng = Lcg(d as u32 * 31 + l as u32);
    let mut buf = Vec::new();
    let mut w = GgufWriter::new(&mut buf, "seed", &meta, &ts).unwrap();
    for spec in &ts {
        let n: u64 = spec.dims.iter().product();
        let vals = rng.vec(n as usize);
        let b = if spec.ty.is_kquant_family() {
            random_blocks(spec.ty, spec.size().unwrap(), &mut rng)
        } else {
            let mut b = vec![0u8; spec.size().unwrap()];
            quantize_row(spec.ty, &vals, &mut b).unwrap();
            b
        };
        w.write_tensor(&b).unwrap();
    }
    w.finish().unwrap();
    buf
}

/// `size` bytes of blocks of `ty` (one of the issue-12 types): random codes and scales, finite
/// f16 super-scales.
fn random_blocks(ty: WeightType, size: usize, rng: &mut Lcg) -> Vec<u8> {
    let mut b = vec![0u8; size];
    for x in b.iter_mut() {
        *x = (rng.f() * 2560.0) as i32 as u8;
    }
    let offs = qorus::quant::kquants::f16_offsets(ty);
    for blk in b.chunks_exact_mut(ty.block_bytes()) {
        for &o in offs {
            let h = qorus::quant::reference::f32_to_f16_bits(rng.f() * 0.05);
            blk[o..o + 2].copy_from_slice(&h.to_le_bytes());
        }
    }
    b
}

/// A GGUF holding only metadata.
fn meta_gguf(meta: Vec<(String, Value)>) -> Vec<u8> {
    let mut buf = Vec::new();
    let w = GgufWriter::new(&mut buf, "seed", &meta, &[]).unwrap();
    w.finish().unwrap();
    buf
}

/// A `.qorus` model file.
fn qorus_file(sh: Shape) -> Vec<u8> {
    let h = q_model_header {
        magic: Q_MAGIC,
        version: 2,
        vocab_size: sh.v as u32,
        dim: sh.d as u32,
        hidden_dim: sh.h as u32,
        n_layers: sh.l as u32,
        n_heads: sh.heads as u32,
        n_kv_heads: sh.kv as u32,
        max_seq_len: sh.ctx as u32,
        rope_freq_base: 10000.0,
        rms_norm_eps: 1e-5,
        reserved: [0; 5],
    };
    let l = layout(&h, usize::MAX).unwrap();
    let mut out = header_bytes(&h).to_vec();
    let mut rng = Lcg(7);
    for t in &l.tensors {
        assert_eq!(out.len(), t.offset);
        let mut b = vec![0u8; t.size];
        quantize_row(t.ty, &rng.vec(t.rows * t.cols), &mut b).unwrap();
        out.extend_from_slice(&b);
        out.resize(out.len().div_ceil(ALIGN) * ALIGN, 0);
    }
    assert_eq!(out.len(), l.end);
    out
}

fn write(target: &str, name: &str, data: &[u8]) {
    let dir = root().join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    assert!(
        data.len() < 64 << 10,
        "seed {target}/{name} is {} bytes",
        data.len()
    );
    std::fs::write(dir.join(name), data).unwrap();
}

fn write_nasty(target: &str, name: &str, data: &[u8]) {
    let dir = root().join("tests/data/fuzz_regressions").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), data).unwrap();
}

fn put_u64(b: &mut [u8], at: usize, x: u64) {
    b[at..at + 8].copy_from_slice(&x.to_le_bytes());
}

fn ids_bytes(ids: &[u32]) -> Vec<u8> {
    ids.iter().flat_map(|i| i.to_le_bytes()).collect()
}

#[test]
#[ignore = "writes the seed corpora; run by hand"]
fn write_seed_corpora() {
    use WeightType::*;
    // gguf_reader
    let small = Shape {
        v: 8,
        d: 16,
        h: 32,
        l: 1,
        heads: 2,
        kv: 1,
        ctx: 16,
    };
    let a = llama_gguf(small, F32, F32, None, vec![]);
    write("gguf_reader", "tiny-f32-tied", &a);
    let with_tok = Shape {
        v: 264,
        d: 32,
        h: 64,
        l: 2,
        heads: 4,
        kv: 2,
        ctx: 32,
    };
    let b = llama_gguf(with_tok, Q4_0, Q4_0, Some(Q8_0), gpt2_tokenizer_meta());
    write("gguf_reader", "q4_0-gpt2-tokenizer", &b);
    let mixed = Shape {
        v: 14,
        d: 32,
        h: 32,
        l: 1,
        heads: 4,
        kv: 4,
        ctx: 8,
    };
    let mut extra = spm_tokenizer_meta();
    extra.push(("general.alignment".into(), Value::U32(64)));
    let c = llama_gguf(mixed, F16, Q4_1, Some(BF16), extra);
    write("gguf_reader", "f16-q4_1-bf16-spm-align64", &c);
    let d = llama_gguf(mixed, Q4_1, Q8_0, Some(F16), vec![]);
    write("gguf_reader", "q4_1-q8_0-f16", &d);
    for (name, bytes) in [("tiny-f32-tied", &a), ("q4_0-gpt2-tokenizer", &b)] {
        assert!(Gguf::parse(bytes).is_ok(), "{name}");
    }

    // qorus_reader
    let q1 = qorus_file(Shape {
        v: 8,
        d: 32,
        h: 32,
        l: 1,
        heads: 4,
        kv: 4,
        ctx: 16,
    });
    write("qorus_reader", "tiny-l1", &q1);
    let q2 = qorus_file(Shape {
        v: 16,
        d: 64,
        h: 96,
        l: 2,
        heads: 8,
        kv: 4,
        ctx: 8,
    });
    write("qorus_reader", "small-l2-gqa", &q2);

    // tokenizer_file
    let mut vocab: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
    vocab.extend([
        b"ab".to_vec(),
        b"abc".to_vec(),
        b" the".to_vec(),
        b"\xc3\xa9".to_vec(),
    ]);
    let f = TokenizerFile {
        vocab,
        merges: vec![(97, 98, 256), (256, 99, 257), (0xC3, 0xA9, 259)],
        bos: 1,
        eos: 2,
        pad: 0,
    };
    write("tokenizer_file", "bytes-and-merges", &f.to_bytes().unwrap());
    let tiny = TokenizerFile {
        vocab: vec![b"a".to_vec(), b"b".to_vec(), b"ab".to_vec()],
        merges: vec![(0, 1, 2)],
        bos: 7,
        eos: 8,
        pad: 9,
    };
    write("tokenizer_file", "three-entries", &tiny.to_bytes().unwrap());
    let gt = meta_gguf(gpt2_tokenizer_meta());
    write("tokenizer_file", "gguf-gpt2", &gt);
    let tok = Tokenizer::from_gguf(&Gguf::parse(&gt).unwrap()).unwrap();
    let conv = TokenizerFile::from_tokenizer(&tok)
        .unwrap()
        .to_bytes()
        .unwrap();
    write("tokenizer_file", "converted-gpt2", &conv);
    write(
        "tokenizer_file",
        "gguf-spm",
        &meta_gguf(spm_tokenizer_meta()),
    );

    // tokenize
    for (name, text) in [
        ("hello", "Hello, world! How are you today?"),
        (
            "chat",
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi",
        ),
        (
            "multilingual",
            "Caf\u{e9} na\u{ef}ve \u{4f60}\u{597d}\u{4e16}\u{754c} \u{41f}\u{440}\u{438}\u{432}\u{435}\u{442} \u{1F600}\u{1F44D}\u{1F3FD}",
        ),
        (
            "code",
            "fn main() {\n    let x = vec![1, 2, 3];\n\tprintln!(\"{x:?}\");\n}\n",
        ),
        ("numbers-space", "12345678  3.14159   \n\n\n  x'll we're I'M"),
    ] {
        write("tokenize", name, text.as_bytes());
    }
    write(
        "tokenize",
        "invalid-utf8",
        b"ok \xff\xfe \xc3( \xe2\x82 end\x00",
    );

    // detokenize: ids of real texts, plus ids at and past the vocabulary's end
    let path = common::model("q4_1");
    let bytes = std::fs::read(path).unwrap();
    let real = Tokenizer::from_gguf(&Gguf::parse(&bytes).unwrap()).unwrap();
    let n = real.vocab_size() as u32;
    for (name, text) in [
        ("hello", "Hello, world! How are you today?"),
        (
            "emoji-multibyte",
            "Caf\u{e9} \u{4f60}\u{597d} \u{1F600}\u{1F44D}\u{1F3FD}",
        ),
        ("chat", "<|im_start|>user\nhi<|im_end|>\n"),
    ] {
        write(
            "detokenize",
            name,
            &ids_bytes(&real.encode(text.as_bytes(), false, true)),
        );
    }
    write(
        "detokenize",
        "edges",
        &ids_bytes(&[0, 1, 2, n - 1, n, n + 1, 0x7FFF_FFFF, 0x8000_0000, u32::MAX]),
    );

    // Hand-made hostile inputs for the regression test (not seeds).
    let mut huge = a.clone();
    put_u64(&mut huge, 8, u64::MAX); // tensor count
    write_nasty("gguf_reader", "huge-tensor-count", &huge);
    let mut kv = a.clone();
    put_u64(&mut kv, 16, 1 << 40); // metadata count
    write_nasty("gguf_reader", "huge-metadata-count", &kv);
    write_nasty("gguf_reader", "truncated", &b[..b.len() / 2]);
    write_nasty("gguf_reader", "magic-only", b"GGUF");
    let mut hq = q1.clone();
    hq[8..12].copy_from_slice(&u32::MAX.to_le_bytes()); // vocab_size
    write_nasty("qorus_reader", "huge-vocab", &hq);
    let mut zl = q1.clone();
    zl[20..24].copy_from_slice(&0u32.to_le_bytes()); // n_layers
    write_nasty("qorus_reader", "zero-layers", &zl);
    write_nasty("qorus_reader", "short", &q1[..63]);
    // A context whose RoPE tables would take 8 GiB (was built eagerly before the bound).
    let mut hc = q1.clone();
    hc[32..36].copy_from_slice(&(1u32 << 28).to_le_bytes()); // max_seq_len
    write_nasty("qorus_reader", "huge-context", &hc);
    let long = Shape {
        ctx: 1 << 25,
        ..small
    };
    write_nasty(
        "gguf_reader",
        "huge-context",
        &llama_gguf(long, F32, F32, None, vec![]),
    );
    write_nasty("qorus_reader", "truncated-last-tensor", &q1[..q1.len() - 1]);
    let mut tf = tiny.to_bytes().unwrap();
    tf[8..12].copy_from_slice(&1_000_000u32.to_le_bytes()); // vocab size, entries missing
    write_nasty("tokenizer_file", "vocab-count-past-end", &tf);
    let mut tm = tiny.to_bytes().unwrap();
    let at = tm.len() - 4;
    tm[at..].copy_from_slice(&u32::MAX.to_le_bytes()); // merge id outside the vocabulary
    write_nasty("tokenizer_file", "merge-id-out-of-range", &tm);
    // A vocabulary entry of 30 000 characters outside the GPT-2 byte table: llama.cpp's
    // unknown-character rule echoes the whole entry after each one (1.8 GB before the bound).
    let mut meta = gpt2_tokenizer_meta();
    if let Value::Array(tokens) = &mut meta[2].1 {
        tokens.push(Value::String("\u{400}".repeat(30_000).into_bytes()));
    }
    if let Value::Array(types) = &mut meta[3].1 {
        types.push(Value::I32(1));
    }
    write_nasty(
        "tokenizer_file",
        "quadratic-unknown-piece",
        &meta_gguf(meta),
    );
    write_nasty("tokenize", "empty", b"");
    write_nasty(
        "tokenize",
        "lone-surrogate-cesu",
        b"\xed\xa0\x80 \xf4\x90\x80\x80",
    );
    write_nasty("detokenize", "all-max", &ids_bytes(&[u32::MAX; 16]));
    write_nasty("detokenize", "partial-id", &[1, 2, 3]);
    // The model families: a tiny model of each as a seed, and hostile variants.
    for spec in family_models::SPECS {
        write(
            "gguf_reader",
            &format!("family-{}", spec.arch),
            &tiny_family(spec.arch),
        );
    }
    for (name, bytes, _) in hostile_families() {
        write_nasty("gguf_reader", name, &bytes);
    }
}

/// A tiny model of a family (d 32, ffn 32, 1 layer, 2 heads of 16, 1 KV head; Gemma's window
/// 16).
fn tiny_family(arch: &str) -> Vec<u8> {
    let base = family_models::SPECS
        .iter()
        .find(|s| s.arch == arch)
        .unwrap();
    let spec = family_models::Spec {
        dim: 32,
        hidden: 32,
        layers: 1,
        heads: 2,
        kv_heads: 1,
        key_length: Some(16),
        context: 64,
        ..*base
    };
    let meta = gpt2_tokenizer_meta();
    let vocab = meta
        .iter()
        .find(|(k, _)| k == "tokenizer.ggml.tokens")
        .and_then(|(_, v)| v.as_array())
        .unwrap()
        .len();
    family_models::build(&spec, &meta, vocab)
}

fn set_meta(meta: &mut [(String, Value)], key: &str, v: Value) {
    meta.iter_mut().find(|(k, _)| k == key).unwrap().1 = v;
}

/// Hostile family files: (file name, bytes, text the error must contain).
#[allow(clippy::type_complexity)]
fn hostile_families() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let drop = |arch: &str, tensor: &'static str| {
        family_models::rewrite(&tiny_family(arch), |_, ts| {
            ts.retain(|(t, _)| t.name != tensor)
        })
    };
    let meta = |arch: &str, key: &'static str, v: Value| {
        family_models::rewrite(&tiny_family(arch), |m, _| set_meta(m, key, v))
    };
    let resize = |arch: &str, tensor: &'static str, n: usize| {
        family_models::rewrite(&tiny_family(arch), |_, ts| {
            let (t, b) = ts.iter_mut().find(|(t, _)| t.name == tensor).unwrap();
            t.dims = vec![n as u64];
            *b = f32s(&vec![1.0; n]);
        })
    };
    vec![
        (
            "qwen3-missing-q-norm",
            drop("qwen3", "blk.0.attn_q_norm.weight"),
            "missing tensor blk.0.attn_q_norm.weight",
        ),
        (
            "gemma3-missing-post-ffw-norm",
            drop("gemma3", "blk.0.post_ffw_norm.weight"),
            "missing tensor blk.0.post_ffw_norm.weight",
        ),
        (
            "qwen2-bias-wrong-length",
            resize("qwen2", "blk.0.attn_k.bias", 15),
            "blk.0.attn_k.bias: 1x15, expected 16 values",
        ),
        (
            "gemma3-sliding-window-0",
            meta("gemma3", "gemma3.attention.sliding_window", Value::U32(0)),
            "gemma3.attention.sliding_window is 0",
        ),
        (
            "gemma3-sliding-window-over-context",
            meta("gemma3", "gemma3.attention.sliding_window", Value::U32(65)),
            "sliding_window 65 is larger than the context length 64",
        ),
        (
            "llama-rope-freqs-wrong-size",
            resize("llama", "rope_freqs.weight", 7),
            "rope_freqs.weight: 1x7, expected 8 values",
        ),
        (
            "phi3-rope-factors-wrong-size",
            resize("phi3", "rope_factors_long.weight", 9),
            "rope_factors_long.weight: 1x9, expected 8 values",
        ),
        (
            "llama-rope-factor-zero",
            family_models::rewrite(&tiny_family("llama"), |_, ts| {
                let (_, b) = ts
                    .iter_mut()
                    .find(|(t, _)| t.name == "rope_freqs.weight")
                    .unwrap();
                *b = f32s(&[1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
            }),
            "RoPE frequency factor 0",
        ),
        (
            "llama-yarn-scaling",
            meta("llama", "llama.rope.scaling.type", s("yarn")),
            "RoPE scaling type \"yarn\"",
        ),
        (
            "qwen2-unknown-tensor",
            family_models::rewrite(&tiny_family("qwen2"), |_, ts| {
                ts.push((
                    TensorSpec {
                        name: "blk.0.attn_output.bias".into(),
                        dims: vec![32],
                        ty: WeightType::F32,
                    },
                    f32s(&[0.0; 32]),
                ))
            }),
            "tensor blk.0.attn_output.bias is not used by qorus's qwen2 model",
        ),
        (
            "unknown-architecture",
            meta("llama", "general.architecture", s("mamba")),
            "unsupported architecture \"mamba\"",
        ),
        (
            "qwen3-head-count-array",
            meta(
                "qwen3",
                "qwen3.attention.head_count_kv",
                Value::Array(vec![Value::U32(1)]),
            ),
            "per-layer arrays are not supported",
        ),
    ]
}

/// Every hostile family file fails to load with an error naming the problem (and never a
/// panic), in Rust and through the C API's `q_init_memory` / `llama_build_graph` (the harness).
#[test]
fn family_errors_name_the_problem() {
    for spec in family_models::SPECS {
        let b = tiny_family(spec.arch);
        let file = qorus::format::open_bytes(&b, spec.arch).unwrap();
        qorus::format::build_model(&file, None)
            .unwrap_or_else(|e| panic!("tiny {} model: {e}", spec.arch));
        harness::gguf_reader(&b);
    }
    for (name, bytes, want) in hostile_families() {
        let err = match qorus::format::open_bytes(&bytes, name) {
            Err(e) => e,
            Ok(f) => match qorus::format::build_model(&f, None) {
                Err(e) => e,
                Ok(_) => panic!("{name}: loaded"),
            },
        };
        let msg = err.to_string();
        println!("{name}: {msg}");
        assert!(msg.contains(want), "{name}: {msg:?} does not say {want:?}");
        assert_ne!(err.code(), qorus::ffi::types::Q_ERR_INTERNAL);
        harness::gguf_reader(&bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// The K-quant family (issue 12): hostile files built in memory and run through the gguf_reader
// target's code (parse, model build and forward in Rust and through the C API).

/// Offset of tensor `name`'s info (just after its name) in a GGUF image.
fn info_at(file: &[u8], name: &str) -> usize {
    let key = [&(name.len() as u64).to_le_bytes()[..], name.as_bytes()].concat();
    file.windows(key.len())
        .position(|w| w == key)
        .expect("tensor info")
        + key.len()
}

/// Sets tensor `name`'s stored ggml type id.
fn set_type(file: &mut [u8], name: &str, id: u32) {
    let at = info_at(file, name);
    let n_dims = u32::from_le_bytes(file[at..at + 4].try_into().unwrap()) as usize;
    let ty = at + 4 + 8 * n_dims;
    file[ty..ty + 4].copy_from_slice(&id.to_le_bytes());
}

/// Sets every f16 scale of tensor `name` (of type `ty`) to `bits`.
fn set_scales(file: &mut [u8], name: &str, ty: WeightType, bits: u16) {
    let g = Gguf::parse(file).unwrap();
    let t = g.tensor(name).unwrap();
    let (start, size) = (t.file_offset, t.size);
    for blk in file[start..start + size].chunks_exact_mut(ty.block_bytes()) {
        for &o in qorus::quant::kquants::f16_offsets(ty) {
            blk[o..o + 2].copy_from_slice(&bits.to_le_bytes());
        }
    }
}

fn build_error(data: &[u8]) -> Option<String> {
    let f = match qorus::format::open_bytes(data, "hostile") {
        Ok(f) => f,
        Err(e) => return Some(e.to_string()),
    };
    qorus::format::build_model(&f, None)
        .err()
        .map(|e| e.to_string())
}

#[test]
fn kquant_hostile_files() {
    use WeightType::*;
    let sh = Shape {
        v: 16,
        d: 256,
        h: 512,
        l: 1,
        heads: 4,
        kv: 2,
        ctx: 8,
    };
    for ty in [Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS] {
        let good = llama_gguf(sh, ty, ty, None, vec![]);
        harness::gguf_reader(&good);
        assert_eq!(build_error(&good), None, "{ty:?}: a valid file");
        // NaN, infinite and huge scales: loads and runs (non-finite logits), never a crash
        for bits in [0x7e00u16, 0x7c00, 0xfc00, 0x7bff] {
            let mut f = good.clone();
            set_scales(&mut f, "blk.0.ffn_down.weight", ty, bits);
            set_scales(&mut f, "token_embd.weight", ty, bits);
            harness::gguf_reader(&f);
        }
        // truncated: the last super-block cut off
        let g = Gguf::parse(&good).unwrap();
        let last = g.tensors.iter().max_by_key(|t| t.file_offset).unwrap();
        let cut = &good[..last.file_offset + last.size - ty.block_bytes() / 2];
        harness::gguf_reader(cut);
        assert!(
            build_error(cut).is_some(),
            "{ty:?}: truncated file accepted"
        );
        // a type id whose data size does not match the bytes: larger data overlaps the next
        // tensor; the error names it
        for other in [Q8_0, Q6_K, Q4_K, Q2_K, Q5_0] {
            if other == ty {
                continue;
            }
            let mut f = good.clone();
            set_type(&mut f, "blk.0.attn_q.weight", other.ggml_id().unwrap());
            harness::gguf_reader(&f);
            // smaller data is a valid (if different) file; larger runs into the next tensor
            let n = 256 * 256;
            if other.row_bytes(n).unwrap() > ty.row_bytes(n).unwrap() {
                let e = build_error(&f).unwrap_or_else(|| panic!("{ty:?} as {other:?} accepted"));
                assert!(e.contains("blk.0.attn_q.weight"), "{e}");
            }
        }
    }
    // rows not a whole number of blocks: a 576-wide Q4_K matrix, a 48-wide Q5_0 one
    for (ty, d) in [(Q4_K, 576u64), (Q6_K, 320), (IQ4_XS, 288)] {
        let mut sh2 = sh;
        sh2.d = d;
        sh2.h = 256;
        let mut f = llama_gguf(sh2, Q8_0, Q8_0, None, vec![]);
        set_type(&mut f, "blk.0.attn_q.weight", ty.ggml_id().unwrap());
        harness::gguf_reader(&f);
        let e = build_error(&f).expect("accepted");
        assert!(
            e.contains("blk.0.attn_q.weight") && e.contains("blocks"),
            "{e}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Generation API (issue 15)

#[test]
fn grammar_parser() {
    run("grammar_parser", harness::grammar_parser);
}

#[test]
fn json_schema() {
    run("json_schema", harness::json_schema);
}

#[test]
fn state_loader() {
    common::model("q4_1");
    run("state_loader", harness::state_loader);
}

/// Writes the seeds of the generation-API targets: the grammars of `tests/data/grammars`, a few
/// schemas, and states of 0 and 1 positions from a 4-position SmolLM2 session.
#[test]
#[ignore]
fn write_genapi_seed_corpora() {
    let dir = |t: &str| {
        let d = root().join("fuzz/corpus").join(t);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let g = dir("grammar_parser");
    for e in std::fs::read_dir(root().join("tests/data/grammars")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, g.join(p.file_name().unwrap())).unwrap();
    }
    for (i, t) in [
        "root ::= [a-z]{2,5} (\",\" root)?\n",
        "root ::= x | \"\\u00e9\"+ .\nx ::= (\"ab\" [^\\x00-\\x1f])* \"c\"?\n",
        "root ::= \"a\"\n# comment\nb ::= root root\n",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(g.join(format!("small-{i}.gbnf")), t).unwrap();
    }
    let j = dir("json_schema");
    for (i, s) in [
        r#"{"type":"object","properties":{"name":{"type":"string","maxLength":8},"age":{"type":"integer"},"tags":{"type":"array","items":{"type":"string"},"maxItems":2}},"required":["name"]}"#,
        r#"{"enum":["a",1,null,true]}"#,
        r#"{"anyOf":[{"type":"number"},{"type":["boolean","null"]}]}"#,
        r#"{"type":"array","items":{"const":"x"},"minItems":1,"maxItems":3}"#,
        r#"{"properties":{"a":{"type":"string","minLength":1}}}"#,
        "true",
    ]
    .iter()
    .enumerate()
    {
        std::fs::write(j.join(format!("schema-{i}.json")), s).unwrap();
    }
    let st = dir("state_loader");
    let model = harness::smollm2_model();
    let mut s = qorus::engine::Session::new(model.clone(), harness::STATE_CTX).unwrap();
    s.forward(&[1]).unwrap();
    std::fs::write(
        st.join("pos-1-with-ids.state"),
        s.save_state(1, &[1]).unwrap(),
    )
    .unwrap();
    std::fs::write(st.join("pos-0.state"), s.save_state(0, &[]).unwrap()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Fuzzing of issues 12/13/15 (session 4): small seeds of every issue-12 block type, hostile
// block and vocabulary files (`write_block_type_corpora` writes them; the tests below rebuild
// them in memory and check the errors).

const BLOCK_TYPES: [WeightType; 9] = {
    use WeightType::*;
    [Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS]
};

/// A tiny LLaMA model (vocabulary 8, d 32, ffn 256, one layer, 2 heads, 1 KV head) whose
/// `ffn_down` (32 rows of 256, the last tensor of the file) is of type `ty`; with a 32-value
/// block type every matrix is, otherwise the others are Q4_0. About 10-20 KB.
fn block_type_model(ty: WeightType) -> Vec<u8> {
    let sh = Shape {
        v: 8,
        d: 32,
        h: 256,
        l: 1,
        heads: 2,
        kv: 1,
        ctx: 16,
    };
    if ty.block_len() == 32 {
        return llama_gguf(sh, ty, ty, None, vec![]);
    }
    let base = llama_gguf(sh, WeightType::Q4_0, WeightType::Q4_0, None, vec![]);
    let mut rng = Lcg(ty as u32 + 99);
    family_models::rewrite(&base, |_, ts| {
        let (t, b) = ts
            .iter_mut()
            .find(|(t, _)| t.name == "blk.0.ffn_down.weight")
            .unwrap();
        t.ty = ty;
        *b = random_blocks(ty, t.size().unwrap(), &mut rng);
    })
}

fn tyname(ty: WeightType) -> String {
    ty.name().to_ascii_lowercase()
}

/// Hostile block files: (file name, bytes, text the load error must contain, or `None` when the
/// file loads and runs: non-finite weights give non-finite logits, never a crash).
#[allow(clippy::type_complexity)]
fn hostile_block_types() -> Vec<(String, Vec<u8>, Option<&'static str>)> {
    let mut v = Vec::new();
    let down = "blk.0.ffn_down.weight";
    for ty in BLOCK_TYPES {
        let n = tyname(ty);
        let good = block_type_model(ty);
        // NaN, +Inf, -Inf and the largest f16 as the scales of consecutive blocks
        let mut f = good.clone();
        {
            let g = Gguf::parse(&f).unwrap();
            let t = g.tensor(down).unwrap();
            let (start, size) = (t.file_offset, t.size);
            let bits = [0x7e00u16, 0x7c00, 0xfc00, 0x7bff];
            for (i, blk) in f[start..start + size]
                .chunks_exact_mut(ty.block_bytes())
                .enumerate()
            {
                for &o in qorus::quant::kquants::f16_offsets(ty) {
                    blk[o..o + 2].copy_from_slice(&bits[(i + o) % 4].to_le_bytes());
                }
            }
        }
        v.push((format!("{n}-nonfinite-scales"), f, None));
        // the last super-block cut in half
        let cut = good[..good.len() - ty.block_bytes() / 2].to_vec();
        v.push((format!("{n}-truncated-block"), cut, Some(down)));
        // a type code whose data is larger than the bytes: Q8_0 runs past the end of the file
        let mut f = good.clone();
        set_type(&mut f, down, WeightType::Q8_0.ggml_id().unwrap());
        v.push((format!("{n}-type-code-q8_0"), f, Some(down)));
        // rows that are not a whole number of blocks: rows of 32 for a 256-value block type,
        // rows of 48 (an F16 model of d 48) for a 32-value one
        let (f, t) = if ty.block_len() == 256 {
            let mut f = good.clone();
            set_type(&mut f, "blk.0.ffn_gate.weight", ty.ggml_id().unwrap());
            (f, "blk.0.ffn_gate.weight")
        } else {
            let sh = Shape {
                v: 8,
                d: 48,
                h: 64,
                l: 1,
                heads: 2,
                kv: 1,
                ctx: 16,
            };
            let mut f = llama_gguf(sh, WeightType::F16, WeightType::F16, None, vec![]);
            set_type(&mut f, "blk.0.attn_q.weight", ty.ggml_id().unwrap());
            (f, "blk.0.attn_q.weight")
        };
        v.push((format!("{n}-row-not-whole-blocks"), f, Some(t)));
    }
    v
}

/// An SPM vocabulary of `n` tokens (the seed's, then "x0", "x1", ...) whose scores cycle through
/// NaN, +-Inf, -0, 1e38, a subnormal and ordinary values.
fn broken_scores_meta(n: usize) -> Vec<(String, Value)> {
    let mut meta = spm_tokenizer_meta();
    let get = |meta: &[(String, Value)], k: &str| -> usize {
        meta.iter().position(|(key, _)| key == k).unwrap()
    };
    let ti = get(&meta, "tokenizer.ggml.tokens");
    let si = get(&meta, "tokenizer.ggml.scores");
    let yi = get(&meta, "tokenizer.ggml.token_type");
    let (Value::Array(toks), Value::Array(types)) = (meta[ti].1.clone(), meta[yi].1.clone()) else {
        unreachable!()
    };
    let (mut toks, mut types) = (toks, types);
    for i in toks.len()..n {
        toks.push(s(&format!("x{i}")));
        types.push(Value::I32(1));
    }
    let cycle = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -0.0,
        1e38,
        1e-45,
        -1.0,
        3.0,
    ];
    let scores = (0..n).map(|i| Value::F32(cycle[i % cycle.len()])).collect();
    meta[ti].1 = Value::Array(toks);
    meta[yi].1 = Value::Array(types);
    meta[si].1 = Value::Array(scores);
    meta
}

/// Hostile vocabularies: (file name, bytes). Tokenizer-level files go to both `gguf_reader` and
/// `tokenizer_file`.
fn hostile_vocabularies() -> Vec<(&'static str, Vec<u8>)> {
    // 2500 tokens with broken scores (metadata only: the tokenizer, no model)
    let big = meta_gguf(broken_scores_meta(2500));
    // scores of the wrong type (GGUF arrays hold one type): strings
    let mut meta = broken_scores_meta(600);
    let si = meta
        .iter()
        .position(|(k, _)| k == "tokenizer.ggml.scores")
        .unwrap();
    let good_scores = meta[si].1.clone();
    meta[si].1 = Value::Array((0..600).map(|i| s(&format!("{i}.5"))).collect());
    let wrong_types = meta_gguf(meta.clone());
    meta[si].1 = good_scores;
    // fewer scores than tokens
    if let Value::Array(a) = &mut meta[si].1 {
        a.truncate(300);
    }
    let short = meta_gguf(meta);
    // a tiny Gemma 3 whose SPM vocabulary (600 tokens, broken scores) replaces the GPT-2 one
    let gemma = family_models::rewrite(&tiny_family("gemma3"), |m, ts| {
        m.retain(|(k, _)| !k.starts_with("tokenizer."));
        m.extend(broken_scores_meta(600));
        let mut rng = Lcg(5);
        let (t, b) = ts
            .iter_mut()
            .find(|(t, _)| t.name == "token_embd.weight")
            .unwrap();
        t.dims = vec![32, 600];
        t.ty = WeightType::Q4_0;
        *b = vec![0u8; t.size().unwrap()];
        quantize_row(WeightType::Q4_0, &rng.vec(32 * 600), b).unwrap();
    });
    // a Qwen2 whose vocabulary (GPT-2, 264 tokens) is larger than its embedding (200 rows)
    let qwen = family_models::rewrite(&tiny_family("qwen2"), |_, ts| {
        for (t, b) in ts.iter_mut() {
            if t.name == "token_embd.weight" || t.name == "output.bias" {
                let row = t.size().unwrap() / *t.dims.last().unwrap() as usize;
                *t.dims.last_mut().unwrap() = 200;
                b.truncate(row * 200);
            }
        }
    });
    vec![
        ("spm-2500-broken-scores", big),
        ("spm-scores-wrong-types", wrong_types),
        ("spm-fewer-scores", short),
        ("gemma3-spm-600-broken-scores", gemma),
        ("qwen2-vocab-larger-than-embedding", qwen),
    ]
}

/// Every hostile block file either loads and runs (non-finite scales) or fails with an error
/// naming the tensor; none panics in the gguf_reader target's code.
#[test]
fn block_type_errors_name_the_problem() {
    for ty in BLOCK_TYPES {
        let good = block_type_model(ty);
        assert!(good.len() < 64 << 10);
        assert_eq!(build_error(&good), None, "{ty:?}: the seed loads");
        harness::gguf_reader(&good);
    }
    for (name, bytes, want) in hostile_block_types() {
        let err = build_error(&bytes);
        println!("{name}: {err:?}");
        match (want, err) {
            (None, None) => {}
            (Some(w), Some(e)) => assert!(e.contains(w), "{name}: {e:?} does not name {w}"),
            (w, e) => panic!("{name}: expected {w:?}, got {e:?}"),
        }
        harness::gguf_reader(&bytes);
    }
    for (name, bytes) in hostile_vocabularies() {
        println!("{name}: {:?}", build_error(&bytes));
        harness::gguf_reader(&bytes);
        harness::tokenizer_file(&bytes);
    }
}

/// Writes the block-type seeds (`fuzz/corpus/gguf_reader/blocks-*`) and the hostile block and
/// vocabulary files (`tests/data/fuzz_regressions/{gguf_reader,tokenizer_file}/`).
#[test]
#[ignore = "writes seeds and regression inputs; run by hand"]
fn write_block_type_corpora() {
    for ty in BLOCK_TYPES {
        write(
            "gguf_reader",
            &format!("blocks-{}", tyname(ty)),
            &block_type_model(ty),
        );
    }
    for (name, bytes, _) in hostile_block_types() {
        write_nasty("gguf_reader", &name, &bytes);
    }
    for (name, bytes) in hostile_vocabularies() {
        write_nasty("gguf_reader", name, &bytes);
        if !name.contains("gemma3") && !name.contains("qwen2") {
            write_nasty("tokenizer_file", name, &bytes);
        }
    }
}

/// Hostile states, edited from the committed 1-position seed (the harness also tries each with
/// its checksum fixed up, so the field checks are reached).
fn hostile_states() -> Vec<(&'static str, Vec<u8>)> {
    let seed = std::fs::read(root().join("fuzz/corpus/state_loader/pos-1-with-ids.state")).unwrap();
    let vlen = u32::from_le_bytes(seed[12..16].try_into().unwrap()) as usize;
    // layers, kv heads, head dim, pos, number of ids, cache type (u32 each), then the ids
    let fields = 16 + vlen + 8;
    let field = |i: usize, x: u32| {
        let mut b = seed.clone();
        b[fields + 4 * i..fields + 4 * i + 4].copy_from_slice(&x.to_le_bytes());
        harness::with_state_checksum(&b)
    };
    let mut version_len = seed.clone();
    version_len[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut bad_id = seed.clone();
    bad_id[fields + 24..fields + 28].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut nan_cache = seed.clone();
    let end = nan_cache.len() - 8;
    for x in nan_cache[fields + 28..end].chunks_exact_mut(4) {
        x.copy_from_slice(&f32::NAN.to_le_bytes());
    }
    vec![
        (
            "version-length-max",
            harness::with_state_checksum(&version_len),
        ),
        ("layers-zero", field(0, 0)),
        ("kv-heads-max", field(1, u32::MAX)),
        ("head-dim-1", field(2, 1)),
        ("pos-past-context", field(3, 5)),
        ("pos-max", field(3, u32::MAX)),
        ("ids-count-max", field(4, u32::MAX)),
        ("ids-count-2", field(4, 2)),
        ("cache-type-7", field(5, 7)),
        ("cache-type-f16", field(5, 1)),
        (
            "id-out-of-vocabulary",
            harness::with_state_checksum(&bad_id),
        ),
        ("nan-cache", harness::with_state_checksum(&nan_cache)),
        (
            "truncated-data",
            harness::with_state_checksum(&seed[..seed.len() / 2]),
        ),
        ("magic-only", b"QKVSTATE".to_vec()),
        (
            "header-only",
            harness::with_state_checksum(&[&seed[..fields + 24], &[0u8; 8][..]].concat()),
        ),
    ]
}

/// Writes the hand-made hostile states to `tests/data/fuzz_regressions/state_loader/`.
#[test]
#[ignore = "writes regression inputs; run by hand"]
fn write_state_regressions() {
    for (name, bytes) in hostile_states() {
        write_nasty("state_loader", name, &bytes);
    }
}
