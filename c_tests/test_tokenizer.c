/* test_tokenizer.c — spec §3.5 / §4.2 / §8.3: hand-built tokenizers, tokenizer files, error codes.
 *
 * DELIBERATE DEVIATION (issue 3, spec §7 D1): qorus merges in canonical rank order (lowest rule
 * index first, leftmost among equals, new pairs considered at once), not with the original's
 * repeated rule-by-rule passes. The spec §8.3 vocabulary with rules [(256,'a')->257,
 * ('a','a')->256] therefore encodes "aaaa" as [257 "aaa", 97 "a"] where the original gives
 * [256, 256]; the other §8.3 vectors are unchanged. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qorus.h"
#include "support/qtest.h"

static int ids_equal(const uint32_t *a, const uint32_t *b, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        if (a[i] != b[i]) return 0;
    }
    return 1;
}

/* The §8.3 tokenizer, built by hand the way the original tests do. */
static void build_spec_tokenizer(q_tokenizer *t) {
    memset(t, 0, sizeof *t);
    t->vocab_size = 261;
    t->vocab = calloc(261, sizeof(char *));
    for (int c = 1; c < 256; c++) {
        t->vocab[c] = malloc(2);
        t->vocab[c][0] = (char)c;
        t->vocab[c][1] = 0;
    }
    t->vocab[256] = strdup("aa");
    t->vocab[257] = strdup("aaa");
    /* entries 0, 258..260 stay NULL: decode must skip them */
    t->num_merges = 2;
    t->merges = calloc(2, sizeof(q_bpe_merge));
    t->merges[0] = (q_bpe_merge){256, 97, 257};
    t->merges[1] = (q_bpe_merge){97, 97, 256};
    t->merge_hash_table = NULL;
    t->bos_token_id = 258;
    t->eos_token_id = 259;
    t->pad_token_id = 260;
    t->initialized = true;
}

