//! Builds the C benchmark harness `c_tests/bench_generation.c` against libqorus.so and runs it.
//! Not a pass/fail test (ignored by default):
//!
//! ```sh
//! QORUS_BENCH_MODEL=/path/model.gguf QORUS_BENCH_THREADS=2 \
//!     cargo test --release --test bench -- --ignored --nocapture
//! ```
//!
//! The binary is left at `target/release/c_tests/bench_generation` (usage:
//! `bench_generation MODEL [THREADS [REPS]]`); `scripts/bench/compare.sh` runs it directly.

mod common;

/// Builds `c_tests/<program>.c` against libqorus.so and, when QORUS_BENCH_MODEL is set, runs it
/// with that model, QORUS_BENCH_THREADS (default 0 = all cores) and QORUS_BENCH_REPS.
fn build_and_run(program: &str, default_reps: &str) {
    let src = common::root().join(format!("c_tests/{program}.c"));
    let exe = common::work_dir().join(program);
    common::build_c(&[src], &exe, common::Link::Shared, &["-O2"]);
    println!("built {}", exe.display());
    let Ok(model) = std::env::var("QORUS_BENCH_MODEL") else {
        println!("QORUS_BENCH_MODEL not set: built only");
        return;
    };
    let threads = std::env::var("QORUS_BENCH_THREADS").unwrap_or_else(|_| "0".into());
    let reps = std::env::var("QORUS_BENCH_REPS").unwrap_or_else(|_| default_reps.into());
    common::run(&exe, &[&model, &threads, &reps], &[]);
}

#[test]
#[ignore = "benchmark: run on demand with QORUS_BENCH_MODEL set"]
fn bench_generation() {
    build_and_run("bench_generation", "5");
}

/// `c_tests/bench_batch.c`: aggregate decode speed of `q_generate_batch` for B = 1, 2, 4, 8.
#[test]
#[ignore = "benchmark: run on demand with QORUS_BENCH_MODEL set"]
fn bench_batch() {
    build_and_run("bench_batch", "3");
}
