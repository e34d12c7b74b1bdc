/* A program whose heap profile go tool pprof reads back (pprof_check.sh). With a fixed seed it
 * keeps 1M objects live: pprof_alpha allocates three times the bytes of pprof_beta (same class),
 * and pprof_gamma allocates objects it frees again (alloc_space only). Writes the profile to
 * argv[1] with tslab_profile_write (sampling every argv[2] bytes, default 512 KiB) and prints the
 * true live bytes and each function's, so the checker can compare pprof's estimates with the truth.
 * Linked with -rdynamic: the allocating functions are named by dladdr. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tslab.h"
#include "tslab_telemetry.h"

#if defined(__clang__)
#define TEST_NAMED_FRAME __attribute__((noinline, disable_tail_calls))
#else
#define TEST_NAMED_FRAME __attribute__((noinline, noipa))
#endif

void *pprof_alpha(tslab *a, size_t size);
void *pprof_beta(tslab *a, size_t size);
void pprof_gamma(tslab *a, size_t size);

/* noipa (no clones such as pprof_alpha.constprop.0, which export no name) and no tail call, so
 * each keeps a frame of its own as the profile's leaf. */
TEST_NAMED_FRAME void *pprof_alpha(tslab *a, size_t size)
{
    void *p = tslab_malloc(a, size);
    __asm__ volatile("" ::: "memory");
    return p;
}

TEST_NAMED_FRAME void *pprof_beta(tslab *a, size_t size)
{
    void *p = tslab_malloc(a, size);
    __asm__ volatile("" ::: "memory");
    return p;
}

TEST_NAMED_FRAME void pprof_gamma(tslab *a, size_t size)
{
    void *p = tslab_malloc(a, size);
    __asm__ volatile("" ::: "memory");
    if (p == NULL || !tslab_free_ptr(a, p))
        abort();
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: %s PROFILE [SAMPLE_BYTES]\n", argv[0]);
        return 2;
    }
    /* Default interval (512 KiB) unless given. */
    tslab_config cfg = {.name = "pprof",
                        .sample_seed = 12345,
                        .sample_bytes = argc == 3 ? strtoull(argv[2], NULL, 10) : 0};
    tslab *a = tslab_create(&cfg);
    if (a == NULL)
        return 1;
    enum { LIVE = 1000000 };
    void **keep = malloc(LIVE * sizeof *keep);
    if (keep == NULL)
        return 1;
    unsigned long long alpha = 0, beta = 0;
    for (int i = 0; i < LIVE; i++) {
        /* 3 of every 4 objects are alpha's: three times the bytes, one class (128 B). */
        keep[i] = i % 4 ? pprof_alpha(a, 128) : pprof_beta(a, 128);
        if (keep[i] == NULL)
            return 1;
        *(i % 4 ? &alpha : &beta) += tslab_usable_size(a, keep[i]);
        pprof_gamma(a, 256);
    }
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return 1;
    tslab *const list[] = {a};
    uint64_t t0 = tslab_clock_ns(); /* printed, not asserted: speed is bench/'s business */
    int r = tslab_profile_write(list, 1, fd);
    uint64_t t1 = tslab_clock_ns();
    off_t bytes = lseek(fd, 0, SEEK_CUR);
    if (r != 0 || close(fd) != 0) {
        fprintf(stderr, "tslab_profile_write: %s\n", tslab_strerror(r));
        return 1;
    }
    if (tslab_profile_write(list, 1, -1) != -EINVAL)
        return 1;
    printf("live %llu alpha %llu beta %llu\n", alpha + beta, alpha, beta);
    fprintf(stderr, "profile: %lld bytes gzip-compressed, written in %.2f ms\n", (long long)bytes,
            (double)(t1 - t0) / 1e6);
    for (int i = 0; i < LIVE; i++)
        tslab_free_ptr(a, keep[i]);
    free(keep);
    tslab_destroy(a);
    return 0;
}
