/* qjson.h — a small strict JSON parser for the C tests (RFC 8259 syntax: objects, arrays,
 * strings with escapes, numbers, true/false/null), independent of qorus. qjson_parse returns 1
 * when the whole text is one JSON value (surrounding white space allowed). qjson_get finds a
 * top-level key of an object and returns a pointer to its value's text. */
#ifndef QJSON_H
#define QJSON_H
#include <ctype.h>
#include <string.h>

static const char *qjson_value(const char *p, int depth);

static const char *qjson_ws(const char *p) {
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') p++;
    return p;
}

static const char *qjson_string(const char *p) {
    if (*p != '"') return NULL;
    p++;
    while (*p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c == 0 || c < 0x20) return NULL;
        if (c == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)p[i])) return NULL;
                p += 5;
                continue;
            }
            if (!strchr("\"\\/bfnrt", *p) || *p == 0) return NULL;
        }
        p++;
    }
    return p + 1;
}

static const char *qjson_number(const char *p) {
    if (*p == '-') p++;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (isdigit((unsigned char)*p)) p++;
    } else {
        return NULL;
    }
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char)*p)) return NULL;
        while (isdigit((unsigned char)*p)) p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!isdigit((unsigned char)*p)) return NULL;
        while (isdigit((unsigned char)*p)) p++;
    }
    return p;
}

static const char *qjson_value(const char *p, int depth) {
    if (depth > 64) return NULL;
    p = qjson_ws(p);
    if (*p == '{') {
        p = qjson_ws(p + 1);
        if (*p == '}') return p + 1;
        for (;;) {
            p = qjson_string(qjson_ws(p));
            if (!p) return NULL;
            p = qjson_ws(p);
            if (*p != ':') return NULL;
            p = qjson_value(p + 1, depth + 1);
            if (!p) return NULL;
            p = qjson_ws(p);
            if (*p == '}') return p + 1;
            if (*p != ',') return NULL;
            p++;
        }
    }
    if (*p == '[') {
        p = qjson_ws(p + 1);
        if (*p == ']') return p + 1;
        for (;;) {
            p = qjson_value(p, depth + 1);
            if (!p) return NULL;
            p = qjson_ws(p);
            if (*p == ']') return p + 1;
            if (*p != ',') return NULL;
            p++;
        }
    }
    if (*p == '"') return qjson_string(p);
    if (!strncmp(p, "true", 4)) return p + 4;
    if (!strncmp(p, "false", 5)) return p + 5;
    if (!strncmp(p, "null", 4)) return p + 4;
    return qjson_number(p);
}

static int qjson_parse(const char *text) {
    const char *end = qjson_value(text, 0);
    return end != NULL && *qjson_ws(end) == 0;
}

/* The value text of top-level `key` in the object `text` (already validated), or NULL. */
static const char *qjson_get(const char *text, const char *key) {
    const char *p = qjson_ws(text);
    if (*p != '{') return NULL;
    p = qjson_ws(p + 1);
    size_t klen = strlen(key);
    while (*p == '"') {
        const char *kend = qjson_string(p);
        int match = (size_t)(kend - p - 2) == klen && strncmp(p + 1, key, klen) == 0;
        p = qjson_ws(qjson_ws(kend) + 1);
        if (match) return p;
        p = qjson_ws(qjson_value(p, 0));
        if (*p == ',') p = qjson_ws(p + 1);
    }
    return NULL;
}
#endif
