#!/usr/bin/env bash
# Batched generation beside llama.cpp (generation issue): our c_tests/bench_batch.c
# (q_generate_batch: B sequences, 32-token prompts, 64 generated tokens each, whole run timed)
# and llama-batched-bench -npp 32 -ntg 64 -npl 1,2,4,8, alternately, ROUNDS rounds, on the same
# file and thread count; prints the medians of the whole-run times and their ratio
# (llama.cpp time / ours, i.e. how many times faster we are) and the aggregate generated t/s.
#
# usage: scripts/bench/compare_batch.sh MODEL.gguf
# environment: THREADS (default 2), ROUNDS (default 5), REPS (ours, median; default 3),
#              LLAMA_BIN (as compare.sh), OUT (default target/bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -eq 1 ] || { sed -n 2,12p "$0"; exit 2; }
model=$1
T=${THREADS:-2}
ROUNDS=${ROUNDS:-5}
REPS=${REPS:-3}
LLAMA_BIN=${LLAMA_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/qorus/llama.cpp/build-0.3.36/bin}
OUT=${OUT:-target/bench}
mkdir -p "$OUT"
LB="$LLAMA_BIN/llama-batched-bench"
[ -x "$LB" ] || { echo "missing $LB (build it: BENCH_ONLY=none scripts/bench/llamacpp_bench.sh)"; exit 1; }
cargo test --release --test bench -- --ignored >/dev/null
OURS=target/release/c_tests/bench_batch
RAW="$OUT/compare-batch-$(date +%Y%m%d-%H%M%S).tsv"
: >"$RAW"
echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
  "$OURS" "$model" "$T" "$REPS" >"$OUT/ours-batch.log" 2>&1 || { cat "$OUT/ours-batch.log"; exit 1; }
  sed -n 's/^B=\([0-9]*\): \([0-9.]*\) s .*/\1 \2/p' "$OUT/ours-batch.log" |
    awk -v r="$round" '{print r"\tours\t"$1"\t"$2}' >>"$RAW"
  "$LB" -m "$model" -c 4096 -b 512 -ub 512 -npp 32 -ntg 64 -npl 1,2,4,8 -t "$T" \
    --output-format jsonl >"$OUT/llama-batch.log" 2>"$OUT/llama-batch.err" ||
    { tail -20 "$OUT/llama-batch.err"; exit 1; }
  python3 -c '
import json, sys
for line in open(sys.argv[1]):
    if line.startswith("{"):
        j = json.loads(line)
        print("%s\tllama\t%d\t%.6f" % (sys.argv[2], j["pl"], j["t"]))
' "$OUT/llama-batch.log" "$round" >>"$RAW"
  echo "round $round done ($(cut -d' ' -f1 /proc/loadavg))" >&2
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$RAW" "$T" <<'PY'
import sys, statistics as st
from collections import defaultdict
v = defaultdict(list)
for line in open(sys.argv[1]):
    r, who, b, t = line.split()
    v[(who, int(b))].append(float(t))
print(f"\nmedians of {max(len(x) for x in v.values())} alternating rounds, {sys.argv[2]} threads (raw: {sys.argv[1]})")
print("| B | qorus whole run | qorus generated t/s | llama.cpp whole run | llama.cpp generated t/s | ratio |")
print("|---:|---:|---:|---:|---:|---:|")
for b in sorted({b for (_, b) in v}):
    a, l = st.median(v[("ours", b)]), st.median(v[("llama", b)])
    print(f"| {b} | {a:.3f} s | {b * 64 / a:.1f} | {l:.3f} s | {b * 64 / l:.1f} | {l / a:.2f} |")
PY
