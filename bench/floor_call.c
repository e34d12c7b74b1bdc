/* SPDX-License-Identifier: MIT */
/* The floor through a call: floor.h's free list in a shared library of its own, reached through
 * its PLT as every allocator in the suite is. Nothing an allocator does through a call can cost
 * less: it is the bound for workload a (tight), shown in the same run. */
#define BENCH_FLOOR_TLS __attribute__((tls_model("initial-exec")))
#include "floor.h"

#define FLOOR_CALL_API __attribute__((visibility("default")))

FLOOR_CALL_API void *bench_floor_call_alloc(size_t size, uint64_t *tok);
FLOOR_CALL_API void *bench_floor_call_alloc(size_t size, uint64_t *tok)
{
    return floor_alloc(size, tok);
}

FLOOR_CALL_API bool bench_floor_call_free(uint64_t tok);
FLOOR_CALL_API bool bench_floor_call_free(uint64_t tok) { return floor_free(tok); }
