/* SPDX-License-Identifier: MIT */
/* Describing slab objects to AddressSanitizer and Valgrind memcheck. Called only when
 * tslab_config_sanitize is true; in other builds these are empty and never called.
 * Ordering contract (ASan poisoning is not thread-safe against another thread poisoning the same
 * bytes): unpoison only after the slot is ours (after the claim), poison before we give it away
 * (right after the CAS that freed it, before it reaches any shared structure). */
#include "internal.h"

#if TSLAB_ASAN
#include <sanitizer/asan_interface.h>
#endif
#if TSLAB_VALGRIND
#include <valgrind/memcheck.h>
#include <valgrind/valgrind.h>
#endif

void tslab__san_slab_fresh(const tslab__class *c, void *slab, size_t bytes)
{
    (void)c;
    (void)slab;
    (void)bytes;
#if TSLAB_ASAN
    ASAN_POISON_MEMORY_REGION(slab, bytes);
#endif
#if TSLAB_VALGRIND
    VALGRIND_MAKE_MEM_NOACCESS(slab, bytes);
#endif
}

void tslab__san_alloc(size_t size, void *p)
{
    (void)size;
    (void)p;
#if TSLAB_ASAN
    ASAN_UNPOISON_MEMORY_REGION(p, size);
#endif
#if TSLAB_VALGRIND
    VALGRIND_MALLOCLIKE_BLOCK(p, size, 0, 0);
#endif
}

void tslab__san_free(size_t size, void *p)
{
    (void)size;
    (void)p;
#if TSLAB_ASAN
    ASAN_POISON_MEMORY_REGION(p, size);
#endif
#if TSLAB_VALGRIND
    VALGRIND_FREELIKE_BLOCK(p, 0);
#endif
}

void tslab__san_release(const tslab__class *c)
{
    (void)c;
#if TSLAB_VALGRIND
    uint32_t n = atomic_load_explicit(&((tslab__class *)c)->nslots, memory_order_acquire);
    for (uint32_t idx = 0; idx < n; idx++)
        if (atomic_load_explicit(&c->state[idx], memory_order_relaxed) & TSLAB__LIVE)
            VALGRIND_FREELIKE_BLOCK(tslab__slot_addr(c, idx), 0);
#endif
#if TSLAB_ASAN
    ASAN_UNPOISON_MEMORY_REGION(c->objects.base, c->objects.committed);
#endif
}
