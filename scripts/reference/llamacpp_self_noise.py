#!/usr/bin/env python3
"""How far llama.cpp is from itself: recomputes a reference file's logits with llama.cpp run
differently (flash attention on, F16 KV cache, or another batch size) and prints the same
statistics as c_tests/reference_logits.c (KLD on the full vocabulary at the stored positions, KLD
on the reference's top-k at every position, top-1 agreement, max |dlogit| on the top-k).

    scripts/reference/llamacpp_self_noise.py MODEL.gguf tests/data/reference/logits_<V>.bin [--flash] [--n-batch N]

Quantized models put every activation through an 8-bit rounding before each matrix product, so a
different but equally valid order of float additions (flash attention's, or another engine's)
flips some roundings and moves the logits; this script measures that floor for llama.cpp itself.
"""
import argparse
import struct
import sys

import numpy as np
from llama_cpp import Llama


def kld(p_logits, q_logits):
    p = p_logits - p_logits.max()
    q = q_logits - q_logits.max()
    lp = p - np.log(np.exp(p.astype(np.float64)).sum())
    lq = q - np.log(np.exp(q.astype(np.float64)).sum())
    return max(0.0, float((np.exp(lp) * (lp - lq)).sum()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("reference")
    ap.add_argument("--flash", action="store_true")
    ap.add_argument("--n-batch", type=int, default=512)
    a = ap.parse_args()
    b = open(a.reference, "rb").read()
    assert b[:4] == b"QRLG"
    nv, n_prompts, k = struct.unpack_from("<III", b, 8)
    table = [struct.unpack_from("<II", b, 96 + 8 * i) for i in range(n_prompts)]
    off = 96 + 8 * n_prompts
    llm = Llama(model_path=a.model, n_ctx=512, n_batch=a.n_batch, n_ubatch=a.n_batch, n_threads=2,
                logits_all=True, verbose=False, type_k=0, type_v=0, flash_attn=a.flash)
    kf, kt, top1, n, dmax = [], [], 0, 0, 0.0
    for nt, nf in table:
        toks = list(struct.unpack_from(f"<{nt}i", b, off)); off += 4 * nt
        fpos = list(struct.unpack_from(f"<{nf}I", b, off)); off += 4 * nf
        full = np.frombuffer(b, "<f4", nf * nv, off).reshape(nf, nv); off += 4 * nf * nv
        ids = np.frombuffer(b, "<i4", nt * k, off).reshape(nt, k); off += 4 * nt * k
        vals = np.frombuffer(b, "<f4", nt * k, off).reshape(nt, k); off += 4 * nt * k
        llm.reset()
        llm.eval(toks)
        sc = np.array(llm.scores[:nt], dtype=np.float32)
        for t in range(nt):
            top1 += int(np.argmax(sc[t]) == ids[t][0]); n += 1
            kt.append(kld(vals[t].astype(np.float64), sc[t][ids[t]].astype(np.float64)))
            dmax = max(dmax, float(np.abs(sc[t][ids[t]] - vals[t]).max()))
        for j, p in enumerate(fpos):
            kf.append(kld(full[j].astype(np.float64), sc[p].astype(np.float64)))
    print(f"llama.cpp (flash={a.flash}, n_batch={a.n_batch}) vs {a.reference}: {n} positions")
    print(f"  max |dlogit| on top-{k}: {dmax:.5f}")
    print(f"  KLD full vocabulary: mean {np.mean(kf):.3e}, max {np.max(kf):.3e}")
    print(f"  KLD on top-{k}:        mean {np.mean(kt):.3e}, max {np.max(kt):.3e}")
    print(f"  top-1 agreement: {100.0 * top1 / n:.2f} %")


if __name__ == "__main__":
    sys.exit(main())
