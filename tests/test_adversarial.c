/* SPDX-License-Identifier: MIT */
/* Adversarial tests of the core: geometry at the extremes of the config space, exhaustive
 * pointer -> slot checks, forged handles, thread-cache maps after instance destruction and tag
 * reuse, thread exit racing with tslab_create/tslab_destroy, flush/purge racing with churn,
 * counter monotonicity across thread exits, fork during churn, out-of-memory under threads, and
 * NULL instances. Every test asserts; none sleeps to synchronise (barriers and joins only).
 *
 * A few tests read the instance tag out of a handle (bits 54..62, allocator/src/internal.h) to
 * force a destroyed instance's tag to be reused; they only use it to pick instances, never to
 * forge a handle the allocator would not also have to accept. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <tslab.h>
#include <unistd.h>

#include "testhelper.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) || defined(TSLAB_VALGRIND)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define ASAN_ON 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_ON 1
#endif
#endif
#ifndef ASAN_ON
#define ASAN_ON 0
#endif
#if ASAN_ON
#include <sanitizer/asan_interface.h>
#endif

static unsigned tag_of(tslab_handle h) { return (unsigned)(h >> 54) & 511u; }

static tslab *mk(const uint32_t *sizes, size_t n, size_t slab, size_t cache, size_t cmax)
{
    tslab_config c = {0};
    c.sizes = sizes;
    c.size_count = n;
    c.slab_bytes = slab;
    c.cache_slabs = cache;
    c.class_max_bytes = cmax;
    return tslab_create(&c);
}

static size_t next_pow2(size_t x)
{
    size_t p = 1;
    while (p < x)
        p <<= 1;
    return p;
}

/* Every COUNTER of `cur` is >= the one in `prev`; allocations >= frees; live = allocs - frees. */
static void check_monotonic(const tslab_stats *prev, const tslab_stats *cur)
{
    for (uint32_t i = 0; i <= cur->class_count; i++) {
        const tslab_class_stats *p = i < cur->class_count ? &prev->classes[i] : &prev->unattributed;
        const tslab_class_stats *c = i < cur->class_count ? &cur->classes[i] : &cur->unattributed;
#define MONO_COUNTER(f) CHECK(c->f >= p->f);
#define MONO_GAUGE(f)
#define MONO(f, src, type, ...) MONO_##type(f)
        TSLAB_CLASS_STATS(MONO)
#undef MONO
#undef MONO_GAUGE
#undef MONO_COUNTER
        if (i < cur->class_count) {
            CHECK(c->allocations >= c->frees);
            CHECK(c->live_objects == c->allocations - c->frees);
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* 1. Pointer -> slot, exhaustively for every byte offset, over odd sizes and slab sizes.       */

typedef struct live_obj {
    uintptr_t p;
    size_t size;
    tslab_handle h;
} live_obj;

static int cmp_live(const void *x, const void *y)
{
    uintptr_t a = ((const live_obj *)x)->p, b = ((const live_obj *)y)->p;
    return a < b ? -1 : a > b;
}

/* Every address in [lo, hi): usable_size is the class size exactly at live starts, 0 elsewhere
 * (interior, slab tail, span gap, free slot, outside). ptr_handle agrees on a subset. */
static unsigned long scan(tslab *a, const live_obj *lv, size_t n, uintptr_t lo, uintptr_t hi)
{
    size_t k = 0, lo_i = 0, hi_i = n;
    while (lo_i < hi_i) { /* first live object >= lo */
        size_t mid = (lo_i + hi_i) / 2;
        if (lv[mid].p < lo)
            lo_i = mid + 1;
        else
            hi_i = mid;
    }
    k = lo_i;
    unsigned long starts = 0;
    for (uintptr_t q = lo; q < hi; q++) {
        while (k < n && lv[k].p < q)
            k++;
        size_t want = (k < n && lv[k].p == q) ? lv[k].size : 0;
        size_t got = tslab_usable_size(a, (void *)q);
        if (got != want) {
            fprintf(stderr, "usable_size(%#lx) = %zu, want %zu (lo %#lx)\n", (unsigned long)q, got,
                    want, (unsigned long)lo);
            CHECK(got == want);
        }
        if (want || (q & 0x3f) == 0) {
            tslab_handle h = tslab_ptr_handle(a, (void *)q);
            CHECK(want ? h == lv[k].h : h == TSLAB_HANDLE_NONE);
        }
        starts += want != 0;
    }
    return starts;
}

static void scan_windows(tslab *a, live_obj *lv, size_t n, size_t span)
{
    qsort(lv, n, sizeof *lv, cmp_live);
    for (size_t i = 1; i < n; i++)
        CHECK(lv[i].p >= lv[i - 1].p + lv[i - 1].size); /* no overlap, no double hand-out */
    uintptr_t lo = lv[0].p, hi = lv[n - 1].p + lv[n - 1].size;
    size_t limit = SANITIZED ? (size_t)256 << 10 : (size_t)6 << 20;
    size_t w = SANITIZED ? (size_t)32 << 10 : (size_t)512 << 10;
    if (hi - lo <= limit) {
        scan(a, lv, n, lo - 4096, hi + 4096);
        return;
    }
    scan(a, lv, n, lo - 4096, lo + w);
    for (uintptr_t b = lo + span; b < hi; b += span)
        scan(a, lv, n, b - w, b + w);
    scan(a, lv, n, hi - w, hi + w);
}

static void ptr_slot_one(uint32_t size, size_t slab)
{
    tslab *a = mk(&size, 1, slab, TSLAB_CACHE_NONE, 0);
    REQUIRE(a != NULL);
    size_t csize = tslab_class_size(a, 0);
    CHECK_EQ_U(csize, (size + 7u) & ~7u);
    tslab_stats *st = malloc(sizeof *st);
    REQUIRE(st != NULL);
    tslab_stats_read(a, st);
    size_t per = tslab_slab_capacity(size, slab);
    CHECK_EQ_U(st->classes[0].objects_per_slab, per);
    CHECK(per >= 1 && (per & (per - 1)) == 0);
    CHECK(per == 1 || per * csize <= slab);
    CHECK(st->classes[0].slab_bytes >= per * csize);
    /* A slab is whole pages, so its pages go back to the OS without a neighbour's; the padding
     * between slots that takes costs no more than rounding the slab up to pages, plus each
     * slot's alignment. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    CHECK(st->classes[0].slab_bytes % page == 0);
    CHECK(st->classes[0].slab_bytes <= (per * csize + page - 1) / page * page + per * 15);
    size_t span = next_pow2(st->classes[0].slab_bytes);
    size_t n = 2 * per + 1;
    live_obj *lv = calloc(n, sizeof *lv);
    REQUIRE(lv != NULL);
    for (size_t i = 0; i < n; i++) {
        void *p = tslab_alloc(a, size, &lv[i].h);
        REQUIRE(p != NULL);
        CHECK((uintptr_t)p % ((csize % 16) == 0 ? 16 : 8) == 0);
        lv[i].p = (uintptr_t)p;
        lv[i].size = csize;
        memset(p, 0xA5, csize < 64 ? csize : 64);
        ((unsigned char *)p)[csize - 1] = 0x5A;
    }
    scan_windows(a, lv, n, span);
    /* Interior pointers are rejected and counted as invalid; nothing changes. */
    tslab_stats_read(a, st);
    uint64_t inv0 = st->classes[0].rejected_invalid;
    unsigned long tried = 0;
    for (size_t i = 0; i < n; i += 1 + n / 64) {
        size_t offs[] = {1, 7, 8, csize / 2, csize - 8, csize - 1};
        for (size_t j = 0; j < sizeof offs / sizeof offs[0]; j++) {
            if (offs[j] == 0 || offs[j] >= csize)
                continue;
            CHECK(!tslab_free_ptr(a, (char *)lv[i].p + offs[j]));
            tried++;
        }
    }
    tslab_stats_read(a, st);
    CHECK_EQ_U(st->classes[0].rejected_invalid - inv0, tried);
    /* Free every other object, rescan around the start: freed starts read 0 now. */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % 2) {
            CHECK(((unsigned char *)lv[i].p)[csize - 1] == 0x5A);
            CHECK(tslab_free(a, lv[i].h));
        } else {
            lv[kept++] = lv[i];
        }
    }
    uintptr_t lo = lv[0].p;
    scan(a, lv, kept, lo, lo + (SANITIZED ? 8192 : 65536));
    for (size_t i = 0; i < kept; i++)
        CHECK(tslab_free_ptr(a, (void *)lv[i].p));
    tslab_flush(a);
    tslab_stats_read(a, st);
    CHECK_EQ_U(st->classes[0].live_objects, 0);
    CHECK_EQ_U(st->classes[0].slabs_partial + st->classes[0].slabs_full, 0);
    CHECK_EQ_U(st->classes[0].slabs_cached, 0); /* TSLAB_CACHE_NONE */
    free(lv);
    free(st);
    tslab_destroy(a);
}

static void ptr_slot_exhaustive(void)
{
    static const uint32_t sizes[] = {1,    8,     24,    40,     56,     72,      104,    136,
                                     200,  328,   1000,  1016,   1544,   2040,    3000,   4088,
                                     4104, 12345, 65528, 100000, 524296, 1048568, 1048576};
    static const size_t slabs[] = {4096, 65536, (size_t)4 << 20};
    unsigned configs = 0;
    for (size_t s = 0; s < sizeof slabs / sizeof slabs[0]; s++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            if (SANITIZED && slabs[s] == ((size_t)4 << 20) && sizes[i] < 1000)
                continue; /* 2^19 objects per slab: too slow under a sanitizer */
            ptr_slot_one(sizes[i], slabs[s]);
            configs++;
        }
    printf("ptr->slot: %u (size, slab) configurations scanned byte by byte\n", configs);
}

/* Several classes: the boundaries between class regions. */
static void ptr_slot_class_boundaries(void)
{
    static const uint32_t sizes[] = {24, 1000, 4104, 65528, 1048576};
    enum { NC = sizeof sizes / sizeof sizes[0] };
    tslab *a = mk(sizes, NC, 4096, 0, (size_t)16 << 20); /* 1 MiB class: 16 slabs */
    REQUIRE(a != NULL);
    live_obj lv[NC * 8];
    size_t n = 0;
    for (size_t c = 0; c < NC; c++)
        for (int i = 0; i < 8; i++) {
            void *p = tslab_alloc(a, sizes[c], &lv[n].h);
            REQUIRE(p != NULL);
            lv[n].p = (uintptr_t)p;
            lv[n].size = sizes[c];
            n++;
        }
    qsort(lv, n, sizeof *lv, cmp_live);
    for (size_t i = 1; i < n; i++)
        CHECK(lv[i].p >= lv[i - 1].p + lv[i - 1].size);
    for (size_t i = 0; i < n; i++) /* around every object, including each class's first one */
        scan(a, lv, n, lv[i].p - 64, lv[i].p + 64);
    for (size_t i = 0; i < n; i++)
        CHECK(tslab_free(a, lv[i].h));
    tslab_destroy(a);
}

/* ------------------------------------------------------------------------------------------ */
/* 2. Geometry at the extremes.                                                                 */

static void expect_einval(const uint32_t *sizes, size_t n, size_t slab, size_t cmax)
{
    errno = 0;
    tslab *a = mk(sizes, n, slab, 0, cmax);
    CHECK(a == NULL);
    CHECK(errno == EINVAL);
}

static void geometry_extremes(void)
{
    tslab_stats *st = malloc(sizeof *st);
    REQUIRE(st != NULL);
    /* Bad configurations. */
    uint32_t big[] = {1048576, 1048577};
    expect_einval(big, 2, 0, 0);
    expect_einval(big + 1, 1, 0, 0);
    uint32_t collide[] = {7, 8};
    expect_einval(collide, 2, 0, 0);
    uint32_t zero[] = {0};
    expect_einval(zero, 1, 0, 0);
    uint32_t one[] = {8};
    expect_einval(one, 1, 2048, 0);
    expect_einval(one, 1, 4096 * 3, 0);
    expect_einval(one, 1, (size_t)8 << 20, 0);
    /* class_max_bytes smaller than one span: EINVAL, never a class that cannot hold anything. */
    expect_einval(one, 1, 65536, 1);
    expect_einval(one, 1, 65536, 4096);
    expect_einval(one, 1, 65536, 65535);
    uint32_t mixed[] = {8, 1048576};
    expect_einval(mixed, 2, 4096, 65536); /* the 1 MiB class needs a 1 MiB span */

    /* Exactly one span: one slab, then ENOMEM, then recovery after a free. */
    tslab *a = mk(one, 1, 65536, 0, 65536);
    REQUIRE(a != NULL);
    size_t per = tslab_slab_capacity(8, 65536);
    CHECK_EQ_U(per, 8192);
    tslab_handle *h = calloc(per + 1, sizeof *h);
    REQUIRE(h != NULL);
    for (size_t i = 0; i < per; i++) {
        uint64_t *p = tslab_alloc(a, 8, &h[i]);
        REQUIRE(p != NULL);
        *p = i;
    }
    errno = 0;
    CHECK(tslab_alloc(a, 8, &h[per]) == NULL);
    CHECK(errno == ENOMEM);
    CHECK(tslab_free(a, h[17]));
    uint64_t *p17 = tslab_alloc(a, 8, &h[17]);
    REQUIRE(p17 != NULL);
    *p17 = 17;
    for (size_t i = 0; i < per; i++) {
        uint64_t *p = tslab_handle_ptr(a, h[i]);
        REQUIRE(p != NULL);
        CHECK(*p == i);
    }
    for (size_t i = 0; i < per; i++)
        CHECK(tslab_free(a, h[i]));
    free(h);
    tslab_destroy(a);

    /* 1 MiB objects with 4 KiB slabs: one object per slab, every byte usable. */
    uint32_t mib = 1048576;
    a = mk(&mib, 1, 4096, 2, 0);
    REQUIRE(a != NULL);
    tslab_stats_read(a, st);
    CHECK_EQ_U(st->classes[0].objects_per_slab, 1);
    CHECK_EQ_U(st->classes[0].slab_bytes, 1048576);
    enum { NB = 6 };
    tslab_handle hb[NB];
    unsigned char *pb[NB];
    for (int i = 0; i < NB; i++) {
        pb[i] = tslab_alloc(a, mib, &hb[i]);
        REQUIRE(pb[i] != NULL);
        CHECK((uintptr_t)pb[i] % 16 == 0);
        memset(pb[i], 0x30 + i, mib);
    }
    for (int i = 0; i < NB; i++) {
        for (size_t j = 0; j < mib; j += 4093)
            CHECK(pb[i][j] == 0x30 + i);
        CHECK(pb[i][mib - 1] == 0x30 + i);
        CHECK(tslab_usable_size(a, pb[i]) == mib);
    }
    for (int i = 0; i < NB; i++)
        CHECK(tslab_free(a, hb[i]));
    for (int i = 0; i < NB; i++)
        CHECK(!tslab_free(a, hb[i]));
    tslab_destroy(a);

    /* 8-byte objects with 4 MiB slabs: 2^19 per slab; cross into the second slab. */
    a = mk(one, 1, (size_t)4 << 20, 1, 0);
    REQUIRE(a != NULL);
    per = tslab_slab_capacity(8, (size_t)4 << 20);
    CHECK_EQ_U(per, (size_t)1 << 19);
    size_t n = SANITIZED ? per / 8 : per + 1000;
    h = calloc(n, sizeof *h);
    REQUIRE(h != NULL);
    for (size_t i = 0; i < n; i++) {
        uint64_t *p = tslab_alloc(a, 8, &h[i]);
        REQUIRE(p != NULL);
        *p = i * 0x9E3779B97F4A7C15ull;
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t *p = tslab_handle_ptr(a, h[i]);
        REQUIRE(p != NULL);
        CHECK(*p == i * 0x9E3779B97F4A7C15ull);
    }
    for (size_t i = 0; i < n; i++)
        CHECK(tslab_free(a, h[i]));
    tslab_flush(a);
    tslab_stats_read(a, st);
    CHECK_EQ_U(st->classes[0].allocations, n);
    CHECK_EQ_U(st->classes[0].frees, n);
    CHECK_EQ_U(st->classes[0].slabs_partial + st->classes[0].slabs_full, 0);
    free(h);
    tslab_destroy(a);

    /* Huge class_max_bytes: either created (and works) or a clean ENOMEM; never a crash. */
    errno = 0;
    a = mk(&mib, 1, 0, 0, SANITIZED ? ((size_t)1 << 36) : SIZE_MAX);
    if (a == NULL) {
        CHECK(errno == ENOMEM);
        printf("class_max_bytes huge: ENOMEM (address space)\n");
    } else {
        tslab_handle hh;
        unsigned char *p = tslab_alloc(a, mib, &hh);
        REQUIRE(p != NULL);
        p[0] = 1;
        p[mib - 1] = 2;
        CHECK(tslab_free(a, hh));
        tslab_stats_read(a, st);
        printf("class_max_bytes huge: created, reserved %llu GiB\n",
               (unsigned long long)(st->reserved_bytes >> 30));
        tslab_destroy(a);
    }
    /* Tiny objects, class_max_bytes huge: the slot-index ceiling (2^26) bounds the class. */
    errno = 0;
    a = mk(one, 1, 4096, 0, SIZE_MAX);
    REQUIRE(a != NULL);
    tslab_stats_read(a, st);
    CHECK(st->reserved_bytes >= ((uint64_t)1 << 26) * 8);
    tslab_destroy(a);

    /* 64 classes from 8 B to 1 MiB at both slab extremes; 65 is refused. */
    uint32_t s64[65];
    for (int i = 0; i < 65; i++)
        s64[i] =
            i < 64 ? (uint32_t)((8u + (uint64_t)(1048576 - 8) * i * i / (63 * 63)) & ~7u) : 1048584;
    for (int i = 1; i < 64; i++)
        if (s64[i] <= s64[i - 1])
            s64[i] = s64[i - 1] + 8;
    s64[63] = 1048576;
    expect_einval(s64, 65, 0, 0);
    size_t sl[] = {4096, (size_t)4 << 20};
    for (int k = 0; k < 2; k++) {
        a = mk(s64, 64, sl[k], 0, SANITIZED ? ((size_t)64 << 20) : 0);
        REQUIRE(a != NULL);
        CHECK_EQ_U(tslab_class_count(a), 64);
        tslab_handle hh[64];
        unsigned char *pp[64];
        for (int i = 0; i < 64; i++) {
            size_t want = s64[i] - (i % 3 == 0 && s64[i] > 8 ? 7 : 0);
            pp[i] = tslab_alloc(a, want, &hh[i]);
            REQUIRE(pp[i] != NULL);
            CHECK_EQ_U(tslab_usable_size(a, pp[i]), s64[i]);
            CHECK_EQ_U(tslab_class_size(a, (size_t)i), s64[i]);
            CHECK(tslab_ptr_handle(a, pp[i]) == hh[i]);
            pp[i][0] = (unsigned char)i;
            pp[i][s64[i] - 1] = (unsigned char)~i;
        }
        /* realloc up through every class and back down, keeping the prefix. */
        unsigned char *r = tslab_malloc(a, 8);
        REQUIRE(r != NULL);
        memcpy(r, "abcdefg", 8);
        for (int i = 1; i < 64; i++) {
            r = tslab_realloc(a, r, s64[i]);
            REQUIRE(r != NULL);
            CHECK(tslab_usable_size(a, r) == s64[i] && memcmp(r, "abcdefg", 8) == 0);
        }
        for (int i = 62; i >= 0; i--) {
            r = tslab_realloc(a, r, s64[i]);
            REQUIRE(r != NULL);
            CHECK(tslab_usable_size(a, r) == s64[i] && memcmp(r, "abcdefg", 8) == 0);
        }
        CHECK(tslab_free_ptr(a, r));
        for (int i = 0; i < 64; i++) {
            CHECK(pp[i][0] == (unsigned char)i && pp[i][s64[i] - 1] == (unsigned char)~i);
            CHECK(tslab_free(a, hh[i]));
        }
        tslab_destroy(a);
    }
    free(st);
}

/* ------------------------------------------------------------------------------------------ */
/* 3. Forged handles: every two-bit flip (parity preserved) of live handles, two instances.     */

typedef struct stamped {
    uint64_t magic;
    uint64_t index;
} stamped;
#define MAGIC 0x5EA15EA1DEADBEEFull

static void forged_two_bit_flips(void)
{
    static uint32_t sizes[64];
    for (int i = 0; i < 64; i++)
        sizes[i] = 16 + 16 * (uint32_t)i;
    /* Valgrind can map about 128 GiB in all: keep two 64-class instances well below it. */
    size_t cmax = SANITIZED ? (size_t)64 << 20 : 0;
    tslab *a = mk(sizes, 64, 4096, 0, cmax);
    tslab *b = mk(sizes, 64, 4096, 0, cmax);
    REQUIRE(a && b);
    enum { N = 200 };
    unsigned long nflip = SANITIZED ? 60 : N;
    tslab_handle h[N], hb[N];
    stamped *p[N];
    int live[N];
    for (int i = 0; i < N; i++) {
        p[i] = tslab_alloc(a, sizes[i % 64], &h[i]);
        REQUIRE(p[i] != NULL);
        p[i]->magic = MAGIC;
        p[i]->index = (uint64_t)i;
        live[i] = 1;
        CHECK(tslab_alloc(b, sizes[i % 64], &hb[i]) != NULL);
    }
    unsigned long accepted = 0, accepted_b = 0, tried = 0;
    for (unsigned long i = 0; i < nflip; i++)
        for (int x = 0; x < 64; x++)
            for (int y = x + 1; y < 64; y++) {
                tslab_handle f = h[i] ^ (UINT64_C(1) << x) ^ (UINT64_C(1) << y);
                for (int inst = 0; inst < 2; inst++) {
                    tslab *t = inst ? b : a;
                    stamped *q = tslab_handle_ptr(t, f);
                    bool ok = tslab_free(t, f);
                    tried++;
                    if (q == NULL) {
                        CHECK(!ok);
                        continue;
                    }
                    /* A forged value that names a live object frees exactly it. */
                    CHECK(ok);
                    accepted++;
                    accepted_b += t == b;
                    if (t == a) {
                        REQUIRE(q->magic == MAGIC && q->index < N); /* indexes p[] */
                        CHECK(live[q->index]);
                        CHECK(p[q->index] == q);
                        live[q->index] = 0;
                    }
                }
            }
    for (int i = 0; i < N; i++) {
        if (!live[i])
            continue;
        CHECK(p[i]->magic == MAGIC && p[i]->index == (uint64_t)i);
        CHECK(tslab_handle_ptr(a, h[i]) == p[i]);
        CHECK(tslab_free(a, h[i]));
    }
    /* a and b have the same classes and the same allocation history, so b's i-th handle is
     * a's with the tag bits changed: when the two tags differ in two bits, that flip of a's
     * handle is exactly b's live handle (generations do not depend on the instance). */
    printf("two-bit flips: %lu frees tried, %lu named a live object (%lu of them in the other "
           "instance)\n",
           tried, accepted, accepted_b);
    tslab_destroy(a);
    tslab_destroy(b);
}

/* ------------------------------------------------------------------------------------------ */
/* 4. One thread alternating between more instances than the fast map has entries.             */

static void fastmap_collisions(void)
{
    enum { NI = 21, LIVE = 40 };
    uint32_t sz[] = {32, 48, 4096};
    tslab *in[NI];
    tslab_handle hs[NI][LIVE];
    stamped *ps[NI][LIVE];
    unsigned long allocs[NI] = {0}, frees[NI] = {0}, foreign[NI] = {0};
    for (int i = 0; i < NI; i++) {
        in[i] = mk(sz, 3, 0, 1, 0);
        REQUIRE(in[i] != NULL);
        for (int j = 0; j < LIVE; j++) {
            ps[i][j] = tslab_alloc(in[i], sz[j % 3], &hs[i][j]);
            CHECK(ps[i][j] != NULL);
            ps[i][j]->magic = MAGIC ^ (uint64_t)i;
            ps[i][j]->index = (uint64_t)j;
            allocs[i]++;
        }
    }
    unsigned long long rng = 0x1234567;
    unsigned long rounds = scaled(200000);
    for (unsigned long r = 0; r < rounds; r++) {
        int i = (int)(rng_next(&rng) % NI), j = (int)(rng_next(&rng) % LIVE);
        int o = (int)(rng_next(&rng) % NI);
        stamped *p = ps[i][j];
        CHECK(p->magic == (MAGIC ^ (uint64_t)i) && p->index == (uint64_t)j);
        if (o != i) { /* the other instance must reject both forms as foreign */
            CHECK(!tslab_free(in[o], hs[i][j]));
            CHECK(!tslab_free_ptr(in[o], p));
            CHECK(tslab_handle_ptr(in[o], hs[i][j]) == NULL);
            CHECK(tslab_usable_size(in[o], p) == 0);
            foreign[o] += 2;
        }
        if (r & 1)
            CHECK(tslab_free(in[i], hs[i][j]));
        else
            CHECK(tslab_free_ptr(in[i], p));
        frees[i]++;
        p = tslab_alloc(in[i], sz[j % 3], &hs[i][j]);
        REQUIRE(p != NULL);
        p->magic = MAGIC ^ (uint64_t)i;
        p->index = (uint64_t)j;
        ps[i][j] = p;
        allocs[i]++;
    }
    for (int i = 0; i < NI; i++) {
        tslab_stats st;
        tslab_stats_read(in[i], &st);
        uint64_t al = 0, fr = 0;
        for (unsigned c = 0; c < st.class_count; c++) {
            al += st.classes[c].allocations;
            fr += st.classes[c].frees;
            CHECK_EQ_U(st.classes[c].rejected_foreign + st.classes[c].rejected_invalid +
                           st.classes[c].rejected_double + st.classes[c].rejected_stale,
                       0);
        }
        CHECK_EQ_U(al, allocs[i]);
        CHECK_EQ_U(fr, frees[i]);
        CHECK_EQ_U(st.unattributed.rejected_foreign, foreign[i]);
        CHECK_EQ_U(st.unattributed.rejected_invalid, 0);
        tslab_destroy(in[i]);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* 5. Stale thread-cache maps: a thread keeps entries of a destroyed instance; its tag is reused
 *    (and another instance collides in the fast map); the thread then uses the new instances,
 *    and another such thread exits without touching them. */

static pthread_barrier_t bar2, bar3;
static tslab *volatile stale_A, *volatile stale_B, *volatile stale_C;
static tslab_handle stale_hB[100];

static void *stale_worker(void *arg)
{
    int uses_new = (int)(intptr_t)arg;
    tslab_handle h[10];
    for (int i = 0; i < 10; i++)
        CHECK(tslab_alloc(stale_A, 64, &h[i]) != NULL);
    for (int i = 0; i < 5; i++)
        CHECK(tslab_free(stale_A, h[i])); /* these stay in this thread's cache */
    pthread_barrier_wait(&bar3);          /* A is destroyed; B reuses its tag, C collides */
    pthread_barrier_wait(&bar3);
    if (uses_new) {
        for (int i = 0; i < 100; i++) {
            stamped *p = tslab_alloc(stale_B, 64, &stale_hB[i]);
            REQUIRE(p != NULL);
            p->magic = MAGIC;
            p->index = (uint64_t)i;
        }
        for (int i = 0; i < 50; i++)
            CHECK(tslab_free(stale_B, stale_hB[i]));
        tslab_handle hc;
        CHECK(tslab_alloc(stale_C, 64, &hc) != NULL);
        CHECK(tslab_free(stale_C, hc));
        tslab_flush(stale_B);
        tslab_flush(stale_C);
    }
    return NULL;
}

static void stale_tls_after_destroy(void)
{
    uint32_t s = 64;
    stale_A = mk(&s, 1, 0, TSLAB_CACHE_NONE, 1 << 20);
    REQUIRE(stale_A != NULL);
    tslab_handle ha;
    CHECK(tslab_alloc(stale_A, 64, &ha) != NULL);
    unsigned tagA = tag_of(ha);
    pthread_barrier_init(&bar3, NULL, 3);
    pthread_t t1, t2;
    REQUIRE(pthread_create(&t1, NULL, stale_worker, (void *)1) == 0);
    REQUIRE(pthread_create(&t2, NULL, stale_worker, (void *)0) == 0);
    pthread_barrier_wait(&bar3);
    tslab_destroy(stale_A);
    stale_A = NULL;
    tslab *B = NULL, *C = NULL;
    for (int k = 0; k < 2 * 511 + 2 && (B == NULL || C == NULL); k++) {
        tslab *x = mk(&s, 1, 0, TSLAB_CACHE_NONE, 1 << 20);
        REQUIRE(x != NULL);
        tslab_handle hx;
        CHECK(tslab_alloc(x, 64, &hx) != NULL);
        CHECK(tslab_free(x, hx));
        unsigned t = tag_of(hx);
        if (B == NULL && t == tagA)
            B = x;
        else if (C == NULL && t != tagA && (t & 7) == (tagA & 7))
            C = x;
        else
            tslab_destroy(x);
    }
    REQUIRE(B != NULL);
    REQUIRE(C != NULL);
    stale_B = B;
    stale_C = C;
    /* A's old handle is just a 64-bit value to B: rejected (B's only object was freed). Slots
     * start at generations that depend on (class, slot) only, so after a tag is reused the
     * destroyed instance's handles decode to the very same (slot, generation) as the new
     * instance's: B's first handle equals A's first handle bit for bit, and ha reads as a double
     * free of it. Allowed by the contract (handles of a destroyed instance must not be used),
     * but the 2^-22 protection is lost; see the review report. */
    CHECK(tslab_handle_ptr(B, ha) == NULL);
    CHECK(!tslab_free(B, ha));
    tslab_handle hb0;
    void *pb0 = tslab_alloc(B, 64, &hb0);
    REQUIRE(pb0 != NULL);
    printf("tag %u reused: A's first handle %s B's live object after reuse\n", tagA,
           tslab_handle_ptr(B, ha) == pb0 ? "NAMES" : "does not name");
    CHECK(tslab_free(B, hb0));
    tslab_stats st0;
    tslab_stats_read(B, &st0);
    uint64_t dbl0 = st0.classes[0].rejected_double;
    pthread_barrier_wait(&bar3);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    pthread_barrier_destroy(&bar3);
    tslab_stats st;
    tslab_stats_read(B, &st);
    CHECK_EQ_U(st.classes[0].allocations, 102); /* ours + the worker's 100 */
    CHECK_EQ_U(st.classes[0].frees, 52);
    CHECK_EQ_U(st.classes[0].live_objects, 50);
    for (int i = 50; i < 100; i++) { /* a thread that never allocated them frees them */
        stamped *p = tslab_handle_ptr(B, stale_hB[i]);
        REQUIRE(p != NULL);
        CHECK(p->magic == MAGIC && p->index == (uint64_t)i);
        CHECK(tslab_free(B, stale_hB[i]));
        CHECK(!tslab_free(B, stale_hB[i]));
    }
    tslab_flush(B);
    tslab_stats_read(B, &st);
    CHECK_EQ_U(st.classes[0].live_objects, 0);
    CHECK_EQ_U(st.classes[0].rejected_double - dbl0, 50);
    CHECK_EQ_U(st.classes[0].slabs_partial + st.classes[0].slabs_full + st.classes[0].slabs_cached,
               0);
    tslab_destroy(B);
    tslab_destroy(C);
}

/* ------------------------------------------------------------------------------------------ */
/* 6. Thread exit vs tslab_destroy, and exits racing with create/destroy on other threads.      */

static tslab *volatile round_X;
static tslab *shared_S;
static _Atomic unsigned long shared_allocs, shared_frees;

static void *round_worker(void *arg)
{
    (void)arg;
    tslab_handle h[50], hs[20];
    for (int i = 0; i < 50; i++)
        CHECK(tslab_alloc(round_X, 64 + 64 * (i % 3), &h[i]) != NULL);
    for (int i = 0; i < 50; i += 2)
        CHECK(tslab_free(round_X, h[i]));
    for (int i = 0; i < 20; i++)
        CHECK(tslab_alloc(shared_S, 128, &hs[i]) != NULL);
    for (int i = 0; i < 20; i++)
        CHECK(tslab_free(shared_S, hs[i]));
    atomic_fetch_add(&shared_allocs, 20);
    atomic_fetch_add(&shared_frees, 20);
    pthread_barrier_wait(&bar2); /* main destroys X while we still hold its cache */
    pthread_barrier_wait(&bar2);
    return NULL; /* exit: X is gone, its tag may already name another instance */
}

static _Atomic int churn_stop;
static _Atomic unsigned long churn_created;
static void *create_destroy_churn(void *arg)
{
    unsigned long long rng = 99 + (uintptr_t)arg;
    uint32_t sizes[] = {16, 48, 200};
    /* At least 300 instances each, so that with the rounds' the 511 tags wrap around. */
    for (unsigned long mine = 0; !atomic_load(&churn_stop) || mine < 300; mine++) {
        atomic_fetch_add(&churn_created, 1);
        tslab *x = mk(sizes, 3, 4096, rng_next(&rng) % 3, 1 << 20);
        REQUIRE(x != NULL);
        tslab_handle h[30];
        for (int i = 0; i < 30; i++)
            CHECK(tslab_alloc(x, sizes[i % 3], &h[i]) != NULL);
        for (int i = 0; i < 30; i += 1 + (int)(rng_next(&rng) % 2))
            CHECK(tslab_free(x, h[i]));
        tslab_destroy(x); /* live objects and this thread's cache go with it */
    }
    return NULL;
}

static void thread_exit_vs_destroy(void)
{
    shared_S = mk(NULL, 0, 0, 1, 0);
    REQUIRE(shared_S != NULL);
    atomic_store(&churn_stop, 0);
    pthread_t ch[2];
    for (int i = 0; i < 2; i++)
        REQUIRE(pthread_create(&ch[i], NULL, create_destroy_churn, (void *)(intptr_t)i) == 0);
    enum { W = 3 };
    /* With the churn threads' instances (300 each at least), the 511 tags wrap. Memcheck
     * serialises threads, so its build does fewer rounds. */
#ifdef TSLAB_VALGRIND
    unsigned long rounds = 15;
#else
    unsigned long rounds = SANITIZED ? 60 : 200;
#endif
    for (unsigned long r = 0; r < rounds; r++) {
        round_X = mk(NULL, 0, 0, r % 3, 1 << 22);
        REQUIRE(round_X != NULL);
        pthread_barrier_init(&bar2, NULL, W + 1);
        pthread_t t[W];
        for (int i = 0; i < W; i++)
            REQUIRE(pthread_create(&t[i], NULL, round_worker, NULL) == 0);
        pthread_barrier_wait(&bar2);
        tslab_destroy(round_X);
        round_X = NULL;
        pthread_barrier_wait(&bar2);
        for (int i = 0; i < W; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&bar2);
    }
    atomic_store(&churn_stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(ch[i], NULL);
    tslab_flush(shared_S);
    tslab_stats st;
    tslab_stats_read(shared_S, &st);
    CHECK_EQ_U(st.classes[2].allocations, atomic_load(&shared_allocs));
    CHECK_EQ_U(st.classes[2].frees, atomic_load(&shared_frees));
    CHECK_EQ_U(st.classes[2].live_objects, 0);
    CHECK_EQ_U(st.classes[2].slabs_partial + st.classes[2].slabs_full, 0);
    printf("exit vs destroy: %lu rounds of %d threads, %lu instances created meanwhile, %llu "
           "objects through the shared instance\n",
           rounds, W, atomic_load(&churn_created), (unsigned long long)st.classes[2].allocations);
    CHECK(rounds + atomic_load(&churn_created) > 511);
    tslab_destroy(shared_S);
}

/* ------------------------------------------------------------------------------------------ */
/* 7. Flush and purge racing with churn; counters monotonic across every snapshot.              */

static tslab *race_A;
static _Atomic int race_done;
static _Atomic unsigned long race_allocs, race_frees;

static void *race_churner(void *arg)
{
    uintptr_t me = (uintptr_t)arg;
    enum { SLOTS = 1500 };
    tslab_handle *h = calloc(SLOTS, sizeof *h);
    stamped **p = calloc(SLOTS, sizeof *p);
    REQUIRE(h && p);
    unsigned long long rng = 77 + me;
    unsigned long al = 0, fr = 0;
    unsigned long iters = scaled(SANITIZED ? 60000 : 400000);
    for (unsigned long it = 0; it < iters; it++) {
        unsigned k = (unsigned)(rng_next(&rng) % SLOTS);
        if (p[k]) {
            CHECK(p[k]->magic == (MAGIC ^ me) && p[k]->index == k);
            p[k]->magic = 0;
            CHECK((it & 1) ? tslab_free(race_A, h[k]) : tslab_free_ptr(race_A, p[k]));
            p[k] = NULL;
            fr++;
        } else {
            p[k] = tslab_alloc(race_A, 100 + (k % 4) * 200, &h[k]);
            REQUIRE(p[k] != NULL);
            p[k]->magic = MAGIC ^ me;
            p[k]->index = k;
            al++;
        }
        if ((it & 4095) == 0)
            tslab_flush(race_A);
    }
    for (unsigned k = 0; k < SLOTS; k++)
        if (p[k]) {
            CHECK(p[k]->magic == (MAGIC ^ me) && p[k]->index == k);
            CHECK(tslab_free(race_A, h[k]));
            fr++;
        }
    atomic_fetch_add(&race_allocs, al);
    atomic_fetch_add(&race_frees, fr);
    free(h);
    free(p);
    atomic_fetch_add(&race_done, 1);
    return NULL;
}

static void *race_maint(void *arg)
{
    (void)arg;
    tslab_stats *prev = calloc(1, sizeof *prev), *cur = calloc(1, sizeof *cur);
    REQUIRE(prev && cur);
    tslab_stats_read(race_A, prev);
    unsigned long n = 0;
    while (atomic_load(&race_done) < 2) {
        tslab_flush(race_A);
        CHECK(tslab_purge(race_A) == 0);
        tslab_stats_read(race_A, cur);
        check_monotonic(prev, cur);
        tslab_stats *t = prev;
        prev = cur;
        cur = t;
        n++;
    }
    printf("flush/purge race: %lu purges and snapshots\n", n);
    free(prev);
    free(cur);
    return NULL;
}

static void flush_purge_race(void)
{
    race_A = mk(NULL, 0, 4096, 1, 0);
    REQUIRE(race_A != NULL);
    atomic_store(&race_done, 0);
    pthread_t t[3];
    REQUIRE(pthread_create(&t[0], NULL, race_churner, (void *)0) == 0);
    REQUIRE(pthread_create(&t[1], NULL, race_churner, (void *)1) == 0);
    REQUIRE(pthread_create(&t[2], NULL, race_maint, NULL) == 0);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    tslab_flush(race_A);
    CHECK(tslab_purge(race_A) == 0);
    tslab_stats st;
    tslab_stats_read(race_A, &st);
    uint64_t al = 0, fr = 0, held = 0, res = 0;
    for (unsigned c = 0; c < st.class_count; c++) {
        al += st.classes[c].allocations;
        fr += st.classes[c].frees;
        held += st.classes[c].slabs_partial + st.classes[c].slabs_full + st.classes[c].slabs_cached;
        res += st.classes[c].slabs_released;
    }
    CHECK_EQ_U(al, atomic_load(&race_allocs));
    CHECK_EQ_U(fr, atomic_load(&race_frees));
    CHECK_EQ_U(held, 0); /* every thread exited or flushed; purge released every cached slab */
    CHECK(res > 0);
    tslab_destroy(race_A);
}

/* ------------------------------------------------------------------------------------------ */
/* 8. Counters stay monotonic while waves of threads exit; objects cross threads.               */

static tslab *mono_A;
static _Atomic int mono_stop;
enum { MONO_W = 4, MONO_PER = 300 };
static tslab_handle mono_hand[MONO_W][MONO_PER]; /* wave k allocates, wave k+1 frees */

static void *mono_reader(void *arg)
{
    (void)arg;
    tslab_stats *prev = calloc(1, sizeof *prev), *cur = calloc(1, sizeof *cur);
    REQUIRE(prev && cur);
    tslab_stats_read(mono_A, prev);
    while (!atomic_load(&mono_stop)) {
        tslab_stats_read(mono_A, cur);
        check_monotonic(prev, cur);
        tslab_stats *t = prev;
        prev = cur;
        cur = t;
    }
    free(prev);
    free(cur);
    return NULL;
}

static void *mono_worker(void *arg)
{
    int w = (int)(intptr_t)arg;
    for (int i = 0; i < MONO_PER; i++) {
        if (mono_hand[w][i]) { /* an object of the previous wave's thread */
            stamped *p = tslab_handle_ptr(mono_A, mono_hand[w][i]);
            REQUIRE(p != NULL);
            CHECK(p->index == (uint64_t)i);
            CHECK(tslab_free(mono_A, mono_hand[w][i]));
        }
        stamped *p = tslab_alloc(mono_A, 16 + (size_t)(i % 8) * 90, &mono_hand[w][i]);
        REQUIRE(p != NULL);
        p->magic = MAGIC;
        p->index = (uint64_t)i;
    }
    return NULL;
}

static void stats_monotonic_across_exits(void)
{
    mono_A = mk(NULL, 0, 0, 2, 0);
    REQUIRE(mono_A != NULL);
    memset(mono_hand, 0, sizeof mono_hand);
    atomic_store(&mono_stop, 0);
    pthread_t rd;
    REQUIRE(pthread_create(&rd, NULL, mono_reader, NULL) == 0);
    unsigned long waves = scaled(SANITIZED ? 40 : 300);
    for (unsigned long v = 0; v < waves; v++) {
        pthread_t t[MONO_W];
        for (int i = 0; i < MONO_W; i++) /* worker i frees what worker i-1 of the last wave kept */
            REQUIRE(pthread_create(&t[i], NULL, mono_worker,
                                   (void *)(intptr_t)((i + (int)v) % MONO_W)) == 0);
        for (int i = 0; i < MONO_W; i++)
            pthread_join(t[i], NULL);
    }
    atomic_store(&mono_stop, 1);
    pthread_join(rd, NULL);
    for (int w = 0; w < MONO_W; w++)
        for (int i = 0; i < MONO_PER; i++)
            CHECK(tslab_free(mono_A, mono_hand[w][i]));
    tslab_flush(mono_A);
    tslab_stats st;
    tslab_stats_read(mono_A, &st);
    uint64_t al = 0, fr = 0;
    for (unsigned c = 0; c < st.class_count; c++) {
        al += st.classes[c].allocations;
        fr += st.classes[c].frees;
        CHECK_EQ_U(st.classes[c].live_objects, 0);
        CHECK_EQ_U(st.classes[c].slabs_partial + st.classes[c].slabs_full, 0);
    }
    CHECK_EQ_U(al, waves * MONO_W * MONO_PER);
    CHECK_EQ_U(fr, al);
    tslab_destroy(mono_A);
}

/* ------------------------------------------------------------------------------------------ */
/* 9. Stale handles racing with the owner's reuse of the same slot (generation ABA).            */

static tslab *aba_A;
static _Atomic tslab_handle aba_stale;
static _Atomic int aba_done;
static _Atomic unsigned long aba_accepted;
static _Atomic unsigned long aba_tries[2]; /* stale frees each attacker has made */
static pthread_barrier_t aba_start;
#define ABA_MIN_TRIES 1000

static unsigned long aba_min_tries(void)
{
    unsigned long a = atomic_load(&aba_tries[0]), b = atomic_load(&aba_tries[1]);
    return a < b ? a : b;
}

/* Reuses one slot over and over; keeps going past its own count until both attackers have
 * tried enough stale frees, so the race is exercised however the threads get scheduled. */
static void *aba_owner(void *arg)
{
    (void)arg;
    unsigned long iters = scaled(SANITIZED ? 50000 : 500000);
    pthread_barrier_wait(&aba_start);
    for (unsigned long i = 0; i < iters || aba_min_tries() < ABA_MIN_TRIES; i++) {
        tslab_handle h;
        stamped *p = tslab_alloc(aba_A, 64, &h);
        REQUIRE(p != NULL);
        p->magic = MAGIC;
        p->index = i;
        CHECK(p->magic == MAGIC && p->index == i);
        CHECK(tslab_handle_ptr(aba_A, h) == p);
        CHECK(tslab_free(aba_A, h)); /* a stale free must never have taken our object */
        atomic_store_explicit(&aba_stale, h, memory_order_release);
    }
    atomic_store(&aba_done, 1);
    return NULL;
}

static void *aba_attacker(void *arg)
{
    _Atomic unsigned long *tries = &aba_tries[(intptr_t)arg];
    pthread_barrier_wait(&aba_start);
    while (!atomic_load(&aba_done)) {
        tslab_handle h = atomic_load_explicit(&aba_stale, memory_order_acquire);
        if (h == 0)
            continue;
        if (tslab_free(aba_A, h)) /* already freed by the owner: only false is right */
            atomic_fetch_add(&aba_accepted, 1);
        CHECK(tslab_handle_ptr(aba_A, h) == NULL);
        atomic_fetch_add(tries, 1);
    }
    return NULL;
}

static void stale_handle_aba(void)
{
    aba_A = mk(NULL, 0, 0, 0, 0);
    REQUIRE(aba_A != NULL);
    atomic_store(&aba_stale, 0);
    atomic_store(&aba_done, 0);
    atomic_store(&aba_accepted, 0);
    atomic_store(&aba_tries[0], 0);
    atomic_store(&aba_tries[1], 0);
    REQUIRE(pthread_barrier_init(&aba_start, NULL, 3) == 0);
    pthread_t o, x[2];
    REQUIRE(pthread_create(&o, NULL, aba_owner, NULL) == 0);
    for (intptr_t i = 0; i < 2; i++)
        REQUIRE(pthread_create(&x[i], NULL, aba_attacker, (void *)i) == 0);
    pthread_join(o, NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(x[i], NULL);
    pthread_barrier_destroy(&aba_start);
    CHECK(aba_min_tries() >= ABA_MIN_TRIES);
    CHECK_EQ_U(atomic_load(&aba_accepted), 0);
    printf("stale handle ABA: %lu and %lu stale frees against a slot reused meanwhile, none "
           "accepted\n",
           (unsigned long)atomic_load(&aba_tries[0]), (unsigned long)atomic_load(&aba_tries[1]));
    tslab_destroy(aba_A);
}

/* ------------------------------------------------------------------------------------------ */
/* 10. Out of memory under threads: every NULL is ENOMEM, no slot is handed out twice, and all
 *     threads recover.                                                                          */

static _Atomic int oom_fail;
static _Atomic unsigned long oom_refused;
static int oom_commit(void *ctx, void *p, size_t n)
{
    (void)ctx;
    if (atomic_load(&oom_fail)) {
        atomic_fetch_add(&oom_refused, 1);
        return -ENOMEM;
    }
    return tslab_os_default()->commit(NULL, p, n);
}
static void *oom_reserve(void *ctx, size_t n)
{
    (void)ctx;
    return tslab_os_default()->reserve(NULL, n);
}
static int oom_decommit(void *ctx, void *p, size_t n)
{
    (void)ctx;
    return tslab_os_default()->decommit(NULL, p, n);
}
static void oom_release(void *ctx, void *p, size_t n)
{
    (void)ctx;
    tslab_os_default()->release(NULL, p, n);
}
static const tslab_os oom_os = {oom_reserve, oom_commit, oom_decommit, oom_release, NULL, NULL};
static tslab *oom_A;
static pthread_barrier_t oom_bar;

static void *oom_worker(void *arg)
{
    uintptr_t me = (uintptr_t)arg;
    enum { MAXO = 4000 };
    tslab_handle *h = calloc(MAXO, sizeof *h);
    stamped **p = calloc(MAXO, sizeof *p);
    REQUIRE(h && p);
    int n = 0, nulls = 0;
    pthread_barrier_wait(&oom_bar); /* phase 1: commits refused */
    while (n < MAXO / 2 && nulls < 50) {
        errno = 0;
        stamped *q = tslab_alloc(oom_A, 4000, &h[n]);
        if (q == NULL) {
            CHECK(errno == ENOMEM);
            nulls++;
            continue;
        }
        q->magic = MAGIC ^ me;
        q->index = (uint64_t)n;
        p[n++] = q;
    }
    pthread_barrier_wait(&oom_bar);
    pthread_barrier_wait(&oom_bar); /* phase 2: memory is back */
    for (int i = 0; i < 500; i++) {
        stamped *q = tslab_alloc(oom_A, 4000, &h[n]);
        REQUIRE(q != NULL);
        q->magic = MAGIC ^ me;
        q->index = (uint64_t)n;
        p[n++] = q;
    }
    for (int i = 0; i < n; i++) {
        CHECK(p[i]->magic == (MAGIC ^ me) && p[i]->index == (uint64_t)i);
        CHECK(tslab_free(oom_A, h[i]));
    }
    free(h);
    free(p);
    return NULL;
}

static void oom_under_threads(void)
{
    tslab_config c = {0};
    uint32_t sz = 4000;
    c.sizes = &sz;
    c.size_count = 1;
    c.slab_bytes = 4096;
    c.os = &oom_os;
    atomic_store(&oom_fail, 0);
    oom_A = tslab_create(&c);
    REQUIRE(oom_A != NULL);
    /* Warm: a little committed memory, so some slabs exist before the refusal. */
    tslab_handle w[40];
    for (int i = 0; i < 40; i++)
        CHECK(tslab_alloc(oom_A, 4000, &w[i]) != NULL);
    for (int i = 0; i < 40; i++)
        CHECK(tslab_free(oom_A, w[i]));
    tslab_flush(oom_A);
    atomic_store(&oom_fail, 1);
    enum { W = 3 };
    pthread_barrier_init(&oom_bar, NULL, W + 1);
    pthread_t t[W];
    for (int i = 0; i < W; i++)
        REQUIRE(pthread_create(&t[i], NULL, oom_worker, (void *)(intptr_t)i) == 0);
    pthread_barrier_wait(&oom_bar);
    pthread_barrier_wait(&oom_bar);
    CHECK(atomic_load(&oom_refused) > 0);
    atomic_store(&oom_fail, 0);
    pthread_barrier_wait(&oom_bar);
    for (int i = 0; i < W; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&oom_bar);
    tslab_flush(oom_A);
    tslab_stats st;
    tslab_stats_read(oom_A, &st);
    CHECK_EQ_U(st.classes[0].live_objects, 0);
    CHECK(st.classes[0].os_failures > 0);
    CHECK_EQ_U(st.classes[0].slabs_partial + st.classes[0].slabs_full, 0);
    printf("oom under threads: %lu commits refused, %llu os failures counted\n",
           atomic_load(&oom_refused), (unsigned long long)st.classes[0].os_failures);
    tslab_destroy(oom_A);
}

/* ------------------------------------------------------------------------------------------ */
/* 11. fork() while other threads churn: the child can allocate, free and destroy.               */

static tslab *fork_A;
static _Atomic int fork_stop;
static pthread_barrier_t fork_bar;

static void *fork_churner(void *arg)
{
    (void)arg;
    tslab_handle h[64];
    /* Thread caches are made (malloc) before the first fork: see the ASan note below. */
    for (size_t s = 64; s <= 256; s += 64) {
        CHECK(tslab_alloc(fork_A, s, &h[0]) != NULL);
        CHECK(tslab_free(fork_A, h[0]));
    }
    pthread_barrier_wait(&fork_bar);
    while (!atomic_load(&fork_stop)) {
        for (int i = 0; i < 64; i++)
            CHECK(tslab_alloc(fork_A, 64 + 64 * (size_t)(i % 4), &h[i]) != NULL);
        for (int i = 0; i < 64; i++)
            CHECK(tslab_free(fork_A, h[i]));
        tslab_flush(fork_A);
        /* The registry lock too. Not under ASan: its allocator (gcc 12's libasan) takes no
         * locks around fork(), so a child's malloc deadlocks whenever this thread held the same
         * size-class lock at the fork; creating instances is malloc. Our own locks are still
         * held across forks by the loop above. */
        if (ASAN_ON)
            continue;
        tslab *x = mk(NULL, 0, 0, 0, 1 << 20);
        REQUIRE(x != NULL);
        tslab_destroy(x);
    }
    return NULL;
}

static void fork_child_body(void)
{
    tslab_handle h[1000];
    for (int i = 0; i < 1000; i++) {
        stamped *p = tslab_alloc(fork_A, 100, &h[i]);
        if (p == NULL)
            _exit(2);
        p->magic = MAGIC;
        p->index = (uint64_t)i;
    }
    for (int i = 0; i < 1000; i++) {
        stamped *p = tslab_handle_ptr(fork_A, h[i]);
        if (p == NULL || p->magic != MAGIC || p->index != (uint64_t)i || !tslab_free(fork_A, h[i]))
            _exit(3);
    }
    tslab_stats st;
    if (tslab_stats_read(fork_A, &st) != 0)
        _exit(4);
    tslab *x = mk(NULL, 0, 0, 0, 1 << 20);
    if (x == NULL)
        _exit(5);
    tslab_destroy(x);
    tslab_destroy(fork_A);
}

static void fork_during_churn(void)
{
    fork_A = mk(NULL, 0, 0, 1, 0);
    REQUIRE(fork_A != NULL);
    atomic_store(&fork_stop, 0);
    tslab_handle h;
    CHECK(tslab_alloc(fork_A, 100, &h) != NULL); /* our own thread cache, before any fork */
    CHECK(tslab_free(fork_A, h));
    pthread_barrier_init(&fork_bar, NULL, 3);
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        REQUIRE(pthread_create(&t[i], NULL, fork_churner, NULL) == 0);
    pthread_barrier_wait(&fork_bar);
    int forks = SANITIZED ? 5 : 30;
    for (int i = 0; i < forks; i++) {
        int status = test_run_child(fork_child_body);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fprintf(stderr, "fork child: status %#x\n", status);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    atomic_store(&fork_stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&fork_bar);
    tslab_destroy(fork_A);
}

/* ------------------------------------------------------------------------------------------ */
/* 11b. A user's TLS destructor that runs after the allocator's own (its key was created later)
 *      frees and allocates: the cache it re-creates must be flushed too, not leaked.            */

static tslab *dtor_A;
static pthread_key_t dtor_key;
static tslab_handle dtor_h[8];

static void user_dtor(void *arg)
{
    (void)arg;
    for (int i = 0; i < 8; i++) /* objects allocated by the main thread */
        CHECK(tslab_free(dtor_A, dtor_h[i]));
    tslab_handle h;
    CHECK(tslab_alloc(dtor_A, 64, &h) != NULL);
    CHECK(tslab_free(dtor_A, h));
}

static void *dtor_worker(void *arg)
{
    (void)arg;
    tslab_handle h;
    CHECK(tslab_alloc(dtor_A, 64, &h) != NULL); /* binds: the allocator's key gets a value */
    CHECK(tslab_free(dtor_A, h));
    REQUIRE(pthread_setspecific(dtor_key, (void *)1) == 0);
    return NULL;
}

static void tls_destructor_order(void)
{
    dtor_A = mk(NULL, 0, 0, TSLAB_CACHE_NONE, 0);
    REQUIRE(dtor_A != NULL);
    tslab_handle h;
    CHECK(tslab_alloc(dtor_A, 64, &h) != NULL); /* the allocator's key exists before ours */
    CHECK(tslab_free(dtor_A, h));
    REQUIRE(pthread_key_create(&dtor_key, user_dtor) == 0);
    for (int i = 0; i < 8; i++)
        CHECK(tslab_alloc(dtor_A, 64, &dtor_h[i]) != NULL);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, dtor_worker, NULL) == 0);
    pthread_join(t, NULL);
    tslab_flush(dtor_A);
    tslab_stats st;
    tslab_stats_read(dtor_A, &st);
    CHECK_EQ_U(st.classes[0].allocations, 11);
    CHECK_EQ_U(st.classes[0].frees, 11);
    /* Nothing is stranded in a cache nobody will flush: every slab went back (cache none). */
    CHECK_EQ_U(st.classes[0].slabs_partial + st.classes[0].slabs_full, 0);
    pthread_key_delete(dtor_key);
    tslab_destroy(dtor_A);
}

/* ------------------------------------------------------------------------------------------ */
/* 12. Sanitizer quarantine: a freed slot is poisoned and not handed out again at once.          */

static void asan_quarantine(void)
{
#if ASAN_ON
    tslab *a = mk(NULL, 0, 0, 0, 0);
    REQUIRE(a != NULL);
    tslab_handle h;
    char *p = tslab_alloc(a, 64, &h);
    REQUIRE(p != NULL);
    CHECK(!__asan_address_is_poisoned(p) && !__asan_address_is_poisoned(p + 63));
    CHECK(tslab_free(a, h));
    CHECK(__asan_address_is_poisoned(p) && __asan_address_is_poisoned(p + 63));
    tslab_handle hs[200];
    for (int i = 0; i < 200; i++) {
        char *q = tslab_alloc(a, 64, &hs[i]);
        REQUIRE(q != NULL);
        CHECK(q != p);
        CHECK(!__asan_address_is_poisoned(q));
    }
    for (int i = 0; i < 200; i++)
        CHECK(tslab_free(a, hs[i]));
    CHECK(!tslab_free(a, h));
    tslab_handle again = alloc_until_reuse(a, 64, p);
    CHECK(!__asan_address_is_poisoned(p) && !__asan_address_is_poisoned(p + 63));
    CHECK(tslab_free(a, again));
    tslab_destroy(a);
#else
    printf("not an ASan build: skipped\n");
#endif
}

/* 12b. tslab_destroy must leave no ASan poison behind: the object region is unmapped, and the
 *      next mapping at that address (another instance's metadata, a thread stack, anyone's
 *      mmap) must be writable without a use-after-poison report. */

static void asan_destroy_unpoisons(void)
{
#if ASAN_ON
    uint32_t sz = 256;
    tslab *a = mk(&sz, 1, 65536, 0, (size_t)1 << 20);
    REQUIRE(a != NULL);
    tslab_handle h;
    char *p = tslab_alloc(a, 256, &h);
    REQUIRE(p != NULL);
    CHECK(tslab_free(a, h));
    tslab_flush(a);
    char *page = (char *)((uintptr_t)p & ~(uintptr_t)4095);
    tslab_destroy(a);
    int poisoned = __asan_address_is_poisoned(page) || __asan_address_is_poisoned(page + 4095);
    if (poisoned)
        fprintf(stderr, "after tslab_destroy, unmapped slab memory %p is still ASan-poisoned\n",
                (void *)page);
    void *m = mmap(page, 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (m == page) {
        CHECK(!poisoned); /* else this write is reported as use-after-poison */
        memset(m, 1, 4096);
        munmap(m, 4096);
    } else {
        if (m != MAP_FAILED)
            munmap(m, 4096);
        CHECK(!poisoned);
    }
#else
    printf("not an ASan build: skipped\n");
#endif
}

/* ------------------------------------------------------------------------------------------ */
/* 13. A NULL instance: every entry point must reject it (free, flush, purge and stats do; the
 *     allocation fast path must too: alloc_slow's own NULL check shows the intent).             */

static void null_instance_child(void)
{
    tslab_handle h = 0;
    errno = 0;
    if (tslab_alloc(NULL, 16, &h) != NULL || errno != EINVAL)
        _exit(10);
    errno = 0;
    if (tslab_malloc(NULL, 16) != NULL || errno != EINVAL)
        _exit(11);
    if (tslab_calloc(NULL, 1, 16) != NULL)
        _exit(12);
    if (tslab_realloc(NULL, NULL, 16) != NULL)
        _exit(13);
}

static void null_instance(void)
{
    CHECK(!tslab_free(NULL, 12345));
    CHECK(!tslab_free_ptr(NULL, &errno));
    CHECK(tslab_handle_ptr(NULL, 12345) == NULL);
    CHECK(tslab_usable_size(NULL, &errno) == 0);
    tslab_flush(NULL);
    CHECK(tslab_purge(NULL) == -EINVAL);
    int status = test_run_child(null_instance_child);
    if (WIFSIGNALED(status))
        fprintf(stderr, "tslab_alloc/tslab_malloc(NULL, ...) killed the process with signal %d\n",
                WTERMSIG(status));
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST_MAIN(T(ptr_slot_exhaustive), T(ptr_slot_class_boundaries), T(geometry_extremes),
          T(forged_two_bit_flips), T(fastmap_collisions), T(stale_tls_after_destroy),
          T(thread_exit_vs_destroy), T(flush_purge_race), T(stats_monotonic_across_exits),
          T(stale_handle_aba), T(oom_under_threads), T(fork_during_churn), T(tls_destructor_order),
          T(asan_quarantine), T(asan_destroy_unpoisons), T(null_instance))
