/* test_kernels.c — the public kernels of spec §3.3: results against naive C computations with the
 * spec's tolerances, the §8.2 dequantization vector, and every documented error path in order. */
#include "qorus.h"

#include <stdint.h>
#include <stdlib.h>

#include "support/qtest.h"

/* The spec's hybrid rule: absolute OR relative error within tolerance. */
static int close_to(double got, double want, double abs_tol, double rel_tol) {
    double e = fabs(got - want);
    return e <= abs_tol || e <= rel_tol * fabs(want);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    uint64_t v = rng_state * 0x2545F4914F6CDD1Dull;
    return (float)((double)(v >> 40) / (double)(1u << 24) * 2.0 - 1.0);
}

static void *xalloc(size_t bytes) { /* 64-byte aligned, zeroed */
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) {
        printf("allocation failed\n");
        exit(2);
    }
    memset(p, 0, bytes ? bytes : 64);
    return p;
}

static float block_value(const q_block_q4_0 *b, int j) {
    int code = (j % 2 == 0) ? (b->qs[j / 2] & 15) : (b->qs[j / 2] >> 4);
    float scale;
    memcpy(&scale, (const char *)b + 16, 4);
    return (float)(code - 8) * scale;
}

static q_tensor tensor2d(void *data, uint32_t rows, uint32_t cols, size_t row_stride, q_dtype type) {
    q_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.ne[0] = rows;
    t.ne[1] = cols;
    t.ne[2] = t.ne[3] = 1;
    t.nb[0] = row_stride;
    t.nb[1] = t.nb[2] = t.nb[3] = 4;
    t.type = type;
    return t;
}

static void test_dequantize(void) {
    q_block_q4_0 blk;
    for (int k = 0; k < 16; k++) blk.qs[k] = (uint8_t)(k | ((15 - k) << 4));
    blk.scale = 1.0f;
    float *out = xalloc(64 * sizeof(float));
    q_dequantize_q4_0_block_avx2_public(&blk, out);
    const float expect8[8] = {-8, 7, -7, 6, -6, 5, -5, 4};
    int ok = 1;
    for (int j = 0; j < 8; j++) ok &= out[j] == expect8[j];
    QCHECK(ok, "§8.2 vector: first eight values are -8 7 -7 6 -6 5 -5 4 (got %g %g %g %g %g %g %g %g)", out[0],
           out[1], out[2], out[3], out[4], out[5], out[6], out[7]);
    ok = 1;
    for (int j = 0; j < 32; j++) ok &= out[j] == block_value(&blk, j);
    QCHECK(ok, "§8.2 block: all 32 values equal (code-8)*scale");

    /* Random blocks, misaligned output (one float and one byte off), unaligned block address. */
    unsigned char raw[1 + 20];
    q_block_q4_0 *ub = (q_block_q4_0 *)(void *)(raw + 1);
    for (int trial = 0; trial < 4; trial++) {
        unsigned char tmp[20];
        for (int k = 0; k < 16; k++) tmp[k] = (unsigned char)((frand() + 1.0f) * 127.9f);
        float sc = frand() * 3.0f;
        memcpy(tmp + 16, &sc, 4);
        memcpy(raw + 1, tmp, 20);
        q_block_q4_0 ref;
        memcpy(&ref, tmp, 20);
        q_dequantize_q4_0_block_avx2_public(ub, out + 1);
        unsigned char bytes[4 * 32 + 1];
        q_dequantize_q4_0_block_avx2_public(ub, (float *)(void *)(bytes + 1));
        int ok1 = 1, ok2 = 1;
        for (int j = 0; j < 32; j++) {
            float v;
            memcpy(&v, bytes + 1 + 4 * j, 4);
            ok1 &= out[1 + j] == block_value(&ref, j);
            ok2 &= v == block_value(&ref, j);
        }
        QCHECK(ok1 && ok2, "random block %d: exact values at a 4-byte and a 1-byte misaligned output", trial);
    }
    for (int j = 0; j < 32; j++) out[j] = 123.0f;
    q_dequantize_q4_0_block_avx2_public(NULL, out);
    q_dequantize_q4_0_block_avx2_public(&blk, NULL);
    q_dequantize_q4_0_block_avx2_public(NULL, NULL);
    ok = 1;
    for (int j = 0; j < 32; j++) ok &= out[j] == 123.0f;
    QCHECK(ok, "NULL block or output: returns without writing");
    free(out);
}

