/* SPDX-License-Identifier: MIT */
/* Memory over time: decay on an injected clock (no sleeps), the cache cap, the soft and hard
 * limits, and the maintenance thread (an idle instance's memory, fork, start/stop races). Every
 * counter the policy keeps is asserted exactly. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <tslab.h>

#include "testhelper.h"

#define MS UINT64_C(1000000)

/* Builds with the sanitizer quarantine (ASan, memcheck) retry a refused refill once after
 * draining it (alloc.c), and each refused refill counts. A thread started in the child of a
 * multi-threaded fork: TSan refuses it, and ASan's own allocator can deadlock there (its locks
 * are not fork-safe), so those builds skip that step. */
#ifndef TSLAB_VALGRIND
#define TSLAB_VALGRIND 0
#endif
#if defined(__SANITIZE_ADDRESS__) || TSLAB_VALGRIND
#define QUARANTINE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QUARANTINE 1
#endif
#endif
#ifndef QUARANTINE
#define QUARANTINE 0
#endif
#define QUARANTINE_ASAN (QUARANTINE && !TSLAB_VALGRIND)
#if defined(__SANITIZE_THREAD__)
#define TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN 1
#endif
#endif
#ifndef TSAN
#define TSAN 0
#endif

/* The clock and a counting OS layer: the real calls, plus the decommit calls and bytes. */
static _Atomic uint64_t fake_now = 1000 * MS;
static _Atomic unsigned decommit_calls;
static _Atomic uint64_t decommit_bytes;

static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return atomic_load(&fake_now);
}
static void *c_reserve(void *ctx, size_t n) { return tslab_os_default()->reserve(ctx, n); }
static int c_commit(void *ctx, void *p, size_t n) { return tslab_os_default()->commit(ctx, p, n); }
static int c_decommit(void *ctx, void *p, size_t n)
{
    atomic_fetch_add(&decommit_calls, 1);
    atomic_fetch_add(&decommit_bytes, n);
    return tslab_os_default()->decommit(ctx, p, n);
}
static void c_release(void *ctx, void *p, size_t n) { tslab_os_default()->release(ctx, p, n); }
static const tslab_os fake_os = {c_reserve, c_commit, c_decommit, c_release, NULL, fake_clock};

static void advance(uint64_t ns) { atomic_fetch_add(&fake_now, ns); }

static const uint32_t size256[] = {256};
enum { PER = 256 }; /* objects of 256 B in a 64 KiB slab */
#define SLAB ((uint64_t)65536)
/* Objects that fill at most k slabs: a thread refills its cache 24 slots at a time (256-byte
 * class: a 48-slot cache, half-batches), so n allocations claim 24 * ceil(n / 24) slots. */
#define NOBJ(k) ((size_t)(k)*PER / 24 * 24)

static tslab *mk(size_t cache, uint64_t decay_ms, uint64_t soft, uint64_t hard)
{
    tslab_config cfg = {.sizes = size256,
                        .size_count = 1,
                        .cache_slabs = cache,
                        .os = &fake_os,
                        .decay_ms = decay_ms,
                        .limit_soft = soft,
                        .limit_hard = hard};
    tslab *a = tslab_create(&cfg);
    CHECK(a != NULL);
    return a;
}

static tslab_class_stats stats0(tslab *a) { return test_class_stats(a, 0); }

/* Allocates n objects of 256 B into h. */
static void fill(tslab *a, tslab_handle *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        CHECK(tslab_alloc(a, 256, &h[i]) != NULL);
}

/* Frees every object of h[0..n) whose slot lies in slab `slab` (the class's slabs are laid out
 * from its lowest address, which `base` is), then flushes so the slab empties now. */
static void free_slab(tslab *a, tslab_handle *h, size_t n, char *base, size_t slab)
{
    for (size_t i = 0; i < n; i++) {
        char *p = tslab_handle_ptr(a, h[i]);
        if (p != NULL && (size_t)(p - base) / SLAB == slab)
            CHECK(tslab_free(a, h[i]));
    }
    tslab_flush(a);
}

static char *lowest(tslab *a, tslab_handle *h, size_t n)
{
    char *lo = NULL;
    for (size_t i = 0; i < n; i++) {
        char *p = tslab_handle_ptr(a, h[i]);
        if (lo == NULL || p < lo)
            lo = p;
    }
    return lo;
}

