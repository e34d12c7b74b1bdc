/* SPDX-License-Identifier: MIT */
/* libFuzzer target: arbitrary bytes -> a sequence of allocator operations against a live instance,
 * with an exact model of what is live.
 *
 * Invariants checked after every operation:
 *   - no crash, whatever handle or pointer is passed in (forged, stale, double, foreign, wild);
 *   - no false accept: a free returns true exactly when the handle or pointer names an object that
 *     the model holds live, and then it frees that object; tslab_handle_ptr / tslab_ptr_handle /
 *     tslab_usable_size answer only for live objects;
 *   - live contents intact: every live object is filled with its own byte, checked whenever it is
 *     touched and before it is freed;
 *   - at the end, the counters match the model exactly (allocations, frees, rejected frees).
 *
 * Two instances with small classes and a small ceiling (so ENOMEM paths run) live for the whole
 * run; every input starts and ends with nothing live in them.
 */
#include <tslab.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond, msg)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_alloc: %s:%d: %s (%s)\n", __FILE__, __LINE__, msg, #cond);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { LIVE_MAX = 96, DEAD_MAX = 64 };
static const uint32_t sizes[] = {8, 24, 64, 100, 256, 1000, 4096, 10000};
#define MAX_SIZE 10000u

typedef struct obj {
    unsigned char *p;
    tslab_handle h;
    size_t size; /* requested */
    unsigned char fill;
} obj;

typedef struct model {
    tslab *a, *b;
    obj live[LIVE_MAX];
    size_t n;
    tslab_handle dead_h[DEAD_MAX];
    void *dead_p[DEAD_MAX];
    size_t nd_h, nd_p;
    uint64_t allocs, frees, rejections_a, rejections_b;
    unsigned seq;
} model;

typedef struct input {
    const uint8_t *d;
    size_t n, i;
} input;

static uint8_t u8(input *in) { return in->i < in->n ? in->d[in->i++] : 0; }
static uint16_t u16(input *in) { return (uint16_t)(u8(in) | (unsigned)u8(in) << 8); }
static uint64_t u64(input *in)
{
    uint64_t v = 0;
    for (int k = 0; k < 8; k++)
        v |= (uint64_t)u8(in) << (8 * k);
    return v;
}

static tslab *cur; /* the instance of the running input */

/* The class size as the instance reports it (sizes are rounded up to multiples of 8). */
static size_t class_of(size_t s)
{
    for (size_t i = 0; i < tslab_class_count(cur); i++)
        if (tslab_class_size(cur, i) >= s)
            return tslab_class_size(cur, i);
    return 0;
}

static void verify(const obj *o)
{
    for (size_t i = 0; i < o->size; i++)
        CHECK(o->p[i] == o->fill, "live object contents changed");
}

/* Index of the live object starting at p, or -1. */
static long find_ptr(const model *m, const void *p)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->live[i].p == p)
            return (long)i;
    return -1;
}

static long find_handle(const model *m, tslab_handle h)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->live[i].h == h)
            return (long)i;
    return -1;
}

static void forget(model *m, size_t i, bool via_handle)
{
    if (via_handle && m->nd_h < DEAD_MAX)
        m->dead_h[m->nd_h++] = m->live[i].h;
    else if (via_handle)
        m->dead_h[m->seq % DEAD_MAX] = m->live[i].h;
    if (m->nd_p < DEAD_MAX)
        m->dead_p[m->nd_p++] = m->live[i].p;
    else
        m->dead_p[m->seq % DEAD_MAX] = m->live[i].p;
    m->live[i] = m->live[--m->n];
    m->frees++;
}

static void add(model *m, unsigned char *p, tslab_handle h, size_t size)
{
    CHECK((uintptr_t)p % (class_of(size) % 16 == 0 ? 16 : 8) == 0, "misaligned object");
    CHECK(h != TSLAB_HANDLE_NONE, "live object without a handle");
    CHECK(find_ptr(m, p) < 0, "the same address handed out twice");
    CHECK(tslab_usable_size(m->a, p) == class_of(size), "usable size is not the class size");
    obj o = {p, h, size, (unsigned char)(++m->seq * 37u + 1)};
    memset(p, o.fill, size);
    m->live[m->n++] = o;
    m->allocs++;
}

/* A handle free we cannot predict from the bits: true exactly when it names a live object. */
static void free_handle_any(model *m, tslab_handle h)
{
    long i = find_handle(m, h);
    void *hp = tslab_handle_ptr(m->a, h);
    if (i >= 0) {
        CHECK(hp == m->live[i].p, "tslab_handle_ptr of a live handle is not its object");
        verify(&m->live[i]);
        CHECK(tslab_free(m->a, h), "free of a live handle rejected");
        forget(m, (size_t)i, true);
    } else {
        CHECK(hp == NULL, "tslab_handle_ptr answered for a handle that is not live");
        CHECK(!tslab_free(m->a, h), "false accept: a handle that is not live was freed");
        m->rejections_a++;
    }
}

