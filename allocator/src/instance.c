/* SPDX-License-Identifier: MIT */
/* Instances: configuration, creation and destruction, fork safety (the registry of live
 * instances is registry.c's). */
#define TSLAB__DEFINES_CREATE_1_0 1 /* this file defines the exported 1.0 tslab_create */
#include "internal.h"

#include <errno.h>
#include <stddef.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

static const uint32_t default_sizes[] = {64, 96, 128, 192, 256, 384, 512, 768};
/* The cap on cached empty slabs per class, now that decay decides when they go back: large
 * enough that a loop allocating and freeing a million 128-byte objects (1,954 slabs of 64 KiB)
 * reuses every slab instead of refaulting the excess each cycle (bench/README.md "Memory over
 * time": the old cap of 16 cost 2,880 faults per 100k-object cycle), small enough to bound the
 * worst case (256 MiB per class, for at most decay_ms once unused). */
#define DEFAULT_CACHE_SLABS 4096
/* Decay: see bench/README.md "Memory over time". Churn loops reuse their slabs within
 * milliseconds (a 1M-object cycle takes ~20 ms), so any delay above that removes the thrash;
 * 1 s returns an idle process's memory about 10x sooner than jemalloc's 10 s dirty decay. */
#define DEFAULT_DECAY_MS 1000
#define DEFAULT_CLASS_MAX_BYTES ((size_t)1 << 30)

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* fork(): take every lock in the global order so the child inherits none held by a thread that
 * does not exist there. Caches of the parent's other threads stay attached to their instances in
 * the child; their slots are simply never used there (see fork_child for their slabs). */
static void fork_prepare(void)
{
    tslab__background_fork_prepare();
    tslab__registry_lock();
    for (uint32_t t = 1; t <= TSLAB_INSTANCES_MAX; t++) {
        tslab *a = tslab__registry_get(t);
        if (a == NULL)
            continue;
        pthread_mutex_lock(&a->tc_lock);
        for (uint32_t i = 0; i < a->nclasses; i++)
            pthread_mutex_lock(&a->cls[i].lock);
        tslab__epochs_lock(a);
        tslab__sampler_lock(a);
        tslab__rejections_lock(a);
    }
}

static void fork_release(void)
{
    for (uint32_t t = TSLAB_INSTANCES_MAX; t >= 1; t--) {
        tslab *a = tslab__registry_get(t);
        if (a == NULL)
            continue;
        tslab__rejections_unlock(a);
        tslab__sampler_unlock(a);
        tslab__epochs_unlock(a);
        for (uint32_t i = a->nclasses; i-- > 0;)
            pthread_mutex_unlock(&a->cls[i].lock);
        pthread_mutex_unlock(&a->tc_lock);
    }
    tslab__registry_unlock();
}

/* The child has one thread. Slabs owned by the parent's other threads would wait for owners that
 * do not exist here, so they are given up; their threads' caches and remote batches are lost to
 * the child, as any thread's state is. */
static void fork_child(void)
{
    fork_release();
    tslab__registry_lock();
    for (uint32_t t = 1; t <= TSLAB_INSTANCES_MAX; t++) {
        tslab *a = tslab__registry_get(t);
        if (a == NULL)
            continue;
        uint16_t keep = TSLAB__NO_ID;
        if (tslab__tls != NULL && tslab__tls[t].uid == a->uid)
            keep = tslab__tls[t].tc->id;
        for (uint32_t i = 0; i < a->nclasses; i++)
            tslab__slab_disown_others(a, &a->cls[i], keep);
    }
    tslab__registry_unlock();
    tslab__background_fork_child();
}

static void fork_parent(void)
{
    fork_release();
    tslab__background_fork_parent();
}

static void atfork_install(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

void tslab__fork_hooks_install(void) { pthread_once(&atfork_once, atfork_install); }

static int validate(const tslab_config *cfg, const uint32_t **sizes, size_t *n)
{
    *sizes = cfg->sizes ? cfg->sizes : default_sizes;
    *n = cfg->sizes ? cfg->size_count : sizeof default_sizes / sizeof default_sizes[0];
    if (*n == 0 || *n > TSLAB_CLASSES_MAX)
        return -EINVAL;
    for (size_t i = 0; i < *n; i++) {
        uint32_t s = (*sizes)[i];
        if (s == 0 || s > TSLAB_OBJECT_MAX || (i > 0 && s <= (*sizes)[i - 1]))
            return -EINVAL;
        /* Rounding to 8 must not make two classes equal. */
        if (i > 0 && ((s + 7) & ~7u) == (((*sizes)[i - 1] + 7) & ~7u))
            return -EINVAL;
    }
    size_t sb = cfg->slab_bytes;
    if (sb != 0 && (sb < 4096 || sb > ((size_t)4 << 20) || (sb & (sb - 1)) != 0))
        return -EINVAL;
    if (cfg->name != NULL && strlen(cfg->name) >= TSLAB_NAME_MAX)
        return -EINVAL;
    /* An injected OS layer must be complete: a NULL entry would be called on the first slab. */
    const tslab_os *os = cfg->os;
    if (os != NULL &&
        (os->reserve == NULL || os->commit == NULL || os->decommit == NULL || os->release == NULL))
        return -EINVAL;
    return 0;
}

static void destroy_classes(tslab *a, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        /* Only the committed prefix was ever poisoned; the reservation can be huge. */
        if (tslab_config_sanitize && a->cls[i].objects.base != NULL)
            tslab__san_release(&a->cls[i]);
        tslab__class_fini(a, &a->cls[i]);
    }
    tslab__area_release(a, &a->region);
}