static void test_gemv(void) {
    enum { M = 13, N = 96, NB = N / 32 };
    q_block_q4_0 *w = xalloc(sizeof(q_block_q4_0) * M * NB);
    float *x = xalloc(sizeof(float) * (N + 8));
    float *y = xalloc(sizeof(float) * (M + 8));
    for (int i = 0; i < M * NB; i++) {
        for (int k = 0; k < 16; k++) w[i].qs[k] = (uint8_t)((frand() + 1.0f) * 127.9f);
        w[i].scale = frand() * 0.1f;
    }
    for (int j = 0; j < N; j++) x[j] = frand();
    q_tensor t = tensor2d(w, M, N, NB * 20, Q_Q4_0);
    t.nb[1] = t.nb[2] = t.nb[3] = 20;
    QCHECK_CODE(q_gemv_q4_f32_avx2(&t, x, y), Q_OK);
    int ok = 1, tight = 1;
    for (int r = 0; r < M; r++) {
        double s = 0, m = 0;
        for (int c = 0; c < N; c++) {
            double p = (double)block_value(&w[r * NB + c / 32], c % 32) * x[c];
            s += p;
            m += fabs(p);
        }
        ok &= close_to(y[r], s, Q_EPSILON_ABS_Q4_VAL, Q_EPSILON_REL_Q4_VAL);
        tight &= fabs(y[r] - s) <= 1e-5 * m + 1e-7;
    }
    QCHECK(ok, "gemv %dx%d matches the naive product (Q4 tolerances)", M, N);
    QCHECK(tight, "gemv: error within 1e-5 of sum|w x| (f32 accumulation)");

    /* Error paths, in the documented order. */
    float *xm = x + 1; /* 4 bytes off a 64-byte boundary: misaligned */
    QCHECK_CODE(q_gemv_q4_f32_avx2(NULL, x, y), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_gemv_q4_f32_avx2(&t, NULL, y), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_gemv_q4_f32_avx2(&t, x, NULL), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_gemv_q4_f32_avx2(&t, xm, NULL), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_gemv_q4_f32_avx2(&t, xm, y), Q_ERR_MISALIGNED);
    QCHECK_CODE(q_gemv_q4_f32_avx2(&t, x, y + 1), Q_ERR_MISALIGNED);
    QCHECK_CODE(q_gemv_q4_f32_avx2(&t, xm, xm), Q_ERR_MISALIGNED);
    QCHECK_CODE(q_gemv_q4_f32_avx2(&t, x, x), Q_ERR_ALIASING);
    q_tensor bad = t;
    bad.ne[0] = 0;
    bad.type = Q_F32;
    QCHECK_CODE(q_gemv_q4_f32_avx2(&bad, x, x), Q_ERR_ALIASING);
    QCHECK_CODE(q_gemv_q4_f32_avx2(&bad, x, y), Q_ERR_INVALID_SIZE);
    bad = t;
    bad.ne[1] = 0;
    QCHECK_CODE(q_gemv_q4_f32_avx2(&bad, x, y), Q_ERR_INVALID_SIZE);
    bad.ne[1] = 48;
    bad.type = Q_F32;
    QCHECK_CODE(q_gemv_q4_f32_avx2(&bad, x, y), Q_ERR_INVALID_SIZE);
    bad = t;
    bad.type = Q_F32;
    QCHECK_CODE(q_gemv_q4_f32_avx2(&bad, x, y), Q_ERR_INVALID_DTYPE);
    bad.type = Q_Q8_0;
    QCHECK_CODE(q_gemv_q4_f32_avx2(&bad, x, y), Q_ERR_INVALID_DTYPE);
    bad = t;
    bad.ne[0] = 0xFFFFFFFFu;
    bad.ne[1] = 64;
    bad.nb[0] = 1; /* overflow is checked before the stride */
    QCHECK_CODE(q_gemv_q4_f32_avx2(&bad, x, y), Q_ERR_OVERFLOW);
    bad = t;
    bad.nb[0] = NB * 20 + 4;
    QCHECK_CODE(q_gemv_q4_f32_avx2(&bad, x, y), Q_ERR_INVALID_ARG);
    free(w);
    free(x);
    free(y);
}

