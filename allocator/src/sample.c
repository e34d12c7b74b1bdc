/* Sampling: which allocations are recorded, the side table of their records, and the lifetime
 * histograms their frees feed.
 *
 * Intervals. Each thread counts down, per class, the allocations left before its next sample.
 * The interval in bytes is exponentially distributed with mean sample_bytes (a Poisson process
 * over the bytes allocated, as in Go and tcmalloc), so an object of s bytes is sampled with
 * probability 1 - exp(-s / mean) whatever happened before it; the count of allocations is
 * floor(bytes / s), since a class's objects all have s bytes. Because the process is memoryless,
 * keeping one countdown per class is the same as one per thread, and costs the fast path only a
 * decrement of a field it already has in cache.
 *
 * Records. A sampled allocation records its stack in a site (stack, class, interval; counts of
 * sampled allocations and frees) and its slot, generation, site and birth time in a table keyed
 * by (class, slot), under one lock per instance: only sampled allocations and their frees take
 * it, one in every sample_bytes / s allocations of a class. Nothing is stored in the object.
 *
 * Stacks are taken with libunwind's unw_backtrace() (Debian libunwind-dev). Like glibc's
 * backtrace() it unwinds by DWARF call-frame information, so it is right through code built
 * without frame pointers (Debian's default, for the application and libc alike), which a
 * frame-pointer walk is not: that walk is the cheapest (about 5 instructions a frame) but reads
 * garbage, or stops, at the first frame without one. Counted by callgrind for a 21-frame stack,
 * unw_backtrace takes about 2,000 instructions and glibc's backtrace() (libgcc's unwinder, which
 * looks every frame's FDE up again) about 15,000 for 8 frames; bench/README.md "Stack capture"
 * has the figures. At one sample per 512 KiB of 64-byte objects that is 0.25 instructions per
 * allocation. The allocator's own frames are cut off by address (TSLAB__ENTRY).
 */
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#define UNW_LOCAL_ONLY /* this process's stacks only: the small, fast variant of the library */
#include <libunwind.h>

#define SITES_MAX 65536u  /* distinct sites kept; further stacks fold into a depth-0 site */
#define CAPTURE_SLACK 16u /* frames of our own above the caller's */
#define LN2 0.69314718055994530942

/* Bounds of the section holding the allocation entry points (the linker defines them). */
extern const char __start_tslab_entry[] __attribute__((visibility("hidden")));
extern const char __stop_tslab_entry[] __attribute__((visibility("hidden")));

typedef struct site {
    uint64_t hash;
    uint64_t rate; /* sample_bytes the samples were taken at */
    uint64_t allocs, frees;
    size_t frames; /* offset into sampler.frames */
    uint32_t depth;
    uint32_t cls;
} site;

/* A live sampled object. key 0 is an empty slot of the table. */
typedef struct record {
    uint64_t key; /* (class << IDX_BITS | slot) + 1 */
    uint64_t birth_ns;
    uint32_t gen;
    uint32_t site;
} record;

typedef struct tslab__sampler {
    pthread_mutex_t lock; /* guards everything below */
    site *sites;
    uint32_t nsites, sites_cap;
    uint32_t *site_map; /* open addressing: site index + 1, 0 empty; power-of-two size */
    uint32_t site_map_cap;
    uintptr_t *frames; /* every site's frames, back to back */
    size_t nframes, frames_cap;
    record *live; /* open addressing by key, linear probing; power-of-two size */
    size_t live_cap, nlive;
    /* Per class: sampled frees by lifetime (per bucket, not cumulative) and their sum. */
    uint64_t life[TSLAB_CLASSES_MAX][TSLAB_LIFETIME_BUCKETS + 1];
    uint64_t life_sum_ns[TSLAB_CLASSES_MAX];
} tslab__sampler;

static const uint64_t bounds_ns[TSLAB_LIFETIME_BUCKETS] = TSLAB_LIFETIME_BOUNDS_NS;

/* ---- Random intervals ---- */

