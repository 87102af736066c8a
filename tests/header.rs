//! The committed header must be exactly what cbindgen generates from the current sources.

#[test]
fn committed_header_is_fresh() {
    let generated =
        std::fs::read_to_string(concat!(env!("OUT_DIR"), "/qorus.h")).expect("generated header");
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/qorus.h"))
            .expect("include/qorus.h");
    assert!(
        generated == committed,
        "include/qorus.h is stale: run `scripts/regen-header.sh` and commit the result"
    );
}
