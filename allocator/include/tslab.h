/* SPDX-License-Identifier: MIT */
/** @file
 * temporal-slab: a lock-free slab allocator for many small fixed-size objects.
 *
 * Contract in one paragraph: an allocator instance owns one address-space reservation per size
 * class. Objects never move and slab memory is never unmapped while the instance lives, so a stale
 * handle or pointer can be *checked* without ever faulting. Every object slot carries a
 * generation; a handle names (instance, class, slot, generation), so a free through a handle that
 * is stale, double, foreign or garbage is rejected with `false` and counted, and nothing else
 * changes. The pointer API finds the slot from the address alone (no per-object header).
 *
 * Error convention: calls that return memory return NULL and set errno (EINVAL for a bad size or
 * argument, ENOMEM when the OS refuses memory or a class reached its ceiling). Control calls
 * return 0 or a negative errno value; tslab_strerror() names it.
 *
 * Thread safety: every call except tslab_create/tslab_destroy may be made from any number of
 * threads at once on one instance. tslab_destroy must not race with any other call on the same
 * instance; after it returns, handles and pointers of that instance must not be used.
 */
#ifndef TSLAB_H
#define TSLAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(TSLAB_STATIC_DEFINE)
#define TSLAB_API
#elif defined(__GNUC__)
#define TSLAB_API __attribute__((visibility("default")))
#else
#define TSLAB_API
#endif

/* The version of this header. It is the one place the version is written: CMake reads it from
 * here (project VERSION, the libraries' VERSION and SOVERSION, pkg-config and the CMake package).
 * TSLAB_VERSION_NUMBER is MAJOR * 1000000 + MINOR * 1000 + PATCH, so versions compare as
 * integers. The library a program actually runs with can be newer than the header it was
 * compiled against (same SONAME): tslab_version() and tslab_version_number() say which. */
#define TSLAB_VERSION_MAJOR 1        /**< major (the SONAME's number) */
#define TSLAB_VERSION_MINOR 1        /**< minor */
#define TSLAB_VERSION_PATCH 0        /**< patch */
#define TSLAB_VERSION_STRING "1.1.0" /**< the three as a string */
/** MAJOR * 1000000 + MINOR * 1000 + PATCH */
#define TSLAB_VERSION_NUMBER                                                                       \
    (TSLAB_VERSION_MAJOR * 1000000 + TSLAB_VERSION_MINOR * 1000 + TSLAB_VERSION_PATCH)

/** The version of the library loaded at run time: its TSLAB_VERSION_STRING ("1.1.0") and its
 * TSLAB_VERSION_NUMBER (1001000). */
TSLAB_API const char *tslab_version(void);
/** The version of the library loaded at run time, as TSLAB_VERSION_NUMBER. */
TSLAB_API uint32_t tslab_version_number(void);

/* ---------------------------------------------------------------------------------------------
 * Limits
 * ------------------------------------------------------------------------------------------- */
#define TSLAB_CLASSES_MAX 64        /**< size classes per instance */
#define TSLAB_INSTANCES_MAX 511     /**< instances alive at once in one process */
#define TSLAB_NAME_MAX 64           /**< instance name, including the terminating NUL */
#define TSLAB_OBJECT_MAX (1u << 20) /**< largest class size accepted in a config */
#define TSLAB_GENERATION_BITS 22    /**< a slot is reused 2^22 times before its generation wraps */
#define TSLAB_CLASS_SLOTS_MAX (1u << 26) /**< objects one class can hold at once */

/* ---------------------------------------------------------------------------------------------
 * Types
 * ------------------------------------------------------------------------------------------- */
typedef struct tslab tslab; /**< an allocator instance (opaque) */

/** An opaque 64-bit handle. 0 is never a valid handle. Its bits are not part of the API, but two
 * properties are: a live handle whose single bit is flipped is always rejected (a parity bit
 * covers its instance, class and slot fields, and a slot holds exactly one generation), and so is
 * a stale one whose slot has been reused fewer than 2^20 times since (a slot's consecutive
 * generations never differ in one bit); and slots start at generations scattered per instance,
 * class and slot, so a handle corrupted in more bits, or kept from a destroyed instance, names a
 * live object only by a 2^-22 chance. (A raw pointer kept from a destroyed instance has no such
 * protection: a later instance may map the same addresses.) */
typedef uint64_t tslab_handle;
#define TSLAB_HANDLE_NONE ((tslab_handle)0) /**< never a valid handle */

/** The OS layer, injectable for tests (fault injection). Each call receives `ctx`.
 * Every size and address is a multiple of the page size. The clock is the last member so that
 * initialisers written for the four OS calls and ctx stay valid (the clock is then NULL). */
typedef struct tslab_os {
    /** Address space of `size` bytes, not accessible, no memory committed; NULL on failure. */
    void *(*reserve)(void *ctx, size_t size);
    /** Make [p, p+size) readable and writable (zero-filled on first touch); 0 or -errno. */
    int (*commit)(void *ctx, void *p, size_t size);
    /** Hand the pages of [p, p+size) back to the OS, keeping the mapping; the next touch reads
     * zeros; 0 or -errno. */
    int (*decommit)(void *ctx, void *p, size_t size);
    /** Unmap a whole reservation (only at tslab_destroy or a failed tslab_create). */
    void (*release)(void *ctx, void *p, size_t size);
    void *ctx; /**< passed to every call */
    /** A monotonic clock in nanoseconds, read by decay (tslab_config.decay_ms), the sampler
     * (birth and death of sampled objects), rejection records and lock-wait times; NULL means
     * CLOCK_MONOTONIC. Inject it to drive decay from a test without sleeping. It is called on
     * slow paths only, with or without class locks held: it must not call the allocator. */
    uint64_t (*now_ns)(void *ctx);
} tslab_os;

