/* SPDX-License-Identifier: MIT */
/* Allocation under an RLIMIT_AS cap, in a child process.
 *
 * The child caps its address space a little above what it uses, then:
 *  1. tslab_create with the default 1 GiB per class (8 GiB of reservation) must fail with ENOMEM;
 *  2. an instance that fits (two classes of 16 MiB) fills each class until NULL/ENOMEM, every
 *     object keeps its contents, everything is freed, and the class fills again to the same count;
 *  3. the cap is lowered to what the process uses right now, and a third instance created before
 *     that (never touched) is asked for objects of every class: every failure must be NULL/ENOMEM,
 *     never a crash; the cap is raised again and every class then allocates normally.
 * Skipped (exit 77) under ASan and TSan, whose shadow memory makes RLIMIT_AS meaningless, and
 * under Valgrind, whose own heap lives in the capped address space. */
#define _GNU_SOURCE
#include "stress_common.h"

#include <tslab.h>

#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#if !(SAN_ASAN || SAN_TSAN)
static size_t vm_size(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %zu kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb * 1024;
}

static void set_cap(size_t bytes)
{
    struct rlimit rl;
    SAN_CHECK(getrlimit(RLIMIT_AS, &rl) == 0, "getrlimit");
    rl.rlim_cur = bytes;
    SAN_CHECK(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit(%zu): errno %d", bytes, errno);
}

#define MAXN (16u << 20) / 64

static size_t fill(tslab *a, size_t size, void **p, size_t max)
{
    size_t n = 0;
    while (n < max) {
        void *q = tslab_malloc(a, size);
        if (!q) {
            SAN_CHECK(errno == ENOMEM, "allocation failed with errno %d", errno);
            break;
        }
        memset(q, (int)(n & 0xff), size < 64 ? size : 64);
        p[n++] = q;
    }
    return n;
}

static void drain(tslab *a, size_t size, void **p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const unsigned char *b = p[i];
        for (size_t j = 0; j < (size < 64 ? size : 64); j++)
            SAN_CHECK(b[j] == (i & 0xff), "object %zu corrupted", i);
        SAN_CHECK(tslab_free_ptr(a, p[i]), "free failed");
    }
}

static int child(void)
{
    static void *p[MAXN];
    static const uint32_t sizes[] = {64, 4096};
    size_t base = vm_size();
    set_cap(base + (96u << 20));

    errno = 0;
    tslab *big = tslab_create(NULL);
    SAN_CHECK(big == NULL && errno == ENOMEM, "8 GiB reservation under a 96 MiB cap: %p errno %d",
              (void *)big, errno);

    tslab_config cfg = {
        .name = "capped", .sizes = sizes, .size_count = 2, .class_max_bytes = 16u << 20};
    tslab *a = tslab_create(&cfg);
    SAN_CHECK(a != NULL, "tslab_create of 32 MiB under a 96 MiB cap: errno %d", errno);
    tslab_config cfg3 = cfg;
    cfg3.name = "untouched";
    cfg3.sizes = NULL;
    cfg3.size_count = 0;
    cfg3.class_max_bytes = 4u << 20;
    tslab *c = tslab_create(&cfg3);
    SAN_CHECK(c != NULL, "tslab_create of the third instance: errno %d", errno);

    size_t counts[2];
    for (int k = 0; k < 2; k++) {
        size_t n = fill(a, sizes[k], p, MAXN);
        SAN_CHECK(n >= (size_t)(0.9 * (16u << 20) / sizes[k]), "class %u held only %zu objects",
                  sizes[k], n);
        drain(a, sizes[k], p, n);
        tslab_flush(a);
        size_t again = fill(a, sizes[k], p, MAXN);
        SAN_CHECK(again == n, "class %u: %zu objects the first time, %zu the second", sizes[k], n,
                  again);
        drain(a, sizes[k], p, again);
        tslab_flush(a);
        counts[k] = n;
    }
    printf("under a cap of VmSize + 96 MiB: default create refused (ENOMEM); classes of 16 MiB "
           "held %zu x 64 B and %zu x 4096 B twice over\n",
           counts[0], counts[1]);
    fflush(stdout);

    /* Tight cap: no new mapping at all. */
    size_t nc = tslab_class_count(c), ok = 0, refused = 0;
    set_cap(vm_size());
    for (size_t k = 0; k < nc; k++) {
        size_t sz = tslab_class_size(c, k);
        for (int i = 0; i < 200; i++) {
            void *q = tslab_malloc(c, sz);
            if (!q) {
                SAN_CHECK(errno == ENOMEM, "errno %d under a tight cap", errno);
                refused++;
                continue;
            }
            memset(q, 1, sz);
            SAN_CHECK(tslab_free_ptr(c, q), "free");
            ok++;
        }
    }
    set_cap(base + (96u << 20));
    for (size_t k = 0; k < nc; k++) {
        size_t sz = tslab_class_size(c, k);
        size_t n = fill(c, sz, p, 200);
        SAN_CHECK(n == 200, "class %zu: only %zu allocations after the cap was raised", sz, n);
        drain(c, sz, p, n);
    }
    printf("under a cap of the current VmSize: %zu allocations served, %zu refused with ENOMEM; "
           "all classes allocate again once the cap is raised\n",
           ok, refused);
    tslab_destroy(a);
    tslab_destroy(c);
    fflush(stdout);
    return 0;
}

#endif

int main(void)
{
#if SAN_ASAN || SAN_TSAN
    printf("skipped: RLIMIT_AS cannot be combined with ASan/TSan shadow memory\n");
    return SAN_SKIP;
#else
    /* Valgrind keeps its own heap inside the client's address space: a cap breaks Valgrind. */
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    while (maps && fgets(line, sizeof line, maps))
        if (strstr(line, "vgpreload")) {
            printf("skipped: running under Valgrind, whose own memory counts against RLIMIT_AS\n");
            fclose(maps);
            return SAN_SKIP;
        }
    if (maps)
        fclose(maps);
    fflush(NULL);
    pid_t pid = fork();
    SAN_CHECK(pid >= 0, "fork");
    if (pid == 0)
        _exit(child());
    int status;
    SAN_CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "rlimit: child failed (status %#x)\n", status);
        return 1;
    }
    printf("rlimit: PASS\n");
    return 0;
#endif
}
