/* SPDX-License-Identifier: MIT */
/* Epochs: placement (an epoch's objects share slabs with nobody else's), close then free-all
 * returning the pages, destroy of a million live objects (every old handle and pointer rejected
 * and counted), stale and forged ids, destroy racing frees, allocations racing close and destroy
 * (and one inside a destroy, for its errno), fork, the label and leak figures on an injected
 * clock. White-box for placement: it reads which slab a pointer lies in through the core's own
 * arithmetic. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <tslab.h>
#include <unistd.h>

#include "internal.h"
#include "testhelper.h"

#define MS UINT64_C(1000000)

static _Atomic uint64_t fake_now = 1000 * MS;
static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return atomic_load(&fake_now);
}

static tslab *make(const char *name, uint64_t decay_ms)
{
    static tslab_os os;
    os = *tslab_os_default();
    os.now_ns = fake_clock;
    tslab_config cfg = {.name = name, .os = &os, .decay_ms = decay_ms};
    tslab *a = tslab_create(&cfg);
    REQUIRE(a != NULL);
    return a;
}

/* The slab (class, slab index) a pointer lies in, by the core's arithmetic. */
static uint64_t slab_of(tslab *a, const void *p)
{
    uint32_t ci;
    int reason;
    int64_t idx = tslab__ptr_slot(a, p, &ci, &reason);
    REQUIRE(idx >= 0);
    return (uint64_t)ci << 32 | (uint64_t)idx >> a->cls[ci].slot_shift;
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

/* Objects of two epochs and of the default epoch, allocated interleaved in every size, never
 * share a slab. */
static void placement(void)
{
    tslab *a = make("placement", 0);
    tslab_epoch e1 = tslab_epoch_open(a, "one"), e2 = tslab_epoch_open(a, "two");
    REQUIRE(e1 != 0 && e2 != 0 && e1 != e2);
    enum { N = 30000 };
    static uint64_t tagged[3 * N];
    size_t n = 0;
    for (int i = 0; i < N; i++) {
        size_t size = 8 + (size_t)(i * 37) % 760;
        void *p0 = tslab_malloc(a, size);
        void *p1 = tslab_malloc_epoch(a, e1, size);
        void *p2 = tslab_malloc_epoch(a, e2, size);
        REQUIRE(p0 && p1 && p2);
        tagged[n++] = slab_of(a, p0) << 2 | 0;
        tagged[n++] = slab_of(a, p1) << 2 | 1;
        tagged[n++] = slab_of(a, p2) << 2 | 2;
    }
    qsort(tagged, n, sizeof tagged[0], cmp_u64);
    unsigned shared = 0;
    for (size_t i = 1; i < n; i++)
        if (tagged[i] >> 2 == tagged[i - 1] >> 2 && (tagged[i] & 3) != (tagged[i - 1] & 3))
            shared++;
    printf("placement: %zu objects, %u slabs shared between epochs\n", n, shared);
    CHECK_EQ_U(shared, 0);
    tslab_destroy(a);
}

/* Survivors in the default epoch, the rest in an epoch that is closed and then freed: every slab
 * of the epoch goes back (decay 0: at once), so resident bytes return to what the survivors and
 * the metadata hold. */
static void close_then_free_returns_pages(void)
{
    tslab *a = make("close", TSLAB_DECAY_NONE);
    enum { N = 200000, KEEP = 2000 };
    static void *keep[KEEP];
    for (int i = 0; i < KEEP; i++)
        REQUIRE((keep[i] = tslab_malloc(a, 128)) != NULL);
    tslab_flush(a);
    uint64_t base = tslab_resident_bytes(a);
    tslab_epoch e = tslab_epoch_open(a, "burst");
    static tslab_handle h[N];
    for (int i = 0; i < N; i++)
        REQUIRE(tslab_alloc_epoch(a, e, 128, &h[i]) != NULL);
    uint64_t peak = tslab_resident_bytes(a);
    CHECK_EQ_I(tslab_epoch_close(a, e), 0);
    CHECK(tslab_malloc_epoch(a, e, 128) == NULL && errno == ESHUTDOWN);
    for (int i = 0; i < N; i++)
        CHECK(tslab_free(a, h[i]));
    tslab_flush(a);
    uint64_t after = tslab_resident_bytes(a);
    printf("close: resident before %llu, peak %llu, after %llu bytes\n", (unsigned long long)base,
           (unsigned long long)peak, (unsigned long long)after);
    CHECK(peak > base + (uint64_t)N * 128);
    /* Metadata (state words, descriptors) stays resident for the slabs ever made. */
    CHECK(after < base + (uint64_t)N * 8);
    /* The record was freed with its last slab: the id is still the closed epoch's until reused. */
    CHECK_EQ_I(tslab_epoch_close(a, e), 0);
    for (int i = 0; i < KEEP; i++)
        CHECK(tslab_free_ptr(a, keep[i]));
    tslab_destroy(a);
}

/* Destroy with a million live objects: every old handle and pointer is rejected and counted,
 * and the class's figures show each object freed once. */
static void destroy_million(void)
{
    tslab *a = make("destroy", 0);
    const unsigned N = (unsigned)scaled(1000000);
    tslab_handle *h = malloc(N * sizeof *h);
    REQUIRE(h != NULL);
    tslab_epoch e = tslab_epoch_open(a, "big");
    for (unsigned i = 0; i < N; i++)
        REQUIRE(tslab_alloc_epoch(a, e, 128, &h[i]) != NULL);
    CHECK_EQ_I(tslab_epoch_destroy(a, e), 0);
    CHECK_EQ_I(tslab_epoch_destroy(a, e), -EINVAL); /* stale now */
    CHECK_EQ_I(tslab_epoch_close(a, e), -EINVAL);
    CHECK(tslab_malloc_epoch(a, e, 128) == NULL && errno == EINVAL);
    unsigned ok = 0;
    for (unsigned i = 0; i < N; i++)
        ok += tslab_free(a, h[i]);
    CHECK_EQ_U(ok, 0);
    for (unsigned i = 0; i < N; i += 1000)
        CHECK(tslab_handle_ptr(a, h[i]) == NULL);
    tslab_handle fresh;
    void *p = tslab_alloc(a, 128, &fresh); /* from the emptied slabs: one slot reused */
    REQUIRE(p != NULL);
    CHECK(tslab_free(a, fresh));
    tslab_stats st;
    REQUIRE(tslab_stats_read(a, &st) == 0);
    const tslab_class_stats *c = &st.classes[2];
    printf("destroy: allocations %llu frees %llu rejected double %llu stale %llu\n",
           (unsigned long long)c->allocations, (unsigned long long)c->frees,
           (unsigned long long)c->rejected_double, (unsigned long long)c->rejected_stale);
    CHECK_EQ_U(c->object_size, 128);
    CHECK_EQ_U(c->allocations, N + 1);
    CHECK_EQ_U(c->frees, N + 1);
    CHECK_EQ_U(c->live_objects, 0);
    CHECK_EQ_U(c->rejected_double + c->rejected_stale, N);
    tslab_epoch_stats es;
    REQUIRE(tslab_epoch_stats_get(a, &es, sizeof es) == 0);
    CHECK_EQ_U(es.label_count, 1);
    CHECK(strcmp(es.labels[0].label, "big") == 0);
    CHECK_EQ_U(es.labels[0].opened, 1);
    CHECK_EQ_U(es.labels[0].closed, 1);
    CHECK_EQ_U(es.labels[0].destroyed, 1);
    CHECK_EQ_U(es.labels[0].allocations, N);
    CHECK_EQ_U(es.labels[0].frees, N);
    CHECK_EQ_U(es.labels[0].open_epochs, 0);
    free(h);
    tslab_destroy(a);
}

/* Pointer frees of a destroyed epoch's objects are double frees. */
static void destroy_pointers(void)
{
    tslab *a = make("ptrs", 0);
    enum { N = 5000 };
    static void *p[N];
    tslab_epoch e = tslab_epoch_open(a, NULL);
    for (int i = 0; i < N; i++)
        REQUIRE((p[i] = tslab_malloc_epoch(a, e, 64)) != NULL);
    CHECK_EQ_I(tslab_epoch_destroy(a, e), 0);
    unsigned ok = 0;
    for (int i = 0; i < N; i++)
        ok += tslab_free_ptr(a, p[i]);
    CHECK_EQ_U(ok, 0);
    tslab_stats st;
    REQUIRE(tslab_stats_read(a, &st) == 0);
    CHECK_EQ_U(st.classes[0].rejected_double, N);
    CHECK_EQ_U(st.classes[0].live_objects, 0);
    tslab_epoch_stats es;
    REQUIRE(tslab_epoch_stats_get(a, &es, sizeof es) == 0);
    CHECK(strcmp(es.labels[0].label, "default") == 0);
    tslab_destroy(a);
}

/* tslab_realloc keeps an object of an open epoch in it (it dies with the epoch's destroy and
 * shares no slab with the default epoch), and moves one of a closed epoch to the default epoch
 * (it outlives the destroy). The bytes come along either way. */
static void realloc_keeps_the_epoch(void)
{
    tslab *a = make("realloc", 0);
    tslab_epoch e = tslab_epoch_open(a, "open"), f = tslab_epoch_open(a, "closed");
    REQUIRE(e != 0 && f != 0);
    char *p = tslab_malloc_epoch(a, e, 40), *q = tslab_malloc_epoch(a, f, 40);
    REQUIRE(p != NULL && q != NULL);
    memset(p, 'e', 40);
    memset(q, 'f', 40);
    void *plain = tslab_malloc(a, 300);
    REQUIRE(plain != NULL);
    char *p2 = tslab_realloc(a, p, 300); /* another class: it moves, within e */
    REQUIRE(p2 != NULL);
    CHECK(p2 != p);
    CHECK(slab_of(a, p2) != slab_of(a, plain));
    CHECK(p2[0] == 'e' && p2[39] == 'e');
    CHECK_EQ_I(tslab_epoch_close(a, f), 0);
    char *q2 = tslab_realloc(a, q, 300); /* f is closed: to the default epoch */
    REQUIRE(q2 != NULL);
    CHECK(q2[0] == 'f' && q2[39] == 'f');
    CHECK(tslab_realloc(a, p2, 290) == p2); /* same class: stays */
    CHECK_EQ_I(tslab_epoch_destroy(a, e), 0);
    CHECK_EQ_I(tslab_epoch_destroy(a, f), 0);
    CHECK(!tslab_free_ptr(a, p2)); /* freed with e */
    CHECK(tslab_free_ptr(a, q2));  /* in the default epoch: still live */
    CHECK(tslab_free_ptr(a, plain));
    CHECK_EQ_U(test_live_objects(a), 0);
    tslab_destroy(a);
}

/* Stale, forged and foreign ids are refused, never a crash. */
static void stale_and_forged_ids(void)
{
    tslab *a = make("ids", 0), *b = make("ids2", 0);
    CHECK(tslab_malloc_epoch(a, 1, 64) == NULL && errno == EINVAL); /* no table yet */
    tslab_epoch e = tslab_epoch_open(a, "x");
    tslab_epoch f = tslab_epoch_open(b, "x");
    REQUIRE(e != 0 && f != 0);
    CHECK(tslab_malloc_epoch(a, f, 64) == NULL && errno == EINVAL); /* b's id */
    CHECK_EQ_I(tslab_epoch_close(a, f), -EINVAL);
    CHECK_EQ_I(tslab_epoch_destroy(a, f), -EINVAL);
    unsigned refused = 0;
    for (int bit = 0; bit < 64; bit++) {
        tslab_epoch x = e ^ (UINT64_C(1) << bit);
        tslab_handle h;
        refused += tslab_alloc_epoch(a, x, 64, &h) == NULL && errno == EINVAL;
        refused += tslab_epoch_close(a, x) == -EINVAL;
        refused += tslab_epoch_destroy(a, x) == -EINVAL;
    }
    uint64_t x = 0x9E3779B97F4A7C15u;
    const int forged = (int)scaled(100000);
    for (int i = 0; i < forged; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        refused += tslab_malloc_epoch(a, x, 64) == NULL;
        refused += tslab_epoch_close(a, x) == -EINVAL;
    }
    CHECK_EQ_U(refused, 64 * 3 + 2 * (unsigned)forged);
    CHECK(tslab_malloc_epoch(a, e, 64) != NULL); /* e itself untouched */
    CHECK(tslab_epoch_open(NULL, "x") == 0 && errno == EINVAL);
    CHECK_EQ_I(tslab_epoch_close(NULL, e), -EINVAL);
    CHECK_EQ_I(tslab_epoch_destroy(NULL, e), -EINVAL);
    CHECK(tslab_malloc_epoch(NULL, e, 64) == NULL && errno == EINVAL);
    CHECK(tslab_malloc_epoch(a, e, 0) == NULL && errno == EINVAL);
    CHECK(tslab_malloc_epoch(a, e, 100000) == NULL && errno == EINVAL);
    CHECK(tslab_alloc_epoch(a, e, 64, NULL) == NULL && errno == EINVAL);
    CHECK_EQ_I(tslab_epoch_destroy(a, e), 0);
    tslab_destroy(a);
    tslab_destroy(b);
}

/* A destroyed epoch's record names nothing until it is reopened: no id near the destroyed one
 * (the next generations, one flipped bit) is taken for an epoch. And a record reused many times
 * never gives an id one bit away from any of its last 1000 ids. */
static void destroyed_record_names_nothing(void)
{
    tslab *a = make("retired", 0);
    tslab_epoch e = tslab_epoch_open(a, "x");
    REQUIRE(e != 0);
    REQUIRE(tslab_malloc_epoch(a, e, 64) != NULL);
    CHECK_EQ_I(tslab_epoch_destroy(a, e), 0);
    unsigned refused = 0, tried = 0;
    for (uint64_t d = 0; d < 8; d++) {
        tslab_epoch near[3] = {e + d, e - d, e ^ (UINT64_C(1) << d)};
        for (int k = 0; k < 3; k++) {
            tslab_handle h;
            tried += 4;
            refused += tslab_alloc_epoch(a, near[k], 64, &h) == NULL && errno == EINVAL;
            refused += tslab_malloc_epoch(a, near[k], 64) == NULL && errno == EINVAL;
            refused += tslab_epoch_close(a, near[k]) == -EINVAL;
            refused += tslab_epoch_destroy(a, near[k]) == -EINVAL;
        }
    }
    CHECK_EQ_U(refused, tried);
    tslab_epoch_stats es;
    REQUIRE(tslab_epoch_stats_get(a, &es, sizeof es) == 0);
    CHECK_EQ_U(es.labels[0].destroyed, 1);
    CHECK_EQ_U(es.labels[0].closed, 1);

    /* One record, reused: with a single epoch at a time every open takes the same record. */
    enum { REUSES = 1000 };
    static tslab_epoch ids[REUSES];
    unsigned one_bit = 0, same_record = 0;
    for (int i = 0; i < REUSES; i++) {
        ids[i] = tslab_epoch_open(a, "x");
        REQUIRE(ids[i] != 0);
        same_record += tslab__epoch_idx(ids[i]) == tslab__epoch_idx(e);
        for (int j = 0; j < i; j++)
            one_bit += __builtin_popcountll(ids[i] ^ ids[j]) == 1;
        CHECK_EQ_I(i % 2 ? tslab_epoch_close(a, ids[i]) : tslab_epoch_destroy(a, ids[i]), 0);
    }
    CHECK_EQ_U(same_record, REUSES);
    CHECK_EQ_U(one_bit, 0);
    tslab_destroy(a);
}

/* ---- Destroy racing frees on four threads ---- */
enum { RACE_MAX = 200000, RACE_THREADS = 4 };
static unsigned RACE_N;
static tslab *race_a;
static tslab_handle race_h[RACE_MAX];
static pthread_barrier_t race_bar;
static _Atomic unsigned race_won, race_progress;

static void *race_free(void *arg)
{
    unsigned k = (unsigned)(uintptr_t)arg, won = 0;
    pthread_barrier_wait(&race_bar);
    /* Every thread tries every object, each from its own starting point. */
    for (unsigned i = 0; i < RACE_N; i++) {
        won += tslab_free(race_a, race_h[(i + k * (RACE_N / RACE_THREADS)) % RACE_N]);
        if (i % 1024 == 0)
            atomic_fetch_add(&race_progress, 1024);
    }
    tslab_flush(race_a);
    atomic_fetch_add(&race_won, won);
    return NULL;
}

static void destroy_racing_frees(void)
{
    RACE_N = (unsigned)scaled(RACE_MAX);
    race_a = make("race", 0);
    tslab_epoch e = tslab_epoch_open(race_a, "race");
    for (unsigned i = 0; i < RACE_N; i++)
        REQUIRE(tslab_alloc_epoch(race_a, e, 96, &race_h[i]) != NULL);
    tslab_flush(race_a);
    pthread_barrier_init(&race_bar, NULL, RACE_THREADS + 1);
    pthread_t t[RACE_THREADS];
    for (uintptr_t i = 0; i < RACE_THREADS; i++)
        REQUIRE(pthread_create(&t[i], NULL, race_free, (void *)i) == 0);
    pthread_barrier_wait(&race_bar);
    /* Destroy while the threads are well into their frees. */
    while (atomic_load(&race_progress) < RACE_N / 4)
        sched_yield();
    CHECK_EQ_I(tslab_epoch_destroy(race_a, e), 0);
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&race_bar);
    tslab_flush(race_a);
    tslab_stats st;
    REQUIRE(tslab_stats_read(race_a, &st) == 0);
    const tslab_class_stats *c = &st.classes[1];
    unsigned won = atomic_load(&race_won);
    printf("race: threads freed %u, destroy %llu, rejected %llu\n", won,
           (unsigned long long)(c->frees - won),
           (unsigned long long)(c->rejected_double + c->rejected_stale));
    /* Each object freed exactly once, by a thread or by the destroy. */
    CHECK_EQ_U(c->allocations, RACE_N);
    CHECK_EQ_U(c->frees, RACE_N);
    CHECK_EQ_U(c->live_objects, 0);
    CHECK_EQ_U(c->duplicates_dropped, 0);
    CHECK_EQ_U(c->rejected_double + c->rejected_stale, (uint64_t)RACE_N * RACE_THREADS - won);
    tslab_epoch_stats es;
    REQUIRE(tslab_epoch_stats_get(race_a, &es, sizeof es) == 0);
    CHECK_EQ_U(es.labels[0].allocations, RACE_N);
    CHECK_EQ_U(es.labels[0].frees, RACE_N);
    /* Every slab emptied: the instance holds no epoch slab any more. */
    CHECK_EQ_U(c->slabs_partial + c->slabs_full, 0);
    tslab_destroy(race_a);
}

