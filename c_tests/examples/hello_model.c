/* hello_model.c — loads a model file (GGUF or .qorus) with q_init_memory and prints its header.
 *
 *   cc -std=c11 -Iinclude c_tests/examples/hello_model.c -Ltarget/release -lqorus -o hello_model
 *   ./hello_model ~/.cache/qorus/models/SmolLM2-135M-Instruct.Q4_1.gguf
 *
 * scripts/hello.sh does all of this (fetches the model and builds the library first). */
#include <stdio.h>
#include <string.h>

#include "qorus.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_FILE\n", argv[0]);
        return 2;
    }
    q_context ctx;
    memset(&ctx, 0, sizeof ctx);
    q_error_code rc = q_init_memory(&ctx, argv[1]);
    if (rc != Q_OK) {
        fprintf(stderr, "q_init_memory failed: %s (%d)\n  %s\n", q_strerror(rc), (int)rc, q_last_error());
        return 1;
    }
    const unsigned char *bytes = ctx.weights_mmap;
    const char *format = memcmp(bytes, "GGUF", 4) == 0 ? "GGUF" : ".qorus";
    const q_model_header *h = ctx.header;
    const unsigned head_dim = h->n_heads ? h->dim / h->n_heads : 0;

    printf("qorus %d.%d.%d\n", QORUS_VERSION_MAJOR, QORUS_VERSION_MINOR, QORUS_VERSION_PATCH);
    printf("file:           %s\n", argv[1]);
    printf("format:         %s, %zu bytes mapped\n", format, ctx.weights_size);
    printf("magic:          0x%08x%s\n", h->magic, h->magic == Q_MAGIC ? " (Q_MAGIC)" : "");
    printf("version:        %u\n", h->version);
    printf("vocab_size:     %u\n", h->vocab_size);
    printf("dim:            %u\n", h->dim);
    printf("hidden_dim:     %u\n", h->hidden_dim);
    printf("n_layers:       %u\n", h->n_layers);
    printf("n_heads:        %u (head_dim %u)\n", h->n_heads, head_dim);
    printf("n_kv_heads:     %u\n", h->n_kv_heads);
    printf("max_seq_len:    %u\n", h->max_seq_len);
    printf("rope_freq_base: %g\n", (double)h->rope_freq_base);
    printf("rms_norm_eps:   %g\n", (double)h->rms_norm_eps);
    q_free_memory(&ctx);
    return 0;
}
