#!/usr/bin/env python3
"""Simulated activation rounding: how far from the float64 truth each way of quantizing the
activations to 8 bits before every weight product puts a model (tests/data/README.md, "Simulated
activation rounding").

    python3 scripts/reference/act_quant_sim.py MODEL.gguf VARIANT [--schemes a,b,...] [--reference FILE]

Runs the float64 forward of scripts/reference/numpy_forward.py (llama architecture) on the prompts of
tests/data/reference/logits_VARIANT.bin (their token ids; every position, each prompt from position 0)
once per scheme, all schemes in lockstep so that each weight is dequantized once. In a scheme, the
input of every weight product (q, k, v, attention output, gate, up, down, output head) is
quantized and dequantized as the scheme says, then multiplied in float64 by the dequantized weights;
nothing else is rounded (attention, norms, residual: float64, as the truth). Codes are computed from
the float32 value of the activation, as the kernels do. Prints, per scheme, mean / max KLD(truth ||
scheme) over the full vocabulary at every position, top-1 agreement, and the paired difference to
scheme `llama` with two standard errors; and, when tests/data/reference/ground_truth_positions.tsv
has the variant, llama.cpp's measured mean and the correlation of `llama`'s per-position KLDs with it;
and how often each power-of-two shift was chosen (sub3 / sub7).

Schemes (the weight's type decides the activation format, as in ggml's vec_dot_type):
  none          the truth: nothing rounded.
  llama         as llama.cpp (and qorus before its Q8_K sub-scales): Q8_0 per 32 values (scale amax/127 stored as f16, codes
                round-half-even of x * 127/amax) for the 32-block types Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
                IQ4_NL (Q8_1 for Q4_1 / Q5_1 has the same codes and scale); Q8_K per 256 (f32 scale
                d = max / -127, max the signed value of largest magnitude, codes round-half-even,
                clamped to +-127) for Q2_K..Q6_K and IQ4_XS.
  sub3, sub7    as llama, but Q8_K gets per-32 power-of-two sub-scales: sub-block j of a 256-block
                uses scale d * 2^-s_j, s_j the largest shift <= 3 (sub7: <= 7) whose codes stay
                within +-127 (an integer kernel would multiply the sub-block's dot by 2^(3 - s_j));
                sub3 is what qorus does (src/kernels/kdot.rs).
  mul4          as llama, but Q8_K gets per-32 4-bit integer sub-scales: sub-block j uses scale
                d * a_j / 16, a_j = ceil(16 * m_j / 127) in 1..16 (m_j: its largest code before).
  q8_0          every product gets Q8_0 per-32 activations (K types too).
  llama-nohead  as llama, but the output head's input is not rounded.
  llama-konly   only the products with K-type weights are rounded (as llama); the others are exact.
  llama-headonly only the output head's input is rounded (as llama).
  X-konly       (X = sub3, sub7, mul4, q8_0) only the K-type products are rounded, as X does.
F32 / F16 / BF16 weights get exact activations in every scheme (qorus multiplies them in f32;
llama.cpp would round the activations of F16 / BF16 weights to f16 / bf16); the SmolLM2 and
random-llama-d512 mixes have none among their products.

Schemes that round exactly the same products the same way for this model (e.g. sub3 and llama on
an all-Q8_0 model) are computed once. Only numpy is needed; set OMP_NUM_THREADS=1 (and nice) on a
shared machine.
"""
import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import numpy_forward as nf  # noqa: E402
import refdata  # noqa: E402

