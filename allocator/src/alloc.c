/* SPDX-License-Identifier: MIT */
/* Allocation. The fast path pops a slot index from the calling thread's cache: no lock, no
 * atomic read-modify-write (the slot is exclusively the thread's), one store to its state word.
 * Everything else (first use, empty cache, size outside the table, bad arguments) leaves through
 * one unlikely branch to alloc_slow. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Hands out the slot of entry h (just popped from a cache of class cache t): counts it, publishes
 * its state word LIVE (with `sampled`: 0, or TSLAB__SAMPLED when the sampler recorded the slot)
 * and returns its address. */
static inline void *hand_out(tslab__tclass *t, uint64_t h, tslab_handle *out, uint32_t sampled)
{
    uint32_t idx = tslab__handle_idx(h);
    /* Counted before the slot is published, so whoever frees it (and counts the free) is ordered
     * after this count through the state word's release/acquire. */
    tslab__bump(&t->tc.allocations);
    /* A cached slot's word is ours alone, so no read-modify-write. Release pairs with the
     * acquire of tslab_handle_ptr and of the CAS in a concurrent (stale or forged) free. */
    atomic_store_explicit(&t->state[idx],
                          ((uint32_t)h & TSLAB__GEN_MASK) << 1 | TSLAB__LIVE | sampled,
                          memory_order_release);
    char *p = t->base + (size_t)idx * t->pitch;
    if (tslab_config_sanitize)
        tslab__san_alloc(t->size, p);
    *out = h;
    return p;
}

/* Hands out the top slot of t, which holds n > 0 entries. The entry is read plainly: only this
 * thread writes the stack (the idle-reclaim collector only reads it, and never its top entry:
 * reclaim.c). The count is stored relaxed because the collector reads it. */
static inline void *take(tslab__tclass *t, uint32_t n, tslab_handle *out, uint32_t sampled)
{
    atomic_store_explicit(&t->count, --n, memory_order_relaxed);
    return hand_out(t, tslab__tc_slots(t)[n], out, sampled);
}

/* The allocation entry points, and every function of theirs that a build may leave out of line
 * (alloc_fast, alloc_cached, and the epoch ones below), live in the TSLAB__ENTRY section, so
 * the sampler can cut their frames off a recorded stack by address.
 * alloc_slow's work once the thread's cache is entered: refill, sampling, then the top slot. */
static inline TSLAB__ENTRY void *alloc_cached(tslab *a, tslab__tcache *tc, uint32_t ci,
                                              tslab_handle *out)
{
    tslab__class *c = &a->cls[ci];
    tslab__tclass *t = &tc->cls[ci];
    tslab__bump(&t->tc.slow_path);
    uint32_t n = atomic_load_explicit(&t->count, memory_order_relaxed);
    if (n == 0) {
        n = tslab__slab_refill(a, c, t->id, tslab__tc_slots(t), c->batch);
        if (n == 0 && tslab_config_quarantine) {
            /* Out of memory before quarantined slots: reuse them early rather than fail. */
            tslab__quarantine_drain(a, c);
            n = tslab__slab_refill(a, c, t->id, tslab__tc_slots(t), c->batch);
        }
        if (n == 0)
            return NULL; /* errno ENOMEM */
        atomic_store_explicit(&t->count, n, memory_order_relaxed);
        /* Acquire: the slabs just claimed or grown have their metadata (grow() publishes).
         * exact_frees: a limit of 0 keeps every free off the fast path, whose plain store is
         * what that mode rules out (owner_cache). */
        t->limit = a->exact_frees ? 0 : atomic_load_explicit(&c->nslots, memory_order_acquire);
    }
    /* Every allocation counts down once: the fast path decremented only if it left because the
     * countdown ran out (it tests the count first), and then left it negative. */
    if (t->sample_left >= 0)
        t->sample_left--;
    if (t->sample_left < 0 && tslab__sample_due(a, tc, t)) {
        /* Recorded before the slot is published: a free that sees SAMPLED finds the record. */
        uint64_t h = tslab__tc_slots(t)[n - 1];
        bool rec = tslab__sample_alloc(a, ci, tslab__handle_idx(h), (uint32_t)h & TSLAB__GEN_MASK);
        return take(t, n, out, rec ? TSLAB__SAMPLED : 0);
    }
    return take(t, n, out, 0);
}

