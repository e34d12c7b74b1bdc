/* SPDX-License-Identifier: MIT */
/* Counters: exact values for a scripted sequence (the original read the wrong class and printed
 * zeros for months), and monotonic, consistent snapshots while threads churn. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <tslab.h>

#include "testhelper.h"

static void exact_cache_counters(void)
{
    tslab_config cfg = {0};
    cfg.cache_slabs = 2;
    cfg.decay_ms = 1000000000; /* decay never runs out here, however slow the tool: only the cap */
    tslab *a = tslab_create(&cfg);
    size_t per = tslab_slab_capacity(256, 0); /* 256 objects of 256 B in a 64 KiB slab */
    enum { SLABS = 6 };
    size_t n = SLABS * per;
    tslab_handle *h = calloc(n, sizeof *h);
    for (size_t i = 0; i < n; i++)
        CHECK(tslab_alloc(a, 256, &h[i]) != NULL);
    tslab_stats st;
    tslab_stats_read(a, &st);
    const tslab_class_stats *c = &st.classes[4];
    CHECK_EQ_U(c->object_size, 256);
    CHECK_EQ_U(c->objects_per_slab, per);
    CHECK_EQ_U(c->allocations, n);
    CHECK_EQ_U(c->cache_lookups, SLABS);
    CHECK_EQ_U(c->cache_misses, SLABS);
    CHECK_EQ_U(c->cache_hits, 0);
    CHECK_EQ_U(c->slabs_full, SLABS); /* batches of 32 drain every slab exactly */
    CHECK_EQ_U(c->slabs_partial, 0);
    for (size_t i = 0; i < n; i++)
        CHECK(tslab_free(a, h[i]));
    tslab_flush(a);
    tslab_stats_read(a, &st);
    CHECK_EQ_U(c->frees, n);
    CHECK_EQ_U(c->live_objects, 0);
    /* Six slabs empty one after another into a cache capped at 2. Every emptied slab joins the
     * cache (it is the warmest); passing the cap sends the oldest back, down to half the cap:
     * 1 and 2 are kept; 3 joins and 1 and 2 go back; 4 joins; 5 joins and 3 and 4 go back; 6
     * joins. Six inserts (before decay, the slab that found the cache full went back itself and
     * was not counted: 4), four overflows, two cached {5, 6}, four released, all for the cap. */
    CHECK_EQ_U(c->cache_inserts, SLABS);
    CHECK_EQ_U(c->cache_overflows, SLABS - 2);
    CHECK_EQ_U(c->slabs_cached, 2);
    CHECK_EQ_U(c->cached_bytes, 2 * c->slab_bytes);
    CHECK_EQ_U(c->slabs_released, SLABS - 2);
    CHECK_EQ_U(c->cap_released_slabs, SLABS - 2);
    CHECK_EQ_U(c->cap_released_bytes, (SLABS - 2) * c->slab_bytes);
    CHECK_EQ_U(c->decay_released_slabs + c->limit_released_slabs + c->purge_released_slabs, 0);
    CHECK_EQ_U(c->decay_released_bytes + c->limit_released_bytes + c->purge_released_bytes, 0);
    CHECK_EQ_U(c->limit_refusals, 0);
    CHECK_EQ_U(c->slabs_partial + c->slabs_full, 0);
    CHECK_EQ_U(c->resident_bytes - 2 * c->slab_bytes <= 4 * 4096 ? 1 : 0, 1); /* metadata only */
    /* reuse: two cache hits, then released slabs come back as misses */
    for (size_t i = 0; i < 3 * per; i++)
        CHECK(tslab_alloc(a, 256, &h[i]) != NULL);
    tslab_stats_read(a, &st);
    CHECK_EQ_U(c->cache_lookups, SLABS + 3);
    CHECK_EQ_U(c->cache_hits, 2);
    CHECK_EQ_U(c->cache_misses, SLABS + 1);
    CHECK(c->slow_path > 0 && c->partial_to_full >= 3);
    CHECK_EQ_U(c->slabs_cached, 0);
    CHECK_EQ_U(c->cached_bytes, 0);
    printf("class 256: lookups %llu hits %llu misses %llu inserts %llu overflows %llu\n",
           (unsigned long long)c->cache_lookups, (unsigned long long)c->cache_hits,
           (unsigned long long)c->cache_misses, (unsigned long long)c->cache_inserts,
           (unsigned long long)c->cache_overflows);
    for (unsigned k = 0; k < st.class_count; k++)
        if (k != 4)
            CHECK_EQ_U(st.classes[k].allocations + st.classes[k].cache_lookups, 0);
    free(h);
    tslab_destroy(a);
}

static tslab *A;
static _Atomic int stop;

static void *churner(void *arg)
{
    unsigned long long rng = (uintptr_t)arg * 7919 + 1;
    enum { K = 512 };
    tslab_handle h[K] = {0};
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        unsigned i = (unsigned)(rng_next(&rng) % K);
        if (h[i]) {
            CHECK(tslab_free(A, h[i]));
            h[i] = 0;
        } else {
            CHECK(tslab_alloc(A, 64 + rng % 600, &h[i]) != NULL);
        }
    }
    for (unsigned i = 0; i < K; i++)
        if (h[i])
            CHECK(tslab_free(A, h[i]));
    return NULL;
}

static void concurrent_snapshots(void)
{
    A = tslab_create(NULL);
    pthread_t th[2];
    for (uintptr_t i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, churner, (void *)i);
    static tslab_stats prev, cur;
    tslab_stats_read(A, &prev);
    unsigned long snaps = 0;
    uint64_t total = 0;
    while (total < scaled(2000000)) {
        tslab_stats_read(A, &cur);
        snaps++;
        total = 0;
        for (unsigned c = 0; c < cur.class_count; c++) {
            const tslab_class_stats *p = &prev.classes[c], *s = &cur.classes[c];
            CHECK(s->allocations >= p->allocations && s->frees >= p->frees);
            CHECK(s->cache_lookups >= p->cache_lookups && s->slow_path >= p->slow_path);
            CHECK(s->allocations >= s->frees); /* live never negative */
            CHECK(s->live_objects == s->allocations - s->frees);
            /* Two threads hold at most 512 each; the snapshot may add the allocations made while
             * it was read (documented skew), which are fewer than all since the last one. */
            CHECK(s->live_objects <= 1024 + (s->allocations - p->allocations));
            total += s->allocations;
        }
        prev = cur;
    }
    atomic_store(&stop, 1);
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    tslab_stats_read(A, &cur);
    uint64_t live = 0;
    for (unsigned c = 0; c < cur.class_count; c++)
        live += cur.classes[c].live_objects;
    printf(
        "%lu snapshots during %llu allocations: monotonic, live within bounds; final live %llu\n",
        snaps, (unsigned long long)total, (unsigned long long)live);
    CHECK_EQ_U(live, 0);
    tslab_destroy(A);
}

TEST_MAIN(T(exact_cache_counters), T(concurrent_snapshots))
