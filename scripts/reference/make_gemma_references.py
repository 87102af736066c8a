#!/usr/bin/env python3
"""llama.cpp reference logits and greedy continuations for Gemma 3 270M (Q4_K_M, the file of
scripts/fetch_models.py gemma3-270m), for tests/gemma3.rs.

    python3 scripts/reference/make_gemma_references.py ~/.cache/qorus/models/gemma-3-270m-q4_k_m.gguf

Prompts (PROMPTS below; one of them longer than Gemma's 512-position sliding window) are tokenized by llama.cpp
(llamacpp_tokenize.cpp: BOS added, special tokens parsed; the chat prompt in Gemma's turn format), then

- logits_gemma3_270m.bin: every prompt as ONE batch (n_ctx = n_batch = 1024, F32 KV cache, no flash attention,
  llamacpp_logits.cpp); top-64 at every position, full logits at the last position of the shortest and of the
  longest prompt (a full row is 1 MB at 262,144 tokens);
- greedy_gemma3_270m.bin: 32-token greedy continuations (prefill as one batch, then one token per decode,
  llamacpp_greedy.cpp), with llama.cpp's top-1/top-2 margin at each step.

Formats: tests/data/README.md. llama.cpp's spread (the same prompts token by token instead of one batch) is
printed (on the prompts of at most SPREAD_MAX_TOKENS tokens).
"""
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llamacpp_tool  # noqa: E402
import refdata  # noqa: E402

TOP_K = 64
N_CTX = 1024
MAX_NEW = 32
# llama.cpp's spread (batch vs token by token) is measured on the prompts up to this length (token by token
# with every position's 262,144 logits is slow: ~6 s per token on the shared 2-core machine).
SPREAD_MAX_TOKENS = 64
N_VOCAB = 262144
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "data", "reference")

LONG = (
    "The old observatory stood on the ridge above the village, its copper dome green with two centuries of rain. "
    "Nobody in the village could remember when the last astronomer had climbed the spiral stair, but everyone "
    "knew the story of the night the great lens cracked. It had been a cold autumn, the kind that arrives early "
    "and stays too long, and the director of the observatory, a tall and nervous man named Augustin Verel, had "
    "been waiting for weeks for a clear sky. When it finally came, he hurried up the stair with a lantern, "
    "opened the dome, and swung the telescope toward the comet that the newspapers in the capital had been "
    "writing about all summer. The temperature fell quickly after sunset. The brass tube contracted, the lens "
    "in its cell could not follow, and with a sound like a pistol shot a fine line ran across the glass from "
    "one edge to the other. Verel did not move for a long time. Then he wrote a single sentence in the "
    "logbook, closed the dome, and walked down to the village, where he asked the baker for a loaf of bread "
    "as if nothing had happened. The lens was never replaced. The university that owned the building sent "
    "letters, then inspectors, then a buyer who wanted to turn the dome into a restaurant, and each time the "
    "villagers found a reason to delay. The inspectors were given lunch that lasted until dark. The buyer was "
    "shown the road in the fog, where it turns sharply above the quarry, and he did not come back. Over the "
    "years the observatory became something else: a place where children went to dare each other, where "
    "couples carved their initials into the railing, where an old shepherd sheltered his flock during storms. "
    "The cracked lens stayed in its cell, and on certain evenings, when the sun set exactly behind the ridge, "
    "it threw a long trembling line of light across the floor of the dome, as if the sky itself had been "
    "signed. A young woman from the capital, who came to study the dialect of the valley, heard the story "
    "from four different people and wrote down four different versions. In one, Verel had broken the lens on "
    "purpose, because the comet frightened him. In another, the comet had broken it. In the third, there had "
    "never been a comet at all, only a lantern swinging on a fishing boat far out on the lake. The fourth "
    "version, told by the baker's granddaughter, was the shortest: the lens cracked because glass is glass "
    "and cold is cold, and the rest is what people say when they do not want to go home. The young woman "
    "liked that version best, and when she published her book about the valley, she put it on the last page. "
    "The next spring, a letter arrived from the university. It said, in careful and formal language, that the "
    "observatory would be restored, that a new lens would be ground, and that the village would be invited to "
    "the first night of observation. The baker's granddaughter read the letter aloud in the square, and then, "
    "because she was the kind of person who finishes things, she asked the question everyone was thinking: "
    "what will we see?"
)

