/* Snapshots. Per-thread counters are summed under tc_lock (which only thread creation and exit
 * take, never the fast path); class-kept values are read with relaxed loads. */
#include "internal.h"

#include <errno.h>
#include <string.h>

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

static tslab_class_stats *slot_of(tslab_stats *out, uint32_t i, uint32_t n)
{
    return i < n ? &out->classes[i] : &out->unattributed;
}

int tslab_stats_read(tslab *a, tslab_stats *out)
{
    if (a == NULL || out == NULL)
        return -EINVAL;
    memset(out, 0, sizeof *out);
    out->version = TSLAB_STATS_VERSION;
    out->class_count = a->nclasses;
    memcpy(out->name, a->name, sizeof out->name);
    out->reserved_bytes = a->reserved_bytes;
    for (uint32_t i = 0; i < a->nclasses; i++) {
        const tslab__class *c = &a->cls[i];
        tslab_class_stats *s = &out->classes[i];
        s->object_size = c->size;
        s->slab_bytes = c->slab_bytes;
        s->objects_per_slab = c->per_slab;
        copy_class(s, &c->cc);
    }
    pthread_mutex_lock(&a->tc_lock);
    /* Pass 1 sums everything, frees included; pass 2 re-reads allocations afterwards. Every free
     * counted in pass 1 was preceded (release/acquire chain through the counters and the
     * object's hand-off) by its allocation's count, which pass 2 therefore sees. */
    for (uint32_t i = 0; i <= a->nclasses; i++) {
        tslab_class_stats *s = slot_of(out, i, a->nclasses);
        sum_thread(s, &a->retired[i]);
        for (tslab__tcache *tc = a->tcaches; tc; tc = tc->next)
            sum_thread(s, &tc->cls[i].tc);
    }
    for (uint32_t i = 0; i < a->nclasses; i++) {
        tslab_class_stats *s = &out->classes[i];
        s->allocations = atomic_load_explicit(&a->retired[i].allocations, memory_order_acquire);
        for (tslab__tcache *tc = a->tcaches; tc; tc = tc->next)
            s->allocations +=
                atomic_load_explicit(&tc->cls[i].tc.allocations, memory_order_acquire);
        /* A dropped duplicate is a free that returned true and was undone. It is counted after
         * both frees, when the freeing thread hands its batch back (tslab__slab_remote checks
         * the word then), so only a snapshot taken while such a race is pending sees the frees
         * without it: clamp at zero for that moment. Once every thread has flushed, no drop is
         * pending and the identity is exact (tests/test_ownership.c). */
        uint64_t in = s->allocations + s->duplicates_dropped;
        s->live_objects = in > s->frees ? in - s->frees : 0;
    }
    pthread_mutex_unlock(&a->tc_lock);
    return 0;
}
