/* SPDX-License-Identifier: MIT */
/* TSC calibration against CLOCK_MONOTONIC_RAW. */
#define _GNU_SOURCE
#include "bench.h"

#include <time.h>

double bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_RAW, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

double bench_tsc_calibrate(int ms)
{
    /* Median of three windows, so that one window split by a preemption between a clock read
     * and its TSC read cannot skew the figure. */
    double g[3];
    for (int k = 0; k < 3; k++) {
        double n0 = bench_now_ns();
        uint64_t c0 = bench_tsc();
        double n1;
        do
            n1 = bench_now_ns();
        while (n1 - n0 < ms * 1e6 / 3);
        uint64_t c1 = bench_tsc();
        g[k] = (double)(c1 - c0) / (n1 - n0);
    }
    double lo = g[0] < g[1] ? g[0] : g[1], hi = g[0] < g[1] ? g[1] : g[0];
    return g[2] < lo ? lo : g[2] > hi ? hi : g[2];
}
