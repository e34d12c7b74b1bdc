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
 * Epochs: the input opens up to EP_OPEN_MAX epochs at a time, allocates into them (handle and
 * pointer APIs), reallocs their objects, closes and destroys them, and passes stale, forged,
 * bit-flipped and other-instance ids (and NULL arguments) to every epoch call. The model knows
 * each live object's epoch and each epoch's state, and predicts every answer: success (or ENOMEM)
 * into an open epoch, ESHUTDOWN into a closed one, EINVAL for any id that names no epoch; a
 * destroy frees exactly that epoch's live objects (their handles and pointers join the dead
 * lists, so freeing them later is a counted rejection), a close leaves them live; and after a
 * tslab_flush the per-label figures of tslab_epoch_stats_get equal the model's.
 *
 * Two instances with small classes and a small ceiling (so ENOMEM paths run) live for the whole
 * run; every input starts and ends with nothing live in them and no epoch id of it still valid.
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

enum { LIVE_MAX = 96, DEAD_MAX = 64, EP_SLOTS = 8, EP_OPEN_MAX = 4 };
static const uint32_t sizes[] = {8, 24, 64, 100, 256, 1000, 4096, 10000};
#define MAX_SIZE 10000u

typedef struct obj {
    unsigned char *p;
    tslab_handle h;
    size_t size; /* requested */
    unsigned char fill;
    unsigned ep; /* its epoch: 0 the default one, else 1 + its slot in model.ep */
} obj;

/* An epoch of the running input, as the model sees it. */
typedef enum { EP_FREE, EP_OPEN, EP_CLOSED, EP_STALE } ep_state;
typedef struct epoch {
    tslab_epoch id;
    ep_state state;
    unsigned row; /* its label's row in the figures (rows[]) */
    /* Closed, emptied, and an open came since: the contract lets that open reuse the record, so
     * the id may be stale (the model cannot tell which record an open takes: ids are opaque). */
    bool maybe_stale;
} epoch;

/* The labels an input can open epochs with, and the row of the figures each one counts in: NULL
 * and "" are "default", "other" is the overflow row itself, and a long label is cut to
 * TSLAB_EPOCH_LABEL_MAX - 1 bytes. */
static const char *const label_arg[] = {"req", "batch", NULL,
                                        "",    "other", "a label longer than the 31 bytes kept"};
static const unsigned label_row[] = {0, 1, 2, 2, 3, 4};
static const char *const rows[] = {"req", "batch", "default", "other",
                                   "a label longer than the 31 byte"};
enum { ROWS = 5 };
/* The per-label counters the model predicts (deltas over the input). */
enum { F_OPENED, F_CLOSED, F_DESTROYED, F_ALLOCS, F_FREES, FIELDS };

