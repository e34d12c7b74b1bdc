/* SPDX-License-Identifier: MIT */
/* The statistics ABI: a caller's struct is written exactly, never a byte past it, whichever
 * version of the header it was built against.
 *  - a program built against 1.0 (tests/stats_1_0.c) calls the exported tslab_stats_read: 1.0's
 *    layout, version 1, and the canary bytes after its struct untouched;
 *  - tslab_stats_get with 1.0's sizes from a current program: the same;
 *  - a caller newer than the library (larger structs): its unknown fields zeroed, the rest
 *    exact, nothing past its struct;
 *  - sizes no version ever had: -EINVAL and nothing written;
 *  - 1.0's fields keep their offsets in the current structs. */
#include "testhelper.h"

#include <errno.h>
#include <stddef.h>
#include <tslab.h>

#include "stats_1_0.h"

#define CANARY 0xA5
#define CANARY_BYTES 256

static void canary_fill(void *p, size_t n) { memset(p, CANARY, n); }

static size_t canary_intact(const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t ok = 0;
    while (ok < n && b[ok] == CANARY)
        ok++;
    return ok;
}

static const uint32_t sizes[] = {64, 96, 128, 192, 256, 384, 512, 768}; /* the defaults */
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* An instance with a known history: class 128 holds 600 of 1000, class 64 holds 10, one double
 * and one invalid free rejected. */
static tslab *make_instance(void)
{
    tslab *a = tslab_create(&(tslab_config){.name = "abi"});
    REQUIRE(a != NULL);
    static tslab_handle h[1000];
    for (int i = 0; i < 1000; i++)
        CHECK(tslab_alloc(a, 128, &h[i]) != NULL);
    for (int i = 0; i < 400; i++)
        CHECK(tslab_free(a, h[i]));
    CHECK(!tslab_free(a, h[0]));
    CHECK(!tslab_free(a, (tslab_handle)0x1234));
    for (int i = 0; i < 10; i++)
        CHECK(tslab_malloc(a, 64) != NULL);
    return a;
}

/* Every 1.0 field of `old` equals the same field of the current snapshot `cur`. */
static void check_same_as_current(const stats_1_0 *old, const tslab_stats *cur)
{
    CHECK_EQ_U(old->class_count, cur->class_count);
    CHECK(memcmp(old->name, cur->name, sizeof old->name) == 0);
    CHECK_EQ_U(old->reserved_bytes, cur->reserved_bytes);
    for (int i = 0; i <= STATS_1_0_CLASSES; i++) {
        const stats_1_0_class *o = i < STATS_1_0_CLASSES ? &old->classes[i] : &old->unattributed;
        const tslab_class_stats *c = i < STATS_1_0_CLASSES ? &cur->classes[i] : &cur->unattributed;
#define SAME(f) CHECK_EQ_U(o->f, c->f);
        STATS_1_0_CLASS_FIELDS(SAME)
#undef SAME
    }
}

static void check_history(const stats_1_0 *s)
{
    CHECK_EQ_U(s->class_count, NSIZES);
    CHECK(strcmp(s->name, "abi") == 0);
    for (size_t i = 0; i < NSIZES; i++) /* a wrong stride shows here first */
        CHECK_EQ_U(s->classes[i].object_size, sizes[i]);
    CHECK_EQ_U(s->classes[2].allocations, 1000);
    CHECK_EQ_U(s->classes[2].frees, 400);
    CHECK_EQ_U(s->classes[2].live_objects, 600);
    CHECK_EQ_U(s->classes[2].rejected_double, 1);
    CHECK_EQ_U(s->classes[0].live_objects, 10);
    CHECK(s->classes[2].mapped_bytes > 0); /* 1.0's last field */
    for (int i = NSIZES; i < STATS_1_0_CLASSES; i++)
        CHECK_EQ_U(s->classes[i].object_size, 0);
    uint64_t invalid = s->unattributed.rejected_invalid;
    for (size_t i = 0; i < NSIZES; i++)
        invalid += s->classes[i].rejected_invalid;
    CHECK_EQ_U(invalid, 1);
}

/* A caller's struct with canary bytes right after it. */
typedef struct guarded_1_0 {
    stats_1_0 st;
    unsigned char after[CANARY_BYTES];
} guarded_1_0;

