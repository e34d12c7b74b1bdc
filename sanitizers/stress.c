/* SPDX-License-Identifier: MIT */
/* tslab-stress: the multi-threaded safety stress that users run under ThreadSanitizer (and ASan,
 * UBSan, Valgrind) in their own CI to show that linking temporal-slab adds no races.
 *
 * N worker threads (default 8) allocate and free objects of random sizes across every class of two
 * allocator instances, through both APIs (handles and malloc-style, with calloc, realloc and mixed
 * handle/pointer frees). Every object carries its owner's stamp (thread, sequence number, instance,
 * API, size) at its start and its end, checked on every free. About a quarter of the frees cross
 * threads: objects are handed over through a shared transfer array (atomic exchange), and the
 * thread that takes one out checks the stamp and frees it. Rejected frees are provoked on purpose
 * (double and foreign handle frees, interior and foreign pointers, garbage handles) and each must
 * return false. One extra thread reads snapshots (tslab_stats_read) the whole time, checks that
 * every counter is monotonic and live == allocations - frees, and renders the Prometheus text
 * (tslab_metrics_render) when built with the telemetry library.
 *
 * Epochs on instance 0: an eighth of its allocations go into a shared epoch that the observer
 * thread replaces (open a new one, close the old) all the time, so allocations race closes and
 * objects of closed epochs are freed later, across threads; and now and then a worker fills a
 * private epoch, frees some of it and destroys the rest, then checks that the destroyed
 * objects' handles are rejected.
 *
 * At the end the counters must match what the workers did exactly: allocations and frees as
 * counted by the workers, rejections as provoked, zero live objects, no partial or full slab,
 * every epoch label's allocations equal to its frees and no live object left in a closed epoch.
 * Exit status 0 = every check passed. Any failed check aborts (so sanitizers print a stack).
 */
#define _GNU_SOURCE
#include "stress_common.h"

#include <tslab.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#ifdef TSLAB_STRESS_TELEMETRY
#include <tslab_telemetry.h>
#endif

enum { API_HANDLE = 1, API_MALLOC = 2 };
#define STAMP_MAGIC 0x5eed5eed00000000ULL
#define TAIL_MAGIC 0xa5a5a5a5a5a5a5a5ULL
#define XFER_SLOTS 4096
#define MIN_SIZE 32 /* header (24 bytes) + tail (8 bytes) */
#define INSTANCES 2

/* At the start of every object. */
typedef struct objhdr {
    uint64_t stamp;  /* (owner thread + 1) << 40 | per-thread sequence, xor STAMP_MAGIC */
    uint64_t handle; /* handle API: the handle; malloc API: 0 */
    uint32_t size;   /* requested size */
    uint16_t inst;   /* instance index */
    uint16_t api;    /* API_HANDLE or API_MALLOC */
} objhdr;

typedef struct rec {
    objhdr *p;
    uint64_t stamp;
} rec;

typedef struct counts {
    uint64_t allocs[INSTANCES];
    uint64_t frees[INSTANCES];
    uint64_t rejections[INSTANCES]; /* frees we provoked that had to return false */
    uint64_t alloc_failures;
    uint64_t cross_frees;
    uint64_t all_frees;
    uint64_t reallocs;
    uint64_t ops;
} counts;

static struct {
    unsigned threads;
    uint64_t ops;
    unsigned live;
    uint64_t seed;
    bool render;
    bool quiet;
} opt = {8, 20000000, 256, 1, true, false};

static tslab *inst[INSTANCES];
static size_t inst_classes[INSTANCES];
static size_t inst_size[INSTANCES][TSLAB_CLASSES_MAX];
static _Atomic(objhdr *) xfer[XFER_SLOTS];
static _Atomic tslab_epoch shared_epoch; /* instance 0's current shared epoch */
static atomic_bool workers_done;
static pthread_barrier_t start_barrier;

typedef struct worker {
    pthread_t th;
    unsigned id;
    uint64_t rng;
    uint64_t seq;
    rec *live;
    unsigned nlive;
    counts c;
} worker;

