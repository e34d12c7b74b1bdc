/* SPDX-License-Identifier: MIT */
/* Slabs: the shared, locked side of the allocator. Refill moves free slots from slabs to a
 * thread cache in a batch; drain moves them back; remote hand-back returns slots other threads
 * freed. A slab is cached or released only when its bitmap holds every slot, i.e. no thread owns
 * any of them and none can allocate from it.
 *
 * Ownership: a thread with an owner id refills only from slabs it owns (own[id]), and
 * claims an unowned partial or empty slab when that list runs dry. Slabs go back to nobody when
 * they empty or their owner exits. Remote bits are checked only by the owner, or by anyone once
 * the slab is unowned (see internal.h for why that makes the check exact).
 *
 * Every function here takes the class lock itself, except the static helpers, whose callers
 * hold it. Pages are handed back to the OS outside the lock and only while the slab is on no list
 * (state RELEASING), so no other thread can take it before the pages are gone ("release first,
 * publish after"); metadata is never in those pages.
 *
 * Memory over time: an emptied slab joins the class's cache (newest first) stamped with the
 * instance clock, and goes back to the OS once it has stayed there `decay_ns` (decay), at once
 * beyond the soft limit, or oldest first when the cache passes its hard cap. Decay advances on
 * slow paths under the lock the call holds anyway: the clock is read when a slab empties and on
 * every 16th refill or drain, and compared with the class's next deadline (decay_due); the
 * release itself happens after the unlock, batched. The hard limit is checked (CAS on the
 * instance's `resident`) before a slab that is not resident becomes so. */
#include "internal.h"

#include <errno.h>

static _Atomic uint64_t *state_gauge(tslab__class *c, uint16_t st)
{
    switch (st) {
    case TSLAB__SLAB_PARTIAL: return &c->cc.slabs_partial;
    case TSLAB__SLAB_FULL: return &c->cc.slabs_full;
    case TSLAB__SLAB_CACHED: return &c->cc.slabs_cached;
    case TSLAB__SLAB_RELEASED: return &c->cc.slabs_released;
    default: return NULL;
    }
}

static void set_state(tslab__class *c, uint32_t s, uint16_t st)
{
    _Atomic uint64_t *g = state_gauge(c, c->slabs[s].state);
    if (g)
        tslab__cadd(g, -1);
    c->slabs[s].state = st;
    if ((g = state_gauge(c, st)) != NULL)
        tslab__cadd(g, 1);
}

static void list_push(tslab__class *c, tslab__list *l, uint32_t s)
{
    tslab__slab *sl = &c->slabs[s];
    sl->prev = TSLAB__NIL;
    sl->next = l->head;
    if (l->head != TSLAB__NIL)
        c->slabs[l->head].prev = s;
    else
        l->tail = s;
    l->head = s;
    l->count++;
}

static void list_remove(tslab__class *c, tslab__list *l, uint32_t s)
{
    tslab__slab *sl = &c->slabs[s];
    if (sl->prev != TSLAB__NIL)
        c->slabs[sl->prev].next = sl->next;
    else
        l->head = sl->next;
    if (sl->next != TSLAB__NIL)
        c->slabs[sl->next].prev = sl->prev;
    else
        l->tail = sl->prev;
    l->count--;
}

/* Metadata bytes one slab adds (state words, descriptor, both bitmaps, owner id, epoch). */
static uint64_t meta_per_slab(const tslab__class *c)
{
    return (uint64_t)c->per_slab * 4 + sizeof(tslab__slab) + c->bitmap_words * 16 +
           2 * sizeof(uint16_t);
}

/* resident: slabs not handed back plus the metadata pages in use (committed metadata beyond
 * that is untouched, so it is mapped but not resident). */
static void update_bytes(tslab *a, tslab__class *c)
{
    uint64_t meta_committed = c->meta_state.committed + c->meta_slab.committed +
                              c->meta_bits.committed + c->meta_rbits.committed +
                              c->meta_owner.committed + c->meta_own.committed +
                              c->meta_sepoch.committed + c->meta_elist.committed;
    uint64_t meta_used = (c->nslabs * meta_per_slab(c) + a->page - 1) / a->page * a->page;
    uint64_t released = atomic_load_explicit(&c->cc.slabs_released, memory_order_relaxed);
    atomic_store_explicit(&c->cc.mapped_bytes, c->objects.committed + meta_committed,
                          memory_order_relaxed);
    atomic_store_explicit(&c->cc.resident_bytes, (c->nslabs - released) * c->slab_bytes + meta_used,
                          memory_order_relaxed);
    atomic_store_explicit(&c->cc.cached_bytes, (uint64_t)c->cached.count * c->slab_bytes,
                          memory_order_relaxed);
}

/* Takes `bytes` more into the instance's resident count unless that passes the hard limit.
 * A CAS loop, so threads growing different classes at once cannot overshoot together; it runs
 * only when a slab that is not resident becomes so. */