static void decay_releases_after_the_delay(void)
{
    tslab *a = mk(0, 100, 0, 0);
    CHECK_EQ_U(tslab_decay_get(a), 100);
    tslab_handle h[NOBJ(4)];
    fill(a, h, NOBJ(4));
    char *base = lowest(a, h, NOBJ(4));
    uint64_t resident = tslab_resident_bytes(a);
    CHECK(resident >= 4 * SLAB);
    unsigned calls0 = atomic_load(&decommit_calls);

    /* Slabs 0 and 1 empty at t0, slabs 2 and 3 at t0 + 50 ms. */
    free_slab(a, h, NOBJ(4), base, 0);
    free_slab(a, h, NOBJ(4), base, 1);
    advance(50 * MS);
    free_slab(a, h, NOBJ(4), base, 2);
    free_slab(a, h, NOBJ(4), base, 3);
    tslab_class_stats c = stats0(a);
    CHECK_EQ_U(c.live_objects, 0);
    CHECK_EQ_U(c.slabs_cached, 4);
    CHECK_EQ_U(c.cached_bytes, 4 * SLAB);
    CHECK_EQ_U(c.cache_inserts, 4);
    CHECK_EQ_U(c.slabs_released, 0);

    /* t0 + 99 ms: nothing has been unused for 100 ms yet. */
    advance(49 * MS);
    tslab_flush(a);
    c = stats0(a);
    CHECK_EQ_U(c.slabs_cached, 4);
    CHECK_EQ_U(c.decay_released_slabs, 0);
    CHECK_EQ_U(atomic_load(&decommit_calls), calls0);

    /* t0 + 100 ms: slabs 0 and 1 go, adjacent, in one call. */
    advance(1 * MS);
    tslab_flush(a);
    c = stats0(a);
    CHECK_EQ_U(c.slabs_cached, 2);
    CHECK_EQ_U(c.cached_bytes, 2 * SLAB);
    CHECK_EQ_U(c.slabs_released, 2);
    CHECK_EQ_U(c.decay_released_slabs, 2);
    CHECK_EQ_U(c.decay_released_bytes, 2 * SLAB);
    CHECK_EQ_U(atomic_load(&decommit_calls), calls0 + 1);
    CHECK_EQ_U(tslab_resident_bytes(a), resident - 2 * SLAB);

    /* t0 + 149 ms: 2 and 3 stay; t0 + 150 ms: they go too. */
    advance(49 * MS);
    tslab_flush(a);
    CHECK_EQ_U(stats0(a).slabs_cached, 2);
    advance(1 * MS);
    tslab_flush(a);
    c = stats0(a);
    CHECK_EQ_U(c.slabs_cached, 0);
    CHECK_EQ_U(c.cached_bytes, 0);
    CHECK_EQ_U(c.decay_released_slabs, 4);
    CHECK_EQ_U(c.decay_released_bytes, 4 * SLAB);
    CHECK_EQ_U(c.cap_released_slabs + c.limit_released_slabs + c.purge_released_slabs, 0);
    CHECK_EQ_U(c.cache_overflows, 0);
    CHECK_EQ_U(atomic_load(&decommit_calls), calls0 + 2);
    CHECK_EQ_U(tslab_resident_bytes(a), resident - 4 * SLAB);

    /* Reuse: released slabs come back as misses; a slab reused before its decay ran out is
     * never released. */
    fill(a, h, NOBJ(4));
    for (size_t i = 0; i < NOBJ(4); i++)
        CHECK(tslab_free(a, h[i]));
    tslab_flush(a);
    advance(99 * MS);
    fill(a, h, NOBJ(4)); /* 4 cache hits */
    advance(1000 * MS);
    tslab_flush(a);
    c = stats0(a);
    CHECK_EQ_U(c.cache_hits, 4);
    CHECK_EQ_U(c.decay_released_slabs, 4);
    CHECK_EQ_U(c.slabs_full + c.slabs_partial, 4);
    for (size_t i = 0; i < NOBJ(4); i++)
        CHECK(tslab_free(a, h[i]));
    tslab_destroy(a);
}

