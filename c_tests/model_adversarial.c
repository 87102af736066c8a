/* model_adversarial.c — every export handed bad arguments next to a live SmolLM2 context (issue 8,
 * "Adversarial C tests"). Each bad call must return its documented code (or, for the functions
 * without one, do nothing / return NULL), must not crash, and must leave the live context, model
 * and tokenizer usable: after EVERY bad call below, the same context recomputes the prompt's
 * logits and they must equal, bit for bit, the logits computed before any bad call (BAD/NOOP
 * macros: code check, struct fields unchanged, logits bit-exact, all in one check line). The
 * closing checks also regenerate the reference greedy ids.
 *
 * Coverage (export x case -> where checked). "adv" = this file; other names are c_tests/<name>.c.
 * NULL = NULL for each pointer argument; MIS = misaligned pointer; SIZE = zero / huge sizes and
 * overflow; ID = token id >= vocab; POS = pos / seq_len beyond the context; SMALL = KV cache or
 * arena too small; UAF = used after q_free_memory (and q_free_memory twice); HAND = hand-built
 * tokenizer; "-" = not applicable. Every "adv" entry also checks the live context afterwards.
 *
 * export                      | NULL             | MIS            | SIZE                 | ID/POS       | SMALL        | UAF/HAND
 * q_init_memory[_ex]          | memory, adv      | adv (ctx)      | memory (tiny files)  | -            | -            | memory (reuse), adv (live ctx refused paths)
 * q_alloc_kv_cache            | memory, adv      | adv            | memory, adv          | -            | -            | adv (second alloc on live ctx)
 * q_alloc_arena               | memory, adv      | adv            | memory, adv          | -            | -            | adv
 * q_arena_alloc               | memory           | adv (ctx)      | memory, adv          | -            | memory, adv  | memory, adv (stale copy)
 * q_arena_reset               | memory           | adv (no-op)    | -                    | -            | -            | -
 * q_free_memory               | memory           | adv (no-op)    | -                    | -            | -            | memory, adv (twice, stale copy)
 * q_strerror / q_last_error   | -                | -              | strerror (any int)   | -            | -            | -
 * llama_build_graph           | forward, adv     | adv            | adv (header fields, weights_size), handbuilt_model (caller buffers) | - | adv (arena) | adv (freed ctx), handbuilt_model
 * llama_free_graph            | forward          | adv (no-op)    | -                    | -            | -            | forward (twice)
 * llama_forward               | forward, adv     | adv            | adv (seq_len, pos)   | forward, adv | forward, adv | adv (freed ctx, stale copy)
 * q_tokenizer_load            | tokenizer, adv   | adv            | tokenizer (files)    | -            | -            | -
 * q_tokenizer_encode          | tokenizer, adv   | adv            | tokenizer, adv       | -            | tokenizer    | tokenizer, adv (HAND)
 * q_tokenizer_decode          | tokenizer, adv   | adv            | tokenizer, adv       | tokenizer    | tokenizer    | tokenizer, adv (HAND)
 * q_tokenizer_free            | tokenizer        | adv (no-op)    | -                    | -            | -            | tokenizer (twice), adv (HAND)
 * q_sample_token              | sampling         | sampling, adv  | sampling             | -            | -            | adv (ctx untouched)
 * q_generate                  | generate, adv    | adv            | generate, adv        | generate, adv| adv          | generate (HAND), adv (UAF, HAND)
 * q_generate_stream           | adv              | adv            | adv                  | adv          | -            | adv (HAND, NULL vocab)
 * q_generate_batch            | generate, adv    | adv            | generate             | adv          | -            | -
 * q_set_seed / q_set/get_num_threads | -         | -              | forward, adv (257)   | -            | -            | -
 * kernels (q_*_f32_avx2, q_gemv_q4_f32_avx2, q_dequantize_*) | kernels | kernels | kernels, adv (overflowing strides) | - | - | -
 * q_quantize_model / q_convert_to_qorus | convert | -            | convert, adv (a directory as input) | - | -       | -
 */
#include <stdint.h>
#include <stdlib.h>

#include "qorus.h"
#include "support/qmodel.h"
#include "support/qtest.h"

#define NCTX 64
#define ARENA_MB 16
#define NGEN 4
static const uint32_t prompt[] = {504, 3575, 282, 4649, 314};
#define NP (uint32_t)(sizeof prompt / sizeof prompt[0])

static const char *path;
static q_context ctx;       /* the live context every bad call is made next to */
static q_llama_model model; /* built on ctx */
static q_tokenizer tok;     /* the model's tokenizer */
static q_context ctx_saved;
static q_llama_model model_saved;
static q_tokenizer tok_saved;
static uint32_t V;
static float *ref_logits, *logits;
static uint32_t ref_ids[NGEN];

/* The live structs are as they were (the arena head may move: forward's temporaries), and the
 * prompt's logits are bit-identical to the reference. */
static int still_ok(void) {
    q_context c = ctx;
    c.scratch_head = ctx_saved.scratch_head;
    if (memcmp(&c, &ctx_saved, sizeof c) != 0) return 0;
    if (memcmp(&model, &model_saved, sizeof model) != 0) return 0;
    if (memcmp(&tok, &tok_saved, sizeof tok) != 0) return 0;
    q_arena_reset(&ctx);
    memset(logits, 0, V * sizeof(float));
    if (llama_forward(&model, &ctx, prompt, NP, 0, logits) != Q_OK) return 0;
    return memcmp(logits, ref_logits, V * sizeof(float)) == 0;
}

/* A call returning a q_error_code: the expected code, then the live context still correct. */
#define BAD(expr, expected)                                                                        \
    do {                                                                                           \
        q_error_code rc_ = (expr);                                                                 \
        int ok_ = still_ok();                                                                      \
        QCHECK(rc_ == (expected) && ok_, "%s -> %d (%s), expected %d; live context %s", #expr, (int)rc_, \
               q_strerror(rc_), (int)(expected), ok_ ? "intact" : "BROKEN");                       \
    } while (0)

