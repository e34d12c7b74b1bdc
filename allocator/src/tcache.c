/* SPDX-License-Identifier: MIT */
/* Thread caches: each thread keeps, per instance and class, a small LIFO stack of free slot
 * indices that only it touches. They are created on first use, flushed when the thread exits
 * (pthread key destructor) and freed by whichever comes first: thread exit or tslab_destroy. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

tslab__eclass tslab__ec_none[TSLAB_CLASSES_MAX];

__thread tslab__tls_entry *tslab__tls __attribute__((tls_model("initial-exec")));
__thread tslab__tls_fast_entry tslab__tls_fast[TSLAB__TLS_FAST]
    __attribute__((tls_model("initial-exec")));

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_key_ok;

static void merge_counters(tslab__tcounters *dst, const tslab__tcounters *src)
{
#define MERGE(f, src_kind, ...)                                                                    \
    TSLAB__SRC_##src_kind(                                                                         \
        atomic_store_explicit(&dst->f,                                                             \
                              atomic_load_explicit(&dst->f, memory_order_relaxed) +                \
                                  atomic_load_explicit(&src->f, memory_order_relaxed),             \
                              memory_order_release);)
    TSLAB_CLASS_STATS(MERGE)
#undef MERGE
}

void tslab__ecache_fold(tslab *a, tslab__tcache *tc, uint32_t ci)
{
    tslab__eclass *t = &tc->ec[ci];
    tslab__ec_arm(&tc->cls[ci], t); /* the sampler's share of `allocs`, before it restarts */
    tc->cls[ci].esynced = 0;
    if (t->allocs != 0)
        tslab__epoch_count(a, t->idx, ci, (int64_t)t->allocs);
    if (t->frees != 0)
        tslab__epoch_count(a, t->idx, ci, -(int64_t)t->frees);
    t->allocs = t->frees = 0;
}

void tslab__ecache_unbind(tslab *a, tslab__tcache *tc, uint32_t ci)
{
    tslab__eclass *t = &tc->ec[ci];
    if (t->epoch == 0)
        return;
    /* Counted while the slots still hold the record (tslab__eclass): the counts are non-zero
     * only while the cache holds a slot (the allocation slow path folds as it takes the last). */
    tslab__ecache_fold(a, tc, ci);
    uint32_t n = atomic_load_explicit(&t->count, memory_order_relaxed);
    if (n > 0)
        tslab__slab_drain(a, &a->cls[ci], tslab__ec_slots(t), n);
    atomic_store_explicit(&t->count, 0, memory_order_relaxed);
    t->epoch = 0;
    t->key = NULL;
}

void tslab__tcache_flush(tslab *a, tslab__tcache *tc)
{
    for (uint32_t i = 0; i < a->nclasses; i++) {
        if (tslab__ec_used(tc))
            tslab__ecache_unbind(a, tc, i);
        tslab__tclass *t = &tc->cls[i];
        uint32_t n = atomic_load_explicit(&t->count, memory_order_relaxed);
        if (n > 0)
            tslab__slab_drain(a, &a->cls[i], tslab__tc_slots(t), n);
        atomic_store_explicit(&t->count, 0, memory_order_relaxed);
        uint16_t r = atomic_load_explicit(&t->rcount, memory_order_relaxed);
        if (r > 0)
            tslab__slab_remote(a, &a->cls[i], t->id, t->remote, r);
        atomic_store_explicit(&t->rcount, 0, memory_order_relaxed);
        tslab__slab_collect(a, &a->cls[i], t->id);
    }
}

/* Unlinks tc from its instance and folds its counters into `retired`, so that counts stay
 * monotonic. Caller holds the registry lock (the instance is alive). */
