/* qref.h — readers for the llama.cpp reference files in tests/data/reference (format in
 * tests/data/README.md). */
#ifndef QREF_H
#define QREF_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint32_t n_tokens, n_full;
    int32_t *tokens;
    uint32_t *full_pos;
    float *full_logits; /* n_full x n_vocab */
    int32_t *top_ids;   /* n_tokens x top_k */
    float *top_vals;    /* n_tokens x top_k */
} qref_prompt;

typedef struct {
    uint32_t n_vocab, n_prompts, top_k; /* top_k: logits files; max_new: greedy files */
    uint32_t aux;                       /* n_full_total (logits) / eos_id (greedy) */
    char variant[17];
    qref_prompt *prompts;
    /* greedy files */
    uint32_t *n_prompt, *n_gen;
    int32_t **prompt_ids, **gen_ids;
    float **margins;
    unsigned char *blob;
} qref_file;

static unsigned char *qref_read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static uint32_t qref_u32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Loads a logits (`QRLG`) or greedy (`QRGR`) file; returns 0 on success. The arrays point into
 * `blob` (4-aligned offsets in a malloc'd buffer). */
static int qref_load(const char *path, qref_file *r) {
    memset(r, 0, sizeof *r);
    size_t len = 0;
    unsigned char *b = qref_read_all(path, &len);
    if (!b || len < 96) return -1;
    r->blob = b;
    int greedy = memcmp(b, "QRGR", 4) == 0;
    if (!greedy && memcmp(b, "QRLG", 4) != 0) return -1;
    r->n_vocab = qref_u32(b + 8);
    r->n_prompts = qref_u32(b + 12);
    r->top_k = qref_u32(b + 16);
    r->aux = qref_u32(b + 20);
    memcpy(r->variant, b + 32, 16);
    size_t off = 96 + 8 * (size_t)r->n_prompts;
    if (off > len) return -1;
    if (!greedy) {
        r->prompts = calloc(r->n_prompts, sizeof(qref_prompt));
        for (uint32_t i = 0; i < r->n_prompts; i++) {
            qref_prompt *p = &r->prompts[i];
            p->n_tokens = qref_u32(b + 96 + 8 * i);
            p->n_full = qref_u32(b + 96 + 8 * i + 4);
            size_t need = 4 * ((size_t)p->n_tokens + p->n_full + (size_t)p->n_full * r->n_vocab +
                               2 * (size_t)p->n_tokens * r->top_k);
            if (off + need > len) return -1;
            p->tokens = (int32_t *)(b + off);
            off += 4 * (size_t)p->n_tokens;
            p->full_pos = (uint32_t *)(b + off);
            off += 4 * (size_t)p->n_full;
            p->full_logits = (float *)(b + off);
            off += 4 * (size_t)p->n_full * r->n_vocab;
            p->top_ids = (int32_t *)(b + off);
            off += 4 * (size_t)p->n_tokens * r->top_k;
            p->top_vals = (float *)(b + off);
            off += 4 * (size_t)p->n_tokens * r->top_k;
        }
    } else {
        r->n_prompt = calloc(r->n_prompts, sizeof(uint32_t));
        r->n_gen = calloc(r->n_prompts, sizeof(uint32_t));
        r->prompt_ids = calloc(r->n_prompts, sizeof(int32_t *));
        r->gen_ids = calloc(r->n_prompts, sizeof(int32_t *));
        r->margins = calloc(r->n_prompts, sizeof(float *));
        for (uint32_t i = 0; i < r->n_prompts; i++) {
            r->n_prompt[i] = qref_u32(b + 96 + 8 * i);
            r->n_gen[i] = qref_u32(b + 96 + 8 * i + 4);
            size_t need = 4 * ((size_t)r->n_prompt[i] + 2 * (size_t)r->n_gen[i]);
            if (off + need > len) return -1;
            r->prompt_ids[i] = (int32_t *)(b + off);
            off += 4 * (size_t)r->n_prompt[i];
            r->gen_ids[i] = (int32_t *)(b + off);
            off += 4 * (size_t)r->n_gen[i];
            r->margins[i] = (float *)(b + off);
            off += 4 * (size_t)r->n_gen[i];
        }
    }
    return off == len ? 0 : -1;
}

static void qref_free(qref_file *r) {
    free(r->prompts);
    free(r->n_prompt);
    free(r->n_gen);
    free(r->prompt_ids);
    free(r->gen_ids);
    free(r->margins);
    free(r->blob);
    memset(r, 0, sizeof *r);
}
#endif
