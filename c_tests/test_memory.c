/* test_memory.c — the memory API of spec §3.1: q_init_memory[_ex], q_alloc_kv_cache, q_alloc_arena,
 * q_arena_alloc, q_arena_reset, q_free_memory. Every failure path is driven with a real bad file or
 * argument and must return the spec's code and leave the context untouched. Model files are
 * written by this test (a 64-byte .qorus header, a tiny LLaMA GGUF) as temporary files in the
 * working directory and removed at the end. */
#include "qorus.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "support/qtest.h"

/* ---- temporary files ------------------------------------------------------------------------ */

#define MAX_TEMPS 16
static char temps[MAX_TEMPS][64];
static int n_temps = 0;

/* Writes `n` bytes to a fresh temporary file under the working directory; returns its path. */
static const char *temp_file(const void *data, size_t n) {
    if (n_temps == MAX_TEMPS) {
        fprintf(stderr, "too many temporary files\n");
        exit(2);
    }
    char *path = temps[n_temps++];
    strcpy(path, "./qorus_test_memory_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        exit(2);
    }
    const unsigned char *p = data;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, p + done, n - done);
        if (w <= 0) {
            perror("write");
            exit(2);
        }
        done += (size_t)w;
    }
    close(fd);
    return path;
}

static void remove_temps(void) {
    for (int i = 0; i < n_temps; i++) {
        unlink(temps[i]);
    }
}

/* ---- a tiny GGUF writer (v3, little-endian host) ---------------------------------------------- */

typedef struct {
    unsigned char *p;
    size_t len, cap;
} buf_t;