/* ---- Allocations racing close or destroy ---- */
static tslab *close_a;
static tslab_epoch close_e;
static bool close_destroys; /* the race is with tslab_epoch_destroy */
static _Atomic int close_done;
static _Atomic unsigned close_late, close_ok;

typedef struct close_worker {
    tslab_handle *h; /* destroy: every object it got, for the caller's free after the race */
    size_t n, cap;
} close_worker;

static void *close_alloc(void *arg)
{
    close_worker *w = arg;
    for (;;) {
        /* Acquire: a close or destroy that returned before this load happens before the
         * allocation, which must then fail; one racing it succeeds or fails with ESHUTDOWN. */
        int done = atomic_load_explicit(&close_done, memory_order_acquire);
        tslab_handle h;
        errno = 0;
        void *p = tslab_alloc_epoch(close_a, close_e, 200, &h);
        if (p != NULL) {
            atomic_fetch_add(&close_ok, 1);
            if (done)
                atomic_fetch_add(&close_late, 1);
            if (close_destroys) {
                if (w->n == w->cap) {
                    w->cap = w->cap ? 2 * w->cap : 4096;
                    w->h = realloc(w->h, w->cap * sizeof *w->h);
                    REQUIRE(w->h != NULL);
                }
                w->h[w->n++] = h;
            }
        } else if (!close_destroys) {
            CHECK_EQ_I(errno, ESHUTDOWN);
            if (done)
                break;
        } else {
            /* ESHUTDOWN while the destroy runs, EINVAL (a stale id) once it returned, which
             * may be before `done` is set: which of the two applies is alloc_inside_destroy's
             * to check, where the moment is known. */
            CHECK(errno == ESHUTDOWN || errno == EINVAL);
            if (done)
                break;
        }
    }
    tslab_flush(close_a);
    return NULL;
}