/* A cheap slow path (a drain, here) advances decay too, reading the clock on every 16th call:
 * no flush, and no slab emptying (which reads the clock anyway). */
static void decay_advances_on_slow_paths(void)
{
    tslab *a = mk(0, 10, 0, 0);
    tslab_handle h[NOBJ(3)];
    fill(a, h, NOBJ(3));
    char *base = lowest(a, h, NOBJ(3));
    free_slab(a, h, NOBJ(3), base, 0);
    CHECK_EQ_U(stats0(a).slabs_cached, 1);
    advance(10 * MS);
    /* Frees of all but one object of slabs 1 and 2: the 48-slot cache drains 24 at a time (in
     * sanitizer builds a 256-slot quarantine drains one at a time once full): at least 16
     * drains either way. */
    size_t kept[3] = {0, 0, 0};
    for (size_t i = 0; i < NOBJ(3); i++) {
        char *p = tslab_handle_ptr(a, h[i]);
        if (p == NULL)
            continue;
        size_t s = (size_t)(p - base) / SLAB;
        if (kept[s]++ > 0) /* the first object of each slab stays live */
            CHECK(tslab_free(a, h[i]));
    }
    tslab_class_stats c = stats0(a);
    CHECK_EQ_U(c.decay_released_slabs, 1);
    CHECK_EQ_U(c.slabs_cached, 0);
    CHECK_EQ_U(c.live_objects, 2);
    tslab_destroy(a);
}

static void cap_is_hard(void)
{
    tslab *a = mk(3, 1000000, 0, 0);
    enum { N = 8 * PER };
    tslab_handle *h = calloc(N, sizeof *h);
    fill(a, h, N);
    char *base = lowest(a, h, N);
    /* Eight slabs empty one by one into a cache capped at 3: passing the cap sends the oldest
     * back down to half the cap (1), the newest always stays. 1 2 3 | 4: 1 2 3 go | 5 6 | 7:
     * 4 5 6 go | 8. */
    for (size_t s = 0; s < 8; s++) {
        free_slab(a, h, N, base, s);
        CHECK(stats0(a).slabs_cached <= 3);
    }
    tslab_class_stats c = stats0(a);
    CHECK_EQ_U(c.cache_inserts, 8);
    CHECK_EQ_U(c.slabs_cached, 2);
    CHECK_EQ_U(c.cache_overflows, 6);
    CHECK_EQ_U(c.cap_released_slabs, 6);
    CHECK_EQ_U(c.cap_released_bytes, 6 * SLAB);
    CHECK_EQ_U(c.decay_released_slabs + c.limit_released_slabs + c.purge_released_slabs, 0);
    /* tslab_purge counts as purge. */
    CHECK(tslab_purge(a) == 0);
    c = stats0(a);
    CHECK_EQ_U(c.slabs_cached, 0);
    CHECK_EQ_U(c.purge_released_slabs, 2);
    CHECK_EQ_U(c.purge_released_bytes, 2 * SLAB);
    CHECK_EQ_U(c.slabs_released, 8);
    free(h);
    tslab_destroy(a);
}

static void no_decay_releases_at_once(void)
{
    tslab *a = mk(0, TSLAB_DECAY_NONE, 0, 0);
    CHECK_EQ_U(tslab_decay_get(a), 0);
    tslab_handle h[3 * PER];
    fill(a, h, 3 * PER);
    for (size_t i = 0; i < 3 * PER; i++)
        CHECK(tslab_free(a, h[i]));
    tslab_flush(a);
    tslab_class_stats c = stats0(a);
    CHECK_EQ_U(c.slabs_cached, 0);
    CHECK_EQ_U(c.cache_inserts, 0);
    CHECK_EQ_U(c.decay_released_slabs, 3);
    CHECK_EQ_U(c.decay_released_bytes, 3 * SLAB);
    /* Back to a delay at run time: slabs stay; set 0: the cached ones go at once. */
    CHECK(tslab_decay_set(a, 1000) == 0);
    CHECK_EQ_U(tslab_decay_get(a), 1000);
    fill(a, h, 3 * PER);
    for (size_t i = 0; i < 3 * PER; i++)
        CHECK(tslab_free(a, h[i]));
    tslab_flush(a);
    CHECK_EQ_U(stats0(a).slabs_cached, 3);
    CHECK(tslab_decay_set(a, 0) == 0);
    c = stats0(a);
    CHECK_EQ_U(c.slabs_cached, 0);
    CHECK_EQ_U(c.decay_released_slabs, 6);
    /* A shorter decay applies to slabs cached already. */
    CHECK(tslab_decay_set(a, 1000) == 0);
    fill(a, h, NOBJ(1));
    for (size_t i = 0; i < NOBJ(1); i++)
        CHECK(tslab_free(a, h[i]));
    tslab_flush(a);
    advance(20 * MS);
    CHECK_EQ_U(stats0(a).slabs_cached, 1);
    CHECK(tslab_decay_set(a, 20) == 0);
    CHECK_EQ_U(stats0(a).slabs_cached, 0);
    CHECK_EQ_U(stats0(a).decay_released_slabs, 7);
    CHECK(tslab_decay_set(NULL, 1) == -EINVAL);
    CHECK_EQ_U(tslab_decay_get(NULL), 0);
    tslab_destroy(a);
}

