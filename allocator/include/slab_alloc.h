/* SPDX-License-Identifier: MIT */
/** @file
 * Compatibility with the original temporal-slab API. Programs written against the original
 * `slab_alloc.h` compile unchanged against this header and get temporal-slab's semantics: opaque
 * 64-bit handles, rejected (not crashing) stale and double frees, header-free slab_malloc.
 * Everything here is a static inline wrapper over the tslab_ API: the library exports no
 * unprefixed symbol.
 *
 * Limits and geometry are the original's documented ones, so its programs' assertions and
 * arithmetic hold:
 *   - slab_malloc takes 1 to SLAB_MALLOC_MAX (504) bytes, the original's 512-byte class minus its
 *     8-byte header, and gives NULL (errno EINVAL) above; alloc_obj takes sizes up to the largest
 *     class (768 bytes, the original's 8 classes 64 96 128 192 256 384 512 768).
 *   - slab_allocator_create() makes slabs of SLAB_PAGE_SIZE (4 KiB), and slab_object_count(n) is
 *     the number of n-byte objects such a slab holds, so slab_object_count(n) * n never exceeds
 *     SLAB_PAGE_SIZE. (The original kept a header inside each slab and counted 31 objects of 128
 *     bytes; these slabs keep their metadata outside, so 32 fit.)
 * The native API keeps its own limits: tslab_create(NULL) makes 64 KiB slabs and tslab_malloc
 * takes any size up to the largest class.
 *
 * The original's later epoch API (EpochId, epoch_current, epoch_advance, epoch_close,
 * alloc_obj_epoch, slab_malloc_epoch) is here too, mapped onto tslab epochs: see "Epochs" below. */
#ifndef SLAB_ALLOC_H
#define SLAB_ALLOC_H

#include "tslab.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SLAB_PAGE_SIZE 4096u /**< the original's slab size: slab_allocator_create() uses it */
#define SLAB_MALLOC_MAX 504u /**< the original's largest slab_malloc size */

typedef struct tslab SlabAllocator; /**< the original's allocator: a tslab instance */
typedef uint64_t SlabHandle;        /**< the original's handle: a tslab_handle */

/** The original's counters, mapped onto temporal-slab's (per size class index):
 *   slow_path_hits            tslab_slow_path_total
 *   new_slab_count            slab-cache misses (a slab taken from the OS)
 *   list_move_partial_to_full / list_move_full_to_partial  slab transitions
 *   current_partial_null      slab-cache lookups (a class had no partial slab to refill from)
 *   current_partial_full      always 0: there is no shared "current slab" that can be seen full
 *   empty_slab_recycled       empty slabs kept in the cache
 *   empty_slab_overflowed     empty slabs released to the OS because the cache was full */
typedef struct PerfCounters {
    uint64_t slow_path_hits;            /**< see above */
    uint64_t new_slab_count;            /**< see above */
    uint64_t list_move_partial_to_full; /**< see above */
    uint64_t list_move_full_to_partial; /**< see above */
    uint64_t current_partial_null;      /**< see above */
    uint64_t current_partial_full;      /**< see above */
    uint64_t empty_slab_recycled;       /**< see above */
    uint64_t empty_slab_overflowed;     /**< see above */
} PerfCounters;

