/* Rejected frees are recorded with reason, class, handle or pointer, time and call stack in a
 * ring of the last TSLAB_REJECTIONS_MAX, and reported to on_reject. Linked with -rdynamic so
 * that dladdr names this file's functions in the recorded stacks. */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>

#include "testhelper.h"
#include "tslab.h"

static uint64_t fake_now = 5000;
static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

static const char *frame_name(uintptr_t ret)
{
    Dl_info di;
    if (dladdr((void *)(ret - 1), &di) == 0 || di.dli_sname == NULL)
        return "?";
    return di.dli_sname;
}

bool reject_site_handle(tslab *a, tslab_handle h);
bool reject_site_pointer(tslab *a, void *p);
TEST_NAMED_FRAME bool reject_site_handle(tslab *a, tslab_handle h)
{
    bool r = tslab_free(a, h);
    __asm__ volatile("" ::: "memory"); /* no tail call: this frame stays on the stack */
    return r;
}
TEST_NAMED_FRAME bool reject_site_pointer(tslab *a, void *p)
{
    bool r = tslab_free_ptr(a, p);
    __asm__ volatile("" ::: "memory");
    return r;
}

static void records_what_and_where(void)
{
    tslab_os os = *tslab_os_default(); /* the real OS calls, our clock */
    os.now_ns = fake_clock;
    tslab_config c = {.os = &os, .sample_bytes = TSLAB_SAMPLE_OFF};
    tslab *a = tslab_create(&c);
    CHECK(a != NULL);
    tslab_rejection r[TSLAB_REJECTIONS_MAX];
    CHECK_EQ_U(tslab_rejections_read(a, r, TSLAB_REJECTIONS_MAX), 0);
    tslab_handle h;
    char *p = tslab_alloc(a, 100, &h); /* class 2 (128 B) */
    CHECK(p != NULL);
    CHECK(reject_site_handle(a, h)); /* accepted: not recorded */
    fake_now = 7000;
    CHECK(!reject_site_handle(a, h)); /* double */
    fake_now = 8000;
    CHECK(!reject_site_pointer(a, p + 8)); /* interior */
    CHECK(!reject_site_handle(a, 12345));  /* garbage */
    size_t n = tslab_rejections_read(a, r, TSLAB_REJECTIONS_MAX);
    CHECK_EQ_U(n, 3);
    CHECK_EQ_U(r[0].seq, 1);
    CHECK_EQ_U(r[0].time_ns, 7000);
    CHECK_EQ_U(r[0].reason, TSLAB_REJECT_DOUBLE);
    CHECK_EQ_U(r[0].class_index, 2);
    CHECK(!r[0].by_pointer && r[0].value == h);
    CHECK(r[0].depth >= 2);
    printf("rejection 1 at %s\n", frame_name(r[0].frames[0]));
    CHECK(strcmp(frame_name(r[0].frames[0]), "reject_site_handle") == 0);
    CHECK_EQ_U(r[1].seq, 2);
    CHECK_EQ_U(r[1].time_ns, 8000);
    CHECK_EQ_U(r[1].reason, TSLAB_REJECT_INVALID);
    CHECK(r[1].by_pointer && r[1].value == (uintptr_t)(p + 8));
    CHECK_EQ_U(r[1].class_index, 2);
    CHECK(strcmp(frame_name(r[1].frames[0]), "reject_site_pointer") == 0);
    CHECK_EQ_U(r[2].class_index, tslab_class_count(a)); /* no class could be named */
    CHECK(!r[2].by_pointer && r[2].value == 12345);
    /* Fewer slots than records: the newest. */
    CHECK_EQ_U(tslab_rejections_read(a, r, 1), 1);
    CHECK_EQ_U(r[0].seq, 3);
    CHECK_EQ_U(tslab_rejections_read(NULL, r, 1), 0);
    CHECK_EQ_U(tslab_rejections_read(a, NULL, 1), 0);
    tslab_destroy(a);
}

/* Four threads reject at once: the ring ends up with the last 64, numbered without gaps, every
 * one a free that some thread made, and the counters agree. */
enum { THREADS = 4 };
static tslab *race_a;
static uint64_t race_handles[THREADS];