static bool resident_take(tslab *a, uint64_t bytes)
{
    uint64_t hard = atomic_load_explicit(&a->limit_hard, memory_order_relaxed);
    uint64_t r = atomic_load_explicit(&a->resident, memory_order_relaxed);
    do {
        if (hard != 0 && (r + bytes > hard || r + bytes < r))
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&a->resident, &r, r + bytes,
                                                    memory_order_relaxed, memory_order_relaxed));
    return true;
}

static void resident_give(tslab *a, uint64_t bytes)
{
    atomic_fetch_sub_explicit(&a->resident, bytes, memory_order_relaxed);
}

/* True when the instance's resident bytes, less `pending` bytes already queued for release,
 * are beyond its soft limit. */
static bool over_soft(tslab *a, uint64_t pending)
{
    uint64_t soft = atomic_load_explicit(&a->limit_soft, memory_order_relaxed);
    uint64_t r = atomic_load_explicit(&a->resident, memory_order_relaxed);
    return soft != 0 && r > pending && r - pending > soft;
}

static void fill_bitmap(tslab__class *c, uint32_t s)
{
    uint64_t *w = &c->bits[(size_t)s * c->bitmap_words];
    for (uint32_t i = 0; i < c->bitmap_words; i++) {
        uint32_t left = c->per_slab - i * 64;
        w[i] = left >= 64 ? ~UINT64_C(0) : (UINT64_C(1) << left) - 1; /* left < 64 here */
    }
    c->slabs[s].nfree = c->per_slab;
    c->slabs[s].hint = 0;
}

/* Commits one more slab and its metadata; TSLAB__NIL when the class is at its ceiling or the OS
 * refuses (counted). The slot count is published only after the metadata exists. */
static uint32_t grow(tslab *a, tslab__class *c)
{
    uint32_t s = c->nslabs;
    if (s >= c->max_slabs)
        return TSLAB__NIL;
    size_t n = (size_t)s + 1;
    if (tslab__area_grow(a, &c->meta_state, n * c->per_slab * 4) != 0 ||
        tslab__area_grow(a, &c->meta_slab, n * sizeof(tslab__slab)) != 0 ||
        tslab__area_grow(a, &c->meta_bits, n * c->bitmap_words * 8) != 0 ||
        tslab__area_grow(a, &c->meta_rbits, n * c->bitmap_words * 8) != 0 ||
        tslab__area_grow(a, &c->meta_owner, n * sizeof(uint16_t)) != 0 ||
        tslab__area_grow(a, &c->meta_sepoch, n * sizeof(uint16_t)) != 0 ||
        tslab__area_grow(a, &c->objects, n * c->slab_bytes) != 0) {
        tslab__cadd(&c->cc.os_failures, 1);
        return TSLAB__NIL;
    }
    c->slabs[s] = (tslab__slab){0, TSLAB__NIL, TSLAB__NIL, TSLAB__SLAB_FRESH, 0, 0, 0};
    atomic_store_explicit(&c->owner[s], 0, memory_order_relaxed);
    atomic_store_explicit(&c->sepoch[s], 0, memory_order_relaxed);
    /* Not yet published (nslots), so no other thread reads these words. */
    for (uint32_t i = 0, base = s << c->slot_shift; i < c->per_slab; i++)
        atomic_store_explicit(&c->state[base + i],
                              tslab__initial_gen(a->uid, c->index, base + i) << 1,
                              memory_order_relaxed);
    fill_bitmap(c, s);
    c->nslabs = (uint32_t)n;
    atomic_store_explicit(&c->nslots, (uint32_t)(n << c->slot_shift), memory_order_release);
    tslab__san_slab_fresh(c, tslab__slot_addr(c, s << c->slot_shift), c->slab_bytes);
    return s;
}

static uint32_t pop(tslab__class *c, tslab__list *l)
{
    uint32_t s = l->head;
    if (s != TSLAB__NIL)
        list_remove(c, l, s);
    return s;
}

/* Another slab for a class with no partial slab: cache hit, else pages from the OS (a released
 * slab's mapping, which refaults zeroed pages, or a fresh one), unless they would take the
 * instance past its hard limit (*limited set). */
static uint32_t acquire(tslab *a, tslab__class *c, bool *limited)
{
    tslab__cadd(&c->cc.cache_lookups, 1);
    uint32_t s = pop(c, &c->cached);
    if (s != TSLAB__NIL) {
        tslab__cadd(&c->cc.cache_hits, 1);
        c->decay_next = c->cached.count ? c->decay_next : UINT64_MAX;
        return s;
    }
    tslab__cadd(&c->cc.cache_misses, 1);
    bool fresh = c->released.head == TSLAB__NIL;
    uint64_t cost = c->slab_bytes + (fresh ? meta_per_slab(c) : 0);
    if (!resident_take(a, cost)) {
        *limited = true;
        return TSLAB__NIL;
    }
    s = fresh ? grow(a, c) : pop(c, &c->released);
    if (s == TSLAB__NIL)
        resident_give(a, cost);
    return s;
}

/* Slabs emptied under the lock, waiting to be released outside it (release_slabs), each with
 * the reason it leaves (TSLAB__WHY_*, for the counters). */