static void binary_built_against_1_0(void)
{
    tslab *a = make_instance();
    guarded_1_0 buf;
    canary_fill(&buf, sizeof buf);
    CHECK_EQ_U(stats_1_0_read(a, &buf.st), 0);
    CHECK_EQ_U(canary_intact(buf.after, sizeof buf.after), sizeof buf.after);
    CHECK_EQ_U(buf.st.version, 1);
    check_history(&buf.st);
    tslab_stats cur;
    CHECK_EQ_U(tslab_stats_read(a, &cur), 0);
    check_same_as_current(&buf.st, &cur);
    printf("1.0 caller: %zu bytes written, %d canary bytes after them intact\n", sizeof buf.st,
           CANARY_BYTES);
    CHECK_EQ_U(stats_1_0_read(NULL, &buf.st), (unsigned long long)-EINVAL);
    tslab_destroy(a);
}

/* tslab_stats_get into a caller's struct of `size` bytes, its classes `class_size` apart, that
 * is followed by CANARY_BYTES of canary: they must survive. */
static void get_guarded(tslab *a, void *st, size_t size, size_t class_size)
{
    canary_fill(st, size + CANARY_BYTES);
    CHECK_EQ_U(tslab_stats_get(a, st, size, class_size), 0);
    CHECK_EQ_U(canary_intact((unsigned char *)st + size, CANARY_BYTES), CANARY_BYTES);
}

static void get_with_1_0_sizes(void)
{
    tslab *a = make_instance();
    guarded_1_0 buf;
    CHECK_EQ_U(offsetof(guarded_1_0, after), sizeof buf.st);
    get_guarded(a, &buf.st, sizeof buf.st, sizeof buf.st.classes[0]);
    CHECK_EQ_U(buf.st.version, TSLAB_STATS_VERSION);
    check_history(&buf.st);
    tslab_stats cur;
    CHECK_EQ_U(tslab_stats_read(a, &cur), 0);
    check_same_as_current(&buf.st, &cur);
    tslab_destroy(a);
}

/* A program built against a later header: three more counters per class, two more fields at
 * the end. */
typedef struct class_next {
    tslab_class_stats known;
    uint64_t appended[3];
} class_next;
typedef struct stats_next {
    uint32_t version;
    uint32_t class_count;
    char name[TSLAB_NAME_MAX];
    uint64_t reserved_bytes;
    class_next classes[TSLAB_CLASSES_MAX];
    class_next unattributed;
    uint64_t appended[2];
} stats_next;
typedef struct guarded_next {
    stats_next st;
    unsigned char after[CANARY_BYTES];
} guarded_next;

static void caller_newer_than_library(void)
{
    tslab *a = make_instance();
    static guarded_next buf;
    CHECK_EQ_U(offsetof(guarded_next, after), sizeof buf.st);
    get_guarded(a, &buf.st, sizeof buf.st, sizeof buf.st.classes[0]);
    tslab_stats cur;
    CHECK_EQ_U(tslab_stats_read(a, &cur), 0);
    CHECK_EQ_U(buf.st.version, TSLAB_STATS_VERSION);
    CHECK_EQ_U(buf.st.class_count, cur.class_count);
    CHECK_EQ_U(buf.st.reserved_bytes, cur.reserved_bytes);
    for (int i = 0; i <= TSLAB_CLASSES_MAX; i++) {
        const class_next *n = i < TSLAB_CLASSES_MAX ? &buf.st.classes[i] : &buf.st.unattributed;
        const tslab_class_stats *c = i < TSLAB_CLASSES_MAX ? &cur.classes[i] : &cur.unattributed;
        CHECK(memcmp(&n->known, c, sizeof *c) == 0);
        for (int k = 0; k < 3; k++)
            CHECK_EQ_U(n->appended[k], 0);
    }
    CHECK_EQ_U(buf.st.appended[0], 0);
    CHECK_EQ_U(buf.st.appended[1], 0);
    CHECK_EQ_U(buf.st.classes[2].known.live_objects, 600);
    tslab_destroy(a);
}

