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
 *   tgN reads bytes a decode step reads, in MB (1e6): the weight bytes of the matrices streamed per
 *             token (rows x row bytes of each layer's wq, wk, wv, wo, w_gate, w_up, w_down and of
 *             the LM head, from the q_tensor views: ne[0] x nb[0], the file's bytes; the packed
 *             copies the kernels read hold the same blocks) + one token_embd row + the norm
 *             gains + the KV cache bytes read at the mean depth of the test (a step at position
 *             p attends p + 1 positions; bytes per position = KV cache size / context), and the
 *             achieved read bandwidth, bytes x tokens/s, in GB/s
 *   stream    the machine's streaming read bandwidth, measured here before the model is loaded
 *             (in a forked child, so its buffer is not in our peak RSS): 1 and THREADS threads
 *             each summing its contiguous share of a STREAM_MIB buffer (env. QORUS_BENCH_STREAM_MIB,
 *             default 512 MiB, 16x the 32 MiB L3 of the reference machine; 0 skips it), filled
 *             once, transparent huge pages advised as for the packed weights; median of 7 passes
 *   peak RSS  getrusage(RUSAGE_SELF).ru_maxrss, next to the budget file + KV cache + 64 MiB
 * "cpu" is the process CPU time per token (all threads; spinning included): with one thread on a
 * shared machine it approximates the uncontended time.
 * Each figure is the median of REPS runs (default 5) after one warm-up run; tokens are a fixed
 * pseudo-random sequence (as llama-bench does, the content does not change the work).
 * The lines starting with "RESULT" are machine-readable (scripts/bench/compare.sh reads them). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

/* ---- streaming read bandwidth ---- */

#define STREAM_PASSES 7
#define STREAM_MAXT 64

struct stream_arg {
    const uint64_t *p;
    size_t n;          /* uint64 words */
    pthread_barrier_t *go;
    uint64_t sum;      /* kept so the reads are not optimized away */
    double t0, t1;     /* this thread's start and end, ms */
};

/* Sums `n` words (a multiple of 16): AVX2 where the CPU has it (4 x 32-byte loads per iteration;
 * the scalar loop below reads about 12 % slower from DRAM on one Zen 4 core), else 8 scalar
 * accumulators. */
#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx2"))) static uint64_t sum_avx2(const uint64_t *p, size_t n) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i + 16 <= n; i += 16) {
        a = _mm256_add_epi64(a, _mm256_load_si256((const __m256i *)(p + i)));
        b = _mm256_add_epi64(b, _mm256_load_si256((const __m256i *)(p + i + 4)));
        c = _mm256_add_epi64(c, _mm256_load_si256((const __m256i *)(p + i + 8)));
        d = _mm256_add_epi64(d, _mm256_load_si256((const __m256i *)(p + i + 12)));
    }
    uint64_t r[4];
    _mm256_storeu_si256((__m256i *)r, _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d)));
    return r[0] + r[1] + r[2] + r[3];
}
#endif

static uint64_t sum_words(const uint64_t *p, size_t n) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) return sum_avx2(p, n);
#endif
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        s0 += p[i], s1 += p[i + 1], s2 += p[i + 2], s3 += p[i + 3];
        s4 += p[i + 4], s5 += p[i + 5], s6 += p[i + 6], s7 += p[i + 7];
    }
    return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}

static void *stream_read(void *arg) {
    struct stream_arg *a = arg;
    pthread_barrier_wait(a->go);
    a->t0 = now_ms();
    a->sum = sum_words(a->p, a->n);
    a->t1 = now_ms();
    return NULL;
}

/* GB/s (1e9 bytes/s) of `nt` threads reading `bytes` of `buf` once, each its contiguous share;
 * median of STREAM_PASSES passes. The time is from the first thread's start to the last one's end
 * (each thread reads the clock itself: with more threads than free cores, a clock read by the
 * creating thread could start late). */
static double stream_gbs(const uint64_t *buf, size_t bytes, int nt) {
    pthread_t th[STREAM_MAXT];
    struct stream_arg a[STREAM_MAXT];
    pthread_barrier_t go;
    double v[STREAM_PASSES];
    size_t words = bytes / 8, share = (words / (size_t)nt) & ~(size_t)15;
    for (int pass = 0; pass < STREAM_PASSES; pass++) {
        pthread_barrier_init(&go, NULL, (unsigned)nt);
        for (int t = 0; t < nt; t++) {
            a[t] = (struct stream_arg){buf + (size_t)t * share, share, &go, 0, 0, 0};
            pthread_create(&th[t], NULL, stream_read, &a[t]);
        }
        for (int t = 0; t < nt; t++) pthread_join(th[t], NULL);
        pthread_barrier_destroy(&go);
        double t0 = a[0].t0, t1 = a[0].t1;
        for (int t = 1; t < nt; t++) {
            if (a[t].t0 < t0) t0 = a[t].t0;
            if (a[t].t1 > t1) t1 = a[t].t1;
        }
        double ms = t1 - t0;
        if (a[0].sum == 42) fprintf(stderr, " "); /* uses the sums */
        v[pass] = (double)share * 8 * nt / (ms * 1e6);
    }
    return median(v, STREAM_PASSES);
}