/** The real OS layer (mmap, mprotect, madvise, munmap); wrap it to inject faults. */
TSLAB_API const tslab_os *tslab_os_default(void);

/** Keep no empty slab cached at all (every emptied slab goes back to the OS at once). */
#define TSLAB_CACHE_NONE SIZE_MAX
/** tslab_config.decay_ms: no delay, every emptied slab goes back to the OS at once (a zero field
 * means the default; tslab_decay_set takes 0 for the same thing). */
#define TSLAB_DECAY_NONE UINT64_MAX

struct tslab_rejection;

/** Instance configuration. A zero field means "the default", so `tslab_config c = {0};` works. */
typedef struct tslab_config {
    const char *name;       /**< metric label, copied; default "default"; < TSLAB_NAME_MAX bytes */
    const uint32_t *sizes;  /**< strictly ascending object sizes in bytes; default 64 96 128 192
                               256 384 512 768. A size that is not a multiple of 8 is rounded
                               up to one. */
    size_t size_count;      /**< entries in `sizes`, 1..TSLAB_CLASSES_MAX */
    size_t slab_bytes;      /**< target slab size, a power of two in [4 KiB, 4 MiB]; default
                               64 KiB. A class of larger objects gets one object per slab. */
    size_t cache_slabs;     /**< hard cap on the empty slabs one class keeps for reuse while
                               they decay; default 4096 (256 MiB of 64 KiB slabs, held at most
                               decay_ms once unused); TSLAB_CACHE_NONE for none. A slab emptied
                               into a full cache stays; the oldest cached ones go back to the OS,
                               down to half the cap (fewer, larger madvise calls). */
    size_t class_max_bytes; /**< address space reserved per class, the most one class can hold;
                               default 1 GiB, at most 2^64 / object size. Reserved, not
                               committed: it costs no memory. */
    const tslab_os *os;     /**< default tslab_os_default() */
    bool exact_frees;       /**< true: every free is a CAS on the slot's state word, so of two
                               threads racing to free one handle exactly one gets true, even
                               when one of them is the thread that allocated it. Default false:
                               that thread frees with a plain store, and a racing duplicate is
                               dropped and counted instead (tslab_class_stats
                               duplicates_dropped). Costs every free its slow path and a CAS. */
    uint64_t decay_ms;      /**< an emptied slab stays cached for reuse and goes back to the OS
                               once it has been unused this long; default 1000 (bench/README.md
                               "Memory over time" has the measurement); TSLAB_DECAY_NONE: at
                               once. Decay advances on slow paths (refill, drain, tslab_flush) and,
                               while the process is idle, in tslab_background_start's thread. */
    uint64_t limit_hard;    /**< resident bytes (slabs not handed back plus slab metadata) the
                               instance may hold; 0 = none. An allocation that needs a new slab
                               beyond it first purges every class's cache, then fails: NULL,
                               errno ENOMEM (counted in limit_refusals). tslab_limit_set. */
    uint64_t limit_soft;    /**< resident bytes beyond which decay is skipped: empty slabs go back
                               to the OS at once; 0 = none. tslab_limit_set. */
    size_t sample_bytes;    /**< mean bytes allocated between two sampled allocations (per
                               thread, exponentially distributed); 0 = TSLAB_SAMPLE_DEFAULT,
                               TSLAB_SAMPLE_OFF = sample nothing. tslab_sample_set changes it. */
    uint64_t sample_seed;   /**< seed of the samplers' random intervals (a thread's generator is
                               seeded from it and the thread's order of arrival); 0 = from the
                               clock. Fixed seeds make single-threaded runs reproducible. */
    /** Called on every rejected free, by the rejecting thread, after the rejection is counted
     * and recorded (tslab_rejections_read), with no lock of the allocator held: it may log,
     * count by call site, or abort. It must not free through `a` recursively into another
     * rejection forever. NULL = none. */
    void (*on_reject)(void *ctx, int reason, const struct tslab_rejection *r);
    void *on_reject_ctx;    /**< passed to on_reject */
    uint64_t epoch_leak_ms; /**< a closed epoch that still holds live objects this long after
                               tslab_epoch_close counts as leaking (tslab_epoch_stats); 0 = the
                               default, 60000 (one minute). tslab_epoch_leak_set changes it. */
} tslab_config;

/** Sampling (tslab_config.sample_bytes, tslab_sample_set): Go's and jemalloc's mean interval. */
#define TSLAB_SAMPLE_DEFAULT ((size_t)512 * 1024)
#define TSLAB_SAMPLE_OFF SIZE_MAX /**< sample nothing */
#define TSLAB_STACK_MAX 64        /**< frames recorded per sampled allocation or rejection */

/* ---------------------------------------------------------------------------------------------
 * Instances
 * ------------------------------------------------------------------------------------------- */

/** Creates an instance from a caller's configuration of `cfg_size` bytes, its
 * sizeof(tslab_config): the library reads exactly the fields the caller's struct has (a program
 * built against an older header passes a shorter struct; the fields it lacks take their
 * defaults) and never a byte past it, and the OS table cfg->os (copied) in the same version's
 * layout. A caller newer than the library may pass a longer struct if the fields this library
 * does not know are zero. NULL config = all defaults. Returns NULL with errno EINVAL (bad config,
 * or a size no version had), ENOMEM (no address space or memory) or EMFILE
 * (TSLAB_INSTANCES_MAX instances alive). Bindings from other languages call this one. */
TSLAB_API tslab *tslab_create_sized(const tslab_config *cfg, size_t cfg_size);

#ifndef TSLAB__DEFINES_CREATE_1_0
/** tslab_create_sized with this header's size. (The library also exports a function of this
 * name, for programs built against 1.0: it reads exactly 1.0's tslab_config.) */
