/* SPDX-License-Identifier: MIT */
/* Workload loops, instantiated once per backend kind by worker.c (a C "template").
 *
 * Before each inclusion worker.c defines:
 *   BK(name)                 name suffixed with the kind (tight_sys, tight_tsh, ...)
 *   BK_ALLOC(A, size, tokp)  allocate; store the token (pointer or handle) in *tokp; return the
 *                            object's address (NULL on failure)
 *   BK_FREE(A, tok)          free by token; evaluates to true when the allocator accepted it
 * A is the tslab instance (unused by the malloc backends). Each loop is noinline so that it is
 * one function in a callgrind profile and the compiler cannot merge loops across backends.
 *
 * Objects: the churn-style loops write one 8-byte stamp into each new object, as a program
 * initialising its objects would; the tight loop touches nothing (the pair's own cost). */

/* a. tight: one object allocated and freed, n times. Returns rejected frees. */
static BENCH_NOINLINE uint64_t BK(tight)(tslab *A, size_t size, uint64_t n)
{
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t tok;
        void *p = BK_ALLOC(A, size, &tok);
        if (__builtin_expect(p == NULL, 0))
            bench_oom(size);
        bench_escape(p);
        bad += !BK_FREE(A, tok);
    }
    (void)A;
    return bad;
}

static BENCH_NOINLINE void BK(fill)(tslab *A, size_t size, uint64_t *tok, uint32_t live)
{
    for (uint32_t i = 0; i < live; i++) {
        void *p = BK_ALLOC(A, size, &tok[i]);
        if (__builtin_expect(p == NULL, 0))
            bench_oom(size);
        *(volatile uint64_t *)p = i;
    }
    (void)A;
}

static BENCH_NOINLINE uint64_t BK(drain)(tslab *A, uint64_t *tok, uint32_t live)
{
    uint64_t bad = 0;
    for (uint32_t i = 0; i < live; i++)
        if (tok[i])
            bad += !BK_FREE(A, tok[i]);
    (void)A;
    return bad;
}

/* b. churn: free a random live object, allocate its replacement, n times. */
static BENCH_NOINLINE uint64_t BK(churn)(tslab *A, size_t size, uint64_t *tok, uint32_t live,
                                         uint64_t n, uint64_t *rng)
{
    uint64_t bad = 0, s = *rng;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t k = bench_rng_below(&s, live);
        bad += !BK_FREE(A, tok[k]);
        void *p = BK_ALLOC(A, size, &tok[k]);
        if (__builtin_expect(p == NULL, 0))
            bench_oom(size);
        *(volatile uint64_t *)p = i;
    }
    *rng = s;
    (void)A;
    return bad;
}

/* c. latency: churn with each free and each alloc timed on its own, in ticks including the
 * timer's own cost (the worker subtracts its calibrated median). */
static BENCH_NOINLINE uint64_t BK(latency)(tslab *A, size_t size, uint64_t *tok, uint32_t live,
                                           uint64_t n, uint64_t *rng, uint32_t *t_alloc,
                                           uint32_t *t_free)
{
    uint64_t bad = 0, s = *rng;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t k = bench_rng_below(&s, live);
        uint64_t tok_k = tok[k];
        uint64_t t0 = bench_tsc_begin();
        bool ok = BK_FREE(A, tok_k);
        uint64_t t1 = bench_tsc_end();
        uint64_t t2 = bench_tsc_begin();
        void *p = BK_ALLOC(A, size, &tok[k]);
        uint64_t t3 = bench_tsc_end();
        bad += !ok;
        if (__builtin_expect(p == NULL, 0))
            bench_oom(size);
        *(volatile uint64_t *)p = i;
        t_free[i] = (uint32_t)(t1 - t0);
        t_alloc[i] = (uint32_t)(t3 - t2);
    }
    *rng = s;
    (void)A;
    return bad;
}

/* g. the original's figure: n sequential allocations, then n frees in the same order. */
static BENCH_NOINLINE void BK(seq_alloc)(tslab *A, size_t size, uint64_t *tok, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        void *p = BK_ALLOC(A, size, &tok[i]);
        if (__builtin_expect(p == NULL, 0))
            bench_oom(size);
        *(volatile uint64_t *)p = i;
    }
    (void)A;
}
static BENCH_NOINLINE uint64_t BK(seq_free)(tslab *A, const uint64_t *tok, uint64_t n)
{
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; i++)
        bad += !BK_FREE(A, tok[i]);
    (void)A;
    return bad;
}

/* e. one RSS cycle: free `turn` random live objects (distinct), then allocate replacements. */
static BENCH_NOINLINE uint64_t BK(turnover)(tslab *A, size_t size, uint64_t *tok, uint32_t live,
                                            uint32_t turn, uint32_t *picked, uint64_t *rng)
{
    uint64_t bad = 0;
    uint32_t np = 0;
    for (uint32_t j = 0; j < turn; j++) {
        uint32_t k = bench_rng_below(rng, live);
        if (!tok[k])
            continue;
        bad += !BK_FREE(A, tok[k]);
        tok[k] = 0;
        picked[np++] = k;
    }
    for (uint32_t j = 0; j < np; j++) {
        void *p = BK_ALLOC(A, size, &tok[picked[j]]);
        if (__builtin_expect(p == NULL, 0))
            bench_oom(size);
        *(volatile uint64_t *)p = j;
    }
    (void)A;
    return bad;
}

/* d. producer: allocate n objects and pass their tokens to the consumer, from position t. */
static BENCH_NOINLINE uint64_t BK(produce)(tslab *A, size_t size, bench_ring *r, uint64_t t,
                                           uint64_t n)
{
    uint64_t head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t tok;
        void *p = BK_ALLOC(A, size, &tok);
        if (__builtin_expect(p == NULL, 0))
            bench_oom(size);
        *(volatile uint64_t *)p = i;
        for (unsigned spins = 0; t - head_seen >= BENCH_RING;) {
            head_seen = atomic_load_explicit(&r->head, memory_order_acquire);
            if (t - head_seen >= BENCH_RING)
                bench_spin(&spins);
        }
        r->buf[t & (BENCH_RING - 1)] = tok;
        t++;
        atomic_store_explicit(&r->tail, t, memory_order_release);
    }
    (void)A;
    return t;
}
/* d. consumer: free what the producer passes until the producer has published its total
 * (r->total) and every object up to it is freed. */
static BENCH_NOINLINE uint64_t BK(consume)(tslab *A, bench_ring *r)
{
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed), tail_seen = h, bad = 0;
    for (unsigned spins = 0;;) {
        if (h == tail_seen) {
            tail_seen = atomic_load_explicit(&r->tail, memory_order_acquire);
            if (h == tail_seen) {
                if (h >= atomic_load_explicit(&r->total, memory_order_acquire))
                    break;
                bench_spin(&spins);
                continue;
            }
            spins = 0;
        }
        while (h < tail_seen) {
            bad += !BK_FREE(A, r->buf[h & (BENCH_RING - 1)]);
            h++;
        }
        atomic_store_explicit(&r->head, h, memory_order_release);
    }
    (void)A;
    return bad;
}
