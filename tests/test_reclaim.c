/* SPDX-License-Identifier: MIT */
/* Idle reclaim (allocator/src/reclaim.c), white-box: the test runs the maintenance pass itself
 * (tslab__maintain_pass, one tick of tslab_background_start's thread) on an injected clock, so no
 * sleep stands for synchronisation. A thread that filled its cache and then blocks (alive, idle)
 * loses every cached slot but the top one of each class, and its remote batch, within the stated
 * bound and not before; its slabs then decay; when it wakes it reconciles and goes on with no
 * slot handed out twice. The maintenance thread itself does the same. Then four threads churn
 * stamped objects (with cross-thread frees and pauses) while a collector thread runs the pass in a
 * loop: every stamp intact, the books exact. */
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <tslab.h>

#include "testhelper.h"

#define MS UINT64_C(1000000)
#define DECAY_MS 8
/* The instance's idle time: a quarter of its decay time (maintain.c), within [1 ms, 1 s]. */
#define IDLE_NS (DECAY_MS * MS / 4)
#define SLAB ((uint64_t)65536)

static _Atomic uint64_t fake_now = 1000 * MS;
static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return atomic_load(&fake_now);
}
static void *c_reserve(void *ctx, size_t n) { return tslab_os_default()->reserve(ctx, n); }
static int c_commit(void *ctx, void *p, size_t n) { return tslab_os_default()->commit(ctx, p, n); }
static int c_decommit(void *ctx, void *p, size_t n)
{
    return tslab_os_default()->decommit(ctx, p, n);
}
static void c_release(void *ctx, void *p, size_t n) { tslab_os_default()->release(ctx, p, n); }
static const tslab_os fake_os = {c_reserve, c_commit, c_decommit, c_release, NULL, fake_clock};
static void advance(uint64_t ns) { atomic_fetch_add(&fake_now, ns); }

static const uint32_t size256[] = {256};

static tslab *mk(void)
{
    tslab_config cfg = {.sizes = size256, .size_count = 1, .os = &fake_os, .decay_ms = DECAY_MS};
    tslab *a = tslab_create(&cfg);
    REQUIRE(a != NULL);
    return a;
}

static tslab_class_stats stats0(tslab *a) { return test_class_stats(a, 0); }

/* The only cache of `a` other than the caller's, or NULL (white-box, under tc_lock). */
static tslab__tcache *other_cache(tslab *a)
{
    tslab__tcache *mine =
        tslab__tls != NULL && tslab__tls[a->tag].uid == a->uid ? tslab__tls[a->tag].tc : NULL;
    tslab__tcache *found = NULL;
    pthread_mutex_lock(&a->tc_lock);
    for (tslab__tcache *tc = a->tcaches; tc != NULL; tc = tc->next)
        if (tc != mine)
            found = tc;
    pthread_mutex_unlock(&a->tc_lock);
    return found;
}

/* ---- One idle worker: it runs a step when told, then waits (blocked, alive) ---- */
enum { STEP_NONE, STEP_FILL, STEP_REMOTE, STEP_AFTER, STEP_EFILL, STEP_EAFTER, STEP_EXIT };
enum { NFILL = 60, NAFTER = 500 };
#define FILLED (tslab_config_quarantine ? 12u : 48u) /* the cache after STEP_FILL */
typedef struct worker {
    tslab *a;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int step, done; /* the step asked for; the last step finished */
    tslab_handle mine[NFILL];
    tslab_handle theirs[40]; /* objects of the main thread, freed here (remote) */
    unsigned bad;            /* STEP_AFTER: objects handed out twice or not writable */
    tslab_epoch ep;          /* STEP_EFILL / STEP_EAFTER: the epoch it allocates into */
    int eafter_errno;        /* STEP_EAFTER: errno of its allocation into the closed epoch */
} worker;

