/* SPDX-License-Identifier: MIT */
/* Misuse that only a sanitizer can see, run in child processes.
 *
 *   san_misuse MODE      runs one scenario in this process:
 *     uaf-malloc   tslab_malloc, tslab_free_ptr, one more allocation of the same class (the slot
 *                  must stay in quarantine), then a write through the stale pointer
 *     uaf-handle   tslab_alloc, tslab_free, then a read through the stale pointer
 *     uaf-epoch    objects allocated into an epoch, tslab_epoch_destroy, then a read through a
 *                  pointer to one of them (destroy frees them: poisoned, freed for memcheck)
 *     leak         allocates three objects and drops the pointer to the middle one (the instance
 *                  stays alive and reachable): Valgrind must report it definitely lost
 *     destroy-live tslab_destroy with 100 objects still live (allowed: destroy releases them):
 *                  no report at all
 *     clean        correct use of both APIs and of epochs: no report at all
 *   san_misuse --asan    (ASan builds; skipped, exit 77, elsewhere) runs each uaf mode as a child
 *                  and expects an AddressSanitizer "heap-use-after-free" or "use-after-poison"
 *                  report naming the access, and the clean mode to exit 0 without one.
 * The Valgrind side is driven by valgrind_check.sh. */
#define _GNU_SOURCE
#include "stress_common.h"

#include <tslab.h>

#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static tslab *inst;                /* kept reachable for the leak checker */
void *volatile san_misuse_keep[2]; /* reachable: must not be reported */

__attribute__((noinline)) static void touch_write(volatile unsigned char *p) { p[0] = 42; }
__attribute__((noinline)) static unsigned char touch_read(volatile unsigned char *p)
{
    return p[8];
}

__attribute__((noinline)) static void leak_one(void)
{
    san_misuse_keep[0] = tslab_malloc(inst, 200);
    void *lost = tslab_malloc(inst, 200);
    san_misuse_keep[1] = tslab_malloc(inst, 200);
    memset(lost, 7, 200);
    /* `lost` goes out of scope here: nothing points at it any more. */
}

static int scenario(const char *mode)
{
    inst = tslab_create(NULL);
    SAN_CHECK(inst != NULL, "tslab_create");
    if (!strcmp(mode, "uaf-malloc")) {
        unsigned char *p = tslab_malloc(inst, 100);
        memset(p, 1, 100);
        SAN_CHECK(tslab_free_ptr(inst, p), "free");
        void *q = tslab_malloc(inst, 100);
        SAN_CHECK(q != p, "the freed slot was handed out again at once (no quarantine)");
        san_misuse_keep[0] = q;
        fprintf(stderr, "misuse: writing through a stale pointer %p\n", (void *)p);
        touch_write(p);
        return 3; /* not reached under a sanitizer */
    }
    if (!strcmp(mode, "uaf-handle")) {
        tslab_handle h;
        unsigned char *p = tslab_alloc(inst, 300, &h);
        memset(p, 1, 300);
        SAN_CHECK(tslab_free(inst, h), "free");
        fprintf(stderr, "misuse: reading through a stale pointer %p\n", (void *)p);
        return touch_read(p) == 255 ? 4 : 3;
    }
    if (!strcmp(mode, "uaf-epoch")) {
        tslab_epoch e = tslab_epoch_open(inst, "misuse");
        unsigned char *p[10];
        for (int i = 0; i < 10; i++) {
            p[i] = tslab_malloc_epoch(inst, e, 100);
            SAN_CHECK(p[i] != NULL, "epoch alloc");
            memset(p[i], 1, 100);
        }
        SAN_CHECK(tslab_epoch_destroy(inst, e) == 0, "destroy");
        fprintf(stderr, "misuse: reading through a destroyed epoch's pointer %p\n", (void *)p[4]);
        return touch_read(p[4]) == 255 ? 4 : 3;
    }
    if (!strcmp(mode, "leak")) {
        leak_one();
        return 0; /* no tslab_destroy: the instance stays reachable through `inst` */
    }
    if (!strcmp(mode, "destroy-live")) {
        /* tslab_destroy releases every object still live: nothing may be reported as lost. */
        for (int i = 0; i < 100; i++)
            SAN_CHECK(tslab_malloc(inst, (size_t)(i % 700) + 1) != NULL, "alloc");
        tslab_destroy(inst);
        inst = NULL;
        return 0;
    }
    if (!strcmp(mode, "clean")) {
        for (int i = 0; i < 1000; i++) {
            tslab_handle h;
            unsigned char *p = tslab_alloc(inst, (size_t)(i % 700) + 1, &h);
            unsigned char *q = tslab_calloc(inst, 1, (size_t)(i % 500) + 1);
            SAN_CHECK(p && q, "alloc");
            p[i % 700] = 1;
            q = tslab_realloc(inst, q, (size_t)(i % 300) + 200);
            SAN_CHECK(q, "realloc");
            q[199] = 2;
            SAN_CHECK(tslab_free(inst, h) && tslab_free_ptr(inst, q), "free");
            SAN_CHECK(!tslab_free(inst, h), "double free accepted");
        }
        /* Epochs: some objects freed one by one, the rest by destroy, one epoch only closed. */
        for (int round = 0; round < 20; round++) {
            tslab_epoch e = tslab_epoch_open(inst, round % 2 ? "odd" : "even");
            SAN_CHECK(e != 0, "epoch open");
            unsigned char *p[50];
            for (int i = 0; i < 50; i++) {
                p[i] = tslab_malloc_epoch(inst, e, (size_t)(i * 13 % 700) + 1);
                SAN_CHECK(p[i] != NULL, "epoch alloc");
                p[i][0] = 3;
            }
            for (int i = 0; i < 50; i += 3)
                SAN_CHECK(tslab_free_ptr(inst, p[i]), "epoch free");
            if (round == 19) {
                SAN_CHECK(tslab_epoch_close(inst, e) == 0, "close");
                for (int i = 1; i < 50; i++)
                    if (i % 3 != 0)
                        SAN_CHECK(tslab_free_ptr(inst, p[i]), "epoch free after close");
            } else {
                SAN_CHECK(tslab_epoch_destroy(inst, e) == 0, "destroy");
            }
        }
        tslab_destroy(inst);
        return 0;
    }
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}

