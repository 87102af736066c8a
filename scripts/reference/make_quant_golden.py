#!/usr/bin/env python3
"""Golden bytes for qorus's quantizers, made by llama.cpp's own `llama-quantize` (0c1e570).

Writes tests/data/quant_golden/:
  input.f32        16 rows x 256 f32 (little-endian): edge rows (all zero, constant positive,
                   constant negative, tiny values, an outlier, zero sub-blocks, all positive) and
                   Gaussian rows of scales 1e-4 .. 1e2 with offsets; seeded, so reproducible.
  <type>.bin       the same rows quantized by llama-quantize --pure to <type>, for Q5_0, Q5_1,
                   Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS (the tensor's bytes, nothing else).

The rows are the tensor `blk.0.attn_q.weight` of a tiny one-layer LLaMA GGUF (F32) given to
`llama-quantize --pure IN OUT TYPE`; no importance matrix. src/quant/golden_tests.rs quantizes
input.f32 with qorus and compares byte for byte.

  python3 scripts/reference/make_quant_golden.py [--llama-quantize PATH] [--out DIR]
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

try:
    import gguf
except ImportError:
    raise SystemExit("needs the gguf package: pip install gguf")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLS, ROWS = 256, 16
# llama-quantize type name, ggml type id, block length, block bytes
TYPES = [("Q5_0", 6, 32, 22), ("Q5_1", 7, 32, 24), ("Q2_K", 10, 256, 84), ("Q3_K", 11, 256, 110),
         ("Q4_K", 12, 256, 144), ("Q5_K", 13, 256, 176), ("Q6_K", 14, 256, 210),
         ("IQ4_NL", 20, 32, 18), ("IQ4_XS", 23, 256, 136)]


def rows(rng):
    x = np.zeros((ROWS, COLS), dtype=np.float32)
    x[0] = 0.0
    x[1] = 0.5
    x[2] = -0.25
    x[3] = rng.standard_normal(COLS) * 1e-9  # tiny: f16 scales underflow
    x[4] = rng.standard_normal(COLS) * 0.02
    x[4, 77] = 1.5  # one outlier
    x[5] = rng.standard_normal(COLS)
    x[5, ::32] = 0.0
    x[5, 64:128] = 0.0  # zero sub-blocks among non-zero ones
    x[5, 160:176] = 0.125  # a constant 16-group
    x[6] = rng.uniform(0.0, 1.0, COLS)  # all positive (min > 0)
    x[7] = -rng.uniform(0.1, 1.0, COLS)  # all negative
    for i in range(8, ROWS):
        scale = 10.0 ** rng.uniform(-4, 2)
        x[i] = rng.standard_normal(COLS) * scale + rng.uniform(-1, 1) * scale
        x[i, rng.integers(0, COLS, 3)] *= 8.0
    return x.astype(np.float32)


def read_tensor(path, name, ty, blk, size):
    r = gguf.GGUFReader(path)
    for t in r.tensors:
        if t.name == name:
            if int(t.tensor_type) != ty:
                raise SystemExit(f"{path}: {name} is type {t.tensor_type}, expected {ty}")
            data = np.asarray(t.data).view(np.uint8).reshape(-1).tobytes()
            expected = ROWS * COLS // blk * size
            if len(data) != expected:
                raise SystemExit(f"{path}: {len(data)} bytes, expected {expected}")
            return data
    raise SystemExit(f"{path}: no tensor {name}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-quantize", default=os.environ.get("LLAMA_QUANTIZE") or os.path.expanduser(
        "~/.cache/qorus/llama.cpp/build-0.3.36/bin/llama-quantize"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/data/quant_golden"))
    ap.add_argument("--seed", type=int, default=2026)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    x = rows(np.random.default_rng(a.seed))
    with open(os.path.join(a.out, "input.f32"), "wb") as f:
        f.write(x.astype("<f4").tobytes())

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "tiny.gguf")
        w = gguf.GGUFWriter(src, "llama")
        w.add_block_count(1)
        w.add_context_length(64)
        w.add_embedding_length(COLS)
        w.add_feed_forward_length(COLS)
        w.add_head_count(4)
        w.add_head_count_kv(4)
        w.add_rope_dimension_count(COLS // 4)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_file_type(0)
        w.add_tensor("blk.0.attn_norm.weight", np.ones(COLS, dtype=np.float32))
        w.add_tensor("blk.0.attn_q.weight", x)  # numpy (rows, cols) = ggml ne [256, 16]
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        for name, ty, blk, size in TYPES:
            dst = os.path.join(tmp, f"tiny.{name}.gguf")
            r = subprocess.run([a.llama_quantize, "--pure", src, dst, name, "1"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if r.returncode != 0:
                sys.exit(f"llama-quantize {name} failed:\n{r.stdout[-3000:]}")
            data = read_tensor(dst, "blk.0.attn_q.weight", ty, blk, size)
            with open(os.path.join(a.out, f"{name.lower()}.bin"), "wb") as f:
                f.write(data)
            print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
