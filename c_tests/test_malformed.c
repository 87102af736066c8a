/* test_malformed.c — hand-made hostile GGUF files through q_init_memory: every one returns an
 * error code (never a crash, never a huge allocation), and the context stays untouched. A valid
 * file made the same way loads, so each failure comes from its one defect. Also: every
 * truncation of the valid file fails cleanly. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "qorus.h"
#include "support/qtest.h"

typedef struct {
    unsigned char b[4096];
    size_t n;
} buf;

static void put(buf *f, const void *p, size_t n) {
    memcpy(f->b + f->n, p, n);
    f->n += n;
}
static void u32(buf *f, uint32_t v) { put(f, &v, 4); }
static void u64(buf *f, uint64_t v) { put(f, &v, 8); }
static void str(buf *f, const char *s) {
    u64(f, strlen(s));
    put(f, s, strlen(s));
}
static void kv_u32(buf *f, const char *k, uint32_t v) {
    str(f, k);
    u32(f, 4);
    u32(f, v);
}

/* The knobs a test may turn, each defaulting to a valid file. */
typedef struct {
    uint32_t magic, version, n_dims, ggml_type, alignment_kv;
    uint64_t n_tensors_override, n_kv_override, extent0, extent1, offset, key_len_override, str_len_override;
    uint32_t meta_type_override, bool_value, arch_missing, dup_key, two_tensors_overlap, array_len_huge;
    uint32_t ctx_len, kv_heads;
    const char *arch;
} knobs;

static knobs valid(void) {
    knobs k;
    memset(&k, 0, sizeof k);
    k.magic = 0x46554747; /* "GGUF" */
    k.version = 3;
    k.n_dims = 2;
    k.ggml_type = 0; /* F32 */
    k.extent0 = 32;  /* columns = dim */
    k.extent1 = 8;   /* rows = vocab */
    k.arch = "llama";
    k.bool_value = 1;
    k.ctx_len = 16;
    k.kv_heads = 4;
    return k;
}

static buf make(const knobs *k) {
    buf f;
    memset(&f, 0, sizeof f);
    u32(&f, k->magic);
    u32(&f, k->version);
    uint64_t n_t = k->two_tensors_overlap ? 2 : 1;
    uint64_t n_kv = 9 + (k->dup_key ? 1 : 0) + (k->alignment_kv ? 1 : 0) + (k->array_len_huge ? 1 : 0) -
                    (k->arch_missing ? 1 : 0);
    u64(&f, k->n_tensors_override ? k->n_tensors_override : n_t);
    u64(&f, k->n_kv_override ? k->n_kv_override : n_kv);
    if (!k->arch_missing) {
        if (k->key_len_override) {
            u64(&f, k->key_len_override);
            put(&f, "general.architecture", 20);
        } else {
            str(&f, "general.architecture");
        }
        u32(&f, k->meta_type_override ? k->meta_type_override : 8);
        if (k->str_len_override) {
            u64(&f, k->str_len_override);
            put(&f, k->arch, strlen(k->arch));
        } else {
            str(&f, k->arch);
        }
    }
    kv_u32(&f, "llama.block_count", 1);
    kv_u32(&f, "llama.context_length", k->ctx_len);
    kv_u32(&f, "llama.embedding_length", 32);
    kv_u32(&f, "llama.feed_forward_length", 32);
    kv_u32(&f, "llama.attention.head_count", 4);
    kv_u32(&f, "llama.attention.head_count_kv", k->kv_heads);
    str(&f, "tokenizer.ggml.add_bos_token");
    u32(&f, 7);
    unsigned char bv = (unsigned char)k->bool_value;
    put(&f, &bv, 1);
    kv_u32(&f, "llama.vocab_size", 8);
    if (k->dup_key) kv_u32(&f, "llama.block_count", 1);
    if (k->alignment_kv) kv_u32(&f, "general.alignment", k->alignment_kv);
    if (k->array_len_huge) {
        str(&f, "tokenizer.ggml.scores");
        u32(&f, 9);            /* array */
        u32(&f, 6);            /* of f32 */
        u64(&f, 1ull << 40);   /* absurd length */
    }
    /* tensor directory */
    str(&f, "token_embd.weight");
    u32(&f, k->n_dims);
    if (k->n_dims >= 1) u64(&f, k->extent0);
    if (k->n_dims >= 2) u64(&f, k->extent1);
    for (uint32_t i = 2; i < k->n_dims && i < 8; i++) u64(&f, 1);
    u32(&f, k->ggml_type);
    u64(&f, k->offset);
    if (k->two_tensors_overlap) {
        str(&f, "output_norm.weight");
        u32(&f, 1);
        u64(&f, 32);
        u32(&f, 0);
        u64(&f, 64); /* inside token_embd's 1024 bytes */
    }
    while (f.n % 32) f.b[f.n++] = 0;
    /* the tensor's 8 x 32 floats, then 32 floats of trailing bytes (ignored by readers) */
    for (int i = 0; i < 8 * 32 + 32; i++) {
        float v = (float)(i % 7) * 0.25f;
        put(&f, &v, 4);
    }
    return f;
}

