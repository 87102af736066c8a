//! `qorus chat`: an interactive conversation. The conversation is rendered with the model's chat
//! template every turn, and only the tokens after the longest prefix already in the KV cache are
//! run, so earlier turns are never re-read. With `--prompt-cache FILE` the first turn's prompt
//! (system message included) is saved, and a later run whose prompt starts the same way (the same
//! system prompt) reuses it.

use std::io::{BufRead, Write};

use qorus::chat::Message;
use qorus::engine::Session;
use qorus::generate::{generate_ex, StopReason};

use crate::generate::{chat_prompt, load_prompt_cache, save_prompt_cache, stop_text, Common};
use crate::load;

/// Arguments of `qorus chat`.
#[derive(clap::Args)]
pub struct Args {
    /// A system message to start the conversation with.
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    common: Common,
}

pub fn run(a: Args) -> Result<(), String> {
    a.common.check()?;
    let l = load::open(a.common.model.as_deref(), a.common.tokenizer.as_deref())?;
    let tok = &l.tokenizer;
    let n_ctx = a.common.ctx.min(l.model.config.max_seq_len).max(1);
    let mut setup = a.common.setup(tok, n_ctx)?;
    // The end of the assistant's turn: <end_of_turn> (Gemma), <|im_end|>, ... or EOS.
    if setup.eos.is_some() {
        setup.eos = tok.end_of_turn().or(tok.eos());
    }
    let mut session = Session::with_kv_type(l.model.clone(), n_ctx, a.common.cache_type)
        .map_err(|e| e.to_string())?;
    let mut messages: Vec<Message> = a.system.iter().map(|s| Message::new("system", s)).collect();
    // Tokens whose K/V are in the cache, position by position.
    let mut cached: Vec<u32> = Vec::new();
    let mut first_turn = true;
    let mut out = vec![0u32; a.common.max_tokens];
    let stdin = std::io::stdin();
    let interactive = unsafe { libc::isatty(0) } == 1;
    eprintln!(
        "qorus chat: {} (type a message; an empty line or end of input quits)",
        l.path.display()
    );
    loop {
        if interactive {
            eprint!("> ");
        }
        let mut line = String::new();
        if stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?
            == 0
        {
            break;
        }
        let line = line.trim_end_matches(['\n', '\r']);
        if line.is_empty() {
            break;
        }
        messages.push(Message::new("user", line));
        let text = chat_prompt(tok, &messages)?;
        let ids = tok.encode(text.as_bytes(), tok.add_bos_default(), true);
        if ids.len() >= n_ctx {
            return Err(format!(
                "the conversation has {} tokens; the context holds {n_ctx} (raise --ctx)",
                ids.len()
            ));
        }
        if first_turn {
            if let Some(p) = &a.common.prompt_cache {
                let n = load_prompt_cache(p, &mut session, &ids);
                cached = ids[..n].to_vec();
            }
        }
        let keep = cached
            .iter()
            .zip(&ids)
            .take_while(|(a, b)| a == b)
            .count()
            .min(ids.len() - 1);
        cached.truncate(keep);
        let mut constraint = setup.constraint()?;
        let (params, mut opts) =
            setup.gen_options(tok, a.common.max_tokens, constraint.as_mut(), None);
        let mut reply = Vec::new();
        let so = std::io::stdout();
        let mut so = so.lock();
        let outcome = generate_ex(
            &mut session,
            &ids[keep..],
            keep,
            &params,
            &mut opts,
            &mut out,
            &mut |_, piece| {
                reply.extend_from_slice(piece);
                let _ = so.write_all(piece);
                let _ = so.flush();
                true
            },
        )
        .map_err(|e| e.to_string())?;
        drop(opts);
        let _ = writeln!(so);
        if first_turn {
            first_turn = false;
            if let (Some(p), false) = (&a.common.prompt_cache, a.common.prompt_cache_ro) {
                save_prompt_cache(p, &session, &ids)?;
            }
        }
        cached.extend_from_slice(&ids[keep..]);
        let fed = outcome.pos - ids.len();
        cached.extend_from_slice(&out[..fed]);
        messages.push(Message::new(
            "assistant",
            String::from_utf8_lossy(&reply).trim(),
        ));
        match outcome.stop {
            StopReason::ContextFull => {
                eprintln!("qorus chat: the context is full");
                break;
            }
            StopReason::StopString(_) => {
                eprintln!("qorus chat: {}", stop_text(outcome.stop, &a.common.stop));
            }
            _ => {}
        }
    }
    Ok(())
}
