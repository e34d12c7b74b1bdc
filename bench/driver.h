/* SPDX-License-Identifier: MIT */
/* The driver's shared declarations: the tables (driver_tables.c), the options, the result store
 * and the worker runs (driver_run.c), the summaries (driver_stats.c), the output writers
 * (driver_output.c) and the callgrind pass (driver_instructions.c). driver.c parses the command
 * line and runs the suite through them. Calls go one way: each file in the order tables, run,
 * stats, output, instructions, driver.c calls only files before it. */
#ifndef TSLAB_BENCH_DRIVER_H
#define TSLAB_BENCH_DRIVER_H

#include "bench.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* strlcpy: copies what fits, always terminates. */
static inline void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* Concatenates a, b and c (b and c may be NULL) into dst, truncating to fit. */
static inline void str_join(char *dst, size_t cap, const char *a, const char *b, const char *c)
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

/* ---- Backends (driver_tables.c) ---------------------------------------------------------- */

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
    bool groups;     /* workload j: one group per batch (epoch, heap, arena; --groups) */
    bool missing;    /* set at start-up: its library, binary or telemetry is not there */
} backend;

/* The number of entries of backends[] and workloads[] (checked there by static assertions). */
enum { NBACKENDS = 19, NWORKLOADS = 17 };

extern const char *kind_name[];
extern backend backends[NBACKENDS];
int backend_index(const char *name);

/* ---- Workloads (driver_tables.c) --------------------------------------------------------- */

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

extern const wl workloads[NWORKLOADS];

/* ---- Options ------------------------------------------------------------------------------ */

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

bool sizes_include(const opts *o, size_t size);
bool be_in_list(const char *list, const char *name);
/* Backend bi runs workload w: it is listed for w, present, and not excluded by --backends. */
bool be_selected(const opts *o, int bi, const wl *w);

/* ---- Results and worker runs (driver_run.c) ---------------------------------------------- */

typedef struct result {
    int wl, be, rep;
    size_t size;
    char key[40];
    double v;
} result;

extern result *results;
extern size_t nresults;
extern int failures; /* workers that exited with a non-zero status */

bool find_result(int w, int b, size_t size, int rep, const char *key, double *v);
int run_worker(const opts *o, const backend *b, const wl *w, size_t size, int rep, uint64_t n,
               uint32_t live, uint32_t cycles, const char *cg_out, int wi, int bi);

/* ---- Statistics (driver_stats.c) --------------------------------------------------------- */

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

extern summary *sums;
extern size_t nsums;

void summarize(const opts *o);
const summary *find_sum(const char *label, const char *metric, size_t size, const char *be);

/* ---- Output (driver_output.c) ------------------------------------------------------------ */

typedef struct machine {
    char cpu[256], kernel[256], load0[128], load1[128], date[64];
    long ncpu;
} machine;

FILE *open_out(const opts *o, const char *name);
void json_num(FILE *f, double v);
void write_machine_json(FILE *f, const machine *m, const opts *o);
void write_raw_csv(const opts *o);
void write_summary(const opts *o, const machine *m);
void write_table(const opts *o, const machine *m, FILE *f);
void write_targets(const opts *o, FILE *f);
void write_plots(const opts *o);

/* ---- Instruction counts (driver_instructions.c) ------------------------------------------ */

int run_instructions(opts *o, const machine *m);

#endif /* TSLAB_BENCH_DRIVER_H */
