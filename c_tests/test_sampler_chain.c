/* test_sampler_chain.c — the sampler-chain additions (issue 15) through the C API: a chain made
 * from the original temperature/top_k/top_p draws exactly what q_sample_token draws; equal seeds
 * give equal ids on any thread; logit bias and penalties change the greedy pick as documented;
 * every error path (bad settings, NULLs, vocabulary mismatch, bad ids and biases). */
#include "qorus.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "support/qtest.h"

#define V 64
static float logits[V];

static void draw_n(q_sampler *s, uint32_t *ids, int n) {
    for (int i = 0; i < n; i++) {
        ids[i] = 0xFFFFFFFF;
        if (q_sampler_sample(s, logits, V, &ids[i]) != Q_OK) return;
    }
}

typedef struct {
    uint64_t seed;
    uint32_t ids[200];
} job;

static void *run_job(void *arg) {
    job *j = arg;
    q_sampler_params p = q_sampler_default_params();
    p.seed = j->seed;
    q_sampler *s = NULL;
    if (q_sampler_new(&p, V, &s) != Q_OK) return NULL;
    draw_n(s, j->ids, 200);
    q_sampler_free(s);
    return NULL;
}

int main(void) {
    for (int i = 0; i < V; i++) logits[i] = (float)((i * 37) % 17) * 0.3f - 2.0f;

    /* the original's fields map onto a chain: same draws as q_sample_token from the same seed */
    const float temps[3] = {0.7f, 1.3f, 0.0f};
    const uint32_t ks[3] = {0, 10, 5};
    const float ps[3] = {0.0f, 0.9f, 0.5f};
    for (int c = 0; c < 3; c++) {
        q_sampler_params p = q_sampler_params_from_original(temps[c], ks[c], ps[c], 4242);
        q_sampler *s = NULL;
        QCHECK_CODE(q_sampler_new(&p, V, &s), Q_OK);
        q_set_seed(4242);
        int same = 1;
        for (int i = 0; i < 300; i++) {
            uint32_t a = 0, b = 1;
            same &= q_sampler_sample(s, logits, V, &a) == Q_OK;
            same &= q_sample_token(logits, V, temps[c], ks[c], ps[c], &b, NULL) == Q_OK;
            same &= a == b;
        }
        QCHECK(same, "chain from (T %.1f, k %u, p %.1f) == q_sample_token over 300 draws", temps[c], ks[c], ps[c]);
        q_sampler_free(s);
    }

    /* equal seeds: equal ids on any thread; another seed: other ids */
    job a = {.seed = 11}, b = {.seed = 11}, c = {.seed = 12};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, run_job, &a);
    pthread_create(&t2, NULL, run_job, &b);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    run_job(&c);
    QCHECK(memcmp(a.ids, b.ids, sizeof a.ids) == 0, "seed 11 on two threads: the same 200 ids");
    QCHECK(memcmp(a.ids, c.ids, sizeof a.ids) != 0, "seed 12 differs");
    q_sampler *s = NULL;
    q_sampler_params p = q_sampler_default_params();
    p.seed = 11;
    QCHECK_CODE(q_sampler_new(&p, V, &s), Q_OK);
    uint32_t again[200];
    draw_n(s, again, 100);
    QCHECK_CODE(q_sampler_reset(s), Q_OK);
    draw_n(s, again, 200);
    QCHECK(memcmp(a.ids, again, sizeof again) == 0, "q_sampler_reset restarts the seed's sequence");
    q_sampler_free(s);

    /* greedy with a logit bias and a repetition penalty */
    uint32_t top = 0;
    for (uint32_t i = 1; i < V; i++)
        if (logits[i] > logits[top]) top = i;
    p = q_sampler_params_from_original(0.0f, 0, 0.0f, 1);
    QCHECK_CODE(q_sampler_new(&p, V, &s), Q_OK);
    uint32_t id = 0;
    QCHECK_CODE(q_sampler_sample(s, logits, V, &id), Q_OK);
    QCHECK(id == top, "greedy picks the first maximum %u (got %u)", top, id);
    q_logit_bias ban = {top, -INFINITY};
    QCHECK_CODE(q_sampler_set_logit_bias(s, &ban, 1), Q_OK);
    QCHECK_CODE(q_sampler_sample(s, logits, V, &id), Q_OK);
    QCHECK(id != top && logits[id] <= logits[top], "a -inf bias bans %u (got %u)", top, id);
    QCHECK_CODE(q_sampler_set_logit_bias(s, NULL, 0), Q_OK);
    q_sampler_free(s);
    p.repeat_penalty = 100.0f;
    p.penalty_last_n = 4;
    QCHECK_CODE(q_sampler_new(&p, V, &s), Q_OK);
    QCHECK_CODE(q_sampler_accept(s, top), Q_OK);
    QCHECK_CODE(q_sampler_sample(s, logits, V, &id), Q_OK);
    QCHECK(id != top, "after accepting %u, a repeat penalty of 100 moves greedy elsewhere (%u)", top, id);
    for (int i = 0; i < 4; i++) QCHECK_CODE(q_sampler_accept(s, 0), Q_OK);
    QCHECK_CODE(q_sampler_sample(s, logits, V, &id), Q_OK);
    QCHECK(id == top, "once %u leaves the window of 4, greedy picks it again", top);

    /* errors */
    q_sampler *bad = (q_sampler *)0x1;
    q_sampler_params q = q_sampler_default_params();
    q.temperature = -1.0f;
    QCHECK_CODE(q_sampler_new(&q, V, &bad), Q_ERR_INVALID_ARG);
    QCHECK(bad == (q_sampler *)0x1, "a failed q_sampler_new leaves *out alone");
    q = q_sampler_default_params();
    q.min_p = 2.0f;
    QCHECK_CODE(q_sampler_new(&q, V, &bad), Q_ERR_INVALID_ARG);
    q = q_sampler_default_params();
    q.repeat_penalty = 0.0f;
    QCHECK_CODE(q_sampler_new(&q, V, &bad), Q_ERR_INVALID_ARG);
    q = q_sampler_default_params();
    QCHECK_CODE(q_sampler_new(&q, 0, &bad), Q_ERR_INVALID_SIZE);
    QCHECK_CODE(q_sampler_new(NULL, V, &bad), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_sampler_new(&q, V, NULL), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_sampler_sample(s, logits, V - 1, &id), Q_ERR_INVALID_SIZE);
    QCHECK_CODE(q_sampler_sample(s, NULL, V, &id), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_sampler_sample(s, logits, V, NULL), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_sampler_sample(NULL, logits, V, &id), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_sampler_accept(s, V), Q_ERR_INVALID_ARG);
    q_logit_bias nan_bias = {3, NAN}, far = {V, 1.0f};
    QCHECK_CODE(q_sampler_set_logit_bias(s, &nan_bias, 1), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_sampler_set_logit_bias(s, &far, 1), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_sampler_set_logit_bias(s, NULL, 2), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_sampler_reset(NULL), Q_ERR_INVALID_ARG);
    q_sampler_free(s);
    q_sampler_free(NULL);
    return qtest_summary("test_sampler_chain");
}
