/* SPDX-License-Identifier: MIT */
/* The loops of workload j (lifetimes.h), instantiated once per backend (a C "template", as
 * workloads.inc.h). Before including it define:
 *   LT(name)                      name suffixed with the backend
 *   LT_OPEN(A)                    opens a group; a uint64_t, 0 on failure (errno set)
 *   LT_GALLOC(A, g, size, tokp)   allocates in group g; token in *tokp; the address or NULL
 *   LT_GFREE(A, tok)              frees an object of a group; true when accepted
 *   LT_ALLOC(A, size, tokp)       allocates in the default group (survivors)
 *   LT_FREE(A, tok)               frees an object of the default group; true when accepted
 *   LT_END(A, g)                  ends a group whose objects are all freed (destroy); 0 or not
 *   LT_CLOSE(A, g)                ends a group that still has live objects (they stay valid)
 * A is the tslab instance (unused by the other backends). The file undefines them all at its end.
 * Every object gets an 8-byte stamp, as a program initialising it would. Each loop is noinline: one
 * function per backend in a profile, and no loop merged across backends. */

/* j.lifetimes: nb batches. */
static BENCH_NOINLINE int LT(batches)(tslab *A, lt_state *s, uint32_t nb)
{
    for (uint32_t b = 0; b < nb; b++) {
        uint64_t g = LT_OPEN(A);
        if (__builtin_expect(g == 0, 0)) {
            bench_lt_group_failed("open");
            return -1;
        }
        uint32_t n = 0, made = 0;
        uint64_t bytes = 0;
        for (uint32_t r = 0; r < LT_BATCH; r++) {
            uint32_t k = LT_OBJS_MIN + bench_rng_below(&s->rng, LT_OBJS_MAX - LT_OBJS_MIN + 1);
            uint32_t keep =
                bench_rng_below(&s->rng, LT_KEEP_IN) == 0 ? bench_rng_below(&s->rng, k) : LT_NONE;
            for (uint32_t j = 0; j < k; j++) {
                uint32_t size =
                    LT_SIZE_MIN + bench_rng_below(&s->rng, LT_SIZE_MAX - LT_SIZE_MIN + 1);
                void *p;
                if (j == keep) {
                    uint64_t t;
                    p = LT_ALLOC(A, size, &t);
                    if (__builtin_expect(p == NULL, 0))
                        bench_lt_oom(size);
                    uint64_t old = lt_keep(s, t, size);
                    if (old) {
                        s->bad += !LT_FREE(A, old);
                        s->frees++;
                    }
                } else {
                    p = LT_GALLOC(A, g, size, &s->tok[n]);
                    if (__builtin_expect(p == NULL, 0))
                        bench_lt_oom(size);
                    n++;
                    bytes += size;
                }
                *(volatile uint64_t *)p = j;
            }
            made += k;
            s->end[r] = n;
        }
        if (bytes + s->surv_bytes > s->peak_live)
            s->peak_live = bytes + s->surv_bytes;
        /* Every request of the batch has started; they end in a fixed scrambled order. */
        for (uint32_t i = 0; i < LT_BATCH; i++) {
            uint32_t r = (uint32_t)(((uint64_t)i * LT_SCRAMBLE) % LT_BATCH);
            for (uint32_t j = r ? s->end[r - 1] : 0; j < s->end[r]; j++)
                s->bad += !LT_GFREE(A, s->tok[j]);
        }
        if (__builtin_expect(LT_END(A, g) != 0, 0)) {
            bench_lt_group_failed("end");
            return -1;
        }
        s->allocs += made;
        s->frees += n;
        s->objs += made;
        s->requests += LT_BATCH;
    }
    (void)A;
    return 0;
}

static BENCH_NOINLINE void LT(drain)(tslab *A, lt_state *s)
{
    for (uint32_t i = 0; i < s->surv_n; i++)
        s->bad += !LT_FREE(A, s->surv[i]);
    s->frees += s->surv_n;
    s->surv_n = s->surv_head = 0;
    s->surv_bytes = 0;
    (void)A;
}

/* j.survivor and j.survivor_known: allocation in groups of LT_CHUNK consecutive objects. keep NULL
 * (j.survivor): every object into its chunk's group, closed once the chunk is allocated. keep set
 * (j.survivor_known): objects with keep[i] into the default group, the others into their chunk's
 * group, left open; its id in grp[i / LT_CHUNK], for ends() once they are freed. */
static BENCH_NOINLINE int LT(chunks)(tslab *A, uint64_t *tok, size_t size, uint64_t n,
                                     const uint8_t *keep, uint64_t *grp)
{
    for (uint64_t i = 0; i < n; i += LT_CHUNK) {
        uint64_t g = LT_OPEN(A), end = n - i < LT_CHUNK ? n : i + LT_CHUNK;
        if (__builtin_expect(g == 0, 0)) {
            bench_lt_group_failed("open");
            return -1;
        }
        for (uint64_t j = i; j < end; j++) {
            void *p = keep && keep[j] ? LT_ALLOC(A, size, &tok[j]) : LT_GALLOC(A, g, size, &tok[j]);
            if (__builtin_expect(p == NULL, 0))
                bench_lt_oom(size);
            *(volatile uint64_t *)p = j;
        }
        if (keep) {
            grp[i / LT_CHUNK] = g;
        } else if (__builtin_expect(LT_CLOSE(A, g) != 0, 0)) {
            bench_lt_group_failed("close");
            return -1;
        }
    }
    (void)A;
    return 0;
}

/* j.survivor_known: ends the ng groups of grp[], whose objects are all freed. */
static BENCH_NOINLINE int LT(ends)(tslab *A, const uint64_t *grp, uint64_t ng)
{
    for (uint64_t i = 0; i < ng; i++)
        if (__builtin_expect(LT_END(A, grp[i]) != 0, 0)) {
            bench_lt_group_failed("end");
            return -1;
        }
    (void)A;
    return 0;
}

static BENCH_NOINLINE uint64_t LT(free_where)(tslab *A, const uint64_t *tok, uint64_t n,
                                              const uint8_t *keep, uint8_t want)
{
    uint64_t bad = 0;
    for (uint64_t i = 0; i < n; i++)
        if (keep[i] == want)
            bad += !LT_GFREE(A, tok[i]);
    (void)A;
    return bad;
}

#undef LT
#undef LT_OPEN
#undef LT_GALLOC
#undef LT_GFREE
#undef LT_ALLOC
#undef LT_FREE
#undef LT_END
#undef LT_CLOSE
