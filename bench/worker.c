/* SPDX-License-Identifier: MIT */
/* The worker: one (workload, size, backend) cell in its own process. */
#define _GNU_SOURCE
#include "bench.h"
#include "floor.h"
#include "lifetimes.h"

#include <tslab.h>

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <valgrind/callgrind.h>

#define BENCH_NOINLINE __attribute__((noinline))
#define BENCH_RING 1024u
/* Empty slabs per class the core keeps at most by default (tslab_config.cache_slabs, tslab.h):
 * the bound that RSS after freeing everything is judged against in workload e (decay, not this
 * cap, decides when they go back: workload i). */
#define BENCH_DEFAULT_CACHE_SLABS 4096

typedef struct bench_ring {
    _Alignas(64) _Atomic uint64_t head; /* consumer's position */
    _Alignas(64) _Atomic uint64_t tail; /* producer's position */
    _Atomic uint64_t total; /* objects the producer will pass (UINT64_MAX: not known yet) */
    _Alignas(64) uint64_t buf[BENCH_RING];
} bench_ring;

/* Waiting on the other thread: pause briefly, then yield, since on a loaded 2-core machine the
 * other thread may share this core and spinning would only burn its time slice. */
static inline void bench_spin(unsigned *spins)
{
    if (++*spins < 128)
        _mm_pause();
    else
        sched_yield();
}

static void bench_oom(size_t size) __attribute__((noreturn, cold, noinline));
static void bench_oom(size_t size)
{
    fprintf(stderr, "bench: allocation of %zu bytes failed: %s\n", size, strerror(errno));
    exit(3);
}

/* ---- Backend kinds ------------------------------------------------------------------------ */

static inline void *sys_alloc(size_t size, uint64_t *tok)
{
    void *p = malloc(size);
    *tok = (uint64_t)(uintptr_t)p;
    return p;
}
static inline bool sys_free(uint64_t tok)
{
    free((void *)(uintptr_t)tok);
    return true;
}

static inline void *tsm_alloc(tslab *a, size_t size, uint64_t *tok)
{
    void *p = tslab_malloc(a, size);
    *tok = (uint64_t)(uintptr_t)p;
    return p;
}

/* The floor plus what temporal-slab's safety costs at minimum: a release store of a per-slot
 * state word on alloc and a CAS on it on free (the word lives outside the object, as in the
 * core). One block of 4096 objects: only the tight loop uses it. */
static _Atomic uint32_t fc_state[4096];
static BENCH_NOINLINE void *floorcas_refill(size_t size)
{
    if (floor_block) {
        fprintf(stderr, "bench: floor-cas holds 4096 objects (tight loop only)\n");
        exit(3);
    }
    return floor_refill(size);
}
static inline _Atomic uint32_t *floorcas_word(void *p)
{
    return &fc_state[((uintptr_t)p - (uintptr_t)floor_block) >> floor_shift];
}
static inline void *floorcas_alloc(size_t size, uint64_t *tok)
{
    void *p = floor_pop(size, floorcas_refill);
    _Atomic uint32_t *st = floorcas_word(p);
    atomic_store_explicit(st, atomic_load_explicit(st, memory_order_relaxed) | 1,
                          memory_order_release);
    *tok = (uint64_t)(uintptr_t)p;
    return p;
}
static inline bool floorcas_free(uint64_t tok)
{
    void *p = (void *)(uintptr_t)tok;
    _Atomic uint32_t *st = floorcas_word(p);
    uint32_t s = atomic_load_explicit(st, memory_order_relaxed) | 1;
    if (!atomic_compare_exchange_strong_explicit(st, &s, (s + 2) & ~1u, memory_order_acq_rel,
                                                 memory_order_acquire))
        return false;
    floor_push(p);
    return true;
}

static _Alignas(64) char null_obj[1u << 16];
static inline void *null_alloc(uint64_t *tok)
{
    *tok = (uint64_t)(uintptr_t)null_obj;
    return null_obj;
}

