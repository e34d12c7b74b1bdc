/* SPDX-License-Identifier: MIT */
/* Snapshots. Per-thread counters are summed under tc_lock (which only thread creation and exit
 * take, never the fast path); class-kept values are read with relaxed loads.
 *
 * The caller states the sizes of its structs (tslab_stats_get), and every byte written goes
 * through put_class or the header stores below, at the caller's offsets: the library never
 * writes past the caller's struct, whichever header the caller was built against. This file
 * also defines the exported tslab_stats_read of 1.0, which tslab.h otherwise makes a static
 * inline function. */
#define TSLAB__DEFINES_STATS_READ_1_0 1
#include "internal.h"

#include <errno.h>
#include <string.h>

/* 1.0's tslab_class_stats: 3 geometry fields and 23 counters, every one uint64_t. The current
 * struct must begin with exactly these (new fields are appended: tslab.h), so 1.0's layout is
 * the current one cut at this size. */
#define CLASS_STATS_SIZE_1_0 (offsetof(tslab_class_stats, mapped_bytes) + sizeof(uint64_t))
_Static_assert(CLASS_STATS_SIZE_1_0 == 26 * sizeof(uint64_t),
               "tslab_class_stats: 1.0's fields must stay first and in order; append new ones");
/* classes[] plus `unattributed`, at the caller's stride. */
#define CLASS_SLOTS (TSLAB_CLASSES_MAX + 1)
#define CLASSES_OFFSET offsetof(tslab_stats, classes)
_Static_assert(offsetof(tslab_stats, unattributed) ==
                   CLASSES_OFFSET + TSLAB_CLASSES_MAX * sizeof(tslab_class_stats),
               "tslab_stats: `unattributed` follows classes[]");
_Static_assert(offsetof(tslab_stats, instance) ==
                   CLASSES_OFFSET + CLASS_SLOTS * sizeof(tslab_class_stats),
               "tslab_stats: `instance` follows `unattributed`");
_Static_assert(sizeof(tslab_stats) ==
                   offsetof(tslab_stats, instance) + sizeof(tslab_instance_stats),
               "tslab_stats: a field appended after `instance` must be written by "
               "tslab_stats_get at the caller's offset");
/* Larger class sizes are not a tslab_class_stats of any version; the bound keeps
 * CLASS_SLOTS * size from overflowing. */
#define CLASS_STATS_SIZE_MAX ((size_t)1 << 20)

static void sum_thread(tslab_class_stats *dst, const tslab__tcounters *src)
{
#define SUM(f, source, ...)                                                                        \
    TSLAB__SRC_##source(dst->f += atomic_load_explicit(&src->f, memory_order_acquire);)
    TSLAB_CLASS_STATS(SUM)
#undef SUM
}

static void copy_class(tslab_class_stats *dst, const tslab__ccounters *src)
{
#define COPY(f, source, ...)                                                                       \
    TSLAB__ONLY_CLASS_##source(dst->f = atomic_load_explicit(&src->f, memory_order_relaxed);)
    TSLAB_CLASS_STATS(COPY)
#undef COPY
}

/* Class i (i == nclasses: the unattributed rejections), read under tc_lock. Frees are summed
 * before allocations are read: every free counted here was preceded (release/acquire chain
 * through the counters and the object's hand-off) by its allocation's count, which the second
 * read therefore sees, so live_objects is never negative. */