/* Runs `self mode` with stderr captured; returns the exit status and the captured text. */
__attribute__((unused)) static int run_child(const char *self, const char *mode, char *out,
                                             size_t cap)
{
    int fds[2];
    SAN_CHECK(pipe(fds) == 0, "pipe");
    fflush(NULL);
    pid_t pid = fork();
    SAN_CHECK(pid >= 0, "fork");
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        close(fds[1]);
        execl(self, self, mode, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], out + n, cap - 1 - n)) > 0 && n < cap - 1)
        n += (size_t)r;
    char sink[4096];
    while (read(fds[0], sink, sizeof sink) > 0) {
    }
    out[n] = '\0';
    close(fds[0]);
    int status;
    SAN_CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    return status;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--asan") != 0)
        return scenario(argv[1]);
    if (argc != 2) {
        fprintf(stderr, "usage: %s uaf-malloc|uaf-handle|uaf-epoch|leak|clean|--asan\n", argv[0]);
        return 2;
    }
#if !SAN_ASAN
    printf("skipped: not an AddressSanitizer build\n");
    return SAN_SKIP;
#else
    static char out[1 << 16];
    int bad = 0;
    const char *uaf[] = {"uaf-malloc", "uaf-handle", "uaf-epoch"};
    for (int i = 0; i < 3; i++) {
        int st = run_child("/proc/self/exe", uaf[i], out, sizeof out);
        bool reported = strstr(out, "ERROR: AddressSanitizer: heap-use-after-free") ||
                        strstr(out, "ERROR: AddressSanitizer: use-after-poison");
        bool exited_clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        printf("%-11s child status %#x, ASan report %s\n", uaf[i], st,
               reported ? "found" : "MISSING");
        if (!reported || exited_clean) {
            bad = 1;
            fprintf(stderr, "---- child stderr ----\n%s\n----\n", out);
        }
    }
    int st = run_child("/proc/self/exe", "clean", out, sizeof out);
    bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0 && !strstr(out, "AddressSanitizer");
    printf("clean       child status %#x, %s\n", st, clean ? "no report" : "UNEXPECTED REPORT");
    if (!clean) {
        bad = 1;
        fprintf(stderr, "---- child stderr ----\n%s\n----\n", out);
    }
    printf("asan-uaf: %s\n", bad ? "FAIL" : "PASS");
    return bad;
#endif
}
