#!/usr/bin/env python3
"""A small random-weight LLaMA whose widths are multiples of 256, as an F16 GGUF, so that
llama-quantize's K-quant mixes quantize every matrix with the K-quant types themselves (SmolLM2's
rows of 576 make llama.cpp fall back to Q5_0/Q8_0 per tensor).

    python3 scripts/reference/make_portable_random_llama.py --tokenizer-from SmolLM2-135M-Instruct.Q4_1.gguf OUT.gguf

Shape: dim 512, hidden 1536, 4 layers, 8 query heads and 4 KV heads of 64, RoPE base 10000, RMSNorm
eps 1e-5, an untied output.weight; the vocabulary (and every `tokenizer.*` metadata key, copied byte
for byte) is SmolLM2's, so that llama.cpp and qorus tokenize the reference prompts as for SmolLM2.

Deterministic and portable: the weights come from splitmix64 (integer arithmetic) mapped to uniform
values with IEEE float64 operations only (no log/cos), rounded to F16 (matrices) or F32 (norm gains),
and the GGUF bytes are written here (no gguf-py), so the file's sha256 is the same on every machine
with any numpy. Only numpy is needed, which is why the tests derive this model rather than the one
of scripts/reference/make_random_llama.py (the quantizer comparison's: 2 KV heads, Gaussian weights
with outliers and edge blocks, written with gguf-py, whose bytes depend on numpy's and gguf-py's
versions).
"""
import argparse
import hashlib
import itertools
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from numpy_forward import Reader  # noqa: E402

DIM, HIDDEN, LAYERS, HEADS, KV_HEADS = 512, 1536, 4, 8, 4
HEAD_DIM = DIM // HEADS
ROPE_BASE, EPS, CONTEXT = 10000.0, 1e-5, 2048
SEED = 0x5EED_1A3A
ALIGN = 32

GGML_F32, GGML_F16 = 0, 1
MASK64 = (1 << 64) - 1