/* ---- Instantiate the workloads per kind --------------------------------------------------- */
#define BK(name) name##_sys
#define BK_ALLOC(A, size, tokp) sys_alloc(size, tokp)
#define BK_FREE(A, tok) sys_free(tok)
#include "workloads.inc.h"
#undef BK
#undef BK_ALLOC
#undef BK_FREE

#define BK(name) name##_tsh
#define BK_ALLOC(A, size, tokp) tslab_alloc(A, size, tokp)
#define BK_FREE(A, tok) tslab_free(A, tok)
#include "workloads.inc.h"
#undef BK
#undef BK_ALLOC
#undef BK_FREE

#define BK(name) name##_tsm
#define BK_ALLOC(A, size, tokp) tsm_alloc(A, size, tokp)
#define BK_FREE(A, tok) tslab_free_ptr(A, (void *)(uintptr_t)(tok))
#include "workloads.inc.h"
#undef BK
#undef BK_ALLOC
#undef BK_FREE

#define BK(name) name##_floor
#define BK_ALLOC(A, size, tokp) floor_alloc(size, tokp)
#define BK_FREE(A, tok) floor_free(tok)
#include "workloads.inc.h"
#undef BK
#undef BK_ALLOC
#undef BK_FREE

#define BK(name) name##_floorcas
#define BK_ALLOC(A, size, tokp) floorcas_alloc(size, tokp)
#define BK_FREE(A, tok) floorcas_free(tok)
#include "workloads.inc.h"
#undef BK
#undef BK_ALLOC
#undef BK_FREE

#define BK(name) name##_floorcall
#define BK_ALLOC(A, size, tokp) bench_floor_call_alloc(size, tokp)
#define BK_FREE(A, tok) bench_floor_call_free(tok)
#include "workloads.inc.h"
#undef BK
#undef BK_ALLOC
#undef BK_FREE

#define BK(name) name##_null
#define BK_ALLOC(A, size, tokp) ((void)(size), null_alloc(tokp))
#define BK_FREE(A, tok) ((void)(tok), true)
#include "workloads.inc.h"
#undef BK
#undef BK_ALLOC
#undef BK_FREE

typedef struct bench_ops {
    uint64_t (*tight)(tslab *, size_t, uint64_t);
    void (*fill)(tslab *, size_t, uint64_t *, uint32_t);
    uint64_t (*drain)(tslab *, uint64_t *, uint32_t);
    uint64_t (*churn)(tslab *, size_t, uint64_t *, uint32_t, uint64_t, uint64_t *);
    uint64_t (*latency)(tslab *, size_t, uint64_t *, uint32_t, uint64_t, uint64_t *, uint32_t *,
                        uint32_t *);
    void (*seq_alloc)(tslab *, size_t, uint64_t *, uint64_t);
    uint64_t (*seq_free)(tslab *, const uint64_t *, uint64_t);
    uint64_t (*turnover)(tslab *, size_t, uint64_t *, uint32_t, uint32_t, uint32_t *, uint64_t *);
    uint64_t (*produce)(tslab *, size_t, bench_ring *, uint64_t, uint64_t);
    uint64_t (*consume)(tslab *, bench_ring *);
} bench_ops;

#define BENCH_OPS(k)                                                                               \
    {                                                                                              \
        tight_##k, fill_##k, drain_##k, churn_##k, latency_##k, seq_alloc_##k, seq_free_##k,       \
            turnover_##k, produce_##k, consume_##k                                                 \
    }
static const bench_ops ops_by_kind[] = {
    [BENCH_KIND_SYS] = BENCH_OPS(sys),
    [BENCH_KIND_TSH] = BENCH_OPS(tsh),
    [BENCH_KIND_TSM] = BENCH_OPS(tsm),
    [BENCH_KIND_FLOOR] = BENCH_OPS(floor),
    [BENCH_KIND_NULL] = BENCH_OPS(null),
    [BENCH_KIND_FLOORCAS] = BENCH_OPS(floorcas),
    [BENCH_KIND_FLOORCALL] = BENCH_OPS(floorcall),
};

