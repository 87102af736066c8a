/* test_sampling.c — q_sample_token and q_set_seed (spec §3.6.1, §8.1): the fresh-thread RNG
 * vector, per-thread state, reseeding, every error code (and that errors write nothing and do not
 * advance the RNG), greedy first-maximum and NaN rules, and that filtered tokens are never drawn. */
#include "qorus.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "support/qtest.h"

static uint32_t sample(const float *logits, uint32_t v, float t, uint32_t k, float p) {
    uint32_t id = 0xDEADBEEF;
    q_error_code rc = q_sample_token(logits, v, t, k, p, &id, NULL);
    if (rc != Q_OK) {
        printf("     (q_sample_token returned %d)\n", (int)rc);
        return 0xFFFFFFFF;
    }
    return id;
}

/* Spec §8.1 on the calling thread, which must not have sampled yet (or was reseeded with 0). */
static int spec_vector(void) {
    const float zeros[8] = {0};
    int ok = 1;
    const uint32_t want[4] = {7, 3, 2, 1};
    for (int i = 0; i < 4; i++) {
        ok &= sample(zeros, 8, 1.0f, 8, 0.0f) == want[i];
    }
    ok &= sample(zeros, 8, 0.0f, 8, 0.0f) == 0; /* greedy: no draw */
    ok &= sample(zeros, 8, 1.0f, 8, 0.0f) == 4;
    return ok;
}

static void *thread_vector(void *arg) {
    *(int *)arg = spec_vector();
    return NULL;
}

static void *thread_after_seed(void *arg) {
    /* The main thread's reseeding must not leak into a new thread. */
    const float zeros[8] = {0};
    *(uint32_t *)arg = sample(zeros, 8, 1.0f, 0, 0.0f);
    return NULL;
}