/* Measures 1 and `nt` threads in a forked child (its buffer never counts in our RSS) before any
 * library call; out[0] = 1 thread, out[1] = nt threads, 0 when skipped or failed. */
static void measure_stream(size_t mib, int nt, double out[2]) {
    out[0] = out[1] = 0;
    if (mib == 0) return;
    if (nt < 1) nt = 1;
    if (nt > STREAM_MAXT) nt = STREAM_MAXT;
    int fd[2];
    if (pipe(fd) != 0) return;
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]), close(fd[1]);
        return;
    }
    if (pid == 0) {
        close(fd[0]);
        size_t bytes = mib << 20;
        double r[2] = {0, 0};
        void *buf = NULL;
        if (posix_memalign(&buf, (size_t)2 << 20, bytes) == 0) {
            madvise(buf, bytes, MADV_HUGEPAGE);
            memset(buf, 1, bytes);
            r[0] = stream_gbs(buf, bytes, 1);
            r[1] = nt > 1 ? stream_gbs(buf, bytes, nt) : r[0];
        }
        ssize_t w = write(fd[1], r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fd[1]);
    double r[2];
    if (read(fd[0], r, sizeof r) == (ssize_t)sizeof r) out[0] = r[0], out[1] = r[1];
    close(fd[0]);
    waitpid(pid, NULL, 0);
}

/* Bytes of a matrix view: rows x row bytes (nb[0] is the row stride in the file's type). */
static double mat_bytes(const q_tensor *t) { return t ? (double)t->ne[0] * (double)t->nb[0] : 0; }

/* Weight bytes one decode step reads: every layer matrix and the LM head in full, one embedding
 * row, the norm gains. */
static double decode_weight_bytes(const q_llama_model *m) {
    double b = 0;
    for (uint32_t l = 0; l < m->config.n_layers; l++) {
        const q_llama_layer *L = &m->layers[l];
        b += mat_bytes(L->wq) + mat_bytes(L->wk) + mat_bytes(L->wv) + mat_bytes(L->wo);
        b += mat_bytes(L->w_gate) + mat_bytes(L->w_up) + mat_bytes(L->w_down);
    }
    b += mat_bytes(m->output) + (m->token_embd ? (double)m->token_embd->nb[0] : 0);
    b += (2.0 * m->config.n_layers + 1) * m->config.dim * sizeof(float);
    return b;
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
    /* Streaming bandwidth first, in a child process, before any library call (no threads yet). */
    double stream[2];
    {
        const char *e = getenv("QORUS_BENCH_STREAM_MIB");
        long nproc = sysconf(_SC_NPROCESSORS_ONLN);
        int nt = threads ? (int)threads : (nproc > 0 ? (int)nproc : 1);
        measure_stream(e ? (size_t)strtoul(e, NULL, 10) : 512, nt, stream);
    }
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
    if (stream[0] > 0) {
        printf("stream   read bandwidth (%s MiB buffer, median of %d passes): 1 thread %.1f GB/s",
               getenv("QORUS_BENCH_STREAM_MIB") ? getenv("QORUS_BENCH_STREAM_MIB") : "512", STREAM_PASSES,
               stream[0]);
        if (q_get_num_threads() > 1) printf(", %u threads %.1f GB/s", q_get_num_threads(), stream[1]);
        printf("\n");
        printf("RESULT stream_gbs_1t %.3f\nRESULT stream_gbs %.3f\n", stream[0], stream[1]);
    }

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
        double wb = decode_weight_bytes(&m), kv_pos = (double)kv_bytes / nctx, mean_depth = depth + (ntg + 1) / 2.0;
        double step = wb + kv_pos * mean_depth, gbs = step * ntg / (ms * 1e6);
        printf("tg%-5u  reads %.1f MB/token (weights %.1f MB + KV %.2f MB at mean depth %.1f): %.1f GB/s", ntg,
               step / 1e6, wb / 1e6, kv_pos * mean_depth / 1e6, mean_depth, gbs);
        if (stream[1] > 0) printf(" = %.0f %% of the measured stream %.1f GB/s", 100 * gbs / stream[1], stream[1]);
        printf("\n");
        printf("RESULT tg%u_mb %.3f\nRESULT tg%u_gbs %.3f\n", ntg, step / 1e6, ntg, gbs);
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
