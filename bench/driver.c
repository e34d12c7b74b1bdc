/* The driver: plans the suite, runs each cell as a worker process, aggregates and reports. */
#define _GNU_SOURCE
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef BENCH_LIB_JEMALLOC
#define BENCH_LIB_JEMALLOC "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
#endif
#ifndef BENCH_LIB_MIMALLOC
#define BENCH_LIB_MIMALLOC "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"
#endif
#ifndef BENCH_LIB_TCMALLOC
#define BENCH_LIB_TCMALLOC "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
#endif

/* strlcpy: copies what fits, always terminates. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* Concatenates a, b and c (b and c may be NULL) into dst, truncating to fit. */
static void str_join(char *dst, size_t cap, const char *a, const char *b, const char *c)
{
    const char *parts[3] = {a, b, c};
    size_t len = 0;
    for (int i = 0; i < 3 && parts[i]; i++) {
        size_t n = strlen(parts[i]);
        if (n > cap - 1 - len)
            n = cap - 1 - len;
        memcpy(dst + len, parts[i], n);
        len += n;
    }
    dst[len] = 0;
}

/* ---- Backends ------------------------------------------------------------------------------ */

typedef struct backend {
    const char *name;
    bench_kind kind;
    const char *lib; /* LD_PRELOADed into the worker; NULL: none */
    int bin;         /* 0: tslab-bench, 1: tslab-bench-nocounters */
    bool peer;       /* counts towards "best peer" */
    bool scrape;     /* exporter running and scraped at 10 Hz */
    bool exact;      /* temporal-slab instance with exact_frees (every free a CAS) */
    bool bg;         /* cycles/idle: the allocator's background thread on (--background) */
    bool nosample;   /* temporal-slab instance with sampling off (TSLAB_SAMPLE_OFF) */
    bool missing;    /* set at start-up: its library, binary or telemetry is not there */
} backend;

static const char *kind_name[] = BENCH_KIND_NAMES;

/* Fields left out are 0: no library, tslab-bench, not a peer, no scrape, exact_frees off. */
static backend backends[] = {
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
};
enum { NBACKENDS = sizeof backends / sizeof backends[0] };

static int backend_index(const char *name)
{
    for (int i = 0; i < NBACKENDS; i++)
        if (strcmp(backends[i].name, name) == 0)
            return i;
    return -1;
}

/* ---- Workloads ------------------------------------------------------------------------------ */

/* metrics: comma list; each name prefixed by its direction: '-' lower is better, '+' higher is
 * better, '=' reported without a ratio. */
typedef struct wl {
    const char *label;    /* as reported: "a.tight" */
    const char *workload; /* as the worker knows it */
    uint64_t n, n_quick;  /* operations (pairs, objects) */
    uint32_t live, live_quick;
    uint32_t cycles, cycles_quick;
    const char *backends;
    const char *metrics;
    const char *ratio_to; /* NULL: best peer of the same repeat; else this backend */
    bool telemetry;       /* needs the telemetry library */
    int max_reps;         /* 0: every repeat; else at most this many (slow, deterministic ones) */
    uint32_t max_ms;      /* measured loop stops after this long (0: always all n) */
    size_t only_size;     /* 0: every size; else only this one */
    uint64_t max_bytes;   /* 0: none; else n is capped at max_bytes / size */
    uint32_t decay_ms, decay_ms_quick; /* temporal-slab decay_ms (0: default); idle sleeps 3x */
} wl;

#define MAIN_BACKENDS "tslab-h,tslab-m,glibc,jemalloc,mimalloc,tcmalloc"
#define LAT_METRICS                                                                                \
    "-alloc_p50_ns,-alloc_p99_ns,-alloc_p999_ns,-alloc_p9999_ns,-alloc_max_ns,-alloc_mean_ns,"     \
    "-free_p50_ns,-free_p99_ns,-free_p999_ns,-free_p9999_ns,-free_max_ns,-free_mean_ns"
#define TEL_BACKENDS "tslab-h-nocnt,tslab-h,tslab-h-scrape"
#define CYCLE_METRICS                                                                              \
    "-pair_ns,-faults_per_cycle,=first_cycle_faults,=rss_alloc_bytes,=rss_free_bytes"

/* Operation counts follow issue 5; max_ms and the caps keep `make bench` under 15 minutes on a
 * loaded 2-core machine (README.md, "Time budget"). */
static const wl workloads[] = {
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
};
enum { NWORKLOADS = sizeof workloads / sizeof workloads[0] };

/* ---- Options ----------------------------------------------------------------------------------
 */

typedef struct opts {
    bool quick, instructions;
    int reps;
    double scale;
    size_t sizes[8];
    int nsizes;
    char letters[32];        /* workload letters to run */
    char only_backends[256]; /* empty: all */
    char out[PATH_MAX];
    char self[PATH_MAX];
    char bindir[PATH_MAX];
    double ghz;
    bool telemetry;
    double budget; /* seconds for the timed suite; 0: none */
} opts;

static bool sizes_include(const opts *o, size_t size)
{
    for (int i = 0; i < o->nsizes; i++)
        if (o->sizes[i] == size)
            return true;
    return false;
}

/* ---- Results ------------------------------------------------------------------------------------
 */

typedef struct result {
    int wl, be, rep;
    size_t size;
    char key[40];
    double v;
} result;

static result *results;
static size_t nresults, capresults;
static int failures;

/* Open-addressing index over results (the summaries look values up many times). */
static uint32_t *rindex_;
static size_t rindex_cap;

static uint64_t result_hash(int w, int b, size_t size, int rep, const char *key)
{
    uint64_t h = 1469598103934665603ull;
    uint64_t parts[4] = {(uint64_t)w, (uint64_t)b, (uint64_t)size, (uint64_t)rep};
    for (int i = 0; i < 4; i++)
        h = (h ^ parts[i]) * 1099511628211ull;
    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 1099511628211ull;
    return h;
}

static void rindex_insert(size_t i)
{
    const result *r = &results[i];
    size_t mask = rindex_cap - 1;
    for (size_t j = result_hash(r->wl, r->be, r->size, r->rep, r->key) & mask;; j = (j + 1) & mask)
        if (rindex_[j] == 0) {
            rindex_[j] = (uint32_t)i + 1;
            return;
        }
}

static void add_result(int w, int b, size_t size, int rep, const char *key, double v)
{
    if (nresults == capresults) {
        capresults = capresults ? 2 * capresults : 4096;
        result *grown = realloc(results, capresults * sizeof *results);
        free(rindex_);
        rindex_cap = 4 * capresults;
        rindex_ = calloc(rindex_cap, sizeof *rindex_);
        if (!grown || !rindex_) {
            perror("realloc");
            exit(1);
        }
        results = grown;
        for (size_t i = 0; i < nresults; i++)
            rindex_insert(i);
    }
    result *r = &results[nresults];
    r->wl = w;
    r->be = b;
    r->size = size;
    r->rep = rep;
    copy_str(r->key, sizeof r->key, key);
    r->v = v;
    rindex_insert(nresults++);
}

