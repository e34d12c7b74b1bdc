/* SPDX-License-Identifier: MIT */
/* Single-threaded behaviour of the core through the public API. */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <tslab.h>

#include "testhelper.h"

static void fill(void *p, size_t n, unsigned v) { memset(p, (int)(v & 0xff), n); }
static int holds(const void *p, size_t n, unsigned v)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != (v & 0xff))
            return 0;
    return 1;
}

/* 20,000 x 128 B, free every other one, allocate again, verify every object's contents. */
static void single_thread_20k(void)
{
    enum { N = 20000 };
    static tslab_handle h[N];
    static void *p[N];
    tslab *a = tslab_create(NULL);
    REQUIRE(a != NULL);
    for (unsigned i = 0; i < N; i++) {
        p[i] = tslab_alloc(a, 128, &h[i]);
        CHECK(p[i] != NULL && h[i] != TSLAB_HANDLE_NONE);
        CHECK(((uintptr_t)p[i] & 15) == 0);
        fill(p[i], 128, i);
    }
    for (unsigned i = 0; i < N; i += 2)
        CHECK(tslab_free(a, h[i]));
    for (unsigned i = 1; i < N; i += 2)
        CHECK(holds(p[i], 128, i));
    for (unsigned i = 0; i < N; i += 2) {
        p[i] = tslab_alloc(a, 128, &h[i]);
        REQUIRE(p[i] != NULL);
        fill(p[i], 128, i * 7);
    }
    for (unsigned i = 0; i < N; i++) {
        CHECK(holds(p[i], 128, (i % 2) ? i : i * 7));
        CHECK(tslab_handle_ptr(a, h[i]) == p[i]);
    }
    /* all distinct */
    for (unsigned i = 1; i < N; i++)
        CHECK(p[i] != p[i - 1]);
    tslab_stats st;
    CHECK(tslab_stats_read(a, &st) == 0);
    CHECK(st.classes[2].object_size == 128); /* the 128-byte class is class 2 of the defaults */
    CHECK_EQ_U(st.classes[2].allocations, N + N / 2);
    CHECK_EQ_U(st.classes[2].frees, N / 2);
    CHECK_EQ_U(st.classes[2].live_objects, N);
    for (unsigned c = 0; c < st.class_count; c++)
        if (c != 2)
            CHECK_EQ_U(st.classes[c].allocations, 0);
    printf("20000 x 128 B: %llu allocations, %llu frees, %llu live, %llu slabs full, %llu "
           "partial\n",
           (unsigned long long)st.classes[2].allocations, (unsigned long long)st.classes[2].frees,
           (unsigned long long)st.classes[2].live_objects,
           (unsigned long long)st.classes[2].slabs_full,
           (unsigned long long)st.classes[2].slabs_partial);
    for (unsigned i = 0; i < N; i++)
        CHECK(tslab_free(a, h[i]));
    tslab_destroy(a);
}