static void free_ptr_any(model *m, void *p)
{
    if (p == NULL) {
        CHECK(tslab_free_ptr(m->a, NULL), "free_ptr(NULL) must be a no-op returning true");
        return;
    }
    long i = find_ptr(m, p);
    if (i >= 0) {
        verify(&m->live[i]);
        CHECK(tslab_ptr_handle(m->a, p) == m->live[i].h, "tslab_ptr_handle disagrees");
        CHECK(tslab_free_ptr(m->a, p), "free of a live pointer rejected");
        forget(m, (size_t)i, false);
    } else {
        CHECK(tslab_usable_size(m->a, p) == 0, "usable size of a pointer that is not live");
        CHECK(tslab_ptr_handle(m->a, p) == TSLAB_HANDLE_NONE, "handle of a pointer not live");
        CHECK(!tslab_free_ptr(m->a, p), "false accept: a pointer that is not live was freed");
        m->rejections_a++;
    }
}

/* Mostly a size inside one class (classes equally likely); 1 in 16 any 16-bit size, which
 * includes 0 and sizes above the largest class. */
static size_t pick_size(input *in)
{
    uint8_t b = u8(in);
    if (b % 16 == 15)
        return u16(in);
    size_t n = sizeof sizes / sizeof sizes[0], c = b % n;
    size_t lo = c ? tslab_class_size(cur, c - 1) + 1 : 1, hi = tslab_class_size(cur, c);
    return lo + u16(in) % (hi - lo + 1);
}

static void alloc_op(model *m, input *in, int api)
{
    size_t s = pick_size(in);
    if (m->n == LIVE_MAX)
        return;
    tslab_handle h = 0;
    unsigned char *p;
    errno = 0;
    if (api == 0)
        p = tslab_alloc(m->a, s, &h);
    else if (api == 1)
        p = tslab_malloc(m->a, s);
    else {
        size_t k = u8(in) % 4 + 1;
        p = tslab_calloc(m->a, k, s / k);
        s = (s / k) * k;
        if (p)
            for (size_t i = 0; i < s; i++)
                CHECK(p[i] == 0, "calloc memory not zero");
    }
    if (s == 0 || s > MAX_SIZE) {
        CHECK(p == NULL && errno == EINVAL, "bad size not refused with EINVAL");
        return;
    }
    if (!p) {
        CHECK(errno == ENOMEM, "allocation failed without ENOMEM");
        return;
    }
    if (api != 0)
        h = tslab_ptr_handle(m->a, p);
    add(m, p, h, s);
}

/* Sums the counters of one instance. */
typedef struct totals {
    uint64_t allocs, frees, rejections, live;
} totals;