/* Naive C = A*B with A (M x K, row stride lda floats), B(k, j) given by a function of the mode. */
static int check_matmul_result(const float *c, size_t ldc, const float *a, size_t lda, const float *b, int transposed,
                               size_t ldb, int M, int K, int N) {
    int ok = 1;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                double bv = transposed ? b[(size_t)j * K + k] : b[(size_t)k * ldb + j];
                s += (double)a[(size_t)i * lda + k] * bv;
            }
            ok &= close_to(c[(size_t)i * ldc + j], s, Q_EPSILON_ABS_F32, Q_EPSILON_REL_F32);
        }
    return ok;
}

static void test_matmul(void) {
    q_context ctx;
    memset(&ctx, 0, sizeof ctx);
    QCHECK_CODE(q_alloc_arena(&ctx, 1 << 20), Q_OK);

    /* Normal B with a 32-byte-multiple row stride and K % 8 != 0, K >= 32 (the original faults). */
    enum { M = 5, K = 37, N = 8 };
    float *a = xalloc(sizeof(float) * M * 40);
    float *b = xalloc(sizeof(float) * K * N);
    float *c = xalloc(sizeof(float) * M * 12);
    for (int i = 0; i < M * 40; i++) a[i] = frand();
    for (int i = 0; i < K * N; i++) b[i] = frand();
    q_tensor ta = tensor2d(a, M, K, 40 * 4, Q_F32);
    q_tensor tb = tensor2d(b, K, N, N * 4, Q_F32);
    q_tensor tc = tensor2d(c, M, N, 12 * 4, Q_F32);
    size_t head = ctx.scratch_head;
    QCHECK_CODE(q_matmul_f32_avx2(&ta, &tb, &tc, &ctx), Q_OK);
    QCHECK(check_matmul_result(c, 12, a, 40, b, 0, N, M, K, N), "normal B, K=%d (not a multiple of 8), padded A/C rows",
           K);
    QCHECK(ctx.scratch_head == head + ((N * K * 4 + 63) & ~(size_t)63),
           "normal B consumes A64(N*K*4) arena bytes (head %zu -> %zu)", head, ctx.scratch_head);

    /* Transposed B view ([K, N] with nb[0] = 4, nb[1] > 4): B(k, j) = data[j*K + k]; no arena. */
    float *bt = xalloc(sizeof(float) * N * K);
    for (int i = 0; i < N * K; i++) bt[i] = frand();
    q_tensor tbt = tensor2d(bt, K, N, 4, Q_F32);
    tbt.nb[1] = 4 * 1000; /* ignored for addressing: the column stride is K */
    head = ctx.scratch_head;
    QCHECK_CODE(q_matmul_f32_avx2(&ta, &tbt, &tc, &ctx), Q_OK);
    QCHECK(check_matmul_result(c, 12, a, 40, bt, 1, 0, M, K, N), "transposed B view");
    QCHECK(ctx.scratch_head == head, "transposed B uses no arena");
    q_context empty;
    memset(&empty, 0, sizeof empty);
    QCHECK_CODE(q_matmul_f32_avx2(&ta, &tbt, &tc, &empty), Q_OK);

    /* C aliasing A (square): computed into a temporary. */
    enum { S = 9 };
    float *sq = xalloc(sizeof(float) * S * S);
    float *sq0 = xalloc(sizeof(float) * S * S);
    float *sb = xalloc(sizeof(float) * S * S);
    for (int i = 0; i < S * S; i++) sq0[i] = sq[i] = frand(), sb[i] = frand();
    q_tensor tsq = tensor2d(sq, S, S, S * 4, Q_F32);
    q_tensor tsb = tensor2d(sb, S, S, S * 4, Q_F32);
    QCHECK_CODE(q_matmul_f32_avx2(&tsq, &tsb, &tsq, &ctx), Q_OK);
    QCHECK(check_matmul_result(sq, S, sq0, S, sb, 0, S, S, S, S), "C aliasing A gives A*B");

    /* Unaligned A with a row stride that is not a multiple of 32: allowed (no check). */
    enum { M2 = 3, K2 = 5, N2 = 2 };
    float *a2 = xalloc(sizeof(float) * 32);
    float *b2 = xalloc(sizeof(float) * K2 * N2);
    float *c2 = xalloc(sizeof(float) * M2 * N2);
    for (int i = 0; i < 32; i++) a2[i] = frand();
    for (int i = 0; i < K2 * N2; i++) b2[i] = frand();
    q_tensor ta2 = tensor2d(a2 + 1, M2, K2, K2 * 4, Q_F32);
    q_tensor tb2 = tensor2d(b2, K2, N2, N2 * 4, Q_F32);
    q_tensor tc2 = tensor2d(c2, M2, N2, N2 * 4, Q_F32);
    QCHECK_CODE(q_matmul_f32_avx2(&ta2, &tb2, &tc2, &ctx), Q_OK);
    QCHECK(check_matmul_result(c2, N2, a2 + 1, K2, b2, 0, N2, M2, K2, N2), "misaligned A with a 20-byte row stride");

    /* Error paths in order. */
    QCHECK_CODE(q_matmul_f32_avx2(NULL, &tb, &tc, &ctx), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_matmul_f32_avx2(&ta, NULL, &tc, &ctx), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_matmul_f32_avx2(&ta, &tb, NULL, &ctx), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_matmul_f32_avx2(&ta, &tb, &tc, NULL), Q_ERR_INVALID_ARG);
    q_tensor x = ta;
    x.ne[0] = 0;
    x.type = Q_Q4_0;
    QCHECK_CODE(q_matmul_f32_avx2(&x, &tb, &tc, &ctx), Q_ERR_INVALID_SIZE);
    x = ta;
    x.ne[1] = 0;
    QCHECK_CODE(q_matmul_f32_avx2(&x, &tb, &tc, &ctx), Q_ERR_INVALID_SIZE);
    x = tb;
    x.ne[1] = 0;
    QCHECK_CODE(q_matmul_f32_avx2(&ta, &x, &tc, &ctx), Q_ERR_INVALID_SIZE);
    x = tb;
    x.ne[0] = K + 1;
    QCHECK_CODE(q_matmul_f32_avx2(&ta, &x, &tc, &ctx), Q_ERR_INVALID_SIZE);
    x = tc;
    x.ne[0] = M + 1;
    QCHECK_CODE(q_matmul_f32_avx2(&ta, &tb, &x, &ctx), Q_ERR_INVALID_SIZE);
    x = tc;
    x.ne[1] = N + 1;
    QCHECK_CODE(q_matmul_f32_avx2(&ta, &tb, &x, &ctx), Q_ERR_INVALID_SIZE);
    x = ta;
    x.data = a + 1; /* row stride 160 is a multiple of 32: data must be aligned */
    x.type = Q_Q4_0;
    QCHECK_CODE(q_matmul_f32_avx2(&x, &tb, &tc, &ctx), Q_ERR_MISALIGNED);
    x = ta;
    x.type = Q_Q4_0;
    QCHECK_CODE(q_matmul_f32_avx2(&x, &tb, &tc, &ctx), Q_ERR_INVALID_DTYPE);
    x = tb;
    x.type = Q_Q8_0;
    QCHECK_CODE(q_matmul_f32_avx2(&ta, &x, &tc, &ctx), Q_ERR_INVALID_DTYPE);
    x = tc;
    x.type = 7;
    QCHECK_CODE(q_matmul_f32_avx2(&ta, &tb, &x, &ctx), Q_ERR_INVALID_DTYPE);
    x = ta;
    x.nb[0] = 32 * 4; /* < K floats */
    QCHECK_CODE(q_matmul_f32_avx2(&x, &tb, &tc, &ctx), Q_ERR_INVALID_SIZE);
    x = tbt;
    x.nb[1] = 8; /* transposed view with a column stride < K */
    QCHECK_CODE(q_matmul_f32_avx2(&ta, &x, &tc, &ctx), Q_ERR_INVALID_SIZE);
    x = tb;
    x.nb[0] = (N - 1) * 4; /* normal B with a row stride < N */
    QCHECK_CODE(q_matmul_f32_avx2(&ta, &x, &tc, &ctx), Q_ERR_INVALID_SIZE);
    x = tc;
    x.nb[0] = (N - 1) * 4;
    QCHECK_CODE(q_matmul_f32_avx2(&ta, &tb, &x, &ctx), Q_ERR_INVALID_SIZE);
    QCHECK_CODE(q_matmul_f32_avx2(&ta, &tb, &tc, &empty), Q_ERR_ARENA_OOM);
    q_context small;
    memset(&small, 0, sizeof small);
    QCHECK_CODE(q_alloc_arena(&small, 256), Q_OK);
    QCHECK_CODE(q_matmul_f32_avx2(&ta, &tb, &tc, &small), Q_ERR_ARENA_OOM);
    q_free_memory(&small);

    q_free_memory(&ctx);
    free(a), free(b), free(c), free(bt), free(sq), free(sq0), free(sb), free(a2), free(b2), free(c2);
}

