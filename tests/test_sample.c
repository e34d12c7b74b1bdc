/* SPDX-License-Identifier: MIT */
/* The sampler: interval statistics, records made and moved by frees on every free path, never
 * touched by a rejected free, lifetimes under an injected clock, stacks naming the caller, and
 * the run-time switch. Linked with -rdynamic so that dladdr names this file's functions. */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>

#include "testhelper.h"
#include "tslab.h"

/* Sums of a profile's sites, optionally of one class. */
typedef struct totals {
    uint64_t allocs, frees, sites;
} totals;

static totals sum_sites(tslab *a, int cls)
{
    tslab_profile *p;
    CHECK(tslab_profile_read(a, &p) == 0);
    CHECK_EQ_U(p->version, TSLAB_PROFILE_VERSION);
    totals t = {0, 0, 0};
    for (size_t i = 0; i < p->site_count; i++) {
        const tslab_profile_site *s = &p->sites[i];
        CHECK(s->frees <= s->allocs);
        if (cls >= 0 && s->class_index != (uint32_t)cls)
            continue;
        t.allocs += s->allocs;
        t.frees += s->frees;
        t.sites++;
    }
    tslab_profile_free(p);
    return t;
}

static tslab *make(size_t sample_bytes, uint64_t seed)
{
    tslab_config c = {.name = "sample", .sample_bytes = sample_bytes, .sample_seed = seed};
    tslab *a = tslab_create(&c);
    CHECK(a != NULL);
    return a;
}

/* Over 10^7 allocations the number sampled is within 5% of N * (1 - exp(-s / mean)), for the
 * default mean and a small one, with fixed seeds. */
static void interval_statistics(void)
{
    const size_t means[] = {TSLAB_SAMPLE_DEFAULT, 4096};
    const uint32_t sizes[] = {64, 512};
    uint64_t n = scaled(10000000);
    for (size_t m = 0; m < 2; m++)
        for (size_t z = 0; z < 2; z++) {
            tslab *a = make(means[m], 42 + m * 2 + z);
            for (uint64_t i = 0; i < n; i++) {
                void *p = tslab_malloc(a, sizes[z]);
                CHECK(p != NULL);
                CHECK(tslab_free_ptr(a, p));
            }
            totals t = sum_sites(a, -1);
            double want = (double)n * (1 - exp(-(double)sizes[z] / (double)means[m]));
            printf("mean %zu size %u: %llu sampled of %llu, expected %.0f (%.2f%%)\n", means[m],
                   sizes[z], (unsigned long long)t.allocs, (unsigned long long)n, want,
                   100.0 * ((double)t.allocs - want) / want);
            /* 5% at full scale; a run scaled down for a slow tool (fewer samples) gets 4
             * standard deviations of the sampled count instead. */
            double tol = n >= 10000000 ? 0.05 * want : 4 * sqrt(want) + 3;
            CHECK(fabs((double)t.allocs - want) <= tol);
            CHECK_EQ_U(t.frees, t.allocs);
            tslab_destroy(a);
        }
}

/* Sampling every byte records every allocation; each free path moves its record. */
static void *other_free(void *arg)
{
    void **v = arg;
    tslab *a = v[0];
    CHECK(tslab_free_ptr(a, v[1]));
    CHECK(tslab_free(a, (tslab_handle)(uintptr_t)v[2]));
    return NULL;
}

static void records_follow_frees(void)
{
    for (int exact = 0; exact < 2; exact++) {
        tslab_config c = {.sample_bytes = 1, .sample_seed = 7, .exact_frees = exact};
        tslab *a = tslab_create(&c);
        CHECK(a != NULL);
        enum { N = 1000 };
        static void *p[N];
        static tslab_handle h[N];
        for (int i = 0; i < N; i++) {
            p[i] = tslab_alloc(a, 100, &h[i]);
            CHECK(p[i] != NULL);
            /* The handle API still sees a sampled object as live. */
            CHECK(tslab_handle_ptr(a, h[i]) == p[i]);
            CHECK(tslab_ptr_handle(a, p[i]) == h[i]);
            CHECK_EQ_U(tslab_usable_size(a, p[i]), 128);
        }
        totals t = sum_sites(a, 2);
        CHECK_EQ_U(t.allocs, N);
        CHECK_EQ_U(t.frees, 0);
        /* The owner's frees, by handle and by pointer. */
        for (int i = 0; i < N / 2; i++)
            CHECK(i % 2 ? tslab_free(a, h[i]) : tslab_free_ptr(a, p[i]));
        t = sum_sites(a, 2);
        CHECK_EQ_U(t.frees, N / 2);
        /* Another thread's frees (the CAS path). */
        for (int i = N / 2; i < N; i += 2) {
            void *v[3] = {a, p[i], (void *)(uintptr_t)h[i + 1]};
            pthread_t th;
            CHECK(pthread_create(&th, NULL, other_free, v) == 0);
            CHECK(pthread_join(th, NULL) == 0);
        }
        t = sum_sites(a, 2);
        CHECK_EQ_U(t.frees, N);
        tslab_profile *pr;
        CHECK(tslab_profile_read(a, &pr) == 0);
        CHECK_EQ_U(pr->classes[2].lifetime_buckets[TSLAB_LIFETIME_BUCKETS], N);
        CHECK_EQ_U(pr->classes[2].age_buckets[TSLAB_LIFETIME_BUCKETS], 0);
        tslab_profile_free(pr);
        tslab_destroy(a);
    }
}

