#!/usr/bin/env python3
"""Dequantization of ggml weight blocks in NumPy, written from ggml's block layouts
(ggml/src/ggml-common.h) and its dequantize_row_* functions (ggml/src/ggml-quants.c) of llama.cpp
0c1e570, vectorised over blocks. Independent of the Rust implementation and of gguf-py.

Each function takes the tensor's raw bytes (a uint8 array) and returns float32 values computed with
the same float32 operations, in the same order, as the C source reads (every product and sum rounded
to float32 separately; a C compiler that contracts `d * q - m` into one FMA may differ from this by
one float32 ulp, far below anything the reference measures).

    dequantize(raw_bytes, ggml_type, n_elements) -> float32 array of n_elements
    TYPES: ggml type id -> (name, elements per block, bytes per block)

  python3 scripts/reference/ggml_dequant.py --check [MODEL.gguf ...]

--check compares, bit for bit, this module against gguf-py's gguf.quants.dequantize (when gguf-py
is installed) on random blocks of every type, and on every tensor of the given GGUF files.
"""
import sys

import numpy as np

QK_K = 256

# ggml type id -> (name, block elements, block bytes). Only the types below are supported.
TYPES = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    10: ("Q2_K", QK_K, 84),
    11: ("Q3_K", QK_K, 110),
    12: ("Q4_K", QK_K, 144),
    13: ("Q5_K", QK_K, 176),
    14: ("Q6_K", QK_K, 210),
    20: ("IQ4_NL", 32, 18),
    23: ("IQ4_XS", QK_K, 136),
    30: ("BF16", 1, 2),
}
NAME_TO_ID = {v[0]: k for k, v in TYPES.items()}

# ggml-common.h kvalues_iq4nl
KVALUES_IQ4NL = np.array([-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113],
                         dtype=np.float32)

F32 = np.float32


def _f16(b):
    """[nb, 2] bytes -> [nb, 1] float32 (GGML_FP16_TO_FP32 is exact)."""
    return np.ascontiguousarray(b).view("<f2").astype(F32)


def _lo_hi(qs):
    """[nb, n] bytes -> (low nibbles, high nibbles) as int32."""
    q = qs.astype(np.int32)
    return q & 0xF, q >> 4


def _q4_0(b):
    d = _f16(b[:, 0:2])
    lo, hi = _lo_hi(b[:, 2:18])
    return np.concatenate([(lo - 8).astype(F32) * d, (hi - 8).astype(F32) * d], axis=1)


def _q4_1(b):
    d, m = _f16(b[:, 0:2]), _f16(b[:, 2:4])
    lo, hi = _lo_hi(b[:, 4:20])
    return np.concatenate([lo.astype(F32) * d + m, hi.astype(F32) * d + m], axis=1)


def _q5_high(qh):
    """qh (4 bytes, little-endian u32) -> [nb, 32] fifth bits (0 or 16), element j's bit j."""
    u = np.ascontiguousarray(qh).view("<u4").astype(np.int64)  # [nb, 1]
    return (((u >> np.arange(32)) & 1) << 4).astype(np.int32)


def _q5_0(b):
    d = _f16(b[:, 0:2])
    h = _q5_high(b[:, 2:6])
    lo, hi = _lo_hi(b[:, 6:22])
    x0 = (lo | h[:, :16]) - 16
    x1 = (hi | h[:, 16:]) - 16
    return np.concatenate([x0.astype(F32) * d, x1.astype(F32) * d], axis=1)


def _q5_1(b):
    d, m = _f16(b[:, 0:2]), _f16(b[:, 2:4])
    h = _q5_high(b[:, 4:8])
    lo, hi = _lo_hi(b[:, 8:24])
    x0 = lo | h[:, :16]
    x1 = hi | h[:, 16:]
    return np.concatenate([x0.astype(F32) * d + m, x1.astype(F32) * d + m], axis=1)


def _q8_0(b):
    d = _f16(b[:, 0:2])
    return b[:, 2:34].view(np.int8).astype(F32) * d