/* ---------------------------------------------------------------------------------------------
 * Epochs
 *
 * The original (from its "Phase 2") kept a ring of 16 epochs per allocator. EpochId is a ring
 * index 0..15; every entry starts ACTIVE and epoch_current() is entry 0. epoch_advance() marks
 * the current entry CLOSING and makes the next one (modulo 16) current and ACTIVE again, also
 * when it was closed before (the ring wraps). epoch_close(a, e) marks entry e CLOSING. An
 * allocation into a CLOSING entry, or with e >= 16, gives NULL; objects already allocated stay
 * valid and are freed as usual (free_obj, slab_free), by any thread.
 *
 * Here each ring entry is backed by a tslab epoch (tslab_epoch_open, label SLAB_EPOCH_LABEL),
 * opened at the entry's first allocation. What was decided where the original was loose:
 *   - CLOSING is tslab_epoch_close: the epoch's slabs leave it as they empty and go back to the
 *     OS by the instance's decay and limits (the original recycled them only in epoch_close, and
 *     returned pages only in a non-default build).
 *   - An entry made ACTIVE again by the wrap gets a fresh tslab epoch at its next allocation:
 *     objects of two laps never share a slab (the original mixed them), and the old lap's objects
 *     stay valid. An entry that was never closed keeps its epoch when the ring comes back to it.
 *   - NULL for a CLOSING entry sets errno ESHUTDOWN; for e >= 16, EINVAL. An allocation racing
 *     epoch_close or epoch_advance of its entry may succeed or give NULL (tslab_alloc_epoch's
 *     contract); one that starts after the close returned gives NULL.
 *   - alloc_obj and slab_malloc (no epoch) use tslab's default epoch, which never closes: the
 *     original routed them to entry 0, which its own epoch_advance closed. slab_malloc_epoch
 *     keeps slab_malloc's limit (SLAB_MALLOC_MAX).
 * The ring is per allocator and shared by all threads; epoch_advance from several threads at
 * once advances once per call, as the original's atomic increment did. Threads racing to make an
 * entry's first allocation each open an epoch; one is kept and the others are destroyed at once
 * (empty), so the label's opened and destroyed counters may count a few spare epochs.
 *
 * Where the ring lives: an allocator is a tslab instance, which keeps no room for a caller's
 * data, so the rings are in a process-wide table keyed by the instance's address, defined in
 * this header as weak symbols (one table per process, whichever translation unit or shared
 * object includes it). slab_allocator_free removes an instance's ring; destroy an allocator
 * used with the epoch names through it, not through tslab_destroy (whose ring would stay until
 * a later slab_allocator_create at the same address clears it). The table holds SLAB__RINGS
 * rings (twice TSLAB_INSTANCES_MAX); when it is full the epoch calls fail with ENOMEM.
 * ------------------------------------------------------------------------------------------- */

/** The original's epoch id: a ring index, 0 .. SLAB_EPOCH_COUNT - 1. */
typedef uint32_t EpochId;

/** The original's epoch states (an entry is ACTIVE until closed, and again when the ring comes
 * back to it). */
typedef enum EpochLifecycleState {
    EPOCH_ACTIVE = 0, /**< accepts allocations */
    EPOCH_CLOSING = 1 /**< allocations give NULL; its objects drain as they are freed */
} EpochLifecycleState;

#define SLAB_EPOCH_COUNT 16u          /**< entries of the ring, as in the original */
#define SLAB_EPOCH_LABEL "slab_alloc" /**< the epoch label (metrics) of the ring's tslab epochs */
#define SLAB__RINGS 1024u             /**< rings the process-wide table holds (a power of two) */

/** One allocator's ring (internal; every field is read and written with __atomic builtins). */
typedef struct slab__ring {
    tslab *owner;      /**< the instance; NULL never used; slab__ring_freed() once removed */
    uint32_t advances; /**< epoch_advance calls: the current entry is advances % 16 */
    uint32_t closing;  /**< bit e set: entry e is CLOSING */
    tslab_epoch ids[SLAB_EPOCH_COUNT]; /**< each entry's tslab epoch, 0 until it allocates */
} slab__ring;

#ifdef __cplusplus
extern "C" {
#endif
/** The process-wide table of rings (internal): weak, so every copy of this header names one
 * (about 150 KB of zero-initialised memory, touched only by the rings in use). */
extern slab__ring slab__rings[SLAB__RINGS];
/** Serialises adding and removing rings (internal); lookups take no lock. */
extern pthread_mutex_t slab__rings_lock;
/** The definition of slab__rings (declared first for -Wmissing-variable-declarations). */
__attribute__((weak, visibility("default"))) slab__ring slab__rings[SLAB__RINGS];
/** The definition of slab__rings_lock. */
__attribute__((weak, visibility("default"))) pthread_mutex_t slab__rings_lock =
    PTHREAD_MUTEX_INITIALIZER;
#ifdef __cplusplus
}
#endif

/** The owner mark of a removed ring (internal): an address that is never an instance. */
static inline tslab *slab__ring_freed(void) { return (tslab *)(void *)&slab__rings_lock; }