static inline tslab *tslab_create(const tslab_config *cfg)
{
    return tslab_create_sized(cfg, sizeof *cfg);
}
#endif

/** Releases every slab and all metadata. NULL is a no-op. */
TSLAB_API void tslab_destroy(tslab *a);

/** The instance's name (the `allocator` metric label); NULL for NULL. */
TSLAB_API const char *tslab_name(const tslab *a);

/** Number of classes (0 for NULL). */
TSLAB_API size_t tslab_class_count(const tslab *a);
/** The object size of class i (0 when i is out of range). */
TSLAB_API size_t tslab_class_size(const tslab *a, size_t i);

/** Objects per slab for a class of `object_size` bytes with target slab size `slab_bytes`
 * (0 = the default): the largest power of two that fits, at least 1. */
TSLAB_API size_t tslab_slab_capacity(size_t object_size, size_t slab_bytes);

/* ---------------------------------------------------------------------------------------------
 * Handle API
 * ------------------------------------------------------------------------------------------- */

/** Allocates an object of the smallest class that holds `size` bytes and stores its handle in
 * *out. NULL with errno EINVAL (size 0, larger than the largest class, or out NULL) or ENOMEM.
 * The object is 16-byte aligned when its class size is a multiple of 16, else 8-byte aligned.
 * Its contents are unspecified. */
TSLAB_API void *tslab_alloc(tslab *a, size_t size, tslab_handle *out);

/** Frees the object `h` names. Returns false, changing nothing but a rejection counter, when h is
 * not a live object of this instance: double free, stale (the slot was reused since), foreign
 * (another instance's), or invalid (any other value). A free ordered after another free of the
 * same handle (the usual double free, on any thread) is always rejected. Two frees of one handle
 * racing at the same instant never hand the slot out twice: between two threads that do not own
 * the object's slab exactly one gets true; when one of them is the owner (the thread that
 * allocated the object, while its slab is its own) both may get true, and the second copy is
 * found and dropped before the slot is reused (counted in duplicates_dropped).
 * Generation wrap: a slot's generation has TSLAB_GENERATION_BITS bits, so a handle kept past
 * 2^22 reuses of its own slot may name the slot's current object again; until then stale
 * handles are rejected exactly. */
TSLAB_API bool tslab_free(tslab *a, tslab_handle h);

/** The object's address when h is live, else NULL. A check, not a lock: the caller must know no
 * other thread frees h meanwhile. */
TSLAB_API void *tslab_handle_ptr(tslab *a, tslab_handle h);

/** The handle of a live object given its start address, or TSLAB_HANDLE_NONE. */
TSLAB_API tslab_handle tslab_ptr_handle(tslab *a, const void *p);

/* ---------------------------------------------------------------------------------------------
 * malloc-style API (no header: the slot is found from the address)
 * ------------------------------------------------------------------------------------------- */

/** As tslab_alloc without the handle. Size 0: NULL, errno EINVAL. */
TSLAB_API void *tslab_malloc(tslab *a, size_t size);
/** Zeroed; n*size overflow gives NULL, errno ENOMEM (as calloc). */
TSLAB_API void *tslab_calloc(tslab *a, size_t n, size_t size);
/** realloc(a, NULL, n) is tslab_malloc. Same class: returns p. Else moves: within its epoch while
 * that is open, else into the default epoch. On failure returns NULL and p is untouched. Size 0 or
 * a p that is not a live object: NULL, errno EINVAL, p untouched. */
TSLAB_API void *tslab_realloc(tslab *a, void *p, size_t size);
/** Frees a live object by address. NULL: no-op, returns true. A pointer that is not the start of a
 * live object of this instance (foreign, interior, double) is counted and ignored: false. */
TSLAB_API bool tslab_free_ptr(tslab *a, void *p);
/** The class size of a live object, else 0. */
TSLAB_API size_t tslab_usable_size(tslab *a, const void *p);

/* ---------------------------------------------------------------------------------------------
 * Maintenance
 * ------------------------------------------------------------------------------------------- */

/** Returns the free slots this thread holds in its cache for `a` to their slabs, so slabs that
 * became empty can be cached or released. Threads flush automatically when they exit. In
 * AddressSanitizer and Valgrind builds, freed slots wait in a per-class quarantine (256 slots)
 * before reuse so that use-after-free is reported; tslab_flush empties it too. It also takes a
 * decay step in every class: cached slabs whose decay_ms ran out go back to the OS. */
TSLAB_API void tslab_flush(tslab *a);
/** tslab_flush, then hands every cached empty slab's pages back to the OS. 0 or -errno (the first
 * failure of the OS layer; the remaining slabs are still tried). */
TSLAB_API int tslab_purge(tslab *a);

/** Memory over time. Every call below may be made from any thread at any time (not racing
 * tslab_destroy of the same instance). */
/** Which limit tslab_limit_set and tslab_limit_get name. */
typedef enum tslab_limit {
    TSLAB_LIMIT_HARD, /**< beyond it, allocations that need a new slab fail (ENOMEM) */
    TSLAB_LIMIT_SOFT  /**< beyond it, emptied slabs go back to the OS at once */
} tslab_limit;
/** Sets a limit in resident bytes (0 = none; tslab_config limit_hard / limit_soft). Lowering the
 * hard limit below what is resident frees nothing in use: allocations that need a new slab fail
 * until enough is freed. Setting a limit applies it to the cached slabs at once (the soft limit
 * releases them down to it). 0, or -EINVAL for a NULL instance or an unknown limit. */