typedef struct model {
    tslab *a, *b;
    obj live[LIVE_MAX];
    size_t n;
    tslab_handle dead_h[DEAD_MAX];
    void *dead_p[DEAD_MAX];
    size_t nd_h, nd_p;
    uint64_t allocs, frees, rejections_a, rejections_b;
    unsigned seq;
    epoch ep[EP_SLOTS];
    tslab_epoch dead_e[DEAD_MAX]; /* ids of destroyed epochs, and of ones seen stale */
    size_t nd_e;
    tslab_epoch eb;                                 /* an epoch of the other instance, or 0 */
    uint64_t fig[ROWS][FIELDS], fig0[ROWS][FIELDS]; /* the model's deltas; figures at the start */
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

/* The dead lists keep the newest DEAD_MAX entries: `*count` counts every entry ever added, and
 * once the list is full each new one replaces the oldest (a destroy adds many at once). */
static size_t ring_slot(size_t *count) { return (*count)++ % DEAD_MAX; }
static size_t ring_len(size_t count) { return count < DEAD_MAX ? count : DEAD_MAX; }

/* Live object i was freed (by a free, a realloc's move or its epoch's destroy): its pointer, and
 * its handle where the freeing call knew it, join the dead lists. */
static void forget(model *m, size_t i, bool via_handle)
{
    if (via_handle)
        m->dead_h[ring_slot(&m->nd_h)] = m->live[i].h;
    m->dead_p[ring_slot(&m->nd_p)] = m->live[i].p;
    if (m->live[i].ep)
        m->fig[m->ep[m->live[i].ep - 1].row][F_FREES]++;
    m->live[i] = m->live[--m->n];
    m->frees++;
}

static void add(model *m, unsigned char *p, tslab_handle h, size_t size, unsigned ep)
{
    CHECK((uintptr_t)p % (class_of(size) % 16 == 0 ? 16 : 8) == 0, "misaligned object");
    CHECK(h != TSLAB_HANDLE_NONE, "live object without a handle");
    CHECK(find_ptr(m, p) < 0, "the same address handed out twice");
    CHECK(tslab_usable_size(m->a, p) == class_of(size), "usable size is not the class size");
    CHECK(tslab_ptr_handle(m->a, p) == h, "the handle given out is not the object's");
    obj o = {p, h, size, (unsigned char)(++m->seq * 37u + 1), ep};
    memset(p, o.fill, size);
    m->live[m->n++] = o;
    m->allocs++;
    if (ep)
        m->fig[m->ep[ep - 1].row][F_ALLOCS]++;
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

/* An allocation of a good size that was allowed to succeed: NULL only with ENOMEM (the small
 * ceiling), else a new live object of epoch ep. api 0 gave out handle h; the others give none, so
 * the object's own is looked up. */
static void allocated(model *m, unsigned char *p, int api, tslab_handle h, size_t s, unsigned ep)
{
    if (!p) {
        CHECK(errno == ENOMEM, "allocation failed without ENOMEM");
        return;
    }
    add(m, p, api == 0 ? h : tslab_ptr_handle(m->a, p), s, ep);
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
    allocated(m, p, api, h, s, 0);
}

/* Reallocs live object i to size s. Same class: the same object. Else it moves, within its epoch
 * while that is open, else (the default epoch, or a closed epoch, which takes no new object) into
 * the default epoch; a failed move leaves it untouched. */
static void realloc_obj(model *m, size_t i, size_t s)
{
    obj o = m->live[i];
    verify(&o);
    errno = 0;
    unsigned char *q = tslab_realloc(m->a, o.p, s);
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
            m->live[i].size = s;
            memset(q, o.fill, s);
        } else {
            CHECK(!tslab_handle_ptr(m->a, o.h), "old handle still live after move");
            unsigned ep = o.ep && m->ep[o.ep - 1].state == EP_OPEN ? o.ep : 0;
            forget(m, i, true);                          /* a move is a free of the old object... */
            add(m, q, tslab_ptr_handle(m->a, q), s, ep); /* ...and a new one */
        }
    }
}

/* Every live object still answers through its handle (after a close or destroy: the epoch call
 * freed no object it should not have). */
static void check_all_live(const model *m)
{
    for (size_t i = 0; i < m->n; i++)
        CHECK(tslab_handle_ptr(m->a, m->live[i].h) == m->live[i].p,
              "an epoch call freed an object of another epoch");
}

/* The model's epoch named by id (any state but EP_FREE), or -1. */
static long ep_find(const model *m, tslab_epoch id)
{
    for (size_t k = 0; k < EP_SLOTS; k++)
        if (m->ep[k].state != EP_FREE && m->ep[k].id == id)
            return (long)k;
    return -1;
}

static size_t ep_live(const model *m, size_t k)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++)
        n += m->live[i].ep == k + 1;
    return n;
}

/* Epoch k's id is stale from now on (destroyed, or seen stale): no object of it is live. */
static void ep_stale(model *m, size_t k)
{
    CHECK(ep_live(m, k) == 0, "an epoch with live objects went stale");
    m->dead_e[ring_slot(&m->nd_e)] = m->ep[k].id;
    m->ep[k].state = EP_STALE;
}