static bool find_result(int w, int b, size_t size, int rep, const char *key, double *v)
{
    if (!rindex_cap)
        return false;
    size_t mask = rindex_cap - 1;
    for (size_t j = result_hash(w, b, size, rep, key) & mask; rindex_[j]; j = (j + 1) & mask) {
        const result *r = &results[rindex_[j] - 1];
        if (r->wl == w && r->be == b && r->size == size && r->rep == rep &&
            strcmp(r->key, key) == 0) {
            *v = r->v;
            return true;
        }
    }
    return false;
}

/* ---- Running a worker -------------------------------------------------------------------------
 */

/* The CPU a single-threaded cell of repeat `rep` runs on: every cell of one repeat on the same
 * CPU, the repeats round robin over the CPUs the driver may use. On a shared host one vCPU is
 * often slower than the other for a while (another tenant); left to the scheduler, a repeat's
 * cells land on either and its ratios compare allocators measured on different CPUs. -1: none. */
static int cpu_for_rep(int rep)
{
    cpu_set_t set;
    if (rep < 0 || sched_getaffinity(0, sizeof set, &set) != 0)
        return -1;
    int n = CPU_COUNT(&set), want = rep % (n > 0 ? n : 1);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set) && want-- == 0)
            return c;
    return -1;
}

/* Runs one worker; parses its "key value" lines into results (rep >= 0) or into kv (callgrind).
 * Returns the worker's exit status. */
static int run_worker(const opts *o, const backend *b, const wl *w, size_t size, int rep,
                      uint64_t n, uint32_t live, uint32_t cycles, const char *cg_out, int wi,
                      int bi)
{
    char bin[PATH_MAX + 64], a_n[32], a_live[32], a_cyc[32], a_size[32], a_ghz[32], a_seed[32],
        cgfile[PATH_MAX + 32];
    if (b->bin)
        str_join(bin, sizeof bin, o->bindir, "/tslab-bench-nocounters", NULL);
    else
        copy_str(bin, sizeof bin, o->self);
    snprintf(a_n, sizeof a_n, "%llu", (unsigned long long)n);
    snprintf(a_live, sizeof a_live, "%u", live);
    snprintf(a_cyc, sizeof a_cyc, "%u", cycles);
    snprintf(a_size, sizeof a_size, "%zu", size);
    snprintf(a_ghz, sizeof a_ghz, "%.6f", o->ghz);
    snprintf(a_seed, sizeof a_seed, "%llu", (unsigned long long)(0x5eed0000u + (unsigned)rep));
    const char *argv[48];
    int k = 0;
    if (cg_out) {
        str_join(cgfile, sizeof cgfile, "--callgrind-out-file=", cg_out, NULL);
        argv[k++] = "valgrind";
        argv[k++] = "--tool=callgrind";
        argv[k++] = "--collect-atstart=no";
        argv[k++] = "--dump-instr=yes";
        argv[k++] = "-q";
        argv[k++] = cgfile;
    }
    argv[k++] = bin;
    argv[k++] = "--child";
    argv[k++] = "--backend";
    argv[k++] = b->name;
    argv[k++] = "--kind";
    argv[k++] = kind_name[b->kind];
    argv[k++] = "--workload";
    argv[k++] = w->workload;
    argv[k++] = "--size";
    argv[k++] = a_size;
    argv[k++] = "--n";
    argv[k++] = a_n;
    argv[k++] = "--live";
    argv[k++] = a_live;
    argv[k++] = "--cycles";
    argv[k++] = a_cyc;
    char a_ms[32];
    snprintf(a_ms, sizeof a_ms, "%u", cg_out ? 0u : w->max_ms);
    argv[k++] = "--max-ms";
    argv[k++] = a_ms;
    argv[k++] = "--tsc-ghz";
    argv[k++] = a_ghz;
    argv[k++] = "--seed";
    argv[k++] = a_seed;
    if (cg_out)
        argv[k++] = "--callgrind";
    if (b->scrape)
        argv[k++] = "--scrape";
    if (b->exact)
        argv[k++] = "--exact-frees";
    if (b->bg)
        argv[k++] = "--background";
    char a_decay[16];
    uint32_t decay = o->quick ? w->decay_ms_quick : w->decay_ms;
    if (decay) {
        snprintf(a_decay, sizeof a_decay, "%u", decay);
        argv[k++] = "--decay-ms";
        argv[k++] = a_decay;
    }
    if (b->nosample)
        argv[k++] = "--sample-off";
    /* The measured thread of a one-thread cell runs on its repeat's CPU; the two-thread
     * workloads need both CPUs, and callgrind runs one thread at a time anyway. */
    char a_cpu[16];
    int cpu =
        strcmp(w->workload, "mt_churn") != 0 && strcmp(w->workload, "prodcons") != 0 && !cg_out
            ? cpu_for_rep(rep)
            : -1;
    if (cpu >= 0) {
        snprintf(a_cpu, sizeof a_cpu, "%d", cpu);
        argv[k++] = "--cpu";
        argv[k++] = a_cpu;
    }
    argv[k] = NULL;

    int pfd[2];
    if (pipe(pfd) != 0) {
        perror("pipe");
        exit(1);
    }
    fflush(NULL);
    double started = bench_now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        close(pfd[0]);
        dup2(pfd[1], 1);
        close(pfd[1]);
        if (b->lib)
            setenv("LD_PRELOAD", b->lib, 1);
        else
            unsetenv("LD_PRELOAD");
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "bench: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    char line[256];
    char shown[512] = "";
    while (f && fgets(line, sizeof line, f)) {
        char key[64];
        double v;
        if (sscanf(line, "%63s %lf", key, &v) == 2) {
            if (rep >= 0)
                add_result(wi, bi, size, rep, key, v);
            if (strlen(shown) < 200 &&
                (strstr(key, "pair_ns") || strstr(key, "mops") || strstr(key, "p99_ns") ||
                 strstr(key, "c1000") || strstr(key, "us")))
                snprintf(shown + strlen(shown), sizeof shown - strlen(shown), " %s=%.4g", key, v);
        }
    }
    if (f)
        fclose(f);
    int st = 0;
    waitpid(pid, &st, 0);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    fprintf(stderr, "  %-10s %4zu %-14s %5.1fs%s%s\n", w->label, size, b->name,
            (bench_now_ns() - started) / 1e9, shown, rc ? "  [FAILED]" : "");
    if (rc) {
        failures++;
        fprintf(stderr, "bench: worker %s %s %zu exited with status %d\n", b->name, w->label, size,
                rc);
    }
    return rc;
}

/* ---- Statistics
 * ----------------------------------------------------------------------------------- */

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_dbl);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct summary {
    int wl, be;
    size_t size;
    char metric[40];
    char dir;
    int n;
    double med, min, max;
    int ref_be; /* best peer (or fixed reference); -1 if none */
    double ref_med;
    double ratio;                  /* med / ref_med */
    double rr_med, rr_min, rr_max; /* per-repeat ratios (same repeat) */
    int rr_n;
} summary;

