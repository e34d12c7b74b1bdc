/* SPDX-License-Identifier: MIT */
/* temporal-slab benchmark harness: shared declarations.
 *
 * Shape: one executable. Without --child it is the *driver*: it plans the suite, runs every
 * (workload, size, backend, repeat) cell as a child process of itself, interleaving backends,
 * and writes the table, CSV, JSON and plot data. With --child it is a *worker*: it runs one cell
 * and prints "key value" lines on stdout.
 *
 * Why processes: jemalloc, mimalloc and tcmalloc replace malloc when loaded. Each peer runs the
 * way services deploy it (LD_PRELOAD of the Debian library into a fresh process), so no two
 * allocators share a heap, a TLS block or an RSS figure, and every allocator is reached the same
 * way from the loops (a call through the PLT). The temporal-slab backends run in a process with
 * glibc malloc for the harness's own arrays (allocated before timing starts).
 */
#ifndef TSLAB_BENCH_H
#define TSLAB_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <x86intrin.h>

/* ---- Time: rdtsc, calibrated against CLOCK_MONOTONIC_RAW by the driver ------------------ */

/* Start of a timed region: earlier instructions retire before the TSC is read. */
static inline uint64_t bench_tsc_begin(void)
{
    _mm_lfence();
    uint64_t t = __rdtsc();
    _mm_lfence();
    return t;
}
/* End of a timed region: rdtscp waits for earlier instructions; lfence keeps later ones out. */
static inline uint64_t bench_tsc_end(void)
{
    unsigned aux;
    uint64_t t = __rdtscp(&aux);
    _mm_lfence();
    return t;
}
/* Cheap read for whole-loop timing (ordering does not matter over millions of calls). */
static inline uint64_t bench_tsc(void) { return __rdtsc(); }

/* TSC ticks per nanosecond, measured over `ms` milliseconds of spinning. */
double bench_tsc_calibrate(int ms);
double bench_now_ns(void); /* CLOCK_MONOTONIC_RAW */

/* Keeps `p` (and every store before this point) observable: the compiler cannot drop an
 * allocation whose result reaches here, nor sink a store past it. */
static inline void bench_escape(const void *p) { __asm__ volatile("" : : "g"(p) : "memory"); }

/* ---- Random numbers: xorshift64*, index by multiply-shift (no division on the hot path) --- */
static inline uint64_t bench_rng(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * UINT64_C(2685821657736338717);
}
static inline uint32_t bench_rng_below(uint64_t *s, uint32_t n)
{
    return (uint32_t)(((bench_rng(s) >> 32) * (uint64_t)n) >> 32);
}

/* ---- Worker side ---------------------------------------------------------------------- */

typedef enum {
    BENCH_KIND_SYS,   /* malloc/free of whatever allocator the process has (glibc or preloaded) */
    BENCH_KIND_TSH,   /* tslab_alloc / tslab_free (handle API) */
    BENCH_KIND_TSM,   /* tslab_malloc / tslab_free_ptr */
    BENCH_KIND_FLOOR, /* inline thread-local free list: the physical floor, for reference */
    BENCH_KIND_NULL,  /* no allocator at all: the loop's own cost (instruction counts) */
    BENCH_KIND_FLOORCAS,  /* the floor plus a per-slot state word: store on alloc, CAS on free */
    BENCH_KIND_FLOORCALL, /* the floor in a shared library, through its PLT (floor_call.c) */
} bench_kind;
/* Names of the kinds on the worker's command line, in bench_kind order. */
#define BENCH_KIND_NAMES                                                                           \
    {                                                                                              \
        "sys", "tsh", "tsm", "floor", "null", "floorcas", "floorcall"                              \
    }
/* References, not allocators: they hold objects for the tight loop only and have no ratio. */
static inline int bench_kind_is_floor(bench_kind k)
{
    return k == BENCH_KIND_FLOOR || k == BENCH_KIND_FLOORCAS || k == BENCH_KIND_FLOORCALL;
}

/* floor_call.c */
void *bench_floor_call_alloc(size_t size, uint64_t *tok);
bool bench_floor_call_free(uint64_t tok);

/* Parameters of one cell, as the driver passes them to a worker. */
typedef struct bench_params {
    const char *backend; /* backend name (selects the purge call for SYS) */
    bench_kind kind;
    const char *workload; /* tight, churn, latency, mt_churn, prodcons, rss, seq, render,
                             cycles, idle, lifetimes, survivor, survivor_known */
    size_t size;
    uint64_t n;        /* operations (pairs) */
    uint32_t live;     /* live objects (churn, latency, rss, mt_churn) */
    uint32_t cycles;   /* rss: cycles of turnover */
    uint32_t max_ms;   /* stop a measured loop after this long (0: run all n) */
    double tsc_ghz;    /* ticks per ns */
    bool callgrind;    /* toggle callgrind collection around the measured loop */
    bool scrape;       /* start the exporter and scrape it at 10 Hz meanwhile */
    bool exact_frees;  /* temporal-slab kinds: create the instance with exact_frees */
    bool background;   /* cycles/idle: start the allocator's background thread (temporal-slab:
                          tslab_background_start; jemalloc: mallctl background_thread) */
    bool groups;       /* workload j: allocate in groups (temporal-slab epochs,
                          mimalloc heaps, jemalloc arenas; lifetimes.h) */
    uint32_t decay_ms; /* temporal-slab instance's decay_ms (0: default); idle sleeps 3x it */
    bool sample_off;   /* temporal-slab kinds: sampling off (default: every 512 KiB) */
    int cpu;           /* >= 0: the measured thread runs on this CPU only (the exporter and
                          scraper threads, started first, keep every CPU) */
    uint64_t seed;
} bench_params;

/* Runs one cell and prints its results ("key value" lines) on stdout; 0 on success. */
int bench_worker_run(const bench_params *p);
/* Prints one result line (emit.c). */
void bench_emit(const char *key, double value);

/* Telemetry hooks (worker_telemetry.c; stubs when telemetry is not built). */
bool bench_telemetry_available(void);
/* Starts the exporter on an ephemeral port and a thread that GETs /metrics every 100 ms. */
int bench_scrape_start(void *tslab_instance);
/* Stops both; returns the number of successful scrapes. */
long bench_scrape_stop(void);
/* render workload: times tslab_metrics_render; prints results. */
int bench_render_run(const bench_params *p);

/* qsort comparison of doubles, ascending (the driver's medians, the scrape latencies). */
static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* ---- Driver side ---------------------------------------------------------------------- */
int bench_driver_main(int argc, char **argv, const char *self_path);

#endif /* TSLAB_BENCH_H */
