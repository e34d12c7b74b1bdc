/* SPDX-License-Identifier: MIT */
/* The callgrind pass (--instructions): instructions per pair for each backend, net of the
 * loop's own, into instructions.{csv,txt,json} and plots/instructions.{dat,gp}. */
#define _GNU_SOURCE
#include "driver.h"

#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>

/* ---- Instruction counts (callgrind) -----------------------------------------------------------
 */

static double callgrind_total(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NAN;
    char line[512];
    double total = NAN;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "totals:", 7) == 0 || strncmp(line, "summary:", 8) == 0)
            total = strtod(strchr(line, ':') + 1, NULL);
    }
    fclose(f);
    return total;
}

/* plots/instructions.{dat,gp} from instructions.csv (tight loop, net of the loop). */
static void write_instructions_plot(const opts *o)
{
    char dir[PATH_MAX + 16], path[PATH_MAX + 64];
    str_join(dir, sizeof dir, o->out, "/plots", NULL);
    mkdir(dir, 0755);
    str_join(path, sizeof path, o->out, "/instructions.csv", NULL);
    FILE *in = fopen(path, "r");
    if (!in)
        return;
    static const char *const order[] = {"tslab-h", "tslab-m",    "tslab-h-nocnt", "tslab-h-exact",
                                        "glibc",   "jemalloc",   "mimalloc",      "tcmalloc",
                                        "floor",   "floor-call", "floor-cas"};
    enum { NB = sizeof order / sizeof order[0] };
    double v[NB][8];
    for (int i = 0; i < NB; i++)
        for (int j = 0; j < 8; j++)
            v[i][j] = NAN;
    char line[512];
    while (fgets(line, sizeof line, in)) {
        char wl_[32], be[32];
        size_t size;
        double net;
        if (sscanf(line, "%31[^,],%31[^,],%zu,%*[^,],%*[^,],%*[^,],%lf", wl_, be, &size, &net) !=
                4 ||
            strcmp(wl_, "a.tight") != 0)
            continue;
        for (int i = 0; i < NB; i++)
            for (int j = 0; j < o->nsizes; j++)
                if (strcmp(be, order[i]) == 0 && o->sizes[j] == size)
                    v[i][j] = net;
    }
    fclose(in);
    FILE *f = open_out(o, "plots/instructions.dat");
    fprintf(f, "# backend");
    for (int j = 0; j < o->nsizes; j++)
        fprintf(f, " %zuB", o->sizes[j]);
    fprintf(f, "\n");
    for (int i = 0; i < NB; i++) {
        fprintf(f, "%s", order[i]);
        for (int j = 0; j < o->nsizes; j++)
            fprintf(f, " %.1f", v[i][j]);
        fprintf(f, "\n");
    }
    fclose(f);
    f = open_out(o, "plots/instructions.gp");
    fprintf(f, "set terminal pngcairo size 1000,560 noenhanced font ',10'\n"
               "set output 'instructions.png'\nset title 'Instructions per malloc+free pair, "
               "tight loop (callgrind, loop overhead removed)'\nset ylabel 'instructions'\n"
               "set style data histogram\nset style histogram clustered gap 2\n"
               "set style fill solid 0.7 border -1\nset grid ytics\nset yrange [0:*]\n"
               "set key top right\nset xtics rotate by -20\nplot ");
    for (int j = 0; j < o->nsizes; j++)
        fprintf(f, "%s'instructions.dat' using %d%s title '%zu B'", j ? ", " : "", 2 + j,
                j ? "" : ":xtic(1)", o->sizes[j]);
    fprintf(f, "\n");
    fclose(f);
}