static void retire(tslab *a, tslab__tcache *tc)
{
    /* Slabs first: the id is free for another thread only once no slab is owned by it. */
    if (tc->id != TSLAB__NO_ID)
        for (uint32_t i = 0; i < a->nclasses; i++)
            tslab__slab_disown(a, &a->cls[i], tc->id);
    pthread_mutex_lock(&a->tc_lock);
    if (tc->id != TSLAB__NO_ID)
        a->id_used[tc->id / 64] &= ~(UINT64_C(1) << (tc->id % 64));
    for (uint32_t i = 0; i <= a->nclasses; i++)
        merge_counters(&a->retired[i], &tc->cls[i].tc);
    if (tc->prev)
        tc->prev->next = tc->next;
    else
        a->tcaches = tc->next;
    if (tc->next)
        tc->next->prev = tc->prev;
    pthread_mutex_unlock(&a->tc_lock);
}

static void thread_exit(void *arg)
{
    tslab__tls_entry *m = arg;
    tslab__tls = NULL;
    for (uint32_t i = 0; i < TSLAB__TLS_FAST; i++)
        atomic_store_explicit(&tslab__tls_fast[i].uid, 0, memory_order_relaxed);
    /* The registry lock keeps the collector (the maintenance pass) out until the caches are off
     * their instances' lists, so the entries it already took are all there is to reconcile. */
    tslab__registry_lock();
    for (uint32_t t = 1; t <= TSLAB_INSTANCES_MAX; t++) {
        if (m[t].uid == 0)
            continue;
        tslab *a = tslab__registry_get(t);
        /* A destroyed instance already freed this cache; a reused tag has another uid. */
        if (a != NULL && a->uid == m[t].uid) {
            pthread_mutex_lock(&m[t].tc->lock);
            tslab__reclaim_reconcile(a, m[t].tc);
            pthread_mutex_unlock(&m[t].tc->lock);
            tslab__tcache_flush(a, m[t].tc);
            retire(a, m[t].tc);
            pthread_mutex_destroy(&m[t].tc->lock);
            if (tslab__ec_used(m[t].tc))
                free(m[t].tc->ec);
            free(m[t].tc);
        }
    }
    tslab__registry_unlock();
    free(m);
}

static void tls_init(void) { tls_key_ok = pthread_key_create(&tls_key, thread_exit) == 0; }

static tslab__tcache *tcache_new(tslab *a)
{
    tslab__tcache *tc =
        calloc(1, sizeof(tslab__tcache) + (a->nclasses + 1) * sizeof(tslab__tclass));
    if (tc == NULL)
        return NULL;
    if (pthread_mutex_init(&tc->lock, NULL) != 0) {
        free(tc);
        return NULL;
    }
    tc->fast = tslab__tls_slot(a);
    tc->seen_ops = UINT64_MAX; /* no count: the first collector pass records one (reclaim.c) */
    for (uint32_t i = 0; i < a->nclasses; i++) {
        const tslab__class *c = &a->cls[i];
        tslab__tclass *t = &tc->cls[i];
        t->cap = c->tcache_cap;
        t->base = c->base;
        t->state = c->state;
        t->owner = c->owner;
        t->size = c->size;
        t->pitch = c->pitch;
        t->slot_shift = c->slot_shift;
        t->top = a->tag_base | i;
    }
    tc->uid = a->uid;
    tc->id = TSLAB__NO_ID;
    tc->ec = tslab__ec_none;
    pthread_mutex_lock(&a->tc_lock);
    for (uint32_t w = 0; w < TSLAB__IDS / 64 && tc->id == TSLAB__NO_ID; w++)
        if (~a->id_used[w] != 0) {
            uint32_t b = (uint32_t)__builtin_ctzll(~a->id_used[w]);
            a->id_used[w] |= UINT64_C(1) << b;
            tc->id = (uint16_t)(w * 64 + b);
        }
    for (uint32_t i = 0; i <= a->nclasses; i++)
        tc->cls[i].id = tc->id;
    tc->next = a->tcaches;
    if (tc->next)
        tc->next->prev = tc;
    a->tcaches = tc;
    pthread_mutex_unlock(&a->tc_lock);
    return tc;
}

