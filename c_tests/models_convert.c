/* models_convert.c — run by tests/models.rs (not by tests/c_api.rs: it needs the SmolLM2 test
 * models, whose paths the Rust side passes in the environment). Every variant loads through
 * q_init_memory with SmolLM2's header, and q_convert_to_qorus / q_quantize_model remake the
 * pinned .qorus and Q8_0 files byte for byte. */
#include "qorus.h"

#include <stdlib.h>

#include "support/qtest.h"

static int same_file(const char *a, const char *b) {
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    int same = fa != NULL && fb != NULL;
    while (same) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb) same = 0;
        if (ca == EOF || cb == EOF) break;
    }
    if (fa) fclose(fa);
    if (fb) fclose(fb);
    return same;
}

static const char *env(const char *name) {
    const char *v = getenv(name);
    QCHECK(v != NULL, "%s is set", name);
    return v;
}

int main(void) {
    static const char *vars[] = {"QORUS_MODEL_Q4_1", "QORUS_MODEL_F16", "QORUS_MODEL_Q8_0",
                                 "QORUS_MODEL_Q4_0", "QORUS_MODEL_Q4_0_QORUS"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *path = env(vars[i]);
        if (!path) continue;
        q_context ctx;
        memset(&ctx, 0, sizeof ctx);
        QCHECK_CODE(q_init_memory(&ctx, path), Q_OK);
        const q_model_header *h = ctx.header;
        QCHECK(h != NULL && h->magic == Q_MAGIC && h->vocab_size == 49152 && h->dim == 576 &&
                   h->hidden_dim == 1536 && h->n_layers == 30 && h->n_heads == 9 && h->n_kv_heads == 3,
               "%s: SmolLM2-135M header", vars[i]);
        q_free_memory(&ctx);
    }

    const char *f16 = env("QORUS_MODEL_F16"), *q8 = env("QORUS_MODEL_Q8_0");
    const char *q4 = env("QORUS_MODEL_Q4_0"), *qorus = env("QORUS_MODEL_Q4_0_QORUS");
    if (f16 && q8 && q4 && qorus) {
        QCHECK_CODE(q_convert_to_qorus(q4, "models_convert.qorus"), Q_OK);
        QCHECK(same_file("models_convert.qorus", qorus), "q_convert_to_qorus remakes %s", qorus);
        QCHECK_CODE(q_quantize_model(f16, "models_convert.q8_0.gguf", Q_Q8_0, true), Q_OK);
        QCHECK(same_file("models_convert.q8_0.gguf", q8), "q_quantize_model remakes %s", q8);
        remove("models_convert.qorus");
        remove("models_convert.q8_0.gguf");
    }
    return qtest_summary("models_convert");
}