/* Epoch k is closed and its id was refused: only allowed when the model cannot tell whether a
 * later open reused its record. */
static void ep_refused(model *m, size_t k)
{
    CHECK(m->ep[k].state == EP_CLOSED && m->ep[k].maybe_stale,
          "a closed epoch's id was refused while its record could not have been reused");
    ep_stale(m, k);
}

/* The epoch named by id is usable for a call: k >= 0 and not stale. */
static bool ep_named(const model *m, long k) { return k >= 0 && m->ep[k].state != EP_STALE; }

/* Allocation of size s into the epoch named by id (any value) through api 0 (handle) or 1
 * (pointer): EINVAL for a bad size or an id that names no epoch (the size is checked first),
 * ESHUTDOWN into a closed epoch, success or ENOMEM into an open one. */
static void ep_alloc_any(model *m, tslab_epoch id, size_t s, int api)
{
    if (m->n == LIVE_MAX)
        return;
    long k = ep_find(m, id);
    tslab_handle h = 0;
    errno = 0;
    unsigned char *p =
        api == 0 ? tslab_alloc_epoch(m->a, id, s, &h) : tslab_malloc_epoch(m->a, id, s);
    if (s == 0 || s > MAX_SIZE || !ep_named(m, k)) {
        CHECK(p == NULL && errno == EINVAL, "bad size or id not refused with EINVAL");
        return;
    }
    if (m->ep[k].state == EP_CLOSED) {
        CHECK(p == NULL, "allocation into a closed epoch succeeded");
        if (errno == EINVAL)
            ep_refused(m, (size_t)k);
        else
            CHECK(errno == ESHUTDOWN, "allocation into a closed epoch failed without ESHUTDOWN");
        return;
    }
    allocated(m, p, api, h, s, (unsigned)k + 1);
}

/* Close (destroy false) or destroy: 0 for any epoch the id names, -EINVAL otherwise. A close is
 * idempotent and leaves the epoch's objects live; a destroy frees exactly its live objects (their
 * handles turn stale, their pointers double frees) and makes the id stale. */
static void ep_shut_any(model *m, tslab_epoch id, bool destroy)
{
    long k = ep_find(m, id);
    int rc = destroy ? tslab_epoch_destroy(m->a, id) : tslab_epoch_close(m->a, id);
    if (!ep_named(m, k)) {
        CHECK(rc == -EINVAL, "close or destroy of an id that names no epoch not refused");
        return;
    }
    epoch *e = &m->ep[k];
    if (rc == -EINVAL) {
        ep_refused(m, (size_t)k);
        return;
    }
    CHECK(rc == 0, "close or destroy failed");
    if (e->state == EP_OPEN) {
        e->state = EP_CLOSED;
        e->maybe_stale = false;
        m->fig[e->row][F_CLOSED]++; /* a destroy closes too, and counts as a close */
    }
    if (destroy) {
        m->fig[e->row][F_DESTROYED]++;
        for (size_t i = 0; i < m->n;) {
            const obj *o = &m->live[i];
            if (o->ep != (unsigned)k + 1) {
                i++;
                continue;
            }
            CHECK(tslab_handle_ptr(m->a, o->h) == NULL, "an object of a destroyed epoch is live");
            CHECK(tslab_usable_size(m->a, o->p) == 0, "usable size of a destroyed epoch's object");
            forget(m, i, true); /* the destroy freed it: counted in the frees */
        }
        ep_stale(m, (size_t)k);
    }
    check_all_live(m);
}

/* Opens an epoch with one of label_arg[] into a free slot, while fewer than EP_OPEN_MAX are open.
 * It never fails here (EAGAIN needs TSLAB_EPOCHS_MAX records held; an input holds at most a few
 * hundred, and each input ends with all of its records free after a flush): a failure means
 * records leak across inputs. */
