/* SPDX-License-Identifier: MIT */
/* Freeing and checking. Every decision about a caller-supplied handle or pointer is made from
 * the instance's own tables, bounds-checked before any state word is read, and the memory the
 * caller names is never dereferenced. A thread frees the slots of slabs it owns with a load and a
 * store; any other free is one CAS on the slot's state word (LIVE -> FREE|RFREE), which makes
 * racing non-owner frees exact, and the slot goes back to the owner through the slab's remote
 * bitmap. */
#include "internal.h"

#include <errno.h>
#include <string.h>

#define GEN_HALF (UINT32_C(1) << (TSLAB__GEN_BITS - 1))

int tslab__reject_reason(uint32_t gen, uint32_t state)
{
    uint32_t cur = tslab__state_gen(state);
    /* Frees of this slot since gen was issued: the distance in steps of TSLAB__GEN_STEP. */
    uint32_t behind = ((cur - gen) * TSLAB__GEN_STEP_INV) & TSLAB__GEN_MASK;
    if (behind == 0 || behind >= GEN_HALF)
        return TSLAB__REJ_INVALID; /* a generation this slot has not reached: never issued */
    if (behind == 1 && !(state & TSLAB__LIVE))
        return TSLAB__REJ_DOUBLE;
    return TSLAB__REJ_STALE;
}

/* In TSLAB__ENTRY, as is every function on the way here from a public call, so that the
 * recorded stack starts at the caller's frame. */
TSLAB_COLD TSLAB__ENTRY bool tslab__reject(tslab *a, uint32_t cls, int reason, uint64_t value,
                                           bool by_pointer)
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
    tslab__reject_record(a, cls, reason, value, by_pointer);
    return false;
}

/* The caller's plain store freed a slot of a slab it owns; `ent` is the handle the slot carries
 * next. Sanitizer quarantine, or a full cache whose older half goes back to the slabs. */
static TSLAB_NOINLINE bool keep_slow(tslab *a, tslab__class *c, tslab__tclass *t, uint64_t ent)
{
    tslab__bump(&t->tc.slow_path);
    if (tslab_config_quarantine) {
        uint64_t old = tslab__quarantine_push(c, ent);
        if (old != TSLAB__NO_ENTRY)
            tslab__slab_drain(a, c, &old, 1);
    } else {
        /* Inside tslab__tcache_enter: plain moves (tslab__tc_slots). */
        uint64_t *slots = tslab__tc_slots(t);
        uint32_t n = atomic_load_explicit(&t->count, memory_order_relaxed);
        if (n == t->cap) {
            tslab__slab_drain(a, c, slots, c->batch);
            n -= c->batch;
            memmove(slots, slots + c->batch, n * sizeof slots[0]);
        }
        slots[n] = ent;
        atomic_store_explicit(&t->count, n + 1, memory_order_relaxed);
    }
    tslab__bump(&t->tc.frees);
    return true;
}

/* The caller's CAS freed a slot of a slab it does not own (state RFREE): batched, then handed
 * back to the slab for its owner's check. Without a cache (out of memory) it goes back at once
 * and is counted under tc_lock. */
static bool give_back(tslab *a, tslab__class *c, tslab__tclass *t, uint64_t ent)
{
    if (t == NULL) {
        tslab__slab_remote(a, c, TSLAB__NO_ID, &ent, 1);
        pthread_mutex_lock(&a->tc_lock);
        tslab__bump(&a->retired[c->index].frees);
        pthread_mutex_unlock(&a->tc_lock);
        return true;
    }
    tslab__bump(&t->tc.slow_path);
    /* Relaxed: only slow paths write the count, and the collector reads it (reclaim.c). */
    uint16_t r = atomic_load_explicit(&t->rcount, memory_order_relaxed);
    if (r == TSLAB__RBUF) {
        tslab__slab_remote(a, c, t->id, t->remote, r);
        r = 0;
    }
    t->remote[r] = ent;
    atomic_store_explicit(&t->rcount, r + 1, memory_order_relaxed);
    tslab__bump(&t->tc.frees);
    return true;
}

/* The caller's CAS freed (FREE|RFREE) a slot of the open epoch its epoch cache et holds:
 * the slot goes into that cache as plain FREE (nobody else can see the word change: the slot is
 * the caller's), the older half of a full cache back to its slabs. */
