/* SPDX-License-Identifier: MIT */
/* Concurrency: many threads allocating and freeing at once, cross-thread frees, and a churn in
 * which every object carries its owner's stamp, so a slot handed out twice is caught. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <tslab.h>

#include "testhelper.h"

typedef struct stamp {
    uint64_t handle; /* the handle this object was allocated under */
    uint64_t owner;  /* thread id << 32 | sequence */
} stamp;

static tslab *A;
static pthread_barrier_t start;

/* ---- 8 threads x 500,000 alloc-then-free, each keeping a ring of 64 live objects ---- */
static void *alloc_free_worker(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    enum { RING = 64 };
    tslab_handle ring[RING] = {0};
    unsigned long n = scaled(500000);
    unsigned long long rng = 0x9E3779B97F4A7C15ull ^ (id + 1);
    pthread_barrier_wait(&start);
    for (unsigned long i = 0; i < n; i++) {
        unsigned k = (unsigned)(i % RING);
        if (ring[k]) {
            stamp *s = tslab_handle_ptr(A, ring[k]);
            REQUIRE(s != NULL);
            CHECK(s->handle == ring[k] && s->owner >> 32 == id);
            CHECK(tslab_free(A, ring[k]));
        }
        size_t size = 16 + rng_next(&rng) % 700;
        stamp *s = tslab_alloc(A, size, &ring[k]);
        REQUIRE(s != NULL);
        s->handle = ring[k];
        s->owner = id << 32 | (uint32_t)i;
    }
    for (unsigned k = 0; k < RING; k++)
        if (ring[k])
            CHECK(tslab_free(A, ring[k]));
    return NULL;
}

static void eight_threads_500k(void)
{
    enum { T = 8 };
    A = tslab_create(NULL);
    REQUIRE(A != NULL);
    pthread_t th[T];
    pthread_barrier_init(&start, NULL, T);
    for (uintptr_t i = 0; i < T; i++)
        REQUIRE(pthread_create(&th[i], NULL, alloc_free_worker, (void *)i) == 0);
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    tslab_stats st;
    CHECK(tslab_stats_read(A, &st) == 0);
    uint64_t allocs = 0, frees = 0, live = 0, rejected = 0;
    for (unsigned c = 0; c < st.class_count; c++) {
        allocs += st.classes[c].allocations;
        frees += st.classes[c].frees;
        live += st.classes[c].live_objects;
        rejected += st.classes[c].rejected_double + st.classes[c].rejected_stale +
                    st.classes[c].rejected_invalid + st.classes[c].rejected_foreign;
    }
    printf("8 threads: %llu allocations, %llu frees, %llu live, %llu rejected\n",
           (unsigned long long)allocs, (unsigned long long)frees, (unsigned long long)live,
           (unsigned long long)rejected);
    CHECK_EQ_U(allocs, T * scaled(500000));
    CHECK_EQ_U(frees, allocs);
    CHECK_EQ_U(live, 0);
    CHECK_EQ_U(rejected, 0);
    tslab_destroy(A);
}

/* ---- producer/consumer: one thread allocates, the other frees ---- */
#define QCAP 1024
static _Atomic uint64_t queue[QCAP];
static _Atomic unsigned long q_head, q_tail;

