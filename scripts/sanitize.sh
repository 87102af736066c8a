#!/usr/bin/env bash
# Runs the C tests under AddressSanitizer + UndefinedBehaviorSanitizer (C side, with leak
# detection) and under valgrind memcheck, against the release libqorus.so. Model-sized tests get
# the SmolLM2 path from tests/common's cache ($QORUS_MODEL_DIR or ~/.cache/qorus/models; run
# `cargo test --release` once first so the derived models exist).
#
#     scripts/sanitize.sh   # ASan+UBSan on every test_*.c and model_*.c, valgrind on the fast ones
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --lib --quiet
lib=$PWD/target/release
[ -e "$lib/libqorus.so.0" ] || ln -s libqorus.so "$lib/libqorus.so.0"
out=$PWD/target/sanitize
mkdir -p "$out"
models=${QORUS_MODEL_DIR:-$HOME/.cache/qorus/models}
export QORUS_TEST_MODEL_Q41="$models/SmolLM2-135M-Instruct.Q4_1.gguf"
export QORUS_TOKENIZER_CORPUS=$PWD/tests/data/tokenizer/corpus.txt QORUS_TOKENIZER_IDS=$PWD/tests/data/tokenizer/smollm2_ids.txt
fail=0
passed=0
failed=0
ok() { echo "$1"; passed=$((passed + 1)); }
ko() { echo "$1"; failed=$((failed + 1)); fail=1; }
export QORUS_TEST_MODEL="$models/SmolLM2-135M-Instruct.Q4_1.gguf" QORUS_MODEL_DIR="$models"
# model_endurance: 100 load/generate/free cycles instead of 1,000 (about 280 ms a cycle under ASan;
# `cargo test --release` runs the full 1,000 without sanitizers).
export QORUS_ENDURANCE_CYCLES=100
# allocator_may_return_null: a huge request fails with NULL as with the real allocator (the
# arena is aligned_alloc memory and test_memory asks for 2^62 bytes), instead of aborting.
for src in c_tests/test_*.c c_tests/model_*.c; do
    name=$(basename "$src" .c)
    cc -std=c11 -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
        -D_GNU_SOURCE -Iinclude -Ic_tests "$src" -o "$out/$name-asan" -L"$lib" -lqorus -Wl,-rpath,"$lib" -lm
    if (cd "$out" && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:allocator_may_return_null=1 ./"$name-asan" > "$name-asan.log" 2>&1); then
        ok "asan+ubsan ok   $name ($(tail -1 "$out/$name-asan.log"))"
    else
        ko "asan+ubsan FAIL $name (see $out/$name-asan.log)"
    fi
done
if command -v valgrind >/dev/null 2>&1; then
    for name in test_layout test_strerror test_memory test_tokenizer test_malformed test_sampling; do
        cc -std=c11 -g -O1 -D_GNU_SOURCE -Iinclude -Ic_tests "c_tests/$name.c" -o "$out/$name-vg" \
            -L"$lib" -lqorus -Wl,-rpath,"$lib" -lm
        if (cd "$out" && valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
                ./"$name-vg" > "$name-vg.log" 2>&1); then
            ok "valgrind ok     $name"
        else
            ko "valgrind FAIL   $name (see $out/$name-vg.log)"
        fi
    done
else
    ko "valgrind not installed (apt-get install valgrind)"
fi
echo "sanitize: $passed passed, $failed failed"
exit $fail