static void put(buf_t *b, const void *data, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) {
            exit(2);
        }
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}
static void put_u32(buf_t *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf_t *b, uint64_t v) { put(b, &v, 8); }
static void put_f32(buf_t *b, float v) { put(b, &v, 4); }
static void put_str(buf_t *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
enum { GGUF_U32 = 4, GGUF_F32 = 6, GGUF_STRING = 8 };
static void kv_u32(buf_t *b, const char *key, uint32_t v) {
    put_str(b, key);
    put_u32(b, GGUF_U32);
    put_u32(b, v);
}
static void kv_f32(buf_t *b, const char *key, float v) {
    put_str(b, key);
    put_u32(b, GGUF_F32);
    put_f32(b, v);
}
static void kv_str(buf_t *b, const char *key, const char *v) {
    put_str(b, key);
    put_u32(b, GGUF_STRING);
    put_str(b, v);
}

#define G_DIM 64
#define G_HIDDEN 128
#define G_LAYERS 2
#define G_HEADS 4
#define G_KV_HEADS 2
#define G_CTX 256
#define G_VOCAB 32

/* A LLaMA GGUF with the hyperparameter keys and one F32 tensor, token_embd.weight [G_DIM, G_VOCAB]
 * (ggml order: G_VOCAB rows of G_DIM values). */
static buf_t tiny_gguf(void) {
    buf_t b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);  /* version */
    put_u64(&b, 1);  /* tensors */
    put_u64(&b, 9);  /* metadata pairs */
    kv_str(&b, "general.architecture", "llama");
    kv_u32(&b, "llama.embedding_length", G_DIM);
    kv_u32(&b, "llama.feed_forward_length", G_HIDDEN);
    kv_u32(&b, "llama.block_count", G_LAYERS);
    kv_u32(&b, "llama.attention.head_count", G_HEADS);
    kv_u32(&b, "llama.attention.head_count_kv", G_KV_HEADS);
    kv_u32(&b, "llama.context_length", G_CTX);
    kv_f32(&b, "llama.rope.freq_base", 10000.0f);
    kv_f32(&b, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    put_str(&b, "token_embd.weight");
    put_u32(&b, 2);       /* n_dims */
    put_u64(&b, G_DIM);   /* ne[0] */
    put_u64(&b, G_VOCAB); /* ne[1] */
    put_u32(&b, 0);       /* GGML_TYPE_F32 */
    put_u64(&b, 0);       /* offset in the data section */
    static const unsigned char zeros[32] = {0};
    put(&b, zeros, (32 - b.len % 32) % 32); /* data section aligned to 32 */
    for (int i = 0; i < G_DIM * G_VOCAB; i++) {
        put_f32(&b, (float)i * 0.001f);
    }
    return b;
}

/* ---- helpers ---------------------------------------------------------------------------------- */

static q_context zero_ctx(void) {
    q_context c;
    memset(&c, 0, sizeof c);
    return c;
}

static int is_zero(const q_context *c) {
    q_context z = zero_ctx();
    return memcmp(c, &z, sizeof z) == 0;
}

static int aligned64(const void *p) { return ((uintptr_t)p % 64) == 0; }

/* A context whose every field holds a recognisable value, to check "ctx untouched on failure". */
static q_context sentinel_ctx(void) {
    q_context c;
    memset(&c, 0x5A, sizeof c);
    return c;
}

static q_model_header qorus_header(void) {
    q_model_header h;
    memset(&h, 0, sizeof h);
    h.magic = Q_MAGIC;
    h.version = 2;
    h.vocab_size = 32000;
    h.dim = 576;
    h.hidden_dim = 1536;
    h.n_layers = 30;
    h.n_heads = 9;
    h.n_kv_heads = 3;
    h.max_seq_len = 2048;
    h.rope_freq_base = 10000.0f;
    h.rms_norm_eps = 1e-5f;
    return h;
}

/* ---- q_init_memory ----------------------------------------------------------------------------- */

static void test_init_failures(void) {
    const q_context s = sentinel_ctx();
    q_context c = s;

    /* NULL arguments */
    QCHECK_CODE(q_init_memory(NULL, "x"), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_init_memory(&c, NULL), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_init_memory_ex(NULL, "x", Q_MMAP_EAGER), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_init_memory_ex(&c, NULL, Q_MMAP_EAGER), Q_ERR_INVALID_ARG);
    QCHECK(memcmp(&c, &s, sizeof c) == 0, "ctx untouched after NULL path");

    /* missing file: a fresh temporary name, removed again */
    char missing[64];
    strcpy(missing, "./qorus_test_memory_missing_XXXXXX");
    int fd = mkstemp(missing);
    QCHECK(fd >= 0, "made a temporary name for the missing file");
    close(fd);
    unlink(missing);
    QCHECK_CODE(q_init_memory(&c, missing), Q_ERR_FILE_OPEN);
    QCHECK_CODE(q_init_memory_ex(&c, missing, Q_MMAP_EAGER), Q_ERR_FILE_OPEN);
    QCHECK_CODE(q_init_memory(&c, ""), Q_ERR_FILE_OPEN);
    QCHECK(memcmp(&c, &s, sizeof c) == 0, "ctx untouched after missing file");

    /* empty file and a file one byte shorter than a header */
    const char *empty = temp_file("", 0);
    QCHECK_CODE(q_init_memory(&c, empty), Q_ERR_FILE_TOO_SMALL);
    QCHECK_CODE(q_init_memory_ex(&c, empty, Q_MMAP_EAGER), Q_ERR_FILE_TOO_SMALL);
    q_model_header h = qorus_header();
    const char *short63 = temp_file(&h, 63); /* valid magic, but 63 bytes */
    QCHECK_CODE(q_init_memory(&c, short63), Q_ERR_FILE_TOO_SMALL);
    QCHECK_CODE(q_init_memory_ex(&c, short63, Q_MMAP_EAGER), Q_ERR_FILE_TOO_SMALL);
    const char gguf_short[8] = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
    const char *gshort = temp_file(gguf_short, sizeof gguf_short);
    QCHECK_CODE(q_init_memory(&c, gshort), Q_ERR_FILE_TOO_SMALL);
    QCHECK(memcmp(&c, &s, sizeof c) == 0, "ctx untouched after too-small files");

    /* 64 bytes and 4096 bytes with the wrong magic */
    q_model_header bad = h;
    bad.magic = Q_MAGIC ^ 1u;
    const char *bad64 = temp_file(&bad, 64);
    QCHECK_CODE(q_init_memory(&c, bad64), Q_ERR_INVALID_MAGIC);
    QCHECK_CODE(q_init_memory_ex(&c, bad64, Q_MMAP_EAGER), Q_ERR_INVALID_MAGIC);
    QCHECK_CODE(q_init_memory_ex(&c, bad64, 2), Q_ERR_INVALID_MAGIC);
    static unsigned char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) {
        junk[i] = (unsigned char)(i * 7 + 1);
    }
    const char *bad4k = temp_file(junk, sizeof junk);
    QCHECK_CODE(q_init_memory(&c, bad4k), Q_ERR_INVALID_MAGIC);
    QCHECK(memcmp(&c, &s, sizeof c) == 0, "ctx untouched after wrong magic");

    /* qorus extension: a file with the GGUF magic whose metadata is truncated is refused as an
     * invalid model (the original would say INVALID_MAGIC for any non-Qorus file). */
    unsigned char gtrunc[128];
    memset(gtrunc, 0xFF, sizeof gtrunc);
    memcpy(gtrunc, gguf_short, sizeof gguf_short);
    const char *gbad = temp_file(gtrunc, sizeof gtrunc);
    QCHECK_CODE(q_init_memory(&c, gbad), Q_ERR_INVALID_CONFIG);
    QCHECK(memcmp(&c, &s, sizeof c) == 0, "ctx untouched after a corrupt GGUF");
}

