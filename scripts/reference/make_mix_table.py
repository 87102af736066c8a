#!/usr/bin/env python3
"""The per-tensor types llama.cpp's `llama-quantize` (0c1e570) chooses for every file type qorus
writes, for SmolLM2-135M and for the random LLaMA of make_random_llama.py, as compact tables that
the mix-rule unit tests (src/format/quant_mix_tests.rs) compare qorus's planner against.

Runs `llama-quantize --dry-run IN TYPE` (types only, nothing is quantized) and writes
tests/data/quant_mix/<model>.txt with one line per file type and tensor role:

    Q4_K_M attn_v q6_K q6_K q6_K q5_0 ...     (one type per layer, layer 0 first)
    Q4_K_M token_embd q8_0                     (tensors outside the layers)

Norm weights (F32, never quantized) are not listed.

  python3 scripts/reference/make_mix_table.py [--llama-quantize PATH] [--smollm2-f16 PATH]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TYPES = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q3_K_M",
         "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "IQ4_NL", "IQ4_XS"]
LINE = re.compile(r"^\[\s*\d+/\s*\d+\]\s+(\S+)\s+- \[.*\], type =\s+(\S+), size =.*?(?:\((\S+)\))?$")


def dry_run(lq, src, ty):
    r = subprocess.run([lq, "--dry-run", src, ty], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if r.returncode != 0:
        sys.exit(f"llama-quantize --dry-run {ty} failed:\n{r.stdout[-3000:]}")
    types = {}
    seen = 0
    for line in r.stdout.splitlines():
        m = LINE.match(line.strip())
        if m:
            seen += 1
            name, old, new = m.groups()
            types[name] = new or old
    if not seen:
        sys.exit(f"no tensor lines in llama-quantize's output for {ty}")
    return types


def table(lq, src, out, title):
    lines = [f"# {title}", "# made by scripts/reference/make_mix_table.py (llama-quantize 0c1e570 --dry-run)"]
    for ty in TYPES:
        types = dry_run(lq, src, ty)
        roles = {}
        for name, t in types.items():
            if not re.search(r"\.weight$", name) or t == "f32" and "norm" in name:
                continue  # 1-D tensors keep their type
            m = re.match(r"^blk\.(\d+)\.(.+)\.weight$", name)
            if m:
                roles.setdefault(m.group(2), {})[int(m.group(1))] = t
            else:
                lines.append(f"{ty} {name.removesuffix('.weight')} {t}")
        for role in sorted(roles):
            per = roles[role]
            lines.append(f"{ty} {role} " + " ".join(per[i] for i in range(len(per))))
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote", out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-quantize", default=os.environ.get("LLAMA_QUANTIZE") or os.path.expanduser(
        "~/.cache/qorus/llama.cpp/build-0.3.36/bin/llama-quantize"))
    models = os.environ.get("QORUS_MODEL_DIR") or os.path.expanduser("~/.cache/qorus/models")
    ap.add_argument("--smollm2-f16", default=os.path.join(models, "SmolLM2-135M-Instruct.F16.gguf"))
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/data/quant_mix"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    table(a.llama_quantize, a.smollm2_f16, os.path.join(a.out, "smollm2.txt"),
          "SmolLM2-135M: 30 layers, dim 576, ffn 1536, 9 heads / 3 KV heads, vocab 49152, tied output")
    with tempfile.TemporaryDirectory() as tmp:
        rnd = os.path.join(tmp, "random.gguf")
        subprocess.run([sys.executable, os.path.join(ROOT, "scripts/reference/make_random_llama.py"), rnd],
                       check=True, stdout=subprocess.DEVNULL)
        table(a.llama_quantize, rnd, os.path.join(a.out, "random_llama.txt"),
              "random LLaMA: 4 layers, dim 512, ffn 1536, 8 heads / 2 KV heads, vocab 49152, separate output")


if __name__ == "__main__":
    main()