/* Three threads allocate into one epoch while the main thread closes it (destroy = false) or
 * destroys it. */
static void alloc_racing_shut(bool destroy)
{
    close_a = make("closerace", 0);
    close_e = tslab_epoch_open(close_a, "c");
    close_destroys = destroy;
    atomic_store(&close_done, 0);
    atomic_store(&close_ok, 0);
    atomic_store(&close_late, 0);
    pthread_t t[3];
    close_worker w[3] = {{0}};
    for (int i = 0; i < 3; i++)
        REQUIRE(pthread_create(&t[i], NULL, close_alloc, &w[i]) == 0);
    while (atomic_load(&close_ok) < scaled(30000))
        sched_yield();
    if (destroy)
        CHECK_EQ_I(tslab_epoch_destroy(close_a, close_e), 0);
    else
        CHECK_EQ_I(tslab_epoch_close(close_a, close_e), 0);
    atomic_store_explicit(&close_done, 1, memory_order_release);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ_U(atomic_load(&close_late), 0);
    tslab_epoch_stats es;
    REQUIRE(tslab_epoch_stats_get(close_a, &es, sizeof es) == 0);
    /* Every successful allocation is in the epoch (all threads flushed). */
    CHECK_EQ_U(es.labels[0].allocations, atomic_load(&close_ok));
    if (!destroy) {
        CHECK_EQ_U(es.labels[0].closed_live_objects, atomic_load(&close_ok));
        /* Destroy frees what the racing allocations made. */
        CHECK_EQ_I(tslab_epoch_destroy(close_a, close_e), 0);
    }
    /* Objects an allocation got while the destroy ran may have been missed by it: the caller
     * frees them. Each object is freed once, by the destroy or here. */
    uint64_t mine = 0, rejected = 0;
    for (int i = 0; i < 3; i++) {
        for (size_t k = 0; k < w[i].n; k++)
            mine += tslab_free(close_a, w[i].h[k]);
        rejected += w[i].n;
        free(w[i].h);
    }
    rejected -= mine;
    tslab_flush(close_a);
    tslab_stats st;
    REQUIRE(tslab_stats_read(close_a, &st) == 0);
    uint64_t live = 0, frees = 0, refused = 0;
    for (uint32_t i = 0; i < st.class_count; i++) {
        live += st.classes[i].live_objects;
        frees += st.classes[i].frees;
        refused += st.classes[i].rejected_stale + st.classes[i].rejected_double;
    }
    printf("%s: %u allocated, %llu of them freed by the caller after the destroy\n",
           destroy ? "destroy" : "close", atomic_load(&close_ok), (unsigned long long)mine);
    CHECK_EQ_U(live, 0);
    CHECK_EQ_U(frees, atomic_load(&close_ok));
    CHECK_EQ_U(refused, rejected);
    tslab_destroy(close_a);
}

