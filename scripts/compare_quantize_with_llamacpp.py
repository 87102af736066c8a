#!/usr/bin/env python3
"""Checks that `qorus quantize` writes the same tensors as llama.cpp's `llama-quantize` (0c1e570,
no importance matrix) for every file type qorus supports.

For each input model and each TYPE, the script runs `llama-quantize --allow-requantize IN OUT TYPE`
and `qorus quantize IN OUT TYPE` and compares the two files tensor by tensor (by name): the type,
the shape and the data bytes must be identical. Metadata and tensor order are not compared
(llama.cpp adds its own keys and writes tensors sorted by layer). It prints one line per TYPE:
"IDENTICAL" with the count of tensors of each type in the file, or the first difference (tensor,
types, first differing byte and its block).

Inputs:
  smollm2  SmolLM2-135M-Instruct F16 (MODEL_DIR/SmolLM2-135M-Instruct.F16.gguf, made from the Q4_1
           original with `qorus quantize ... f16` when missing). Rows of 576 are not multiples of
           256, so most K-quant tensors fall back to 32-blocks.
  random   a random-weight LLaMA with widths multiples of 256 (scripts/reference/make_random_llama.py,
           seed 12), where the K-quants and IQ4_XS are used as themselves.

Also (as before this script covered): the pinned test models -- SmolLM2 F16 against llama.cpp's F16
of the Q4_1 original, Q8_0 and pure Q4_0 against llama.cpp's from the F16 file -- and, through the
C library (libqorus.so) when found, `q_quantize_model` (pure Q4_1, default Q4_0/Q4_1 and Q4_K) and
`q_quantize_model_mix` (Q4_K_S, IQ4_XS) against llama-quantize.

Usage:
    python3 scripts/compare_quantize_with_llamacpp.py [--inputs smollm2,random] [--types Q4_K_M,...]
        [--model-dir DIR] [--llama-quantize PATH] [--qorus PATH] [--lib PATH] [--no-extra]

Defaults: MODEL_DIR = $QORUS_MODEL_DIR or ~/.cache/qorus/models; llama-quantize = $LLAMA_QUANTIZE or
~/.cache/qorus/llama.cpp/build-0.3.36/bin/llama-quantize; qorus = target/release/qorus; the library
= target/release/libqorus.so. Build first with `cargo build --release`.
Exit status 0 when every tensor of every comparison matches.
"""

import argparse
import collections
import ctypes
import mmap
import os
import struct
import subprocess
import sys
import tempfile

STEM = "SmolLM2-135M-Instruct"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ggml type id -> (name, block length, block bytes)
TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 10: ("Q2_K", 256, 84),
    11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210), 20: ("IQ4_NL", 32, 18), 23: ("IQ4_XS", 256, 136),
    30: ("BF16", 1, 2),
}

# every file type `qorus quantize` accepts, as llama-quantize names them
ALL_TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S",
             "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS"]


