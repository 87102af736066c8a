#!/usr/bin/env python3
"""The K-quant / IQ4 test models of issue 12, made with llama.cpp's own llama-quantize (no importance
matrix, default mixes, 2 threads), and their digests:

  SmolLM2-135M-Instruct.F16.gguf (qorus's pinned F16, see tests/data/README.md) ->
      Q4_K_M, Q5_K_M, Q6_K, Q3_K_M, Q2_K, IQ4_XS
  random-llama-d512.F16.gguf (scripts/reference/make_portable_random_llama.py) -> Q4_K_M, Q6_K

    python3 scripts/reference/make_kquant_variants.py F16_DIR OUT_DIR

F16_DIR holds SmolLM2-135M-Instruct.F16.gguf (`cargo test --release --test models` derives it in the
model directory); the random model's F16 is written to OUT_DIR. Prints, per file, its sha256, its
tensor digest (below) and the tensor types it holds; tests/common/mod.rs pins both.

Tensor digest: sha256 over the tensors sorted by name (bytewise; llama-quantize writes them sorted
by layer, qorus in its input's order), each as its name (UTF-8), one 0 byte, the ggml
type (u32 LE), the number of dimensions (u32 LE), each dimension (u64 LE, innermost first) and its
data bytes (without alignment padding). It covers exactly what scripts/compare_quantize_with_llamacpp.py
compares (types, shapes, data) and not the metadata, which a quantizer other than llama.cpp writes
in its own way.
"""
import argparse
import collections
import hashlib
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ggml_dequant  # noqa: E402
import llamacpp_tool  # noqa: E402
from numpy_forward import read_gguf  # noqa: E402

SMOL = "SmolLM2-135M-Instruct"
RANDOM = "random-llama-d512"
SMOL_MIXES = ["Q4_K_M", "Q5_K_M", "Q6_K", "Q3_K_M", "Q2_K", "IQ4_XS"]
RANDOM_MIXES = ["Q4_K_M", "Q6_K"]


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def tensor_digest(path: str):
    """(digest, {type name: tensor count})"""
    _, tensors = read_gguf(path)
    h = hashlib.sha256()
    types = collections.Counter()
    for name in sorted(tensors, key=lambda n: n.encode()):
        ty, dims, raw = dict.__getitem__(tensors, name)
        h.update(name.encode() + b"\0" + struct.pack("<II", ty, len(dims)))
        h.update(b"".join(struct.pack("<Q", d) for d in dims))
        h.update(raw.tobytes())
        types[ggml_dequant.type_name(ty)] += 1
    return h.hexdigest(), dict(sorted(types.items()))


def quantize(src: str, dst: str, mix: str) -> None:
    r = subprocess.run([llamacpp_tool.quantize_exe(), src, dst, mix, "2"], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"llama-quantize {mix} failed:\n{r.stdout}{r.stderr}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("f16_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--tokenizer-from", help="SmolLM2 GGUF for the random model's tokenizer "
                                             "(default: the F16 in F16_DIR)")
    a = ap.parse_args()
    os.makedirs(a.out_dir, exist_ok=True)
    smol_f16 = os.path.join(a.f16_dir, f"{SMOL}.F16.gguf")
    rnd_f16 = os.path.join(a.out_dir, f"{RANDOM}.F16.gguf")
    subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "make_portable_random_llama.py"),
                    "--tokenizer-from", a.tokenizer_from or smol_f16, rnd_f16], check=True)
    jobs = [(smol_f16, SMOL, m) for m in SMOL_MIXES] + [(rnd_f16, RANDOM, m) for m in RANDOM_MIXES]
    print(f"{'file':40s} {'sha256':64s} {'tensor digest':64s} types")
    for src, stem, mix in [(smol_f16, SMOL, "F16"), (rnd_f16, RANDOM, "F16")] + jobs:
        dst = os.path.join(a.out_dir, f"{stem}.{mix}.gguf")
        if mix != "F16":
            quantize(src, dst, mix)
        else:
            dst = src
        digest, types = tensor_digest(dst)
        print(f"{stem + '.' + mix:40s} {sha256_file(dst)} {digest} "
              + ", ".join(f"{k} {v}" for k, v in types.items()), flush=True)


if __name__ == "__main__":
    main()
