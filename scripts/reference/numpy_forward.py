#!/usr/bin/env python3
"""Float64 NumPy reference of the LLaMA forward pass (spec section 5.1), for checking the engine.

Reads a GGUF model of any weight type in scripts/reference/ggml_dequant.py (F32, F16, BF16, Q4_0,
Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K, IQ4_NL, IQ4_XS, in any per-tensor mix), dequantizes every weight
exactly as ggml's dequantize_row_* does (to float32), and runs prompts through it in float64 (the
dequantized weights are the model; everything after them is float64), giving the logits at every
position:

    scripts/reference/numpy_forward.py MODEL.gguf --tokens 1,2,3 [--out LOGITS.f64] [--trace DIR]
    scripts/reference/numpy_forward.py MODEL.gguf --prompts-from tests/data/reference/logits_Q8_0.bin \
        --out LOGITS.f64

  --out FILE     writes the logits as raw little-endian float64, n_tokens rows of vocab_size
                 values (row i = logits after token i); without it, prints the top 5 per position.
  --prompts-from FILE
                 runs every prompt of a reference logits file (tests/data/README.md; only its token
                 ids are used), each from position 0 with an empty cache; --out then holds the rows
                 of all prompts one after the other, in file order. All prompts go through each layer
                 together, so that every weight is dequantized once.
  --trace DIR    also writes the residual stream after the embedding and after every layer
                 (DIR/x_<layer>.f64, n_tokens x dim, layer -1 = embedding) and prints per-layer
                 statistics, to find where another implementation starts to differ.
  --rope-f32     computes the RoPE angles as ggml does (theta_0 = p, theta_{i+1} = theta_i *
                 base^(-2/hd), all in float32) instead of exactly (p * base^(-2i/hd) in float64).

The math, per token at position p (every position attends to positions 0..p):
  x = token_embd[token]
  per layer:
    u = x * attn_norm / sqrt(mean(x^2) + eps)
    q, k, v = Wq u, Wk u, Wv u                       (W is [out, in]: y = W @ u)
    RoPE on every q and k head, adjacent pairs (2i, 2i+1):
      (a, b) -> (a cos t - b sin t, a sin t + b cos t), t = p * base^(-2i/hd)
    query head j uses kv head j // (H/G); scores q.k / sqrt(hd); causal softmax; o = sum a_t v_t
    x += Wo concat(o)
    u = x * ffn_norm / sqrt(mean(x^2) + eps)
    x += Wdown (silu(Wgate u) * (Wup u)),  silu(z) = z / (1 + exp(-z))
  logits = Wout (x * output_norm / sqrt(mean(x^2) + eps)), Wout = output.weight or, when the file
  has none, token_embd.weight (tied).

Gemma 3 (`gemma3`, as llama.cpp's src/models/gemma3.cpp): x = token_embd[token] * sqrt(dim); head
dimension attention.key_length; per-head RMSNorm of q and k (attn_q_norm, attn_k_norm) before RoPE;
NEOX RoPE (pairs (i, i + hd/2)) with base rope.freq_base_swa (default 10000) on the sliding-window
layers (layer l slides when l % 6 < 5, or attention.sliding_window_pattern) and rope.freq_base on the
others; scores q.k / sqrt(hd) (27B: / sqrt(dim / H)); on a sliding layer a position attends only to
the keys fewer than attention.sliding_window positions back; x += post_attention_norm(Wo o);
x += post_ffw_norm(Wdown (gelu_tanh(Wgate u) * (Wup u))); logits soft-capped by
final_logit_softcapping when the file has it. (The GGUF norm weights already hold Gemma's 1 + w.)

The GGUF reader and the dequantizers here are deliberately separate from the Rust ones
(src/format/gguf.rs, src/quant/), so that the two are checked against each other too. Only numpy is
needed.
"""
import argparse
import mmap
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ggml_dequant  # noqa: E402

GGUF_MAGIC = b"GGUF"
# GGUF metadata value types: id -> struct format (scalars); 8 = string, 9 = array.
SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q",
          12: "<d"}


class Reader:
    def __init__(self, data):
        self.b = data
        self.o = 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.b, self.o)[0]
        self.o += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = self.b[self.o:self.o + n]
        if len(s) != n:
            raise ValueError("GGUF: string runs past the end of the file")
        self.o += n
        return bytes(s)

    def value(self, ty):
        if ty in SCALAR:
            return self.take(SCALAR[ty])
        if ty == 8:
            return self.string()
        if ty == 9:
            ety = self.take("<I")
            n = self.take("<Q")
            return [self.value(ety) for _ in range(n)]
        raise ValueError(f"GGUF: unknown metadata type {ty}")