/* splitmix64: one word of state, full period, good enough to draw intervals from. */
static uint64_t next_random(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* -ln(u) for the uniform u = (53 random bits + 1) / 2^53 in (0, 1]: the binary exponent and an
 * atanh series on the mantissa (relative error below 1e-8), so the core needs no libm. */
static double exp_draw(uint64_t r)
{
    uint64_t x = (r >> 11) + 1; /* 1 .. 2^53 */
    int msb = 63 - __builtin_clzll(x);
    double m = (double)x / (double)(UINT64_C(1) << msb); /* [1, 2) */
    double z = (m - 1) / (m + 1), z2 = z * z;            /* [0, 1/3) */
    double ln_m =
        2 * z *
        (1 +
         z2 * (1. / 3 + z2 * (1. / 5 + z2 * (1. / 7 + z2 * (1. / 9 + z2 * (1. / 11 + z2 / 13))))));
    return -((msb - 53) * LN2 + ln_m);
}

/* Allocations of `size` bytes that pass before the next sample: floor(interval / size), the
 * interval exponential with mean `mean` bytes. */
static uint64_t draw(tslab__tcache *tc, size_t mean, uint32_t size)
{
    double k = (double)mean * exp_draw(next_random(&tc->rng)) / size;
    return k >= (double)INT32_MAX ? INT32_MAX : (uint64_t)k;
}

static void seed(tslab *a, tslab__tcache *tc)
{
    /* Relaxed: only the numbers' distinctness matters. */
    uint64_t n = atomic_fetch_add_explicit(&a->sample_threads, 1, memory_order_relaxed);
    uint64_t s = a->sample_seed ^ (n * UINT64_C(0xD1B54A32D192ED03));
    tc->rng = next_random(&s) | 1; /* never 0, which means "not seeded" */
}

bool tslab__sample_due(tslab *a, tslab__tcache *tc, tslab__tclass *t)
{
    uint32_t ci = (uint32_t)(t - tc->cls);
    uint64_t bit = UINT64_C(1) << ci;
    bool armed = (tc->sample_armed & bit) != 0;
    if (tc->rng == 0)
        seed(a, tc);
    size_t mean = atomic_load_explicit(&a->sample_bytes, memory_order_relaxed);
    if (mean == TSLAB_SAMPLE_OFF) {
        tc->sample_armed &= ~bit;
        t->sample_left = TSLAB__SAMPLE_RECHECK - 1; /* this allocation is one of them */
        return false;
    }
    tc->sample_armed |= bit;
    uint64_t k = draw(tc, mean, t->size);
    if (armed) { /* an interval drawn with sampling on ran out: this allocation is the sample */
        t->sample_left = (int32_t)k;
        return true;
    }
    /* First allocation of the class, or sampling was off: no interval was running, and by
     * memorylessness one drawn now is the remaining one. k == 0 falls in this allocation. */
    if (k == 0) {
        t->sample_left = (int32_t)draw(tc, mean, t->size);
        return true;
    }
    t->sample_left = (int32_t)(k - 1);
    return false;
}

int tslab_sample_set(tslab *a, size_t bytes)
{
    if (a == NULL)
        return -EINVAL;
    atomic_store_explicit(&a->sample_bytes, bytes == 0 ? TSLAB_SAMPLE_DEFAULT : bytes,
                          memory_order_relaxed);
    return 0;
}

size_t tslab_sample_get(const tslab *a)
{
    return a ? atomic_load_explicit(&((tslab *)a)->sample_bytes, memory_order_relaxed) : 0;
}

/* ---- Stacks ---- */

/* Two cases unwind with glibc's backtrace() instead (slower, correct):
 * - processes with ThreadSanitizer's runtime, found at run time by a weak reference, so that
 *   the release library linked into a user's TSan build does it too: unw_backtrace keeps a
 *   per-thread cache whose key destructor runs after TSan has torn the exiting thread down, and
 *   its mutex call then crashes TSan;
 * - memcheck builds (TSLAB_VALGRIND): where libunwind is unsure of an address it probes it by
 *   write()ing it to a pipe, which memcheck reports as a system call reading uninitialised stack
 *   bytes (harmless, but the sanitizer matrix runs without suppressions).
 * backtrace() is looked up by its glibc version, because libunwind exports one of its own. */
extern void __tsan_init(void) __attribute__((weak));
static int (*glibc_backtrace)(void **, int);
static pthread_once_t glibc_backtrace_once = PTHREAD_ONCE_INIT;
static void glibc_backtrace_find(void)
{
    glibc_backtrace = (int (*)(void **, int))dlvsym(RTLD_DEFAULT, "backtrace", "GLIBC_2.2.5");
}

static int unwind(void **buf, int max)
{
    if (TSLAB_VALGRIND || __tsan_init != NULL) {
        pthread_once(&glibc_backtrace_once, glibc_backtrace_find);
        if (glibc_backtrace != NULL)
            return glibc_backtrace(buf, max);
    }
    return unw_backtrace(buf, max);
}

TSLAB_NOINLINE TSLAB__ENTRY uint32_t tslab__stack_capture(uintptr_t *out)
{
    void *buf[TSLAB_STACK_MAX + CAPTURE_SLACK];
    int n = unwind(buf, (int)(sizeof buf / sizeof buf[0]));
    int i = 0;
    while (i < n && (const char *)buf[i] >= __start_tslab_entry &&
           (const char *)buf[i] < __stop_tslab_entry)
        i++;
    uint32_t depth = 0;
    for (; i < n && depth < TSLAB_STACK_MAX; i++)
        out[depth++] = (uintptr_t)buf[i];
    return depth;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + UINT64_C(0x9E3779B97F4A7C15) + (h << 6) + (h >> 2);
    return h * UINT64_C(0xFF51AFD7ED558CCD);
}

/* ---- The side table (caller holds sampler.lock) ---- */

static bool site_grow(tslab__sampler *s)
{
    uint32_t cap = s->site_map_cap ? s->site_map_cap * 2 : 256;
    uint32_t *m = calloc(cap, sizeof *m);
    if (m == NULL)
        return false;
    for (uint32_t i = 0; i < s->nsites; i++) {
        uint32_t j = (uint32_t)s->sites[i].hash & (cap - 1);
        while (m[j] != 0)
            j = (j + 1) & (cap - 1);
        m[j] = i + 1;
    }
    free(s->site_map);
    s->site_map = m;
    s->site_map_cap = cap;
    return true;
}

/* The site of (stack, class, rate), made if new; UINT32_MAX when out of memory. */
static uint32_t site_get(tslab__sampler *s, const uintptr_t *fr, uint32_t depth, uint32_t ci,
                         uint64_t rate)
{
    if (s->nsites >= SITES_MAX)
        depth = 0; /* bounded: new stacks fold into the class's anonymous site */
    uint64_t h = mix(mix(ci, rate), depth);
    for (uint32_t i = 0; i < depth; i++)
        h = mix(h, fr[i]);
    if (s->site_map_cap == 0 && !site_grow(s))
        return UINT32_MAX;
    for (uint32_t j = (uint32_t)h & (s->site_map_cap - 1);; j = (j + 1) & (s->site_map_cap - 1)) {
        uint32_t k = s->site_map[j];
        if (k == 0)
            break;
        site *e = &s->sites[k - 1];
        if (e->hash == h && e->cls == ci && e->rate == rate && e->depth == depth &&
            (depth == 0 || memcmp(&s->frames[e->frames], fr, depth * sizeof *fr) == 0))
            return k - 1;
    }
    if ((s->nsites + 1) * 2 > s->site_map_cap && !site_grow(s))
        return UINT32_MAX;
    if (s->nsites == s->sites_cap) {
        uint32_t cap = s->sites_cap ? s->sites_cap * 2 : 64;
        site *n = realloc(s->sites, cap * sizeof *n);
        if (n == NULL)
            return UINT32_MAX;
        s->sites = n;
        s->sites_cap = cap;
    }
    if (s->nframes + depth > s->frames_cap) {
        size_t cap = s->frames_cap ? s->frames_cap * 2 : 1024;
        while (cap < s->nframes + depth)
            cap *= 2;
        uintptr_t *n = realloc(s->frames, cap * sizeof *n);
        if (n == NULL)
            return UINT32_MAX;
        s->frames = n;
        s->frames_cap = cap;
    }
    if (depth > 0)
        memcpy(&s->frames[s->nframes], fr, depth * sizeof *fr);
    s->sites[s->nsites] =
        (site){.hash = h, .rate = rate, .frames = s->nframes, .depth = depth, .cls = ci};
    s->nframes += depth;
    uint32_t j = (uint32_t)h & (s->site_map_cap - 1);
    while (s->site_map[j] != 0)
        j = (j + 1) & (s->site_map_cap - 1);
    s->site_map[j] = ++s->nsites;
    return s->nsites - 1;
}

static size_t rec_home(const tslab__sampler *s, uint64_t key)
{
    return (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (s->live_cap - 1);
}

static bool live_grow(tslab__sampler *s)
{
    size_t cap = s->live_cap ? s->live_cap * 2 : 1024;
    record *n = calloc(cap, sizeof *n);
    if (n == NULL)
        return false;
    record *old = s->live;
    size_t old_cap = s->live_cap;
    s->live = n;
    s->live_cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key == 0)
            continue;
        size_t j = rec_home(s, old[i].key);
        while (n[j].key != 0)
            j = (j + 1) & (cap - 1);
        n[j] = old[i];
    }
    free(old);
    return true;
}