/* A statement without an error code: `cond` holds afterwards, and the live context is correct. */
#define NOOP(stmt, cond)                                                                           \
    do {                                                                                           \
        stmt;                                                                                      \
        int c_ = (cond);                                                                           \
        int ok_ = still_ok();                                                                      \
        QCHECK(c_ && ok_, "%s: %s; live context %s", #stmt, #cond, ok_ ? "intact" : "BROKEN");    \
    } while (0)


/* Greedy ids from the live context equal the reference ids. */
static int generate_matches(q_tokenizer *t) {
    uint32_t out[NGEN];
    q_generation_state s = qmodel_state(&ctx, &model, t, prompt, NP, out, NGEN);
    return q_generate(&s) == Q_OK && s.num_generated_tokens == NGEN && memcmp(out, ref_ids, sizeof out) == 0;
}

/* A buffer `off` bytes past a 64-byte boundary, for misaligned pointers (off < 64). */
static void *at_offset(void *base64, size_t off) { return (char *)base64 + off; }

/* ---- memory API next to the live context ----------------------------------------------------- */

static void memory_cases(void) {
    _Alignas(64) static unsigned char raw[2 * sizeof(q_context) + 64];
    q_context *mis = at_offset(raw, 4); /* not 8-byte aligned */
    memcpy(mis, &ctx, sizeof ctx);      /* a misaligned copy of the live context */

    BAD(q_init_memory(NULL, path), Q_ERR_INVALID_ARG);
    BAD(q_init_memory(&ctx, NULL), Q_ERR_INVALID_ARG);
    BAD(q_init_memory(&ctx, "/nonexistent/model.gguf"), Q_ERR_FILE_OPEN);
    BAD(q_init_memory(&ctx, ""), Q_ERR_FILE_OPEN);
    BAD(q_init_memory_ex(mis, path, Q_MMAP_LAZY), Q_ERR_MISALIGNED);
    {
        /* a directory: open() works, it is no model file */
        q_error_code rc = q_init_memory_ex(&ctx, ".", Q_MMAP_EAGER);
        int ok = still_ok();
        QCHECK(rc < 0 && rc != Q_ERR_INTERNAL && ok, "q_init_memory(ctx, \".\") -> %d (%s); live context %s", (int)rc,
               q_strerror(rc), ok ? "intact" : "BROKEN");
    }

    BAD(q_alloc_kv_cache(NULL, 4096), Q_ERR_INVALID_ARG);
    BAD(q_alloc_kv_cache(&ctx, 4096), Q_ERR_INVALID_ARG); /* already allocated: kept */
    BAD(q_alloc_kv_cache(&ctx, 0), Q_ERR_INVALID_ARG);
    BAD(q_alloc_kv_cache(&ctx, SIZE_MAX), Q_ERR_INVALID_ARG);
    BAD(q_alloc_kv_cache(mis, 4096), Q_ERR_MISALIGNED);
    BAD(q_alloc_arena(NULL, 4096), Q_ERR_INVALID_ARG);
    BAD(q_alloc_arena(&ctx, 4096), Q_ERR_INVALID_ARG);
    BAD(q_alloc_arena(&ctx, SIZE_MAX), Q_ERR_INVALID_ARG);
    BAD(q_alloc_arena(mis, 4096), Q_ERR_MISALIGNED);

    size_t head = ctx.scratch_head;
    NOOP(void *p = q_arena_alloc(&ctx, 0), p == NULL && ctx.scratch_head == head);
    NOOP(void *p = q_arena_alloc(&ctx, SIZE_MAX), p == NULL && ctx.scratch_head == head);
    NOOP(void *p = q_arena_alloc(&ctx, SIZE_MAX - 63), p == NULL && ctx.scratch_head == head);
    NOOP(void *p = q_arena_alloc(&ctx, ctx.scratch_size + 1), p == NULL && ctx.scratch_head == head);
    NOOP(void *p = q_arena_alloc(mis, 64), p == NULL);
    NOOP(q_arena_reset(mis), 1);
    /* q_free_memory on a misaligned copy must not free the live buffers the copy names */
    NOOP(q_free_memory(mis), memcmp(mis, &ctx, sizeof ctx) == 0);

    /* the arena nearly used up by the caller: the forward pass reports ARENA_OOM, and after
     * q_arena_reset everything works again */
    q_arena_reset(&ctx);
    size_t left = ctx.scratch_size - ctx.scratch_head;
    void *hog = q_arena_alloc(&ctx, left - 4096);
    QCHECK(hog != NULL, "q_arena_alloc takes all but 4 KiB of the arena");
    QCHECK_CODE(llama_forward(&model, &ctx, prompt, NP, 0, logits), Q_ERR_ARENA_OOM);
    uint32_t out[NGEN];
    q_generation_state s = qmodel_state(&ctx, &model, &tok, prompt, NP, out, NGEN);
    s.ctx->scratch_head = ctx.scratch_size - 4096;
    /* q_generate rewinds the arena to the watermark itself, so it must succeed */
    QCHECK_CODE(q_generate(&s), Q_OK);
    QCHECK(s.num_generated_tokens == NGEN && memcmp(out, ref_ids, sizeof out) == 0,
           "q_generate after the arena was exhausted by the caller: reference ids");
    NOOP(q_arena_reset(&ctx), ctx.scratch_head == ctx.scratch_base_offset);

    /* a scratch_head that is not a multiple of 64 */
    ctx.scratch_head = ctx.scratch_base_offset + 3;
    QCHECK_CODE(llama_forward(&model, &ctx, prompt, NP, 0, logits), Q_ERR_ARENA_OOM);
    NOOP(q_arena_reset(&ctx), ctx.scratch_head == ctx.scratch_base_offset);
}

/* ---- llama_build_graph / llama_forward -------------------------------------------------------- */

static void model_cases(void) {
    _Alignas(64) static unsigned char raw[2 * sizeof(q_llama_model) + 2 * sizeof(q_context) + 64];
    q_llama_model *mis_model = at_offset(raw, 4);
    memcpy(mis_model, &model, sizeof model);
    q_context *mis_ctx = at_offset(raw, sizeof(q_llama_model) + 68);
    memcpy(mis_ctx, &ctx, sizeof ctx);
    q_llama_model m2;
    memset(&m2, 0, sizeof m2);

    BAD(llama_build_graph(NULL, &m2), Q_ERR_NULL_PTR);
    BAD(llama_build_graph(&ctx, NULL), Q_ERR_NULL_PTR);
    BAD(llama_build_graph(&ctx, mis_model), Q_ERR_MISALIGNED);
    BAD(llama_build_graph(mis_ctx, &m2), Q_ERR_MISALIGNED);
    NOOP(llama_free_graph(mis_model), memcmp(mis_model, &model_saved, sizeof model_saved) == 0);

    /* header fields zero, huge or inconsistent (the GGUF header is library memory the caller may
     * write): refused without building or allocating anything huge */
    struct {
        const char *what;
        size_t off;
        uint32_t value;
        q_error_code want;
    } fields[] = {
        {"vocab_size 0", offsetof(q_model_header, vocab_size), 0, Q_ERR_INVALID_CONFIG},
        {"vocab_size UINT32_MAX", offsetof(q_model_header, vocab_size), UINT32_MAX, Q_ERR_INVALID_CONFIG},
        {"dim 0", offsetof(q_model_header, dim), 0, Q_ERR_INVALID_CONFIG},
        {"dim 33", offsetof(q_model_header, dim), 33, Q_ERR_INVALID_CONFIG},
        {"dim 2^31", offsetof(q_model_header, dim), 1u << 31, Q_ERR_INVALID_CONFIG},
        {"hidden_dim 0", offsetof(q_model_header, hidden_dim), 0, Q_ERR_INVALID_CONFIG},
        {"hidden_dim UINT32_MAX-31", offsetof(q_model_header, hidden_dim), UINT32_MAX - 31, Q_ERR_INVALID_CONFIG},
        {"n_layers 0", offsetof(q_model_header, n_layers), 0, Q_ERR_INVALID_CONFIG},
        {"n_layers UINT32_MAX", offsetof(q_model_header, n_layers), UINT32_MAX, Q_ERR_INVALID_CONFIG},
        {"n_heads 0", offsetof(q_model_header, n_heads), 0, Q_ERR_INVALID_CONFIG},
        {"n_heads UINT32_MAX", offsetof(q_model_header, n_heads), UINT32_MAX, Q_ERR_INVALID_CONFIG},
        {"n_kv_heads 0", offsetof(q_model_header, n_kv_heads), 0, Q_ERR_INVALID_CONFIG},
        {"n_kv_heads 9 (tensor shapes disagree)", offsetof(q_model_header, n_kv_heads), 9, Q_ERR_INVALID_CONFIG},
        {"max_seq_len 0", offsetof(q_model_header, max_seq_len), 0, Q_ERR_INVALID_CONFIG},
        {"magic 0", offsetof(q_model_header, magic), 0, Q_ERR_INVALID_MAGIC},
    };
    q_model_header saved = *ctx.header;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        memcpy((char *)ctx.header + fields[i].off, &fields[i].value, 4);
        memset(&m2, 0, sizeof m2);
        q_error_code rc = llama_build_graph(&ctx, &m2);
        *ctx.header = saved;
        int ok = still_ok();
        QCHECK(rc == fields[i].want && ok, "llama_build_graph with header %s -> %d (%s), expected %d; live context %s",
               fields[i].what, (int)rc, q_strerror(rc), (int)fields[i].want, ok ? "intact" : "BROKEN");
    }
    /* weights_size edited on the live mapping (issue 17): shrunk below what the tensors span ->
     * INVALID_CONFIG, as the original; enlarged past the mapping -> INVALID_ARG (never read) */
    {
        size_t real = ctx.weights_size;
        size_t sizes[] = {real / 2, 64, 0, real + 1, SIZE_MAX};
        q_error_code want[] = {Q_ERR_INVALID_CONFIG, Q_ERR_INVALID_CONFIG, Q_ERR_INVALID_CONFIG, Q_ERR_INVALID_ARG,
                               Q_ERR_INVALID_ARG};
        for (int i = 0; i < 5; i++) {
            memset(&m2, 0, sizeof m2);
            ctx.weights_size = sizes[i];
            q_error_code rc = llama_build_graph(&ctx, &m2);
            ctx.weights_size = real;
            BAD(rc, want[i]);
        }
    }
    /* the norm views point into the mapping, as the original's (the GGUF's F32 norms) */
    {
        const char *lo = (const char *)ctx.weights_mmap, *hi = lo + ctx.weights_size;
        const char *on = (const char *)model.output_norm->data, *an = (const char *)model.layers[0].attn_norm->data;
        QCHECK(on >= lo && on < hi && an >= lo && an < hi, "output_norm and attn_norm views lie in the mapping");
    }
    /* a huge context length: the build may succeed (views only), but no KV cache the caller can
     * allocate is big enough, so the forward pass refuses */
    {
        q_context big;
        q_llama_model mb;
        memset(&big, 0, sizeof big);
        memset(&mb, 0, sizeof mb);
        QCHECK_CODE(q_init_memory(&big, path), Q_OK);
        big.header->max_seq_len = UINT32_MAX;
        QCHECK_CODE(q_alloc_arena(&big, (size_t)ARENA_MB << 20), Q_OK);
        q_error_code rc = llama_build_graph(&big, &mb);
        QCHECK(rc == Q_OK || rc == Q_ERR_INVALID_CONFIG, "max_seq_len UINT32_MAX: build -> %d (%s)", (int)rc,
               q_strerror(rc));
        if (rc == Q_OK) {
            QCHECK_CODE(q_alloc_kv_cache(&big, 1 << 20), Q_OK);
            QCHECK_CODE(llama_forward(&mb, &big, prompt, NP, 0, logits), Q_ERR_INVALID_SIZE);
            QCHECK_CODE(llama_forward(&mb, &big, prompt, NP, UINT32_MAX - 2, logits), Q_ERR_INVALID_ARG);
        }
        q_free_memory(&big);
        QCHECK(still_ok(), "live context intact after a context with max_seq_len UINT32_MAX");
    }
    /* an arena too small for the views */
    {
        q_context small;
        memset(&small, 0, sizeof small);
        memset(&m2, 0, sizeof m2);
        QCHECK_CODE(q_init_memory(&small, path), Q_OK);
        small.header->max_seq_len = NCTX;
        QCHECK_CODE(q_alloc_arena(&small, 4096), Q_OK);
        BAD(llama_build_graph(&small, &m2), Q_ERR_ARENA_OOM);
        QCHECK(small.scratch_base_offset == 0, "a failed build does not move the arena watermark");
        q_free_memory(&small);
    }

    /* llama_forward: NULL, misaligned, zero and huge sizes, ids and positions out of range */
    uint32_t *many = calloc(NCTX + 2, sizeof(uint32_t));
    _Alignas(64) static uint32_t tokbuf[NCTX + 16];
    memcpy(tokbuf + 1, prompt, sizeof prompt);
    uint32_t *mis_tokens = (uint32_t *)at_offset(tokbuf, 2);
    BAD(llama_forward(NULL, &ctx, prompt, NP, 0, logits), Q_ERR_INVALID_ARG);
    BAD(llama_forward(&model, NULL, prompt, NP, 0, logits), Q_ERR_INVALID_ARG);
    BAD(llama_forward(&model, &ctx, NULL, NP, 0, logits), Q_ERR_INVALID_ARG);
    BAD(llama_forward(&model, &ctx, prompt, NP, 0, NULL), Q_ERR_INVALID_ARG);
    BAD(llama_forward(mis_model, &ctx, prompt, NP, 0, logits), Q_ERR_MISALIGNED);
    BAD(llama_forward(&model, mis_ctx, prompt, NP, 0, logits), Q_ERR_MISALIGNED);
    BAD(llama_forward(&model, &ctx, mis_tokens, NP, 0, logits), Q_ERR_MISALIGNED);
    BAD(llama_forward(&model, &ctx, prompt, 0, 0, logits), Q_ERR_INVALID_SIZE);
    BAD(llama_forward(&model, &ctx, many, NCTX + 1, 0, logits), Q_ERR_INVALID_SIZE);
    BAD(llama_forward(&model, &ctx, many, UINT32_MAX, 0, logits), Q_ERR_INVALID_SIZE);
    BAD(llama_forward(&model, &ctx, many, UINT32_MAX, 1, logits), Q_ERR_INVALID_SIZE);
    BAD(llama_forward(&model, &ctx, prompt, 1, NCTX, logits), Q_ERR_INVALID_ARG);
    BAD(llama_forward(&model, &ctx, prompt, 1, UINT32_MAX, logits), Q_ERR_INVALID_ARG);
    BAD(llama_forward(&model, &ctx, prompt, 2, NCTX - 1, logits), Q_ERR_INVALID_ARG);
    BAD(llama_forward(&model, &ctx, many, NCTX, 1, logits), Q_ERR_INVALID_ARG);
    uint32_t bad_ids[3][2] = {{1, 0}, {1, 0}, {1, 0}};
    bad_ids[0][1] = V;
    bad_ids[1][1] = V + 1000;
    bad_ids[2][1] = UINT32_MAX;
    for (int i = 0; i < 3; i++) BAD(llama_forward(&model, &ctx, bad_ids[i], 2, 0, logits), Q_ERR_INVALID_ARG);

    /* KV cache too small: the caller's kv_size says so */
    size_t kv = ctx.kv_size;
    ctx.kv_size = kv - 64;
    q_error_code rc = llama_forward(&model, &ctx, prompt, NP, 0, logits);
    ctx.kv_size = kv;
    BAD(rc, Q_ERR_INVALID_SIZE);
    /* a context whose KV cache or arena is really too small, whatever its size fields claim */
    {
        q_context c2;
        memset(&c2, 0, sizeof c2);
        QCHECK_CODE(q_alloc_arena(&c2, (size_t)ARENA_MB << 20), Q_OK);
        QCHECK_CODE(q_alloc_kv_cache(&c2, 4096), Q_OK);
        BAD(llama_forward(&model, &c2, prompt, NP, 0, logits), Q_ERR_INVALID_SIZE);
        c2.kv_size = ctx.kv_size; /* a lie: the buffer has 4096 bytes */
        rc = llama_forward(&model, &c2, prompt, NP, 0, logits);
        BAD(rc, Q_ERR_INVALID_SIZE);
        c2.kv_size = 4096;
        q_free_memory(&c2);
        QCHECK_CODE(q_alloc_arena(&c2, 4096), Q_OK);
        QCHECK_CODE(q_alloc_kv_cache(&c2, ctx.kv_size), Q_OK);
        BAD(llama_forward(&model, &c2, prompt, NP, 0, logits), Q_ERR_ARENA_OOM);
        c2.scratch_size = ctx.scratch_size; /* a lie: the arena has 4096 bytes */
        rc = llama_forward(&model, &c2, prompt, NP, 0, logits);
        BAD(rc, Q_ERR_ARENA_OOM);
        c2.scratch_size = 4096;
        q_free_memory(&c2);
    }
    /* the model's configuration edited by the caller */
    model.config.vocab_size = V + 1;
    rc = llama_forward(&model, &ctx, prompt, NP, 0, logits);
    model.config.vocab_size = V;
    BAD(rc, Q_ERR_INVALID_ARG);
    model.config.max_seq_len = UINT32_MAX;
    rc = llama_forward(&model, &ctx, prompt, NP, 0, logits);
    model.config.max_seq_len = NCTX;
    BAD(rc, Q_ERR_INVALID_ARG);
    /* model->ctx pointing at a context without a mapping */
    {
        q_context empty;
        memset(&empty, 0, sizeof empty);
        model.ctx = &empty;
        rc = llama_forward(&model, &ctx, prompt, NP, 0, logits);
        model.ctx = &ctx;
        BAD(rc, Q_ERR_INVALID_ARG);
    }
    /* misaligned logits are fine (spec: any alignment) */
    {
        _Alignas(64) static unsigned char lraw[49152 * 4 + 64];
        float *ml = (float *)at_offset(lraw, 1);
        q_arena_reset(&ctx);
        rc = llama_forward(&model, &ctx, prompt, NP, 0, V <= 49152 ? ml : logits);
        QCHECK(rc == Q_OK && memcmp(V <= 49152 ? (void *)ml : (void *)logits, ref_logits, V * sizeof(float)) == 0,
               "logits written 1 byte off alignment: bit-exact");
    }
    /* a second graph on the same context is a valid use: both give the reference logits */
    {
        memset(&m2, 0, sizeof m2);
        QCHECK_CODE(llama_build_graph(&ctx, &m2), Q_OK);
        q_arena_reset(&ctx);
        rc = llama_forward(&m2, &ctx, prompt, NP, 0, logits);
        QCHECK(rc == Q_OK && memcmp(logits, ref_logits, V * sizeof(float)) == 0,
               "a second graph built on the live context: bit-exact logits");
        ctx_saved = ctx; /* the watermark moved above the second graph's views */
        QCHECK(still_ok(), "the first graph still gives the reference logits");
    }
    free(many);
}

