#!/usr/bin/env python3
"""llama.cpp reference logits for the random-weight family test models (tests/families.rs).

The models and their prompts are written by qorus's own GGUF writer (tests/family_models/mod.rs):

  QORUS_FAMILY_DIR=/tmp/fam cargo test --release --test families -- --ignored write_family_models

writes /tmp/fam/<name>.gguf and /tmp/fam/<name>.prompts.json (token ids). Then

  python3 scripts/reference/make_family_references.py /tmp/fam [--out-dir tests/data/reference/families]

runs every prompt through llama.cpp (its own build tree, scripts/reference/llamacpp_tool.py) as ONE batch with logits for every position, an F32 KV
cache, no flash attention, n_ctx 512 (so the Phi-3 model, whose original context is 128, uses its long RoPE
factors, as llama.cpp chooses them by context size), and writes logits_<name>.bin (format: tests/data/README.md,
full logits at the first, middle and last position, top-64 at every position) and SHA256SUMS (the models the
references were made from; the test checks its freshly written models against it).

It also measures llama.cpp against itself (the same prompts token by token instead of one batch) and prints the
spread per model: the tests' bounds come from it (tests/data/README.md).
"""
import argparse
import hashlib
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llamacpp_tool  # noqa: E402
import refdata  # noqa: E402

TOP_K = 64
N_CTX = 512
NAMES = ["llama3_ropefreqs_bias", "qwen2", "qwen3", "phi3", "gemma3"]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def n_vocab_of(path):
    import gguf

    r = gguf.GGUFReader(path)
    return len(r.fields["tokenizer.ggml.tokens"].data)


def softmax(x):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def kld(a, b):
    """KL(softmax(a) || softmax(b)) per row."""
    p, q = softmax(a), softmax(b)
    return (p * (np.log(p + 1e-300) - np.log(q + 1e-300))).sum(axis=-1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data",
                                                      "reference", "families"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    sums = []
    for name in NAMES:
        path = os.path.join(a.model_dir, f"{name}.gguf")
        prompts = json.load(open(os.path.join(a.model_dir, f"{name}.prompts.json")))
        sums.append(f"{sha256(path)}  {name}.gguf")
        n_vocab = n_vocab_of(path)
        batch_rows = llamacpp_tool.logits(path, prompts, n_vocab, n_batch=N_CTX, threads=a.threads, n_ctx=N_CTX)
        single_rows = llamacpp_tool.logits(path, prompts, n_vocab, n_batch=1, threads=a.threads, n_ctx=N_CTX)
        f = refdata.LogitsFile(name[:15], llamacpp_tool.GENERATOR, n_vocab, TOP_K, refdata.FLAG_KV_F32)
        for toks, batch in zip(prompts, batch_rows):
            n = len(toks)
            full_pos = sorted({n // 2, n - 1}) if n == max(len(p) for p in prompts) else [n - 1]
            ids, vals = refdata.top_k_of(batch, TOP_K)
            f.prompts.append(refdata.LogitsPrompt(np.array(toks, dtype=np.int32), np.array(full_pos, dtype=np.uint32),
                                                  batch[full_pos], ids, vals))
        b, s = np.concatenate(batch_rows), np.concatenate(single_rows)
        k = kld(b, s)
        top1 = (b.argmax(-1) == s.argmax(-1)).mean() * 100
        print(f"{name}: {len(b)} positions, llama.cpp batch vs token-by-token: max |dlogit| "
              f"{np.abs(b - s).max():.3g}, mean KLD {k.mean():.3g}, max KLD {k.max():.3g}, top-1 {top1:.2f} %")
        out = os.path.join(a.out_dir, f"logits_{name}.bin")
        refdata.write_logits(out, f)
        print(f"  wrote {out} ({os.path.getsize(out)} bytes)")
    with open(os.path.join(a.out_dir, "SHA256SUMS"), "w") as fh:
        fh.write("\n".join(sums) + "\n")


if __name__ == "__main__":
    main()
