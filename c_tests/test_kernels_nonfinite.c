/* test_kernels_nonfinite.c — every public kernel (spec §3.3) on +Inf, -Inf and NaN inputs (issue
 * 17). The expected values are what the original computes, derived from its implementation as
 * the spec describes it, except where the header documents a deliberate difference (softmax with
 * a NaN, SiLU of -Inf):
 * - softmax: +Inf elements share the probability equally, everything else (-Inf included) gets
 *   exactly 0; all -Inf: uniform; -Inf among finite values: 0; a NaN: every output NaN.
 * - SiLU: +Inf -> +Inf, -Inf -> -0 (its limit), NaN -> NaN.
 * - RMSNorm: an infinite mean of squares (an Inf element, squares overflowing, eps = Inf) or a
 *   NaN: every output NaN; an infinite gain: that element infinite only.
 * - dequantize, gemv, matmul, add, mul, RoPE: IEEE propagation of the original's formulas
 *   (0 * Inf = NaN, Inf - Inf = NaN, ...), in the original's order (gemv: weights dequantized
 *   first, so a code of 8 under an infinite scale is NaN); the causal mask writes any value. */
#include "qorus.h"

#include <float.h>
#include <stdint.h>
#include <stdlib.h>

#include "support/qtest.h"

static float *fbuf(size_t n) { /* 64-byte aligned */
    void *p = NULL;
    if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)) != 0) exit(2);
    memset(p, 0, (n ? n : 1) * sizeof(float));
    return p;
}

static int all_nan(const float *v, int n) {
    for (int i = 0; i < n; i++)
        if (!isnan(v[i])) return 0;
    return 1;
}

static void test_softmax(void) {
    float *x = fbuf(16), *o = fbuf(16);
    const float inf = INFINITY;
    /* one +Inf among finite values and a -Inf (vector path, N = 8) */
    float a[8] = {1, inf, 2, 3, -inf, 0, 5, 4};
    memcpy(x, a, sizeof a);
    QCHECK_CODE(q_softmax_f32_avx2(x, o, 8), Q_OK);
    int ok = o[1] == 1.0f;
    for (int i = 0; i < 8; i++) ok &= i == 1 || (o[i] == 0.0f && !signbit(o[i]));
    QCHECK(ok, "softmax N=8 with one +Inf: one-hot at it (%g %g %g ...)", o[0], o[1], o[2]);
    /* two +Inf (N = 16): equal shares */
    for (int i = 0; i < 16; i++) x[i] = (float)i - 8.0f;
    x[3] = inf;
    x[12] = inf;
    x[7] = -inf;
    QCHECK_CODE(q_softmax_f32_avx2(x, o, 16), Q_OK);
    ok = o[3] == 0.5f && o[12] == 0.5f;
    for (int i = 0; i < 16; i++) ok &= i == 3 || i == 12 || o[i] == 0.0f;
    QCHECK(ok, "softmax N=16 with two +Inf: 0.5 each, 0 elsewhere (-Inf included)");
    /* in place */
    QCHECK_CODE(q_softmax_f32_avx2(x, x, 16), Q_OK);
    QCHECK(x[3] == 0.5f && x[12] == 0.5f && x[0] == 0.0f, "softmax in place with +Inf");
    /* scalar path (N < 8, any alignment) */
    float s3[4] = {0, inf, 0, -inf}, so[4];
    QCHECK_CODE(q_softmax_f32_avx2(s3 + 1, so + 1, 3), Q_OK);
    QCHECK(so[1] == 1.0f && so[2] == 0.0f && so[3] == 0.0f, "softmax N=3 {+Inf, 0, -Inf} -> {1, 0, 0}");
    /* -Inf among finite values: probability exactly 0, the rest still sums to 1 */
    for (int i = 0; i < 8; i++) x[i] = 0.5f * (float)i;
    x[2] = -inf;
    x[5] = -inf;
    QCHECK_CODE(q_softmax_f32_avx2(x, o, 8), Q_OK);
    double sum = 0;
    for (int i = 0; i < 8; i++) sum += o[i];
    QCHECK(o[2] == 0.0f && o[5] == 0.0f && fabs(sum - 1.0) < 1e-6 && o[7] > o[6],
           "softmax with -Inf elements: 0 there, sum %.8f", sum);
    /* all -Inf: uniform */
    for (int i = 0; i < 8; i++) x[i] = -inf;
    QCHECK_CODE(q_softmax_f32_avx2(x, o, 8), Q_OK);
    ok = 1;
    for (int i = 0; i < 8; i++) ok &= o[i] == 0.125f;
    QCHECK(ok, "softmax of all -Inf: uniform 1/8");
    /* extreme finite values: no overflow, one-hot at the maximum */
    for (int i = 0; i < 8; i++) x[i] = 0;
    x[0] = FLT_MAX;
    x[1] = -FLT_MAX;
    QCHECK_CODE(q_softmax_f32_avx2(x, o, 8), Q_OK);
    QCHECK(o[0] == 1.0f && o[1] == 0.0f && o[2] == 0.0f, "softmax with +-FLT_MAX: one-hot, finite");
    /* a NaN: every output NaN (documented difference) */
    for (int i = 0; i < 8; i++) x[i] = (float)i;
    x[4] = NAN;
    QCHECK_CODE(q_softmax_f32_avx2(x, o, 8), Q_OK);
    QCHECK(all_nan(o, 8), "softmax with a NaN: every output NaN");
    x[4] = 4;
    x[0] = NAN;
    x[1] = inf;
    QCHECK_CODE(q_softmax_f32_avx2(x, o, 8), Q_OK);
    QCHECK(all_nan(o, 8), "softmax with a NaN and a +Inf: every output NaN");
    free(x);
    free(o);
}

