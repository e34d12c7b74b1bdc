/* SPDX-License-Identifier: MIT */
/* Workload j (issue 13): lifetimes. Shared by the runner (lifetimes.c, which also holds the plain
 * backends), the peers' group allocators (lifetimes_peers.c: mimalloc heaps, jemalloc arenas) and
 * temporal-slab's epochs (lifetimes_epoch.c). Each of them instantiates the loops of
 * lifetimes.inc.h once and hands the runner a table of them (lt_ops).
 *
 * j.lifetimes: batches of LT_BATCH requests in flight together; each request allocates 4-16
 * objects of 64-512 B, and ends (frees them) after every request of its batch has started, in a
 * fixed scrambled order. One request in 100 keeps one of its objects, chosen when the request
 * starts (the program knows it will outlive the request), in a FIFO set of survivors of bounded
 * size: when the set is full the oldest survivor is freed. Each batch is one group (epoch, heap,
 * arena); survivors go to the default group. Sizes and choices come from one seeded generator,
 * the same sequence for every backend.
 *
 * j.survivor: the 1% test. n objects of one size, in groups of LT_CHUNK that are closed
 * (not destroyed) once allocated; then a random 1% is kept and the rest freed in allocation
 * order. The program cannot know the survivors when it allocates, so groups cannot help.
 *
 * j.survivor_known: the same objects and the same 1%, but the program knows at allocation which
 * objects survive (as a request-scoped service knows what it will cache): survivors go to the
 * default group, the others to their chunk's group, which ends (destroy) once they are freed.
 * The plain backends have no groups: they run exactly j.survivor, the baseline. */
#ifndef TSLAB_BENCH_LIFETIMES_H
#define TSLAB_BENCH_LIFETIMES_H

#include "bench.h"

#include <errno.h>
#include <string.h>
#include <tslab.h>

#define LT_BATCH 1000u /* requests per batch (one group each) */
#define LT_OBJS_MIN 4u /* objects per request: LT_OBJS_MIN..LT_OBJS_MAX */
#define LT_OBJS_MAX 16u
#define LT_SIZE_MIN 64u /* object sizes: LT_SIZE_MIN..LT_SIZE_MAX bytes, uniform */
#define LT_SIZE_MAX 512u
#define LT_KEEP_IN 100u  /* one request in LT_KEEP_IN keeps one object */
#define LT_SCRAMBLE 617u /* request r of a batch ends at position r * 617 mod 1000 (coprime) */
#define LT_CHUNK 10000u  /* j.survivor, j.survivor_known: consecutive objects per group */
#define LT_NONE UINT32_MAX

/* The state of j.lifetimes, owned by the runner; the loops only read and write it. */
typedef struct lt_state {
    uint64_t rng;
    uint64_t *tok;       /* this batch's group objects, LT_BATCH * LT_OBJS_MAX tokens */
    uint32_t *end;       /* per request of the batch: one past its last entry in tok */
    uint64_t *surv;      /* the survivors' tokens, a ring of surv_cap */
    uint32_t *surv_size; /* their requested sizes */
    uint32_t surv_cap, surv_head, surv_n;
    uint64_t surv_bytes;     /* requested bytes of the survivors now live */
    uint64_t peak_live;      /* most requested bytes live at once (batch + survivors) */
    uint64_t allocs, frees;  /* calls made, for the counter check */
    uint64_t bad;            /* frees the allocator rejected: must stay 0 */
    uint64_t requests, objs; /* done */
} lt_state;

/* Keeps a survivor (token t, size bytes) in the set. Returns the token of the oldest survivor
 * when the set was full (the caller frees it), else 0. */
static inline uint64_t lt_keep(lt_state *s, uint64_t t, uint32_t size)
{
    uint64_t old = 0;
    uint32_t i = s->surv_head;
    if (s->surv_n == s->surv_cap) {
        old = s->surv[i];
        s->surv_bytes -= s->surv_size[i];
    } else {
        s->surv_n++;
    }
    s->surv[i] = t;
    s->surv_size[i] = size;
    s->surv_bytes += size;
    s->surv_head = i + 1 == s->surv_cap ? 0 : i + 1;
    return old;
}

/* Stores p as the token of a pointer-freed object and returns it. */
static inline void *lt_tok(void *p, uint64_t *tok)
{
    *tok = (uint64_t)(uintptr_t)p;
    return p;
}

/* A control call's result (0 or -errno) with errno set from it, for the failure message. */
static inline int lt_rc(int rc)
{
    if (rc < 0)
        errno = -rc;
    return rc;
}

/* One backend's loops (lifetimes.inc.h). The int ones return 0, or -1 when a group call failed
 * (reported on stderr). */
typedef struct lt_ops {
    /* nb batches of j.lifetimes */
    int (*batches)(tslab *a, lt_state *s, uint32_t nb);
    /* frees every survivor of the set */
    void (*drain)(tslab *a, lt_state *s);
    /* n objects of `size` in groups of LT_CHUNK, tokens in tok[]. keep NULL (j.survivor): all
     * in the groups, each closed once allocated. keep set (j.survivor_known): keep[i] objects in
     * the default group, the groups left open, their ids in grp[n / LT_CHUNK rounded up] */
    int (*chunks)(tslab *a, uint64_t *tok, size_t size, uint64_t n, const uint8_t *keep,
                  uint64_t *grp);
    /* j.survivor_known: ends (destroys) the ng groups of grp[], once their objects are freed */
    int (*ends)(tslab *a, const uint64_t *grp, uint64_t ng);
    /* frees tok[i] for each i with keep[i] == want, with the group free (which every backend
     * also takes for an object of the default group); returns the rejected frees */
    uint64_t (*free_where)(tslab *a, const uint64_t *tok, uint64_t n, const uint8_t *keep,
                           uint8_t want);
} lt_ops;

/* The table of the loops lifetimes.inc.h instantiated with LT(name) = name##_k. */
#define LT_OPS(k)                                                                                  \
    {                                                                                              \
        batches_##k, drain_##k, chunks_##k, ends_##k, free_where_##k                               \
    }

#ifndef BENCH_NOINLINE
#define BENCH_NOINLINE __attribute__((noinline))
#endif
/* lifetimes.c: an allocation failed (message, exit 3); a group call failed (message with
 * errno; the loop then returns -1). */
void bench_lt_oom(size_t size) __attribute__((noreturn, cold, noinline));
void bench_lt_group_failed(const char *what) __attribute__((cold, noinline));

/* lifetimes_peers.c: mimalloc's heaps or jemalloc's arenas, whichever the process has
 * preloaded; NULL (with a message) when it has neither. */
const lt_ops *bench_lt_ops_peer(const char *backend);
/* lifetimes_epoch.c: temporal-slab with one epoch per group. */
extern const lt_ops bench_lt_ops_epoch;

/* Whether `workload` is one of j's: lifetimes, survivor, survivor_known. */
static inline bool bench_lifetimes_is(const char *workload)
{
    return strcmp(workload, "lifetimes") == 0 || strcmp(workload, "survivor") == 0 ||
           strcmp(workload, "survivor_known") == 0;
}

/* lifetimes.c: runs the cell's workload of j; returns the rejected frees. */
uint64_t bench_lifetimes_run(const bench_params *p, tslab *a);

#endif /* TSLAB_BENCH_LIFETIMES_H */