class Tensors(dict):
    """Tensors as stored (type, ggml dims, raw bytes of the mapped file); `t[name]` gives one
    dequantized to float64 and shaped [rows, cols] (or [n]), so only one converted matrix at a time
    is held beyond what the caller keeps."""

    def __getitem__(self, name):
        ty, dims, raw = dict.__getitem__(self, name)
        n = int(np.prod(dims))
        # ggml dims are innermost first: a [rows, cols] matrix has dims [cols, rows].
        return ggml_dequant.dequantize(raw, ty, n).astype(np.float64).reshape(list(reversed(dims)))

    def shape(self, name):
        return tuple(reversed(dict.__getitem__(self, name)[1]))

    def type_name(self, name):
        return ggml_dequant.type_name(dict.__getitem__(self, name)[0])

    def rows(self, name, idx):
        return self[name][idx]


def read_gguf(path):
    """Returns (metadata dict, Tensors {name: array shaped [rows, cols] or [n]})."""
    with open(path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    r = Reader(data)
    if data[:4] != GGUF_MAGIC:
        raise ValueError(f"{path}: not a GGUF file")
    r.o = 4
    version = r.take("<I")
    if version not in (2, 3):
        raise ValueError(f"{path}: GGUF version {version} not supported")
    n_tensors = r.take("<Q")
    n_kv = r.take("<Q")
    meta = {}
    for _ in range(n_kv):
        key = r.string().decode("utf-8")
        meta[key] = r.value(r.take("<I"))
    infos = []
    for _ in range(n_tensors):
        name = r.string().decode("utf-8")
        n_dims = r.take("<I")
        dims = [r.take("<Q") for _ in range(n_dims)]
        ty = r.take("<I")
        offset = r.take("<Q")
        infos.append((name, dims, ty, offset))
    align = int(meta.get("general.alignment", 32))
    start = (r.o + align - 1) // align * align
    tensors = Tensors()
    for name, dims, ty, offset in infos:
        if ty not in ggml_dequant.TYPES:
            raise ValueError(f"{path}: tensor {name} has {ggml_dequant.type_name(ty)}, which this reference "
                             f"does not dequantize")
        nbytes = ggml_dequant.n_bytes(ty, int(np.prod(dims)))
        if start + offset + nbytes > len(data):
            raise ValueError(f"{path}: tensor {name} runs past the end of the file")
        raw = np.frombuffer(data, dtype=np.uint8, count=nbytes, offset=start + offset)
        dict.__setitem__(tensors, name, (ty, [int(d) for d in dims], raw))
    return meta, tensors


class Config:
    def __init__(self, meta, tensors):
        arch = meta.get("general.architecture", b"").decode()
        if arch not in ("llama", "gemma3"):
            raise ValueError(f"architecture {arch!r}, expected 'llama' or 'gemma3'")
        self.arch = arch

        def get(k, default=None):
            v = meta.get(f"{arch}.{k}", default)
            if v is None:
                raise ValueError(f"missing metadata {arch}.{k}")
            return v

        self.dim = int(get("embedding_length"))
        self.hidden_dim = int(get("feed_forward_length"))
        self.n_layers = int(get("block_count"))
        self.n_heads = int(get("attention.head_count"))
        self.n_kv_heads = int(get("attention.head_count_kv", self.n_heads))
        self.rope_base = float(get("rope.freq_base", 10000.0))
        self.eps = float(get("attention.layer_norm_rms_epsilon", 1e-5))
        self.vocab_size = tensors.shape("token_embd.weight")[0]
        self.head_dim = int(get("attention.key_length", self.dim // self.n_heads))
        assert self.n_heads % self.n_kv_heads == 0
        # Gemma 3 (llama.cpp's src/models/gemma3.cpp): sliding-window layers (llama.cpp's
        # set_swa_pattern(6): layer l slides when l % 6 < 5; a position attends to the keys less than
        # `window` positions back) with their own RoPE base.
        self.window = 0
        self.swa = [False] * self.n_layers
        self.rope_base_swa = self.rope_base
        self.softcap = 0.0
        if arch == "gemma3":
            assert self.head_dim == int(get("attention.value_length", self.head_dim))
            self.window = int(get("attention.sliding_window", 0))
            if self.window:
                pat = get("attention.sliding_window_pattern", 6)
                if isinstance(pat, list):
                    self.swa = [bool(x) for x in pat]
                else:
                    self.swa = [pat == 0 or l % pat < pat - 1 for l in range(self.n_layers)]
                self.rope_base_swa = float(get("rope.freq_base_swa", 10000.0))
            self.softcap = float(get("final_logit_softcapping", 0.0))
            self.q_scale = 1.0 / np.sqrt(self.dim / self.n_heads if self.n_layers == 62 else self.head_dim)
        else:
            assert self.head_dim * self.n_heads == self.dim
            self.q_scale = 1.0 / np.sqrt(self.head_dim)

    def __str__(self):
        return (f"d={self.dim} h={self.hidden_dim} L={self.n_layers} H={self.n_heads} G={self.n_kv_heads} "
                f"hd={self.head_dim} V={self.vocab_size} base={self.rope_base:g} eps={self.eps:g}")


def rmsnorm(x, g, eps):
    return x * g / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


def rope_angles(c, n, base=None):
    """[n, hd/2] angles for positions 0..n-1."""
    base = c.rope_base if base is None else base
    half = c.head_dim // 2
    i = np.arange(half, dtype=np.float64)
    p = np.arange(n, dtype=np.float64)
    return p[:, None] * base ** (-2.0 * i / c.head_dim)[None, :]


def rope_angles_ggml(c, n, base=None):
    base = c.rope_base if base is None else base
    half = c.head_dim // 2
    scale = np.float32(np.float32(base) ** np.float32(-2.0 / c.head_dim))
    out = np.zeros((n, half), dtype=np.float32)
    for p in range(n):
        t = np.float32(p)
        for i in range(half):
            out[p, i] = t
            t = np.float32(t * scale)
    return out.astype(np.float64)


def rope(x, cos, sin):
    """x: [n, heads, hd]; rotates pairs (2i, 2i+1) by the angles of each row's position."""
    a, b = x[..., 0::2], x[..., 1::2]
    c, s = cos[:, None, :], sin[:, None, :]
    out = np.empty_like(x)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = a * s + b * c
    return out


def rope_neox(x, cos, sin):
    """x: [n, heads, hd]; rotates pairs (i, i + hd/2) (llama.cpp's NEOX mode: Gemma, Qwen, Phi-3)."""
    h = x.shape[-1] // 2
    a, b = x[..., :h], x[..., h:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)


def gelu_tanh(z):
    return 0.5 * z * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (z + 0.044715 * z ** 3)))


def forward_hidden(c, t, prompts, rope_f32=False, trace=None):
    """Runs every prompt (a list of token-id lists, each from position 0 with an empty cache)
    through the layers, all prompts together so that each weight is dequantized once; returns the
    final normalized hidden states of all positions, [sum of lengths, dim], prompts in order."""
    lens = [len(p) for p in prompts]
    starts = np.cumsum([0] + lens)
    n_all = int(starts[-1])
    d, hd, H, G = c.dim, c.head_dim, c.n_heads, c.n_kv_heads
    n_max = max(lens)
    angles = rope_angles_ggml if rope_f32 else rope_angles
    pos = np.concatenate([np.arange(n) for n in lens])
    trig = {}
    for base in {c.rope_base, c.rope_base_swa}:
        ang = angles(c, n_max, base)
        trig[base] = (np.cos(ang)[pos], np.sin(ang)[pos])
    gemma = c.arch == "gemma3"
    emb = t["token_embd.weight"]
    x = emb[np.concatenate([np.asarray(p) for p in prompts])]
    del emb
    if gemma:
        x = x * np.sqrt(c.dim)
    if trace is not None:
        trace(-1, x)
    for l in range(c.n_layers):
        w = lambda s: t[f"blk.{l}.{s}.weight"]
        u = rmsnorm(x, w("attn_norm"), c.eps)
        q = (u @ w("attn_q").T).reshape(n_all, H, hd)
        k = (u @ w("attn_k").T).reshape(n_all, G, hd)
        v = (u @ w("attn_v").T).reshape(n_all, G, hd)
        swa = c.swa[l] and c.window > 0
        cos, sin = trig[c.rope_base_swa if swa else c.rope_base]
        if gemma:
            q, k = rmsnorm(q, w("attn_q_norm"), c.eps), rmsnorm(k, w("attn_k_norm"), c.eps)
            q, k = rope_neox(q, cos, sin), rope_neox(k, cos, sin)
        else:
            q, k = rope(q, cos, sin), rope(k, cos, sin)
        o = np.empty((n_all, H, hd))
        for s0, s1 in zip(starts[:-1], starts[1:]):
            n = s1 - s0
            mask = np.triu(np.full((n, n), -np.inf), k=1)  # row = query position, column = key position
            if swa:
                mask += np.tril(np.full((n, n), -np.inf), k=-c.window)  # key c.window or more back
            for j in range(H):
                g = j // (H // G)
                sc = q[s0:s1, j, :] @ k[s0:s1, g, :].T * c.q_scale + mask
                sc = np.exp(sc - sc.max(axis=1, keepdims=True))
                sc /= sc.sum(axis=1, keepdims=True)
                o[s0:s1, j, :] = sc @ v[s0:s1, g, :]
        a = o.reshape(n_all, H * hd) @ w("attn_output").T
        if gemma:
            a = rmsnorm(a, w("post_attention_norm"), c.eps)
        x = x + a
        u = rmsnorm(x, w("ffn_norm"), c.eps)
        gate = u @ w("ffn_gate").T
        up = u @ w("ffn_up").T
        if gemma:
            x = x + rmsnorm((gelu_tanh(gate) * up) @ w("ffn_down").T, w("post_ffw_norm"), c.eps)
        else:
            x = x + (gate / (1.0 + np.exp(-gate)) * up) @ w("ffn_down").T
        if trace is not None:
            trace(l, x)
    return rmsnorm(x, t["output_norm.weight"], c.eps)


def softcap(c, logits):
    """Gemma's final soft-cap cap * tanh(logits / cap), when the file has one."""
    return c.softcap * np.tanh(logits / c.softcap) if c.softcap else logits


def output_matrix(t):
    """Wout: output.weight or, when the file has none, token_embd.weight (tied), in float64."""
    return t["output.weight" if "output.weight" in t else "token_embd.weight"]


def forward(c, t, tokens, rope_f32=False, trace=None):
    """Logits at every position of one prompt, [n_tokens, vocab]."""
    return softcap(c, forward_hidden(c, t, [tokens], rope_f32, trace) @ output_matrix(t).T)


def forward_many(c, t, prompts, out, rope_f32=False, rows_per_chunk=64):
    """Writes the float64 logits of every position of every prompt to the open binary file `out`."""
    xn = forward_hidden(c, t, prompts, rope_f32)
    wout = output_matrix(t)
    for s in range(0, xn.shape[0], rows_per_chunk):
        softcap(c, xn[s:s + rows_per_chunk] @ wout.T).astype("<f8").tofile(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--tokens", help="comma-separated token ids")
    src.add_argument("--prompts-from", help="a reference logits file (QRLG) whose prompts to run")
    ap.add_argument("--out", help="write logits here (raw float64, n_tokens x vocab_size)")
    ap.add_argument("--trace", help="directory for per-layer residual streams")
    ap.add_argument("--rope-f32", action="store_true", help="ggml-style float32 RoPE angles")
    a = ap.parse_args()

    meta, tensors = read_gguf(a.model)
    c = Config(meta, tensors)
    tied = "output.weight" not in tensors
    types = sorted({tensors.type_name(n) for n in tensors})
    if a.prompts_from:
        import refdata

        prompts = [[int(x) for x in p.tokens] for p in refdata.read_logits(a.prompts_from).prompts]
    else:
        prompts = [[int(s) for s in a.tokens.split(",") if s.strip()]]
    for tokens in prompts:
        if not tokens or min(tokens) < 0 or max(tokens) >= c.vocab_size:
            sys.exit(f"token ids must be in 0..{c.vocab_size - 1}")
    print(f"{os.path.basename(a.model)}: {c} {'tied' if tied else 'output.weight'}; weight types "
          f"{', '.join(types)}; {len(prompts)} prompt(s), {sum(map(len, prompts))} tokens", file=sys.stderr)

    if a.prompts_from:
        if not a.out:
            sys.exit("--prompts-from needs --out")
        with open(a.out, "wb") as f:
            forward_many(c, tensors, prompts, f, rope_f32=a.rope_f32)
        return

    tokens = prompts[0]
    trace = None
    if a.trace:
        os.makedirs(a.trace, exist_ok=True)

        def trace(layer, x):
            x.astype("<f8").tofile(os.path.join(a.trace, f"x_{layer}.f64"))
            rms = np.sqrt(np.mean(x * x, axis=1))
            print(f"  layer {layer:3d}: rms of x per position min {rms.min():.4g} max {rms.max():.4g}",
                  file=sys.stderr)

    logits = forward(c, tensors, tokens, rope_f32=a.rope_f32, trace=trace)
    if a.out:
        logits.astype("<f8").tofile(a.out)
    else:
        for i, row in enumerate(logits):
            top = np.argsort(-row)[:5]
            print(f"{i:4d} tok {tokens[i]:6d}: " + " ".join(f"{j}:{row[j]:.4f}" for j in top))


if __name__ == "__main__":
    main()
