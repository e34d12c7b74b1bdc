/* SPDX-License-Identifier: MIT */
/* Cost of one call-stack capture, the part of a sampled allocation that dominates its slow path
 * (allocator/src/sample.c). Three ways, each from the bottom of a 16-deep chain of calls:
 *   fp         a frame-pointer walk (this file is built with -fno-omit-frame-pointer; it is only
 *              correct when every frame on the stack was, which Debian's libc and most
 *              applications are not)
 *   backtrace  glibc backtrace() (libgcc's DWARF unwinder; correct without frame pointers),
 *              looked up in libc by name: libunwind exports a `backtrace` of its own, which
 *              a plain call would reach instead
 *   libunwind  unw_backtrace() from Debian's libunwind (DWARF, with its own caching)
 * Prints "method ns_per_capture frames". Run: build/bench/bench/tslab-stack-capture, or under
 * valgrind --tool=callgrind for instruction counts. */
#define _GNU_SOURCE /* clock_gettime and RTLD_DEFAULT under -std=c11 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#define UNW_LOCAL_ONLY
#include <libunwind.h>

#define DEPTH 16
#define FRAMES 64
#define REPS 200000

typedef int capture_fn(void **out, int max);

static int capture_fp(void **out, int max)
{
    void **fp = __builtin_frame_address(0);
    int n = 0;
    while (fp != NULL && n < max) {
        void *ret = fp[1];
        void **next = fp[0];
        if (ret == NULL || next <= fp) /* the stack grows down: a caller's frame is higher */
            break;
        out[n++] = ret;
        fp = next;
    }
    return n;
}

static int (*glibc_backtrace)(void **, int);
static int capture_backtrace(void **out, int max) { return glibc_backtrace(out, max); }
static int capture_libunwind(void **out, int max) { return unw_backtrace(out, max); }

static volatile int sink;

__attribute__((noinline)) static int chain(capture_fn *fn, int depth)
{
    if (depth == 0) {
        void *buf[FRAMES];
        return fn(buf, FRAMES);
    }
    int r = chain(fn, depth - 1);
    sink = r; /* no tail call: every level keeps its frame */
    return r;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

int main(void)
{
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    glibc_backtrace = libc ? (int (*)(void **, int))dlsym(libc, "backtrace") : NULL;
    if (glibc_backtrace == NULL) {
        fprintf(stderr, "glibc backtrace not found\n");
        return 1;
    }
    static const struct {
        const char *name;
        capture_fn *fn;
    } m[] = {
        {"fp", capture_fp}, {"backtrace", capture_backtrace}, {"libunwind", capture_libunwind}};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        int frames = chain(m[i].fn, DEPTH); /* warm up: the first backtrace() loads libgcc_s */
        double t0 = now_ns();
        for (int r = 0; r < REPS; r++)
            frames = chain(m[i].fn, DEPTH);
        double ns = (now_ns() - t0) / REPS;
        printf("%-10s %8.1f ns %d frames\n", m[i].name, ns, frames);
    }
    return 0;
}
