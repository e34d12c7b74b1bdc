/* Contention on the class locks: the refill, drain and hand-back paths take a class's lock
 * (slab.c, through tslab__class_lock); a thread that finds it taken counts the wait and its
 * length here, so a dashboard can show which class needs a bigger batch or more slabs per
 * thread. Uncontended acquisitions cost one trylock and are not counted. */
#include "internal.h"

TSLAB_COLD void tslab__class_lock_wait(tslab *a, tslab__class *c)
{
    uint64_t t0 = tslab__now(a);
    /* Release: a white-box test that sees the waiter also sees t0 taken. */
    atomic_fetch_add_explicit(&c->lock_waiters, 1, memory_order_release);
    pthread_mutex_lock(&c->lock);
    atomic_fetch_sub_explicit(&c->lock_waiters, 1, memory_order_relaxed);
    uint64_t t1 = tslab__now(a);
    /* Under the lock: single writer. */
    tslab__cadd(&c->lock_waits, 1);
    tslab__cadd(&c->lock_wait_ns, (int64_t)(t1 > t0 ? t1 - t0 : 0));
}
