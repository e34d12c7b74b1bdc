/* SPDX-License-Identifier: MIT */
/* A caller built against 1.0: it does not include the current tslab_telemetry.h, declares
 * tslab_exporter_config as 1.0's header did and calls the exported 1.0 tslab_exporter_start,
 * with its (shorter) struct at the very end of a readable page followed by an inaccessible one:
 * a library that read one byte past it would fault. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "exporter_1_0.h"

struct tslab_exporter;
int tslab_exporter_start(const exporter_config_1_0 *cfg, struct tslab_exporter **out);

int exporter_1_0_start(struct tslab *const *allocs, size_t n, struct tslab_exporter **out)
{
    exporter_config_1_0 c;
    memset(&c, 0, sizeof c);
    c.allocators = allocs;
    c.allocator_count = n;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || mprotect(p + page, page, PROT_NONE) != 0)
        return -1;
    exporter_config_1_0 *edge = (exporter_config_1_0 *)(void *)(p + page - sizeof c);
    memcpy(edge, &c, sizeof c);
    int r = tslab_exporter_start(edge, out);
    munmap(p, 2 * page);
    return r;
}
