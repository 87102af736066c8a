//! `qorus generate`: one prompt, a streamed continuation, speeds on stderr.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use qorus::chat::{render, Message};
use qorus::engine::Session;
use qorus::generate::{generate_ex, StopReason};

use crate::load;
pub use crate::options::Common;

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

/// Loads `--prompt-cache` into `session` if it exists and fits: returns how many leading ids of
/// `ids` it holds (at most `ids.len() - 1`, so that the last prompt id is run for its logits).
pub fn load_prompt_cache(path: &Path, session: &mut Session, ids: &[u32]) -> usize {
    let Ok(bytes) = std::fs::read(path) else {
        return 0;
    };
    match session.load_state(&bytes) {
        Ok(l) => {
            let n = l
                .ids
                .iter()
                .zip(ids)
                .take_while(|(a, b)| a == b)
                .count()
                .min(ids.len().saturating_sub(1));
            session.truncate(n);
            eprintln!(
                "qorus: prompt cache {}: reusing {n} of {} prompt tokens",
                path.display(),
                ids.len()
            );
            n
        }
        Err(e) => {
            session.reset();
            eprintln!("qorus: prompt cache {} not used: {e}", path.display());
            0
        }
    }
}

/// Saves the first `ids.len()` positions of `session` (the prompt) to `path`.
pub fn save_prompt_cache(path: &Path, session: &Session, ids: &[u32]) -> Result<(), String> {
    let n = ids.len().min(session.pos());
    let bytes = session
        .save_state(n, &ids[..n])
        .map_err(|e| e.to_string())?;
    std::fs::write(path, bytes).map_err(|e| format!("--prompt-cache {}: {e}", path.display()))
}

pub fn run(a: Args) -> Result<(), String> {
    a.common.check()?;
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
    let mut setup = a.common.setup(tok, n_ctx)?;
    let mut session = Session::with_kv_type(l.model.clone(), n_ctx, a.common.cache_type)
        .map_err(|e| e.to_string())?;
    let reused = match &a.common.prompt_cache {
        Some(p) => load_prompt_cache(p, &mut session, &ids),
        None => 0,
    };
    let mut constraint = setup.constraint()?;
    let (params, mut opts) = setup.gen_options(
        tok,
        a.common.max_tokens,
        constraint.as_mut(),
        a.common.shift_keep(ids.len()),
    );
    let mut out = vec![0u32; a.common.max_tokens];
    let stdout = std::io::stdout();
    let mut so = stdout.lock();
    if !a.chat {
        let _ = so.write_all(a.prompt.as_bytes());
        let _ = so.flush();
    }
    let t0 = Instant::now();
    let mut t_first = None;
    let outcome = generate_ex(
        &mut session,
        &ids[reused..],
        reused,
        &params,
        &mut opts,
        &mut out,
        &mut |_, text| {
            t_first.get_or_insert_with(Instant::now);
            let _ = so.write_all(text);
            let _ = so.flush();
            true
        },
    )
    .map_err(|e| e.to_string())?;
    let _ = writeln!(so);
    drop(so);
    drop(opts);
    if let (Some(p), false) = (&a.common.prompt_cache, a.common.prompt_cache_ro) {
        save_prompt_cache(p, &session, &ids)?;
    }
    let t_end = Instant::now();
    let t_first = t_first.unwrap_or(t_end);
    let prefill_s = (t_first - t0).as_secs_f64();
    let run_n = ids.len() - reused;
    let decode_n = outcome.n_generated.saturating_sub(1);
    let decode_s = (t_end - t_first).as_secs_f64();
    eprintln!(
        "qorus: {} | load {:.2} s | prompt {} tokens ({} reused), {:.1} tokens/s | generated {} tokens, {:.1} tokens/s | stopped: {}",
        l.path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default(),
        load_s,
        ids.len(),
        reused,
        run_n as f64 / prefill_s.max(1e-9),
        outcome.n_generated,
        if decode_n > 0 { decode_n as f64 / decode_s.max(1e-9) } else { 0.0 },
        stop_text(outcome.stop, &a.common.stop),
    );
    Ok(())
}

/// Why a generation stopped, for the status line.
pub fn stop_text(s: StopReason, stops: &[String]) -> String {
    match s {
        StopReason::MaxTokens => "max tokens".into(),
        StopReason::Eos => "end of text".into(),
        StopReason::ContextFull => "context full".into(),
        StopReason::Callback => "interrupted".into(),
        StopReason::StopString(i) => format!("stop string {:?}", stops.get(i).map_or("", |s| s)),
    }
}