class Reader:
    """A minimal GGUF (v2/v3) reader: tensor directory and data, metadata skipped."""

    def __init__(self, path):
        self.f = open(path, "rb")
        self.m = mmap.mmap(self.f.fileno(), 0, access=mmap.ACCESS_READ)
        magic, version = struct.unpack_from("<4sI", self.m, 0)
        if magic != b"GGUF" or version not in (2, 3):
            raise ValueError(f"{path}: not a GGUF v2/v3 file")
        self.pos = 8
        n_tensors, n_kv = self.u64(), self.u64()
        alignment = 32
        for _ in range(n_kv):
            key = self.string()
            ty = self.u32()
            if key == b"general.alignment" and ty == 4:
                alignment = self.u32()
            elif key == b"general.alignment" and ty == 10:
                alignment = self.u64()
            else:
                self.skip_value(ty)
        infos = []
        for _ in range(n_tensors):
            name = self.string().decode()
            n_dims = self.u32()
            dims = [self.u64() for _ in range(n_dims)]
            ty = self.u32()
            off = self.u64()
            infos.append((name, dims, ty, off))
        data = (self.pos + alignment - 1) // alignment * alignment
        self.tensors = {}
        for name, dims, ty, off in infos:
            n = 1
            for d in dims:
                n *= d
            _, blk, size = TYPES[ty]
            self.tensors[name] = (dims, ty, data + off, n // blk * size)

    def u32(self):
        v = struct.unpack_from("<I", self.m, self.pos)[0]
        self.pos += 4
        return v

    def u64(self):
        v = struct.unpack_from("<Q", self.m, self.pos)[0]
        self.pos += 8
        return v

    def string(self):
        n = self.u64()
        s = self.m[self.pos: self.pos + n]
        self.pos += n
        return s

    def skip_value(self, ty):
        fixed = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
        if ty in fixed:
            self.pos += fixed[ty]
        elif ty == 8:
            self.string()
        elif ty == 9:
            elem = self.u32()
            for _ in range(self.u64()):
                self.skip_value(elem)
        else:
            raise ValueError(f"unknown GGUF value type {ty}")

    def data(self, name):
        _, _, off, nbytes = self.tensors[name]
        return self.m[off: off + nbytes]


def tname(ty):
    return TYPES.get(ty, (str(ty),))[0]


def first_difference(a, b, ty):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            _, blk, size = TYPES[ty]
            return f"first differing byte {i} (block {i // size}, byte {i % size} of {size})"
    return f"lengths {len(a)} vs {len(b)}"


def compare(ours_path, theirs_path):
    """(identical tensor count, total, Counter of types in llama.cpp's file, problems)."""
    ours, theirs = Reader(ours_path), Reader(theirs_path)
    problems = []
    if set(ours.tensors) != set(theirs.tensors):
        problems.append(
            f"tensor names differ: only qorus {sorted(set(ours.tensors) - set(theirs.tensors))}, "
            f"only llama.cpp {sorted(set(theirs.tensors) - set(ours.tensors))}")
    same = 0
    hist = collections.Counter(tname(t[1]) for t in theirs.tensors.values())
    # llama.cpp's order: by layer, then name
    def key(n):
        layer = int(n.split(".")[1]) if n.startswith("blk.") else -1
        return (layer, n)
    for name in sorted(set(ours.tensors) & set(theirs.tensors), key=key):
        od, ot, _, _ = ours.tensors[name]
        td, tt, _, _ = theirs.tensors[name]
        if od != td or ot != tt:
            problems.append(f"{name}: qorus {tname(ot)} {od}, llama.cpp {tname(tt)} {td}")
            continue
        a, b = ours.data(name), theirs.data(name)
        if a != b:
            diff = sum(1 for x, y in zip(a, b) if x != y)
            problems.append(f"{name} ({tname(ot)}): {diff} of {len(a)} bytes differ; "
                            + first_difference(a, b, ot))
            continue
        same += 1
    return same, len(theirs.tensors), hist, problems


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {r.returncode}:\n{r.stdout[-2000:]}")


class Checker:
    def __init__(self, llama_quantize, qorus):
        self.lq = llama_quantize
        self.qorus = qorus
        self.ok = True

    def llama(self, src, dst, ty, pure=False):
        run([self.lq, "--allow-requantize"] + (["--pure"] if pure else []) + [src, dst, ty, "2"])

    def ours(self, src, dst, ty, pure=False):
        run([self.qorus, "quantize", src, dst, ty.lower()] + (["--pure"] if pure else []))

    def report(self, label, ours, theirs):
        same, n, hist, problems = compare(ours, theirs)
        status = "IDENTICAL" if not problems else "DIFFERENT"
        types = ", ".join(f"{k} {v}" for k, v in sorted(hist.items()))
        print(f"{label}: {same}/{n} tensors identical [{types}] -> {status}", flush=True)
        for p in problems[:5]:
            print("   ", p, flush=True)
        if len(problems) > 5:
            print(f"    ... {len(problems) - 5} more", flush=True)
        self.ok &= not problems


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", default="smollm2,random")
    ap.add_argument("--types", default=",".join(ALL_TYPES))
    ap.add_argument("--model-dir", default=os.environ.get("QORUS_MODEL_DIR")
                    or os.path.expanduser("~/.cache/qorus/models"))
    ap.add_argument("--llama-quantize", default=os.environ.get("LLAMA_QUANTIZE") or os.path.expanduser(
        "~/.cache/qorus/llama.cpp/build-0.3.36/bin/llama-quantize"))
    ap.add_argument("--qorus", default=os.path.join(ROOT, "target/release/qorus"))
    ap.add_argument("--lib", default=os.path.join(ROOT, "target/release/libqorus.so"))
    ap.add_argument("--no-extra", action="store_true",
                    help="skip the pinned-model and C-library comparisons")
    a = ap.parse_args()
    for p, what in ((a.llama_quantize, "llama-quantize"), (a.qorus, "qorus")):
        if not os.path.exists(p):
            sys.exit(f"{what} not found at {p}")
    types = [t.strip().upper() for t in a.types.split(",") if t.strip()]
    c = Checker(a.llama_quantize, a.qorus)
    orig = os.path.join(a.model_dir, f"{STEM}.Q4_1.gguf")

    with tempfile.TemporaryDirectory() as tmp:
        inputs = []
        for name in a.inputs.split(","):
            if name == "smollm2":
                f16 = os.path.join(a.model_dir, f"{STEM}.F16.gguf")
                if not os.path.exists(f16):
                    f16 = os.path.join(tmp, f"{STEM}.F16.gguf")
                    c.ours(orig, f16, "F16", pure=True)
                inputs.append(("SmolLM2 F16", f16))
            elif name == "random":
                path = os.path.join(tmp, "random-llama.F16.gguf")
                run([sys.executable, os.path.join(ROOT, "scripts/reference/make_random_llama.py"),
                     path, "--smollm2", orig])
                inputs.append(("random LLaMA F16 (dim 512, ffn 1536, 4 layers)", path))
            else:
                sys.exit(f"unknown input {name}")

        for label, src in inputs:
            print(f"== {label}: {src}", flush=True)
            for ty in types:
                ours = os.path.join(tmp, f"qorus.{ty}.gguf")
                theirs = os.path.join(tmp, f"llamacpp.{ty}.gguf")
                c.ours(src, ours, ty)
                c.llama(src, theirs, ty)
                c.report(f"{ty:7s}", ours, theirs)
                os.remove(ours)
                os.remove(theirs)

        if not a.no_extra:
            extra(c, a, tmp, orig)
    print("all identical" if c.ok else "DIFFERENCES FOUND")
    sys.exit(0 if c.ok else 1)


def extra(c, a, tmp, orig):
    """The pinned test models and the C entry points."""
    print("== pinned test models and the C API", flush=True)
    f16 = os.path.join(a.model_dir, f"{STEM}.F16.gguf")
    if not os.path.exists(f16):
        print(f"{f16} not found: skipped (run `cargo test --release --test models` first)")
        return
    theirs = os.path.join(tmp, "llamacpp.F16.gguf")
    c.llama(orig, theirs, "F16", pure=True)
    c.report(f"F16 (pure) from {os.path.basename(orig)}", f16, theirs)
    for label in ("Q8_0", "Q4_0"):
        ours = os.path.join(a.model_dir, f"{STEM}.{label}.gguf")
        if not os.path.exists(ours):
            print(f"{ours} not found: skipped")
            continue
        theirs = os.path.join(tmp, f"llamacpp.{label}.gguf")
        c.llama(f16, theirs, label, pure=True)
        c.report(f"{label} (pure, pinned test model) from {os.path.basename(f16)}", ours, theirs)
    if not os.path.exists(a.lib):
        print(f"{a.lib} not found: skipped the q_quantize_model comparisons")
        return
    lib = ctypes.CDLL(a.lib)
    for fn in (lib.q_quantize_model, lib.q_quantize_model_mix):
        fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_bool]
        fn.restype = ctypes.c_int32
    # q_dtype values: Q_Q4_0_GGML 4, Q_Q4_1 5, Q_Q4_K 11; q_quant_mix = llama_ftype numbers
    for label, fn, code, lq_type, pure in (
        ("q_quantize_model Q_Q4_1 pure", lib.q_quantize_model, 5, "Q4_1", True),
        ("q_quantize_model Q_Q4_0_GGML", lib.q_quantize_model, 4, "Q4_0", False),
        ("q_quantize_model Q_Q4_1", lib.q_quantize_model, 5, "Q4_1", False),
        ("q_quantize_model Q_Q4_K (= Q4_K_M)", lib.q_quantize_model, 11, "Q4_K", False),
        ("q_quantize_model_mix Q_MIX_Q4_K_S", lib.q_quantize_model_mix, 14, "Q4_K_S", False),
        ("q_quantize_model_mix Q_MIX_IQ4_XS pure", lib.q_quantize_model_mix, 30, "IQ4_XS", True),
    ):
        ours = os.path.join(tmp, "qorus.capi.gguf")
        theirs = os.path.join(tmp, "llamacpp.capi.gguf")
        rc = fn(f16.encode(), ours.encode(), code, pure)
        if rc != 0:
            print(f"{label}: returned {rc}")
            c.ok = False
            continue
        c.llama(f16, theirs, lq_type, pure=pure)
        c.report(f"{label} from {os.path.basename(f16)}", ours, theirs)


if __name__ == "__main__":
    main()
