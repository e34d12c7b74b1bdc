/* SPDX-License-Identifier: MIT */
/* Workload j (issue 13, lifetimes.h): the runner and the plain backends (malloc of whatever
 * allocator the process has; temporal-slab's handle API without epochs). The group backends
 * are in lifetimes_peers.c and lifetimes_epoch.c. */
#define _GNU_SOURCE
#include "lifetimes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

void bench_lt_oom(size_t size)
{
    fprintf(stderr, "bench: allocation of %zu bytes failed: %s\n", size, strerror(errno));
    exit(3);
}

void bench_lt_group_failed(const char *what)
{
    fprintf(stderr, "bench: lifetimes: group %s failed: %s\n", what, strerror(errno));
}

/* ---- The plain backends: one group, the default one ---------------------------------------- */

static inline bool lt_sys_free(uint64_t tok)
{
    free((void *)(uintptr_t)tok);
    return true;
}

#define LT(name) name##_sys
#define LT_OPEN(A) ((uint64_t)1)
#define LT_END(A, g) ((void)(g), 0)
#define LT_CLOSE(A, g) ((void)(g), 0)
#define LT_GALLOC(A, g, size, tokp) ((void)(g), lt_tok(malloc(size), tokp))
#define LT_GFREE(A, tok) lt_sys_free(tok)
#define LT_ALLOC(A, size, tokp) lt_tok(malloc(size), tokp)
#define LT_FREE(A, tok) lt_sys_free(tok)
#include "lifetimes.inc.h"

#define LT(name) name##_tsh
#define LT_OPEN(A) ((uint64_t)1)
#define LT_END(A, g) ((void)(g), 0)
#define LT_CLOSE(A, g) ((void)(g), 0)
#define LT_GALLOC(A, g, size, tokp) ((void)(g), tslab_alloc(A, size, tokp))
#define LT_GFREE(A, tok) tslab_free(A, tok)
#define LT_ALLOC(A, size, tokp) tslab_alloc(A, size, tokp)
#define LT_FREE(A, tok) tslab_free(A, tok)
#include "lifetimes.inc.h"

static const lt_ops ops_sys = LT_OPS(sys), ops_tsh = LT_OPS(tsh);

/* ---- Measurements ------------------------------------------------------------------------- */

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p)
        bench_lt_oom(n * size);
    /* Fault every page in now: the harness's arrays are not the allocator's RSS. */
    volatile char *c = p;
    for (size_t i = 0; i < n * size; i += 4096)
        c[i] = 0;
    return p;
}

static double rss(void) { return (double)tslab_process_rss(); }

/* The peak RSS since the last peak_reset(): the kernel's high-water mark (VmHWM), which it
 * raises before any page leaves, so no sampling can miss the peak. */
static bool peak_reset(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return false;
    bool ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}
static double peak_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0)
            kb = atof(line + 6);
    if (f)
        fclose(f);
    return kb * 1024.0;
}

static double minor_faults(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_minflt;
}

