/* test_handbuilt_model.c — llama_build_graph over a model buffer the caller provides (spec §3.4.1,
 * issue 17): a tiny `.qorus` image built here in malloc'd memory, with the context's
 * weights_mmap / weights_size / header set by hand, as the original's own programs do.
 *
 * - A valid image: Q_OK, every view points into the caller's buffer at the file-order offset,
 *   and the forward pass gives bit-for-bit the logits of the same image written to a file and
 *   opened with q_init_memory.
 * - Every header error the original distinguishes, in its order (header first): bad magic ->
 *   Q_ERR_INVALID_MAGIC; zero n_layers / dim / vocab_size / n_heads / n_kv_heads, dim or
 *   hidden_dim not a multiple of 32, kvd not a multiple of 32 -> Q_ERR_INVALID_CONFIG;
 *   weights_size too small for the tensors -> Q_ERR_INVALID_CONFIG; NULL weights or header ->
 *   Q_ERR_NULL_PTR; no arena / too small an arena -> Q_ERR_ARENA_OOM.
 * - The library's own mappings: weights_size shrunk below what the header needs ->
 *   Q_ERR_INVALID_CONFIG, enlarged past the mapping -> Q_ERR_INVALID_ARG, a stale copy of a freed
 *   context -> Q_ERR_INVALID_ARG.
 * - q_free_memory on a hand-built context forgets the buffer without freeing it; a rebuild after
 *   the caller changed the weights uses the new weights. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "qorus.h"
#include "support/qtest.h"

enum { V = 64, D = 64, H = 128, L = 2, NH = 4, NKV = 2, S = 16 };
#define KVD (NKV * (D / NH))

static size_t a64(size_t x) { return (x + 63) & ~(size_t)63; }
static size_t q4_bytes(size_t rows, size_t cols) { return rows * (cols / 32) * 20; }

/* Size of the image (header + tensors, each padded to 64 bytes) for the constants above. */
static size_t image_size(void) {
    size_t n = 64 + a64(4 * V * D) + a64(4 * D) + a64(4 * V * D);
    n += L * (a64(4 * D) + a64(q4_bytes(D, D)) + 2 * a64(q4_bytes(KVD, D)) + a64(q4_bytes(D, D)) + a64(4 * D) +
              2 * a64(q4_bytes(H, D)) + a64(q4_bytes(D, H)));
    return n;
}

static uint64_t rng = 0x243F6A8885A308D3ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (float)((double)((rng * 0x2545F4914F6CDD1Dull) >> 40) / (double)(1u << 24) * 2.0 - 1.0);
}

static q_model_header make_header(void) {
    q_model_header h;
    memset(&h, 0, sizeof h);
    h.magic = Q_MAGIC;
    h.version = 2;
    h.vocab_size = V;
    h.dim = D;
    h.hidden_dim = H;
    h.n_layers = L;
    h.n_heads = NH;
    h.n_kv_heads = NKV;
    h.max_seq_len = S;
    h.rope_freq_base = 10000.0f;
    h.rms_norm_eps = 1e-5f;
    return h;
}

static size_t put_f32(unsigned char *img, size_t off, size_t n, float base, float spread) {
    for (size_t i = 0; i < n; i++) {
        float v = base + spread * frand();
        memcpy(img + off + 4 * i, &v, 4);
    }
    return off + a64(4 * n);
}

static size_t put_q4(unsigned char *img, size_t off, size_t rows, size_t cols) {
    size_t nblk = rows * (cols / 32);
    for (size_t b = 0; b < nblk; b++) {
        q_block_q4_0 blk;
        for (int k = 0; k < 16; k++) {
            if (k % 8 == 0) frand();
            blk.qs[k] = (uint8_t)(rng >> (k % 8 * 8));
        }
        blk.scale = 0.02f + 0.01f * frand();
        memcpy(img + off + 20 * b, &blk, 20);
    }
    return off + a64(20 * nblk);
}

/* Offsets of the first tensors, for the view checks. */
static size_t off_output_norm, off_output, off_wq0, off_ffn_down1;

/* A `.qorus` image with random weights in a malloc'd buffer (16-byte aligned, as malloc gives). */
static unsigned char *make_image(size_t *size) {
    *size = image_size();
    unsigned char *img = malloc(*size);
    memset(img, 0, *size);
    q_model_header h = make_header();
    memcpy(img, &h, 64);
    size_t off = 64;
    off = put_f32(img, off, V * D, 0.0f, 1.0f);
    off_output_norm = off;
    off = put_f32(img, off, D, 1.0f, 0.1f);
    off_output = off;
    off = put_f32(img, off, V * D, 0.0f, 0.5f);
    for (int l = 0; l < L; l++) {
        off = put_f32(img, off, D, 1.0f, 0.1f);
        if (l == 0) off_wq0 = off;
        off = put_q4(img, off, D, D);
        off = put_q4(img, off, KVD, D);
        off = put_q4(img, off, KVD, D);
        off = put_q4(img, off, D, D);
        off = put_f32(img, off, D, 1.0f, 0.1f);
        off = put_q4(img, off, H, D);
        off = put_q4(img, off, H, D);
        if (l == 1) off_ffn_down1 = off;
        off = put_q4(img, off, D, H);
    }
    if (off != *size) printf("image layout: %zu != %zu\n", off, *size);
    return img;
}

