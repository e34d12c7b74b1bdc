/* SPDX-License-Identifier: MIT */
/* Programs written for the original temporal-slab API must compile against slab_alloc.h and pass:
 * its smoke program (slab counts derived from slab_object_count rather than written for 512
 * objects per slab), its malloc-wrapper test, and its benchmark's slab arithmetic. */
#include "testhelper.h"

#include <errno.h>
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
    uint32_t per_slab = slab_object_count(128);
    CHECK_EQ_U(pc.new_slab_count, (1000 + per_slab - 1) / per_slab);
    CHECK_EQ_U(pc.current_partial_null, pc.new_slab_count);
    get_perf_counters(a, 99, &pc);
    CHECK(pc.slow_path_hits == 0);
    CHECK_EQ_U(slab_object_count(128), 32); /* 4 KiB slabs, metadata outside */
    CHECK(read_rss_bytes_linux() > 0);
    uint64_t t0 = now_ns();
    CHECK(now_ns() >= t0);
    slab_allocator_free(a);
}

/* The original's malloc-wrapper test (test_malloc_wrapper.c), its assertions unchanged. */
static void original_malloc_wrapper(void)
{
    SlabAllocator *a = slab_allocator_create();
    REQUIRE(a != NULL);
    void *p1 = slab_malloc(a, 64);
    REQUIRE(p1 != NULL);
    memset(p1, 0xAA, 64);
    slab_free(a, p1);
    void *ptrs[100];
    for (int i = 0; i < 100; i++) {
        ptrs[i] = slab_malloc(a, 128);
        REQUIRE(ptrs[i] != NULL);
        *(int *)ptrs[i] = i;
    }
    for (int i = 0; i < 100; i++) {
        CHECK(*(int *)ptrs[i] == i);
        slab_free(a, ptrs[i]);
    }
    slab_free(a, NULL);
    CHECK(slab_malloc(a, 0) == NULL);
    errno = 0;
    CHECK(slab_malloc(a, 505) == NULL); /* the original's maximum is 504 */
    CHECK(errno == EINVAL);
    CHECK(slab_malloc(a, SLAB_MALLOC_MAX + 1) == NULL);
    void *p_max = slab_malloc(a, 504);
    REQUIRE(p_max != NULL);
    slab_free(a, p_max);
    void *pm = slab_malloc(a, 100);
    SlabHandle h;
    void *ph = alloc_obj(a, 100, &h);
    REQUIRE(pm != NULL && ph != NULL);
    slab_free(a, pm);
    CHECK(free_obj(a, h));
    CHECK(alloc_obj(a, 768, &h) != NULL); /* the handle API goes up to the largest class */
    CHECK(free_obj(a, h));
    CHECK(alloc_obj(a, 769, &h) == NULL);
    slab_allocator_free(a);
}

/* SLAB_PAGE_SIZE, slab_object_count and the slabs slab_allocator_create() really makes agree,
 * so the original benchmark's arithmetic holds: its "slab overhead vs payload" for 2M objects of
 * 128 bytes was -93.7% when slab_object_count(128) said 512 and SLAB_PAGE_SIZE 4096. */
static void original_geometry(void)
{
    SlabAllocator *a = slab_allocator_create();
    REQUIRE(a != NULL);
    tslab_stats st;
    CHECK(tslab_stats_read(a, &st) == 0);
    CHECK_EQ_U(st.class_count, 8);
    for (uint32_t i = 0; i < st.class_count; i++) {
        const tslab_class_stats *c = &st.classes[i];
        uint32_t n = slab_object_count((uint32_t)c->object_size);
        CHECK_EQ_U(c->slab_bytes, SLAB_PAGE_SIZE);
        CHECK_EQ_U(c->objects_per_slab, n);
        CHECK(n * c->object_size <= SLAB_PAGE_SIZE);
        CHECK(2 * n * c->object_size > SLAB_PAGE_SIZE); /* at most half a slab unused */
    }
    CHECK_EQ_U(st.classes[st.class_count - 1].object_size, 768);

    const uint64_t N = 2000000;
    uint32_t per_slab = slab_object_count(128);
    uint64_t num_slabs = (N + per_slab - 1) / per_slab;
    uint64_t slab_bytes = num_slabs * SLAB_PAGE_SIZE;
    uint64_t payload = N * 128;
    double overhead = ((double)slab_bytes / (double)payload - 1.0) * 100.0;
    printf("2M x 128 B: %u objects per slab, %llu slabs, slab overhead vs payload %.1f%%\n",
           per_slab, (unsigned long long)num_slabs, overhead);
    CHECK(slab_bytes >= payload);
    CHECK(overhead >= 0.0 && overhead < 1.0);
    slab_allocator_free(a);
}

/* The native API keeps its own limits: 64 KiB slabs and tslab_malloc up to the largest class. */
static void native_limits_unchanged(void)
{
    tslab *a = tslab_create(NULL);
    REQUIRE(a != NULL);
    void *p = tslab_malloc(a, 505);
    REQUIRE(p != NULL);
    CHECK(tslab_free_ptr(a, p));
    p = tslab_malloc(a, 768);
    REQUIRE(p != NULL);
    CHECK(tslab_free_ptr(a, p));
    tslab_stats st;
    CHECK(tslab_stats_read(a, &st) == 0);
    CHECK_EQ_U(st.classes[2].object_size, 128);
    CHECK_EQ_U(st.classes[2].slab_bytes, 65536);
    CHECK_EQ_U(st.classes[2].objects_per_slab, tslab_slab_capacity(128, 0));
    CHECK_EQ_U(tslab_slab_capacity(128, 0), 512);
    tslab_destroy(a);
}

TEST_MAIN(T(original_program), T(original_malloc_wrapper), T(original_geometry),
          T(native_limits_unchanged))