/* ---- tokenizer --------------------------------------------------------------------------------- */

static void tokenizer_cases(void) {
    _Alignas(64) static unsigned char raw[2 * sizeof(q_tokenizer) + 64];
    q_tokenizer *mis_tok = at_offset(raw, 4);
    memcpy(mis_tok, &tok, sizeof tok);
    _Alignas(64) static uint32_t ids[80];
    uint32_t n = 0;
    char text[256];

    BAD(q_tokenizer_load(NULL, path), Q_ERR_INVALID_ARG);
    BAD(q_tokenizer_load(mis_tok, path), Q_ERR_MISALIGNED);
    {
        q_tokenizer t2;
        memset(&t2, 0x5A, sizeof t2);
        q_error_code rc = q_tokenizer_load(&t2, ".");
        int ok = still_ok();
        QCHECK(rc < 0 && rc != Q_ERR_INTERNAL && ok, "q_tokenizer_load(\".\") -> %d (%s); live context %s", (int)rc,
               q_strerror(rc), ok ? "intact" : "BROKEN");
        q_tokenizer_free(&t2);
    }

    BAD(q_tokenizer_encode(&tok, "Hello", ids, &n, 0, false, false), Q_ERR_INVALID_SIZE);
    BAD(q_tokenizer_encode(NULL, "Hello", ids, &n, 8, false, false), Q_ERR_INVALID_ARG);
    BAD(q_tokenizer_encode(&tok, NULL, ids, &n, 8, false, false), Q_ERR_INVALID_ARG);
    BAD(q_tokenizer_encode(&tok, "Hello", NULL, &n, 8, false, false), Q_ERR_INVALID_ARG);
    BAD(q_tokenizer_encode(&tok, "Hello", ids, NULL, 8, false, false), Q_ERR_INVALID_ARG);
    BAD(q_tokenizer_encode(mis_tok, "Hello", ids, &n, 8, false, false), Q_ERR_MISALIGNED);
    BAD(q_tokenizer_encode(&tok, "Hello", (uint32_t *)at_offset(ids, 2), &n, 8, false, false), Q_ERR_MISALIGNED);
    {
        /* a misaligned count pointer is written unaligned-safe, like q_sample_token's output */
        _Alignas(64) static unsigned char nraw[16];
        uint32_t *mis_n = (uint32_t *)at_offset(nraw, 1);
        q_error_code rc = q_tokenizer_encode(&tok, "Hello", ids, mis_n, 8, false, false);
        uint32_t got;
        memcpy(&got, nraw + 1, 4);
        int ok = still_ok();
        QCHECK(rc == Q_OK && got >= 1 && ok, "encode with a misaligned count pointer -> %d, count %u; live context %s",
               (int)rc, got, ok ? "intact" : "BROKEN");
    }
    /* result longer than max_tokens: ARENA_OOM and nothing written */
    ids[0] = 77;
    n = 12345;
    BAD(q_tokenizer_encode(&tok, "one two three four five six seven", ids, &n, 3, true, true), Q_ERR_ARENA_OOM);
    QCHECK(ids[0] == 77 && n == 12345, "too small: outputs untouched");
    /* max_tokens huge with a real buffer large enough for the result: fine */
    BAD(q_tokenizer_encode(&tok, "Hello", ids, &n, UINT32_MAX, false, false), Q_OK);

    const uint32_t good[3] = {ref_ids[0], ref_ids[1], ref_ids[2]};
    BAD(q_tokenizer_decode(NULL, good, 3, text, sizeof text), Q_ERR_INVALID_ARG);
    BAD(q_tokenizer_decode(&tok, NULL, 3, text, sizeof text), Q_ERR_INVALID_ARG);
    BAD(q_tokenizer_decode(&tok, good, 3, NULL, sizeof text), Q_ERR_INVALID_ARG);
    BAD(q_tokenizer_decode(&tok, good, 3, text, 0), Q_ERR_INVALID_SIZE);
    BAD(q_tokenizer_decode(mis_tok, good, 3, text, sizeof text), Q_ERR_MISALIGNED);
    memcpy(at_offset(ids, 2), good, sizeof good);
    BAD(q_tokenizer_decode(&tok, (uint32_t *)at_offset(ids, 2), 3, text, sizeof text), Q_ERR_MISALIGNED);
    text[0] = 'x';
    BAD(q_tokenizer_decode(&tok, good, 3, text, 1), Q_ERR_ARENA_OOM);
    QCHECK(text[0] == '\0', "1-byte buffer: empty string written");
    /* ids >= vocab are skipped; a huge buffer size with a real 256-byte buffer is fine */
    const uint32_t odd[4] = {V, good[0], UINT32_MAX, V + 7};
    BAD(q_tokenizer_decode(&tok, odd, 4, text, SIZE_MAX), Q_OK);
    char one[64];
    q_tokenizer_decode(&tok, good, 1, one, sizeof one);
    QCHECK(strcmp(text, one) == 0, "ids >= vocab skipped: \"%s\"", text);
    BAD(q_tokenizer_decode(&tok, good, 0, text, sizeof text), Q_OK);
    QCHECK(text[0] == '\0', "no ids: empty string");

    NOOP(q_tokenizer_free(mis_tok), 1); /* misaligned: not touched, the live tokenizer keeps its memory */
}