def _q2_k(b):
    nb = b.shape[0]
    scales = b[:, 0:16].astype(np.int32)
    qs = b[:, 16:80].astype(np.int32).reshape(nb, 2, 32)  # two halves of 128 elements
    d, dmin = _f16(b[:, 80:82]), _f16(b[:, 82:84])
    dl = d * (scales & 0xF).astype(F32)  # [nb, 16]
    ml = dmin * (scales >> 4).astype(F32)
    # element order: half n, shift j (0..3), then q[0..16) (scale 2j) and q[16..32) (scale 2j+1)
    shifts = np.arange(4).reshape(1, 1, 4, 1)
    q = (qs[:, :, None, :] >> (2 * shifts)) & 3  # [nb, 2, 4, 32]
    q = q.reshape(nb, 16, 16).astype(F32)  # sub-block s = 8n + 2j + (l >= 16)
    return (dl[:, :, None] * q - ml[:, :, None]).reshape(nb, QK_K)


def _q3_k_scales(sc):
    """12 packed bytes -> [nb, 16] signed 6-bit scales minus 32, as dequantize_row_q3_K unpacks them."""
    a = np.ascontiguousarray(sc).view("<u4").astype(np.int64)  # [nb, 3]
    k1, k2 = 0x03030303, 0x0F0F0F0F
    a0, a1, tmp = a[:, 0], a[:, 1], a[:, 2]
    o = np.stack([
        (a0 & k2) | (((tmp >> 0) & k1) << 4),
        (a1 & k2) | (((tmp >> 2) & k1) << 4),
        ((a0 >> 4) & k2) | (((tmp >> 4) & k1) << 4),
        ((a1 >> 4) & k2) | (((tmp >> 6) & k1) << 4),
    ], axis=1).astype("<u4")
    return o.view(np.int8).astype(np.int32) - 32  # [nb, 16]


def _q3_k(b):
    nb = b.shape[0]
    hmask = b[:, 0:32].astype(np.int32)
    qs = b[:, 32:96].astype(np.int32).reshape(nb, 2, 32)
    scales = _q3_k_scales(b[:, 96:108])
    d = _f16(b[:, 108:110])
    dl = d * scales.astype(F32)  # [nb, 16]
    shifts = np.arange(4).reshape(1, 1, 4, 1)
    q = (qs[:, :, None, :] >> (2 * shifts)) & 3  # [nb, 2, 4, 32]
    # the high-bit mask m = 1 << (4n + j) selects bit 4n+j of hmask[l]
    bit = (np.arange(2).reshape(1, 2, 1, 1) * 4 + shifts)
    h = (hmask[:, None, None, :] >> bit) & 1
    q = q - np.where(h != 0, 0, 4)
    q = q.reshape(nb, 16, 16).astype(F32)
    return (dl[:, :, None] * q).reshape(nb, QK_K)


def _k4_scales(sc):
    """12 packed bytes -> ([nb, 8] scales, [nb, 8] mins) as get_scale_min_k4 reads them."""
    q = sc.astype(np.int32)
    d = np.empty((sc.shape[0], 8), np.int32)
    m = np.empty_like(d)
    d[:, :4] = q[:, 0:4] & 63
    m[:, :4] = q[:, 4:8] & 63
    d[:, 4:] = (q[:, 8:12] & 0xF) | ((q[:, 0:4] >> 6) << 4)
    m[:, 4:] = (q[:, 8:12] >> 4) | ((q[:, 4:8] >> 6) << 4)
    return d, m


def _q4_k(b):
    nb = b.shape[0]
    d, dmin = _f16(b[:, 0:2]), _f16(b[:, 2:4])
    sc, mn = _k4_scales(b[:, 4:16])
    dl = d * sc.astype(F32)  # [nb, 8]
    ml = dmin * mn.astype(F32)
    lo, hi = _lo_hi(b[:, 16:144].reshape(nb, 4, 32))
    q = np.stack([lo, hi], axis=2).reshape(nb, 8, 32).astype(F32)  # sub-block 2j: low, 2j+1: high
    return (dl[:, :, None] * q - ml[:, :, None]).reshape(nb, QK_K)