static record *rec_find(tslab__sampler *s, uint64_t key)
{
    if (s->live_cap == 0)
        return NULL;
    for (size_t j = rec_home(s, key);; j = (j + 1) & (s->live_cap - 1)) {
        if (s->live[j].key == key)
            return &s->live[j];
        if (s->live[j].key == 0)
            return NULL;
    }
}

/* Removes *r, shifting later members of its probe run back so that no tombstone is needed. */
static void rec_remove(tslab__sampler *s, record *r)
{
    size_t mask = s->live_cap - 1, i = (size_t)(r - s->live);
    for (size_t j = (i + 1) & mask; s->live[j].key != 0; j = (j + 1) & mask) {
        size_t h = rec_home(s, s->live[j].key);
        /* Move j into the hole at i unless its home lies cyclically in (i, j]. */
        if (((j - h) & mask) >= ((j - i) & mask)) {
            s->live[i] = s->live[j];
            i = j;
        }
    }
    s->live[i].key = 0;
    s->nlive--;
}

static uint32_t bucket_of(uint64_t ns)
{
    uint32_t b = 0;
    while (b < TSLAB_LIFETIME_BUCKETS && ns > bounds_ns[b])
        b++;
    return b;
}

/* Moves record r (class ci) into the lifetime histogram and off the table. */
static void retire(tslab *a, tslab__sampler *s, record *r, uint32_t ci)
{
    uint64_t now = tslab__now(a);
    uint64_t life = now > r->birth_ns ? now - r->birth_ns : 0;
    s->life[ci][bucket_of(life)]++;
    s->life_sum_ns[ci] += life;
    s->sites[r->site].frees++;
    rec_remove(s, r);
}