static size_t kv_bytes(void) { return (size_t)L * NKV * S * (D / NH) * 2 * sizeof(float); }

/* A hand-built context over `img`: weights, header pointer, and (if arena != 0) a library arena. */
static void hand_ctx(q_context *c, unsigned char *img, size_t size, q_model_header *hdr, size_t arena) {
    memset(c, 0, sizeof *c);
    c->weights_mmap = img;
    c->weights_size = size;
    c->header = hdr ? hdr : (q_model_header *)(void *)img;
    if (arena) q_alloc_arena(c, arena);
}

/* llama_build_graph on a hand-built context whose header is `h` (a copy outside the buffer). */
static q_error_code build_with(unsigned char *img, size_t size, const q_model_header *h) {
    _Alignas(64) static q_model_header hdr;
    hdr = *h;
    q_context c;
    q_llama_model m;
    memset(&m, 0, sizeof m);
    hand_ctx(&c, img, size, &hdr, 1 << 20);
    q_error_code rc = llama_build_graph(&c, &m);
    q_free_memory(&c);
    return rc;
}

static q_error_code forward_logits(q_context *c, q_llama_model *m, float *logits) {
    static const uint32_t prompt[] = {1, 17, 42, 5};
    q_error_code rc = llama_forward(m, c, prompt, 4, 0, logits);
    q_arena_reset(c);
    return rc;
}