static void bad_configs(void)
{
    uint32_t unsorted[] = {128, 64};
    uint32_t dup8[] = {60, 64}; /* both round to 64 */
    uint32_t zero[] = {0, 64};
    uint32_t huge[] = {64, TSLAB_OBJECT_MAX + 1};
    tslab_config c = {0};
    c.sizes = unsorted, c.size_count = 2;
    errno = 0;
    CHECK(tslab_create(&c) == NULL && errno == EINVAL);
    c.sizes = dup8;
    errno = 0;
    CHECK(tslab_create(&c) == NULL && errno == EINVAL);
    c.sizes = zero;
    errno = 0;
    CHECK(tslab_create(&c) == NULL && errno == EINVAL);
    c.sizes = huge;
    errno = 0;
    CHECK(tslab_create(&c) == NULL && errno == EINVAL);
    c.sizes = unsorted, c.size_count = 0;
    errno = 0;
    CHECK(tslab_create(&c) == NULL && errno == EINVAL);
    tslab_config d = {0};
    d.slab_bytes = 3000;
    errno = 0;
    CHECK(tslab_create(&d) == NULL && errno == EINVAL);
    d.slab_bytes = 65536 + 4096;
    errno = 0;
    CHECK(tslab_create(&d) == NULL && errno == EINVAL);
    char name[TSLAB_NAME_MAX + 1];
    memset(name, 'x', sizeof name - 1), name[sizeof name - 1] = 0;
    tslab_config e = {0};
    e.name = name;
    errno = 0;
    CHECK(tslab_create(&e) == NULL && errno == EINVAL);
    uint32_t many[TSLAB_CLASSES_MAX + 1];
    for (unsigned i = 0; i <= TSLAB_CLASSES_MAX; i++)
        many[i] = 8 * (i + 1);
    tslab_config f = {0};
    f.sizes = many, f.size_count = TSLAB_CLASSES_MAX + 1, f.class_max_bytes = 1 << 20;
    errno = 0;
    CHECK(tslab_create(&f) == NULL && errno == EINVAL);
    f.size_count = TSLAB_CLASSES_MAX; /* exactly the maximum works */
    tslab *a = tslab_create(&f);
    REQUIRE(a != NULL);
    CHECK(tslab_class_count(a) == TSLAB_CLASSES_MAX);
    tslab_destroy(a);
    tslab_destroy(NULL); /* no-op */
    /* An OS table with any entry NULL: EINVAL, not a crash on the first slab. */
    for (int hole = 0; hole < 4; hole++) {
        tslab_os os = *tslab_os_default();
        if (hole == 0)
            os.reserve = NULL;
        else if (hole == 1)
            os.commit = NULL;
        else if (hole == 2)
            os.decommit = NULL;
        else
            os.release = NULL;
        tslab_config g = {0};
        g.os = &os;
        errno = 0;
        CHECK(tslab_create(&g) == NULL && errno == EINVAL);
    }
}

/* Every int has a name, INT_MIN included (its negation would overflow). */
static void strerror_any(void)
{
    const int v[] = {0, EINVAL, -EINVAL, ENOMEM, -ENOMEM, INT_MIN, INT_MIN + 1, INT_MAX, -1, 1};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        const char *s = tslab_strerror(v[i]);
        REQUIRE(s != NULL);
        CHECK(s[0] != '\0');
    }
    CHECK(strcmp(tslab_strerror(-EINVAL), tslab_strerror(EINVAL)) == 0);
    CHECK(strcmp(tslab_strerror(INT_MIN), "unknown error") == 0);
}

