/* SPDX-License-Identifier: MIT */
/* tslab-epoch-pair: the instruction cost of allocating into an explicit epoch against the default
 * epoch, for callgrind. `tslab-epoch-pair MODE [N]` makes N (default 1,000,000) alloc+free pairs
 * of 128 B in one function per mode, so that `callgrind_annotate --inclusive=yes` shows per-call
 * totals of tslab_alloc, tslab_alloc_epoch, tslab_malloc and tslab_malloc_epoch (divide by N).
 * Modes: plain (tslab_alloc + tslab_free), epoch (tslab_alloc_epoch + tslab_free), mplain
 * (tslab_malloc + tslab_free_ptr), mepoch (tslab_malloc_epoch + tslab_free_ptr). Sampling is off,
 * as in the instruction counts of tslab-bench's "off" columns. bench/README.md has the figures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tslab.h>

static tslab *a;
static tslab_epoch e;

/* Keeps the compiler from dropping or merging the allocation. */
#define USE(p) __asm__ volatile("" ::"r"(p) : "memory")

static __attribute__((noinline)) int pair_plain(long n)
{
    for (long i = 0; i < n; i++) {
        tslab_handle h;
        void *p = tslab_alloc(a, 128, &h);
        USE(p);
        if (!tslab_free(a, h))
            return 1;
    }
    return 0;
}

static __attribute__((noinline)) int pair_epoch(long n)
{
    for (long i = 0; i < n; i++) {
        tslab_handle h;
        void *p = tslab_alloc_epoch(a, e, 128, &h);
        USE(p);
        if (!tslab_free(a, h))
            return 1;
    }
    return 0;
}

static __attribute__((noinline)) int pair_mplain(long n)
{
    for (long i = 0; i < n; i++) {
        void *p = tslab_malloc(a, 128);
        USE(p);
        if (!tslab_free_ptr(a, p))
            return 1;
    }
    return 0;
}

static __attribute__((noinline)) int pair_mepoch(long n)
{
    for (long i = 0; i < n; i++) {
        void *p = tslab_malloc_epoch(a, e, 128);
        USE(p);
        if (!tslab_free_ptr(a, p))
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s plain|epoch|mplain|mepoch [N]\n", argv[0]);
        return 2;
    }
    long n = argc > 2 ? strtol(argv[2], NULL, 10) : 1000000;
    tslab_config cfg = {.name = "epoch-pair", .sample_bytes = TSLAB_SAMPLE_OFF};
    a = tslab_create(&cfg);
    e = a ? tslab_epoch_open(a, "pair") : 0;
    if (e == 0) {
        perror("tslab-epoch-pair");
        return 1;
    }
    int r = !strcmp(argv[1], "plain")    ? pair_plain(n)
            : !strcmp(argv[1], "epoch")  ? pair_epoch(n)
            : !strcmp(argv[1], "mplain") ? pair_mplain(n)
            : !strcmp(argv[1], "mepoch") ? pair_mepoch(n)
                                         : 2;
    tslab_destroy(a);
    return r;
}