static void ep_open_op(model *m, input *in)
{
    unsigned li = u8(in) % (sizeof label_arg / sizeof label_arg[0]);
    size_t open = 0, slot = EP_SLOTS;
    for (size_t k = 0; k < EP_SLOTS; k++) {
        open += m->ep[k].state == EP_OPEN;
        if (slot == EP_SLOTS && (m->ep[k].state == EP_FREE || m->ep[k].state == EP_STALE))
            slot = k;
    }
    if (open == EP_OPEN_MAX || slot == EP_SLOTS)
        return;
    errno = 0;
    tslab_epoch id = tslab_epoch_open(m->a, label_arg[li]);
    CHECK(id != 0, "tslab_epoch_open failed");
    CHECK(ep_find(m, id) < 0, "an open gave an id the input already had");
    for (size_t d = 0; d < ring_len(m->nd_e); d++)
        CHECK(m->dead_e[d] != id, "an open gave a stale id again");
    /* This open may have taken the record of any closed epoch that holds no live object. */
    for (size_t k = 0; k < EP_SLOTS; k++)
        if (m->ep[k].state == EP_CLOSED && ep_live(m, k) == 0)
            m->ep[k].maybe_stale = true;
    m->ep[slot] = (epoch){id, EP_OPEN, label_row[li], false};
    m->fig[label_row[li]][F_OPENED]++;
}

/* A slot of the model's epochs that is not EP_FREE (stale ones included), or -1. */
static long pick_ep(const model *m, input *in)
{
    size_t used[EP_SLOTS] = {0}, n = 0;
    for (size_t k = 0; k < EP_SLOTS; k++)
        if (m->ep[k].state != EP_FREE)
            used[n++] = k;
    return n ? (long)used[u8(in) % n] : -1;
}

/* An id the input holds (open, closed or stale), or 1 when it holds none. */
static tslab_epoch some_id(const model *m, input *in)
{
    long k = pick_ep(m, in);
    return k >= 0 ? m->ep[k].id : 1;
}

/* A bad epoch id (stale, forged, bit-flipped or another instance's) or NULL arguments, passed to
 * every epoch call. Forged and flipped ids go through the same predictions as real ones: they
 * must fail unless they happen to equal an id the input holds. */
static void bad_id_op(model *m, input *in)
{
    uint8_t kind = u8(in) % 5;
    tslab_epoch id;
    if (kind == 0) { /* stale: destroyed, or seen stale */
        id = m->nd_e ? m->dead_e[u8(in) % ring_len(m->nd_e)] : 0;
    } else if (kind == 1) { /* forged: any 64-bit value, 0 included */
        id = u64(in);
    } else if (kind == 2) { /* flipped: one or two bits of an id the input holds */
        id = some_id(m, in) ^ (uint64_t)1 << (u8(in) % 64);
        if (u8(in) & 1)
            id ^= (uint64_t)1 << (u8(in) % 64);
    } else if (kind == 3) { /* the other instance's id here, and ids of this one there */
        if (!m->eb) {
            m->eb = tslab_epoch_open(m->b, "req");
            CHECK(m->eb != 0, "tslab_epoch_open (other instance)");
        }
        tslab_epoch mine = some_id(m, in);
        size_t s = pick_size(in);
        tslab_handle h = 0;
        errno = 0;
        CHECK(!tslab_alloc_epoch(m->b, mine, s, &h) && errno == EINVAL, "foreign epoch alloc");
        errno = 0;
        CHECK(!tslab_malloc_epoch(m->b, mine, s) && errno == EINVAL, "foreign epoch malloc");
        CHECK(tslab_epoch_close(m->b, mine) == -EINVAL, "foreign epoch close");
        CHECK(tslab_epoch_destroy(m->b, mine) == -EINVAL, "foreign epoch destroy");
        id = m->eb;
    } else { /* NULL arguments: refused with EINVAL whatever the id */
        tslab_epoch e = some_id(m, in);
        tslab_handle h;
        static tslab_epoch_stats es;
        errno = 0;
        CHECK(tslab_epoch_open(NULL, "req") == 0 && errno == EINVAL, "open(NULL)");
        errno = 0;
        CHECK(!tslab_alloc_epoch(NULL, e, 64, &h) && errno == EINVAL, "alloc_epoch(NULL)");
        errno = 0;
        CHECK(!tslab_alloc_epoch(m->a, e, 64, NULL) && errno == EINVAL, "alloc_epoch(out NULL)");
        errno = 0;
        CHECK(!tslab_malloc_epoch(NULL, e, 64) && errno == EINVAL, "malloc_epoch(NULL)");
        CHECK(tslab_epoch_close(NULL, e) == -EINVAL, "close(NULL)");
        CHECK(tslab_epoch_destroy(NULL, e) == -EINVAL, "destroy(NULL)");
        CHECK(tslab_epoch_stats_get(m->a, NULL, sizeof es) == -EINVAL, "epoch stats NULL");
        CHECK(tslab_epoch_stats_get(m->a, &es, 0) == -EINVAL, "epoch stats size 0");
        CHECK(tslab_epoch_stats_get(m->a, &es, (size_t)2 << 20) == -EINVAL, "epoch stats size");
        check_all_live(m);
        return;
    }
    size_t s = pick_size(in);
    ep_alloc_any(m, id, s, 0);
    ep_alloc_any(m, id, s, 1);
    ep_shut_any(m, id, false);
    ep_shut_any(m, id, true);
}