TSLAB_API int tslab_limit_set(tslab *a, tslab_limit which, uint64_t bytes);
/** The limit's current value (0 = none; 0 too for a NULL instance or unknown limit). */
TSLAB_API uint64_t tslab_limit_get(const tslab *a, tslab_limit which);
/** Resident bytes as the limits count them: slabs not handed back plus per-slab metadata. */
TSLAB_API uint64_t tslab_resident_bytes(const tslab *a);
/** Sets the decay time in milliseconds (0: every emptied slab goes back at once). Slabs cached
 * already are judged by the new time from the next decay step on. 0, or -EINVAL (NULL). */
TSLAB_API int tslab_decay_set(tslab *a, uint64_t ms);
/** The decay time in milliseconds (0 for NULL or "at once"). */
TSLAB_API uint64_t tslab_decay_get(const tslab *a);

/** Starts the process-wide maintenance thread: it advances decay of every live instance (each
 * with its own clock) while the process does not call the allocator, waking at least every
 * quarter of the smallest decay time (between 1 ms and 1 s). The library starts no thread unless
 * asked. After fork() the child has no maintenance thread (start it again there if wanted).
 * 0, -EALREADY when it runs already, or -errno from pthread_create. */
TSLAB_API int tslab_background_start(void);
/** Stops the thread and waits for it; 0, or -ESRCH when it was not running. Safe to race with
 * tslab_background_start and with itself (exactly one of two racing stops gets 0). */
TSLAB_API int tslab_background_stop(void);
/** True while the maintenance thread runs. */
TSLAB_API bool tslab_background_running(void);

/** A static description of an errno value, negative or positive (as control calls return it). */
TSLAB_API const char *tslab_strerror(int err);

/** The process's resident set size in bytes (Linux /proc/self/statm), 0 if unknown. */
TSLAB_API uint64_t tslab_process_rss(void);
/** CLOCK_MONOTONIC in nanoseconds. */
TSLAB_API uint64_t tslab_clock_ns(void);

/* ---------------------------------------------------------------------------------------------
 * Statistics
 *
 * TSLAB_CLASS_STATS is the one list of per-class counters and gauges. The struct below, the
 * core's per-thread counters and their merge, and the Prometheus names, HELP text and JSON keys of
 * the telemetry library are all generated from it.
 *
 *   X(field, source, type, metric, label_key, label_value, help)
 *     field     struct member and JSON key
 *     source    THREAD: per-thread counter summed on read; CLASS: kept by the class under its
 *               slow-path lock; DERIVED: computed at read time
 *     type      COUNTER (monotonic) or GAUGE
 *     metric    Prometheus family name after the "tslab_" prefix (counters end in _total)
 *     label_key, label_value  an extra label distinguishing members of one family, or "" ""
 *     help      HELP text of the family (repeated on every member so none can drift)
 *
 * The order of the list is the layout of tslab_class_stats, which is ABI: a new counter goes at
 * the end of the list, and a release that appends fields bumps TSLAB_STATS_VERSION (README.md,
 * "Versioning and ABI").
 * ------------------------------------------------------------------------------------------- */
/** The one list of per-class counters and gauges, one X(field, source, type, metric, label_key,
 * label_value, help) row each; the columns are described in the comment above it in tslab.h. */