static TSLAB_NOINLINE TSLAB__ENTRY void *alloc_slow(tslab *a, size_t size, tslab_handle *out)
{
    if (a == NULL || out == NULL) {
        errno = EINVAL;
        return NULL;
    }
    int ci = tslab__class_of_size(a, size);
    if (ci < 0) {
        errno = EINVAL;
        return NULL;
    }
    tslab__tcache *tc = tslab__tcache_enter(a);
    if (tc == NULL)
        return NULL; /* errno set */
    void *p = alloc_cached(a, tc, (uint32_t)ci, out);
    tslab__tcache_leave(tc);
    return p;
}

static inline TSLAB__ENTRY void *alloc_fast(tslab *a, size_t size, tslab_handle *out)
{
    size_t k = size - 1; /* size 0 wraps and takes the slow path */
    tslab__tls_fast_entry *e = tslab__tls_slot(a);
    if (tslab_likely(k < a->lut_limit && tslab__tls_match(e, a))) {
        tslab__tclass *t = &e->tc->cls[a->lut[k >> 3]];
        tslab__opaque(t);
        uint32_t n = atomic_load_explicit(&t->count, memory_order_relaxed);
        /* The sampler's countdown is the only thing sampling adds here. */
        if (tslab_likely(n != 0 && --t->sample_left >= 0))
            return take(t, n, out, 0);
    }
    return alloc_slow(a, size, out);
}

TSLAB__ENTRY void *tslab_alloc(tslab *a, size_t size, tslab_handle *out)
{
    if (tslab_unlikely(a == NULL || out == NULL))
        return alloc_slow(a, size, out);
    return alloc_fast(a, size, out);
}

TSLAB__ENTRY void *tslab_malloc(tslab *a, size_t size)
{
    tslab_handle h;
    if (tslab_unlikely(a == NULL))
        return alloc_slow(a, size, &h);
    return alloc_fast(a, size, &h);
}

/* ---- Allocation into an explicit epoch ---- */

/* Hands out the top slot of epoch cache t (of class cache tcl), which holds n > 0 entries: as
 * take(), plus the epoch's own count. */
static inline void *etake(tslab__tclass *tcl, tslab__eclass *t, uint32_t n, tslab_handle *out,
                          uint32_t sampled)
{
    atomic_store_explicit(&t->count, --n, memory_order_relaxed);
    t->allocs++;
    return hand_out(tcl, tslab__ec_slots(t)[n], out, sampled);
}

/* epoch_alloc_slow's work, inside tslab__tcache_enter/leave (tc). In the entry section: the
 * sampler cuts it off a recorded stack. */