static void test_causal_mask(void) {
    enum { n = 5, ld = 8 };
    float *s = xalloc(sizeof(float) * n * ld);
    for (int i = 0; i < n * ld; i++) s[i] = (float)i;
    q_tensor t = tensor2d(s, n, n, ld * 4, Q_F32);
    QCHECK_CODE(q_causal_mask_f32_avx2(&t, -1e9f), Q_OK);
    int ok = 1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < ld; j++) ok &= s[i * ld + j] == ((j > i && j < n) ? -1e9f : (float)(i * ld + j));
    QCHECK(ok, "strict upper triangle masked; diagonal, lower triangle and row padding untouched");
    q_tensor x = t;
    QCHECK_CODE(q_causal_mask_f32_avx2(NULL, 0.0f), Q_ERR_INVALID_ARG);
    x.data = NULL;
    x.ne[0] = 0;
    QCHECK_CODE(q_causal_mask_f32_avx2(&x, 0.0f), Q_ERR_INVALID_ARG);
    x = t;
    x.ne[0] = x.ne[1] = 0;
    QCHECK_CODE(q_causal_mask_f32_avx2(&x, 0.0f), Q_ERR_INVALID_SIZE);
    x = t;
    x.ne[1] = n + 1;
    x.type = Q_Q4_0;
    QCHECK_CODE(q_causal_mask_f32_avx2(&x, 0.0f), Q_ERR_INVALID_SIZE);
    x = t;
    x.type = Q_Q4_0;
    x.data = s + 1;
    QCHECK_CODE(q_causal_mask_f32_avx2(&x, 0.0f), Q_ERR_INVALID_DTYPE);
    x = t;
    x.data = s + 1;
    QCHECK_CODE(q_causal_mask_f32_avx2(&x, 0.0f), Q_ERR_MISALIGNED);
    x = t;
    x.ne[0] = x.ne[1] = 1;
    x.nb[0] = 0;
    QCHECK_CODE(q_causal_mask_f32_avx2(&x, 0.0f), Q_OK);
    x = t;
    x.nb[0] = (n - 1) * 4;
    QCHECK_CODE(q_causal_mask_f32_avx2(&x, 0.0f), Q_ERR_INVALID_SIZE);
    free(s);
}

