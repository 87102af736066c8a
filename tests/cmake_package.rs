//! The installed package: `scripts/install.sh` lays out a prefix from the libraries of this test
//! build; a CMake project (c_tests/cmake_consumer) finds it with `find_package(qorus CONFIG)` and
//! links `qorus::qorus` and `qorus::qorus_static`; `pkg-config --cflags --libs qorus` gives flags
//! that compile and link a program. Needs `cmake` (installed from PyPI into target/test-tools when
//! the machine has none, see tests/common/tools.rs), `make` and `pkg-config`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn show(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs a command and panics with its output unless it succeeds; returns stdout.
fn run_ok(cmd: &mut Command, what: &str) -> String {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(o.status.success(), "{what} failed: {cmd:?}\n{}", show(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    println!(
        "--- {what} ---\n{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

fn require_tool(tool: &str, how: &str) {
    match Command::new(tool).arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => panic!("`{tool}` is required by this test but was not found on PATH; {how}"),
    }
}

/// A fresh directory under the test build's target directory, unique to this process.
fn fresh_dir(name: &str) -> PathBuf {
    let d = common::profile_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn install(prefix: &Path) {
    run_ok(
        Command::new("bash")
            .arg(common::root().join("scripts/install.sh"))
            .arg("--lib-dir")
            .arg(common::lib_dir())
            .arg(prefix),
        "scripts/install.sh",
    );
}

fn check_layout(prefix: &Path) {
    let version = env!("CARGO_PKG_VERSION");
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    for f in [
        "include/qorus.h".to_string(),
        "include/qorus_types.h".to_string(),
        format!("lib/libqorus.so.{version}"),
        "lib/libqorus.a".to_string(),
        "lib/cmake/qorus/qorusConfig.cmake".to_string(),
        "lib/cmake/qorus/qorusConfigVersion.cmake".to_string(),
        "lib/pkgconfig/qorus.pc".to_string(),
    ] {
        let p = prefix.join(&f);
        let m = std::fs::symlink_metadata(&p).unwrap_or_else(|_| panic!("{f} not installed"));
        assert!(m.is_file(), "{f} is a regular file");
    }
    let links = [
        (
            format!("lib/libqorus.so.{major}"),
            format!("libqorus.so.{version}"),
        ),
        (
            "lib/libqorus.so".to_string(),
            format!("libqorus.so.{major}"),
        ),
    ];
    for (link, target) in links {
        let t = std::fs::read_link(prefix.join(&link))
            .unwrap_or_else(|_| panic!("{link} is not a symlink"));
        assert_eq!(t, PathBuf::from(&target), "{link} -> {target}");
        assert!(prefix.join(&link).exists(), "{link} resolves");
    }
    // The installed header is the committed one.
    let installed = std::fs::read(prefix.join("include/qorus.h")).unwrap();
    let committed = std::fs::read(common::root().join("include/qorus.h")).unwrap();
    assert!(
        installed == committed,
        "installed qorus.h differs from include/qorus.h"
    );
    // No template placeholder survives.
    for f in [
        "lib/cmake/qorus/qorusConfig.cmake",
        "lib/cmake/qorus/qorusConfigVersion.cmake",
        "lib/pkgconfig/qorus.pc",
    ] {
        let text = std::fs::read_to_string(prefix.join(f)).unwrap();
        assert!(
            !text.contains('@'),
            "{f} still holds a @PLACEHOLDER@:\n{text}"
        );
    }
}

/// Runs a consumer executable and checks it reports the expected linkage. `cargo test` puts
/// target/<profile>/deps on LD_LIBRARY_PATH, which would win over the executable's run path; it is
/// removed so that the shared consumers must find the installed library.
fn run_consumer(exe: &Path, expect: &str, prefix: &Path) {
    let out = run_ok(
        Command::new(exe).env_remove("LD_LIBRARY_PATH"),
        &exe.display().to_string(),
    );
    assert!(
        out.contains("consumer OK"),
        "{} did not pass:\n{out}",
        exe.display()
    );
    let want = match expect {
        "shared" => format!(
            "linkage: shared, {}",
            prefix.join("lib/libqorus.so.0").display()
        ),
        _ => "linkage: static".to_string(),
    };
    assert!(
        out.contains(&want),
        "{}: expected `{want}`:\n{out}",
        exe.display()
    );
    assert!(out.contains("q_init_memory(missing file) = -2"), "{out}");
}

#[test]
fn cmake_and_pkg_config_package() {
    require_tool(
        "pkg-config",
        "install it with your system's package manager (`apt-get install pkg-config`)",
    );
    require_tool(
        "make",
        "CMake's default generator needs it; install it with `apt-get install make`",
    );

    let work = fresh_dir("cmake_package");
    let prefix = work.join("prefix with space");
    install(&prefix);
    check_layout(&prefix);

    // CMake: configure, build and run the consumer project against the prefix.
    let build = work.join("build");
    let cc = common::c_compiler_path();
    run_ok(
        common::executable("cmake", "cmake")
            .arg("-S")
            .arg(common::root().join("c_tests/cmake_consumer"))
            .arg("-B")
            .arg(&build)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
            .arg(format!("-DCMAKE_C_COMPILER={}", cc.display()))
            .arg("-DCMAKE_BUILD_TYPE=Release"),
        "cmake configure",
    );
    run_ok(
        common::executable("cmake", "cmake")
            .arg("--build")
            .arg(&build),
        "cmake --build",
    );
    run_consumer(&build.join("consumer_shared"), "shared", &prefix);
    run_consumer(&build.join("consumer_static"), "static", &prefix);

    // pkg-config: the flags compile and link a program that runs.
    let pc_path = prefix.join("lib/pkgconfig");
    let pkg = |args: &[&str]| -> Vec<String> {
        let out = run_ok(
            Command::new("pkg-config")
                .args(args)
                .arg("qorus")
                .env("PKG_CONFIG_PATH", &pc_path),
            &format!("pkg-config {}", args.join(" ")),
        );
        out.split_whitespace().map(str::to_string).collect()
    };
    let version = pkg(&["--modversion"]);
    assert_eq!(version, [env!("CARGO_PKG_VERSION")]);
    let flags = pkg(&["--cflags", "--libs"]);
    assert!(flags.iter().any(|f| f == "-lqorus"), "{flags:?}");
    let statics = pkg(&["--static", "--libs"]);
    for l in ["-lqorus", "-lpthread", "-ldl", "-lm", "-lrt"] {
        assert!(
            statics.iter().any(|f| f == l),
            "--static --libs lacks {l}: {statics:?}"
        );
    }
    // The prefix holds a space, which pkg-config escapes as `\ `: rebuild those arguments.
    let flags = rejoin_escaped(&flags);
    let exe = work.join("pkgconfig_consumer");
    run_ok(
        Command::new(&cc)
            .args(["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
            .arg("-DCONSUMER_EXPECT_SHARED=1")
            .arg(common::root().join("c_tests/cmake_consumer/main.c"))
            .arg("-o")
            .arg(&exe)
            .args(&flags)
            .arg(format!("-Wl,-rpath,{}", prefix.join("lib").display())),
        "cc with pkg-config flags",
    );
    run_consumer(&exe, "shared", &prefix);

    let _ = std::fs::remove_dir_all(&work);
}

/// `pkg-config` prints `-I/a\ b/include`; split_whitespace breaks that into `-I/a\` and `b/include`.
/// Joins the pieces of each escaped argument back together.
fn rejoin_escaped(words: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut glue = false;
    for w in words {
        if glue {
            if let Some(last) = out.last_mut() {
                last.push(' ');
                last.push_str(w.trim_end_matches('\\'));
            }
        } else {
            out.push(w.trim_end_matches('\\').to_string());
        }
        glue = w.ends_with('\\');
    }
    out
}

#[test]
fn install_script_rejects_bad_use() {
    let script = common::root().join("scripts/install.sh");
    let work = fresh_dir("install_bad");
    // No prefix.
    let o = Command::new("bash").arg(&script).output().unwrap();
    assert!(!o.status.success(), "install.sh without PREFIX must fail");
    // Unknown profile.
    let o = Command::new("bash")
        .arg(&script)
        .args(["--profile", "fast"])
        .arg(work.join("p"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "--profile fast must fail");
    // A library directory without the libraries: a clear message, nothing installed.
    let o = Command::new("bash")
        .arg(&script)
        .arg("--lib-dir")
        .arg(&work)
        .arg(work.join("p"))
        .output()
        .unwrap();
    assert!(!o.status.success(), "missing libraries must fail");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("not found") && err.contains("cargo build"),
        "{err}"
    );
    assert!(!work.join("p").exists(), "nothing installed on failure");
    let _ = std::fs::remove_dir_all(&work);
}
