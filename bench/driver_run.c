/* SPDX-License-Identifier: MIT */
/* Running worker processes: builds a worker's command line, runs it (LD_PRELOADing its
 * allocator), and keeps what it prints in the result store. */
#define _GNU_SOURCE
#include "driver.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- Results ------------------------------------------------------------------------------------
 */

result *results;
size_t nresults;
static size_t capresults;
int failures;

/* Open-addressing index over results (the summaries look values up many times). */
static uint32_t *rindex_;
static size_t rindex_cap;

static uint64_t result_hash(int w, int b, size_t size, int rep, const char *key)
{
    uint64_t h = 1469598103934665603ull;
    uint64_t parts[4] = {(uint64_t)w, (uint64_t)b, (uint64_t)size, (uint64_t)rep};
    for (int i = 0; i < 4; i++)
        h = (h ^ parts[i]) * 1099511628211ull;
    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 1099511628211ull;
    return h;
}

static void rindex_insert(size_t i)
{
    const result *r = &results[i];
    size_t mask = rindex_cap - 1;
    for (size_t j = result_hash(r->wl, r->be, r->size, r->rep, r->key) & mask;; j = (j + 1) & mask)
        if (rindex_[j] == 0) {
            rindex_[j] = (uint32_t)i + 1;
            return;
        }
}

static void add_result(int w, int b, size_t size, int rep, const char *key, double v)
{
    if (nresults == capresults) {
        capresults = capresults ? 2 * capresults : 4096;
        result *grown = realloc(results, capresults * sizeof *results);
        free(rindex_);
        rindex_cap = 4 * capresults;
        rindex_ = calloc(rindex_cap, sizeof *rindex_);
        if (!grown || !rindex_) {
            perror("realloc");
            exit(1);
        }
        results = grown;
        for (size_t i = 0; i < nresults; i++)
            rindex_insert(i);
    }
    result *r = &results[nresults];
    r->wl = w;
    r->be = b;
    r->size = size;
    r->rep = rep;
    copy_str(r->key, sizeof r->key, key);
    r->v = v;
    rindex_insert(nresults++);
}

bool find_result(int w, int b, size_t size, int rep, const char *key, double *v)
{
    if (!rindex_cap)
        return false;
    size_t mask = rindex_cap - 1;
    for (size_t j = result_hash(w, b, size, rep, key) & mask; rindex_[j]; j = (j + 1) & mask) {
        const result *r = &results[rindex_[j] - 1];
        if (r->wl == w && r->be == b && r->size == size && r->rep == rep &&
            strcmp(r->key, key) == 0) {
            *v = r->v;
            return true;
        }
    }
    return false;
}

/* ---- Running a worker -------------------------------------------------------------------------
 */

/* The CPU a single-threaded cell of repeat `rep` runs on: every cell of one repeat on the same
 * CPU, the repeats round robin over the CPUs the driver may use. On a shared host one vCPU is
 * often slower than the other for a while (another tenant); left to the scheduler, a repeat's
 * cells land on either and its ratios compare allocators measured on different CPUs. -1: none. */
static int cpu_for_rep(int rep)
{
    cpu_set_t set;
    if (rep < 0 || sched_getaffinity(0, sizeof set, &set) != 0)
        return -1;
    int n = CPU_COUNT(&set), want = rep % (n > 0 ? n : 1);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set) && want-- == 0)
            return c;
    return -1;
}

/* Runs one worker; parses its "key value" lines into results (rep >= 0) or into kv (callgrind).
 * Returns the worker's exit status. */