/* The window of a destroy, made deterministic: an allocation made while tslab_epoch_destroy is
 * still at work (from inside its OS call that returns the emptied slabs) gets ESHUTDOWN even
 * though the id is already stale; once the destroy returned, EINVAL. */
static tslab *mid_a;
static tslab_epoch mid_e;
static _Atomic int mid_armed, mid_errno;
static _Atomic unsigned mid_calls;
static int mid_decommit(void *ctx, void *p, size_t n)
{
    if (atomic_exchange(&mid_armed, 0)) {
        tslab_handle h;
        errno = 0;
        if (tslab_alloc_epoch(mid_a, mid_e, 200, &h) == NULL)
            atomic_store(&mid_errno, errno);
        atomic_fetch_add(&mid_calls, 1);
    }
    return tslab_os_default()->decommit(ctx, p, n);
}

static void alloc_inside_destroy(void)
{
    static tslab_os os;
    os = *tslab_os_default();
    os.now_ns = fake_clock;
    os.decommit = mid_decommit;
    tslab_config cfg = {.name = "middestroy", .os = &os, .decay_ms = TSLAB_DECAY_NONE};
    mid_a = tslab_create(&cfg);
    REQUIRE(mid_a != NULL);
    mid_e = tslab_epoch_open(mid_a, "m");
    REQUIRE(mid_e != 0);
    tslab_handle h;
    for (int i = 0; i < 2000; i++)
        REQUIRE(tslab_alloc_epoch(mid_a, mid_e, 200, &h) != NULL);
    atomic_store(&mid_armed, 1);
    CHECK_EQ_I(tslab_epoch_destroy(mid_a, mid_e), 0);
    CHECK_EQ_U(atomic_load(&mid_calls), 1); /* the destroy returned slabs to the OS */
    CHECK_EQ_I(atomic_load(&mid_errno), ESHUTDOWN);
    errno = 0;
    CHECK(tslab_alloc_epoch(mid_a, mid_e, 200, &h) == NULL);
    CHECK_EQ_I(errno, EINVAL);
    CHECK_EQ_U(test_live_objects(mid_a), 0);
    tslab_destroy(mid_a);
}

