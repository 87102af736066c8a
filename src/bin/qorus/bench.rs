//! `qorus bench`: the figures of c_tests/bench_generation.c from Rust — load time, prefill and
//! decode speed, peak RSS; at a depth (`-d`, llama-bench's: that many tokens already in the
//! cache, untimed, before each measured prefill or decode).

use std::path::PathBuf;
use std::time::Instant;

use qorus::engine::kv_cache::KvType;
use qorus::engine::Session;

use crate::load;

/// Arguments of `qorus bench`.
#[derive(clap::Args)]
pub struct Args {
    /// Model file (default: SmolLM2-135M-Instruct).
    model: Option<PathBuf>,
    /// Threads (default: QORUS_NUM_THREADS or all cores).
    #[arg(short, long)]
    threads: Option<usize>,
    /// Prompt lengths to measure prefill with.
    #[arg(short = 'p', long, value_delimiter = ',', default_value = "64,512")]
    prompt: Vec<usize>,
    /// Tokens to decode.
    #[arg(short = 'n', long, default_value_t = 128)]
    gen: usize,
    /// Repetitions (the median is reported).
    #[arg(short, long, default_value_t = 3)]
    reps: usize,
    /// Depths: tokens already in the KV cache before each test (as llama-bench -d).
    #[arg(short = 'd', long, value_delimiter = ',', default_value = "0")]
    depth: Vec<usize>,
    /// KV cache type: f32, f16 or q8_0.
    #[arg(long = "cache-type", default_value = "f16", value_parser = parse_kv_type)]
    cache_type: KvType,
}

/// A KV cache type named as llama.cpp's `-ctk` (f32, f16, q8_0).
pub fn parse_kv_type(s: &str) -> Result<KvType, String> {
    KvType::parse(s).ok_or_else(|| format!("unknown KV cache type '{s}' (f32, f16 or q8_0)"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

fn peak_rss_mib() -> f64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    ru.ru_maxrss as f64 / 1024.0
}

pub fn run(a: Args) -> Result<(), String> {
    if let Some(t) = a.threads {
        qorus::engine::pool::set_num_threads(t.clamp(1, 256));
    }
    let t = Instant::now();
    let l = load::open(a.model.as_deref(), None)?;
    let load_s = t.elapsed().as_secs_f64();
    let c = l.model.config;
    let reps = a.reps.max(1);
    let longest = a.prompt.iter().copied().max().unwrap_or(0).max(1);
    let deepest = a.depth.iter().copied().max().unwrap_or(0);
    let n_ctx = (deepest + longest.max(a.gen + 1)).min(c.max_seq_len);
    let mut s =
        Session::with_kv_type(l.model.clone(), n_ctx, a.cache_type).map_err(|e| e.to_string())?;
    println!(
        "model: {} | threads: {} | KV cache: {} | load: {:.3} s",
        l.path.display(),
        qorus::engine::pool::num_threads(),
        a.cache_type.name(),
        load_s
    );
    let toks = |n: usize, from: usize| {
        (from..from + n)
            .map(|i| ((i * 7919 + 13) % c.vocab_size) as u32)
            .collect::<Vec<u32>>()
    };
    for &d in &a.depth {
        if d >= n_ctx {
            println!("depth {d}: beyond the context of {n_ctx}, skipped");
            continue;
        }
        let at = if d > 0 {
            format!(" @ d{d}")
        } else {
            String::new()
        };
        // The depth's tokens, once (untimed); each measurement rewinds to it.
        s.reset();
        for part in toks(d, 0).chunks(512) {
            s.forward(part).map_err(|e| e.to_string())?;
        }
        for &n in &a.prompt {
            if n == 0 || d + n > n_ctx {
                continue;
            }
            let p = toks(n, d);
            let mut times = Vec::new();
            for _ in 0..reps {
                s.truncate(d);
                let t = Instant::now();
                s.forward(&p).map_err(|e| e.to_string())?;
                times.push(t.elapsed().as_secs_f64());
            }
            let m = median(times);
            println!(
                "prefill pp{n}{at}: {:.1} tokens/s ({:.3} ms/token)",
                n as f64 / m,
                1e3 * m / n as f64
            );
        }
        if a.gen == 0 || d + a.gen + 1 > n_ctx {
            continue;
        }
        let mut times = Vec::new();
        for _ in 0..reps {
            s.truncate(d);
            s.forward(&toks(1, d)).map_err(|e| e.to_string())?;
            let t = Instant::now();
            let mut next = 1u32;
            for _ in 0..a.gen {
                let logits = s.forward(&[next]).map_err(|e| e.to_string())?;
                next = qorus::sampling::argmax(logits);
            }
            times.push(t.elapsed().as_secs_f64());
        }
        let m = median(times);
        println!(
            "decode tg{}{at}: {:.1} tokens/s ({:.3} ms/token)",
            a.gen,
            a.gen as f64 / m,
            1e3 * m / a.gen as f64
        );
    }
    println!(
        "peak RSS: {:.1} MiB (model file {:.1} MiB)",
        peak_rss_mib(),
        l.file.map.len() as f64 / (1 << 20) as f64
    );
    Ok(())
}