/* ---- Process-level helpers ---------------------------------------------------------------- */

static tslab *g_inst;     /* the temporal-slab instance (tslab kinds) */
static uint64_t g_bad;    /* rejected frees: must stay 0 */
static uint64_t g_allocs; /* allocations the workload made (checked against the counters) */

static size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (size_t)sysconf(_SC_PAGESIZE);
}

/* Asks the process's allocator to give free memory back to the OS. */
static void purge(const bench_params *p)
{
    if (p->kind == BENCH_KIND_TSH || p->kind == BENCH_KIND_TSM) {
        tslab_purge(g_inst);
        return;
    }
    if (strcmp(p->backend, "jemalloc") == 0) {
        int (*mallctl)(const char *, void *, size_t *, void *, size_t) =
            (int (*)(const char *, void *, size_t *, void *, size_t))dlsym(RTLD_DEFAULT, "mallctl");
        if (mallctl) {
            mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
            mallctl("arena.4096.purge", NULL, NULL, NULL, 0); /* MALLCTL_ARENAS_ALL */
        }
    } else if (strcmp(p->backend, "mimalloc") == 0) {
        void (*collect)(bool) = (void (*)(bool))dlsym(RTLD_DEFAULT, "mi_collect");
        if (collect)
            collect(true);
    } else if (strcmp(p->backend, "tcmalloc") == 0) {
        void (*release)(void) =
            (void (*)(void))dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory");
        if (release)
            release();
    } else {
        malloc_trim(0);
    }
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p)
        bench_oom(n * size);
    return p;
}

static double ticks_to_ns(const bench_params *p, double ticks) { return ticks / p->tsc_ghz; }

/* Makes every page of [p, p + n) resident. A plain memset(0) right after calloc is removed by
 * the compiler (calloc memory is known to be zero), and glibc's calloc of a fresh mapping does
 * not touch it either, so the pages would fault in later and count as the allocator's RSS. */
static void touch_pages(void *p, size_t n)
{
    volatile char *c = p;
    for (size_t i = 0; i < n; i += 4096)
        c[i] = 0;
    if (n > 0)
        c[n - 1] = 0;
}

/* ---- Workloads ---------------------------------------------------------------------------- */

/* Measured loops run in chunks until n operations are done or the deadline passes (a slow
 * backend must not blow the suite's time budget); results are per operation actually done. */
#define BENCH_CHUNK 65536u

static uint64_t deadline_of(const bench_params *p, uint64_t t0)
{
    return p->max_ms ? t0 + (uint64_t)(p->max_ms * 1e6 * p->tsc_ghz) : UINT64_MAX;
}

static void run_tight(const bench_params *p, const bench_ops *o)
{
    uint64_t warm = p->n / 10 < 10000 ? 10000 : p->n / 10;
    g_bad += o->tight(g_inst, p->size, warm);
    if (p->callgrind)
        CALLGRIND_TOGGLE_COLLECT;
    uint64_t t0 = bench_tsc(), deadline = deadline_of(p, t0), done = 0;
    while (done < p->n) {
        uint64_t k = p->n - done < BENCH_CHUNK ? p->n - done : BENCH_CHUNK;
        g_bad += o->tight(g_inst, p->size, k);
        done += k;
        if (bench_tsc() > deadline)
            break;
    }
    uint64_t t1 = bench_tsc();
    if (p->callgrind)
        CALLGRIND_TOGGLE_COLLECT;
    g_allocs = warm + done;
    bench_emit("pair_ns", ticks_to_ns(p, (double)(t1 - t0)) / (double)done);
    bench_emit("ops", (double)done);
}

