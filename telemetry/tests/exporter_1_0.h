/* SPDX-License-Identifier: MIT */
/* tslab_exporter_config as temporal-slab 1.0 declared it, frozen (written out here,
 * independently of the current header, which appends fields). */
#ifndef TSLAB_TEST_EXPORTER_1_0_H
#define TSLAB_TEST_EXPORTER_1_0_H

#include <stddef.h>
#include <stdint.h>

struct tslab;
struct tslab_exporter;

typedef struct exporter_config_1_0 {
    const char *address;
    uint16_t port;
    struct tslab *const *allocators;
    size_t allocator_count;
    const char *bearer_token;
    unsigned max_connections;
    unsigned per_ip_connections;
    unsigned timeout_seconds;
    size_t memory_limit;
} exporter_config_1_0;

/* Starts an exporter on 127.0.0.1, a port the kernel picks, through the exported 1.0 symbol. */
int exporter_1_0_start(struct tslab *const *allocs, size_t n, struct tslab_exporter **out);

#endif
