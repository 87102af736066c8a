//! `qorus generate`: one prompt, a streamed continuation, speeds on stderr.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use qorus::chat::{render, Message};
use qorus::engine::Session;
use qorus::generate::{generate, GenParams, StopReason};
use qorus::sampling::SamplingParams;

use crate::load;

/// Sampling and model options shared by `generate` and `chat`.
#[derive(clap::Args, Clone)]
pub struct Common {
    /// Model file (GGUF or .qorus); default: SmolLM2-135M-Instruct, fetched on first use.
    #[arg(short, long)]
    pub model: Option<PathBuf>,
    /// GGUF file whose tokenizer to use (needed for .qorus models).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Most tokens to generate.
    #[arg(short = 'n', long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Sampling temperature (0 = greedy).
    #[arg(long, default_value_t = 0.8)]
    pub temp: f32,
    /// Keep only the K most probable tokens (0 = off).
    #[arg(long, default_value_t = 40)]
    pub top_k: u32,
    /// Keep the smallest set of tokens whose probability reaches P (1 = off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Random seed (default: from the clock).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Threads (default: QORUS_NUM_THREADS or all cores).
    #[arg(short, long)]
    pub threads: Option<usize>,
    /// Context length in tokens.
    #[arg(long, default_value_t = 2048)]
    pub ctx: usize,
    /// KV cache type: f16 (default), q8_0 or f32.
    #[arg(long = "cache-type", default_value = "f16", value_parser = crate::bench::parse_kv_type)]
    pub cache_type: qorus::engine::kv_cache::KvType,
}

impl Common {
    /// Applies threads and seed; returns the sampling parameters.
    pub fn setup(&self) -> Result<SamplingParams, String> {
        if let Some(t) = self.threads {
            if t == 0 || t > 256 {
                return Err(format!("--threads {t}: give 1 to 256"));
            }
            qorus::engine::pool::set_num_threads(t);
        }
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
        qorus::sampling::set_thread_seed(seed);
        let p = SamplingParams {
            temperature: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
        };
        p.validate().map_err(|e| format!("--temp: {e}"))?;
        Ok(p)
    }
}

/// Arguments of `qorus generate`.
#[derive(clap::Args)]
pub struct Args {
    /// The prompt.
    #[arg(default_value = "Once upon a time")]
    prompt: String,
    /// Wrap the prompt in the model's chat template (as a user message).
    #[arg(long)]
    chat: bool,
    #[command(flatten)]
    common: Common,
}

/// The model's chat template (ChatML when it has none) applied to `messages`.
pub fn chat_prompt(
    tok: &qorus::tokenizer::Tokenizer,
    messages: &[Message],
) -> Result<String, String> {
    let text = |id: Option<u32>| {
        id.and_then(|i| tok.token_text(i))
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default()
    };
    render(
        tok.chat_template()
            .unwrap_or_else(|| qorus::chat::fallback_template(tok)),
        messages,
        true,
        &text(tok.bos()),
        &text(tok.eos()),
    )
    .map_err(|e| e.to_string())
}

pub fn run(a: Args) -> Result<(), String> {
    let sampling = a.common.setup()?;
    let t_load = Instant::now();
    let l = load::open(a.common.model.as_deref(), a.common.tokenizer.as_deref())?;
    let load_s = t_load.elapsed().as_secs_f64();
    let tok = &l.tokenizer;
    let text = if a.chat {
        chat_prompt(tok, &[Message::new("user", &a.prompt)])?
    } else {
        a.prompt.clone()
    };
    let ids = tok.encode(text.as_bytes(), tok.add_bos_default(), true);
    if ids.is_empty() {
        return Err("the prompt encodes to no tokens".into());
    }
    let n_ctx = a.common.ctx.min(l.model.config.max_seq_len).max(1);
    if ids.len() >= n_ctx {
        return Err(format!(
            "the prompt has {} tokens but the context holds {n_ctx} (raise --ctx)",
            ids.len()
        ));
    }
    let mut session = Session::with_kv_type(l.model.clone(), n_ctx, a.common.cache_type)
        .map_err(|e| e.to_string())?;
    let params = GenParams {
        max_tokens: a.common.max_tokens,
        sampling,
        eos: tok.eos(),
    };
    let mut out = vec![0u32; a.common.max_tokens];
    let stdout = std::io::stdout();
    let mut so = stdout.lock();
    if !a.chat {
        let _ = so.write_all(a.prompt.as_bytes());
        let _ = so.flush();
    }
    let mut dec = tok.stream_decoder();
    let eos = tok.eos();
    let t0 = Instant::now();
    let mut t_first = None;
    let outcome = generate(&mut session, &ids, 0, &params, &mut out, &mut |id| {
        t_first.get_or_insert_with(Instant::now);
        if Some(id) != eos {
            let _ = so.write_all(&dec.push(id));
            let _ = so.flush();
        }
        true
    })
    .map_err(|e| e.to_string())?;
    let _ = so.write_all(&dec.finish());
    let _ = writeln!(so);
    drop(so);
    let t_end = Instant::now();
    let t_first = t_first.unwrap_or(t_end);
    let prefill_s = (t_first - t0).as_secs_f64();
    let decode_n = outcome.pos - ids.len();
    let decode_s = (t_end - t_first).as_secs_f64();
    eprintln!(
        "qorus: {} | load {:.2} s | prompt {} tokens, {:.1} tokens/s | generated {} tokens, {:.1} tokens/s{}",
        l.path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        load_s,
        ids.len(),
        ids.len() as f64 / prefill_s.max(1e-9),
        outcome.n_generated,
        if decode_n > 0 { decode_n as f64 / decode_s.max(1e-9) } else { 0.0 },
        match outcome.stop {
            StopReason::ContextFull => " | stopped: context full",
            _ => "",
        }
    );
    Ok(())
}
