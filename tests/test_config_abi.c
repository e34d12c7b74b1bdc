/* SPDX-License-Identifier: MIT */
/* The configuration ABI: tslab_config and tslab_os grow by appended fields, and a program built
 * against an older header passes the shorter structs it knows. The library reads exactly those
 * and never a byte past them (the 1.0 structs sit right before an inaccessible page), the fields
 * the caller lacks take their defaults, and a newer caller's unknown fields must be zero. */
#include "testhelper.h"

#include <errno.h>
#include <tslab.h>

#include "config_1_0.h"

_Static_assert(sizeof(config_1_0) == 64, "1.0's tslab_config is 64 bytes");
_Static_assert(sizeof(os_1_0) == 40, "1.0's tslab_os is 40 bytes");

/* Allocates and frees through both APIs: the instance works. */
static void exercise(tslab *a)
{
    tslab_handle h;
    void *p = tslab_alloc(a, 100, &h);
    CHECK(p != NULL);
    if (p != NULL)
        memset(p, 0x5A, 100);
    CHECK(tslab_free(a, h));
    void *q = tslab_malloc(a, 40);
    CHECK(q != NULL);
    CHECK(tslab_free_ptr(a, q));
}

static void caller_1_0(void)
{
    static const uint32_t sizes[] = {48, 112};
    const tslab_os *real = tslab_os_default();
    os_1_0 os = {real->reserve, real->commit, real->decommit, real->release, real->ctx};
    const os_1_0 *os_at_edge = config_1_0_place(&os, sizeof os);
    REQUIRE(os_at_edge != NULL);
    config_1_0 c = {"old-program", sizes, 2, 4096, 3, 1 << 24, os_at_edge, true};
    const config_1_0 *at_edge = config_1_0_place(&c, sizeof c);
    REQUIRE(at_edge != NULL);
    tslab *a = config_1_0_create(at_edge);
    REQUIRE(a != NULL);
    CHECK(strcmp(tslab_name(a), "old-program") == 0);
    CHECK_EQ_U(tslab_class_count(a), 2);
    CHECK_EQ_U(tslab_class_size(a, 1), 112);
    /* What 1.0 had no field for takes the default. */
    tslab *d = tslab_create(NULL);
    REQUIRE(d != NULL);
    CHECK_EQ_U(tslab_decay_get(a), tslab_decay_get(d));
    CHECK_EQ_U(tslab_limit_get(a, TSLAB_LIMIT_HARD), 0);
    exercise(a);
    tslab_destroy(d);
    tslab_destroy(a);

    a = config_1_0_create(NULL); /* 1.0's "all defaults" */
    REQUIRE(a != NULL);
    exercise(a);
    tslab_destroy(a);

    /* 1.0's validation still applies: an OS table with a NULL entry. */
    os.commit = NULL;
    c.os = config_1_0_place(&os, sizeof os);
    errno = 0;
    CHECK(config_1_0_create(config_1_0_place(&c, sizeof c)) == NULL && errno == EINVAL);
}

/* tslab_create_sized with 1.0's size reads 1.0's fields only: a current struct whose appended
 * fields are set (decay, limits) is created as if they were not there. */
static void sized_reads_only_the_prefix(void)
{
    tslab_config c = {0};
    c.name = "prefix";
    c.decay_ms = 12345;
    c.limit_hard = 1;
    tslab *a = tslab_create_sized(&c, 64);
    REQUIRE(a != NULL);
    tslab *d = tslab_create(NULL);
    REQUIRE(d != NULL);
    CHECK_EQ_U(tslab_decay_get(a), tslab_decay_get(d));
    CHECK_EQ_U(tslab_limit_get(a, TSLAB_LIMIT_HARD), 0);
    exercise(a); /* a hard limit of 1 byte would refuse this */
    tslab_destroy(a);
    a = tslab_create(&c); /* the whole struct: both fields apply */
    REQUIRE(a != NULL);
    CHECK_EQ_U(tslab_decay_get(a), 12345);
    CHECK_EQ_U(tslab_limit_get(a, TSLAB_LIMIT_HARD), 1);
    tslab_destroy(a);
    tslab_destroy(d);
}

/* Sizes no version had, and a newer caller's fields. */
static void sizes_checked(void)
{
    tslab_config c = {0};
    errno = 0;
    CHECK(tslab_create_sized(&c, 63) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(tslab_create_sized(&c, 0) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(tslab_create_sized(&c, (size_t)1 << 20) == NULL && errno == EINVAL);
    tslab *a = tslab_create_sized(NULL, 0); /* no config at all: the size is not looked at */
    CHECK(a != NULL);
    tslab_destroy(a);
    struct {
        tslab_config c;
        uint64_t future[4];
    } newer;
    memset(&newer, 0, sizeof newer);
    newer.c.name = "newer";
    a = tslab_create_sized(&newer.c, sizeof newer); /* unknown fields zero: fine */
    CHECK(a != NULL);
    if (a != NULL)
        exercise(a);
    tslab_destroy(a);
    newer.future[3] = 1; /* asks for something this library cannot do */
    errno = 0;
    CHECK(tslab_create_sized(&newer.c, sizeof newer) == NULL && errno == EINVAL);
}

TEST_MAIN(T(caller_1_0), T(sized_reads_only_the_prefix), T(sizes_checked))