/* A rejected free (double, stale, interior pointer, garbage handle) never touches a record. */
static void rejected_frees_keep_records(void)
{
    tslab *a = make(1, 9);
    tslab_handle h1, h2;
    char *p1 = tslab_alloc(a, 64, &h1);
    CHECK(p1 != NULL);
    CHECK(tslab_free(a, h1));
    char *p2 = tslab_alloc(a, 64, &h2);
    CHECK(p2 != NULL);
    totals t = sum_sites(a, 0);
    CHECK_EQ_U(t.allocs, 2);
    CHECK_EQ_U(t.frees, 1);
    CHECK(!tslab_free(a, h1));                /* double or stale */
    CHECK(!tslab_free_ptr(a, p2 + 8));        /* interior */
    CHECK(!tslab_free(a, h2 ^ (1ull << 30))); /* a flipped index bit */
    if (p1 != p2)
        CHECK(!tslab_free_ptr(a, p1)); /* double, when the slot was not reused */
    t = sum_sites(a, 0);
    CHECK_EQ_U(t.allocs, 2);
    CHECK_EQ_U(t.frees, 1);
    CHECK(tslab_free_ptr(a, p2));
    CHECK(!tslab_free_ptr(a, p2));
    t = sum_sites(a, 0);
    CHECK_EQ_U(t.frees, 2);
    tslab_stats st;
    CHECK(tslab_stats_read(a, &st) == 0);
    CHECK(st.classes[0].rejected_double + st.classes[0].rejected_stale >= 2);
    tslab_destroy(a);
}

/* Lifetimes land in the expected buckets under an injected clock. */
static uint64_t fake_now;
static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

static void lifetimes(void)
{
    tslab_os os = *tslab_os_default(); /* the real OS calls, our clock */
    os.now_ns = fake_clock;
    tslab_config c = {.sample_bytes = 1, .sample_seed = 3, .os = &os};
    tslab *a = tslab_create(&c);
    CHECK(a != NULL);
    /* life in ns -> bucket index (bounds 1ms 10ms 100ms 1s 10s 1m 10m 1h 6h 1d, +Inf) */
    static const struct {
        uint64_t life;
        unsigned bucket;
    } cases[] = {{500000, 0},
                 {1000000, 0},
                 {5000000, 1},
                 {2000000000, 4},
                 {90000000000ull, 6},
                 {7200000000000ull, 8},
                 {172800000000000ull, 10}};
    enum { NC = sizeof cases / sizeof cases[0] };
    tslab_handle h[NC];
    fake_now = 1000;
    for (unsigned i = 0; i < NC; i++)
        CHECK(tslab_alloc(a, 64, &h[i]) != NULL);
    /* Ages of the live ones before any free: all born at 1000. */
    fake_now = 1000 + 20000000; /* 20 ms */
    tslab_profile *p;
    CHECK(tslab_profile_read(a, &p) == 0);
    CHECK_EQ_U(p->classes[0].age_buckets[1], 0);
    CHECK_EQ_U(p->classes[0].age_buckets[2], NC);
    CHECK_EQ_U(p->classes[0].age_buckets[TSLAB_LIFETIME_BUCKETS], NC);
    tslab_profile_free(p);
    uint64_t sum = 0;
    for (unsigned i = 0; i < NC; i++) {
        fake_now = 1000 + cases[i].life;
        sum += cases[i].life;
        CHECK(tslab_free(a, h[i]));
    }
    CHECK(tslab_profile_read(a, &p) == 0);
    const tslab_profile_class *pc = &p->classes[0];
    CHECK_EQ_U(pc->lifetime_sum_ns, sum);
    for (unsigned b = 0; b <= TSLAB_LIFETIME_BUCKETS; b++) {
        uint64_t want = 0;
        for (unsigned i = 0; i < NC; i++)
            want += cases[i].bucket <= b;
        CHECK_EQ_U(pc->lifetime_buckets[b], want);
    }
    CHECK_EQ_U(pc->age_buckets[TSLAB_LIFETIME_BUCKETS], 0);
    tslab_profile_free(p);
    tslab_destroy(a);
}