static void test_init_qorus(void) {
    q_model_header h = qorus_header();
    const char *path = temp_file(&h, sizeof h);
    const q_mmap_strategy strategies[] = {Q_MMAP_LAZY, Q_MMAP_EAGER, 2};
    for (int i = 0; i < 4; i++) {
        q_context c = zero_ctx();
        q_error_code rc = i == 3 ? q_init_memory(&c, path) : q_init_memory_ex(&c, path, strategies[i]);
        const char *how = i == 3 ? "q_init_memory" : (i == 0 ? "LAZY" : (i == 1 ? "EAGER" : "strategy 2"));
        QCHECK(rc == Q_OK, "%s: 64-byte .qorus file loads -> %d (%s)", how, (int)rc, q_strerror(rc));
        if (rc != Q_OK) {
            continue;
        }
        QCHECK(c.weights_mmap != NULL && (uintptr_t)c.weights_mmap % 4096 == 0,
               "%s: weights_mmap %p is page-aligned", how, c.weights_mmap);
        QCHECK(c.weights_size == 64, "%s: weights_size = %zu (file size 64)", how, c.weights_size);
        QCHECK((void *)c.header == c.weights_mmap, "%s: header points at the mapping", how);
        QCHECK(memcmp(c.header, &h, sizeof h) == 0, "%s: header holds the bytes the test wrote", how);
        QCHECK(c.header->magic == Q_MAGIC && c.header->version == 2 && c.header->vocab_size == 32000 &&
                   c.header->dim == 576 && c.header->hidden_dim == 1536 && c.header->n_layers == 30 &&
                   c.header->n_heads == 9 && c.header->n_kv_heads == 3 && c.header->max_seq_len == 2048 &&
                   c.header->rope_freq_base == 10000.0f && c.header->rms_norm_eps == 1e-5f,
               "%s: header fields (dim %u, layers %u, heads %u/%u)", how, c.header->dim, c.header->n_layers,
               c.header->n_heads, c.header->n_kv_heads);
        QCHECK(c.kv_buffer == NULL && c.kv_size == 0 && c.scratch_buffer == NULL && c.scratch_size == 0 &&
                   c.scratch_head == 0 && c.scratch_base_offset == 0,
               "%s: other fields untouched", how);
        q_free_memory(&c);
        QCHECK(is_zero(&c), "%s: q_free_memory zeroes the context", how);
    }

    /* Other fields are left as they were: only weights_mmap, weights_size, header are written. */
    q_context c = zero_ctx();
    c.kv_size = 12345;
    c.scratch_head = 777;
    QCHECK_CODE(q_init_memory(&c, path), Q_OK);
    QCHECK(c.kv_size == 12345 && c.scratch_head == 777 && c.kv_buffer == NULL,
           "q_init_memory leaves the KV/arena fields alone");
    q_free_memory(&c);
    QCHECK(c.weights_mmap == NULL && c.weights_size == 0 && c.header == NULL, "mapping released");
}