#define RELQ 64
typedef struct relq {
    uint32_t s[RELQ];
    uint8_t why[RELQ];
    uint32_t n;
    uint64_t bytes; /* queued so far (over_soft counts them as gone) */
    uint64_t now;   /* the clock, read once per call that needs it (0: not yet) */
} relq;

/* The instance clock for this call: one read however many slabs empty in it (a destroy or a
 * drain can empty dozens, and each would otherwise read the clock). */
static uint64_t relq_now(tslab *a, relq *q)
{
    if (q->now == 0)
        q->now = tslab__now(a);
    return q->now;
}

/* Takes s (empty, on no list) out of circulation for release as `why`; the queue has room. */
static void queue_release(tslab__class *c, uint32_t s, int why, relq *q)
{
    set_state(c, s, TSLAB__SLAB_RELEASING);
    if (why == TSLAB__WHY_CAP)
        tslab__cadd(&c->cc.cache_overflows, 1);
    q->s[q->n] = s;
    q->why[q->n++] = (uint8_t)why;
    q->bytes += c->slab_bytes;
}

/* Moves the oldest cached slab to the queue. Caller holds the lock; the queue has room. */
static void evict_oldest(tslab__class *c, int why, relq *q)
{
    uint32_t old = c->cached.tail;
    list_remove(c, &c->cached, old);
    queue_release(c, old, why, q);
}

static uint64_t sat_add(uint64_t x, uint64_t y) { return x + y < x ? UINT64_MAX : x + y; }

/* Caller holds the lock. Queues (while the queue has room) the cached slabs whose decay ran out
 * at `now`, or, beyond the soft limit, the oldest ones until the instance is back under it;
 * then sets the class's next deadline. */
static void decay_step(tslab *a, tslab__class *c, uint64_t now, relq *q)
{
    uint64_t decay = atomic_load_explicit(&a->decay_ns, memory_order_relaxed);
    while (c->cached.count > 0 && q->n < RELQ) {
        if (over_soft(a, q->bytes))
            evict_oldest(c, TSLAB__WHY_LIMIT, q);
        else if (now >= sat_add(c->slabs[c->cached.tail].idle_since, decay))
            evict_oldest(c, TSLAB__WHY_DECAY, q);
        else
            break;
    }
    c->decay_next =
        c->cached.count == 0 ? UINT64_MAX : sat_add(c->slabs[c->cached.tail].idle_since, decay);
}

/* Caller holds the lock: a decay step when one may be due. The clock is read on every 16th call
 * only (or when forced), so a busy slow path pays for it rarely; a slab that empties reads it
 * anyway (make_empty). Cheap checks first: nothing cached, or the soft limit passed. */
static void decay_due(tslab *a, tslab__class *c, relq *q, bool force)
{
    if (c->cached.count == 0 || q->n >= RELQ)
        return;
    if (over_soft(a, q->bytes)) {
        decay_step(a, c, 0, q);
        return;
    }
    if (!force && (++c->decay_calls & 15) != 0)
        return;
    uint64_t now = relq_now(a, q);
    /* Forced (flush, maintenance thread, a new setting): recompute the deadline whatever it was,
     * since the decay time may have changed since it was set. */
    if (force || now >= c->decay_next)
        decay_step(a, c, now, q);
}

/* Entry i of a lazily set up table of lists (own[] by owner id, elist[] by epoch record), its
 * reservation committed and its new entries set up on first use; NULL when the metadata cannot
 * be committed. Caller holds the lock. */
static tslab__list *lazy_list(tslab *a, tslab__class *c, tslab__area *ar, tslab__list *table,
                              uint32_t *ready, uint32_t i)
{
    if (i >= *ready) {
        if (tslab__area_grow(a, ar, ((size_t)i + 1) * sizeof(tslab__list)) != 0) {
            tslab__cadd(&c->cc.os_failures, 1);
            return NULL;
        }
        uint32_t n = (uint32_t)(ar->committed / sizeof(tslab__list));
        for (uint32_t k = *ready; k < n; k++)
            table[k] = (tslab__list){TSLAB__NIL, TSLAB__NIL, 0};
        *ready = n;
    }
    return &table[i];
}

/* The list a PARTIAL slab is on: its owner's or its epoch's (set up before the slab was
 * claimed), or the class's partial list. */
static tslab__list *home(tslab__class *c, uint32_t s)
{
    uint16_t o = atomic_load_explicit(&c->owner[s], memory_order_relaxed);
    if (o == TSLAB__EPOCH_OWNER)
        return &c->elist[atomic_load_explicit(&c->sepoch[s], memory_order_relaxed)];
    return o == 0 ? &c->partial : &c->own[o];
}

/* Gives slot idx back to its slab's free bitmap; returns the slab. Caller holds the lock. */
static uint32_t give_slot(tslab__class *c, uint32_t idx)
{
    uint32_t s = idx >> c->slot_shift, slot = idx & (c->per_slab - 1);
    tslab__slab *sl = &c->slabs[s];
    c->bits[(size_t)s * c->bitmap_words + slot / 64] |= UINT64_C(1) << (slot % 64);
    if (slot / 64 < sl->hint)
        sl->hint = (uint16_t)(slot / 64);
    sl->nfree++;
    return s;
}

