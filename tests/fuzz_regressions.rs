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
        let mut b = vec![0u8; spec.size().unwrap()];
        quantize_row(spec.ty, &vals, &mut b).unwrap();
        w.write_tensor(&b).unwrap();
    }
    w.finish().unwrap();
    buf
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
