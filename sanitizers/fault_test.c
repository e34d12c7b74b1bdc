/* SPDX-License-Identifier: MIT */
/* Fault injection through the injectable OS layer (tslab_config.os).
 *
 * 1. A deterministic single-thread workload is run once to count the OS calls it makes. Then, for
 *    every k, it is run again with the k-th commit failing, with the k-th decommit failing, with
 *    commits k..k+15 failing (an outage), and with the k-th reserve failing. Each time:
 *    - every failed allocation is NULL with errno ENOMEM, every tslab_create failure NULL with
 *      ENOMEM, and every other allocation succeeds;
 *    - every live object keeps its contents (each is filled with its own pattern, checked byte
 *      by byte before it is freed);
 *    - work resumes: after the workload, with faults off, every class serves allocations again;
 *    - the counters agree: allocations and frees exact, live 0, os_failures == the commit and
 *      decommit failures injected;
 *    - nothing leaks: after tslab_destroy every reservation has been released (and ASan/Valgrind
 *      see no leaked metadata).
 * 2. Four threads churn while commit and decommit fail pseudo-randomly (one call in 6), then
 *    faults stop and all threads must allocate normally (run it under TSan for the error paths).
 *
 * Prints the number of fault points tried. Options: --stride N tries every N-th k (Valgrind).
 */
#define _GNU_SOURCE
#include "fault_os.h"
#include "stress_common.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

static const uint32_t sizes[] = {64, 256, 1024, 2000};
#define NCLASS (sizeof sizes / sizeof sizes[0])
#define MAXOBJ 1600

typedef struct obj {
    unsigned char *p;
    tslab_handle h; /* 0 = malloc API */
    uint32_t size;
    unsigned char fill;
} obj;

typedef struct run {
    tslab *a;
    fault_os fos;
    obj live[MAXOBJ];
    size_t n;
    uint64_t allocs, frees, enomem;
    uint64_t workload_calls[FOS_KINDS]; /* OS calls made by create + workload (faults armed) */
    unsigned seq;
} run;

static tslab_config config(fault_os *f)
{
    return (tslab_config){.name = "fault",
                          .sizes = sizes,
                          .size_count = NCLASS,
                          .slab_bytes = 4096,
                          .cache_slabs = 2,
                          .class_max_bytes = 16u << 20,
                          .os = &f->os};
}

static bool alloc_one(run *r, size_t cls, bool must_succeed)
{
    uint32_t size = sizes[cls] - (r->seq % 7);
    obj o = {.size = size, .fill = (unsigned char)(r->seq * 31 + 7)};
    if (r->seq++ % 2)
        o.p = tslab_alloc(r->a, size, &o.h);
    else
        o.p = tslab_malloc(r->a, size);
    if (!o.p) {
        SAN_CHECK(errno == ENOMEM, "allocation failed with errno %d, not ENOMEM", errno);
        SAN_CHECK(!must_succeed, "allocation failed with faults off (class %zu)", cls);
        r->enomem++;
        return false;
    }
    memset(o.p, o.fill, size);
    r->live[r->n++] = o;
    r->allocs++;
    return true;
}

static void free_at(run *r, size_t i)
{
    obj o = r->live[i];
    for (uint32_t b = 0; b < o.size; b++)
        SAN_CHECK(o.p[b] == o.fill, "object %p byte %u is %#x, expected %#x (corrupted)",
                  (void *)o.p, b, o.p[b], o.fill);
    if (o.h)
        SAN_CHECK(tslab_free(r->a, o.h), "tslab_free of a live handle failed");
    else
        SAN_CHECK(tslab_free_ptr(r->a, o.p), "tslab_free_ptr of a live object failed");
    r->frees++;
    r->live[i] = r->live[--r->n];
}

static void free_all(run *r)
{
    while (r->n)
        free_at(r, r->n - 1);
}

/* The workload: ~1400 allocations over four classes, 4 KiB slabs, a cache of two empty slabs per
 * class, so it commits new slabs, fills and empties them, hits and overflows the cache (decommit)
 * and purges. */
