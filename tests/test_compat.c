/* SPDX-License-Identifier: MIT */
/* Programs written for the original temporal-slab API must compile against slab_alloc.h and pass:
 * its smoke program (slab counts derived from slab_object_count rather than written for 512
 * objects per slab), its malloc-wrapper test, and its benchmark's slab arithmetic; and programs
 * written for its later epoch API (the ring of 16 epochs). */
#include "testhelper.h"

#include <errno.h>
#include <pthread.h>
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

/* ---- The epoch names ---------------------------------------------------------------------- */

/* The counters of the ring's epochs (label SLAB_EPOCH_LABEL); all zero when it has none. The
 * calling thread flushes first: epoch figures are exact once the threads involved have. */
static tslab_epoch_label_stats ring_stats(SlabAllocator *a)
{
    tslab_flush(a);
    tslab_epoch_stats st;
    tslab_epoch_label_stats out;
    memset(&out, 0, sizeof out);
    REQUIRE(tslab_epoch_stats_get(a, &st, sizeof st) == 0);
    for (uint32_t i = 0; i < st.label_count; i++) {
        if (strcmp(st.labels[i].label, SLAB_EPOCH_LABEL) == 0)
            out = st.labels[i];
    }
    return out;
}

static uint64_t live_objects(SlabAllocator *a)
{
    tslab_stats st;
    REQUIRE(tslab_stats_read(a, &st) == 0);
    uint64_t n = 0;
    for (uint32_t i = 0; i < st.class_count; i++)
        n += st.classes[i].live_objects;
    return n;
}

/* The slab an object of a slab_allocator_create() instance lives in (4 KiB slabs). */
static uintptr_t slab_of(const void *p) { return (uintptr_t)p / SLAB_PAGE_SIZE; }

/* The original's documented request loop: long-lived state in epoch 0, each request's object in
 * the current epoch, epoch_advance every 1000 requests; then a batch through the handle API. */
static void original_epoch_program(void)
{
    SlabAllocator *a = slab_allocator_create();
    REQUIRE(a != NULL);
    CHECK_EQ_U(epoch_current(a), 0);
    unsigned char *server_ctx = slab_malloc_epoch(a, 256, 0);
    REQUIRE(server_ctx != NULL);
    memset(server_ctx, 0x5a, 256);
    for (int i = 0; i < 10000; i++) {
        if (i % 1000 == 0)
            epoch_advance(a);
        EpochId e = epoch_current(a);
        CHECK_EQ_U(e, (uint32_t)(i / 1000 + 1));
        void *req = slab_malloc_epoch(a, 128, e);
        REQUIRE(req != NULL);
        memset(req, i & 0xff, 128);
        slab_free(a, req);
    }
    EpochId e = epoch_current(a);
    SlabHandle h[64], spare = 0;
    for (int i = 0; i < 64; i++)
        REQUIRE(alloc_obj_epoch(a, 128, e, &h[i]) != NULL);
    epoch_advance(a); /* closes e: no new allocation in it, its objects stay valid */
    errno = 0;
    CHECK(alloc_obj_epoch(a, 128, e, &spare) == NULL);
    CHECK_EQ_I(errno, ESHUTDOWN);
    for (int i = 0; i < 64; i++)
        CHECK(free_obj(a, h[i]));
    CHECK(!free_obj(a, h[0]));
    for (int i = 0; i < 256; i++) /* epoch 0 closed at the first advance: the object is intact */
        CHECK(server_ctx[i] == 0x5a);
    slab_free(a, server_ctx);
    /* Entries 0..10 were used, each its own tslab epoch, and all closed by the advances. */
    tslab_epoch_label_stats rs = ring_stats(a);
    CHECK_EQ_U(rs.opened, 11);
    CHECK_EQ_U(rs.closed, 11);
    CHECK_EQ_U(rs.destroyed, 0);
    CHECK_EQ_U(rs.allocations, 1 + 10000 + 64);
    CHECK_EQ_U(rs.frees, 1 + 10000 + 64);
    CHECK_EQ_U(rs.open_epochs, 0);
    CHECK_EQ_U(rs.closed_live_objects, 0);
    CHECK_EQ_U(live_objects(a), 0);
    slab_allocator_free(a);
}

