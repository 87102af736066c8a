#!/usr/bin/env python3
"""Checks that qorus's Q8_0 and pure Q4_0 SmolLM2 models equal what llama.cpp makes from the
same F16 file.

llama.cpp is used through llama-cpp-python (`pip install llama-cpp-python`, which builds it):
`llama_model_quantize` with `pure = True` and no importance matrix, i.e. `llama-quantize --pure`.
Tensors are compared by name: type, shape and data bytes must be identical. Metadata is not
compared (llama.cpp adds its own keys).

Usage:
    python3 scripts/compare_quantize_with_llamacpp.py [MODEL_DIR [LIBQORUS_SO]]

MODEL_DIR defaults to $QORUS_MODEL_DIR or ~/.cache/qorus/models and must hold the original and
the variants the Rust tests derive (run `cargo test --release --test models` first):
SmolLM2-135M-Instruct.{Q4_1,F16,Q8_0,Q4_0}.gguf. Checked: the pinned Q8_0 and pure Q4_0 files
against llama.cpp's from the F16 file, and the F16 file against llama.cpp's F16 from the original.

With libqorus.so (default: target/release/libqorus.so or target/release/deps/libqorus.so), the
script also makes files through the C function `q_quantize_model` and compares them: pure Q4_1,
and the default (non-pure) Q4_0 and Q4_1 mixes. Outputs go to a temporary directory.
Exit status 0 when every tensor matches.
"""

import ctypes
import mmap
import os
import struct
import sys
import tempfile

STEM = "SmolLM2-135M-Instruct"

# ggml type id -> (block length, block bytes) for the types these files hold
TYPE_SIZES = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 8: (32, 34), 30: (1, 2)}
TYPE_NAMES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 8: "Q8_0", 30: "BF16"}


class Reader:
    """A minimal GGUF (v2/v3) reader: tensor directory and data, metadata skipped."""

    def __init__(self, path):
        self.f = open(path, "rb")
        self.m = mmap.mmap(self.f.fileno(), 0, access=mmap.ACCESS_READ)
        self.pos = 0
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
            blk, size = TYPE_SIZES[ty]
            nbytes = n // blk * size
            self.tensors[name] = (dims, ty, data + off, nbytes)

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
        s = self.m[self.pos : self.pos + n]
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
        dims, ty, off, nbytes = self.tensors[name]
        return self.m[off : off + nbytes]


def llama_quantize(src, dst, ftype, pure=True):
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.pure = pure
    params.allow_requantize = True
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({src}, ftype {ftype}) returned {rc}")


def compare(ours_path, theirs_path):
    ours, theirs = Reader(ours_path), Reader(theirs_path)
    problems = []
    if set(ours.tensors) != set(theirs.tensors):
        problems.append(
            f"tensor names differ: only ours {sorted(set(ours.tensors) - set(theirs.tensors))}, "
            f"only llama.cpp {sorted(set(theirs.tensors) - set(ours.tensors))}"
        )
    same = 0
    total_bytes = 0
    for name in sorted(set(ours.tensors) & set(theirs.tensors)):
        od, ot, _, _ = ours.tensors[name]
        td, tt, _, _ = theirs.tensors[name]
        if od != td or ot != tt:
            problems.append(
                f"{name}: ours {TYPE_NAMES.get(ot, ot)} {od}, llama.cpp {TYPE_NAMES.get(tt, tt)} {td}"
            )
            continue
        a, b = ours.data(name), theirs.data(name)
        if a != b:
            diff = sum(1 for x, y in zip(a, b) if x != y)
            problems.append(f"{name}: {diff} of {len(a)} bytes differ")
            continue
        same += 1
        total_bytes += len(a)
    return same, total_bytes, problems


# q_dtype values of the C API
Q_F16, Q_Q8_0, Q_Q4_0_GGML, Q_Q4_1 = 3, 1, 4, 5


def qorus_quantize(lib, src, dst, dtype, pure):
    rc = lib.q_quantize_model(src.encode(), dst.encode(), dtype, pure)
    if rc != 0:
        raise RuntimeError(f"q_quantize_model({src}, {dtype}, {pure}) returned {rc}")


def main():
    model_dir = (
        sys.argv[1]
        if len(sys.argv) > 1
        else os.environ.get("QORUS_MODEL_DIR") or os.path.expanduser("~/.cache/qorus/models")
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates = [sys.argv[2]] if len(sys.argv) > 2 else [
        os.path.join(root, "target/release/libqorus.so"),
        os.path.join(root, "target/release/deps/libqorus.so"),
    ]
    lib_path = next((c for c in candidates if os.path.exists(c)), None)
    orig = os.path.join(model_dir, f"{STEM}.Q4_1.gguf")
    f16 = os.path.join(model_dir, f"{STEM}.F16.gguf")
    for p in (orig, f16):
        if not os.path.exists(p):
            sys.exit(f"{p} not found: run `cargo test --release --test models` first")
    ok = True

    def report(label, ours, theirs):
        nonlocal ok
        same, nbytes, problems = compare(ours, theirs)
        n = len(Reader(ours).tensors)
        status = "IDENTICAL" if not problems else "DIFFERENT"
        print(f"{label}: {same}/{n} tensors identical ({nbytes} data bytes) -> {status}")
        for p in problems[:20]:
            print("   ", p)
        ok &= not problems

    with tempfile.TemporaryDirectory() as tmp:
        # the pinned test models
        theirs = os.path.join(tmp, "llamacpp.F16.gguf")
        llama_quantize(orig, theirs, 1)
        report(f"F16 (pure) from {os.path.basename(orig)}", f16, theirs)
        for label, ftype in (("Q8_0", 7), ("Q4_0", 2)):
            ours = os.path.join(model_dir, f"{STEM}.{label}.gguf")
            theirs = os.path.join(tmp, f"llamacpp.{label}.gguf")
            llama_quantize(f16, theirs, ftype)
            report(f"{label} (pure) from {os.path.basename(f16)}", ours, theirs)
        # more mixes, made through the C API
        if lib_path is None:
            print("libqorus.so not found: skipped the q_quantize_model comparisons "
                  "(build with `cargo build --release`)")
        else:
            lib = ctypes.CDLL(lib_path)
            lib.q_quantize_model.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int32,
                                             ctypes.c_bool]
            lib.q_quantize_model.restype = ctypes.c_int32
            for label, dtype, ftype, pure in (
                ("Q4_1", Q_Q4_1, 3, True),
                ("Q4_0", Q_Q4_0_GGML, 2, False),
                ("Q4_1", Q_Q4_1, 3, False),
            ):
                mode = "pure" if pure else "default mix"
                ours = os.path.join(tmp, f"qorus.{label}.{pure}.gguf")
                theirs = os.path.join(tmp, f"llamacpp.{label}.{pure}.gguf")
                qorus_quantize(lib, f16, ours, dtype, pure)
                llama_quantize(f16, theirs, ftype, pure)
                report(f"{label} ({mode}, q_quantize_model) from {os.path.basename(f16)}",
                       ours, theirs)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