static void workload(run *r)
{
    for (int i = 0; i < 480; i++)
        alloc_one(r, (size_t)i % NCLASS, false);
    for (size_t i = r->n; i-- > 0;)
        if (i % 2)
            free_at(r, i);
    for (int i = 0; i < 320; i++)
        alloc_one(r, (size_t)(i / 80) % NCLASS, false);
    free_all(r);
    tslab_flush(r->a);
    int rc = tslab_purge(r->a);
    SAN_CHECK(rc == 0 || rc < 0, "purge");
    for (int i = 0; i < 320; i++)
        alloc_one(r, (size_t)(i * 7) % NCLASS, false);
    for (size_t i = r->n; i-- > 0;)
        if (i % 3)
            free_at(r, i);
    for (int i = 0; i < 260; i++)
        alloc_one(r, (size_t)i % NCLASS, false);
    free_all(r);
    tslab_flush(r->a);
    (void)tslab_purge(r->a);
}

/* Returns false when tslab_create itself failed (checked to be ENOMEM, nothing left reserved). */
static bool run_once(run *r, bool expect_create)
{
    tslab_config cfg = config(&r->fos);
    r->n = 0;
    r->allocs = r->frees = r->enomem = 0;
    r->seq = 0;
    r->a = tslab_create(&cfg);
    if (!r->a) {
        SAN_CHECK(errno == ENOMEM, "tslab_create failed with errno %d, not ENOMEM", errno);
        SAN_CHECK(!expect_create, "tslab_create failed without an injected fault");
        SAN_CHECK(atomic_load(&r->fos.reserved_bytes) == 0 && !atomic_load(&r->fos.bad_release),
                  "failed tslab_create left %" PRId64 " bytes reserved",
                  (int64_t)atomic_load(&r->fos.reserved_bytes));
        return false;
    }
    workload(r);
    /* Work resumes: faults off, every class serves 64 objects again. */
    fos_disarm(&r->fos);
    for (int k = 0; k < FOS_KINDS; k++)
        r->workload_calls[k] = fos_calls(&r->fos, k);
    for (int i = 0; i < 64 * (int)NCLASS; i++)
        alloc_one(r, (size_t)i % NCLASS, true);
    free_all(r);
    tslab_flush(r->a);

    tslab_stats st;
    SAN_CHECK(tslab_stats_read(r->a, &st) == 0, "stats");
    uint64_t al = 0, fr = 0, live = 0, osf = 0, rej = 0;
    for (size_t c = 0; c < st.class_count; c++) {
        const tslab_class_stats *s = &st.classes[c];
        al += s->allocations;
        fr += s->frees;
        live += s->live_objects;
        osf += s->os_failures;
        rej += s->rejected_invalid + s->rejected_stale + s->rejected_double + s->rejected_foreign;
    }
    osf += st.unattributed.os_failures;
    uint64_t injected = fos_failures(&r->fos, FOS_COMMIT) + fos_failures(&r->fos, FOS_DECOMMIT);
    SAN_CHECK(al == r->allocs && fr == r->frees && live == 0 && rej == 0,
              "counters: allocations %" PRIu64 "/%" PRIu64 " frees %" PRIu64 "/%" PRIu64
              " live %" PRIu64 " rejections %" PRIu64,
              al, r->allocs, fr, r->frees, live, rej);
    SAN_CHECK(osf == injected,
              "os_failures %" PRIu64 " but %" PRIu64 " commit/decommit failures were injected", osf,
              injected);
    tslab_destroy(r->a);
    r->a = NULL;
    SAN_CHECK(atomic_load(&r->fos.reserved_bytes) == 0 && atomic_load(&r->fos.reservations) == 0 &&
                  !atomic_load(&r->fos.bad_release),
              "tslab_destroy left %" PRId64 " bytes reserved",
              (int64_t)atomic_load(&r->fos.reserved_bytes));
    return true;
}

/* ---- threaded run with random faults ------------------------------------------------------ */

typedef struct tharg {
    tslab *a;
    uint64_t rng;
    unsigned iters;
    uint64_t allocs, frees, enomem;
    pthread_barrier_t *phase;
} tharg;

