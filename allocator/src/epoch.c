/* SPDX-License-Identifier: MIT */
/* Epochs, the public calls: open, close, destroy, the leak threshold and the snapshot. The
 * records are epoch_table.c's, the slabs slab.c's, and allocation into an epoch is alloc.c's
 * (tslab_alloc_epoch, next to the other fast paths). */
#include "internal.h"

#include <errno.h>
#include <string.h>

tslab_epoch tslab_epoch_open(tslab *a, const char *label)
{
    if (a == NULL) {
        errno = EINVAL;
        return 0;
    }
    return tslab__epoch_new(a, label);
}

/* The calling thread's epoch caches bound to e give their slots back now, so that e's slabs can
 * empty without waiting for this thread's next epoch allocation. */
static void unbind_own(tslab *a, uint64_t e)
{
    tslab__tls_entry *m = tslab__tls;
    if (m == NULL || m[a->tag].uid != a->uid || !tslab__ec_used(m[a->tag].tc))
        return;
    /* A slow path of this thread's: the idle-reclaim collector keeps out of its caches. */
    tslab__tcache *tc = tslab__tcache_enter(a);
    if (tc == NULL)
        return;
    for (uint32_t ci = 0; ci < a->nclasses; ci++)
        if (tc->ec[ci].epoch == e)
            tslab__ecache_unbind(a, tc, ci);
    tslab__tcache_leave(tc);
}

int tslab_epoch_close(tslab *a, tslab_epoch e)
{
    bool pinned;
    if (a == NULL || tslab__epoch_shut(a, e, false, &pinned) == 0)
        return -EINVAL;
    unbind_own(a, e);
    return 0;
}

int tslab_epoch_destroy(tslab *a, tslab_epoch e)
{
    bool pinned;
    uint32_t eidx = a != NULL ? tslab__epoch_shut(a, e, true, &pinned) : 0;
    if (eidx == 0)
        return -EINVAL;
    unbind_own(a, e);
    if (!pinned) {
        tslab__epoch_destroyed(a, e);
        return 0; /* closed and emptied before: nothing left to free */
    }
    tslab__tcache *tc = tslab__tcache_get(a);
    for (uint32_t ci = 0; ci < a->nclasses; ci++) {
        uint64_t n = tslab__slab_epoch_destroy(a, &a->cls[ci], eidx);
        if (n == 0)
            continue;
        /* Frees like any other in the class's figures (live_objects falls by n). */
        if (tc != NULL) {
            tslab__bump_by(&tc->cls[ci].tc.frees, n);
        } else {
            pthread_mutex_lock(&a->tc_lock);
            tslab__bump_by(&a->retired[ci].frees, n);
            pthread_mutex_unlock(&a->tc_lock);
        }
    }
    tslab__epoch_destroyed(a, e);
    tslab__epoch_detach(a, eidx); /* the walk's pin */
    return 0;
}

int tslab_epoch_leak_set(tslab *a, uint64_t ms)
{
    if (a == NULL)
        return -EINVAL;
    atomic_store_explicit(&a->epoch_leak_ns,
                          tslab__ms_to_ns(ms ? ms : TSLAB__EPOCH_LEAK_DEFAULT_MS),
                          memory_order_relaxed);
    return 0;
}

/* Inserts a leak into out->leaks (oldest first, at most TSLAB_EPOCH_LEAKS_MAX kept). */
static void add_leak(tslab_epoch_stats *out, const tslab_epoch_leak *l)
{
    uint32_t n = out->leak_count, at = n;
    while (at > 0 && out->leaks[at - 1].closed_age_ns < l->closed_age_ns)
        at--;
    if (at >= TSLAB_EPOCH_LEAKS_MAX)
        return;
    if (n == TSLAB_EPOCH_LEAKS_MAX)
        n--;
    memmove(&out->leaks[at + 1], &out->leaks[at], (n - at) * sizeof out->leaks[0]);
    out->leaks[at] = *l;
    out->leak_count = n + 1;
}

/* Fills s (zeroed by the caller) from the table. Caller holds the table lock. */
static void read_table(tslab *a, tslab__epochs *t, tslab_epoch_stats *s)
{
    uint64_t now = tslab__now(a);
    /* Label slots: the named ones in order, then "other" once used. */
    uint32_t slot[TSLAB_EPOCH_LABELS_MAX + 1];
    for (uint32_t i = 0; i <= TSLAB_EPOCH_LABELS_MAX; i++) {
        const tslab__elabel *l = &t->labels[i];
        if (i >= t->nlabels && (i < TSLAB_EPOCH_LABELS_MAX || l->name[0] == '\0'))
            continue;
        tslab_epoch_label_stats *o = &s->labels[slot[i] = s->label_count++];
        memcpy(o->label, l->name, sizeof o->label);
        o->opened = l->opened;
        o->closed = l->closed;
        o->destroyed = l->destroyed;
        o->allocations = atomic_load_explicit(&l->allocations, memory_order_relaxed);
        o->frees = atomic_load_explicit(&l->frees, memory_order_relaxed);
    }
    for (uint32_t i = 1; i <= t->used; i++) {
        const tslab__epoch *r = &t->rec[i];
        tslab_epoch_label_stats *o = &s->labels[slot[r->label]];
        if (r->state == TSLAB__EP_OPEN)
            o->open_epochs++;
        if (r->state != TSLAB__EP_CLOSED)
            continue;
        tslab_epoch_leak l;
        memset(&l, 0, sizeof l);
        for (uint32_t ci = 0; ci < a->nclasses; ci++) {
            int64_t v = atomic_load_explicit(&r->live[ci], memory_order_relaxed);
            l.live_by_class[ci] = v > 0 ? (uint64_t)v : 0;
            l.live_objects += l.live_by_class[ci];
        }
        if (l.live_objects == 0)
            continue;
        l.closed_age_ns = now > r->closed_at ? now - r->closed_at : 0;
        o->closed_live_objects += l.live_objects;
        if (l.closed_age_ns > o->oldest_closed_live_age_ns)
            o->oldest_closed_live_age_ns = l.closed_age_ns;
        if (l.closed_age_ns >= s->leak_threshold_ns) {
            o->leaking_epochs++;
            memcpy(l.label, o->label, sizeof l.label);
            add_leak(s, &l);
        }
    }
}

int tslab_epoch_stats_get(tslab *a, tslab_epoch_stats *out, size_t size)
{
    /* No version's struct is near 1 MiB: a larger size is a caller's mistake, not a layout. */
    if (a == NULL || out == NULL || size == 0 || size > ((size_t)1 << 20))
        return -EINVAL;
    tslab_epoch_stats s;
    memset(&s, 0, sizeof s);
    s.leak_threshold_ns = atomic_load_explicit(&a->epoch_leak_ns, memory_order_relaxed);
    tslab__epochs *t = atomic_load_explicit(&a->epochs, memory_order_acquire);
    if (t != NULL) {
        pthread_mutex_lock(&t->lock);
        read_table(a, t, &s);
        pthread_mutex_unlock(&t->lock);
    }
    size_t known = size < sizeof s ? size : sizeof s;
    memcpy(out, &s, known);
    memset((char *)out + known, 0, size - known);
    return 0;
}
