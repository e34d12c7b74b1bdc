/* SPDX-License-Identifier: MIT */
/* A caller built against 1.0: it does not include the current tslab.h. It declares
 * tslab_create, tslab_config and tslab_os as 1.0's header did, so it calls the exported 1.0
 * symbol with 1.0's (shorter) structs, which config_1_0_place puts at the very end of a readable
 * page followed by an inaccessible one: a library that read one byte past them would fault. */
#include "config_1_0.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct tslab *tslab_create(const config_1_0 *cfg);

struct tslab *config_1_0_create(const config_1_0 *cfg) { return tslab_create(cfg); }

void *config_1_0_place(const void *src, size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (mprotect(p + page, page, PROT_NONE) != 0)
        return NULL;
    memcpy(p + page - size, src, size);
    return p + page - size;
}