static void run_churn(const bench_params *p, const bench_ops *o)
{
    uint64_t *tok = xcalloc(p->live, sizeof *tok);
    uint64_t rng = p->seed;
    o->fill(g_inst, p->size, tok, p->live);
    g_bad += o->churn(g_inst, p->size, tok, p->live, p->live, &rng); /* warm: one turnover */
    if (p->callgrind)
        CALLGRIND_TOGGLE_COLLECT;
    uint64_t t0 = bench_tsc(), deadline = deadline_of(p, t0), done = 0;
    while (done < p->n) {
        uint64_t k = p->n - done < BENCH_CHUNK ? p->n - done : BENCH_CHUNK;
        g_bad += o->churn(g_inst, p->size, tok, p->live, k, &rng);
        done += k;
        if (bench_tsc() > deadline)
            break;
    }
    uint64_t t1 = bench_tsc();
    if (p->callgrind)
        CALLGRIND_TOGGLE_COLLECT;
    g_allocs = 2 * (uint64_t)p->live + done;
    bench_emit("pair_ns", ticks_to_ns(p, (double)(t1 - t0)) / (double)done);
    bench_emit("ops", (double)done);
    g_bad += o->drain(g_inst, tok, p->live);
    free(tok);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Median cost of an empty timed region (begin + end), in ticks. */
static uint32_t timer_overhead(void)
{
    enum { N = 100000 };
    uint32_t *d = xcalloc(N, sizeof *d);
    for (int i = 0; i < N; i++) {
        uint64_t t0 = bench_tsc_begin();
        uint64_t t1 = bench_tsc_end();
        d[i] = (uint32_t)(t1 - t0);
    }
    qsort(d, N, sizeof *d, cmp_u32);
    uint32_t m = d[N / 2];
    free(d);
    return m;
}

static void emit_percentiles(const bench_params *p, const char *what, uint32_t *t, uint64_t n,
                             uint32_t overhead)
{
    double sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        t[i] = t[i] > overhead ? t[i] - overhead : 0;
        sum += t[i];
    }
    qsort(t, n, sizeof *t, cmp_u32);
    static const struct {
        const char *name;
        double q;
    } qs[] = {{"p50", 0.50}, {"p99", 0.99}, {"p999", 0.999}, {"p9999", 0.9999}};
    char key[64];
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        uint64_t idx = (uint64_t)(qs[i].q * (double)n);
        if (idx >= n)
            idx = n - 1;
        snprintf(key, sizeof key, "%s_%s_ns", what, qs[i].name);
        bench_emit(key, ticks_to_ns(p, t[idx]));
    }
    snprintf(key, sizeof key, "%s_max_ns", what);
    bench_emit(key, ticks_to_ns(p, t[n - 1]));
    snprintf(key, sizeof key, "%s_mean_ns", what);
    bench_emit(key, ticks_to_ns(p, sum / (double)n));
}

static void run_latency(const bench_params *p, const bench_ops *o)
{
    uint64_t *tok = xcalloc(p->live, sizeof *tok);
    uint32_t *ta = xcalloc(p->n, sizeof *ta), *tf = xcalloc(p->n, sizeof *tf);
    memset(ta, 1, p->n * sizeof *ta); /* fault the sample arrays in before timing */
    memset(tf, 1, p->n * sizeof *tf);
    uint32_t overhead = timer_overhead();
    uint64_t rng = p->seed;
    o->fill(g_inst, p->size, tok, p->live);
    g_bad += o->churn(g_inst, p->size, tok, p->live, p->live, &rng);
    g_bad += o->latency(g_inst, p->size, tok, p->live, p->n, &rng, ta, tf);
    g_allocs = 2 * (uint64_t)p->live + p->n;
    bench_emit("timer_overhead_ns", ticks_to_ns(p, overhead));
    emit_percentiles(p, "alloc", ta, p->n, overhead);
    emit_percentiles(p, "free", tf, p->n, overhead);
    g_bad += o->drain(g_inst, tok, p->live);
    free(ta);
    free(tf);
    free(tok);
}

