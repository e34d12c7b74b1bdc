/* SPDX-License-Identifier: MIT */
/* tslab_stats as temporal-slab 1.0 declared it, frozen: the layout a program built against 1.0
 * passes to the library. Written out field by field (not from TSLAB_CLASS_STATS, which grows), so
 * the ABI test states 1.0's layout independently of the current header. */
#ifndef TSLAB_TEST_STATS_1_0_H
#define TSLAB_TEST_STATS_1_0_H

#include <stdint.h>

#define STATS_1_0_CLASSES 64
#define STATS_1_0_NAME 64

#define STATS_1_0_CLASS_FIELDS(X)                                                                  \
    X(object_size)                                                                                 \
    X(slab_bytes)                                                                                  \
    X(objects_per_slab)                                                                            \
    X(allocations)                                                                                 \
    X(frees)                                                                                       \
    X(rejected_invalid)                                                                            \
    X(rejected_stale)                                                                              \
    X(rejected_double)                                                                             \
    X(rejected_foreign)                                                                            \
    X(slow_path)                                                                                   \
    X(duplicates_dropped)                                                                          \
    X(cache_lookups)                                                                               \
    X(cache_hits)                                                                                  \
    X(cache_misses)                                                                                \
    X(cache_inserts)                                                                               \
    X(cache_overflows)                                                                             \
    X(partial_to_full)                                                                             \
    X(full_to_partial)                                                                             \
    X(os_failures)                                                                                 \
    X(slabs_partial)                                                                               \
    X(slabs_full)                                                                                  \
    X(slabs_cached)                                                                                \
    X(slabs_released)                                                                              \
    X(live_objects)                                                                                \
    X(resident_bytes)                                                                              \
    X(mapped_bytes)

typedef struct stats_1_0_class {
#define STATS_1_0_FIELD(f) uint64_t f;
    STATS_1_0_CLASS_FIELDS(STATS_1_0_FIELD)
#undef STATS_1_0_FIELD
} stats_1_0_class;

typedef struct stats_1_0 {
    uint32_t version;
    uint32_t class_count;
    char name[STATS_1_0_NAME];
    uint64_t reserved_bytes;
    stats_1_0_class classes[STATS_1_0_CLASSES];
    stats_1_0_class unattributed;
} stats_1_0;

struct tslab;
/* Calls the library's exported tslab_stats_read exactly as a program compiled against 1.0 does
 * (tests/stats_1_0.c, a translation unit that does not see the current tslab.h). */
int stats_1_0_read(struct tslab *a, stats_1_0 *out);

#endif
