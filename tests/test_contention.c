/* White-box: a thread that finds a class's lock taken counts one wait and exactly the time it
 * waited (an injected clock), which tslab_profile_read reports. Sees allocator/src to hold the
 * lock itself and to see the waiter arrive (no sleeping). */
#include <pthread.h>
#include <stdatomic.h>

#include "internal.h"
#include "testhelper.h"

static _Atomic uint64_t fake_now = 1000;
static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return atomic_load_explicit(&fake_now, memory_order_acquire);
}

static void *allocate(void *arg)
{
    tslab *a = arg;
    void *p = tslab_malloc(a, 64); /* first use: a refill, which takes class 0's lock */
    CHECK(p != NULL);
    CHECK(tslab_free_ptr(a, p));
    return NULL;
}

static void wait_is_counted(void)
{
    tslab_os os = *tslab_os_default(); /* the real OS calls, our clock */
    os.now_ns = fake_clock;
    tslab_config cfg = {.os = &os, .sample_bytes = TSLAB_SAMPLE_OFF};
    tslab *a = tslab_create(&cfg);
    CHECK(a != NULL);
    tslab__class *c = &a->cls[0];
    pthread_mutex_lock(&c->lock);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, allocate, a) == 0);
    /* The waiter has read its start time once it shows up here. */
    while (atomic_load_explicit(&c->lock_waiters, memory_order_acquire) == 0)
        ;
    atomic_store_explicit(&fake_now, 1000 + 250000, memory_order_release);
    pthread_mutex_unlock(&c->lock);
    CHECK(pthread_join(th, NULL) == 0);
    tslab_profile *p;
    CHECK(tslab_profile_read(a, &p) == 0);
    printf("class 0: %llu waits, %llu ns\n", (unsigned long long)p->classes[0].lock_waits,
           (unsigned long long)p->classes[0].lock_wait_ns);
    CHECK_EQ_U(p->classes[0].lock_waits, 1);
    CHECK_EQ_U(p->classes[0].lock_wait_ns, 250000);
    CHECK_EQ_U(p->classes[1].lock_waits, 0);
    tslab_profile_free(p);
    /* Uncontended acquisitions are not counted. */
    tslab_flush(a);
    CHECK(tslab_purge(a) == 0);
    CHECK(tslab_profile_read(a, &p) == 0);
    CHECK_EQ_U(p->classes[0].lock_waits, 1);
    tslab_profile_free(p);
    tslab_destroy(a);
}

TEST_MAIN(T(wait_is_counted))