static summary *sums;
static size_t nsums, capsums;

static bool be_in_list(const char *list, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += len)
        if ((p == list || p[-1] == ',') && (p[len] == ',' || p[len] == 0))
            return true;
    return false;
}

static bool be_selected(const opts *o, int bi, const wl *w)
{
    if (backends[bi].missing || !be_in_list(w->backends, backends[bi].name))
        return false;
    return !o->only_backends[0] || be_in_list(o->only_backends, backends[bi].name);
}

/* Value of backend bi in repeat rep, or NAN. */
static double val(int wi, int bi, size_t size, int rep, const char *m)
{
    double v;
    return find_result(wi, bi, size, rep, m, &v) ? v : NAN;
}

static void summarize(const opts *o)
{
    for (int wi = 0; wi < NWORKLOADS; wi++) {
        const wl *w = &workloads[wi];
        char mlist[512];
        copy_str(mlist, sizeof mlist, w->metrics);
        for (char *save = NULL, *m = strtok_r(mlist, ",", &save); m;
             m = strtok_r(NULL, ",", &save)) {
            char dir = m[0];
            const char *metric = m + 1;
            for (int si = 0; si < o->nsizes; si++) {
                size_t size = o->sizes[si];
                /* medians of every backend first, to find the reference */
                double meds[NBACKENDS];
                for (int bi = 0; bi < NBACKENDS; bi++) {
                    double v[64];
                    int n = 0;
                    for (int r = 0; r < o->reps && n < 64; r++) {
                        double x = val(wi, bi, size, r, metric);
                        if (!isnan(x))
                            v[n++] = x;
                    }
                    meds[bi] = n ? median(v, n) : NAN;
                }
                int ref = -1;
                if (w->ratio_to)
                    ref = backend_index(w->ratio_to);
                else
                    for (int bi = 0; bi < NBACKENDS; bi++)
                        if (backends[bi].peer && !isnan(meds[bi]) &&
                            (ref < 0 || (dir == '+' ? meds[bi] > meds[ref] : meds[bi] < meds[ref])))
                            ref = bi;
                for (int bi = 0; bi < NBACKENDS; bi++) {
                    double v[64];
                    int n = 0;
                    for (int r = 0; r < o->reps && n < 64; r++) {
                        double x = val(wi, bi, size, r, metric);
                        if (!isnan(x))
                            v[n++] = x;
                    }
                    if (!n)
                        continue;
                    if (nsums == capsums) {
                        capsums = capsums ? 2 * capsums : 1024;
                        sums = realloc(sums, capsums * sizeof *sums);
                        if (!sums)
                            exit(1);
                    }
                    summary *s = &sums[nsums++];
                    memset(s, 0, sizeof *s);
                    s->wl = wi;
                    s->be = bi;
                    s->size = size;
                    copy_str(s->metric, sizeof s->metric, metric);
                    s->dir = dir;
                    s->n = n;
                    s->med = median(v, n);
                    s->min = v[0];
                    s->max = v[n - 1];
                    s->ref_be = dir == '=' ? -1 : ref;
                    s->ref_med = s->ref_be >= 0 ? meds[ref] : NAN;
                    s->ratio = s->ref_be >= 0 && s->ref_med != 0 ? s->med / s->ref_med : NAN;
                    s->rr_med = s->rr_min = s->rr_max = NAN;
                    if (s->ref_be < 0)
                        continue;
                    /* per-repeat ratio against the best peer *of that repeat* */
                    double rr[64];
                    int nr = 0;
                    for (int r = 0; r < o->reps && nr < 64; r++) {
                        double x = val(wi, bi, size, r, metric), best = NAN;
                        if (isnan(x))
                            continue;
                        if (w->ratio_to)
                            best = val(wi, ref, size, r, metric);
                        else
                            for (int pj = 0; pj < NBACKENDS; pj++) {
                                double y = val(wi, pj, size, r, metric);
                                if (!backends[pj].peer || isnan(y))
                                    continue;
                                if (isnan(best) || (dir == '+' ? y > best : y < best))
                                    best = y;
                            }
                        if (!isnan(best) && best != 0)
                            rr[nr++] = x / best;
                    }
                    if (nr) {
                        s->rr_n = nr;
                        s->rr_med = median(rr, nr);
                        s->rr_min = rr[0];
                        s->rr_max = rr[nr - 1];
                    }
                }
            }
        }
    }
}

static const summary *find_sum(const char *label, const char *metric, size_t size, const char *be)
{
    for (size_t i = 0; i < nsums; i++) {
        const summary *s = &sums[i];
        if (strcmp(workloads[s->wl].label, label) == 0 && strcmp(s->metric, metric) == 0 &&
            s->size == size && strcmp(backends[s->be].name, be) == 0)
            return s;
    }
    return NULL;
}

/* ---- Output -----------------------------------------------------------------------------------
 */

static FILE *open_out(const opts *o, const char *name)
{
    char path[PATH_MAX + 64];
    str_join(path, sizeof path, o->out, "/", name);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return f;
}

static void read_first_line(const char *path, const char *prefix, char *out, size_t cap)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!prefix || strncmp(line, prefix, strlen(prefix)) == 0) {
            char *s = prefix ? strchr(line, ':') : line;
            s = s ? s + (prefix ? 1 : 0) : line;
            while (*s == ' ' || *s == '\t')
                s++;
            s[strcspn(s, "\n")] = 0;
            copy_str(out, cap, s);
            break;
        }
    }
    fclose(f);
}

typedef struct machine {
    char cpu[256], kernel[256], load0[128], load1[128], date[64];
    long ncpu;
} machine;

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}
static void json_num(FILE *f, double v)
{
    if (isnan(v) || isinf(v))
        fputs("null", f);
    else
        fprintf(f, "%.6g", v);
}

static void write_machine_json(FILE *f, const machine *m, const opts *o)
{
    fprintf(f, "  \"machine\": {\"cpu\": ");
    json_str(f, m->cpu);
    fprintf(f, ", \"cpus\": %ld, \"kernel\": ", m->ncpu);
    json_str(f, m->kernel);
    fprintf(f, ", \"compiler\": ");
    json_str(f, __VERSION__);
    fprintf(f, ", \"tsc_ghz\": %.6f, \"loadavg_start\": ", o->ghz);
    json_str(f, m->load0);
    fprintf(f, ", \"loadavg_end\": ");
    json_str(f, m->load1);
    fprintf(f, ", \"date\": ");
    json_str(f, m->date);
    fprintf(f, "},\n  \"reps\": %d, \"quick\": %s, \"scale\": %g,\n", o->reps,
            o->quick ? "true" : "false", o->scale);
}

static void write_raw_csv(const opts *o)
{
    FILE *f = open_out(o, "raw.csv");
    fprintf(f, "workload,backend,size,rep,metric,value\n");
    for (size_t i = 0; i < nresults; i++) {
        const result *r = &results[i];
        fprintf(f, "%s,%s,%zu,%d,%s,%.6g\n", workloads[r->wl].label, backends[r->be].name, r->size,
                r->rep, r->key, r->v);
    }
    fclose(f);
}

