/* model_endurance.c — 1,000 cycles of load / generate / free through the C API (issue 8,
 * "Concurrency and endurance"): each cycle maps the model (q_init_memory), allocates the arena,
 * builds the graph, allocates a KV cache of NCTX (64) positions, encodes a prompt, generates a few
 * tokens greedily, decodes them, and frees everything (llama_free_graph, q_tokenizer_free,
 * q_free_memory). Every cycle must give the ids and text of cycle 1.
 *
 * The tokenizer: one loaded before the first cycle serves most cycles; every TOK_EVERY-th cycle
 * (1, 11, 21, ...) loads its own from the model file and frees it, so 100 of the 1,000 cycles also
 * cycle q_tokenizer_load / q_tokenizer_free. Not every cycle: loading SmolLM2's GGUF tokenizer
 * (49,152 tokens and their merges) costs more than the rest of a cycle together (the figures are
 * printed at the end).
 *
 * Leak checks, after every cycle's frees:
 *   - RSS (VmRSS) after cycle WARMUP vs after the last cycle: growth must stay under RSS_MARGIN_KIB;
 *     the peak (VmHWM) is printed.
 *   - open file descriptors (/proc/self/fd) and mappings (/proc/self/maps lines) after cycle
 *     WARMUP vs after the last cycle: must be equal. They are also printed before the first
 *     cycle; the baseline is taken after the warm-up because the library's worker threads (their
 *     stacks) and the allocator's per-thread arenas appear on first use and then stay.
 *
 * The forward pass runs on one thread (see main). The cycle count is QORUS_ENDURANCE_CYCLES
 * (default 1000; scripts/sanitize.sh sets 100, since with ASan a cycle took about 280 ms instead
 * of 80-110 ms). Fewer than WARMUP + 10 cycles is refused. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qorus.h"
#include "support/qmodel.h"
#include "support/qtest.h"

/* Under AddressSanitizer the allocator keeps freed memory in quarantine and maps and unmaps its
 * own regions, so RSS and the mapping count say nothing about the library: they are printed but
 * not checked, and LeakSanitizer checks for leaks instead (descriptors are still checked). */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define WARMUP 10
#define RSS_MARGIN_KIB (8 * 1024)
#define NCTX 64
#define NGEN 4
#define ARENA_MB 16
#define TOK_EVERY 10 /* cycles 1, 11, 21, ... load and free their own tokenizer */
static const char *const PROMPT = "The capital of France is";

/* A "Key:   123 kB" field of /proc/self/status, in KiB; -1 if absent. */
static long status_kib(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static long count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') n++;
    }
    closedir(d);
    return n - 1; /* the directory stream's own descriptor */
}

static long count_maps(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return -1;
    long n = 0;
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (c == '\n') n++;
    }
    fclose(f);
    return n;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Time spent in each phase over all cycles. */
enum { T_MAP, T_BUILD, T_TOK, T_GEN, T_FREE, T_N };
static const char *const phase_names[T_N] = {"map+arena", "build+kv", "encode", "generate+decode", "free"};
static double phase[T_N];
static double tok_load_time;
static long tok_loads;

typedef struct {
    uint32_t prompt[32];
    uint32_t n_prompt;
    uint32_t ids[NGEN];
    uint32_t n_ids;
    char text[256];
} cycle_result;