/* Two laps of the ring: every entry is ACTIVE again when the ring comes back to it, and the new
 * lap's objects get a fresh epoch (never the old lap's slabs); entries never share a slab. */
static void ring_wraps(void)
{
    SlabAllocator *a = slab_allocator_create();
    REQUIRE(a != NULL);
    void *first[SLAB_EPOCH_COUNT];
    for (uint32_t lap = 0; lap < 2; lap++) {
        for (uint32_t k = 0; k < SLAB_EPOCH_COUNT; k++) {
            CHECK_EQ_U(epoch_current(a), k);
            void *p = slab_malloc_epoch(a, 64, k);
            REQUIRE(p != NULL);
            if (lap == 0) {
                first[k] = p;
                for (uint32_t j = 0; j < k; j++)
                    CHECK(slab_of(p) != slab_of(first[j]));
            } else {
                CHECK(slab_of(p) != slab_of(first[k]));
                slab_free(a, p);
            }
            epoch_advance(a);
        }
    }
    CHECK_EQ_U(epoch_current(a), 0); /* 32 advances: back at entry 0 */
    tslab_epoch_label_stats rs = ring_stats(a);
    CHECK_EQ_U(rs.opened, 2 * SLAB_EPOCH_COUNT);
    CHECK_EQ_U(rs.closed, 2 * SLAB_EPOCH_COUNT);
    CHECK_EQ_U(rs.open_epochs, 0);
    CHECK_EQ_U(rs.closed_live_objects, SLAB_EPOCH_COUNT); /* the first lap's objects */
    for (uint32_t k = 0; k < SLAB_EPOCH_COUNT; k++)
        slab_free(a, first[k]);
    rs = ring_stats(a);
    CHECK_EQ_U(rs.closed_live_objects, 0);
    CHECK_EQ_U(rs.frees, 2 * SLAB_EPOCH_COUNT);
    slab_allocator_free(a);
}

/* A CLOSING entry gives NULL (ESHUTDOWN) through both APIs, until the ring comes back to it; ids
 * out of the ring, sizes beyond slab_malloc's and a NULL allocator give NULL (EINVAL). */