static void write_stamp(objhdr *o, uint64_t stamp, uint64_t handle, uint32_t size, unsigned in,
                        unsigned api)
{
    o->stamp = stamp;
    o->handle = handle;
    o->size = size;
    o->inst = (uint16_t)in;
    o->api = (uint16_t)api;
    uint64_t tail = stamp ^ TAIL_MAGIC;
    memcpy((char *)o + size - sizeof tail, &tail, sizeof tail);
}

static void check_stamp(const objhdr *o, uint64_t expect_stamp /* 0 = unknown */)
{
    SAN_CHECK(o->stamp != 0 && (o->stamp ^ STAMP_MAGIC) >> 40 != 0,
              "object %p has no owner stamp (%#" PRIx64 ")", (const void *)o, o->stamp);
    if (expect_stamp)
        SAN_CHECK(o->stamp == expect_stamp,
                  "object %p: stamp %#" PRIx64 ", expected %#" PRIx64
                  " (someone else wrote it: slot handed out twice?)",
                  (const void *)o, o->stamp, expect_stamp);
    SAN_CHECK(o->inst < INSTANCES && (o->api == API_HANDLE || o->api == API_MALLOC) &&
                  o->size >= MIN_SIZE,
              "object %p: corrupt header", (const void *)o);
    uint64_t tail;
    memcpy(&tail, (const char *)o + o->size - sizeof tail, sizeof tail);
    SAN_CHECK(tail == (o->stamp ^ TAIL_MAGIC), "object %p: tail stamp overwritten",
              (const void *)o);
}

static size_t pick_size(worker *w, unsigned in)
{
    size_t c = san_rng_next(&w->rng) % inst_classes[in];
    size_t lo = c ? inst_size[in][c - 1] + 1 : 1;
    size_t hi = inst_size[in][c];
    size_t s = lo + san_rng_next(&w->rng) % (hi - lo + 1);
    return s < MIN_SIZE ? MIN_SIZE : s;
}

static size_t class_of(unsigned in, size_t size)
{
    for (size_t i = 0; i < inst_classes[in]; i++)
        if (inst_size[in][i] >= size)
            return inst_size[in][i];
    return 0;
}

static void check_alignment(const void *p, unsigned in, size_t size)
{
    size_t cls = class_of(in, size);
    uintptr_t align = cls % 16 == 0 ? 16 : 8;
    SAN_CHECK((uintptr_t)p % align == 0, "%p (class %zu) is not %zu-byte aligned", p, cls,
              (size_t)align);
}

static void do_alloc(worker *w)
{
    unsigned in = san_rng_next(&w->rng) % 4 == 0 ? 1 : 0;
    tslab *a = inst[in];
    size_t size = pick_size(w, in);
    uint64_t stamp = (((uint64_t)w->id + 1) << 40 | ++w->seq) ^ STAMP_MAGIC;
    unsigned r = san_rng_next(&w->rng) % 100;
    objhdr *o;
    tslab_handle h = 0;
    unsigned api;
    if (r < 45) {
        api = API_HANDLE;
        o = tslab_alloc(a, size, &h);
        if (o) {
            SAN_CHECK(h != TSLAB_HANDLE_NONE, "tslab_alloc gave handle 0");
            if (san_rng_next(&w->rng) % 16 == 0)
                SAN_CHECK(tslab_handle_ptr(a, h) == o, "tslab_handle_ptr(live) != object");
        }
    } else {
        api = API_MALLOC;
        if (in == 0 && r < 52) {
            /* The shared epoch, which the observer may close at any moment: ESHUTDOWN then, and
             * the object goes to the default epoch instead. */
            tslab_epoch e = atomic_load_explicit(&shared_epoch, memory_order_acquire);
            o = tslab_malloc_epoch(a, e, size);
            if (!o) {
                SAN_CHECK(errno == ESHUTDOWN || errno == ENOMEM,
                          "epoch allocation failed with errno %d", errno);
                o = tslab_malloc(a, size);
            }
        } else if (r < 80)
            o = tslab_malloc(a, size);
        else if (r < 90)
            o = tslab_realloc(a, NULL, size);
        else {
            o = tslab_calloc(a, 1, size);
            if (o) {
                const unsigned char *b = (const unsigned char *)o;
                for (size_t i = 0; i < MIN_SIZE; i++)
                    SAN_CHECK(b[i] == 0, "calloc byte %zu not zero", i);
                for (size_t i = size - 8; i < size; i++)
                    SAN_CHECK(b[i] == 0, "calloc byte %zu not zero", i);
            }
        }
        if (o && san_rng_next(&w->rng) % 16 == 0)
            SAN_CHECK(tslab_usable_size(a, o) == class_of(in, size), "usable size %zu for %zu",
                      tslab_usable_size(a, o), size);
    }
    if (!o) {
        SAN_CHECK(errno == ENOMEM, "allocation of %zu failed with errno %d", size, errno);
        w->c.alloc_failures++;
        return;
    }
    check_alignment(o, in, size);
    write_stamp(o, stamp, h, (uint32_t)size, in, api);
    w->c.allocs[in]++;
    w->c.ops++;
    w->live[w->nlive++] = (rec){o, stamp};
}