static void after_wake(worker *w)
{
    /* Reconcile: the first call finds its entry revoked and takes the cache back. Every object
     * gets a stamp; a slot handed out twice would carry the later one. */
    static tslab_handle h[NAFTER];
    for (unsigned i = 0; i < NAFTER; i++) {
        uint32_t *p = tslab_alloc(w->a, 256, &h[i]);
        if (p == NULL) {
            w->bad++;
            continue;
        }
        p[0] = i;
        p[63] = ~i;
    }
    for (unsigned i = 0; i < NAFTER; i++) {
        uint32_t *p = tslab_handle_ptr(w->a, h[i]);
        if (p == NULL || p[0] != i || p[63] != ~i)
            w->bad++;
    }
    for (unsigned i = 0; i < NAFTER; i++)
        if (!tslab_free(w->a, h[i]))
            w->bad++;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->step == w->done)
            pthread_cond_wait(&w->cv, &w->mu);
        int s = w->step;
        pthread_mutex_unlock(&w->mu);
        if (s == STEP_FILL) {
            /* 60 allocations refill 24 at a time (72 claimed, 12 left), then 60 frees: the
             * cache (cap 48) drains its older half once, so it holds 12 + 60 - 24 = 48 (FILLED).
             * With the sanitizer quarantine, frees go there instead: it holds the 12. */
            for (unsigned i = 0; i < NFILL; i++)
                CHECK(tslab_alloc(w->a, 256, &w->mine[i]) != NULL);
            for (unsigned i = 0; i < NFILL; i++)
                CHECK(tslab_free(w->a, w->mine[i]));
        } else if (s == STEP_REMOTE) {
            for (unsigned i = 0; i < 40; i++)
                CHECK(tslab_free(w->a, w->theirs[i]));
        } else if (s == STEP_AFTER) {
            after_wake(w);
        } else if (s == STEP_EFILL) {
            /* 10 allocations into the epoch (its cache refills 24, keeps 14) and their frees,
             * which go back into that cache: it holds 24. */
            tslab_handle h[10];
            for (unsigned i = 0; i < 10; i++)
                CHECK(tslab_alloc_epoch(w->a, w->ep, 256, &h[i]) != NULL);
            for (unsigned i = 0; i < 10; i++)
                CHECK(tslab_free(w->a, h[i]));
        } else if (s == STEP_EAFTER) {
            tslab_handle h;
            CHECK(tslab_alloc_epoch(w->a, w->ep, 256, &h) == NULL);
            w->eafter_errno = errno;
        }
        pthread_mutex_lock(&w->mu);
        w->done = s;
        pthread_cond_broadcast(&w->cv);
        if (s == STEP_EXIT)
            break;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Asks the worker for step s and waits until it is done (it then blocks again). */
