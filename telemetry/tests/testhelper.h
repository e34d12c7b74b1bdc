/* A tiny harness for the telemetry tests: CHECK records a failure and goes on, so one run
 * reports every broken assertion; main returns test_result(). */
#ifndef TSLAB_TELEMETRY_TESTHELPER_H
#define TSLAB_TELEMETRY_TESTHELPER_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            test_failures++;                                                                       \
        }                                                                                          \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) {                                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld != %lld)\n", __FILE__, __LINE__,  \
                    #a, #b, a_, b_);                                                               \
            test_failures++;                                                                       \
        }                                                                                          \
    } while (0)

/* Aborts the test: for preconditions whose failure makes the rest meaningless. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond);             \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define CHECK_CONTAINS(hay, needle)                                                                \
    do {                                                                                           \
        if (strstr((hay), (needle)) == NULL) {                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: output lacks \"%s\"\n", __FILE__, __LINE__,      \
                    (needle));                                                                     \
            test_failures++;                                                                       \
        }                                                                                          \
    } while (0)

static inline int test_result(const char *name)
{
    if (test_failures != 0) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, test_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

#endif