/* Frees an object we hold (our own or one taken from the transfer array), provoking rejected
 * frees around it now and then. */
static void free_object(worker *w, objhdr *o)
{
    unsigned in = o->inst;
    tslab *a = inst[in];
    tslab *other = inst[in ^ 1];
    uint64_t r = san_rng_next(&w->rng);
    if ((o->stamp ^ STAMP_MAGIC) >> 40 != (uint64_t)w->id + 1)
        w->c.cross_frees++;
    w->c.all_frees++;
    w->c.ops++;
    if (o->api == API_HANDLE) {
        tslab_handle h = o->handle;
        if (r % 64 == 0) {
            SAN_CHECK(!tslab_free(other, h), "foreign handle accepted by the other instance");
            w->c.rejections[in ^ 1]++;
        }
        if (r % 10 == 1) { /* handle object freed through the pointer API */
            SAN_CHECK(tslab_ptr_handle(a, o) == h, "tslab_ptr_handle disagrees with the handle");
            SAN_CHECK(tslab_free_ptr(a, o), "tslab_free_ptr of a live handle object failed");
        } else {
            SAN_CHECK(tslab_free(a, h), "tslab_free of a live handle failed");
        }
        w->c.frees[in]++;
        if (r % 32 == 2) { /* double free (or stale, if the slot was reused meanwhile) */
            SAN_CHECK(!tslab_free(a, h), "double free of a handle accepted");
            w->c.rejections[in]++;
        }
        return;
    }
    if (r % 64 == 3) {
        SAN_CHECK(!tslab_free_ptr(a, (char *)o + 8), "interior pointer accepted");
        w->c.rejections[in]++;
    }
    if (r % 64 == 4) {
        int local;
        SAN_CHECK(!tslab_free_ptr(a, &local), "stack pointer accepted");
        w->c.rejections[in]++;
    }
    if (r % 64 == 5) {
        SAN_CHECK(!tslab_free_ptr(other, o), "pointer of the other instance accepted");
        w->c.rejections[in ^ 1]++;
    }
    if (r % 256 == 6) { /* garbage handle: false, or (about 2^-40) exactly the object it names */
        uint64_t g = san_rng_next(&w->rng);
        SAN_CHECK(!tslab_free(a, g), "garbage handle %#" PRIx64 " accepted", g);
        w->c.rejections[in]++;
    }
    if (r % 10 == 7) { /* malloc object freed through the handle API */
        tslab_handle h = tslab_ptr_handle(a, o);
        SAN_CHECK(h != TSLAB_HANDLE_NONE, "tslab_ptr_handle of a live object gave 0");
        SAN_CHECK(tslab_free(a, h), "tslab_free of a live object's handle failed");
    } else {
        SAN_CHECK(tslab_free_ptr(a, o), "tslab_free_ptr of a live object failed");
    }
    w->c.frees[in]++;
}

