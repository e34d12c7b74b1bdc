/* SPDX-License-Identifier: MIT */
/* Epoch records: which epochs exist, which slabs belong to them (by count), what they hold. Below
 * slab.c, which reports slabs joining and leaving and frees handed back; the public epoch calls
 * (epoch.c) sit above both.
 *
 * A record goes FREE -> OPEN (tslab_epoch_open: a new id) -> CLOSED (close) or DYING (destroy:
 * the id goes stale at once) -> FREE when its last slab leaves. Its index is never reused while
 * one of its slabs exists, and a slab exists while any of its slots is outside its bitmap, so a
 * thread that holds a slot of an epoch (in its cache or as a live object) may count into the
 * record without the lock (tslab__epoch_count). FREE records are reused oldest first, and each
 * reuse takes a new generation (TSLAB__EP_GEN_STEP), so a stale id names a live epoch only after
 * 2^32 reuses of its record. A destroyed record's id carries TSLAB__EP_RETIRED until the next
 * open: no id passed in names it meanwhile, not even the next generation's. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct tslab__epochs *tslab__epochs_get(tslab *a)
{
    tslab__epochs *t = atomic_load_explicit(&a->epochs, memory_order_acquire);
    if (tslab_likely(t != NULL))
        return t;
    /* Made under tc_lock, which fork() holds, so a child never inherits a table being made. */
    pthread_mutex_lock(&a->tc_lock);
    t = atomic_load_explicit(&a->epochs, memory_order_relaxed);
    if (t == NULL) {
        /* calloc: about 2.3 MiB of fresh zero pages (malloc maps a block this large), of which
         * only the pages of the records in use are ever touched. */
        t = calloc(1, sizeof *t);
        if (t != NULL && pthread_mutex_init(&t->lock, NULL) != 0) {
            free(t);
            t = NULL;
        }
        /* Release: set up before anyone can find it. Records are set up as they are first
         * used (tslab__epoch_new), so only their pages become resident. */
        if (t != NULL)
            atomic_store_explicit(&a->epochs, t, memory_order_release);
    }
    pthread_mutex_unlock(&a->tc_lock);
    if (t == NULL)
        errno = ENOMEM;
    return t;
}

void tslab__epochs_fini(tslab *a)
{
    tslab__epochs *t = atomic_load_explicit(&a->epochs, memory_order_acquire);
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t);
    atomic_store_explicit(&a->epochs, NULL, memory_order_relaxed);
}

bool tslab__epoch_attach(tslab *a, uint32_t eidx, uint64_t e)
{
    tslab__epochs *t = atomic_load_explicit(&a->epochs, memory_order_acquire);
    pthread_mutex_lock(&t->lock);
    tslab__epoch *r = &t->rec[eidx];
    bool ok = atomic_load_explicit(&r->key, memory_order_relaxed) == e && e != 0;
    if (ok)
        r->slabs++;
    pthread_mutex_unlock(&t->lock);
    return ok;
}

/* Puts record i on the free list. Caller holds the table lock. */
static void release_record(tslab__epochs *t, uint32_t i)
{
    tslab__epoch *r = &t->rec[i];
    r->state = TSLAB__EP_FREE;
    r->next_free = 0;
    if (t->free_tail != 0)
        t->rec[t->free_tail].next_free = i;
    else
        t->free_head = i;
    t->free_tail = i;
}

void tslab__epoch_detach(tslab *a, uint32_t eidx)
{
    tslab__epochs *t = atomic_load_explicit(&a->epochs, memory_order_acquire);
    pthread_mutex_lock(&t->lock);
    tslab__epoch *r = &t->rec[eidx];
    if (--r->slabs == 0 && (r->state == TSLAB__EP_CLOSED || r->state == TSLAB__EP_DYING))
        release_record(t, eidx);
    pthread_mutex_unlock(&t->lock);
}

void tslab__epoch_count(tslab *a, uint32_t eidx, uint32_t ci, int64_t n)
{
    tslab__epochs *t = atomic_load_explicit(&a->epochs, memory_order_acquire);
    tslab__epoch *r = &t->rec[eidx];
    /* Relaxed: counters, read as a snapshot that is exact once the threads are quiet. */
    atomic_fetch_add_explicit(&r->live[ci], n, memory_order_relaxed);
    tslab__elabel *l = &t->labels[r->label];
    if (n > 0)
        atomic_fetch_add_explicit(&l->allocations, (uint64_t)n, memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&l->frees, (uint64_t)-n, memory_order_relaxed);
}

void tslab__epochs_lock(tslab *a)
{
    tslab__epochs *t = atomic_load_explicit(&a->epochs, memory_order_acquire);
    if (t != NULL)
        pthread_mutex_lock(&t->lock);
}

void tslab__epochs_unlock(tslab *a)
{
    tslab__epochs *t = atomic_load_explicit(&a->epochs, memory_order_acquire);
    if (t != NULL)
        pthread_mutex_unlock(&t->lock);
}

/* The label's index: an existing one, a new one while there is room, else "other". A label
 * named "other" is the overflow row itself, so no two rows ever carry the same metric label.
 * Caller holds the table lock. */