static void churn(tharg *t, unsigned iters, bool faults_on)
{
    enum { LIVE = 128 };
    void *p[LIVE] = {0};
    uint32_t sz[LIVE] = {0};
    for (unsigned i = 0; i < iters; i++) {
        if (i % 512 == 511)
            tslab_flush(t->a); /* empties slabs now and then: decommits under faults */
        unsigned k = (unsigned)(san_rng_next(&t->rng) % LIVE);
        if (p[k]) {
            unsigned char *b = p[k];
            SAN_CHECK(b[0] == (unsigned char)k && b[sz[k] - 1] == (unsigned char)k,
                      "object contents lost");
            SAN_CHECK(tslab_free_ptr(t->a, p[k]), "free of a live object failed");
            p[k] = NULL;
            t->frees++;
        } else {
            uint32_t s = sizes[san_rng_next(&t->rng) % NCLASS];
            p[k] = tslab_malloc(t->a, s);
            if (!p[k]) {
                SAN_CHECK(errno == ENOMEM, "errno %d", errno);
                SAN_CHECK(faults_on, "allocation failed with faults off");
                t->enomem++;
                continue;
            }
            memset(p[k], (int)k, s);
            sz[k] = s;
            t->allocs++;
        }
    }
    for (unsigned k = 0; k < LIVE; k++)
        if (p[k]) {
            SAN_CHECK(tslab_free_ptr(t->a, p[k]), "free of a live object failed");
            t->frees++;
        }
}

static void *thread_main(void *arg)
{
    tharg *t = arg;
    churn(t, t->iters, true);
    pthread_barrier_wait(t->phase); /* main disarms the faults */
    pthread_barrier_wait(t->phase);
    churn(t, t->iters / 4, false);
    return NULL;
}

static void threaded(unsigned iters, uint64_t *fault_points)
{
    enum { T = 4 };
    static fault_os fos;
    fos_init(&fos);
    fos.fail_one_in[FOS_COMMIT] = 6;
    fos.fail_one_in[FOS_DECOMMIT] = 6;
    tslab_config cfg = config(&fos);
    cfg.cache_slabs = TSLAB_CACHE_NONE;
    tslab *a = tslab_create(&cfg);
    SAN_CHECK(a != NULL, "tslab_create");
    pthread_barrier_t phase;
    pthread_barrier_init(&phase, NULL, T + 1);
    tharg t[T];
    pthread_t th[T];
    for (unsigned i = 0; i < T; i++) {
        t[i] = (tharg){.a = a, .rng = san_rng_seed(i + 77), .iters = iters, .phase = &phase};
        SAN_CHECK(pthread_create(&th[i], NULL, thread_main, &t[i]) == 0, "pthread_create");
    }
    pthread_barrier_wait(&phase);
    fos_disarm(&fos);
    pthread_barrier_wait(&phase);
    uint64_t al = 0, fr = 0, enomem = 0;
    for (unsigned i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        al += t[i].allocs;
        fr += t[i].frees;
        enomem += t[i].enomem;
    }
    pthread_barrier_destroy(&phase);
    tslab_stats st;
    SAN_CHECK(tslab_stats_read(a, &st) == 0, "stats");
    uint64_t sal = 0, sfr = 0, live = 0, osf = st.unattributed.os_failures;
    for (size_t c = 0; c < st.class_count; c++) {
        sal += st.classes[c].allocations;
        sfr += st.classes[c].frees;
        live += st.classes[c].live_objects;
        osf += st.classes[c].os_failures;
    }
    uint64_t injected = fos_failures(&fos, FOS_COMMIT) + fos_failures(&fos, FOS_DECOMMIT);
    SAN_CHECK(sal == al && sfr == fr && live == 0,
              "threaded counters: %" PRIu64 "/%" PRIu64 " allocations, %" PRIu64 "/%" PRIu64
              " frees, live %" PRIu64,
              sal, al, sfr, fr, live);
    SAN_CHECK(osf == injected, "threaded: os_failures %" PRIu64 ", injected %" PRIu64, osf,
              injected);
    tslab_destroy(a);
    SAN_CHECK(atomic_load(&fos.reserved_bytes) == 0, "threaded: reservation leaked");
    printf("threaded: 4 threads, %" PRIu64 " allocations, %" PRIu64 " ENOMEM, %" PRIu64
           " commit and %" PRIu64 " decommit failures injected, counted %" PRIu64 "\n",
           al, enomem, fos_failures(&fos, FOS_COMMIT), fos_failures(&fos, FOS_DECOMMIT), osf);
    *fault_points += injected;
}

