/* model_generate.c — q_generate (spec §3.6.2, §6), q_generate_batch and q_generate_stream on
 * SmolLM2-135M: greedy output equals a manual llama_forward + argmax loop, stop rules and position
 * bookkeeping as the spec's observed runs, seeded sampling is reproducible, batches of 1, 3 and 8
 * with mixed prompt lengths equal per-state q_generate, and every error path. */
#include <math.h>
#include <stdlib.h>

#include "qorus.h"
#include "support/qmodel.h"
#include "support/qtest.h"

#define NCTX 64
static const uint32_t base_prompt[] = {6403, 1980, 253, 655, 28, 665, 436, 253, 1345, 2240, 282, 23324,
                                       28, 351, 25854, 41658, 284, 14055, 9018, 30};

static q_tokenizer make_tokenizer(uint32_t eos) {
    /* q_generate reads only `initialized` and `eos_token_id` (spec §2.13). */
    q_tokenizer t;
    memset(&t, 0, sizeof t);
    t.initialized = true;
    t.eos_token_id = eos;
    return t;
}


static int streamed[64];
static int n_streamed = 0;
static size_t streamed_bytes = 0;
static char streamed_text[4096];
static bool on_token(uint32_t id, const char *piece, size_t len, void *user) {
    int stop_after = *(int *)user;
    streamed[n_streamed++] = (int)id;
    if (piece == NULL || piece[len] != '\0') {
        streamed_bytes += 1000000; /* must be NUL-terminated */
    } else if (streamed_bytes + len < sizeof streamed_text) {
        memcpy(streamed_text + streamed_bytes, piece, len);
        streamed_bytes += len;
        streamed_text[streamed_bytes] = '\0';
    }
    return n_streamed < stop_after;
}

