/* Freeing and checking. Every decision about a caller-supplied handle or pointer is made from
 * the instance's own tables, bounds-checked before any state word is read, and the memory the
 * caller names is never dereferenced. The one atomic read-modify-write is the CAS that moves a
 * slot's state word from LIVE to FREE: it is what makes double and racing frees exact. */
#include "internal.h"

#include <errno.h>
#include <string.h>

#define GEN_HALF (UINT32_C(1) << (TSLAB__GEN_BITS - 1))

int tslab__reject_reason(uint32_t gen, uint32_t state)
{
    uint32_t cur = tslab__state_gen(state);
    uint32_t behind = (cur - gen) & TSLAB__GEN_MASK; /* frees of this slot since gen was issued */
    if (behind == 0 || behind >= GEN_HALF)
        return TSLAB__REJ_INVALID; /* a generation this slot has not reached: never issued */
    if (behind == 1 && !(state & TSLAB__LIVE))
        return TSLAB__REJ_DOUBLE;
    return TSLAB__REJ_STALE;
}

TSLAB_COLD bool tslab__reject(tslab *a, uint32_t cls, int reason)
{
    if (cls > a->nclasses)
        cls = a->nclasses;
    tslab__tcache *tc = tslab__tcache_get(a);
    tslab__tcounters *ctr;
    if (tc != NULL) {
        ctr = &tc->cls[cls].tc;
    } else {
        /* No cache could be made (out of memory): count under the lock in the retired set. */
        pthread_mutex_lock(&a->tc_lock);
        ctr = &a->retired[cls];
    }
    switch (reason) {
    case TSLAB__REJ_STALE: tslab__bump(&ctr->rejected_stale); break;
    case TSLAB__REJ_DOUBLE: tslab__bump(&ctr->rejected_double); break;
    case TSLAB__REJ_FOREIGN: tslab__bump(&ctr->rejected_foreign); break;
    default: tslab__bump(&ctr->rejected_invalid); break;
    }
    if (tc == NULL)
        pthread_mutex_unlock(&a->tc_lock);
    return false;
}

/* Slow half of giving a freed slot back: no fast-map entry yet, sanitizer quarantine, or a full
 * cache (its older half goes back to the slabs). */
static TSLAB_NOINLINE bool release_slow(tslab *a, tslab__class *c, uint64_t ent)
{
    tslab__tcache *tc = tslab__tcache_get(a);
    if (tc == NULL) {
        tslab__slab_drain(a, c, &ent, 1);
        pthread_mutex_lock(&a->tc_lock);
        tslab__bump(&a->retired[c->index].frees);
        pthread_mutex_unlock(&a->tc_lock);
        return true;
    }
    tslab__tclass *t = &tc->cls[c->index];
    tslab__bump(&t->tc.slow_path);
    if (tslab_config_quarantine) {
        uint64_t old = tslab__quarantine_push(c, ent);
        if (old != TSLAB__NO_ENTRY)
            tslab__slab_drain(a, c, &old, 1);
    } else {
        if (t->count == t->cap) {
            tslab__slab_drain(a, c, t->slots, c->batch);
            t->count -= c->batch;
            memmove(t->slots, t->slots + c->batch, t->count * sizeof t->slots[0]);
        }
        t->slots[t->count++] = ent;
    }
    tslab__bump(&t->tc.frees);
    return true;
}

/* The caller's CAS made the slot FREE and ours; `next` is the handle it will carry next. */
static inline bool release(tslab *a, tslab__class *c, uint64_t next)
{
    if (tslab_config_sanitize)
        tslab__san_free(c->size, tslab__slot_addr(c, tslab__handle_idx(next)));
    tslab__tls_entry *e = &tslab__tls_fast[a->tag & (TSLAB__TLS_FAST - 1)];
    if (tslab_likely(!tslab_config_quarantine && e->uid == a->uid)) {
        tslab__tclass *t = &e->tc->cls[c->index];
        if (tslab_likely(t->count != t->cap)) {
            t->slots[t->count++] = next;
            tslab__bump(&t->tc.frees);
            return true;
        }
    }
    return release_slow(a, c, next);
}

static TSLAB_COLD bool reject_handle(tslab *a, tslab_handle h)
{
    if (a == NULL)
        return false;
    uint32_t tag = (uint32_t)(h >> TSLAB__TAG_SHIFT) & TSLAB__TAG_MASK;
    uint32_t ci = (uint32_t)(h >> TSLAB__CLS_SHIFT) & ((1u << TSLAB__CLS_BITS) - 1);
    if (__builtin_parityll(h))
        return tslab__reject(a, a->nclasses, TSLAB__REJ_INVALID);
    if (tag != a->tag)
        return tslab__reject(a, a->nclasses,
                             tslab__tag_is_live(tag, a) ? TSLAB__REJ_FOREIGN : TSLAB__REJ_INVALID);
    return tslab__reject(a, ci < a->nclasses ? ci : a->nclasses, TSLAB__REJ_INVALID);
}