static void run_seq(const bench_params *p, const bench_ops *o)
{
    uint64_t *tok = xcalloc(p->n, sizeof *tok);
    touch_pages(tok, p->n * sizeof *tok); /* its faults are not the allocator's */
    if (p->callgrind)
        CALLGRIND_TOGGLE_COLLECT;
    uint64_t t0 = bench_tsc();
    o->seq_alloc(g_inst, p->size, tok, p->n);
    uint64_t t1 = bench_tsc();
    g_bad += o->seq_free(g_inst, tok, p->n);
    uint64_t t2 = bench_tsc();
    if (p->callgrind)
        CALLGRIND_TOGGLE_COLLECT;
    g_allocs = p->n;
    bench_emit("alloc_ns", ticks_to_ns(p, (double)(t1 - t0)) / (double)p->n);
    bench_emit("free_ns", ticks_to_ns(p, (double)(t2 - t1)) / (double)p->n);
    bench_emit("pair_ns", ticks_to_ns(p, (double)(t2 - t0)) / (double)p->n);
    free(tok);
}

static void run_rss(const bench_params *p, const bench_ops *o)
{
    uint64_t *tok = xcalloc(p->live, sizeof *tok);
    uint32_t turn = p->live / 10;
    uint32_t *picked = xcalloc(turn, sizeof *picked);
    touch_pages(tok, p->live * sizeof *tok);
    touch_pages(picked, turn * sizeof *picked);
    uint64_t rng = p->seed;
    size_t base = rss_bytes();
    double live_bytes = (double)p->live * (double)p->size;
    o->fill(g_inst, p->size, tok, p->live);
    bench_emit("rss_fill_bytes", (double)(rss_bytes() - base));
    double rss10 = 0;
    for (uint32_t c = 1; c <= p->cycles; c++) {
        g_bad += o->turnover(g_inst, p->size, tok, p->live, turn, picked, &rng);
        if (c == 10 || c == 100 || c == 1000 || c == p->cycles) {
            double r = (double)(rss_bytes() - base);
            char key[64];
            snprintf(key, sizeof key, "rss_c%u_bytes", c);
            bench_emit(key, r);
            snprintf(key, sizeof key, "rss_over_live_c%u", c);
            bench_emit(key, r / live_bytes);
            if (c == 10)
                rss10 = r;
            if (c == p->cycles) {
                bench_emit("rss_end_bytes", r);
                bench_emit("rss_over_live_end", r / live_bytes);
                if (rss10 > 0)
                    bench_emit("growth_pct", 100.0 * (r - rss10) / rss10);
            }
        }
    }
    g_bad += o->drain(g_inst, tok, p->live);
    bench_emit("rss_freed_bytes", (double)rss_bytes() - (double)base);
    if (g_inst) {
        tslab_stats st;
        if (tslab_stats_read(g_inst, &st) == 0) {
            uint64_t cached = 0, res = 0;
            for (uint32_t i = 0; i < st.class_count; i++) {
                cached += st.classes[i].slabs_cached * st.classes[i].slab_bytes;
                res += st.classes[i].resident_bytes;
            }
            bench_emit("tslab_cached_bytes", (double)cached);
            bench_emit("tslab_resident_bytes", (double)res);
            /* The default config keeps BENCH_DEFAULT_CACHE_SLABS empty slabs per class. */
            for (uint32_t i = 0; i < st.class_count; i++)
                if (st.classes[i].object_size >= p->size) {
                    bench_emit("cache_bound_bytes", (double)BENCH_DEFAULT_CACHE_SLABS *
                                                        (double)st.classes[i].slab_bytes);
                    break;
                }
        }
    }
    purge(p);
    bench_emit("rss_purged_bytes", (double)rss_bytes() - (double)base);
    free(picked);
    free(tok);
}

static double minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_minflt;
}

