/* SPDX-License-Identifier: MIT */
/* Slab ownership: the owner frees with a plain store, other threads with a CAS whose slot goes
 * back through the slab's remote bitmap. These tests check that remote frees come back to the
 * owner and to the cache, that an exiting owner gives its slabs up, and that a racing double free
 * between the owner and another thread never hands a slot out twice.
 *
 * The owner's side of that race (load LIVE, then a plain store after another thread's CAS) cannot
 * be scheduled from outside, so two tests are white-box: they include the core's internal header
 * and replay the owner's delayed store and its cache's hand-back by hand, in the one order that
 * makes both frees succeed. Everything else uses the public API; no test sleeps. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "testhelper.h"

static tslab_class_stats cls0(tslab *a)
{
    tslab_stats st;
    CHECK(tslab_stats_read(a, &st) == 0);
    return st.classes[0];
}

static tslab *mk_mode(size_t cache, bool exact)
{
    static const uint32_t sizes[] = {64};
    tslab_config cfg = {
        .sizes = sizes, .size_count = 1, .cache_slabs = cache, .exact_frees = exact};
    tslab *a = tslab_create(&cfg);
    REQUIRE(a != NULL);
    return a;
}

static tslab *mk(size_t cache) { return mk_mode(cache, false); }

/* Allocates n objects and checks that no two share an address; frees them. */
static void check_unique(tslab *a, uint32_t n)
{
    tslab_handle *h = calloc(n, sizeof *h);
    char **p = calloc(n, sizeof *p);
    REQUIRE(h != NULL);
    REQUIRE(p != NULL);
    for (uint32_t i = 0; i < n; i++) {
        p[i] = tslab_alloc(a, 64, &h[i]);
        REQUIRE(p[i] != NULL);
        memset(p[i], 0, 64);
        memcpy(p[i], &i, sizeof i);
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t v;
        memcpy(&v, p[i], sizeof v);
        CHECK_EQ_U(v, i); /* a slot handed out twice would hold a later object's number */
        CHECK(tslab_free(a, h[i]));
    }
    free(h);
    free(p);
}

/* ---- remote frees go back to a live owner ---- */

static tslab *A;
static tslab_handle *H;
static uint32_t N;
static pthread_barrier_t bar;

static void *owner_thread(void *arg)
{
    (void)arg;
    for (uint32_t i = 0; i < N; i++)
        CHECK(tslab_alloc(A, 64, &H[i]) != NULL);
    pthread_barrier_wait(&bar); /* main frees everything */
    pthread_barrier_wait(&bar);
    /* Still alive: the flush checks the remote bits of our slabs, which then empty. */
    tslab_flush(A);
    tslab_class_stats s = cls0(A);
    CHECK_EQ_U(s.live_objects, 0);
    CHECK_EQ_U(s.slabs_partial + s.slabs_full, 0);
    CHECK(s.slabs_cached + s.slabs_released > 0);
    pthread_barrier_wait(&bar);
    return NULL;
}

static void remote_frees_reach_owner(void)
{
    A = mk(0);
    N = (uint32_t)scaled(20000);
    H = calloc(N, sizeof *H);
    REQUIRE(H != NULL);
    pthread_barrier_init(&bar, NULL, 2);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, owner_thread, NULL) == 0);
    pthread_barrier_wait(&bar);
    for (uint32_t i = 0; i < N; i++)
        CHECK(tslab_free(A, H[i]));
    for (uint32_t i = 0; i < N; i++) /* sequential double frees: always rejected */
        CHECK(!tslab_free(A, H[i]));
    tslab_flush(A); /* our remote batch goes back to the slabs' remote bitmaps */
    tslab_class_stats s = cls0(A);
    CHECK_EQ_U(s.rejected_double, N);
    CHECK(s.slabs_partial + s.slabs_full > 0); /* the owner has not looked yet */
    pthread_barrier_wait(&bar);
    pthread_barrier_wait(&bar);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&bar);
    CHECK_EQ_U(cls0(A).duplicates_dropped, 0);
    check_unique(A, N);
    printf("remote frees: %u objects freed by another thread came back to the live owner\n", N);
    free(H);
    tslab_destroy(A);
}

