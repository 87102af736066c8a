#!/usr/bin/env python3
"""The seed's benchmark shape as a GGUF file with random weights (performance issue).

  2 layers, dim 4096, ffn 11008, 32 heads, 8 kv heads (head_dim 128), vocab 32000, rope base 500000,
  RMSNorm eps 1e-5; every layer matrix Q4_0, token_embd and output Q8_0, norms F32 (= 1.0).

The quantized blocks are drawn directly (random f16 scales around a fixed magnitude and uniformly random
quants), so generating ~480 MB takes seconds. The tokenizer is a minimal SentencePiece-style ("llama")
vocabulary -- <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF> and filler pieces -- enough for
llama.cpp (llama-bench) and for our GGUF loader; it is not meant to tokenize text well.

  pip install gguf numpy
  python3 scripts/bench/make_seed_model.py OUT.gguf [--seed 1]
"""
import argparse

import numpy as np

try:
    import gguf
except ImportError:
    raise SystemExit("needs the gguf package: pip install gguf")

N_LAYER, DIM, FFN, N_HEAD, N_KV_HEAD, VOCAB = 2, 4096, 11008, 32, 8, 32000
ROPE_BASE, EPS, CTX = 500000.0, 1e-5, 4096
HEAD_DIM = DIM // N_HEAD


def q4_0(rng, rows, cols, scale):
    """rows x cols Q4_0 weights as raw blocks: per 32 values an f16 d then 16 bytes of nibbles."""
    nb = rows * cols // 32
    d = (rng.uniform(0.5, 1.5, nb) * scale).astype(np.float16).view(np.uint8).reshape(nb, 2)
    qs = rng.integers(0, 256, (nb, 16), dtype=np.uint8)
    return np.concatenate([d, qs], axis=1).reshape(rows, cols // 32 * 18)


def q8_0(rng, rows, cols, scale):
    """rows x cols Q8_0 weights as raw blocks: per 32 values an f16 d then 32 int8."""
    nb = rows * cols // 32
    d = (rng.uniform(0.5, 1.5, nb) * scale).astype(np.float16).view(np.uint8).reshape(nb, 2)
    qs = rng.integers(-127, 128, (nb, 32), dtype=np.int8).view(np.uint8)
    return np.concatenate([d, qs], axis=1).reshape(rows, cols // 32 * 34)


def vocab():
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + \
        [gguf.TokenType.BYTE] * 256
    letters = "abcdefghijklmnopqrstuvwxyz"
    i = 0
    while len(tokens) < VOCAB:
        # "▁a", "▁b", ..., "aa", "ab", ...: distinct pieces
        n, s = i, ""
        while True:
            s = letters[n % 26] + s
            n = n // 26 - 1
            if n < 0:
                break
        tokens.append(("\u2581" + s) if i % 2 == 0 else s)
        types.append(gguf.TokenType.NORMAL)
        i += 1
    tokens = list(dict.fromkeys(tokens))
    assert len(tokens) == VOCAB, len(tokens)
    scores = [0.0, 0.0, 0.0] + [0.0] * 256 + [-float(k) for k in range(VOCAB - 259)]
    return tokens, scores, [int(t) for t in types]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)

    w = gguf.GGUFWriter(a.out, "llama")
    w.add_name("qorus seed benchmark shape (random weights)")
    w.add_block_count(N_LAYER)
    w.add_context_length(CTX)
    w.add_embedding_length(DIM)
    w.add_feed_forward_length(FFN)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_KV_HEAD)
    w.add_rope_freq_base(ROPE_BASE)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_layer_norm_rms_eps(EPS)
    w.add_vocab_size(VOCAB)
    w.add_file_type(int(gguf.LlamaFileType.MOSTLY_Q4_0))
    tokens, scores, types = vocab()
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    Q40, Q80 = gguf.GGMLQuantizationType.Q4_0, gguf.GGMLQuantizationType.Q8_0
    ones = np.ones(DIM, dtype=np.float32)
    # numpy shape = (rows = output features, cols = input features); ggml's ne is the reverse
    w.add_tensor("token_embd.weight", q8_0(rng, VOCAB, DIM, 0.02 / 73), raw_dtype=Q80)
    for i in range(N_LAYER):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", ones)
        w.add_tensor(p + "attn_q.weight", q4_0(rng, DIM, DIM, 0.02 / 4.6), raw_dtype=Q40)
        w.add_tensor(p + "attn_k.weight", q4_0(rng, N_KV_HEAD * HEAD_DIM, DIM, 0.02 / 4.6), raw_dtype=Q40)
        w.add_tensor(p + "attn_v.weight", q4_0(rng, N_KV_HEAD * HEAD_DIM, DIM, 0.02 / 4.6), raw_dtype=Q40)
        w.add_tensor(p + "attn_output.weight", q4_0(rng, DIM, DIM, 0.02 / 4.6), raw_dtype=Q40)
        w.add_tensor(p + "ffn_norm.weight", ones)
        w.add_tensor(p + "ffn_gate.weight", q4_0(rng, FFN, DIM, 0.02 / 4.6), raw_dtype=Q40)
        w.add_tensor(p + "ffn_up.weight", q4_0(rng, FFN, DIM, 0.02 / 4.6), raw_dtype=Q40)
        w.add_tensor(p + "ffn_down.weight", q4_0(rng, DIM, FFN, 0.02 / 4.6), raw_dtype=Q40)
    w.add_tensor("output_norm.weight", ones)
    w.add_tensor("output.weight", q8_0(rng, VOCAB, DIM, 0.02 / 73), raw_dtype=Q80)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print("wrote", a.out)


if __name__ == "__main__":
    main()
