/* noamx_exec.c — runs a program with arch_prctl(ARCH_REQ_XCOMP_PERM) failing with EPERM (a seccomp
 * filter, kept across exec), so llama.cpp's ggml-cpu built with -march=native on a CPU that reports
 * AMX falls back to its AVX2/AVX-512 kernels instead of crashing in sandboxes where the AMX
 * permission call succeeds but the AMX kernels do not run (the filter of
 * scripts/reference/llamacpp_amx.h, shared with the llama.cpp reference tools). compare.sh builds it and runs llama-bench through it on
 * such CPUs.
 *
 * usage: noamx_exec PROGRAM [ARGS...] */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../reference/llamacpp_amx.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s PROGRAM [ARGS...]\n", argv[0]);
        return 2;
    }
    deny_amx_permission();
    execv(argv[1], argv + 1);
    perror(argv[1]);
    return 127;
}
