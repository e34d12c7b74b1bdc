/* SPDX-License-Identifier: MIT */
/* tslab-bench: entry point. See bench.h for the shape and README.md for the workloads. */
#define _GNU_SOURCE
#include "bench.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int child_main(int argc, char **argv)
{
    bench_params p = {.backend = "glibc",
                      .kind = BENCH_KIND_SYS,
                      .workload = "tight",
                      .size = 128,
                      .n = 1000000,
                      .live = 100000,
                      .cycles = 1000,
                      .seed = 1,
                      .cpu = -1};
    static const char *const kinds[] = BENCH_KIND_NAMES;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (strcmp(a, "--child") == 0)
            continue;
        if (strcmp(a, "--callgrind") == 0) {
            p.callgrind = true;
            continue;
        }
        if (strcmp(a, "--scrape") == 0) {
            p.scrape = true;
            continue;
        }
        if (strcmp(a, "--exact-frees") == 0) {
            p.exact_frees = true;
            continue;
        }
        if (strcmp(a, "--background") == 0) {
            p.background = true;
            continue;
        }
        if (strcmp(a, "--groups") == 0) {
            p.groups = true;
            continue;
        }
        if (strcmp(a, "--sample-off") == 0) {
            p.sample_off = true;
            continue;
        }
        i++;
        if (strcmp(a, "--backend") == 0)
            p.backend = v;
        else if (strcmp(a, "--kind") == 0) {
            bool found = false;
            for (int k = 0; k < (int)(sizeof kinds / sizeof kinds[0]); k++)
                if (strcmp(v, kinds[k]) == 0) {
                    p.kind = (bench_kind)k;
                    found = true;
                }
            if (!found) {
                fprintf(stderr, "bench: unknown kind %s\n", v);
                return 2;
            }
        } else if (strcmp(a, "--workload") == 0)
            p.workload = v;
        else if (strcmp(a, "--size") == 0)
            p.size = strtoul(v, NULL, 10);
        else if (strcmp(a, "--n") == 0)
            p.n = strtoull(v, NULL, 10);
        else if (strcmp(a, "--live") == 0)
            p.live = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--cycles") == 0)
            p.cycles = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--max-ms") == 0)
            p.max_ms = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--tsc-ghz") == 0)
            p.tsc_ghz = atof(v);
        else if (strcmp(a, "--seed") == 0)
            p.seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--cpu") == 0)
            p.cpu = atoi(v);
        else if (strcmp(a, "--decay-ms") == 0)
            p.decay_ms = (uint32_t)strtoul(v, NULL, 10);
        else {
            fprintf(stderr, "bench: unknown worker option %s\n", a);
            return 2;
        }
    }
    if (p.tsc_ghz <= 0)
        p.tsc_ghz = bench_tsc_calibrate(60);
    if (p.n == 0 && strcmp(p.workload, "rss") != 0)
        p.n = 1;
    if (p.seed == 0)
        p.seed = 1;
    alarm(900); /* a wedged worker must not wedge the suite */
    return bench_worker_run(&p);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--child") == 0)
            return child_main(argc, argv);
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        perror("readlink /proc/self/exe");
        return 1;
    }
    self[n] = 0;
    return bench_driver_main(argc, argv, self);
}