static void closed_entries_give_null(void)
{
    SlabAllocator *a = slab_allocator_create();
    REQUIRE(a != NULL);
    SlabHandle h, h2 = 0;
    REQUIRE(alloc_obj_epoch(a, 100, 7, &h) != NULL); /* ahead of the ring: ACTIVE, as in the
                                                         original */
    epoch_close(a, 7);
    epoch_close(a, 7); /* idempotent */
    errno = 0;
    CHECK(alloc_obj_epoch(a, 100, 7, &h2) == NULL);
    CHECK_EQ_I(errno, ESHUTDOWN);
    errno = 0;
    CHECK(slab_malloc_epoch(a, 100, 7) == NULL);
    CHECK_EQ_I(errno, ESHUTDOWN);
    CHECK(free_obj(a, h)); /* objects of a closed entry free as usual */
    CHECK(!free_obj(a, h));
    void *p = slab_malloc_epoch(a, 100, 6); /* the other entries are untouched */
    CHECK(p != NULL);
    slab_free(a, p);

    errno = 0;
    CHECK(alloc_obj_epoch(a, 100, SLAB_EPOCH_COUNT, &h2) == NULL);
    CHECK_EQ_I(errno, EINVAL);
    errno = 0;
    CHECK(slab_malloc_epoch(a, 100, 99) == NULL);
    CHECK_EQ_I(errno, EINVAL);
    epoch_close(a, 99); /* ignored */
    errno = 0;
    CHECK(slab_malloc_epoch(a, SLAB_MALLOC_MAX + 1, 0) == NULL);
    CHECK_EQ_I(errno, EINVAL);
    p = slab_malloc_epoch(a, SLAB_MALLOC_MAX, 0);
    CHECK(p != NULL);
    slab_free(a, p);

    epoch_close(a, epoch_current(a)); /* the current entry closed: NULL until an advance */
    CHECK(slab_malloc_epoch(a, 64, 0) == NULL);
    epoch_advance(a);
    CHECK_EQ_U(epoch_current(a), 1);
    p = slab_malloc_epoch(a, 64, 1);
    CHECK(p != NULL);
    slab_free(a, p);
    for (int i = 1; i < 7; i++)
        epoch_advance(a);
    CHECK_EQ_U(epoch_current(a), 7); /* the ring came back to the closed entry 7: ACTIVE */
    p = slab_malloc_epoch(a, 64, 7);
    CHECK(p != NULL);
    slab_free(a, p);
    p = slab_malloc(a, 64); /* the plain API uses the default epoch, which never closes */
    CHECK(p != NULL);
    slab_free(a, p);
    CHECK_EQ_U(live_objects(a), 0);

    errno = 0;
    CHECK(slab_malloc_epoch(NULL, 64, 0) == NULL);
    CHECK_EQ_I(errno, EINVAL);
    CHECK_EQ_U(epoch_current(NULL), 0);
    epoch_advance(NULL);
    epoch_close(NULL, 0);
    slab_allocator_free(a);

    /* A new allocator starts a new ring, wherever it is mapped. */
    for (int i = 0; i < 4; i++) {
        SlabAllocator *b = slab_allocator_create();
        REQUIRE(b != NULL);
        CHECK_EQ_U(epoch_current(b), 0);
        epoch_advance(b);
        epoch_advance(b);
        CHECK_EQ_U(epoch_current(b), 2);
        p = slab_malloc_epoch(b, 64, 0);
        CHECK(p == NULL); /* closed by the first advance */
        slab_allocator_free(b);
    }
}

/* The window ring_threads hits now and then, made deterministic: a thread has read the entry's
 * tslab epoch (slab__ring_epoch), then the entry is closed, its last object freed and its record
 * reused, so the id is stale. Its allocation must still report the entry closed (ESHUTDOWN), not
 * the core's EINVAL for a stale id, also once the ring has wrapped and reopened the entry. */
static void closed_between_lookup_and_alloc(void)
{
    SlabAllocator *a = slab_allocator_create();
    REQUIRE(a != NULL);
    SlabHandle h, h2 = 0;
    REQUIRE(alloc_obj_epoch(a, 64, 0, &h) != NULL);
    slab__ring *r = slab__ring_find(a);
    REQUIRE(r != NULL);
    tslab_epoch id = slab__ring_epoch(a, r, 0);
    REQUIRE(id != 0);
    epoch_advance(a);      /* closes entry 0 */
    CHECK(free_obj(a, h)); /* its last object: the closed epoch's record is free */
    /* A later tslab_epoch_open may take the record and give it a new id; destroying the epoch
     * makes the id stale the same way, deterministically. */
    CHECK_EQ_I(tslab_epoch_destroy(a, id), 0);
    errno = 0;
    CHECK(tslab_alloc_epoch(a, id, 64, &h2) == NULL);
    CHECK_EQ_I(errno, EINVAL); /* the core: a stale id */
    errno = 0;
    CHECK(slab__ring_alloc_in(a, r, 0, id, 64, &h2) == NULL);
    CHECK_EQ_I(errno, ESHUTDOWN);
    errno = 0;
    CHECK(slab__ring_alloc_in(a, r, 0, id, 64, NULL) == NULL);
    CHECK_EQ_I(errno, ESHUTDOWN);

    for (uint32_t i = 1; i < SLAB_EPOCH_COUNT; i++) /* the ring wraps: entry 0 ACTIVE again */
        epoch_advance(a);
    CHECK_EQ_U(epoch_current(a), 0);
    errno = 0;
    CHECK(slab__ring_alloc_in(a, r, 0, id, 64, &h2) == NULL);
    CHECK_EQ_I(errno, ESHUTDOWN);
    void *p = slab_malloc_epoch(a, 64, 0); /* a fresh epoch for the new lap */
    CHECK(p != NULL);
    slab_free(a, p);

    /* A bad size is still EINVAL while the entry names the epoch. */
    id = slab__ring_epoch(a, r, 0);
    REQUIRE(id != 0);
    errno = 0;
    CHECK(slab__ring_alloc_in(a, r, 0, id, 0, &h2) == NULL);
    CHECK_EQ_I(errno, EINVAL);
    errno = 0;
    CHECK(alloc_obj_epoch(a, 64, 0, NULL) == NULL);
    CHECK_EQ_I(errno, EINVAL);
    CHECK_EQ_U(live_objects(a), 0);
    slab_allocator_free(a);
}

