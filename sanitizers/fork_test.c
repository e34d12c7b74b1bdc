/* SPDX-License-Identifier: MIT */
/* fork() while other threads allocate: the child must allocate and free normally.
 *
 * Three threads churn on small slabs with no slab cache (so the class locks are taken all the
 * time); the main thread forks 20 times. Each child, under an alarm, allocates and frees 4000
 * objects of every class through both APIs from the parent's allocator, reads its stats, creates
 * and destroys a fresh allocator, and exits 0. A core without fork handlers (pthread_atfork)
 * deadlocks in the child on a lock some parent thread held at the fork; the alarm turns that into a
 * failure. */
#define _GNU_SOURCE
#include "stress_common.h"

#include <tslab.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static tslab *a;
static atomic_bool stop;
static atomic_ulong churn_ops;

static void *churn(void *arg)
{
    uint64_t rng = san_rng_seed((uint64_t)(uintptr_t)arg);
    enum { LIVE = 64 };
    void *p[LIVE] = {0};
    size_t nc = tslab_class_count(a);
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        unsigned k = (unsigned)(san_rng_next(&rng) % LIVE);
        if (p[k]) {
            SAN_CHECK(tslab_free_ptr(a, p[k]), "free failed");
            p[k] = NULL;
        } else {
            size_t sz = tslab_class_size(a, san_rng_next(&rng) % nc);
            p[k] = tslab_malloc(a, sz);
            SAN_CHECK(p[k] != NULL, "malloc failed: errno %d", errno);
            memset(p[k], 0x5a, sz);
        }
        if (k == 0)
            tslab_flush(a);
        atomic_fetch_add_explicit(&churn_ops, 1, memory_order_relaxed);
    }
    for (unsigned k = 0; k < LIVE; k++)
        if (p[k])
            SAN_CHECK(tslab_free_ptr(a, p[k]), "free failed");
    return NULL;
}

static int child(void)
{
    alarm(60);
    size_t nc = tslab_class_count(a);
    enum { N = 2000 };
    static void *p[N];
    static tslab_handle h[N];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            size_t sz = tslab_class_size(a, (size_t)i % nc);
            p[i] = i % 2 ? tslab_alloc(a, sz, &h[i]) : tslab_malloc(a, sz);
            if (!p[i])
                return 10;
            memset(p[i], i & 0xff, sz);
        }
        for (int i = 0; i < N; i++) {
            size_t sz = tslab_class_size(a, (size_t)i % nc);
            unsigned char *b = p[i];
            if (b[0] != (i & 0xff) || b[sz - 1] != (i & 0xff))
                return 11;
            if (!(i % 2 ? tslab_free(a, h[i]) : tslab_free_ptr(a, p[i])))
                return 12;
        }
        tslab_flush(a);
    }
    tslab_stats st;
    if (tslab_stats_read(a, &st) != 0)
        return 13;
    tslab *b = tslab_create(NULL);
    if (!b)
        return 14;
    for (int i = 0; i < 1000; i++) {
        void *q = tslab_malloc(b, 100);
        if (!q || !tslab_free_ptr(b, q))
            return 15;
    }
    tslab_destroy(b);
    return 0;
}

int main(void)
{
    tslab_config cfg = {.name = "fork", .slab_bytes = 4096, .cache_slabs = TSLAB_CACHE_NONE};
    a = tslab_create(&cfg);
    SAN_CHECK(a != NULL, "tslab_create");
    enum { T = 3, FORKS = 20 };
    pthread_t th[T];
    for (uintptr_t i = 0; i < T; i++)
        SAN_CHECK(pthread_create(&th[i], NULL, churn, (void *)(i + 1)) == 0, "pthread_create");
    while (atomic_load(&churn_ops) < 10000)
        sched_yield();
    /* Under Valgrind, memcheck's leak check at the child's exit reports what the parent's other
     * threads held (their cached slots and objects: those threads do not exist in the child) and
     * turns the exit status into --error-exitcode. So the child also reports success through a
     * pipe, and under Valgrind that report decides. */
    bool valgrind = false;
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    while (maps && fgets(line, sizeof line, maps))
        valgrind |= strstr(line, "vgpreload") != NULL;
    if (maps)
        fclose(maps);
    int failures = 0;
    for (int f = 0; f < FORKS; f++) {
        int fds[2];
        SAN_CHECK(pipe(fds) == 0, "pipe");
        fflush(NULL);
        pid_t pid = fork();
        SAN_CHECK(pid >= 0, "fork: errno %d", errno);
        if (pid == 0) {
            close(fds[0]);
            int rc = child();
            if (rc == 0 && write(fds[1], "K", 1) != 1)
                rc = 16;
            _exit(rc);
        }
        close(fds[1]);
        char ok = 0;
        bool reported = read(fds[0], &ok, 1) == 1 && ok == 'K';
        close(fds[0]);
        int status;
        SAN_CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
        bool exited = WIFEXITED(status) && (WEXITSTATUS(status) == 0 || valgrind);
        if (!reported || !exited) {
            fprintf(stderr, "fork %d: child %s %d%s\n", f,
                    WIFEXITED(status) ? "exited" : "killed by signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                    WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? " (deadlock: alarm)" : "");
            failures++;
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
    tslab_destroy(a);
    printf("fork: %d forks while 3 threads allocated (%lu ops): %d children failed: %s\n", FORKS,
           (unsigned long)atomic_load(&churn_ops), failures, failures ? "FAIL" : "PASS");
    return failures ? 1 : 0;
}