/* Moves s's remote bits into its free bitmap, each after checking that the slot still carries
 * RFREE: a slot whose word lost it was also freed by its owner's plain store (it is in the owner's
 * cache or bitmap already), and the remote copy is dropped. Caller holds the lock and is s's
 * owner, or s is unowned. RFREE is cleared on the way: in a bitmap or cache the word is plain
 * FREE, so a stale remote bit can never take a slot twice. */
static void merge(tslab__class *c, uint32_t s)
{
    tslab__slab *sl = &c->slabs[s];
    uint64_t *rw = &c->rbits[(size_t)s * c->bitmap_words];
    uint32_t base = s << c->slot_shift;
    uint64_t dups = 0;
    for (uint32_t i = 0; i < c->bitmap_words && sl->rcount > 0; i++) {
        uint64_t b = rw[i];
        rw[i] = 0;
        for (; b != 0; b &= b - 1) {
            uint32_t bit = (uint32_t)__builtin_ctzll(b);
            _Atomic uint32_t *st = &c->state[base + i * 64 + bit];
            uint32_t v = atomic_load_explicit(st, memory_order_relaxed);
            sl->rcount--;
            if ((v & (TSLAB__RFREE | TSLAB__LIVE)) != TSLAB__RFREE) {
                dups++;
                continue;
            }
            atomic_store_explicit(st, v & ~TSLAB__RFREE, memory_order_relaxed);
            give_slot(c, base + i * 64 + bit);
        }
    }
    if (dups)
        tslab__cadd(&c->cc.duplicates_dropped, (int64_t)dups);
}

/* An empty slab (every slot in its bitmap, on no list) stops being owned and goes to the head of
 * the cache, stamped with the clock, for reuse while it decays. When that passes the cap, the
 * oldest cached slabs down to half the cap are queued in q for release, so the (on some hosts
 * very slow) calls are rare and adjacent slabs share one; the cache never exceeds its cap. With
 * no cache, no decay time or beyond the soft limit the slab is queued at once. The queue has
 * room for one slab on entry. Remote bits left on an empty slab are duplicates. */
static void make_empty(tslab *a, tslab__class *c, uint32_t s, relq *q)
{
    tslab__slab *sl = &c->slabs[s];
    if (sl->rcount > 0) {
        tslab__cadd(&c->cc.duplicates_dropped, sl->rcount);
        for (uint32_t i = 0; i < c->bitmap_words; i++)
            c->rbits[(size_t)s * c->bitmap_words + i] = 0;
        sl->rcount = 0;
    }
    if (atomic_load_explicit(&c->owner[s], memory_order_relaxed) == TSLAB__EPOCH_OWNER) {
        /* It leaves its epoch as it empties, whatever the epoch's state: an empty slab is the
         * instance's to reuse (for this epoch too, through acquire). */
        uint32_t eidx = atomic_load_explicit(&c->sepoch[s], memory_order_relaxed);
        atomic_store_explicit(&c->sepoch[s], 0, memory_order_relaxed);
        tslab__epoch_detach(a, eidx);
    }
    atomic_store_explicit(&c->owner[s], 0, memory_order_relaxed);
    uint64_t decay = atomic_load_explicit(&a->decay_ns, memory_order_relaxed);
    if (a->cache_slabs == 0 || decay == 0 || over_soft(a, q->bytes)) {
        queue_release(c, s,
                      a->cache_slabs == 0 ? TSLAB__WHY_CAP
                      : decay == 0        ? TSLAB__WHY_DECAY
                                          : TSLAB__WHY_LIMIT,
                      q);
        return;
    }
    uint64_t now = relq_now(a, q);
    c->slabs[s].idle_since = now;
    set_state(c, s, TSLAB__SLAB_CACHED);
    list_push(c, &c->cached, s);
    tslab__cadd(&c->cc.cache_inserts, 1);
    /* s itself stays: it is the warmest, and the cap is at least 1 here. */
    if (c->cached.count > a->cache_slabs)
        while (c->cached.count > a->cache_slabs / 2 && c->cached.tail != s && q->n < RELQ)
            evict_oldest(c, TSLAB__WHY_CAP, q);
    c->decay_next = sat_add(c->slabs[c->cached.tail].idle_since, decay);
    if (now >= c->decay_next)
        decay_step(a, c, now, q);
}

/* s gained free or remote bits: an empty slab leaves its list (make_empty), a FULL one joins its
 * home list. */
static void settle(tslab *a, tslab__class *c, uint32_t s, relq *q)
{
    tslab__slab *sl = &c->slabs[s];
    if (sl->nfree == c->per_slab) {
        if (sl->state == TSLAB__SLAB_PARTIAL)
            list_remove(c, home(c, s), s);
        make_empty(a, c, s, q);
    } else if (sl->state == TSLAB__SLAB_FULL) {
        set_state(c, s, TSLAB__SLAB_PARTIAL);
        list_push(c, home(c, s), s);
        tslab__cadd(&c->cc.full_to_partial, 1);
    }
}