static void read_class(tslab *a, uint32_t i, tslab_class_stats *s)
{
    memset(s, 0, sizeof *s);
    if (i < a->nclasses) {
        const tslab__class *c = &a->cls[i];
        s->object_size = c->size;
        s->slab_bytes = c->slab_bytes;
        s->objects_per_slab = c->per_slab;
        copy_class(s, &c->cc);
    }
    sum_thread(s, &a->retired[i]);
    for (tslab__tcache *tc = a->tcaches; tc; tc = tc->next)
        sum_thread(s, &tc->cls[i].tc);
    if (i == a->nclasses)
        return;
    s->allocations = atomic_load_explicit(&a->retired[i].allocations, memory_order_acquire);
    for (tslab__tcache *tc = a->tcaches; tc; tc = tc->next)
        s->allocations += atomic_load_explicit(&tc->cls[i].tc.allocations, memory_order_acquire);
    /* A dropped duplicate is a free that returned true and was undone. It is counted after both
     * frees, when the freeing thread hands its batch back (tslab__slab_remote checks the word
     * then), so only a snapshot taken while such a race is pending sees the frees without it:
     * clamp at zero for that moment. Once every thread has flushed, no drop is pending and the
     * identity is exact (tests/test_ownership.c). */
    uint64_t in = s->allocations + s->duplicates_dropped;
    s->live_objects = in > s->frees ? in - s->frees : 0;
}

/* The first `size` bytes of the caller's class struct: ours, cut or zero-extended. */
static void put_class(unsigned char *dst, size_t size, const tslab_class_stats *s)
{
    size_t known = size < sizeof *s ? size : sizeof *s;
    memcpy(dst, s, known);
    memset(dst + known, 0, size - known);
}

int tslab_stats_get(tslab *a, tslab_stats *out, size_t stats_size, size_t class_stats_size)
{
    if (a == NULL || out == NULL || class_stats_size < CLASS_STATS_SIZE_1_0 ||
        class_stats_size > CLASS_STATS_SIZE_MAX || class_stats_size % sizeof(uint64_t) != 0 ||
        stats_size < CLASSES_OFFSET + CLASS_SLOTS * class_stats_size)
        return -EINVAL;
    unsigned char *base = (unsigned char *)out;
    unsigned char *slots = base + CLASSES_OFFSET;
    size_t tail = CLASSES_OFFSET + CLASS_SLOTS * class_stats_size;

    /* The fields before classes[] have had one layout since 1.0. */
    memset(out, 0, CLASSES_OFFSET);
    out->version = TSLAB_STATS_VERSION;
    out->class_count = a->nclasses;
    memcpy(out->name, a->name, sizeof out->name);
    out->reserved_bytes = a->reserved_bytes;
    /* Classes this instance does not have, and whatever a newer caller appended after
     * `unattributed`. */
    memset(slots + (size_t)a->nclasses * class_stats_size, 0,
           (TSLAB_CLASSES_MAX - a->nclasses) * class_stats_size);
    memset(base + tail, 0, stats_size - tail);

    tslab_class_stats s;
    pthread_mutex_lock(&a->tc_lock);
    for (uint32_t i = 0; i <= a->nclasses; i++) {
        read_class(a, i, &s);
        uint32_t slot = i < a->nclasses ? i : TSLAB_CLASSES_MAX;
        put_class(slots + (size_t)slot * class_stats_size, class_stats_size, &s);
    }
    pthread_mutex_unlock(&a->tc_lock);
    /* The instance gauges follow `unattributed` at the caller's stride: as much of them as the
     * caller's struct has room for (a 1.0 caller has none). */
    tslab_instance_stats is = {
        .limit_hard_bytes = tslab_limit_get(a, TSLAB_LIMIT_HARD),
        .limit_soft_bytes = tslab_limit_get(a, TSLAB_LIMIT_SOFT),
        .limit_resident_bytes = tslab_resident_bytes(a),
    };
    if (stats_size > tail) {
        size_t n = stats_size - tail < sizeof is ? stats_size - tail : sizeof is;
        memcpy(base + tail, &is, n);
    }
    return 0;
}

/* The symbol programs built against 1.0 call: 1.0's tslab_stats exactly (version 1, 26 fields per
 * class), whatever this version appended. */
TSLAB_API int tslab_stats_read(tslab *a, tslab_stats *out);
int tslab_stats_read(tslab *a, tslab_stats *out)
{
    int err = tslab_stats_get(a, out, CLASSES_OFFSET + CLASS_SLOTS * CLASS_STATS_SIZE_1_0,
                              CLASS_STATS_SIZE_1_0);
    if (err == 0)
        out->version = 1;
    return err;
}