static void test_silu(void) {
    float *x = fbuf(8), *o = fbuf(8);
    float v[8] = {INFINITY, -INFINITY, NAN, 0.0f, -100.0f, 100.0f, 1.0f, -1.0f};
    memcpy(x, v, sizeof v);
    QCHECK_CODE(q_silu_f32_avx2(x, o, 8), Q_OK);
    QCHECK(o[0] == INFINITY && o[1] == 0.0f && signbit(o[1]) && isnan(o[2]) && o[3] == 0.0f && o[4] == 0.0f &&
               o[5] == 100.0f && fabsf(o[6] - 0.7310586f) < 1e-6f && fabsf(o[7] + 0.2689414f) < 1e-6f,
           "silu N=8: +Inf -> +Inf, -Inf -> -0, NaN -> NaN, -100 -> -0, 100 -> 100 (%g %g %g)", o[0], o[1], o[2]);
    float s[3] = {-INFINITY, INFINITY, NAN}, so[3];
    QCHECK_CODE(q_silu_f32_avx2(s, so, 3), Q_OK);
    QCHECK(so[0] == 0.0f && signbit(so[0]) && so[1] == INFINITY && isnan(so[2]), "silu N=3 (scalar path): same");
    free(x);
    free(o);
}

static void test_rmsnorm(void) {
    float *x = fbuf(8), *w = fbuf(8), *o = fbuf(8);
    const float specials[] = {INFINITY, -INFINITY, NAN, 1e20f};
    const char *names[] = {"+Inf", "-Inf", "NaN", "1e20 (square overflows)"};
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < 8; i++) x[i] = (float)(i + 1), w[i] = 1.0f;
        x[3] = specials[k];
        QCHECK_CODE(q_rmsnorm_f32_avx2(x, w, o, 8, 1e-5f), Q_OK);
        QCHECK(all_nan(o, 8), "rmsnorm with x[3] = %s: every output NaN", names[k]);
    }
    for (int i = 0; i < 8; i++) x[i] = (float)(i + 1), w[i] = 1.0f;
    QCHECK_CODE(q_rmsnorm_f32_avx2(x, w, o, 8, INFINITY), Q_OK);
    QCHECK(all_nan(o, 8), "rmsnorm with eps = +Inf: every output NaN");
    QCHECK_CODE(q_rmsnorm_f32_avx2(x, w, o, 8, NAN), Q_OK);
    QCHECK(all_nan(o, 8), "rmsnorm with eps = NaN: every output NaN");
    w[2] = INFINITY;
    w[5] = NAN;
    QCHECK_CODE(q_rmsnorm_f32_avx2(x, w, o, 8, 1e-5f), Q_OK);
    QCHECK(o[2] == INFINITY && isnan(o[5]) && isfinite(o[0]) && isfinite(o[7]) && o[7] > o[0],
           "rmsnorm with gains +Inf and NaN: only those elements +Inf / NaN");
    for (int i = 0; i < 8; i++) x[i] = 0.0f, w[i] = 1.0f;
    QCHECK_CODE(q_rmsnorm_f32_avx2(x, w, o, 8, 0.0f), Q_OK);
    QCHECK(all_nan(o, 8), "rmsnorm of zeros with eps 0: 0/0, every output NaN");
    QCHECK_CODE(q_rmsnorm_f32_avx2(x, w, o, 8, 1e-5f), Q_OK);
    QCHECK(o[0] == 0.0f && o[7] == 0.0f, "rmsnorm of zeros with eps 1e-5: zeros");
    free(x);
    free(w);
    free(o);
}

