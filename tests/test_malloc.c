/* SPDX-License-Identifier: MIT */
/* The malloc-style API: edge sizes, alignment, calloc overflow, realloc across classes, bad
 * pointers, and mixing with the handle API. */
#include <errno.h>
#include <stdint.h>
#include <tslab.h>

#include "testhelper.h"

static void edges(void)
{
    tslab *a = tslab_create(NULL);
    errno = 0;
    CHECK(tslab_malloc(a, 0) == NULL && errno == EINVAL);
    void *p1 = tslab_malloc(a, 1);
    REQUIRE(p1 != NULL);
    CHECK(tslab_usable_size(a, p1) == 64);
    void *pl = tslab_malloc(a, 768);
    REQUIRE(pl != NULL);
    CHECK(tslab_usable_size(a, pl) == 768);
    errno = 0;
    CHECK(tslab_malloc(a, 769) == NULL && errno == EINVAL);
    CHECK(tslab_free_ptr(a, NULL)); /* no-op */
    CHECK(tslab_usable_size(a, NULL) == 0);
    CHECK(tslab_free_ptr(a, p1) && tslab_free_ptr(a, pl));
    tslab_destroy(a);
}

static void alignment(void)
{
    tslab *a = tslab_create(NULL);
    unsigned checked = 0;
    for (size_t size = 1; size <= 768; size++) {
        void *p = tslab_malloc(a, size);
        REQUIRE(p != NULL);
        size_t cls = tslab_usable_size(a, p);
        CHECK(cls >= size);
        CHECK((uintptr_t)p % (cls % 16 == 0 ? 16 : 8) == 0);
        memset(p, 0xEE, size);
        CHECK(tslab_free_ptr(a, p));
        checked++;
    }
    printf("alignment: %u sizes checked, every pointer 16-byte aligned for 16-multiple classes\n",
           checked);
    tslab_destroy(a);
}