T32 = {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "IQ4_NL"}
TK = {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_XS"}
TFLOAT = {"F32", "F16", "BF16"}
F32 = np.float32


def f16(x):
    return x.astype(np.float16).astype(np.float64)


def q8_0(x):
    """Quantize-dequantize [n, k] activations as ggml's (AVX) quantize_row_q8_0 / q8_1."""
    n, k = x.shape
    b = x.astype(F32).reshape(n, k // 32, 32)
    amax = np.abs(b).max(axis=-1, keepdims=True)
    d = amax / F32(127)
    with np.errstate(divide="ignore"):
        idv = np.where(amax != 0, F32(127) / amax, F32(0)).astype(F32)
    q = np.clip(np.rint(b * idv), -127, 127)
    return (q.astype(np.float64) * f16(d)).reshape(n, k)


def q8_k(x, max_shift=0):
    """Quantize-dequantize [n, k] activations as ggml's quantize_row_q8_K (max_shift 0), or with
    per-32 power-of-two sub-scales 2^-s, s <= max_shift."""
    n, k = x.shape
    b = x.astype(F32).reshape(n, k // 256, 256)
    i = np.abs(b).argmax(axis=-1)[..., None]  # first index of the largest magnitude, as ggml
    mx = np.take_along_axis(b, i, axis=-1)
    zero = mx == 0
    with np.errstate(divide="ignore"):
        iscale = np.where(zero, F32(0), F32(-127) / np.where(zero, F32(1), mx)).astype(F32)
    y = (b * iscale).astype(F32)  # iscale * x, float32
    d = np.where(zero, 0.0, (F32(1) / np.where(zero, F32(1), iscale)).astype(F32)).astype(np.float64)
    if max_shift == 0:
        q = np.minimum(np.rint(y), 127)
        return (q.astype(np.float64) * d).reshape(n, k)
    ys = y.reshape(n, k // 256, 8, 32)
    m = np.abs(ys).max(axis=-1, keepdims=True)
    s = np.zeros(m.shape, dtype=np.int64)
    for sh in range(1, max_shift + 1):  # largest shift whose largest code still rounds to <= 127
        s = np.where(np.rint(m * F32(2.0 ** sh)) <= 127, sh, s)
    SHIFTS[max_shift] = SHIFTS.get(max_shift, 0) + np.bincount(s.ravel(), minlength=max_shift + 1)
    scale = np.ldexp(F32(1), s).astype(F32)  # 2^s, exact
    q = np.clip(np.rint(ys * scale), -127, 127)
    deq = q.astype(np.float64) * np.ldexp(1.0, -s) * d[..., None]
    return deq.reshape(n, k)


def q8_k_mul(x, bits=4):
    """Q8_K with per-32 integer sub-scale multipliers: sub-block j uses scale d * a_j / 2^bits,
    a_j = ceil(2^bits * m_j / 127) in 1..2^bits, m_j the sub-block's largest |x| / |d| (the codes stay
    within +-127; an integer kernel would multiply the sub-block's dot by a_j, as by a weight scale)."""
    n, k = x.shape
    b = x.astype(F32).reshape(n, k // 256, 256)
    i = np.abs(b).argmax(axis=-1)[..., None]
    mx = np.take_along_axis(b, i, axis=-1)
    zero = mx == 0
    with np.errstate(divide="ignore"):
        iscale = np.where(zero, F32(0), F32(-127) / np.where(zero, F32(1), mx)).astype(F32)
    y = (b * iscale).astype(F32).reshape(n, k // 256, 8, 32)
    d = np.where(zero, 0.0, (F32(1) / np.where(zero, F32(1), iscale)).astype(F32)).astype(np.float64)
    top = 1 << bits
    m = np.abs(y).max(axis=-1, keepdims=True).astype(np.float64)
    a = np.clip(np.ceil(top * m / 127.0), 1, top)
    q = np.clip(np.rint(y * (top / a).astype(F32)), -127, 127)
    deq = q.astype(np.float64) * (a / top) * d[..., None]
    return deq.reshape(n, k)


SHIFTS = {}  # max shift -> histogram of the chosen shifts (every sub-block of every call)


def exact(x):
    return x


def q8k_sub(sh):
    return lambda x: q8_k(x, sh)


# scheme -> rule(weight type name, is the output head) -> (quantizer, key for deduplication)
def rule_llama(ty, head):
    if ty in T32:
        return q8_0, "q8_0"
    if ty in TK:
        return q8_k, "q8_k"
    return exact, "exact"


def rule_sub(sh):
    def r(ty, head):
        if ty in TK:
            return q8k_sub(sh), f"q8_k_sub{sh}"
        return rule_llama(ty, head)
    return r


def rule_mul(bits):
    def r(ty, head):
        if ty in TK:
            return (lambda x: q8_k_mul(x, bits)), f"q8_k_mul{bits}"
        return rule_llama(ty, head)
    return r


def konly(rule):
    return lambda ty, head: rule(ty, head) if ty in TK else (exact, "exact")


SCHEMES = {
    "none": lambda ty, head: (exact, "exact"),
    "llama": rule_llama,
    "sub3": rule_sub(3),
    "sub7": rule_sub(7),
    "mul4": rule_mul(4),
    "q8_0": lambda ty, head: (q8_0, "q8_0") if ty in T32 | TK else (exact, "exact"),
    "llama-nohead": lambda ty, head: (exact, "exact") if head else rule_llama(ty, head),
    "llama-konly": lambda ty, head: rule_llama(ty, head) if ty in TK else (exact, "exact"),
    "llama-headonly": lambda ty, head: rule_llama(ty, head) if head else (exact, "exact"),
    "sub3-konly": konly(rule_sub(3)),
    "sub7-konly": konly(rule_sub(7)),
    "mul4-konly": konly(rule_mul(4)),
    "q8_0-konly": lambda ty, head: (q8_0, "q8_0") if ty in TK else (exact, "exact"),
}
DEFAULT = ("none,llama,sub3,sub7,mul4,q8_0,llama-nohead,llama-headonly,llama-konly,sub3-konly,sub7-konly,"
           "mul4-konly,q8_0-konly")
MATS = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]


def log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def kld_rows(p_logits, q_logits):
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    return np.maximum(0.0, (np.exp(lp) * (lp - lq)).sum(axis=-1))


def layer(c, l, x, W, qa, trig, starts):
    """One llama layer, as numpy_forward.forward_hidden (same operations in the same order), with
    the input of each weight product passed through qa[name]."""
    n_all = x.shape[0]
    H, G, hd = c.n_heads, c.n_kv_heads, c.head_dim
    mm = lambda u, s: qa[s](u) @ W[s].T  # noqa: E731
    u = nf.rmsnorm(x, W["attn_norm"], c.eps)
    q = mm(u, "attn_q").reshape(n_all, H, hd)
    k = mm(u, "attn_k").reshape(n_all, G, hd)
    v = mm(u, "attn_v").reshape(n_all, G, hd)
    cos, sin = trig
    q, k = nf.rope(q, cos, sin), nf.rope(k, cos, sin)
    o = np.empty((n_all, H, hd))
    for s0, s1 in zip(starts[:-1], starts[1:]):
        n = s1 - s0
        mask = np.triu(np.full((n, n), -np.inf), k=1)
        for j in range(H):
            g = j // (H // G)
            sc = q[s0:s1, j, :] @ k[s0:s1, g, :].T * c.q_scale + mask
            sc = np.exp(sc - sc.max(axis=1, keepdims=True))
            sc /= sc.sum(axis=1, keepdims=True)
            o[s0:s1, j, :] = sc @ v[s0:s1, g, :]
    x = x + mm(o.reshape(n_all, H * hd), "attn_output")
    u = nf.rmsnorm(x, W["ffn_norm"], c.eps)
    gate = mm(u, "ffn_gate")
    up = mm(u, "ffn_up")
    return x + mm(gate / (1.0 + np.exp(-gate)) * up, "ffn_down")


def simulate(model, prompts, schemes, rows_per_chunk=64):
    """{scheme: (per-position KLD to the truth, per-position top-1 agreement)}, and the schemes
    computed as another (dedup map)."""
    meta, t = nf.read_gguf(model)
    c = nf.Config(meta, t)
    if c.arch != "llama":
        raise SystemExit("act_quant_sim.py handles the llama architecture only")
    head_name = "output.weight" if "output.weight" in t else "token_embd.weight"
    names = [f"blk.{l}.{s}.weight" for l in range(c.n_layers) for s in MATS] + [head_name]
    types = {n: t.type_name(n) for n in names}
    for n, ty in types.items():
        if ty not in T32 | TK | TFLOAT:
            raise SystemExit(f"{n}: type {ty} not classified")
    # Deduplicate: two schemes that treat every product alike are one computation.
    sig, alias = {}, {}
    for s in schemes:
        key = tuple(SCHEMES[s](types[n], n == head_name)[1] for n in names)
        alias[s] = sig.setdefault(key, s)
    run = [s for s in schemes if alias[s] == s]
    if "none" not in run:
        run.insert(0, "none")
    print(f"{os.path.basename(model)}: {c}; head {head_name} ({types[head_name]}); product types "
          f"{sorted(set(types.values()))}; schemes run: {', '.join(run)}", file=sys.stderr)

    lens = [len(p) for p in prompts]
    starts = np.cumsum([0] + lens)
    pos = np.concatenate([np.arange(n) for n in lens])
    ang = nf.rope_angles(c, max(lens))
    trig = (np.cos(ang)[pos], np.sin(ang)[pos])
    emb = t["token_embd.weight"]
    x0 = emb[np.concatenate([np.asarray(p) for p in prompts])]
    del emb
    xs = {s: x0.copy() for s in run}
    for l in range(c.n_layers):
        W = {s: t[f"blk.{l}.{s}.weight"] for s in MATS + ["attn_norm", "ffn_norm"]}
        for s in run:
            qa = {m: SCHEMES[s](types[f"blk.{l}.{m}.weight"], False)[0] for m in MATS}
            xs[s] = layer(c, l, xs[s], W, qa, trig, starts)
    g = t["output_norm.weight"]
    xn = {s: nf.rmsnorm(xs[s], g, c.eps) for s in run}
    wout = t[head_name]
    res = {s: ([], []) for s in run if s != "none"}
    for r0 in range(0, starts[-1], rows_per_chunk):
        r1 = min(r0 + rows_per_chunk, starts[-1])
        tr = xn["none"][r0:r1] @ wout.T
        for s in res:
            lo = SCHEMES[s](types[head_name], True)[0](xn[s][r0:r1]) @ wout.T
            res[s][0].append(kld_rows(tr, lo))
            res[s][1].append(tr.argmax(1) == lo.argmax(1))
    out = {"none": (np.zeros(starts[-1]), np.ones(starts[-1], bool))}
    out.update({s: (np.concatenate(a), np.concatenate(b)) for s, (a, b) in res.items()})
    return {s: out[alias[s]] for s in schemes}, alias


def llama_positions(variant):
    path = os.path.join(HERE, "..", "..", "tests", "data", "reference", "ground_truth_positions.tsv")
    if not os.path.exists(path):
        return None
    for ln in open(path).read().splitlines():
        v = ln.split("\t")
        if ln and not ln.startswith("#") and v[0] == variant:
            return np.array([float(z) for z in v[1:]])
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("variant", help="reference label: prompts of tests/data/reference/logits_VARIANT.bin")
    ap.add_argument("--reference", help="default: tests/data/reference/logits_VARIANT.bin")
    ap.add_argument("--schemes", default=DEFAULT, help=f"comma-separated, of {', '.join(SCHEMES)}")
    ap.add_argument("--tsv", action="store_true", help="print one tab-separated line per scheme")
    a = ap.parse_args()
    schemes = [s for s in a.schemes.split(",") if s]
    for s in schemes:
        if s not in SCHEMES:
            ap.error(f"unknown scheme {s}")
    ref = a.reference or os.path.join(HERE, "..", "..", "tests", "data", "reference", f"logits_{a.variant}.bin")
    prompts = [[int(x) for x in p.tokens] for p in refdata.read_logits(ref).prompts]
    t0 = time.time()
    res, alias = simulate(a.model, prompts, schemes)
    n = len(next(iter(res.values()))[0])
    print(f"{a.variant}: {n} positions, {time.time() - t0:.0f} s", file=sys.stderr)
    llama = llama_positions(a.variant)
    base = res.get("llama", (None,))[0]
    for s in schemes:
        k, top = res[s]
        line = f"{a.variant}\t{s}\t{k.mean():.4e}\t{k.max():.3e}\t{100 * top.mean():.2f}"
        extra = f" (= {alias[s]})" if alias[s] != s else ""
        if base is not None and s != "llama":
            dd = k - base
            line += f"\t{dd.mean():+.3e}\t{2 * dd.std(ddof=1) / np.sqrt(n):.3e}"
        else:
            line += "\t\t"
        if a.tsv:
            print(line)
        else:
            f = line.split("\t")
            print(f"{f[0]:>14} {f[1]:<15} mean KLD {f[2]} max {f[3]} top-1 {f[4]} %"
                  + (f"  - llama: {f[5]} (2 SE {f[6]})" if f[5] else "") + extra)
    for sh, h in sorted(SHIFTS.items()):
        print(f"{a.variant}: shifts chosen with max {sh} (all sub-blocks of Q8_K inputs, every scheme using it): "
              + " ".join(f"{j}:{100 * c / h.sum():.1f}%" for j, c in enumerate(h)))
    if llama is not None and base is not None and len(llama) == n:
        dl = base - llama
        print(f"{a.variant}: llama.cpp measured (one batch) mean KLD {llama.mean():.4e}; simulated llama "
              f"{base.mean():.4e} (ratio {base.mean() / llama.mean():.3f}); per-position correlation "
              f"{np.corrcoef(base, llama)[0, 1]:.3f}; paired sim - llama.cpp {dl.mean():+.2e} "
              f"(2 SE {2 * dl.std(ddof=1) / np.sqrt(n):.2e})")
        if "sub3" in res:
            d3 = res["sub3"][0] - llama
            se = 2 * d3.std(ddof=1) / np.sqrt(n)
            print(f"{a.variant}: sub3 - llama.cpp measured {d3.mean():+.2e} (2 SE {se:.2e}), "
                  f"ratio {res['sub3'][0].mean() / llama.mean():.3f}")


if __name__ == "__main__":
    main()
