//! `qorus`: the command line on the library's own engine — generate text, chat, inspect,
//! convert, quantize and benchmark models.

mod bench;
mod chat;
mod convert;
mod generate;
mod info;
mod load;
mod options;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Runs LLaMA-family models (GGUF or `.qorus`) on the CPU with the qorus engine.
#[derive(Parser)]
#[command(name = "qorus", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate a continuation of PROMPT (streams text; speeds on stderr).
    Generate(generate::Args),
    /// Chat interactively, with the model's chat template; the KV cache is kept between turns.
    Chat(chat::Args),
    /// Describe a model file: architecture, hyperparameters, tokenizer, tensors.
    Info(info::Args),
    /// Convert a GGUF model into the original's `.qorus` file (and tokenizer file).
    Convert(convert::ConvertArgs),
    /// Rewrite a GGUF model with another weight type (f16, q8_0, q4_0, q4_1).
    Quantize(convert::QuantizeArgs),
    /// Measure load time, prefill and decode speed, and peak memory.
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Generate(a) => generate::run(a),
        Cmd::Chat(a) => chat::run(a),
        Cmd::Info(a) => info::run(a),
        Cmd::Convert(a) => convert::run_convert(a),
        Cmd::Quantize(a) => convert::run_quantize(a),
        Cmd::Bench(a) => bench::run(a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qorus: error: {e}");
            ExitCode::FAILURE
        }
    }
}
