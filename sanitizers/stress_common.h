/* SPDX-License-Identifier: MIT */
/* Small helpers shared by the sanitizer programs (header-only, no link dependency). */
#ifndef TSLAB_SAN_COMMON_H
#define TSLAB_SAN_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Exit code ctest treats as "skipped" (SKIP_RETURN_CODE in sanitizers/CMakeLists.txt). */
#define SAN_SKIP 77

#if defined(__SANITIZE_ADDRESS__)
#define SAN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SAN_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define SAN_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SAN_TSAN 1
#endif
#endif
#ifndef SAN_ASAN
#define SAN_ASAN 0
#endif
#ifndef SAN_TSAN
#define SAN_TSAN 0
#endif

static inline uint64_t san_rng_next(uint64_t *s) /* xorshift64* */
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static inline uint64_t san_rng_seed(uint64_t seed)
{
    /* splitmix64 so that small seeds still give well-mixed, non-zero states */
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return z ? z : 1;
}

static inline double san_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define SAN_CHECK(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