/* ---- hand-built tokenizers (spec §2.5, §3.5: vocab/merges from the caller, table NULL) ---------- */

static int streamed;
static bool count_pieces(uint32_t id, const char *piece, size_t len, void *user) {
    (void)id;
    if (piece == NULL || piece[len] != '\0') *(int *)user = 1;
    streamed++;
    return true;
}

static void hand_built_cases(void) {
    uint32_t ids[64], n = 0;
    char text[512];
    /* 1. Only `initialized` and `eos_token_id` (what q_generate reads): vocab NULL, no merges. */
    q_tokenizer h;
    memset(&h, 0, sizeof h);
    h.initialized = true;
    h.eos_token_id = UINT32_MAX; /* never generated */
    QCHECK(generate_matches(&h), "q_generate with a minimal hand-built tokenizer: reference ids");
    int bad_piece = 0;
    streamed = 0;
    uint32_t out[NGEN];
    q_generation_state s = qmodel_state(&ctx, &model, &h, prompt, NP, out, NGEN);
    BAD(q_generate_stream(&s, count_pieces, &bad_piece), Q_OK);
    QCHECK(streamed == NGEN && !bad_piece && memcmp(out, ref_ids, sizeof out) == 0,
           "q_generate_stream with vocab NULL: %d NUL-terminated (empty) pieces, reference ids", streamed);
    /* vocab NULL but vocab_size > 0 */
    h.vocab_size = 1000;
    BAD(q_tokenizer_decode(&h, ref_ids, NGEN, text, sizeof text), Q_ERR_INVALID_ARG);
    BAD(q_tokenizer_encode(&h, "abc", ids, &n, 64, false, false), Q_OK); /* bytes -> ids, no vocab needed */
    QCHECK(n == 3 && ids[0] == 'a' && ids[2] == 'c', "encode without vocab: byte ids");
    /* merges NULL with num_merges > 0 */
    h.num_merges = 5;
    BAD(q_tokenizer_encode(&h, "abc", ids, &n, 64, false, false), Q_ERR_INVALID_ARG);
    h.num_merges = 0;
    /* a merge_hash_table the library did not make is ignored, never dereferenced or freed */
    h.merge_hash_table = (struct bpe_hash_table *)(uintptr_t)0x1000;
    BAD(q_tokenizer_encode(&h, "abc", ids, &n, 64, false, false), Q_OK);
    NOOP(q_tokenizer_free(&h), h.merge_hash_table == NULL && !h.initialized);

    /* 2. A hand-built copy of the model's vocabulary and merges (the caller's own arrays). */
    q_tokenizer c;
    memset(&c, 0, sizeof c);
    c.vocab_size = tok.vocab_size;
    c.vocab = calloc(c.vocab_size, sizeof(char *));
    for (uint32_t i = 0; i < c.vocab_size; i++)
        if (tok.vocab[i] && i % 97 != 5) c.vocab[i] = strdup(tok.vocab[i]); /* some entries NULL */
    c.num_merges = tok.num_merges;
    c.merges = calloc(c.num_merges ? c.num_merges : 1, sizeof(q_bpe_merge));
    memcpy(c.merges, tok.merges, c.num_merges * sizeof(q_bpe_merge));
    c.bos_token_id = tok.bos_token_id;
    c.eos_token_id = tok.eos_token_id;
    c.pad_token_id = tok.pad_token_id;
    c.initialized = true;
    BAD(q_tokenizer_encode(&c, "The capital of France is Paris.", ids, &n, 64, true, true), Q_OK);
    int in_range = n >= 2;
    for (uint32_t i = 0; i < n; i++) in_range &= ids[i] < V;
    QCHECK(in_range, "hand-built copy: %u ids, all < vocab", n);
    /* (no round trip: a hand-built struct is encoded with the spec's byte-level algorithm, byte c
     * -> id c, which is not how this vocabulary numbers its tokens) */
    BAD(q_tokenizer_decode(&c, ids, n, text, sizeof text), Q_OK);
    QCHECK(generate_matches(&c), "q_generate with the hand-built copy: reference ids");
    bad_piece = 0;
    streamed = 0;
    s = qmodel_state(&ctx, &model, &c, prompt, NP, out, NGEN);
    BAD(q_generate_stream(&s, count_pieces, &bad_piece), Q_OK);
    QCHECK(streamed == NGEN && !bad_piece, "q_generate_stream with the hand-built copy: %d pieces", streamed);
    /* merges naming ids beyond the vocabulary: encoding yields them, q_generate refuses them */
    c.merges[0].merged_id = UINT32_MAX;
    c.merges[0].token_id1 = 'a';
    c.merges[0].token_id2 = 'a';
    BAD(q_tokenizer_encode(&c, "aa", ids, &n, 64, false, false), Q_OK);
    QCHECK(n == 1 && ids[0] == UINT32_MAX, "merge to UINT32_MAX applied as written (n=%u)", n);
    s = qmodel_state(&ctx, &model, &c, ids, n, out, NGEN);
    BAD(q_generate(&s), Q_ERR_INVALID_ARG);
    BAD(q_tokenizer_decode(&c, ids, n, text, sizeof text), Q_OK);
    /* bytes >= vocab_size become PAD */
    uint32_t saved_merges = c.num_merges;
    c.vocab_size = 10;
    c.num_merges = 0;
    c.pad_token_id = 3;
    BAD(q_tokenizer_encode(&c, "zz", ids, &n, 64, false, false), Q_OK);
    QCHECK(n == 2 && ids[0] == 3 && ids[1] == 3, "bytes >= vocab_size -> PAD");
    c.vocab_size = tok.vocab_size;
    c.num_merges = saved_merges;
    /* the caller frees some strings itself, then q_tokenizer_free the rest */
    free(c.vocab[100]);
    c.vocab[100] = NULL;
    NOOP(q_tokenizer_free(&c), c.vocab == NULL && c.merges == NULL);
    NOOP(q_tokenizer_free(&c), 1);
}

