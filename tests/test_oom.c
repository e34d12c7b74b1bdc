/* SPDX-License-Identifier: MIT */
/* Out of memory through the injectable OS layer: a refused commit gives NULL with ENOMEM and
 * loses nothing; once memory is back the allocator works again. A refused reservation makes
 * tslab_create fail cleanly. */
#include <errno.h>
#include <stdint.h>
#include <tslab.h>

#include "testhelper.h"

static int fail_commits; /* refuse commits while set */
static int fail_reserves;
static int fail_decommits;
static unsigned long commits, decommits;

static void *f_reserve(void *ctx, size_t n)
{
    (void)ctx;
    return fail_reserves ? NULL : tslab_os_default()->reserve(NULL, n);
}
static int f_commit(void *ctx, void *p, size_t n)
{
    (void)ctx;
    commits++;
    return fail_commits ? -ENOMEM : tslab_os_default()->commit(NULL, p, n);
}
static int f_decommit(void *ctx, void *p, size_t n)
{
    (void)ctx;
    decommits++;
    return fail_decommits ? -EAGAIN : tslab_os_default()->decommit(NULL, p, n);
}
static void f_release(void *ctx, void *p, size_t n)
{
    (void)ctx;
    tslab_os_default()->release(NULL, p, n);
}
static const tslab_os failing = {f_reserve, f_commit, f_decommit, f_release, NULL, NULL};

static void commit_refused_then_recovered(void)
{
    tslab_config cfg = {0};
    cfg.os = &failing;
    tslab *a = tslab_create(&cfg);
    REQUIRE(a != NULL);
    enum { N = 5000 };
    tslab_handle h[N];
    for (unsigned i = 0; i < N; i++) {
        uint32_t *p = tslab_alloc(a, 128, &h[i]);
        REQUIRE(p != NULL);
        *p = i;
    }
    fail_commits = 1;
    unsigned extra = 0;
    tslab_handle more[4096];
    for (;;) {
        errno = 0;
        uint32_t *p = tslab_alloc(a, 128, &more[extra]);
        if (p == NULL) {
            CHECK(errno == ENOMEM);
            break;
        }
        *p = 0xBEEF;
        CHECK(++extra < 4096); /* the committed prefix runs out eventually */
    }
    errno = 0;
    CHECK(tslab_malloc(a, 700) == NULL && errno == ENOMEM); /* a class never touched */
    tslab_stats st;
    tslab_stats_read(a, &st);
    printf("commit refused: NULL/ENOMEM after %u more objects; os_failures %llu\n", extra,
           (unsigned long long)st.classes[2].os_failures);
    CHECK(st.classes[2].os_failures >= 1 && st.classes[7].os_failures >= 1);
    for (unsigned i = 0; i < N; i++)
        CHECK(*(uint32_t *)tslab_handle_ptr(a, h[i]) == i);
    /* frees still work while memory is short, and their slots are reused */
    CHECK(tslab_free(a, h[0]));
    CHECK(tslab_alloc(a, 128, &h[0]) != NULL);
    *(uint32_t *)tslab_handle_ptr(a, h[0]) = 0;
    fail_commits = 0;
    for (unsigned i = 0; i < 20000; i++) {
        tslab_handle t;
        CHECK(tslab_alloc(a, 128, &t) != NULL);
    }
    CHECK(tslab_malloc(a, 700) != NULL);
    for (unsigned i = 0; i < N; i++)
        CHECK(*(uint32_t *)tslab_handle_ptr(a, h[i]) == i);
    tslab_destroy(a);
}

static void reserve_refused(void)
{
    tslab_config cfg = {0};
    cfg.os = &failing;
    fail_reserves = 1;
    errno = 0;
    CHECK(tslab_create(&cfg) == NULL && errno == ENOMEM);
    fail_reserves = 0;
    tslab *a = tslab_create(&cfg);
    REQUIRE(a != NULL);
    tslab_destroy(a);
    /* address space beyond what the machine can map: a clear ENOMEM, not a crash */
    uint32_t huge[] = {TSLAB_OBJECT_MAX - 56, TSLAB_OBJECT_MAX - 48, TSLAB_OBJECT_MAX - 40,
                       TSLAB_OBJECT_MAX - 32, TSLAB_OBJECT_MAX - 24, TSLAB_OBJECT_MAX - 16,
                       TSLAB_OBJECT_MAX - 8,  TSLAB_OBJECT_MAX};
    tslab_config big = {0};
    big.sizes = huge, big.size_count = 8;
    /* 8 classes of at least 2^64 / 2^20 = 16 TiB each (the most a class of 1 MiB objects can
     * hold): more than a 47-bit address space. */
    big.class_max_bytes = (size_t)1 << 46;
    errno = 0;
    tslab *b = tslab_create(&big);
    CHECK(b == NULL && errno == ENOMEM);
}

/* A refused decommit is counted and the slab stays cached (resident), never lost. */
static void decommit_refused(void)
{
    tslab_config cfg = {0};
    cfg.os = &failing;
    cfg.cache_slabs = TSLAB_CACHE_NONE;
    tslab *a = tslab_create(&cfg);
    enum { N = 4096 };
    tslab_handle *h = calloc(N, sizeof *h);
    for (unsigned i = 0; i < N; i++)
        CHECK(tslab_alloc(a, 128, &h[i]) != NULL);
    tslab_stats st;
    tslab_stats_read(a, &st);
    uint64_t used = st.classes[2].slabs_partial + st.classes[2].slabs_full;
    CHECK(used >= N / tslab_slab_capacity(128, 0));
    fail_decommits = 1;
    for (unsigned i = 0; i < N; i++)
        CHECK(tslab_free(a, h[i]));
    tslab_flush(a);
    tslab_stats_read(a, &st);
    printf("decommit refused: %llu failures counted, %llu slabs kept cached\n",
           (unsigned long long)st.classes[2].os_failures,
           (unsigned long long)st.classes[2].slabs_cached);
    /* failures are counted per call; adjacent slabs share one */
    CHECK(st.classes[2].os_failures >= 1 && st.classes[2].slabs_cached == used);
    CHECK(tslab_purge(a) == -EAGAIN);
    fail_decommits = 0;
    CHECK(tslab_purge(a) == 0);
    tslab_stats_read(a, &st);
    CHECK(st.classes[2].slabs_cached == 0 && st.classes[2].slabs_released == used);
    for (unsigned i = 0; i < N; i++) /* released slabs come back (zeroed pages) */
        CHECK(tslab_alloc(a, 128, &h[i]) != NULL);
    free(h);
    tslab_destroy(a);
}

TEST_MAIN(T(commit_refused_then_recovered), T(reserve_refused), T(decommit_refused))
