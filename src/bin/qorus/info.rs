//! `qorus info`: what a model file holds — for GGUF its metadata, tokenizer and tensor table, also
//! for files qorus cannot run — and then whether qorus can run it, and if not, why.

use std::collections::BTreeMap;
use std::path::PathBuf;

use qorus::engine::model::GgufTensors;
use qorus::engine::{Arch, Config, Model};
use qorus::format::gguf::{Gguf, Value};
use qorus::format::{map_file, qorus_file};
use qorus::quant::WeightType;

/// Arguments of `qorus info`.
#[derive(clap::Args)]
pub struct Args {
    /// Model file (GGUF or .qorus).
    model: PathBuf,
    /// Print every tensor (default: the first 40 and a summary per type).
    #[arg(long)]
    all_tensors: bool,
}

fn mib(b: usize) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

/// A metadata value in one line (long arrays and strings shortened).
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let t = String::from_utf8_lossy(s);
            let t = t.replace('\n', "\\n");
            if t.chars().count() > 80 {
                format!(
                    "{:?}... ({} bytes)",
                    t.chars().take(80).collect::<String>(),
                    s.len()
                )
            } else {
                format!("{t:?}")
            }
        }
        Value::Array(a) => {
            let head: Vec<String> = a.iter().take(6).map(show).collect();
            if a.len() > 6 {
                format!("[{}, ...] ({} items)", head.join(", "), a.len())
            } else {
                format!("[{}]", head.join(", "))
            }
        }
        Value::F32(x) => format!("{x}"),
        Value::F64(x) => format!("{x}"),
        Value::Bool(b) => format!("{b}"),
        other => other
            .as_u64()
            .map(|x| x.to_string())
            .or_else(|| other.as_f64().map(|x| x.to_string()))
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

/// ggml's name of a type id, as `qorus info` has always printed it: "?" for the ids ggml no
/// longer has (4, 5) and those after bf16 (30).
fn ggml_type_name(id: u32) -> &'static str {
    match id {
        0..=3 | 6..=30 => WeightType::ggml_id_name(id),
        _ => "?",
    }
}

fn gguf_info(g: &Gguf, file: &[u8], all: bool) -> Vec<String> {
    println!(
        "format:         GGUF v{} ({} tensors, {} metadata keys)",
        g.version,
        g.tensors.len(),
        g.metadata.len()
    );
    println!("metadata:");
    for (k, v) in &g.metadata {
        if k.starts_with("tokenizer.ggml.") && matches!(v, Value::Array(_)) {
            println!("  {k:<44} {} items", v.as_array().map_or(0, |a| a.len()));
        } else {
            println!("  {k:<44} {}", show(v));
        }
    }
    let tk = g.get_str("tokenizer.ggml.model").unwrap_or("none");
    let n = g
        .get("tokenizer.ggml.tokens")
        .and_then(|v| v.as_array())
        .map(|a| a.len())
        .unwrap_or(0);
    let pre = g.get_str("tokenizer.ggml.pre").unwrap_or("default");
    println!(
        "tokenizer:      {tk} ({pre}), {n} tokens, bos {:?}, eos {:?}, add bos {:?}, chat template: {}",
        g.get_u64("tokenizer.ggml.bos_token_id"),
        g.get_u64("tokenizer.ggml.eos_token_id"),
        g.get("tokenizer.ggml.add_bos_token").and_then(|v| v.as_bool()),
        if g.get("tokenizer.chat_template").is_some() {
            "yes"
        } else {
            "no"
        }
    );
    match qorus::tokenizer::Tokenizer::from_gguf(g) {
        Ok(_) => println!("                qorus reads this tokenizer"),
        Err(e) => println!("                qorus cannot read this tokenizer: {e}"),
    }
    let mut problems = Vec::new();
    let mut types: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    // Unsupported ggml types: (type, count, first tensor).
    let mut unsupported: BTreeMap<u32, (usize, String)> = BTreeMap::new();
    println!("tensors:");
    for (i, t) in g.tensors.iter().enumerate() {
        let ty = ggml_type_name(t.ggml_type);
        let size = match t.ty {
            Some(_) => t.size,
            None => 0,
        };
        let e = types.entry(ty.to_string()).or_default();
        e.0 += 1;
        e.1 += size;
        if all || i < 40 {
            println!(
                "  {:<36} {:<8} {:<20} {}",
                t.name,
                ty,
                format!("{:?}", t.dims),
                if t.ty.is_some() {
                    mib(size)
                } else {
                    "(type not supported)".into()
                }
            );
        }
        if t.ty.is_none() {
            let e = unsupported
                .entry(t.ggml_type)
                .or_insert((0, t.name.clone()));
            e.0 += 1;
        }
    }
    for (id, (n, first)) in &unsupported {
        problems.push(format!(
            "weight type {} (ggml type {id}) is not supported: {n} tensors ({first}, ...)",
            ggml_type_name(*id)
        ));
    }
    if !all && g.tensors.len() > 40 {
        println!(
            "  ... {} more (--all-tensors lists them)",
            g.tensors.len() - 40
        );
    }
    println!("tensor types:");
    for (ty, (n, bytes)) in types {
        println!("  {ty:<12} {n:>4} tensors  {}", mib(bytes));
    }
    match Config::from_gguf(g) {
        Err(e) => problems.push(e.to_string()),
        Ok(c) => {
            print_config(&c);
            match Arch::from_gguf(g, &c) {
                Err(e) => problems.push(e.to_string()),
                Ok(arch) => {
                    println!(
                        "family:         {} (RoPE {:?}{}{}, {:?}{}{}{}{})",
                        arch.family.name(),
                        arch.rope_style,
                        if arch.rope_freq_scale != 1.0 {
                            format!(" x{} linear", 1.0 / arch.rope_freq_scale)
                        } else {
                            String::new()
                        },
                        if arch.sliding_window > 0 {
                            format!(
                                ", sliding window {} on {} of {} layers (local base {})",
                                arch.sliding_window,
                                arch.swa_layers.iter().filter(|&&w| w).count(),
                                c.n_layers,
                                arch.rope_base_swa
                            )
                        } else {
                            String::new()
                        },
                        arch.activation,
                        if arch.qk_norm { ", Q/K norms" } else { "" },
                        if arch.post_norms { ", post-norms" } else { "" },
                        arch.embed_scale
                            .map(|e| format!(", embeddings x{e}"))
                            .unwrap_or_default(),
                        arch.final_softcap
                            .map(|s| format!(", logit soft-cap {s}"))
                            .unwrap_or_default(),
                    );
                    if c.head_dim * c.n_heads != c.dim {
                        println!(
                            "C API:          head_dim {} is not dim / n_heads ({} / {}): q_llama_config cannot hold it; the library takes it from the file",
                            c.head_dim, c.dim, c.n_heads
                        );
                    }
                    if problems.is_empty() {
                        let src = GgufTensors { gguf: g, file };
                        if let Err(e) = Model::check_source(c, arch, &src) {
                            problems.push(e.to_string());
                        }
                    }
                }
            }
        }
    }
    problems
}

