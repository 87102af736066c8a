/* main.c — the consumer program of c_tests/cmake_consumer (also compiled with pkg-config flags by
 * tests/cmake_package.rs). It calls into qorus and checks that the library was linked the way the
 * build asked for: CONSUMER_EXPECT_SHARED=1 means libqorus.so.0 must be loaded at run time, 0 means
 * qorus is linked in statically and no libqorus shared object may be loaded. */
#define _GNU_SOURCE
#include <link.h>
#include <stdio.h>
#include <string.h>

#include "qorus.h"

#ifndef CONSUMER_EXPECT_SHARED
#error "define CONSUMER_EXPECT_SHARED to 0 or 1"
#endif

static int find_libqorus(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    if (info->dlpi_name != NULL && strstr(info->dlpi_name, "libqorus.so") != NULL) {
        *(const char **)data = info->dlpi_name;
        return 1;
    }
    return 0;
}

int main(void) {
    int failures = 0;

    const char *text = q_strerror(Q_ERR_FILE_OPEN);
    printf("qorus %d.%d.%d: q_strerror(Q_ERR_FILE_OPEN) = \"%s\"\n", QORUS_VERSION_MAJOR, QORUS_VERSION_MINOR,
           QORUS_VERSION_PATCH, text);
    if (text == NULL || strcmp(text, "Failed to open file") != 0) {
        failures++;
    }

    q_context ctx;
    memset(&ctx, 0, sizeof ctx);
    q_error_code rc = q_init_memory(&ctx, "/nonexistent/qorus-consumer/model.qorus");
    printf("q_init_memory(missing file) = %d (%s)\n", (int)rc, q_strerror(rc));
    if (rc != Q_ERR_FILE_OPEN || ctx.weights_mmap != NULL) {
        failures++;
    }
    q_free_memory(&ctx);

    const char *loaded = NULL;
    dl_iterate_phdr(find_libqorus, &loaded);
    printf("linkage: %s%s\n", loaded ? "shared, " : "static", loaded ? loaded : "");
    if ((loaded != NULL) != (CONSUMER_EXPECT_SHARED != 0)) {
        printf("FAIL: expected %s linkage\n", CONSUMER_EXPECT_SHARED ? "shared" : "static");
        failures++;
    }

    printf("%s\n", failures == 0 ? "consumer OK" : "consumer FAILED");
    return failures == 0 ? 0 : 1;
}