static void write_summary(const opts *o, const machine *m)
{
    FILE *f = open_out(o, "summary.csv");
    fprintf(f, "workload,metric,size,backend,reps,median,min,max,spread_pct,reference,"
               "reference_median,ratio,ratio_rep_median,ratio_rep_min,ratio_rep_max,better\n");
    for (size_t i = 0; i < nsums; i++) {
        const summary *s = &sums[i];
        fprintf(f, "%s,%s,%zu,%s,%d,%.6g,%.6g,%.6g,%.3g,%s,%.6g,%.4g,%.4g,%.4g,%.4g,%s\n",
                workloads[s->wl].label, s->metric, s->size, backends[s->be].name, s->n, s->med,
                s->min, s->max, s->med ? 100.0 * (s->max - s->min) / fabs(s->med) : 0.0,
                s->ref_be >= 0 ? backends[s->ref_be].name : "", s->ref_med, s->ratio, s->rr_med,
                s->rr_min, s->rr_max,
                s->dir == '+'   ? "higher"
                : s->dir == '-' ? "lower"
                                : "");
    }
    fclose(f);

    f = open_out(o, "summary.json");
    fprintf(f, "{\n");
    write_machine_json(f, m, o);
    fprintf(f, "  \"results\": [\n");
    for (size_t i = 0; i < nsums; i++) {
        const summary *s = &sums[i];
        fprintf(
            f,
            "    {\"workload\": \"%s\", \"metric\": \"%s\", \"size\": %zu, \"backend\": \"%s\", "
            "\"reps\": %d, \"median\": ",
            workloads[s->wl].label, s->metric, s->size, backends[s->be].name, s->n);
        json_num(f, s->med);
        fprintf(f, ", \"min\": ");
        json_num(f, s->min);
        fprintf(f, ", \"max\": ");
        json_num(f, s->max);
        fprintf(f, ", \"reference\": ");
        if (s->ref_be >= 0)
            json_str(f, backends[s->ref_be].name);
        else
            fputs("null", f);
        fprintf(f, ", \"reference_median\": ");
        json_num(f, s->ref_med);
        fprintf(f, ", \"ratio\": ");
        json_num(f, s->ratio);
        fprintf(f, ", \"ratio_rep_median\": ");
        json_num(f, s->rr_med);
        fprintf(f, ", \"ratio_rep_min\": ");
        json_num(f, s->rr_min);
        fprintf(f, ", \"ratio_rep_max\": ");
        json_num(f, s->rr_max);
        fprintf(f, ", \"better\": \"%s\"}%s\n",
                s->dir == '+'   ? "higher"
                : s->dir == '-' ? "lower"
                                : "",
                i + 1 < nsums ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
}

static void fmt_val(char *buf, size_t cap, double v, const char *metric)
{
    if (isnan(v))
        snprintf(buf, cap, "-");
    else if (strstr(metric, "bytes"))
        snprintf(buf, cap, "%.2fM", v / 1048576.0);
    else if (fabs(v) >= 1000)
        snprintf(buf, cap, "%.0f", v);
    else if (fabs(v) >= 100)
        snprintf(buf, cap, "%.1f", v);
    else
        snprintf(buf, cap, "%.3g", v);
}

/* The text table: per workload, rows = metric x size, columns = backends. Cells: median and the
 * spread (max-min over median) in percent; then the reference and tslab's ratios. */
static void write_table(const opts *o, const machine *m, FILE *f)
{
    fprintf(f, "temporal-slab benchmark  (%s; %ld CPUs; %s; TSC %.3f GHz; %d repeats%s)\n", m->cpu,
            m->ncpu, __VERSION__, o->ghz, o->reps, o->quick ? "; QUICK" : "");
    fprintf(f, "load average at start: %s   at end: %s\n", m->load0, m->load1);
    fprintf(f, "cells: median [spread %% = (max-min)/median]; ratio = tslab / reference (best peer "
               "of the same run unless noted), median of per-repeat ratios in ().\n");
    for (int wi = 0; wi < NWORKLOADS; wi++) {
        const wl *w = &workloads[wi];
        int cols[NBACKENDS], nc = 0;
        for (int bi = 0; bi < NBACKENDS; bi++) {
            bool any = false;
            for (size_t i = 0; i < nsums && !any; i++)
                any = sums[i].wl == wi && sums[i].be == bi;
            if (any)
                cols[nc++] = bi;
        }
        if (!nc)
            continue;
        if (w->ratio_to)
            fprintf(f, "\n== %s ==  (reference: %s)\n", w->label, w->ratio_to);
        else
            fprintf(f, "\n== %s ==\n", w->label);
        fprintf(f, "%-22s %4s", "metric", "size");
        for (int c = 0; c < nc; c++)
            fprintf(f, " %15s", backends[cols[c]].name);
        fprintf(f, " %10s  %s\n", "ref", "ratios (tslab / ref)");
        char mlist[512];
        copy_str(mlist, sizeof mlist, w->metrics);
        for (char *save = NULL, *mm = strtok_r(mlist, ",", &save); mm;
             mm = strtok_r(NULL, ",", &save)) {
            const char *metric = mm + 1;
            for (int si = 0; si < o->nsizes; si++) {
                size_t size = o->sizes[si];
                bool any = false;
                char line[2048];
                int len = snprintf(line, sizeof line, "%-22s %4zu", metric, size);
                const summary *first = NULL;
                for (int c = 0; c < nc; c++) {
                    const summary *s = find_sum(w->label, metric, size, backends[cols[c]].name);
                    char cell[64] = "-", v[32];
                    if (s) {
                        any = true;
                        if (!first)
                            first = s;
                        fmt_val(v, sizeof v, s->med, metric);
                        double sp = s->med ? 100.0 * (s->max - s->min) / fabs(s->med) : 0;
                        if (s->n > 1)
                            snprintf(cell, sizeof cell, "%s[%.0f]", v, sp);
                        else
                            copy_str(cell, sizeof cell, v);
                    }
                    len += snprintf(line + len, sizeof line - (size_t)len, " %15s", cell);
                }
                if (!any)
                    continue;
                const summary *any_s = first;
                len += snprintf(line + len, sizeof line - (size_t)len, " %10s ",
                                any_s && any_s->ref_be >= 0 ? backends[any_s->ref_be].name : "");
                for (int c = 0; c < nc; c++) {
                    const backend *b = &backends[cols[c]];
                    if (b->peer || bench_kind_is_floor(b->kind))
                        continue;
                    const summary *s = find_sum(w->label, metric, size, b->name);
                    if (!s || isnan(s->ratio) || s->be == s->ref_be)
                        continue;
                    len += snprintf(line + len, sizeof line - (size_t)len, " %s %.2f(%.2f)",
                                    b->name, s->ratio, s->rr_med);
                }
                fprintf(f, "%s\n", line);
            }
        }
    }
}

/* ---- Targets (issue 5), evaluated on the handle API ------------------------------------------ */

static void target_line(FILE *f, const char *what, size_t size, double got, double want, bool le,
                        const char *unit)
{
    if (isnan(got)) {
        fprintf(f, "  [ -- ] %-52s %4zu B: not measured\n", what, size);
        return;
    }
    bool ok = le ? got <= want : got >= want;
    fprintf(f, "  [%s] %-52s %4zu B: %8.3f%s (target %s %.3g%s)\n", ok ? "MET " : "MISS", what,
            size, got, unit, le ? "<=" : ">=", want, unit);
}

static double med_of(const char *label, const char *metric, size_t size, const char *be)
{
    const summary *s = find_sum(label, metric, size, be);
    return s ? s->med : NAN;
}
static double ratio_of(const char *label, const char *metric, size_t size, const char *be)
{
    const summary *s = find_sum(label, metric, size, be);
    return s ? s->ratio : NAN;
}

static void write_targets(const opts *o, FILE *f)
{
    fprintf(f, "\nTargets of issue 5 (tslab handle API, counters on; ratio = ours / best peer "
               "of the same run):\n");
    for (int si = 0; si < o->nsizes; si++) {
        size_t z = o->sizes[si];
        target_line(f, "a. tight pair time ratio", z, ratio_of("a.tight", "pair_ns", z, "tslab-h"),
                    0.7, true, "");
        target_line(f, "b. churn pair time ratio", z, ratio_of("b.churn", "pair_ns", z, "tslab-h"),
                    0.8, true, "");
        target_line(f, "c. alloc p99.9", z, med_of("c.latency", "alloc_p999_ns", z, "tslab-h"), 100,
                    true, " ns");
        target_line(f, "c. free p99.9", z, med_of("c.latency", "free_p999_ns", z, "tslab-h"), 100,
                    true, " ns");
        target_line(f, "c. alloc p99.99 ratio", z,
                    ratio_of("c.latency", "alloc_p9999_ns", z, "tslab-h"), 0.5, true, "");
        target_line(f, "c. free p99.99 ratio", z,
                    ratio_of("c.latency", "free_p9999_ns", z, "tslab-h"), 0.5, true, "");
        target_line(f, "d. two-thread churn throughput ratio", z,
                    ratio_of("d.mt_churn", "mops", z, "tslab-h"), 1.2, false, "");
        target_line(f, "d. producer/consumer throughput ratio", z,
                    ratio_of("d.prodcons", "mops", z, "tslab-h"), 1.0, false, "");
        if (z == 128)
            target_line(f, "e. RSS / live bytes at the last cycle", z,
                        med_of("e.rss", "rss_over_live_end", z, "tslab-h"), 1.03, true, "");
        target_line(f, "e. RSS growth, cycle 10 -> last", z,
                    med_of("e.rss", "growth_pct", z, "tslab-h"), 0.0, true, " %");
        double freed = med_of("e.rss", "rss_freed_bytes", z, "tslab-h");
        double bound = med_of("e.rss", "cache_bound_bytes", z, "tslab-h");
        target_line(f, "e. RSS after freeing all (unasked) / cache bound", z, freed / bound, 1.0,
                    true, "");
        if (isnan(med_of("f.tight", "pair_ns", z, "tslab-h")))
            continue; /* workload f runs at 128 B only */
        double off = med_of("f.tight", "pair_ns", z, "tslab-h-nocnt");
        target_line(f, "f. counters on / off, tight pair", z,
                    med_of("f.tight", "pair_ns", z, "tslab-h") / off, 1.02, true, "");
        off = med_of("f.churn", "pair_ns", z, "tslab-h-nocnt");
        target_line(f, "f. counters on / off, churn pair", z,
                    med_of("f.churn", "pair_ns", z, "tslab-h") / off, 1.02, true, "");
        double on = med_of("f.latency", "alloc_p99_ns", z, "tslab-h");
        target_line(f, "f. alloc p99 with 10 Hz scrape / without", z,
                    med_of("f.latency", "alloc_p99_ns", z, "tslab-h-scrape") / on, 1.05, true, "");
    }
}

/* ---- Plot data ------------------------------------------------------------------------------- */

/* One histogram file: rows = backends, columns = (median, min, max) per size that has data.
 * Returns the sizes written (bit i = o->sizes[i]); 0 when nothing was measured. */
static unsigned write_hist(const opts *o, const char *file, const char *label, const char *metric,
                           double div)
{
    char name[128];
    snprintf(name, sizeof name, "plots/%s", file);
    unsigned mask = 0;
    for (size_t i = 0; i < nsums; i++)
        if (strcmp(workloads[sums[i].wl].label, label) == 0 && strcmp(sums[i].metric, metric) == 0)
            for (int si = 0; si < o->nsizes; si++)
                if (sums[i].size == o->sizes[si])
                    mask |= 1u << si;
    if (!mask)
        return 0;
    FILE *f = open_out(o, name);
    fprintf(f, "# backend");
    for (int si = 0; si < o->nsizes; si++)
        if (mask & (1u << si))
            fprintf(f, " %zuB lo hi", o->sizes[si]);
    fprintf(f, "\n");
    for (int bi = 0; bi < NBACKENDS; bi++) {
        bool row = false;
        for (int si = 0; si < o->nsizes; si++)
            row |= find_sum(label, metric, o->sizes[si], backends[bi].name) != NULL;
        if (!row)
            continue;
        fprintf(f, "%s", backends[bi].name);
        for (int si = 0; si < o->nsizes; si++) {
            if (!(mask & (1u << si)))
                continue;
            const summary *s = find_sum(label, metric, o->sizes[si], backends[bi].name);
            if (s)
                fprintf(f, " %.6g %.6g %.6g", s->med / div, s->min / div, s->max / div);
            else
                fprintf(f, " 0 0 0");
        }
        fprintf(f, "\n");
    }
    fclose(f);
    return mask;
}

/* One table file: rows = named metrics (x axis), columns = backends. */
static bool write_lines(const opts *o, const char *file, const char *label, size_t size,
                        const char *const *metrics, const char *const *names, int nm, double div)
{
    char name[128];
    snprintf(name, sizeof name, "plots/%s", file);
    int cols[NBACKENDS], nc = 0;
    for (int bi = 0; bi < NBACKENDS; bi++)
        if (find_sum(label, metrics[0], size, backends[bi].name))
            cols[nc++] = bi;
    if (!nc)
        return false;
    FILE *f = open_out(o, name);
    fprintf(f, "x");
    for (int c = 0; c < nc; c++)
        fprintf(f, " %s", backends[cols[c]].name);
    fprintf(f, "\n");
    for (int i = 0; i < nm; i++) {
        fprintf(f, "%s", names[i]);
        for (int c = 0; c < nc; c++) {
            const summary *s = find_sum(label, metrics[i], size, backends[cols[c]].name);
            fprintf(f, " %.6g", s ? s->med / div : NAN);
        }
        fprintf(f, "\n");
    }
    fclose(f);
    return true;
}

static void write_plots(const opts *o)
{
    char dir[PATH_MAX + 16];
    str_join(dir, sizeof dir, o->out, "/plots", NULL);
    mkdir(dir, 0755);
    FILE *gp = open_out(o, "plots/plots.gp");
    fprintf(gp, "# generated by tslab-bench; run: gnuplot plots.gp (in this directory)\n"
                "set terminal pngcairo size 1000,560 noenhanced font ',10'\n"
                "set style data histogram\nset style histogram errorbars gap 2 lw 1\n"
                "set style fill solid 0.7 border -1\nset grid ytics\nset key top left\n"
                "set xtics rotate by -20\n");
    static const struct {
        const char *file, *label, *metric, *title, *ylabel;
        double div;
    } hs[] = {
        {"tight", "a.tight", "pair_ns", "a. tight malloc+free pair", "ns per pair", 1},
        {"churn", "b.churn", "pair_ns", "b. churn (100k live, random replace)", "ns per pair", 1},
        {"mt_churn", "d.mt_churn", "mops", "d. two threads, independent churn",
         "M pairs / s (higher is better)", 1},
        {"prodcons", "d.prodcons", "mops", "d. producer / consumer",
         "M objects / s (higher is better)", 1},
        {"seq", "g.seq", "pair_ns", "g. 2M sequential allocs then frees", "ns per alloc+free", 1},
        {"rss_end", "e.rss", "rss_over_live_end", "e. RSS / live bytes after the last cycle",
         "ratio", 1},
        {"telemetry_tight", "f.tight", "pair_ns", "f. telemetry cost, tight pair", "ns per pair",
         1},
        {"telemetry_churn", "f.churn", "pair_ns", "f. telemetry cost, churn pair", "ns per pair",
         1},
    };
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        char file[64];
        snprintf(file, sizeof file, "%s.dat", hs[i].file);
        unsigned mask = write_hist(o, file, hs[i].label, hs[i].metric, hs[i].div);
        if (!mask)
            continue;
        fprintf(gp, "set output '%s.png'\nset title '%s'\nset ylabel '%s'\nset yrange [0:*]\n",
                hs[i].file, hs[i].title, hs[i].ylabel);
        fprintf(gp, "plot ");
        for (int si = 0, col = 0; si < o->nsizes; si++) {
            if (!(mask & (1u << si)))
                continue;
            fprintf(gp, "%s'%s' using %d:%d:%d%s title '%zu B'", col ? ", " : "", file, 2 + 3 * col,
                    3 + 3 * col, 4 + 3 * col, col ? "" : ":xtic(1)", o->sizes[si]);
            col++;
        }
        fprintf(gp, "\n");
    }
    static const char *const lat_a[] = {"alloc_p50_ns", "alloc_p99_ns", "alloc_p999_ns",
                                        "alloc_p9999_ns"};
    static const char *const lat_f[] = {"free_p50_ns", "free_p99_ns", "free_p999_ns",
                                        "free_p9999_ns"};
    static const char *const lat_n[] = {"p50", "p99", "p99.9", "p99.99"};
    static const char *const rss_m[] = {"rss_fill_bytes", "rss_c10_bytes",   "rss_c100_bytes",
                                        "rss_end_bytes",  "rss_freed_bytes", "rss_purged_bytes"};
    static const char *const rss_n[] = {"filled",     "cycle10", "cycle100",
                                        "last-cycle", "freed",   "purged"};
    fprintf(gp,
            "set style data linespoints\nset logscale y\nset yrange [*:*]\nset xtics norotate\n");
    for (int si = 0; si < o->nsizes; si++) {
        size_t z = o->sizes[si];
        char file[64];
        snprintf(file, sizeof file, "latency_alloc_%zu.dat", z);
        if (write_lines(o, file, "c.latency", z, lat_a, lat_n, 4, 1))
            fprintf(gp,
                    "set output 'latency_alloc_%zu.png'\nset title 'c. alloc latency, %zu B "
                    "(TSC step ~10 ns; p99.99 is host noise)'\nset ylabel 'ns'\n"
                    "plot for [c=2:*] '%s' using c:xtic(1) title columnheader(c)\n",
                    z, z, file);
        snprintf(file, sizeof file, "latency_free_%zu.dat", z);
        if (write_lines(o, file, "c.latency", z, lat_f, lat_n, 4, 1))
            fprintf(gp,
                    "set output 'latency_free_%zu.png'\nset title 'c. free latency, %zu B'\n"
                    "set ylabel 'ns'\nplot for [c=2:*] '%s' using c:xtic(1) title "
                    "columnheader(c)\n",
                    z, z, file);
    }
    fprintf(gp, "unset logscale y\nset yrange [0:*]\n");
    for (int si = 0; si < o->nsizes; si++) {
        size_t z = o->sizes[si];
        char file[64];
        snprintf(file, sizeof file, "rss_%zu.dat", z);
        if (write_lines(o, file, "e.rss", z, rss_m, rss_n, 6, 1048576.0))
            fprintf(gp,
                    "set output 'rss_%zu.png'\nset title 'e. RSS above baseline, 100k live "
                    "x %zu B (%.1f MiB live)'\nset ylabel 'MiB'\nplot for [c=2:*] '%s' "
                    "using c:xtic(1) title columnheader(c)\n",
                    z, z, 100000.0 * (double)z / 1048576.0, file);
    }
    fclose(gp);
}

/* ---- Instruction counts (callgrind) -----------------------------------------------------------
 */

static double callgrind_total(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NAN;
    char line[512];
    double total = NAN;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "totals:", 7) == 0 || strncmp(line, "summary:", 8) == 0)
            total = strtod(strchr(line, ':') + 1, NULL);
    }
    fclose(f);
    return total;
}

