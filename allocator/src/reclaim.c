/* SPDX-License-Identifier: MIT */
/* Idle reclaim: free slots held in the cache of a thread that stopped calling the allocator
 * (alive, but idle: a pooled worker between jobs) go back to their slabs within a bounded time,
 * so that decay can return their slabs to the OS. The maintenance thread's pass is the collector
 * (maintain.c); the owner's fast paths gain no atomic read-modify-write, no fence and no
 * instruction.
 *
 * The hand-off is an asymmetric handshake:
 * 1. Idle: the collector sums the cache's allocation and free counters (which the fast paths bump
 *    anyway) on each pass; a cache whose sum has not changed for `idle_ns` of the instance clock
 *    and that holds entries is collected.
 * 2. Revoke: under the cache's lock, the collector CASes the owner's fast-map entry from the
 *    instance's uid to 0, then calls membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED). When that
 *    returns, the owner has passed a full barrier since the CAS, so every fast-path operation it
 *    starts later reads the revoked entry and takes its slow path. At most one fast-path operation
 *    that read the entry before can still be running, and it touches only the top of one stack:
 *    an allocation pops slots[count - 1], a free pushes slots[count] (an allocation into an
 *    epoch pops the top of the thread's epoch cache of the class; frees into that cache are
 *    slow paths, see 3). So the collector reads each
 *    count m and takes entries [stolen, m - 1) only, never the top one, and records in `stolen`
 *    how many bottom entries are gone. It never writes count or slots[]: the owner does.
 * 3. Slow paths: the owner announces a slow path (tslab__tcache_enter: in_slow + 1, seq_cst) and
 *    then re-reads its entry (seq_cst). The collector, after its CAS (seq_cst), reads in_slow
 *    (seq_cst) and leaves the cache alone when it is set. In the single total order of seq_cst
 *    operations either the owner's re-read follows the CAS (it sees the entry revoked and goes
 *    to bind, which waits for the cache's lock), or the owner's increment precedes the
 *    collector's read (the collector sees it): never neither (Dekker). Remote batches, which only
 *    slow paths touch, are handed back by the collector too, under the same rule.
 * 4. Reconcile: bind (the slow path of a revoked owner) takes the cache's lock, shifts entries
 *    [stolen, count) down to the bottom of each stack, and reinstalls the entry.
 *
 * The bound: a thread's last call at T is seen by the first pass after it; the pass at least
 * idle_ns later collects. Passes are at most idle_ns apart (maintain.c: a quarter of the smallest
 * decay time, between 1 ms and 1 s), so the slots are back in their slabs by T + 3 x idle_ns.
 *
 * TSan: every field the collector reads and the owner writes on its fast paths (count, slots[],
 * the fast-map uid) is a C11 atomic, accessed relaxed on both sides (a plain move on x86-64), and
 * in_slow is seq_cst/acquire/release. TSan does not model membarrier, which is what orders the
 * relaxed accesses here; it needs none of it, since relaxed atomics are not data races. Every
 * plain access on the other side (remote batches, slow-path bulk moves of slots[]) is ordered by
 * the cache's lock or by in_slow's release/acquire, which TSan sees. */
#include "internal.h"

#include <string.h>

/* 1: membarrier works here, -1: it does not (reclaim is off: a kernel before 4.14, or a sandbox
 * or emulator that does not pass the call), 0: not tried yet. Relaxed: a cached answer; the
 * collector is one thread at a time (the maintenance pass, under the registry lock). */
static _Atomic int barrier_state;

bool tslab__reclaim_available(void)
{
    int s = atomic_load_explicit(&barrier_state, memory_order_relaxed);
    if (s == 0) {
        s = tslab__os_membarrier() == 0 ? 1 : -1;
        atomic_store_explicit(&barrier_state, s, memory_order_relaxed);
    }
    return s > 0;
}

