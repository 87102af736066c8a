/* bench_batch.c — aggregate decode speed of q_generate_batch (issue 5): B sequences with 32-token
 * prompts each generate 64 tokens (greedy, EOS disabled so every sequence runs to 64), for
 * B = 1, 2, 4, 8. Prints prefill time, decode tokens/s summed over the sequences, and ms per
 * step. Run on demand (tests/bench.rs, ignored), beside
 * `llama-batched-bench -m MODEL -c 4096 -b 512 -ub 512 -npp 32 -ntg 64 -npl 1,2,4,8 -t T`.
 *
 *     bench_batch MODEL [THREADS [REPS]] */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qorus.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [THREADS [REPS]]\n", argv[0]);
        return 2;
    }
    uint32_t threads = argc > 2 ? (uint32_t)atoi(argv[2]) : 0, reps = argc > 3 ? (uint32_t)atoi(argv[3]) : 3;
    q_set_num_threads(threads);
    enum { NP = 32, NG = 64, BMAX = 8 };
    q_context ctx[BMAX];
    q_llama_model m;
    memset(ctx, 0, sizeof ctx);
    memset(&m, 0, sizeof m);
    if (q_init_memory(&ctx[0], argv[1]) != Q_OK) {
        fprintf(stderr, "cannot load %s: %s\n", argv[1], q_last_error());
        return 1;
    }
    ctx[0].header->max_seq_len = 128; /* GGUF header: library memory */
    q_alloc_arena(&ctx[0], 32u << 20);
    if (llama_build_graph(&ctx[0], &m) != Q_OK) {
        fprintf(stderr, "build: %s\n", q_last_error());
        return 1;
    }
    size_t hd = m.config.dim / m.config.n_heads;
    size_t kv = (size_t)m.config.n_layers * m.config.n_kv_heads * m.config.max_seq_len * hd * 8;
    q_alloc_kv_cache(&ctx[0], kv);
    for (int i = 1; i < BMAX; i++) {
        q_alloc_arena(&ctx[i], 8u << 20);
        q_alloc_kv_cache(&ctx[i], kv);
    }
    q_tokenizer tok;
    memset(&tok, 0, sizeof tok);
    tok.initialized = true;
    tok.eos_token_id = UINT32_MAX; /* never stop early: every sequence generates NG tokens */
    static uint32_t prompts[BMAX][NP], out[BMAX][NG], tokens_out[BMAX * NG], counts[BMAX];
    for (int b = 0; b < BMAX; b++)
        for (int i = 0; i < NP; i++) prompts[b][i] = (uint32_t)((b * 7919 + i * 104729 + 17) % m.config.vocab_size);
    printf("model %s, threads %u, prompts %d, generated %d per sequence, median of %u\n", argv[1],
           q_get_num_threads(), NP, NG, reps);
    const uint32_t sizes[] = {1, 2, 4, 8};
    for (int si = 0; si < 4; si++) {
        uint32_t B = sizes[si];
        double best[16];
        for (uint32_t r = 0; r < reps && r < 16; r++) {
            q_generation_state st[BMAX];
            for (uint32_t b = 0; b < B; b++) {
                memset(&st[b], 0, sizeof st[b]);
                st[b].ctx = &ctx[b];
                st[b].model = &m;
                st[b].tokenizer = &tok;
                st[b].prompt_tokens = prompts[b];
                st[b].num_prompt_tokens = NP;
                st[b].generated_tokens = out[b];
                st[b].max_tokens = NG;
            }
            q_batch_generation_state batch = {st, B, NULL};
            double t0 = now();
            q_error_code rc = q_generate_batch(&batch, tokens_out, counts);
            best[r] = now() - t0;
            if (rc != Q_OK) {
                fprintf(stderr, "q_generate_batch: %s\n", q_last_error());
                return 1;
            }
        }
        for (uint32_t i = 0; i < reps; i++) /* sort for the median */
            for (uint32_t j = i + 1; j < reps; j++)
                if (best[j] < best[i]) {
                    double t = best[i];
                    best[i] = best[j];
                    best[j] = t;
                }
        double t = best[reps / 2];
        printf("B=%u: %.3f s for %u x (%d + %d) tokens; aggregate %.1f generated tokens/s (prefill included)\n", B,
               t, B, NP, NG, B * NG / t);
    }
    for (int i = 0; i < BMAX; i++) q_free_memory(&ctx[i]);
    return 0;
}