static void soft_limit_releases_at_once(void)
{
    /* Resident per slab: its 64 KiB plus its metadata; the soft limit fits two. */
    tslab *a = mk(0, 1000000, 0, 0);
    tslab_handle h[NOBJ(4)];
    fill(a, h, NOBJ(1));
    uint64_t per_slab = tslab_resident_bytes(a);
    CHECK(per_slab > SLAB && per_slab < SLAB + 4096);
    fill(a, h + NOBJ(1), NOBJ(4) - NOBJ(1));
    CHECK_EQ_U(tslab_resident_bytes(a), 4 * per_slab);
    /* Metadata stays resident when a slab goes back: the soft limit fits two slabs and the
     * metadata of all four. */
    uint64_t meta = per_slab - SLAB, soft = 2 * SLAB + 4 * meta;
    CHECK(tslab_limit_set(a, TSLAB_LIMIT_SOFT, soft) == 0);
    CHECK_EQ_U(tslab_limit_get(a, TSLAB_LIMIT_SOFT), soft);
    char *base = lowest(a, h, NOBJ(4));
    /* Beyond the soft limit an emptied slab goes back at once, until the instance is back under
     * it; then slabs are cached again. */
    for (size_t s = 0; s < 4; s++)
        free_slab(a, h, NOBJ(4), base, s);
    tslab_class_stats c = stats0(a);
    CHECK_EQ_U(c.limit_released_slabs, 2);
    CHECK_EQ_U(c.limit_released_bytes, 2 * SLAB);
    CHECK_EQ_U(c.slabs_cached, 2);
    CHECK_EQ_U(c.cache_inserts, 2);
    CHECK_EQ_U(tslab_resident_bytes(a), soft);
    /* Lowering it applies to the cache at once: both cached slabs go. */
    CHECK(tslab_limit_set(a, TSLAB_LIMIT_SOFT, per_slab) == 0);
    c = stats0(a);
    CHECK_EQ_U(c.limit_released_slabs, 4);
    CHECK_EQ_U(c.slabs_cached, 0);
    CHECK_EQ_U(tslab_resident_bytes(a), 4 * meta);
    /* No soft limit: emptied slabs are cached again. */
    CHECK(tslab_limit_set(a, TSLAB_LIMIT_SOFT, 0) == 0);
    fill(a, h, NOBJ(1));
    for (size_t i = 0; i < NOBJ(1); i++)
        CHECK(tslab_free(a, h[i]));
    tslab_flush(a);
    CHECK_EQ_U(stats0(a).slabs_cached, 1);
    CHECK_EQ_U(stats0(a).limit_released_slabs, 4);
    CHECK(tslab_limit_set(a, (tslab_limit)7, 1) == -EINVAL);
    CHECK(tslab_limit_set(NULL, TSLAB_LIMIT_SOFT, 1) == -EINVAL);
    CHECK_EQ_U(tslab_limit_get(a, (tslab_limit)7), 0);
    tslab_destroy(a);
}