/* Allocations and frees the owner made, all classes (rejections are slow paths, not counted). */
static uint64_t ops(const tslab *a, tslab__tcache *tc)
{
    uint64_t n = 0;
    for (uint32_t i = 0; i < a->nclasses; i++)
        n += atomic_load_explicit(&tc->cls[i].tc.allocations, memory_order_relaxed) +
             atomic_load_explicit(&tc->cls[i].tc.frees, memory_order_relaxed);
    return n;
}

/* tc's epoch caches, or NULL when its thread never used any (acquire: see ec_ready). */
static tslab__eclass *ec_of(tslab__tcache *tc)
{
    return atomic_load_explicit(&tc->ec_ready, memory_order_acquire) ? tc->ec : NULL;
}

/* True when tc may hold something to take: more than one entry (the top one stays) beyond those
 * already taken, or a remote batch. Caller holds tc->lock (stolen[]). Relaxed: a hint; the
 * collection re-reads under the rules. */
static bool holds(const tslab *a, tslab__tcache *tc)
{
    tslab__eclass *ec = ec_of(tc);
    for (uint32_t i = 0; i < a->nclasses; i++)
        if (atomic_load_explicit(&tc->cls[i].count, memory_order_relaxed) > tc->stolen[i] + 1u ||
            atomic_load_explicit(&tc->cls[i].rcount, memory_order_relaxed) > 0 ||
            (ec != NULL &&
             atomic_load_explicit(&ec[i].count, memory_order_relaxed) > tc->estolen[i] + 1u))
            return true;
    return false;
}

/* Takes entries [*from, m - 1) of a stack of m (the top one stays: reclaim.c's top) into buf,
 * then records how many bottom entries are gone; returns how many it took. */
static uint32_t take_below_top(_Atomic uint32_t *count, _Atomic uint64_t *slots, uint8_t *from,
                               uint64_t *buf)
{
    /* Relaxed: membarrier ordered the owner's earlier operations before these loads, and the
     * one that may still run moves only the top entry, which stays. */
    uint32_t m = atomic_load_explicit(count, memory_order_relaxed);
    if (m <= *from + 1u)
        return 0;
    uint32_t n = m - 1 - *from;
    for (uint32_t k = 0; k < n; k++)
        buf[k] = atomic_load_explicit(&slots[*from + k], memory_order_relaxed);
    *from = (uint8_t)(m - 1);
    return n;
}

/* Takes what tc holds below the top entries (class and epoch caches), and its remote batches.
 * Caller holds tc->lock, has revoked the owner's entry (or the owner is gone: a fork() child) and
 * seen in_slow 0 after. An epoch cache keeps its top slot, so its epoch's record stays in use
 * while the cache's uncounted allocations wait for the owner (tslab__eclass). */
static void take(tslab *a, tslab__tcache *tc)
{
    uint64_t buf[TSLAB__TC_MAX];
    tslab__eclass *ec = ec_of(tc);
    for (uint32_t i = 0; i < a->nclasses; i++) {
        if (ec != NULL) {
            tslab__eclass *et = &ec[i];
            uint32_t n = take_below_top(&et->count, et->slots, &tc->estolen[i], buf);
            if (n > 0) {
                tslab__slab_drain(a, &a->cls[i], buf, n);
                atomic_fetch_add_explicit(&a->cls[i].cc.idle_reclaimed_slots, n,
                                          memory_order_relaxed);
            }
        }
        tslab__tclass *t = &tc->cls[i];
        tslab__class *c = &a->cls[i];
        /* Relaxed: membarrier ordered the owner's earlier operations before these loads, and the
         * one that may still run moves only the top entry, which stays. */
        uint32_t n = take_below_top(&t->count, t->slots, &tc->stolen[i], buf);
        if (n > 0) {
            tslab__slab_drain(a, c, buf, n);
            atomic_fetch_add_explicit(&c->cc.idle_reclaimed_slots, n, memory_order_relaxed);
        }
        /* Only slow paths touch the batch, and in_slow 0 (acquire) ordered the last one before
         * this; the owner's next one waits for tc->lock (its entry is revoked). */
        uint16_t r = atomic_load_explicit(&t->rcount, memory_order_relaxed);
        if (r > 0) {
            tslab__slab_remote(a, c, t->id, t->remote, r);
            atomic_store_explicit(&t->rcount, 0, memory_order_relaxed);
            atomic_fetch_add_explicit(&c->cc.idle_reclaimed_slots, r, memory_order_relaxed);
        }
    }
}

