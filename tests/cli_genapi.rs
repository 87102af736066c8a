//! `qorus generate` / `qorus chat` flags of the generation API (issue 15), end to end on the
//! SmolLM2 test model: --json-schema output parses; --grammar constrains; --stop cuts the text
//! before the match; --prompt-cache reuses the prompt on a second run with the same output (and
//! in chat, a repeated system prompt); sampling flags are accepted and seeded runs repeat; bad
//! values are one clear error line.

mod common;

use std::process::{Command, Output, Stdio};

fn qorus(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qorus"))
        .args(args)
        .env("QORUS_NUM_THREADS", "2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run qorus");
    {
        use std::io::Write;
        let mut si = child.stdin.take().unwrap();
        if let Some(s) = stdin {
            si.write_all(s.as_bytes()).unwrap();
        }
    }
    let o = child.wait_with_output().unwrap();
    println!(
        "$ qorus {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn ok(o: &Output) -> (String, String) {
    assert!(
        o.status.success(),
        "qorus failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn error_line(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("qorus: error:") && err.contains(needle),
        "{needle:?}: {err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
}

#[test]
fn generate_flags_end_to_end() {
    let m = common::model("q4_1");
    let m = m.to_str().unwrap();
    let schema = r#"{"type":"object","properties":{"name":{"type":"string","maxLength":30},"age":{"type":"integer"}},"required":["name","age"]}"#;
    for seed in ["0", "1"] {
        let temp = if seed == "0" { "0" } else { "0.9" };
        let (out, _) = ok(&qorus(
            &[
                "generate",
                "-m",
                m,
                "--chat",
                "--temp",
                temp,
                "--seed",
                seed,
                "-n",
                "80",
                "--json-schema",
                schema,
                "Maria is 34 years old. Describe her as JSON.",
            ],
            None,
        ));
        let v: serde_json::Value =
            serde_json::from_str(out.trim()).expect("--json-schema output parses");
        assert!(v["name"].is_string() && v["age"].is_i64(), "{v}");
    }
    let (out, _) = ok(&qorus(
        &[
            "generate",
            "-m",
            m,
            "--chat",
            "--temp",
            "0",
            "-n",
            "20",
            "--grammar",
            "root ::= (\"yes\" | \"no\")",
            "Is the sky blue? Answer yes or no.",
        ],
        None,
    ));
    assert!(out.trim() == "yes" || out.trim() == "no", "{out}");
    // --stop: the text before the first '.' of the greedy continuation.
    let (full, _) = ok(&qorus(
        &[
            "generate",
            "-m",
            m,
            "--temp",
            "0",
            "-n",
            "30",
            "The capital of France is",
        ],
        None,
    ));
    let (cut, err) = ok(&qorus(
        &[
            "generate",
            "-m",
            m,
            "--temp",
            "0",
            "-n",
            "30",
            "--stop",
            ".",
            "-r",
            "NEVER",
            "The capital of France is",
        ],
        None,
    ));
    let want = &full[..full.find('.').expect("greedy text has a period")];
    assert_eq!(cut.trim_end_matches('\n'), want);
    assert!(err.contains("stop string \".\""), "{err}");
    // Seeded sampling with every sampling flag repeats.
    let args = [
        "generate",
        "-m",
        m,
        "--temp",
        "0.8",
        "--seed",
        "7",
        "-n",
        "24",
        "--top-k",
        "30",
        "--top-p",
        "0.9",
        "--min-p",
        "0.02",
        "--typical",
        "0.95",
        "--repeat-penalty",
        "1.2",
        "--repeat-last-n",
        "-1",
        "--presence-penalty",
        "0.3",
        "--frequency-penalty",
        "0.1",
        "-l",
        "13+1",
        "-l",
        "30-inf",
        "Once upon a time",
    ];
    let (a, _) = ok(&qorus(&args, None));
    let (b, _) = ok(&qorus(&args, None));
    assert_eq!(a, b);
    // --prompt-cache: the second run reuses the prompt and prints the same text.
    let dir = std::env::temp_dir().join(format!("qorus-cli-genapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cache = dir.join("prompt.state");
    let cache = cache.to_str().unwrap();
    let prompt = "You are a helpful assistant. You answer briefly. Question: name three colours.";
    let (o1, e1) = ok(&qorus(
        &[
            "generate",
            "-m",
            m,
            "--temp",
            "0",
            "-n",
            "16",
            "--prompt-cache",
            cache,
            prompt,
        ],
        None,
    ));
    let (o2, e2) = ok(&qorus(
        &[
            "generate",
            "-m",
            m,
            "--temp",
            "0",
            "-n",
            "16",
            "--prompt-cache",
            cache,
            prompt,
        ],
        None,
    ));
    assert!(e1.contains("(0 reused)"), "{e1}");
    assert!(e2.contains("reusing") && !e2.contains("(0 reused)"), "{e2}");
    assert_eq!(o1, o2, "the reused prompt gives the same text");
    // A cache from another model is not used (and the run still works).
    let other = common::model("q4_0");
    let (_, e3) = ok(&qorus(
        &[
            "generate",
            "-m",
            other.to_str().unwrap(),
            "--temp",
            "0",
            "-n",
            "4",
            "--prompt-cache",
            cache,
            "--prompt-cache-ro",
            prompt,
        ],
        None,
    ));
    assert!(
        e3.contains("not used") && e3.contains("another model"),
        "{e3}"
    );
    // Chat: a repeated system prompt is reused from the cache on the next run.
    let chat_cache = dir.join("chat.state");
    let cc = chat_cache.to_str().unwrap();
    let sys = "You are a pirate. You always answer in one short sentence.";
    let (c1, ce1) = ok(&qorus(
        &[
            "chat",
            "-m",
            m,
            "--temp",
            "0",
            "-n",
            "20",
            "--system",
            sys,
            "--prompt-cache",
            cc,
        ],
        Some("Hello!\n"),
    ));
    let (_, ce2) = ok(&qorus(
        &[
            "chat",
            "-m",
            m,
            "--temp",
            "0",
            "-n",
            "20",
            "--system",
            sys,
            "--prompt-cache",
            cc,
        ],
        Some("Who are you?\n"),
    ));
    assert!(!c1.trim().is_empty() && !ce1.contains("reusing"), "{ce1}");
    assert!(
        ce2.contains("reusing"),
        "the second chat reuses the system prompt: {ce2}"
    );
    // Context shift: generation goes past a small context.
    let (_, es) = ok(&qorus(
        &[
            "generate",
            "-m",
            m,
            "--temp",
            "0",
            "-c",
            "32",
            "-n",
            "60",
            "--context-shift",
            "--keep",
            "4",
            "--ignore-eos",
            "Once upon a time",
        ],
        None,
    ));
    assert!(
        es.contains("generated 60 tokens") && es.contains("max tokens"),
        "{es}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_generation_flags_are_one_clear_line() {
    let m = common::model("q4_1");
    let m = m.to_str().unwrap();
    error_line(
        &qorus(
            &[
                "generate",
                "-m",
                m,
                "--grammar",
                "root ::= \"a\"\nx ::= [b-",
                "hi",
            ],
            None,
        ),
        "line 2, column 7",
    );
    error_line(
        &qorus(
            &[
                "generate",
                "-m",
                m,
                "--json-schema",
                "{\"type\":\"string\",\"pattern\":\"a\"}",
                "hi",
            ],
            None,
        ),
        "pattern",
    );
    error_line(
        &qorus(&["generate", "-m", m, "--min-p", "2", "hi"], None),
        "--min-p",
    );
    error_line(
        &qorus(&["generate", "-m", m, "--repeat-penalty", "0", "hi"], None),
        "--repeat-penalty",
    );
    error_line(
        &qorus(&["generate", "-m", m, "-l", "12x3", "hi"], None),
        "--logit-bias",
    );
    error_line(
        &qorus(&["generate", "-m", m, "-l", "99999999+1", "hi"], None),
        "vocabulary",
    );
    error_line(
        &qorus(
            &[
                "generate",
                "-m",
                m,
                "--grammar",
                "root ::= \"a\"",
                "-j",
                "{}",
                "hi",
            ],
            None,
        ),
        "at most one",
    );
    error_line(
        &qorus(
            &[
                "generate",
                "-m",
                m,
                "--grammar-file",
                "/nonexistent.gbnf",
                "hi",
            ],
            None,
        ),
        "/nonexistent.gbnf",
    );
}
