/* qmodel.h — helpers for C tests that run a real model: open it from the path the Rust harness
 * passes in an environment variable, with a context of a given length. */
#ifndef QMODEL_H
#define QMODEL_H
#include <stdlib.h>
#include <string.h>

#include "qorus.h"

/* The model path from `var`, or NULL (the test then fails: the harness always sets it). */
static inline const char *qmodel_path(const char *var) {
    const char *p = getenv(var);
    if (p == NULL || p[0] == '\0') {
        fprintf(stderr, "environment variable %s is not set (run through cargo test)\n", var);
        return NULL;
    }
    return p;
}

/* KV-cache bytes for a built model: L * G * S * hd * 2 * 4. */
static inline size_t qmodel_kv_bytes(const q_llama_model *m) {
    size_t hd = m->config.dim / m->config.n_heads;
    return (size_t)m->config.n_layers * m->config.n_kv_heads * m->config.max_seq_len * hd * 2 * sizeof(float);
}

/* Maps `path`, sets the context length to `n_ctx` (0 = the file's), allocates an arena of
 * `arena_mb` MiB, builds the model and allocates its KV cache. Returns Q_OK or the first error. */
static inline q_error_code qmodel_open(q_context *ctx, q_llama_model *model, const char *path, uint32_t n_ctx,
                                       size_t arena_mb) {
    memset(ctx, 0, sizeof *ctx);
    memset(model, 0, sizeof *model);
    q_error_code rc = q_init_memory(ctx, path);
    if (rc != Q_OK) return rc;
    if (n_ctx != 0) {
        if ((void *)ctx->header == ctx->weights_mmap) {
            /* .qorus: the header is the read-only mapping; callers may point ctx->header at a copy */
            static q_model_header copy;
            copy = *ctx->header;
            ctx->header = &copy;
        }
        ctx->header->max_seq_len = n_ctx; /* GGUF headers are library memory, writable */
    }
    rc = q_alloc_arena(ctx, arena_mb << 20);
    if (rc != Q_OK) return rc;
    rc = llama_build_graph(ctx, model);
    if (rc != Q_OK) return rc;
    return q_alloc_kv_cache(ctx, qmodel_kv_bytes(model));
}

/* A greedy generation state (every other field zero) for prompt p[0..np) into out[0..max_tokens). */
static inline q_generation_state qmodel_state(q_context *ctx, q_llama_model *m, q_tokenizer *tok, const uint32_t *p,
                                              uint32_t np, uint32_t *out, uint32_t max_tokens) {
    q_generation_state s;
    memset(&s, 0, sizeof s);
    s.ctx = ctx;
    s.model = m;
    s.tokenizer = tok;
    s.prompt_tokens = (uint32_t *)p;
    s.num_prompt_tokens = np;
    s.generated_tokens = out;
    s.max_tokens = max_tokens;
    return s;
}

static inline uint32_t qmodel_argmax(const float *v, uint32_t n) {
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

static inline float qmodel_max_abs_diff(const float *a, const float *b, uint32_t n) {
    float m = 0;
    for (uint32_t i = 0; i < n; i++) {
        float d = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
        if (d > m || d != d) m = d != d ? 1e30f : d;
    }
    return m;
}
#endif
