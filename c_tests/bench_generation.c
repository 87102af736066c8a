/* bench_generation.c — speed of a model through the C API (not a pass/fail test).
 *
 * usage: bench_generation MODEL.gguf [THREADS [REPS [WHAT [DEPTH [CACHE [PP [TG]]]]]]]
 *   WHAT:  all (default), pp (prefill only) or tg (decode only), e.g. for profiling
 *   DEPTH: tokens already in the KV cache before each test (llama-bench -d; default 0): filled
 *          once, untimed, by llama_forward calls of at most 512 tokens
 *   CACHE: KV cache type f32 (default: q_alloc_kv_cache, the spec layout), f16 or q8_0
 *          (q_alloc_kv_cache_typed; llama-bench -ctk/-ctv)
 *   PP:    prompt lengths, comma-separated (default 64,512)
 *   TG:    decoded tokens (default 128)
 *
 * Prints, for the model and thread count:
 *   load      q_init_memory + llama_build_graph + q_alloc_kv_cache, in ms
 *   ppN       prefill of an N-token prompt (one llama_forward call at position DEPTH)
 *   tgN       decode: N one-token llama_forward calls at positions DEPTH.. (as llama-bench tgN)
 *   peak RSS  getrusage(RUSAGE_SELF).ru_maxrss, next to the budget file + KV cache + 64 MiB
 * "cpu" is the process CPU time per token (all threads; spinning included): with one thread on a
 * shared machine it approximates the uncontended time.
 * Each figure is the median of REPS runs (default 5) after one warm-up run; tokens are a fixed
 * pseudo-random sequence (as llama-bench does, the content does not change the work).
 * The lines starting with "RESULT" are machine-readable (scripts/bench/compare.sh reads them). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "qorus.h"

#define NCTX 512
#define MAXREPS 64
#define MAXPP 8

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* CPU time of the whole process (all threads), in ms: on a shared machine, with one thread, a
 * proxy for the uncontended time. */
static double cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int fail(const char *what, q_error_code rc) {
    fprintf(stderr, "bench_generation: %s failed: %s\n", what, q_strerror(rc));
    return 1;
}

/* ms for one prefill of `n` tokens at position `pos`. */
static double time_prefill(q_llama_model *m, q_context *ctx, const uint32_t *tok, uint32_t n, uint32_t pos,
                           float *logits, q_error_code *rc) {
    q_arena_reset(ctx);
    double t0 = now_ms();
    *rc = llama_forward(m, ctx, tok, n, pos, logits);
    return now_ms() - t0;
}

