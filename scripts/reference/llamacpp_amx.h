// llamacpp_amx.h: shared by the llama.cpp reference tools (llamacpp_logits.cpp, llamacpp_greedy.cpp).
#pragma once

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

// ggml-cpu built with -march=native on a CPU that reports AMX uses its AMX kernels (an "extra
// buffer type") when arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) succeeds. In some sandboxes that
// call succeeds but the AMX kernels crash, and llama-cpp-python's builds (which made the committed
// reference files) have no AMX. So this tool makes that one call fail with EPERM (a seccomp
// filter), and ggml falls back to its AVX2/AVX-512 kernels and CPU weight repacking, as there.
static void deny_amx_permission() {
    const unsigned arch_req_xcomp_perm = 0x1023;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_arch_prctl, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch_req_xcomp_perm, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {(unsigned short)(sizeof f / sizeof f[0]), f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        perror("seccomp (AMX off)");
        exit(1);
    }
}