static q_tensor tensor1d(float *data, uint32_t n) {
    q_tensor t = tensor2d(data, n, 1, (size_t)n * 4, Q_F32);
    return t;
}

static void test_add_mul(void) {
    enum { N = 13 };
    float *a = xalloc(64 * 4), *b = xalloc(64 * 4), *o = xalloc(64 * 4), *a0 = xalloc(64 * 4);
    for (int i = 0; i < N; i++) a0[i] = a[i] = frand() * 10, b[i] = frand() * 10;
    q_tensor ta = tensor1d(a, N), tb = tensor1d(b, N), to = tensor1d(o, N);
    int ok = 1;
    QCHECK_CODE(q_add_f32_avx2(&ta, &tb, &to), Q_OK);
    for (int i = 0; i < N; i++) ok &= o[i] == a[i] + b[i];
    QCHECK(ok, "add: exact element-wise sums");
    QCHECK_CODE(q_mul_f32_avx2(&ta, &tb, &to), Q_OK);
    ok = 1;
    for (int i = 0; i < N; i++) ok &= o[i] == a[i] * b[i];
    QCHECK(ok, "mul: exact element-wise products");
    QCHECK_CODE(q_add_f32_avx2(&ta, &tb, &ta), Q_OK);
    ok = 1;
    for (int i = 0; i < N; i++) ok &= a[i] == a0[i] + b[i];
    QCHECK(ok, "add with output aliasing a");
    memcpy(a0, b, N * 4); /* a0 now holds b */
    QCHECK_CODE(q_mul_f32_avx2(&ta, &tb, &tb), Q_OK);
    ok = 1;
    for (int i = 0; i < N; i++) ok &= b[i] == a[i] * a0[i];
    QCHECK(ok, "mul with output aliasing b");

    typedef q_error_code (*binop)(const q_tensor *, const q_tensor *, q_tensor *);
    binop ops[2] = {q_add_f32_avx2, q_mul_f32_avx2};
    const char *names[2] = {"add", "mul"};
    for (int k = 0; k < 2; k++) {
        binop f = ops[k];
        printf("-- %s error paths\n", names[k]);
        q_tensor x;
        QCHECK_CODE(f(NULL, &tb, &to), Q_ERR_INVALID_ARG);
        QCHECK_CODE(f(&ta, NULL, &to), Q_ERR_INVALID_ARG);
        QCHECK_CODE(f(&ta, &tb, NULL), Q_ERR_INVALID_ARG);
        x = tb;
        x.data = NULL;
        x.ne[1] = 2;
        QCHECK_CODE(f(&ta, &x, &to), Q_ERR_INVALID_ARG);
        x = to;
        x.data = NULL;
        QCHECK_CODE(f(&ta, &tb, &x), Q_ERR_INVALID_ARG);
        x = ta;
        x.ne[1] = 2;
        x.type = Q_Q4_0;
        QCHECK_CODE(f(&x, &tb, &to), Q_ERR_INVALID_SIZE);
        x = tb;
        x.ne[3] = 2;
        QCHECK_CODE(f(&ta, &x, &to), Q_ERR_INVALID_SIZE);
        x = tb;
        x.ne[0] = N - 1;
        x.type = Q_Q4_0;
        QCHECK_CODE(f(&ta, &x, &to), Q_ERR_INVALID_SIZE);
        x = to;
        x.ne[0] = N + 1;
        QCHECK_CODE(f(&ta, &tb, &x), Q_ERR_INVALID_SIZE);
        x = to;
        x.type = Q_Q4_0;
        x.nb[0] = 4;
        QCHECK_CODE(f(&ta, &tb, &x), Q_ERR_INVALID_DTYPE);
        x = ta;
        x.nb[0] = 4; /* what the library's own 1-D views carry */
        x.data = a + 1;
        QCHECK_CODE(f(&x, &tb, &to), Q_ERR_INVALID_SIZE);
        x = to;
        x.data = o + 1;
        QCHECK_CODE(f(&ta, &tb, &x), Q_ERR_MISALIGNED);
        q_tensor z1 = tensor1d(a, 0), z2 = tensor1d(b, 0), z3 = tensor1d(o, 0);
        QCHECK_CODE(f(&z1, &z2, &z3), Q_OK);
    }
    free(a), free(b), free(o), free(a0);
}