/** The first slot to probe for a's ring (internal). */
static inline uint32_t slab__ring_slot(const tslab *a)
{
    uint64_t x = (uint64_t)(uintptr_t)a;
    return (uint32_t)(((x >> 4) * UINT64_C(0x9E3779B97F4A7C15)) >> 54) & (SLAB__RINGS - 1);
}

/** a's ring, or NULL (internal). Lock-free: a slot's owner only ever changes from NULL or the
 * freed mark to an instance (under the lock, published with release) and back to the mark, so a
 * probe never stops early at a slot that held a ring. */
static inline slab__ring *slab__ring_find(const tslab *a)
{
    uint32_t k = slab__ring_slot(a);
    for (uint32_t i = 0; i < SLAB__RINGS; i++, k = (k + 1) & (SLAB__RINGS - 1)) {
        tslab *owner = __atomic_load_n(&slab__rings[k].owner, __ATOMIC_ACQUIRE);
        if (owner == a)
            return &slab__rings[k];
        if (owner == NULL)
            return NULL;
    }
    return NULL;
}

/** a's ring, added (every entry ACTIVE, none opened, entry 0 current) if it has none; NULL with
 * errno ENOMEM when the table is full, EINVAL for a NULL instance (internal). */
static inline slab__ring *slab__ring_get(tslab *a)
{
    slab__ring *r = a != NULL ? slab__ring_find(a) : NULL;
    if (r != NULL || a == NULL) {
        if (a == NULL)
            errno = EINVAL;
        return r;
    }
    pthread_mutex_lock(&slab__rings_lock);
    r = slab__ring_find(a);
    uint32_t k = slab__ring_slot(a);
    for (uint32_t i = 0; r == NULL && i < SLAB__RINGS; i++, k = (k + 1) & (SLAB__RINGS - 1)) {
        slab__ring *s = &slab__rings[k];
        tslab *owner = __atomic_load_n(&s->owner, __ATOMIC_RELAXED); /* writers hold the lock */
        if (owner != NULL && owner != slab__ring_freed())
            continue;
        __atomic_store_n(&s->advances, 0u, __ATOMIC_RELAXED);
        __atomic_store_n(&s->closing, 0u, __ATOMIC_RELAXED);
        for (uint32_t e = 0; e < SLAB_EPOCH_COUNT; e++)
            __atomic_store_n(&s->ids[e], (tslab_epoch)0, __ATOMIC_RELAXED);
        __atomic_store_n(&s->owner, a, __ATOMIC_RELEASE); /* publishes the zeroed ring */
        r = s;
    }
    pthread_mutex_unlock(&slab__rings_lock);
    if (r == NULL)
        errno = ENOMEM;
    return r;
}

/** Removes a's ring, if any (internal). */
static inline void slab__ring_forget(tslab *a)
{
    pthread_mutex_lock(&slab__rings_lock);
    slab__ring *r = slab__ring_find(a);
    if (r != NULL)
        __atomic_store_n(&r->owner, slab__ring_freed(), __ATOMIC_RELEASE);
    pthread_mutex_unlock(&slab__rings_lock);
}

/** Marks entry e of r CLOSING and closes its tslab epoch (internal). Sequentially consistent with
 * slab__ring_epoch: either this sees the epoch a racing first allocation opened, or that
 * allocation sees the mark and closes the epoch itself. */
static inline void slab__ring_close(tslab *a, slab__ring *r, uint32_t e)
{
    __atomic_fetch_or(&r->closing, 1u << e, __ATOMIC_SEQ_CST);
    tslab_epoch id = __atomic_load_n(&r->ids[e], __ATOMIC_SEQ_CST);
    if (id != 0)
        (void)tslab_epoch_close(a, id);
}

/** The tslab epoch to allocate entry e of r into, opened on first use; 0 with errno ESHUTDOWN
 * (entry CLOSING) or tslab_epoch_open's errno (internal). */
