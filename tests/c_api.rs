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

c_tests!(
    test_layout,
    test_convert,
    test_kernels,
    test_malformed,
    test_memory,
    test_sampling,
    test_sampler_chain,
    test_strerror,
    test_tokenizer,
    test_handbuilt_model,
    test_kernels_nonfinite
);

#[test]
fn header_compiles_as_cpp() {
    common::check_cpp(&common::root().join("c_tests/header_cpp.cpp"));
}

/// C tests that run a real model: `c_tests/model_<name>.c`, given the model path in
/// `QORUS_TEST_MODEL` (and the directory of all test models in `QORUS_MODEL_DIR`).
macro_rules! c_model_tests {
    ($($name:ident => $variant:expr),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let model = common::model($variant);
                let dir = model.parent().unwrap().display().to_string();
                // Model-sized programs run once, against the shared library; every other C
                // test covers the static one too.
                common::build_and_run_c_with(
                    stringify!($name),
                    &[("QORUS_TEST_MODEL", model.display().to_string()), ("QORUS_MODEL_DIR", dir)],
                    &[common::Link::Shared],
                );
            }
        )*

        /// Every `c_tests/model_*.c` must be listed above.
        #[test]
        fn every_c_model_test_is_listed() {
            let listed = [$(stringify!($name)),*];
            for entry in std::fs::read_dir(common::root().join("c_tests")).unwrap() {
                let name = entry.unwrap().file_name().to_string_lossy().to_string();
                if let Some(stem) = name.strip_prefix("model_").and_then(|s| s.strip_suffix(".c")) {
                    let full = format!("model_{stem}");
                    assert!(listed.contains(&full.as_str()), "c_tests/{name} is not listed in tests/c_api.rs");
                }
            }
        }
    };
}

c_model_tests!(
    model_forward => "q4_1",
    model_generate => "q4_1",
    model_genapi => "q4_1",
    model_json_extract => "q4_1",
    model_endurance => "q4_0",
    model_adversarial => "q4_0",
    model_kv_types => "q4_0",
);

/// C tests with their own test functions below (they need arguments such as a model path).
const RUN_ELSEWHERE: &[&str] = &["test_tokenizer_smollm2"];

#[test]
fn test_tokenizer_smollm2() {
    let model = common::model("q4_1");
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
