//! Logits at every position of every prompt with a given KV cache type (for
//! scripts/reference/kv_cache_spread.py, beside llama.cpp's F32/F16-cache logits).
//!
//! `cargo run --release --example kv_logits MODEL.gguf f32|f16|q8_0 OUT.f32 < prompts.txt`
//! prompts.txt: one prompt per line, token ids separated by spaces. OUT.f32: for each prompt and
//! position, `vocab_size` little-endian f32 (the prompt is run as one prefill; prefill equals
//! token by token bit for bit, tests/kv_types.rs).

use std::io::{BufRead, Write};

use qorus::engine::kv_cache::KvType;
use qorus::engine::{Model, Session};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 4 {
        eprintln!("usage: {} MODEL f32|f16|q8_0 OUT.f32 < prompts.txt", a[0]);
        std::process::exit(2);
    }
    let model = Model::open(std::path::Path::new(&a[1])).expect("model");
    let ty = KvType::parse(&a[2]).expect("cache type f32, f16 or q8_0");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&a[3]).expect("output"));
    let mut n = 0;
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let toks: Vec<u32> = line
            .split_whitespace()
            .map(|t| t.parse().expect("token id"))
            .collect();
        if toks.is_empty() {
            continue;
        }
        let mut s = Session::with_kv_type(model.clone(), toks.len(), ty).expect("session");
        for &t in &toks {
            for v in s.forward(&[t]).expect("forward") {
                out.write_all(&v.to_le_bytes()).expect("write");
            }
        }
        n += toks.len();
    }
    eprintln!("kv_logits: {n} positions, KV cache {}", ty.name());
}