static inline TSLAB__ENTRY void *epoch_alloc_in(tslab *a, tslab__tcache *tc, tslab__epoch *r,
                                                uint64_t ep, uint32_t eidx, uint32_t ci,
                                                tslab_handle *out)
{
    /* Acquire: pairs with tslab__epoch_new's release of the key. */
    if (atomic_load_explicit(&r->key, memory_order_acquire) != ep) {
        /* Closed (the id still names it) or being destroyed (ENDING): ESHUTDOWN. Relaxed: the
         * value alone decides. */
        uint64_t id = atomic_load_explicit(&r->id, memory_order_relaxed);
        bool named = id == ep || id == (ep | TSLAB__EP_RETIRED | TSLAB__EP_ENDING);
        /* A closed or destroyed epoch's slots go back from this thread's cache now rather than
         * at its next allocation into another epoch of the class. */
        if (tc->ec[ci].epoch == ep)
            tslab__ecache_unbind(a, tc, ci);
        errno = named ? ESHUTDOWN : EINVAL;
        return NULL;
    }
    if (!tslab__ec_used(tc)) {
        tslab__eclass *ec = calloc(a->nclasses, sizeof *ec);
        if (ec == NULL) {
            errno = ENOMEM;
            return NULL;
        }
        tc->ec = ec;
        atomic_store_explicit(&tc->ec_ready, true, memory_order_release);
    }
    tslab__class *c = &a->cls[ci];
    tslab__tclass *tcl = &tc->cls[ci];
    tslab__eclass *t = &tc->ec[ci];
    tslab__bump(&tcl->tc.slow_path);
    if (t->epoch != ep) {
        tslab__ecache_unbind(a, tc, ci);
        t->epoch = ep;
        t->idx = eidx;
        t->key = &r->key;
    }
    uint32_t n = atomic_load_explicit(&t->count, memory_order_relaxed);
    if (n <= 1) {
        if (n == 1)
            tslab__ecache_fold(a, tc, ci);
        uint32_t want = c->batch < TSLAB__EC_MAX - n ? c->batch : TSLAB__EC_MAX - n;
        uint32_t got = tslab__slab_refill_epoch(a, c, eidx, ep, tslab__ec_slots(t) + n, want);
        if (got == 0 && n == 0)
            return NULL; /* errno ESHUTDOWN or ENOMEM */
        n += got;
    }
    /* The sampler, as alloc_cached: the fast path's allocations are charged first, then this
     * one counts down once. Epoch and plain allocations of a class share one countdown. */
    tslab__ec_arm(tcl, t);
    if (tcl->sample_left >= 0)
        tcl->sample_left--;
    uint32_t sampled = 0;
    if (tcl->sample_left < 0 && tslab__sample_due(a, tc, tcl)) {
        /* Recorded before the slot is published: a free that sees SAMPLED finds the record. */
        uint64_t h = tslab__ec_slots(t)[n - 1];
        if (tslab__sample_alloc(a, ci, tslab__handle_idx(h), (uint32_t)h & TSLAB__GEN_MASK))
            sampled = TSLAB__SAMPLED;
    }
    void *p = etake(tcl, t, n, out, sampled);
    tcl->esynced = (uint32_t)t->allocs; /* this allocation counted down above */
    if (n == 1) /* the object just taken holds its slab (nobody else has its handle) */
        tslab__ecache_fold(a, tc, ci);
    tslab__ec_arm(tcl, t);
    return p;
}

/* Every epoch allocation the fast path did not finish: checks the id, binds the thread's epoch
 * cache of the class to it, refills, and takes a cache's last slot (so that the cache's count is
 * folded into the record while a slot of it is still held). */
static TSLAB_NOINLINE TSLAB__ENTRY void *epoch_alloc_slow(tslab *a, uint64_t ep, size_t size,
                                                          tslab_handle *out)
{
    if (a == NULL || out == NULL) {
        errno = EINVAL;
        return NULL;
    }
    int ci = tslab__class_of_size(a, size);
    tslab__epochs *tab = atomic_load_explicit(&a->epochs, memory_order_acquire);
    uint32_t eidx = tslab__epoch_idx(ep);
    if (ci < 0 || tab == NULL || ep >> TSLAB__EP_TAG_SHIFT != a->tag || eidx == 0 ||
        eidx > TSLAB_EPOCHS_MAX) {
        errno = EINVAL;
        return NULL;
    }
    tslab__tcache *tc = tslab__tcache_enter(a);
    if (tc == NULL)
        return NULL; /* errno set */
    void *p = epoch_alloc_in(a, tc, &tab->rec[eidx], ep, eidx, (uint32_t)ci, out);
    tslab__tcache_leave(tc);
    return p;
}

/* As alloc_fast, from the thread's epoch cache of the class. The cache's last slot is left to the
 * slow path (count > efloor >= 1), and the record's key is compared on every allocation so that a
 * close or destroy is seen at once. */
