/* numpy_ref_forward.c — run by tests/numpy_reference.rs: runs a prompt through llama_forward one
 * token per call and as one prefill, and writes the logits for the Rust side to compare with the
 * float64 NumPy reference.
 *
 *     numpy_ref_forward MODEL.gguf 1,2,3 OUT.f32
 *
 * OUT gets n+1 rows of vocab_size little-endian floats: the logits after each token-by-token
 * step, then the last-token logits of the one-call prefill. */
#include <stdio.h>
#include <stdlib.h>

#include "qorus.h"
#include "support/qmodel.h"
#include "support/qtest.h"

#define NCTX 128

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL TOKENS OUT\n", argv[0]);
        return 2;
    }
    uint32_t tokens[NCTX];
    uint32_t n = 0;
    for (char *p = argv[2]; *p && n < NCTX;) {
        char *end;
        tokens[n++] = (uint32_t)strtoul(p, &end, 10);
        if (end == p) break;
        p = *end == ',' ? end + 1 : end;
    }
    QCHECK(n > 0 && n < NCTX, "%u prompt tokens", n);

    q_context ctx;
    q_llama_model m;
    QCHECK_CODE(qmodel_open(&ctx, &m, argv[1], NCTX, 32), Q_OK);
    uint32_t V = m.config.vocab_size;
    QCHECK(V > 0, "vocab_size %u, dim %u, n_heads %u, n_kv_heads %u", V, m.config.dim, m.config.n_heads,
           m.config.n_kv_heads);
    float *out = calloc((size_t)(n + 1) * V, sizeof(float));
    if (out == NULL || qtest_failed) return qtest_summary("numpy_ref_forward");

    int ok = 1;
    for (uint32_t i = 0; i < n; i++) {
        q_arena_reset(&ctx);
        q_error_code rc = llama_forward(&m, &ctx, &tokens[i], 1, i, out + (size_t)i * V);
        if (rc != Q_OK) {
            QCHECK_CODE(rc, Q_OK);
            ok = 0;
            break;
        }
    }
    QCHECK(ok, "%u token-by-token calls", n);
    q_arena_reset(&ctx);
    QCHECK_CODE(llama_forward(&m, &ctx, tokens, n, 0, out + (size_t)n * V), Q_OK);
    float diff = qmodel_max_abs_diff(out + (size_t)(n - 1) * V, out + (size_t)n * V, V);
    QCHECK(diff == 0.0f, "prefill vs token-by-token: max |dlogit| = %g (bit-identical)", diff);

    FILE *f = fopen(argv[3], "wb");
    QCHECK(f != NULL, "open %s", argv[3]);
    if (f) {
        QCHECK(fwrite(out, sizeof(float), (size_t)(n + 1) * V, f) == (size_t)(n + 1) * V, "write logits");
        fclose(f);
    }
    free(out);
    llama_free_graph(&m);
    q_free_memory(&ctx);
    return qtest_summary("numpy_ref_forward");
}
