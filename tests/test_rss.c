/* RSS under sustained churn stays flat, and falls back to the cache bound once everything is
 * freed. Figures are printed; the bounds are asserted. */
#include <stdint.h>
#include <tslab.h>

#include "testhelper.h"

/* Anonymous resident memory (RssAnon): the process RSS minus file-backed pages such as shared
 * library code that the run happens to page in, which this test must not count. */
static uint64_t anon_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    REQUIRE(f != NULL);
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "RssAnon: %llu kB", &kb) == 1)
            break;
    fclose(f);
    CHECK(kb > 0);
    return (uint64_t)kb * 1024;
}

static void churn_rss_flat_then_released(void)
{
    enum { LIVE = 100000 };
    unsigned long cycles = scaled(1000);
    tslab_handle *h = malloc(LIVE * sizeof *h);
    REQUIRE(h != NULL);
    memset(h, 0xff, LIVE * sizeof *h); /* touched now, so part of the baseline (not zero: a
                                          compiler may drop a zeroing memset after calloc) */
    uint64_t rss_base = anon_rss();

    tslab_config cfg = {0};
    cfg.cache_slabs = 4; /* cache bound: 4 slabs of 64 KiB */
    /* The bounds below are the slabs' and their metadata's; the sampler's records and
     * libunwind's per-thread cache (about 70 KiB on first use) are other memory. */
    cfg.sample_bytes = TSLAB_SAMPLE_OFF;
    tslab *a = tslab_create(&cfg);
    for (unsigned i = 0; i < LIVE; i++) {
        void *p = tslab_alloc(a, 128, &h[i]);
        REQUIRE(p != NULL);
        memset(p, 1, 128);
    }
    unsigned long long rng = 42;
    uint64_t rss_warm = 0, res_warm = 0;
    tslab_stats st;
    for (unsigned long c = 1; c <= cycles; c++) {
        for (unsigned k = 0; k < LIVE / 10; k++) {
            unsigned i = (unsigned)(rng_next(&rng) % LIVE);
            CHECK(tslab_free(a, h[i]));
            void *p = tslab_alloc(a, 128, &h[i]);
            REQUIRE(p != NULL);
            memset(p, 2, 128);
        }
        if (c == (cycles < 10 ? cycles : 10)) {
            rss_warm = anon_rss();
            tslab_stats_read(a, &st);
            res_warm = st.classes[2].resident_bytes;
        }
    }
    uint64_t rss_end = anon_rss();
    tslab_stats_read(a, &st);
    double growth = 100.0 * ((double)rss_end - (double)rss_warm) / (double)rss_warm;
    double overhead = (double)st.classes[2].resident_bytes / (128.0 * LIVE);
    printf("churn: %lu cycles x 10%% of %d objects; RSS after warm-up %llu KiB, at end %llu KiB "
           "(growth %.2f%%); allocator resident %llu -> %llu KiB (%.3f x live bytes)\n",
           cycles, LIVE, (unsigned long long)rss_warm >> 10, (unsigned long long)rss_end >> 10,
           growth, (unsigned long long)res_warm >> 10,
           (unsigned long long)st.classes[2].resident_bytes >> 10, overhead);
    if (test_rss_meaningful())
        CHECK(growth <= 5.0);
    else
        printf("process RSS includes a tool's shadow memory here: only allocator gauges checked\n");
    CHECK(st.classes[2].resident_bytes <= res_warm + res_warm / 20);

    for (unsigned i = 0; i < LIVE; i++)
        CHECK(tslab_free(a, h[i]));
    tslab_flush(a);
    tslab_stats_read(a, &st);
    uint64_t rss_free = anon_rss();
    const tslab_class_stats *c = &st.classes[2];
    uint64_t cache_bound = 4 * c->slab_bytes;
    uint64_t meta = c->resident_bytes - c->slabs_cached * c->slab_bytes;
    uint64_t slack = 256 * 1024; /* stack, libc and loader pages the test itself touches */
    printf("freed all: RSS %llu KiB over the baseline; cache bound %llu KiB + metadata %llu KiB; "
           "slabs cached %llu, released %llu\n",
           (unsigned long long)(rss_free - rss_base) >> 10, (unsigned long long)cache_bound >> 10,
           (unsigned long long)meta >> 10, (unsigned long long)c->slabs_cached,
           (unsigned long long)c->slabs_released);
    CHECK_EQ_U(c->live_objects, 0);
    CHECK(c->slabs_cached <= 4 && c->slabs_partial == 0 && c->slabs_full == 0);
    if (test_rss_meaningful())
        CHECK(rss_free <= rss_base + cache_bound + meta + slack);
    CHECK(c->resident_bytes <= cache_bound + meta);
    CHECK(tslab_purge(a) == 0);
    tslab_stats_read(a, &st);
    CHECK_EQ_U(st.classes[2].slabs_cached, 0);
    tslab_destroy(a);
    free(h);
}

TEST_MAIN(T(churn_rss_flat_then_released))
