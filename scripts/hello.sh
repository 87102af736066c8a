#!/usr/bin/env bash
# The README's main job until the CLI exists: fetch SmolLM2-135M-Instruct (scripts/fetch_models.py),
# build libqorus (cargo build --release), compile c_tests/examples/hello_model.c against libqorus.so
# and run it on the model: it maps the file with q_init_memory and prints the model header.
#
# usage: scripts/hello.sh [MODEL_FILE]     (default: the fetched SmolLM2-135M-Instruct Q4_1 GGUF)
# CC selects the C compiler (default: cc); CARGO_TARGET_DIR is honoured.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ $# -ge 1 ]; then
    model=$1
else
    echo "== fetching the model ==" >&2
    model=$(python3 scripts/fetch_models.py smollm2-135m-instruct-q4_1)
fi

echo "== building libqorus (cargo build --release) ==" >&2
cargo build --release
lib="${CARGO_TARGET_DIR:-$root/target}/release"

echo "== compiling c_tests/examples/hello_model.c ==" >&2
out="$lib/examples/hello_model_c"
mkdir -p "$(dirname "$out")"
"${CC:-cc}" -std=c11 -Wall -Wextra -Wpedantic -Werror -O2 -I include \
    c_tests/examples/hello_model.c -o "$out" \
    -L "$lib" -lqorus -Wl,-rpath,"$lib"
# The executable asks for the soname libqorus.so.0; cargo names the library libqorus.so.
ln -sfn libqorus.so "$lib/libqorus.so.0"

echo "== running: hello_model $model ==" >&2
exec "$out" "$model"
