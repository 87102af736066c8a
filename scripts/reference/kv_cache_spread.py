#!/usr/bin/env python3
"""How far a reduced-precision KV cache moves the logits, in qorus and in llama.cpp.

Runs the prompts of a reference file (plus one long prompt made of them, past several attention
tiles) through llama.cpp with an F32 and an F16 KV cache (flash attention off and on), and through
qorus with F32, F16 and Q8_0 caches (examples/kv_logits.rs), and prints per pair of runs the
largest |dlogit| over every position and the whole vocabulary, the mean |dlogit|, the mean KL
divergence and the top-1 agreement. The table goes to tests/data/README.md.

    cargo build --release --example kv_logits
    scripts/reference/kv_cache_spread.py MODEL.gguf tests/data/reference/logits_Q4_0.bin
"""
import argparse
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llamacpp_tool  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def prompts_of(reference):
    b = open(reference, "rb").read()
    assert b[:4] == b"QRLG"
    nv, n_prompts, k = struct.unpack_from("<III", b, 8)
    table = [struct.unpack_from("<II", b, 96 + 8 * i) for i in range(n_prompts)]
    off = 96 + 8 * n_prompts
    out = []
    for nt, nf in table:
        out.append(list(struct.unpack_from(f"<{nt}i", b, off)))
        off += 4 * nt + 4 * nf + 4 * nf * nv + 8 * nt * k
    return nv, out


def qorus_logits(model, ty, prompts, nv):
    exe = os.path.join(ROOT, "target", "release", "examples", "kv_logits")
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "l.f32")
        text = "".join(" ".join(str(t) for t in p) + "\n" for p in prompts)
        subprocess.run([exe, model, ty, out], input=text.encode(), check=True)
        return np.fromfile(out, dtype="<f4").reshape(-1, nv)


def stats(a, b):
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    la = a - a.max(axis=1, keepdims=True)
    lb = b - b.max(axis=1, keepdims=True)
    la = la - np.log(np.exp(la.astype(np.float64)).sum(axis=1, keepdims=True))
    lb = lb - np.log(np.exp(lb.astype(np.float64)).sum(axis=1, keepdims=True))
    kl = (np.exp(la) * (la - lb)).sum(axis=1).clip(min=0)
    top1 = (a.argmax(axis=1) == b.argmax(axis=1)).mean()
    return d.max(), d.mean(), kl.mean(), top1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("reference")
    ap.add_argument("--long", type=int, default=480, help="length of the long prompt")
    a = ap.parse_args()
    nv, prompts = prompts_of(a.reference)
    flat = [t for p in prompts for t in p]
    long = (flat * (a.long // max(1, len(flat)) + 1))[: a.long]
    prompts = prompts + [long]
    n = sum(len(p) for p in prompts)
    print(f"{len(prompts)} prompts ({n} positions, the longest {len(long)}), model {os.path.basename(a.model)}")
    runs = {}
    for flash in (False, True):
        for f32 in (True, False):
            rows = llamacpp_tool.logits(a.model, prompts, nv, n_batch=512, flash=flash, kv_f32=f32)
            runs[f"llama.cpp {'f32' if f32 else 'f16'} fa{int(flash)}"] = np.concatenate(rows)
    for ty in ("f32", "f16", "q8_0"):
        runs[f"qorus {ty}"] = qorus_logits(a.model, ty, prompts, nv)
    pairs = [
        ("llama.cpp f16 fa0", "llama.cpp f32 fa0"),
        ("llama.cpp f16 fa1", "llama.cpp f32 fa1"),
        ("llama.cpp f32 fa1", "llama.cpp f32 fa0"),
        ("qorus f16", "qorus f32"),
        ("qorus q8_0", "qorus f32"),
        ("qorus f32", "llama.cpp f32 fa0"),
        ("qorus f16", "llama.cpp f16 fa1"),
    ]
    print("| run | against | max abs dlogit | mean abs dlogit | mean KLD | top-1 agreement |")
    print("|---|---|---:|---:|---:|---:|")
    for x, y in pairs:
        mx, mean, kl, top1 = stats(runs[x], runs[y])
        print(f"| {x} | {y} | {mx:.4f} | {mean:.5f} | {kl:.2e} | {100 * top1:.1f} % |")


if __name__ == "__main__":
    main()
