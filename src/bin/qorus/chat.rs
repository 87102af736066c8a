//! `qorus chat`: an interactive conversation. The conversation is rendered with the model's chat
//! template every turn, and only the tokens after the longest prefix already in the KV cache are
//! run, so earlier turns are never re-read.

use std::io::{BufRead, Write};

use qorus::chat::Message;
use qorus::engine::Session;
use qorus::generate::{generate, GenParams, StopReason};

use crate::generate::{chat_prompt, Common};
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
    let sampling = a.common.setup()?;
    let l = load::open(a.common.model.as_deref(), a.common.tokenizer.as_deref())?;
    let tok = &l.tokenizer;
    let n_ctx = a.common.ctx.min(l.model.config.max_seq_len).max(1);
    let mut session = Session::with_kv_type(l.model.clone(), n_ctx, a.common.cache_type)
        .map_err(|e| e.to_string())?;
    let mut messages: Vec<Message> = a.system.iter().map(|s| Message::new("system", s)).collect();
    // Tokens whose K/V are in the cache, position by position.
    let mut cached: Vec<u32> = Vec::new();
    // The end of the assistant's turn: <end_of_turn> (Gemma), <|im_end|>, ... or EOS.
    let eos = tok.end_of_turn().or(tok.eos());
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
        let keep = cached
            .iter()
            .zip(&ids)
            .take_while(|(a, b)| a == b)
            .count()
            .min(ids.len() - 1);
        cached.truncate(keep);
        let params = GenParams {
            max_tokens: a.common.max_tokens,
            sampling,
            eos,
        };
        let mut dec = tok.stream_decoder();
        let mut reply = Vec::new();
        let so = std::io::stdout();
        let mut so = so.lock();
        let outcome = generate(
            &mut session,
            &ids[keep..],
            keep,
            &params,
            &mut out,
            &mut |id| {
                if Some(id) != eos {
                    let piece = dec.push(id);
                    reply.extend_from_slice(&piece);
                    let _ = so.write_all(&piece);
                    let _ = so.flush();
                }
                true
            },
        )
        .map_err(|e| e.to_string())?;
        let rest = dec.finish();
        reply.extend_from_slice(&rest);
        let _ = so.write_all(&rest);
        let _ = writeln!(so);
        cached.extend_from_slice(&ids[keep..]);
        let fed = outcome.pos - ids.len();
        cached.extend_from_slice(&out[..fed]);
        messages.push(Message::new(
            "assistant",
            String::from_utf8_lossy(&reply).trim(),
        ));
        if outcome.stop == StopReason::ContextFull {
            eprintln!("qorus chat: the context is full");
            break;
        }
    }
    Ok(())
}
