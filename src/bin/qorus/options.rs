//! Sampling, constraint, stop and cache options shared by `qorus generate` and `qorus chat`,
//! named as llama-cli's (llama.cpp `common/arg.cpp`).

use std::path::PathBuf;
use std::sync::Arc;

use qorus::generate::{GenOptions, GenParams, StopMatcher};
use qorus::grammar::json_schema::schema_to_gbnf;
use qorus::grammar::{Grammar, GrammarConstraint, VocabIndex};
use qorus::sampling::{ChainParams, SamplerChain, SamplingParams};
use qorus::tokenizer::Tokenizer;

/// Model, sampling and generation options shared by `generate` and `chat`.
#[derive(clap::Args, Clone)]
pub struct Common {
    /// Model file (GGUF or .qorus); default: SmolLM2-135M-Instruct, fetched on first use.
    #[arg(short, long)]
    pub model: Option<PathBuf>,
    /// GGUF file whose tokenizer to use (needed for .qorus models).
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Most tokens to generate.
    #[arg(short = 'n', long, visible_alias = "n-predict", default_value_t = 256)]
    pub max_tokens: usize,
    /// Sampling temperature (0 = greedy); applied after the filters, as llama.cpp.
    #[arg(long, default_value_t = 0.8)]
    pub temp: f32,
    /// Keep only the K most probable tokens (0 = off).
    #[arg(long, default_value_t = 40)]
    pub top_k: u32,
    /// Keep the smallest set of tokens whose probability reaches P (1 = off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Keep tokens at least P times as probable as the most probable one (0 = off).
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Locally typical sampling with mass P (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub typical: f32,
    /// Penalise repeating any of the last --repeat-last-n tokens (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Tokens the penalties look back at (0 = off, -1 = the context size).
    #[arg(long, default_value_t = 64, allow_negative_numbers = true)]
    pub repeat_last_n: i64,
    /// Subtracted from the logit of every token present in the window (0 = off).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub presence_penalty: f32,
    /// Subtracted per occurrence in the window (0 = off).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub frequency_penalty: f32,
    /// Add a bias to a token's logit: TOKEN_ID(+/-)BIAS, e.g. 15043+1 or 2-inf (repeatable).
    #[arg(short = 'l', long = "logit-bias")]
    pub logit_bias: Vec<String>,
    /// Random seed (default: from the clock).
    #[arg(short = 's', long)]
    pub seed: Option<u64>,
    /// Constrain the output with a GBNF grammar (llama.cpp's format).
    #[arg(long)]
    pub grammar: Option<String>,
    /// Read the GBNF grammar from a file.
    #[arg(long)]
    pub grammar_file: Option<PathBuf>,
    /// Constrain the output to JSON matching this JSON schema.
    #[arg(short = 'j', long)]
    pub json_schema: Option<String>,
    /// Read the JSON schema from a file.
    #[arg(long)]
    pub json_schema_file: Option<PathBuf>,
    /// Stop when the text contains TEXT (not printed; repeatable).
    #[arg(long = "stop", short = 'r', visible_alias = "reverse-prompt")]
    pub stop: Vec<String>,
    /// Do not stop at the end-of-sequence token.
    #[arg(long)]
    pub ignore_eos: bool,
    /// Reuse (and save) the KV cache of the prompt in FILE: a later run whose prompt starts with
    /// the same tokens skips computing them.
    #[arg(long)]
    pub prompt_cache: Option<PathBuf>,
    /// Use --prompt-cache but do not update it.
    #[arg(long)]
    pub prompt_cache_ro: bool,
    /// When the context is full, drop the oldest half (after --keep tokens) and continue.
    #[arg(long)]
    pub context_shift: bool,
    /// Tokens of the prompt kept by a context shift (-1 = the whole prompt).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub keep: i64,
    /// Threads (default: QORUS_NUM_THREADS or all cores).
    #[arg(short, long)]
    pub threads: Option<usize>,
    /// Context length in tokens.
    #[arg(short = 'c', long, visible_alias = "ctx-size", default_value_t = 2048)]
    pub ctx: usize,
    /// KV cache type: f16 (default), q8_0 or f32.
    #[arg(long = "cache-type", default_value = "f16", value_parser = crate::bench::parse_kv_type)]
    pub cache_type: qorus::engine::kv_cache::KvType,
}

/// What the options turn into once the model and tokenizer are known.
pub struct Setup {
    /// The sampler chain (kept for the whole run: its history spans chat turns).
    pub chain: SamplerChain,
    /// The grammar and the vocabulary it is checked against.
    pub grammar: Option<(Arc<Grammar>, Arc<VocabIndex>)>,
    /// Stop strings.
    pub stops: Vec<Vec<u8>>,
    /// End-of-sequence id (None with --ignore-eos).
    pub eos: Option<u32>,
}

impl Setup {
    /// A fresh grammar state for one reply.
    pub fn constraint(&self) -> Result<Option<GrammarConstraint>, String> {
        match &self.grammar {
            Some((g, v)) => GrammarConstraint::new(g.clone(), v.clone())
                .map(Some)
                .map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }

    /// The parameters and options `qorus generate` and `qorus chat` generate with: greedy picks
    /// made through the sampler chain (which sees the prompt), text streamed through `tok`'s
    /// decoder, the stop strings, and `constraint` (a fresh [`Setup::constraint`]) if any.
    pub fn gen_options<'a>(
        &'a mut self,
        tok: &'a Tokenizer,
        max_tokens: usize,
        constraint: Option<&'a mut GrammarConstraint>,
        shift_keep: Option<usize>,
    ) -> (GenParams, GenOptions<'a>) {
        let params = GenParams {
            max_tokens,
            sampling: SamplingParams::GREEDY,
            eos: self.eos,
        };
        let mut dec = tok.stream_decoder();
        let mut opts = GenOptions {
            chain: Some(&mut self.chain),
            chain_sees_prompt: true,
            decoder: Some(Box::new(move |id, out: &mut Vec<u8>| {
                out.extend(dec.push(id))
            })),
            stops: StopMatcher::new(&self.stops),
            shift_keep,
            ..GenOptions::default()
        };
        if let Some(c) = constraint {
            opts.constraint = Some(c);
        }
        (params, opts)
    }
}

fn parse_bias(s: &str, vocab: usize) -> Result<(u32, f32), String> {
    let bad = || format!("--logit-bias {s}: give TOKEN_ID(+/-)BIAS, e.g. 15043+1 or 2-inf");
    let at = s[1..].find(['+', '-']).map(|i| i + 1).ok_or_else(bad)?;
    let id: u32 = s[..at].trim().parse().map_err(|_| bad())?;
    let bias: f32 = s[at..].trim().parse().map_err(|_| bad())?;
    if id as usize >= vocab {
        return Err(format!(
            "--logit-bias {s}: token {id} >= vocabulary size {vocab}"
        ));
    }
    Ok((id, bias))
}

impl Common {
    /// Applies the thread count (before loading).
    pub fn threads(&self) -> Result<(), String> {
        if let Some(t) = self.threads {
            if t == 0 || t > 256 {
                return Err(format!("--threads {t}: give 1 to 256"));
            }
            qorus::engine::pool::set_num_threads(t);
        }
        Ok(())
    }