int main(void) {
    const char *path = qmodel_path("QORUS_TEST_MODEL");
    if (!path) return 1;
    q_context ctx;
    q_llama_model m;
    QCHECK_CODE(qmodel_open(&ctx, &m, path, NCTX, 64), Q_OK);
    uint32_t V = m.config.vocab_size;
    q_tokenizer tok;
    QCHECK_CODE(q_tokenizer_load(&tok, path), Q_OK); /* the model's own tokenizer (GGUF) */
    QCHECK(tok.initialized && tok.eos_token_id == 2, "tokenizer from the GGUF, EOS %u", tok.eos_token_id);

    /* greedy: q_generate == manual loop of llama_forward + argmax */
    uint32_t out[16] = {0};
    q_generation_state st = qmodel_state(&ctx, &m, &tok, base_prompt, 6, out, 8);
    QCHECK_CODE(q_generate(&st), Q_OK);
    QCHECK(st.num_generated_tokens == 8 && st.current_pos == 14, "8 ids, current_pos %u == 6 + 8", st.current_pos);
    float *logits = malloc(V * sizeof(float));
    uint32_t manual[8];
    q_arena_reset(&ctx);
    QCHECK_CODE(llama_forward(&m, &ctx, base_prompt, 6, 0, logits), Q_OK);
    for (uint32_t i = 0; i < 8; i++) {
        manual[i] = qmodel_argmax(logits, V);
        q_arena_reset(&ctx);
        llama_forward(&m, &ctx, &manual[i], 1, 6 + i, logits);
    }
    QCHECK(memcmp(manual, out, sizeof manual) == 0, "q_generate ids == llama_forward + argmax (%u %u %u ... %u)",
           out[0], out[1], out[2], out[7]);
    uint32_t again[16] = {0};
    st = qmodel_state(&ctx, &m, &tok, base_prompt, 6, again, 8);
    QCHECK_CODE(q_generate(&st), Q_OK);
    QCHECK(memcmp(again, out, 8 * sizeof(uint32_t)) == 0, "a second q_generate gives the same ids");

    /* EOS: kept and counted, not fed */
    q_tokenizer eos_tok = make_tokenizer(out[0]);
    st = qmodel_state(&ctx, &m, &eos_tok, base_prompt, 6, again, 8);
    QCHECK_CODE(q_generate(&st), Q_OK);
    QCHECK(st.num_generated_tokens == 1 && again[0] == out[0] && st.current_pos == 6,
           "EOS as first id: 1 id, current_pos %u == 6", st.current_pos);

    /* context full: S = 32, prompt 30, max 8 -> 2 ids, current_pos 32 (spec §6) */
    {
        q_context c32;
        q_llama_model m32;
        QCHECK_CODE(qmodel_open(&c32, &m32, path, 32, 16), Q_OK);
        uint32_t p30[30];
        for (int i = 0; i < 30; i++) p30[i] = base_prompt[i % 20];
        st = qmodel_state(&c32, &m32, &tok, p30, 30, again, 8);
        QCHECK_CODE(q_generate(&st), Q_OK);
        QCHECK(st.num_generated_tokens == 2 && st.current_pos == 32, "context full: %u ids, current_pos %u",
               st.num_generated_tokens, st.current_pos);
        st = qmodel_state(&c32, &m32, &tok, p30, 30, again, 8);
        st.num_prompt_tokens = 33;
        QCHECK_CODE(q_generate(&st), Q_ERR_INVALID_SIZE);
        q_free_memory(&c32);
    }

    /* seeded sampling is reproducible; temperature sampling differs from greedy somewhere */
    uint32_t s1[16], s2[16];
    q_set_seed(1234);
    st = qmodel_state(&ctx, &m, &tok, base_prompt, 6, s1, 12);
    st.temperature = 1.2f;
    st.top_k = 40;
    st.top_p = 0.95f;
    QCHECK_CODE(q_generate(&st), Q_OK);
    uint32_t n1 = st.num_generated_tokens;
    q_set_seed(1234);
    st = qmodel_state(&ctx, &m, &tok, base_prompt, 6, s2, 12);
    st.temperature = 1.2f;
    st.top_k = 40;
    st.top_p = 0.95f;
    QCHECK_CODE(q_generate(&st), Q_OK);
    QCHECK(n1 == st.num_generated_tokens && memcmp(s1, s2, n1 * sizeof(uint32_t)) == 0,
           "q_set_seed makes sampling reproducible (%u ids)", n1);

    /* errors, in the spec's order */
    QCHECK_CODE(q_generate(NULL), Q_ERR_INVALID_ARG);
    st = qmodel_state(NULL, &m, &tok, base_prompt, 6, again, 8);
    QCHECK_CODE(q_generate(&st), Q_ERR_INVALID_ARG);
    st = qmodel_state(&ctx, NULL, &tok, base_prompt, 6, again, 8);
    QCHECK_CODE(q_generate(&st), Q_ERR_INVALID_ARG);
    st = qmodel_state(&ctx, &m, NULL, base_prompt, 6, again, 8);
    QCHECK_CODE(q_generate(&st), Q_ERR_INVALID_ARG);
    st = qmodel_state(&ctx, &m, &tok, NULL, 6, again, 8);
    QCHECK_CODE(q_generate(&st), Q_ERR_INVALID_ARG);
    st = qmodel_state(&ctx, &m, &tok, base_prompt, 6, NULL, 8);
    QCHECK_CODE(q_generate(&st), Q_ERR_INVALID_ARG);
    st = qmodel_state(&ctx, &m, &tok, base_prompt, 0, again, 8);
    QCHECK_CODE(q_generate(&st), Q_ERR_INVALID_SIZE);
    st = qmodel_state(&ctx, &m, &tok, base_prompt, 6, again, 0);
    QCHECK_CODE(q_generate(&st), Q_ERR_INVALID_SIZE);
    st = qmodel_state(&ctx, &m, &tok, base_prompt, 6, again, 8);
    st.temperature = -1.0f;
    QCHECK_CODE(q_generate(&st), Q_ERR_INVALID_ARG);
    st.temperature = NAN;
    QCHECK_CODE(q_generate(&st), Q_ERR_INVALID_ARG);
    st.temperature = INFINITY;
    QCHECK_CODE(q_generate(&st), Q_ERR_INVALID_ARG);
    q_tokenizer off = make_tokenizer(2);
    off.initialized = false;
    st = qmodel_state(&ctx, &m, &off, base_prompt, 6, again, 8);
    QCHECK_CODE(q_generate(&st), Q_ERR_INVALID_ARG);
    uint32_t badp[2] = {1, V + 5};
    st = qmodel_state(&ctx, &m, &tok, badp, 2, again, 8);
    QCHECK_CODE(q_generate(&st), Q_ERR_INVALID_ARG);

    /* streaming: ids as q_generate's; a false return stops cleanly */
    int stop_after = 100;
    st = qmodel_state(&ctx, &m, &tok, base_prompt, 6, again, 8);
    QCHECK_CODE(q_generate_stream(&st, on_token, &stop_after), Q_OK);
    int same = n_streamed == 8;
    for (int i = 0; i < n_streamed && same; i++) same = (uint32_t)streamed[i] == out[i];
    QCHECK(same && streamed_bytes < 1000000, "stream calls back once per id with NUL-terminated pieces (%d ids, %zu bytes)",
           n_streamed, streamed_bytes);
    char decoded[4096];
    QCHECK_CODE(q_tokenizer_decode(&tok, out, 8, decoded, sizeof decoded), Q_OK);
    QCHECK(strcmp(decoded, streamed_text) == 0 && streamed_bytes > 0, "streamed pieces == q_tokenizer_decode: \"%s\"",
           streamed_text);
    n_streamed = 0;
    stop_after = 3;
    st = qmodel_state(&ctx, &m, &tok, base_prompt, 6, again, 8);
    QCHECK_CODE(q_generate_stream(&st, on_token, &stop_after), Q_OK);
    QCHECK(n_streamed == 3 && st.num_generated_tokens == 3 && st.current_pos == 6 + 2,
           "callback false after 3 ids: %u ids, current_pos %u", st.num_generated_tokens, st.current_pos);

    /* batches: each sequence equals q_generate alone */
    const uint32_t lens[8] = {6, 1, 13, 20, 3, 9, 17, 2};
    const uint32_t maxs[8] = {8, 5, 8, 3, 8, 6, 8, 7};
    uint32_t solo[8][16];
    uint32_t solo_n[8], solo_pos[8];
    for (int i = 0; i < 8; i++) {
        st = qmodel_state(&ctx, &m, &tok, base_prompt + (20 - lens[i]), lens[i], solo[i], maxs[i]);
        QCHECK_CODE(q_generate(&st), Q_OK);
        solo_n[i] = st.num_generated_tokens;
        solo_pos[i] = st.current_pos;
    }
    q_context bctx[8];
    uint32_t bout[8][16];
    q_generation_state states[8];
    for (int i = 0; i < 8; i++) {
        memset(&bctx[i], 0, sizeof bctx[i]);
        QCHECK_CODE(q_alloc_arena(&bctx[i], 4 << 20), Q_OK);
        QCHECK_CODE(q_alloc_kv_cache(&bctx[i], qmodel_kv_bytes(&m)), Q_OK);
    }
    const uint32_t sizes[3] = {1, 3, 8};
    for (int b = 0; b < 3; b++) {
        uint32_t B = sizes[b];
        for (uint32_t i = 0; i < B; i++) {
            memset(bout[i], 0xff, sizeof bout[i]);
            states[i] = qmodel_state(&bctx[i], &m, &tok, base_prompt + (20 - lens[i]), lens[i], bout[i], maxs[i]);
        }
        uint32_t tokens_out[8 * 8], counts[8];
        float *shared = malloc((size_t)B * V * sizeof(float));
        q_batch_generation_state batch = {states, B, shared};
        QCHECK_CODE(q_generate_batch(&batch, tokens_out, counts), Q_OK);
        uint32_t stride = 0;
        for (uint32_t i = 0; i < B; i++) stride = maxs[i] > stride ? maxs[i] : stride;
        int ok = 1;
        for (uint32_t i = 0; i < B; i++) {
            ok &= counts[i] == solo_n[i] && states[i].num_generated_tokens == solo_n[i];
            ok &= states[i].current_pos == solo_pos[i];
            ok &= memcmp(&tokens_out[i * stride], solo[i], solo_n[i] * sizeof(uint32_t)) == 0;
            ok &= memcmp(bout[i], solo[i], solo_n[i] * sizeof(uint32_t)) == 0;
        }
        QCHECK(ok, "batch of %u (prompts of different lengths): every sequence == q_generate alone", B);
        free(shared);
    }
    /* batch errors change nothing */
    uint32_t tokens_out[64], counts[8];
    q_batch_generation_state batch = {states, 0, NULL};
    QCHECK_CODE(q_generate_batch(&batch, tokens_out, counts), Q_ERR_INVALID_SIZE);
    batch.batch_size = 2;
    QCHECK_CODE(q_generate_batch(NULL, tokens_out, counts), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_generate_batch(&batch, NULL, counts), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_generate_batch(&batch, tokens_out, NULL), Q_ERR_INVALID_ARG);
    states[1].ctx = states[0].ctx;
    states[0].num_generated_tokens = 77;
    QCHECK_CODE(q_generate_batch(&batch, tokens_out, counts), Q_ERR_INVALID_ARG);
    QCHECK(states[0].num_generated_tokens == 77, "a refused batch leaves the states untouched");
    states[1].ctx = &bctx[1];
    q_context other;
    q_llama_model m_other;
    QCHECK_CODE(qmodel_open(&other, &m_other, path, NCTX, 16), Q_OK);
    states[1].model = &m_other;
    QCHECK_CODE(q_generate_batch(&batch, tokens_out, counts), Q_ERR_INVALID_ARG);
    q_free_memory(&other);

    for (int i = 0; i < 8; i++) q_free_memory(&bctx[i]);
    q_tokenizer_free(&tok);
    q_free_memory(&ctx);
    free(logits);
    return qtest_summary("model_generate");
}