static void do_realloc(worker *w, rec *x)
{
    objhdr *o = x->p;
    unsigned in = o->inst;
    size_t size = pick_size(w, in);
    uint64_t stamp = o->stamp;
    uint32_t old_size = o->size;
    objhdr *n = tslab_realloc(inst[in], o, size);
    if (!n) {
        SAN_CHECK(errno == ENOMEM, "realloc failed with errno %d", errno);
        w->c.alloc_failures++;
        check_stamp(o, stamp);
        return;
    }
    SAN_CHECK(n->stamp == stamp && n->size == old_size && n->inst == in && n->api == API_MALLOC,
              "realloc lost the contents");
    check_alignment(n, in, size);
    if (n != o) { /* moved: one allocation and one free */
        w->c.allocs[in]++;
        w->c.frees[in]++;
    }
    write_stamp(n, stamp, 0, (uint32_t)size, in, API_MALLOC);
    x->p = n;
    w->c.reallocs++;
    w->c.ops++;
}

static void do_free(worker *w)
{
    unsigned i = (unsigned)(san_rng_next(&w->rng) % w->nlive);
    rec x = w->live[i];
    check_stamp(x.p, x.stamp);
    unsigned r = (unsigned)(san_rng_next(&w->rng) % 100);
    if (r < 4 && x.p->api == API_MALLOC) {
        do_realloc(w, &w->live[i]);
        return;
    }
    w->live[i] = w->live[--w->nlive];
    if (r < 36) {
        /* Hand it over: whoever takes it out of the array frees it. */
        unsigned s = (unsigned)(san_rng_next(&w->rng) % XFER_SLOTS);
        objhdr *old = atomic_exchange_explicit(&xfer[s], x.p, memory_order_acq_rel);
        if (old) {
            check_stamp(old, 0);
            if ((old->stamp ^ STAMP_MAGIC) >> 40 == (uint64_t)w->id + 1)
                w->live[w->nlive++] = (rec){old, old->stamp}; /* our own: keep it */
            else
                free_object(w, old);
        }
        return;
    }
    free_object(w, x.p);
}

/* A private epoch on instance 0: filled, partly freed, the rest destroyed; the destroyed
 * objects' handles must then be refused. */
static void private_epoch(worker *w)
{
    tslab *a = inst[0];
    tslab_epoch e = tslab_epoch_open(a, "private");
    if (e == 0) {
        SAN_CHECK(errno == EAGAIN, "tslab_epoch_open failed with errno %d", errno);
        return;
    }
    tslab_handle h[32];
    unsigned n = 1 + (unsigned)(san_rng_next(&w->rng) % 32), made = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t size = pick_size(w, 0);
        objhdr *o = tslab_alloc_epoch(a, e, size, &h[made]);
        if (!o) {
            SAN_CHECK(errno == ENOMEM, "private epoch allocation failed with errno %d", errno);
            w->c.alloc_failures++;
            continue;
        }
        write_stamp(o, (((uint64_t)w->id + 1) << 40 | ++w->seq) ^ STAMP_MAGIC, h[made],
                    (uint32_t)size, 0, API_HANDLE);
        made++;
    }
    w->c.allocs[0] += made;
    unsigned kept = 0;
    for (unsigned i = 0; i < made; i++) {
        if (san_rng_next(&w->rng) % 2) {
            SAN_CHECK(tslab_free(a, h[i]), "free of a private epoch object failed");
            w->c.frees[0]++;
        } else {
            h[kept++] = h[i];
        }
    }
    SAN_CHECK(tslab_epoch_destroy(a, e) == 0, "tslab_epoch_destroy failed");
    w->c.frees[0] += kept; /* the destroy freed them */
    for (unsigned i = 0; i < kept; i++)
        SAN_CHECK(!tslab_free(a, h[i]), "a destroyed epoch's handle was accepted");
    w->c.rejections[0] += kept;
    SAN_CHECK(tslab_epoch_destroy(a, e) == -EINVAL, "a destroyed epoch's id was accepted");
    w->c.ops++;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    uint64_t quota = opt.ops / opt.threads;
    pthread_barrier_wait(&start_barrier);
    while (w->c.ops < quota) {
        unsigned r = (unsigned)(san_rng_next(&w->rng) % 100);
        if (r == 99 && san_rng_next(&w->rng) % 64 == 0)
            private_epoch(w);
        else if (w->nlive == 0 || (w->nlive < opt.live && r < 50))
            do_alloc(w);
        else
            do_free(w);
    }
    while (w->nlive) {
        rec x = w->live[--w->nlive];
        check_stamp(x.p, x.stamp);
        free_object(w, x.p);
    }
    return NULL;
}