static void *racer(void *arg)
{
    uintptr_t t = (uintptr_t)arg;
    tslab_handle h;
    CHECK(tslab_alloc(race_a, 64, &h) != NULL);
    CHECK(tslab_free(race_a, h));
    race_handles[t] = h;
    unsigned long n = scaled(5000);
    for (unsigned long i = 0; i < n; i++)
        CHECK(!tslab_free(race_a, h));
    return NULL;
}

static void racing_threads(void)
{
    tslab_config c = {.sample_bytes = TSLAB_SAMPLE_OFF};
    race_a = tslab_create(&c);
    CHECK(race_a != NULL);
    pthread_t th[THREADS];
    for (uintptr_t t = 0; t < THREADS; t++)
        CHECK(pthread_create(&th[t], NULL, racer, (void *)t) == 0);
    for (int t = 0; t < THREADS; t++)
        CHECK(pthread_join(th[t], NULL) == 0);
    uint64_t total = THREADS * scaled(5000);
    static tslab_rejection r[TSLAB_REJECTIONS_MAX + 8];
    size_t n = tslab_rejections_read(race_a, r, TSLAB_REJECTIONS_MAX + 8);
    CHECK_EQ_U(n, TSLAB_REJECTIONS_MAX);
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ_U(r[i].seq, total - TSLAB_REJECTIONS_MAX + 1 + i);
        CHECK_EQ_U(r[i].reason, TSLAB_REJECT_DOUBLE);
        bool known = false;
        for (int t = 0; t < THREADS; t++)
            known = known || r[i].value == race_handles[t];
        CHECK(known && !r[i].by_pointer && r[i].class_index == 0);
    }
    tslab_stats st;
    CHECK(tslab_stats_read(race_a, &st) == 0);
    CHECK_EQ_U(st.classes[0].rejected_double + st.classes[0].rejected_stale, total);
    tslab_destroy(race_a);
}

/* on_reject sees every rejection, after it is recorded, with its reason. */
typedef struct seen {
    int calls;
    int last_reason;
    uint64_t last_seq;
    tslab *a;
} seen;

static void count_reject(void *ctx, int reason, const tslab_rejection *r)
{
    seen *s = ctx;
    s->calls++;
    s->last_reason = reason;
    s->last_seq = r->seq;
    CHECK(r->reason == reason);
    tslab_rejection copy;
    CHECK_EQ_U(tslab_rejections_read(s->a, &copy, 1), 1); /* no lock held: may read */
    CHECK_EQ_U(copy.seq, r->seq);
}

static void abort_on_reject(void *ctx, int reason, const tslab_rejection *r)
{
    (void)ctx;
    (void)reason;
    (void)r;
    abort();
}

static void double_free_in_child(void)
{
    tslab_config c = {.on_reject = abort_on_reject, .sample_bytes = TSLAB_SAMPLE_OFF};
    tslab *a = tslab_create(&c);
    CHECK(a != NULL);
    void *p = tslab_malloc(a, 8);
    CHECK(tslab_free_ptr(a, p));
    tslab_free_ptr(a, p); /* aborts in the callback */
    _exit(3);
}

static void callback(void)
{
    seen s = {0, -1, 0, NULL};
    tslab_config c = {.on_reject = count_reject, .on_reject_ctx = &s};
    tslab *a = tslab_create(&c);
    CHECK(a != NULL);
    s.a = a;
    void *p = tslab_malloc(a, 8);
    CHECK(tslab_free_ptr(a, p));
    CHECK_EQ_U(s.calls, 0);
    CHECK(!tslab_free_ptr(a, p));
    CHECK_EQ_U(s.calls, 1);
    CHECK_EQ_U(s.last_reason, TSLAB_REJECT_DOUBLE);
    CHECK_EQ_U(s.last_seq, 1);
    CHECK(!tslab_free(a, 99));
    CHECK_EQ_U(s.calls, 2);
    CHECK_EQ_U(s.last_reason, TSLAB_REJECT_INVALID);
    tslab_destroy(a);
    /* A service (or a test) can abort on a bad free. */
    int st = test_run_child(double_free_in_child);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}

TEST_MAIN(T(records_what_and_where), T(racing_threads), T(callback))