static void hard_limit_enomem_then_recovers(void)
{
    static const uint32_t sizes[] = {256, 512};
    tslab_config cfg = {.sizes = sizes, .size_count = 2, .os = &fake_os, .decay_ms = 1000000};
    tslab *a = tslab_create(&cfg);
    CHECK(a != NULL);
    tslab_handle h[3 * PER + 1];
    fill(a, h, 1);
    uint64_t per_slab = tslab_resident_bytes(a);
    CHECK(tslab_limit_set(a, TSLAB_LIMIT_HARD, 3 * per_slab) == 0);
    CHECK_EQ_U(tslab_limit_get(a, TSLAB_LIMIT_HARD), 3 * per_slab);
    fill(a, h + 1, 3 * PER - 1);
    errno = 0;
    CHECK(tslab_alloc(a, 256, &h[3 * PER]) == NULL);
    CHECK(errno == ENOMEM);
    CHECK(tslab_malloc(a, 300) == NULL); /* another class: no room either */
    CHECK(errno == ENOMEM);
    static tslab_stats st;
    CHECK(tslab_stats_read(a, &st) == 0);
    CHECK_EQ_U(st.classes[0].limit_refusals, 1 + QUARANTINE);
    CHECK_EQ_U(st.classes[1].limit_refusals, 1 + QUARANTINE);
    CHECK_EQ_U(st.classes[0].allocations, 3 * PER);
    CHECK_EQ_U(st.instance.limit_hard_bytes, 3 * per_slab);
    CHECK_EQ_U(st.instance.limit_soft_bytes, 0);
    CHECK_EQ_U(st.instance.limit_resident_bytes, 3 * per_slab);
    CHECK_EQ_U(tslab_resident_bytes(a), 3 * per_slab);
    /* A free makes room in the same class at once. */
    CHECK(tslab_free(a, h[5]));
    CHECK(tslab_alloc(a, 256, &h[5]) != NULL);
    /* Free everything: the slabs stay cached (decay is long), yet the other class gets memory:
     * the hard limit purges every class's cache before it refuses. */
    for (size_t i = 0; i < 3 * PER; i++)
        CHECK(tslab_free(a, h[i]));
    tslab_flush(a);
    CHECK(tslab_stats_read(a, &st) == 0);
    CHECK_EQ_U(st.classes[0].slabs_cached, 3);
    void *p = tslab_malloc(a, 300);
    CHECK(p != NULL);
    CHECK(tslab_stats_read(a, &st) == 0);
    CHECK_EQ_U(st.classes[0].limit_released_slabs, 3);
    CHECK_EQ_U(st.classes[0].limit_released_bytes, 3 * SLAB);
    CHECK_EQ_U(st.classes[0].slabs_cached, 0);
    CHECK_EQ_U(st.classes[1].limit_refusals, 1 + QUARANTINE);
    CHECK_EQ_U(st.classes[1].slabs_partial + st.classes[1].slabs_full, 1);
    CHECK(tslab_free_ptr(a, p));
    /* Lowering the hard limit below what is resident purges the caches at once. */
    tslab_flush(a);
    CHECK(tslab_limit_set(a, TSLAB_LIMIT_HARD, 1) == 0);
    CHECK(tslab_stats_read(a, &st) == 0);
    CHECK_EQ_U(st.classes[1].slabs_cached, 0);
    CHECK_EQ_U(st.classes[1].limit_released_slabs, 1);
    CHECK(tslab_malloc(a, 300) == NULL);
    CHECK(errno == ENOMEM);
    CHECK(tslab_limit_set(a, TSLAB_LIMIT_HARD, 0) == 0);
    p = tslab_malloc(a, 300);
    CHECK(p != NULL);
    CHECK(tslab_free_ptr(a, p));
    tslab_destroy(a);
}

/* Polls (1 ms naps) until the class has released `want` slabs by decay; the maintenance thread
 * is the only one calling into the instance. Fails after 60 s. */
static void wait_released(tslab *a, uint64_t want)
{
    for (int i = 0; i < 60000 && stats0(a).decay_released_slabs < want; i++)
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    CHECK_EQ_U(stats0(a).decay_released_slabs, want);
}