/* ---- generation ------------------------------------------------------------------------------- */

static void generate_cases(void) {
    _Alignas(64) static uint32_t buf[NCTX + 32];
    uint32_t out[NCTX + 8];
    q_generation_state s;
    _Alignas(64) static unsigned char sraw[2 * sizeof(q_generation_state) + 64];
    q_generation_state *mis_state = at_offset(sraw, 4);

    BAD(q_generate(NULL), Q_ERR_INVALID_ARG);
    BAD(q_generate_stream(NULL, NULL, NULL), Q_ERR_INVALID_ARG);
    s = qmodel_state(&ctx, &model, &tok, prompt, NP, out, NGEN);
    memcpy(mis_state, &s, sizeof s);
    BAD(q_generate(mis_state), Q_ERR_MISALIGNED);
    BAD(q_generate_stream(mis_state, NULL, NULL), Q_ERR_MISALIGNED);
    BAD(q_generate_stream(mis_state, count_pieces, NULL), Q_ERR_MISALIGNED);
    s = qmodel_state(&ctx, &model, &tok, prompt, NP, out, 0);
    BAD(q_generate_stream(&s, count_pieces, NULL), Q_ERR_INVALID_SIZE);
    memcpy(buf + 1, prompt, sizeof prompt);
    s = qmodel_state(&ctx, &model, &tok, (uint32_t *)at_offset(buf, 2), NP, out, NGEN);
    BAD(q_generate(&s), Q_ERR_MISALIGNED);
    s = qmodel_state(&ctx, &model, &tok, prompt, NP, (uint32_t *)at_offset(buf, 2), NGEN);
    BAD(q_generate(&s), Q_ERR_MISALIGNED);
    s = qmodel_state(&ctx, &model, &tok, prompt, UINT32_MAX, out, NGEN);
    BAD(q_generate(&s), Q_ERR_INVALID_SIZE);
    s = qmodel_state(&ctx, &model, &tok, buf, NCTX + 1, out, NGEN);
    BAD(q_generate(&s), Q_ERR_INVALID_SIZE);
    uint32_t bad_prompt[3] = {1, 2, 0};
    bad_prompt[2] = V;
    s = qmodel_state(&ctx, &model, &tok, bad_prompt, 3, out, NGEN);
    BAD(q_generate(&s), Q_ERR_INVALID_ARG);
    s = qmodel_state(&ctx, &model, &tok, prompt, NP, out, NGEN);
    s.top_k = UINT32_MAX;
    s.top_p = NAN;
    s.temperature = 0.7f;
    BAD(q_generate(&s), Q_OK); /* top_k/top_p are not validated (spec §3.6.1) */
    s.temperature = 1e30f;
    BAD(q_generate(&s), Q_OK);
    /* a context without a KV cache, and one whose KV cache is too small */
    {
        q_context c2;
        memset(&c2, 0, sizeof c2);
        QCHECK_CODE(q_alloc_arena(&c2, (size_t)ARENA_MB << 20), Q_OK);
        s = qmodel_state(&c2, &model, &tok, prompt, NP, out, NGEN);
        BAD(q_generate(&s), Q_ERR_INVALID_ARG);
        QCHECK_CODE(q_alloc_kv_cache(&c2, 64), Q_OK);
        BAD(q_generate(&s), Q_ERR_INVALID_SIZE);
        q_free_memory(&c2);
    }
    /* max_tokens larger than the context has room for: the generation fills the context and stops
     * cleanly (context full); the hand-built tokenizer's EOS never matches */
    {
        q_tokenizer h;
        memset(&h, 0, sizeof h);
        h.initialized = true;
        h.eos_token_id = UINT32_MAX;
        s = qmodel_state(&ctx, &model, &h, prompt, NP, out, NCTX + 8);
        BAD(q_generate(&s), Q_OK);
        QCHECK(s.current_pos == NCTX && s.num_generated_tokens >= NCTX - NP && s.num_generated_tokens <= NCTX - NP + 1 &&
                   memcmp(out, ref_ids, sizeof ref_ids) == 0,
               "max_tokens beyond the context: context full after %u ids, current_pos %u == %d", s.num_generated_tokens,
               s.current_pos, NCTX);
        s = qmodel_state(&ctx, &model, &h, buf, NCTX, out, NCTX + 8);
        memset(buf, 0, NCTX * sizeof(uint32_t));
        BAD(q_generate(&s), Q_OK);
        QCHECK(s.current_pos == NCTX && s.num_generated_tokens <= 1, "prompt of the whole context: %u id, current_pos %u",
               s.num_generated_tokens, s.current_pos);
    }
    /* q_generate_stream: NULL callback is q_generate */
    s = qmodel_state(&ctx, &model, &tok, prompt, NP, out, NGEN);
    BAD(q_generate_stream(&s, NULL, NULL), Q_OK);
    QCHECK(s.num_generated_tokens == NGEN && memcmp(out, ref_ids, sizeof ref_ids) == 0,
           "q_generate_stream without a callback: reference ids");
    s = qmodel_state(&ctx, &model, &tok, bad_prompt, 3, out, NGEN);
    BAD(q_generate_stream(&s, count_pieces, NULL), Q_ERR_INVALID_ARG);

    /* q_generate_batch: misaligned outputs, a bad state among good ones */
    {
        q_context bc[2];
        q_generation_state st[2];
        _Alignas(64) static uint32_t tout[4 * NGEN + 16];
        _Alignas(64) static uint32_t counts[8];
        _Alignas(64) static float shared[2 * 49152 + 64];
        uint32_t o0[NGEN], o1[NGEN];
        for (int i = 0; i < 2; i++) {
            memset(&bc[i], 0, sizeof bc[i]);
            QCHECK_CODE(q_alloc_arena(&bc[i], (size_t)ARENA_MB << 20), Q_OK);
            QCHECK_CODE(q_alloc_kv_cache(&bc[i], qmodel_kv_bytes(&model)), Q_OK);
        }
        st[0] = qmodel_state(&bc[0], &model, &tok, prompt, NP, o0, NGEN);
        st[1] = qmodel_state(&bc[1], &model, &tok, prompt, NP, o1, NGEN);
        q_batch_generation_state b = {st, 2, NULL};
        BAD(q_generate_batch(&b, (uint32_t *)at_offset(tout, 2), counts), Q_ERR_MISALIGNED);
        BAD(q_generate_batch(&b, tout, (uint32_t *)at_offset(counts, 1)), Q_ERR_MISALIGNED);
        b.shared_logits = V <= 49152 ? (float *)at_offset(shared, 2) : NULL;
        if (b.shared_logits) BAD(q_generate_batch(&b, tout, counts), Q_ERR_MISALIGNED);
        b.shared_logits = NULL;
        q_batch_generation_state nb = {NULL, 2, NULL};
        BAD(q_generate_batch(&nb, tout, counts), Q_ERR_INVALID_ARG);
        _Alignas(64) static unsigned char braw[sizeof(q_batch_generation_state) + 64];
        q_batch_generation_state *mis_b = at_offset(braw, 4);
        memcpy(mis_b, &b, sizeof b);
        BAD(q_generate_batch(mis_b, tout, counts), Q_ERR_MISALIGNED);
        st[1].prompt_tokens = bad_prompt;
        st[1].num_prompt_tokens = 3;
        o0[0] = 4242;
        BAD(q_generate_batch(&b, tout, counts), Q_ERR_INVALID_ARG);
        QCHECK(o0[0] == 4242 && st[0].num_generated_tokens == 0, "refused batch: state 0 untouched");
        st[1] = qmodel_state(&ctx, &model, &tok, prompt, NP, o1, NGEN); /* the live context in a batch: valid */
        BAD(q_generate_batch(&b, tout, counts), Q_OK);
        QCHECK(counts[0] == NGEN && counts[1] == NGEN && memcmp(o0, ref_ids, sizeof o0) == 0 &&
                   memcmp(o1, ref_ids, sizeof o1) == 0,
               "batch of 2 (one on the live context): reference ids");
        for (int i = 0; i < 2; i++) q_free_memory(&bc[i]);
    }

    /* q_sample_token with the live context: the arena is not touched; misaligned output is fine */
    {
        _Alignas(64) static unsigned char oraw[16];
        size_t head = ctx.scratch_head;
        q_error_code rc = q_sample_token(ref_logits, V, 0.8f, 40, 0.9f, (uint32_t *)at_offset(oraw, 1), &ctx);
        uint32_t id;
        memcpy(&id, oraw + 1, 4);
        QCHECK(rc == Q_OK && id < V && ctx.scratch_head == head, "q_sample_token with ctx: id %u < V, arena untouched",
               id);
        BAD(q_sample_token(ref_logits, V, 0.0f, 0, 0.0f, NULL, &ctx), Q_ERR_INVALID_ARG);
        BAD(q_sample_token(ref_logits, 0, 0.8f, 0, 0.0f, &id, &ctx), Q_ERR_INVALID_SIZE);
    }
    BAD(q_set_num_threads(257), Q_ERR_INVALID_ARG);
    BAD(q_set_num_threads(UINT32_MAX), Q_ERR_INVALID_ARG);

    /* the converters handed a directory as their input */
    q_error_code rc = q_convert_to_qorus(".", "model_adversarial_out.qorus");
    int ok = still_ok();
    QCHECK(rc < 0 && rc != Q_ERR_INTERNAL && ok, "q_convert_to_qorus(\".\") -> %d (%s); live context %s", (int)rc,
           q_strerror(rc), ok ? "intact" : "BROKEN");
    rc = q_quantize_model(".", "model_adversarial_out.gguf", Q_Q8_0, false);
    ok = still_ok();
    QCHECK(rc < 0 && rc != Q_ERR_INTERNAL && ok, "q_quantize_model(\".\") -> %d (%s); live context %s", (int)rc,
           q_strerror(rc), ok ? "intact" : "BROKEN");
    remove("model_adversarial_out.qorus");
    remove("model_adversarial_out.gguf");
}