/* The quiet period: no allocator call for 3 x the decay time (the instance's, 1 s by default). */
static void quiet(const bench_params *p)
{
    uint64_t ns = 3 * (uint64_t)(p->decay_ms ? p->decay_ms : 1000) * 1000000u;
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Empty slabs the instance holds for reuse (the cache decay empties), over every class. */
static double tslab_cached(tslab *a)
{
    tslab_stats st;
    double b = 0;
    if (a && tslab_stats_read(a, &st) == 0)
        for (uint32_t i = 0; i < st.class_count; i++)
            b += (double)st.classes[i].cached_bytes;
    return b;
}

/* The core's counters against the calls the workload made, over every class (sizes are mixed):
 * a cell whose counters disagree fails the run, as in worker.c. */
static void check_counters(const bench_params *p, tslab *a, uint64_t allocs, uint64_t frees)
{
#if BENCH_NOCOUNTERS
    (void)p, (void)a, (void)allocs, (void)frees;
#else
    tslab_stats st;
    if (!a || tslab_stats_read(a, &st) != 0)
        return;
    uint64_t na = 0, nf = 0, slow = 0;
    for (uint32_t i = 0; i < st.class_count; i++) {
        na += st.classes[i].allocations;
        nf += st.classes[i].frees;
        slow += st.classes[i].slow_path;
    }
    bench_emit("slow_path_per_kop", 1000.0 * (double)slow / (double)(na + nf + 1));
    bool ok = na == allocs && nf == frees;
    bench_emit("counters_ok", ok);
    if (!ok) {
        fprintf(stderr,
                "bench: %s %s: the classes count %llu allocations and %llu frees; the workload "
                "made %llu and %llu\n",
                p->backend, p->workload, (unsigned long long)na, (unsigned long long)nf,
                (unsigned long long)allocs, (unsigned long long)frees);
        exit(4);
    }
#endif
}

/* temporal-slab's cached empty slabs after a phase whose RSS over the baseline was `after`, and
 * that RSS less them over the live bytes: the empty-slab cache decays within decay_ms. The cache
 * counts whole slabs, pages never touched included; what the instance holds outside its cache
 * by its own count (slabs in use, the metadata of every slab) is the robust figure. */
static void emit_uncached(tslab *a, double after, double live)
{
    if (!a)
        return;
    double cached = tslab_cached(a);
    bench_emit("tslab_cached_bytes", cached);
    bench_emit("uncached_over_live", (after - cached) / live);
    bench_emit("instance_uncached_bytes", (double)tslab_resident_bytes(a) - cached);
}

/* The quiet period, then the RSS over the baseline and over the live bytes. */
static void emit_quiet(const bench_params *p, tslab *a, double base, double live)
{
    quiet(p);
    double q = rss() - base;
    bench_emit("rss_quiet_bytes", q);
    bench_emit("quiet_over_live", q / live);
    if (a) {
        /* What the instance counts as its own (slabs and their metadata): the rest of the RSS
         * is other memory the library or the harness touched meanwhile. */
        bench_emit("quiet_cached_bytes", tslab_cached(a));
        bench_emit("quiet_resident_bytes", (double)tslab_resident_bytes(a));
    }
}

/* ---- j.lifetimes ---------------------------------------------------------------------------- */

static uint64_t run_lifetimes(const bench_params *p, tslab *a, const lt_ops *o)
{
    lt_state s = {.rng = p->seed, .surv_cap = p->live ? p->live : 1};
    s.tok = xcalloc((size_t)LT_BATCH * LT_OBJS_MAX, sizeof *s.tok);
    s.end = xcalloc(LT_BATCH, sizeof *s.end);
    s.surv = xcalloc(s.surv_cap, sizeof *s.surv);
    s.surv_size = xcalloc(s.surv_cap, sizeof *s.surv_size);
    uint32_t nb = (uint32_t)((p->n + LT_BATCH - 1) / LT_BATCH);
    if (nb == 0)
        nb = 1;

    double base = rss();
    bool have_peak = peak_reset();
    double f0 = minor_faults();
    uint64_t t0 = bench_tsc(),
             deadline = p->max_ms ? t0 + (uint64_t)(p->max_ms * 1e6 * p->tsc_ghz) : UINT64_MAX;
    for (uint32_t done = 0; done < nb;) {
        uint32_t k = nb - done < 16 ? nb - done : 16;
        if (o->batches(a, &s, k) != 0)
            exit(3);
        done += k;
        if (bench_tsc() > deadline)
            break;
    }
    uint64_t t1 = bench_tsc();
    double f1 = minor_faults();
    double burst = rss() - base;
    double live = (double)s.surv_bytes, ns = (double)(t1 - t0) / p->tsc_ghz;

    bench_emit("requests_per_s", (double)s.requests / ns * 1e9);
    bench_emit("obj_ns", ns / (double)s.objs);
    bench_emit("requests", (double)s.requests);
    bench_emit("faults_per_kreq", (f1 - f0) / ((double)s.requests / 1000.0));
    if (have_peak)
        bench_emit("rss_peak_bytes", peak_rss() - base);
    bench_emit("rss_burst_bytes", burst);
    bench_emit("live_bytes", live);
    bench_emit("peak_live_bytes", (double)s.peak_live);
    bench_emit("burst_over_live", burst / live);
    if (a) {
        /* The survivors' bytes rounded up to their classes: what slabs can hold them in. */
        double class_bytes = 0;
        for (uint32_t i = 0; i < s.surv_n; i++)
            class_bytes += (double)tslab_usable_size(a, tslab_handle_ptr(a, s.surv[i]));
        bench_emit("live_class_bytes", class_bytes);
    }
    emit_uncached(a, burst, live);
    emit_quiet(p, a, base, live);

    o->drain(a, &s);
    check_counters(p, a, s.allocs, s.frees);
    free(s.tok);
    free(s.end);
    free(s.surv);
    free(s.surv_size);
    return s.bad;
}

/* ---- j.survivor, j.survivor_known ---------------------------------------------------------- */

/* keep[] is drawn before anything is allocated, from the same seed: both cells keep the same
 * objects. known: the program uses that knowledge (lifetimes.h); the groups then end after the
 * frees, and the free time and the RSS after the frees include their ends. */
static uint64_t run_survivor(const bench_params *p, tslab *a, const lt_ops *o, bool known)
{
    uint64_t n = p->n, kept = 0, bad = 0, rng = p->seed, ng = (n + LT_CHUNK - 1) / LT_CHUNK;
    uint64_t *tok = xcalloc(n, sizeof *tok);
    uint8_t *keep = xcalloc(n, sizeof *keep);
    uint64_t *grp = xcalloc(ng ? ng : 1, sizeof *grp);
    for (uint64_t i = 0; i < n; i++) {
        keep[i] = bench_rng_below(&rng, LT_KEEP_IN) == 0;
        kept += keep[i];
    }
    double live = (double)kept * (double)p->size;

    double base = rss();
    uint64_t t0 = bench_tsc();
    if (o->chunks(a, tok, p->size, n, known ? keep : NULL, grp) != 0)
        exit(3);
    uint64_t t1 = bench_tsc();
    double peak = rss() - base;
    uint64_t t2 = bench_tsc();
    bad += o->free_where(a, tok, n, keep, 0);
    if (known && o->ends(a, grp, ng) != 0)
        exit(3);
    uint64_t t3 = bench_tsc();
    double freed = rss() - base;

    bench_emit("alloc_ns", (double)(t1 - t0) / p->tsc_ghz / (double)n);
    bench_emit("free_ns", (double)(t3 - t2) / p->tsc_ghz / (double)(n - kept));
    bench_emit("rss_alloc_bytes", peak);
    bench_emit("rss_freed_bytes", freed);
    bench_emit("live_bytes", live);
    bench_emit("freed_over_live", freed / live);
    emit_uncached(a, freed, live);
    emit_quiet(p, a, base, live);

    bad += o->free_where(a, tok, n, keep, 1);
    check_counters(p, a, n, n);
    free(tok);
    free(keep);
    free(grp);
    return bad;
}

/* ---- Entry ----------------------------------------------------------------------------------- */

uint64_t bench_lifetimes_run(const bench_params *p, tslab *a)
{
    const lt_ops *o = NULL;
    if (p->kind == BENCH_KIND_TSH)
        o = p->groups ? &bench_lt_ops_epoch : &ops_tsh;
    else if (p->kind == BENCH_KIND_SYS)
        o = p->groups ? bench_lt_ops_peer(p->backend) : &ops_sys;
    if (!o) {
        fprintf(stderr, "bench: workload %s does not run on backend %s\n", p->workload, p->backend);
        exit(3);
    }
    /* temporal-slab returns decayed slabs while the process makes no call only with its
     * maintenance thread, which a service would run: both tslab variants run it. */
    if (a && tslab_background_start() != 0) {
        fprintf(stderr, "bench: tslab_background_start failed\n");
        exit(3);
    }
    uint64_t bad = strcmp(p->workload, "lifetimes") == 0
                       ? run_lifetimes(p, a, o)
                       : run_survivor(p, a, o, strcmp(p->workload, "survivor_known") == 0);
    if (a)
        tslab_background_stop();
    return bad;
}