/* Turns the allocator's own background maintenance on (cycles/idle with --background). */
static void background_on(const bench_params *p)
{
    if (!p->background)
        return;
    if (g_inst) {
        if (tslab_background_start() != 0) {
            fprintf(stderr, "bench: tslab_background_start failed\n");
            exit(3);
        }
        return;
    }
    int (*mallctl)(const char *, void *, size_t *, void *, size_t) =
        (int (*)(const char *, void *, size_t *, void *, size_t))dlsym(RTLD_DEFAULT, "mallctl");
    bool on = true;
    if (mallctl == NULL || mallctl("background_thread", NULL, NULL, &on, sizeof on) != 0) {
        fprintf(stderr, "bench: %s has no background thread to start\n", p->backend);
        exit(3);
    }
}

/* h. cycles: allocate `live` objects, free them all, `cycles` times (the first is warm-up).
 * i. idle: the same, then no call for 3 x the decay time, and the RSS then. */
static void run_cycles(const bench_params *p, const bench_ops *o, bool idle)
{
    uint32_t n = p->live;
    uint64_t *tok = xcalloc(n, sizeof *tok);
    touch_pages(tok, n * sizeof *tok);
    background_on(p);
    size_t base = rss_bytes();
    double f0 = minor_faults();
    o->fill(g_inst, p->size, tok, n);
    g_bad += o->drain(g_inst, tok, n);
    double f1 = minor_faults();
    bench_emit("first_cycle_faults", f1 - f0);
    double rss_alloc = 0, rss_free = 0;
    uint64_t t0 = bench_tsc(), deadline = deadline_of(p, t0), done = 0;
    for (uint32_t c = 2; c <= p->cycles; c++) {
        bool last = c == p->cycles || bench_tsc() > deadline;
        o->fill(g_inst, p->size, tok, n);
        if (last)
            rss_alloc = (double)rss_bytes() - (double)base;
        g_bad += o->drain(g_inst, tok, n);
        done++;
        if (last) {
            rss_free = (double)rss_bytes() - (double)base;
            break;
        }
    }
    uint64_t t1 = bench_tsc();
    double f2 = minor_faults();
    g_allocs = (done + 1) * (uint64_t)n;
    if (done > 0) {
        /* The two /proc reads of the last cycle are in the timed span: ~40 us in total. */
        bench_emit("pair_ns", ticks_to_ns(p, (double)(t1 - t0)) / ((double)done * n));
        bench_emit("faults_per_cycle", (f2 - f1) / (double)done);
    }
    bench_emit("cycles_done", (double)done + 1);
    bench_emit("rss_alloc_bytes", rss_alloc);
    bench_emit("rss_free_bytes", rss_free);
    if (idle) {
        uint32_t decay = p->decay_ms ? p->decay_ms : 1000; /* tslab_config's default */
        uint64_t ns = 3 * (uint64_t)decay * 1000000u;
        struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        bench_emit("rss_idle_bytes", (double)rss_bytes() - (double)base);
        if (g_inst) {
            tslab_stats st;
            if (tslab_stats_read(g_inst, &st) == 0)
                for (uint32_t i = 0; i < st.class_count; i++)
                    if (st.classes[i].object_size >= p->size) {
                        bench_emit("tslab_idle_resident_bytes",
                                   (double)st.classes[i].resident_bytes);
                        bench_emit("tslab_idle_cached_bytes", (double)st.classes[i].cached_bytes);
                        break;
                    }
        }
    }
    if (p->background && g_inst)
        tslab_background_stop();
    free(tok);
}

/* ---- Two threads --------------------------------------------------------------------------- */

typedef struct mt_arg {
    const bench_params *p;
    const bench_ops *o;
    pthread_barrier_t *bar;
    bench_ring *ring;
    int role; /* mt_churn: thread number; prodcons: 0 producer, 1 consumer */
    uint64_t t0, t1, bad, done, warm;
} mt_arg;

