//! `qorus info`: what a model file holds.

use std::collections::BTreeMap;
use std::path::PathBuf;

use qorus::engine::Config;
use qorus::format::{map_file, qorus_file};

/// Arguments of `qorus info`.
#[derive(clap::Args)]
pub struct Args {
    /// Model file (GGUF or .qorus).
    model: PathBuf,
}

fn mib(b: usize) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

pub fn run(a: Args) -> Result<(), String> {
    let file = map_file(&a.model, false).map_err(|e| e.to_string())?;
    println!(
        "file:           {} ({})",
        a.model.display(),
        mib(file.map.len())
    );
    let mut types: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    let config =
        match &file.gguf {
            Some(g) => {
                println!(
                    "format:         GGUF v{} ({} tensors, {} metadata keys)",
                    g.version,
                    g.tensors.len(),
                    g.metadata.len()
                );
                println!("architecture:   {}", g.architecture().unwrap_or("?"));
                if let Some(n) = g.get_str("general.name") {
                    println!("name:           {n}");
                }
                for t in &g.tensors {
                    let e = types
                        .entry(t.ty.map(|t| t.name()).unwrap_or("unsupported"))
                        .or_default();
                    e.0 += 1;
                    e.1 += t.size;
                }
                let tk = g.get_str("tokenizer.ggml.model").unwrap_or("none");
                let n = g
                    .get("tokenizer.ggml.tokens")
                    .and_then(|v| v.as_array())
                    .map(|a| a.len())
                    .unwrap_or(0);
                let pre = g.get_str("tokenizer.ggml.pre").unwrap_or("default");
                println!(
                "tokenizer:      {tk} ({pre}), {n} tokens, bos {:?}, eos {:?}, chat template: {}",
                g.get_u64("tokenizer.ggml.bos_token_id"),
                g.get_u64("tokenizer.ggml.eos_token_id"),
                if g.get("tokenizer.chat_template").is_some() { "yes" } else { "no" }
            );
                Config::from_gguf(g).map_err(|e| e.to_string())?
            }
            None => {
                let h = file.file_header();
                println!(
                    "format:         .qorus (Qorus-IA v2.0) version {}",
                    h.version
                );
                let layout = qorus_file::layout(&h, file.map.len())
                    .map_err(|e| format!("{}: {e}", a.model.display()))?;
                for t in &layout.tensors {
                    let e = types.entry(t.ty.name()).or_default();
                    e.0 += 1;
                    e.1 += t.size;
                }
                println!(
                    "tokenizer:      none in the file (use a tokenizer file or the source GGUF)"
                );
                Config::from_header(&h)
            }
        };
    let c = config;
    println!(
        "hyperparameters: vocab {}, dim {}, ffn {}, layers {}, heads {} (kv {}), head dim {}, context {}, rope base {}, rms eps {:e}",
        c.vocab_size, c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim(), c.max_seq_len, c.rope_base, c.rms_eps
    );
    println!(
        "KV cache (full context, f32): {}",
        mib(c.kv_floats().unwrap_or(0) * 4)
    );
    println!("tensor types:");
    for (ty, (n, bytes)) in types {
        println!("  {ty:<12} {n:>4} tensors  {}", mib(bytes));
    }
    Ok(())
}
