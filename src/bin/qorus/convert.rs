//! `qorus convert` and `qorus quantize`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use qorus::format::quant_mix::Mix;
use qorus::format::{gguf::Gguf, map_file, qorus_file, requantize, tokenizer_file};

/// Arguments of `qorus convert`.
#[derive(clap::Args)]
pub struct ConvertArgs {
    /// Input GGUF model.
    input: PathBuf,
    /// Output `.qorus` model.
    output: PathBuf,
    /// Also write the original's tokenizer file here.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
}

/// Arguments of `qorus quantize`.
#[derive(clap::Args)]
pub struct QuantizeArgs {
    /// Input GGUF model.
    input: PathBuf,
    /// Output GGUF model.
    output: PathBuf,
    /// Target type or mix, as llama-quantize names them: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0,
    /// q5_1, q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s, q5_k_m, q6_k, iq4_nl, iq4_xs
    /// (q3_k, q4_k, q5_k = the _m mixes).
    #[arg(value_name = "TYPE")]
    ty: String,
    /// Every matrix takes TYPE, token embeddings and output too (like llama-quantize --pure).
    #[arg(long)]
    pure: bool,
}

fn spinner(msg: String) -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

fn size_of(p: &std::path::Path) -> String {
    std::fs::metadata(p)
        .map(|m| format!("{:.1} MiB", m.len() as f64 / (1 << 20) as f64))
        .unwrap_or_default()
}

pub fn run_convert(a: ConvertArgs) -> Result<(), String> {
    let t = Instant::now();
    let pb = spinner(format!(
        "converting {} to {}",
        a.input.display(),
        a.output.display()
    ));
    let r = qorus_file::convert_gguf_to_qorus(&a.input, &a.output);
    pb.finish_and_clear();
    r.map_err(|e| format!("{}: {e}", a.input.display()))?;
    eprintln!(
        "wrote {} ({}) in {:.1} s",
        a.output.display(),
        size_of(&a.output),
        t.elapsed().as_secs_f64()
    );
    if let Some(tp) = &a.tokenizer {
        let file = map_file(&a.input, false).map_err(|e| e.to_string())?;
        let g: &Gguf = file
            .gguf
            .as_deref()
            .ok_or_else(|| format!("{}: not a GGUF file", a.input.display()))?;
        tokenizer_file::write_from_gguf(g, tp).map_err(|e| format!("{}: {e}", tp.display()))?;
        eprintln!("wrote {} ({})", tp.display(), size_of(tp));
    }
    Ok(())
}

pub fn run_quantize(a: QuantizeArgs) -> Result<(), String> {
    let mix = Mix::from_name(&a.ty).ok_or_else(|| {
        let names: Vec<&str> = Mix::ALL.iter().map(|m| m.name()).collect();
        format!("unknown type {:?} (choose {})", a.ty, names.join(", "))
    })?;
    let t = Instant::now();
    let pb = spinner(format!(
        "quantizing {} to {}{}",
        a.input.display(),
        mix.name(),
        if a.pure { " (pure)" } else { "" }
    ));
    let r = requantize::requantize_mix(&a.input, &a.output, mix, a.pure);
    pb.finish_and_clear();
    r.map_err(|e| format!("{}: {e}", a.input.display()))?;
    eprintln!(
        "wrote {} ({}) in {:.1} s",
        a.output.display(),
        size_of(&a.output),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
