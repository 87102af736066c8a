/* test_convert.c — q_quantize_model and q_convert_to_qorus on a tiny LLaMA GGUF that this test
 * writes itself (d 64, h 96, 1 layer, 4 heads, 2 KV heads, vocabulary 40, F32 weights): the
 * .qorus file has the spec's layout (§4.1, [out, in] orientation), header and values, it loads with
 * q_init_memory, and every bad argument or file gives its error code. */
#include "qorus.h"

#include <stdint.h>
#include <stdlib.h>

#include "support/qtest.h"

#define D 64
#define H 96
#define V 40
#define KVD 32
#define A64(x) (((x) + 63) / 64 * 64)

static void put_u32(FILE *f, uint32_t v) { fwrite(&v, 4, 1, f); }
static void put_u64(FILE *f, uint64_t v) { fwrite(&v, 8, 1, f); }
static void put_str(FILE *f, const char *s) {
    put_u64(f, strlen(s));
    fwrite(s, 1, strlen(s), f);
}
static void kv_u32(FILE *f, const char *k, uint32_t v) {
    put_str(f, k);
    put_u32(f, 4);
    put_u32(f, v);
}
static void kv_f32(FILE *f, const char *k, float v) {
    put_str(f, k);
    put_u32(f, 6);
    fwrite(&v, 4, 1, f);
}

struct tensor {
    const char *name;
    uint64_t ne0, ne1; /* ne1 = 1: a 1-D tensor */
};

static const struct tensor TENSORS[] = {
    {"token_embd.weight", D, V},          {"output_norm.weight", D, 1},
    {"blk.0.attn_norm.weight", D, 1},     {"blk.0.attn_q.weight", D, D},
    {"blk.0.attn_k.weight", D, KVD},      {"blk.0.attn_v.weight", D, KVD},
    {"blk.0.attn_output.weight", D, D},   {"blk.0.ffn_norm.weight", D, 1},
    {"blk.0.ffn_gate.weight", D, H},      {"blk.0.ffn_up.weight", D, H},
    {"blk.0.ffn_down.weight", H, D},
};
#define N_TENSORS (sizeof TENSORS / sizeof TENSORS[0])

/* Deterministic weight value i of tensor t. */
static float value(size_t t, size_t i) {
    uint32_t s = (uint32_t)(t * 2654435761u + i * 40503u + 12345u);
    s ^= s >> 13;
    s *= 0x5bd1e995u;
    s ^= s >> 15;
    return ((float)(s & 0xFFFF) / 65536.0f - 0.5f) * 0.25f;
}

/* Writes the tiny model as a GGUF v3 file with F32 tensors; n_kv_heads is a parameter so a
 * model with an unsupported K/V width can be made too. */
static void write_gguf(const char *path, uint32_t n_kv_heads) {
    FILE *f = fopen(path, "wb");
    put_u32(f, 0x46554747u); /* "GGUF" */
    put_u32(f, 3);
    put_u64(f, N_TENSORS);
    put_u64(f, 9);
    put_str(f, "general.architecture");
    put_u32(f, 8);
    put_str(f, "llama");
    kv_u32(f, "llama.block_count", 1);
    kv_u32(f, "llama.context_length", 64);
    kv_u32(f, "llama.embedding_length", D);
    kv_u32(f, "llama.feed_forward_length", H);
    kv_u32(f, "llama.attention.head_count", 4);
    kv_u32(f, "llama.attention.head_count_kv", n_kv_heads);
    kv_f32(f, "llama.rope.freq_base", 100000.0f);
    kv_f32(f, "llama.attention.layer_norm_rms_epsilon", 1e-6f);
    uint64_t off = 0;
    for (size_t t = 0; t < N_TENSORS; t++) {
        uint64_t ne1 = TENSORS[t].ne1;
        if (n_kv_heads != 2 && (strstr(TENSORS[t].name, "attn_k") || strstr(TENSORS[t].name, "attn_v")))
            ne1 = (uint64_t)n_kv_heads * (D / 4);
        put_str(f, TENSORS[t].name);
        put_u32(f, ne1 == 1 ? 1 : 2);
        put_u64(f, TENSORS[t].ne0);
        if (ne1 != 1) put_u64(f, ne1);
        put_u32(f, 0); /* F32 */
        put_u64(f, off);
        off += (TENSORS[t].ne0 * ne1 * 4 + 31) / 32 * 32;
    }
    while (ftell(f) % 32) fputc(0, f);
    for (size_t t = 0; t < N_TENSORS; t++) {
        uint64_t ne1 = TENSORS[t].ne1;
        if (n_kv_heads != 2 && (strstr(TENSORS[t].name, "attn_k") || strstr(TENSORS[t].name, "attn_v")))
            ne1 = (uint64_t)n_kv_heads * (D / 4);
        uint64_t n = TENSORS[t].ne0 * ne1;
        for (uint64_t i = 0; i < n; i++) {
            float v = value(t, i);
            fwrite(&v, 4, 1, f);
        }
        while (ftell(f) % 32) fputc(0, f);
    }
    fclose(f);
}