#define TSLAB_CLASS_STATS(X)                                                                       \
    X(allocations, THREAD, COUNTER, "allocations_total", "", "",                                   \
      "Objects handed out, through either API.")                                                   \
    X(frees, THREAD, COUNTER, "frees_total", "", "", "Objects freed, through either API.")         \
    X(rejected_invalid, THREAD, COUNTER, "free_rejections_total", "reason", "invalid",             \
      "Frees rejected and ignored, by reason.")                                                    \
    X(rejected_stale, THREAD, COUNTER, "free_rejections_total", "reason", "stale",                 \
      "Frees rejected and ignored, by reason.")                                                    \
    X(rejected_double, THREAD, COUNTER, "free_rejections_total", "reason", "double",               \
      "Frees rejected and ignored, by reason.")                                                    \
    X(rejected_foreign, THREAD, COUNTER, "free_rejections_total", "reason", "foreign",             \
      "Frees rejected and ignored, by reason.")                                                    \
    X(slow_path, THREAD, COUNTER, "slow_path_total", "", "",                                       \
      "Allocations and frees that left the thread-local fast path.")                               \
    X(duplicates_dropped, CLASS, COUNTER, "free_duplicates_dropped_total", "", "",                 \
      "Racing double frees of one object that both returned true (one by the thread owning its "   \
      "slab); the second copy was found and dropped before the slot could be reused.")             \
    X(cache_lookups, CLASS, COUNTER, "slab_cache_lookups_total", "", "",                           \
      "Times a class needed another slab and looked in its empty-slab cache.")                     \
    X(cache_hits, CLASS, COUNTER, "slab_cache_hits_total", "", "",                                 \
      "Slab-cache lookups served by a cached empty slab.")                                         \
    X(cache_misses, CLASS, COUNTER, "slab_cache_misses_total", "", "",                             \
      "Slab-cache lookups that took pages from the OS.")                                           \
    X(cache_inserts, CLASS, COUNTER, "slab_cache_inserts_total", "", "",                           \
      "Empty slabs kept in the cache for reuse.")                                                  \
    X(cache_overflows, CLASS, COUNTER, "slab_cache_overflows_total", "", "",                       \
      "Empty slabs whose pages went back to the OS because the cache was full.")                   \
    X(partial_to_full, CLASS, COUNTER, "slab_transitions_total", "transition", "partial_to_full",  \
      "Slabs moved between lists.")                                                                \
    X(full_to_partial, CLASS, COUNTER, "slab_transitions_total", "transition", "full_to_partial",  \
      "Slabs moved between lists.")                                                                \
    X(os_failures, CLASS, COUNTER, "os_failures_total", "", "",                                    \
      "Calls to the OS layer that failed (commit or decommit).")                                   \
    X(slabs_partial, CLASS, GAUGE, "slabs", "state", "partial", "Slabs by state.")                 \
    X(slabs_full, CLASS, GAUGE, "slabs", "state", "full", "Slabs by state.")                       \
    X(slabs_cached, CLASS, GAUGE, "slabs", "state", "cached", "Slabs by state.")                   \
    X(slabs_released, CLASS, GAUGE, "slabs", "state", "released", "Slabs by state.")               \
    X(live_objects, DERIVED, GAUGE, "live_objects", "", "",                                        \
      "Objects allocated and not yet freed.")                                                      \
    X(resident_bytes, CLASS, GAUGE, "resident_bytes", "", "",                                      \
      "Bytes of slabs and metadata not handed back to the OS.")                                    \
    X(mapped_bytes, CLASS, GAUGE, "mapped_bytes", "", "",                                          \
      "Bytes of slabs and metadata mapped read-write, including released slabs.")                  \
    X(cap_released_slabs, CLASS, COUNTER, "released_slabs_total", "reason", "cap",                 \
      "Empty slabs whose pages went back to the OS, by reason: cache cap, decay, limit (the soft " \
      "limit, or a purge before the hard limit refuses), purge (tslab_purge).")                    \
    X(decay_released_slabs, CLASS, COUNTER, "released_slabs_total", "reason", "decay",             \
      "Empty slabs whose pages went back to the OS, by reason: cache cap, decay, limit (the soft " \
      "limit, or a purge before the hard limit refuses), purge (tslab_purge).")                    \
    X(limit_released_slabs, CLASS, COUNTER, "released_slabs_total", "reason", "limit",             \
      "Empty slabs whose pages went back to the OS, by reason: cache cap, decay, limit (the soft " \
      "limit, or a purge before the hard limit refuses), purge (tslab_purge).")                    \
    X(purge_released_slabs, CLASS, COUNTER, "released_slabs_total", "reason", "purge",             \
      "Empty slabs whose pages went back to the OS, by reason: cache cap, decay, limit (the soft " \
      "limit, or a purge before the hard limit refuses), purge (tslab_purge).")                    \
    X(cap_released_bytes, CLASS, COUNTER, "released_bytes_total", "reason", "cap",                 \
      "Bytes of empty slabs handed back to the OS, by reason (as released_slabs_total).")          \
    X(decay_released_bytes, CLASS, COUNTER, "released_bytes_total", "reason", "decay",             \
      "Bytes of empty slabs handed back to the OS, by reason (as released_slabs_total).")          \
    X(limit_released_bytes, CLASS, COUNTER, "released_bytes_total", "reason", "limit",             \
      "Bytes of empty slabs handed back to the OS, by reason (as released_slabs_total).")          \
    X(purge_released_bytes, CLASS, COUNTER, "released_bytes_total", "reason", "purge",             \
      "Bytes of empty slabs handed back to the OS, by reason (as released_slabs_total).")          \
    X(limit_refusals, CLASS, COUNTER, "limit_refusals_total", "", "",                              \
      "Slab requests refused because the instance's hard limit was reached even after purging "    \
      "every class's cache; each fails an allocation with ENOMEM.")                                \
    X(cached_bytes, CLASS, GAUGE, "cached_bytes", "", "",                                          \
      "Bytes of empty slabs held for reuse, waiting on decay (the cached slabs of tslab_slabs).")  \
    X(idle_reclaimed_slots, CLASS, COUNTER, "idle_reclaimed_slots_total", "", "",                  \
      "Free slots the maintenance thread took back from the caches of idle threads (cached "       \
      "slots and batched remote frees) and returned to their slabs.")

/** The counters and gauges of one size class: the three geometry fields below, then one
 * uint64_t per row of TSLAB_CLASS_STATS, named by its `field`, in the list's order. */
typedef struct tslab_class_stats {
    uint64_t object_size;      /**< class size in bytes (the metric label "class") */
    uint64_t slab_bytes;       /**< bytes of one slab */
    uint64_t objects_per_slab; /**< objects one slab holds */
#define TSLAB__STATS_FIELD(field, source, type, metric, lk, lv, help) uint64_t field;
    TSLAB_CLASS_STATS(TSLAB__STATS_FIELD)
#undef TSLAB__STATS_FIELD
} tslab_class_stats;

/** The one list of per-instance gauges, X(field, metric, label_key, label_value, help) as in
 * TSLAB_CLASS_STATS (every row a GAUGE kept by the instance). Its order is the layout of
 * tslab_instance_stats, which is ABI: append only. */
#define TSLAB_INSTANCE_STATS(X)                                                                    \
    X(limit_hard_bytes, "limit_bytes", "limit", "hard",                                            \
      "Memory limits of the allocator in resident bytes (tslab_limit_set); 0: none.")              \
    X(limit_soft_bytes, "limit_bytes", "limit", "soft",                                            \
      "Memory limits of the allocator in resident bytes (tslab_limit_set); 0: none.")              \
    X(limit_resident_bytes, "limit_resident_bytes", "", "",                                        \
      "Resident bytes as the memory limits count them: slabs not handed back plus their "          \
      "metadata (tslab_resident_bytes).")

/** Gauges of the whole instance (memory over time). */
typedef struct tslab_instance_stats {
#define TSLAB__ISTATS_FIELD(field, metric, lk, lv, help) uint64_t field;
    TSLAB_INSTANCE_STATS(TSLAB__ISTATS_FIELD)
#undef TSLAB__ISTATS_FIELD
} tslab_instance_stats;

/** The revision of the tslab_stats layout: 1 in 1.0, 2 from 1.1 (fields appended since). */
#define TSLAB_STATS_VERSION 2

