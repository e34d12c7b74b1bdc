/* SPDX-License-Identifier: MIT */
/* Content negotiation (Accept, Accept-Encoding), gzip round trip, the double formatter and the
 * UTF-8 sanitizer. */
#include <zlib.h>

#include "telemetry.h"
#include "testhelper.h"

static void check_accept(void)
{
    static const struct {
        const char *accept;
        bool om;
    } cases[] = {
        {NULL, false},
        {"", false},
        {"*/*", false},
        {"text/plain", false},
        {"application/openmetrics-text", true},
        {"application/openmetrics-text; version=1.0.0", true},
        {"application/openmetrics-text;version=0.0.1", false}, /* a version we do not speak */
        {"application/openmetrics-text; version=\"1.0.0\"; charset=utf-8", true},
        {"APPLICATION/OpenMetrics-Text", true},
        /* what Prometheus 2.42 sends */
        {"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
         "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
         true},
        {"text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.9", false},
        {"text/plain;q=0.5, application/openmetrics-text;q=0.5", false}, /* tie: text */
        {"application/openmetrics-text;q=0", false},
        {"application/openmetrics-text;q=0.3, */*;q=0.2", true},
        {"application/*", true}, /* accepts OM through the wildcard, text not at all */
        {"application/*;q=0.5, text/plain;q=0.1", true},
        {"text/*;q=0.9, application/openmetrics-text;q=0.8", false},
        {"application/openmetrics-text;q=abc", false},
        {"  application/openmetrics-text  ;  q=1  ", true},
        {",,,;;;==", false},
        {"application/json", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool got = tslab__accept_openmetrics(cases[i].accept);
        if (got != cases[i].om) {
            fprintf(stderr, "Accept: %s -> %s, expected %s\n",
                    cases[i].accept ? cases[i].accept : "(none)", got ? "OM" : "text",
                    cases[i].om ? "OM" : "text");
            test_count_failures(1);
        }
    }
}

static void check_accept_encoding(void)
{
    static const struct {
        const char *ae;
        bool gzip;
    } cases[] = {
        {NULL, false},
        {"", false},
        {"gzip", true},
        {"GZIP", true},
        {"x-gzip", true},
        {"deflate, gzip;q=1.0, *;q=0.5", true},
        {"gzip;q=0", false},
        {"*", true},
        {"*;q=0", false},
        {"gzip;q=0, *", false}, /* explicit refusal wins over the wildcard */
        {"identity", false},
        {"br, deflate", false},
        {"deflate, gzip;q=0.001", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool got = tslab__accept_gzip(cases[i].ae);
        if (got != cases[i].gzip) {
            fprintf(stderr, "Accept-Encoding: %s -> %d, expected %d\n",
                    cases[i].ae ? cases[i].ae : "(none)", got, cases[i].gzip);
            test_count_failures(1);
        }
    }
}

static void check_gzip(void)
{
    char in[20000];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = "tslab_allocations_total{allocator=\"x\"} 12345\n"[i % 46];
    char *gz;
    size_t gz_len;
    REQUIRE(tslab__gzip(in, sizeof in, &gz, &gz_len) == 0);
    CHECK(gz_len < sizeof in / 10);
    CHECK((unsigned char)gz[0] == 0x1f && (unsigned char)gz[1] == 0x8b); /* gzip magic */
    z_stream z = {0};
    REQUIRE(inflateInit2(&z, 15 + 16) == Z_OK);
    char back[sizeof in + 16];
    z.next_in = (Bytef *)gz;
    z.avail_in = (uInt)gz_len;
    z.next_out = (Bytef *)back;
    z.avail_out = sizeof back;
    CHECK_EQ_I(inflate(&z, Z_FINISH), Z_STREAM_END);
    CHECK_EQ_I(z.total_out, sizeof in);
    CHECK(memcmp(back, in, sizeof in) == 0);
    inflateEnd(&z);
    free(gz);
    REQUIRE(tslab__gzip("", 0, &gz, &gz_len) == 0); /* empty input: a valid empty member */
    CHECK(gz_len >= 18);
    free(gz);
}

static void check_double(void)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {{0, "0"},
                 {1.5, "1.5"},
                 {0.1, "0.1"},
                 {1e-05, "1e-05"},
                 {123456789, "123456789"},
                 {1.0 / 3, "0.3333333333333333"},
                 {1700000000.25, "1700000000.25"},
                 {9007199254740993.0, "9007199254740992"}, /* rounds: why counters are raw */
                 {-2.5, "-2.5"},
                 {10, "10"},
                 {100000, "100000"},
                 {123000000000, "123000000000"},
                 {0.00012, "0.00012"},
                 {1e20, "1e+20"},
                 {-1e6, "-1000000"},
                 {12.5, "12.5"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tslab__buf b;
        tslab__buf_init(&b, 4);
        tslab__buf_double(&b, cases[i].v);
        if (strcmp(b.data, cases[i].text) != 0) {
            fprintf(stderr, "double %.17g -> %s, expected %s\n", cases[i].v, b.data, cases[i].text);
            test_count_failures(1);
        }
        tslab__buf_free(&b);
    }
    tslab__buf b;
    tslab__buf_init(&b, 1);
    tslab__buf_double(&b, 1.0 / 0.0);
    tslab__buf_putc(&b, ' ');
    tslab__buf_double(&b, -1.0 / 0.0);
    tslab__buf_putc(&b, ' ');
    tslab__buf_double(&b, 0.0 / 0.0);
    CHECK(strcmp(b.data, "+Inf -Inf NaN") == 0);
    tslab__buf_free(&b);
}

static void plain(tslab__buf *b, const char *cp, size_t n) { tslab__buf_put(b, cp, n); }

static void check_utf8(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "plain"},
        {"caf\xc3\xa9", "caf\xc3\xa9"},                           /* valid 2-byte */
        {"\xe2\x82\xac", "\xe2\x82\xac"},                         /* valid 3-byte */
        {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},                 /* valid 4-byte */
        {"a\xffz", "a\xef\xbf\xbdz"},                             /* invalid byte */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {"\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd"},                 /* truncated */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tslab__buf b;
        tslab__buf_init(&b, 1);
        tslab__buf_utf8(&b, cases[i].in, strlen(cases[i].in), plain);
        CHECK(strcmp(b.data, cases[i].out) == 0);
        tslab__buf_free(&b);
    }
}

int main(void)
{
    check_accept();
    check_accept_encoding();
    check_gzip();
    check_double();
    check_utf8();
    return test_result("test_negotiate");
}
