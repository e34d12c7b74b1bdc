/* SPDX-License-Identifier: MIT */
/* The test harness of the core (tests/) and telemetry (telemetry/tests/) tests.
 *
 *   CHECK(cond)             an assertion: on failure prints file, line and expression, counts
 *                           the failure and goes on, so one run reports every broken assertion
 *   CHECK_EQ_U(a, b)        CHECK(a == b) for unsigned values, printing both
 *   CHECK_EQ_I(a, b)        CHECK(a == b) for signed values, printing both
 *   CHECK_CONTAINS(s, sub)  the string s contains sub
 *   REQUIRE(cond)           a precondition: on failure prints and aborts the program at once,
 *   REQUIRE_EQ_U(a, b)      for a result the rest of the test depends on (a pointer it will
 *                           use, a thread it will join)
 *   test_count_failures(n)  for a check that prints its own message: counts n failures
 *
 * A failed CHECK always makes the program fail: TEST_MAIN's main (and test_result() for a
 * hand-written main) exits with status 1 when any CHECK failed, and test_run_child's child does
 * not report success when a CHECK failed in it. CHECK may be used from any thread: the count is
 * atomic. TEST_MAIN runs every listed test (or the one named in argv[1]) and prints
 * "N passed, N failed". Tests print their figures. */
#ifndef TSLAB_TESTHELPER_H
#define TSLAB_TESTHELPER_H

/* A function whose own name must appear in a captured stack: never inlined, never cloned (GCC's
 * noipa: no .constprop copy, which exports no name) and never left by a tail call. */
#if defined(__clang__)
#define TEST_NAMED_FRAME __attribute__((noinline, disable_tail_calls))
#else
#define TEST_NAMED_FRAME __attribute__((noinline, noipa))
#endif

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Failed CHECKs of this program (one test program is one translation unit). Relaxed: it is a
 * count, read after the threads that add to it are joined or the child is waited for. */
static _Atomic unsigned test_failures_;

/* Prints the first 50 failures (a CHECK in a loop of a million iterations must not flood the
 * log) and counts them all. */
static inline void test_fail_(const char *file, int line, const char *what, const char *detail)
{
    unsigned n = atomic_fetch_add_explicit(&test_failures_, 1, memory_order_relaxed);
    if (n >= 50)
        return;
    fflush(stdout);
    fprintf(stderr, "%s:%d: CHECK failed: %s%s\n", file, line, what, detail);
    if (n == 49)
        fprintf(stderr, "(further failed CHECKs are counted, not printed)\n");
    fflush(stderr);
}

/* For a check that prints its own message: counts n failures. */
static inline void test_count_failures(unsigned n)
{
    atomic_fetch_add_explicit(&test_failures_, n, memory_order_relaxed);
}

