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
 * takes any size up to the largest class. */
#ifndef SLAB_ALLOC_H
#define SLAB_ALLOC_H

#include "tslab.h"

#include <errno.h>
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

/** An instance with the default configuration but the original's 4 KiB slabs. */
static inline SlabAllocator *slab_allocator_create(void)
{
    tslab_config cfg;
    memset(&cfg, 0, sizeof cfg); /* every other field: the default */
    cfg.slab_bytes = SLAB_PAGE_SIZE;
    return tslab_create(&cfg);
}
/** tslab_destroy. */
static inline void slab_allocator_free(SlabAllocator *alloc) { tslab_destroy(alloc); }

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

/** No header: slab_malloc(a, 128) uses the 128-byte class. Above SLAB_MALLOC_MAX: NULL. */
static inline void *slab_malloc(SlabAllocator *alloc, size_t size)
{
    if (size > SLAB_MALLOC_MAX) {
        errno = EINVAL;
        return NULL;
    }
    return tslab_malloc(alloc, size);
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
