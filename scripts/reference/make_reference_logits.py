#!/usr/bin/env python3
"""Reference logits from llama.cpp (llama-cpp-python) for the forward-pass tests.

For one model file, runs every prompt below through llama.cpp as ONE batch with logits for every
position (logits_all), and writes tests/data/reference/logits_<variant>.bin (format: tests/data/README.md):
the prompt's token ids, the full logits at a few positions (first/middle/last, see FULL_AT) and the top-64
ids and values at every position.

Tokenization is llama.cpp's (add_special=True, which adds BOS only when the model's metadata
tokenizer.ggml.add_bos_token says so -- SmolLM2 says false; parse_special=True so <|im_start|> etc. are
single tokens). The KV cache is F32 and flash attention off (our cache is F32, spec section 5.4); pass
--kv-f16 for llama.cpp's defaults.

  pip install llama-cpp-python numpy jinja2
  python3 scripts/reference/make_reference_logits.py MODEL.gguf VARIANT [--out-dir tests/data/reference]

VARIANT is a label (F16, Q8_0, Q4_0) stored in the file and used in its name.

Without llama-cpp-python, llama.cpp's own build tree can run the same configuration (llamacpp_tool.py:
same n_ctx, one batch of every prompt, logits at every position, F32 KV cache, no flash attention;
it reproduces logits_F16/Q8_0/Q4_0.bin byte for byte). It does not tokenize: the prompts' token ids
are taken from an existing reference file, which llama.cpp tokenized (every model here has SmolLM2's
tokenizer):

  python3 scripts/reference/make_reference_logits.py MODEL.gguf VARIANT --llama-build \
      --prompts-from tests/data/reference/logits_Q8_0.bin --full-at none

--full-at none stores no full-logit rows (only the top-64 at every position: ~330 KB instead of ~3 MB),
for the K-quant variants whose files would otherwise make the committed data too large.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import refdata  # noqa: E402

TOP_K = 64
MAX_BYTES_PER_FILE = 3_400_000  # three variants stay under 10 MB

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

# (name, text or chat messages, where to store full logits: subset of "first", "mid", "last")
PROMPTS = [
    ("prose_long",
     "The lighthouse at the edge of the bay had stood for nearly two hundred years. Its keepers came and "
     "went, each leaving a small mark: a carved initial on the stair rail, a faded logbook entry about a "
     "storm in the winter of 1887, a brass telescope that no one remembered buying. When the light was "
     "finally automated, the last keeper, a quiet woman named Eleanor Price, refused to leave the island. "
     "She said the sea still needed someone to listen to it. The town council argued for months about "
     "what to do, but in the end they let her stay, paying her a symbolic wage of one pound a year to "
     "\"observe and report.\" Her reports, written in a careful hand, described the colour of the water, "
     "the migration of the gulls, and the ships that passed without stopping. Years later, historians "
     "found them more valuable than any official record of the coast.",
     ("first", "mid", "last")),
    ("code_python",
     "def fibonacci(n: int) -> list[int]:\n"
     "    \"\"\"Return the first n Fibonacci numbers.\"\"\"\n"
     "    seq = [0, 1]\n"
     "    while len(seq) < n:\n"
     "        seq.append(seq[-1] + seq[-2])\n"
     "    return seq[:n]\n\n\n"
     "if __name__ == \"__main__\":\n"
     "    for i, x in enumerate(fibonacci(10)):\n"
     "        print(f\"{i:2d}: {x}\")\n",
     ("mid", "last")),
    ("chat",
     [{"role": "system", "content": SYSTEM},
      {"role": "user", "content": "What are three good habits for writing maintainable software? Answer briefly."}],
     ("mid", "last")),
    ("french",
     "Le petit village se réveillait lentement. Les boulangers sortaient les premières baguettes du four, "
     "et l'odeur du pain chaud se répandait dans les rues étroites où les chats dormaient encore.",
     ("last",)),
    ("german_spanish",
     "Über den Wolken muss die Freiheit wohl grenzenlos sein. ¿Dónde está la estación de tren? "
     "Mañana iremos a la playa con nuestros amigos.",
     ("last",)),
    ("cjk_emoji",
     "東京は日本の首都です。人工知能の研究が進んでいます。😀 한국어도 조금 있어요.",
     ("last",)),
    ("c_code",
     "#include <stdio.h>\n\nint main(void) {\n    int total = 0;\n    for (int i = 1; i <= 100; ++i) {\n"
     "        total += i * i;\n    }\n    printf(\"%d\\n\", total);\n    return 0;\n}\n",
     ("mid", "last")),
    ("numbers_list",
     "Shopping list:\n1. 12 eggs\n2. 2.5 kg of flour\n3. Milk (1 L)\n4. 3 apples, 4 pears\n5.",
     ("last",)),
    ("short_fact", "The capital of France is", ("last",)),
]


def render_chat(llm, messages) -> str:
    """The model's own chat template (GGUF tokenizer.chat_template), rendered with jinja2."""
    import jinja2

    tmpl = llm.metadata.get("tokenizer.chat_template")
    if not tmpl:
        raise SystemExit("model has no chat template")
    env = jinja2.Environment(loader=jinja2.BaseLoader(), trim_blocks=False, lstrip_blocks=False)
    return env.from_string(tmpl).render(messages=messages, add_generation_prompt=True)


def prompt_texts(llm):
    out = []
    for name, content, full_at in PROMPTS:
        text = render_chat(llm, content) if isinstance(content, list) else content
        out.append((name, text, full_at))
    return out


