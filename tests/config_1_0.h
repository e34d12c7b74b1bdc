/* SPDX-License-Identifier: MIT */
/* tslab_config and tslab_os as temporal-slab 1.0 declared them, frozen: the layouts a program
 * built against 1.0 passes to the library (written out here, independently of the current
 * header, which appends fields). */
#ifndef TSLAB_TEST_CONFIG_1_0_H
#define TSLAB_TEST_CONFIG_1_0_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tslab;

typedef struct os_1_0 {
    void *(*reserve)(void *ctx, size_t size);
    int (*commit)(void *ctx, void *p, size_t size);
    int (*decommit)(void *ctx, void *p, size_t size);
    void (*release)(void *ctx, void *p, size_t size);
    void *ctx;
} os_1_0;

typedef struct config_1_0 {
    const char *name;
    const uint32_t *sizes;
    size_t size_count;
    size_t slab_bytes;
    size_t cache_slabs;
    size_t class_max_bytes;
    const os_1_0 *os;
    bool exact_frees;
} config_1_0;

/* Calls the exported 1.0 tslab_create. */
struct tslab *config_1_0_create(const config_1_0 *cfg);
/* A copy of src[0..size) that ends exactly where an inaccessible page begins (leaked). */
void *config_1_0_place(const void *src, size_t size);

#endif