def _q5_k(b):
    nb = b.shape[0]
    d, dmin = _f16(b[:, 0:2]), _f16(b[:, 2:4])
    sc, mn = _k4_scales(b[:, 4:16])
    dl = d * sc.astype(F32)
    ml = dmin * mn.astype(F32)
    qh = b[:, 16:48].astype(np.int32)  # [nb, 32]
    lo, hi = _lo_hi(b[:, 48:176].reshape(nb, 4, 32))
    ql = np.stack([lo, hi], axis=2).reshape(nb, 8, 32)
    # sub-block s uses bit s of qh[l] (u1 = 1 << 2j for the low nibbles, u2 = 2 << 2j for the high)
    h = ((qh[:, None, :] >> np.arange(8).reshape(1, 8, 1)) & 1) * 16
    q = (ql + h).astype(F32)
    return (dl[:, :, None] * q - ml[:, :, None]).reshape(nb, QK_K)


def _q6_k(b):
    nb = b.shape[0]
    ql = b[:, 0:128].astype(np.int32).reshape(nb, 2, 64)
    qh = b[:, 128:192].astype(np.int32).reshape(nb, 2, 32)
    sc = b[:, 192:208].view(np.int8).astype(F32).reshape(nb, 2, 8)
    d = _f16(b[:, 208:210]).reshape(nb, 1, 1)
    l0, l1 = ql[:, :, :32], ql[:, :, 32:]
    q = np.stack([
        (l0 & 0xF) | (((qh >> 0) & 3) << 4),
        (l1 & 0xF) | (((qh >> 2) & 3) << 4),
        (l0 >> 4) | (((qh >> 4) & 3) << 4),
        (l1 >> 4) | (((qh >> 6) & 3) << 4),
    ], axis=2) - 32  # [nb, 2, 4, 32]: y[32k + l] of each 128-half
    # scale index for y[32k + l] is is + 2k with is = l / 16
    s = sc.reshape(nb, 2, 4, 2)  # [half, k, l/16]
    dsc = (d[:, :, :, None] * s)  # d * sc: float32, [nb, 2, 4, 2]
    q = q.reshape(nb, 2, 4, 2, 16).astype(F32)
    return (dsc[..., None] * q).reshape(nb, QK_K)


def _iq4_nl(b):
    d = _f16(b[:, 0:2])
    lo, hi = _lo_hi(b[:, 2:18])
    return np.concatenate([d * KVALUES_IQ4NL[lo], d * KVALUES_IQ4NL[hi]], axis=1)