static void unlock_and_release(tslab *a, tslab__class *c, relq *q);

/* Refill for owner id (a thread id, TSLAB__NO_ID, or TSLAB__EPOCH_OWNER with epoch e in record
 * eidx). An epoch refills from its own slabs and empty ones only, never from the class's shared
 * partial slabs, so its objects share slabs with nobody else's. */
static uint32_t refill(tslab *a, tslab__class *c, uint16_t id, uint32_t eidx, uint64_t e,
                       uint64_t *out, uint32_t want)
{
    bool epoch = id == TSLAB__EPOCH_OWNER;
    tslab__list *list = &c->partial;
    uint32_t n = 0;
    bool limited = false, purged = false, shut = false;
    relq q = {.n = 0};
again:
    tslab__class_lock(a, c);
    if (epoch) {
        list = lazy_list(a, c, &c->meta_elist, c->elist, &c->elist_ready, eidx);
        if (list == NULL)
            goto out;
    } else if (id != TSLAB__NO_ID &&
               (list = lazy_list(a, c, &c->meta_own, c->own, &c->own_ready, id)) == NULL) {
        /* An owner whose list cannot be set up (no memory for it) refills as an unowned thread
         * would this time: its frees of those slots then take the CAS path, always safe. */
        list = &c->partial;
        id = TSLAB__NO_ID;
    }
    while (n < want) {
        uint32_t s = list->head;
        if (s != TSLAB__NIL) {
            if (c->slabs[s].rcount > 0)
                merge(c, s);
        } else {
            s = id != TSLAB__NO_ID && !epoch ? pop(c, &c->partial) : TSLAB__NIL;
            if (s == TSLAB__NIL) {
                /* An epoch's new slab joins it only while it is open (checked under the table
                 * lock, which close and destroy hold as they shut it). */
                if (epoch && !tslab__epoch_attach(a, eidx, e)) {
                    shut = true;
                    break;
                }
                s = acquire(a, c, &limited);
                if (s == TSLAB__NIL) {
                    if (epoch)
                        tslab__epoch_detach(a, eidx);
                    break;
                }
                set_state(c, s, TSLAB__SLAB_PARTIAL);
                if (epoch)
                    atomic_store_explicit(&c->sepoch[s], (uint16_t)eidx, memory_order_relaxed);
            }
            /* Relaxed: the owner is read under this lock (hand-backs, lists) or by this thread
             * itself (its fast path), so the lock orders every read that matters. A remote slot
             * checked before this claim was checked under the lock, before our first plain free
             * of the slab could load its word. */
            if (id != TSLAB__NO_ID)
                atomic_store_explicit(&c->owner[s], id, memory_order_relaxed);
            list_push(c, list, s);
        }
        tslab__slab *sl = &c->slabs[s];
        uint64_t *words = &c->bits[(size_t)s * c->bitmap_words];
        uint32_t base = s << c->slot_shift;
        for (uint32_t w = sl->hint; w < c->bitmap_words && n < want; w++) {
            uint64_t bits = words[w];
            while (bits != 0 && n < want) {
                uint32_t idx = base + w * 64 + (uint32_t)__builtin_ctzll(bits);
                /* Our slot now; its last writer published through this lock. */
                uint32_t st = atomic_load_explicit(&c->state[idx], memory_order_relaxed);
                out[n++] = tslab__handle_make(a->tag_base | c->index, idx, tslab__state_gen(st));
                bits &= bits - 1;
                sl->nfree--;
            }
            words[w] = bits;
            sl->hint = (uint16_t)w;
        }
        if (sl->nfree == 0) {
            list_remove(c, list, s);
            set_state(c, s, TSLAB__SLAB_FULL);
            tslab__cadd(&c->cc.partial_to_full, 1);
        }
    }
    if (n == 0 && limited && purged)
        tslab__cadd(&c->cc.limit_refusals, 1);
out:
    decay_due(a, c, &q, false);
    unlock_and_release(a, c, &q);
    q.n = 0;
    q.bytes = 0;
    if (n == 0 && limited && !purged) {
        /* The hard limit: hand every class's cached slabs back (outside any lock), then try
         * once more; a second refusal is counted above. */
        purged = true;
        limited = false;
        for (uint32_t i = 0; i < a->nclasses; i++)
            tslab__slab_purge(a, &a->cls[i], TSLAB__WHY_LIMIT);
        goto again;
    }
    if (n == 0)
        errno = shut ? ESHUTDOWN : ENOMEM;
    return n;
}

uint32_t tslab__slab_refill(tslab *a, tslab__class *c, uint16_t id, uint64_t *out, uint32_t want)
{
    return refill(a, c, id, 0, 0, out, want);
}

uint32_t tslab__slab_refill_epoch(tslab *a, tslab__class *c, uint32_t eidx, uint64_t e,
                                  uint64_t *out, uint32_t want)
{
    return refill(a, c, TSLAB__EPOCH_OWNER, eidx, e, out, want);
}

