#!/usr/bin/env bash
# Runs our C benchmark harness (c_tests/bench_generation.c) and llama.cpp's llama-batched-bench
# alternately on the same model files and thread counts, ROUNDS rounds, and prints the medians
# and the ratios (ours / llama.cpp) for pp64, pp512 and tg128.
#
# usage: scripts/bench/compare.sh MODEL.gguf [MODEL.gguf ...]
# environment:
#   THREADS    thread counts to run (default "1 2")
#   ROUNDS     alternating rounds (default 5)
#   REPS       repetitions per round inside our harness (median; default 3)
#   LLAMA_BIN  directory with llama-batched-bench (default /work/cache/llama.cpp-build/bin)
#   LLAMA_ARGS extra arguments for llama-batched-bench (e.g. "-fa on")
#   OUT        directory for the raw logs (default target/bench)
#
# llama.cpp side: `llama-batched-bench -npp 1,64,512 -ntg 128 -npl 1`: per prompt size it times
# one prompt decode (pp) then 128 one-token decodes (tg); tg128 is taken from the npp=1 row (so it
# runs at positions 1..128 like llama-bench's tg128), pp64/pp512 from the other rows. Our side:
# pp = one llama_forward over the prompt at position 0, tg = 128 one-token calls at positions
# 0..127. (The sdist's llama.cpp ships batched-bench but not llama-bench.)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { sed -n 2,20p "$0"; exit 2; }
THREADS=${THREADS:-"1 2"}
ROUNDS=${ROUNDS:-5}
REPS=${REPS:-3}
LLAMA_BIN=${LLAMA_BIN:-/work/cache/llama.cpp-build/bin}
OUT=${OUT:-target/bench}
mkdir -p "$OUT"
LB="$LLAMA_BIN/llama-batched-bench"
[ -x "$LB" ] || { echo "missing $LB (build llama.cpp: see BENCHMARKS.md)"; exit 1; }

# Build the harness (cargo builds libqorus.so and compiles the C program).
cargo test --release --test bench -- --ignored >/dev/null
OURS=target/release/c_tests/bench_generation
[ -x "$OURS" ] || { echo "harness not built"; exit 1; }

RAW="$OUT/compare-$(date +%Y%m%d-%H%M%S).tsv"
: >"$RAW"
for round in $(seq 1 "$ROUNDS"); do
  for model in "$@"; do
    name=$(basename "$model" .gguf)
    for t in $THREADS; do
      # ours
      "$OURS" "$model" "$t" "$REPS" >"$OUT/ours.log" 2>&1 || { cat "$OUT/ours.log"; exit 1; }
      awk -v r="$round" -v m="$name" -v t="$t" '/^RESULT (pp64|pp512|tg128|load_ms|rss_mib) /{print r"\t"m"\t"t"\tours\t"$2"\t"$3}' \
        "$OUT/ours.log" >>"$RAW"
      # llama.cpp
      # shellcheck disable=SC2086
      "$LB" -m "$model" -c 1024 -b 2048 -ub 512 -npp 1,64,512 -ntg 128 -npl 1 -t "$t" \
        --output-format jsonl ${LLAMA_ARGS:-} >"$OUT/llama.log" 2>&1 || { tail -20 "$OUT/llama.log"; exit 1; }
      python3 - "$OUT/llama.log" "$round" "$name" "$t" >>"$RAW" <<'PY'
import json, sys
log, r, m, t = sys.argv[1:5]
for line in open(log):
    line = line.strip()
    if not line.startswith("{"):
        continue
    j = json.loads(line)
    if j["pp"] == 1:
        print(f"{r}\t{m}\t{t}\tllama\ttg128\t{j['speed_tg']:.3f}")
    else:
        print(f"{r}\t{m}\t{t}\tllama\tpp{j['pp']}\t{j['speed_pp']:.3f}")
PY
      echo "round $round $name t=$t done" >&2
    done
  done
done

python3 - "$RAW" <<'PY'
import sys, statistics as st
from collections import defaultdict
v = defaultdict(list)
for line in open(sys.argv[1]):
    r, m, t, who, what, x = line.split("\t")
    v[(m, int(t), who, what)].append(float(x))
keys = sorted({(m, t) for (m, t, _, _) in v})
print(f"\nmedians of {max(len(x) for x in v.values())} alternating rounds (tokens/s; raw: {sys.argv[1]})")
print(f"{'model':34} {'thr':>3} {'test':>6} {'qorus':>9} {'llama.cpp':>10} {'ratio':>6}")
for m, t in keys:
    for what in ("pp64", "pp512", "tg128"):
        a, b = v.get((m, t, "ours", what)), v.get((m, t, "llama", what))
        if not a or not b:
            continue
        ma, mb = st.median(a), st.median(b)
        print(f"{m:34} {t:>3} {what:>6} {ma:9.1f} {mb:10.1f} {ma / mb:6.2f}")
    for what, unit in (("rss_mib", "MiB peak RSS"), ("load_ms", "ms load")):
        a = v.get((m, t, "ours", what))
        if a:
            print(f"{m:34} {t:>3} {'':>6} ours: {st.median(a):.1f} {unit}")
PY
