/* test_strerror.c — q_strerror gives the original's text for every code and a valid string for any
 * other value; q_last_error explains the last failure. */
#include "qorus.h"

#include <limits.h>

#include "support/qtest.h"

int main(void) {
    static const struct {
        q_error_code code;
        const char *text;
    } table[] = {
        {Q_OK, "Success"},
        {Q_ERR_NULL_PTR, "Null pointer argument"},
        {Q_ERR_FILE_OPEN, "Failed to open file"},
        {Q_ERR_FILE_STAT, "Failed to stat file"},
        {Q_ERR_FILE_TOO_SMALL, "File too small (corrupt header?)"},
        {Q_ERR_MMAP_FAILED, "mmap() failed"},
        {Q_ERR_INVALID_MAGIC, "Invalid file magic (not a Qorus file)"},
        {Q_ERR_ALLOC_FAILED, "Memory allocation failed"},
        {Q_ERR_ARENA_OOM, "Arena Out of Memory"},
        {Q_ERR_INVALID_CONFIG, "Invalid model configuration"},
        {Q_ERR_INVALID_ARG, "Invalid argument"},
        {Q_ERR_ALIASING, "Input/output aliasing detected"},
        {Q_ERR_OVERFLOW, "Integer overflow detected"},
        {Q_ERR_MISALIGNED, "Pointer not properly aligned"},
        {Q_ERR_INVALID_DTYPE, "Invalid data type"},
        {Q_ERR_INVALID_SIZE, "Invalid size"},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const char *s = q_strerror(table[i].code);
        QCHECK(s != NULL && strcmp(s, table[i].text) == 0, "q_strerror(%d) = \"%s\"", (int)table[i].code,
               s ? s : "(null)");
        QCHECK(q_strerror(table[i].code) == s, "q_strerror(%d) returns the same pointer twice",
               (int)table[i].code);
    }
    /* Every value in -20..20 that is not a code, and the extremes, is "Unknown error". */
    const int unknown[] = {100, -100, INT_MIN, INT_MAX, 1, 20, -16, -20};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = q_strerror(unknown[i]);
        QCHECK(s != NULL && strcmp(s, "Unknown error") == 0, "q_strerror(%d) = \"%s\"", unknown[i],
               s ? s : "(null)");
    }
    for (int v = -20; v <= 20; v++) {
        const char *s = q_strerror(v);
        if (s == NULL || s[0] == '\0') {
            QCHECK(0, "q_strerror(%d) is a non-empty string", v);
        }
    }
    QCHECK(1, "q_strerror(-20..20) never NULL or empty");
    QCHECK(strcmp(q_strerror(Q_ERR_INTERNAL), "Unknown error") != 0, "Q_ERR_INTERNAL has its own text");

    /* q_last_error: never NULL; after a failure it names the function and the cause. */
    QCHECK(q_last_error() != NULL, "q_last_error() is never NULL");
    q_context ctx;
    memset(&ctx, 0, sizeof ctx);
    QCHECK_CODE(q_init_memory(&ctx, "/nonexistent/qorus/model.gguf"), Q_ERR_FILE_OPEN);
    const char *msg = q_last_error();
    QCHECK(msg != NULL && strstr(msg, "q_init_memory") != NULL && strstr(msg, "/nonexistent") != NULL,
           "q_last_error() = \"%s\"", msg ? msg : "(null)");
    return qtest_summary("test_strerror");
}