/* One load / generate / free cycle; returns Q_OK or the first failing call's code (named in *what). */
static q_error_code one_cycle(const char *path, q_tokenizer *shared_tok, int load_tok, cycle_result *r,
                              const char **what) {
    q_context ctx;
    q_llama_model m;
    q_tokenizer own_tok;
    q_tokenizer *tok = load_tok ? &own_tok : shared_tok;
    memset(&own_tok, 0, sizeof own_tok);
    memset(r, 0, sizeof *r);
    q_error_code rc;
    double t0 = now();
    memset(&ctx, 0, sizeof ctx);
    memset(&m, 0, sizeof m);
#define STEP(call)                                                                                 \
    do {                                                                                           \
        rc = (call);                                                                               \
        if (rc != Q_OK) {                                                                          \
            *what = #call;                                                                         \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)
    STEP(q_init_memory(&ctx, path));
    if ((void *)ctx.header == ctx.weights_mmap) {
        /* a .qorus header is the read-only mapping: run on a copy with the shorter context */
        static q_model_header copy;
        copy = *ctx.header;
        ctx.header = &copy;
    }
    ctx.header->max_seq_len = NCTX;
    STEP(q_alloc_arena(&ctx, (size_t)ARENA_MB << 20));
    double t1 = now();
    STEP(llama_build_graph(&ctx, &m));
    STEP(q_alloc_kv_cache(&ctx, qmodel_kv_bytes(&m)));
    double t2 = now();
    if (load_tok) {
        STEP(q_tokenizer_load(tok, path));
        tok_loads++;
        double tl = now();
        tok_load_time += tl - t2;
        t2 = tl;
    }
    STEP(q_tokenizer_encode(tok, PROMPT, r->prompt, &r->n_prompt, 32, false, false));
    double t3 = now();
    q_generation_state st;
    memset(&st, 0, sizeof st);
    st.ctx = &ctx;
    st.model = &m;
    st.tokenizer = tok;
    st.prompt_tokens = r->prompt;
    st.num_prompt_tokens = r->n_prompt;
    st.generated_tokens = r->ids;
    st.max_tokens = NGEN;
    st.temperature = 0.0f;
    STEP(q_generate(&st));
    r->n_ids = st.num_generated_tokens;
    STEP(q_tokenizer_decode(tok, r->ids, r->n_ids, r->text, sizeof r->text));
    double t4 = now();
    phase[T_MAP] += t1 - t0;
    phase[T_BUILD] += t2 - t1;
    phase[T_TOK] += t3 - t2;
    phase[T_GEN] += t4 - t3;
#undef STEP
out:;
    double t5 = now();
    llama_free_graph(&m);
    q_tokenizer_free(&own_tok);
    q_free_memory(&ctx);
    phase[T_FREE] += now() - t5;
    return rc;
}

int main(void) {
    const char *path = qmodel_path("QORUS_TEST_MODEL");
    if (!path) return 1;
    long cycles = 1000;
    const char *env = getenv("QORUS_ENDURANCE_CYCLES");
    if (env && env[0]) cycles = strtol(env, NULL, 10);
    if (cycles < WARMUP + 10) {
        fprintf(stderr, "QORUS_ENDURANCE_CYCLES=%ld: at least %d cycles are needed\n", cycles, WARMUP + 10);
        return 1;
    }
    printf("model %s, %ld cycles, context %d, %d greedy tokens\n", path, cycles, NCTX, NGEN);
    /* The worker pool is process-wide (made once, not part of what a cycle loads and frees); one
     * thread keeps the run time predictable on a shared machine, where a spinning second worker
     * made generation several times slower. */
    QCHECK_CODE(q_set_num_threads(1), Q_OK);
    q_tokenizer shared_tok;
    QCHECK_CODE(q_tokenizer_load(&shared_tok, path), Q_OK);
    long fds0 = count_fds(), maps0 = count_maps(), rss0 = status_kib("VmRSS");
    printf("before cycle 1: VmRSS %ld KiB, %ld fds, %ld mappings\n", rss0, fds0, maps0);

    cycle_result first, cur;
    long rss_warm = -1, fds_warm = -1, maps_warm = -1, rss_max_after = 0;
    long mismatches = 0, failures = 0;
    double start = now();
    for (long c = 1; c <= cycles; c++) {
        const char *what = "";
        q_error_code rc = one_cycle(path, &shared_tok, (c - 1) % TOK_EVERY == 0, c == 1 ? &first : &cur, &what);
        if (rc != Q_OK) {
            if (failures++ < 5) printf("FAIL cycle %ld: %s -> %d (%s): %s\n", c, what, (int)rc, q_strerror(rc), q_last_error());
            continue;
        }
        if (c == 1) {
            printf("cycle 1: prompt %u ids, generated %u ids [%u %u %u %u] \"%s\"\n", first.n_prompt, first.n_ids,
                   first.ids[0], first.ids[1], first.ids[2], first.ids[3], first.text);
        } else if (cur.n_prompt != first.n_prompt || cur.n_ids != first.n_ids ||
                   memcmp(cur.prompt, first.prompt, sizeof cur.prompt) != 0 ||
                   memcmp(cur.ids, first.ids, sizeof cur.ids) != 0 || strcmp(cur.text, first.text) != 0) {
            if (mismatches++ < 5) printf("FAIL cycle %ld: output differs from cycle 1 (\"%s\")\n", c, cur.text);
        }
        long rss = status_kib("VmRSS");
        if (c >= WARMUP && rss > rss_max_after) rss_max_after = rss;
        if (c == WARMUP) {
            rss_warm = rss;
            fds_warm = count_fds();
            maps_warm = count_maps();
            printf("after cycle %d (warm-up): VmRSS %ld KiB, %ld fds, %ld mappings\n", WARMUP, rss_warm, fds_warm,
                   maps_warm);
        }
        if (c % 100 == 0) {
            printf("after cycle %ld: VmRSS %ld KiB (%.1f s)\n", c, rss, now() - start);
            fflush(stdout);
        }
    }
    double elapsed = now() - start;
    long rss_end = status_kib("VmRSS"), hwm = status_kib("VmHWM");
    long fds_end = count_fds(), maps_end = count_maps();
    printf("%ld cycles in %.1f s (%.1f ms per cycle):", cycles, elapsed, 1e3 * elapsed / (double)cycles);
    for (int i = 0; i < T_N; i++) printf(" %s %.1f ms%s", phase_names[i], 1e3 * phase[i] / (double)cycles, i + 1 < T_N ? "," : "\n");
    printf("%ld tokenizer loads (every %d cycles): %.1f ms each\n", tok_loads, TOK_EVERY,
           tok_loads ? 1e3 * tok_load_time / (double)tok_loads : 0.0);
    printf("VmRSS after cycle %d: %ld KiB, after cycle %ld: %ld KiB (growth %ld KiB); largest after warm-up %ld KiB; "
           "peak VmHWM %ld KiB\n",
           WARMUP, rss_warm, cycles, rss_end, rss_end - rss_warm, rss_max_after, hwm);

    QCHECK(failures == 0, "every cycle's calls succeed (%ld failed)", failures);
    QCHECK(mismatches == 0, "every cycle gives cycle 1's prompt ids, generated ids and text (%ld differ)", mismatches);
    QCHECK(first.n_ids == NGEN && first.n_prompt > 0, "cycle 1 generated %u ids from %u prompt ids", first.n_ids,
           first.n_prompt);
    if (UNDER_ASAN) {
        printf("AddressSanitizer build: RSS and mapping counts not checked (LeakSanitizer checks leaks)\n");
    } else {
        QCHECK(rss_warm > 0 && rss_end - rss_warm <= RSS_MARGIN_KIB,
               "RSS flat: %ld KiB -> %ld KiB from cycle %d to %ld (margin %d KiB)", rss_warm, rss_end, WARMUP,
               cycles, RSS_MARGIN_KIB);
        QCHECK(maps_warm > 0 && maps_end == maps_warm, "mappings: %ld after cycle %d, %ld after cycle %ld",
               maps_warm, WARMUP, maps_end, cycles);
    }
    QCHECK(fds_warm >= 0 && fds_end == fds_warm, "open file descriptors: %ld after cycle %d, %ld after cycle %ld",
           fds_warm, WARMUP, fds_end, cycles);
    QCHECK(fds_end == fds0, "no descriptor left open by the library: %ld before cycle 1, %ld at the end", fds0,
           fds_end);
    q_tokenizer_free(&shared_tok);
    return qtest_summary("model_endurance");
}