static bool epoch_keep(tslab *a, tslab__class *c, tslab__tclass *t, tslab__eclass *et,
                       _Atomic uint32_t *st, uint64_t ent)
{
    atomic_store_explicit(st, atomic_load_explicit(st, memory_order_relaxed) & ~TSLAB__RFREE,
                          memory_order_relaxed);
    /* Inside tslab__tcache_enter: plain moves (tslab__ec_slots). */
    uint64_t *slots = tslab__ec_slots(et);
    uint32_t n = atomic_load_explicit(&et->count, memory_order_relaxed);
    /* The fast path's floor moves with each slot in or out (evirt, its unclamped value), so
     * that slots coming back never let the fast path hand out more than the sampler's countdown
     * allows: a request that allocates and frees in one epoch would otherwise never stop there.
     * (A full tslab__ec_arm here costs such a free about 15 instructions; this, 7.) */
    if (n == TSLAB__EC_MAX) {
        uint32_t half = TSLAB__EC_MAX / 2;
        tslab__slab_drain(a, c, slots, half);
        n -= half;
        memmove(slots, slots + half, n * sizeof slots[0]);
        t->evirt -= (int32_t)half;
    }
    slots[n] = ent;
    atomic_store_explicit(&et->count, n + 1, memory_order_relaxed);
    et->frees++;
    tslab__ec_floor(t, t->evirt + 1);
    tslab__bump(&t->tc.frees);
    return true;
}

/* free_slow's work with the thread's cache entered (tc, or NULL when none could be made). */
static inline TSLAB__ENTRY bool free_cached(tslab *a, tslab__class *c, tslab__tcache *tc,
                                            uint64_t h)
{
    uint32_t idx = tslab__handle_idx(h);
    uint32_t gen = (uint32_t)h & TSLAB__GEN_MASK;
    _Atomic uint32_t *st = &c->state[idx];
    /* The word a live object of generation gen has, SAMPLED included when the word carries it.
     * Relaxed: the value only completes the exact compare below, which is what decides (a word
     * of another generation still fails it, and the reason comes from that word). */
    uint32_t live =
        gen << 1 | TSLAB__LIVE | (atomic_load_explicit(st, memory_order_relaxed) & TSLAB__SAMPLED);
    tslab__tclass *t = tc != NULL ? &tc->cls[c->index] : NULL;
    if (t != NULL &&
        atomic_load_explicit(&c->owner[idx >> c->slot_shift], memory_order_relaxed) == t->id) {
        uint32_t s = live;
        if (tslab_config_sanitize || a->exact_frees) {
            /* A CAS even for the owner: exact_frees asks for it (a CAS racing another thread's
             * CAS leaves exactly one winner), and in sanitizer builds two racing frees that both
             * succeeded would both poison the object, one of them possibly after its next owner
             * unpoisoned it; exact frees keep the shadow memory right (and the quarantine in
             * use). */
            if (!atomic_compare_exchange_strong_explicit(
                    st, &s, tslab__state_freed(gen), memory_order_acq_rel, memory_order_acquire))
                return tslab__reject(a, c->index, tslab__reject_reason(gen, s), h, false);
            if (tslab_config_sanitize)
                tslab__san_free(c->size, tslab__slot_addr(c, idx));
        } else {
            s = atomic_load_explicit(st, memory_order_acquire);
            if (s != live)
                return tslab__reject(a, c->index, tslab__reject_reason(gen, s), h, false);
            atomic_store_explicit(st, tslab__state_freed(gen), memory_order_release);
        }
        /* Before the slot can be reused (and sampled again). */
        if (live & TSLAB__SAMPLED)
            tslab__sample_free(a, c->index, idx, gen);
        return keep_slow(a, c, t, tslab__handle_next(h));
    }
    /* acq_rel: acquire the allocating thread's publication of the slot, release our writes to
     * the object before the slot can be handed to another thread. */
    uint32_t expect = live;
    if (!atomic_compare_exchange_strong_explicit(st, &expect,
                                                 tslab__state_freed(gen) | TSLAB__RFREE,
                                                 memory_order_acq_rel, memory_order_acquire))
        return tslab__reject(a, c->index, tslab__reject_reason(gen, expect), h, false);
    if (tslab_config_sanitize)
        tslab__san_free(c->size, tslab__slot_addr(c, idx));
    if (expect & TSLAB__SAMPLED)
        tslab__sample_free(a, c->index, idx, gen);
    /* An object of the open epoch this thread's epoch cache of the class is bound to goes back
     * into that cache. The slot is ours since the CAS, so its slab (and the slab's epoch) cannot
     * change under us; the key still equal to the cache's epoch means the cache is bound to the
     * record's current life, to which the slab then belongs. */
    uint32_t s = idx >> c->slot_shift;
    if (tc != NULL && tslab__ec_used(tc) &&
        atomic_load_explicit(&c->owner[s], memory_order_relaxed) == TSLAB__EPOCH_OWNER) {
        tslab__eclass *et = &tc->ec[c->index];
        if (et->epoch != 0 &&
            et->idx == atomic_load_explicit(&c->sepoch[s], memory_order_relaxed) &&
            atomic_load_explicit(et->key, memory_order_relaxed) == et->epoch)
            return epoch_keep(a, c, t, et, st, tslab__handle_next(h));
    }
    return give_back(a, c, t, tslab__handle_next(h));
}