static inline TSLAB__ENTRY void *alloc_epoch_fast(tslab *a, uint64_t ep, size_t size,
                                                  tslab_handle *out)
{
    size_t k = size - 1;
    tslab__tls_fast_entry *e = tslab__tls_slot(a);
    if (tslab_likely(k < a->lut_limit && tslab__tls_match(e, a))) {
        uint32_t ci = a->lut[k >> 3];
        tslab__eclass *t = &e->tc->ec[ci];
        tslab__tclass *tcl = &e->tc->cls[ci];
        tslab__opaque(tcl);
        uint32_t n = atomic_load_explicit(&t->count, memory_order_relaxed);
        /* efloor >= 1 whenever the cache holds slots: the last one is the slow path's, and so
         * is the allocation at which the sampler's countdown runs out (tslab__ec_arm). */
        if (tslab_likely(t->epoch == ep && n > tcl->efloor &&
                         atomic_load_explicit(t->key, memory_order_relaxed) == ep))
            return etake(tcl, t, n, out, 0);
    }
    return epoch_alloc_slow(a, ep, size, out);
}

TSLAB__ENTRY void *tslab_alloc_epoch(tslab *a, tslab_epoch e, size_t size, tslab_handle *out)
{
    if (tslab_unlikely(a == NULL || out == NULL))
        return epoch_alloc_slow(a, e, size, out);
    return alloc_epoch_fast(a, e, size, out);
}

TSLAB__ENTRY void *tslab_malloc_epoch(tslab *a, tslab_epoch e, size_t size)
{
    tslab_handle h;
    if (tslab_unlikely(a == NULL))
        return epoch_alloc_slow(a, e, size, &h);
    return alloc_epoch_fast(a, e, size, &h);
}

TSLAB__ENTRY void *tslab_calloc(tslab *a, size_t n, size_t size)
{
    size_t bytes;
    if (__builtin_mul_overflow(n, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = tslab_malloc(a, bytes);
    if (p != NULL)
        memset(p, 0, bytes);
    return p;
}

/* The id of the open epoch live slot idx of class ci belongs to, or 0 (the default epoch, or a
 * closed one). The caller's live object holds its slab, and the slab its epoch's record, so
 * neither can change meanwhile; the record's key is the id while the epoch is open. */
static uint64_t slot_epoch(tslab *a, uint32_t ci, uint32_t idx)
{
    tslab__class *c = &a->cls[ci];
    uint32_t s = idx >> c->slot_shift;
    if (atomic_load_explicit(&c->owner[s], memory_order_relaxed) != TSLAB__EPOCH_OWNER)
        return 0;
    /* Acquire: an epoch slab implies a published table (tslab__epoch_new released it). */
    tslab__epochs *t = atomic_load_explicit(&a->epochs, memory_order_acquire);
    uint32_t e = atomic_load_explicit(&c->sepoch[s], memory_order_relaxed);
    return t != NULL && e != 0 ? atomic_load_explicit(&t->rec[e].key, memory_order_acquire) : 0;
}

TSLAB__ENTRY void *tslab_realloc(tslab *a, void *p, size_t size)
{
    if (p == NULL)
        return tslab_malloc(a, size);
    if (a == NULL || size == 0) {
        errno = EINVAL;
        return NULL;
    }
    uint32_t ci;
    int reason;
    int64_t idx = tslab__ptr_slot(a, p, &ci, &reason);
    if (idx < 0) {
        tslab__reject(a, ci, reason, (uintptr_t)p, true);
        errno = EINVAL;
        return NULL;
    }
    uint32_t s = atomic_load_explicit(&a->cls[ci].state[idx], memory_order_acquire);
    if (!(s & TSLAB__LIVE)) {
        tslab__reject(a, ci, TSLAB__REJ_DOUBLE, (uintptr_t)p, true);
        errno = EINVAL;
        return NULL;
    }
    int want = tslab__class_of_size(a, size);
    if (want < 0) {
        errno = EINVAL;
        return NULL;
    }
    if ((uint32_t)want == ci)
        return p;
    /* An object of an open epoch moves within it; one of a closed epoch (which takes no new
     * object), or of one closed meanwhile, to the default epoch. */
    uint64_t ep = slot_epoch(a, ci, (uint32_t)idx);
    void *n = ep != 0 ? tslab_malloc_epoch(a, ep, size) : NULL;
    if (n == NULL && (ep == 0 || errno != ENOMEM))
        n = tslab_malloc(a, size);
    if (n == NULL)
        return NULL;
    size_t old = a->cls[ci].size;
    memcpy(n, p, old < size ? old : size);
    tslab_free_ptr(a, p);
    return n;
}