/* ---- an exiting owner gives its slabs up ---- */

static void *alloc_and_exit(void *arg)
{
    (void)arg;
    for (uint32_t i = 0; i < N; i++)
        CHECK(tslab_alloc(A, 64, &H[i]) != NULL);
    return NULL;
}

static void owner_exit_disowns(void)
{
    A = mk(0);
    N = (uint32_t)scaled(20000);
    H = calloc(N, sizeof *H);
    REQUIRE(H != NULL);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, alloc_and_exit, NULL) == 0);
    pthread_join(t, NULL);
    for (uint32_t i = 0; i < N; i++)
        CHECK(tslab_free(A, H[i]));
    tslab_flush(A); /* unowned slabs: the batch is checked and taken at once */
    tslab_class_stats s = cls0(A);
    CHECK_EQ_U(s.live_objects, 0);
    CHECK_EQ_U(s.slabs_partial + s.slabs_full, 0);
    CHECK_EQ_U(s.duplicates_dropped, 0);
    check_unique(A, N);
    printf("owner exit: %u objects of an exited thread freed and every slab emptied\n", N);
    free(H);
    tslab_destroy(A);
}

/* ---- generations: a slot's field values fewer than 2^20 frees apart never differ in one bit
 * (white box, exhaustive over k for several starting values of both parities) ---- */
static void generation_distance(void)
{
    static const uint32_t start[] = {
        0, 1, 2, 3, 0x155555, 0x2AAAAA, TSLAB__GEN_MASK, TSLAB__GEN_MASK - 1};
    unsigned long pairs = 0;
    for (size_t i = 0; i < sizeof start / sizeof start[0]; i++) {
        uint32_t g = start[i];
        for (uint32_t k = 1; k < (UINT32_C(1) << 20); k++) {
            g = tslab__gen_next(g);
            uint32_t d = g ^ start[i];
            if (d == 0 || (d & (d - 1)) == 0) {
                CHECK(!"two generations fewer than 2^20 frees apart differ in one bit or none");
                return;
            }
            pairs++;
        }
        /* The step is odd: the field runs through all 2^22 values before it repeats. */
        for (uint32_t k = 1 << 20; k <= (UINT32_C(1) << TSLAB__GEN_BITS); k++)
            g = tslab__gen_next(g);
        CHECK_EQ_U(g, start[i]);
    }
    printf("generation distance: %lu pairs < 2^20 frees apart, none one bit apart\n", pairs);
}

/* ---- racing double free between the owner and other threads (black box) ---- */

#define RACE 4000
static tslab_handle race_h[RACE];
static _Atomic unsigned long wins;

static void *racer(void *arg)
{
    (void)arg;
    pthread_barrier_wait(&bar);
    atomic_fetch_add(&wins, free_each(A, race_h, RACE));
    return NULL;
}

/* The allocating thread and T others free the same RACE handles at once, `rounds` times. By
 * default the allocating thread frees with a plain store, so a handle may be won twice and the
 * duplicate dropped; with exact_frees every free is a CAS and each handle is won exactly once. */