/* Every free the fast paths did not finish: no cache bound yet, full cache, a slab this thread
 * does not own, sanitizer builds, and rejections. h names a slot below c's nslots. */
static TSLAB_NOINLINE TSLAB__ENTRY bool free_slow(tslab *a, tslab__class *c, uint64_t h)
{
    tslab__tcache *tc = tslab__tcache_enter(a);
    bool r = free_cached(a, c, tc, h);
    if (tc != NULL)
        tslab__tcache_leave(tc);
    return r;
}

/* The calling thread's cache of class ci when it may free slot idx with a plain store: it owns
 * the slot's slab and its cache has room (*n entries). NULL otherwise, and always in sanitizer
 * builds and exact_frees instances (where every free is a CAS: the latter's `limit` stays 0). No
 * other thread frees an owned slab's slots without a CAS, and a CAS that races the owner's store is
 * caught when the owner checks its remote bits (internal.h). */
static inline tslab__tclass *owner_cache(tslab *a, uint32_t ci, uint32_t idx, uint32_t *n)
{
    tslab__tls_fast_entry *e = tslab__tls_slot(a);
    if (tslab_config_sanitize || !tslab__tls_match(e, a))
        return NULL;
    tslab__tclass *t = &e->tc->cls[ci];
    tslab__opaque(t);
    *n = atomic_load_explicit(&t->count, memory_order_relaxed);
    /* Below the limit the owner id and state word exist; above it no slab is ours. Relaxed
     * owner load: only this thread makes a slab its own or gives it up. */
    if (idx >= t->limit ||
        atomic_load_explicit(&t->owner[idx >> t->slot_shift], memory_order_relaxed) != t->id ||
        *n == t->cap)
        return NULL;
    return t;
}

/* The owner's free of a slot whose word `st` it saw LIVE at generation gen, into its cache of n
 * entries; `next` is the handle the slot carries next. Release: our writes to the object happen
 * before whoever gets the slot next. */
static inline bool owner_free(tslab__tclass *t, uint32_t n, _Atomic uint32_t *st, uint32_t gen,
                              uint64_t next)
{
    atomic_store_explicit(st, tslab__state_freed(gen), memory_order_release);
    /* Relaxed (plain moves): atomic for the idle-reclaim collector, which leaves slots[n] alone. */
    tslab__entry_put(&t->slots[n], next);
    atomic_store_explicit(&t->count, n + 1, memory_order_relaxed);
    tslab__bump(&t->tc.frees);
    return true;
}

static TSLAB_COLD TSLAB__ENTRY bool reject_handle(tslab *a, tslab_handle h)
{
    if (a == NULL)
        return false;
    uint32_t tag = (uint32_t)(h >> TSLAB__TAG_SHIFT) & TSLAB__TAG_MASK;
    uint32_t ci = (uint32_t)(h >> TSLAB__CLS_SHIFT) & ((1u << TSLAB__CLS_BITS) - 1);
    if (tslab__handle_odd(h))
        return tslab__reject(a, a->nclasses, TSLAB__REJ_INVALID, h, false);
    if (tag != a->tag)
        return tslab__reject(a, a->nclasses,
                             tslab__tag_is_live(tag, a) ? TSLAB__REJ_FOREIGN : TSLAB__REJ_INVALID,
                             h, false);
    return tslab__reject(a, ci < a->nclasses ? ci : a->nclasses, TSLAB__REJ_INVALID, h, false);
}

/* tslab_free beyond its fast path: bounds-checks h's slot against the class before free_slow. */
static TSLAB_NOINLINE TSLAB__ENTRY bool free_handle_slow(tslab *a, uint32_t ci, uint64_t h)
{
    tslab__class *c = &a->cls[ci];
    /* Acquire: a slot below nslots has committed metadata (published by grow()). */
    if (tslab__handle_idx(h) >= atomic_load_explicit(&c->nslots, memory_order_acquire))
        return tslab__reject(a, ci, TSLAB__REJ_INVALID, h, false);
    return free_slow(a, c, h);
}