/* ---- kernels: strides and extents whose byte counts overflow ---------------------------------- */

static void kernel_cases(void) {
    _Alignas(64) static float a[64], b[64], c[64];
    q_tensor ta, tb, tc;
    memset(&ta, 0, sizeof ta);
    ta.data = a;
    ta.type = Q_F32;
    ta.ne[0] = 4;
    ta.ne[1] = 4;
    ta.ne[2] = ta.ne[3] = 1;
    ta.nb[0] = 16;
    ta.nb[1] = ta.nb[2] = ta.nb[3] = 4;
    tb = ta;
    tb.data = b;
    tc = ta;
    tc.data = c;
    /* rows x stride overflows size_t */
    q_tensor big = ta;
    big.ne[0] = UINT32_MAX;
    big.nb[0] = SIZE_MAX / 2;
    q_tensor cbig = tc;
    cbig.ne[0] = UINT32_MAX;
    cbig.nb[0] = SIZE_MAX / 2;
    q_error_code rc = q_matmul_f32_avx2(&big, &tb, &cbig, &ctx);
    int ok = still_ok();
    QCHECK(rc < 0 && rc != Q_ERR_INTERNAL && ok, "q_matmul with M = UINT32_MAX, row stride SIZE_MAX/2 -> %d (%s); live context %s",
           (int)rc, q_strerror(rc), ok ? "intact" : "BROKEN");
    q_tensor sq = ta;
    sq.ne[0] = sq.ne[1] = UINT32_MAX;
    sq.nb[0] = SIZE_MAX / 2;
    rc = q_causal_mask_f32_avx2(&sq, -1e30f);
    ok = still_ok();
    QCHECK(rc < 0 && rc != Q_ERR_INTERNAL && ok, "q_causal_mask with n = UINT32_MAX, stride SIZE_MAX/2 -> %d (%s); live context %s",
           (int)rc, q_strerror(rc), ok ? "intact" : "BROKEN");
    q_tensor v1 = ta;
    v1.ne[0] = UINT32_MAX;
    v1.ne[1] = 1;
    v1.nb[0] = 4;
    q_tensor v2 = v1, v3 = v1;
    v2.data = b;
    v3.data = c;
    rc = q_add_f32_avx2(&v1, &v2, &v3);
    ok = still_ok();
    QCHECK(rc == Q_ERR_INVALID_SIZE && ok, "q_add with n = UINT32_MAX and nb[0] = 4 -> %d (%s); live context %s", (int)rc,
           q_strerror(rc), ok ? "intact" : "BROKEN");
    q_tensor w;
    memset(&w, 0, sizeof w);
    w.data = a;
    w.type = Q_Q4_0;
    w.ne[0] = UINT32_MAX;
    w.ne[1] = UINT32_MAX - 31; /* a multiple of 32 */
    w.nb[0] = (size_t)((UINT32_MAX - 31) / 32) * 20;
    BAD(q_gemv_q4_f32_avx2(&w, b, c), Q_ERR_OVERFLOW);
}

