//! Shared helpers for integration tests: where cargo put the libraries, how to build and run C
//! programs against them (with the `cc` crate's compiler detection), and the test models.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>`: the directory holding libqorus.so and libqorus.a for this test build.
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    let dir = deps.parent().expect("profile dir").to_path_buf();
    ensure_libs_built(&dir);
    assert!(
        dir.join("libqorus.so").exists() && dir.join("libqorus.a").exists(),
        "libqorus.so / libqorus.a not found in {}",
        dir.display()
    );
    // The library's soname is libqorus.so.0 (as installed); give the loader that name here too.
    let so0 = dir.join("libqorus.so.0");
    if std::fs::symlink_metadata(&so0).is_err() {
        let _ = std::os::unix::fs::symlink("libqorus.so", &so0); // a parallel test may win: fine
    }
    dir
}

/// `cargo test` builds the crate as an rlib only; the C tests need libqorus.so and libqorus.a
/// from the same sources and profile, so build them once (cargo makes this a no-op when they are
/// fresh). Serialised across the test threads of this process.
fn ensure_libs_built(dir: &Path) {
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let profile = dir
            .file_name()
            .and_then(|s| s.to_str())
            .unwrap_or("debug")
            .to_string();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(root()).args(["build", "--lib", "--quiet"]);
        if profile != "debug" {
            cmd.args(["--profile", &profile]);
        }
        let target_dir = dir.parent().expect("target dir");
        cmd.env("CARGO_TARGET_DIR", target_dir);
        let st = cmd.status().expect("run cargo build --lib");
        assert!(st.success(), "cargo build --lib failed");
    });
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
    let d = lib_dir().join("c_tests");
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

/// A test model by variant (development stand-in; replaced by the model-files work).
pub fn model(variant: &str) -> PathBuf {
    let p = PathBuf::from(format!(
        "/work/cache/models/SmolLM2-135M-Instruct.{}.gguf",
        variant.to_uppercase()
    ));
    assert!(p.exists(), "{} missing", p.display());
    p
}