static void run_step(worker *w, int s)
{
    pthread_mutex_lock(&w->mu);
    w->step = s;
    pthread_cond_broadcast(&w->cv);
    while (w->done != s)
        pthread_cond_wait(&w->cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}

static void worker_start(worker *w, pthread_t *t)
{
    REQUIRE(pthread_mutex_init(&w->mu, NULL) == 0);
    REQUIRE(pthread_cond_init(&w->cv, NULL) == 0);
    REQUIRE(pthread_create(t, NULL, worker_main, w) == 0);
}

static void worker_stop(worker *w, pthread_t t)
{
    run_step(w, STEP_EXIT);
    REQUIRE(pthread_join(t, NULL) == 0);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}

/* Wakes the worker for STEP_AFTER (its reconcile, then objects checked for double hand-out),
 * stops it, and checks that nothing is live and every free is counted before destroying a. */
static void wake_stop_destroy(worker *w, pthread_t t, tslab *a)
{
    run_step(w, STEP_AFTER);
    CHECK_EQ_U(w->bad, 0);
    worker_stop(w, t);
    tslab_class_stats c = stats0(a);
    CHECK_EQ_U(c.live_objects, 0);
    CHECK_EQ_U(c.allocations + c.duplicates_dropped, c.frees);
    tslab_destroy(a);
}

static void idle_cache_comes_back(void)
{
    if (!tslab__reclaim_available()) {
        /* A kernel or sandbox without membarrier: reclaim is off (README). */
        printf("  membarrier unavailable here: reclaim is off, nothing to test\n");
        return;
    }
    tslab *a = mk();
    static worker w;
    w = (worker){.a = a};
    pthread_t t;
    worker_start(&w, &t);
    run_step(&w, STEP_FILL);
    tslab__tcache *tc = other_cache(a);
    REQUIRE(tc != NULL);
    uint32_t held = atomic_load(&tc->cls[0].count);
    CHECK_EQ_U(held, FILLED);
    /* Slabs in use: the worker's. The first pass records its counters; a second one before the
     * idle time has passed takes nothing; the first at or after it takes all but the top. */
    tslab__maintain_pass();
    advance(IDLE_NS - 1);
    tslab__maintain_pass();
    CHECK_EQ_U(stats0(a).idle_reclaimed_slots, 0);
    advance(1);
    tslab__maintain_pass();
    CHECK_EQ_U(stats0(a).idle_reclaimed_slots, held - 1);
    CHECK_EQ_U(tc->stolen[0], held - 1);
    CHECK_EQ_U(atomic_load(&tc->cls[0].count), held); /* the owner's to change, on reconcile */
    /* Nothing more to take: another pass changes nothing. */
    advance(IDLE_NS);
    tslab__maintain_pass();
    CHECK_EQ_U(stats0(a).idle_reclaimed_slots, held - 1);
    /* 72 slots were claimed from slab 0; 71 are back, so it holds one (the top entry): it stays
     * in use, nothing else was ever made resident. */
    tslab_class_stats c = stats0(a);
    CHECK_EQ_U(c.slabs_partial + c.slabs_full, 1);
    CHECK_EQ_U(c.slabs_cached, 0);

    /* Remote batch: the worker frees 40 of our objects (a slab it does not own) and idles. */
    for (unsigned i = 0; i < 40; i++)
        CHECK(tslab_alloc(a, 256, &w.theirs[i]) != NULL);
    tslab_flush(a);            /* our own cache back to the slabs: only the worker holds anything */
    run_step(&w, STEP_REMOTE); /* the worker's first call reconciles */
    CHECK_EQ_U(tc->stolen[0], 0);
    CHECK_EQ_U(atomic_load(&tc->cls[0].count), 1);
    CHECK_EQ_U(atomic_load(&tc->cls[0].rcount), 40);
    tslab__maintain_pass();
    advance(IDLE_NS);
    tslab__maintain_pass();
    /* The 40 come back; the one cached slot is the top entry and stays. */
    CHECK_EQ_U(stats0(a).idle_reclaimed_slots, held - 1 + 40);
    CHECK_EQ_U(atomic_load(&tc->cls[0].rcount), 0);
    /* They went to our slab's remote bits (we own it); our flush checks them and the slab
     * empties: it decays, and the maintenance pass releases it. */
    tslab_flush(a);
    c = stats0(a);
    CHECK_EQ_U(c.slabs_cached, 1);
    advance(DECAY_MS * MS);
    tslab__maintain_pass();
    c = stats0(a);
    CHECK_EQ_U(c.slabs_cached, 0);
    CHECK_EQ_U(c.decay_released_slabs, 1);
    CHECK_EQ_U(c.slabs_partial + c.slabs_full, 1); /* the worker's top entry keeps one */
    CHECK(c.resident_bytes < 2 * SLAB);
    CHECK_EQ_U(c.live_objects, 0);

    /* Woken, the worker reconciles and allocates and frees correctly. */
    wake_stop_destroy(&w, t, a);
}

/* An idle thread's epoch cache comes back too, all but its top slot; that one keeps the epoch's
 * slab (and record) until the thread's next try at the epoch, which finds it closed. */
static void idle_epoch_cache_comes_back(void)
{
    if (!tslab__reclaim_available()) {
        printf("  membarrier unavailable here: reclaim is off, nothing to test\n");
        return;
    }
    tslab *a = mk();
    static worker w;
    w = (worker){.a = a, .ep = tslab_epoch_open(a, "idle")};
    REQUIRE(w.ep != 0);
    pthread_t t;
    worker_start(&w, &t);
    run_step(&w, STEP_EFILL);
    tslab__tcache *tc = other_cache(a);
    REQUIRE(tc != NULL);
    CHECK_EQ_U(atomic_load(&tc->ec[0].count), 24);
    CHECK_EQ_U(atomic_load(&tc->cls[0].count), 0); /* nothing in the default epoch's cache */
    tslab__maintain_pass();
    advance(IDLE_NS);
    tslab__maintain_pass();
    CHECK_EQ_U(stats0(a).idle_reclaimed_slots, 23);
    CHECK_EQ_U(tc->estolen[0], 23);
    tslab_class_stats c = stats0(a);
    CHECK_EQ_U(c.slabs_partial + c.slabs_full, 1); /* the top slot's slab */
    CHECK_EQ_I(tslab_epoch_close(a, w.ep), 0);
    tslab_epoch_stats es;
    REQUIRE(tslab_epoch_stats_get(a, &es, sizeof es) == 0);
    CHECK_EQ_U(es.labels[0].closed_live_objects, 0);
    /* Woken: its allocation into the closed epoch fails, which reconciles and then gives the
     * last slot back: the slab empties and the record with it; the figures are exact. */
    run_step(&w, STEP_EAFTER);
    CHECK_EQ_I(w.eafter_errno, ESHUTDOWN);
    c = stats0(a);
    CHECK_EQ_U(c.slabs_partial + c.slabs_full, 0);
    CHECK_EQ_U(c.live_objects, 0);
    REQUIRE(tslab_epoch_stats_get(a, &es, sizeof es) == 0);
    CHECK_EQ_U(es.labels[0].allocations, 10);
    CHECK_EQ_U(es.labels[0].frees, 10);
    worker_stop(&w, t);
    tslab_destroy(a);
}

/* A thread inside a slow path is never collected, however long it stays. The white-box way:
 * announce a slow path as the allocator does, make the thread look idle, run passes. */
static void slow_path_is_left_alone(void)
{
    if (!tslab__reclaim_available())
        return;
    tslab *a = mk();
    static worker w;
    w = (worker){.a = a};
    pthread_t t;
    worker_start(&w, &t);
    run_step(&w, STEP_FILL);
    tslab__tcache *tc = other_cache(a);
    REQUIRE(tc != NULL);
    atomic_fetch_add(&tc->in_slow, 1); /* as tslab__tcache_enter would */
    for (int i = 0; i < 4; i++) {
        tslab__maintain_pass();
        advance(IDLE_NS);
    }
    CHECK_EQ_U(stats0(a).idle_reclaimed_slots, 0);
    CHECK_EQ_U(tc->stolen[0], 0);
    atomic_fetch_sub(&tc->in_slow, 1);
    tslab__maintain_pass();
    CHECK_EQ_U(stats0(a).idle_reclaimed_slots, FILLED - 1);
    wake_stop_destroy(&w, t, a);
}

/* The same through tslab_background_start's own thread: the clock is moved past the idle time
 * and the test polls (1 ms naps, as test_decay's wait_released) until the thread has passed. */
static void background_thread_collects(void)
{
    if (!tslab__reclaim_available())
        return;
    tslab *a = mk();
    static worker w;
    w = (worker){.a = a};
    pthread_t t;
    worker_start(&w, &t);
    run_step(&w, STEP_FILL);
    REQUIRE(tslab_background_start() == 0);
    /* Its passes see the counters; then, idle long enough on the injected clock, it collects. */
    for (int i = 0; i < 60000 && stats0(a).idle_reclaimed_slots == 0; i++) {
        advance(IDLE_NS / 4);
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    CHECK(tslab_background_stop() == 0);
    CHECK_EQ_U(stats0(a).idle_reclaimed_slots, FILLED - 1);
    wake_stop_destroy(&w, t, a);
}

/* ---- Stress: 4 churning threads with pauses and cross-thread frees, a collector looping ---- */
enum { NT = 4, LIVE = 200, XCH = 64 };
static _Atomic int stop_collector;
static _Atomic uintptr_t exchange[XCH]; /* objects handed between threads (stamped) */
static tslab *stress_a;

typedef struct churner {
    unsigned id;
    unsigned bad;
    unsigned long rounds;
} churner;

static uint32_t stamp_of(unsigned id, unsigned long k)
{
    return (uint32_t)(id << 24 | (k & 0xFFFFFF));
}

static void *churn_main(void *arg)
{
    churner *me = arg;
    uint32_t *live[LIVE] = {0};
    uint64_t x = 0x9E3779B97F4A7C15ull * (me->id + 1);
    for (unsigned long k = 0; k < me->rounds; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned i = (unsigned)(x % LIVE);
        if (live[i] != NULL) {
            /* Whoever else got this slot would have overwritten the stamp. */
            if (live[i][1] != ~live[i][0])
                me->bad++;
            if ((x >> 20) % 8 == 0) {
                /* Hand it to another thread through the exchange (a remote free there). */
                uintptr_t old = atomic_exchange(&exchange[(x >> 32) % XCH], (uintptr_t)live[i]);
                if (old != 0) {
                    uint32_t *o = (uint32_t *)old;
                    if (o[1] != ~o[0])
                        me->bad++;
                    if (!tslab_free_ptr(stress_a, o))
                        me->bad++;
                }
            } else if (!tslab_free_ptr(stress_a, live[i])) {
                me->bad++;
            }
            live[i] = NULL;
        } else {
            live[i] = tslab_malloc(stress_a, 256);
            if (live[i] == NULL) {
                me->bad++;
                continue;
            }
            live[i][0] = stamp_of(me->id, k);
            live[i][1] = ~live[i][0];
        }
        /* Pauses without the allocator, long enough for the collector to find the thread idle
         * now and then (its clock moves an idle time per pass). */
        if ((x >> 40) % 512 == 0)
            for (volatile unsigned s = 0; s < 20000; s++)
                ;
    }
    for (unsigned i = 0; i < LIVE; i++)
        if (live[i] != NULL) {
            if (live[i][1] != ~live[i][0])
                me->bad++;
            tslab_free_ptr(stress_a, live[i]);
        }
    return NULL;
}

static void *collector_main(void *arg)
{
    unsigned long *passes = arg;
    while (!atomic_load(&stop_collector)) {
        tslab__maintain_pass();
        advance(IDLE_NS);
        (*passes)++;
    }
    return NULL;
}

static void stress_with_collector(void)
{
    stress_a = mk();
    pthread_t ct, th[NT];
    churner ch[NT];
    unsigned long passes = 0;
    atomic_store(&stop_collector, 0);
    REQUIRE(pthread_create(&ct, NULL, collector_main, &passes) == 0);
    for (unsigned i = 0; i < NT; i++) {
        ch[i] = (churner){.id = i + 1, .rounds = scaled(200000)};
        REQUIRE(pthread_create(&th[i], NULL, churn_main, &ch[i]) == 0);
    }
    for (unsigned i = 0; i < NT; i++)
        REQUIRE(pthread_join(th[i], NULL) == 0);
    atomic_store(&stop_collector, 1);
    REQUIRE(pthread_join(ct, NULL) == 0);
    for (unsigned i = 0; i < XCH; i++) {
        uint32_t *o = (uint32_t *)atomic_exchange(&exchange[i], 0);
        if (o != NULL) {
            CHECK(o[1] == ~o[0]);
            CHECK(tslab_free_ptr(stress_a, o));
        }
    }
    tslab_flush(stress_a);
    unsigned bad = 0;
    for (unsigned i = 0; i < NT; i++)
        bad += ch[i].bad;
    CHECK_EQ_U(bad, 0);
    tslab_class_stats c = stats0(stress_a);
    printf("  %lu passes, %llu slots reclaimed from idle caches\n", passes,
           (unsigned long long)c.idle_reclaimed_slots);
    CHECK_EQ_U(c.live_objects, 0);
    CHECK_EQ_U(c.allocations + c.duplicates_dropped, c.frees);
    if (tslab__reclaim_available())
        CHECK(c.idle_reclaimed_slots > 0);
    tslab_destroy(stress_a);
}

TEST_MAIN(T(idle_cache_comes_back), T(idle_epoch_cache_comes_back), T(slow_path_is_left_alone),
          T(background_thread_collects), T(stress_with_collector))
