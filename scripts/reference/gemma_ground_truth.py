#!/usr/bin/env python3
"""Gemma 3 270M: qorus and llama.cpp against the float64 ground truth (numpy_forward.py), on the prompts of
tests/data/reference/logits_gemma3_270m.bin.

    cargo build --release --example kv_logits
    python3 scripts/reference/gemma_ground_truth.py ~/.cache/qorus/models/gemma-3-270m-q4_k_m.gguf

The truth runs the file's own dequantized weights in float64 (no activation quantization, exact sums).
llama.cpp runs as the reference file was made (one batch per prompt, n_ctx 1024, F32 KV cache); qorus through
examples/kv_logits.rs (one prefill per prompt, F32 KV cache; equal to token by token bit for bit). Printed per
prompt and overall: KL(truth || x) over the whole vocabulary (mean, max), top-1 agreement with the truth, and
KL(llama.cpp || qorus); then llama.cpp token by token, with flash attention and with an F16 KV cache against the
truth. Needs ~4 GB of memory and a few minutes on two cores.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import llamacpp_tool  # noqa: E402
import numpy_forward  # noqa: E402
import refdata  # noqa: E402

ROOT = os.path.join(HERE, "..", "..")
N_CTX = 1024
NAMES = ["short_fact", "prose", "chat", "code", "french", "cjk", "long_over_window"]


def log_softmax(x):
    x = np.asarray(x, np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def kld(p, q):
    lp, lq = log_softmax(p), log_softmax(q)
    return float(np.maximum(0.0, (np.exp(lp) * (lp - lq)).sum(-1)))


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    model = sys.argv[1]
    ref = refdata.read_logits(os.path.join(ROOT, "tests", "data", "reference", "logits_gemma3_270m.bin"))
    prompts = [[int(x) for x in p.tokens] for p in ref.prompts]
    nv = ref.n_vocab
    kv_logits = os.path.join(ROOT, "target", "release", "examples", "kv_logits")
    if not os.access(kv_logits, os.X_OK):
        sys.exit(f"{kv_logits} missing: cargo build --release --example kv_logits")
    with tempfile.TemporaryDirectory() as d:
        meta, t = numpy_forward.read_gguf(model)
        c = numpy_forward.Config(meta, t)
        with open(os.path.join(d, "truth.f64"), "wb") as f:
            numpy_forward.forward_many(c, t, prompts, f)
        del t
        truth = np.memmap(os.path.join(d, "truth.f64"), "<f8", mode="r").reshape(-1, nv)
        llama = np.concatenate([llamacpp_tool.logits(model, [p], nv, n_batch=N_CTX, n_ctx=N_CTX)[0]
                                for p in prompts])
        subprocess.run([kv_logits, model, "f32", os.path.join(d, "qorus.f32")], check=True,
                       input="".join(" ".join(map(str, p)) + "\n" for p in prompts).encode())
        qorus = np.memmap(os.path.join(d, "qorus.f32"), "<f4", mode="r").reshape(-1, nv)
        o = 0
        tot = {"l": [], "q": [], "lq": [], "lt1": 0, "qt1": 0}
        for name, p in zip(NAMES, prompts):
            kl_l, kl_q, kl_lq = [], [], []
            for i in range(o, o + len(p)):
                kl_l.append(kld(truth[i], llama[i]))
                kl_q.append(kld(truth[i], qorus[i]))
                kl_lq.append(kld(llama[i], qorus[i]))
                tot["lt1"] += int(llama[i].argmax() == truth[i].argmax())
                tot["qt1"] += int(qorus[i].argmax() == truth[i].argmax())
            print(f"{name:16s} {len(p):3d} positions: KL(truth||llama.cpp) mean {np.mean(kl_l):.2e} max "
                  f"{np.max(kl_l):.2e} | KL(truth||qorus) mean {np.mean(kl_q):.2e} max {np.max(kl_q):.2e} | "
                  f"KL(llama.cpp||qorus) mean {np.mean(kl_lq):.2e} max {np.max(kl_lq):.2e}")
            tot["l"] += kl_l
            tot["q"] += kl_q
            tot["lq"] += kl_lq
            o += len(p)
        for who, k, t1 in (("llama.cpp", "l", "lt1"), ("qorus", "q", "qt1")):
            print(f"{who:9s} against float64 over {o} positions: KLD mean {np.mean(tot[k]):.3e}, max "
                  f"{np.max(tot[k]):.3e}; top-1 {100 * tot[t1] / o:.2f} %")
        print(f"qorus against llama.cpp: KLD mean {np.mean(tot['lq']):.3e}, max {np.max(tot['lq']):.3e}")
        del llama, qorus
        # llama.cpp's other valid configurations against the truth (how far llama.cpp itself strays).
        for name, kw in (("token by token", dict(n_batch=1)), ("flash attention", dict(n_batch=N_CTX, flash=True)),
                         ("F16 KV cache", dict(n_batch=N_CTX, kv_f32=False))):
            rows = np.concatenate([llamacpp_tool.logits(model, [p], nv, n_ctx=N_CTX, **kw)[0] for p in prompts])
            k = [kld(truth[i], rows[i]) for i in range(o)]
            t1 = sum(int(rows[i].argmax() == truth[i].argmax()) for i in range(o))
            print(f"llama.cpp {name} against float64: KLD mean {np.mean(k):.3e}, max {np.max(k):.3e}; "
                  f"top-1 {100 * t1 / o:.2f} %", flush=True)
            del rows
        del truth


if __name__ == "__main__":
    main()
