//! llama.cpp's own tokenizer test vectors (`models/ggml-vocab-*.gguf` with `.inp`/`.out`, as
//! its test-tokenizer-0 reads them): our ids must equal llama.cpp's for every input.
//!
//! The vectors come from the llama-cpp-python sdist via `scripts/fetch_tokenizer_vectors.py`,
//! which this test runs when the cache is empty (network needed once).

use std::path::PathBuf;
use std::process::Command;

use qorus::format::gguf::Gguf;
use qorus::tokenizer::Tokenizer;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The cache directory, fetching the vectors first if needed.
fn vectors_dir() -> PathBuf {
    let out = Command::new("python3")
        .arg(root().join("scripts/fetch_tokenizer_vectors.py"))
        .output()
        .expect("run python3 scripts/fetch_tokenizer_vectors.py");
    assert!(
        out.status.success(),
        "fetch_tokenizer_vectors.py failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn read_tests(dir: &std::path::Path, name: &str) -> Vec<(Vec<u8>, Vec<u32>)> {
    let inp = std::fs::read(dir.join(format!("ggml-vocab-{name}.gguf.inp"))).unwrap();
    let outp =
        String::from_utf8(std::fs::read(dir.join(format!("ggml-vocab-{name}.gguf.out"))).unwrap())
            .unwrap();
    let sep = b"\n__ggml_vocab_test__\n";
    let mut inputs = Vec::new();
    let mut pos = 0;
    while pos < inp.len() {
        match inp[pos..].windows(sep.len()).position(|w| w == sep) {
            Some(k) => {
                inputs.push(inp[pos..pos + k].to_vec());
                pos += k + sep.len();
            }
            None => {
                inputs.push(inp[pos..].to_vec());
                break;
            }
        }
    }
    let outputs: Vec<Vec<u32>> = outp
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        inputs.len(),
        outputs.len(),
        "{name}: .inp/.out counts differ"
    );
    inputs.into_iter().zip(outputs).collect()
}

fn check(name: &str) {
    let dir = vectors_dir();
    let bytes = std::fs::read(dir.join(format!("ggml-vocab-{name}.gguf"))).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let tests = read_tests(&dir, name);
    let mut failed = 0;
    for (text, want) in &tests {
        // test-tokenizer-0: add_special = false, parse_special = false.
        let got = tok.encode(text, false, false);
        if &got != want {
            failed += 1;
            eprintln!(
                "{name}: {:?}\n  want {want:?}\n  got  {got:?}",
                String::from_utf8_lossy(text)
            );
        }
    }
    println!("{name}: {} passed, {failed} failed", tests.len() - failed);
    assert_eq!(
        failed,
        0,
        "{name}: {failed} of {} vectors differ",
        tests.len()
    );
}

#[test]
fn llama_spm() {
    check("llama-spm");
}
#[test]
fn llama_bpe() {
    check("llama-bpe");
}
#[test]
fn gpt_2() {
    check("gpt-2");
}
#[test]
fn qwen2() {
    check("qwen2");
}
#[test]
fn phi_3() {
    check("phi-3");
}
#[test]
fn starcoder() {
    check("starcoder");
}
#[test]
fn deepseek_llm() {
    check("deepseek-llm");
}
#[test]
fn deepseek_coder() {
    check("deepseek-coder");
}
#[test]
fn command_r() {
    check("command-r");
}
#[test]
fn mpt() {
    check("mpt");
}
#[test]
fn refact() {
    check("refact");
}
