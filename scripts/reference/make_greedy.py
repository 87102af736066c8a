#!/usr/bin/env python3
"""Golden greedy continuations from llama.cpp (llama-cpp-python) for the generation tests.

For one model file and each prompt below: the prompt is prefilled as one batch, then up to MAX_NEW
tokens are generated one per step by greedy decoding (temperature 0), stopping after EOS. Written to
tests/data/reference/greedy_<variant>.bin (format: tests/data/README.md) with, per generated token, the
margin between the best and second-best logit (small margins are where a correct implementation may
legitimately pick the other token).

The continuation is computed twice and must agree:
  1. llama-cpp-python's Llama.generate(temp=0.0, repeat_penalty=1.0, frequency/presence 0): its sampler
     chain is penalties (neutral with these values) + greedy;
  2. a manual loop: eval, argmax over the logits of the last position (ties: lowest id), eval that token.

  python3 scripts/reference/make_greedy.py MODEL.gguf VARIANT [--out-dir tests/data/reference]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference_logits as mrl  # noqa: E402
import refdata  # noqa: E402

MAX_NEW = 32

PROMPTS = [
    ("chat_instruction",
     [{"role": "user", "content": "Write a short poem about the ocean."}]),
    ("story", "Once upon a time, in a small village at the foot of the mountains, there lived"),
    ("code", "def is_prime(n):\n    \"\"\"Return True if n is a prime number.\"\"\"\n"),
    ("factual_question", "Question: What is the boiling point of water at sea level in Celsius?\nAnswer:"),
    ("list", "Here is a list of the planets of the solar system:\n1. Mercury\n2."),
    ("chat_fact",
     [{"role": "user", "content": "What is the capital of Japan?"}]),
]


def manual_greedy(llm, prompt, eos):
    llm.reset()
    llm.eval(prompt)
    out, margins = [], []
    while len(out) < MAX_NEW:
        row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        order = np.argsort(-row, kind="stable")
        tok = int(order[0])
        out.append(tok)
        margins.append(float(row[order[0]] - row[order[1]]))
        if tok == eos:
            break
        llm.eval([tok])
    return out, margins


def sampler_greedy(llm, prompt, eos):
    llm.reset()
    out = []
    for tok in llm.generate(prompt, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, typical_p=1.0, repeat_penalty=1.0,
                            frequency_penalty=0.0, presence_penalty=0.0, reset=True):
        out.append(int(tok))
        if tok == eos or len(out) == MAX_NEW:
            break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("variant")
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data",
                                                      "reference"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kv-f16", action="store_true", help="llama.cpp's default F16 KV cache")
    a = ap.parse_args()

    llm = mrl.load(a.model, 512, a.kv_f16, a.threads)
    eos = int(llm.token_eos())
    flags = ((refdata.FLAG_ADD_BOS if mrl.add_bos_flag(llm) else 0) | (0 if a.kv_f16 else refdata.FLAG_KV_F32)
             | refdata.FLAG_SAMPLER_CHECKED)
    f = refdata.GreedyFile(a.variant, mrl.generator_name(), llm.n_vocab(), MAX_NEW, eos, flags)
    for name, content in PROMPTS:
        text = mrl.render_chat(llm, content) if isinstance(content, list) else content
        prompt = mrl.tokenize(llm, text)
        manual, margins = manual_greedy(llm, prompt, eos)
        sampled = sampler_greedy(llm, prompt, eos)
        if manual != sampled:
            raise SystemExit(f"{name}: llama.cpp's greedy sampler and the manual argmax disagree:\n"
                             f"  sampler {sampled}\n  manual  {manual}")
        f.prompts.append(refdata.GreedyPrompt(np.array(prompt, np.int32), np.array(manual, np.int32),
                                              np.array(margins, np.float32)))
        text_out = llm.detokenize(manual).decode("utf-8", errors="replace")
        print(f"{name:18s} {len(prompt):3d} prompt tokens, {len(manual)} generated, min margin "
              f"{min(margins):.4f}: {text_out!r}")
    os.makedirs(a.out_dir, exist_ok=True)
    path = os.path.join(a.out_dir, f"greedy_{a.variant}.bin")
    refdata.write_greedy(path, f)
    g = refdata.read_greedy(path)
    refdata.validate_greedy(g)
    for p, q in zip(f.prompts, g.prompts):
        assert np.array_equal(p.prompt, q.prompt) and np.array_equal(p.continuation, q.continuation)
        assert np.array_equal(p.margins, q.margins)
    print(f"wrote {path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