static void test_hand_built(void) {
    q_tokenizer t;
    build_spec_tokenizer(&t);
    uint32_t out[16];
    uint32_t n = 99;

    QCHECK_CODE(q_tokenizer_encode(&t, "aaaa", out, &n, 16, true, true), Q_OK);
    const uint32_t want[] = {258, 257, 97, 259};
    QCHECK(n == 4 && ids_equal(out, want, 4), "\"aaaa\"+BOS+EOS -> [258,257,97,259] (canonical), got n=%u [%u,%u,%u,%u]",
           n, out[0], out[1], out[2], out[3]);

    n = 99;
    QCHECK_CODE(q_tokenizer_encode(&t, "aaaa", out, &n, 3, false, false), Q_OK);
    QCHECK(n == 2, "max_tokens 3, no specials: 2 tokens (got %u)", n);

    n = 99;
    QCHECK_CODE(q_tokenizer_encode(&t, "", out, &n, 1, true, true), Q_ERR_ARENA_OOM);
    QCHECK(n == 0, "empty text, BOS+EOS in 1 slot: count 0 (got %u)", n);
    QCHECK_CODE(q_tokenizer_encode(&t, "", out, &n, 2, true, true), Q_OK);
    QCHECK(n == 2 && out[0] == 258 && out[1] == 259, "empty text with room: [BOS, EOS]");
    QCHECK_CODE(q_tokenizer_encode(&t, "", out, &n, 1, false, false), Q_OK);
    QCHECK(n == 0, "empty text, no specials: 0 tokens");

    /* Too small for the result: error, and nothing written past the buffer. */
    uint32_t guard_buf[5] = {7, 7, 7, 7, 7};
    n = 42;
    QCHECK_CODE(q_tokenizer_encode(&t, "abcd", guard_buf, &n, 3, true, true), Q_ERR_ARENA_OOM);
    QCHECK(n == 42 && guard_buf[0] == 7 && guard_buf[3] == 7 && guard_buf[4] == 7,
           "buffer too small: outputs untouched");

    /* The spec §3.5.2 example: [(X,'a')->W, ('a','a')->X] on "aaaa" gives [W, 'a']. */
    n = 0;
    QCHECK_CODE(q_tokenizer_encode(&t, "aaaaa", out, &n, 16, false, false), Q_OK);
    QCHECK(n == 2 && out[0] == 257 && out[1] == 256, "\"aaaaa\" -> [aaa, aa]");

    /* Decode: [256, 256, 97] is "aaaaa" (5 bytes) and needs 7 bytes of buffer. */
    const uint32_t dec[] = {256, 256, 97};
    char buf[32];
    memset(buf, 'Z', sizeof buf);
    QCHECK_CODE(q_tokenizer_decode(&t, dec, 3, buf, 7), Q_OK);
    QCHECK(strcmp(buf, "aaaaa") == 0, "decode -> \"aaaaa\"");
    memset(buf, 'Z', sizeof buf);
    QCHECK_CODE(q_tokenizer_decode(&t, dec, 3, buf, 6), Q_ERR_ARENA_OOM);
    QCHECK(strcmp(buf, "aaaa") == 0 && buf[6] == 'Z', "6 bytes: partial \"aaaa\", nothing past it");

    /* Specials, out-of-range ids and NULL entries are skipped. */
    const uint32_t skip[] = {258, 104, 0, 105, 259, 260, 5000, 257};
    QCHECK_CODE(q_tokenizer_decode(&t, skip, 8, buf, sizeof buf), Q_OK);
    QCHECK(strcmp(buf, "hiaaa") == 0, "decode skips BOS/EOS/PAD/NULL/out-of-range -> \"%s\"", buf);

    /* Bytes >= vocab_size become PAD. */
    t.vocab_size = 100;
    QCHECK_CODE(q_tokenizer_encode(&t, "z", out, &n, 4, false, false), Q_OK);
    QCHECK(n == 1 && out[0] == 260, "byte 122 >= vocab_size 100 -> PAD");
    t.vocab_size = 261;

    /* Argument errors. */
    QCHECK_CODE(q_tokenizer_encode(NULL, "a", out, &n, 4, false, false), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_tokenizer_encode(&t, NULL, out, &n, 4, false, false), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_tokenizer_encode(&t, "a", NULL, &n, 4, false, false), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_tokenizer_encode(&t, "a", out, NULL, 4, false, false), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_tokenizer_encode(&t, "a", out, &n, 0, false, false), Q_ERR_INVALID_SIZE);
    QCHECK_CODE(q_tokenizer_decode(NULL, dec, 3, buf, 8), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_tokenizer_decode(&t, NULL, 3, buf, 8), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_tokenizer_decode(&t, dec, 3, NULL, 8), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_tokenizer_decode(&t, dec, 3, buf, 0), Q_ERR_INVALID_SIZE);
    t.initialized = false;
    QCHECK_CODE(q_tokenizer_encode(&t, "a", out, &n, 4, false, false), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_tokenizer_decode(&t, dec, 3, buf, 8), Q_ERR_INVALID_ARG);
    t.initialized = true;

    /* Text over 1 MiB. */
    size_t big = 1048577;
    char *huge = malloc(big + 1);
    memset(huge, 'x', big);
    huge[big] = 0;
    uint32_t *many = malloc(sizeof(uint32_t) * 4);
    QCHECK_CODE(q_tokenizer_encode(&t, huge, many, &n, 4, false, false), Q_ERR_ARENA_OOM);
    free(huge);
    free(many);

    /* The caller frees a part itself, then q_tokenizer_free does the rest; twice is fine. */
    free(t.vocab[256]);
    t.vocab[256] = NULL;
    q_tokenizer_free(&t);
    QCHECK(t.vocab == NULL && t.merges == NULL && !t.initialized && t.vocab_size == 0,
           "free zeroes the struct");
    q_tokenizer_free(&t);
    q_tokenizer_free(NULL);
    QCHECK(1, "free twice and free(NULL) are harmless");
}

/* ---- tokenizer files ---- */