/* plots/instructions.{dat,gp} from instructions.csv (tight loop, net of the loop). */
static void write_instructions_plot(const opts *o)
{
    char dir[PATH_MAX + 16], path[PATH_MAX + 64];
    str_join(dir, sizeof dir, o->out, "/plots", NULL);
    mkdir(dir, 0755);
    str_join(path, sizeof path, o->out, "/instructions.csv", NULL);
    FILE *in = fopen(path, "r");
    if (!in)
        return;
    static const char *const order[] = {"tslab-h", "tslab-m",    "tslab-h-nocnt", "tslab-h-exact",
                                        "glibc",   "jemalloc",   "mimalloc",      "tcmalloc",
                                        "floor",   "floor-call", "floor-cas"};
    enum { NB = sizeof order / sizeof order[0] };
    double v[NB][8];
    for (int i = 0; i < NB; i++)
        for (int j = 0; j < 8; j++)
            v[i][j] = NAN;
    char line[512];
    while (fgets(line, sizeof line, in)) {
        char wl_[32], be[32];
        size_t size;
        double net;
        if (sscanf(line, "%31[^,],%31[^,],%zu,%*[^,],%*[^,],%*[^,],%lf", wl_, be, &size, &net) !=
                4 ||
            strcmp(wl_, "a.tight") != 0)
            continue;
        for (int i = 0; i < NB; i++)
            for (int j = 0; j < o->nsizes; j++)
                if (strcmp(be, order[i]) == 0 && o->sizes[j] == size)
                    v[i][j] = net;
    }
    fclose(in);
    FILE *f = open_out(o, "plots/instructions.dat");
    fprintf(f, "# backend");
    for (int j = 0; j < o->nsizes; j++)
        fprintf(f, " %zuB", o->sizes[j]);
    fprintf(f, "\n");
    for (int i = 0; i < NB; i++) {
        fprintf(f, "%s", order[i]);
        for (int j = 0; j < o->nsizes; j++)
            fprintf(f, " %.1f", v[i][j]);
        fprintf(f, "\n");
    }
    fclose(f);
    f = open_out(o, "plots/instructions.gp");
    fprintf(f, "set terminal pngcairo size 1000,560 noenhanced font ',10'\n"
               "set output 'instructions.png'\nset title 'Instructions per malloc+free pair, "
               "tight loop (callgrind, loop overhead removed)'\nset ylabel 'instructions'\n"
               "set style data histogram\nset style histogram clustered gap 2\n"
               "set style fill solid 0.7 border -1\nset grid ytics\nset yrange [0:*]\n"
               "set key top right\nset xtics rotate by -20\nplot ");
    for (int j = 0; j < o->nsizes; j++)
        fprintf(f, "%s'instructions.dat' using %d%s title '%zu B'", j ? ", " : "", 2 + j,
                j ? "" : ":xtic(1)", o->sizes[j]);
    fprintf(f, "\n");
    fclose(f);
}