static void alloc_racing_close(void) { alloc_racing_shut(false); }
static void alloc_racing_destroy(void) { alloc_racing_shut(true); }

/* Labels, leak figures on the injected clock, "other", EAGAIN at the table's size. */
static void figures_and_leaks(void)
{
    tslab *a = make("figures", 0);
    CHECK_EQ_I(tslab_epoch_leak_set(a, 5000), 0);
    tslab_epoch open1 = tslab_epoch_open(a, "req");
    tslab_epoch leak1 = tslab_epoch_open(a, "req");
    tslab_epoch leak2 = tslab_epoch_open(a, "batch");
    for (int i = 0; i < 10; i++)
        REQUIRE(tslab_malloc_epoch(a, leak1, 64) != NULL);
    for (int i = 0; i < 7; i++)
        REQUIRE(tslab_malloc_epoch(a, leak2, 512) != NULL);
    REQUIRE(tslab_malloc_epoch(a, open1, 64) != NULL);
    CHECK_EQ_I(tslab_epoch_close(a, leak1), 0);
    atomic_fetch_add(&fake_now, 3000 * MS);
    CHECK_EQ_I(tslab_epoch_close(a, leak2), 0);
    atomic_fetch_add(&fake_now, 2500 * MS); /* leak1: 5.5 s closed, leak2: 2.5 s */
    tslab_flush(a); /* allocations into open1 are counted when the cache lets go */
    tslab_epoch_stats es;
    REQUIRE(tslab_epoch_stats_get(a, &es, sizeof es) == 0);
    CHECK_EQ_U(es.label_count, 2);
    CHECK_EQ_U(es.leak_threshold_ns, 5000 * MS);
    const tslab_epoch_label_stats *req = &es.labels[0], *batch = &es.labels[1];
    CHECK(strcmp(req->label, "req") == 0 && strcmp(batch->label, "batch") == 0);
    CHECK_EQ_U(req->opened, 2);
    CHECK_EQ_U(req->closed, 1);
    CHECK_EQ_U(req->open_epochs, 1);
    CHECK_EQ_U(req->allocations, 11);
    CHECK_EQ_U(req->closed_live_objects, 10);
    CHECK_EQ_U(req->oldest_closed_live_age_ns, 5500 * MS);
    CHECK_EQ_U(req->leaking_epochs, 1);
    CHECK_EQ_U(batch->closed_live_objects, 7);
    CHECK_EQ_U(batch->oldest_closed_live_age_ns, 2500 * MS);
    CHECK_EQ_U(batch->leaking_epochs, 0);
    CHECK_EQ_U(es.leak_count, 1);
    CHECK(strcmp(es.leaks[0].label, "req") == 0);
    CHECK_EQ_U(es.leaks[0].live_objects, 10);
    CHECK_EQ_U(es.leaks[0].live_by_class[0], 10);
    CHECK_EQ_U(es.leaks[0].closed_age_ns, 5500 * MS);
    atomic_fetch_add(&fake_now, 3000 * MS);
    REQUIRE(tslab_epoch_stats_get(a, &es, sizeof es) == 0);
    CHECK_EQ_U(es.leak_count, 2);
    CHECK(strcmp(es.leaks[0].label, "req") == 0 && strcmp(es.leaks[1].label, "batch") == 0);
    CHECK_EQ_U(es.leaks[1].live_by_class[6], 7);
    /* A smaller caller struct gets what fits. */
    tslab_epoch_stats small;
    memset(&small, 0xAB, sizeof small);
    REQUIRE(tslab_epoch_stats_get(a, &small, 8) == 0);
    CHECK_EQ_U(small.label_count, 2);
    CHECK_EQ_U(small.leak_count, 2);
    CHECK_EQ_U(small.leak_threshold_ns, 0xABABABABABABABABu);
    CHECK_EQ_I(tslab_epoch_stats_get(a, &small, 0), -EINVAL);
    CHECK_EQ_I(tslab_epoch_stats_get(a, &small, SIZE_MAX), -EINVAL);
    CHECK_EQ_I(tslab_epoch_stats_get(a, NULL, sizeof small), -EINVAL);
    CHECK_EQ_I(tslab_epoch_stats_get(NULL, &small, sizeof small), -EINVAL);
    CHECK_EQ_U(small.label_count, 2); /* untouched by the refused calls */
    /* 32 labels, then "other". */
    for (int i = 0; i < 40; i++) {
        char name[16];
        snprintf(name, sizeof name, "l%d", i);
        tslab_epoch x = tslab_epoch_open(a, name);
        REQUIRE(x != 0);
        CHECK_EQ_I(tslab_epoch_destroy(a, x), 0);
    }
    REQUIRE(tslab_epoch_stats_get(a, &es, sizeof es) == 0);
    CHECK_EQ_U(es.label_count, TSLAB_EPOCH_LABELS_MAX + 1);
    CHECK(strcmp(es.labels[TSLAB_EPOCH_LABELS_MAX].label, "other") == 0);
    CHECK_EQ_U(es.labels[TSLAB_EPOCH_LABELS_MAX].opened, 40 - (TSLAB_EPOCH_LABELS_MAX - 2));
    /* A label named "other" is that row: one series per label value, always. */
    tslab_epoch other = tslab_epoch_open(a, "other");
    REQUIRE(other != 0);
    CHECK_EQ_I(tslab_epoch_destroy(a, other), 0);
    REQUIRE(tslab_epoch_stats_get(a, &es, sizeof es) == 0);
    CHECK_EQ_U(es.label_count, TSLAB_EPOCH_LABELS_MAX + 1);
    CHECK_EQ_U(es.labels[TSLAB_EPOCH_LABELS_MAX].opened, 40 - (TSLAB_EPOCH_LABELS_MAX - 2) + 1);
    /* The table's size: EAGAIN, then room again once epochs are emptied. */
    static tslab_epoch many[TSLAB_EPOCHS_MAX];
    int opened = 0;
    while (opened < TSLAB_EPOCHS_MAX && (many[opened] = tslab_epoch_open(a, "many")) != 0)
        opened++;
    CHECK_EQ_I(errno, EAGAIN);
    CHECK_EQ_I(opened, TSLAB_EPOCHS_MAX - 3);     /* open1, leak1 and leak2 hold theirs */
    CHECK_EQ_I(tslab_epoch_close(a, many[0]), 0); /* empty: its record is free at once */
    tslab_epoch again = tslab_epoch_open(a, "many");
    CHECK(again != 0 && again != many[0]);
    CHECK_EQ_I(tslab_epoch_close(a, many[0]), -EINVAL); /* its record was reused */
    tslab_destroy(a);
}

