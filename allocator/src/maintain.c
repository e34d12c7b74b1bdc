/* SPDX-License-Identifier: MIT */
/* Memory over time, the control side: run-time settings (decay time, limits) and the opt-in
 * process-wide maintenance thread that advances decay while the process does not call the
 * allocator. The policy itself (what is cached, for how long, what goes back) is in slab.c.
 *
 * The thread takes the registry lock for a pass, so no instance can be destroyed under it, and
 * each class lock only briefly (tslab__slab_decay releases pages outside it). Locks, in order:
 * ctl_lock (start/stop), bg_lock (the stop flag and the thread's wake-up), then the registry lock
 * and the instances' locks; fork() takes them all in that order (instance.c's handlers call the
 * ones here first), so the child inherits none held, and has no maintenance thread. */
#include "internal.h"

#include <errno.h>
#include <time.h>

int tslab_limit_set(tslab *a, tslab_limit which, uint64_t bytes)
{
    if (a == NULL || (which != TSLAB_LIMIT_HARD && which != TSLAB_LIMIT_SOFT))
        return -EINVAL;
    atomic_store_explicit(which == TSLAB_LIMIT_HARD ? &a->limit_hard : &a->limit_soft, bytes,
                          memory_order_relaxed);
    uint64_t r = atomic_load_explicit(&a->resident, memory_order_relaxed);
    for (uint32_t i = 0; i < a->nclasses; i++) {
        if (which == TSLAB_LIMIT_HARD && bytes != 0 && r > bytes)
            tslab__slab_purge(a, &a->cls[i], TSLAB__WHY_LIMIT);
        else
            tslab__slab_decay(a, &a->cls[i]);
    }
    return 0;
}

uint64_t tslab_limit_get(const tslab *a, tslab_limit which)
{
    if (a == NULL || (which != TSLAB_LIMIT_HARD && which != TSLAB_LIMIT_SOFT))
        return 0;
    return atomic_load_explicit(which == TSLAB_LIMIT_HARD ? &a->limit_hard : &a->limit_soft,
                                memory_order_relaxed);
}

uint64_t tslab_resident_bytes(const tslab *a)
{
    return a ? atomic_load_explicit(&a->resident, memory_order_relaxed) : 0;
}

int tslab_decay_set(tslab *a, uint64_t ms)
{
    if (a == NULL)
        return -EINVAL;
    atomic_store_explicit(&a->decay_ns, tslab__ms_to_ns(ms), memory_order_relaxed);
    for (uint32_t i = 0; i < a->nclasses; i++)
        tslab__slab_decay(a, &a->cls[i]);
    return 0;
}

uint64_t tslab_decay_get(const tslab *a)
{
    return a ? atomic_load_explicit(&a->decay_ns, memory_order_relaxed) / 1000000u : 0;
}

/* ---- The maintenance thread ---- */
#define WAKE_MIN_NS UINT64_C(1000000)    /* 1 ms */
#define WAKE_MAX_NS UINT64_C(1000000000) /* 1 s */

static pthread_mutex_t ctl_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t bg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bg_cond;
static pthread_once_t bg_once = PTHREAD_ONCE_INIT;
static int bg_cond_ok;
static bool bg_running; /* ctl_lock */
static bool bg_stop;    /* bg_lock */
static pthread_t bg_thread;
/* For tslab_background_running only; relaxed: a status, nothing is published through it. */
static _Atomic bool bg_live;

static void bg_init(void)
{
    pthread_condattr_t at;
    if (pthread_condattr_init(&at) != 0)
        return;
    bg_cond_ok = pthread_condattr_setclock(&at, CLOCK_MONOTONIC) == 0 &&
                 pthread_cond_init(&bg_cond, &at) == 0;
    pthread_condattr_destroy(&at);
}

