/* model_forward.c — llama_build_graph and llama_forward on SmolLM2-135M (GGUF, from the harness):
 * views as spec §3.4.1 describes, one prefill call == token-by-token calls, thread count does not
 * change the logits, every error path of spec §3.4.3 (with §5.3) returns its code and leaves the
 * context usable. */
#include <stdlib.h>

#include "qorus.h"
#include "support/qmodel.h"
#include "support/qtest.h"

#define NCTX 128
static const uint32_t prompt[] = {6403, 1980, 253, 655, 28, 665, 436, 253, 1345, 2240, 282, 23324};
#define NP (sizeof prompt / sizeof prompt[0])

int main(void) {
    const char *path = qmodel_path("QORUS_TEST_MODEL");
    if (!path) return 1;
    q_context ctx;
    q_llama_model m;
    QCHECK_CODE(qmodel_open(&ctx, &m, path, NCTX, 64), Q_OK);
    const q_llama_config *c = &m.config;
    uint32_t d = c->dim, h = c->hidden_dim, hd = d / c->n_heads, kvd = c->n_kv_heads * hd, V = c->vocab_size;
    QCHECK(d == 576 && h == 1536 && c->n_layers == 30 && c->n_heads == 9 && c->n_kv_heads == 3 && V == 49152,
           "config d=%u h=%u L=%u H=%u G=%u V=%u", d, h, c->n_layers, c->n_heads, c->n_kv_heads, V);
    QCHECK(c->max_seq_len == NCTX && c->rms_norm_eps > 0, "max_seq_len %u (set through ctx->header)", c->max_seq_len);
    QCHECK(m.ctx == &ctx && ctx.scratch_base_offset == ctx.scratch_head && ctx.scratch_head > 0,
           "model->ctx set, watermark at %zu", ctx.scratch_base_offset);
    QCHECK(m.token_embd && m.token_embd->ne[0] == V && m.token_embd->ne[1] == d, "token_embd view [%u, %u]",
           m.token_embd->ne[0], m.token_embd->ne[1]);
    QCHECK(m.output && m.output->data == m.token_embd->data, "tied output shares the embedding data");
    QCHECK(m.layers && m.layers[0].wq->ne[0] == d && m.layers[0].wq->ne[1] == d, "wq [d, d]");
    QCHECK(m.layers[29].layer_idx == 29 && m.layers[0].wk->ne[0] == kvd && m.layers[0].wk->ne[1] == d,
           "wk [kvd, d] ([out, in], spec §5.3)");
    QCHECK(m.layers[0].w_down->ne[0] == d && m.layers[0].w_down->ne[1] == h, "w_down [d, h]");
    QCHECK(m.layers[0].attn_norm->type == Q_F32 && m.layers[0].attn_norm->nb[0] == 4, "attn_norm is a 1-D F32 view");
    QCHECK(strcmp(m.layers[3].w_gate->name, "w_gate.weight") == 0, "view names as the original");
    QCHECK(m.rope_freqs && m.rope_freqs[0] == 1.0f && m.rope_cache_enabled && m.rope_cos_cache[2 * 5] == m.rope_cos_cache[2 * 5 + 1],
           "RoPE tables built, duplicated per pair");

    float *a = malloc(V * sizeof(float)), *b = malloc(V * sizeof(float)), *t = malloc(V * sizeof(float));
    /* one call for the whole prompt */
    q_arena_reset(&ctx);
    QCHECK_CODE(llama_forward(&m, &ctx, prompt, NP, 0, a), Q_OK);
    /* one call per token */
    for (uint32_t i = 0; i < NP; i++) {
        q_arena_reset(&ctx);
        q_error_code rc = llama_forward(&m, &ctx, &prompt[i], 1, i, b);
        if (rc != Q_OK) QCHECK_CODE(rc, Q_OK);
    }
    float diff = qmodel_max_abs_diff(a, b, V);
    QCHECK(diff == 0.0f, "prefill vs token-by-token: max |dlogit| = %g (bit-identical)", diff);
    int finite = 1;
    float lo = a[0], hi = a[0];
    for (uint32_t i = 0; i < V; i++) {
        if (!(a[i] == a[i]) || a[i] > 1e6f || a[i] < -1e6f) finite = 0;
        lo = a[i] < lo ? a[i] : lo;
        hi = a[i] > hi ? a[i] : hi;
    }
    QCHECK(finite && hi - lo > 1.0f, "logits finite and spread (min %g, max %g, argmax %u)", lo, hi, qmodel_argmax(a, V));

    /* thread count does not change the logits */
    QCHECK_CODE(q_set_num_threads(1), Q_OK);
    QCHECK(q_get_num_threads() == 1, "q_get_num_threads() == 1");
    q_arena_reset(&ctx);
    QCHECK_CODE(llama_forward(&m, &ctx, prompt, NP, 0, t), Q_OK);
    QCHECK(qmodel_max_abs_diff(a, t, V) == 0.0f, "1 thread gives bit-identical logits");
    QCHECK_CODE(q_set_num_threads(3), Q_OK);
    q_arena_reset(&ctx);
    QCHECK_CODE(llama_forward(&m, &ctx, prompt, NP, 0, t), Q_OK);
    QCHECK(qmodel_max_abs_diff(a, t, V) == 0.0f, "3 threads give bit-identical logits");
    QCHECK_CODE(q_set_num_threads(0), Q_OK);
    QCHECK_CODE(q_set_num_threads(100000), Q_ERR_INVALID_ARG);

    /* misaligned logits buffer works */
    char *raw = malloc(V * sizeof(float) + 8);
    q_arena_reset(&ctx);
    QCHECK_CODE(llama_forward(&m, &ctx, prompt, NP, 0, (float *)(raw + 2)), Q_OK);
    memcpy(t, raw + 2, V * sizeof(float));
    QCHECK(qmodel_max_abs_diff(a, t, V) == 0.0f, "misaligned logits buffer gets the same logits");
    free(raw);

    /* error paths (spec §3.4.3 order, §5.3 up-front checks) */
    q_arena_reset(&ctx);
    QCHECK_CODE(llama_forward(NULL, &ctx, prompt, 1, 0, t), Q_ERR_INVALID_ARG);
    QCHECK_CODE(llama_forward(&m, NULL, prompt, 1, 0, t), Q_ERR_INVALID_ARG);
    QCHECK_CODE(llama_forward(&m, &ctx, NULL, 1, 0, t), Q_ERR_INVALID_ARG);
    QCHECK_CODE(llama_forward(&m, &ctx, prompt, 1, 0, NULL), Q_ERR_INVALID_ARG);
    QCHECK_CODE(llama_forward(&m, &ctx, prompt, 0, 0, t), Q_ERR_INVALID_SIZE);
    uint32_t *many = calloc(NCTX + 1, sizeof(uint32_t));
    QCHECK_CODE(llama_forward(&m, &ctx, many, NCTX + 1, 0, t), Q_ERR_INVALID_SIZE);
    QCHECK_CODE(llama_forward(&m, &ctx, prompt, 1, NCTX, t), Q_ERR_INVALID_ARG);
    QCHECK_CODE(llama_forward(&m, &ctx, many, 8, NCTX - 4, t), Q_ERR_INVALID_ARG);
    uint32_t bad[2] = {5, V};
    QCHECK_CODE(llama_forward(&m, &ctx, bad, 2, 0, t), Q_ERR_INVALID_ARG);
    /* arena too small: leave 1 KiB free */
    size_t head = ctx.scratch_head;
    ctx.scratch_head = ctx.scratch_size - 1024;
    QCHECK_CODE(llama_forward(&m, &ctx, prompt, NP, 0, t), Q_ERR_ARENA_OOM);
    ctx.scratch_head = head;
    /* KV cache too small */
    size_t kv = ctx.kv_size;
    ctx.kv_size = kv / 2;
    QCHECK_CODE(llama_forward(&m, &ctx, prompt, NP, 0, t), Q_ERR_INVALID_SIZE);
    ctx.kv_size = kv;
    /* a changed configuration is refused rather than run with the wrong shapes */
    m.config.n_heads = 3;
    QCHECK_CODE(llama_forward(&m, &ctx, prompt, NP, 0, t), Q_ERR_INVALID_ARG);
    m.config.n_heads = 9;
    /* after all those failures the same context still computes the same logits */
    q_arena_reset(&ctx);
    QCHECK_CODE(llama_forward(&m, &ctx, prompt, NP, 0, t), Q_OK);
    QCHECK(qmodel_max_abs_diff(a, t, V) == 0.0f, "context still correct after failed calls");

    /* a second context with its own arena and KV cache, same model struct */
    q_context ctx2;
    memset(&ctx2, 0, sizeof ctx2);
    QCHECK_CODE(q_alloc_arena(&ctx2, 16 << 20), Q_OK);
    QCHECK_CODE(q_alloc_kv_cache(&ctx2, qmodel_kv_bytes(&m)), Q_OK);
    QCHECK_CODE(llama_forward(&m, &ctx2, prompt, NP, 0, t), Q_OK);
    QCHECK(qmodel_max_abs_diff(a, t, V) == 0.0f, "a second context gives the same logits");
    q_free_memory(&ctx2);

    /* build errors */
    q_llama_model m2;
    memset(&m2, 0, sizeof m2);
    QCHECK_CODE(llama_build_graph(NULL, &m2), Q_ERR_NULL_PTR);
    QCHECK_CODE(llama_build_graph(&ctx, NULL), Q_ERR_NULL_PTR);
    q_context empty;
    memset(&empty, 0, sizeof empty);
    QCHECK_CODE(llama_build_graph(&empty, &m2), Q_ERR_NULL_PTR);
    ctx.header->n_kv_heads = 4; /* 9 % 4 != 0 */
    QCHECK_CODE(llama_build_graph(&ctx, &m2), Q_ERR_INVALID_CONFIG);
    ctx.header->n_kv_heads = 3;
    ctx.header->magic = 0;
    QCHECK_CODE(llama_build_graph(&ctx, &m2), Q_ERR_INVALID_MAGIC);
    ctx.header->magic = Q_MAGIC;

    /* after llama_free_graph the model is refused; after q_free_memory too */
    llama_free_graph(&m);
    QCHECK(m.token_embd == NULL && m.ctx == NULL && m.config.dim == 0, "llama_free_graph clears the views");
    llama_free_graph(&m);
    llama_free_graph(NULL);
    QCHECK_CODE(llama_forward(&m, &ctx, prompt, 1, 0, t), Q_ERR_INVALID_SIZE);
    q_free_memory(&ctx);
    free(a);
    free(b);
    free(t);
    free(many);
    return qtest_summary("model_forward");
}
