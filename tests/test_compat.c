/* A program written for the original temporal-slab API, unchanged but for this comment: it must
 * compile against slab_alloc.h and pass. */
#include "testhelper.h"

#include <slab_alloc.h>

static void original_program(void)
{
    SlabAllocator *a = slab_allocator_create();
    REQUIRE(a != NULL);
    SlabHandle h[1000];
    for (int i = 0; i < 1000; i++) {
        void *p = alloc_obj(a, 128, &h[i]);
        REQUIRE(p != NULL);
        memset(p, i & 0xff, 128);
    }
    for (int i = 0; i < 1000; i++)
        CHECK(free_obj(a, h[i]));
    CHECK(!free_obj(a, h[0])); /* double free rejected */
    void *m = slab_malloc(a, 128);
    REQUIRE(m != NULL);
    CHECK(((uintptr_t)m % 16) == 0);
    slab_free(a, m);
    slab_free(a, m); /* ignored, counted */
    PerfCounters pc;
    get_perf_counters(a, 2, &pc); /* class index 2 is the 128-byte class */
    CHECK(pc.slow_path_hits > 0);
    CHECK(pc.new_slab_count == 2); /* 1000 objects, 512 per slab */
    CHECK(pc.current_partial_null == 2);
    get_perf_counters(a, 99, &pc);
    CHECK(pc.slow_path_hits == 0);
    CHECK(slab_object_count(128) == 512);
    CHECK(read_rss_bytes_linux() > 0);
    uint64_t t0 = now_ns();
    CHECK(now_ns() >= t0);
    slab_allocator_free(a);
}

TEST_MAIN(T(original_program))
