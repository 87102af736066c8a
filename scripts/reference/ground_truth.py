#!/usr/bin/env python3
"""llama.cpp against the float64 truth, and against itself, for one model variant (issue 12).

    python3 scripts/reference/ground_truth.py MODEL.gguf VARIANT [--update tests/data/reference/ground_truth.tsv]
    python3 scripts/reference/ground_truth.py --markdown tests/data/reference/ground_truth.tsv

For the prompts of tests/data/reference/logits_VARIANT.bin (their token ids), computes:

1. the float64 truth: numpy_forward.py on MODEL's dequantized weights (ggml_dequant.py), every
   position;
2. llama.cpp's logits as the reference files were made (one batch per prompt, F32 KV cache, no flash
   attention; llamacpp_tool.py), and its KLD(truth || llama.cpp) over the FULL vocabulary at every
   position: mean, max, and top-1 agreement with the truth;
3. llama.cpp's spread between its own equally valid configurations, each against the one-batch run,
   measured as c_tests/reference_logits.c measures qorus against a reference file with top-64 rows
   only (KLD on the reference's top-64 ids, both sides renormalised there; top-1 agreement; max
   |dlogit| on the top-64): token by token (n_batch 1), flash attention, F16 KV cache.

With --update, llama.cpp's per-position KLD to the truth (one batch) also goes to
ground_truth_positions.tsv beside the TSV, for the paired comparison in tests/numpy_reference.rs.

The first step also checks that the one-batch run reproduces the committed reference file exactly.
--update replaces (or adds) the variant's row in the TSV that tests/numpy_reference.rs and
tests/reference.rs read; --markdown prints that file as the tables in tests/data/README.md.
"""
import argparse
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import llamacpp_tool  # noqa: E402
import numpy_forward  # noqa: E402
import refdata  # noqa: E402

COLUMNS = ["variant", "positions",
           "llama_f64_kld_mean", "llama_f64_kld_max", "llama_f64_top1",
           "tbt_kld_mean", "tbt_kld_max", "tbt_top1", "tbt_dlogit",
           "flash_kld_mean", "flash_kld_max", "flash_top1", "flash_dlogit",
           "kvf16_kld_mean", "kvf16_kld_max", "kvf16_top1", "kvf16_dlogit",
           "tbt_f64_kld_mean", "flash_f64_kld_mean", "kvf16_f64_kld_mean"]


def log_softmax(x):
    x = x.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def kld_rows(p_logits, q_logits):
    """KL(P || Q) per row, full rows."""
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    return np.maximum(0.0, (np.exp(lp) * (lp - lq)).sum(axis=-1))


def truth(model, prompts):
    meta, t = numpy_forward.read_gguf(model)
    c = numpy_forward.Config(meta, t)
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "truth.f64")
        with open(out, "wb") as f:
            numpy_forward.forward_many(c, t, prompts, f)
        a = np.fromfile(out, "<f8").reshape(-1, c.vocab_size)
    rows, o = [], 0
    for p in prompts:
        rows.append(a[o:o + len(p)])
        o += len(p)
    return rows


def spread(ref, rows):
    """As c_tests/reference_logits.c: (mean, max) KLD on the reference's top-k, top-1 %, max |dlogit|."""
    kl, top1, n, dmax = [], 0, 0, 0.0
    for p, r in zip(ref.prompts, rows):
        for t in range(len(p.tokens)):
            ids, vals = p.top_ids[t], p.top_vals[t].astype(np.float64)
            ours = r[t][ids].astype(np.float64)
            kl.append(float(kld_rows(vals, ours)))
            top1 += int(np.argmax(r[t]) == ids[0])
            dmax = max(dmax, float(np.abs(ours - vals).max()))
            n += 1
    return float(np.mean(kl)), float(np.max(kl)), 100.0 * top1 / n, dmax


def measure(model, variant, ref_path, threads):
    ref = refdata.read_logits(ref_path)
    prompts = [[int(x) for x in p.tokens] for p in ref.prompts]
    nv = ref.n_vocab
    base = llamacpp_tool.logits(model, prompts, nv, n_batch=512, threads=threads)
    for p, r in zip(ref.prompts, base):
        ids, vals = refdata.top_k_of(r, ref.top_k)
        if not (np.array_equal(ids, p.top_ids) and np.array_equal(vals, p.top_vals)):
            raise SystemExit(f"llama.cpp's one-batch run does not reproduce {ref_path}: wrong model file?")
    print(f"{variant}: llama.cpp reproduces {os.path.basename(ref_path)}", file=sys.stderr)
    tr = truth(model, prompts)
    k = np.concatenate([kld_rows(t, b) for t, b in zip(tr, base)])
    agree = np.concatenate([t.argmax(1) == b.argmax(1) for t, b in zip(tr, base)])
    row = {"variant": variant, "positions": len(k), "per_position": k, "llama_f64_kld_mean": float(k.mean()),
           "llama_f64_kld_max": float(k.max()), "llama_f64_top1": 100.0 * agree.mean()}
    print(f"  llama.cpp vs float64: mean KLD {k.mean():.3e}, max {k.max():.3e}, top-1 {100 * agree.mean():.2f} %",
          file=sys.stderr)
    for tag, kw in (("tbt", dict(n_batch=1)), ("flash", dict(flash=True)), ("kvf16", dict(kv_f32=False))):
        rows = llamacpp_tool.logits(model, prompts, nv, threads=threads, **kw)
        kt = np.concatenate([kld_rows(t, b) for t, b in zip(tr, rows)])
        print(f"  {tag:5s} vs float64: mean KLD {kt.mean():.3e}, max {kt.max():.3e}", file=sys.stderr)
        row[f"{tag}_f64_kld_mean"] = float(kt.mean())
        m, mx, t1, dl = spread(ref, rows)
        row.update({f"{tag}_kld_mean": m, f"{tag}_kld_max": mx, f"{tag}_top1": t1, f"{tag}_dlogit": dl})
        print(f"  {tag:5s} vs one batch: top-{ref.top_k} KLD mean {m:.3e} max {mx:.3e}, top-1 {t1:.2f} %, "
              f"max |dlogit| {dl:.3f}", file=sys.stderr)
    return row