/* Failed CHECKs so far. */
static inline unsigned test_failures(void)
{
    return atomic_load_explicit(&test_failures_, memory_order_relaxed);
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            test_fail_(__FILE__, __LINE__, #cond, "");                                             \
    } while (0)

#define CHECK_EQ_U(a, b)                                                                           \
    do {                                                                                           \
        unsigned long long va_ = (unsigned long long)(a), vb_ = (unsigned long long)(b);           \
        if (va_ != vb_) {                                                                          \
            char d_[64];                                                                           \
            snprintf(d_, sizeof d_, " (%llu != %llu)", va_, vb_);                                  \
            test_fail_(__FILE__, __LINE__, #a " == " #b, d_);                                      \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_I(a, b)                                                                           \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (va_ != vb_) {                                                                          \
            char d_[64];                                                                           \
            snprintf(d_, sizeof d_, " (%lld != %lld)", va_, vb_);                                  \
            test_fail_(__FILE__, __LINE__, #a " == " #b, d_);                                      \
        }                                                                                          \
    } while (0)

#define CHECK_CONTAINS(s, sub)                                                                     \
    do {                                                                                           \
        if (strstr((s), (sub)) == NULL)                                                            \
            test_fail_(__FILE__, __LINE__, #s " lacks the text: ", (sub));                         \
    } while (0)

#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fflush(stdout);                                                                        \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond);             \
            fflush(stderr);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define REQUIRE_EQ_U(a, b)                                                                         \
    do {                                                                                           \
        unsigned long long va_ = (unsigned long long)(a), vb_ = (unsigned long long)(b);           \
        if (va_ != vb_) {                                                                          \
            fflush(stdout);                                                                        \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s == %s (%llu != %llu)\n", __FILE__,          \
                    __LINE__, #a, #b, va_, vb_);                                                   \
            fflush(stderr);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* For a hand-written main: 0 when no CHECK failed, else 1 (and says how many failed). */
static inline int test_result(const char *name)
{
    unsigned failed = test_failures();
    if (failed != 0) {
        fprintf(stderr, "%s: %u check(s) failed\n", name, failed);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case;

/* TSLAB_TEST_SCALE (percent, default 100) shrinks loop counts under slow tools (Valgrind). */
static inline unsigned long scaled(unsigned long n)
{
    const char *s = getenv("TSLAB_TEST_SCALE");
    unsigned long pct = s ? strtoul(s, NULL, 10) : 100;
    unsigned long r = n * (pct ? pct : 100) / 100;
    return r ? r : 1;
}

/* Deterministic xorshift so failures reproduce. */
static inline unsigned long long rng_next(unsigned long long *s)
{
    unsigned long long x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Runs the tests (or the one named in argv[1]); 1 when a CHECK failed or no test ran. */
static inline int run_tests(const test_case *t, size_t n, int argc, char **argv)
{
    size_t passed = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (argc > 1 && strcmp(argv[1], t[i].name) != 0)
            continue;
        printf("[ RUN  ] %s\n", t[i].name);
        fflush(stdout);
        unsigned before = test_failures();
        t[i].fn();
        unsigned now = test_failures();
        if (now == before) {
            printf("[  OK  ] %s\n", t[i].name);
            passed++;
        } else {
            printf("[ FAIL ] %s: %u check(s) failed\n", t[i].name, now - before);
            failed++;
        }
        fflush(stdout);
    }
    printf("%zu passed, %zu failed\n", passed, failed);
    if (passed + failed == 0)
        fprintf(stderr, "no test named %s\n", argc > 1 ? argv[1] : "(none listed)");
    return failed == 0 && passed > 0 ? 0 : 1;
}

#define TEST_MAIN(...)                                                                             \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        static const test_case tests_[] = {__VA_ARGS__};                                           \
        return run_tests(tests_, sizeof tests_ / sizeof tests_[0], argc, argv);                    \
    }
#define T(fn)                                                                                      \
    {                                                                                              \
#fn, fn                                                                                    \
    }

/* Runs fn in a forked child and returns its wait status. A child that returns from fn with no
 * failed CHECK says so through a pipe before it exits, and that counts as success (0) whatever
 * the exit status: under memcheck the status of a child forked from a threaded parent reports
 * the other threads' memory, which the child can never reach, as leaked. A child in which a
 * CHECK failed exits with 8; a child that dies or exits early (fn calls _exit with a code naming
 * the failed check) reports its real status. */
static inline int test_run_child(void (*fn)(void))
{
    int fd[2];
    REQUIRE(pipe(fd) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        alarm(20); /* a deadlock in the child fails instead of hanging */
        unsigned before = test_failures();
        fn();
        if (test_failures() != before)
            _exit(8);
        if (write(fd[1], "K", 1) != 1)
            _exit(7);
        _exit(0);
    }
    close(fd[1]);
    char ok = 0;
    ssize_t n = read(fd[0], &ok, 1);
    close(fd[0]);
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    return n == 1 && ok == 'K' ? 0 : status;
}

/* Builds whose allocator delays reuse of freed slots (ASan, or TSLAB_VALGRIND): tests that rely
 * on the thread cache's immediate LIFO reuse must force reuse instead. */
#if defined(__SANITIZE_ADDRESS__) || defined(TSLAB_VALGRIND)
#define TEST_QUARANTINE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_QUARANTINE 1
#endif
#endif
#ifndef TEST_QUARANTINE
#define TEST_QUARANTINE 0
#endif

/* Builds or runs where process RSS includes a tool's shadow memory (sanitizers, Valgrind), so
 * only the allocator's own gauges can be held to RSS bounds. */
#if TEST_QUARANTINE || defined(__SANITIZE_THREAD__)
#define TEST_SHADOW_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TEST_SHADOW_BUILD 1
#endif
#endif
#ifndef TEST_SHADOW_BUILD
#define TEST_SHADOW_BUILD 0
#endif
static inline int test_rss_meaningful(void)
{
    const char *pre = getenv("LD_PRELOAD");
    return !TEST_SHADOW_BUILD && !(pre && strstr(pre, "vgpreload"));
}

#ifdef TSLAB_H
/* Class ci's counters from a fresh tslab_stats_read (checked), by value. Not reentrant. */
static inline tslab_class_stats test_class_stats(tslab *a, uint32_t ci)
{
    static tslab_stats st;
    CHECK(tslab_stats_read(a, &st) == 0);
    CHECK(ci < st.class_count);
    return st.classes[ci < st.class_count ? ci : 0];
}

/* Live objects of every class of a, from tslab_stats_read (checked). */
static inline uint64_t test_live_objects(tslab *a)
{
    static tslab_stats st;
    CHECK(tslab_stats_read(a, &st) == 0);
    uint64_t live = 0;
    for (uint32_t i = 0; i < st.class_count; i++)
        live += st.classes[i].live_objects;
    return live;
}

/* Frees h[0..n) in order; returns how many of the frees returned true (racing-free tests run
 * it on several threads over the same handles). */
static inline unsigned long free_each(tslab *a, const tslab_handle *h, unsigned n)
{
    unsigned long won = 0;
    for (unsigned i = 0; i < n; i++)
        won += tslab_free(a, h[i]);
    return won;
}

/* Allocates objects of `size` until the slot at `want` is handed out again (at once without a
 * quarantine); frees the others. Returns the handle of the object at `want`. */
static inline tslab_handle alloc_until_reuse(tslab *a, size_t size, void *want)
{
    enum { MAX = 100000 };
    tslab_handle *extra = calloc(MAX, sizeof *extra);
    tslab_handle got = 0;
    size_t n = 0;
    REQUIRE(extra != NULL);
    tslab_flush(a); /* a quarantined slot goes back to its slab, where the next refill finds it */
    for (; n < MAX; n++) {
        void *p = tslab_alloc(a, size, &extra[n]);
        REQUIRE(p != NULL);
        if (p == want) {
            got = extra[n];
            break;
        }
    }
    REQUIRE(got != 0);
    for (size_t i = 0; i < n; i++)
        CHECK(tslab_free(a, extra[i]));
    free(extra);
    return got;
}
#endif

#endif
