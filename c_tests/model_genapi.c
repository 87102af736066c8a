/* model_genapi.c — the generation API additions (issue 15) on SmolLM2-135M through the C API:
 * q_generate_ex with no options is q_generate; a sampler chain with a seed gives the same ids on
 * another thread and inside q_generate_batch_ex (one sampler per sequence); stop strings end the
 * text before the match, across token boundaries, with the stop reason; text output and
 * callbacks agree; a KV-cache state saved after a prompt (buffer and file) and loaded into another
 * context continues exactly as the context that never stopped, and a damaged state is refused;
 * error paths. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "qorus.h"
#include "support/qmodel.h"
#include "support/qtest.h"

#define NCTX 128
static const char *prompt_text = "The capital of France is Paris. The capital of Germany is";

static q_llama_model m;
static q_tokenizer tok;
static uint32_t prompt[64];
static uint32_t n_prompt = 0;

static q_sampler *sampler_with_seed(uint64_t seed) {
    q_sampler_params p = q_sampler_default_params();
    p.temperature = 1.0f;
    p.seed = seed;
    q_sampler *s = NULL;
    if (q_sampler_new(&p, m.config.vocab_size, &s) != Q_OK) return NULL;
    return s;
}

typedef struct {
    q_context *ctx;
    uint64_t seed;
    uint32_t ids[32];
    uint32_t n;
    q_error_code rc;
} job;

static void *run_job(void *arg) {
    job *j = arg;
    q_sampler *s = sampler_with_seed(j->seed);
    q_generation_state st = qmodel_state(j->ctx, &m, &tok, prompt, n_prompt, j->ids, 24);
    q_generate_options o;
    memset(&o, 0, sizeof o);
    o.sampler = s;
    j->rc = q_generate_ex(&st, &o, NULL);
    j->n = st.num_generated_tokens;
    q_sampler_free(s);
    return NULL;
}

static char streamed[4096];
static size_t streamed_len = 0;
static int saw_none = 0;
static bool collect(uint32_t id, const char *piece, size_t len, void *user) {
    (void)user;
    if (id == Q_TOKEN_NONE) saw_none++;
    if (streamed_len + len < sizeof streamed) {
        memcpy(streamed + streamed_len, piece, len);
        streamed_len += len;
        streamed[streamed_len] = 0;
    }
    return true;
}

int main(void) {
    const char *path = qmodel_path("QORUS_TEST_MODEL");
    if (!path) return 1;
    q_context ctx;
    QCHECK_CODE(qmodel_open(&ctx, &m, path, NCTX, 64), Q_OK);
    QCHECK_CODE(q_tokenizer_load(&tok, path), Q_OK);
    QCHECK_CODE(q_tokenizer_encode(&tok, prompt_text, prompt, &n_prompt, 64, false, false), Q_OK);

    /* no options == q_generate */
    uint32_t a[32], b[32];
    q_generation_state st = qmodel_state(&ctx, &m, &tok, prompt, n_prompt, a, 24);
    QCHECK_CODE(q_generate(&st), Q_OK);
    uint32_t na = st.num_generated_tokens;
    st = qmodel_state(&ctx, &m, &tok, prompt, n_prompt, b, 24);
    q_generate_result r;
    QCHECK_CODE(q_generate_ex(&st, NULL, &r), Q_OK);
    QCHECK(st.num_generated_tokens == na && memcmp(a, b, na * 4) == 0 && r.num_generated_tokens == na &&
               r.current_pos == st.current_pos,
           "q_generate_ex(NULL options) == q_generate (%u ids, reason %d)", na, r.stop_reason);
    QCHECK(r.stop_reason == (na == 24 ? Q_STOP_MAX_TOKENS : Q_STOP_EOS) && r.stop_string_index == -1,
           "stop reason %d", r.stop_reason);

    /* the greedy text, by text_out and by the callback */
    char full[4096];
    q_generate_options o;
    memset(&o, 0, sizeof o);
    o.text_out = full;
    o.text_capacity = sizeof full;
    o.callback = collect;
    st = qmodel_state(&ctx, &m, &tok, prompt, n_prompt, b, 24);
    QCHECK_CODE(q_generate_ex(&st, &o, &r), Q_OK);
    char decoded[4096];
    QCHECK_CODE(q_tokenizer_decode(&tok, b, st.num_generated_tokens, decoded, sizeof decoded), Q_OK);
    QCHECK(strcmp(full, decoded) == 0 && strcmp(streamed, full) == 0 && r.text_len == strlen(full),
           "text_out == callback pieces == q_tokenizer_decode: \"%s\"", full);

    /* stop strings: a piece of the middle of the text, and one that never occurs */
    size_t L = strlen(full);
    QCHECK(L > 20, "greedy text long enough (%zu bytes)", L);
    char stop[8];
    memcpy(stop, full + L / 2, 5);
    stop[5] = 0;
    size_t at = (size_t)(strstr(full, stop) - full);
    const char *stops[2] = {"never-in-this-text", stop};
    char cut[4096];
    memset(&o, 0, sizeof o);
    o.text_out = cut;
    o.text_capacity = sizeof cut;
    o.stop_strings = stops;
    o.num_stop_strings = 2;
    o.callback = collect;
    streamed_len = 0;
    streamed[0] = 0;
    st = qmodel_state(&ctx, &m, &tok, prompt, n_prompt, b, 24);
    QCHECK_CODE(q_generate_ex(&st, &o, &r), Q_OK);
    QCHECK(r.stop_reason == Q_STOP_STRING && r.stop_string_index == 1, "stopped by stop string 1 (reason %d, %d)",
           r.stop_reason, r.stop_string_index);
    QCHECK(strlen(cut) == at && strncmp(cut, full, at) == 0 && strcmp(streamed, cut) == 0,
           "text stops before \"%s\": \"%s\" (%zu bytes)", stop, cut, at);
    QCHECK(memcmp(a, b, st.num_generated_tokens * 4) == 0 && st.num_generated_tokens < na &&
               st.current_pos == n_prompt + st.num_generated_tokens - 1,
           "the ids up to the match are kept (%u), the last is not fed (pos %u)", st.num_generated_tokens,
           st.current_pos);
    /* a stop string that only starts: the held text is released at the end */
    char tail[64];
    snprintf(tail, sizeof tail, "%s@@@", full + L - 3);
    stops[0] = tail;
    o.num_stop_strings = 1;
    streamed_len = 0;
    saw_none = 0;
    st = qmodel_state(&ctx, &m, &tok, prompt, n_prompt, b, 24);
    QCHECK_CODE(q_generate_ex(&st, &o, &r), Q_OK);
    QCHECK(strcmp(cut, full) == 0 && strcmp(streamed, full) == 0 && saw_none == 1 && r.stop_reason != Q_STOP_STRING,
           "a stop string's start at the end is held back, then released (Q_TOKEN_NONE call)");

    /* a seeded sampler: same ids here, on another thread, and in a batch */
    q_context c2;
    q_llama_model m2;
    QCHECK_CODE(qmodel_open(&c2, &m2, path, NCTX, 64), Q_OK);
    job here = {&ctx, 77, {0}, 0, 0}, there = {&c2, 77, {0}, 0, 0}, other = {&ctx, 78, {0}, 0, 0};
    run_job(&here);
    pthread_t t;
    pthread_create(&t, NULL, run_job, &there);
    pthread_join(t, NULL);
    run_job(&other);
    QCHECK(here.rc == Q_OK && there.rc == Q_OK && here.n == there.n && memcmp(here.ids, there.ids, here.n * 4) == 0,
           "seed 77: the same %u ids on another thread", here.n);
    QCHECK(other.n != here.n || memcmp(here.ids, other.ids, here.n * 4) != 0, "seed 78 gives other ids");

    q_context bctx[3];
    q_generation_state states[3];
    uint32_t bout[3][32], tokens_out[3 * 24], counts[3];
    q_generate_options bo[3];
    q_generate_result br[3];
    const uint64_t seeds[3] = {78, 77, 5};
    job solo[3];
    for (int i = 0; i < 3; i++) {
        memset(&bctx[i], 0, sizeof bctx[i]);
        QCHECK_CODE(q_alloc_arena(&bctx[i], 4 << 20), Q_OK);
        QCHECK_CODE(q_alloc_kv_cache(&bctx[i], qmodel_kv_bytes(&m)), Q_OK);
        states[i] = qmodel_state(&bctx[i], &m, &tok, prompt, n_prompt, bout[i], 24);
        memset(&bo[i], 0, sizeof bo[i]);
        bo[i].sampler = sampler_with_seed(seeds[i]);
        solo[i] = (job){&ctx, seeds[i], {0}, 0, 0};
        run_job(&solo[i]);
    }
    q_batch_generation_state batch = {states, 3, NULL};
    QCHECK_CODE(q_generate_batch_ex(&batch, bo, tokens_out, counts, br), Q_OK);
    int same = 1;
    for (int i = 0; i < 3; i++)
        same &= counts[i] == solo[i].n && memcmp(bout[i], solo[i].ids, counts[i] * 4) == 0 &&
                br[i].num_generated_tokens == counts[i];
    QCHECK(same, "q_generate_batch_ex: each sequence's seeded ids == q_generate_ex alone (%u, %u, %u ids)", counts[0],
           counts[1], counts[2]);
    q_sampler *kept = bo[1].sampler;
    bo[1].sampler = bo[0].sampler;
    QCHECK_CODE(q_generate_batch_ex(&batch, bo, tokens_out, counts, br), Q_ERR_INVALID_ARG);
    bo[1].sampler = NULL;
    q_sampler_free(kept);
    bo[2].context_shift = true;
    QCHECK_CODE(q_generate_batch_ex(&batch, bo, tokens_out, counts, br), Q_ERR_INVALID_ARG);
    for (int i = 0; i < 3; i++) {
        q_sampler_free(bo[i].sampler);
        q_free_memory(&bctx[i]);
    }

    /* saved state: prefill in ctx, save, load into c2, continue both with the same seed */
    {
        q_arena_reset(&ctx);
        float *lg = malloc(m.config.vocab_size * sizeof(float));
        QCHECK_CODE(llama_forward(&m, &ctx, prompt, n_prompt, 0, lg), Q_OK);
        size_t size = 0;
        QCHECK_CODE(q_state_save(&m, &ctx, n_prompt, prompt, n_prompt, NULL, 0, &size), Q_OK);
        unsigned char *buf = malloc(size);
        QCHECK_CODE(q_state_save(&m, &ctx, n_prompt, prompt, n_prompt, buf, size - 1, &size), Q_ERR_ARENA_OOM);
        QCHECK_CODE(q_state_save(&m, &ctx, n_prompt, prompt, n_prompt, buf, size, &size), Q_OK);
        char file[256];
        snprintf(file, sizeof file, "/tmp/qorus_model_genapi_%d.state", (int)getpid());
        QCHECK_CODE(q_state_save_file(&m, &ctx, n_prompt, prompt, n_prompt, file), Q_OK);
        static const uint32_t more[3] = {253, 1345, 2240};
        uint32_t pos = 0, ids[64], n_ids = 0;
        QCHECK_CODE(q_state_load(&m2, &c2, buf, size, &pos, ids, 64, &n_ids), Q_OK);
        QCHECK(pos == n_prompt && n_ids == n_prompt && memcmp(ids, prompt, n_prompt * 4) == 0,
               "q_state_load: position %u and the %u prompt ids", pos, n_ids);
        uint32_t x[32], y[32], z[32];
        q_generate_options so;
        memset(&so, 0, sizeof so);
        so.start_pos = n_prompt;
        so.sampler = sampler_with_seed(9);
        st = qmodel_state(&ctx, &m, &tok, more, 3, x, 20);
        QCHECK_CODE(q_generate_ex(&st, &so, &r), Q_OK);
        uint32_t nx = st.num_generated_tokens;
        q_sampler_free(so.sampler);
        so.sampler = sampler_with_seed(9);
        st = qmodel_state(&c2, &m2, &tok, more, 3, y, 20);
        QCHECK_CODE(q_generate_ex(&st, &so, &r), Q_OK);
        QCHECK(st.num_generated_tokens == nx && memcmp(x, y, nx * 4) == 0,
               "continuation after q_state_load == the context that never stopped (%u sampled ids)", nx);
        q_sampler_free(so.sampler);
        /* from the file, into c2 again */
        QCHECK_CODE(q_state_load_file(&m2, &c2, file, &pos, NULL, 0, NULL), Q_OK);
        so.sampler = sampler_with_seed(9);
        st = qmodel_state(&c2, &m2, &tok, more, 3, z, 20);
        QCHECK_CODE(q_generate_ex(&st, &so, &r), Q_OK);
        QCHECK(pos == n_prompt && memcmp(x, z, nx * 4) == 0, "the same from q_state_load_file");
        q_sampler_free(so.sampler);
        remove(file);
        /* refused: damaged, truncated; nothing written */
        buf[size / 2] ^= 0x10;
        pos = 12345;
        QCHECK_CODE(q_state_load(&m2, &c2, buf, size, &pos, NULL, 0, NULL), Q_ERR_INVALID_ARG);
        QCHECK(pos == 12345 && strstr(q_last_error(), "checksum") != NULL, "a damaged state is refused: %s",
               q_last_error());
        buf[size / 2] ^= 0x10;
        QCHECK_CODE(q_state_load(&m2, &c2, buf, size - 9, &pos, NULL, 0, NULL), Q_ERR_INVALID_ARG);
        QCHECK_CODE(q_state_load(&m2, &c2, buf, size, &pos, ids, 2, &n_ids), Q_ERR_ARENA_OOM);
        QCHECK_CODE(q_state_load(&m2, &c2, NULL, size, &pos, NULL, 0, NULL), Q_ERR_INVALID_ARG);
        QCHECK_CODE(q_state_save(&m, &ctx, n_prompt, prompt, 3, buf, size, &size), Q_ERR_INVALID_SIZE);
        QCHECK_CODE(q_state_save(&m, &ctx, NCTX + 1, NULL, 0, buf, size, &size), Q_ERR_INVALID_ARG);
        QCHECK_CODE(q_state_load_file(&m2, &c2, "/nonexistent/qorus.state", &pos, NULL, 0, NULL), Q_ERR_FILE_OPEN);
        free(buf);
        free(lg);
    }

    /* context shift on a 32-position context */
    {
        q_context c32;
        q_llama_model m32;
        QCHECK_CODE(qmodel_open(&c32, &m32, path, 32, 16), Q_OK);
        uint32_t long_out[64];
        q_generate_options so;
        memset(&so, 0, sizeof so);
        st = qmodel_state(&c32, &m32, &tok, prompt, 10, long_out, 60);
        QCHECK_CODE(q_generate_ex(&st, &so, &r), Q_OK);
        QCHECK(r.stop_reason == Q_STOP_CONTEXT_FULL && r.num_context_shifts == 0 && st.current_pos == 32,
               "without context shift: stops with a full context after %u ids", r.num_generated_tokens);
        uint32_t before = r.num_generated_tokens;
        uint32_t first[64];
        memcpy(first, long_out, before * 4);
        so.context_shift = true;
        so.n_keep = 4;
        tok.eos_token_id = 0xFFFFFFF0u; /* no EOS: run to max_tokens */
        st = qmodel_state(&c32, &m32, &tok, prompt, 10, long_out, 60);
        QCHECK_CODE(q_generate_ex(&st, &so, &r), Q_OK);
        tok.eos_token_id = 2;
        QCHECK(r.stop_reason == Q_STOP_MAX_TOKENS && r.num_generated_tokens == 60 && r.num_context_shifts >= 2 &&
                   st.current_pos <= 32 && memcmp(first, long_out, before * 4) == 0,
               "with context shift (keep 4): 60 ids, %u shifts, position %u, same ids before the first shift",
               r.num_context_shifts, st.current_pos);
        q_free_memory(&c32);
    }

    /* errors */
    memset(&o, 0, sizeof o);
    const char *empty[1] = {""};
    o.stop_strings = empty;
    o.num_stop_strings = 1;
    st = qmodel_state(&ctx, &m, &tok, prompt, n_prompt, b, 24);
    QCHECK_CODE(q_generate_ex(&st, &o, &r), Q_ERR_INVALID_ARG);
    o.stop_strings = NULL;
    QCHECK_CODE(q_generate_ex(&st, &o, &r), Q_ERR_INVALID_ARG);
    memset(&o, 0, sizeof o);
    o.text_out = cut;
    QCHECK_CODE(q_generate_ex(&st, &o, &r), Q_ERR_INVALID_SIZE);
    memset(&o, 0, sizeof o);
    q_sampler_params sp = q_sampler_default_params();
    q_sampler *small = NULL;
    QCHECK_CODE(q_sampler_new(&sp, 100, &small), Q_OK);
    o.sampler = small;
    QCHECK_CODE(q_generate_ex(&st, &o, &r), Q_ERR_INVALID_SIZE);
    q_sampler_free(small);
    memset(&o, 0, sizeof o);
    o.start_pos = NCTX - 2;
    QCHECK_CODE(q_generate_ex(&st, &o, &r), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_generate_ex(NULL, &o, &r), Q_ERR_INVALID_ARG);

    q_tokenizer_free(&tok);
    q_free_memory(&c2);
    q_free_memory(&ctx);
    return qtest_summary("model_genapi");
}