int main(void) {
    /* --- §8.1, exactly, on the fresh main thread (must come first) --- */
    {
        const float zeros[8] = {0};
        uint32_t got[4];
        for (int i = 0; i < 4; i++) {
            got[i] = sample(zeros, 8, 1.0f, 8, 0.0f);
        }
        QCHECK(got[0] == 7 && got[1] == 3 && got[2] == 2 && got[3] == 1,
               "fresh thread, V=8 zeros, T=1, top_k=8: %u %u %u %u (want 7 3 2 1)", got[0], got[1],
               got[2], got[3]);
        uint32_t g = sample(zeros, 8, 0.0f, 8, 0.0f);
        QCHECK(g == 0, "greedy call returns 0 (got %u)", g);
        uint32_t n = sample(zeros, 8, 1.0f, 8, 0.0f);
        QCHECK(n == 4, "greedy did not advance the RNG: next sample is 4 (got %u)", n);
    }

    /* --- per-thread state --- */
    {
        pthread_t th;
        int ok = 0;
        QCHECK(pthread_create(&th, NULL, thread_vector, &ok) == 0, "thread created");
        pthread_join(th, NULL);
        QCHECK(ok, "a new thread reproduces the §8.1 vector after the main thread has sampled");
    }

    /* --- q_set_seed --- */
    {
        q_set_seed(0);
        QCHECK(spec_vector(), "q_set_seed(0) restores the default seed (vector reproduced)");
        q_set_seed(123456789u);
        QCHECK(spec_vector(), "q_set_seed(123456789) is the default seed");

        float logits[1000];
        for (int i = 0; i < 1000; i++) {
            logits[i] = (float)((i * 7919) % 1009) / 300.0f;
        }
        uint32_t a[64], b[64], c[64];
        q_set_seed(42);
        for (int i = 0; i < 64; i++) a[i] = sample(logits, 1000, 0.9f, 0, 0.0f);
        q_set_seed(42);
        for (int i = 0; i < 64; i++) b[i] = sample(logits, 1000, 0.9f, 0, 0.0f);
        q_set_seed(43);
        for (int i = 0; i < 64; i++) c[i] = sample(logits, 1000, 0.9f, 0, 0.0f);
        int same_ab = 1, same_ac = 1, in_range = 1;
        for (int i = 0; i < 64; i++) {
            same_ab &= a[i] == b[i];
            same_ac &= a[i] == c[i];
            in_range &= a[i] < 1000 && c[i] < 1000;
        }
        QCHECK(same_ab, "same seed, same 64 samples");
        QCHECK(!same_ac, "seeds 42 and 43 give different sequences");
        QCHECK(in_range, "every sampled id < vocab_size");

        q_set_seed(42);
        pthread_t th;
        uint32_t first = 0;
        pthread_create(&th, NULL, thread_after_seed, &first);
        pthread_join(th, NULL);
        QCHECK(first == 7, "reseeding the main thread does not affect a new thread (got %u)", first);
    }

    /* --- error codes, in the spec's check order; nothing written, RNG not advanced --- */
    {
        const float l4[4] = {0.0f, 1.0f, 2.0f, 3.0f};
        uint32_t out = 12345;
        q_set_seed(0);
        QCHECK_CODE(q_sample_token(NULL, 4, 1.0f, 0, 0.0f, &out, NULL), Q_ERR_INVALID_ARG);
        QCHECK_CODE(q_sample_token(l4, 4, 1.0f, 0, 0.0f, NULL, NULL), Q_ERR_INVALID_ARG);
        QCHECK_CODE(q_sample_token(NULL, 0, NAN, 0, 0.0f, NULL, NULL), Q_ERR_INVALID_ARG);
        QCHECK_CODE(q_sample_token(l4, 0, 1.0f, 0, 0.0f, &out, NULL), Q_ERR_INVALID_SIZE);
        QCHECK_CODE(q_sample_token(l4, 0, -1.0f, 0, 0.0f, &out, NULL), Q_ERR_INVALID_SIZE);
        QCHECK_CODE(q_sample_token(l4, 4, -1.0f, 0, 0.0f, &out, NULL), Q_ERR_INVALID_ARG);
        QCHECK_CODE(q_sample_token(l4, 4, -1e-30f, 0, 0.0f, &out, NULL), Q_ERR_INVALID_ARG);
        QCHECK_CODE(q_sample_token(l4, 4, NAN, 0, 0.0f, &out, NULL), Q_ERR_INVALID_ARG);
        QCHECK_CODE(q_sample_token(l4, 4, INFINITY, 0, 0.0f, &out, NULL), Q_ERR_INVALID_ARG);
        QCHECK_CODE(q_sample_token(l4, 4, -INFINITY, 0, 0.0f, &out, NULL), Q_ERR_INVALID_ARG);
        /* qorus addition: a float pointer that is not 4-byte aligned */
        static float buf[9];
        const float *odd = (const float *)((const char *)buf + 1);
        QCHECK_CODE(q_sample_token(odd, 4, 1.0f, 0, 0.0f, &out, NULL), Q_ERR_MISALIGNED);
        QCHECK(out == 12345, "*token_id_out untouched by failing calls (%u)", out);
        QCHECK(spec_vector(), "failing calls did not advance the RNG");
        /* top_k and top_p are not validated */
        QCHECK_CODE(q_sample_token(l4, 4, 1.0f, 1000000, -5.0f, &out, NULL), Q_OK);
        QCHECK_CODE(q_sample_token(l4, 4, 1.0f, 0, NAN, &out, NULL), Q_OK);
        QCHECK_CODE(q_sample_token(l4, 4, 1.0f, 2, 7.0f, &out, NULL), Q_OK);
        QCHECK(out == 2 || out == 3, "top_k=2 with top_p=7 keeps the top-2 set (E3): %u", out);
    }

    /* --- greedy: first maximum, NaN rules, threshold 1e-6, filters ignored --- */
    {
        const float ties[4] = {1.0f, 3.0f, 3.0f, 2.0f};
        QCHECK(sample(ties, 4, 0.0f, 0, 0.0f) == 1, "first of tied maxima");
        const float nan0[3] = {NAN, 5.0f, 6.0f};
        QCHECK(sample(nan0, 3, 0.0f, 0, 0.0f) == 0, "logits[0] NaN -> 0");
        const float nan1[3] = {1.0f, NAN, 0.5f};
        QCHECK(sample(nan1, 3, 0.0f, 0, 0.0f) == 0, "NaN never wins");
        const float nan2[4] = {-INFINITY, NAN, -3.0f, -3.0f};
        QCHECK(sample(nan2, 4, 0.0f, 0, 0.0f) == 2, "NaN skipped, -inf loses, first -3 wins");
        const float ninf[3] = {-INFINITY, -INFINITY, -INFINITY};
        QCHECK(sample(ninf, 3, 0.0f, 0, 0.0f) == 0, "all -inf -> 0");
        const float pinf[4] = {1.0f, INFINITY, 2.0f, INFINITY};
        QCHECK(sample(pinf, 4, 0.0f, 0, 0.0f) == 1, "first +inf");

        const float l[5] = {0.5f, -1.0f, 4.0f, 3.9f, 0.0f};
        q_set_seed(0);
        int all_two = 1;
        const float ts[4] = {0.0f, -0.0f, 1e-7f, 9.99e-7f};
        for (int i = 0; i < 4; i++) {
            all_two &= sample(l, 5, ts[i], 1, 0.01f) == 2;
            all_two &= sample(l, 5, ts[i], 3, 0.0f) == 2;
        }
        QCHECK(all_two, "T in {0, -0, 1e-7, 9.99e-7} is greedy whatever top_k/top_p");
        QCHECK(spec_vector(), "greedy calls did not advance the RNG");
        uint32_t one = 0xFFFFFFFF;
        QCHECK_CODE(q_sample_token(l, 1, 5.0f, 0, 0.0f, &one, NULL), Q_OK);
        QCHECK(one == 0, "vocab_size 1 always returns 0");
    }

    /* --- filtered tokens never drawn; plain temperature covers every token --- */
    {
        enum { V = 16, N = 4000 };
        float l[V];
        for (int i = 0; i < V; i++) l[i] = (float)((i * 5) % V) * 0.25f; /* distinct */
        l[3] = -INFINITY;
        l[9] = NAN;
        /* ranks: ids by logit desc */
        int count_k[V] = {0}, count_p[V] = {0}, count_plain[V] = {0};
        q_set_seed(7);
        for (int n = 0; n < N; n++) {
            count_k[sample(l, V, 2.0f, 3, 0.0f) % V]++;
            count_p[sample(l, V, 1.0f, 0, 0.5f) % V]++;
            count_plain[sample(l, V, 3.0f, 0, 0.0f) % V]++;
        }
        /* top-3 by logit: values (i*5 % 16): id 3 -> 15 (but -inf), id 6 -> 14, id 9 -> 13 (NaN),
         * id 12 -> 12, id 15 -> 11, id 2 -> 10 ... so the top 3 are 6, 12, 15. */
        int k_ok = 1;
        for (int i = 0; i < V; i++) {
            int in = i == 6 || i == 12 || i == 15;
            k_ok &= in ? count_k[i] > 0 : count_k[i] == 0;
        }
        QCHECK(k_ok, "top_k=3: only ids 6, 12, 15 drawn (and all of them)");
        /* top-p 0.5 at T=1: probs ∝ exp(0.25*r); nucleus starts 6, 12, 15, 2, ... */
        int p_ok = count_p[3] == 0 && count_p[9] == 0 && count_p[6] > 0;
        int p_n = 0;
        for (int i = 0; i < V; i++) p_n += count_p[i] > 0;
        QCHECK(p_ok && p_n < V - 2, "top_p=0.5: -inf/NaN never drawn, %d of %d ids drawn", p_n, V);
        int plain_n = 0;
        for (int i = 0; i < V; i++) plain_n += count_plain[i] > 0;
        QCHECK(count_plain[3] == 0 && count_plain[9] == 0 && plain_n == V - 2,
               "plain T=3 (E1 fixed): every finite token drawn (%d), -inf/NaN never", plain_n);
    }

    /* --- a context with an arena is accepted and its arena is not consumed --- */
    {
        q_context ctx = {0};
        QCHECK_CODE(q_alloc_arena(&ctx, 1 << 16), Q_OK);
        size_t head = ctx.scratch_head;
        float big[1024];
        for (int i = 0; i < 1024; i++) big[i] = (float)(i % 37) * 0.1f;
        uint32_t id = 0xFFFFFFFF;
        QCHECK_CODE(q_sample_token(big, 1024, 0.8f, 40, 0.9f, &id, &ctx), Q_OK);
        QCHECK(id < 1024 && ctx.scratch_head == head, "id %u < 1024, arena head unchanged", id);
        q_free_memory(&ctx);
    }

    return qtest_summary("test_sampling");
}