def splitmix64(seed: int, n: int) -> np.ndarray:
    """The first n outputs of splitmix64 started at `seed` (uint64; array arithmetic wraps)."""
    with np.errstate(over="ignore"):
        z = (np.uint64(seed) + np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform(seed: int, n: int) -> np.ndarray:
    """n values uniform in (0, 1): (top 24 bits + 0.5) / 2^24, exact in float64."""
    return ((splitmix64(seed, n) >> np.uint64(40)).astype(np.float64) + 0.5) / float(1 << 24)


def matrix(seed: int, rows: int, cols: int, std: float) -> np.ndarray:
    """[rows, cols] F16, uniform with standard deviation `std`."""
    u = uniform(seed, rows * cols)
    return ((2.0 * u - 1.0) * (np.sqrt(3.0) * std)).astype(np.float16).reshape(rows, cols)


def gains(seed: int, n: int) -> np.ndarray:
    return (0.7 + 0.6 * uniform(seed, n)).astype(np.float32)


def gguf_string(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


def kv(key: str, ty: int, payload: bytes) -> bytes:
    return gguf_string(key.encode()) + struct.pack("<I", ty) + payload


def tokenizer_kvs(path: str):
    """The raw bytes of every `tokenizer.*` key-value pair of a GGUF file, in file order."""
    import mmap

    with open(path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if data[:4] != b"GGUF":
        raise SystemExit(f"{path}: not a GGUF file")
    r = Reader(data)
    r.o = 8
    r.take("<Q")  # n_tensors
    n_kv = r.take("<Q")
    out = []
    for _ in range(n_kv):
        start = r.o
        key = r.string().decode()
        r.value(r.take("<I"))
        if key.startswith("tokenizer."):
            out.append((key, bytes(data[start:r.o])))
    n_vocab = None
    for key, raw in out:
        if key == "tokenizer.ggml.tokens":
            n_vocab = struct.unpack_from("<Q", raw, 8 + len(key) + 4 + 4)[0]
    if not n_vocab:
        raise SystemExit(f"{path}: no tokenizer.ggml.tokens")
    return out, int(n_vocab)


def tensors(n_vocab: int):
    """(name, array) in file order; matrices are [out, in] (rows x cols)."""
    d, h, kvd = DIM, HIDDEN, KV_HEADS * HEAD_DIM
    isq = lambda n: 1.0 / np.sqrt(n)  # noqa: E731
    seed = itertools.count(SEED, 1_000_003)  # one seed per tensor
    out = [("token_embd.weight", matrix(next(seed), n_vocab, d, 1.0))]
    for l in range(LAYERS):
        n = lambda s: f"blk.{l}.{s}.weight"  # noqa: E731
        out += [
            (n("attn_norm"), gains(next(seed), d)),
            # q and k a little larger so that the attention is far from uniform
            (n("attn_q"), matrix(next(seed), d, d, 1.5 * isq(d))),
            (n("attn_k"), matrix(next(seed), kvd, d, 1.5 * isq(d))),
            (n("attn_v"), matrix(next(seed), kvd, d, isq(d))),
            (n("attn_output"), matrix(next(seed), d, d, isq(d))),
            (n("ffn_norm"), gains(next(seed), d)),
            (n("ffn_gate"), matrix(next(seed), h, d, isq(d))),
            (n("ffn_up"), matrix(next(seed), h, d, isq(d))),
            (n("ffn_down"), matrix(next(seed), d, h, isq(h))),
        ]
    out += [("output_norm.weight", gains(next(seed), d)),
            ("output.weight", matrix(next(seed), n_vocab, d, 3.0 * isq(d)))]
    return out


def write(path: str, tokenizer_from: str) -> str:
    tok, n_vocab = tokenizer_kvs(tokenizer_from)
    u32 = lambda v: struct.pack("<I", 4) + struct.pack("<I", v)  # noqa: E731  type 4 = u32
    f32 = lambda v: struct.pack("<I", 6) + struct.pack("<f", v)  # noqa: E731  type 6 = f32
    meta = [
        kv("general.architecture", 8, gguf_string(b"llama")),
        kv("general.name", 8, gguf_string(b"qorus random llama d512")),
        kv("general.file_type", 4, struct.pack("<I", 1)),  # MOSTLY_F16
        gguf_string(b"llama.context_length") + u32(CONTEXT),
        gguf_string(b"llama.embedding_length") + u32(DIM),
        gguf_string(b"llama.feed_forward_length") + u32(HIDDEN),
        gguf_string(b"llama.block_count") + u32(LAYERS),
        gguf_string(b"llama.attention.head_count") + u32(HEADS),
        gguf_string(b"llama.attention.head_count_kv") + u32(KV_HEADS),
        gguf_string(b"llama.rope.dimension_count") + u32(HEAD_DIM),
        gguf_string(b"llama.rope.freq_base") + f32(ROPE_BASE),
        gguf_string(b"llama.attention.layer_norm_rms_epsilon") + f32(EPS),
    ] + [raw for _, raw in tok]
    ts = tensors(n_vocab)
    infos, blobs, off = [], [], 0
    for name, a in ts:
        ty = GGML_F16 if a.dtype == np.float16 else GGML_F32
        dims = list(reversed(a.shape))  # ggml order: innermost first
        infos.append(gguf_string(name.encode()) + struct.pack("<I", len(dims))
                     + b"".join(struct.pack("<Q", x) for x in dims) + struct.pack("<IQ", ty, off))
        b = a.astype("<f2" if ty == GGML_F16 else "<f4").tobytes()
        b += b"\0" * (-len(b) % ALIGN)
        blobs.append(b)
        off += len(b)
    head = b"GGUF" + struct.pack("<IQQ", 3, len(ts), len(meta)) + b"".join(meta) + b"".join(infos)
    head += b"\0" * (-len(head) % ALIGN)
    h = hashlib.sha256()
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        for b in [head] + blobs:
            f.write(b)
            h.update(b)
    os.replace(tmp, path)
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer-from", required=True, help="GGUF whose tokenizer.* metadata to copy (SmolLM2)")
    ap.add_argument("out")
    a = ap.parse_args()
    digest = write(a.out, a.tokenizer_from)
    print(f"wrote {a.out} ({os.path.getsize(a.out)} bytes), sha256 {digest}")


if __name__ == "__main__":
    main()
