//! The `qorus` command line on the SmolLM2 test model: every subcommand, bad input (one clear
//! error line, exit code 1, no panic), and `generate --temp 0` printing exactly the continuation
//! the C API gives for the same prompt.

mod common;

use std::ffi::CString;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use qorus::ffi::generate::q_generate;
use qorus::ffi::memory::{q_alloc_arena, q_alloc_kv_cache, q_free_memory, q_init_memory};
use qorus::ffi::model::llama_build_graph;
use qorus::ffi::tokenizer::{
    q_tokenizer_decode, q_tokenizer_encode, q_tokenizer_free, q_tokenizer_load,
};
use qorus::ffi::types::*;

fn qorus(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_qorus"))
        .args(args)
        .env("QORUS_NUM_THREADS", "2")
        .stdin(Stdio::null())
        .output()
        .expect("run qorus");
    println!(
        "$ qorus {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "qorus failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A user mistake: exit code 1, one "qorus: error:" line naming `needle`, no panic.
fn user_error(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(
        o.status.code(),
        Some(1),
        "exit code for a user error: {err}"
    );
    assert!(
        err.contains("qorus: error:") && err.contains(needle),
        "error should mention {needle:?}: {err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "no panic for a user error: {err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

/// Greedy continuation through the C API: q_tokenizer_load + encode, q_generate, decode.
fn c_api_greedy(model: &Path, prompt: &str, n: u32) -> String {
    unsafe {
        let path = CString::new(model.to_str().unwrap()).unwrap();
        let mut ctx: q_context = std::mem::zeroed();
        let mut m: q_llama_model = std::mem::zeroed();
        let mut tok: q_tokenizer = std::mem::zeroed();
        assert_eq!(q_init_memory(&mut ctx, path.as_ptr()), Q_OK);
        (*ctx.header).max_seq_len = 256;
        assert_eq!(q_alloc_arena(&mut ctx, 64 << 20), Q_OK);
        assert_eq!(llama_build_graph(&mut ctx, &mut m), Q_OK);
        let c = m.config;
        let kv = c.n_layers as usize
            * c.n_kv_heads as usize
            * c.max_seq_len as usize
            * (c.dim / c.n_heads) as usize
            * 8;
        assert_eq!(q_alloc_kv_cache(&mut ctx, kv), Q_OK);
        assert_eq!(q_tokenizer_load(&mut tok, path.as_ptr()), Q_OK);
        let text = CString::new(prompt).unwrap();
        let mut ids = vec![0u32; 64];
        let mut n_ids = 0u32;
        assert_eq!(
            q_tokenizer_encode(
                &mut tok,
                text.as_ptr(),
                ids.as_mut_ptr(),
                &mut n_ids,
                64,
                false,
                false
            ),
            Q_OK
        );
        let mut out = vec![0u32; n as usize];
        let mut st = q_generation_state {
            ctx: &mut ctx,
            model: &mut m,
            tokenizer: &mut tok,
            prompt_tokens: ids.as_mut_ptr(),
            num_prompt_tokens: n_ids,
            generated_tokens: out.as_mut_ptr(),
            num_generated_tokens: 0,
            max_tokens: n,
            temperature: 0.0,
            top_k: 0,
            top_p: 0.0,
            current_pos: 0,
        };
        assert_eq!(q_generate(&mut st), Q_OK);
        let mut buf = vec![0u8; 4096];
        assert_eq!(
            q_tokenizer_decode(
                &mut tok,
                out.as_ptr(),
                st.num_generated_tokens,
                buf.as_mut_ptr() as *mut _,
                buf.len()
            ),
            Q_OK
        );
        q_tokenizer_free(&mut tok);
        q_free_memory(&mut ctx);
        let end = buf.iter().position(|&b| b == 0).unwrap();
        String::from_utf8_lossy(&buf[..end]).into_owned()
    }
}

#[test]
fn generate_greedy_equals_the_c_api() {
    let model = common::model("q4_0");
    let m = model.to_str().unwrap();
    let prompt = "The capital of France is";
    let out = ok(&qorus(&[
        "generate", "--model", m, "--temp", "0", "-n", "24", prompt,
    ]));
    let expected = format!("{prompt}{}\n", c_api_greedy(&model, prompt, 24));
    assert_eq!(out, expected, "CLI greedy output differs from the C API's");
}

#[test]
fn generate_chat_and_seeded_sampling() {
    let m = common::model("q4_0");
    let m = m.to_str().unwrap();
    let o = qorus(&[
        "generate",
        "--model",
        m,
        "--chat",
        "--temp",
        "0",
        "-n",
        "16",
        "What is the capital of France?",
    ]);
    let text = ok(&o);
    assert!(
        !text.contains("<|im_start|>"),
        "the chat template is not echoed: {text}"
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("tokens/s"),
        "speeds on stderr"
    );
    let a = ok(&qorus(&[
        "generate",
        "--model",
        m,
        "--seed",
        "7",
        "-n",
        "16",
        "Once upon a time",
    ]));
    let b = ok(&qorus(&[
        "generate",
        "--model",
        m,
        "--seed",
        "7",
        "-n",
        "16",
        "Once upon a time",
    ]));
    assert_eq!(a, b, "--seed makes sampling reproducible");
}

#[test]
fn chat_keeps_the_conversation() {
    let m = common::model("q4_0");
    let mut child = Command::new(env!("CARGO_BIN_EXE_qorus"))
        .args([
            "chat",
            "--model",
            m.to_str().unwrap(),
            "--temp",
            "0",
            "-n",
            "24",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut si = child.stdin.take().unwrap();
        si.write_all(b"My name is Ada. Say hello to me.\nWhat is my name?\n")
            .unwrap();
    }
    let o = child.wait_with_output().unwrap();
    let out = ok(&o);
    println!("{out}");
    assert!(
        out.lines().filter(|l| !l.trim().is_empty()).count() >= 2,
        "two replies: {out}"
    );
    assert!(out.contains("Ada"), "the second turn sees the first: {out}");
}

#[test]
fn info_convert_quantize_bench() {
    let q41 = common::model("q4_1");
    let q40 = common::model("q4_0");
    let info = ok(&qorus(&["info", q41.to_str().unwrap()]));
    assert!(
        info.contains("architecture:   llama")
            && info.contains("layers 30")
            && info.contains("q4_1"),
        "{info}"
    );
    let dir = std::env::temp_dir().join(format!("qorus-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (qf, tf, g8) = (
        dir.join("m.qorus"),
        dir.join("m.tok"),
        dir.join("m.q8_0.gguf"),
    );
    ok(&qorus(&[
        "convert",
        q40.to_str().unwrap(),
        qf.to_str().unwrap(),
        "--tokenizer",
        tf.to_str().unwrap(),
    ]));
    assert!(qf.is_file() && tf.is_file());
    let info = ok(&qorus(&["info", qf.to_str().unwrap()]));
    assert!(
        info.contains(".qorus") && info.contains("qorus_q4_0"),
        "{info}"
    );
    let out = ok(&qorus(&[
        "generate",
        "--model",
        qf.to_str().unwrap(),
        "--tokenizer",
        q40.to_str().unwrap(),
        "--temp",
        "0",
        "-n",
        "8",
        "Hello",
    ]));
    assert!(out.starts_with("Hello") && out.len() > 6, "{out}");
    ok(&qorus(&[
        "quantize",
        q41.to_str().unwrap(),
        g8.to_str().unwrap(),
        "q8_0",
    ]));
    let info = ok(&qorus(&["info", g8.to_str().unwrap()]));
    assert!(info.contains("q8_0"), "{info}");
    let bench = ok(&qorus(&[
        "bench",
        q40.to_str().unwrap(),
        "-p",
        "16",
        "-n",
        "8",
        "-r",
        "1",
    ]));
    assert!(
        bench.contains("prefill pp16")
            && bench.contains("decode tg8")
            && bench.contains("peak RSS"),
        "{bench}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn user_mistakes_are_one_clear_line() {
    user_error(
        &qorus(&["generate", "--model", "/nonexistent/model.gguf", "hi"]),
        "/nonexistent/model.gguf",
    );
    let dir = std::env::temp_dir().join(format!("qorus-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.gguf");
    std::fs::write(&junk, vec![b'x'; 4096]).unwrap();
    user_error(&qorus(&["info", junk.to_str().unwrap()]), "junk.gguf");
    let m = common::model("q4_0");
    user_error(
        &qorus(&[
            "quantize",
            m.to_str().unwrap(),
            dir.join("o.gguf").to_str().unwrap(),
            "q2_k_s",
        ]),
        "unknown type",
    );
    let long = "word ".repeat(64);
    user_error(
        &qorus(&[
            "generate",
            "--model",
            m.to_str().unwrap(),
            "--ctx",
            "16",
            &long,
        ]),
        "context",
    );
    user_error(
        &qorus(&[
            "generate",
            "--model",
            m.to_str().unwrap(),
            "--temp=-1",
            "hi",
        ]),
        "temperature",
    );
    let o = qorus(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2), "clap usage error");
    let _ = std::fs::remove_dir_all(&dir);
}