TSLAB_NOINLINE TSLAB__ENTRY bool tslab__sample_alloc(tslab *a, uint32_t ci, uint32_t idx,
                                                     uint32_t gen)
{
    uintptr_t fr[TSLAB_STACK_MAX];
    uint32_t depth = tslab__stack_capture(fr); /* outside the lock: the slow part */
    uint64_t rate = atomic_load_explicit(&a->sample_bytes, memory_order_relaxed);
    uint64_t key = ((uint64_t)ci << TSLAB__IDX_BITS | idx) + 1;
    uint64_t birth = tslab__now(a);
    tslab__sampler *s = a->sampler;
    bool ok = false;
    pthread_mutex_lock(&s->lock);
    uint32_t si = site_get(s, fr, depth, ci, rate);
    if (si != UINT32_MAX && ((s->nlive + 1) * 2 <= s->live_cap || live_grow(s))) {
        /* A record still there for this slot belongs to an object whose free was a racing
         * duplicate that lost the record to the slot's reuse: count it freed now. */
        record *old = rec_find(s, key);
        if (old != NULL)
            retire(a, s, old, ci);
        size_t j = rec_home(s, key);
        while (s->live[j].key != 0)
            j = (j + 1) & (s->live_cap - 1);
        s->live[j] = (record){.key = key, .birth_ns = birth, .gen = gen, .site = si};
        s->nlive++;
        s->sites[si].allocs++;
        ok = true;
    }
    pthread_mutex_unlock(&s->lock);
    return ok;
}

void tslab__sample_free(tslab *a, uint32_t ci, uint32_t idx, uint32_t gen)
{
    uint64_t key = ((uint64_t)ci << TSLAB__IDX_BITS | idx) + 1;
    tslab__sampler *s = a->sampler;
    pthread_mutex_lock(&s->lock);
    record *r = rec_find(s, key);
    if (r != NULL && r->gen == gen)
        retire(a, s, r, ci);
    pthread_mutex_unlock(&s->lock);
}