/* ---- the snapshot / render thread -------------------------------------------------------- */

#define IS_COUNTER_COUNTER 1
#define IS_COUNTER_GAUGE 0

typedef struct observer {
    pthread_t th;
    uint64_t snapshots;
    uint64_t renders;
    uint64_t render_bytes;
} observer;

static void check_snapshot(const tslab_stats *prev, const tslab_stats *cur, unsigned in)
{
    SAN_CHECK(cur->version == TSLAB_STATS_VERSION, "snapshot version %u", cur->version);
    SAN_CHECK(cur->class_count == inst_classes[in], "class_count %u", cur->class_count);
    for (size_t c = 0; c < cur->class_count; c++) {
        const tslab_class_stats *p = &prev->classes[c], *s = &cur->classes[c];
        SAN_CHECK(s->object_size == inst_size[in][c], "class %zu size %" PRIu64, c, s->object_size);
        SAN_CHECK(s->frees <= s->allocations,
                  "instance %u class %zu: frees %" PRIu64 " > allocations %" PRIu64, in, c,
                  s->frees, s->allocations);
        SAN_CHECK(s->live_objects == s->allocations - s->frees,
                  "instance %u class %zu: live %" PRIu64 " != %" PRIu64 " - %" PRIu64, in, c,
                  s->live_objects, s->allocations, s->frees);
#define CHECK_MONO(field, source, type, metric, lk, lv, help)                                      \
    if (IS_COUNTER_##type)                                                                         \
        SAN_CHECK(s->field >= p->field,                                                            \
                  "instance %u class %zu: counter " #field " went backwards (%" PRIu64             \
                  " -> %" PRIu64 ")",                                                              \
                  in, c, p->field, s->field);
        TSLAB_CLASS_STATS(CHECK_MONO)
    }
    const tslab_class_stats *p = &prev->unattributed, *s = &cur->unattributed;
    size_t c = SIZE_MAX;
    TSLAB_CLASS_STATS(CHECK_MONO)
#undef CHECK_MONO
}

static void *observer_main(void *arg)
{
    observer *ob = arg;
    static tslab_stats prev[INSTANCES], cur[INSTANCES];
    for (unsigned i = 0; i < INSTANCES; i++)
        SAN_CHECK(tslab_stats_read(inst[i], &prev[i]) == 0, "tslab_stats_read failed");
    pthread_barrier_wait(&start_barrier);
    do {
        for (unsigned i = 0; i < INSTANCES; i++) {
            SAN_CHECK(tslab_stats_read(inst[i], &cur[i]) == 0, "tslab_stats_read failed");
            check_snapshot(&prev[i], &cur[i], i);
            prev[i] = cur[i];
        }
        ob->snapshots++;
        /* Memory over time under load: instance 1's soft limit and decay time change at run
         * time, racing the workers' slow paths and the maintenance thread. */
        if (ob->snapshots % 64 == 0) {
            SAN_CHECK(tslab_limit_set(inst[1], TSLAB_LIMIT_SOFT,
                                      (ob->snapshots / 64) % 2 ? 2u << 20 : 6u << 20) == 0,
                      "tslab_limit_set");
            SAN_CHECK(tslab_decay_set(inst[1], (ob->snapshots / 64) % 3) == 0, "tslab_decay_set");
        }
        /* A new shared epoch; the old one is closed while workers may be allocating into it.
         * With every record taken (closed epochs that still hold objects) the old one stays. */
        if (ob->snapshots % 4 == 0) {
            tslab_epoch e = tslab_epoch_open(inst[0], "shared");
            if (e != 0) {
                tslab_epoch old = atomic_exchange_explicit(&shared_epoch, e, memory_order_acq_rel);
                SAN_CHECK(tslab_epoch_close(inst[0], old) == 0, "tslab_epoch_close failed");
            } else {
                SAN_CHECK(errno == EAGAIN, "tslab_epoch_open failed with errno %d", errno);
            }
        }
#ifdef TSLAB_STRESS_TELEMETRY
        if (opt.render) {
            char *text = NULL;
            size_t len = 0;
            int rc = tslab_metrics_render((tslab *const *)inst, INSTANCES, TSLAB_FORMAT_PROMETHEUS,
                                          &text, &len);
            SAN_CHECK(rc == 0 && text && len > 0, "tslab_metrics_render failed (%d)", rc);
            SAN_CHECK(strstr(text, "tslab_allocations_total") != NULL,
                      "rendered text lacks tslab_allocations_total");
            free(text);
            ob->renders++;
            ob->render_bytes = len;
        }
#endif
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    } while (!atomic_load_explicit(&workers_done, memory_order_acquire));
    return NULL;
}

/* ---- main ---------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: tslab-stress [options]\n"
               "  -t, --threads N   worker threads (default 8)\n"
               "  -n, --ops N       total operations, allocations + frees (default 20000000)\n"
               "  -l, --live N      objects each worker holds at most (default 256)\n"
               "  -s, --seed N      random seed (default 1)\n"
               "      --no-render   do not render /metrics text in the observer thread\n"
               "  -q, --quiet       print only the summary line\n"
               "Exit status 0 when every check passed.\n");
}

static uint64_t parse_u64(const char *s, const char *what)
{
    char *end;
    errno = 0;
    double d = strtod(s, &end); /* accepts 20e6 */
    if (errno || *end || d < 0 || d > 1e19) {
        fprintf(stderr, "tslab-stress: bad %s: %s\n", what, s);
        exit(2);
    }
    return (uint64_t)d;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"threads", required_argument, 0, 't'}, {"ops", required_argument, 0, 'n'},
        {"live", required_argument, 0, 'l'},    {"seed", required_argument, 0, 's'},
        {"no-render", no_argument, 0, 'R'},     {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "t:n:l:s:qh", longs, NULL)) != -1) {
        switch (ch) {
        case 't': opt.threads = (unsigned)parse_u64(optarg, "thread count"); break;
        case 'n': opt.ops = parse_u64(optarg, "operation count"); break;
        case 'l': opt.live = (unsigned)parse_u64(optarg, "live count"); break;
        case 's': opt.seed = parse_u64(optarg, "seed"); break;
        case 'R': opt.render = false; break;
        case 'q': opt.quiet = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (opt.threads == 0 || opt.threads > 1024 || opt.live == 0) {
        usage(stderr);
        return 2;
    }

    /* Instance 0: the default eight classes. Instance 1: odd and large classes, small slabs and a
     * slab cache of one, so emptied slabs go back to the OS all the time (decommit/recommit under
     * load). With no cache at all (TSLAB_CACHE_NONE) the madvise calls, each a TLB shoot-down
     * across the threads, would dominate the run (~0.7 ms each on a 2-core guest). Instance 1
     * also has exact_frees, so both free protocols run under the sanitizers: slabs owned by the
     * allocating thread (plain-store frees, remote bitmaps) and every free a CAS. It has a hard
     * limit (allocations beyond it fail with ENOMEM, which the workers accept), a soft limit and
     * a decay of 2 ms that the observer changes at run time, and the maintenance thread runs
     * throughout, releasing its decayed slabs while the workers allocate. It also samples
     * every allocation (sample_bytes 1), so the sampler's records, its side table and the stack
     * captures run under the sanitizers with every call; instance 0 samples at the default. */
    static const uint32_t sizes1[] = {32, 40, 1000, 4096, 20000, 65536};
    tslab_config c0 = {.name = "stress-default"};
    tslab_config c1 = {.name = "stress-large",
                       .sizes = sizes1,
                       .size_count = sizeof sizes1 / sizeof sizes1[0],
                       .slab_bytes = 16384,
                       .cache_slabs = 1,
                       .class_max_bytes = 256u << 20,
                       .exact_frees = true,
                       .decay_ms = 2,
                       .limit_soft = 4u << 20,
                       .limit_hard = 16u << 20,
                       .sample_bytes = 1};
    inst[0] = tslab_create(&c0);
    inst[1] = tslab_create(&c1);
    SAN_CHECK(inst[0] && inst[1], "tslab_create failed: errno %d", errno);
    atomic_store(&shared_epoch, tslab_epoch_open(inst[0], "shared"));
    SAN_CHECK(atomic_load(&shared_epoch) != 0, "tslab_epoch_open failed: errno %d", errno);
    SAN_CHECK(tslab_background_start() == 0, "tslab_background_start failed");
    for (unsigned i = 0; i < INSTANCES; i++) {
        inst_classes[i] = tslab_class_count(inst[i]);
        for (size_t c = 0; c < inst_classes[i]; c++)
            inst_size[i][c] = tslab_class_size(inst[i], c);
    }

    worker *ws = calloc(opt.threads, sizeof *ws);
    SAN_CHECK(ws != NULL, "out of memory");
    observer ob = {0};
    SAN_CHECK(pthread_barrier_init(&start_barrier, NULL, opt.threads + 1) == 0, "barrier");
    double t0 = san_now();
    for (unsigned i = 0; i < opt.threads; i++) {
        ws[i].id = i;
        ws[i].rng = san_rng_seed(opt.seed * 1000003u + i);
        ws[i].live = calloc(opt.live, sizeof(rec));
        SAN_CHECK(ws[i].live != NULL, "out of memory");
    }
    SAN_CHECK(pthread_create(&ob.th, NULL, observer_main, &ob) == 0, "pthread_create");
    for (unsigned i = 0; i < opt.threads; i++)
        SAN_CHECK(pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) == 0, "pthread_create");
    for (unsigned i = 0; i < opt.threads; i++)
        pthread_join(ws[i].th, NULL);
    atomic_store_explicit(&workers_done, true, memory_order_release);
    pthread_join(ob.th, NULL);
    SAN_CHECK(tslab_background_stop() == 0, "tslab_background_stop failed");

    /* Drain the transfer array: main frees what is left in it. */
    worker drain = {.id = opt.threads, .rng = san_rng_seed(opt.seed ^ 0xd1a1)};
    for (unsigned s = 0; s < XFER_SLOTS; s++) {
        objhdr *o = atomic_exchange(&xfer[s], NULL);
        if (o) {
            check_stamp(o, 0);
            free_object(&drain, o);
        }
    }
    double secs = san_now() - t0;

    counts tot = drain.c;
    for (unsigned i = 0; i < opt.threads; i++) {
        counts *c = &ws[i].c;
        for (unsigned k = 0; k < INSTANCES; k++) {
            tot.allocs[k] += c->allocs[k];
            tot.frees[k] += c->frees[k];
            tot.rejections[k] += c->rejections[k];
        }
        tot.alloc_failures += c->alloc_failures;
        tot.cross_frees += c->cross_frees;
        tot.all_frees += c->all_frees;
        tot.reallocs += c->reallocs;
        tot.ops += c->ops;
    }

    /* Final check: the counters agree exactly with what the workers did. */
    int bad = 0;
    for (unsigned k = 0; k < INSTANCES; k++) {
        tslab_flush(inst[k]);
        tslab_stats st;
        SAN_CHECK(tslab_stats_read(inst[k], &st) == 0, "tslab_stats_read");
        uint64_t al = 0, fr = 0, live = 0, rej = 0, busy_slabs = 0;
        for (size_t c = 0; c < st.class_count; c++) {
            const tslab_class_stats *s = &st.classes[c];
            al += s->allocations;
            fr += s->frees;
            live += s->live_objects;
            rej +=
                s->rejected_invalid + s->rejected_stale + s->rejected_double + s->rejected_foreign;
            busy_slabs += s->slabs_partial + s->slabs_full;
        }
        const tslab_class_stats *u = &st.unattributed;
        rej += u->rejected_invalid + u->rejected_stale + u->rejected_double + u->rejected_foreign;
        bool ok = al == tot.allocs[k] && fr == tot.frees[k] && live == 0 && al - fr == live &&
                  rej == tot.rejections[k] && busy_slabs == 0;
        /* Epochs: every object allocated into one was freed and counted, none is left live. */
        if (k == 0)
            SAN_CHECK(tslab_epoch_close(inst[0], atomic_load(&shared_epoch)) == 0, "close");
        tslab_epoch_stats es;
        SAN_CHECK(tslab_epoch_stats_get(inst[k], &es, sizeof es) == 0, "tslab_epoch_stats_get");
        for (uint32_t i = 0; i < es.label_count; i++) {
            const tslab_epoch_label_stats *l = &es.labels[i];
            bool eok = l->allocations == l->frees && l->closed_live_objects == 0 &&
                       l->open_epochs == 0 && l->opened == l->closed;
            if (!eok || !opt.quiet)
                printf("instance %-15s epochs \"%s\": opened %" PRIu64 ", closed %" PRIu64
                       ", destroyed %" PRIu64 ", allocations %" PRIu64 ", frees %" PRIu64 ": %s\n",
                       st.name, l->label, l->opened, l->closed, l->destroyed, l->allocations,
                       l->frees, eok ? "ok" : "MISMATCH");
            ok = ok && eok;
        }
        /* The sampler: instance 1 recorded every allocation and every free moved its record;
         * the rejection ring holds the last ones. */
        tslab_profile *prof;
        SAN_CHECK(tslab_profile_read(inst[k], &prof) == 0, "tslab_profile_read");
        uint64_t s_al = 0, s_fr = 0;
        for (size_t i = 0; i < prof->site_count; i++) {
            s_al += prof->sites[i].allocs;
            s_fr += prof->sites[i].frees;
        }
        tslab_profile_free(prof);
        ok = ok && s_al == s_fr && (k != 1 || s_al == al);
        static tslab_rejection ring[TSLAB_REJECTIONS_MAX];
        size_t nrej = tslab_rejections_read(inst[k], ring, TSLAB_REJECTIONS_MAX);
        ok = ok && nrej == (rej < TSLAB_REJECTIONS_MAX ? rej : TSLAB_REJECTIONS_MAX) &&
             (nrej == 0 || ring[nrej - 1].seq == rej);
        if (!ok || !opt.quiet)
            printf("instance %-15s sampled allocations %" PRIu64 ", their frees %" PRIu64
                   ", rejections recorded %zu\n",
                   st.name, s_al, s_fr, nrej);
        if (!ok || !opt.quiet)
            printf("instance %-15s allocations %" PRIu64 " (expected %" PRIu64 "), frees %" PRIu64
                   " (expected %" PRIu64 "), live %" PRIu64 ", rejections %" PRIu64
                   " (expected %" PRIu64 "), partial+full slabs %" PRIu64 ": %s\n",
                   st.name, al, tot.allocs[k], fr, tot.frees[k], live, rej, tot.rejections[k],
                   busy_slabs, ok ? "ok" : "MISMATCH");
        bad |= !ok;
    }

    uint64_t rejections = tot.rejections[0] + tot.rejections[1];
    printf("tslab-stress: %s: threads %u, ops %" PRIu64
           " in %.2f s (%.0f ops/s), allocations %" PRIu64 ", frees %" PRIu64
           ", cross-thread frees %.1f%%, reallocs %" PRIu64 ", rejected frees %" PRIu64
           " (all provoked, all rejected), allocation failures %" PRIu64 ", snapshots %" PRIu64
           ", renders %" PRIu64 "\n",
           bad ? "FAIL" : "PASS", opt.threads, tot.ops, secs, (double)tot.ops / secs,
           tot.allocs[0] + tot.allocs[1], tot.frees[0] + tot.frees[1],
           tot.all_frees ? 100.0 * (double)tot.cross_frees / (double)tot.all_frees : 0.0,
           tot.reallocs, rejections, tot.alloc_failures, ob.snapshots, ob.renders);

    for (unsigned i = 0; i < opt.threads; i++)
        free(ws[i].live);
    free(ws);
    pthread_barrier_destroy(&start_barrier);
    tslab_destroy(inst[0]);
    tslab_destroy(inst[1]);
    return bad ? 1 : 0;
}