static void test_init_gguf(void) {
    buf_t g = tiny_gguf();
    const char *path = temp_file(g.p, g.len);
    const q_mmap_strategy strategies[] = {Q_MMAP_LAZY, Q_MMAP_EAGER};
    for (int i = 0; i < 2; i++) {
        const char *how = i == 0 ? "GGUF LAZY" : "GGUF EAGER";
        q_context c = zero_ctx();
        q_error_code rc = q_init_memory_ex(&c, path, strategies[i]);
        QCHECK(rc == Q_OK, "%s: tiny LLaMA GGUF loads -> %d (%s) [%s]", how, (int)rc, q_strerror(rc),
               rc == Q_OK ? "" : q_last_error());
        if (rc != Q_OK) {
            continue;
        }
        QCHECK(c.weights_mmap != NULL && c.weights_size == g.len, "%s: mapping of %zu bytes (file %zu)", how,
               c.weights_size, g.len);
        QCHECK(memcmp(c.weights_mmap, g.p, g.len) == 0, "%s: mapping holds the file's bytes", how);
        const q_model_header *h = c.header;
        QCHECK(h != NULL && aligned64(h), "%s: header %p is 64-aligned", how, (const void *)h);
        if (h == NULL) {
            continue;
        }
        QCHECK(h->magic == Q_MAGIC, "%s: header magic = %#x (Q_MAGIC)", how, h->magic);
        QCHECK(h->vocab_size == G_VOCAB && h->dim == G_DIM && h->hidden_dim == G_HIDDEN &&
                   h->n_layers == G_LAYERS && h->n_heads == G_HEADS && h->n_kv_heads == G_KV_HEADS &&
                   h->max_seq_len == G_CTX,
               "%s: dims from metadata: vocab %u dim %u hidden %u layers %u heads %u/%u ctx %u", how,
               h->vocab_size, h->dim, h->hidden_dim, h->n_layers, h->n_heads, h->n_kv_heads, h->max_seq_len);
        QCHECK(h->rope_freq_base == 10000.0f && h->rms_norm_eps == 1e-5f && h->version >= 2,
               "%s: rope base %g, eps %g, version %u", how, (double)h->rope_freq_base, (double)h->rms_norm_eps,
               h->version);
        q_free_memory(&c);
        QCHECK(is_zero(&c), "%s: q_free_memory zeroes the context", how);
    }

    /* The same GGUF without the architecture key is refused as an invalid configuration. */
    buf_t g2 = g;
    unsigned char *arch = memmem(g2.p, g2.len, "llama", 5);
    QCHECK(arch != NULL, "found the architecture value in the file");
    if (arch) {
        memcpy(arch, "mamba", 5);
        const char *p2 = temp_file(g2.p, g2.len);
        q_context c = sentinel_ctx();
        const q_context s = c;
        QCHECK_CODE(q_init_memory(&c, p2), Q_ERR_INVALID_CONFIG);
        QCHECK(memcmp(&c, &s, sizeof c) == 0, "ctx untouched after an unsupported architecture");
    }
    free(g.p);
}

/* ---- KV cache and arena allocation ------------------------------------------------------------ */

typedef q_error_code (*alloc_fn)(q_context *, size_t);