static void inline_read_is_get_with_header_sizes(void)
{
    tslab *a = make_instance();
    static tslab_stats x, y;
    memset(&x, 1, sizeof x);
    memset(&y, 2, sizeof y);
    CHECK_EQ_U(tslab_stats_read(a, &x), 0);
    CHECK_EQ_U(tslab_stats_get(a, &y, sizeof y, sizeof y.classes[0]), 0);
    CHECK(memcmp(&x, &y, sizeof x) == 0);
    CHECK_EQ_U(x.version, TSLAB_STATS_VERSION);
    CHECK_EQ_U(x.classes[2].live_objects, 600);
    CHECK_EQ_U(tslab_stats_read(NULL, &x), (unsigned long long)-EINVAL);
    CHECK_EQ_U(tslab_stats_read(a, NULL), (unsigned long long)-EINVAL);
    tslab_destroy(a);
}

static void sizes_no_version_had_are_rejected(void)
{
    tslab *a = make_instance();
    static unsigned char buf[sizeof(tslab_stats) + CANARY_BYTES];
    tslab_stats *out = (tslab_stats *)(void *)buf;
    const size_t c10 = sizeof(stats_1_0_class), s10 = sizeof(stats_1_0);
    const size_t cur = sizeof(tslab_class_stats);
    const struct {
        size_t stats, cls;
    } bad[] = {
        {s10, 0},
        {s10, 8},
        {s10, c10 - 8},        /* smaller than 1.0's class */
        {s10, c10 + 1},        /* not a whole number of 64-bit fields */
        {s10 - 1, c10},        /* one byte short of 1.0's struct */
        {sizeof buf, cur + 8}, /* 65 classes of that stride do not fit */
        {SIZE_MAX, SIZE_MAX / 8 * 8},
        {0, cur},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        canary_fill(buf, sizeof buf);
        CHECK_EQ_U(tslab_stats_get(a, out, bad[i].stats, bad[i].cls), (unsigned long long)-EINVAL);
        CHECK_EQ_U(canary_intact(buf, sizeof buf), sizeof buf);
    }
    canary_fill(buf, sizeof buf);
    CHECK_EQ_U(tslab_stats_get(NULL, out, sizeof *out, cur), (unsigned long long)-EINVAL);
    CHECK_EQ_U(tslab_stats_get(a, NULL, sizeof *out, cur), (unsigned long long)-EINVAL);
    CHECK_EQ_U(canary_intact(buf, sizeof buf), sizeof buf);
    tslab_destroy(a);
}

static void fields_of_1_0_keep_their_offsets(void)
{
    CHECK_EQ_U(offsetof(tslab_stats, version), offsetof(stats_1_0, version));
    CHECK_EQ_U(offsetof(tslab_stats, class_count), offsetof(stats_1_0, class_count));
    CHECK_EQ_U(offsetof(tslab_stats, name), offsetof(stats_1_0, name));
    CHECK_EQ_U(offsetof(tslab_stats, reserved_bytes), offsetof(stats_1_0, reserved_bytes));
    CHECK_EQ_U(offsetof(tslab_stats, classes), offsetof(stats_1_0, classes));
    CHECK_EQ_U(TSLAB_CLASSES_MAX, STATS_1_0_CLASSES);
    CHECK_EQ_U(TSLAB_NAME_MAX, STATS_1_0_NAME);
#define OFFSET(f) CHECK_EQ_U(offsetof(tslab_class_stats, f), offsetof(stats_1_0_class, f));
    STATS_1_0_CLASS_FIELDS(OFFSET)
#undef OFFSET
    CHECK(sizeof(tslab_class_stats) >= sizeof(stats_1_0_class));
    printf("tslab_class_stats: %zu bytes (1.0: %zu); tslab_stats: %zu bytes (1.0: %zu)\n",
           sizeof(tslab_class_stats), sizeof(stats_1_0_class), sizeof(tslab_stats),
           sizeof(stats_1_0));
}

TEST_MAIN(T(binary_built_against_1_0), T(get_with_1_0_sizes), T(caller_newer_than_library),
          T(inline_read_is_get_with_header_sizes), T(sizes_no_version_had_are_rejected),
          T(fields_of_1_0_keep_their_offsets))
