// llamacpp_logits.cpp: llama.cpp's logits at every position of a set of prompts, through its C API
// (llama.h), configured as llama-cpp-python's Llama(n_ctx=512, n_batch=n_ubatch=N, logits_all=True)
// is by scripts/reference/make_reference_logits.py; for machines where llama-cpp-python is not
// installed but llama.cpp's static libraries are built. Build and run it with
// scripts/reference/llamacpp_tool.py (which knows where llama.cpp's build directory is).
//
//   llamacpp_logits MODEL OUT.f32 N_BATCH FLASH(0|1) KV(f32|f16) THREADS < prompts.txt
//
// prompts.txt: one prompt per line, token ids separated by spaces. OUT.f32 receives, for every prompt
// in order and every position, the n_vocab logits as little-endian float32. Each prompt starts with an
// empty KV cache and is decoded in batches of N_BATCH tokens (N_BATCH=1: token by token), every
// position's logits requested, as llama-cpp-python's Llama.eval does.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "llama.h"
#include "llamacpp_amx.h"

int main(int argc, char **argv) {
    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: %s MODEL OUT.f32 N_BATCH FLASH(0|1) KV(f32|f16) THREADS [N_CTX, default 512] < prompts.txt\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1];
    const char *out_path = argv[2];
    const int n_batch = atoi(argv[3]);
    const bool flash = atoi(argv[4]) != 0;
    const bool kv_f32 = strcmp(argv[5], "f32") == 0;
    const int threads = atoi(argv[6]);
    const int n_ctx = argc == 8 ? atoi(argv[7]) : 512;
    if (n_ctx < 1 || n_batch < 1 || n_batch > n_ctx || threads < 1) {
        fprintf(stderr, "bad N_BATCH or THREADS\n");
        return 2;
    }

    std::vector<std::vector<llama_token>> prompts;
    std::string line;
    for (int c; (c = getchar()) != EOF;) {
        if (c != '\n') {
            line.push_back((char)c);
            continue;
        }
        std::istringstream in(line);
        std::vector<llama_token> p;
        for (long t; in >> t;) p.push_back((llama_token)t);
        if (!p.empty()) prompts.push_back(p);
        line.clear();
    }

    if (!getenv("QORUS_LLAMACPP_ALLOW_AMX")) deny_amx_permission();
    llama_backend_init();
    llama_log_set([](enum ggml_log_level, const char *, void *) {}, nullptr);
    llama_model_params mp = llama_model_default_params();
    // Weight repacking ("extra buffer types") off when QORUS_LLAMACPP_NO_REPACK is set (a diagnosis).
    if (getenv("QORUS_LLAMACPP_NO_REPACK")) mp.use_extra_bufts = false;
    llama_model *model = llama_model_load_from_file(model_path, mp);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", model_path);
        return 1;
    }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    cp.n_ubatch = n_batch;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.flash_attn_type = flash ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k = kv_f32 ? GGML_TYPE_F32 : GGML_TYPE_F16;
    cp.type_v = kv_f32 ? GGML_TYPE_F32 : GGML_TYPE_F16;
    llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "cannot create a context\n");
        return 1;
    }
    FILE *out = fopen(out_path, "wb");
    if (!out) {
        fprintf(stderr, "cannot write %s\n", out_path);
        return 1;
    }
    llama_batch batch = llama_batch_init(n_batch, 0, 1);
    for (const auto &p : prompts) {
        if ((int)p.size() > n_ctx) {
            fprintf(stderr, "prompt of %zu tokens is longer than n_ctx\n", p.size());
            return 1;
        }
        llama_memory_clear(llama_get_memory(ctx), true);
        for (size_t i = 0; i < p.size(); i += (size_t)n_batch) {
            const int n = (int)std::min(p.size() - i, (size_t)n_batch);
            batch.n_tokens = n;
            for (int j = 0; j < n; j++) {
                batch.token[j] = p[i + j];
                batch.pos[j] = (llama_pos)(i + j);
                batch.n_seq_id[j] = 1;
                batch.seq_id[j][0] = 0;
                batch.logits[j] = 1;
            }
            if (llama_decode(ctx, batch) != 0) {
                fprintf(stderr, "llama_decode failed\n");
                return 1;
            }
            for (int j = 0; j < n; j++) {
                const float *l = llama_get_logits_ith(ctx, j);
                if (fwrite(l, sizeof(float), (size_t)n_vocab, out) != (size_t)n_vocab) {
                    fprintf(stderr, "write failed\n");
                    return 1;
                }
            }
        }
    }
    llama_batch_free(batch);
    fclose(out);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    fprintf(stderr, "llamacpp_logits: %zu prompts, n_vocab %d, n_batch %d, flash %d, kv %s, %d threads\n",
            prompts.size(), n_vocab, n_batch, (int)flash, kv_f32 ? "f32" : "f16", threads);
    return 0;
}