static void background_returns_idle_memory(void)
{
    tslab *a = mk(0, 10, 0, 0);
    tslab_handle h[NOBJ(4)];
    fill(a, h, NOBJ(4));
    for (size_t i = 0; i < NOBJ(4); i++)
        CHECK(tslab_free(a, h[i]));
    tslab_flush(a);
    CHECK_EQ_U(stats0(a).slabs_cached, 4);
    CHECK(!tslab_background_running());
    CHECK(tslab_background_start() == 0);
    CHECK(tslab_background_start() == -EALREADY);
    CHECK(tslab_background_running());
    /* Not due yet: the thread passes (it wakes every 2.5 ms here) and releases nothing. */
    advance(9 * MS);
    CHECK_EQ_U(stats0(a).decay_released_slabs, 0);
    advance(1 * MS);
    wait_released(a, 4);
    tslab_class_stats c = stats0(a);
    CHECK_EQ_U(c.slabs_cached, 0);
    CHECK_EQ_U(c.cached_bytes, 0);
    CHECK_EQ_U(c.decay_released_bytes, 4 * SLAB);
    CHECK(tslab_background_stop() == 0);
    CHECK(tslab_background_stop() == -ESRCH);
    CHECK(!tslab_background_running());
    tslab_destroy(a);
}

static void fork_with_background_running(void)
{
    tslab *a = mk(0, 10, 0, 0);
    CHECK(tslab_background_start() == 0);
    tslab_handle h[2 * PER];
    for (int round = 0; round < 20; round++) {
        fill(a, h, 2 * PER);
        for (size_t i = 0; i < 2 * PER; i++)
            CHECK(tslab_free(a, h[i]));
        tslab_flush(a);
        advance(10 * MS); /* the thread is releasing while we fork */
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            /* The child: no maintenance thread; the allocator works; a new thread can start. */
            if (tslab_background_running())
                _exit(2);
            fill(a, h, 2 * PER);
            for (size_t i = 0; i < 2 * PER; i++)
                if (!tslab_free(a, h[i]))
                    _exit(3);
            if (!TSAN && !QUARANTINE_ASAN &&
                (tslab_background_start() != 0 || tslab_background_stop() != 0))
                _exit(4);
            tslab_destroy(a);
            _exit(0);
        }
        int status;
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFEXITED(status));
        CHECK_EQ_U(WEXITSTATUS(status), 0);
    }
    CHECK(tslab_background_running());
    CHECK(tslab_background_stop() == 0);
    tslab_destroy(a);
}

static _Atomic unsigned starts_ok, stops_ok;
static _Atomic int go;

static void *start_stop(void *arg)
{
    (void)arg;
    while (!atomic_load(&go))
        ;
    for (int i = 0; i < 200; i++) {
        int r = tslab_background_start();
        CHECK(r == 0 || r == -EALREADY);
        if (r == 0)
            atomic_fetch_add(&starts_ok, 1);
        /* Instances come and go under the running thread. */
        tslab *a = mk(0, 1, 0, 0);
        tslab_handle h[PER];
        fill(a, h, PER);
        for (size_t k = 0; k < PER; k++)
            CHECK(tslab_free(a, h[k]));
        tslab_flush(a);
        advance(MS);
        tslab_destroy(a);
        r = tslab_background_stop();
        CHECK(r == 0 || r == -ESRCH);
        if (r == 0)
            atomic_fetch_add(&stops_ok, 1);
    }
    return NULL;
}

static void start_stop_races(void)
{
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&th[i], NULL, start_stop, NULL) == 0);
    atomic_store(&go, 1);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    unsigned s = atomic_load(&starts_ok), t = atomic_load(&stops_ok);
    printf("start/stop races: %u starts, %u stops succeeded\n", s, t);
    /* Every successful start is matched by exactly one successful stop, or the thread runs. */
    CHECK(s == t || s == t + 1);
    CHECK(tslab_background_running() == (s == t + 1));
    if (s == t + 1)
        CHECK(tslab_background_stop() == 0);
    CHECK(!tslab_background_running());
    CHECK(s >= 1);
}

TEST_MAIN(T(decay_releases_after_the_delay), T(decay_advances_on_slow_paths), T(cap_is_hard),
          T(no_decay_releases_at_once), T(soft_limit_releases_at_once),
          T(hard_limit_enomem_then_recovers), T(background_returns_idle_memory),
          T(fork_with_background_running), T(start_stop_races))
