// llamacpp_tokenize.cpp: llama.cpp's tokenizer (llama_tokenize through llama.h) over many strings in
// one process (llama-tokenize loads the vocabulary once per string). Built and run by
// scripts/reference/make_gemma_tokenizer_reference.py through llamacpp_tool.build_tool().
//
//   llamacpp_tokenize MODEL < strings.hex > ids.txt
//
// strings.hex: one string per line, its bytes in hex (so that any byte, newline included, can be
// given). Each string is tokenized with add_special=true (BOS when the vocabulary adds it) and
// parse_special=true; one output line per input line, ids separated by spaces.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "llama.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL < strings.hex\n", argv[0]);
        return 2;
    }
    llama_backend_init();
    llama_log_set([](enum ggml_log_level, const char *, void *) {}, nullptr);
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    const llama_vocab *vocab = llama_model_get_vocab(model);
    std::string line;
    while (std::getline(std::cin, line)) {
        std::string text;
        for (size_t i = 0; i + 1 < line.size(); i += 2) {
            text.push_back((char)strtol(line.substr(i, 2).c_str(), nullptr, 16));
        }
        std::vector<llama_token> ids(text.size() + 8);
        int n = llama_tokenize(vocab, text.data(), (int32_t)text.size(), ids.data(), (int32_t)ids.size(), true, true);
        if (n < 0) {
            ids.resize(-n);
            n = llama_tokenize(vocab, text.data(), (int32_t)text.size(), ids.data(), (int32_t)ids.size(), true, true);
        }
        for (int i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    }
    llama_model_free(model);
    return 0;
}