static void test_rmsnorm(void) {
    enum { N = 64 };
    float *x = xalloc(N * 4 + 64), *w = xalloc(N * 4 + 64), *o = xalloc(N * 4 + 64);
    for (int i = 0; i < N; i++) x[i] = frand() * 3, w[i] = frand();
    QCHECK_CODE(q_rmsnorm_f32_avx2(x, w, o, N, 1e-5f), Q_OK);
    double ss = 0;
    for (int i = 0; i < N; i++) ss += (double)x[i] * x[i];
    double r = 1.0 / sqrt(ss / N + 1e-5);
    int ok = 1;
    for (int i = 0; i < N; i++) ok &= close_to(o[i], x[i] * r * w[i], Q_EPSILON_ABS_F32, Q_EPSILON_REL_F32);
    QCHECK(ok, "rmsnorm N=%d: exact within the F32 tolerances (epsilon inside the root)", N);
    for (int i = 0; i < 8; i++) x[i] = 0.0f;
    QCHECK_CODE(q_rmsnorm_f32_avx2(x, w, o, 8, 0.25f), Q_OK);
    ok = 1;
    for (int i = 0; i < 8; i++) ok &= o[i] == 0.0f;
    QCHECK(ok, "rmsnorm of zeros is zero");
    QCHECK_CODE(q_rmsnorm_f32_avx2(x, w, x, N, 1e-5f), Q_OK);
    QCHECK_CODE(q_rmsnorm_f32_avx2(NULL, w, o, N, 1e-5f), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_rmsnorm_f32_avx2(x, NULL, o, N, 1e-5f), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_rmsnorm_f32_avx2(x + 1, w, NULL, N, 1e-5f), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_rmsnorm_f32_avx2(x + 1, w, o, N, 1e-5f), Q_ERR_MISALIGNED);
    QCHECK_CODE(q_rmsnorm_f32_avx2(x, w + 1, o, N, 1e-5f), Q_ERR_MISALIGNED);
    QCHECK_CODE(q_rmsnorm_f32_avx2(x, w, o + 1, 0, 1e-5f), Q_ERR_MISALIGNED);
    QCHECK_CODE(q_rmsnorm_f32_avx2(x, w, o, 0, 1e-5f), Q_ERR_INVALID_SIZE);
    QCHECK_CODE(q_rmsnorm_f32_avx2(x, w, o, 12, 1e-5f), Q_ERR_INVALID_SIZE);
    free(x), free(w), free(o);
}