static int run_instructions(opts *o, const machine *m)
{
    static const struct {
        const char *label;
        uint64_t n;
        uint32_t live;
    } iw[] = {{"a.tight", 100000, 0}, {"b.churn", 200000, 100000}, {"g.seq", 100000, 0}};
    /* "loop" first: its count is subtracted from the others ("net") */
    static const char *const ibe[] = {
        "loop",     "tslab-h",  "tslab-m",  "tslab-h-nocnt", "tslab-h-exact", "tslab-h-nosample",
        "glibc",    "jemalloc", "mimalloc", "tcmalloc",      "floor",         "floor-call",
        "floor-cas"};
    char dir[PATH_MAX + 16];
    str_join(dir, sizeof dir, o->out, "/callgrind", NULL);
    mkdir(dir, 0755);
    FILE *csv = open_out(o, "instructions.csv");
    fprintf(csv, "workload,backend,size,pairs,instructions,instructions_per_pair,"
                 "net_of_loop_per_pair\n");
    FILE *txt = open_out(o, "instructions.txt");
    fprintf(txt,
            "Instructions per alloc+free pair (callgrind, collected around the measured loop "
            "only; includes the loop's own instructions, shown as 'loop'; net = minus loop)\n"
            "%s; %s\n",
            m->cpu, __VERSION__);
    FILE *js = open_out(o, "instructions.json");
    fprintf(js, "{\n");
    write_machine_json(js, m, o);
    fprintf(js, "  \"results\": [\n");
    bool first = true;
    for (size_t wi = 0; wi < sizeof iw / sizeof iw[0]; wi++) {
        int w = -1;
        for (int k = 0; k < NWORKLOADS; k++)
            if (strcmp(workloads[k].label, iw[wi].label) == 0)
                w = k;
        if (w < 0 || !strchr(o->letters, iw[wi].label[0]))
            continue;
        fprintf(txt, "\n== %s ==\n%-14s", iw[wi].label, "backend");
        for (int si = 0; si < o->nsizes; si++)
            fprintf(txt, " %9zuB %7s", o->sizes[si], "net");
        fprintf(txt, "\n");
        double loop_ir[8] = {0};
        for (size_t k = 0; k < sizeof ibe / sizeof ibe[0]; k++) {
            int bi = backend_index(ibe[k]);
            if (bi < 0 || backends[bi].missing ||
                (o->only_backends[0] && !be_in_list(o->only_backends, ibe[k])))
                continue;
            if (bench_kind_is_floor(backends[bi].kind) && iw[wi].label[0] != 'a')
                continue;
            fprintf(txt, "%-14s", ibe[k]);
            for (int si = 0; si < o->nsizes; si++) {
                char cg[PATH_MAX + 128];
                char leaf[128];
                snprintf(leaf, sizeof leaf, "/%s.%s.%zu.out", iw[wi].label, ibe[k], o->sizes[si]);
                str_join(cg, sizeof cg, dir, leaf, NULL);
                uint64_t n = (uint64_t)((double)iw[wi].n * (o->quick ? 0.25 : 1.0));
                int rc = run_worker(o, &backends[bi], &workloads[w], o->sizes[si], -1, n,
                                    iw[wi].live, 0, cg, w, bi);
                double ir = rc ? NAN : callgrind_total(cg);
                double per = ir / (double)n;
                if (backends[bi].kind == BENCH_KIND_NULL)
                    loop_ir[si] = per;
                double net = per - loop_ir[si];
                fprintf(txt, " %10.1f %7.1f", per, net);
                fprintf(csv, "%s,%s,%zu,%llu,%.0f,%.2f,%.2f\n", iw[wi].label, ibe[k], o->sizes[si],
                        (unsigned long long)n, ir, per, net);
                fprintf(js,
                        "%s    {\"workload\": \"%s\", \"backend\": \"%s\", \"size\": %zu, "
                        "\"pairs\": %llu, \"instructions_per_pair\": ",
                        first ? "" : ",\n", iw[wi].label, ibe[k], o->sizes[si],
                        (unsigned long long)n);
                json_num(js, per);
                fprintf(js, ", \"net_of_loop_per_pair\": ");
                json_num(js, net);
                fprintf(js, "}");
                first = false;
            }
            fprintf(txt, "\n");
        }
    }
    fprintf(js, "\n  ]\n}\n");
    fclose(js);
    fclose(csv);
    fclose(txt);
    write_instructions_plot(o);
    return 0;
}

