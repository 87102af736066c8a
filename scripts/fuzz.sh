#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ (issue 8), one at a time, each for SECONDS (default 600),
# with debug assertions and overflow checks on (-a) and AddressSanitizer. Installs cargo-fuzz
# when it is missing; needs the nightly toolchain. The tokenize/detokenize targets read the
# SmolLM2 Q4_1 model ($QORUS_FUZZ_MODEL, else $QORUS_MODEL_DIR or ~/.cache/qorus/models; fetch it
# with `python3 scripts/fetch_models.py`).
#
#     scripts/fuzz.sh                 # every target, 600 s each
#     scripts/fuzz.sh qorus_reader 60 # one target, 60 s
#
# New inputs go to fuzz/corpus-work/<target> (ignored by git); the committed seeds in
# fuzz/corpus/<target> and the regression inputs of tests/data/fuzz_regressions/<target> are read
# only. Crashers land in fuzz/artifacts/<target>/: fix the bug, then
# copy the file to tests/data/fuzz_regressions/<target>/ so `cargo test` replays it
# (tests/fuzz_regressions.rs). The last libFuzzer status line of each run is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
targets=(gguf_reader qorus_reader tokenizer_file tokenize detokenize grammar_parser json_schema state_loader)
if [ $# -ge 1 ] && [ "$1" != all ]; then targets=("$1"); fi
seconds=${2:-600}
if ! cargo +nightly fuzz --version > /dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
mkdir -p target/fuzz-logs
status=0
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus-work/$t"
    log=target/fuzz-logs/$t.log
    echo "== $t: ${seconds}s (log: $log)"
    # the hand-made hostile inputs and earlier crashers seed the run too
    extra=()
    if [ -d "tests/data/fuzz_regressions/$t" ]; then extra=("tests/data/fuzz_regressions/$t"); fi
    if nice -n 10 cargo +nightly fuzz run -a "$t" "fuzz/corpus-work/$t" "fuzz/corpus/$t" "${extra[@]}" -- \
        -max_total_time="$seconds" -timeout=30 -print_final_stats=1 > "$log" 2>&1; then
        echo "   ok: $(grep -E '^#[0-9]+' "$log" | tail -1)"
        grep -E '^stat::number_of_executed_units|^Done ' "$log" || true
    else
        status=1
        echo "   FAILED: $(grep -E 'ERROR|panicked|Test unit written' "$log" | head -3)"
    fi
done
exit $status