static uint64_t clamp(uint64_t x, uint64_t lo, uint64_t hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

/* One pass over every live instance; returns how long to wait before the next one: a quarter of
 * the smallest decay time, or less when a deadline is nearer, within [1 ms, 1 s]. Each instance's
 * caches are collected when their threads have been idle for its own quarter (same bounds), so a
 * thread's slots are back in their slabs within 3 of those after its last call (reclaim.c), before
 * decay starts on the slabs they empty. */
uint64_t tslab__maintain_pass(void)
{
    uint64_t wait = WAKE_MAX_NS;
    tslab__registry_lock();
    for (uint32_t t = 1; t <= TSLAB_INSTANCES_MAX; t++) {
        tslab *a = tslab__registry_get(t);
        if (a == NULL)
            continue;
        uint64_t quarter = atomic_load_explicit(&a->decay_ns, memory_order_relaxed) / 4;
        if (quarter < wait)
            wait = quarter;
        /* First, so that the slabs it empties start decaying in this pass. */
        tslab__reclaim_idle(a, tslab__now(a), clamp(quarter, WAKE_MIN_NS, WAKE_MAX_NS));
        uint64_t next = UINT64_MAX;
        for (uint32_t i = 0; i < a->nclasses; i++) {
            uint64_t n = tslab__slab_decay(a, &a->cls[i]);
            next = n < next ? n : next;
        }
        if (next != UINT64_MAX) {
            uint64_t now = tslab__now(a);
            uint64_t left = next > now ? next - now : 0;
            wait = left < wait ? left : wait;
        }
    }
    tslab__registry_unlock();
    return clamp(wait, WAKE_MIN_NS, WAKE_MAX_NS);
}

static void *bg_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&bg_lock);
    while (!bg_stop) {
        pthread_mutex_unlock(&bg_lock);
        uint64_t wait = tslab__maintain_pass();
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + wait;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_mutex_lock(&bg_lock);
        if (!bg_stop)
            pthread_cond_timedwait(&bg_cond, &bg_lock, &ts);
    }
    pthread_mutex_unlock(&bg_lock);
    return NULL;
}

int tslab_background_start(void)
{
    tslab__fork_hooks_install();
    pthread_once(&bg_once, bg_init);
    if (!bg_cond_ok)
        return -ENOMEM;
    pthread_mutex_lock(&ctl_lock);
    int r = 0;
    if (bg_running) {
        r = -EALREADY;
    } else {
        bg_stop = false; /* no thread runs: nothing else reads it */
        r = -pthread_create(&bg_thread, NULL, bg_main, NULL);
        bg_running = r == 0;
        atomic_store_explicit(&bg_live, bg_running, memory_order_relaxed);
    }
    pthread_mutex_unlock(&ctl_lock);
    return r;
}

int tslab_background_stop(void)
{
    pthread_mutex_lock(&ctl_lock);
    int r = -ESRCH;
    if (bg_running) {
        pthread_mutex_lock(&bg_lock);
        bg_stop = true;
        pthread_cond_signal(&bg_cond);
        pthread_mutex_unlock(&bg_lock);
        pthread_join(bg_thread, NULL);
        bg_running = false;
        atomic_store_explicit(&bg_live, false, memory_order_relaxed);
        r = 0;
    }
    pthread_mutex_unlock(&ctl_lock);
    return r;
}

bool tslab_background_running(void) { return atomic_load_explicit(&bg_live, memory_order_relaxed); }

void tslab__background_fork_prepare(void)
{
    pthread_mutex_lock(&ctl_lock);
    pthread_mutex_lock(&bg_lock);
}

void tslab__background_fork_parent(void)
{
    pthread_mutex_unlock(&bg_lock);
    pthread_mutex_unlock(&ctl_lock);
}

/* The thread does not exist in the child: forget it (the locks are this thread's to release). */
void tslab__background_fork_child(void)
{
    bg_running = false;
    bg_stop = false;
    atomic_store_explicit(&bg_live, false, memory_order_relaxed);
    pthread_mutex_unlock(&bg_lock);
    pthread_mutex_unlock(&ctl_lock);
}