/* Another thread's cache holds slots of an epoch destroyed by this thread: the epoch's slabs
 * stay until that thread's next try at the epoch (refused), which gives them back. */
static tslab *other_a;
static tslab_epoch other_e;
static pthread_barrier_t other_bar;
static void *other_thread(void *arg)
{
    (void)arg;
    CHECK(tslab_malloc_epoch(other_a, other_e, 64) != NULL);
    pthread_barrier_wait(&other_bar); /* main destroys */
    pthread_barrier_wait(&other_bar);
    CHECK(tslab_malloc_epoch(other_a, other_e, 64) == NULL && errno == EINVAL);
    pthread_barrier_wait(&other_bar); /* main checks */
    pthread_barrier_wait(&other_bar);
    return NULL;
}

static uint64_t busy_slabs(tslab *a)
{
    tslab_stats st;
    REQUIRE(tslab_stats_read(a, &st) == 0);
    uint64_t n = 0;
    for (uint32_t i = 0; i < st.class_count; i++)
        n += st.classes[i].slabs_partial + st.classes[i].slabs_full;
    return n;
}

static void other_threads_cache(void)
{
    other_a = make("other", 0);
    other_e = tslab_epoch_open(other_a, "o");
    pthread_barrier_init(&other_bar, NULL, 2);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, other_thread, NULL) == 0);
    pthread_barrier_wait(&other_bar);
    CHECK_EQ_I(tslab_epoch_destroy(other_a, other_e), 0);
    CHECK_EQ_U(busy_slabs(other_a), 1); /* the other thread still caches slots of it */
    pthread_barrier_wait(&other_bar);
    pthread_barrier_wait(&other_bar);
    CHECK_EQ_U(busy_slabs(other_a), 0);
    pthread_barrier_wait(&other_bar);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&other_bar);
    tslab_destroy(other_a);
}