/* The counters of slabs released as `why`. */
static void count_release(tslab__class *c, int why)
{
    static const size_t slabs[] = {offsetof(tslab__ccounters, cap_released_slabs),
                                   offsetof(tslab__ccounters, decay_released_slabs),
                                   offsetof(tslab__ccounters, limit_released_slabs),
                                   offsetof(tslab__ccounters, purge_released_slabs)};
    static const size_t bytes[] = {offsetof(tslab__ccounters, cap_released_bytes),
                                   offsetof(tslab__ccounters, decay_released_bytes),
                                   offsetof(tslab__ccounters, limit_released_bytes),
                                   offsetof(tslab__ccounters, purge_released_bytes)};
    char *cc = (char *)&c->cc;
    tslab__cadd((_Atomic uint64_t *)(void *)(cc + slabs[why]), 1);
    tslab__cadd((_Atomic uint64_t *)(void *)(cc + bytes[why]), c->slab_bytes);
}

/* Hands the pages of RELEASING slabs back to the OS, then publishes them as released. Slabs
 * with consecutive indices are adjacent whole pages and go in one call: on some hosts each call
 * costs far more than the pages. A failed call is counted once and its slabs stay resident in the
 * cache (at its head, so the next decay step does not retry them at once), beyond its cap. `s`
 * and `why` are sorted together in place. */
static void release_slabs(tslab *a, tslab__class *c, uint32_t *s, uint8_t *why, uint32_t n,
                          int *first_err)
{
    for (uint32_t i = 1; i < n; i++)
        for (uint32_t k = i; k > 0 && s[k - 1] > s[k]; k--) {
            uint32_t t = s[k];
            uint8_t w = why[k];
            s[k] = s[k - 1];
            why[k] = why[k - 1];
            s[k - 1] = t;
            why[k - 1] = w;
        }
    for (uint32_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && s[j] == s[j - 1] + 1; j++)
            ;
        size_t len = (size_t)(s[j - 1] - s[i] + 1) * c->slab_bytes;
        int r = tslab__area_decommit(a, tslab__slot_addr(c, s[i] << c->slot_shift), len);
        if (r == 0)
            resident_give(a, len);
        uint64_t now = r == 0 ? 0 : tslab__now(a);
        tslab__class_lock(a, c);
        for (uint32_t k = i; k < j; k++) {
            if (r == 0) {
                set_state(c, s[k], TSLAB__SLAB_RELEASED);
                list_push(c, &c->released, s[k]);
                count_release(c, why[k]);
            } else {
                c->slabs[s[k]].idle_since = now;
                set_state(c, s[k], TSLAB__SLAB_CACHED);
                list_push(c, &c->cached, s[k]);
                if (c->decay_next == UINT64_MAX)
                    c->decay_next =
                        sat_add(now, atomic_load_explicit(&a->decay_ns, memory_order_relaxed));
            }
        }
        if (r != 0) {
            tslab__cadd(&c->cc.os_failures, 1);
            if (first_err && *first_err == 0)
                *first_err = r;
        }
        update_bytes(a, c);
        pthread_mutex_unlock(&c->lock);
    }
}

/* Caller holds the lock. When the queue is full, drops the lock, releases the queue and takes
 * the lock again; returns true if it did (lists may have changed meanwhile). make_empty adds at
 * most one slab per call once the queue has room, so checking after each call is enough. */
static bool relq_drain_if_full(tslab *a, tslab__class *c, relq *q)
{
    if (q->n < RELQ)
        return false;
    pthread_mutex_unlock(&c->lock);
    release_slabs(a, c, q->s, q->why, q->n, NULL);
    q->n = 0;
    q->bytes = 0;
    tslab__class_lock(a, c);
    return true;
}

/* Caller holds the lock: publishes the byte gauges, unlocks, then releases what is queued. */
static void unlock_and_release(tslab *a, tslab__class *c, relq *q)
{
    update_bytes(a, c);
    pthread_mutex_unlock(&c->lock);
    release_slabs(a, c, q->s, q->why, q->n, NULL);
}

void tslab__slab_drain(tslab *a, tslab__class *c, const uint64_t *ent, uint32_t n)
{
    relq q = {.n = 0};
    tslab__class_lock(a, c);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t s = give_slot(c, tslab__handle_idx(ent[i]));
        settle(a, c, s, &q);
        relq_drain_if_full(a, c, &q);
    }
    decay_due(a, c, &q, false);
    unlock_and_release(a, c, &q);
}