/* ---- a context used after q_free_memory ------------------------------------------------------- */

static void use_after_free_cases(void) {
    q_context stale = ctx; /* a copy the caller kept */
    q_free_memory(&ctx);
    QCHECK(ctx.scratch_buffer == NULL && ctx.kv_buffer == NULL && ctx.weights_mmap == NULL, "q_free_memory zeroes the context");
    q_free_memory(&ctx);
    QCHECK(ctx.scratch_buffer == NULL, "q_free_memory twice");
    uint32_t out[NGEN];
    QCHECK_CODE(llama_forward(&model, &ctx, prompt, NP, 0, logits), Q_ERR_INVALID_ARG);
    QCHECK_CODE(llama_forward(&model, &stale, prompt, NP, 0, logits), Q_ERR_INVALID_ARG);
    model.ctx = &stale;
    QCHECK_CODE(llama_forward(&model, &stale, prompt, NP, 0, logits), Q_ERR_INVALID_ARG);
    model.ctx = &ctx;
    q_generation_state s = qmodel_state(&ctx, &model, &tok, prompt, NP, out, NGEN);
    QCHECK_CODE(q_generate(&s), Q_ERR_INVALID_ARG);
    s.ctx = &stale;
    QCHECK_CODE(q_generate(&s), Q_ERR_INVALID_ARG);
    q_llama_model m2;
    memset(&m2, 0, sizeof m2);
    QCHECK_CODE(llama_build_graph(&ctx, &m2), Q_ERR_NULL_PTR);
    QCHECK_CODE(llama_build_graph(&stale, &m2), Q_ERR_INVALID_ARG);
    QCHECK(q_arena_alloc(&ctx, 64) == NULL, "q_arena_alloc on the freed context -> NULL");
    QCHECK(q_arena_alloc(&stale, 64) == NULL, "q_arena_alloc on a stale copy -> NULL");
    q_free_memory(&stale); /* its buffers are no longer the library's: nothing is freed twice */
    QCHECK(stale.scratch_buffer == NULL, "q_free_memory on a stale copy is harmless");
    /* a fresh context on the same struct gives the reference logits and ids again */
    llama_free_graph(&model);
    QCHECK_CODE(qmodel_open(&ctx, &model, path, NCTX, ARENA_MB), Q_OK);
    QCHECK_CODE(llama_forward(&model, &ctx, prompt, NP, 0, logits), Q_OK);
    QCHECK(memcmp(logits, ref_logits, V * sizeof(float)) == 0, "re-opened context: bit-exact reference logits");
    QCHECK(generate_matches(&tok), "re-opened context: reference greedy ids");
}

