/* reference_greedy.c — greedy continuations through q_generate against llama.cpp's
 * (tests/data/reference/greedy_<variant>.bin): for each prompt, the first 32 greedy ids.
 * Divergence is allowed only at a step where llama.cpp's own top-1/top-2 margin is below
 * QORUS_MARGIN (a near-tie that rounding-level differences can flip; llama.cpp itself flips such
 * steps between its batched and token-by-token runs), after which the sequences are no longer
 * comparable. Prints, per prompt, how many ids matched and the margin where they parted; at least
 * QORUS_MIN_MATCH of all ids must match before the first parting. */
#include <stdlib.h>

#include "qorus.h"
#include "support/qmodel.h"
#include "support/qref.h"
#include "support/qtest.h"

int main(void) {
    const char *path = qmodel_path("QORUS_TEST_MODEL");
    const char *refp = qmodel_path("QORUS_REFERENCE");
    if (!path || !refp) return 1;
    double margin_max = atof(getenv("QORUS_MARGIN") ? getenv("QORUS_MARGIN") : "0.1");
    qref_file ref;
    QCHECK(qref_load(refp, &ref) == 0, "reference %s loads (%u prompts)", refp, ref.n_prompts);
    q_context ctx;
    q_llama_model m;
    QCHECK_CODE(qmodel_open(&ctx, &m, path, 512, 64), Q_OK);
    q_tokenizer tok;
    QCHECK_CODE(q_tokenizer_load(&tok, path), Q_OK);
    QCHECK(tok.eos_token_id == ref.aux, "EOS %u == reference %u", tok.eos_token_id, ref.aux);
    uint32_t total = 0, matched = 0;
    for (uint32_t p = 0; p < ref.n_prompts; p++) {
        uint32_t np = ref.n_prompt[p], ng = ref.n_gen[p];
        uint32_t *prompt = malloc(np * sizeof(uint32_t)), out[64];
        for (uint32_t i = 0; i < np; i++) prompt[i] = (uint32_t)ref.prompt_ids[p][i];
        q_generation_state st;
        memset(&st, 0, sizeof st);
        st.ctx = &ctx;
        st.model = &m;
        st.tokenizer = &tok;
        st.prompt_tokens = prompt;
        st.num_prompt_tokens = np;
        st.generated_tokens = out;
        st.max_tokens = ref.top_k; /* max_new */
        QCHECK_CODE(q_generate(&st), Q_OK);
        uint32_t same = 0;
        while (same < ng && same < st.num_generated_tokens && out[same] == (uint32_t)ref.gen_ids[p][same]) same++;
        total += ng;
        matched += same;
        if (same == ng && st.num_generated_tokens == ng) {
            QCHECK(1, "prompt %u (%u tokens): all %u greedy ids equal llama.cpp's", p, np, ng);
        } else {
            float mg = same < ng ? ref.margins[p][same] : 0.0f;
            QCHECK(same < ng && mg < margin_max,
                   "prompt %u (%u tokens): %u of %u ids equal, then a near-tie (llama.cpp margin %.3f < %.2f)", p,
                   np, same, ng, mg, margin_max);
        }
        free(prompt);
    }
    double min_match = atof(getenv("QORUS_MIN_MATCH") ? getenv("QORUS_MIN_MATCH") : "0.6");
    QCHECK(matched >= min_match * total, "greedy ids equal to llama.cpp's before the first near-tie: %u of %u (>= %.0f %%)",
           matched, total, 100 * min_match);
    q_tokenizer_free(&tok);
    q_free_memory(&ctx);
    qref_free(&ref);
    return qtest_summary("reference_greedy");
}
