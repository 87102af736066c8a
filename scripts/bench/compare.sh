#!/usr/bin/env bash
# Runs our C benchmark harness (c_tests/bench_generation.c, through the C API) and llama.cpp's
# llama-bench alternately on the same model files and thread counts, ROUNDS rounds, and prints
# per (model, threads, test) the median of each side and the ratio of the medians (ours / llama.cpp).
#
# usage: scripts/bench/compare.sh MODEL.gguf [MODEL.gguf ...]
# environment:
#   THREADS    thread counts (default "1 2")
#   ROUNDS     alternating rounds (default 5)
#   REPS       repetitions per round on each side (ours: median of REPS; llama-bench: -r REPS,
#              its mean; default 3)
#   LLAMA_BIN  directory holding llama-bench (default: the build made by
#              scripts/bench/llamacpp_bench.sh, ~/.cache/qorus/llama.cpp/build-0.3.36/bin)
#   LLAMA_ARGS extra llama-bench arguments (e.g. "-fa 1")
#   OUT        directory for the raw figures (default target/bench)
#   DEPTH      tokens already in the KV cache before each test (default 0; llama-bench -d)
#   PP         prompt lengths (default 64,512)
#   TG         decoded tokens (default 128)
#   CACHE      KV cache type on both sides: f16 (default, llama-bench's default), f32 or q8_0
#              (ours: q_alloc_kv_cache_typed; llama-bench -ctk/-ctv; q8_0 V needs LLAMA_ARGS="-fa 1")
#
# Tests on both sides: ppN (one prompt of N tokens at position DEPTH) and tgN (N one-token
# decodes from DEPTH). Ours: pp = one llama_forward over the prompt, tg = one-token llama_forward
# calls; llama-bench: its -d DEPTH -p PP -n TG. Each round runs ours then llama.cpp for every
# (model, threads), so both see the same machine conditions on average.
# A second table (ours only): the bytes a tgN step reads (weights + KV cache at the test's mean
# depth), the achieved GB/s, and the streaming read bandwidth the harness measured in the same run
# (1 and THREADS threads; QORUS_BENCH_STREAM_MIB=0 skips it).
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { sed -n 2,28p "$0"; exit 2; }
THREADS=${THREADS:-"1 2"}
ROUNDS=${ROUNDS:-5}
REPS=${REPS:-3}
LLAMA_BIN=${LLAMA_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/qorus/llama.cpp/build-0.3.36/bin}
OUT=${OUT:-target/bench}
DEPTH=${DEPTH:-0}
PP=${PP:-64,512}
TG=${TG:-128}
CACHE=${CACHE:-f16}
mkdir -p "$OUT"
LB="$LLAMA_BIN/llama-bench"
[ -x "$LB" ] || { echo "missing $LB (build it: BENCH_ONLY=none scripts/bench/llamacpp_bench.sh)"; exit 1; }
# On a CPU that reports AMX, llama.cpp's native build uses AMX kernels that crash in this sandbox:
# run llama-bench with the AMX permission call refused (scripts/bench/noamx_exec.c).
WRAP=()
if grep -qw amx_tile /proc/cpuinfo; then
  cc -O2 -o "$OUT/noamx_exec" scripts/bench/noamx_exec.c
  WRAP=("$OUT/noamx_exec")
fi

# Build the harness (cargo builds libqorus.so and compiles the C program).
cargo test --release --test bench -- --ignored >/dev/null
OURS=target/release/c_tests/bench_generation
[ -x "$OURS" ] || { echo "harness not built"; exit 1; }