static void test_rope(void) {
    enum { N = 24 };
    float *x = xalloc(N * 4 + 64), *c = xalloc(N * 4 + 64), *s = xalloc(N * 4 + 64), *o = xalloc(N * 4 + 64);
    for (int i = 0; i < N; i++) x[i] = frand() * 2;
    for (int i = 0; i < N / 2; i++) {
        float th = 0.3f * (float)i + 0.1f;
        c[2 * i] = c[2 * i + 1] = cosf(th);
        s[2 * i] = s[2 * i + 1] = sinf(th);
    }
    QCHECK_CODE(q_rope_f32_avx2(x, c, s, o, N), Q_OK);
    int ok = 1;
    for (int i = 0; i < N / 2; i++) {
        double e0 = (double)x[2 * i] * c[2 * i] - (double)x[2 * i + 1] * s[2 * i];
        double e1 = (double)x[2 * i + 1] * c[2 * i] + (double)x[2 * i] * s[2 * i];
        ok &= close_to(o[2 * i], e0, Q_EPSILON_ABS_F32, Q_EPSILON_REL_F32);
        ok &= close_to(o[2 * i + 1], e1, Q_EPSILON_ABS_F32, Q_EPSILON_REL_F32);
    }
    QCHECK(ok, "rope N=%d with duplicated tables", N);
    QCHECK_CODE(q_rope_f32_avx2(x, c, s, x, N), Q_OK);
    ok = 1;
    for (int i = 0; i < N; i++) ok &= x[i] == o[i];
    QCHECK(ok, "rope in place (x == output) gives the same values");
    QCHECK_CODE(q_rope_f32_avx2(NULL, c, s, o, N), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_rope_f32_avx2(x, NULL, s, o, N), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_rope_f32_avx2(x, c, NULL, o, N), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_rope_f32_avx2(x + 1, c, s, NULL, N), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_rope_f32_avx2(x + 1, c, s, o, N), Q_ERR_MISALIGNED);
    QCHECK_CODE(q_rope_f32_avx2(x, c + 1, s, o, N), Q_ERR_MISALIGNED);
    QCHECK_CODE(q_rope_f32_avx2(x, c, s + 1, o, N), Q_ERR_MISALIGNED);
    QCHECK_CODE(q_rope_f32_avx2(x, c, s, o + 1, 0), Q_ERR_MISALIGNED);
    QCHECK_CODE(q_rope_f32_avx2(x, c, s, o, 0), Q_ERR_INVALID_SIZE);
    QCHECK_CODE(q_rope_f32_avx2(x, c, s, o, 12), Q_ERR_INVALID_SIZE);
    QCHECK_CODE(q_rope_f32_avx2(x, c, s, o, 7), Q_ERR_INVALID_SIZE);
    free(x), free(c), free(s), free(o);
}