static q_error_code load(const buf *f, const char *name, size_t len) {
    FILE *fp = fopen(name, "wb");
    fwrite(f->b, 1, len, fp);
    fclose(fp);
    q_context ctx;
    memset(&ctx, 0xAB, sizeof ctx);
    q_context before = ctx;
    ctx.kv_buffer = NULL;
    ctx.scratch_buffer = NULL;
    before = ctx;
    q_error_code rc = q_init_memory(&ctx, name);
    if (rc == Q_OK) {
        q_free_memory(&ctx);
    } else if (memcmp(&ctx, &before, sizeof ctx) != 0) {
        rc = 12345; /* a failed call must leave the context untouched */
    }
    unlink(name);
    return rc;
}

#define BAD(label, mutate)                                                                          \
    do {                                                                                           \
        knobs k = valid();                                                                         \
        mutate;                                                                                    \
        buf f = make(&k);                                                                          \
        q_error_code rc = load(&f, "malformed.gguf", f.n);                                         \
        QCHECK(rc < 0 && rc != Q_ERR_INTERNAL, "%-44s -> %d (%s)", label, (int)rc, q_strerror(rc));  \
        n_bad++;                                                                                   \
    } while (0)

int main(void) {
    int n_bad = 0;
    knobs v = valid();
    buf good = make(&v);
    QCHECK_CODE(load(&good, "valid.gguf", good.n), Q_OK);

    BAD("bad magic", k.magic = 0x12345678);
    BAD("version 1", k.version = 1);
    BAD("version 4", k.version = 4);
    BAD("tensor count 2^60", k.n_tensors_override = 1ull << 60);
    BAD("metadata count 2^62", k.n_kv_override = 1ull << 62);
    BAD("metadata count one too many", k.n_kv_override = 11);
    BAD("key length past the end", k.key_len_override = 1ull << 40);
    BAD("string length past the end", k.str_len_override = 1ull << 50);
    BAD("unknown metadata type 99", k.meta_type_override = 99);
    BAD("bool value 2", k.bool_value = 2);
    BAD("array length 2^40", k.array_len_huge = 1);
    BAD("duplicate metadata key", k.dup_key = 1);
    BAD("general.alignment 3", k.alignment_kv = 3);
    BAD("general.alignment 0", k.alignment_kv = 0xFFFFFFFF);
    BAD("tensor with 0 dimensions", k.n_dims = 0);
    BAD("tensor with 5 dimensions", k.n_dims = 5);
    BAD("tensor extent 0", k.extent1 = 0);
    BAD("absurd extents 2^40 x 2^40", (k.extent0 = 1ull << 40, k.extent1 = 1ull << 40));
    BAD("unknown tensor type 200", k.ggml_type = 200);
    BAD("Q4_0 row not whole blocks (31 cols)", (k.ggml_type = 2, k.extent0 = 31));
    BAD("tensor offset not aligned", k.offset = 4);
    BAD("tensor data past the end", k.offset = 1ull << 20);
    BAD("tensor offset overflows", k.offset = UINT64_MAX - 31);
    BAD("overlapping tensors", k.two_tensors_overlap = 1);
    BAD("no general.architecture", k.arch_missing = 1);
    BAD("architecture gpt2 (unsupported)", k.arch = "gpt2");
    BAD("token_embd not 2-D", k.n_dims = 1);
    BAD("kv heads not dividing heads (4 / 3)", k.kv_heads = 3);
    BAD("context length 0", k.ctx_len = 0);
    printf("%d hand-made malformed GGUF files\n", n_bad);

    /* every truncation of the valid file that cuts into the header, directory or tensor data
     * fails cleanly (the last 128 bytes are trailing padding: cutting them is harmless) */
    int clean = 1;
    for (size_t len = 0; len < good.n - 128; len += 3) {
        q_error_code rc = load(&good, "truncated.gguf", len);
        if (rc >= 0 || rc == Q_ERR_INTERNAL) {
            printf("truncated at %zu -> %d\n", len, (int)rc);
            clean = 0;
        }
    }
    QCHECK(clean, "every truncation of the valid file before its tensor data ends (%zu bytes, step 3) fails",
           good.n - 128);
    QCHECK_CODE(load(&good, "valid.gguf", good.n - 128), Q_OK);
    return qtest_summary("test_malformed");
}
