/* The record of rejected frees: a ring of the last TSLAB_REJECTIONS_MAX per instance, each with
 * its reason, class, handle or pointer, time and call stack, and the optional on_reject
 * callback. Everything here runs on tslab__reject's cold path; the ring is allocated at the
 * first rejection, so instances that never see one pay nothing for it. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct tslab__rejections {
    pthread_mutex_t lock;  /* guards everything below */
    uint64_t seq;          /* rejections recorded so far */
    tslab_rejection *ring; /* TSLAB_REJECTIONS_MAX entries; entry seq % MAX is the newest */
} tslab__rejections;

TSLAB_COLD TSLAB__ENTRY void tslab__reject_record(tslab *a, uint32_t cls, int reason,
                                                  uint64_t value, bool by_pointer)
{
    tslab_rejection r;
    r.seq = 0;
    r.time_ns = tslab__now(a);
    r.reason = reason;
    r.class_index = cls;
    r.by_pointer = by_pointer;
    r.value = value;
    r.depth = tslab__stack_capture(r.frames); /* outside the lock: the slow part */
    tslab__rejections *q = a->rejections;
    pthread_mutex_lock(&q->lock);
    if (q->ring == NULL)
        q->ring = malloc(TSLAB_REJECTIONS_MAX * sizeof *q->ring);
    r.seq = ++q->seq;
    if (q->ring != NULL) /* out of memory: counted (seq), not kept */
        q->ring[(r.seq - 1) % TSLAB_REJECTIONS_MAX] = r;
    pthread_mutex_unlock(&q->lock);
    if (a->on_reject != NULL)
        a->on_reject(a->on_reject_ctx, reason, &r);
}

size_t tslab_rejections_read(tslab *a, tslab_rejection *out, size_t max)
{
    if (a == NULL || out == NULL)
        return 0;
    tslab__rejections *q = a->rejections;
    pthread_mutex_lock(&q->lock);
    uint64_t have = q->ring == NULL                 ? 0
                    : q->seq < TSLAB_REJECTIONS_MAX ? q->seq
                                                    : TSLAB_REJECTIONS_MAX;
    size_t n = have < max ? (size_t)have : max;
    for (size_t i = 0; i < n; i++) /* the newest n, oldest first */
        out[i] = q->ring[(q->seq - n + i) % TSLAB_REJECTIONS_MAX];
    pthread_mutex_unlock(&q->lock);
    return n;
}

int tslab__rejections_init(tslab *a, const tslab_config *cfg)
{
    a->on_reject = cfg->on_reject;
    a->on_reject_ctx = cfg->on_reject_ctx;
    a->rejections = calloc(1, sizeof *a->rejections);
    if (a->rejections == NULL)
        return -ENOMEM;
    if (pthread_mutex_init(&a->rejections->lock, NULL) != 0) {
        free(a->rejections);
        a->rejections = NULL;
        return -ENOMEM;
    }
    return 0;
}

void tslab__rejections_fini(tslab *a)
{
    if (a->rejections == NULL)
        return;
    pthread_mutex_destroy(&a->rejections->lock);
    free(a->rejections->ring);
    free(a->rejections);
    a->rejections = NULL;
}

void tslab__rejections_lock(tslab *a) { pthread_mutex_lock(&a->rejections->lock); }
void tslab__rejections_unlock(tslab *a) { pthread_mutex_unlock(&a->rejections->lock); }