static void put_u32(FILE *f, uint32_t v) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 24)};
    fwrite(b, 1, 4, f);
}

/* The converter's layout (259 entries: bytes, BOS, EOS, PAD) plus "aa"/"aaa" and two merges. */
static size_t write_file(const char *path, uint32_t magic, uint32_t version, uint32_t vocab_size,
                         uint32_t num_merges, int zero_entry, uint32_t bad_merge_id, long truncate_at) {
    FILE *f = fopen(path, "wb");
    put_u32(f, magic);
    put_u32(f, version);
    put_u32(f, vocab_size);
    put_u32(f, num_merges);
    put_u32(f, 256); /* BOS */
    put_u32(f, 257); /* EOS */
    put_u32(f, 258); /* PAD */
    put_u32(f, 0);
    const char *names[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|finetune_right_pad_id|>", "aa",
                           "aaa"};
    for (uint32_t i = 0; i < vocab_size && i < 261; i++) {
        if ((int)i == zero_entry) {
            fputc(0, f);
            continue;
        }
        if (i < 256) {
            fputc(1, f);
            fputc((int)i, f);
        } else {
            const char *s = names[i - 256];
            fputc((int)strlen(s), f);
            fwrite(s, 1, strlen(s), f);
        }
    }
    if (num_merges >= 1) {
        put_u32(f, 259);
        put_u32(f, 97);
        put_u32(f, bad_merge_id ? bad_merge_id : 260);
    }
    if (num_merges >= 2) {
        put_u32(f, 97);
        put_u32(f, 97);
        put_u32(f, 259);
    }
    fputs("trailing bytes are ignored", f);
    long size = ftell(f);
    fclose(f);
    if (truncate_at >= 0) {
        if (truncate(path, truncate_at) != 0) return 0;
        return (size_t)truncate_at;
    }
    return (size_t)size;
}

static int all_zero(const q_tokenizer *t) {
    const unsigned char *p = (const unsigned char *)t;
    for (size_t i = 0; i < sizeof *t; i++) {
        if (p[i]) return 0;
    }
    return 1;
}

