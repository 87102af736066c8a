/* test_tokenizer_smollm2.c — SmolLM2's tokenizer through the C API against llama.cpp.
 *
 * Loads the tokenizer from the SmolLM2 GGUF with q_tokenizer_load, encodes every string of
 * tests/data/tokenizer/corpus.txt and compares the ids with those llama.cpp produced
 * (tests/data/tokenizer/smollm2_ids.txt, made by scripts/reference/make_tokenizer_reference.py),
 * then checks decode(encode(s)) == s. Decoding follows spec §3.5.3, which skips the BOS, EOS
 * and PAD ids: for SmolLM2 those are <|im_start|> and <|im_end|>, so for strings containing
 * them the expected text is s without them.
 *
 * Environment (set by tests/c_api.rs): QORUS_TEST_MODEL_Q41, QORUS_TOKENIZER_CORPUS,
 * QORUS_TOKENIZER_IDS. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qorus.h"
#include "support/qtest.h"

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(b);
        return NULL;
    }
    fclose(f);
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

/* Unescapes one corpus line in place (\\ \n \r \t \xHH). */
static void unescape(char *s) {
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '\\' && r[1]) {
            char c = r[1];
            if (c == 'n') { *w++ = '\n'; r++; continue; }
            if (c == 'r') { *w++ = '\r'; r++; continue; }
            if (c == 't') { *w++ = '\t'; r++; continue; }
            if (c == '\\') { *w++ = '\\'; r++; continue; }
            if (c == 'x' && r[2] && r[3]) {
                char hex[3] = {r[2], r[3], 0};
                *w++ = (char)strtol(hex, NULL, 16);
                r += 3;
                continue;
            }
        }
        *w++ = *r;
    }
    *w = 0;
}

/* Splits a buffer into lines (modifies it); returns the count. */
static size_t split_lines(char *buf, char ***lines) {
    size_t cap = 1024, n = 0;
    *lines = malloc(cap * sizeof(char *));
    char *p = buf;
    while (*p) {
        char *e = strchr(p, '\n');
        if (n == cap) {
            cap *= 2;
            *lines = realloc(*lines, cap * sizeof(char *));
        }
        (*lines)[n++] = p;
        if (!e) break;
        *e = 0;
        p = e + 1;
    }
    return n;
}

/* s with every occurrence of the given strings removed. */
static void remove_all(const char *s, const char *const *pats, int npats, char *out) {
    size_t o = 0;
    while (*s) {
        int hit = 0;
        for (int k = 0; k < npats; k++) {
            size_t l = strlen(pats[k]);
            if (l && strncmp(s, pats[k], l) == 0) {
                s += l;
                hit = 1;
                break;
            }
        }
        if (!hit) out[o++] = *s++;
    }
    out[o] = 0;
}