int run_instructions(opts *o, const machine *m)
{
    static const struct {
        const char *label;
        uint64_t n;
        uint32_t live;
    } iw[] = {{"a.tight", 100000, 0}, {"b.churn", 200000, 100000}, {"g.seq", 100000, 0}};
    /* "loop" first: its count is subtracted from the others ("net") */
    static const char *const ibe[] = {
        "loop",     "tslab-h",  "tslab-m",  "tslab-h-nocnt", "tslab-h-exact", "tslab-h-nosample",
        "glibc",    "jemalloc", "mimalloc", "tcmalloc",      "floor",         "floor-call",
        "floor-cas"};
    char dir[PATH_MAX + 16];
    str_join(dir, sizeof dir, o->out, "/callgrind", NULL);
    mkdir(dir, 0755);
    FILE *csv = open_out(o, "instructions.csv");
    fprintf(csv, "workload,backend,size,pairs,instructions,instructions_per_pair,"
                 "net_of_loop_per_pair\n");
    FILE *txt = open_out(o, "instructions.txt");
    fprintf(txt,
            "Instructions per alloc+free pair (callgrind, collected around the measured loop "
            "only; includes the loop's own instructions, shown as 'loop'; net = minus loop)\n"
            "%s; %s\n",
            m->cpu, __VERSION__);
    FILE *js = open_out(o, "instructions.json");
    fprintf(js, "{\n");
    write_machine_json(js, m, o);
    fprintf(js, "  \"results\": [\n");
    bool first = true;
    for (size_t wi = 0; wi < sizeof iw / sizeof iw[0]; wi++) {
        int w = -1;
        for (int k = 0; k < NWORKLOADS; k++)
            if (strcmp(workloads[k].label, iw[wi].label) == 0)
                w = k;
        if (w < 0 || !strchr(o->letters, iw[wi].label[0]))
            continue;
        fprintf(txt, "\n== %s ==\n%-14s", iw[wi].label, "backend");
        for (int si = 0; si < o->nsizes; si++)
            fprintf(txt, " %9zuB %7s", o->sizes[si], "net");
        fprintf(txt, "\n");
        double loop_ir[8] = {0};
        for (size_t k = 0; k < sizeof ibe / sizeof ibe[0]; k++) {
            int bi = backend_index(ibe[k]);
            if (bi < 0 || backends[bi].missing ||
                (o->only_backends[0] && !be_in_list(o->only_backends, ibe[k])))
                continue;
            if (bench_kind_is_floor(backends[bi].kind) && iw[wi].label[0] != 'a')
                continue;
            fprintf(txt, "%-14s", ibe[k]);
            for (int si = 0; si < o->nsizes; si++) {
                char cg[PATH_MAX + 128];
                char leaf[128];
                snprintf(leaf, sizeof leaf, "/%s.%s.%zu.out", iw[wi].label, ibe[k], o->sizes[si]);
                str_join(cg, sizeof cg, dir, leaf, NULL);
                uint64_t n = (uint64_t)((double)iw[wi].n * (o->quick ? 0.25 : 1.0));
                int rc = run_worker(o, &backends[bi], &workloads[w], o->sizes[si], -1, n,
                                    iw[wi].live, 0, cg, w, bi);
                double ir = rc ? NAN : callgrind_total(cg);
                double per = ir / (double)n;
                if (backends[bi].kind == BENCH_KIND_NULL)
                    loop_ir[si] = per;
                double net = per - loop_ir[si];
                fprintf(txt, " %10.1f %7.1f", per, net);
                fprintf(csv, "%s,%s,%zu,%llu,%.0f,%.2f,%.2f\n", iw[wi].label, ibe[k], o->sizes[si],
                        (unsigned long long)n, ir, per, net);
                fprintf(js,
                        "%s    {\"workload\": \"%s\", \"backend\": \"%s\", \"size\": %zu, "
                        "\"pairs\": %llu, \"instructions_per_pair\": ",
                        first ? "" : ",\n", iw[wi].label, ibe[k], o->sizes[si],
                        (unsigned long long)n);
                json_num(js, per);
                fprintf(js, ", \"net_of_loop_per_pair\": ");
                json_num(js, net);
                fprintf(js, "}");
                first = false;
            }
            fprintf(txt, "\n");
        }
    }
    fprintf(js, "\n  ]\n}\n");
    fclose(js);
    fclose(csv);
    fclose(txt);
    write_instructions_plot(o);
    return 0;
}