    /// Checks the options that do not need the model (so mistakes are reported before loading).
    pub fn check(&self) -> Result<(), String> {
        self.threads()?;
        self.chain_params(2048)?;
        let n = [
            self.grammar.is_some(),
            self.grammar_file.is_some(),
            self.json_schema.is_some(),
            self.json_schema_file.is_some(),
        ]
        .iter()
        .filter(|&&x| x)
        .count();
        if n > 1 {
            return Err(
                "give at most one of --grammar, --grammar-file, --json-schema, --json-schema-file"
                    .into(),
            );
        }
        if self.stop.iter().any(|s| s.is_empty()) {
            return Err("--stop: empty text".into());
        }
        if self.prompt_cache_ro && self.prompt_cache.is_none() {
            return Err("--prompt-cache-ro needs --prompt-cache FILE".into());
        }
        Ok(())
    }

    fn chain_params(&self, n_ctx: usize) -> Result<ChainParams, String> {
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
        let last_n = match self.repeat_last_n {
            -1 => n_ctx as u32,
            n if n >= 0 => n.min(u32::MAX as i64) as u32,
            n => return Err(format!("--repeat-last-n {n}: give -1, 0 or more")),
        };
        let p = ChainParams {
            temperature: self.temp,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            typical_p: self.typical,
            repeat_penalty: self.repeat_penalty,
            frequency_penalty: self.frequency_penalty,
            presence_penalty: self.presence_penalty,
            penalty_last_n: last_n,
            seed,
            temperature_last: true,
        };
        p.validate().map_err(|e| {
            let m = e.to_string();
            let flag = [
                ("temperature", "--temp"),
                ("min_p", "--min-p"),
                ("repeat_penalty", "--repeat-penalty"),
                ("frequency_penalty", "--frequency-penalty"),
                ("presence_penalty", "--presence-penalty"),
            ]
            .iter()
            .find(|(f, _)| m.contains(f))
            .map_or("", |(_, fl)| fl);
            format!("{flag}: {m}")
        })?;
        Ok(p)
    }

    /// The grammar text the options ask for, if any.
    fn grammar_text(&self) -> Result<Option<String>, String> {
        let read = |p: &PathBuf, flag: &str| {
            std::fs::read_to_string(p).map_err(|e| format!("{flag} {}: {e}", p.display()))
        };
        if let Some(g) = &self.grammar {
            return Ok(Some(g.clone()));
        }
        if let Some(p) = &self.grammar_file {
            return read(p, "--grammar-file").map(Some);
        }
        let schema = match (&self.json_schema, &self.json_schema_file) {
            (Some(s), _) => s.clone(),
            (None, Some(p)) => read(p, "--json-schema-file")?,
            (None, None) => return Ok(None),
        };
        schema_to_gbnf(&schema)
            .map(Some)
            .map_err(|e| format!("--json-schema: {e}"))
    }

    /// Builds the sampler chain, grammar and stops for a tokenizer and context length.
    pub fn setup(&self, tok: &Tokenizer, n_ctx: usize) -> Result<Setup, String> {
        let mut chain = SamplerChain::new(self.chain_params(n_ctx)?, tok.vocab_size())
            .map_err(|e| e.to_string())?;
        let bias = self
            .logit_bias
            .iter()
            .map(|s| parse_bias(s, tok.vocab_size()))
            .collect::<Result<Vec<_>, _>>()?;
        chain
            .set_logit_bias(&bias)
            .map_err(|e| format!("--logit-bias: {e}"))?;
        let grammar = match self.grammar_text()? {
            Some(text) => {
                let g = Grammar::from_gbnf(&text).map_err(|e| e.to_string())?;
                Some((g, Arc::new(VocabIndex::from_tokenizer(tok))))
            }
            None => None,
        };
        Ok(Setup {
            chain,
            grammar,
            stops: self.stop.iter().map(|s| s.as_bytes().to_vec()).collect(),
            eos: if self.ignore_eos { None } else { tok.eos() },
        })
    }

    /// The positions a context shift keeps for a prompt of `n` tokens.
    pub fn shift_keep(&self, n: usize) -> Option<usize> {
        self.context_shift.then(|| {
            if self.keep < 0 {
                n
            } else {
                (self.keep as usize).min(n)
            }
        })
    }
}