static void test_elementwise(void) {
    float *a = fbuf(8), *b = fbuf(8), *o = fbuf(8);
    float av[8] = {INFINITY, INFINITY, -INFINITY, NAN, 1, 0, INFINITY, 2};
    float bv[8] = {-INFINITY, 1, -INFINITY, 1, NAN, INFINITY, 0, 3};
    memcpy(a, av, sizeof av);
    memcpy(b, bv, sizeof bv);
    q_tensor ta, tb, to;
    memset(&ta, 0, sizeof ta);
    ta.ne[0] = 8;
    ta.ne[1] = ta.ne[2] = ta.ne[3] = 1;
    ta.nb[0] = 32;
    ta.nb[1] = ta.nb[2] = ta.nb[3] = 32;
    ta.type = Q_F32;
    tb = ta;
    to = ta;
    ta.data = a;
    tb.data = b;
    to.data = o;
    QCHECK_CODE(q_add_f32_avx2(&ta, &tb, &to), Q_OK);
    QCHECK(isnan(o[0]) && o[1] == INFINITY && o[2] == -INFINITY && isnan(o[3]) && isnan(o[4]) && o[5] == INFINITY &&
               o[6] == INFINITY && o[7] == 5,
           "add: Inf + -Inf = NaN, Inf + 1 = Inf, -Inf + -Inf = -Inf, NaN propagates");
    QCHECK_CODE(q_mul_f32_avx2(&ta, &tb, &to), Q_OK);
    QCHECK(o[0] == -INFINITY && o[1] == INFINITY && o[2] == INFINITY && isnan(o[3]) && isnan(o[4]) && isnan(o[5]) &&
               isnan(o[6]) && o[7] == 6,
           "mul: Inf * -Inf = -Inf, 0 * Inf = NaN, NaN propagates");
    free(a);
    free(b);
    free(o);
}

static void test_rope(void) {
    float *x = fbuf(8), *c = fbuf(8), *s = fbuf(8), *o = fbuf(8);
    for (int i = 0; i < 8; i++) x[i] = 1, c[i] = 1, s[i] = 0;
    x[0] = INFINITY;        /* pair 0: (Inf, 1), angle 0 */
    x[2] = NAN;             /* pair 1: (NaN, 1) */
    c[4] = c[5] = INFINITY; /* pair 2: cos Inf */
    QCHECK_CODE(q_rope_f32_avx2(x, c, s, o, 8), Q_OK);
    QCHECK(o[0] == INFINITY && isnan(o[1]) && isnan(o[2]) && isnan(o[3]) && o[4] == INFINITY && o[5] == INFINITY &&
               o[6] == 1 && o[7] == 1,
           "rope: x0 = Inf at angle 0 -> (Inf, 1 + Inf*0 = NaN); NaN spreads to its pair; cos Inf -> Inf");
    free(x);
    free(c);
    free(s);
    free(o);
}

static void test_causal_mask(void) {
    float *m = fbuf(16);
    for (int i = 0; i < 16; i++) m[i] = (float)i;
    m[4] = NAN; /* (1, 0): lower triangle, untouched */
    q_tensor t;
    memset(&t, 0, sizeof t);
    t.data = m;
    t.ne[0] = t.ne[1] = 4;
    t.ne[2] = t.ne[3] = 1;
    t.nb[0] = 16;
    t.nb[1] = t.nb[2] = t.nb[3] = 4;
    t.type = Q_F32;
    QCHECK_CODE(q_causal_mask_f32_avx2(&t, -INFINITY), Q_OK);
    QCHECK(m[1] == -INFINITY && m[3] == -INFINITY && m[11] == -INFINITY && isnan(m[4]) && m[5] == 5 && m[15] == 15,
           "causal mask -Inf: upper triangle -Inf, the rest (a NaN included) untouched");
    QCHECK_CODE(q_causal_mask_f32_avx2(&t, NAN), Q_OK);
    QCHECK(isnan(m[1]) && isnan(m[14]) == 0 && isnan(m[11]) && m[10] == 10, "causal mask NaN: written as given");
    free(m);
}

static q_block_q4_0 block(uint8_t code, float scale) {
    q_block_q4_0 b;
    memset(b.qs, (uint8_t)(code | (code << 4)), 16);
    b.scale = scale;
    return b;
}