/* ms for `n` one-token calls at positions pos..pos+n-1. */
static double time_decode(q_llama_model *m, q_context *ctx, const uint32_t *tok, uint32_t n, uint32_t pos,
                          float *logits, q_error_code *rc) {
    double t0 = now_ms();
    for (uint32_t i = 0; i < n; i++) {
        q_arena_reset(ctx);
        *rc = llama_forward(m, ctx, &tok[i], 1, pos + i, logits);
        if (*rc != Q_OK) break;
    }
    return now_ms() - t0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [THREADS [REPS [WHAT [DEPTH [CACHE [PP [TG]]]]]]]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    uint32_t threads = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 0;
    int reps = argc > 3 ? atoi(argv[3]) : 5;
    if (reps < 1) reps = 1;
    if (reps > MAXREPS) reps = MAXREPS;
    const char *what = argc > 4 ? argv[4] : "all";
    int do_pp = strcmp(what, "tg") != 0, do_tg = strcmp(what, "pp") != 0;
    uint32_t depth = argc > 5 ? (uint32_t)strtoul(argv[5], NULL, 10) : 0;
    const char *cache = argc > 6 ? argv[6] : "f32";
    q_kv_type kv_type;
    if (strcmp(cache, "f32") == 0) kv_type = Q_KV_F32;
    else if (strcmp(cache, "f16") == 0) kv_type = Q_KV_F16;
    else if (strcmp(cache, "q8_0") == 0) kv_type = Q_KV_Q8_0;
    else {
        fprintf(stderr, "bench_generation: unknown cache type %s (f32, f16, q8_0)\n", cache);
        return 2;
    }
    uint32_t pp_sizes[MAXPP], n_pp = 0;
    {
        const char *p = argc > 7 ? argv[7] : "64,512";
        while (*p && n_pp < MAXPP) {
            char *end;
            unsigned long v = strtoul(p, &end, 10);
            if (end == p) break;
            if (v > 0) pp_sizes[n_pp++] = (uint32_t)v;
            p = *end == ',' ? end + 1 : end;
        }
    }
    uint32_t ntg = argc > 8 ? (uint32_t)strtoul(argv[8], NULL, 10) : 128;
    uint32_t longest = ntg + 16;
    for (uint32_t k = 0; k < n_pp; k++)
        if (pp_sizes[k] > longest) longest = pp_sizes[k];
    uint32_t want_ctx = depth + longest > NCTX ? depth + longest : NCTX;
    q_error_code rc = q_set_num_threads(threads);
    if (rc != Q_OK) return fail("q_set_num_threads", rc);

    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return 1;
    }

    q_context ctx;
    q_llama_model m;
    memset(&ctx, 0, sizeof ctx);
    memset(&m, 0, sizeof m);
    double t0 = now_ms();
    rc = q_init_memory(&ctx, path);
    if (rc != Q_OK) return fail("q_init_memory", rc);
    if (ctx.header->max_seq_len > want_ctx) ctx.header->max_seq_len = want_ctx;
    rc = q_alloc_arena(&ctx, (size_t)32 << 20);
    if (rc != Q_OK) return fail("q_alloc_arena", rc);
    rc = llama_build_graph(&ctx, &m);
    if (rc != Q_OK) return fail("llama_build_graph", rc);
    size_t kv_bytes = 0;
    if (kv_type == Q_KV_F32) {
        size_t hd = m.config.dim / m.config.n_heads;
        kv_bytes = (size_t)m.config.n_layers * m.config.n_kv_heads * m.config.max_seq_len * hd * 2 * sizeof(float);
        rc = q_alloc_kv_cache(&ctx, kv_bytes);
        if (rc != Q_OK) return fail("q_alloc_kv_cache", rc);
    } else {
        rc = q_kv_cache_size(&m, kv_type, &kv_bytes);
        if (rc != Q_OK) return fail("q_kv_cache_size", rc);
        rc = q_alloc_kv_cache_typed(&ctx, kv_bytes, kv_type);
        if (rc != Q_OK) return fail("q_alloc_kv_cache_typed", rc);
    }
    double load_ms = now_ms() - t0;
    uint32_t nctx = m.config.max_seq_len, V = m.config.vocab_size;
    if (nctx < want_ctx) {
        fprintf(stderr, "bench_generation: context %u < %u\n", nctx, want_ctx);
        return 1;
    }

    uint32_t *tok = malloc((size_t)nctx * sizeof *tok);
    float *logits = malloc((size_t)V * sizeof *logits);
    if (!tok || !logits) return 1;
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (uint32_t i = 0; i < nctx; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        tok[i] = 1 + (uint32_t)(s % (V - 1));
    }

    printf("model    %s (%.1f MiB)\n", path, st.st_size / 1048576.0);
    printf("config   dim %u, hidden %u, layers %u, heads %u/%u, vocab %u, context %u\n", m.config.dim,
           m.config.hidden_dim, m.config.n_layers, m.config.n_heads, m.config.n_kv_heads, V, nctx);
    printf("threads  %u, %d repetitions (medians), depth %u, KV cache %s (%.1f MiB)\n", q_get_num_threads(), reps,
           depth, cache, kv_bytes / 1048576.0);
    printf("load     %.1f ms\n", load_ms);
    printf("RESULT load_ms %.3f\n", load_ms);

    /* The depth's tokens, once; every test below starts at position `depth`. */
    for (uint32_t p = 0; p < depth; p += 512) {
        uint32_t n = depth - p < 512 ? depth - p : 512;
        q_arena_reset(&ctx);
        rc = llama_forward(&m, &ctx, tok + p, n, p, logits);
        if (rc != Q_OK) return fail("llama_forward (depth)", rc);
    }
    const uint32_t *rest = tok + depth;
    double v[MAXREPS], cv[MAXREPS];
    for (uint32_t k = 0; k < n_pp && do_pp; k++) {
        uint32_t n = pp_sizes[k];
        time_prefill(&m, &ctx, rest, n, depth, logits, &rc); /* warm-up */
        if (rc != Q_OK) return fail("llama_forward (prefill)", rc);
        for (int r = 0; r < reps; r++) {
            double c0 = cpu_ms();
            v[r] = time_prefill(&m, &ctx, rest, n, depth, logits, &rc);
            cv[r] = cpu_ms() - c0;
            if (rc != Q_OK) return fail("llama_forward (prefill)", rc);
        }
        double ms = median(v, reps), cms = median(cv, reps);
        printf("pp%-5u  %8.2f tokens/s  %8.3f ms/token  (cpu %.3f ms/token)\n", n, n * 1e3 / ms, ms / n, cms / n);
        printf("RESULT pp%u %.3f\n", n, n * 1e3 / ms);
    }
    if (do_tg) {
        time_decode(&m, &ctx, rest, 16, depth, logits, &rc); /* warm-up */
        if (rc != Q_OK) return fail("llama_forward (decode)", rc);
        for (int r = 0; r < reps; r++) {
            double c0 = cpu_ms();
            v[r] = time_decode(&m, &ctx, rest, ntg, depth, logits, &rc);
            cv[r] = cpu_ms() - c0;
            if (rc != Q_OK) return fail("llama_forward (decode)", rc);
        }
        double ms = median(v, reps), cms = median(cv, reps);
        printf("tg%-5u  %8.2f tokens/s  %8.3f ms/token  (cpu %.3f ms/token)\n", ntg, ntg * 1e3 / ms, ms / ntg,
               cms / ntg);
        printf("RESULT tg%u %.3f\n", ntg, ntg * 1e3 / ms);
    }

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss = ru.ru_maxrss / 1024.0;
    double budget = st.st_size / 1048576.0 + kv_bytes / 1048576.0 + 64;
    printf("peak RSS %.1f MiB (budget file + KV %.1f MiB + 64 MiB = %.1f MiB)\n", rss, kv_bytes / 1048576.0, budget);
    printf("RESULT rss_mib %.1f\nRESULT rss_budget_mib %.1f\n", rss, budget);

    free(tok);
    free(logits);
    llama_free_graph(&m);
    q_free_memory(&ctx);
    return 0;
}
