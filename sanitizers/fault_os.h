/* SPDX-License-Identifier: MIT */
/* A fault-injecting tslab_os: wraps tslab_os_default() and fails chosen calls.
 * Shared by the fault-injection test and the allocation fuzzer. Header-only. */
#ifndef TSLAB_SAN_FAULT_OS_H
#define TSLAB_SAN_FAULT_OS_H

#include <tslab.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

enum { FOS_RESERVE, FOS_COMMIT, FOS_DECOMMIT, FOS_KINDS };
static const char *const fos_kind_name[FOS_KINDS] = {"reserve", "commit", "decommit"};

typedef struct fault_os {
    tslab_os os; /* hand &fos->os to tslab_config.os; os.ctx points back here */
    const tslab_os *real;
    /* Call n (1-based, counted per kind) fails when fail_from <= n < fail_from + fail_len, or
     * when fail_one_in != 0 and a hash of n selects it. */
    _Atomic uint64_t fail_from[FOS_KINDS];
    _Atomic uint64_t fail_len[FOS_KINDS];
    _Atomic uint32_t fail_one_in[FOS_KINDS];
    _Atomic uint64_t calls[FOS_KINDS];
    _Atomic uint64_t failures[FOS_KINDS];
    _Atomic int64_t reserved_bytes; /* reserved and not yet released */
    _Atomic uint64_t reservations;  /* reservations outstanding */
    _Atomic int bad_release;        /* release of something never reserved */
} fault_os;

static inline bool fos_should_fail(fault_os *f, int kind)
{
    uint64_t n = atomic_fetch_add_explicit(&f->calls[kind], 1, memory_order_relaxed) + 1;
    uint64_t from = f->fail_from[kind], len = f->fail_len[kind];
    uint32_t one_in = f->fail_one_in[kind];
    bool fail = from && n >= from && n - from < len;
    if (!fail && one_in) {
        uint64_t h = (n + (uint64_t)kind * 0x9E3779B97F4A7C15ULL) * 0xBF58476D1CE4E5B9ULL;
        fail = (h >> 33) % one_in == 0;
    }
    if (fail)
        atomic_fetch_add_explicit(&f->failures[kind], 1, memory_order_relaxed);
    return fail;
}

static inline void *fos_reserve(void *ctx, size_t size)
{
    fault_os *f = ctx;
    if (fos_should_fail(f, FOS_RESERVE))
        return NULL;
    void *p = f->real->reserve(f->real->ctx, size);
    if (p) {
        atomic_fetch_add(&f->reserved_bytes, (int64_t)size);
        atomic_fetch_add(&f->reservations, 1);
    }
    return p;
}

static inline int fos_commit(void *ctx, void *p, size_t size)
{
    fault_os *f = ctx;
    if (fos_should_fail(f, FOS_COMMIT))
        return -ENOMEM;
    return f->real->commit(f->real->ctx, p, size);
}

static inline int fos_decommit(void *ctx, void *p, size_t size)
{
    fault_os *f = ctx;
    if (fos_should_fail(f, FOS_DECOMMIT))
        return -EAGAIN;
    return f->real->decommit(f->real->ctx, p, size);
}

static inline void fos_release(void *ctx, void *p, size_t size)
{
    fault_os *f = ctx;
    if (atomic_fetch_sub(&f->reservations, 1) == 0) {
        atomic_fetch_add(&f->reservations, 1);
        atomic_store(&f->bad_release, 1);
        return;
    }
    atomic_fetch_sub(&f->reserved_bytes, (int64_t)size);
    f->real->release(f->real->ctx, p, size);
}

static inline void fos_init(fault_os *f)
{
    memset((void *)f, 0, sizeof *f);
    f->real = tslab_os_default();
    f->os = (tslab_os){fos_reserve, fos_commit, fos_decommit, fos_release, f, NULL};
}

static inline uint64_t fos_failures(fault_os *f, int kind)
{
    return atomic_load(&f->failures[kind]);
}

static inline uint64_t fos_calls(fault_os *f, int kind) { return atomic_load(&f->calls[kind]); }

static inline void fos_disarm(fault_os *f)
{
    for (int k = 0; k < FOS_KINDS; k++) {
        f->fail_from[k] = 0;
        f->fail_len[k] = 0;
        f->fail_one_in[k] = 0;
    }
}

#endif