/* The figures of each of rows[] (zero for a row not used yet). */
static void read_figures(tslab *a, uint64_t fig[ROWS][FIELDS], uint64_t open[ROWS],
                         uint64_t closed_live[ROWS])
{
    static tslab_epoch_stats es;
    CHECK(tslab_epoch_stats_get(a, &es, sizeof es) == 0, "tslab_epoch_stats_get");
    CHECK(es.label_count <= TSLAB_EPOCH_LABELS_MAX + 1, "label count");
    for (size_t r = 0; r < ROWS; r++) {
        memset(fig[r], 0, sizeof fig[r]);
        open[r] = closed_live[r] = 0;
        for (size_t i = 0; i < es.label_count; i++) {
            const tslab_epoch_label_stats *l = &es.labels[i];
            CHECK(l->label[TSLAB_EPOCH_LABEL_MAX - 1] == '\0', "label not terminated");
            if (strcmp(l->label, rows[r]) != 0)
                continue;
            uint64_t v[FIELDS] = {l->opened, l->closed, l->destroyed, l->allocations, l->frees};
            memcpy(fig[r], v, sizeof v);
            open[r] = l->open_epochs;
            closed_live[r] = l->closed_live_objects;
        }
    }
}

/* After a tslab_flush the figures are exact: every counter moved by the model's count since the
 * input began, open epochs and live objects of closed epochs as the model holds them now (each
 * input ends with none, so these gauges start from zero). */
