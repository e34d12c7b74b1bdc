/* The floor through a call: the same thread-local LIFO free list as the inline `floor` backend,
 * but in a shared library of its own and reached through its PLT, as every allocator in the
 * suite is. Nothing an allocator does through a call can cost less: it is the bound for
 * workload a (tight), and it is how the table shows that bound in the same run. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FLOOR_CALL_API __attribute__((visibility("default")))

/* initial-exec: one %fs-relative access, as the core's own thread caches use. */
static __thread void *head __attribute__((tls_model("initial-exec")));

static __attribute__((noinline)) void *refill(size_t size)
{
    size_t n = 4096, sz = (size + 15) & ~(size_t)15;
    char *blk = aligned_alloc(64, n * sz);
    if (!blk) {
        fprintf(stderr, "bench: floor-call block of %zu bytes failed\n", n * sz);
        exit(3);
    }
    for (size_t i = 1; i + 1 < n; i++)
        *(void **)(blk + i * sz) = blk + (i + 1) * sz;
    *(void **)(blk + (n - 1) * sz) = NULL;
    head = blk + sz;
    return blk;
}

FLOOR_CALL_API void *bench_floor_call_alloc(size_t size, uint64_t *tok);
FLOOR_CALL_API void *bench_floor_call_alloc(size_t size, uint64_t *tok)
{
    void *p = head;
    if (__builtin_expect(p != NULL, 1))
        head = *(void **)p;
    else
        p = refill(size);
    *tok = (uint64_t)(uintptr_t)p;
    return p;
}

FLOOR_CALL_API _Bool bench_floor_call_free(uint64_t tok);
FLOOR_CALL_API _Bool bench_floor_call_free(uint64_t tok)
{
    void *p = (void *)(uintptr_t)tok;
    *(void **)p = head;
    head = p;
    return 1;
}