static void *producer(void *arg)
{
    unsigned long n = *(unsigned long *)arg;
    pthread_barrier_wait(&start);
    for (unsigned long i = 0; i < n; i++) {
        tslab_handle h;
        stamp *s = tslab_alloc(A, 128, &h);
        REQUIRE(s != NULL);
        s->handle = h;
        s->owner = i;
        unsigned long t = atomic_load_explicit(&q_tail, memory_order_relaxed);
        while (t - atomic_load_explicit(&q_head, memory_order_acquire) == QCAP)
            ; /* full: the consumer makes progress without us */
        atomic_store_explicit(&queue[t % QCAP], h, memory_order_relaxed);
        atomic_store_explicit(&q_tail, t + 1, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    unsigned long n = *(unsigned long *)arg;
    pthread_barrier_wait(&start);
    for (unsigned long i = 0; i < n; i++) {
        unsigned long hd = atomic_load_explicit(&q_head, memory_order_relaxed);
        while (atomic_load_explicit(&q_tail, memory_order_acquire) == hd)
            ;
        tslab_handle h = atomic_load_explicit(&queue[hd % QCAP], memory_order_relaxed);
        atomic_store_explicit(&q_head, hd + 1, memory_order_release);
        stamp *s = tslab_handle_ptr(A, h);
        REQUIRE(s != NULL);
        CHECK(s->handle == h && s->owner == i);
        CHECK(tslab_free(A, h));
    }
    return NULL;
}

static void producer_consumer(void)
{
    A = tslab_create(NULL);
    unsigned long n = scaled(1000000);
    pthread_t p, c;
    pthread_barrier_init(&start, NULL, 2);
    REQUIRE(pthread_create(&p, NULL, producer, &n) == 0);
    REQUIRE(pthread_create(&c, NULL, consumer, &n) == 0);
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    pthread_barrier_destroy(&start);
    tslab_stats st;
    tslab_stats_read(A, &st);
    printf("producer/consumer: %llu handed across threads, %llu live, resident %llu bytes\n",
           (unsigned long long)st.classes[2].frees, (unsigned long long)st.classes[2].live_objects,
           (unsigned long long)st.classes[2].resident_bytes);
    CHECK_EQ_U(st.classes[2].allocations, n);
    CHECK_EQ_U(st.classes[2].frees, n);
    tslab_destroy(A);
}

/* ---- random churn over a shared table: frees cross threads; stamps catch double hand-out ---- */
#define SLOTS 4096
static _Atomic uint64_t table[SLOTS];
static _Atomic uint64_t doubles_tried;

static void *churn_worker(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    unsigned long long rng = 0xD1B54A32D192ED03ull * (id + 1);
    unsigned long n = scaled(400000);
    pthread_barrier_wait(&start);
    for (unsigned long i = 0; i < n; i++) {
        unsigned k = (unsigned)(rng_next(&rng) % SLOTS);
        uint64_t h = atomic_exchange_explicit(&table[k], 0, memory_order_acq_rel);
        if (h) {
            stamp *s = tslab_handle_ptr(A, h);
            REQUIRE(s != NULL);
            CHECK(s->handle == h);
            CHECK(tslab_free(A, h));
            CHECK(!tslab_free(A, h)); /* immediately a double free */
            atomic_fetch_add_explicit(&doubles_tried, 1, memory_order_relaxed);
        } else {
            tslab_handle nh;
            stamp *s =
                (rng & 1) ? tslab_alloc(A, 16 + rng % 750, &nh) : tslab_malloc(A, 16 + rng % 750);
            REQUIRE(s != NULL);
            if (rng & 1) {
                CHECK(tslab_ptr_handle(A, s) == nh);
            } else {
                nh = tslab_ptr_handle(A, s);
                CHECK(nh != TSLAB_HANDLE_NONE);
            }
            s->handle = nh;
            s->owner = id << 32 | (uint32_t)i;
            uint64_t prev = atomic_exchange_explicit(&table[k], nh, memory_order_acq_rel);
            if (prev) { /* another thread filled the slot meanwhile: free theirs */
                stamp *o = tslab_handle_ptr(A, prev);
                REQUIRE(o != NULL);
                CHECK(o->handle == prev);
                CHECK(tslab_free(A, prev));
            }
        }
    }
    return NULL;
}

static void random_churn_stamped(void)
{
    enum { T = 4 };
    A = tslab_create(NULL);
    pthread_t th[T];
    pthread_barrier_init(&start, NULL, T);
    for (uintptr_t i = 0; i < T; i++)
        REQUIRE(pthread_create(&th[i], NULL, churn_worker, (void *)i) == 0);
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    unsigned long left = 0;
    for (unsigned k = 0; k < SLOTS; k++) {
        uint64_t h = atomic_load(&table[k]);
        if (h) {
            stamp *s = tslab_handle_ptr(A, h);
            REQUIRE(s != NULL);
            CHECK(s->handle == h);
            CHECK(tslab_free(A, h));
            left++;
        }
    }
    tslab_stats st;
    tslab_stats_read(A, &st);
    uint64_t allocs = 0, frees = 0, dbl = 0;
    for (unsigned c = 0; c < st.class_count; c++) {
        allocs += st.classes[c].allocations;
        frees += st.classes[c].frees;
        dbl += st.classes[c].rejected_double + st.classes[c].rejected_stale;
    }
    printf("churn: %llu allocations, %llu frees, %llu deliberate double frees rejected\n",
           (unsigned long long)allocs, (unsigned long long)frees, (unsigned long long)dbl);
    CHECK_EQ_U(allocs, frees);
    CHECK(dbl > 0 && dbl == atomic_load(&doubles_tried));
    CHECK(left <= SLOTS);
    tslab_destroy(A);
}

/* Threads that exit return their cached slots: after all of them end, nothing is pinned. */
static void *exit_worker(void *arg)
{
    (void)arg;
    tslab_handle h[100];
    for (int i = 0; i < 100; i++)
        CHECK(tslab_alloc(A, 64, &h[i]) != NULL);
    for (int i = 0; i < 100; i++)
        CHECK(tslab_free(A, h[i]));
    return NULL;
}

static void thread_exit_flushes(void)
{
    A = tslab_create(NULL);
    for (int r = 0; r < 20; r++) {
        pthread_t t;
        REQUIRE(pthread_create(&t, NULL, exit_worker, NULL) == 0);
        pthread_join(t, NULL);
    }
    tslab_flush(A); /* only the sanitizer quarantine, which is not per thread, holds slots now */
    tslab_stats st;
    tslab_stats_read(A, &st);
    CHECK_EQ_U(st.classes[0].allocations, 2000);
    CHECK_EQ_U(st.classes[0].frees, 2000);
    CHECK_EQ_U(st.classes[0].slabs_partial + st.classes[0].slabs_full, 0);
    CHECK(st.classes[0].slabs_cached == 1);
    tslab_destroy(A);
}

TEST_MAIN(T(eight_threads_500k), T(producer_consumer), T(random_churn_stamped),
          T(thread_exit_flushes))