int tslab__sampler_init(tslab *a, const tslab_config *cfg)
{
    size_t mean = cfg->sample_bytes == 0 ? TSLAB_SAMPLE_DEFAULT : cfg->sample_bytes;
    atomic_init(&a->sample_bytes, mean);
    a->sample_seed = cfg->sample_seed != 0 ? cfg->sample_seed : tslab_clock_ns() ^ (uintptr_t)a;
    a->sampler = calloc(1, sizeof *a->sampler);
    if (a->sampler == NULL)
        return -ENOMEM;
    if (pthread_mutex_init(&a->sampler->lock, NULL) != 0) {
        free(a->sampler);
        a->sampler = NULL;
        return -ENOMEM;
    }
    return 0;
}

void tslab__sampler_fini(tslab *a)
{
    tslab__sampler *s = a->sampler;
    if (s == NULL)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s->sites);
    free(s->site_map);
    free(s->frames);
    free(s->live);
    free(s);
    a->sampler = NULL;
}

void tslab__sampler_lock(tslab *a) { pthread_mutex_lock(&a->sampler->lock); }
void tslab__sampler_unlock(tslab *a) { pthread_mutex_unlock(&a->sampler->lock); }

/* ---- Reading ---- */

int tslab_profile_read(tslab *a, tslab_profile **out)
{
    if (a == NULL || out == NULL)
        return -EINVAL;
    tslab__sampler *s = a->sampler;
    pthread_mutex_lock(&s->lock);
    size_t head = (sizeof(tslab_profile) + 15) & ~(size_t)15;
    size_t bytes = head + s->nsites * sizeof(tslab_profile_site) + s->nframes * sizeof(uintptr_t);
    tslab_profile *p = calloc(1, bytes);
    if (p == NULL) {
        pthread_mutex_unlock(&s->lock);
        return -ENOMEM;
    }
    tslab_profile_site *sites = (tslab_profile_site *)(void *)((char *)p + head);
    uintptr_t *frames = (uintptr_t *)(void *)(sites + s->nsites);
    if (s->nframes > 0) /* s->frames is NULL until the first frame */
        memcpy(frames, s->frames, s->nframes * sizeof *frames);
    for (uint32_t i = 0; i < s->nsites; i++) {
        const site *e = &s->sites[i];
        sites[i] = (tslab_profile_site){.frames = frames + e->frames,
                                        .depth = e->depth,
                                        .class_index = e->cls,
                                        .object_size = a->cls[e->cls].size,
                                        .sample_bytes = e->rate,
                                        .allocs = e->allocs,
                                        .frees = e->frees};
    }
    p->version = TSLAB_PROFILE_VERSION;
    p->class_count = a->nclasses;
    p->time_ns = tslab__now(a);
    p->sample_bytes = atomic_load_explicit(&a->sample_bytes, memory_order_relaxed);
    p->site_count = s->nsites;
    p->sites = sites;
    for (uint32_t c = 0; c < a->nclasses; c++) {
        tslab_profile_class *pc = &p->classes[c];
        pc->object_size = a->cls[c].size;
        pc->lifetime_sum_ns = s->life_sum_ns[c];
        /* Relaxed: monotonic counters, each exact at some instant of the read. */
        pc->lock_waits = atomic_load_explicit(&a->cls[c].lock_waits, memory_order_relaxed);
        pc->lock_wait_ns = atomic_load_explicit(&a->cls[c].lock_wait_ns, memory_order_relaxed);
        uint64_t cum = 0;
        for (uint32_t b = 0; b <= TSLAB_LIFETIME_BUCKETS; b++)
            pc->lifetime_buckets[b] = cum += s->life[c][b];
    }
    for (size_t i = 0; i < s->live_cap; i++) {
        const record *r = &s->live[i];
        if (r->key == 0)
            continue;
        uint32_t c = (uint32_t)((r->key - 1) >> TSLAB__IDX_BITS);
        uint64_t age = p->time_ns > r->birth_ns ? p->time_ns - r->birth_ns : 0;
        p->classes[c].age_buckets[bucket_of(age)]++;
    }
    pthread_mutex_unlock(&s->lock);
    for (uint32_t c = 0; c < a->nclasses; c++)
        for (uint32_t b = 1; b <= TSLAB_LIFETIME_BUCKETS; b++)
            p->classes[c].age_buckets[b] += p->classes[c].age_buckets[b - 1];
    *out = p;
    return 0;
}

void tslab_profile_free(tslab_profile *p) { free(p); }