def read_tsv(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            lines = [ln for ln in f.read().splitlines() if ln and not ln.startswith("#")]
        head = lines[0].split("\t")
        assert head == COLUMNS[:len(head)], f"{path}: columns {head}"
        for ln in lines[1:]:
            v = ln.split("\t")
            rows.append({c: (v[i] if c == "variant" else float(v[i]) if i < len(v) else float("nan"))
                         for i, c in enumerate(COLUMNS)})
    return rows


def fmt(c, v):
    if c == "variant":
        return v
    if c == "positions":
        return str(int(v))
    if c.endswith("top1"):
        return f"{v:.2f}"
    if c.endswith("dlogit"):
        return f"{v:.4f}"
    return f"{v:.4e}"


def write_tsv(path, rows):
    with open(path, "w") as f:
        f.write("# made by scripts/reference/ground_truth.py (see its doc and tests/data/README.md)\n")
        f.write("\t".join(COLUMNS) + "\n")
        for r in rows:
            f.write("\t".join(fmt(c, r[c]) for c in COLUMNS) + "\n")


def positions_path(tsv):
    """Per-position KLDs beside the TSV (ground_truth_positions.tsv)."""
    return os.path.join(os.path.dirname(tsv), "ground_truth_positions.tsv")


def markdown(path):
    """Two tables: llama.cpp's distance to the float64 truth in each setting, then its spread."""
    rows = read_tsv(path)
    print("| variant | one batch, F32 KV (reference files): mean KLD | max KLD | top-1 | token by token: mean KLD "
          "| flash attention | F16 KV cache |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['variant']} | {r['llama_f64_kld_mean']:.3e} | {r['llama_f64_kld_max']:.2e} | "
              f"{r['llama_f64_top1']:.2f} % | {r['tbt_f64_kld_mean']:.3e} | {r['flash_f64_kld_mean']:.3e} | "
              f"{r['kvf16_f64_kld_mean']:.3e} |")
    print()
    print("| variant | token by token: mean / max KLD, top-1 | flash attention | F16 KV cache |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        cfg = [f"{r[f'{t}_kld_mean']:.1e} / {r[f'{t}_kld_max']:.1e}, {r[f'{t}_top1']:.2f} %"
               for t in ("tbt", "flash", "kvf16")]
        print(f"| {r['variant']} | " + " | ".join(cfg) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?")
    ap.add_argument("variant", nargs="?")
    ap.add_argument("--reference", help="default: tests/data/reference/logits_VARIANT.bin")
    ap.add_argument("--update", help="TSV file to update with this variant's row")
    ap.add_argument("--markdown", help="print this TSV file as a markdown table")
    ap.add_argument("--threads", type=int, default=1,
                    help="llama.cpp threads (its results do not depend on it; 1 avoids spinning on a busy machine)")
    a = ap.parse_args()
    if a.markdown:
        return markdown(a.markdown)
    if not (a.model and a.variant):
        ap.error("MODEL and VARIANT are required")
    ref = a.reference or os.path.join(HERE, "..", "..", "tests", "data", "reference", f"logits_{a.variant}.bin")
    row = measure(a.model, a.variant, ref, a.threads)
    if a.update:
        rows = [r for r in read_tsv(a.update) if r["variant"] != a.variant] + [row]
        write_tsv(a.update, rows)
        print(f"updated {a.update}", file=sys.stderr)
        pp = positions_path(a.update)
        prows = [ln for ln in (open(pp).read().splitlines() if os.path.exists(pp) else [])
                 if ln and not ln.startswith("#") and ln.split("\t")[0] != a.variant]
        prows.append("\t".join([a.variant] + [f"{x:.6e}" for x in row["per_position"]]))
        with open(pp, "w") as f:
            f.write("# made by scripts/reference/ground_truth.py: per variant, KLD(truth || llama.cpp one batch) "
                    "at every position of the reference prompts, in order\n")
            f.write("\n".join(prows) + "\n")
        print(f"updated {pp}", file=sys.stderr)
    print("\t".join(fmt(c, row[c]) for c in COLUMNS))


if __name__ == "__main__":
    main()