static void owner_race(bool exact)
{
    A = mk_mode(TSLAB_CACHE_NONE, exact);
    enum { T = 3 };
    unsigned long total_wins = 0;
    int rounds = (int)scaled(20);
    for (int round = 0; round < rounds; round++) {
        for (unsigned i = 0; i < RACE; i++)
            CHECK(tslab_alloc(A, 64, &race_h[i]) != NULL);
        if (exact) {
            /* White box, so this does not rest on the race being hit: the slabs are this
             * thread's (they still have an owner), but its cache's limit of 0 keeps every free
             * off the plain-store fast path. */
            const tslab__tclass *t = &tslab__tcache_get(A)->cls[0];
            CHECK(t->id != TSLAB__NO_ID);
            CHECK_EQ_U(t->limit, 0);
            const tslab__class *c = &A->cls[0];
            for (unsigned i = 0; i < RACE; i++)
                CHECK_EQ_U(atomic_load(&c->owner[tslab__handle_idx(race_h[i]) >> c->slot_shift]),
                           t->id);
        }
        atomic_store(&wins, 0);
        pthread_t th[T];
        pthread_barrier_init(&bar, NULL, T + 1);
        for (int t = 0; t < T; t++)
            REQUIRE(pthread_create(&th[t], NULL, racer, NULL) == 0);
        racer(NULL); /* the allocating thread races too */
        for (int t = 0; t < T; t++)
            pthread_join(th[t], NULL);
        pthread_barrier_destroy(&bar);
        unsigned long w = atomic_load(&wins);
        if (exact)
            CHECK_EQ_U(w, RACE);
        else
            CHECK(w >= RACE && w <= 2 * RACE); /* at most the owner and one CAS per handle */
        total_wins += w;
    }
    tslab_flush(A); /* checks every remote bit: each duplicate is found here */
    tslab_class_stats s = cls0(A);
    if (exact)
        CHECK_EQ_U(s.duplicates_dropped, 0);
    CHECK_EQ_U(total_wins - s.duplicates_dropped, (unsigned long)rounds * RACE);
    CHECK_EQ_U(s.frees - s.duplicates_dropped, s.allocations);
    CHECK_EQ_U(s.live_objects, 0);
    CHECK_EQ_U(s.slabs_partial + s.slabs_full, 0);
    check_unique(A, 3 * RACE);
    printf("%s: %d rounds x %d handles x %d threads, %llu frees won twice and dropped\n",
           exact ? "exact_frees, allocating thread vs others" : "owner vs others", rounds, RACE,
           T + 1, (unsigned long long)s.duplicates_dropped);
    tslab_destroy(A);
}

static void owner_races_others(void) { owner_race(false); }
static void exact_frees_race(void) { owner_race(true); }

/* ---- the race, replayed in its worst order (white box) ---- */

static tslab_handle victim;

static void *remote_free_and_exit(void *arg)
{
    (void)arg;
    CHECK(tslab_free(A, victim)); /* CAS: LIVE -> FREE|RFREE; batched for the owner */
    return NULL;                  /* exit flushes the batch */
}

/* What the owner's free does after its load saw LIVE: the plain store, then the slot into its
 * cache (sanitizer builds, whose frees go through a quarantine: straight back to the slab). */
static void owner_late_store(tslab *a, tslab_handle h)
{
    uint32_t ci = (uint32_t)(h >> TSLAB__CLS_SHIFT) & ((1u << TSLAB__CLS_BITS) - 1);
    tslab__class *c = &a->cls[ci];
    uint32_t idx = tslab__handle_idx(h), gen = (uint32_t)h & TSLAB__GEN_MASK;
    atomic_store_explicit(&c->state[idx], tslab__state_freed(gen), memory_order_release);
    uint64_t ent = tslab__handle_next(h);
    tslab__tclass *t = &tslab__tcache_get(a)->cls[ci];
    tslab__bump(&t->tc.frees); /* it returned true, and counted */
    if (!tslab_config_quarantine && t->count < t->cap)
        t->slots[t->count++] = ent;
    else
        tslab__slab_drain(a, c, &ent, 1);
}