TSLAB__ENTRY bool tslab_free(tslab *a, tslab_handle h)
{
    uint32_t ci;
    if (tslab_unlikely(a == NULL || tslab__handle_bad(h, a->tag_base, a->nclasses, &ci)))
        return reject_handle(a, h);
    uint32_t idx = tslab__handle_idx(h);
    uint32_t gen = (uint32_t)h & TSLAB__GEN_MASK;
    uint32_t n;
    tslab__tclass *t = owner_cache(a, ci, idx, &n);
    if (tslab_likely(t != NULL)) {
        _Atomic uint32_t *st = &t->state[idx];
        if (tslab_likely(atomic_load_explicit(st, memory_order_acquire) ==
                         (gen << 1 | TSLAB__LIVE)))
            return owner_free(t, n, st, gen, tslab__handle_next(h));
    }
    return free_handle_slow(a, ci, h);
}

/* Everything tslab_free_ptr's fast path did not finish: not the owner, a full cache, sanitizer
 * builds, and frees of slots that are not live. */
static TSLAB_NOINLINE TSLAB__ENTRY bool free_ptr_slow(tslab *a, uint32_t ci, uint32_t idx)
{
    tslab__class *c = &a->cls[ci];
    uint32_t s = atomic_load_explicit(&c->state[idx], memory_order_acquire);
    if (!(s & TSLAB__LIVE))
        return tslab__reject(a, ci, TSLAB__REJ_DOUBLE, (uintptr_t)tslab__slot_addr(c, idx), true);
    /* The handle of the generation seen; a free racing in between makes it stale, and the
     * handle path then rejects ours as the double it is. */
    return free_slow(a, c, tslab__handle_make(a->tag_base | ci, idx, tslab__state_gen(s)));
}

TSLAB__ENTRY bool tslab_free_ptr(tslab *a, void *p)
{
    if (p == NULL)
        return true;
    if (tslab_unlikely(a == NULL))
        return false;
    uint32_t ci;
    int reason;
    int64_t slot = tslab__ptr_slot(a, p, &ci, &reason);
    if (tslab_unlikely(slot < 0))
        return tslab__reject(a, ci, reason, (uintptr_t)p, true);
    uint32_t idx = (uint32_t)slot;
    uint32_t n;
    tslab__tclass *t = owner_cache(a, ci, idx, &n);
    if (tslab_likely(t != NULL)) {
        _Atomic uint32_t *st = &t->state[idx];
        uint32_t top = t->top;
        /* A LIVE word is the object's: its generation is the one being freed. A sampled one
         * goes to the slow path, which moves its record. "LIVE and not SAMPLED" as one test:
         * s - 1 clears LIVE when it is set and leaves SAMPLED alone, and sets bit 0 when LIVE is
         * clear (a borrow). */
        uint32_t s = atomic_load_explicit(st, memory_order_acquire);
        if (tslab_likely(((s - 1) & (TSLAB__LIVE | TSLAB__SAMPLED)) == 0)) {
            uint32_t gen = tslab__state_gen(s);
            return owner_free(t, n, st, gen, tslab__handle_make(top, idx, tslab__gen_next(gen)));
        }
    }
    return free_ptr_slow(a, ci, idx);
}

/* The live state word of h's slot, or 0 when h is not live; *c_out and *idx_out name the slot. */
static uint32_t live_state(tslab *a, tslab_handle h, tslab__class **c_out, uint32_t *idx_out)
{
    uint32_t ci;
    if (a == NULL || tslab__handle_bad(h, a->tag_base, a->nclasses, &ci))
        return 0;
    tslab__class *c = &a->cls[ci];
    uint32_t idx = (uint32_t)(h >> TSLAB__GEN_BITS) & TSLAB__IDX_MASK;
    if (idx >= atomic_load_explicit(&c->nslots, memory_order_acquire))
        return 0;
    uint32_t s = atomic_load_explicit(&c->state[idx], memory_order_acquire);
    if ((s & ~TSLAB__SAMPLED) != (((uint32_t)h & TSLAB__GEN_MASK) << 1 | TSLAB__LIVE))
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
    return tslab__handle_make(a->tag_base | ci, (uint32_t)idx, tslab__state_gen(s));
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
