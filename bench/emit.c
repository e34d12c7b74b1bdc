/* SPDX-License-Identifier: MIT */
/* The worker's output: one "key value" line per result on stdout, which the driver parses
 * (driver_run.c). Its own file so that worker.c and worker_telemetry.c both use it and neither
 * calls back into the other: worker.c -> worker_telemetry.c -> emit.c. */
#include "bench.h"

#include <stdio.h>

void bench_emit(const char *key, double value) { printf("%s %.6g\n", key, value); }
