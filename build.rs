//! Generates the C header from the Rust declarations (cbindgen) into `$OUT_DIR/qorus.h`, and sets
//! the shared library's soname. `tests/header.rs` fails when `include/qorus.h` differs from the
//! generated one; `QORUS_WRITE_HEADER=1 cargo build` (or `scripts/regen-header.sh`) refreshes it.

use std::env;
use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());

    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=QORUS_WRITE_HEADER");

    // The C test harness (tests/c_api.rs) asks the cc crate for a compiler for this target.
    println!(
        "cargo:rustc-env=QORUS_TARGET={}",
        env::var("TARGET").unwrap()
    );

    // soname for libqorus.so, so that installs can carry libqorus.so.0 → libqorus.so.0.x.y.
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libqorus.so.0");
    }

    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    // Only src/ffi/ is the C surface: cbindgen parses src/ffi/mod.rs and the modules it declares.
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/ffi/mod.rs"))
        .generate()
        .expect("cbindgen could not generate the header");
    bindings.write_to_file(out_dir.join("qorus.h"));
    if env::var("QORUS_WRITE_HEADER").as_deref() == Ok("1") {
        bindings.write_to_file(crate_dir.join("include/qorus.h"));
    }
}
