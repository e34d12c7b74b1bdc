/* SPDX-License-Identifier: MIT */
/* The driver's tables: the backends (how each allocator is run), the workloads (what each
 * measures, its sizes and metrics), and which backend runs which workload. Data and lookups
 * only; it calls nothing else in the driver. */
#define _GNU_SOURCE
#include "driver.h"

#include <string.h>

#ifndef BENCH_LIB_JEMALLOC
#define BENCH_LIB_JEMALLOC "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
#endif
#ifndef BENCH_LIB_MIMALLOC
#define BENCH_LIB_MIMALLOC "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"
#endif
#ifndef BENCH_LIB_TCMALLOC
#define BENCH_LIB_TCMALLOC "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
#endif

/* ---- Backends ------------------------------------------------------------------------------ */

const char *kind_name[] = BENCH_KIND_NAMES;

/* Fields left out are 0: no library, tslab-bench, not a peer, no scrape, exact_frees off. */
backend backends[NBACKENDS] = {
    {.name = "tslab-h", .kind = BENCH_KIND_TSH},
    {.name = "tslab-m", .kind = BENCH_KIND_TSM},
    {.name = "glibc", .kind = BENCH_KIND_SYS, .peer = true},
    {.name = "jemalloc", .kind = BENCH_KIND_SYS, .lib = BENCH_LIB_JEMALLOC, .peer = true},
    {.name = "mimalloc", .kind = BENCH_KIND_SYS, .lib = BENCH_LIB_MIMALLOC, .peer = true},
    {.name = "tcmalloc", .kind = BENCH_KIND_SYS, .lib = BENCH_LIB_TCMALLOC, .peer = true},
    {.name = "floor", .kind = BENCH_KIND_FLOOR},
    {.name = "tslab-h-nocnt", .kind = BENCH_KIND_TSH, .bin = 1},
    {.name = "tslab-h-scrape", .kind = BENCH_KIND_TSH, .scrape = true},
    {.name = "loop", .kind = BENCH_KIND_NULL},
    {.name = "floor-call", .kind = BENCH_KIND_FLOORCALL},
    {.name = "floor-cas", .kind = BENCH_KIND_FLOORCAS},
    {.name = "tslab-h-exact", .kind = BENCH_KIND_TSH, .exact = true},
    {.name = "tslab-h-bg", .kind = BENCH_KIND_TSH, .bg = true},
    {.name = "jemalloc-bg", .kind = BENCH_KIND_SYS, .lib = BENCH_LIB_JEMALLOC, .bg = true},
    {.name = "tslab-h-nosample", .kind = BENCH_KIND_TSH, .nosample = true},
    {.name = "tslab-h-epoch", .kind = BENCH_KIND_TSH, .groups = true},
    {.name = "mimalloc-heap",
     .kind = BENCH_KIND_SYS,
     .lib = BENCH_LIB_MIMALLOC,
     .peer = true,
     .groups = true},
    {.name = "jemalloc-arena",
     .kind = BENCH_KIND_SYS,
     .lib = BENCH_LIB_JEMALLOC,
     .peer = true,
     .groups = true},
};
_Static_assert(sizeof backends / sizeof backends[0] == NBACKENDS, "NBACKENDS");

int backend_index(const char *name)
{
    for (int i = 0; i < NBACKENDS; i++)
        if (strcmp(backends[i].name, name) == 0)
            return i;
    return -1;
}

/* ---- Workloads ------------------------------------------------------------------------------ */

#define MAIN_BACKENDS "tslab-h,tslab-m,glibc,jemalloc,mimalloc,tcmalloc"
#define LAT_METRICS                                                                                \
    "-alloc_p50_ns,-alloc_p99_ns,-alloc_p999_ns,-alloc_p9999_ns,-alloc_max_ns,-alloc_mean_ns,"     \
    "-free_p50_ns,-free_p99_ns,-free_p999_ns,-free_p9999_ns,-free_max_ns,-free_mean_ns"
#define TEL_BACKENDS "tslab-h-nocnt,tslab-h,tslab-h-scrape"
#define LIFETIME_BACKENDS                                                                          \
    "tslab-h,tslab-h-epoch,glibc,jemalloc,jemalloc-arena,mimalloc,mimalloc-heap,tcmalloc"