static void test_alloc_common(alloc_fn f, const char *name) {
    QCHECK(f(NULL, 64) == Q_ERR_INVALID_ARG, "%s(NULL, 64) -> INVALID_ARG", name);
    q_context c = zero_ctx();
    const size_t bad[] = {0, SIZE_MAX, SIZE_MAX - 62, SIZE_MAX - 10};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        q_error_code rc = f(&c, bad[i]);
        QCHECK(rc == Q_ERR_OVERFLOW, "%s(ctx, %zu) -> %d (%s), expected OVERFLOW", name, bad[i], (int)rc,
               q_strerror(rc));
    }
    QCHECK(is_zero(&c), "%s: ctx untouched after OVERFLOW", name);
    q_error_code rc = f(&c, (size_t)1 << 62);
    QCHECK(rc == Q_ERR_ALLOC_FAILED, "%s(ctx, 2^62) -> %d (%s), expected ALLOC_FAILED", name, (int)rc,
           q_strerror(rc));
    QCHECK(is_zero(&c), "%s: ctx untouched after ALLOC_FAILED", name);
}

static void test_kv_cache(void) {
    test_alloc_common(q_alloc_kv_cache, "q_alloc_kv_cache");
    q_context c = zero_ctx();
    QCHECK_CODE(q_alloc_kv_cache(&c, 100), Q_OK);
    QCHECK(c.kv_size == 128, "kv_size rounded up: 100 -> %zu", c.kv_size);
    QCHECK(c.kv_buffer != NULL && aligned64(c.kv_buffer), "kv_buffer %p is 64-aligned", c.kv_buffer);
    int zero = 1;
    for (size_t i = 0; i < c.kv_size; i++) {
        zero &= ((unsigned char *)c.kv_buffer)[i] == 0;
    }
    QCHECK(zero, "KV cache is zero-filled");
    memset(c.kv_buffer, 0xAB, c.kv_size); /* writable over its whole size */
    QCHECK(c.scratch_buffer == NULL && c.weights_mmap == NULL, "only the KV fields were written");
    void *first = c.kv_buffer;
    QCHECK_CODE(q_alloc_kv_cache(&c, 64), Q_ERR_INVALID_ARG);
    QCHECK(c.kv_buffer == first && c.kv_size == 128, "second allocation leaves the first in place");
    q_free_memory(&c);
    QCHECK(is_zero(&c), "KV cache freed, context zero");

    /* sizes already multiple of 64 are kept; a large cache is zero at both ends */
    QCHECK_CODE(q_alloc_kv_cache(&c, 64), Q_OK);
    QCHECK(c.kv_size == 64, "kv_size 64 -> %zu", c.kv_size);
    q_free_memory(&c);
    const size_t big = (size_t)8 << 20;
    QCHECK_CODE(q_alloc_kv_cache(&c, big + 1), Q_OK);
    QCHECK(c.kv_size == big + 64, "kv_size 8 MiB + 1 -> %zu", c.kv_size);
    const unsigned char *kb = c.kv_buffer;
    QCHECK(kb[0] == 0 && kb[big / 2] == 0 && kb[c.kv_size - 1] == 0, "8 MiB KV cache is zero");
    q_free_memory(&c);
}