int main(int argc, char **argv)
{
    uint64_t stride = 1;
    unsigned iters = 60000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--stride") && i + 1 < argc)
            stride = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            iters = (unsigned)strtoul(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: %s [--stride N] [--iters N]\n", argv[0]);
            return 2;
        }
    }
    if (stride == 0)
        stride = 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (getenv("FAULT_BASELINE_ONLY")) {
        static run b;
        for (int i = 0; i < 5; i++) {
            fos_init(&b.fos);
            run_once(&b, true);
            printf("baseline %d: reserve %" PRIu64 " commit %" PRIu64 " decommit %" PRIu64 "\n", i,
                   fos_calls(&b.fos, 0), fos_calls(&b.fos, 1), fos_calls(&b.fos, 2));
        }
        return 0;
    }
    double t0 = san_now();
    static run r;

    /* Baseline: count the calls. */
    fos_init(&r.fos);
    SAN_CHECK(run_once(&r, true), "baseline run failed");
    uint64_t base[FOS_KINDS];
    for (int k = 0; k < FOS_KINDS; k++)
        base[k] = r.workload_calls[k];
    printf("baseline workload: %" PRIu64 " allocations; OS calls: %" PRIu64 " reserve, %" PRIu64
           " commit, %" PRIu64 " decommit\n",
           r.allocs, base[FOS_RESERVE], base[FOS_COMMIT], base[FOS_DECOMMIT]);
    SAN_CHECK(base[FOS_COMMIT] > 0, "the workload made no commit call: is tslab_config.os used?");

    uint64_t points = 0, create_refused = 0, enomem = 0;
    struct {
        int kind;
        uint64_t len;
        const char *what;
    } plans[] = {{FOS_COMMIT, 1, "k-th commit fails"},
                 {FOS_DECOMMIT, 1, "k-th decommit fails"},
                 {FOS_COMMIT, 16, "commits k..k+15 fail"},
                 {FOS_RESERVE, 1, "k-th reserve fails"}};
    for (size_t pl = 0; pl < sizeof plans / sizeof plans[0]; pl++) {
        uint64_t tried = 0, refused = 0, failed_allocs = 0;
        uint64_t k0 = getenv("FAULT_K0") ? strtoull(getenv("FAULT_K0"), NULL, 10) : 1;
        for (uint64_t k = k0; k <= base[plans[pl].kind]; k += stride) {
            fos_init(&r.fos);
            r.fos.fail_from[plans[pl].kind] = k;
            r.fos.fail_len[plans[pl].kind] = plans[pl].len;
            if (!run_once(&r, false))
                refused++;
            else
                failed_allocs += r.enomem;
            SAN_CHECK(fos_failures(&r.fos, plans[pl].kind) > 0,
                      "fault %s (k=%" PRIu64
                      ") was never reached: the workload is not deterministic",
                      plans[pl].what, k);
            tried++;
        }
        printf("%-22s k = 1..%" PRIu64 " (stride %" PRIu64 "): %" PRIu64 " runs, %" PRIu64
               " tslab_create refused (ENOMEM), %" PRIu64 " allocations refused (ENOMEM)\n",
               plans[pl].what, base[plans[pl].kind], stride, tried, refused, failed_allocs);
        points += tried;
        create_refused += refused;
        enomem += failed_allocs;
    }

    /* Reserve failing at create, directly. */
    fos_init(&r.fos);
    r.fos.fail_from[FOS_RESERVE] = 1;
    r.fos.fail_len[FOS_RESERVE] = UINT64_MAX / 2;
    {
        tslab_config cfg = config(&r.fos);
        errno = 0;
        tslab *a = tslab_create(&cfg);
        SAN_CHECK(a == NULL && errno == ENOMEM, "tslab_create with no address space: %p errno %d",
                  (void *)a, errno);
        points++;
    }

    threaded(iters, &points);
    printf("fault-injection: PASS: %" PRIu64 " fault points tried, %" PRIu64
           " creates refused, %" PRIu64 " allocations refused with ENOMEM, in %.1f s\n",
           points, create_refused, enomem, san_now() - t0);
    return 0;
}