RAW="$OUT/compare-$(date +%Y%m%d-%H%M%S).tsv"
: >"$RAW"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$RAW.info"
echo "depth $DEPTH, pp $PP, tg $TG, KV cache $CACHE" | tee -a "$RAW.info"
for round in $(seq 1 "$ROUNDS"); do
  for model in "$@"; do
    name=$(basename "$model" .gguf)
    for t in $THREADS; do
      "$OURS" "$model" "$t" "$REPS" all "$DEPTH" "$CACHE" "$PP" "$TG" >"$OUT/ours.log" 2>&1 || { cat "$OUT/ours.log"; exit 1; }
      awk -v r="$round" -v m="$name" -v t="$t" \
        '/^RESULT (pp[0-9]+|tg[0-9]+|tg[0-9]+_(mb|gbs)|stream_gbs|stream_gbs_1t|load_ms|rss_mib) /{print r"\t"m"\t"t"\tours\t"$2"\t"$3}' \
        "$OUT/ours.log" >>"$RAW"
      # shellcheck disable=SC2086
      "${WRAP[@]}" "$LB" -m "$model" -d "$DEPTH" -p "$PP" -n "$TG" -ctk "$CACHE" -ctv "$CACHE" -t "$t" -r "$REPS" \
        -o jsonl ${LLAMA_ARGS:-} \
        >"$OUT/llama.log" 2>"$OUT/llama.err" || { tail -20 "$OUT/llama.err"; exit 1; }
      python3 - "$OUT/llama.log" "$round" "$name" "$t" >>"$RAW" <<'PY'
import json, sys
log, r, m, t = sys.argv[1:5]
for line in open(log):
    line = line.strip()
    if not line.startswith("{"):
        continue
    j = json.loads(line)
    test = f"pp{j['n_prompt']}" if j["n_gen"] == 0 else f"tg{j['n_gen']}"
    print(f"{r}\t{m}\t{t}\tllama\t{test}\t{j['avg_ts']:.3f}")
PY
      echo "round $round $name t=$t done ($(cut -d' ' -f1 /proc/loadavg))" >&2
    done
  done
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$RAW.info"

python3 - "$RAW" <<'PY'
import sys, statistics as st
from collections import defaultdict
v = defaultdict(list)
for line in open(sys.argv[1]):
    r, m, t, who, what, x = line.rstrip("\n").split("\t")
    v[(m, int(t), who, what)].append(float(x))
keys = sorted({(m, t) for (m, t, _, _) in v})
n = max(len(x) for x in v.values())
print(f"\nmedians of {n} alternating rounds (tokens/s; raw: {sys.argv[1]})")
print(f"| model | threads | test | qorus | llama.cpp | ratio |")
print(f"|---|---:|---|---:|---:|---:|")
tests = sorted({w for (_, _, who, w) in v if w[:2] in ("pp", "tg") and w[2:].isdigit()},
               key=lambda w: (w[:2], int(w[2:])))
for m, t in keys:
    for what in tests:
        a, b = v.get((m, t, "ours", what)), v.get((m, t, "llama", what))
        if a and b:
            print(f"| {m} | {t} | {what} | {st.median(a):.1f} | {st.median(b):.1f} | {st.median(a) / st.median(b):.2f} |")
    for what in ("load_ms", "rss_mib"):
        a = v.get((m, t, "ours", what))
        if a:
            print(f"<!-- {m} t={t} ours {what}: median {st.median(a):.1f} -->")
rows = []
for m, t in keys:
    s1, sn = v.get((m, t, "ours", "stream_gbs_1t")), v.get((m, t, "ours", "stream_gbs"))
    for what in tests:
        mb, g = v.get((m, t, "ours", what + "_mb")), v.get((m, t, "ours", what + "_gbs"))
        if mb and g:
            sg = f"{st.median(s1):.1f} / {st.median(sn):.1f}" if s1 and sn else "-"
            pct = f"{100 * st.median(g) / st.median(sn):.0f} %" if sn else "-"
            rows.append(f"| {m} | {t} | {what} | {st.median(mb):.1f} | {st.median(g):.1f} | {sg} | {pct} |")
if rows:
    print(f"\nqorus decode read bandwidth (medians; MB read per token = weights + KV cache at the mean depth;")
    print(f"stream = the harness's read kernel, 1 / THREADS threads, same runs)")
    print(f"| model | threads | test | MB/token | GB/s | stream GB/s (1 / t) | of stream |")
    print(f"|---|---:|---|---:|---:|---:|---:|")
    print("\n".join(rows))
PY