static void test_arena(void) {
    test_alloc_common(q_alloc_arena, "q_alloc_arena");
    q_context c = zero_ctx();

    /* q_arena_alloc without an arena, and with NULL */
    QCHECK(q_arena_alloc(NULL, 64) == NULL, "q_arena_alloc(NULL, 64) -> NULL");
    QCHECK(q_arena_alloc(&c, 64) == NULL, "q_arena_alloc without an arena -> NULL");
    QCHECK(is_zero(&c), "ctx untouched");

    c.scratch_head = 3;
    c.scratch_base_offset = 5;
    QCHECK_CODE(q_alloc_arena(&c, 1000), Q_OK);
    QCHECK(c.scratch_size == 1024, "scratch_size rounded up: 1000 -> %zu", c.scratch_size);
    QCHECK(c.scratch_head == 0 && c.scratch_base_offset == 0, "head and base reset to 0");
    QCHECK(c.scratch_buffer != NULL && aligned64(c.scratch_buffer), "scratch_buffer %p is 64-aligned",
           c.scratch_buffer);
    QCHECK(c.kv_buffer == NULL && c.weights_mmap == NULL, "only the arena fields were written");
    memset(c.scratch_buffer, 0xCD, c.scratch_size); /* writable over its whole size */
    void *arena = c.scratch_buffer;
    QCHECK_CODE(q_alloc_arena(&c, 64), Q_ERR_INVALID_ARG);
    QCHECK(c.scratch_buffer == arena && c.scratch_size == 1024, "second allocation leaves the first in place");

    unsigned char *base = arena;
    /* 1 byte consumes 64 */
    void *p1 = q_arena_alloc(&c, 1);
    QCHECK(p1 == base && c.scratch_head == 64, "1 byte -> base, head 64 (head %zu)", c.scratch_head);
    void *p2 = q_arena_alloc(&c, 64);
    QCHECK(p2 == base + 64 && c.scratch_head == 128, "64 bytes -> base+64, head 128");
    void *p3 = q_arena_alloc(&c, 65);
    QCHECK(p3 == base + 128 && c.scratch_head == 256, "65 bytes -> base+128, head 256");
    QCHECK(aligned64(p1) && aligned64(p2) && aligned64(p3), "every allocation is 64-aligned");

    /* sizes that are zero or would overflow */
    const size_t huge[] = {0, SIZE_MAX, SIZE_MAX - 10, SIZE_MAX - 63, SIZE_MAX - 64, SIZE_MAX / 2};
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
        void *p = q_arena_alloc(&c, huge[i]);
        QCHECK(p == NULL && c.scratch_head == 256, "q_arena_alloc(%zu) -> NULL, head unchanged", huge[i]);
    }
    /* head + A64(size) overflows although size alone is acceptable */
    size_t saved = c.scratch_size;
    c.scratch_size = SIZE_MAX;
    void *pov = q_arena_alloc(&c, SIZE_MAX - 127);
    QCHECK(pov == NULL && c.scratch_head == 256, "head 256 + A64(SIZE_MAX-127) overflows -> NULL");
    c.scratch_size = saved;

    /* exhaustion: 768 bytes left */
    void *p4 = q_arena_alloc(&c, 769);
    QCHECK(p4 == NULL && c.scratch_head == 256, "769 bytes with 768 left -> NULL, head unchanged");
    void *p5 = q_arena_alloc(&c, 700);
    QCHECK(p5 == base + 256 && c.scratch_head == 960, "700 bytes -> base+256, head 960");
    void *p6 = q_arena_alloc(&c, 64);
    QCHECK(p6 == base + 960 && c.scratch_head == 1024, "last 64 bytes fit exactly (head %zu)", c.scratch_head);
    void *p7 = q_arena_alloc(&c, 1);
    QCHECK(p7 == NULL && c.scratch_head == 1024, "full arena -> NULL");

    /* a scratch_head that is not a multiple of 64 (set by a caller) -> NULL, never misaligned */
    const size_t odd_heads[] = {1, 63, 65, 100};
    for (size_t i = 0; i < sizeof odd_heads / sizeof odd_heads[0]; i++) {
        c.scratch_head = odd_heads[i];
        void *p = q_arena_alloc(&c, 8);
        QCHECK(p == NULL && c.scratch_head == odd_heads[i], "scratch_head %zu -> NULL", odd_heads[i]);
    }

    /* q_arena_reset rewinds to the watermark */
    c.scratch_head = 512;
    c.scratch_base_offset = 128;
    q_arena_reset(&c);
    QCHECK(c.scratch_head == 128 && c.scratch_base_offset == 128, "reset: head 512 -> %zu (base 128)",
           c.scratch_head);
    void *p8 = q_arena_alloc(&c, 10);
    QCHECK(p8 == base + 128 && c.scratch_head == 192, "after reset, allocation resumes at the watermark");
    c.scratch_base_offset = 0;
    q_arena_reset(&c);
    QCHECK(c.scratch_head == 0, "reset with base 0 -> head 0");
    QCHECK(q_arena_alloc(&c, 1024) == base && c.scratch_head == 1024, "whole arena in one allocation");
    q_arena_reset(NULL);
    QCHECK(1, "q_arena_reset(NULL) is a no-op");

    /* reset without an arena still sets head = base */
    q_context n = zero_ctx();
    n.scratch_head = 4096;
    n.scratch_base_offset = 640;
    q_arena_reset(&n);
    QCHECK(n.scratch_head == 640 && n.scratch_buffer == NULL, "reset with no arena: head -> %zu", n.scratch_head);

    q_free_memory(&c);
    QCHECK(is_zero(&c), "arena freed, context zero");
    QCHECK(q_arena_alloc(&c, 64) == NULL, "q_arena_alloc after free -> NULL");
}