static void replayed_race_owner_checks(void)
{
    A = mk(TSLAB_CACHE_NONE);
    CHECK(tslab_alloc(A, 64, &victim) != NULL); /* we own its slab */
    uint64_t frees0 = cls0(A).frees;
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, remote_free_and_exit, NULL) == 0);
    pthread_join(t, NULL); /* the remote bit is set: our slab */
    owner_late_store(A, victim);
    /* The cache hands the owner's copy out first; the refill after it checks the remote bit and
     * must find the word LIVE, not RFREE. */
    uint32_t per_slab = (uint32_t)cls0(A).objects_per_slab;
    check_unique(A, 2 * per_slab);
    tslab_flush(A);
    tslab_class_stats s = cls0(A);
    CHECK_EQ_U(s.duplicates_dropped, 1);
    CHECK_EQ_U(s.frees - frees0, 2 + 2 * per_slab); /* both frees of the victim count */
    CHECK_EQ_U(s.live_objects, 0);
    CHECK_EQ_U(s.slabs_partial + s.slabs_full, 0);
    tslab_destroy(A);
}

/* The same race when the owner flushes first and the other thread's batch arrives after: the
 * duplicate must be found when the batch is handed back, not at the owner's next refill, so that
 * once every thread has flushed frees == allocations + duplicates_dropped exactly. */
static void *remote_free_flush_late(void *arg)
{
    (void)arg;
    CHECK(tslab_free(A, victim)); /* CAS: LIVE -> FREE|RFREE, held in this thread's batch */
    pthread_barrier_wait(&bar);   /* the owner's late store and its flush */
    pthread_barrier_wait(&bar);
    tslab_flush(A);             /* the batch reaches the owner's slab now */
    pthread_barrier_wait(&bar); /* main reads the counters while this thread still lives */
    pthread_barrier_wait(&bar);
    return NULL;
}

static void replayed_race_owner_flushed_first(void)
{
    A = mk(TSLAB_CACHE_NONE);
    tslab_handle keeper; /* keeps the slab ours (not empty) through both flushes */
    CHECK(tslab_alloc(A, 64, &keeper) != NULL);
    CHECK(tslab_alloc(A, 64, &victim) != NULL); /* we own its slab */
    pthread_barrier_init(&bar, NULL, 2);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, remote_free_flush_late, NULL) == 0);
    pthread_barrier_wait(&bar);
    owner_late_store(A, victim);
    tslab_flush(A); /* every thread flushes: this one first */
    pthread_barrier_wait(&bar);
    pthread_barrier_wait(&bar); /* ... and then the other */
    tslab_class_stats s = cls0(A);
    CHECK_EQ_U(s.duplicates_dropped, 1);
    /* Exact, no clamp involved: the keeper is the one live object. */
    CHECK_EQ_U(s.allocations + s.duplicates_dropped - s.frees, 1);
    CHECK_EQ_U(s.live_objects, 1);
    pthread_barrier_wait(&bar);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&bar);
    check_unique(A, 2 * (uint32_t)s.objects_per_slab);
    CHECK(tslab_free(A, keeper));
    tslab_destroy(A);
}

static void *own_then_exit(void *arg)
{
    (void)arg;
    CHECK(tslab_alloc(A, 64, &victim) != NULL);
    pthread_barrier_wait(&bar); /* main's CAS free */
    pthread_barrier_wait(&bar);
    owner_late_store(A, victim);
    return NULL; /* exit gives the slab up before main's batch arrives */
}

static void replayed_race_unowned_check(void)
{
    A = mk(TSLAB_CACHE_NONE);
    pthread_barrier_init(&bar, NULL, 2);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, own_then_exit, NULL) == 0);
    pthread_barrier_wait(&bar);
    CHECK(tslab_free(A, victim)); /* CAS; sits in our batch */
    pthread_barrier_wait(&bar);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&bar);
    tslab_flush(A); /* unowned now: checked against the generation our CAS wrote */
    tslab_class_stats s = cls0(A);
    CHECK_EQ_U(s.duplicates_dropped, 1);
    CHECK_EQ_U(s.live_objects, 0);
    CHECK_EQ_U(s.slabs_partial + s.slabs_full, 0);
    check_unique(A, 2 * (uint32_t)s.objects_per_slab);
    tslab_destroy(A);
}

/* ---- fork(): the child gives up the slabs of the parent's other threads ---- */

