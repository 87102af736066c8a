#!/usr/bin/env bash
# llama.cpp speed anchor: builds llama.cpp's tools from the llama-cpp-python sdist (pip download, kept in a
# cache directory outside the repository) and runs llama-bench and llama-batched-bench on the given models.
#
#   scripts/bench/llamacpp_bench.sh MODEL.gguf [MODEL.gguf ...]
#
# Environment:
#   LLAMACPP_PY_VERSION  llama-cpp-python sdist version (default 0.3.36)
#   LLAMACPP_CACHE       where the sdist goes (default ${XDG_CACHE_HOME:-~/.cache}/qorus/llama.cpp)
#   LLAMACPP_BUILD       build directory (default $LLAMACPP_CACHE/build-<version>); reused when it already
#                        holds bin/llama-bench
#   LLAMACPP_JOBS        build jobs (default 2)
#   BENCH_THREADS        -t list for llama-bench (default 1,2); BATCH_THREADS for batched-bench (default 2)
#   BENCH_REPS           -r for llama-bench (default 5)
#   BENCH_ONLY           "bench" or "batched" to run only one of the two, "none" to only build
#   LLAMA_BENCH_ARGS     replaces llama-bench's "-p 64,512 -n 64,128" (e.g. "-p 64 -n 64")
#
# The build: CMake Release, GGML_NATIVE=ON (-march=native), no curl/openssl/server/UI, targets llama-bench,
# llama-batched-bench, llama-quantize and llama-completion (llama-cli lives with the server in this
# llama.cpp version; it is built too when LLAMACPP_WITH_CLI=1 -- that path is untested). Needs cmake, ninja (pip install cmake ninja
# is fine) and a C/C++ compiler. Nothing of llama.cpp is written into the repository.
set -euo pipefail

VER="${LLAMACPP_PY_VERSION:-0.3.36}"
CACHE="${LLAMACPP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qorus/llama.cpp}"
BUILD="${LLAMACPP_BUILD:-$CACHE/build-$VER}"
JOBS="${LLAMACPP_JOBS:-2}"
BENCH_THREADS="${BENCH_THREADS:-1,2}"
BATCH_THREADS="${BATCH_THREADS:-2}"
REPS="${BENCH_REPS:-5}"
BENCH_ARGS="${LLAMA_BENCH_ARGS:--p 64,512 -n 64,128}"

if [ $# -lt 1 ]; then
    sed -n '2,20p' "$0"
    exit 2
fi

build() {
    mkdir -p "$CACHE"
    local src="$CACHE/llama_cpp_python-$VER"
    if [ ! -d "$src/vendor/llama.cpp" ]; then
        echo "== pip download llama-cpp-python==$VER (sdist) into $CACHE/sdist" >&2
        python3 -m pip download --no-deps --no-binary llama-cpp-python -d "$CACHE/sdist" "llama-cpp-python==$VER" >&2
        tar -xzf "$CACHE/sdist/llama_cpp_python-$VER.tar.gz" -C "$CACHE"
    fi
    local targets=(llama-bench llama-batched-bench llama-quantize llama-completion)
    local extra=(-DLLAMA_BUILD_SERVER=OFF)
    if [ "${LLAMACPP_WITH_CLI:-0}" = 1 ]; then
        targets+=(llama-cli)
        extra=(-DLLAMA_BUILD_SERVER=ON)
    fi
    echo "== building llama.cpp tools in $BUILD" >&2
    cmake -S "$src/vendor/llama.cpp" -B "$BUILD" -G Ninja \
        -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DBUILD_SHARED_LIBS=OFF \
        -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
        -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF "${extra[@]}" >&2
    cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}" >&2
}

if [ ! -x "$BUILD/bin/llama-bench" ] || [ ! -x "$BUILD/bin/llama-batched-bench" ]; then
    build
fi

echo "# date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# cpu: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cpus; flags: $(grep -o -w -E 'avx2|fma|avx512f|avx512bw|avx512_vnni|avx512vl' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "# llama.cpp: llama-cpp-python $VER sdist, $BUILD"
run_bench=1
run_batched=1
case "${BENCH_ONLY:-}" in
    bench) run_batched=0 ;;
    batched) run_bench=0 ;;
    none) run_bench=0; run_batched=0 ;;
esac
for model in "$@"; do
    echo
    echo "## $model ($(stat -c %s "$model") bytes)"
    if [ "$run_bench" = 1 ]; then
        echo "# load: $(uptime | sed 's/.*load average/load average/')"
        # shellcheck disable=SC2086
        echo "\$ llama-bench -m $model $BENCH_ARGS -t $BENCH_THREADS -r $REPS"
        # shellcheck disable=SC2086
        "$BUILD/bin/llama-bench" -m "$model" $BENCH_ARGS -t "$BENCH_THREADS" -r "$REPS"
    fi
    if [ "$run_batched" = 1 ]; then
        echo "# load: $(uptime | sed 's/.*load average/load average/')"
        echo "\$ llama-batched-bench -m $model -c 4096 -b 512 -ub 512 -npp 32 -ntg 64 -npl 1,2,4,8 -t $BATCH_THREADS"
        out=$("$BUILD/bin/llama-batched-bench" -m "$model" -c 4096 -b 512 -ub 512 -npp 32 -ntg 64 \
            -npl 1,2,4,8 -t "$BATCH_THREADS" 2>&1) || { echo "$out"; exit 1; }
        echo "$out" | grep -E '^\||^main: n_kv_max'
        echo
    fi
done
