/* The exporter's debug endpoints: off by default (404), /debug/pprof/heap a gzip-compressed
 * profile.proto that decodes to the allocations made (sampling every byte, so unscaled),
 * /debug/rejections the recorded bad frees with their call sites, both behind the bearer token
 * when one is set. Links the static library to decode the profile with
 * the generated protobuf-c code; -rdynamic so that dladdr names debug_alloc_site. */
#include <cJSON.h>
#include <zlib.h>

#include "profile.pb-c.h"
#include "telemetry.h"
#include "testhelper.h"
#include "testhttp.h"

void *debug_alloc_site(tslab *a);
TEST_NAMED_FRAME void *debug_alloc_site(tslab *a)
{
    void *p = tslab_malloc(a, 200);
    __asm__ volatile("" ::: "memory"); /* no tail call: this frame stays on the stack */
    return p;
}

static tslab_exporter *start(tslab *a, bool debug, const char *token)
{
    static tslab *list[1];
    list[0] = a;
    tslab_exporter_config c = {
        .allocators = list, .allocator_count = 1, .bearer_token = token, .debug_endpoints = debug};
    tslab_exporter *e = NULL;
    REQUIRE(tslab_exporter_start(&c, &e) == 0);
    return e;
}

/* gunzip of body[0..len) into a malloc'd buffer. */
static uint8_t *gunzip(const char *body, size_t len, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    REQUIRE(inflateInit2(&z, 16 + MAX_WBITS) == Z_OK);
    size_t cap = 1 << 20;
    uint8_t *out = malloc(cap);
    REQUIRE(out != NULL);
    z.next_in = (Bytef *)(uintptr_t)body;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    CHECK_EQ_I(inflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = z.total_out;
    inflateEnd(&z);
    return out;
}

static void test_heap_endpoint(void)
{
    tslab_config ac = {.name = "dbg", .sample_bytes = 1, .sample_seed = 1};
    tslab *a = tslab_create(&ac);
    REQUIRE(a != NULL);
    enum { N = 100 };
    void *p[N];
    for (int i = 0; i < N; i++)
        REQUIRE((p[i] = debug_alloc_site(a)) != NULL);
    for (int i = 0; i < N / 4; i++)
        CHECK(tslab_free_ptr(a, p[i]));

    /* Off unless enabled. */
    tslab_exporter *e = start(a, false, NULL);
    http_reply r;
    REQUIRE(http_get(tslab_exporter_port(e), "/debug/pprof/heap", &r) == 0);
    CHECK_EQ_I(r.status, 404);
    http_free(&r);
    tslab_exporter_stop(e);

    e = start(a, true, NULL);
    REQUIRE(http_get(tslab_exporter_port(e), "/debug/pprof/heap", &r) == 0);
    CHECK_EQ_I(r.status, 200);
    char v[128];
    CHECK(http_header(&r, "Content-Type", v, sizeof v) &&
          strcmp(v, "application/octet-stream") == 0);
    CHECK(r.body_len > 2 && (uint8_t)r.body[0] == 0x1f && (uint8_t)r.body[1] == 0x8b);
    size_t raw_len;
    uint8_t *raw = gunzip(r.body, r.body_len, &raw_len);
    Perftools__Profiles__Profile *pr = perftools__profiles__profile__unpack(NULL, raw_len, raw);
    REQUIRE(pr != NULL);
    CHECK(pr->n_string_table > 0 && strcmp(pr->string_table[0], "") == 0);
    static const char *const types[] = {"alloc_objects", "alloc_space", "inuse_objects",
                                        "inuse_space"};
    CHECK_EQ_I(pr->n_sample_type, 4);
    for (size_t i = 0; i < 4; i++)
        CHECK(strcmp(pr->string_table[pr->sample_type[i]->type], types[i]) == 0);
    CHECK(pr->n_mapping > 0);
    int64_t sum[4] = {0, 0, 0, 0};
    bool named = false;
    for (size_t i = 0; i < pr->n_sample; i++) {
        const Perftools__Profiles__Sample *s = pr->sample[i];
        CHECK_EQ_I(s->n_value, 4);
        for (size_t k = 0; k < 4; k++)
            sum[k] += s->value[k];
        /* The leaf is this file's allocating function. */
        REQUIRE(s->n_location_id > 0);
        const Perftools__Profiles__Location *l = pr->location[s->location_id[0] - 1];
        CHECK_EQ_I(l->id, s->location_id[0]);
        if (l->n_line == 1) {
            const Perftools__Profiles__Function *f = pr->function[l->line[0]->function_id - 1];
            named = named || strcmp(pr->string_table[f->name], "debug_alloc_site") == 0;
        }
    }
    CHECK(named);
    /* Every byte sampled (rate 1): counts are exact, not scaled. */
    CHECK_EQ_I(sum[0], N);
    CHECK_EQ_I(sum[1], N * 256);
    CHECK_EQ_I(sum[2], N - N / 4);
    CHECK_EQ_I(sum[3], (N - N / 4) * 256);
    perftools__profiles__profile__free_unpacked(pr, NULL);
    free(raw);
    http_free(&r);
    tslab_exporter_stop(e);

    /* Behind the token. */
    e = start(a, true, "tok");
    REQUIRE(http_get(tslab_exporter_port(e), "/debug/pprof/heap", &r) == 0);
    CHECK_EQ_I(r.status, 401);
    http_free(&r);
    REQUIRE(http_request(tslab_exporter_port(e), "GET", "/debug/pprof/heap",
                         "Authorization: Bearer tok\r\n", &r) == 0);
    CHECK_EQ_I(r.status, 200);
    http_free(&r);
    tslab_exporter_stop(e);

    for (int i = N / 4; i < N; i++)
        CHECK(tslab_free_ptr(a, p[i]));
    tslab_destroy(a);
}

bool debug_bad_free_site(tslab *a, void *p);
TEST_NAMED_FRAME bool debug_bad_free_site(tslab *a, void *p)
{
    bool r = tslab_free_ptr(a, p);
    __asm__ volatile("" ::: "memory");
    return r;
}

static void test_rejections_endpoint(void)
{
    tslab_config ac = {.name = "rej"};
    tslab *a = tslab_create(&ac);
    REQUIRE(a != NULL);
    char *p = tslab_malloc(a, 100);
    REQUIRE(p != NULL);
    CHECK(tslab_free_ptr(a, p));
    CHECK(!debug_bad_free_site(a, p));     /* double */
    CHECK(!debug_bad_free_site(a, p + 1)); /* interior */

    tslab_exporter *e = start(a, false, NULL);
    http_reply r;
    REQUIRE(http_get(tslab_exporter_port(e), "/debug/rejections", &r) == 0);
    CHECK_EQ_I(r.status, 404);
    http_free(&r);
    tslab_exporter_stop(e);

    e = start(a, true, "tok");
    REQUIRE(http_get(tslab_exporter_port(e), "/debug/rejections", &r) == 0);
    CHECK_EQ_I(r.status, 401);
    http_free(&r);
    REQUIRE(http_request(tslab_exporter_port(e), "GET", "/debug/rejections",
                         "Authorization: Bearer tok\r\n", &r) == 0);
    CHECK_EQ_I(r.status, 200);
    char v[128];
    CHECK(http_header(&r, "Content-Type", v, sizeof v) && strcmp(v, "application/json") == 0);
    cJSON *root = cJSON_Parse(r.body);
    REQUIRE(root != NULL);
    cJSON *al = cJSON_GetObjectItemCaseSensitive(root, "allocators");
    REQUIRE(cJSON_GetArraySize(al) == 1);
    cJSON *a0 = cJSON_GetArrayItem(al, 0);
    CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(a0, "name")->valuestring, "rej") == 0);
    cJSON *list = cJSON_GetObjectItemCaseSensitive(a0, "rejections");
    REQUIRE(cJSON_GetArraySize(list) == 2);
    static const char *const reasons[] = {"double", "invalid"};
    for (int i = 0; i < 2; i++) {
        cJSON *j = cJSON_GetArrayItem(list, i);
        CHECK_EQ_I(cJSON_GetObjectItemCaseSensitive(j, "seq")->valuedouble, i + 1);
        CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(j, "reason")->valuestring, reasons[i]) == 0);
        CHECK_EQ_I(cJSON_GetObjectItemCaseSensitive(j, "class")->valuedouble, 128);
        char want[32];
        snprintf(want, sizeof want, "0x%llx", (unsigned long long)(uintptr_t)(p + i));
        CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(j, "pointer")->valuestring, want) == 0);
        cJSON *f0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "stack"), 0);
        REQUIRE(f0 != NULL);
        cJSON *fn = cJSON_GetObjectItemCaseSensitive(f0, "function");
        CHECK(cJSON_IsString(fn) && strcmp(fn->valuestring, "debug_bad_free_site") == 0);
    }
    cJSON_Delete(root);
    http_free(&r);
    tslab_exporter_stop(e);
    tslab_destroy(a);
}

int main(void)
{
    test_heap_endpoint();
    test_rejections_endpoint();
    return test_result("test_debug");
}