int main(void) {
    size_t size;
    unsigned char *img = make_image(&size);
    const q_model_header good = make_header();
    unsigned char *pristine = malloc(size);
    memcpy(pristine, img, size);
    float caller_logits[V], file_logits[V];

    /* ---- a valid image in caller memory ---- */
    q_context c;
    q_llama_model m;
    memset(&m, 0, sizeof m);
    hand_ctx(&c, img, size, NULL, 1 << 20);
    QCHECK_CODE(llama_build_graph(&c, &m), Q_OK);
    QCHECK(m.config.vocab_size == V && m.config.dim == D && m.config.hidden_dim == H && m.config.n_layers == L &&
               m.config.n_heads == NH && m.config.n_kv_heads == NKV && m.config.max_seq_len == S && m.ctx == &c,
           "config from the hand-built header, model->ctx set");
    QCHECK(m.token_embd && (unsigned char *)m.token_embd->data == img + 64 && m.token_embd->type == Q_F32 &&
               m.token_embd->ne[0] == V && m.token_embd->ne[1] == D,
           "token_embd views the caller's buffer at offset 64");
    QCHECK(m.output_norm && (unsigned char *)m.output_norm->data == img + off_output_norm,
           "output_norm views the buffer at %zu", off_output_norm);
    QCHECK(m.output && (unsigned char *)m.output->data == img + off_output, "output views the buffer at %zu",
           off_output);
    QCHECK(m.layers && (unsigned char *)m.layers[0].wq->data == img + off_wq0 && m.layers[0].wq->type == Q_Q4_0,
           "layer 0 wq (Q4_0) views the buffer at %zu", off_wq0);
    QCHECK(m.layers && (unsigned char *)m.layers[0].attn_norm->data == img + off_wq0 - 256 &&
               m.layers[0].attn_norm->ne[0] == D,
           "layer 0 attn_norm views the buffer just before wq");
    QCHECK(m.layers && (unsigned char *)m.layers[1].w_down->data == img + off_ffn_down1 &&
               m.layers[1].w_down->ne[0] == D && m.layers[1].w_down->ne[1] == H,
           "layer 1 w_down [%d, %d] views the buffer at %zu (the last tensor)", D, H, off_ffn_down1);
    QCHECK_CODE(q_alloc_kv_cache(&c, kv_bytes()), Q_OK);
    QCHECK_CODE(forward_logits(&c, &m, caller_logits), Q_OK);
    int finite = 1;
    for (int i = 0; i < V; i++) finite &= isfinite(caller_logits[i]) != 0;
    QCHECK(finite, "forward over the caller's buffer: finite logits (%g %g ...)", caller_logits[0], caller_logits[1]);

    /* the same image as a file, through q_init_memory: the same logits, bit for bit */
    const char *path = "handbuilt_model.qorus";
    FILE *f = fopen(path, "wb");
    QCHECK(f && fwrite(img, 1, size, f) == size && fclose(f) == 0, "wrote %s (%zu bytes)", path, size);
    q_context fc;
    q_llama_model fm;
    memset(&fc, 0, sizeof fc);
    memset(&fm, 0, sizeof fm);
    QCHECK_CODE(q_init_memory(&fc, path), Q_OK);
    QCHECK_CODE(q_alloc_arena(&fc, 1 << 20), Q_OK);
    QCHECK_CODE(llama_build_graph(&fc, &fm), Q_OK);
    QCHECK_CODE(q_alloc_kv_cache(&fc, kv_bytes()), Q_OK);
    QCHECK_CODE(forward_logits(&fc, &fm, file_logits), Q_OK);
    QCHECK(memcmp(caller_logits, file_logits, sizeof file_logits) == 0,
           "caller buffer and mapped file give bit-identical logits");
    QCHECK((unsigned char *)fm.output_norm->data == (unsigned char *)fc.weights_mmap + off_output_norm &&
               (unsigned char *)fm.layers[0].attn_norm->data == (unsigned char *)fc.weights_mmap + off_wq0 - 256 &&
               (unsigned char *)fm.layers[0].wq->data == (unsigned char *)fc.weights_mmap + off_wq0,
           "mapped file: norm and matrix views point into the mapping");

    /* the header may live outside the buffer (the original reads it through ctx->header) */
    QCHECK_CODE(build_with(img, size, &good), Q_OK);

    /* ---- every header error, in the original's order ---- */
    struct {
        const char *what;
        size_t off;
        uint32_t value;
        q_error_code want;
    } cases[] = {
        {"magic 0", offsetof(q_model_header, magic), 0, Q_ERR_INVALID_MAGIC},
        {"magic of a GGUF file", offsetof(q_model_header, magic), 0x46554747u, Q_ERR_INVALID_MAGIC},
        {"n_layers 0", offsetof(q_model_header, n_layers), 0, Q_ERR_INVALID_CONFIG},
        {"dim 0", offsetof(q_model_header, dim), 0, Q_ERR_INVALID_CONFIG},
        {"vocab_size 0", offsetof(q_model_header, vocab_size), 0, Q_ERR_INVALID_CONFIG},
        {"n_heads 0", offsetof(q_model_header, n_heads), 0, Q_ERR_INVALID_CONFIG},
        {"n_kv_heads 0", offsetof(q_model_header, n_kv_heads), 0, Q_ERR_INVALID_CONFIG},
        {"dim 48 (not a multiple of 32)", offsetof(q_model_header, dim), 48, Q_ERR_INVALID_CONFIG},
        {"hidden_dim 40 (not a multiple of 32)", offsetof(q_model_header, hidden_dim), 40, Q_ERR_INVALID_CONFIG},
        {"n_kv_heads 1 (kvd 16, not whole Q4_0 blocks)", offsetof(q_model_header, n_kv_heads), 1,
         Q_ERR_INVALID_CONFIG},
        {"n_layers 3 (tensors past weights_size)", offsetof(q_model_header, n_layers), 3, Q_ERR_INVALID_CONFIG},
        {"n_layers UINT32_MAX", offsetof(q_model_header, n_layers), UINT32_MAX, Q_ERR_INVALID_CONFIG},
        {"vocab_size 65 (tensors past weights_size)", offsetof(q_model_header, vocab_size), 65, Q_ERR_INVALID_CONFIG},
        {"vocab_size UINT32_MAX", offsetof(q_model_header, vocab_size), UINT32_MAX, Q_ERR_INVALID_CONFIG},
        {"hidden_dim 4096 (tensors past weights_size)", offsetof(q_model_header, hidden_dim), 4096,
         Q_ERR_INVALID_CONFIG},
        {"dim 2^31", offsetof(q_model_header, dim), 1u << 31, Q_ERR_INVALID_CONFIG},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* in the buffer itself, and in a header copy outside it */
        memcpy(img + cases[i].off, &cases[i].value, 4);
        q_context hc;
        q_llama_model hm;
        memset(&hm, 0, sizeof hm);
        hand_ctx(&hc, img, size, NULL, 1 << 20);
        q_error_code rc = llama_build_graph(&hc, &hm);
        q_free_memory(&hc);
        memcpy(img, pristine, 64);
        q_model_header h = make_header();
        memcpy((char *)&h + cases[i].off, &cases[i].value, 4);
        q_error_code rc2 = build_with(img, size, &h);
        QCHECK(rc == cases[i].want && rc2 == cases[i].want, "header %s -> %d / %d (%s), expected %d", cases[i].what,
               (int)rc, (int)rc2, q_strerror(rc), (int)cases[i].want);
    }
    /* weights_size too small for the tensors the header describes */
    QCHECK_CODE(build_with(img, size - 64, &good), Q_ERR_INVALID_CONFIG);
    QCHECK_CODE(build_with(img, size - 1, &good), Q_ERR_INVALID_CONFIG);
    QCHECK_CODE(build_with(img, 64, &good), Q_ERR_INVALID_CONFIG);
    QCHECK_CODE(build_with(img, 0, &good), Q_ERR_INVALID_CONFIG);
    /* the header is checked first: a bad magic in a buffer too small still says INVALID_MAGIC */
    {
        q_model_header h = make_header();
        h.magic = 0x12345678u;
        QCHECK_CODE(build_with(img, 64, &h), Q_ERR_INVALID_MAGIC);
        h = make_header();
        h.dim = 0;
        QCHECK_CODE(build_with(img, 0, &h), Q_ERR_INVALID_CONFIG);
    }
    /* a larger weights_size is fine (trailing bytes are ignored) */
    {
        unsigned char *big = malloc(size + 4096);
        memcpy(big, img, size);
        QCHECK_CODE(build_with(big, size + 4096, &good), Q_OK);
        free(big);
    }
    /* NULL weights or header; no arena or too small an arena */
    {
        q_context hc;
        q_llama_model hm;
        memset(&hm, 0, sizeof hm);
        hand_ctx(&hc, NULL, size, NULL, 0);
        hc.header = (q_model_header *)(void *)img;
        QCHECK_CODE(llama_build_graph(&hc, &hm), Q_ERR_NULL_PTR);
        hand_ctx(&hc, img, size, NULL, 0);
        hc.header = NULL;
        QCHECK_CODE(llama_build_graph(&hc, &hm), Q_ERR_NULL_PTR);
        hand_ctx(&hc, img, size, NULL, 0);
        QCHECK_CODE(llama_build_graph(&hc, &hm), Q_ERR_ARENA_OOM);
        hand_ctx(&hc, img, size, NULL, 1024);
        QCHECK_CODE(llama_build_graph(&hc, &hm), Q_ERR_ARENA_OOM);
        q_free_memory(&hc);
        QCHECK(memcmp(img, pristine, size) == 0, "q_free_memory on a hand-built context leaves the buffer alone");
    }

    /* ---- the library's own mapping: weights_size edited, and a stale copy ---- */
    {
        q_llama_model m2;
        memset(&m2, 0, sizeof m2);
        size_t real = fc.weights_size;
        fc.weights_size = real - 64;
        QCHECK_CODE(llama_build_graph(&fc, &m2), Q_ERR_INVALID_CONFIG);
        fc.weights_size = 100;
        QCHECK_CODE(llama_build_graph(&fc, &m2), Q_ERR_INVALID_CONFIG);
        fc.weights_size = real + 1;
        QCHECK_CODE(llama_build_graph(&fc, &m2), Q_ERR_INVALID_ARG);
        fc.weights_size = real;
        q_context stale = fc;
        q_free_memory(&fc);
        QCHECK_CODE(llama_build_graph(&stale, &m2), Q_ERR_INVALID_ARG);
        QCHECK_CODE(llama_forward(&fm, &stale, (const uint32_t[]){1}, 1, 0, file_logits), Q_ERR_INVALID_ARG);
    }

    /* ---- the caller changes the weights and rebuilds: the new weights are used ---- */
    {
        float before[V], after[V];
        memcpy(before, caller_logits, sizeof before);
        float *norm = (float *)(void *)(img + off_output_norm);
        for (int i = 0; i < D; i++) norm[i] *= 2.0f;
        q_arena_reset(&c);
        c.scratch_head = 0;
        c.scratch_base_offset = 0;
        memset(&m, 0, sizeof m);
        QCHECK_CODE(llama_build_graph(&c, &m), Q_OK);
        memset(c.kv_buffer, 0, c.kv_size);
        QCHECK_CODE(forward_logits(&c, &m, after), Q_OK);
        int doubled = 1;
        for (int i = 0; i < V; i++) doubled &= fabsf(after[i] - 2.0f * before[i]) <= 1e-4f * (1.0f + fabsf(before[i]));
        QCHECK(doubled, "output_norm doubled by the caller, rebuilt: logits doubled (%g -> %g)", before[0], after[0]);
    }
    q_free_memory(&c);
    QCHECK(c.weights_mmap == NULL && c.scratch_buffer == NULL, "q_free_memory clears the hand-built context");
    QCHECK_CODE(forward_logits(&c, &m, caller_logits), Q_ERR_INVALID_ARG);

    remove(path);
    free(pristine);
    free(img);
    return qtest_summary("test_handbuilt_model");
}