static void *mt_churn_thread(void *arg)
{
    mt_arg *m = arg;
    const bench_params *p = m->p;
    uint64_t *tok = xcalloc(p->live, sizeof *tok);
    uint64_t rng = p->seed + 0x9e3779b97f4a7c15ull * (uint64_t)(m->role + 1);
    m->o->fill(g_inst, p->size, tok, p->live);
    m->bad += m->o->churn(g_inst, p->size, tok, p->live, p->live / 2, &rng);
    m->warm = (uint64_t)p->live + p->live / 2;
    pthread_barrier_wait(m->bar);
    m->t0 = bench_tsc();
    uint64_t deadline = deadline_of(p, m->t0);
    while (m->done < p->n) {
        uint64_t k = p->n - m->done < BENCH_CHUNK ? p->n - m->done : BENCH_CHUNK;
        m->bad += m->o->churn(g_inst, p->size, tok, p->live, k, &rng);
        m->done += k;
        if (bench_tsc() > deadline)
            break;
    }
    m->t1 = bench_tsc();
    pthread_barrier_wait(m->bar);
    m->bad += m->o->drain(g_inst, tok, p->live);
    free(tok);
    return NULL;
}

static void *prodcons_thread(void *arg)
{
    mt_arg *m = arg;
    const bench_params *p = m->p;
    bench_ring *r = m->ring;
    /* Warm both sides: bind thread caches, touch the ring. */
    m->warm = 2 * BENCH_RING;
    if (m->role == 0)
        atomic_store_explicit(&r->total, m->o->produce(g_inst, p->size, r, 0, m->warm),
                              memory_order_release);
    else
        m->bad += m->o->consume(g_inst, r);
    pthread_barrier_wait(m->bar);
    if (m->role == 0) {
        atomic_store(&r->head, 0);
        atomic_store(&r->tail, 0);
        atomic_store(&r->total, UINT64_MAX);
    }
    pthread_barrier_wait(m->bar);
    m->t0 = bench_tsc();
    if (m->role == 0) {
        uint64_t deadline = deadline_of(p, m->t0), t = 0;
        while (t < p->n) {
            uint64_t k = p->n - t < BENCH_CHUNK ? p->n - t : BENCH_CHUNK;
            t = m->o->produce(g_inst, p->size, r, t, k);
            if (bench_tsc() > deadline)
                break;
        }
        m->done = t;
        atomic_store_explicit(&r->total, t, memory_order_release);
    } else {
        m->bad += m->o->consume(g_inst, r);
    }
    m->t1 = bench_tsc();
    return NULL;
}

static void run_two_threads(const bench_params *p, const bench_ops *o, bool prodcons)
{
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    bench_ring *ring = aligned_alloc(64, sizeof *ring);
    if (!ring)
        bench_oom(sizeof *ring);
    memset(ring, 0, sizeof *ring);
    atomic_store(&ring->total, UINT64_MAX);
    mt_arg args[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        args[i] = (mt_arg){.p = p, .o = o, .bar = &bar, .ring = ring, .role = i};
        if (pthread_create(&th[i], NULL, prodcons ? prodcons_thread : mt_churn_thread, &args[i])) {
            fprintf(stderr, "bench: pthread_create failed\n");
            exit(3);
        }
    }
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    uint64_t t0 = args[0].t0 < args[1].t0 ? args[0].t0 : args[1].t0;
    uint64_t t1 = args[0].t1 > args[1].t1 ? args[0].t1 : args[1].t1;
    double ns = ticks_to_ns(p, (double)(t1 - t0));
    uint64_t ops = args[0].done + args[1].done;
    g_bad += args[0].bad + args[1].bad;
    g_allocs = ops + args[0].warm + (prodcons ? 0 : args[1].warm);
    bench_emit("mops", (double)ops / ns * 1e3);
    bench_emit("pair_ns", ns / (double)ops);
    bench_emit("ops", (double)ops);
    pthread_barrier_destroy(&bar);
    free(ring);
}

/* ---- Entry ---------------------------------------------------------------------------------- */

/* Checks the core's own counters against what the workload did (the original's benchmark read
 * the wrong class and printed zeros for months). */