void tslab__slab_remote(tslab *a, tslab__class *c, uint16_t id, const uint64_t *ent, uint32_t n)
{
    relq q = {.n = 0};
    uint64_t dups = 0;
    tslab__class_lock(a, c);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t idx = tslab__handle_idx(ent[i]);
        uint32_t s = idx >> c->slot_shift, slot = idx & (c->per_slab - 1);
        uint64_t bit = UINT64_C(1) << (slot % 64);
        size_t wi = (size_t)s * c->bitmap_words + slot / 64;
        uint16_t o = atomic_load_explicit(&c->owner[s], memory_order_relaxed);
        /* The word as this thread's CAS left it. Nobody else can take the slot meanwhile (this
         * batch holds it), so any other word means the owner's plain store freed it too, in a
         * race: the owner's copy is the one in circulation and this one is dropped, now rather
         * than at the owner's next check, so that once every thread has flushed
         * frees == allocations + duplicates_dropped exactly. */
        uint32_t want = ((uint32_t)ent[i] & TSLAB__GEN_MASK) << 1 | TSLAB__RFREE;
        if (atomic_load_explicit(&c->state[idx], memory_order_relaxed) != want) {
            dups++;
            continue;
        }
        if (o == 0 || o == id || o == TSLAB__EPOCH_OWNER) {
            /* No other thread can still be in a plain free of this slot: take it now. */
            atomic_store_explicit(&c->state[idx], want & ~TSLAB__RFREE, memory_order_relaxed);
            if (o == TSLAB__EPOCH_OWNER)
                tslab__epoch_count(a, atomic_load_explicit(&c->sepoch[s], memory_order_relaxed),
                                   c->index, -1);
            give_slot(c, idx);
        } else if (c->rbits[wi] & bit) {
            /* Already waiting for the owner's check: of two pending copies at most one is real
             * (a second CAS needed the slot LIVE again, which the first copy's loss made it). */
            dups++;
            continue;
        } else {
            /* The owner's store may still be in flight: its check decides (merge). */
            c->rbits[wi] |= bit;
            c->slabs[s].rcount++;
        }
        settle(a, c, s, &q);
        relq_drain_if_full(a, c, &q);
    }
    if (dups)
        tslab__cadd(&c->cc.duplicates_dropped, (int64_t)dups);
    decay_due(a, c, &q, false);
    unlock_and_release(a, c, &q);
}

/* Gives up s (owned, its remote bits already checked by a thread entitled to): it goes to the
 * class's partial list, stays FULL, or empties. Caller holds the lock. */
static void disown_one(tslab *a, tslab__class *c, uint32_t s, relq *q)
{
    tslab__slab *sl = &c->slabs[s];
    if (sl->rcount > 0)
        merge(c, s);
    bool listed = sl->state == TSLAB__SLAB_PARTIAL;
    if (listed)
        list_remove(c, home(c, s), s);
    if (sl->nfree == c->per_slab) {
        make_empty(a, c, s, q);
        return;
    }
    atomic_store_explicit(&c->owner[s], 0, memory_order_release);
    if (sl->nfree > 0) {
        if (!listed) {
            set_state(c, s, TSLAB__SLAB_PARTIAL);
            tslab__cadd(&c->cc.full_to_partial, 1);
        }
        list_push(c, &c->partial, s);
    } else if (listed) {
        set_state(c, s, TSLAB__SLAB_FULL);
        tslab__cadd(&c->cc.partial_to_full, 1);
    }
}

static void disown_where(tslab *a, tslab__class *c, uint16_t id, bool others)
{
    relq q = {.n = 0};
    tslab__class_lock(a, c);
    for (uint32_t s = 0; s < c->nslabs; s++) {
        uint16_t o = atomic_load_explicit(&c->owner[s], memory_order_relaxed);
        if (o == 0 || o == TSLAB__EPOCH_OWNER || (others ? o == id : o != id))
            continue;
        disown_one(a, c, s, &q);
        relq_drain_if_full(a, c, &q);
    }
    unlock_and_release(a, c, &q);
}

void tslab__slab_collect(tslab *a, tslab__class *c, uint16_t id)
{
    relq q = {.n = 0};
    tslab__class_lock(a, c);
    if (id == TSLAB__NO_ID || id >= c->own_ready) {
        /* No id, or one that never claimed a slab of this class. */
        pthread_mutex_unlock(&c->lock);
        return;
    }
    tslab__list *own = &c->own[id];
    for (uint32_t s = own->head, next; s != TSLAB__NIL; s = next) {
        next = c->slabs[s].next;
        if (c->slabs[s].rcount == 0)
            continue;
        merge(c, s);
        if (c->slabs[s].nfree == c->per_slab) {
            list_remove(c, own, s);
            make_empty(a, c, s, &q);
        } else if (c->slabs[s].nfree == 0) {
            list_remove(c, own, s);
            set_state(c, s, TSLAB__SLAB_FULL);
            tslab__cadd(&c->cc.partial_to_full, 1);
        }
        if (relq_drain_if_full(a, c, &q))
            next = own->head; /* the list may have changed meanwhile: start over */
    }
    unlock_and_release(a, c, &q);
}

void tslab__slab_disown(tslab *a, tslab__class *c, uint16_t id)
{
    if (id != TSLAB__NO_ID)
        disown_where(a, c, id, false);
}

void tslab__slab_disown_others(tslab *a, tslab__class *c, uint16_t keep)
{
    disown_where(a, c, keep, true);
}

