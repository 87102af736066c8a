#!/usr/bin/env bash
# Regenerates include/qorus.h from the Rust sources (cbindgen, via build.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
QORUS_WRITE_HEADER=1 cargo build --quiet
echo "include/qorus.h regenerated"