/* The recorded stack starts at the allocator's caller (exported, so dladdr names it). */
void *sample_site_alpha(tslab *a);
TEST_NAMED_FRAME void *sample_site_alpha(tslab *a)
{
    void *p = tslab_malloc(a, 64);
    __asm__ volatile("" ::: "memory"); /* no tail call: keep this frame */
    return p;
}

static void stacks_name_the_caller(void)
{
    tslab *a = make(1, 5);
    void *p = sample_site_alpha(a);
    CHECK(p != NULL);
    tslab_profile *pr;
    CHECK(tslab_profile_read(a, &pr) == 0);
    CHECK_EQ_U(pr->site_count, 1);
    const tslab_profile_site *s = &pr->sites[0];
    CHECK(s->depth >= 2 && s->depth <= TSLAB_STACK_MAX);
    CHECK_EQ_U(s->object_size, 64);
    CHECK_EQ_U(s->sample_bytes, 1);
    Dl_info di;
    CHECK(dladdr((void *)(s->frames[0] - 1), &di) != 0);
    printf("frame 0: %s\n", di.dli_sname ? di.dli_sname : "?");
    CHECK(di.dli_sname != NULL && strcmp(di.dli_sname, "sample_site_alpha") == 0);
    tslab_profile_free(pr);
    CHECK(tslab_free_ptr(a, p));
    tslab_destroy(a);
}

/* Epoch allocations are sampled like plain ones: at 1 byte every one is recorded with its
 * caller's stack, and both its free and its epoch's destroy move the record. */
void *sample_site_epoch(tslab *a, tslab_epoch e);
TEST_NAMED_FRAME void *sample_site_epoch(tslab *a, tslab_epoch e)
{
    void *p = tslab_malloc_epoch(a, e, 96);
    __asm__ volatile("" ::: "memory"); /* no tail call: keep this frame */
    return p;
}

static void epoch_records(void)
{
    tslab *a = make(1, 17);
    tslab_epoch e = tslab_epoch_open(a, "sampled");
    REQUIRE(e != 0);
    enum { N = 1000 };
    void *p[N];
    for (int i = 0; i < N; i++) {
        p[i] = sample_site_epoch(a, e);
        REQUIRE(p[i] != NULL);
        if (i % 4 == 3) /* frees back into the thread's epoch cache, reused by the next ones */
            CHECK(tslab_free_ptr(a, p[i - 1]));
    }
    tslab_profile *pr;
    CHECK(tslab_profile_read(a, &pr) == 0);
    uint64_t allocs = 0, frees = 0;
    for (size_t i = 0; i < pr->site_count; i++) {
        const tslab_profile_site *s = &pr->sites[i];
        Dl_info di;
        CHECK(dladdr((void *)(s->frames[0] - 1), &di) != 0);
        if (di.dli_sname == NULL || strcmp(di.dli_sname, "sample_site_epoch") != 0)
            printf("site %zu (%llu allocations): frame 0 is %s in %s +%#lx\n", i,
                   (unsigned long long)s->allocs, di.dli_sname ? di.dli_sname : "?", di.dli_fname,
                   (unsigned long)(s->frames[0] - (uintptr_t)di.dli_fbase));
        CHECK(di.dli_sname != NULL && strcmp(di.dli_sname, "sample_site_epoch") == 0);
        CHECK_EQ_U(s->object_size, 96);
        allocs += s->allocs;
        frees += s->frees;
    }
    tslab_profile_free(pr);
    CHECK_EQ_U(allocs, N);
    CHECK_EQ_U(frees, N / 4);
    CHECK_EQ_I(tslab_epoch_destroy(a, e), 0);
    totals t = sum_sites(a, -1);
    CHECK_EQ_U(t.allocs, N);
    CHECK_EQ_U(t.frees, N); /* the destroy freed the other 750 and their records */
    tslab_destroy(a);
}

/* With a real interval, epoch allocations (with frees going back into the thread's epoch cache,
 * and plain allocations of the same class in between) are sampled at the expected rate: the
 * epoch fast path stops where the shared countdown runs out. */
