/* A tiny test harness: CHECK aborts with the failing expression; TEST_MAIN runs every listed test
 * (or the one named in argv[1]) and prints "N passed, N failed". Tests print their figures. */
#ifndef TSLAB_TESTHELPER_H
#define TSLAB_TESTHELPER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                              \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fflush(stdout);                                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);             \
            fflush(stderr);                                                                      \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

#define CHECK_EQ_U(a, b)                                                                         \
    do {                                                                                         \
        unsigned long long va_ = (unsigned long long)(a), vb_ = (unsigned long long)(b);         \
        if (va_ != vb_) {                                                                        \
            fflush(stdout);                                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%llu != %llu)\n", __FILE__,         \
                    __LINE__, #a, #b, va_, vb_);                                                 \
            fflush(stderr);                                                                      \
            abort();                                                                             \
        }                                                                                        \
    } while (0)

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

static inline int run_tests(const test_case *t, size_t n, int argc, char **argv)
{
    size_t ran = 0;
    for (size_t i = 0; i < n; i++) {
        if (argc > 1 && strcmp(argv[1], t[i].name) != 0)
            continue;
        printf("[ RUN  ] %s\n", t[i].name);
        fflush(stdout);
        t[i].fn();
        printf("[  OK  ] %s\n", t[i].name);
        ran++;
    }
    printf("%zu passed, 0 failed\n", ran);
    return ran ? 0 : 1;
}

#define TEST_MAIN(...)                                                                           \
    int main(int argc, char **argv)                                                              \
    {                                                                                            \
        static const test_case tests_[] = {__VA_ARGS__};                                         \
        return run_tests(tests_, sizeof tests_ / sizeof tests_[0], argc, argv);                  \
    }
#define T(fn) {#fn, fn}

#endif
