/* qtest.h — a tiny checking harness for the C tests: every check prints what it checks. */
#ifndef QTEST_H
#define QTEST_H
#include <math.h>
#include <stdio.h>
#include <string.h>

static int qtest_passed = 0;
static int qtest_failed = 0;

#define QCHECK(cond, ...)                                                                          \
    do {                                                                                           \
        if (cond) {                                                                                \
            qtest_passed++;                                                                        \
            printf("ok   ");                                                                       \
        } else {                                                                                   \
            qtest_failed++;                                                                        \
            printf("FAIL %s:%d: (%s) ", __FILE__, __LINE__, #cond);                                \
        }                                                                                          \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
    } while (0)

/* Checks that an expression returns the expected q_error_code, naming both on failure. */
#define QCHECK_CODE(expr, expected)                                                                \
    do {                                                                                           \
        q_error_code qtest_rc_ = (expr);                                                           \
        QCHECK(qtest_rc_ == (expected), "%s -> %d (%s), expected %d", #expr, (int)qtest_rc_,       \
               q_strerror(qtest_rc_), (int)(expected));                                            \
    } while (0)

/* Prints the closing line and returns the process exit status. */
static inline int qtest_summary(const char *name) {
    printf("%s: %d passed, %d failed\n", name, qtest_passed, qtest_failed);
    return qtest_failed == 0 ? 0 : 1;
}

#endif