static unsigned char *read_file(const char *path, long *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*size);
    if (fread(b, 1, (size_t)*size, f) != (size_t)*size) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

/* Checks the .qorus file made from the F32 GGUF: layout, header, F32 tensors copied exactly,
 * Q4_0 rows quantized along the input dimension with errors within a step. */
static void check_qorus(const char *path) {
    long size = 0;
    unsigned char *b = read_file(path, &size);
    QCHECK(b != NULL, "read %s", path);
    if (!b) return;
    /* file order and sizes of spec §4.1 */
    const size_t f32_embd = 4 * V * D, f32_norm = 4 * D;
    const size_t q_dd = D * D / 32 * 20, q_kv = KVD * D / 32 * 20, q_h = H * D / 32 * 20;
    const size_t expect = 64 + A64(f32_embd) * 2 + A64(f32_norm) * 3 + A64(q_dd) * 2 + A64(q_kv) * 2 +
                          A64(q_h) * 3;
    QCHECK((size_t)size == expect, ".qorus size %ld == %zu", size, expect);
    q_model_header h;
    memcpy(&h, b, sizeof h);
    QCHECK(h.magic == Q_MAGIC, "magic");
    QCHECK(h.version == 2, "version 2 (%u)", h.version);
    QCHECK(h.vocab_size == V && h.dim == D && h.hidden_dim == H && h.n_layers == 1, "V, d, h, L");
    QCHECK(h.n_heads == 4 && h.n_kv_heads == 2 && h.max_seq_len == 64, "H, G, S");
    QCHECK(h.rope_freq_base == 100000.0f && h.rms_norm_eps == 1e-6f, "rope base and explicit eps");
    QCHECK(h.reserved[0] == 0 && h.reserved[4] == 0, "reserved words zero");

    /* token_embd at 64, output_norm next, output (tied: the embedding again) after it */
    const float *embd = (const float *)(b + 64);
    int same = 1;
    for (size_t i = 0; i < V * D; i++) same &= embd[i] == value(0, i);
    QCHECK(same, "token_embd copied exactly");
    size_t out_off = 64 + A64(f32_embd) + A64(f32_norm);
    QCHECK(memcmp(b + 64, b + out_off, f32_embd) == 0, "tied output = embedding");

    /* wk (tensor 4 of the GGUF) is [kvd out, d in]: row r holds GGUF row r, blocked along d */
    size_t wk_off = out_off + A64(f32_embd) + A64(f32_norm) + A64(q_dd);
    double worst = 0;
    int peak_exact = 1;
    for (size_t r = 0; r < KVD; r++) {
        for (size_t k = 0; k < D / 32; k++) {
            const unsigned char *blk = b + wk_off + (r * (D / 32) + k) * 20;
            float scale;
            memcpy(&scale, blk + 16, 4);
            float amax = 0;
            for (int j = 0; j < 32; j++) {
                float v = value(4, r * D + k * 32 + (size_t)j);
                if (fabsf(v) > amax) amax = fabsf(v);
            }
            for (int j = 0; j < 32; j++) {
                int code = j % 2 ? blk[j / 2] >> 4 : blk[j / 2] & 15;
                float got = (float)(code - 8) * scale;
                float v = value(4, r * D + k * 32 + (size_t)j);
                double e = fabs((double)got - v) / amax;
                if (e > worst) worst = e;
                if (fabsf(v) == amax && got != v) peak_exact = 0;
            }
        }
    }
    QCHECK(worst <= 0.125 + 1e-6, "wk error within one step of max/8 (worst %.4f of the block max)", worst);
    QCHECK(peak_exact, "each block's largest-magnitude value is exact");
    free(b);
}