int main(void) {
    path = qmodel_path("QORUS_TEST_MODEL");
    if (!path) return 1;
    QCHECK_CODE(qmodel_open(&ctx, &model, path, NCTX, ARENA_MB), Q_OK);
    QCHECK_CODE(q_tokenizer_load(&tok, path), Q_OK);
    V = model.config.vocab_size;
    ref_logits = malloc(V * sizeof(float));
    logits = malloc(V * sizeof(float));
    QCHECK_CODE(llama_forward(&model, &ctx, prompt, NP, 0, ref_logits), Q_OK);
    q_arena_reset(&ctx);
    uint32_t out[NGEN];
    q_generation_state s = qmodel_state(&ctx, &model, &tok, prompt, NP, out, NGEN);
    QCHECK_CODE(q_generate(&s), Q_OK);
    memcpy(ref_ids, out, sizeof ref_ids);
    q_arena_reset(&ctx);
    ctx_saved = ctx;
    model_saved = model;
    tok_saved = tok;
    QCHECK(still_ok(), "reference logits reproduce bit-exactly (%u ids: %u %u %u %u)", V, ref_ids[0], ref_ids[1],
           ref_ids[2], ref_ids[3]);

    memory_cases();
    model_cases();
    tokenizer_cases();
    hand_built_cases();
    generate_cases();
    kernel_cases();
    QCHECK(generate_matches(&tok), "after every bad call: q_generate gives the reference ids");
    use_after_free_cases();

    q_tokenizer_free(&tok);
    q_free_memory(&ctx);
    free(ref_logits);
    free(logits);
    return qtest_summary("model_adversarial");
}