def _iq4_xs(b):
    nb = b.shape[0]
    d = _f16(b[:, 0:2])
    sh = np.ascontiguousarray(b[:, 2:4]).view("<u2").astype(np.int32)  # [nb, 1]
    sl = b[:, 4:8].astype(np.int32)
    ib = np.arange(8)
    ls = ((sl[:, ib // 2] >> (4 * (ib % 2))) & 0xF) | (((sh >> (2 * ib)) & 3) << 4)  # [nb, 8]
    dl = d * (ls - 32).astype(F32)
    lo, hi = _lo_hi(b[:, 8:136].reshape(nb, 8, 16))
    v = np.concatenate([KVALUES_IQ4NL[lo], KVALUES_IQ4NL[hi]], axis=2)  # [nb, 8, 32]
    return (dl[:, :, None] * v).reshape(nb, QK_K)


def _bf16(b):
    u = np.ascontiguousarray(b).view("<u2").astype(np.uint32) << 16
    return u.view(np.float32).reshape(-1, 1)


BLOCK_FUNCS = {
    0: lambda b: np.ascontiguousarray(b).view("<f4").reshape(-1, 1).astype(F32),
    1: lambda b: _f16(b).reshape(-1, 1),
    2: _q4_0, 3: _q4_1, 6: _q5_0, 7: _q5_1, 8: _q8_0,
    10: _q2_k, 11: _q3_k, 12: _q4_k, 13: _q5_k, 14: _q6_k,
    20: _iq4_nl, 23: _iq4_xs, 30: _bf16,
}


def type_name(ty: int) -> str:
    return TYPES[ty][0] if ty in TYPES else f"ggml type {ty}"


def n_bytes(ty: int, n: int) -> int:
    _, blk, size = TYPES[ty]
    return n // blk * size


def dequantize(raw, ty: int, n: int, chunk_blocks: int = 1 << 16) -> np.ndarray:
    """float32 values of `n` elements of type `ty` stored in the bytes `raw` (uint8 array or buffer)."""
    if ty not in TYPES:
        raise ValueError(f"{type_name(ty)} is not supported by this dequantizer")
    name, blk, size = TYPES[ty]
    if n % blk:
        raise ValueError(f"{name}: {n} elements is not a multiple of the block size {blk}")
    nb = n // blk
    raw = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw.view(np.uint8)
    if raw.size < nb * size:
        raise ValueError(f"{name}: {raw.size} bytes for {nb} blocks of {size}")
    blocks = raw[: nb * size].reshape(nb, size)
    out = np.empty(n, dtype=F32)
    f = BLOCK_FUNCS[ty]
    for s in range(0, nb, chunk_blocks):
        e = min(nb, s + chunk_blocks)
        out[s * blk:e * blk] = f(blocks[s:e]).reshape(-1)
    return out


# ---------------------------------------------------------------------------------------------
# cross-check against gguf-py


def _random_blocks(ty: int, nb: int, rng) -> np.ndarray:
    """Random blocks of type ty whose f16 scales are finite (random bytes elsewhere)."""
    name, blk, size = TYPES[ty]
    b = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)

    def put_f16(off):
        v = (rng.standard_normal(nb) * 0.05).astype(np.float16)
        b[:, off:off + 2] = v.view(np.uint8).reshape(nb, 2)

    f16_at = {"F16": range(0, 2, 2), "Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0],
              "Q2_K": [80, 82], "Q3_K": [108], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208], "IQ4_NL": [0],
              "IQ4_XS": [0]}
    if name == "F32":
        b[:] = rng.standard_normal(nb).astype(np.float32).view(np.uint8).reshape(nb, 4)
    elif name == "BF16":
        b[:] = (rng.standard_normal(nb).astype(np.float32).view(np.uint32) >> 16).astype("<u2") \
            .view(np.uint8).reshape(nb, 2)
    else:
        for off in f16_at[name]:
            put_f16(off)
    return b


def check(paths) -> int:
    try:
        import gguf
        from gguf import quants as gq
    except ImportError:
        print("gguf-py is not installed: nothing to compare with", file=sys.stderr)
        return 1
    print(f"gguf-py {getattr(gguf, '__version__', '?')} at {gguf.__file__}")
    rng = np.random.default_rng(12)
    bad = 0
    for ty, (name, blk, size) in TYPES.items():
        b = _random_blocks(ty, 512, rng)
        ours = dequantize(b.reshape(-1), ty, 512 * blk)
        theirs = gq.dequantize(b.reshape(-1), gguf.GGMLQuantizationType(ty)).astype(np.float32).reshape(-1)
        same = np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))
        ndiff = int((ours.view(np.uint32) != theirs.view(np.uint32)).sum())
        rel = float(np.max(np.abs(ours - theirs)) / max(1e-30, float(np.max(np.abs(theirs)))))
        print(f"random {name:7s}: {512 * blk:7d} values, {'bit-identical' if same else 'DIFFERENT'}"
              f"{'' if same else f' ({ndiff} differ, max rel {rel:.2e})'}")
        bad += 0 if same or rel < 1e-6 else 1
    for p in paths:
        r = gguf.GGUFReader(p)
        seen = {}
        for t in r.tensors:
            ty = int(t.tensor_type)
            n = int(np.prod([int(x) for x in t.shape]))
            ours = dequantize(np.asarray(t.data).reshape(-1).view(np.uint8), ty, n)
            theirs = gq.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(-1)
            nd = int((ours.view(np.uint32) != theirs.view(np.uint32)).sum())
            s = seen.setdefault(type_name(ty), [0, 0, 0])
            s[0] += 1
            s[1] += n
            s[2] += nd
        for name, (nt, n, nd) in sorted(seen.items()):
            print(f"{p}: {name:7s} {nt:4d} tensors, {n:10d} values, {nd} differ from gguf-py")
            bad += 1 if nd else 0
    print("OK" if bad == 0 else f"{bad} MISMATCHES")
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--check":
        sys.exit(check(sys.argv[2:]))
    print(__doc__)