/* ---- Main
 * ------------------------------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr,
            "usage: tslab-bench [--quick] [--instructions] [--reps N] [--scale F] [--budget S]\n"
            "                   [--sizes 64,128,512] [--workloads abcdefg] [--backends a,b,...]\n"
            "                   [--out DIR]\n"
            "  Runs workloads a-g (issue 5) over every backend, each cell in its own process,\n"
            "  backends interleaved, and writes DIR/{table.txt,summary.csv,summary.json,raw.csv,\n"
            "  plots/}. --instructions instead counts instructions per pair under callgrind.\n"
            "  --budget S: after 3 repeats, stop repeating when the next would pass S seconds.\n"
            "  Worker mode (internal): --child --backend B --kind K --workload W --size S ...\n");
}

static void machine_info(machine *m)
{
    read_first_line("/proc/cpuinfo", "model name", m->cpu, sizeof m->cpu);
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(m->kernel, sizeof m->kernel, "%s %s %s", u.sysname, u.release, u.machine);
    read_first_line("/proc/loadavg", NULL, m->load0, sizeof m->load0);
    m->ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    time_t t = time(NULL);
    strftime(m->date, sizeof m->date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
}

int bench_driver_main(int argc, char **argv, const char *self_path)
{
    opts o = {.reps = 5, .scale = 1.0, .nsizes = 3, .sizes = {64, 128, 512}};
    snprintf(o.letters, sizeof o.letters, "abcdefghi");
    snprintf(o.out, sizeof o.out, "bench-results");
    bool reps_set = false, sizes_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0)
            o.quick = true;
        else if (strcmp(a, "--instructions") == 0)
            o.instructions = true;
        else if (strcmp(a, "--budget") == 0 && v) {
            o.budget = atof(v);
            i++;
        } else if (strcmp(a, "--reps") == 0 && v) {
            o.reps = atoi(v);
            reps_set = true;
            i++;
        } else if (strcmp(a, "--scale") == 0 && v) {
            o.scale = atof(v);
            i++;
        } else if (strcmp(a, "--sizes") == 0 && v) {
            o.nsizes = 0;
            char tmp[128];
            copy_str(tmp, sizeof tmp, v);
            for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t && o.nsizes < 8;
                 t = strtok_r(NULL, ",", &save))
                o.sizes[o.nsizes++] = (size_t)strtoul(t, NULL, 10);
            sizes_set = true;
            i++;
        } else if (strcmp(a, "--workloads") == 0 && v) {
            copy_str(o.letters, sizeof o.letters, v);
            i++;
        } else if (strcmp(a, "--backends") == 0 && v) {
            copy_str(o.only_backends, sizeof o.only_backends, v);
            i++;
        } else if (strcmp(a, "--out") == 0 && v) {
            copy_str(o.out, sizeof o.out, v);
            i++;
        } else {
            usage();
            return strcmp(a, "--help") == 0 ? 0 : 2;
        }
    }
    if (o.quick) {
        if (!reps_set)
            o.reps = 1;
        if (!sizes_set) {
            o.nsizes = 1;
            o.sizes[0] = 128;
        }
    }
    if (o.reps < 1 || o.reps > 64 || o.nsizes < 1) {
        usage();
        return 2;
    }
    copy_str(o.self, sizeof o.self, self_path);
    char tmp[PATH_MAX];
    copy_str(tmp, sizeof tmp, self_path);
    copy_str(o.bindir, sizeof o.bindir, dirname(tmp));
    o.telemetry = bench_telemetry_available();
    mkdir(o.out, 0755);

    for (int bi = 0; bi < NBACKENDS; bi++) {
        backend *b = &backends[bi];
        if (b->lib && access(b->lib, R_OK) != 0) {
            fprintf(stderr,
                    "bench: %s not found (%s); backend %s skipped. Install: apt-get "
                    "install libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev\n",
                    b->lib, strerror(errno), b->name);
            b->missing = true;
        }
        if (b->bin) {
            char p[PATH_MAX + 32];
            str_join(p, sizeof p, o.bindir, "/tslab-bench-nocounters", NULL);
            if (access(p, X_OK) != 0)
                b->missing = true;
        }
        if (b->scrape && !o.telemetry)
            b->missing = true;
    }

    machine m;
    machine_info(&m);
    o.ghz = bench_tsc_calibrate(300);
    fprintf(stderr, "tslab-bench: TSC %.4f GHz; load average %s; output in %s\n", o.ghz, m.load0,
            o.out);

    if (o.instructions) {
        if (system("valgrind --version >/dev/null 2>&1") != 0) {
            fprintf(stderr, "bench: valgrind not found (apt-get install valgrind)\n");
            return 1;
        }
        int rc = run_instructions(&o, &m);
        read_first_line("/proc/loadavg", NULL, m.load1, sizeof m.load1);
        char path[PATH_MAX + 32];
        str_join(path, sizeof path, o.out, "/instructions.txt", NULL);
        FILE *f = fopen(path, "r");
        if (f) {
            char line[512];
            while (fgets(line, sizeof line, f))
                fputs(line, stdout);
            fclose(f);
        }
        return rc || failures ? 1 : 0;
    }

    double t_start = bench_now_ns(), t_rep = t_start, last_rep = 0;
    for (int rep = 0; rep < o.reps; rep++) {
        /* The time budget: after 3 repeats, stop when the next one would overrun it. The
         * repeats actually done are in the table's header and the JSON. */
        double now = bench_now_ns();
        if (rep > 0)
            last_rep = (now - t_rep) / 1e9;
        t_rep = now;
        if (rep >= 3 && o.budget > 0 && (now - t_start) / 1e9 + last_rep > o.budget) {
            fprintf(stderr, "tslab-bench: time budget of %.0f s reached after %d repeats\n",
                    o.budget, rep);
            o.reps = rep;
            break;
        }
        fprintf(stderr, "[repeat %d/%d, %.0f s elapsed]\n", rep + 1, o.reps,
                (bench_now_ns() - t_start) / 1e9);
        for (int wi = 0; wi < NWORKLOADS; wi++) {
            const wl *w = &workloads[wi];
            if (!strchr(o.letters, w->label[0]) || (w->telemetry && !o.telemetry) ||
                (w->max_reps && rep >= w->max_reps))
                continue;
            uint64_t n = (uint64_t)((double)(o.quick ? w->n_quick : w->n) * o.scale);
            uint32_t live = o.quick ? w->live_quick : w->live;
            uint32_t cycles = o.quick ? w->cycles_quick : w->cycles;
            for (int si = 0; si < o.nsizes; si++) {
                size_t size = o.sizes[si];
                if (w->only_size && size != w->only_size &&
                    !(si == 0 && !sizes_include(&o, w->only_size)))
                    continue;
                uint64_t nn = n;
                if (w->max_bytes && nn > w->max_bytes / size)
                    nn = w->max_bytes / size;
                int sel[NBACKENDS] = {0}, ns = 0;
                for (int bi = 0; bi < NBACKENDS; bi++)
                    if (be_selected(&o, bi, w))
                        sel[ns++] = bi;
                /* rotate the order each repeat and size so every backend runs in every slot */
                for (int j = 0; j < ns; j++) {
                    int bi = sel[(j + rep + si) % ns];
                    run_worker(&o, &backends[bi], w, size, rep, nn, live, cycles, NULL, wi, bi);
                }
            }
        }
    }
    read_first_line("/proc/loadavg", NULL, m.load1, sizeof m.load1);
    fprintf(stderr, "tslab-bench: suite took %.0f s; load average at end %s\n",
            (bench_now_ns() - t_start) / 1e9, m.load1);
    summarize(&o);
    write_raw_csv(&o);
    write_summary(&o, &m);
    write_plots(&o);
    FILE *t = open_out(&o, "table.txt");
    write_table(&o, &m, t);
    write_targets(&o, t);
    fclose(t);
    write_table(&o, &m, stdout);
    write_targets(&o, stdout);
    if (failures)
        fprintf(stderr, "tslab-bench: %d worker(s) failed\n", failures);
    return failures ? 1 : 0;
}