TSLAB_NOINLINE tslab__tcache *tslab__tcache_bind(tslab *a)
{
    tslab__tls_entry *m = tslab__tls;
    if (m == NULL) {
        pthread_once(&tls_once, tls_init);
        m = calloc(TSLAB_INSTANCES_MAX + 1, sizeof *m);
        if (m == NULL || !tls_key_ok || pthread_setspecific(tls_key, m) != 0) {
            free(m);
            errno = ENOMEM;
            return NULL;
        }
        tslab__tls = m;
    }
    /* An entry with another uid belonged to a destroyed instance, which freed its cache. */
    if (m[a->tag].uid != a->uid) {
        tslab__tcache *tc = tcache_new(a);
        if (tc == NULL) {
            errno = ENOMEM;
            return NULL;
        }
        m[a->tag] = (tslab__tls_entry){a->uid, tc};
    }
    tslab__tcache *tc = m[a->tag].tc;
    tslab__tls_fast_entry *e = tslab__tls_slot(a);
    /* Under the cache's lock, so no collection is half done: take back what the collector took,
     * then match again. Release on uid: a collector whose CAS fails on it sees every operation
     * this thread made before on the instance the entry held (reclaim.c). */
    pthread_mutex_lock(&tc->lock);
    tslab__reclaim_reconcile(a, tc);
    e->tc = tc;
    atomic_store_explicit(&e->uid, a->uid, memory_order_release);
    pthread_mutex_unlock(&tc->lock);
    return tc;
}

/* Binds (which waits for a collection under way and reconciles), then enters as
 * tslab__tcache_enter does; again if the entry was revoked in between. */
TSLAB_NOINLINE tslab__tcache *tslab__tcache_enter_slow(tslab *a)
{
    tslab__tls_fast_entry *e = tslab__tls_slot(a);
    for (;;) {
        tslab__tcache *tc = tslab__tcache_bind(a);
        if (tc == NULL)
            return NULL;
        uint32_t d = atomic_load_explicit(&tc->in_slow, memory_order_relaxed);
        atomic_store_explicit(&tc->in_slow, d + 1, memory_order_seq_cst);
        if (atomic_load_explicit(&e->uid, memory_order_seq_cst) == a->uid)
            return tc;
        atomic_store_explicit(&tc->in_slow, d, memory_order_release);
    }
}

void tslab__tcache_destroy_all(tslab *a)
{
    pthread_mutex_lock(&a->tc_lock);
    tslab__tcache *tc = a->tcaches;
    a->tcaches = NULL;
    pthread_mutex_unlock(&a->tc_lock);
    while (tc) {
        tslab__tcache *next = tc->next;
        pthread_mutex_destroy(&tc->lock);
        if (tslab__ec_used(tc))
            free(tc->ec);
        free(tc);
        tc = next;
    }
    /* The calling thread's own entry would otherwise keep a dangling pointer until the tag's
     * uid check rejects it; clear it now so nothing can ever read it. */
    if (tslab__tls != NULL && tslab__tls[a->tag].uid == a->uid)
        tslab__tls[a->tag] = (tslab__tls_entry){0, NULL};
    if (tslab__tls_match(tslab__tls_slot(a), a))
        atomic_store_explicit(&tslab__tls_slot(a)->uid, 0, memory_order_relaxed);
}

void tslab_flush(tslab *a)
{
    if (a == NULL)
        return;
    tslab__tls_entry *m = tslab__tls;
    if (m != NULL && m[a->tag].uid == a->uid) {
        tslab__tcache *tc = tslab__tcache_enter(a);
        if (tc != NULL) {
            tslab__tcache_flush(a, tc);
            tslab__tcache_leave(tc);
        }
    }
    for (uint32_t i = 0; i < a->nclasses; i++) {
        tslab__quarantine_drain(a, &a->cls[i]);
        tslab__slab_decay(a, &a->cls[i]);
    }
}
