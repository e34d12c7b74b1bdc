/* SPDX-License-Identifier: MIT */
/* The driver: parses the command line, plans the suite, runs each cell as a worker process
 * (driver_run.c), then summarizes (driver_stats.c) and reports (driver_output.c). */
#define _GNU_SOURCE
#include "driver.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static void read_first_line(const char *path, const char *prefix, char *out, size_t cap)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!prefix || strncmp(line, prefix, strlen(prefix)) == 0) {
            char *s = prefix ? strchr(line, ':') : line;
            s = s ? s + (prefix ? 1 : 0) : line;
            while (*s == ' ' || *s == '\t')
                s++;
            s[strcspn(s, "\n")] = 0;
            copy_str(out, cap, s);
            break;
        }
    }
    fclose(f);
}

/* ---- Main
 * ------------------------------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr,
            "usage: tslab-bench [--quick] [--instructions] [--reps N] [--scale F] [--budget S]\n"
            "                   [--sizes 64,128,512] [--workloads LETTERS] [--backends a,b,...]\n"
            "                   [--out DIR]\n"
            "  Runs workloads a-j over every backend, each cell in its own process,\n"
            "  backends interleaved, and writes DIR/{table.txt,summary.csv,summary.json,raw.csv,\n"
            "  plots/}. --instructions instead counts instructions per pair under callgrind.\n"
            "  --budget S: after 3 repeats, stop repeating when the next would pass S seconds.\n"
            "  Worker mode (internal): --child --backend B --kind K --workload W --size S ...\n");
}

static void machine_info(machine *m)
{
    read_first_line("/proc/cpuinfo", "model name", m->cpu, sizeof m->cpu);
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(m->kernel, sizeof m->kernel, "%s %s %s", u.sysname, u.release, u.machine);
    read_first_line("/proc/loadavg", NULL, m->load0, sizeof m->load0);
    m->ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    time_t t = time(NULL);
    strftime(m->date, sizeof m->date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
}

int bench_driver_main(int argc, char **argv, const char *self_path)
{
    opts o = {.reps = 5, .scale = 1.0, .nsizes = 3, .sizes = {64, 128, 512}};
    snprintf(o.letters, sizeof o.letters, "abcdefghij");
    snprintf(o.out, sizeof o.out, "bench-results");
    bool reps_set = false, sizes_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0)
            o.quick = true;
        else if (strcmp(a, "--instructions") == 0)
            o.instructions = true;
        else if (strcmp(a, "--budget") == 0 && v) {
            o.budget = atof(v);
            i++;
        } else if (strcmp(a, "--reps") == 0 && v) {
            o.reps = atoi(v);
            reps_set = true;
            i++;
        } else if (strcmp(a, "--scale") == 0 && v) {
            o.scale = atof(v);
            i++;
        } else if (strcmp(a, "--sizes") == 0 && v) {
            o.nsizes = 0;
            char tmp[128];
            copy_str(tmp, sizeof tmp, v);
            for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t && o.nsizes < 8;
                 t = strtok_r(NULL, ",", &save))
                o.sizes[o.nsizes++] = (size_t)strtoul(t, NULL, 10);
            sizes_set = true;
            i++;
        } else if (strcmp(a, "--workloads") == 0 && v) {
            copy_str(o.letters, sizeof o.letters, v);
            i++;
        } else if (strcmp(a, "--backends") == 0 && v) {
            copy_str(o.only_backends, sizeof o.only_backends, v);
            i++;
        } else if (strcmp(a, "--out") == 0 && v) {
            copy_str(o.out, sizeof o.out, v);
            i++;
        } else {
            usage();
            return strcmp(a, "--help") == 0 ? 0 : 2;
        }
    }
    if (o.quick) {
        if (!reps_set)
            o.reps = 1;
        if (!sizes_set) {
            o.nsizes = 1;
            o.sizes[0] = 128;
        }
    }
    if (o.reps < 1 || o.reps > 64 || o.nsizes < 1) {
        usage();
        return 2;
    }
    copy_str(o.self, sizeof o.self, self_path);
    char tmp[PATH_MAX];
    copy_str(tmp, sizeof tmp, self_path);
    copy_str(o.bindir, sizeof o.bindir, dirname(tmp));
    o.telemetry = bench_telemetry_available();
    mkdir(o.out, 0755);

    for (int bi = 0; bi < NBACKENDS; bi++) {
        backend *b = &backends[bi];
        if (b->lib && access(b->lib, R_OK) != 0) {
            fprintf(stderr,
                    "bench: %s not found (%s); backend %s skipped. Install: apt-get "
                    "install libjemalloc-dev libmimalloc-dev libgoogle-perftools-dev\n",
                    b->lib, strerror(errno), b->name);
            b->missing = true;
        }
        if (b->bin) {
            char p[PATH_MAX + 32];
            str_join(p, sizeof p, o.bindir, "/tslab-bench-nocounters", NULL);
            if (access(p, X_OK) != 0)
                b->missing = true;
        }
        if (b->scrape && !o.telemetry)
            b->missing = true;
    }

    machine m;
    machine_info(&m);
    o.ghz = bench_tsc_calibrate(300);
    fprintf(stderr, "tslab-bench: TSC %.4f GHz; load average %s; output in %s\n", o.ghz, m.load0,
            o.out);

    if (o.instructions) {
        if (system("valgrind --version >/dev/null 2>&1") != 0) {
            fprintf(stderr, "bench: valgrind not found (apt-get install valgrind)\n");
            return 1;
        }
        int rc = run_instructions(&o, &m);
        read_first_line("/proc/loadavg", NULL, m.load1, sizeof m.load1);
        char path[PATH_MAX + 32];
        str_join(path, sizeof path, o.out, "/instructions.txt", NULL);
        FILE *f = fopen(path, "r");
        if (f) {
            char line[512];
            while (fgets(line, sizeof line, f))
                fputs(line, stdout);
            fclose(f);
        }
        return rc || failures ? 1 : 0;
    }

    double t_start = bench_now_ns(), t_rep = t_start, last_rep = 0;
    for (int rep = 0; rep < o.reps; rep++) {
        /* The time budget: after 3 repeats, stop when the next one would overrun it. The
         * repeats actually done are in the table's header and the JSON. */
        double now = bench_now_ns();
        if (rep > 0)
            last_rep = (now - t_rep) / 1e9;
        t_rep = now;
        if (rep >= 3 && o.budget > 0 && (now - t_start) / 1e9 + last_rep > o.budget) {
            fprintf(stderr, "tslab-bench: time budget of %.0f s reached after %d repeats\n",
                    o.budget, rep);
            o.reps = rep;
            break;
        }
        fprintf(stderr, "[repeat %d/%d, %.0f s elapsed]\n", rep + 1, o.reps,
                (bench_now_ns() - t_start) / 1e9);
        for (int wi = 0; wi < NWORKLOADS; wi++) {
            const wl *w = &workloads[wi];
            if (!strchr(o.letters, w->label[0]) || (w->telemetry && !o.telemetry) ||
                (w->max_reps && rep >= w->max_reps))
                continue;
            uint64_t n = (uint64_t)((double)(o.quick ? w->n_quick : w->n) * o.scale);
            uint32_t live = o.quick ? w->live_quick : w->live;
            uint32_t cycles = o.quick ? w->cycles_quick : w->cycles;
            for (int si = 0; si < o.nsizes; si++) {
                size_t size = o.sizes[si];
                if (w->only_size && size != w->only_size &&
                    !(si == 0 && !sizes_include(&o, w->only_size)))
                    continue;
                uint64_t nn = n;
                if (w->max_bytes && nn > w->max_bytes / size)
                    nn = w->max_bytes / size;
                int sel[NBACKENDS] = {0}, ns = 0;
                for (int bi = 0; bi < NBACKENDS; bi++)
                    if (be_selected(&o, bi, w))
                        sel[ns++] = bi;
                /* rotate the order each repeat and size so every backend runs in every slot */
                for (int j = 0; j < ns; j++) {
                    int bi = sel[(j + rep + si) % ns];
                    run_worker(&o, &backends[bi], w, size, rep, nn, live, cycles, NULL, wi, bi);
                }
            }
        }
    }
    read_first_line("/proc/loadavg", NULL, m.load1, sizeof m.load1);
    fprintf(stderr, "tslab-bench: suite took %.0f s; load average at end %s\n",
            (bench_now_ns() - t_start) / 1e9, m.load1);
    summarize(&o);
    write_raw_csv(&o);
    write_summary(&o, &m);
    write_plots(&o);
    FILE *t = open_out(&o, "table.txt");
    write_table(&o, &m, t);
    write_targets(&o, t);
    fclose(t);
    write_table(&o, &m, stdout);
    write_targets(&o, stdout);
    if (failures)
        fprintf(stderr, "tslab-bench: %d worker(s) failed\n", failures);
    return failures ? 1 : 0;
}
