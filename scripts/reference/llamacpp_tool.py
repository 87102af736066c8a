#!/usr/bin/env python3
"""llama.cpp through its own build tree (no llama-cpp-python): builds scripts/reference/llamacpp_logits.cpp
against llama.cpp's static libraries, runs it, and finds llama-quantize.

The build tree is $LLAMA_CPP_BUILD or ~/.cache/qorus/llama.cpp/build-0.3.36 (llama.cpp 0c1e570, the
one vendored in llama-cpp-python 0.3.36; its source is the `vendor/llama.cpp` beside it). Used by
make_reference_logits.py --llama-build, llamacpp_self_noise.py --llama-build, ground_truth.py and
make_kquant_variants.py.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GENERATOR = "llama.cpp 0c1e570 (llama-cpp-python 0.3.36)"


def build_dir() -> str:
    d = os.environ.get("LLAMA_CPP_BUILD") or os.path.expanduser("~/.cache/qorus/llama.cpp/build-0.3.36")
    if not os.path.isdir(d):
        raise SystemExit(f"llama.cpp build directory {d} not found (set LLAMA_CPP_BUILD)")
    return d


def source_dir() -> str:
    d = os.path.join(os.path.dirname(build_dir()), "llama_cpp_python-0.3.36", "vendor", "llama.cpp")
    if not os.path.isdir(d):
        raise SystemExit(f"llama.cpp source {d} not found")
    return d


def quantize_exe() -> str:
    p = os.path.join(build_dir(), "bin", "llama-quantize")
    if not os.access(p, os.X_OK):
        raise SystemExit(f"{p} is not built")
    return p


def logits_exe() -> str:
    """Builds (once, when older than its source) the logits tool next to the llama.cpp build."""
    return build_tool("llamacpp_logits")


def build_tool(name: str) -> str:
    """Builds (once, when older than its source) scripts/reference/<name>.cpp against llama.cpp's
    static libraries, next to the llama.cpp build; returns the executable."""
    src = os.path.join(HERE, f"{name}.cpp")
    b = build_dir()
    tools = os.path.join(os.path.dirname(b), "qorus-tools")  # beside the build tree, not in it
    os.makedirs(tools, exist_ok=True)
    exe = os.path.join(tools, name)
    libs = [os.path.join(b, p) for p in ("src/libllama.a", "ggml/src/libggml.a", "ggml/src/libggml-cpu.a",
                                          "ggml/src/libggml-base.a")]
    for lib in libs:
        if not os.path.isfile(lib):
            raise SystemExit(f"{lib} is not built")
    newest = max(os.path.getmtime(p) for p in libs + [src, os.path.join(HERE, "llamacpp_amx.h")])
    if os.path.isfile(exe) and os.path.getmtime(exe) >= newest:
        return exe
    s = source_dir()
    cmd = ["c++", "-std=c++17", "-O2", "-I", os.path.join(s, "include"), "-I", os.path.join(s, "ggml", "include"),
           src, "-o", exe] + libs + ["-fopenmp", "-lpthread", "-ldl", "-lm"]
    print("building", exe, file=sys.stderr)
    subprocess.run(cmd, check=True)
    return exe


def logits(model: str, prompts, n_vocab: int, n_batch: int = 512, flash: bool = False, kv_f32: bool = True,
           threads: int = 2, n_ctx: int = 512):
    """llama.cpp's logits at every position of every prompt (list of token-id lists): a list of
    float32 arrays [n_tokens, n_vocab]."""
    exe = logits_exe()
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "logits.f32")
        text = "".join(" ".join(str(int(t)) for t in p) + "\n" for p in prompts)
        r = subprocess.run([exe, model, out, str(n_batch), "1" if flash else "0", "f32" if kv_f32 else "f16",
                            str(threads), str(n_ctx)], input=text.encode(), capture_output=True)
        if r.returncode != 0:
            raise SystemExit(f"{exe} failed: {r.stderr.decode(errors='replace')}")
        a = np.fromfile(out, dtype="<f4")
    total = sum(len(p) for p in prompts)
    if a.size != total * n_vocab:
        raise SystemExit(f"llama.cpp wrote {a.size} values, expected {total} x {n_vocab}")
    a = a.reshape(total, n_vocab)
    rows, o = [], 0
    for p in prompts:
        rows.append(a[o:o + len(p)])
        o += len(p)
    return rows