static totals read_totals(tslab *a)
{
    static tslab_stats st;
    totals t = {0};
    CHECK(tslab_stats_read(a, &st) == 0, "stats");
    const tslab_class_stats *u = &st.unattributed;
    t.rejections =
        u->rejected_invalid + u->rejected_stale + u->rejected_double + u->rejected_foreign;
    for (size_t c = 0; c < st.class_count; c++) {
        const tslab_class_stats *s = &st.classes[c];
        t.allocs += s->allocations;
        t.frees += s->frees;
        t.live += s->live_objects;
        t.rejections +=
            s->rejected_invalid + s->rejected_stale + s->rejected_double + s->rejected_foreign;
    }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The two instances live for the whole run (creating them per input would cost more than the
     * input itself); each input starts and ends with nothing live, and the counters are checked
     * as deltas. */
    static tslab *a, *b;
    static model m;
    if (!a) {
        tslab_config cfg = {.name = "fuzz",
                            .sizes = sizes,
                            .size_count = sizeof sizes / sizeof sizes[0],
                            .slab_bytes = 4096,
                            .cache_slabs = 2,
                            .class_max_bytes = 128u << 10};
        a = tslab_create(&cfg);
        cfg.name = "fuzz-other";
        b = tslab_create(&cfg);
        CHECK(a && b, "tslab_create");
        cur = a;
    }
    memset(&m, 0, sizeof m);
    m.a = a;
    m.b = b;
    totals before[2] = {read_totals(a), read_totals(b)};
    input in = {data, size, 0};
    int ops = 0;
    while (in.i < in.n && ops++ < 4096) {
        uint8_t op = u8(&in);
        switch (op % 16) {
        case 0:
        case 1:
        case 2: alloc_op(&m, &in, op % 16); break;
        case 3: /* free a live object through its handle */
        case 4: /* ... or its address */
            if (m.n) {
                size_t i = u8(&in) % m.n;
                if (op % 16 == 3)
                    free_handle_any(&m, m.live[i].h);
                else
                    free_ptr_any(&m, m.live[i].p);
            }
            break;
        case 5: /* stale or double handle: always rejected */
            if (m.nd_h) {
                tslab_handle h = m.dead_h[u8(&in) % m.nd_h];
                CHECK(find_handle(&m, h) < 0, "a dead handle names a live object");
                free_handle_any(&m, h);
            }
            break;
        case 6: /* stale pointer: rejected, unless the slot was handed out again */
            if (m.nd_p)
                free_ptr_any(&m, m.dead_p[u8(&in) % m.nd_p]);
            break;
        case 7: /* forged handle: any 64-bit value */ free_handle_any(&m, u64(&in)); break;
        case 8: /* forged handle: a live or dead handle with bits flipped */
        {
            tslab_handle h = m.n ? m.live[u8(&in) % m.n].h : (m.nd_h ? m.dead_h[0] : 1);
            h ^= (uint64_t)1 << (u8(&in) % 64);
            if (u8(&in) & 1)
                h ^= (uint64_t)1 << (u8(&in) % 64);
            free_handle_any(&m, h);
            break;
        }
        case 9: /* interior or neighbouring pointer */
            if (m.n) {
                obj *o = &m.live[u8(&in) % m.n];
                int16_t off = (int16_t)u16(&in);
                free_ptr_any(&m, o->p + off);
            }
            break;
        case 10: /* wild pointer */ free_ptr_any(&m, (void *)(uintptr_t)u64(&in)); break;
        case 11: /* realloc a live object */
            if (m.n) {
                size_t i = u8(&in) % m.n;
                obj o = m.live[i];
                size_t s = pick_size(&in);
                verify(&o);
                errno = 0;
                unsigned char *q = tslab_realloc(m.a, o.p, s);
                if (s == 0 || s > MAX_SIZE) {
                    CHECK(q == NULL && errno == EINVAL, "realloc to a bad size");
                    verify(&o);
                } else if (!q) {
                    CHECK(errno == ENOMEM, "realloc failed without ENOMEM");
                    verify(&o);
                } else {
                    size_t keep = o.size < s ? o.size : s;
                    for (size_t k = 0; k < keep; k++)
                        CHECK(q[k] == o.fill, "realloc lost contents");
                    if (q == o.p) { /* same class: same object, same handle */
                        CHECK(class_of(s) == class_of(o.size), "realloc kept a too small slot");
                        m.live[i].size = s;
                        memset(q, o.fill, s);
                    } else {
                        CHECK(!tslab_handle_ptr(m.a, o.h), "old handle still live after move");
                        m.live[i] = m.live[--m.n];
                        m.frees++; /* a move is a free of the old object... */
                        if (m.nd_p < DEAD_MAX)
                            m.dead_p[m.nd_p++] = o.p;
                        if (m.nd_h < DEAD_MAX)
                            m.dead_h[m.nd_h++] = o.h;
                        add(&m, q, tslab_ptr_handle(m.a, q), s); /* ...and a new one */
                    }
                }
            }
            break;
        case 12: /* the other instance: foreign handle and pointer */
            if (m.n) {
                obj *o = &m.live[u8(&in) % m.n];
                CHECK(!tslab_free(m.b, o->h), "false accept: foreign handle");
                CHECK(!tslab_free_ptr(m.b, o->p), "false accept: foreign pointer");
                CHECK(tslab_handle_ptr(m.b, o->h) == NULL, "foreign handle_ptr");
                m.rejections_b += 2;
                verify(o);
            }
            break;
        case 13: tslab_flush(m.a); break;
        case 14: CHECK(tslab_purge(m.a) == 0, "purge failed"); break;
        case 15: /* look-ups of a live object */
            if (m.n) {
                obj *o = &m.live[u8(&in) % m.n];
                CHECK(tslab_handle_ptr(m.a, o->h) == o->p, "handle_ptr");
                CHECK(tslab_ptr_handle(m.a, o->p) == o->h, "ptr_handle");
                verify(o);
            }
            break;
        }
    }
    while (m.n) {
        verify(&m.live[m.n - 1]);
        CHECK(tslab_free(m.a, m.live[m.n - 1].h), "final free");
        forget(&m, m.n - 1, true);
    }
    tslab_flush(m.a);
    totals after[2] = {read_totals(a), read_totals(b)};
    CHECK(after[0].allocs - before[0].allocs == m.allocs &&
              after[0].frees - before[0].frees == m.frees && after[0].live == 0,
          "allocation counters disagree with the model");
    CHECK(after[1].allocs == before[1].allocs && after[1].frees == before[1].frees,
          "the other instance counted allocations");
    CHECK(after[0].rejections - before[0].rejections == m.rejections_a &&
              after[1].rejections - before[1].rejections == m.rejections_b,
          "rejection counters disagree with the model");
    return 0;
}