static void test_files(void) {
    const char *path = "test_tokenizer.tok";
    q_tokenizer t;
    memset(&t, 0xAB, sizeof t); /* an uninitialised struct is fine */
    write_file(path, 0x51544B52, 1, 261, 2, -1, 0, -1);
    QCHECK_CODE(q_tokenizer_load(&t, path), Q_OK);
    QCHECK(t.initialized && t.vocab_size == 261 && t.num_merges == 2 && t.bos_token_id == 256 &&
               t.eos_token_id == 257 && t.pad_token_id == 258,
           "fields loaded");
    QCHECK(t.merge_hash_table != NULL, "private table present with merges");
    QCHECK(t.vocab[65] && strcmp(t.vocab[65], "A") == 0 && strcmp(t.vocab[260], "aaa") == 0,
           "vocabulary strings NUL-terminated");
    QCHECK(t.merges[1].token_id1 == 97 && t.merges[1].merged_id == 259, "merges in file order");

    uint32_t out[16], n = 0;
    QCHECK_CODE(q_tokenizer_encode(&t, "aaaa", out, &n, 16, true, true), Q_OK);
    QCHECK(n == 4 && out[0] == 256 && out[1] == 260 && out[2] == 97 && out[3] == 257,
           "file tokenizer: \"aaaa\" -> [BOS, aaa, a, EOS]");
    char buf[64];
    QCHECK_CODE(q_tokenizer_decode(&t, out, n, buf, sizeof buf), Q_OK);
    QCHECK(strcmp(buf, "aaaa") == 0, "round trip \"aaaa\"");
    QCHECK_CODE(q_tokenizer_encode(&t, "hello, world", out, &n, 16, false, false), Q_OK);
    QCHECK_CODE(q_tokenizer_decode(&t, out, n, buf, sizeof buf), Q_OK);
    QCHECK(strcmp(buf, "hello, world") == 0, "round trip \"hello, world\"");

    /* The caller edits the struct: encoding follows the struct's fields (no merges now). */
    uint32_t saved = t.num_merges;
    t.num_merges = 0;
    QCHECK_CODE(q_tokenizer_encode(&t, "aaaa", out, &n, 16, false, false), Q_OK);
    QCHECK(n == 4 && out[0] == 97 && out[3] == 97, "edited num_merges=0 -> raw bytes");
    t.num_merges = saved;
    q_tokenizer_free(&t);
    QCHECK(all_zero(&t), "free leaves the struct all-zero");
    q_tokenizer_free(&t);

    /* Without merges the private table stays NULL (spec §3.5.1). */
    write_file(path, 0x51544B52, 1, 259, 0, -1, 0, -1);
    QCHECK_CODE(q_tokenizer_load(&t, path), Q_OK);
    QCHECK(t.merge_hash_table == NULL && t.num_merges == 0, "no merges -> merge_hash_table NULL");
    q_tokenizer_free(&t);

    /* Errors: each leaves the struct all-zero (spec §7 D4), so free afterwards is safe. */
    struct {
        const char *what;
        uint32_t magic, version, vocab, merges;
        int zero_entry;
        uint32_t bad_id;
        long trunc;
        q_error_code want;
    } cases[] = {
        {"wrong magic", 0x51544B53, 1, 261, 2, -1, 0, -1, Q_ERR_INVALID_MAGIC},
        {"version 2", 0x51544B52, 2, 261, 2, -1, 0, -1, Q_ERR_INVALID_ARG},
        {"vocab 0", 0x51544B52, 1, 0, 0, -1, 0, -1, Q_ERR_INVALID_SIZE},
        {"vocab 1000001", 0x51544B52, 1, 1000001, 0, -1, 0, -1, Q_ERR_INVALID_SIZE},
        {"merges 1000001", 0x51544B52, 1, 261, 1000001, -1, 0, -1, Q_ERR_INVALID_SIZE},
        {"entry length 0", 0x51544B52, 1, 261, 2, 3, 0, -1, Q_ERR_INVALID_SIZE},
        {"merge id out of range", 0x51544B52, 1, 261, 2, -1, 261, -1, Q_ERR_INVALID_ARG},
        {"truncated header", 0x51544B52, 1, 261, 2, -1, 0, 10, Q_ERR_FILE_OPEN},
        {"truncated vocabulary", 0x51544B52, 1, 261, 2, -1, 0, 300, Q_ERR_FILE_OPEN},
        {"truncated merges", 0x51544B52, 1, 261, 2, -1, 0, 32 + 512 + 3 + 17 + 15 + 25 + 2 + 3 + 14,
         Q_ERR_FILE_OPEN},
        {"empty file", 0x51544B52, 1, 261, 2, -1, 0, 0, Q_ERR_FILE_OPEN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(path, cases[i].magic, cases[i].version, cases[i].vocab, cases[i].merges,
                   cases[i].zero_entry, cases[i].bad_id, cases[i].trunc);
        memset(&t, 0x5A, sizeof t);
        QCHECK_CODE(q_tokenizer_load(&t, path), cases[i].want);
        QCHECK(all_zero(&t), "%s: struct all-zero after the failure", cases[i].what);
        q_tokenizer_free(&t);
    }
    QCHECK_CODE(q_tokenizer_load(&t, "/nonexistent/qorus.tok"), Q_ERR_FILE_OPEN);
    QCHECK(all_zero(&t), "missing file: struct all-zero");
    QCHECK_CODE(q_tokenizer_load(NULL, path), Q_ERR_INVALID_ARG);
    memset(&t, 0x5A, sizeof t);
    QCHECK_CODE(q_tokenizer_load(&t, NULL), Q_ERR_INVALID_ARG);
    QCHECK(((unsigned char *)&t)[0] == 0x5A, "NULL path: struct untouched");
    remove(path);
}

int main(void) {
    test_hand_built();
    test_files();
    return qtest_summary("test_tokenizer");
}