int main(void) {
    const char *src = "convert_tiny.gguf";
    write_gguf(src, 2);

    QCHECK_CODE(q_convert_to_qorus(src, "convert_tiny.qorus"), Q_OK);
    check_qorus("convert_tiny.qorus");

    q_context ctx;
    memset(&ctx, 0, sizeof ctx);
    QCHECK_CODE(q_init_memory(&ctx, "convert_tiny.qorus"), Q_OK);
    QCHECK(ctx.header != NULL && ctx.header->dim == D && ctx.header->n_kv_heads == 2,
           "the .qorus file loads and its header is read");
    q_free_memory(&ctx);

    /* requantizing: every type GGUF can hold, then .qorus from a quantized model */
    const q_dtype types[] = {Q_F32, Q_F16, Q_BF16, Q_Q8_0, Q_Q4_0_GGML, Q_Q4_1};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        for (int pure = 0; pure < 2; pure++) {
            q_error_code rc = q_quantize_model(src, "convert_tiny.q.gguf", types[i], pure);
            QCHECK(rc == Q_OK, "q_quantize_model to q_dtype %d, pure %d -> %d", (int)types[i], pure, (int)rc);
        }
    }
    /* the types and mixes of issue 12 (rows of 64 and 96 are not multiples of 256: llama.cpp's
     * fallbacks to 32-blocks are taken); their bytes are compared with llama-quantize's by
     * scripts/compare_quantize_with_llamacpp.py */
    const q_dtype more[] = {Q_Q5_0, Q_Q5_1, Q_Q2_K, Q_Q3_K, Q_Q4_K, Q_Q5_K, Q_Q6_K, Q_IQ4_NL, Q_IQ4_XS};
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        for (int pure = 0; pure < 2; pure++) {
            q_error_code rc = q_quantize_model(src, "convert_tiny.q.gguf", more[i], pure);
            QCHECK(rc == Q_OK, "q_quantize_model to q_dtype %d, pure %d -> %d", (int)more[i], pure, (int)rc);
        }
    }
    const q_quant_mix mixes[] = {Q_MIX_F16,    Q_MIX_Q4_0,   Q_MIX_Q3_K_S, Q_MIX_Q3_K_L,
                                 Q_MIX_Q4_K_S, Q_MIX_Q4_K_M, Q_MIX_Q5_K_S, Q_MIX_IQ4_XS};
    for (size_t i = 0; i < sizeof mixes / sizeof mixes[0]; i++) {
        q_error_code rc = q_quantize_model_mix(src, "convert_tiny.q.gguf", mixes[i], false);
        QCHECK(rc == Q_OK, "q_quantize_model_mix to mix %d -> %d", (int)mixes[i], (int)rc);
    }
    /* llama.cpp's IQ2_XXS (19) needs an importance matrix: not a mix qorus writes */
    QCHECK_CODE(q_quantize_model_mix(src, "x.gguf", 19, false), Q_ERR_INVALID_DTYPE);
    QCHECK_CODE(q_quantize_model_mix(src, "x.gguf", -1, false), Q_ERR_INVALID_DTYPE);
    QCHECK_CODE(q_quantize_model_mix(NULL, "x.gguf", Q_MIX_Q4_K_M, false), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_quantize_model_mix(src, NULL, Q_MIX_Q4_K_M, false), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_quantize_model_mix("no-such-model.gguf", "x.gguf", Q_MIX_Q4_K_M, false), Q_ERR_FILE_OPEN);
    QCHECK_CODE(q_quantize_model(src, "convert_tiny.q8.gguf", Q_Q8_0, true), Q_OK);
    QCHECK_CODE(q_convert_to_qorus("convert_tiny.q8.gguf", "convert_tiny.q8.qorus"), Q_OK);
    long s1 = 0, s2 = 0;
    free(read_file("convert_tiny.qorus", &s1));
    free(read_file("convert_tiny.q8.qorus", &s2));
    QCHECK(s1 == s2 && s1 > 0, "same .qorus layout from a Q8_0 source (%ld bytes)", s2);
    QCHECK_CODE(q_init_memory(&ctx, "convert_tiny.q8.gguf"), Q_OK);
    QCHECK(ctx.header != NULL && ctx.header->vocab_size == V, "the requantized GGUF loads");
    q_free_memory(&ctx);
    /* in place */
    QCHECK_CODE(q_quantize_model("convert_tiny.q8.gguf", "convert_tiny.q8.gguf", Q_Q4_0_GGML, true), Q_OK);
    QCHECK_CODE(q_convert_to_qorus("convert_tiny.q8.gguf", "convert_tiny.q8.qorus"), Q_OK);

    /* errors */
    QCHECK_CODE(q_quantize_model(NULL, "x.gguf", Q_Q8_0, true), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_quantize_model(src, NULL, Q_Q8_0, true), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_convert_to_qorus(NULL, "x.qorus"), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_convert_to_qorus(src, NULL), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_quantize_model(src, "x.gguf", (q_dtype)99, true), Q_ERR_INVALID_DTYPE);
    QCHECK_CODE(q_quantize_model(src, "x.gguf", Q_Q4_0, true), Q_ERR_INVALID_DTYPE);
    QCHECK(strstr(q_last_error(), "q_quantize_model") != NULL, "q_last_error names the call: %s",
           q_last_error());
    QCHECK_CODE(q_quantize_model("no-such-model.gguf", "x.gguf", Q_Q8_0, true), Q_ERR_FILE_OPEN);
    QCHECK_CODE(q_convert_to_qorus("no-such-model.gguf", "x.qorus"), Q_ERR_FILE_OPEN);
    QCHECK_CODE(q_convert_to_qorus(src, "no-such-dir/x.qorus"), Q_ERR_FILE_OPEN);
    FILE *f = fopen("convert_junk.gguf", "wb");
    fputs("this is not a model file at all", f);
    fclose(f);
    QCHECK_CODE(q_quantize_model("convert_junk.gguf", "x.gguf", Q_Q8_0, true), Q_ERR_INVALID_MAGIC);
    QCHECK_CODE(q_convert_to_qorus("convert_junk.gguf", "x.qorus"), Q_ERR_INVALID_MAGIC);
    /* truncated GGUF */
    long n = 0;
    unsigned char *whole = read_file(src, &n);
    f = fopen("convert_trunc.gguf", "wb");
    fwrite(whole, 1, (size_t)n / 2, f);
    fclose(f);
    free(whole);
    QCHECK_CODE(q_quantize_model("convert_trunc.gguf", "x.gguf", Q_Q8_0, true), Q_ERR_INVALID_CONFIG);
    QCHECK_CODE(q_convert_to_qorus("convert_trunc.gguf", "x.qorus"), Q_ERR_INVALID_CONFIG);
    /* one KV head: kvd = 16 is not whole 32-value blocks */
    write_gguf("convert_kvd16.gguf", 1);
    QCHECK_CODE(q_quantize_model("convert_kvd16.gguf", "convert_kvd16.q8.gguf", Q_Q8_0, true), Q_OK);
    QCHECK_CODE(q_convert_to_qorus("convert_kvd16.gguf", "x.qorus"), Q_ERR_INVALID_CONFIG);
    f = fopen("x.qorus", "rb");
    QCHECK(f == NULL, "a failed conversion leaves no output file");
    if (f) fclose(f);

    return qtest_summary("test_convert");
}