/* Revokes tc's fast-map entry and collects when the owner is out of its slow paths; false when
 * membarrier is not available (nothing taken). Caller holds tc->lock. */
static bool collect(tslab *a, tslab__tcache *tc)
{
    if (tc->fast != NULL) {
        /* seq_cst: one side of the Dekker pair with tslab__tcache_enter (see the top). A failed
         * CAS finds the entry revoked already (0: no operation started since our last
         * membarrier but the one that may still run) or holding another instance (the owner
         * wrote it after its last operation on this one, with release: acquire it). */
        uint64_t want = a->uid;
        atomic_compare_exchange_strong_explicit(&tc->fast->uid, &want, 0, memory_order_seq_cst,
                                                memory_order_seq_cst);
        if (tslab__os_membarrier() != 0)
            return false;
    }
    /* Acquire: the owner's last slow path released its writes (tslab__tcache_leave). */
    if (atomic_load_explicit(&tc->in_slow, memory_order_seq_cst) != 0)
        return true;
    take(a, tc);
    return true;
}

void tslab__reclaim_idle(tslab *a, uint64_t now, uint64_t idle_ns)
{
    if (!tslab__reclaim_available())
        return;
    pthread_mutex_lock(&a->tc_lock);
    for (tslab__tcache *tc = a->tcaches; tc != NULL; tc = tc->next) {
        uint64_t n = ops(a, tc);
        if (n != tc->seen_ops) { /* UINT64_MAX until the first pass (tcache.c) */
            tc->seen_ops = n;
            tc->seen_at = now;
            continue;
        }
        if (now - tc->seen_at < idle_ns)
            continue;
        /* Taken: the owner is in bind right now, so not idle (or, in a fork() child, it died
         * there: its cache is never collected). */
        if (pthread_mutex_trylock(&tc->lock) != 0)
            continue;
        bool ok = !holds(a, tc) || collect(a, tc);
        pthread_mutex_unlock(&tc->lock);
        if (!ok)
            break; /* membarrier failed: try again next pass */
    }
    pthread_mutex_unlock(&a->tc_lock);
}

/* Shifts entries [s, count) of a stack down to the bottom (the owner's, the collector locked
 * out: plain moves). */
static void shift_down(_Atomic uint32_t *count, uint64_t *slots, uint32_t s)
{
    uint32_t m = atomic_load_explicit(count, memory_order_relaxed);
    memmove(slots, slots + s, (m - s) * sizeof slots[0]);
    atomic_store_explicit(count, m - s, memory_order_relaxed);
}

void tslab__reclaim_reconcile(tslab *a, tslab__tcache *tc)
{
    for (uint32_t i = 0; i < a->nclasses; i++) {
        if (tc->estolen[i] != 0) {
            shift_down(&tc->ec[i].count, tslab__ec_slots(&tc->ec[i]), tc->estolen[i]);
            tc->estolen[i] = 0;
        }
        if (tc->stolen[i] != 0) {
            shift_down(&tc->cls[i].count, tslab__tc_slots(&tc->cls[i]), tc->stolen[i]);
            tc->stolen[i] = 0;
        }
    }
}

void tslab__reclaim_fork_child(tslab *a, const tslab__tcache *keep)
{
    for (tslab__tcache *tc = a->tcaches; tc != NULL; tc = tc->next)
        if (tc != keep)
            tc->fast = NULL;
}