static void check_figures(model *m)
{
    uint64_t fig[ROWS][FIELDS], open[ROWS], closed_live[ROWS];
    tslab_flush(m->a);
    read_figures(m->a, fig, open, closed_live);
    for (size_t r = 0; r < ROWS; r++) {
        uint64_t want_open = 0, want_live = 0;
        for (size_t k = 0; k < EP_SLOTS; k++)
            want_open += m->ep[k].state == EP_OPEN && m->ep[k].row == r;
        for (size_t i = 0; i < m->n; i++) {
            const epoch *e = m->live[i].ep ? &m->ep[m->live[i].ep - 1] : NULL;
            want_live += e && e->state == EP_CLOSED && e->row == r;
        }
        for (size_t f = 0; f < FIELDS; f++)
            CHECK(fig[r][f] - m->fig0[r][f] == m->fig[r][f], "epoch figures disagree");
        CHECK(open[r] == want_open, "open epochs disagree with the model");
        CHECK(closed_live[r] == want_live, "live objects of closed epochs disagree");
    }
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

/* Opcodes 16.. (0..15 are the plain operations; op % OPS picks one). */
enum {
    OP_EP_ALLOC = 16,
    OP_EP_MALLOC,
    OP_EP_OPEN,
    OP_EP_CLOSE,
    OP_EP_DESTROY,
    OP_EP_BAD,
    OP_EP_FIGURES,
    OP_EP_REALLOC,
    OPS
};

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
    {
        uint64_t open[ROWS], closed_live[ROWS];
        read_figures(a, m.fig0, open, closed_live);
    }
    input in = {data, size, 0};
    int ops = 0;
    while (in.i < in.n && ops++ < 4096) {
        uint8_t op = u8(&in);
        switch (op % OPS) {
        case 0:
        case 1:
        case 2: alloc_op(&m, &in, op % OPS); break;
        case 3: /* free a live object through its handle */
        case 4: /* ... or its address */
            if (m.n) {
                size_t i = u8(&in) % m.n;
                if (op % OPS == 3)
                    free_handle_any(&m, m.live[i].h);
                else
                    free_ptr_any(&m, m.live[i].p);
            }
            break;
        case 5: /* stale or double handle (a destroyed epoch's too): always rejected */
            if (m.nd_h) {
                tslab_handle h = m.dead_h[u8(&in) % ring_len(m.nd_h)];
                CHECK(find_handle(&m, h) < 0, "a dead handle names a live object");
                free_handle_any(&m, h);
            }
            break;
        case 6: /* stale pointer: rejected, unless the slot was handed out again */
            if (m.nd_p)
                free_ptr_any(&m, m.dead_p[u8(&in) % ring_len(m.nd_p)]);
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
        case 11: /* realloc a live object (of any epoch) */
            if (m.n) {
                size_t i = u8(&in) % m.n;
                realloc_obj(&m, i, pick_size(&in));
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
        case OP_EP_ALLOC: /* into one of the input's epochs (stale ones too) */
        case OP_EP_MALLOC: {
            long k = pick_ep(&m, &in);
            size_t s = pick_size(&in);
            if (k >= 0)
                ep_alloc_any(&m, m.ep[k].id, s, op % OPS - OP_EP_ALLOC);
            break;
        }
        case OP_EP_OPEN: ep_open_op(&m, &in); break;
        case OP_EP_CLOSE:
        case OP_EP_DESTROY: {
            long k = pick_ep(&m, &in);
            if (k >= 0)
                ep_shut_any(&m, m.ep[k].id, op % OPS == OP_EP_DESTROY);
            break;
        }
        case OP_EP_BAD: bad_id_op(&m, &in); break;
        case OP_EP_FIGURES: check_figures(&m); break;
        case OP_EP_REALLOC: /* realloc an object of an epoch */
        {
            size_t idx[LIVE_MAX], n = 0;
            for (size_t i = 0; i < m.n; i++)
                if (m.live[i].ep)
                    idx[n++] = i;
            size_t pick = u8(&in), s = pick_size(&in);
            if (n)
                realloc_obj(&m, idx[pick % n], s);
            break;
        }
        }
    }
    /* The end: each open epoch is closed or destroyed (both ways of ending one run), every live
     * object freed, and then every closed epoch destroyed, so that no id of this input is still
     * valid when the next begins (its forged ids can then name only its own epochs). */
    for (size_t k = 0; k < EP_SLOTS; k++)
        if (m.ep[k].state == EP_OPEN)
            ep_shut_any(&m, m.ep[k].id, (k + m.seq) % 2);
    while (m.n) {
        verify(&m.live[m.n - 1]);
        CHECK(tslab_free(m.a, m.live[m.n - 1].h), "final free");
        forget(&m, m.n - 1, true);
    }
    tslab_flush(m.a);
    for (size_t k = 0; k < EP_SLOTS; k++)
        if (m.ep[k].state == EP_CLOSED)
            ep_shut_any(&m, m.ep[k].id, true);
    if (m.eb)
        CHECK(tslab_epoch_destroy(m.b, m.eb) == 0, "destroy (other instance)");
    check_figures(&m);
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