static uint32_t label_index(tslab__epochs *t, const char *label)
{
    if (label == NULL || label[0] == '\0')
        label = "default";
    for (uint32_t i = 0; i < t->nlabels; i++)
        if (strncmp(t->labels[i].name, label, TSLAB_EPOCH_LABEL_MAX - 1) == 0)
            return i;
    if (t->nlabels == TSLAB_EPOCH_LABELS_MAX || strcmp(label, "other") == 0) {
        tslab__elabel *o = &t->labels[TSLAB_EPOCH_LABELS_MAX];
        if (o->name[0] == '\0')
            strcpy(o->name, "other");
        return TSLAB_EPOCH_LABELS_MAX;
    }
    tslab__elabel *l = &t->labels[t->nlabels];
    strncpy(l->name, label, TSLAB_EPOCH_LABEL_MAX - 1);
    l->name[TSLAB_EPOCH_LABEL_MAX - 1] = '\0';
    return t->nlabels++;
}

/* The next generation of record i's id (never 0), as a full id of instance a. */
static uint64_t next_id(const tslab *a, const tslab__epoch *r, uint32_t i)
{
    uint32_t gen =
        (uint32_t)atomic_load_explicit(&r->id, memory_order_relaxed) + TSLAB__EP_GEN_STEP;
    if (gen == 0)
        gen = TSLAB__EP_GEN_STEP;
    return (uint64_t)a->tag << TSLAB__EP_TAG_SHIFT | (uint64_t)i << TSLAB__EP_IDX_SHIFT | gen;
}

uint64_t tslab__epoch_new(tslab *a, const char *label)
{
    tslab__epochs *t = tslab__epochs_get(a);
    if (t == NULL)
        return 0;
    pthread_mutex_lock(&t->lock);
    uint32_t i = t->free_head;
    if (i != 0) {
        t->free_head = t->rec[i].next_free;
        if (t->free_head == 0)
            t->free_tail = 0;
    } else if (t->used < TSLAB_EPOCHS_MAX) {
        i = ++t->used;
        /* A scattered first generation per record and instance, so that a forged id rarely
         * names a live epoch. An unused record's id is 0, which no id equals (its tag is not
         * 0). */
        atomic_store_explicit(&t->rec[i].id, tslab__initial_gen(a->uid, 63, i),
                              memory_order_relaxed);
    } else {
        pthread_mutex_unlock(&t->lock);
        errno = EAGAIN;
        return 0;
    }
    tslab__epoch *r = &t->rec[i];
    /* No slab of the record's earlier life exists (it was freed at its last slab), so nobody
     * counts into it: its figures start from zero. */
    for (uint32_t c = 0; c < TSLAB_CLASSES_MAX; c++)
        atomic_store_explicit(&r->live[c], 0, memory_order_relaxed);
    r->label = label_index(t, label);
    r->state = TSLAB__EP_OPEN;
    r->closed_at = 0;
    uint64_t id = next_id(a, r, i);
    atomic_store_explicit(&r->id, id, memory_order_relaxed);
    /* Release: a thread that reads the key (allocation) sees the record as set up here. */
    atomic_store_explicit(&r->key, id, memory_order_release);
    t->labels[r->label].opened++;
    pthread_mutex_unlock(&t->lock);
    return id;
}

uint32_t tslab__epoch_shut(tslab *a, uint64_t e, bool destroy, bool *pinned)
{
    *pinned = false;
    tslab__epochs *t = atomic_load_explicit(&a->epochs, memory_order_acquire);
    uint32_t i = tslab__epoch_idx(e);
    if (t == NULL || e >> TSLAB__EP_TAG_SHIFT != a->tag || i == 0 || i > TSLAB_EPOCHS_MAX) {
        errno = EINVAL;
        return 0;
    }
    pthread_mutex_lock(&t->lock);
    tslab__epoch *r = &t->rec[i];
    if (atomic_load_explicit(&r->id, memory_order_relaxed) != e) {
        pthread_mutex_unlock(&t->lock);
        errno = EINVAL;
        return 0;
    }
    tslab__elabel *l = &t->labels[r->label];
    if (r->state == TSLAB__EP_OPEN) {
        /* Relaxed under the lock: a refill checks the key under a class lock, which this
         * thread takes after unlocking here (destroy's walk) or which orders it anyway. */
        atomic_store_explicit(&r->key, 0, memory_order_release);
        r->state = TSLAB__EP_CLOSED;
        r->closed_at = tslab__now(a);
        l->closed++;
    }
    if (destroy) {
        l->destroyed++;
        /* The id is stale from here on; until tslab__epoch_destroyed, ENDING tells a racing
         * allocation that it was genuine. */
        atomic_store_explicit(&r->id, e | TSLAB__EP_RETIRED | TSLAB__EP_ENDING,
                              memory_order_relaxed);
        if (r->state != TSLAB__EP_FREE) {
            r->state = TSLAB__EP_DYING;
            /* Pinned for the caller's walk: the record cannot be freed and reused while the
             * walk may still find slabs marked with its index (tslab__epoch_detach unpins). */
            r->slabs++;
            *pinned = true;
        }
    }
    if (r->state != TSLAB__EP_FREE && r->slabs == 0)
        release_record(t, i);
    pthread_mutex_unlock(&t->lock);
    return i;
}

void tslab__epoch_destroyed(tslab *a, uint64_t e)
{
    tslab__epochs *t = atomic_load_explicit(&a->epochs, memory_order_acquire);
    uint64_t dying = e | TSLAB__EP_RETIRED | TSLAB__EP_ENDING;
    /* A CAS, without the lock: a record this destroy found already emptied (not pinned) may have
     * been reopened meanwhile, and its new id stays. Relaxed: the bit only picks a failing
     * allocation's errno. */
    atomic_compare_exchange_strong_explicit(&t->rec[tslab__epoch_idx(e)].id, &dying,
                                            e | TSLAB__EP_RETIRED, memory_order_relaxed,
                                            memory_order_relaxed);
}
