/* SPDX-License-Identifier: MIT */
/* Concurrent scrapes while two threads churn: every counter series is monotonic in each
 * scraper's view, live_objects = allocations - frees in every snapshot and never exceeds what the
 * churners can hold, and once the churners stop the counters equal their own exact counts. */
#include <pthread.h>
#include <stdatomic.h>

#include "tslab.h"
#include "tslab_telemetry.h"
#include "testhelper.h"
#include "testhttp.h"

#define CHURNERS 2
#define HOLD 2000   /* objects a churner holds at most */
#define SCRAPES 200 /* per scraper */
#define SERIES_MAX 512

static const uint32_t sizes[] = {64, 128, 256};
#define NCLASSES 3

static tslab *alloc;
static atomic_bool stop;
static uint16_t port;

typedef struct churner {
    pthread_t thread;
    uint64_t rng;
    uint64_t allocations[NCLASSES];
} churner;

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *churn(void *arg)
{
    churner *c = arg;
    static _Thread_local struct {
        void *p;
        tslab_handle h; /* 0: allocated with tslab_malloc */
    } held[HOLD];
    size_t n = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        if (n == HOLD || (n > 0 && (rnd(&c->rng) & 1))) {
            size_t i = rnd(&c->rng) % n;
            bool ok = held[i].h ? tslab_free(alloc, held[i].h) : tslab_free_ptr(alloc, held[i].p);
            REQUIRE(ok);
            held[i] = held[--n];
            continue;
        }
        unsigned k = (unsigned)(rnd(&c->rng) % NCLASSES);
        size_t size = sizes[k] - (rnd(&c->rng) % 8);
        tslab_handle h = 0;
        void *p = (rnd(&c->rng) & 1) ? tslab_alloc(alloc, size, &h) : tslab_malloc(alloc, size);
        REQUIRE(p != NULL);
        held[n].p = p;
        held[n].h = h;
        n++;
        c->allocations[k]++;
    }
    while (n > 0) {
        n--;
        REQUIRE(held[n].h ? tslab_free(alloc, held[n].h) : tslab_free_ptr(alloc, held[n].p));
    }
    return NULL;
}

typedef struct series {
    char name[160];
    double value;
} series;

typedef struct scraper {
    pthread_t thread;
    bool openmetrics;
    series seen[SERIES_MAX];
    size_t count;
    uint64_t last_scrapes;
    int failures;
} scraper;

static series *find(scraper *s, const char *name, size_t len)
{
    for (size_t i = 0; i < s->count; i++) {
        if (strlen(s->seen[i].name) == len && memcmp(s->seen[i].name, name, len) == 0)
            return &s->seen[i];
    }
    if (s->count == SERIES_MAX || len >= sizeof s->seen[0].name)
        return NULL;
    series *n = &s->seen[s->count++];
    memcpy(n->name, name, len);
    n->name[len] = '\0';
    n->value = 0;
    return n;
}

static void fail(scraper *s, const char *what, const char *detail)
{
    fprintf(stderr, "scraper (%s): %s: %s\n", s->openmetrics ? "OpenMetrics" : "text", what,
            detail);
    s->failures++;
}

/* Checks one scrape: counters (families ending in _total) never go back; per class,
 * live = allocations - frees and live <= what the churners can hold. */
static void check_scrape(scraper *s, const char *body)
{
    for (const char *line = body; *line != '\0';) {
        const char *end = strchr(line, '\n');
        if (end == NULL)
            break;
        if (line[0] != '#') {
            const char *sp = memchr(line, ' ', (size_t)(end - line));
            const char *brace = memchr(line, '{', (size_t)(end - line));
            size_t name_len = (size_t)((brace && brace < sp ? brace : sp) - line);
            if (sp != NULL && name_len > 6 && memcmp(line + name_len - 6, "_total", 6) == 0) {
                double v = strtod(sp + 1, NULL); /* process_cpu_seconds_total is fractional */
                series *prev = find(s, line, (size_t)(sp - line));
                if (prev != NULL && v < prev->value) {
                    char msg[256];
                    snprintf(msg, sizeof msg, "%s went from %.17g to %.17g", prev->name,
                             prev->value, v);
                    fail(s, "counter went backwards", msg);
                }
                if (prev != NULL)
                    prev->value = v;
            }
        }
        line = end + 1;
    }
    for (int k = 0; k < NCLASSES; k++) {
        char key[128];
        uint64_t a, f, live;
        snprintf(key, sizeof key, "tslab_allocations_total{allocator=\"churn\",class=\"%u\"}",
                 sizes[k]);
        bool ok = prom_u64(body, key, &a);
        snprintf(key, sizeof key, "tslab_frees_total{allocator=\"churn\",class=\"%u\"}", sizes[k]);
        ok = ok && prom_u64(body, key, &f);
        snprintf(key, sizeof key, "tslab_live_objects{allocator=\"churn\",class=\"%u\"}", sizes[k]);
        ok = ok && prom_u64(body, key, &live);
        if (!ok) {
            fail(s, "series missing", key);
            continue;
        }
        if (f > a || live != a - f)
            fail(s, "live != allocations - frees", key);
        if (live > (uint64_t)CHURNERS * HOLD + 4096) /* + what can be allocated during a read */
            fail(s, "more live objects than the churners hold", key);
    }
    uint64_t scrapes = 0;
    if (!prom_u64(body, "tslab_exporter_scrapes_total", &scrapes) || scrapes <= s->last_scrapes)
        fail(s, "scrape counter did not increase", "");
    s->last_scrapes = scrapes;
}

