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

#[test]
#[ignore = "benchmark: run on demand with QORUS_BENCH_MODEL set"]
fn bench_generation() {
    let src = common::root().join("c_tests/bench_generation.c");
    let exe = common::work_dir().join("bench_generation");
    common::build_c(&[src], &exe, common::Link::Shared, &["-O2"]);
    println!("built {}", exe.display());
    let Ok(model) = std::env::var("QORUS_BENCH_MODEL") else {
        println!("QORUS_BENCH_MODEL not set: built only");
        return;
    };
    let threads = std::env::var("QORUS_BENCH_THREADS").unwrap_or_else(|_| "0".into());
    let reps = std::env::var("QORUS_BENCH_REPS").unwrap_or_else(|_| "5".into());
    common::run(&exe, &[&model, &threads, &reps], &[]);
}

/// `c_tests/bench_batch.c`: aggregate decode speed of `q_generate_batch` for B = 1, 2, 4, 8
/// (QORUS_BENCH_MODEL, QORUS_BENCH_THREADS, QORUS_BENCH_REPS as above).
#[test]
#[ignore = "benchmark: run on demand with QORUS_BENCH_MODEL set"]
fn bench_batch() {
    let src = common::root().join("c_tests/bench_batch.c");
    let exe = common::work_dir().join("bench_batch");
    common::build_c(&[src], &exe, common::Link::Shared, &["-O2"]);
    println!("built {}", exe.display());
    let Ok(model) = std::env::var("QORUS_BENCH_MODEL") else {
        println!("QORUS_BENCH_MODEL not set: built only");
        return;
    };
    let threads = std::env::var("QORUS_BENCH_THREADS").unwrap_or_else(|_| "0".into());
    let reps = std::env::var("QORUS_BENCH_REPS").unwrap_or_else(|_| "3".into());
    common::run(&exe, &[&model, &threads, &reps], &[]);
}