/* Frees an instance whose first n classes were initialised (tslab_destroy, or a failed create). */
static void free_instance(tslab *a, uint32_t n)
{
    destroy_classes(a, n);
    tslab__sampler_fini(a);
    tslab__rejections_fini(a);
    tslab__epochs_fini(a);
    pthread_mutex_destroy(&a->tc_lock);
    free(a->retired);
    free(a);
}

static tslab *create_failed(tslab *a, uint32_t n, int err)
{
    free_instance(a, n);
    errno = err;
    return NULL;
}

/* cfg is complete in this version's layout, and cfg->os (if set) too: tslab_create_sized made
 * both from what the caller has. */
static tslab *create(const tslab_config *cfg)
{
    const uint32_t *sizes;
    size_t n;
    int r = validate(cfg, &sizes, &n);
    if (r != 0) {
        errno = -r;
        return NULL;
    }
    tslab__fork_hooks_install();

    /* The classes hold cache-line-aligned members: malloc's 16-byte alignment is not enough. */
    size_t bytes = (sizeof(tslab) + n * sizeof(tslab__class) + 63) & ~(size_t)63;
    tslab *a = aligned_alloc(64, bytes);
    if (a != NULL)
        memset(a, 0, bytes);
    if (a == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    a->retired = calloc(n + 1, sizeof(tslab__tcounters));
    if (a->retired == NULL || pthread_mutex_init(&a->tc_lock, NULL) != 0) {
        free(a->retired);
        free(a);
        errno = ENOMEM;
        return NULL;
    }
    if (tslab__sampler_init(a, cfg) != 0 || tslab__rejections_init(a, cfg) != 0) {
        tslab__sampler_fini(a);
        tslab__rejections_fini(a);
        pthread_mutex_destroy(&a->tc_lock);
        free(a->retired);
        free(a);
        errno = ENOMEM;
        return NULL;
    }
    a->id_used[0] = 1; /* id 0 means "unowned" */
    /* A copy: the caller's table may be of an older, shorter layout (tslab_create_sized). */
    a->os_copy = cfg->os ? *cfg->os : *tslab_os_default();
    a->os = &a->os_copy;
    a->exact_frees = cfg->exact_frees;
    a->page = tslab__os_page_size();
    a->nclasses = (uint32_t)n;
    a->cache_slabs = cfg->cache_slabs == 0                  ? DEFAULT_CACHE_SLABS
                     : cfg->cache_slabs == TSLAB_CACHE_NONE ? 0
                                                            : cfg->cache_slabs;
    uint64_t decay_ms = cfg->decay_ms == 0                  ? DEFAULT_DECAY_MS
                        : cfg->decay_ms == TSLAB_DECAY_NONE ? 0
                                                            : cfg->decay_ms;
    atomic_store_explicit(&a->decay_ns, tslab__ms_to_ns(decay_ms), memory_order_relaxed);
    atomic_store_explicit(
        &a->epoch_leak_ns,
        tslab__ms_to_ns(cfg->epoch_leak_ms ? cfg->epoch_leak_ms : TSLAB__EPOCH_LEAK_DEFAULT_MS),
        memory_order_relaxed);
    atomic_store_explicit(&a->limit_hard, cfg->limit_hard, memory_order_relaxed);
    atomic_store_explicit(&a->limit_soft, cfg->limit_soft, memory_order_relaxed);
    strcpy(a->name, cfg->name ? cfg->name : "default");
    size_t slab_target = cfg->slab_bytes ? cfg->slab_bytes : TSLAB__DEFAULT_SLAB_BYTES;
    size_t class_max = cfg->class_max_bytes ? cfg->class_max_bytes : DEFAULT_CLASS_MAX_BYTES;

    uint32_t done = 0;
    for (; done < n; done++) {
        uint32_t size = (sizes[done] + 7) & ~7u;
        r = tslab__class_init(a, &a->cls[done], done, size, slab_target, class_max);
        if (r != 0) {
            done++; /* the failed class holds a lock and maybe reservations: finish it too */
            break;
        }
    }
    if (r != 0)
        return create_failed(a, done, -r);
    size_t stride = 0;
    for (uint32_t i = 0; i < n; i++)
        if (a->cls[i].objects.reserved > stride)
            stride = a->cls[i].objects.reserved;
    a->region_shift = 63u - (uint32_t)__builtin_clzll(stride);
    if (((size_t)1 << a->region_shift) < stride)
        a->region_shift++;
    a->region_mask = ((uintptr_t)1 << a->region_shift) - 1;
    if (n << a->region_shift >> a->region_shift != n ||
        (r = tslab__area_reserve(a, &a->region, n << a->region_shift)) != 0)
        return create_failed(a, (uint32_t)n, ENOMEM);
    for (uint32_t i = 0; i < n; i++) {
        a->cls[i].objects.base = a->region.base + ((size_t)i << a->region_shift);
        a->cls[i].base = a->cls[i].objects.base;
    }
    a->max_size = a->cls[n - 1].size;
    a->lut_limit = a->max_size < sizeof a->lut * 8 ? a->max_size : sizeof a->lut * 8;
    for (size_t s = 1, c = 0; s <= a->lut_limit; s += 8) {
        while (a->cls[c].size < s)
            c++;
        a->lut[(s - 1) >> 3] = (uint8_t)c;
    }

    if (tslab__registry_add(a) == 0)
        return create_failed(a, a->nclasses, EMFILE);
    return a;
}

/* Configurations as callers have them. 1.0's tslab_config is name .. exact_frees (64 bytes) and
 * its tslab_os the four calls and ctx; later versions append fields (never insert), so a caller's
 * struct is always a prefix of ours or ours a prefix of its. */
#define CONFIG_SIZE_1_0 ((size_t)64)
#define OS_SIZE_1_0 offsetof(tslab_os, now_ns)
_Static_assert(offsetof(tslab_config, exact_frees) == 56 && sizeof(tslab_config) >= CONFIG_SIZE_1_0,
               "tslab_config: 1.0's fields must stay first and in order; append new ones");
_Static_assert(OS_SIZE_1_0 == 5 * sizeof(void *), "tslab_os: 1.0's members first, in order");
/* No configuration of any version is this large; the bound keeps the zero scan short. */
#define CONFIG_SIZE_MAX ((size_t)1 << 16)

tslab *tslab_create_sized(const tslab_config *cfg, size_t cfg_size)
{
    tslab_config c;
    tslab_os os;
    memset(&c, 0, sizeof c);
    if (cfg != NULL) {
        if (cfg_size < CONFIG_SIZE_1_0 || cfg_size > CONFIG_SIZE_MAX) {
            errno = EINVAL;
            return NULL;
        }
        memcpy(&c, cfg, cfg_size < sizeof c ? cfg_size : sizeof c);
        /* A newer caller's fields this library does not know must be unset (zero means the
         * default in every version): otherwise it asks for something this version cannot do. */
        for (size_t i = sizeof c; i < cfg_size; i++)
            if (((const unsigned char *)cfg)[i] != 0) {
                errno = EINVAL;
                return NULL;
            }
        if (c.os != NULL) {
            /* The caller's tslab_os is of the same version as its tslab_config: a 1.0 caller's
             * table ends before now_ns, and reading that member would read past it. */
            memset(&os, 0, sizeof os);
            memcpy(&os, c.os, cfg_size > CONFIG_SIZE_1_0 ? sizeof os : OS_SIZE_1_0);
            c.os = &os;
        }
    }
    return create(&c);
}

/* The symbol programs built against 1.0 call (tslab.h otherwise makes tslab_create a static
 * inline function that passes its own size): 1.0's tslab_config, exactly. */
TSLAB_API tslab *tslab_create(const tslab_config *cfg);
tslab *tslab_create(const tslab_config *cfg) { return tslab_create_sized(cfg, CONFIG_SIZE_1_0); }

void tslab_destroy(tslab *a)
{
    if (a == NULL)
        return;
    /* Unregistering under the registry lock orders us after any exiting thread that is still
     * flushing into `a` (it holds the lock) and before any that would start (it checks first). */
    tslab__registry_lock();
    tslab__registry_remove(a->tag);
    tslab__tcache_destroy_all(a);
    tslab__registry_unlock();
    free_instance(a, a->nclasses);
}

const char *tslab_name(const tslab *a) { return a ? a->name : NULL; }
size_t tslab_class_count(const tslab *a) { return a ? a->nclasses : 0; }
size_t tslab_class_size(const tslab *a, size_t i)
{
    return a && i < a->nclasses ? a->cls[i].size : 0;
}

const char *tslab_strerror(int err)
{
    /* -INT_MIN overflows: no errno value is that large anyway. */
    if (err == INT_MIN)
        return "unknown error";
    if (err < 0)
        err = -err;
    switch (err) {
    case 0: return "success";
    case EINVAL: return "invalid argument or configuration";
    case ENOMEM: return "out of memory or address space";
    case EMFILE: return "too many allocator instances";
    case EADDRINUSE: return "address already in use";
    case EALREADY: return "already started";
    case EACCES: return "permission denied";
    case EIO: return "I/O error";
    default: return strerror(err);
    }
}
