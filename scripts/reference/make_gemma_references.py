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

Formats: tests/data/README.md. llama.cpp's spread is printed: the same prompts as one batch, token by token,
with flash attention and with an F16 KV cache, every configuration against every other, at every position,
measured as tests/gemma3.rs measures qorus (KLD on the first configuration's top-64, top-1 agreement, misses
at a margin >= 0.5), and the envelope of those numbers (tests/gemma3.rs's bounds).
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
# Top-1 misses are counted where llama.cpp's own top-1/top-2 margin is at least this (as tests/gemma3.rs).
MARGIN = 0.5
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


def top_kld(vals, ours):
    """KL(P || Q) on the reference's top-k, both renormalised over that set (as tests/gemma3.rs)."""
    lp = vals.astype(np.float64)
    lq = ours.astype(np.float64)
    lp = lp - lp.max() - np.log(np.exp(lp - lp.max()).sum())
    lq = lq - lq.max() - np.log(np.exp(lq - lq.max()).sum())
    return max(0.0, float((np.exp(lp) * (lp - lq)).sum()))


def compare(ref_rows, rows):
    """rows against ref_rows (one prompt, [n, n_vocab] each) as tests/gemma3.rs compares qorus with the
    reference: per position the KLD on ref's top-64, whether the top-1 agrees, whether it is a miss at a
    margin >= MARGIN; and the largest |dlogit| on those top-64."""
    ids, vals = refdata.top_k_of(ref_rows, TOP_K)
    kl, same, miss, dl = [], [], 0, 0.0
    for i in range(len(ref_rows)):
        kl.append(top_kld(vals[i], rows[i][ids[i]]))
        s = int(rows[i].argmax()) == int(ids[i][0])
        same.append(s)
        miss += (not s) and float(vals[i][0]) - float(vals[i][1]) >= MARGIN
        dl = max(dl, float(np.abs(rows[i][ids[i]] - vals[i]).max()))
    return kl, same, miss, dl


def spread(model, toks):
    """llama.cpp's spread between its own valid configurations (one batch = the reference; token by token;
    flash attention; F16 KV cache), on every position of every prompt, measured as tests/gemma3.rs measures
    qorus: KLD on the first configuration's top-64 (renormalised), top-1 agreement, top-1 misses where the
    first configuration's top-1/top-2 margin is >= MARGIN. Printed for each configuration against the one
    batch, then for every ordered pair, with the envelope (largest mean and max, smallest top-1)."""
    configs = (("one batch", dict(n_batch=N_CTX)), ("token by token", dict(n_batch=1)),
               ("flash attention", dict(n_batch=N_CTX, flash=True)),
               ("F16 KV cache", dict(n_batch=N_CTX, kv_f32=False)))
    runs = [[llamacpp_tool.logits(model, [t], N_VOCAB, n_ctx=N_CTX, **kw)[0] for t in toks] for _, kw in configs]
    env = {"mean": 0.0, "max": 0.0, "top1": 100.0, "miss": 0}
    for a in range(len(configs)):
        for b in range(len(configs)):
            if a == b:
                continue
            kl, same, miss, dl, per_prompt = [], [], 0, 0.0, []
            for (pname, _), ra, rb in zip(PROMPTS, runs[a], runs[b]):
                k, s, m, d = compare(ra, rb)
                kl += k
                same += s
                miss += m
                dl = max(dl, d)
                per_prompt.append(f"{pname} {np.mean(k):.2e}/{np.max(k):.2e}")
            mean, mx, top1 = float(np.mean(kl)), float(np.max(kl)), 100.0 * float(np.mean(same))
            env = {"mean": max(env["mean"], mean), "max": max(env["max"], mx), "top1": min(env["top1"], top1),
                   "miss": max(env["miss"], miss)}
            if a == 0 or b == 0:
                print(f"llama.cpp {configs[b][0]} against {configs[a][0]}, {len(kl)} positions: top-{TOP_K} KLD "
                      f"mean {mean:.3e}, max {mx:.3e}; max |dlogit| (top-{TOP_K}) {dl:.3f}; top-1 {top1:.2f} % "
                      f"({miss} misses at a margin >= {MARGIN})", flush=True)
                if a == 0:
                    print(f"  per prompt (mean/max): {'; '.join(per_prompt)}", flush=True)
            else:
                print(f"llama.cpp {configs[b][0]} against {configs[a][0]}: mean {mean:.3e}, max {mx:.3e}, "
                      f"top-1 {top1:.2f} % ({miss} misses)", flush=True)
    print(f"llama.cpp's spread (envelope over the {len(configs) * (len(configs) - 1)} ordered pairs): top-{TOP_K} "
          f"KLD mean <= {env['mean']:.3e}, max <= {env['max']:.3e}; top-1 >= {env['top1']:.2f} %; "
          f"misses at a margin >= {MARGIN} <= {env['miss']}", flush=True)


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
    for t in toks:
        batch = llamacpp_tool.logits(model, [t], N_VOCAB, n_batch=N_CTX, n_ctx=N_CTX)[0]
        full = [len(t) - 1] if len(t) in (min(lens), max(lens)) else []
        ids, vals = refdata.top_k_of(batch, TOP_K)
        lf.prompts.append(refdata.LogitsPrompt(np.array(t, dtype=np.int32), np.array(full, dtype=np.uint32),
                                               batch[full].reshape(len(full), N_VOCAB), ids, vals))
        del batch
    out = os.path.join(OUT_DIR, "logits_gemma3_270m.bin")
    refdata.write_logits(out, lf)
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")
    spread(model, toks)

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