uint64_t tslab__slab_epoch_destroy(tslab *a, tslab__class *c, uint32_t eidx)
{
    relq q = {.n = 0};
    uint64_t freed = 0;
    tslab__class_lock(a, c);
    for (uint32_t s = 0; s < c->nslabs; s++) {
        uint16_t st = c->slabs[s].state;
        if (atomic_load_explicit(&c->owner[s], memory_order_relaxed) != TSLAB__EPOCH_OWNER ||
            atomic_load_explicit(&c->sepoch[s], memory_order_relaxed) != eidx ||
            (st != TSLAB__SLAB_PARTIAL && st != TSLAB__SLAB_FULL))
            continue;
        const uint64_t *words = &c->bits[(size_t)s * c->bitmap_words];
        uint32_t base = s << c->slot_shift;
        uint32_t n = 0;
        for (uint32_t i = 0; i < c->per_slab; i++) {
            if (words[i / 64] & (UINT64_C(1) << (i % 64)))
                continue; /* the slab's own */
            _Atomic uint32_t *w = &c->state[base + i];
            uint32_t v = atomic_load_explicit(w, memory_order_acquire);
            /* Only a LIVE word is an object; a cached slot (FREE, in a thread's epoch cache) or
             * one freed by a CAS and on its way back (RFREE) is left to its holder. The CAS
             * makes a racing free, or a second destroy, lose: exactly one frees the object. */
            if (!(v & TSLAB__LIVE) || !atomic_compare_exchange_strong_explicit(
                                          w, &v, tslab__state_freed(tslab__state_gen(v)),
                                          memory_order_acq_rel, memory_order_relaxed))
                continue;
            if (tslab_config_sanitize)
                tslab__san_free(c->size, tslab__slot_addr(c, base + i));
            if (v & TSLAB__SAMPLED)
                tslab__sample_free(a, c->index, base + i, tslab__state_gen(v));
            give_slot(c, base + i);
            n++;
        }
        if (n == 0)
            continue;
        freed += n;
        tslab__epoch_count(a, eidx, c->index, -(int64_t)n);
        settle(a, c, s, &q);
        relq_drain_if_full(a, c, &q);
    }
    unlock_and_release(a, c, &q);
    return freed;
}

uint64_t tslab__quarantine_push(tslab__class *c, uint64_t idx)
{
    uint64_t evicted = TSLAB__NO_ENTRY;
    pthread_mutex_lock(&c->lock); /* sanitizer builds only: not counted */
    if (c->q_count < TSLAB_QUARANTINE_SLOTS) {
        c->quarantine[(c->q_head + c->q_count++) % TSLAB_QUARANTINE_SLOTS] = idx;
    } else {
        evicted = c->quarantine[c->q_head];
        c->quarantine[c->q_head] = idx;
        c->q_head = (c->q_head + 1) % TSLAB_QUARANTINE_SLOTS;
    }
    pthread_mutex_unlock(&c->lock);
    return evicted;
}

void tslab__quarantine_drain(tslab *a, tslab__class *c)
{
    if (!tslab_config_quarantine)
        return;
    uint64_t q[TSLAB_QUARANTINE_SLOTS];
    uint32_t nq;
    tslab__class_lock(a, c);
    for (nq = 0; nq < c->q_count; nq++)
        q[nq] = c->quarantine[(c->q_head + nq) % TSLAB_QUARANTINE_SLOTS];
    c->q_count = c->q_head = 0;
    pthread_mutex_unlock(&c->lock);
    for (uint32_t i = 0; i < nq; i += 64)
        tslab__slab_drain(a, c, q + i, nq - i < 64 ? nq - i : 64);
}

int tslab__slab_purge(tslab *a, tslab__class *c, int why)
{
    int err = 0;
    if (why == TSLAB__WHY_PURGE)
        tslab__quarantine_drain(a, c);
    /* Only the slabs cached now: those whose release fails go back to the cache and must not be
     * tried again in this call. */
    tslab__class_lock(a, c);
    uint32_t todo = c->cached.count;
    pthread_mutex_unlock(&c->lock);
    while (todo > 0) {
        relq q = {.n = 0};
        tslab__class_lock(a, c);
        while (q.n < RELQ && q.n < todo && c->cached.count > 0)
            evict_oldest(c, why, &q);
        c->decay_next = c->cached.count ? c->decay_next : UINT64_MAX;
        update_bytes(a, c);
        pthread_mutex_unlock(&c->lock);
        if (q.n == 0)
            break;
        todo -= q.n;
        release_slabs(a, c, q.s, q.why, q.n, &err);
    }
    return err;
}

uint64_t tslab__slab_decay(tslab *a, tslab__class *c)
{
    uint64_t next;
    for (;;) {
        relq q = {.n = 0};
        tslab__class_lock(a, c);
        decay_due(a, c, &q, true);
        next = c->decay_next;
        unlock_and_release(a, c, &q);
        if (q.n < RELQ)
            return next;
        /* A full queue: more may be due. */
    }
}

int tslab_purge(tslab *a)
{
    if (a == NULL)
        return -EINVAL;
    tslab_flush(a);
    int err = 0;
    for (uint32_t i = 0; i < a->nclasses; i++) {
        int r = tslab__slab_purge(a, &a->cls[i], TSLAB__WHY_PURGE);
        if (err == 0)
            err = r;
    }
    return err;
}