static void epoch_interval_statistics(void)
{
    const size_t mean = 16384;
    uint64_t n = scaled(4000000), plain = 0;
    tslab *a = make(mean, 4242);
    tslab_epoch e = tslab_epoch_open(a, "stats");
    REQUIRE(e != 0);
    void *held[8];
    for (uint64_t i = 0; i < n; i += 8) {
        for (int k = 0; k < 8; k++)
            CHECK((held[k] = tslab_malloc_epoch(a, e, 128)) != NULL);
        if (i % 64 == 0) { /* the plain path of the class counts down the same interval */
            CHECK(tslab_free_ptr(a, tslab_malloc(a, 128)));
            plain++;
        }
        for (int k = 0; k < 8; k++)
            CHECK(tslab_free_ptr(a, held[k]));
    }
    totals t = sum_sites(a, -1);
    double want = (double)(n + plain) * (1 - exp(-128.0 / (double)mean));
    printf("epoch: %llu sampled of %llu, expected %.0f (%.2f%%)\n", (unsigned long long)t.allocs,
           (unsigned long long)(n + plain), want, 100.0 * ((double)t.allocs - want) / want);
    double tol = n >= 4000000 ? 0.05 * want : 4 * sqrt(want) + 3;
    CHECK(fabs((double)t.allocs - want) <= tol);
    CHECK_EQ_U(t.frees, t.allocs);
    CHECK_EQ_I(tslab_epoch_destroy(a, e), 0);
    tslab_destroy(a);
}

/* tslab_sample_set switches sampling at run time. */
static void switch_at_run_time(void)
{
    tslab *a = make(TSLAB_SAMPLE_OFF, 11);
    CHECK_EQ_U(tslab_sample_get(a), TSLAB_SAMPLE_OFF);
    for (int i = 0; i < 200000; i++)
        CHECK(tslab_free_ptr(a, tslab_malloc(a, 64)));
    CHECK_EQ_U(sum_sites(a, -1).allocs, 0);
    CHECK(tslab_sample_set(a, 1) == 0);
    CHECK_EQ_U(tslab_sample_get(a), 1);
    /* Off, a thread looks again within TSLAB__SAMPLE_RECHECK (65536) allocations of a class. */
    for (int i = 0; i < 70000; i++)
        CHECK(tslab_free_ptr(a, tslab_malloc(a, 64)));
    uint64_t on = sum_sites(a, -1).allocs;
    printf("sampled after switching on: %llu\n", (unsigned long long)on);
    CHECK(on >= 70000 - 65536);
    CHECK(tslab_sample_set(a, TSLAB_SAMPLE_OFF) == 0);
    /* Every allocation is due while the interval is 1 byte, so the switch is seen at once. */
    for (int i = 0; i < 1000; i++)
        CHECK(tslab_free_ptr(a, tslab_malloc(a, 64)));
    CHECK_EQ_U(sum_sites(a, -1).allocs, on);
    CHECK(tslab_sample_set(a, 0) == 0);
    CHECK_EQ_U(tslab_sample_get(a), TSLAB_SAMPLE_DEFAULT);
    CHECK(tslab_sample_set(NULL, 1) < 0);
    CHECK(tslab_profile_read(NULL, NULL) < 0);
    tslab_destroy(a);
}

/* The estimate of live bytes (sampled live objects times Go's 1 / (1 - exp(-s / mean))) is within
 * 10% of the truth with 1M live objects of mixed classes, at the default interval. */
static void inuse_estimate(void)
{
    tslab *a = make(0, 2024);
    uint64_t n = scaled(1000000), truth = 0;
    unsigned long long r = 99;
    void **keep = malloc(n * sizeof *keep);
    CHECK(keep != NULL);
    for (uint64_t i = 0; i < n; i++) {
        size_t sz = 1 + rng_next(&r) % 768;
        keep[i] = tslab_malloc(a, sz);
        CHECK(keep[i] != NULL);
        truth += tslab_usable_size(a, keep[i]);
        /* churn: a freed object counts neither in the truth nor (once freed) in the estimate */
        void *t = tslab_malloc(a, sz);
        CHECK(tslab_free_ptr(a, t));
    }
    tslab_profile *p;
    CHECK(tslab_profile_read(a, &p) == 0);
    double est = 0;
    for (size_t i = 0; i < p->site_count; i++) {
        const tslab_profile_site *s = &p->sites[i];
        double scale = 1 / (1 - exp(-(double)s->object_size / (double)s->sample_bytes));
        est += (double)(s->allocs - s->frees) * (double)s->object_size * scale;
    }
    printf("live bytes %llu, estimate %.0f (%.2f%%)\n", (unsigned long long)truth, est,
           100.0 * (est - (double)truth) / (double)truth);
    if (n >= 1000000)
        CHECK(fabs(est - (double)truth) <= 0.10 * (double)truth);
    tslab_profile_free(p);
    for (uint64_t i = 0; i < n; i++)
        CHECK(tslab_free_ptr(a, keep[i]));
    free(keep);
    tslab_destroy(a);
}

TEST_MAIN(T(interval_statistics), T(records_follow_frees), T(rejected_frees_keep_records),
          T(lifetimes), T(stacks_name_the_caller), T(epoch_records), T(epoch_interval_statistics),
          T(switch_at_run_time), T(inuse_estimate))
