// llamacpp_greedy.cpp: llama.cpp's greedy continuations through its C API (llama.h), as
// scripts/reference/make_greedy.py makes them with llama-cpp-python: each prompt prefilled as one
// batch into an empty cache, then one token per llama_decode, the next token the argmax of the
// logits (ties to the lowest id), until MAX_NEW tokens or EOS. Built and run by
// scripts/reference/make_gemma_references.py through llamacpp_tool.build_tool().
//
//   llamacpp_greedy MODEL N_CTX MAX_NEW THREADS < prompts.txt
//
// prompts.txt: one prompt per line, token ids separated by spaces. Output: per prompt one line
// "id id ... ; margin margin ..." (margin = top-1 minus top-2 logit at each step). F32 KV cache, no
// flash attention; AMX denied as in llamacpp_logits.cpp (llamacpp_amx.h).
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "llama.h"
#include "llamacpp_amx.h"

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s MODEL N_CTX MAX_NEW THREADS < prompts.txt\n", argv[0]);
        return 2;
    }
    const int n_ctx = atoi(argv[2]), max_new = atoi(argv[3]), threads = atoi(argv[4]);
    std::vector<std::vector<llama_token>> prompts;
    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream is(line);
        std::vector<llama_token> p;
        long t;
        while (is >> t) p.push_back((llama_token)t);
        if (!p.empty()) prompts.push_back(p);
    }
    if (!getenv("QORUS_LLAMACPP_ALLOW_AMX")) deny_amx_permission();
    llama_backend_init();
    llama_log_set([](enum ggml_log_level, const char *, void *) {}, nullptr);
    llama_model *model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    const llama_vocab *vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    const llama_token eos = llama_vocab_eos(vocab);
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_ctx;
    cp.n_ubatch = n_ctx;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "cannot create a context\n");
        return 1;
    }
    llama_batch batch = llama_batch_init(n_ctx, 0, 1);
    for (const auto &p : prompts) {
        llama_memory_clear(llama_get_memory(ctx), true);
        batch.n_tokens = 0;
        for (size_t i = 0; i < p.size(); i++) {
            batch.token[i] = p[i];
            batch.pos[i] = (llama_pos)i;
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i] = i + 1 == p.size();
            batch.n_tokens++;
        }
        if (llama_decode(ctx, batch) != 0) {
            fprintf(stderr, "decode failed\n");
            return 1;
        }
        std::vector<llama_token> out;
        std::vector<float> margins;
        llama_pos pos = (llama_pos)p.size();
        for (int s = 0; s < max_new; s++) {
            const float *lg = llama_get_logits_ith(ctx, -1);
            int best = 0;
            for (int v = 1; v < n_vocab; v++) if (lg[v] > lg[best]) best = v;
            float second = -1e30f;
            for (int v = 0; v < n_vocab; v++) if (v != best && lg[v] > second) second = lg[v];
            out.push_back(best);
            margins.push_back(lg[best] - second);
            if (best == eos || pos >= n_ctx) break;
            batch.n_tokens = 1;
            batch.token[0] = best;
            batch.pos[0] = pos++;
            batch.n_seq_id[0] = 1;
            batch.seq_id[0][0] = 0;
            batch.logits[0] = 1;
            if (llama_decode(ctx, batch) != 0) {
                fprintf(stderr, "decode failed\n");
                return 1;
            }
        }
        for (size_t i = 0; i < out.size(); i++) printf(i ? " %d" : "%d", out[i]);
        printf(" ;");
        for (float m : margins) printf(" %.6g", m);
        printf("\n");
    }
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