static inline tslab_epoch slab__ring_epoch(tslab *a, slab__ring *r, uint32_t e)
{
    uint32_t bit = 1u << e;
    if (__atomic_load_n(&r->closing, __ATOMIC_SEQ_CST) & bit) {
        errno = ESHUTDOWN;
        return 0;
    }
    tslab_epoch id = __atomic_load_n(&r->ids[e], __ATOMIC_SEQ_CST);
    if (id != 0)
        return id;
    tslab_epoch fresh = tslab_epoch_open(a, SLAB_EPOCH_LABEL);
    if (fresh == 0)
        return 0;
    if (!__atomic_compare_exchange_n(&r->ids[e], &id, fresh, false, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST)) {
        (void)tslab_epoch_destroy(a, fresh); /* another thread opened the entry first: use it */
        fresh = id;
    }
    if (__atomic_load_n(&r->closing, __ATOMIC_SEQ_CST) & bit) {
        (void)tslab_epoch_close(a, fresh); /* closed meanwhile; the closer may not have seen it */
        errno = ESHUTDOWN;
        return 0;
    }
    return fresh;
}

/** Allocates into tslab epoch id, which slab__ring_epoch gave for entry e of r: with a handle
 * (tslab_alloc_epoch) when out is not NULL, else header-free (tslab_malloc_epoch) (internal).
 * Between the two calls the entry may have been closed (by epoch_advance or epoch_close) and the
 * epoch emptied, which frees its record: the id is then stale and tslab's EINVAL is the entry's
 * ESHUTDOWN. The entry no longer naming id (closed, or reopened by a wrap) tells the two apart. */
static inline void *slab__ring_alloc_in(tslab *a, slab__ring *r, uint32_t e, tslab_epoch id,
                                        size_t size, SlabHandle *out)
{
    void *p = out != NULL ? tslab_alloc_epoch(a, id, size, out) : tslab_malloc_epoch(a, id, size);
    if (p == NULL && errno == EINVAL &&
        ((__atomic_load_n(&r->closing, __ATOMIC_SEQ_CST) & (1u << e)) != 0 ||
         __atomic_load_n(&r->ids[e], __ATOMIC_SEQ_CST) != id))
        errno = ESHUTDOWN;
    return p;
}

/** alloc_obj_epoch and slab_malloc_epoch once their arguments are checked (internal). */
static inline void *slab__ring_alloc(tslab *a, uint32_t e, size_t size, SlabHandle *out)
{
    slab__ring *r = slab__ring_get(a);
    tslab_epoch id = r != NULL ? slab__ring_epoch(a, r, e) : 0;
    return id != 0 ? slab__ring_alloc_in(a, r, e, id, size, out) : NULL;
}

/** An instance with the default configuration but the original's 4 KiB slabs. */
static inline SlabAllocator *slab_allocator_create(void)
{
    tslab_config cfg;
    memset(&cfg, 0, sizeof cfg); /* every other field: the default */
    cfg.slab_bytes = SLAB_PAGE_SIZE;
    SlabAllocator *a = tslab_create(&cfg);
    if (a != NULL)
        slab__ring_forget(a); /* a ring left by an instance destroyed at this address */
    return a;
}
/** tslab_destroy, after removing the allocator's epoch ring. */
static inline void slab_allocator_free(SlabAllocator *alloc)
{
    if (alloc != NULL)
        slab__ring_forget(alloc);
    tslab_destroy(alloc);
}

/** The ring entry new allocations go to (0 before the first epoch_advance; 0 for NULL). */
static inline EpochId epoch_current(SlabAllocator *alloc)
{
    slab__ring *r = alloc != NULL ? slab__ring_find(alloc) : NULL;
    return r != NULL ? __atomic_load_n(&r->advances, __ATOMIC_ACQUIRE) % SLAB_EPOCH_COUNT : 0;
}

/** Closes the current entry (as epoch_close) and makes the next one current and ACTIVE; one
 * advance per call, from any thread. */
static inline void epoch_advance(SlabAllocator *alloc)
{
    slab__ring *r = slab__ring_get(alloc);
    if (r == NULL)
        return;
    uint32_t old = __atomic_fetch_add(&r->advances, 1u, __ATOMIC_ACQ_REL) % SLAB_EPOCH_COUNT;
    uint32_t next = (old + 1) % SLAB_EPOCH_COUNT;
    slab__ring_close(alloc, r, old);
    if (__atomic_load_n(&r->closing, __ATOMIC_SEQ_CST) & (1u << next)) {
        /* A closed lap: its epoch stays closed (its objects stay valid), the next allocation
         * opens a fresh one. The id is dropped before the mark, so an allocation that sees the
         * entry ACTIVE never gets the old lap's epoch. */
        __atomic_store_n(&r->ids[next], (tslab_epoch)0, __ATOMIC_SEQ_CST);
        __atomic_fetch_and(&r->closing, ~(1u << next), __ATOMIC_SEQ_CST);
    }
}