static void test_dequantize_gemv(void) {
    float *out = fbuf(32);
    q_block_q4_0 b = block(9, INFINITY);
    b.qs[0] = (uint8_t)(8 | (7 << 4)); /* element 0: code 8, element 1: code 7 */
    q_dequantize_q4_0_block_avx2_public(&b, out);
    QCHECK(isnan(out[0]) && out[1] == -INFINITY && out[2] == INFINITY, "dequantize, scale +Inf: 0*Inf = NaN, -Inf, +Inf");
    b = block(9, NAN);
    q_dequantize_q4_0_block_avx2_public(&b, out);
    QCHECK(all_nan(out, 32), "dequantize, scale NaN: all NaN");

    /* gemv: 4 rows of 32 inputs */
    q_block_q4_0 *w = malloc(4 * sizeof(q_block_q4_0));
    float *x = fbuf(32), *y = fbuf(8);
    for (int i = 0; i < 32; i++) x[i] = 1.0f;
    w[0] = block(9, INFINITY); /* all weights +Inf: +Inf */
    w[1] = block(9, INFINITY); /* one code 8 under Inf: NaN, as the original (not Inf) */
    w[1].qs[5] = (uint8_t)(9 | (8 << 4));
    w[2] = block(9, NAN);     /* NaN scale: NaN */
    w[3] = block(10, 0.5f);   /* finite: 32 * 2 * 0.5 = 32 */
    q_tensor t;
    memset(&t, 0, sizeof t);
    t.data = w;
    t.ne[0] = 4;
    t.ne[1] = 32;
    t.ne[2] = t.ne[3] = 1;
    t.nb[0] = 20;
    t.nb[1] = t.nb[2] = t.nb[3] = 20;
    t.type = Q_Q4_0;
    QCHECK_CODE(q_gemv_q4_f32_avx2(&t, x, y), Q_OK);
    QCHECK(y[0] == INFINITY && isnan(y[1]) && isnan(y[2]) && y[3] == 32.0f,
           "gemv with scales +Inf / +Inf with a code 8 / NaN / 0.5: %g %g %g %g", y[0], y[1], y[2], y[3]);
    /* finite weights, infinite inputs */
    w[0] = block(9, 1.0f);
    w[1] = block(8, 1.0f); /* zero weights */
    w[2] = block(9, 0.0f); /* zero scale */
    w[3] = block(7, 1.0f); /* negative weights */
    x[4] = INFINITY;
    QCHECK_CODE(q_gemv_q4_f32_avx2(&t, x, y), Q_OK);
    QCHECK(y[0] == INFINITY && isnan(y[1]) && isnan(y[2]) && y[3] == -INFINITY,
           "gemv with input +Inf: +Inf, 0*Inf = NaN (code 8 and scale 0), -Inf");
    x[4] = 1.0f;
    x[9] = -INFINITY;
    x[20] = INFINITY;
    QCHECK_CODE(q_gemv_q4_f32_avx2(&t, x, y), Q_OK);
    QCHECK(isnan(y[0]) && isnan(y[3]), "gemv with inputs +Inf and -Inf under equal weights: NaN");
    x[9] = 1.0f;
    x[20] = NAN;
    QCHECK_CODE(q_gemv_q4_f32_avx2(&t, x, y), Q_OK);
    QCHECK(all_nan(y, 4), "gemv with a NaN input: NaN");
    free(w);
    free(x);
    free(y);
    free(out);
}

static void test_matmul(void) {
    q_context ctx;
    memset(&ctx, 0, sizeof ctx);
    QCHECK_CODE(q_alloc_arena(&ctx, 1 << 16), Q_OK);
    float *a = fbuf(16), *b = fbuf(16), *c = fbuf(16);
    /* A 2x8, B 8x2 (identity in its first two rows), C 2x2 */
    for (int i = 0; i < 16; i++) a[i] = 1.0f, b[i] = 0.0f;
    a[0] = INFINITY;
    a[9] = NAN;
    b[0] = 1.0f; /* B(0,0) */
    b[3] = 1.0f; /* B(1,1) */
    q_tensor ta, tb, tc;
    memset(&ta, 0, sizeof ta);
    ta.type = Q_F32;
    ta.ne[2] = ta.ne[3] = 1;
    ta.nb[1] = ta.nb[2] = ta.nb[3] = 4;
    tb = ta;
    tc = ta;
    ta.data = a, ta.ne[0] = 2, ta.ne[1] = 8, ta.nb[0] = 32;
    tb.data = b, tb.ne[0] = 8, tb.ne[1] = 2, tb.nb[0] = 8;
    tc.data = c, tc.ne[0] = 2, tc.ne[1] = 2, tc.nb[0] = 8;
    QCHECK_CODE(q_matmul_f32_avx2(&ta, &tb, &tc, &ctx), Q_OK);
    QCHECK(c[0] == INFINITY && isnan(c[1]) && isnan(c[2]) && isnan(c[3]),
           "matmul: Inf*1 = Inf, Inf*0 = NaN, a NaN spreads over its row (%g %g %g %g)", c[0], c[1], c[2], c[3]);
    q_free_memory(&ctx);
    free(a);
    free(b);
    free(c);
}

int main(void) {
    test_softmax();
    test_silu();
    test_rmsnorm();
    test_elementwise();
    test_rope();
    test_causal_mask();
    test_dequantize_gemv();
    test_matmul();
    return qtest_summary("test_kernels_nonfinite");
}