static void *scrape(void *arg)
{
    scraper *s = arg;
    for (int i = 0; i < SCRAPES; i++) {
        http_reply r;
        const char *hdr = s->openmetrics ? "Accept: application/openmetrics-text\r\n" : NULL;
        if (http_request(port, "GET", "/metrics", hdr, &r) != 0 || r.status != 200) {
            fail(s, "scrape failed", "");
            continue;
        }
        check_scrape(s, r.body);
        http_free(&r);
    }
    return NULL;
}

int main(void)
{
    alloc = tslab_create(&(tslab_config){.name = "churn", .sizes = sizes, .size_count = NCLASSES});
    REQUIRE(alloc != NULL);
    tslab_exporter *e;
    REQUIRE(tslab_exporter_start(
                &(tslab_exporter_config){.allocators = &alloc, .allocator_count = 1}, &e) == 0);
    port = tslab_exporter_port(e);

    churner churners[CHURNERS] = {0};
    for (int i = 0; i < CHURNERS; i++) {
        churners[i].rng = 0x9e3779b97f4a7c15u + (uint64_t)i * 7919;
        REQUIRE(pthread_create(&churners[i].thread, NULL, churn, &churners[i]) == 0);
    }
    static scraper scrapers[2];
    scrapers[1].openmetrics = true;
    for (int i = 0; i < 2; i++)
        REQUIRE(pthread_create(&scrapers[i].thread, NULL, scrape, &scrapers[i]) == 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(scrapers[i].thread, NULL);
        test_count_failures((unsigned)scrapers[i].failures);
        CHECK(scrapers[i].count > 10); /* the counters were seen */
    }
    atomic_store(&stop, true);
    for (int i = 0; i < CHURNERS; i++)
        pthread_join(churners[i].thread, NULL);

    /* Quiescent: the exported counters are the churners' exact counts. */
    http_reply r;
    REQUIRE(http_get(port, "/metrics", &r) == 0 && r.status == 200);
    uint64_t total = 0;
    for (int k = 0; k < NCLASSES; k++) {
        uint64_t expect = 0, a = 0, f = 0, live = 1;
        for (int i = 0; i < CHURNERS; i++)
            expect += churners[i].allocations[k];
        total += expect;
        char key[128];
        snprintf(key, sizeof key, "tslab_allocations_total{allocator=\"churn\",class=\"%u\"}",
                 sizes[k]);
        CHECK(prom_u64(r.body, key, &a));
        snprintf(key, sizeof key, "tslab_frees_total{allocator=\"churn\",class=\"%u\"}", sizes[k]);
        CHECK(prom_u64(r.body, key, &f));
        snprintf(key, sizeof key, "tslab_live_objects{allocator=\"churn\",class=\"%u\"}", sizes[k]);
        CHECK(prom_u64(r.body, key, &live));
        CHECK_EQ_I(a, expect);
        CHECK_EQ_I(f, expect);
        CHECK_EQ_I(live, 0);
        const char *reasons[] = {"invalid", "stale", "double", "foreign"};
        for (int j = 0; j < 4; j++) {
            uint64_t v = 1;
            snprintf(key, sizeof key,
                     "tslab_free_rejections_total{allocator=\"churn\",class=\"%u\",reason=\"%s\"}",
                     sizes[k], reasons[j]);
            CHECK(prom_u64(r.body, key, &v) && v == 0);
        }
    }
    printf("churned %llu objects while %d scrapes ran\n", (unsigned long long)total, 2 * SCRAPES);
    CHECK(total > 0);
    http_free(&r);
    tslab_exporter_stop(e);
    tslab_destroy(alloc);
    return test_result("test_concurrent");
}
