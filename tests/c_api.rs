//! Runs every C test program under `c_tests/` against libqorus.so and libqorus.a.

mod common;

macro_rules! c_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                common::build_and_run_c(stringify!($name), &[]);
            }
        )*

        /// Every `c_tests/test_*.c` must be listed above, so that none is silently skipped.
        #[test]
        fn every_c_test_is_listed() {
            let listed = [$(stringify!($name)),*];
            for entry in std::fs::read_dir(common::root().join("c_tests")).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().to_string();
                if let Some(stem) = name.strip_prefix("test_").and_then(|s| s.strip_suffix(".c")) {
                    let full = format!("test_{stem}");
                    assert!(
                        listed.contains(&full.as_str()) || RUN_ELSEWHERE.contains(&full.as_str()),
                        "c_tests/{name} is not listed in tests/c_api.rs"
                    );
                }
            }
        }
    };
}

c_tests!(test_layout, test_strerror, test_tokenizer);

#[test]
fn header_compiles_as_cpp() {
    common::check_cpp(&common::root().join("c_tests/header_cpp.cpp"));
}

/// C tests with their own test functions below (they need arguments such as a model path).
const RUN_ELSEWHERE: &[&str] = &["test_tokenizer_smollm2"];

/// The SmolLM2 Q4_1 GGUF: `$QORUS_TEST_MODEL_Q41`, else the model cache
/// (`$QORUS_MODEL_DIR` or ~/.cache/qorus/models). Panics (no silent skip) when absent.
// TODO: switch to `common::model("q4_1")` once the model helper lands.
fn smollm2_q41() -> std::path::PathBuf {
    if let Ok(p) = std::env::var("QORUS_TEST_MODEL_Q41") {
        return p.into();
    }
    let dir = std::env::var("QORUS_MODEL_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/qorus/models")
        });
    let p = dir.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "SmolLM2 Q4_1 model not found at {} (set QORUS_TEST_MODEL_Q41 or run scripts/fetch_models.py)",
        p.display()
    );
    p
}

#[test]
fn test_tokenizer_smollm2() {
    let model = smollm2_q41();
    let data = common::root().join("tests/data/tokenizer");
    common::build_and_run_c(
        "test_tokenizer_smollm2",
        &[
            ("QORUS_TEST_MODEL_Q41", model.display().to_string()),
            (
                "QORUS_TOKENIZER_CORPUS",
                data.join("corpus.txt").display().to_string(),
            ),
            (
                "QORUS_TOKENIZER_IDS",
                data.join("smollm2_ids.txt").display().to_string(),
            ),
        ],
    );
}
