#!/usr/bin/env python3
"""Gemma 3 270M: at every position where qorus's top-1 differs from llama.cpp's reference
(logits_gemma3_270m.bin) at a llama.cpp margin >= 0.5 (tests/gemma3.rs's misses), print what the float64
truth (numpy_forward.py on the file's dequantized weights) says.

    cargo build --release --example kv_logits
    python3 scripts/reference/gemma_truth_misses.py    # ~30 s, ~4 GB
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "scripts/reference"))
import numpy_forward, refdata
model = os.path.expanduser("~/.cache/qorus/models/gemma-3-270m-q4_k_m.gguf")
ref = refdata.read_logits(os.path.join(ROOT, "tests/data/reference/logits_gemma3_270m.bin"))
prompts = [[int(x) for x in p.tokens] for p in ref.prompts]
nv = ref.n_vocab
with tempfile.TemporaryDirectory() as d:
    meta, t = numpy_forward.read_gguf(model)
    c = numpy_forward.Config(meta, t)
    with open(os.path.join(d, "truth.f64"), "wb") as f:
        numpy_forward.forward_many(c, t, prompts, f)
    del t
    truth = np.fromfile(os.path.join(d, "truth.f64"), "<f8").reshape(-1, nv)
    kv = os.path.join(ROOT, "target/release/examples/kv_logits")
    subprocess.run([kv, model, "f32", os.path.join(d, "q.f32")], check=True, capture_output=True,
                   input="".join(" ".join(map(str, p)) + "\n" for p in prompts).encode())
    q = np.fromfile(os.path.join(d, "q.f32"), "<f4").reshape(-1, nv)
o = 0
for pi, p in enumerate(ref.prompts):
    for i in range(len(p.tokens)):
        ids, vals = p.top_ids[i], p.top_vals[i]
        margin = vals[0] - vals[1]
        qt = int(q[o + i].argmax())
        if qt != ids[0] and margin >= 0.5:
            tt = int(truth[o + i].argmax())
            ts = np.sort(truth[o + i])[::-1]
            print(f"prompt {pi} pos {i}: llama.cpp top-1 {ids[0]} (margin {margin:.3f}), qorus top-1 {qt} "
                  f"(qorus margin to llama's top {q[o+i][qt]-q[o+i][ids[0]]:.3f}), float64 top-1 {tt} "
                  f"(truth: llama's top {truth[o+i][ids[0]]:.3f}, qorus's top {truth[o+i][qt]:.3f}, truth margin {ts[0]-ts[1]:.3f})")
    o += len(p.tokens)