/* Sizes map to the smallest class that holds them; no hidden header pushes 128 into 192. */
static void size_classes(void)
{
    tslab *a = tslab_create(NULL);
    CHECK(tslab_class_count(a) == 8);
    static const size_t expect[][2] = {{1, 64},    {64, 64},   {65, 96},   {96, 96},   {97, 128},
                                       {128, 128}, {129, 192}, {192, 192}, {256, 256}, {300, 384},
                                       {512, 512}, {513, 768}, {768, 768}};
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        tslab_handle h;
        void *p = tslab_alloc(a, expect[i][0], &h);
        REQUIRE(p != NULL);
        CHECK_EQ_U(tslab_usable_size(a, p), expect[i][1]);
        CHECK(tslab_free(a, h));
    }
    tslab_handle h = 77;
    errno = 0;
    CHECK(tslab_alloc(a, 0, &h) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(tslab_alloc(a, 769, &h) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(tslab_alloc(a, SIZE_MAX, &h) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(tslab_alloc(a, 64, NULL) == NULL && errno == EINVAL);
    CHECK(tslab_slab_capacity(128, 0) == 512);
    CHECK(tslab_slab_capacity(65536, 0) == 1);
    tslab_destroy(a);
}

/* Every class of a wide custom list (8 B .. 64 KiB, odd sizes included) aligns correctly and
 * keeps objects apart. */
static void custom_sizes_alignment(void)
{
    uint32_t sizes[] = {8, 24, 40, 100, 128, 200, 1000, 4096, 10000, 32768, 65536};
    size_t n = sizeof sizes / sizeof sizes[0];
    tslab_config cfg = {0};
    cfg.sizes = sizes, cfg.size_count = n, cfg.name = "custom";
    tslab *a = tslab_create(&cfg);
    REQUIRE(a != NULL);
    CHECK(strcmp(tslab_name(a), "custom") == 0);
    for (size_t c = 0; c < n; c++) {
        size_t sz = tslab_class_size(a, c);
        CHECK(sz >= sizes[c] && sz % 8 == 0 && sz - sizes[c] < 8);
        enum { K = 40 };
        void *p[K];
        for (unsigned i = 0; i < K; i++) {
            p[i] = tslab_malloc(a, sizes[c]);
            REQUIRE(p[i] != NULL);
            size_t align = sz % 16 == 0 ? 16 : 8;
            CHECK((uintptr_t)p[i] % align == 0);
            CHECK(tslab_usable_size(a, p[i]) == sz);
            fill(p[i], sizes[c], i + (unsigned)c);
        }
        for (unsigned i = 0; i < K; i++)
            CHECK(holds(p[i], sizes[c], i + (unsigned)c));
        for (unsigned i = 0; i < K; i++)
            CHECK(tslab_free_ptr(a, p[i]));
    }
    tslab_destroy(a);
}

static void many_instances(void)
{
    enum { N = 40 };
    tslab *a[N];
    tslab_config cfg = {0};
    cfg.class_max_bytes = 1 << 20; /* keep address space small: 40 instances at once */
    tslab_handle h[N];
    void *p[N];
    for (int i = 0; i < N; i++) {
        a[i] = tslab_create(&cfg);
        REQUIRE(a[i] != NULL);
        p[i] = tslab_alloc(a[i], 64, &h[i]);
        REQUIRE(p[i] != NULL);
        memset(p[i], i, 64);
    }
    for (int i = 0; i < N; i++) {
        CHECK(holds(p[i], 64, (unsigned)i));
        CHECK(!tslab_free(a[(i + 1) % N], h[i])); /* foreign */
        CHECK(tslab_handle_ptr(a[(i + 1) % N], h[i]) == NULL);
    }
    for (int i = 0; i < N; i++) {
        CHECK(tslab_free(a[i], h[i]));
        tslab_destroy(a[i]);
    }
    /* create/destroy churn reuses instance ids without confusing thread caches */
    for (int r = 0; r < 3000; r++) {
        tslab *x = tslab_create(&cfg);
        REQUIRE(x != NULL);
        tslab_handle hh;
        CHECK(tslab_alloc(x, 64, &hh) != NULL);
        CHECK(tslab_free(x, hh));
        tslab_destroy(x);
    }
}

/* A class at its ceiling fails with ENOMEM, keeps every live object, and works again after a
 * free. */
static void class_ceiling(void)
{
    tslab_config cfg = {0};
    cfg.class_max_bytes = 256 * 1024; /* 4 slabs of 64 KiB */
    tslab *a = tslab_create(&cfg);
    REQUIRE(a != NULL);
    size_t cap = 4 * tslab_slab_capacity(128, 0);
    tslab_handle *h = calloc(cap + 1, sizeof *h);
    size_t n = 0;
    for (;;) {
        void *p = tslab_alloc(a, 128, &h[n]);
        if (p == NULL) {
            CHECK(errno == ENOMEM);
            break;
        }
        memset(p, (int)n, 128);
        CHECK(++n <= cap);
    }
    CHECK_EQ_U(n, cap);
    printf("class ceiling: %zu objects of 128 B, then ENOMEM\n", n);
    CHECK(tslab_malloc(a, 64) != NULL); /* other classes are unaffected */
    for (size_t i = 0; i < n; i++)
        CHECK(holds(tslab_handle_ptr(a, h[i]), 128, (unsigned)i));
    CHECK(tslab_free(a, h[7]));
    tslab_handle again;
    CHECK(tslab_alloc(a, 128, &again) != NULL);
    free(h);
    tslab_destroy(a);
}

TEST_MAIN(T(single_thread_20k), T(bad_configs), T(strerror_any), T(size_classes),
          T(custom_sizes_alignment), T(many_instances), T(class_ceiling))
