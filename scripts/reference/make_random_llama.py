#!/usr/bin/env python3
"""A small random-weight LLaMA as an F16 GGUF whose widths are multiples of 256, so that the K-quant
and IQ4_XS types are used as themselves when it is quantized (SmolLM2's rows of 576 make
llama-quantize fall back to Q5_0/Q5_1/Q8_0/... for most tensors).

  4 layers, dim 512, ffn 1536, 8 query heads and 2 KV heads (head_dim 64, 4 query heads per KV
  head, so the n_gqa >= 4 branches of llama.cpp's mix rules are taken, which SmolLM2's 3 does not),
  rope base 10000, RMSNorm eps 1e-5, context 2048, SmolLM2-135M's tokenizer (vocab 49152, copied
  from the SmolLM2 GGUF given), an output matrix separate from the token embedding (SmolLM2 ties
  them), F16 matrices and F32 norms.

Weights are drawn from a seeded generator: Gaussian, with a per-row scale (0.5x..2x of 0.02) and a
few large outliers per matrix, so the scale searches see uneven blocks; a few blocks are set to
zero and a few to a constant (edge cases of the quantizers). Norm weights are 1 + N(0, 0.05).
The same seed gives the same file.

  pip install gguf numpy
  python3 scripts/reference/make_random_llama.py OUT.gguf [--smollm2 PATH] [--seed 12]

PATH defaults to ~/.cache/qorus/models/SmolLM2-135M-Instruct.Q4_1.gguf.
"""
import argparse
import os

import numpy as np

try:
    import gguf
except ImportError:
    raise SystemExit("needs the gguf package: pip install gguf")

N_LAYER, DIM, FFN, N_HEAD, N_KV_HEAD = 4, 512, 1536, 8, 2
HEAD_DIM = DIM // N_HEAD
ROPE_BASE, EPS, CTX = 10000.0, 1e-5, 2048

TOKENIZER_KEYS = [
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.add_bos_token",
    "tokenizer.ggml.add_space_prefix",
    "tokenizer.chat_template",
]


def copy_tokenizer(w, src):
    r = gguf.GGUFReader(src)
    vocab = None
    for key in TOKENIZER_KEYS:
        f = r.fields.get(key)
        if f is None:
            continue
        v = f.contents()
        t = f.types[0]
        if t == gguf.GGUFValueType.ARRAY:
            w.add_key_value(key, v, t, sub_type=f.types[1])
            if key == "tokenizer.ggml.tokens":
                vocab = len(v)
        else:
            w.add_key_value(key, v, t)
    if vocab is None:
        raise SystemExit(f"{src}: no tokenizer.ggml.tokens")
    return vocab


def matrix(rng, rows, cols):
    """rows x cols (numpy order: rows = output features) F16 weights with uneven blocks."""
    x = rng.standard_normal((rows, cols)).astype(np.float32) * 0.02
    x *= np.exp2(rng.uniform(-1.0, 1.0, (rows, 1))).astype(np.float32)
    n = rows * cols
    flat = x.reshape(-1)
    idx = rng.choice(n, size=max(1, n // 4096), replace=False)
    flat[idx] *= 12.0  # outliers
    for _ in range(2):  # an all-zero 32-block and a constant 32-block
        r, c = rng.integers(0, rows), rng.integers(0, cols // 32) * 32
        x[r, c:c + 32] = 0.0
        r, c = rng.integers(0, rows), rng.integers(0, cols // 32) * 32
        x[r, c:c + 32] = 0.013
    return x.astype(np.float16)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--smollm2", default=os.path.expanduser(
        "~/.cache/qorus/models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--seed", type=int, default=12)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)

    w = gguf.GGUFWriter(a.out, "llama")
    w.add_name("qorus random LLaMA (widths multiples of 256)")
    w.add_block_count(N_LAYER)
    w.add_context_length(CTX)
    w.add_embedding_length(DIM)
    w.add_feed_forward_length(FFN)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_KV_HEAD)
    w.add_rope_freq_base(ROPE_BASE)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_layer_norm_rms_eps(EPS)
    w.add_file_type(int(gguf.LlamaFileType.MOSTLY_F16))
    vocab = copy_tokenizer(w, a.smollm2)
    w.add_vocab_size(vocab)

    def norm():
        return (1.0 + 0.05 * rng.standard_normal(DIM)).astype(np.float32)

    w.add_tensor("token_embd.weight", matrix(rng, vocab, DIM))
    for i in range(N_LAYER):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", norm())
        w.add_tensor(p + "attn_q.weight", matrix(rng, DIM, DIM))
        w.add_tensor(p + "attn_k.weight", matrix(rng, N_KV_HEAD * HEAD_DIM, DIM))
        w.add_tensor(p + "attn_v.weight", matrix(rng, N_KV_HEAD * HEAD_DIM, DIM))
        w.add_tensor(p + "attn_output.weight", matrix(rng, DIM, DIM))
        w.add_tensor(p + "ffn_norm.weight", norm())
        w.add_tensor(p + "ffn_gate.weight", matrix(rng, FFN, DIM))
        w.add_tensor(p + "ffn_up.weight", matrix(rng, FFN, DIM))
        w.add_tensor(p + "ffn_down.weight", matrix(rng, DIM, FFN))
    w.add_tensor("output_norm.weight", norm())
    w.add_tensor("output.weight", matrix(rng, vocab, DIM))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("wrote", a.out)


if __name__ == "__main__":
    main()
