#!/usr/bin/env python3
"""Readers, writers and validators for the reference-data files in tests/data/reference/.

The formats are specified in tests/data/README.md; this module is their executable description.

  python3 scripts/reference/refdata.py check FILE...   # validate, print a summary
  python3 scripts/reference/refdata.py dump FILE       # print the prompts' token ids (and continuations)
"""
import struct
import sys
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

LOGITS_MAGIC = b"QRLG"
GREEDY_MAGIC = b"QRGR"
VERSION = 1
HEADER_SIZE = 96

FLAG_ADD_BOS = 1 << 0  # the tokenizer added BOS (model metadata tokenizer.ggml.add_bos_token)
FLAG_KV_F32 = 1 << 1  # llama.cpp ran with an F32 KV cache (else its default F16)
FLAG_FLASH_ATTN = 1 << 2  # llama.cpp ran with flash attention
FLAG_SAMPLER_CHECKED = 1 << 3  # greedy: the llama.cpp sampler's tokens equal a manual argmax


def _name(s: str, n: int) -> bytes:
    b = s.encode("utf-8")
    if len(b) >= n:
        raise ValueError(f"{s!r} longer than {n - 1} bytes")
    return b + b"\0" * (n - len(b))


def _unname(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("utf-8")


def _header(magic: bytes, n_vocab: int, n_prompts: int, a: int, b: int, flags: int, variant: str,
            generator: str) -> bytes:
    h = magic + struct.pack("<7I", VERSION, n_vocab, n_prompts, a, b, flags, 0)
    h += _name(variant, 16) + _name(generator, 48)
    assert len(h) == HEADER_SIZE
    return h


def _parse_header(buf: bytes, magic: bytes):
    if len(buf) < HEADER_SIZE:
        raise ValueError("file shorter than its header")
    if buf[:4] != magic:
        raise ValueError(f"bad magic {buf[:4]!r}, expected {magic!r}")
    version, n_vocab, n_prompts, a, b, flags, reserved = struct.unpack_from("<7I", buf, 4)
    if version != VERSION:
        raise ValueError(f"unsupported version {version}")
    if reserved != 0:
        raise ValueError("reserved header field is not 0")
    return n_vocab, n_prompts, a, b, flags, _unname(buf[32:48]), _unname(buf[48:96])


# ----------------------------------------------------------------------------------------------
# logits_<variant>.bin


@dataclass
class LogitsPrompt:
    tokens: np.ndarray  # int32 [n_tokens]
    full_pos: np.ndarray  # uint32 [n_full], strictly increasing
    full_logits: np.ndarray  # float32 [n_full, n_vocab]
    top_ids: np.ndarray  # int32 [n_tokens, top_k]
    top_vals: np.ndarray  # float32 [n_tokens, top_k]


@dataclass
class LogitsFile:
    variant: str
    generator: str
    n_vocab: int
    top_k: int
    flags: int
    prompts: List[LogitsPrompt] = field(default_factory=list)


def write_logits(path: str, f: LogitsFile) -> None:
    n_full_total = sum(len(p.full_pos) for p in f.prompts)
    out = [_header(LOGITS_MAGIC, f.n_vocab, len(f.prompts), f.top_k, n_full_total, f.flags, f.variant,
                   f.generator)]
    for p in f.prompts:
        out.append(struct.pack("<2I", len(p.tokens), len(p.full_pos)))
    for p in f.prompts:
        out.append(np.asarray(p.tokens, dtype="<i4").tobytes())
        out.append(np.asarray(p.full_pos, dtype="<u4").tobytes())
        out.append(np.ascontiguousarray(p.full_logits, dtype="<f4").tobytes())
        out.append(np.ascontiguousarray(p.top_ids, dtype="<i4").tobytes())
        out.append(np.ascontiguousarray(p.top_vals, dtype="<f4").tobytes())
    with open(path, "wb") as fh:
        fh.write(b"".join(out))


def read_logits(path: str) -> LogitsFile:
    buf = open(path, "rb").read()
    n_vocab, n_prompts, top_k, n_full_total, flags, variant, generator = _parse_header(buf, LOGITS_MAGIC)
    off = HEADER_SIZE
    table = []
    for _ in range(n_prompts):
        table.append(struct.unpack_from("<2I", buf, off))
        off += 8
    f = LogitsFile(variant, generator, n_vocab, top_k, flags)

    def take(dtype, count):
        nonlocal off
        a = np.frombuffer(buf, dtype=dtype, count=count, offset=off)
        off += a.nbytes
        return a

    for n_tok, n_full in table:
        tokens = take("<i4", n_tok)
        full_pos = take("<u4", n_full)
        full_logits = take("<f4", n_full * n_vocab).reshape(n_full, n_vocab)
        top_ids = take("<i4", n_tok * top_k).reshape(n_tok, top_k)
        top_vals = take("<f4", n_tok * top_k).reshape(n_tok, top_k)
        f.prompts.append(LogitsPrompt(tokens, full_pos, full_logits, top_ids, top_vals))
    if off != len(buf):
        raise ValueError(f"{len(buf) - off} trailing bytes")
    if sum(n for _, n in table) != n_full_total:
        raise ValueError("n_full_total does not match the prompt table")
    return f


def top_k_of(logits: np.ndarray, k: int):
    """Top-k ids and values of each row: descending value, ties by ascending id."""
    order = np.argsort(-logits, axis=-1, kind="stable")[..., :k]
    return order.astype(np.int32), np.take_along_axis(logits, order, axis=-1).astype(np.float32)


def validate_logits(f: LogitsFile) -> None:
    if not f.prompts:
        raise ValueError("no prompts")
    for i, p in enumerate(f.prompts):
        n = len(p.tokens)
        if n == 0:
            raise ValueError(f"prompt {i}: no tokens")
        if np.any(p.tokens < 0) or np.any(p.tokens >= f.n_vocab):
            raise ValueError(f"prompt {i}: token id out of range")
        if len(p.full_pos) and (np.any(np.diff(p.full_pos.astype(np.int64)) <= 0) or p.full_pos[-1] >= n):
            raise ValueError(f"prompt {i}: full positions not increasing or out of range")
        if not np.all(np.isfinite(p.full_logits)) or not np.all(np.isfinite(p.top_vals)):
            raise ValueError(f"prompt {i}: non-finite logits")
        if np.any(p.top_ids < 0) or np.any(p.top_ids >= f.n_vocab):
            raise ValueError(f"prompt {i}: top id out of range")
        if np.any(np.diff(p.top_vals, axis=1) > 0):
            raise ValueError(f"prompt {i}: top values not descending")
        for r in p.top_ids:
            if len(set(r.tolist())) != f.top_k:
                raise ValueError(f"prompt {i}: duplicate ids in a top-k row")
        # the full rows and the top-k rows at the same positions must agree
        for j, pos in enumerate(p.full_pos):
            ids, vals = top_k_of(p.full_logits[j], f.top_k)
            if not (np.array_equal(ids, p.top_ids[pos]) and np.array_equal(vals, p.top_vals[pos])):
                raise ValueError(f"prompt {i}: top-k at position {pos} disagrees with the full logits")


# ----------------------------------------------------------------------------------------------
# greedy_<variant>.bin


@dataclass
class GreedyPrompt:
    prompt: np.ndarray  # int32 [n_prompt]
    continuation: np.ndarray  # int32 [n_gen]; n_gen < max_new only when it ends with EOS
    margins: np.ndarray  # float32 [n_gen]: top-1 minus top-2 logit at each generated step


@dataclass
class GreedyFile:
    variant: str
    generator: str
    n_vocab: int
    max_new: int
    eos_id: int
    flags: int
    prompts: List[GreedyPrompt] = field(default_factory=list)


def write_greedy(path: str, f: GreedyFile) -> None:
    out = [_header(GREEDY_MAGIC, f.n_vocab, len(f.prompts), f.max_new, f.eos_id, f.flags, f.variant, f.generator)]
    for p in f.prompts:
        if len(p.margins) != len(p.continuation):
            raise ValueError("one margin per generated token")
        out.append(struct.pack("<2I", len(p.prompt), len(p.continuation)))
    for p in f.prompts:
        out.append(np.asarray(p.prompt, dtype="<i4").tobytes())
        out.append(np.asarray(p.continuation, dtype="<i4").tobytes())
        out.append(np.asarray(p.margins, dtype="<f4").tobytes())
    with open(path, "wb") as fh:
        fh.write(b"".join(out))


def read_greedy(path: str) -> GreedyFile:
    buf = open(path, "rb").read()
    n_vocab, n_prompts, max_new, eos_id, flags, variant, generator = _parse_header(buf, GREEDY_MAGIC)
    off = HEADER_SIZE
    table = [struct.unpack_from("<2I", buf, off + 8 * i) for i in range(n_prompts)]
    off += 8 * n_prompts
    f = GreedyFile(variant, generator, n_vocab, max_new, eos_id, flags)
    for n_prompt, n_gen in table:
        prompt = np.frombuffer(buf, "<i4", n_prompt, off)
        off += 4 * n_prompt
        cont = np.frombuffer(buf, "<i4", n_gen, off)
        off += 4 * n_gen
        marg = np.frombuffer(buf, "<f4", n_gen, off)
        off += 4 * n_gen
        f.prompts.append(GreedyPrompt(prompt, cont, marg))
    if off != len(buf):
        raise ValueError(f"{len(buf) - off} trailing bytes")
    return f


def validate_greedy(f: GreedyFile) -> None:
    if not f.prompts:
        raise ValueError("no prompts")
    for i, p in enumerate(f.prompts):
        for a in (p.prompt, p.continuation):
            if len(a) == 0 or np.any(a < 0) or np.any(a >= f.n_vocab):
                raise ValueError(f"prompt {i}: empty or out-of-range token ids")
        n = len(p.continuation)
        if n > f.max_new or (n < f.max_new and p.continuation[-1] != f.eos_id):
            raise ValueError(f"prompt {i}: continuation shorter than max_new without ending in EOS")
        if np.any(p.continuation[:-1] == f.eos_id):
            raise ValueError(f"prompt {i}: EOS inside the continuation")
        if np.any(p.margins < 0) or not np.all(np.isfinite(p.margins)):
            raise ValueError(f"prompt {i}: bad margins")


# ----------------------------------------------------------------------------------------------


def check(path: str) -> str:
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == LOGITS_MAGIC:
        f = read_logits(path)
        validate_logits(f)
        n_pos = sum(len(p.tokens) for p in f.prompts)
        return (f"{path}: logits v{VERSION} variant={f.variant} generator={f.generator!r} flags={f.flags:#x} "
                f"vocab={f.n_vocab} prompts={len(f.prompts)} positions={n_pos} top_k={f.top_k} "
                f"full_rows={sum(len(p.full_pos) for p in f.prompts)} "
                f"lengths={[len(p.tokens) for p in f.prompts]}")
    if magic == GREEDY_MAGIC:
        f = read_greedy(path)
        validate_greedy(f)
        return (f"{path}: greedy v{VERSION} variant={f.variant} generator={f.generator!r} flags={f.flags:#x} "
                f"vocab={f.n_vocab} prompts={len(f.prompts)} max_new={f.max_new} eos={f.eos_id} "
                f"n_gen={[len(p.continuation) for p in f.prompts]} "
                f"min_margin={min(float(p.margins.min()) for p in f.prompts):.4f}")
    raise ValueError(f"{path}: unknown magic {magic!r}")


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or argv[0] not in ("check", "dump"):
        print(__doc__)
        return 2
    if argv[0] == "check":
        for path in argv[1:]:
            print("OK", check(path))
        return 0
    path = argv[1]
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == LOGITS_MAGIC:
        for i, p in enumerate(read_logits(path).prompts):
            print(i, p.tokens.tolist(), "full at", p.full_pos.tolist())
    else:
        for i, p in enumerate(read_greedy(path).prompts):
            print(i, p.prompt.tolist(), "->", p.continuation.tolist())
    return 0


if __name__ == "__main__":
    sys.exit(main())