fn print_config(c: &Config) {
    println!(
        "hyperparameters: vocab {}, dim {}, ffn {}, layers {}, heads {} (kv {}), head dim {}, context {}, rope base {}, rms eps {:e}",
        c.vocab_size, c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim(), c.max_seq_len, c.rope_base, c.rms_eps
    );
    println!(
        "KV cache (full context, f32): {}",
        mib(c.kv_floats().unwrap_or(0) * 4)
    );
}

pub fn run(a: Args) -> Result<(), String> {
    let f = std::fs::File::open(&a.model).map_err(|e| format!("{}: {e}", a.model.display()))?;
    // SAFETY: a read-only private mapping, only read while `map` lives.
    let map = unsafe { memmap2::MmapOptions::new().map_copy_read_only(&f) }
        .map_err(|e| format!("{}: {e}", a.model.display()))?;
    println!("file:           {} ({})", a.model.display(), mib(map.len()));
    if map.len() >= 4 && map[..4] == *b"GGUF" {
        let g = Gguf::parse(&map).map_err(|e| format!("{}: {e}", a.model.display()))?;
        let problems = gguf_info(&g, &map, a.all_tensors);
        if problems.is_empty() {
            println!("qorus can run this model");
            return Ok(());
        }
        println!("qorus cannot run this model:");
        for p in &problems {
            println!("  - {p}");
        }
        return Err(format!(
            "{}: cannot run this model ({})",
            a.model.display(),
            problems[0]
        ));
    }
    let file = map_file(&a.model, false).map_err(|e| e.to_string())?;
    let h = file.file_header();
    println!(
        "format:         .qorus (Qorus-IA v2.0) version {}",
        h.version
    );
    let layout = qorus_file::layout(&h, file.map.len())
        .map_err(|e| format!("{}: {e}", a.model.display()))?;
    let mut types: BTreeMap<&'static str, (usize, usize)> = BTreeMap::new();
    for t in &layout.tensors {
        let e = types.entry(t.ty.name()).or_default();
        e.0 += 1;
        e.1 += t.size;
    }
    println!("tokenizer:      none in the file (use a tokenizer file or the source GGUF)");
    print_config(&Config::from_header(&h));
    println!("tensor types:");
    for (ty, (n, bytes)) in types {
        println!("  {ty:<12} {n:>4} tensors  {}", mib(bytes));
    }
    Ok(())
}