/* ---- q_free_memory ---------------------------------------------------------------------------- */

static void test_free(void) {
    q_free_memory(NULL);
    QCHECK(1, "q_free_memory(NULL) is a no-op");
    q_context c = zero_ctx();
    q_free_memory(&c);
    QCHECK(is_zero(&c), "q_free_memory on a zeroed context leaves it zero");

    q_model_header h = qorus_header();
    const char *path = temp_file(&h, sizeof h);
    QCHECK_CODE(q_init_memory_ex(&c, path, Q_MMAP_EAGER), Q_OK);
    QCHECK_CODE(q_alloc_arena(&c, 4096), Q_OK);
    QCHECK_CODE(q_alloc_kv_cache(&c, 4096), Q_OK);
    QCHECK(q_arena_alloc(&c, 100) != NULL, "arena in use");
    c.scratch_base_offset = 64;
    QCHECK(c.weights_mmap && c.kv_buffer && c.scratch_buffer && c.header, "all three tiers present");
    q_free_memory(&c);
    QCHECK(is_zero(&c), "after q_free_memory every field is zero");
    q_free_memory(&c);
    QCHECK(is_zero(&c), "q_free_memory twice in a row is safe");

    /* a freed context can be used again */
    QCHECK_CODE(q_init_memory(&c, path), Q_OK);
    QCHECK_CODE(q_alloc_kv_cache(&c, 64), Q_OK);
    QCHECK_CODE(q_alloc_arena(&c, 64), Q_OK);
    q_free_memory(&c);
    QCHECK(is_zero(&c), "context reusable after free, and zero after the second free");

    /* the arena is C heap memory, as the original's aligned_alloc: a caller may free() it
     * (glibc aborts on a pointer malloc did not make, ASan reports it) */
    for (int i = 0; i < 3; i++) {
        QCHECK_CODE(q_alloc_arena(&c, (size_t)1000 << (8 * i)), Q_OK);
        void *p = q_arena_alloc(&c, 64);
        QCHECK(p != NULL && ((uintptr_t)c.scratch_buffer % 64) == 0, "arena of %zu bytes in use, 64-aligned",
               c.scratch_size);
        memset(c.scratch_buffer, 0xA5, c.scratch_size);
        free(c.scratch_buffer);
        c.scratch_buffer = NULL;
        c.scratch_size = c.scratch_head = c.scratch_base_offset = 0;
        q_free_memory(&c);
        QCHECK(is_zero(&c), "arena released by free() (%d), then q_free_memory: nothing freed twice", i);
    }
}

int main(void) {
    test_init_failures();
    test_init_qorus();
    test_init_gguf();
    test_kv_cache();
    test_arena();
    test_free();
    remove_temps();
    return qtest_summary("test_memory");
}