def load(model: str, n_ctx: int, kv_f16: bool, threads: int):
    import llama_cpp

    kw = {}
    if not kv_f16:
        kw = dict(type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    return llama_cpp.Llama(model_path=model, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, n_threads=threads,
                           n_threads_batch=threads, logits_all=True, flash_attn=False, verbose=False,
                           seed=0, **kw)


def tokenize(llm, text: str):
    # add_bos=True is llama_tokenize's add_special: BOS only if the vocab's add_bos flag is set.
    return llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)


def generator_name() -> str:
    import llama_cpp

    return f"llama-cpp-python {llama_cpp.__version__}"


def add_bos_flag(llm) -> bool:
    import llama_cpp

    return bool(llama_cpp.llama_vocab_get_add_bos(llama_cpp.llama_model_get_vocab(llm.model)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("variant")
    ap.add_argument("--out-dir", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data",
                                                      "reference"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kv-f16", action="store_true", help="llama.cpp's default F16 KV cache")
    ap.add_argument("--print-tokens", action="store_true")
    ap.add_argument("--llama-build", action="store_true",
                    help="run llama.cpp's build tree (llamacpp_tool.py) instead of llama-cpp-python")
    ap.add_argument("--prompts-from", help="with --llama-build: the reference file whose token ids to use")
    ap.add_argument("--full-at", choices=["prompts", "none"], default="prompts",
                    help="where to store full logits: each prompt's FULL_AT positions (default) or nowhere")
    a = ap.parse_args()
    if a.llama_build:
        return main_llama_build(a)

    llm = load(a.model, 512, a.kv_f16, a.threads)
    n_vocab = llm.n_vocab()
    flags = (refdata.FLAG_ADD_BOS if add_bos_flag(llm) else 0) | (0 if a.kv_f16 else refdata.FLAG_KV_F32)
    f = refdata.LogitsFile(a.variant, generator_name(), n_vocab, TOP_K, flags)
    for name, text, full_at in prompt_texts(llm):
        toks = tokenize(llm, text)
        assert 0 < len(toks) <= 512, (name, len(toks))
        llm.reset()
        llm.eval(toks)  # n_batch = n_ubatch = n_ctx: one batch
        logits = np.array(llm.scores[: len(toks)], dtype=np.float32)
        n = len(toks)
        pos = sorted({{"first": 0, "mid": n // 2, "last": n - 1}[w] for w in full_at}) \
            if a.full_at == "prompts" else []
        ids, vals = refdata.top_k_of(logits, TOP_K)
        f.prompts.append(refdata.LogitsPrompt(np.array(toks, np.int32), np.array(pos, np.uint32), logits[pos],
                                              ids, vals))
        print(f"{name:16s} {n:4d} tokens, full logits at {pos}, argmax(last) = {int(ids[-1, 0])} "
              f"{llm.detokenize([int(ids[-1, 0])])!r}")
        if a.print_tokens:
            print("   ", toks)
    finish(f, a)


def main_llama_build(a) -> None:
    import llamacpp_tool

    if not a.prompts_from:
        raise SystemExit("--llama-build needs --prompts-from (it does not tokenize)")
    src = refdata.read_logits(a.prompts_from)
    names = [name for name, _, _ in PROMPTS]
    if len(src.prompts) != len(PROMPTS):
        raise SystemExit(f"{a.prompts_from} has {len(src.prompts)} prompts, this script {len(PROMPTS)}")
    flags = (src.flags & refdata.FLAG_ADD_BOS) | (0 if a.kv_f16 else refdata.FLAG_KV_F32)
    f = refdata.LogitsFile(a.variant, llamacpp_tool.GENERATOR, src.n_vocab, TOP_K, flags)
    rows = llamacpp_tool.logits(a.model, [p.tokens for p in src.prompts], src.n_vocab, n_batch=512,
                                kv_f32=not a.kv_f16, threads=a.threads)
    for name, p, logits, (_, _, full_at) in zip(names, src.prompts, rows, PROMPTS):
        n = len(p.tokens)
        pos = sorted({{"first": 0, "mid": n // 2, "last": n - 1}[w] for w in full_at}) \
            if a.full_at == "prompts" else []
        ids, vals = refdata.top_k_of(logits, TOP_K)
        f.prompts.append(refdata.LogitsPrompt(p.tokens.copy(), np.array(pos, np.uint32), logits[pos], ids, vals))
        print(f"{name:16s} {n:4d} tokens, full logits at {pos}, argmax(last) = {int(ids[-1, 0])}")
    finish(f, a)


def finish(f, a) -> None:
    n_pos = sum(len(p.tokens) for p in f.prompts)
    assert len(f.prompts) >= 8 and n_pos >= 256 and max(len(p.tokens) for p in f.prompts) >= 128, \
        "prompt set too small for the forward-pass issue"
    os.makedirs(a.out_dir, exist_ok=True)
    path = os.path.join(a.out_dir, f"logits_{a.variant}.bin")
    refdata.write_logits(path, f)
    # round trip: what was read equals what was written, and the file is self-consistent
    g = refdata.read_logits(path)
    refdata.validate_logits(g)
    for p, q in zip(f.prompts, g.prompts):
        for x, y in ((p.tokens, q.tokens), (p.full_pos, q.full_pos), (p.full_logits, q.full_logits),
                     (p.top_ids, q.top_ids), (p.top_vals, q.top_vals)):
            assert np.array_equal(x, y)
    size = os.path.getsize(path)
    print(f"wrote {path}: {size} bytes, {len(f.prompts)} prompts, {n_pos} positions")
    if size > MAX_BYTES_PER_FILE:
        raise SystemExit(f"{path} is larger than {MAX_BYTES_PER_FILE} bytes")


if __name__ == "__main__":
    main()