bool tslab_free(tslab *a, tslab_handle h)
{
    if (tslab_unlikely(a == NULL || tslab__handle_bad(h, a->tag, a->nclasses)))
        return reject_handle(a, h);
    uint32_t ci = (uint32_t)(h >> TSLAB__CLS_SHIFT) & ((1u << TSLAB__CLS_BITS) - 1);
    tslab__class *c = &a->cls[ci];
    uint32_t idx = (uint32_t)(h >> TSLAB__GEN_BITS) & TSLAB__IDX_MASK;
    uint32_t gen = (uint32_t)h & TSLAB__GEN_MASK;
    /* Acquire: a slot below nslots has committed metadata (published by grow()). */
    if (tslab_unlikely(idx >= atomic_load_explicit(&c->nslots, memory_order_acquire)))
        return tslab__reject(a, ci, TSLAB__REJ_INVALID);
    uint32_t expect = gen << 1 | TSLAB__LIVE;
    /* acq_rel: acquire the allocating thread's publication of the slot, release our writes to
     * the object before the slot can be handed to another thread. */
    if (tslab_unlikely(!atomic_compare_exchange_strong_explicit(
            &c->state[idx], &expect, tslab__state_freed(gen), memory_order_acq_rel,
            memory_order_acquire)))
        return tslab__reject(a, ci, tslab__reject_reason(gen, expect));
    return release(a, c, tslab__handle_next(h));
}

bool tslab_free_ptr(tslab *a, void *p)
{
    if (p == NULL)
        return true;
    if (tslab_unlikely(a == NULL))
        return false;
    uint32_t ci;
    int reason;
    int64_t idx = tslab__ptr_slot(a, p, &ci, &reason);
    if (tslab_unlikely(idx < 0))
        return tslab__reject(a, ci, reason);
    tslab__class *c = &a->cls[ci];
    _Atomic uint32_t *st = &c->state[idx];
    uint32_t s = atomic_load_explicit(st, memory_order_acquire);
    do {
        if (tslab_unlikely(!(s & TSLAB__LIVE)))
            return tslab__reject(a, ci, TSLAB__REJ_DOUBLE);
    } while (!atomic_compare_exchange_weak_explicit(st, &s, tslab__state_freed(tslab__state_gen(s)),
                                                    memory_order_acq_rel, memory_order_acquire));
    return release(
        a, c,
        tslab__handle_make(a->tag, ci, (uint32_t)idx, (tslab__state_gen(s) + 1) & TSLAB__GEN_MASK));
}

/* The live state word of h's slot, or 0 when h is not live; *c_out and *idx_out name the slot. */
static uint32_t live_state(tslab *a, tslab_handle h, tslab__class **c_out, uint32_t *idx_out)
{
    if (a == NULL || tslab__handle_bad(h, a->tag, a->nclasses))
        return 0;
    uint32_t ci = (uint32_t)(h >> TSLAB__CLS_SHIFT) & ((1u << TSLAB__CLS_BITS) - 1);
    tslab__class *c = &a->cls[ci];
    uint32_t idx = (uint32_t)(h >> TSLAB__GEN_BITS) & TSLAB__IDX_MASK;
    if (idx >= atomic_load_explicit(&c->nslots, memory_order_acquire))
        return 0;
    uint32_t s = atomic_load_explicit(&c->state[idx], memory_order_acquire);
    if (s != (((uint32_t)h & TSLAB__GEN_MASK) << 1 | TSLAB__LIVE))
        return 0;
    *c_out = c;
    *idx_out = idx;
    return s;
}

void *tslab_handle_ptr(tslab *a, tslab_handle h)
{
    tslab__class *c;
    uint32_t idx;
    return live_state(a, h, &c, &idx) ? tslab__slot_addr(c, idx) : NULL;
}

tslab_handle tslab_ptr_handle(tslab *a, const void *p)
{
    if (a == NULL || p == NULL)
        return TSLAB_HANDLE_NONE;
    uint32_t ci;
    int reason;
    int64_t idx = tslab__ptr_slot(a, p, &ci, &reason);
    if (idx < 0)
        return TSLAB_HANDLE_NONE;
    uint32_t s = atomic_load_explicit(&a->cls[ci].state[idx], memory_order_acquire);
    if (!(s & TSLAB__LIVE))
        return TSLAB_HANDLE_NONE;
    return tslab__handle_make(a->tag, ci, (uint32_t)idx, tslab__state_gen(s));
}

size_t tslab_usable_size(tslab *a, const void *p)
{
    if (a == NULL || p == NULL)
        return 0;
    uint32_t ci;
    int reason;
    int64_t idx = tslab__ptr_slot(a, p, &ci, &reason);
    if (idx < 0)
        return 0;
    uint32_t s = atomic_load_explicit(&a->cls[ci].state[idx], memory_order_acquire);
    return (s & TSLAB__LIVE) ? a->cls[ci].size : 0;
}