/** A snapshot of one instance, read while it runs without stopping its fast path.
 * Consistency: every COUNTER is monotonic across snapshots of one instance. Frees are summed
 * before allocations, so live_objects = allocations + duplicates_dropped - frees overstates the
 * true count by at most the allocations made while the snapshot was being read. Once every thread
 * that freed objects has called tslab_flush (or exited) after its last free, that identity is
 * exact. While a racing double free is pending (both frees counted, the drop not yet: until the
 * freeing thread's next hand-back, flush or exit) it can go below zero, and live_objects is
 * clamped at 0. Gauges are read one by one without a lock; each is exact at some instant during
 * the read. */
typedef struct tslab_stats {
    uint32_t version; /**< the library's TSLAB_STATS_VERSION: fields of later revisions read 0 */
    uint32_t class_count;                         /**< entries of classes[] in use */
    char name[TSLAB_NAME_MAX];                    /**< the instance's name */
    uint64_t reserved_bytes;                      /**< address space reserved by the instance */
    tslab_class_stats classes[TSLAB_CLASSES_MAX]; /**< one per class, smallest first */
    /** Rejected frees that name no class of this instance (a pointer outside it, a handle whose
     * class bits are out of range). Only the rejected_* fields are used. */
    tslab_class_stats unattributed;
    /** Since revision 2: the instance's limits and what they count (after `unattributed`, at
     * the caller's class stride). */
    tslab_instance_stats instance;
} tslab_stats;

/** Fills the caller's snapshot, whose layout the caller states: `stats_size` is its
 * sizeof(tslab_stats) and `class_stats_size` its sizeof(tslab_class_stats). The library writes
 * exactly the fields the caller's structs have, in the caller's layout (classes[] at the caller's
 * stride), zeroes the caller's fields it does not know (a program built against a newer header),
 * and writes no byte past out + stats_size. 0; -EINVAL when a or out is NULL, or the sizes are
 * smaller than 1.0's or not a whole tslab_stats (nothing is written then).
 * Bindings from other languages call this with their own sizes. */
TSLAB_API int tslab_stats_get(tslab *a, tslab_stats *out, size_t stats_size,
                              size_t class_stats_size);

/** tslab_stats_get with this header's sizes. 0, or -EINVAL when a or out is NULL.
 * (The library also exports a function of this name, for programs built against 1.0: it writes
 * exactly 1.0's tslab_stats, with version 1.) */
#ifndef TSLAB__DEFINES_STATS_READ_1_0
static inline int tslab_stats_read(tslab *a, tslab_stats *out)
{
    return tslab_stats_get(a, out, sizeof *out, sizeof out->classes[0]);
}
#endif

/* ---------------------------------------------------------------------------------------------
 * Sampling profiler
 *
 * Each thread counts down the bytes it allocates from each class and samples the allocation at
 * which an exponentially distributed interval (mean sample_bytes) runs out, as Go and tcmalloc
 * do: an object of size s is sampled with probability 1 - exp(-s / sample_bytes), so summed
 * weights estimate totals without bias (see tslab_profile_site). A sampled allocation records
 * its call stack (return addresses, the allocator's own frames cut off), class and birth time in
 * a side table keyed by its slot; its free moves it into the class's lifetime histogram. Frees
 * that are rejected never touch a record. Cost when not sampling: one decrement and branch per
 * allocation.
 * ------------------------------------------------------------------------------------------- */

/** Sets the mean interval (same values as tslab_config.sample_bytes: 0 = TSLAB_SAMPLE_DEFAULT,
 * TSLAB_SAMPLE_OFF = off). Each thread applies it at its next sample, or within 65536
 * allocations of a class when sampling was off. 0, or -EINVAL when a is NULL. */
TSLAB_API int tslab_sample_set(tslab *a, size_t bytes);
/** The mean interval in force (TSLAB_SAMPLE_OFF when off), 0 when a is NULL. */
TSLAB_API size_t tslab_sample_get(const tslab *a);

/** Lifetime and age buckets, besides +Inf. */
#define TSLAB_LIFETIME_BUCKETS 10
/** Their upper bounds in nanoseconds: 1 ms, 10 ms, 100 ms, 1 s, 10 s, 1 min, 10 min, 1 h, 6 h,
 * 1 day. */
#define TSLAB_LIFETIME_BOUNDS_NS                                                                   \
    {                                                                                              \
        UINT64_C(1000000), UINT64_C(10000000), UINT64_C(100000000), UINT64_C(1000000000),          \
            UINT64_C(10000000000), UINT64_C(60000000000), UINT64_C(600000000000),                  \
            UINT64_C(3600000000000), UINT64_C(21600000000000), UINT64_C(86400000000000)            \
    }

/** One call site: the sampled objects of one class allocated by one stack at one interval. The
 * estimated true counts are the sampled ones times 1 / (1 - exp(-object_size / sample_bytes))
 * (Go's scaleHeapSample). */
typedef struct tslab_profile_site {
    const uintptr_t *frames; /**< return addresses, innermost first (the allocator's caller) */
    uint32_t depth;          /**< 0..TSLAB_STACK_MAX; 0 when the site table was full */
    uint32_t class_index;    /**< the class (tslab_class_size gives its object size) */
    uint64_t object_size;    /**< bytes of the class's objects */
    uint64_t sample_bytes;   /**< the mean interval the samples were taken at */
    uint64_t allocs;         /**< sampled allocations */
    uint64_t frees;          /**< sampled allocations freed since (allocs - frees are live) */
} tslab_profile_site;

/** Per class, cumulative Prometheus-style buckets (bucket i counts values <= bound i; the last,
 * index TSLAB_LIFETIME_BUCKETS, is +Inf and equals the count). */