PROMPTS = [
    ("short_fact", "The capital of France is"),
    ("prose", "Once upon a time, in a small village at the edge of a dark forest, there lived a girl who"),
    ("chat", "<start_of_turn>user\nWhat are three good habits for writing maintainable software? Answer briefly."
             "<end_of_turn>\n<start_of_turn>model\n"),
    ("code", "def fibonacci(n: int) -> list[int]:\n    \"\"\"Return the first n Fibonacci numbers.\"\"\"\n"),
    ("french", "Le petit village se réveillait lentement. Les boulangers sortaient les premières baguettes du four,"),
    ("cjk", "東京は日本の首都です。人工知能の研究が"),
    ("long_over_window", LONG),
]


def tokenize(model, texts):
    exe = llamacpp_tool.build_tool("llamacpp_tokenize")
    inp = "".join(t.encode("utf-8").hex() + "\n" for t in texts)
    r = subprocess.run([exe, model], input=inp.encode(), capture_output=True, check=True)
    return [[int(x) for x in l.split()] for l in r.stdout.decode().split("\n")[: len(texts)]]


def softmax(x):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    model = sys.argv[1]
    toks = tokenize(model, [t for _, t in PROMPTS])
    for (name, _), t in zip(PROMPTS, toks):
        print(f"{name}: {len(t)} tokens", file=sys.stderr)
    assert max(len(t) for t in toks) > 512, "one prompt must be longer than the sliding window"
    assert max(len(t) for t in toks) + MAX_NEW <= N_CTX

    lf = refdata.LogitsFile("gemma3_270m", llamacpp_tool.GENERATOR, N_VOCAB, TOP_K,
                            refdata.FLAG_ADD_BOS | refdata.FLAG_KV_F32)
    lens = [len(t) for t in toks]
    kl_all, dl_all, agree, n_all = [], 0.0, 0, 0
    for i, t in enumerate(toks):
        batch = llamacpp_tool.logits(model, [t], N_VOCAB, n_batch=N_CTX, n_ctx=N_CTX)[0]
        if len(t) <= SPREAD_MAX_TOKENS:
            single = llamacpp_tool.logits(model, [t], N_VOCAB, n_batch=1, n_ctx=N_CTX)[0]
            p, q = softmax(batch), softmax(single)
            kl_all.append((p * (np.log(p + 1e-300) - np.log(q + 1e-300))).sum(-1))
            dl_all = max(dl_all, float(np.abs(batch - single).max()))
            agree += int((batch.argmax(-1) == single.argmax(-1)).sum())
            n_all += len(t)
            del single
        full = [len(t) - 1] if len(t) in (min(lens), max(lens)) else []
        ids, vals = refdata.top_k_of(batch, TOP_K)
        lf.prompts.append(refdata.LogitsPrompt(np.array(t, dtype=np.int32), np.array(full, dtype=np.uint32),
                                               batch[full].reshape(len(full), N_VOCAB), ids, vals))
        del batch
    k = np.concatenate(kl_all)
    print(f"llama.cpp batch vs token-by-token over {n_all} positions: max |dlogit| {dl_all:.3g}, "
          f"mean KLD {k.mean():.3g}, max KLD {k.max():.3g}, top-1 {100 * agree / n_all:.2f} %")
    out = os.path.join(OUT_DIR, "logits_gemma3_270m.bin")
    refdata.write_logits(out, lf)
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")

    exe = llamacpp_tool.build_tool("llamacpp_greedy")
    r = subprocess.run([exe, model, str(N_CTX), str(MAX_NEW), "2"],
                       input="".join(" ".join(map(str, t)) + "\n" for t in toks).encode(), capture_output=True,
                       check=True)
    gf = refdata.GreedyFile("gemma3_270m", llamacpp_tool.GENERATOR, N_VOCAB, MAX_NEW, 1,
                            refdata.FLAG_ADD_BOS | refdata.FLAG_KV_F32)
    for t, line in zip(toks, r.stdout.decode().strip().split("\n")):
        ids, margins = line.split(";")
        gf.prompts.append(refdata.GreedyPrompt(np.array(t, dtype=np.int32),
                                               np.array([int(x) for x in ids.split()], dtype=np.int32),
                                               np.array([float(x) for x in margins.split()], dtype=np.float32)))
    out = os.path.join(OUT_DIR, "greedy_gemma3_270m.bin")
    refdata.write_greedy(out, gf)
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()
