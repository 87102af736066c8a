//! The README's main job: c_tests/examples/hello_model.c, built against libqorus.so and
//! libqorus.a, loads SmolLM2-135M-Instruct (fetched by scripts/fetch_models.py) and prints the
//! header the library derived from the GGUF metadata.

mod common;

use std::process::Command;

use common::Link;

#[test]
fn hello_model_prints_the_smollm2_header() {
    let model = common::smollm2_q41();
    let src = common::root().join("c_tests/examples/hello_model.c");
    for (link, suffix) in [(Link::Shared, "shared"), (Link::Static, "static")] {
        let exe = common::work_dir().join(format!("hello_model-{suffix}"));
        common::build_c(std::slice::from_ref(&src), &exe, link, &[]);
        let out = common::run(&exe, &[model.to_str().unwrap()], &[]);
        // SmolLM2-135M's published hyperparameters.
        for line in [
            "format:         GGUF, 98362432 bytes mapped",
            "magic:          0x514f5231 (Q_MAGIC)",
            "vocab_size:     49152",
            "dim:            576",
            "hidden_dim:     1536",
            "n_layers:       30",
            "n_heads:        9 (head_dim 64)",
            "n_kv_heads:     3",
            "max_seq_len:    8192",
            "rope_freq_base: 100000",
            "rms_norm_eps:   1e-05",
        ] {
            assert!(
                out.lines().any(|l| l == line),
                "{suffix}: missing `{line}` in:\n{out}"
            );
        }

        // Errors: a usage message without an argument, the library's message for a bad file.
        let o = Command::new(&exe).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "no argument -> exit 2");
        let o = Command::new(&exe)
            .arg("/nonexistent/model.gguf")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "missing file -> exit 1");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("Failed to open file (-2)"), "{err}");
    }
}