typedef struct tslab_profile_class {
    uint64_t object_size;                                  /**< bytes of the class's objects */
    uint64_t lifetime_buckets[TSLAB_LIFETIME_BUCKETS + 1]; /**< sampled objects freed, by life */
    uint64_t lifetime_sum_ns;                              /**< sum of the lifetimes counted */
    uint64_t age_buckets[TSLAB_LIFETIME_BUCKETS + 1];      /**< sampled objects live now, by age */
    /** Contention on the class's slow-path lock (every call, not sampled): times a thread found
     * it taken and waited, and the nanoseconds it waited in all. */
    uint64_t lock_waits;   /**< waits for the lock */
    uint64_t lock_wait_ns; /**< their total length */
} tslab_profile_class;

#define TSLAB_PROFILE_VERSION 1 /**< tslab_profile.version */

/** A snapshot of an instance's sampled sites and per-class histograms (tslab_profile_read). */
typedef struct tslab_profile {
    uint32_t version;                /**< TSLAB_PROFILE_VERSION */
    uint32_t class_count;            /**< entries of classes[] in use */
    uint64_t time_ns;                /**< the instance's clock when read */
    uint64_t sample_bytes;           /**< the interval in force (TSLAB_SAMPLE_OFF when off) */
    size_t site_count;               /**< entries of sites[] */
    const tslab_profile_site *sites; /**< the sites, in the order first seen */
    tslab_profile_class classes[TSLAB_CLASSES_MAX]; /**< per class */
} tslab_profile;

/** A consistent copy of a's sampled sites and lifetime histograms (taken under the sampler's
 * lock, which only sampled allocations and their frees take). *out is freed with
 * tslab_profile_free. 0, -EINVAL (NULL argument) or -ENOMEM. */
TSLAB_API int tslab_profile_read(tslab *a, tslab_profile **out);
/** Frees a profile of tslab_profile_read; NULL is a no-op. */
TSLAB_API void tslab_profile_free(tslab_profile *p);

/* ---------------------------------------------------------------------------------------------
 * Rejected frees: the last TSLAB_REJECTIONS_MAX of an instance, with their call sites
 * ------------------------------------------------------------------------------------------- */
#define TSLAB_REJECTIONS_MAX 64 /**< rejections an instance keeps */

/** Reasons, as in the free_rejections_total{reason} counters. */
enum { TSLAB_REJECT_INVALID, TSLAB_REJECT_STALE, TSLAB_REJECT_DOUBLE, TSLAB_REJECT_FOREIGN };

/** A rejected free: what was passed, why it was refused, when, and from where. */
typedef struct tslab_rejection {
    uint64_t seq;     /**< 1 for the instance's first rejection: gaps show what was overwritten */
    uint64_t time_ns; /**< the instance's clock (tslab_os.now_ns) */
    int reason;       /**< TSLAB_REJECT_* */
    uint32_t class_index; /**< tslab_class_count(a) when no class could be named */
    bool by_pointer; /**< value is the pointer given to tslab_free_ptr / tslab_realloc; else the
                             handle (also for a pointer free that lost a race to another free:
                             the handle its slot had) */
    uint64_t value;  /**< the handle or pointer (see by_pointer) */
    uint32_t depth;  /**< frames recorded */
    uintptr_t frames[TSLAB_STACK_MAX]; /**< return addresses, innermost first: the caller's */
} tslab_rejection;

/** Copies the instance's recorded rejections, oldest first, up to `max`, the newest kept when
 * fewer fit; returns how many were copied (0 for a NULL argument). */
TSLAB_API size_t tslab_rejections_read(tslab *a, tslab_rejection *out, size_t max);

/* ---------------------------------------------------------------------------------------------
 * Epochs: lifetime groups whose objects share slabs only with each other
 * ------------------------------------------------------------------------------------------- */

/** An epoch id: opaque and generation-checked; 0 is never one. A stale id (its epoch was
 * destroyed, or was closed, emptied and its record reused by a later tslab_epoch_open) or a
 * forged one is rejected with EINVAL, never a crash. */
typedef uint64_t tslab_epoch;

#define TSLAB_EPOCHS_MAX                                                                           \
    4096 /**< epochs an instance tracks at once (open, or closed and not                           \
              yet emptied) */
#define TSLAB_EPOCH_LABELS_MAX                                                                     \
    32 /**< labels per instance; epochs of later labels count as "other" */
#define TSLAB_EPOCH_LABEL_MAX 32 /**< bytes of a label, NUL included (longer ones are cut) */
#define TSLAB_EPOCH_LEAKS_MAX 8  /**< leaking epochs a tslab_epoch_stats lists, oldest first */

/** Opens an epoch labelled `label` (NULL or "" = "default"). The label is a metric label: an
 * instance keeps TSLAB_EPOCH_LABELS_MAX of them, in order of first use, and counts epochs of any
 * later label, and of the label "other" itself, under "other". Returns the id, or 0 with errno
 * EINVAL (a is NULL) or EAGAIN (TSLAB_EPOCHS_MAX epochs open or not yet emptied), ENOMEM. */
TSLAB_API tslab_epoch tslab_epoch_open(tslab *a, const char *label);

/** Allocates an object of `size` bytes into epoch e, as tslab_alloc does into the default epoch.
 * An epoch's objects share slabs only with objects of the same epoch. NULL with errno EINVAL
 * (stale or forged id, NULL argument, bad size), ESHUTDOWN (e is closed) or ENOMEM. Any thread
 * may allocate into any open epoch. Racing tslab_epoch_close or tslab_epoch_destroy, an
 * allocation either fails with ESHUTDOWN or succeeds; an allocation that starts after the close
 * or destroy returned (in happens-before order) fails (after a destroy: EINVAL, a stale id). An
 * object that succeeded while a destroy ran may have been missed by it: it is the caller's to free,
 * as any object. Objects of an epoch are freed by the ordinary tslab_free / tslab_free_ptr, from
 * any thread; tslab_realloc of one keeps it in e while e is open (later it moves to the default
 * epoch). The profiler samples epoch allocations as it samples tslab_alloc's (one countdown per
 * thread and class for both); a sampled object's record goes with its free or its epoch's
 * destroy. */
