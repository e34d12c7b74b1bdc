/* SPDX-License-Identifier: MIT */
/* HTTP content negotiation for /metrics, and gzip (libmicrohttpd does not compress). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "telemetry.h"

/* One element of a comma-separated header list: "token[/token] *( ; key=value )". */
typedef struct range {
    const char *type; /* "text/plain", "*", "gzip"... (not NUL-terminated) */
    size_t type_len;
    double q; /* 1 unless a q parameter says otherwise */
    const char *version;
    size_t version_len; /* 0 when absent */
} range;

static bool is_space(char c) { return c == ' ' || c == '\t'; }

static const char *skip_space(const char *p)
{
    while (is_space(*p))
        p++;
    return p;
}

/* The token up to one of `stops` (or the end), without trailing spaces. */
static const char *token(const char *p, const char *stops, size_t *len)
{
    const char *start = p;
    while (*p != '\0' && strchr(stops, *p) == NULL)
        p++;
    const char *end = p;
    while (end > start && is_space(end[-1]))
        end--;
    *len = (size_t)(end - start);
    return p;
}

/* Parses the element at p into *r; returns the position after it (past its comma). */
static const char *parse_range(const char *p, range *r)
{
    *r = (range){.q = 1.0};
    p = skip_space(p);
    r->type = p;
    p = token(p, ",;", &r->type_len);
    while (*p == ';') {
        size_t klen, vlen;
        const char *key = skip_space(p + 1);
        p = token(key, ",;=", &klen);
        const char *value = "";
        vlen = 0;
        if (*p == '=') {
            value = skip_space(p + 1);
            p = token(value, ",;", &vlen);
            if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
                value++;
                vlen -= 2;
            }
        }
        if (klen == 1 && (key[0] == 'q' || key[0] == 'Q')) {
            char tmp[16];
            size_t n = vlen < sizeof tmp - 1 ? vlen : sizeof tmp - 1;
            memcpy(tmp, value, n);
            tmp[n] = '\0';
            char *end;
            double q = strtod(tmp, &end);
            /* RFC 9110: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) */
            r->q = (end == tmp || q < 0 || q != q) ? 0 : q > 1 ? 1 : q;
        } else if (klen == 7 && strncasecmp(key, "version", 7) == 0) {
            r->version = value;
            r->version_len = vlen;
        }
    }
    if (*p == ',')
        p++;
    return p;
}

static bool equals(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

/* How specifically range r names the media type `type` ("main/sub") with the acceptable
 * `version` (NULL: any): 3 exact, 2 "main/x", 1 "x/x", 0 no match. */
static int media_match(const range *r, const char *type, const char *version)
{
    if (equals(r->type, r->type_len, "*/*"))
        return 1;
    const char *slash = strchr(type, '/');
    size_t main_len = (size_t)(slash - type);
    if (r->type_len == main_len + 2 && strncasecmp(r->type, type, main_len + 1) == 0 &&
        r->type[main_len + 1] == '*')
        return 2;
    if (!equals(r->type, r->type_len, type))
        return 0;
    if (r->version_len != 0 && version != NULL && !equals(r->version, r->version_len, version))
        return 0;
    return 3;
}

/* The q the header gives the offer: that of its most specific matching range (the highest of
 * equally specific ones); 0 when nothing matches. */
static double media_q(const char *accept, const char *type, const char *version)
{
    int best = 0;
    double q = 0;
    for (const char *p = accept; *p != '\0';) {
        range r;
        p = parse_range(p, &r);
        int m = media_match(&r, type, version);
        if (m > best || (m == best && m > 0 && r.q > q)) {
            best = m;
            q = r.q;
        }
    }
    return q;
}

bool tslab__accept_openmetrics(const char *accept)
{
    if (accept == NULL)
        return false;
    double om = media_q(accept, "application/openmetrics-text", "1.0.0");
    double text = media_q(accept, "text/plain", "0.0.4");
    return om > 0 && om > text;
}

bool tslab__accept_gzip(const char *accept_encoding)
{
    if (accept_encoding == NULL)
        return false;
    double gzip = -1, any = -1;
    for (const char *p = accept_encoding; *p != '\0';) {
        range r;
        p = parse_range(p, &r);
        if (equals(r.type, r.type_len, "gzip") || equals(r.type, r.type_len, "x-gzip"))
            gzip = r.q > gzip ? r.q : gzip;
        else if (equals(r.type, r.type_len, "*"))
            any = r.q > any ? r.q : any;
    }
    return gzip >= 0 ? gzip > 0 : any > 0;
}

int tslab__gzip(const char *in, size_t n, char **out, size_t *out_len)
{
    if (n > UINT32_MAX) /* one deflate call; metrics are far smaller */
        return -EIO;
    z_stream z = {0};
    /* windowBits 15 + 16: a gzip wrapper instead of zlib's. Level 1: the text repeats itself so
     * much that more effort buys little and costs render time. */
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    uLong bound = deflateBound(&z, (uLong)n);
    char *buf = malloc(bound);
    if (buf == NULL) {
        deflateEnd(&z);
        return -ENOMEM;
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)buf;
    z.avail_out = (uInt)bound;
    int rc = deflate(&z, Z_FINISH);
    size_t len = (size_t)z.total_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        return -EIO;
    }
    *out = buf;
    *out_len = len;
    return 0;
}
