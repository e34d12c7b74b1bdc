/* SPDX-License-Identifier: MIT */
/* A growable string for the renderers. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "telemetry.h"

void tslab__buf_init(tslab__buf *b, size_t initial)
{
    b->len = 0;
    b->cap = initial ? initial : 256;
    b->failed = false;
    b->data = malloc(b->cap);
    if (b->data == NULL) {
        b->cap = 0;
        b->failed = true;
    } else {
        b->data[0] = '\0';
    }
}

/* Room for n more bytes plus the NUL. */
static bool reserve(tslab__buf *b, size_t n)
{
    if (b->failed)
        return false;
    if (n < b->cap - b->len)
        return true;
    size_t want = b->len + n + 1;
    size_t cap = b->cap;
    while (cap < want) {
        if (cap > SIZE_MAX / 2) {
            b->failed = true;
            return false;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void tslab__buf_put(tslab__buf *b, const char *s, size_t n)
{
    if (!reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void tslab__buf_puts(tslab__buf *b, const char *s) { tslab__buf_put(b, s, strlen(s)); }

void tslab__buf_putc(tslab__buf *b, char c) { tslab__buf_put(b, &c, 1); }

void tslab__buf_u64(tslab__buf *b, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    tslab__buf_put(b, tmp, (size_t)n);
}

void tslab__buf_double(tslab__buf *b, double v)
{
    if (isnan(v)) {
        tslab__buf_puts(b, "NaN");
        return;
    }
    if (isinf(v)) {
        tslab__buf_puts(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char tmp[40];
    int n = 0, prec;
    for (prec = 1; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    /* %g switches to an exponent once the digits run out ("1e+01" for 10): print numbers of
     * ordinary magnitude positionally instead, with the same significant digits. */
    const char *e = strchr(tmp, 'e');
    if (e != NULL && fabs(v) >= 1e-4 && fabs(v) < 1e15) {
        int exp10 = atoi(e + 1);
        int decimals = prec - 1 - exp10;
        n = snprintf(tmp, sizeof tmp, "%.*f", decimals > 0 ? decimals : 0, v);
    }
    tslab__buf_put(b, tmp, (size_t)n);
}

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when it is not one (overlong forms,
 * surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void tslab__buf_utf8(tslab__buf *b, const char *s, size_t n, tslab__utf8_emit *emit)
{
    static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t len = utf8_len(u + i, n - i);
        if (len == 0) {
            emit(b, replacement, 3);
            i++;
        } else {
            emit(b, s + i, len);
            i += len;
        }
    }
}

int tslab__buf_finish(tslab__buf *b, char **out, size_t *out_len)
{
    if (b->failed) {
        tslab__buf_free(b);
        return -ENOMEM;
    }
    *out = b->data;
    *out_len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return 0;
}

void tslab__buf_free(tslab__buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