/* Before the labels run out, "other" is still the overflow row, not a named one. */
static void other_is_one_row(void)
{
    tslab *a = make("other", 0);
    tslab_epoch e1 = tslab_epoch_open(a, "other"), e2 = tslab_epoch_open(a, "named");
    REQUIRE(e1 != 0 && e2 != 0);
    tslab_epoch_stats es;
    REQUIRE(tslab_epoch_stats_get(a, &es, sizeof es) == 0);
    CHECK_EQ_U(es.label_count, 2);
    CHECK(strcmp(es.labels[0].label, "named") == 0 && strcmp(es.labels[1].label, "other") == 0);
    CHECK_EQ_U(es.labels[1].opened, 1);
    tslab_destroy(a);
}

/* fork() with open epochs: the child allocates, closes and destroys; the parent is unaffected. */
static tslab *fork_a;
static tslab_epoch fork_e;
static void fork_child_body(void)
{
    void *p = tslab_malloc_epoch(fork_a, fork_e, 128);
    CHECK(p != NULL);
    tslab_epoch f = tslab_epoch_open(fork_a, "child");
    CHECK(f != 0 && tslab_malloc_epoch(fork_a, f, 64) != NULL);
    CHECK_EQ_I(tslab_epoch_destroy(fork_a, f), 0);
    CHECK_EQ_I(tslab_epoch_destroy(fork_a, fork_e), 0);
    CHECK(!tslab_free_ptr(fork_a, p));
}

static void fork_with_open_epochs(void)
{
    fork_a = make("fork", 0);
    fork_e = tslab_epoch_open(fork_a, "parent");
    void *p = tslab_malloc_epoch(fork_a, fork_e, 128);
    REQUIRE(p != NULL);
    CHECK_EQ_I(test_run_child(fork_child_body), 0);
    CHECK(tslab_malloc_epoch(fork_a, fork_e, 128) != NULL);
    CHECK(tslab_free_ptr(fork_a, p));
    CHECK_EQ_I(tslab_epoch_destroy(fork_a, fork_e), 0);
    tslab_destroy(fork_a);
}

TEST_MAIN(T(placement), T(close_then_free_returns_pages), T(destroy_million), T(destroy_pointers),
          T(realloc_keeps_the_epoch), T(stale_and_forged_ids), T(destroyed_record_names_nothing),
          T(destroy_racing_frees), T(alloc_racing_close), T(alloc_racing_destroy),
          T(alloc_inside_destroy), T(figures_and_leaks), T(other_threads_cache),
          T(other_is_one_row), T(fork_with_open_epochs))