/* Threads allocate into the current entry while one of them advances the ring: each object is
 * either allocated (and then freed exactly once) or refused with ESHUTDOWN, never lost. */
#define RING_THREADS 4
#define RING_ROUNDS 20000

typedef struct ring_worker {
    SlabAllocator *a;
    int index;
    uint64_t allocated, refused, bad_errno, bad_frees;
} ring_worker;

static void *ring_worker_main(void *arg)
{
    ring_worker *w = arg;
    SlabHandle held[32];
    int n = 0;
    for (int i = 0; i < RING_ROUNDS; i++) {
        if (w->index == 0 && i % 500 == 0)
            epoch_advance(w->a);
        errno = 0;
        uint64_t *p = alloc_obj_epoch(w->a, 64, epoch_current(w->a), &held[n]);
        if (p == NULL) {
            w->refused++;
            w->bad_errno += errno != ESHUTDOWN;
            continue;
        }
        *p = (uint64_t)w->index << 32 | (uint64_t)i;
        w->allocated++;
        if (++n == 32) {
            for (int k = 0; k < n; k++)
                w->bad_frees += !free_obj(w->a, held[k]);
            n = 0;
        }
    }
    for (int k = 0; k < n; k++)
        w->bad_frees += !free_obj(w->a, held[k]);
    return NULL;
}

static void ring_threads(void)
{
    SlabAllocator *a = slab_allocator_create();
    REQUIRE(a != NULL);
    ring_worker w[RING_THREADS];
    pthread_t t[RING_THREADS];
    for (int i = 0; i < RING_THREADS; i++) {
        w[i] = (ring_worker){.a = a, .index = i};
        REQUIRE(pthread_create(&t[i], NULL, ring_worker_main, &w[i]) == 0);
    }
    uint64_t allocated = 0, refused = 0;
    for (int i = 0; i < RING_THREADS; i++) {
        REQUIRE(pthread_join(t[i], NULL) == 0);
        allocated += w[i].allocated;
        refused += w[i].refused;
        CHECK_EQ_U(w[i].bad_errno, 0);
        CHECK_EQ_U(w[i].bad_frees, 0);
    }
    printf("%d threads, advance every 500 of thread 0's rounds: %llu allocated, %llu refused\n",
           RING_THREADS, (unsigned long long)allocated, (unsigned long long)refused);
    CHECK_EQ_U(allocated + refused, (uint64_t)RING_THREADS * RING_ROUNDS);
    CHECK(allocated > 0);
    CHECK_EQ_U(epoch_current(a), (RING_ROUNDS / 500) % SLAB_EPOCH_COUNT);
    tslab_epoch_label_stats rs = ring_stats(a);
    CHECK_EQ_U(rs.allocations, allocated);
    CHECK_EQ_U(rs.frees, allocated);
    CHECK_EQ_U(rs.closed_live_objects, 0);
    CHECK_EQ_U(live_objects(a), 0);
    slab_allocator_free(a);
}

TEST_MAIN(T(original_program), T(original_malloc_wrapper), T(original_geometry),
          T(native_limits_unchanged), T(original_epoch_program), T(ring_wraps),
          T(closed_entries_give_null), T(closed_between_lookup_and_alloc), T(ring_threads))