static void calloc_overflow(void)
{
    tslab *a = tslab_create(NULL);
    errno = 0;
    CHECK(tslab_calloc(a, SIZE_MAX / 2, 4) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(tslab_calloc(a, (size_t)1 << 33, (size_t)1 << 33) == NULL && errno == ENOMEM);
    /* dirty a slot, free it, and calloc must hand it back zeroed */
    unsigned char *d = tslab_malloc(a, 200);
    memset(d, 0xFF, 200);
    CHECK(tslab_free_ptr(a, d));
    tslab_handle hz = alloc_until_reuse(a, 200, d);
    CHECK(tslab_free(a, hz));
    unsigned char *z = tslab_calloc(a, 25, 8);
    if (z != d) { /* quarantine builds: force the dirty slot back */
        CHECK(tslab_free_ptr(a, z));
        CHECK(tslab_free(a, alloc_until_reuse(a, 200, d)));
        z = tslab_calloc(a, 25, 8);
    }
    for (int i = 0; i < 200; i++)
        CHECK(z[i] == 0);
    CHECK(tslab_free_ptr(a, z));
    tslab_destroy(a);
}

static void realloc_across_classes(void)
{
    tslab *a = tslab_create(NULL);
    unsigned char *p = tslab_realloc(a, NULL, 50); /* = malloc */
    REQUIRE(p != NULL);
    CHECK(tslab_usable_size(a, p) == 64);
    for (int i = 0; i < 50; i++)
        p[i] = (unsigned char)i;
    CHECK(tslab_realloc(a, p, 60) == p); /* same class: in place */
    unsigned char *q = tslab_realloc(a, p, 700);
    REQUIRE(q != NULL);
    CHECK(q != p && tslab_usable_size(a, q) == 768);
    for (int i = 0; i < 50; i++)
        CHECK(q[i] == i);
    CHECK(tslab_usable_size(a, p) == 0);         /* the old one was freed */
    unsigned char *r = tslab_realloc(a, q, 100); /* shrink moves to the 128 class */
    REQUIRE(r != NULL);
    CHECK(tslab_usable_size(a, r) == 128);
    for (int i = 0; i < 50; i++)
        CHECK(r[i] == i);
    errno = 0;
    CHECK(tslab_realloc(a, r, 769) == NULL && errno == EINVAL);
    CHECK(r[7] == 7 && tslab_usable_size(a, r) == 128); /* untouched */
    errno = 0;
    CHECK(tslab_realloc(a, r, 0) == NULL && errno == EINVAL);
    CHECK(tslab_usable_size(a, r) == 128);
    errno = 0;
    CHECK(tslab_realloc(a, p, 64) == NULL && errno == EINVAL); /* p is freed */
    CHECK(tslab_free_ptr(a, r));
    tslab_destroy(a);
}

static void bad_pointers(void)
{
    tslab *a = tslab_create(NULL);
    tslab *b = tslab_create(NULL);
    enum { N = 1000 };
    uint64_t *live[N];
    for (int i = 0; i < N; i++) {
        live[i] = tslab_malloc(a, 256);
        *live[i] = (uint64_t)i * 977;
    }
    int stack_var = 0;
    void *heap = malloc(64);
    void *pb = tslab_malloc(b, 64);
    CHECK(!tslab_free_ptr(a, &stack_var));
    CHECK(!tslab_free_ptr(a, heap));
    CHECK(!tslab_free_ptr(a, pb));
    CHECK(!tslab_free_ptr(a, (char *)live[3] + 8));   /* interior */
    CHECK(!tslab_free_ptr(a, (char *)live[3] + 255)); /* interior, last byte */
    CHECK(!tslab_free_ptr(a, (void *)(uintptr_t)1));
    CHECK(!tslab_free_ptr(a, (void *)UINTPTR_MAX));
    CHECK(tslab_usable_size(a, (char *)live[5] + 16) == 0);
    CHECK(tslab_free_ptr(a, live[9]));
    CHECK(!tslab_free_ptr(a, live[9])); /* double */
    tslab_stats st;
    tslab_stats_read(a, &st);
    CHECK_EQ_U(st.unattributed.rejected_foreign, 5);
    CHECK_EQ_U(st.classes[4].rejected_invalid, 2);
    CHECK_EQ_U(st.classes[4].rejected_double, 1);
    printf("bad pointers: %llu foreign, %llu interior, %llu double rejected\n",
           (unsigned long long)st.unattributed.rejected_foreign,
           (unsigned long long)st.classes[4].rejected_invalid,
           (unsigned long long)st.classes[4].rejected_double);
    for (int i = 0; i < N; i++)
        if (i != 9) {
            CHECK(*live[i] == (uint64_t)i * 977);
            CHECK(tslab_free_ptr(a, live[i]));
        }
    free(heap);
    tslab_destroy(b);
    tslab_destroy(a);
}

static void mixing_apis(void)
{
    tslab *a = tslab_create(NULL);
    void *p = tslab_malloc(a, 128);
    tslab_handle h = tslab_ptr_handle(a, p);
    CHECK(h != TSLAB_HANDLE_NONE && tslab_handle_ptr(a, h) == p);
    CHECK(tslab_free(a, h));      /* malloc'd, freed by handle */
    CHECK(!tslab_free_ptr(a, p)); /* then a double free by pointer */
    tslab_handle h2;
    void *q = tslab_alloc(a, 128, &h2);
    CHECK(tslab_free_ptr(a, q)); /* handle-allocated, freed by pointer */
    CHECK(!tslab_free(a, h2));   /* the handle is now stale/double */
    CHECK(tslab_ptr_handle(a, q) == TSLAB_HANDLE_NONE);
    tslab_destroy(a);
}

TEST_MAIN(T(edges), T(alignment), T(calloc_overflow), T(realloc_across_classes), T(bad_pointers),
          T(mixing_apis))