#define SURVIVOR_METRICS                                                                           \
    "-rss_freed_bytes,-rss_quiet_bytes,-freed_over_live,-quiet_over_live,=rss_alloc_bytes,"        \
    "=live_bytes,-alloc_ns,-free_ns,=tslab_cached_bytes,=uncached_over_live,"                      \
    "=instance_uncached_bytes,=quiet_cached_bytes,=quiet_resident_bytes"
#define CYCLE_METRICS                                                                              \
    "-pair_ns,-faults_per_cycle,=first_cycle_faults,=rss_alloc_bytes,=rss_free_bytes"

/* Operation counts follow issue 5; max_ms and the caps keep `make bench` under 15 minutes on a
 * loaded 2-core machine (README.md, "Time budget"). */
const wl workloads[NWORKLOADS] = {
    {.label = "a.tight",
     .workload = "tight",
     .n = 5000000,
     .n_quick = 200000,
     .backends = MAIN_BACKENDS ",tslab-h-exact,floor,floor-call,floor-cas",
     .metrics = "-pair_ns",
     .max_ms = 800},
    {.label = "b.churn",
     .workload = "churn",
     .n = 10000000,
     .n_quick = 300000,
     .live = 100000,
     .live_quick = 100000,
     .backends = MAIN_BACKENDS ",tslab-h-exact",
     .metrics = "-pair_ns",
     .max_ms = 800},
    {.label = "c.latency",
     .workload = "latency",
     .n = 500000,
     .n_quick = 100000,
     .live = 100000,
     .live_quick = 100000,
     .backends = MAIN_BACKENDS,
     .metrics = LAT_METRICS},
    {.label = "d.mt_churn",
     .workload = "mt_churn",
     .n = 3000000,
     .n_quick = 200000,
     .live = 100000,
     .live_quick = 100000,
     .backends = MAIN_BACKENDS ",tslab-h-exact",
     .metrics = "+mops",
     .max_ms = 700},
    {.label = "d.prodcons",
     .workload = "prodcons",
     .n = 5000000,
     .n_quick = 300000,
     .backends = MAIN_BACKENDS ",tslab-h-exact",
     .metrics = "+mops",
     .max_ms = 700},
    {.label = "e.rss",
     .workload = "rss",
     .live = 100000,
     .live_quick = 100000,
     .cycles = 1000,
     .cycles_quick = 100,
     .backends = MAIN_BACKENDS,
     .metrics = "-rss_over_live_c10,-rss_over_live_c100,-rss_over_live_c1000,-rss_over_live_end,"
                "=growth_pct,-rss_freed_bytes,-rss_purged_bytes,=cache_bound_bytes,"
                "=tslab_resident_bytes,=rss_fill_bytes,=rss_c10_bytes,=rss_c100_bytes,"
                "=rss_end_bytes",
     .max_reps = 2},
    {.label = "f.tight",
     .workload = "tight",
     .n = 5000000,
     .n_quick = 200000,
     .backends = TEL_BACKENDS,
     .metrics = "-pair_ns",
     .ratio_to = "tslab-h-nocnt",
     .max_ms = 800,
     .only_size = 128},
    {.label = "f.churn",
     .workload = "churn",
     .n = 10000000,
     .n_quick = 300000,
     .live = 100000,
     .live_quick = 100000,
     .backends = TEL_BACKENDS,
     .metrics = "-pair_ns",
     .ratio_to = "tslab-h-nocnt",
     .max_ms = 800,
     .only_size = 128},
    {.label = "f.latency",
     .workload = "latency",
     .n = 500000,
     .n_quick = 100000,
     .live = 100000,
     .live_quick = 100000,
     .backends = TEL_BACKENDS,
     .metrics = "-alloc_p50_ns,-alloc_p99_ns,-alloc_p999_ns,-alloc_mean_ns,-free_p50_ns,"
                "-free_p99_ns,-free_p999_ns,-free_mean_ns",
     .ratio_to = "tslab-h",
     .only_size = 128},
    {.label = "f.render",
     .workload = "render",
     .n = 200,
     .n_quick = 50,
     .backends = "tslab-h",
     .metrics = "-render8_text_us,-render64_text_us,-render8_json_us,-render64_json_us,"
                "=render8_text_bytes,=render64_text_bytes",
     .telemetry = true,
     .only_size = 128},
    {.label = "g.seq",
     .workload = "seq",
     .n = 2000000,
     .n_quick = 200000,
     .backends = MAIN_BACKENDS,
     .metrics = "-alloc_ns,-free_ns,-pair_ns",
     .max_reps = 2,
     .max_bytes = 256u << 20},
    /* Issue 12: allocate N, free all, 200 times (N = 100k and 1M objects of 128 B). */
    {.label = "h.cycles",
     .workload = "cycles",
     .live = 100000,
     .live_quick = 20000,
     .cycles = 200,
     .cycles_quick = 5,
     .backends = MAIN_BACKENDS,
     .metrics = CYCLE_METRICS,
     .max_reps = 3,
     .max_ms = 4000,
     .only_size = 128},
    {.label = "h.cycles1m",
     .workload = "cycles",
     .live = 1000000,
     .live_quick = 100000,
     .cycles = 200,
     .cycles_quick = 3,
     .backends = MAIN_BACKENDS,
     .metrics = CYCLE_METRICS,
     .max_reps = 1,
     .max_ms = 8000,
     .only_size = 128},
    /* Then no call for 3 x the decay time (1 s by default; 100 ms in --quick). */
    {.label = "i.idle",
     .workload = "idle",
     .live = 100000,
     .live_quick = 20000,
     .cycles = 20,
     .cycles_quick = 3,
     .backends = MAIN_BACKENDS ",tslab-h-bg,jemalloc-bg",
     .metrics = "-rss_idle_bytes,=rss_free_bytes,=tslab_idle_resident_bytes",
     .max_reps = 1,
     .only_size = 128,
     .decay_ms_quick = 100},
    /* Issue 13 (lifetimes.h): batches of 1,000 requests, 4-16 objects of 64-512 B each (the
     * size column is nominal), 1% of requests keep one object in a set of 4096; one group per
     * batch for the -epoch, -heap and -arena backends. Then 3 x the decay time without a call. */
    {.label = "j.lifetimes",
     .workload = "lifetimes",
     .n = 1000000,
     .n_quick = 50000,
     .live = 4096,
     .live_quick = 4096,
     .backends = LIFETIME_BACKENDS,
     .metrics = "+requests_per_s,-obj_ns,-rss_peak_bytes,-rss_burst_bytes,-rss_quiet_bytes,"
                "-burst_over_live,-quiet_over_live,-faults_per_kreq,=live_bytes,=peak_live_bytes,"
                "=live_class_bytes,=tslab_cached_bytes,=uncached_over_live,=quiet_cached_bytes,"
                "=quiet_resident_bytes,=slow_path_per_kop",
     .ratio_to = "mimalloc-heap",
     .max_reps = 3,
     .max_ms = 10000,
     .only_size = 128,
     .decay_ms_quick = 100},
    /* The 1% test: 1M x 128 B in groups of 10,000 closed once allocated, a random 1%
     * kept, the rest freed; RSS then and after 3 x the decay time. */
    {.label = "j.survivor",
     .workload = "survivor",
     .n = 1000000,
     .n_quick = 100000,
     .backends = LIFETIME_BACKENDS,
     .metrics = SURVIVOR_METRICS,
     .max_reps = 1,
     .only_size = 128,
     .decay_ms_quick = 100},
    /* The other reading of that test: the same objects and the same 1%, known at allocation.
     * Survivors go to the default group, the rest to a group per 10,000 objects, ended
     * (destroyed) after the frees; the plain backends run j.survivor again, the baseline. */
    {.label = "j.survivor_known",
     .workload = "survivor_known",
     .n = 1000000,
     .n_quick = 100000,
     .backends = LIFETIME_BACKENDS,
     .metrics = SURVIVOR_METRICS,
     .max_reps = 1,
     .only_size = 128,
     .decay_ms_quick = 100},
};
_Static_assert(sizeof workloads / sizeof workloads[0] == NWORKLOADS, "NWORKLOADS");

bool sizes_include(const opts *o, size_t size)
{
    for (int i = 0; i < o->nsizes; i++)
        if (o->sizes[i] == size)
            return true;
    return false;
}

bool be_in_list(const char *list, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += len)
        if ((p == list || p[-1] == ',') && (p[len] == ',' || p[len] == 0))
            return true;
    return false;
}

bool be_selected(const opts *o, int bi, const wl *w)
{
    if (backends[bi].missing || !be_in_list(w->backends, backends[bi].name))
        return false;
    return !o->only_backends[0] || be_in_list(o->only_backends, backends[bi].name);
}