/** Marks entry `epoch` CLOSING: allocations into it give NULL (ESHUTDOWN) until the ring comes
 * back to it; its slabs go back as they empty. Idempotent; epoch >= 16 is ignored. */
static inline void epoch_close(SlabAllocator *alloc, EpochId epoch)
{
    slab__ring *r = epoch < SLAB_EPOCH_COUNT ? slab__ring_get(alloc) : NULL;
    if (r != NULL)
        slab__ring_close(alloc, r, epoch);
}

/** tslab_alloc. */
static inline void *alloc_obj(SlabAllocator *alloc, uint32_t size, SlabHandle *out_handle)
{
    return tslab_alloc(alloc, size, out_handle);
}
/** tslab_free: false for a stale, double, foreign or invalid handle (the original crashed). */
static inline bool free_obj(SlabAllocator *alloc, SlabHandle handle)
{
    return tslab_free(alloc, handle);
}

/** alloc_obj into ring entry `epoch`. NULL with errno EINVAL (epoch >= 16, or alloc_obj's),
 * ESHUTDOWN (the entry is CLOSING) or ENOMEM. */
static inline void *alloc_obj_epoch(SlabAllocator *alloc, uint32_t size, EpochId epoch,
                                    SlabHandle *out_handle)
{
    if (epoch >= SLAB_EPOCH_COUNT || out_handle == NULL) {
        errno = EINVAL;
        return NULL;
    }
    return slab__ring_alloc(alloc, epoch, size, out_handle);
}

/** No header: slab_malloc(a, 128) uses the 128-byte class. Above SLAB_MALLOC_MAX: NULL. */
static inline void *slab_malloc(SlabAllocator *alloc, size_t size)
{
    if (size > SLAB_MALLOC_MAX) {
        errno = EINVAL;
        return NULL;
    }
    return tslab_malloc(alloc, size);
}
/** slab_malloc into ring entry `epoch` (same limits; NULL and errno as alloc_obj_epoch). */
static inline void *slab_malloc_epoch(SlabAllocator *alloc, size_t size, EpochId epoch)
{
    if (size > SLAB_MALLOC_MAX || epoch >= SLAB_EPOCH_COUNT) {
        errno = EINVAL;
        return NULL;
    }
    return slab__ring_alloc(alloc, epoch, size, NULL);
}
/** tslab_free_ptr, its result dropped (the original returned nothing). */
static inline void slab_free(SlabAllocator *alloc, void *ptr) { (void)tslab_free_ptr(alloc, ptr); }

/** The original's counters of class index `size_class`, from tslab_stats_read; zeros when the
 * index is out of range. */
static inline void get_perf_counters(SlabAllocator *alloc, uint32_t size_class, PerfCounters *out)
{
    tslab_stats st;
    memset(out, 0, sizeof *out);
    if (size_class >= TSLAB_CLASSES_MAX || tslab_stats_read(alloc, &st) != 0 ||
        size_class >= st.class_count)
        return;
    const tslab_class_stats *c = &st.classes[size_class];
    out->slow_path_hits = c->slow_path;
    out->new_slab_count = c->cache_misses;
    out->list_move_partial_to_full = c->partial_to_full;
    out->list_move_full_to_partial = c->full_to_partial;
    out->current_partial_null = c->cache_lookups;
    out->current_partial_full = 0;
    out->empty_slab_recycled = c->cache_inserts;
    out->empty_slab_overflowed = c->cache_overflows;
}

/** Objects of obj_size bytes in one slab of an instance made by slab_allocator_create(). */
static inline uint32_t slab_object_count(uint32_t obj_size)
{
    return (uint32_t)tslab_slab_capacity(obj_size, SLAB_PAGE_SIZE);
}

/** tslab_process_rss. */
static inline uint64_t read_rss_bytes_linux(void) { return tslab_process_rss(); }
/** tslab_clock_ns. */
static inline uint64_t now_ns(void) { return tslab_clock_ns(); }

#endif /* SLAB_ALLOC_H */
