/* SPDX-License-Identifier: MIT */
/* The OS layer: the only file that maps, protects, advises or unmaps memory, or asks the kernel
 * for a process-wide barrier. Everything above it goes through a tslab_os table so tests can
 * inject failures. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void *os_reserve(void *ctx, size_t size)
{
    (void)ctx;
    void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static int os_commit(void *ctx, void *p, size_t size)
{
    (void)ctx;
    return mprotect(p, size, PROT_READ | PROT_WRITE) == 0 ? 0 : -errno;
}

static int os_decommit(void *ctx, void *p, size_t size)
{
    (void)ctx;
    return madvise(p, size, MADV_DONTNEED) == 0 ? 0 : -errno;
}

static void os_release(void *ctx, void *p, size_t size)
{
    (void)ctx;
    munmap(p, size);
}

static const tslab_os os_default = {os_reserve, os_commit, os_decommit, os_release, NULL, NULL};

const tslab_os *tslab_os_default(void) { return &os_default; }

size_t tslab__os_page_size(void)
{
    long p = sysconf(_SC_PAGESIZE);
    return p > 0 ? (size_t)p : 4096;
}

static size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

int tslab__area_reserve(tslab *a, tslab__area *ar, size_t bytes)
{
    bytes = round_up(bytes, a->page);
    int saved = errno;
    void *p = a->os->reserve(a->os->ctx, bytes);
    if (p == NULL)
        return -ENOMEM;
    errno = saved; /* a failed probe inside the OS layer must not leak into the caller's errno */
    ar->base = p;
    ar->reserved = bytes;
    ar->committed = 0;
    a->reserved_bytes += bytes;
    return 0;
}

int tslab__area_grow(tslab *a, tslab__area *ar, size_t need)
{
    if (need <= ar->committed)
        return 0;
    /* Grow geometrically (at least 64 KiB) to keep commit calls rare, never past the reservation.
     */
    size_t target = round_up(need, a->page);
    size_t step = ar->committed < 65536 ? 65536 : ar->committed;
    if (target < ar->committed + step)
        target = ar->committed + step;
    if (target > ar->reserved)
        target = ar->reserved;
    if (need > ar->reserved)
        return -ENOMEM;
    int r = a->os->commit(a->os->ctx, ar->base + ar->committed, target - ar->committed);
    if (r != 0)
        return r < 0 ? r : -ENOMEM;
    ar->committed = target;
    return 0;
}

void tslab__area_release(tslab *a, tslab__area *ar)
{
    if (ar->base != NULL)
        a->os->release(a->os->ctx, ar->base, ar->reserved);
    ar->base = NULL;
}

int tslab__area_decommit(tslab *a, void *p, size_t size)
{
    int r = a->os->decommit(a->os->ctx, p, size);
    return r <= 0 ? r : -EIO;
}

uint64_t tslab_process_rss(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    unsigned long long size, resident;
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2)
        return 0;
    return (uint64_t)resident * tslab__os_page_size();
}

uint64_t tslab_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t tslab__now(const tslab *a)
{
    return a->os->now_ns != NULL ? a->os->now_ns(a->os->ctx) : tslab_clock_ns();
}

/* The registration is the process's (its mm); a fork() child starts unregistered, so EPERM
 * (not registered) registers and tries once more. */
int tslab__os_membarrier(void)
{
    if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
        return 0;
    if (errno != EPERM ||
        syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0 ||
        syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
        return -errno;
    return 0;
}