TSLAB_API void *tslab_alloc_epoch(tslab *a, tslab_epoch e, size_t size, tslab_handle *out);

/** tslab_alloc_epoch without the handle (free with tslab_free_ptr). */
TSLAB_API void *tslab_malloc_epoch(tslab *a, tslab_epoch e, size_t size);

/** Closes e: no new allocation in it; each of its slabs leaves it as soon as it is empty, into
 * the instance's cache of empty slabs (decay and the limits apply from there). Slots the threads
 * that allocated into e still cache keep their slab until that thread's next allocation into an
 * epoch of that class, tslab_flush or exit (the calling thread's own are returned at once). Once
 * closed and empty, the epoch's record is free for a later tslab_epoch_open. Idempotent: 0, or
 * -EINVAL for a stale or forged id. */
TSLAB_API int tslab_epoch_close(tslab *a, tslab_epoch e);

/** Closes e and frees every live object in it at once: each of its handles is stale afterwards,
 * and each pointer free of one of its objects is rejected as a double free (until the slot is
 * reused). Of a free racing the destroy of the same object, exactly one frees it: the free
 * returns true, or false and counts a rejection. The id is stale once this returns. 0, or
 * -EINVAL for a stale or forged id. In ASan builds the objects are poisoned; memcheck sees them
 * freed. */
TSLAB_API int tslab_epoch_destroy(tslab *a, tslab_epoch e);

/** Sets the age after close beyond which a closed epoch with live objects counts as leaking
 * (tslab_config.epoch_leak_ms; 0 = the default). 0, or -EINVAL for a NULL a. */
TSLAB_API int tslab_epoch_leak_set(tslab *a, uint64_t ms);

/** The one list of per-label epoch figures, X(field, type, metric, help): type COUNTER or
 * GAUGE, metric the Prometheus name after "tslab_" (the renderers add the labels `allocator`
 * and `label`; a field ending in _ns is rendered in seconds). Its order is the layout of
 * tslab_epoch_label_stats, which is ABI: append only.
 * Allocations into an epoch are counted in these figures when the allocating thread's cache of
 * that class refills, moves to another epoch, flushes (tslab_flush) or exits; frees of epoch
 * objects when the freeing thread hands its batch of frees back (every 64 frees of a class,
 * tslab_flush, exit). So the figures are exact once the threads involved have called
 * tslab_flush, and at most a batch per thread and class behind before. */
#define TSLAB_EPOCH_STATS(X)                                                                       \
    X(opened, COUNTER, "epochs_opened_total", "Epochs opened.")                                    \
    X(closed, COUNTER, "epochs_closed_total", "Epochs closed (destroyed ones included).")          \
    X(destroyed, COUNTER, "epochs_destroyed_total", "Epochs destroyed.")                           \
    X(allocations, COUNTER, "epoch_allocations_total", "Objects allocated into epochs.")           \
    X(frees, COUNTER, "epoch_frees_total",                                                         \
      "Objects of epochs freed (each object a destroy freed counts once).")                        \
    X(open_epochs, GAUGE, "epochs_open", "Epochs open now.")                                       \
    X(closed_live_objects, GAUGE, "epoch_closed_live_objects",                                     \
      "Live objects in closed epochs that were not destroyed.")                                    \
    X(oldest_closed_live_age_ns, GAUGE, "epoch_oldest_closed_live_age_seconds",                    \
      "Time since close of the oldest closed epoch that still holds live objects (0: none).")      \
    X(leaking_epochs, GAUGE, "epochs_leaking",                                                     \
      "Closed epochs older than the leak threshold that still hold live objects.")

/** The figures of one label (one row per TSLAB_EPOCH_STATS entry, named by its field). */
typedef struct tslab_epoch_label_stats {
    char label[TSLAB_EPOCH_LABEL_MAX];                                /**< the label, or "other" */
#define TSLAB__EPOCH_FIELD(field, type, metric, help) uint64_t field; /**< help */
    TSLAB_EPOCH_STATS(TSLAB__EPOCH_FIELD)
#undef TSLAB__EPOCH_FIELD
} tslab_epoch_label_stats;

/** One leaking epoch: closed longer ago than the threshold, live objects left. */
typedef struct tslab_epoch_leak {
    char label[TSLAB_EPOCH_LABEL_MAX];         /**< its label */
    uint64_t closed_age_ns;                    /**< time since tslab_epoch_close */
    uint64_t live_objects;                     /**< live objects, all classes */
    uint64_t live_by_class[TSLAB_CLASSES_MAX]; /**< live objects per class index */
} tslab_epoch_leak;

/** A snapshot of an instance's epochs. */
typedef struct tslab_epoch_stats {
    uint32_t label_count;       /**< entries of labels[] in use ("other" last, once used) */
    uint32_t leak_count;        /**< entries of leaks[] in use */
    uint64_t leak_threshold_ns; /**< tslab_config.epoch_leak_ms in nanoseconds */
    tslab_epoch_label_stats labels[TSLAB_EPOCH_LABELS_MAX + 1]; /**< by label, first used first */
    tslab_epoch_leak leaks[TSLAB_EPOCH_LEAKS_MAX];              /**< oldest first */
} tslab_epoch_stats;

/** Fills the caller's snapshot of `size` bytes (its sizeof(tslab_epoch_stats)): the fields that
 * fit, the rest of the caller's struct zeroed. 0, or -EINVAL (NULL argument, size 0 or above
 * 1 MiB; nothing is written then). */
TSLAB_API int tslab_epoch_stats_get(tslab *a, tslab_epoch_stats *out, size_t size);

#ifdef __cplusplus
}
#endif
#endif /**< TSLAB_H */