int run_worker(const opts *o, const backend *b, const wl *w, size_t size, int rep, uint64_t n,
               uint32_t live, uint32_t cycles, const char *cg_out, int wi, int bi)
{
    char bin[PATH_MAX + 64], a_n[32], a_live[32], a_cyc[32], a_size[32], a_ghz[32], a_seed[32],
        cgfile[PATH_MAX + 32];
    if (b->bin)
        str_join(bin, sizeof bin, o->bindir, "/tslab-bench-nocounters", NULL);
    else
        copy_str(bin, sizeof bin, o->self);
    snprintf(a_n, sizeof a_n, "%llu", (unsigned long long)n);
    snprintf(a_live, sizeof a_live, "%u", live);
    snprintf(a_cyc, sizeof a_cyc, "%u", cycles);
    snprintf(a_size, sizeof a_size, "%zu", size);
    snprintf(a_ghz, sizeof a_ghz, "%.6f", o->ghz);
    snprintf(a_seed, sizeof a_seed, "%llu", (unsigned long long)(0x5eed0000u + (unsigned)rep));
    const char *argv[48];
    int k = 0;
    if (cg_out) {
        str_join(cgfile, sizeof cgfile, "--callgrind-out-file=", cg_out, NULL);
        argv[k++] = "valgrind";
        argv[k++] = "--tool=callgrind";
        argv[k++] = "--collect-atstart=no";
        argv[k++] = "--dump-instr=yes";
        argv[k++] = "-q";
        argv[k++] = cgfile;
    }
    argv[k++] = bin;
    argv[k++] = "--child";
    argv[k++] = "--backend";
    argv[k++] = b->name;
    argv[k++] = "--kind";
    argv[k++] = kind_name[b->kind];
    argv[k++] = "--workload";
    argv[k++] = w->workload;
    argv[k++] = "--size";
    argv[k++] = a_size;
    argv[k++] = "--n";
    argv[k++] = a_n;
    argv[k++] = "--live";
    argv[k++] = a_live;
    argv[k++] = "--cycles";
    argv[k++] = a_cyc;
    char a_ms[32];
    snprintf(a_ms, sizeof a_ms, "%u", cg_out ? 0u : w->max_ms);
    argv[k++] = "--max-ms";
    argv[k++] = a_ms;
    argv[k++] = "--tsc-ghz";
    argv[k++] = a_ghz;
    argv[k++] = "--seed";
    argv[k++] = a_seed;
    if (cg_out)
        argv[k++] = "--callgrind";
    if (b->scrape)
        argv[k++] = "--scrape";
    if (b->exact)
        argv[k++] = "--exact-frees";
    if (b->bg)
        argv[k++] = "--background";
    char a_decay[16];
    uint32_t decay = o->quick ? w->decay_ms_quick : w->decay_ms;
    if (decay) {
        snprintf(a_decay, sizeof a_decay, "%u", decay);
        argv[k++] = "--decay-ms";
        argv[k++] = a_decay;
    }
    if (b->nosample)
        argv[k++] = "--sample-off";
    if (b->groups)
        argv[k++] = "--groups";
    /* The measured thread of a one-thread cell runs on its repeat's CPU; the two-thread
     * workloads need both CPUs, and callgrind runs one thread at a time anyway. */
    char a_cpu[16];
    int cpu =
        strcmp(w->workload, "mt_churn") != 0 && strcmp(w->workload, "prodcons") != 0 && !cg_out
            ? cpu_for_rep(rep)
            : -1;
    if (cpu >= 0) {
        snprintf(a_cpu, sizeof a_cpu, "%d", cpu);
        argv[k++] = "--cpu";
        argv[k++] = a_cpu;
    }
    argv[k] = NULL;

    int pfd[2];
    if (pipe(pfd) != 0) {
        perror("pipe");
        exit(1);
    }
    fflush(NULL);
    double started = bench_now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0) {
        close(pfd[0]);
        dup2(pfd[1], 1);
        close(pfd[1]);
        if (b->lib)
            setenv("LD_PRELOAD", b->lib, 1);
        else
            unsetenv("LD_PRELOAD");
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "bench: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(pfd[1]);
    FILE *f = fdopen(pfd[0], "r");
    char line[256];
    char shown[512] = "";
    while (f && fgets(line, sizeof line, f)) {
        char key[64];
        double v;
        if (sscanf(line, "%63s %lf", key, &v) == 2) {
            if (rep >= 0)
                add_result(wi, bi, size, rep, key, v);
            if (strlen(shown) < 200 &&
                (strstr(key, "pair_ns") || strstr(key, "mops") || strstr(key, "p99_ns") ||
                 strstr(key, "c1000") || strstr(key, "us") || strstr(key, "requests_per_s") ||
                 strstr(key, "freed_over_live")))
                snprintf(shown + strlen(shown), sizeof shown - strlen(shown), " %s=%.4g", key, v);
        }
    }
    if (f)
        fclose(f);
    int st = 0;
    waitpid(pid, &st, 0);
    int rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    fprintf(stderr, "  %-10s %4zu %-14s %5.1fs%s%s\n", w->label, size, b->name,
            (bench_now_ns() - started) / 1e9, shown, rc ? "  [FAILED]" : "");
    if (rc) {
        failures++;
        fprintf(stderr, "bench: worker %s %s %zu exited with status %d\n", b->name, w->label, size,
                rc);
    }
    return rc;
}