static void test_silu_softmax(void) {
    enum { N = 37 };
    float *x = xalloc(64 * 4), *o = xalloc(64 * 4);
    for (int i = 0; i < N; i++) x[i] = frand() * 12;
    x[0] = 3.0f;
    x[1] = -7.0f;
    QCHECK_CODE(q_silu_f32_avx2(x, o, N), Q_OK);
    int ok = 1;
    for (int i = 0; i < N; i++) ok &= close_to(o[i], x[i] / (1.0 + exp(-(double)x[i])), 0.0, 1e-6);
    QCHECK(ok, "silu N=%d: exact exponential (silu(3) = %.6f, silu(-7) = %.6g)", N, o[0], o[1]);
    /* N < 8: scalar path, no alignment requirement. */
    QCHECK_CODE(q_silu_f32_avx2(x + 1, o + 1, 5), Q_OK);
    QCHECK(close_to(o[1], -7.0 / (1.0 + exp(7.0)), 0.0, 1e-6), "silu N=5 at misaligned pointers");
    QCHECK_CODE(q_silu_f32_avx2(NULL, o, N), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_silu_f32_avx2(x, NULL, N), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_silu_f32_avx2(x + 1, o, 0), Q_ERR_INVALID_SIZE);
    QCHECK_CODE(q_silu_f32_avx2(x + 1, o, 8), Q_ERR_MISALIGNED);
    QCHECK_CODE(q_silu_f32_avx2(x, o + 1, N), Q_ERR_MISALIGNED);

    float *p = xalloc(64 * 4);
    x[2] = x[0] - 5.0f; /* far below the max: the polynomial exp would give exactly 0 */
    double m = -1e30, z = 0;
    for (int i = 0; i < N; i++) m = x[i] > m ? x[i] : m;
    for (int i = 0; i < N; i++) z += exp((double)x[i] - m);
    QCHECK_CODE(q_softmax_f32_avx2(x, p, N), Q_OK);
    ok = 1;
    double sum = 0;
    for (int i = 0; i < N; i++) ok &= close_to(p[i], exp((double)x[i] - m) / z, 1e-9, 1e-5), sum += p[i];
    QCHECK(ok, "softmax N=%d: exact exponential", N);
    QCHECK(fabs(sum - 1.0) < 1e-5 && p[2] > 0.0f, "softmax sums to 1 (%.8f) and keeps small probabilities (%g)", sum,
           p[2]);
    memcpy(o, x, N * 4);
    QCHECK_CODE(q_softmax_f32_avx2(o, o, N), Q_OK);
    ok = 1;
    for (int i = 0; i < N; i++) ok &= o[i] == p[i];
    QCHECK(ok, "softmax in place gives the same values");
    QCHECK_CODE(q_softmax_f32_avx2(x + 1, o + 1, 3), Q_OK);
    double z3 = 0, m3 = -1e30;
    for (int i = 1; i < 4; i++) m3 = x[i] > m3 ? x[i] : m3;
    for (int i = 1; i < 4; i++) z3 += exp((double)x[i] - m3);
    QCHECK(close_to(o[1], exp((double)x[1] - m3) / z3, 1e-9, 1e-5), "softmax N=3 at misaligned pointers");
    QCHECK_CODE(q_softmax_f32_avx2(NULL, o, N), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_softmax_f32_avx2(x, NULL, N), Q_ERR_INVALID_ARG);
    QCHECK_CODE(q_softmax_f32_avx2(x + 1, o, 0), Q_ERR_INVALID_SIZE);
    QCHECK_CODE(q_softmax_f32_avx2(x + 1, o, 8), Q_ERR_MISALIGNED);
    QCHECK_CODE(q_softmax_f32_avx2(x, o + 1, N), Q_ERR_MISALIGNED);
    free(x), free(o), free(p);
}

int main(void) {
    test_dequantize();
    test_gemv();
    test_matmul();
    test_causal_mask();
    test_add_mul();
    test_rmsnorm();
    test_rope();
    test_silu_softmax();
    return qtest_summary("test_kernels");
}