int main(void) {
    const char *model = getenv("QORUS_TEST_MODEL_Q41");
    const char *corpus_path = getenv("QORUS_TOKENIZER_CORPUS");
    const char *ids_path = getenv("QORUS_TOKENIZER_IDS");
    QCHECK(model && corpus_path && ids_path, "environment gives model, corpus and ids paths");
    if (!model || !corpus_path || !ids_path) return qtest_summary("test_tokenizer_smollm2");

    size_t clen = 0, ilen = 0;
    char *cbuf = read_all(corpus_path, &clen);
    char *ibuf = read_all(ids_path, &ilen);
    QCHECK(cbuf && ibuf, "read %s and %s", corpus_path, ids_path);
    if (!cbuf || !ibuf) return qtest_summary("test_tokenizer_smollm2");
    char **corpus, **idl;
    size_t nc = split_lines(cbuf, &corpus);
    size_t ni = split_lines(ibuf, &idl);
    QCHECK(ni >= 1 && idl[0][0] == '#', "ids file has a header: %s", ni ? idl[0] : "");
    int add_bos = strstr(idl[0], "add_bos=1") != NULL;
    QCHECK(nc == ni - 1 && nc >= 300, "%zu corpus strings, %zu id lines", nc, ni - 1);
    if (nc != ni - 1) return qtest_summary("test_tokenizer_smollm2");

    q_tokenizer tok;
    QCHECK_CODE(q_tokenizer_load(&tok, model), Q_OK);
    if (!tok.initialized) return qtest_summary("test_tokenizer_smollm2");
    QCHECK(tok.vocab_size == 49152 && tok.eos_token_id == 2, "SmolLM2 vocabulary: %u tokens, eos %u",
           tok.vocab_size, tok.eos_token_id);
    QCHECK(tok.merge_hash_table != NULL && tok.num_merges > 48000, "%u merges", tok.num_merges);
    const char *skipped[3] = {tok.vocab[tok.bos_token_id], tok.vocab[tok.eos_token_id],
                              tok.vocab[tok.pad_token_id]};

    size_t id_mismatch = 0, rt_mismatch = 0, total_ids = 0;
    for (size_t i = 0; i < nc; i++) {
        char *s = corpus[i];
        unescape(s);
        size_t len = strlen(s);
        /* expected ids */
        uint32_t cap = (uint32_t)(len + 8);
        uint32_t *want = malloc(sizeof(uint32_t) * cap);
        uint32_t nw = 0;
        for (char *p = idl[i + 1]; *p;) {
            char *end;
            unsigned long v = strtoul(p, &end, 10);
            if (end == p) break;
            if (nw < cap) want[nw] = (uint32_t)v;
            nw++;
            p = end;
        }
        uint32_t *got = malloc(sizeof(uint32_t) * cap);
        uint32_t ng = 0;
        q_error_code rc = q_tokenizer_encode(&tok, s, got, &ng, cap, add_bos, false);
        int same = rc == Q_OK && ng == nw && memcmp(got, want, sizeof(uint32_t) * ng) == 0;
        total_ids += ng;
        if (!same) {
            id_mismatch++;
            printf("ids differ for string %zu (rc %d, %u vs %u ids): \"%.80s\"\n", i, (int)rc, ng, nw, s);
        }
        /* round trip */
        size_t bufsize = len + 2;
        char *dec = malloc(bufsize);
        char *expect = malloc(len + 1);
        remove_all(s, skipped, 3, expect);
        rc = q_tokenizer_decode(&tok, got, ng, dec, bufsize);
        if (rc != Q_OK || strcmp(dec, expect) != 0) {
            rt_mismatch++;
            printf("round trip differs for string %zu (rc %d): \"%.80s\" -> \"%.80s\"\n", i, (int)rc, s,
                   rc == Q_OK ? dec : "");
        }
        free(dec);
        free(expect);
        free(want);
        free(got);
    }
    QCHECK(id_mismatch == 0, "ids identical to llama.cpp for %zu/%zu strings (%zu ids)", nc - id_mismatch, nc,
           total_ids);
    QCHECK(rt_mismatch == 0, "decode(encode(s)) == s for %zu/%zu strings", nc - rt_mismatch, nc);

    /* A too-small output buffer: error, nothing written past it. */
    uint32_t small[4] = {0, 0, 0, 0xDEADBEEF};
    uint32_t n = 77;
    QCHECK_CODE(q_tokenizer_encode(&tok, "The quick brown fox jumps over the lazy dog.", small, &n, 3, false, false),
                Q_ERR_ARENA_OOM);
    QCHECK(n == 77 && small[3] == 0xDEADBEEF, "nothing written on overflow");
    /* BOS/EOS requested explicitly: the model's ids. */
    uint32_t ids[8];
    QCHECK_CODE(q_tokenizer_encode(&tok, "Hi", ids, &n, 8, true, true), Q_OK);
    QCHECK(n == 3 && ids[0] == tok.bos_token_id && ids[2] == tok.eos_token_id, "add_bos/add_eos use the model's ids");

    /* The struct edited by the caller: encoding follows its fields (spec byte-level algorithm). */
    uint32_t saved = tok.num_merges;
    tok.num_merges = 0;
    QCHECK_CODE(q_tokenizer_encode(&tok, "Hi", ids, &n, 8, false, false), Q_OK);
    QCHECK(n == 2 && ids[0] == 'H' && ids[1] == 'i', "edited struct -> byte ids");
    tok.num_merges = saved;

    q_tokenizer_free(&tok);
    QCHECK(tok.vocab == NULL && tok.merge_hash_table == NULL && !tok.initialized, "freed and zeroed");
    q_tokenizer_free(&tok);
    free(corpus);
    free(idl);
    free(cbuf);
    free(ibuf);
    return qtest_summary("test_tokenizer_smollm2");
}
