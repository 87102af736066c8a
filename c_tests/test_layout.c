/* test_layout.c — every struct of the spec (qorus-c-api.md §2) has the exact size, alignment and
 * field offsets of the original; constants have their values; the header can be included twice. */
#include "qorus.h"
#include "qorus.h" /* included twice on purpose */
#include "qorus_types.h"

#include <stdalign.h>
#include <stddef.h>

#include "support/qtest.h"

#define OFF(T, f, o) _Static_assert(offsetof(T, f) == (o), #T "." #f " offset")
#define SIZE(T, s, a)                                                                              \
    _Static_assert(sizeof(T) == (s), #T " size");                                                  \
    _Static_assert(alignof(T) == (a), #T " alignment")

/* §2.1–2.3: enums are 4-byte integers */
_Static_assert(sizeof(q_error_code) == 4, "q_error_code size");
_Static_assert(sizeof(q_mmap_strategy) == 4, "q_mmap_strategy size");
_Static_assert(sizeof(q_dtype) == 4, "q_dtype size");

/* §2.4 */
SIZE(q_bpe_merge, 12, 4);
OFF(q_bpe_merge, token_id1, 0);
OFF(q_bpe_merge, token_id2, 4);
OFF(q_bpe_merge, merged_id, 8);

/* §2.5 */
SIZE(q_tokenizer, 56, 8);
OFF(q_tokenizer, vocab, 0);
OFF(q_tokenizer, vocab_size, 8);
OFF(q_tokenizer, merges, 16);
OFF(q_tokenizer, num_merges, 24);
OFF(q_tokenizer, merge_hash_table, 32);
OFF(q_tokenizer, bos_token_id, 40);
OFF(q_tokenizer, eos_token_id, 44);
OFF(q_tokenizer, pad_token_id, 48);
OFF(q_tokenizer, initialized, 52);

/* §2.6 */
SIZE(q_block_q4_0, 20, 1);
OFF(q_block_q4_0, qs, 0);
OFF(q_block_q4_0, scale, 16);

/* §2.7 */
SIZE(q_model_header, 64, 64);
OFF(q_model_header, magic, 0);
OFF(q_model_header, version, 4);
OFF(q_model_header, vocab_size, 8);
OFF(q_model_header, dim, 12);
OFF(q_model_header, hidden_dim, 16);
OFF(q_model_header, n_layers, 20);
OFF(q_model_header, n_heads, 24);
OFF(q_model_header, n_kv_heads, 28);
OFF(q_model_header, max_seq_len, 32);
OFF(q_model_header, rope_freq_base, 36);
OFF(q_model_header, rms_norm_eps, 40);
OFF(q_model_header, reserved, 44);
_Static_assert(sizeof(((q_model_header *)0)->reserved) == 20, "reserved is 5 words");

/* §2.8 */
SIZE(q_tensor, 128, 64);
OFF(q_tensor, data, 0);
OFF(q_tensor, scales, 8);
OFF(q_tensor, ne, 16);
OFF(q_tensor, nb, 32);
OFF(q_tensor, type, 64);
OFF(q_tensor, name, 68);
_Static_assert(sizeof(((q_tensor *)0)->name) == 32, "name is 32 chars");

/* §2.9 */
SIZE(q_context, 72, 8);
OFF(q_context, weights_mmap, 0);
OFF(q_context, weights_size, 8);
OFF(q_context, header, 16);
OFF(q_context, kv_buffer, 24);
OFF(q_context, kv_size, 32);
OFF(q_context, scratch_buffer, 40);
OFF(q_context, scratch_size, 48);
OFF(q_context, scratch_head, 56);
OFF(q_context, scratch_base_offset, 64);

/* §2.10 */
SIZE(q_llama_config, 36, 4);
OFF(q_llama_config, vocab_size, 0);
OFF(q_llama_config, dim, 4);
OFF(q_llama_config, hidden_dim, 8);
OFF(q_llama_config, n_layers, 12);
OFF(q_llama_config, n_heads, 16);
OFF(q_llama_config, n_kv_heads, 20);
OFF(q_llama_config, max_seq_len, 24);
OFF(q_llama_config, rope_freq_base, 28);
OFF(q_llama_config, rms_norm_eps, 32);

/* §2.11 */
SIZE(q_llama_layer, 80, 8);
OFF(q_llama_layer, layer_idx, 0);
OFF(q_llama_layer, attn_norm, 8);
OFF(q_llama_layer, wq, 16);
OFF(q_llama_layer, wk, 24);
OFF(q_llama_layer, wv, 32);
OFF(q_llama_layer, wo, 40);
OFF(q_llama_layer, ffn_norm, 48);
OFF(q_llama_layer, w_gate, 56);
OFF(q_llama_layer, w_up, 64);
OFF(q_llama_layer, w_down, 72);

/* §2.12 */
SIZE(q_llama_model, 112, 8);
OFF(q_llama_model, config, 0);
OFF(q_llama_model, token_embd, 40);
OFF(q_llama_model, output_norm, 48);
OFF(q_llama_model, output, 56);
OFF(q_llama_model, layers, 64);
OFF(q_llama_model, rope_freqs, 72);
OFF(q_llama_model, rope_cache_enabled, 80);
OFF(q_llama_model, rope_cos_cache, 88);
OFF(q_llama_model, rope_sin_cache, 96);
OFF(q_llama_model, ctx, 104);

/* §2.13 */
SIZE(q_generation_state, 72, 8);
OFF(q_generation_state, ctx, 0);
OFF(q_generation_state, model, 8);
OFF(q_generation_state, tokenizer, 16);
OFF(q_generation_state, prompt_tokens, 24);
OFF(q_generation_state, num_prompt_tokens, 32);
OFF(q_generation_state, generated_tokens, 40);
OFF(q_generation_state, num_generated_tokens, 48);
OFF(q_generation_state, max_tokens, 52);
OFF(q_generation_state, temperature, 56);
OFF(q_generation_state, top_k, 60);
OFF(q_generation_state, top_p, 64);
OFF(q_generation_state, current_pos, 68);

/* §3.7 (qorus addition) */
SIZE(q_batch_generation_state, 24, 8);
OFF(q_batch_generation_state, states, 0);
OFF(q_batch_generation_state, batch_size, 8);
OFF(q_batch_generation_state, shared_logits, 16);

/* §1 constants */
_Static_assert(Q_ALIGN == 64, "Q_ALIGN");
_Static_assert(Q_MAGIC == 0x514F5231, "Q_MAGIC");
_Static_assert(Q_HEADER_SIZE == 64, "Q_HEADER_SIZE");
_Static_assert(Q_FIRST_TENSOR_OFFSET == 64, "Q_FIRST_TENSOR_OFFSET");
_Static_assert(Q_ALIGN_SIZE(1) == 64 && Q_ALIGN_SIZE(64) == 64 && Q_ALIGN_SIZE(65) == 128, "Q_ALIGN_SIZE");
_Static_assert(Q_OK == 0 && Q_ERR_NULL_PTR == -1 && Q_ERR_FILE_OPEN == -2 && Q_ERR_FILE_STAT == -3 &&
                   Q_ERR_FILE_TOO_SMALL == -4 && Q_ERR_MMAP_FAILED == -5 && Q_ERR_INVALID_MAGIC == -6 &&
                   Q_ERR_ALLOC_FAILED == -7 && Q_ERR_ARENA_OOM == -8 && Q_ERR_INVALID_CONFIG == -9 &&
                   Q_ERR_INVALID_ARG == -10 && Q_ERR_ALIASING == -11 && Q_ERR_OVERFLOW == -12 &&
                   Q_ERR_MISALIGNED == -13 && Q_ERR_INVALID_DTYPE == -14 && Q_ERR_INVALID_SIZE == -15,
               "error codes");
_Static_assert(Q_MMAP_LAZY == 0 && Q_MMAP_EAGER == 1, "mmap strategies");
_Static_assert(Q_F32 == 0 && Q_Q8_0 == 1 && Q_Q4_0 == 2, "dtypes");

/* The tolerances are float constants (1e-5f, ...), as in the original's header. */
#define IS_FLOAT(x) _Generic((x), float: 1, default: 0)
_Static_assert(IS_FLOAT(Q_EPSILON_ABS_F32) && IS_FLOAT(Q_EPSILON_REL_F32) && IS_FLOAT(Q_EPSILON_ABS_APPROX) &&
                   IS_FLOAT(Q_EPSILON_REL_APPROX) && IS_FLOAT(Q_EPSILON_ABS_Q4_VAL) && IS_FLOAT(Q_EPSILON_REL_Q4_VAL),
               "Q_EPSILON_* are float");

/* The unprefixed names some code for the original uses. */
static llama_model *as_llama_model(q_llama_model *m) { return m; }
static llama_layer *as_llama_layer(q_llama_layer *l) { return l; }

/* The validation macros behave as the original's release build. */
static q_error_code validate_ptr(const void *p) {
    Q_VALIDATE_PTR_OR_RETURN(p, Q_ERR_INVALID_ARG);
    return Q_OK;
}
static q_error_code validate_multiple(unsigned v) {
    Q_VALIDATE_MULTIPLE_OR_RETURN(v, 8u, Q_ERR_INVALID_SIZE);
    return Q_OK;
}
static q_error_code validate_nonzero(unsigned v) {
    Q_VALIDATE_NONZERO_OR_RETURN(v, Q_ERR_INVALID_SIZE);
    return Q_OK;
}
static q_error_code validate_overflow(uint32_t a, uint32_t b) {
    Q_VALIDATE_NO_OVERFLOW_OR_RETURN(a, b);
    return Q_OK;
}

int main(void) {
    printf("static layout assertions: every struct of spec section 2 compiled\n");
    QCHECK(sizeof(q_tensor) == 128 && alignof(q_tensor) == 64, "q_tensor is 128 bytes, aligned 64");
    QCHECK(sizeof(q_model_header) == 64, "q_model_header is 64 bytes");
    QCHECK(sizeof(q_block_q4_0) == 20, "q_block_q4_0 is packed to 20 bytes");
    q_llama_model m;
    q_llama_layer l;
    QCHECK(as_llama_model(&m) == &m && as_llama_layer(&l) == &l, "llama_model/llama_layer aliases");
    int x = 0;
    QCHECK(validate_ptr(NULL) == Q_ERR_INVALID_ARG && validate_ptr(&x) == Q_OK, "Q_VALIDATE_PTR_OR_RETURN");
    QCHECK(validate_multiple(12) == Q_ERR_INVALID_SIZE && validate_multiple(16) == Q_OK,
           "Q_VALIDATE_MULTIPLE_OR_RETURN");
    QCHECK(validate_nonzero(0) == Q_ERR_INVALID_SIZE && validate_nonzero(3) == Q_OK,
           "Q_VALIDATE_NONZERO_OR_RETURN");
    QCHECK(validate_overflow(UINT32_MAX, 2) == Q_ERR_OVERFLOW && validate_overflow(1000, 1000) == Q_OK,
           "Q_VALIDATE_NO_OVERFLOW_OR_RETURN");
    QCHECK(Q_EPSILON_ABS_F32 == 1e-5f && Q_EPSILON_REL_F32 == 1e-4f && Q_EPSILON_ABS_APPROX == 2.5e-1f &&
               Q_EPSILON_REL_APPROX == 5e-1f && Q_EPSILON_ABS_Q4_VAL == 1e-2f && Q_EPSILON_REL_Q4_VAL == 5e-2f,
           "Q_EPSILON_* values (float)");
    /* release build: Q_ASSERT_ALIGNED expands to ((void)0) and does not evaluate its argument */
    int evaluated = 0;
    Q_ASSERT_ALIGNED((evaluated++, (void *)1));
    QCHECK(evaluated == 0, "Q_ASSERT_ALIGNED(p) does not evaluate p in a release build");
    return qtest_summary("test_layout");
}