static void *alloc_and_wait(void *arg)
{
    (void)arg;
    for (uint32_t i = 0; i < N; i++)
        CHECK(tslab_alloc(A, 64, &H[i]) != NULL);
    /* Our cache's free slots would be lost to the child (it has no such thread): give them
     * back, so that the child can empty every slab. */
    tslab_flush(A);
    pthread_barrier_wait(&bar); /* main forks */
    pthread_barrier_wait(&bar);
    return NULL;
}

/* In the child the owner thread does not exist: its slabs are unowned, so frees of its objects
 * are checked and taken at once, and every slab empties. The exit code names a failed check. */
static void child_frees_parents_objects(void)
{
    for (uint32_t i = 0; i < N; i++)
        if (!tslab_free(A, H[i]))
            _exit(2);
    tslab_flush(A);
    tslab_class_stats s = cls0(A);
    if (s.live_objects != 0)
        _exit(3);
    if (s.slabs_partial + s.slabs_full != 0)
        _exit(4);
}

static void fork_child_disowns(void)
{
    A = mk(0);
    N = (uint32_t)scaled(5000);
    H = calloc(N, sizeof *H);
    REQUIRE(H != NULL);
    tslab_handle h; /* this thread's cache exists before the fork (no malloc in the child) */
    CHECK(tslab_alloc(A, 64, &h) != NULL);
    CHECK(tslab_free(A, h));
    tslab_flush(A);
    pthread_barrier_init(&bar, NULL, 2);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, alloc_and_wait, NULL) == 0);
    pthread_barrier_wait(&bar);
    int status = test_run_child(child_frees_parents_objects);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "fork child: status %#x\n", status);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    pthread_barrier_wait(&bar);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&bar);
    /* The parent is untouched: the objects are still live here. */
    CHECK_EQ_U(cls0(A).live_objects, N);
    for (uint32_t i = 0; i < N; i++)
        CHECK(tslab_free(A, H[i]));
    printf("fork: the child freed %u objects of a thread it does not have and emptied every "
           "slab\n",
           N);
    free(H);
    tslab_destroy(A);
}

/* ---- a thread without an owner id (white box: every id marked taken) ---- */

static void *no_id_worker(void *arg)
{
    (void)arg;
    for (uint32_t i = 0; i < N; i++)
        CHECK(tslab_alloc(A, 64, &H[i]) != NULL);
    CHECK_EQ_U(tslab__tcache_get(A)->id, TSLAB__NO_ID);
    for (uint32_t i = 0; i < N; i++) /* every free is a CAS: no slab is ours */
        CHECK(tslab_free(A, H[i]));
    for (uint32_t i = 0; i < N; i++)
        CHECK(!tslab_free(A, H[i]));
    check_unique(A, N);
    return NULL;
}

static void thread_without_id(void)
{
    A = mk(0);
    N = (uint32_t)scaled(20000);
    H = calloc(N, sizeof *H);
    REQUIRE(H != NULL);
    pthread_mutex_lock(&A->tc_lock);
    memset(A->id_used, 0xff, sizeof A->id_used);
    pthread_mutex_unlock(&A->tc_lock);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, no_id_worker, NULL) == 0);
    pthread_join(t, NULL);
    tslab_class_stats s = cls0(A);
    CHECK_EQ_U(s.live_objects, 0);
    CHECK_EQ_U(s.rejected_double, N);
    CHECK_EQ_U(s.slabs_partial + s.slabs_full, 0);
    CHECK_EQ_U(s.duplicates_dropped, 0);
    printf("no owner id: %u objects allocated, freed by CAS and reused; every slab emptied\n", N);
    free(H);
    tslab_destroy(A);
}

TEST_MAIN(T(generation_distance), T(remote_frees_reach_owner), T(owner_exit_disowns),
          T(owner_races_others), T(exact_frees_race), T(replayed_race_owner_checks),
          T(replayed_race_owner_flushed_first), T(replayed_race_unowned_check),
          T(fork_child_disowns), T(thread_without_id))
