/* SPDX-License-Identifier: MIT */
/* The floor: a thread-local LIFO free list threaded through the objects, refilled from one big
 * block. It is the least an allocator's fast path can do. worker.c inlines it (backend `floor`)
 * and floor_call.c puts it behind a shared library's PLT (backend `floor-call`); each includer
 * gets its own list. */
#ifndef BENCH_FLOOR_H
#define BENCH_FLOOR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* An executable's own TLS is one %fs-relative access with a fixed offset; a shared library
 * (floor_call.c) asks for initial-exec, as the core's thread caches do, to get the same. */
#ifndef BENCH_FLOOR_TLS
#define BENCH_FLOOR_TLS
#endif
static __thread void *floor_head BENCH_FLOOR_TLS;
/* The latest block and log2 of its object spacing (floor-cas indexes its state words by them). */
static char *floor_block;
static unsigned floor_shift;

/* A block of 4096 objects spaced by the power of two that holds `size` (at least 16). */
static __attribute__((noinline, unused)) void *floor_refill(size_t size)
{
    floor_shift = 4;
    while (((size_t)1 << floor_shift) < size)
        floor_shift++;
    size_t n = 4096, sz = (size_t)1 << floor_shift;
    char *blk = aligned_alloc(64, n * sz);
    if (!blk) {
        fprintf(stderr, "bench: floor block of %zu bytes failed\n", n * sz);
        exit(3);
    }
    for (size_t i = 1; i + 1 < n; i++)
        *(void **)(blk + i * sz) = blk + (i + 1) * sz;
    *(void **)(blk + (n - 1) * sz) = NULL;
    floor_head = blk + sz;
    floor_block = blk;
    return blk;
}

static inline void *floor_pop(size_t size, void *(*refill)(size_t))
{
    void *p = floor_head;
    if (__builtin_expect(p != NULL, 1))
        floor_head = *(void **)p;
    else
        p = refill(size);
    return p;
}

static inline void floor_push(void *p)
{
    *(void **)p = floor_head;
    floor_head = p;
}

static inline void *floor_alloc(size_t size, uint64_t *tok)
{
    void *p = floor_pop(size, floor_refill);
    *tok = (uint64_t)(uintptr_t)p;
    return p;
}

static inline bool floor_free(uint64_t tok)
{
    floor_push((void *)(uintptr_t)tok);
    return true;
}

#endif /* BENCH_FLOOR_H */