static void check_counters(const bench_params *p)
{
#if BENCH_NOCOUNTERS
    (void)p;
#else
    tslab_stats st;
    if (tslab_stats_read(g_inst, &st) != 0)
        return;
    for (uint32_t i = 0; i < st.class_count; i++) {
        if (st.classes[i].object_size < p->size)
            continue;
        const tslab_class_stats *c = &st.classes[i];
        bench_emit("slow_path_per_kop",
                   1000.0 * (double)c->slow_path / (double)(c->allocations + c->frees + 1));
        bool ok = c->allocations == g_allocs && c->frees == g_allocs;
        bench_emit("counters_ok", ok);
        if (!ok) {
            fprintf(stderr,
                    "bench: %s %s %zu: class %u counts %llu allocations, %llu frees; expected "
                    "%llu\n",
                    p->backend, p->workload, p->size, i, (unsigned long long)c->allocations,
                    (unsigned long long)c->frees, (unsigned long long)g_allocs);
            exit(4); /* a cell whose counters are wrong fails the run */
        }
        break;
    }
#endif
}

int bench_worker_run(const bench_params *p)
{
    const bench_ops *o = &ops_by_kind[p->kind];
    bool ts = p->kind == BENCH_KIND_TSH || p->kind == BENCH_KIND_TSM;
    if (ts) {
        tslab_config cfg = {.name = "bench",
                            .exact_frees = p->exact_frees,
                            .decay_ms = p->decay_ms,
                            .sample_bytes = p->sample_off ? TSLAB_SAMPLE_OFF : 0};
        /* 2M x 512 B (workload g) would not fit the default 1 GiB per class: reserve twice
         * what the workload holds, rounded to a power of two (reservations are free; valgrind
         * refuses very large ones, so no more than that). */
        size_t need = 2 * (size_t)p->n * p->size;
        if (strcmp(p->workload, "seq") == 0 && need > ((size_t)1 << 30)) {
            size_t r = (size_t)1 << 30;
            while (r < need)
                r <<= 1;
            cfg.class_max_bytes = r;
        }
        g_inst = tslab_create(&cfg);
        if (!g_inst) {
            fprintf(stderr, "bench: tslab_create: %s\n", strerror(errno));
            return 2;
        }
    }
    if (p->scrape && bench_scrape_start(g_inst) != 0)
        return 2;
    if (p->cpu >= 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(p->cpu, &one);
        /* Best effort: a refused affinity leaves the cell unpinned, as before. */
        pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    }

    const char *w = p->workload;
    if (strcmp(w, "tight") == 0)
        run_tight(p, o);
    else if (strcmp(w, "churn") == 0)
        run_churn(p, o);
    else if (strcmp(w, "latency") == 0)
        run_latency(p, o);
    else if (strcmp(w, "seq") == 0)
        run_seq(p, o);
    else if (strcmp(w, "rss") == 0)
        run_rss(p, o);
    else if (strcmp(w, "mt_churn") == 0)
        run_two_threads(p, o, false);
    else if (strcmp(w, "prodcons") == 0)
        run_two_threads(p, o, true);
    else if (strcmp(w, "cycles") == 0 || strcmp(w, "idle") == 0)
        run_cycles(p, o, strcmp(w, "idle") == 0);
    else if (bench_lifetimes_is(w))
        g_bad += bench_lifetimes_run(p, g_inst); /* checks the counters itself */
    else if (strcmp(w, "render") == 0)
        return bench_render_run(p);
    else {
        fprintf(stderr, "bench: unknown workload %s\n", w);
        return 2;
    }
    if (p->scrape)
        bench_emit("scrapes", (double)bench_scrape_stop());
    if (ts && strcmp(w, "rss") != 0 && !bench_lifetimes_is(w))
        check_counters(p);
    bench_emit("rejected_frees", (double)g_bad);
    if (ts)
        tslab_destroy(g_inst);
    fflush(stdout);
    return g_bad ? 4 : 0;
}
