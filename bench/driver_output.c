/* SPDX-License-Identifier: MIT */
/* Output writers: raw.csv, summary.csv, summary.json, the text table with the targets of
 * issue 5, and the plot data and gnuplot scripts in plots/. */
#define _GNU_SOURCE
#include "driver.h"

#include <errno.h>
#include <math.h>
#include <sys/stat.h>

/* ---- Output -----------------------------------------------------------------------------------
 */

FILE *open_out(const opts *o, const char *name)
{
    char path[PATH_MAX + 64];
    str_join(path, sizeof path, o->out, "/", name);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "bench: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    return f;
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}
void json_num(FILE *f, double v)
{
    if (isnan(v) || isinf(v))
        fputs("null", f);
    else
        fprintf(f, "%.6g", v);
}

void write_machine_json(FILE *f, const machine *m, const opts *o)
{
    fprintf(f, "  \"machine\": {\"cpu\": ");
    json_str(f, m->cpu);
    fprintf(f, ", \"cpus\": %ld, \"kernel\": ", m->ncpu);
    json_str(f, m->kernel);
    fprintf(f, ", \"compiler\": ");
    json_str(f, __VERSION__);
    fprintf(f, ", \"tsc_ghz\": %.6f, \"loadavg_start\": ", o->ghz);
    json_str(f, m->load0);
    fprintf(f, ", \"loadavg_end\": ");
    json_str(f, m->load1);
    fprintf(f, ", \"date\": ");
    json_str(f, m->date);
    fprintf(f, "},\n  \"reps\": %d, \"quick\": %s, \"scale\": %g,\n", o->reps,
            o->quick ? "true" : "false", o->scale);
}

void write_raw_csv(const opts *o)
{
    FILE *f = open_out(o, "raw.csv");
    fprintf(f, "workload,backend,size,rep,metric,value\n");
    for (size_t i = 0; i < nresults; i++) {
        const result *r = &results[i];
        fprintf(f, "%s,%s,%zu,%d,%s,%.6g\n", workloads[r->wl].label, backends[r->be].name, r->size,
                r->rep, r->key, r->v);
    }
    fclose(f);
}

void write_summary(const opts *o, const machine *m)
{
    FILE *f = open_out(o, "summary.csv");
    fprintf(f, "workload,metric,size,backend,reps,median,min,max,spread_pct,reference,"
               "reference_median,ratio,ratio_rep_median,ratio_rep_min,ratio_rep_max,better\n");
    for (size_t i = 0; i < nsums; i++) {
        const summary *s = &sums[i];
        fprintf(f, "%s,%s,%zu,%s,%d,%.6g,%.6g,%.6g,%.3g,%s,%.6g,%.4g,%.4g,%.4g,%.4g,%s\n",
                workloads[s->wl].label, s->metric, s->size, backends[s->be].name, s->n, s->med,
                s->min, s->max, s->med ? 100.0 * (s->max - s->min) / fabs(s->med) : 0.0,
                s->ref_be >= 0 ? backends[s->ref_be].name : "", s->ref_med, s->ratio, s->rr_med,
                s->rr_min, s->rr_max,
                s->dir == '+'   ? "higher"
                : s->dir == '-' ? "lower"
                                : "");
    }
    fclose(f);

    f = open_out(o, "summary.json");
    fprintf(f, "{\n");
    write_machine_json(f, m, o);
    fprintf(f, "  \"results\": [\n");
    for (size_t i = 0; i < nsums; i++) {
        const summary *s = &sums[i];
        fprintf(
            f,
            "    {\"workload\": \"%s\", \"metric\": \"%s\", \"size\": %zu, \"backend\": \"%s\", "
            "\"reps\": %d, \"median\": ",
            workloads[s->wl].label, s->metric, s->size, backends[s->be].name, s->n);
        json_num(f, s->med);
        fprintf(f, ", \"min\": ");
        json_num(f, s->min);
        fprintf(f, ", \"max\": ");
        json_num(f, s->max);
        fprintf(f, ", \"reference\": ");
        if (s->ref_be >= 0)
            json_str(f, backends[s->ref_be].name);
        else
            fputs("null", f);
        fprintf(f, ", \"reference_median\": ");
        json_num(f, s->ref_med);
        fprintf(f, ", \"ratio\": ");
        json_num(f, s->ratio);
        fprintf(f, ", \"ratio_rep_median\": ");
        json_num(f, s->rr_med);
        fprintf(f, ", \"ratio_rep_min\": ");
        json_num(f, s->rr_min);
        fprintf(f, ", \"ratio_rep_max\": ");
        json_num(f, s->rr_max);
        fprintf(f, ", \"better\": \"%s\"}%s\n",
                s->dir == '+'   ? "higher"
                : s->dir == '-' ? "lower"
                                : "",
                i + 1 < nsums ? "," : "");
    }
    fprintf(f, "  ]\n}\n");
    fclose(f);
}

static void fmt_val(char *buf, size_t cap, double v, const char *metric)
{
    if (isnan(v))
        snprintf(buf, cap, "-");
    else if (strstr(metric, "bytes"))
        snprintf(buf, cap, "%.2fM", v / 1048576.0);
    else if (fabs(v) >= 1000)
        snprintf(buf, cap, "%.0f", v);
    else if (fabs(v) >= 100)
        snprintf(buf, cap, "%.1f", v);
    else
        snprintf(buf, cap, "%.3g", v);
}

/* The text table: per workload, rows = metric x size, columns = backends. Cells: median and the
 * spread (max-min over median) in percent; then the reference and tslab's ratios. */
void write_table(const opts *o, const machine *m, FILE *f)
{
    fprintf(f, "temporal-slab benchmark  (%s; %ld CPUs; %s; TSC %.3f GHz; %d repeats%s)\n", m->cpu,
            m->ncpu, __VERSION__, o->ghz, o->reps, o->quick ? "; QUICK" : "");
    fprintf(f, "load average at start: %s   at end: %s\n", m->load0, m->load1);
    fprintf(f, "cells: median [spread %% = (max-min)/median]; ratio = tslab / reference (best peer "
               "of the same run unless noted), median of per-repeat ratios in ().\n");
    for (int wi = 0; wi < NWORKLOADS; wi++) {
        const wl *w = &workloads[wi];
        int cols[NBACKENDS], nc = 0;
        for (int bi = 0; bi < NBACKENDS; bi++) {
            bool any = false;
            for (size_t i = 0; i < nsums && !any; i++)
                any = sums[i].wl == wi && sums[i].be == bi;
            if (any)
                cols[nc++] = bi;
        }
        if (!nc)
            continue;
        if (w->ratio_to)
            fprintf(f, "\n== %s ==  (reference: %s)\n", w->label, w->ratio_to);
        else
            fprintf(f, "\n== %s ==\n", w->label);
        fprintf(f, "%-22s %4s", "metric", "size");
        for (int c = 0; c < nc; c++)
            fprintf(f, " %15s", backends[cols[c]].name);
        fprintf(f, " %10s  %s\n", "ref", "ratios (tslab / ref)");
        char mlist[512];
        copy_str(mlist, sizeof mlist, w->metrics);
        for (char *save = NULL, *mm = strtok_r(mlist, ",", &save); mm;
             mm = strtok_r(NULL, ",", &save)) {
            const char *metric = mm + 1;
            for (int si = 0; si < o->nsizes; si++) {
                size_t size = o->sizes[si];
                bool any = false;
                char line[2048];
                int len = snprintf(line, sizeof line, "%-22s %4zu", metric, size);
                const summary *first = NULL;
                for (int c = 0; c < nc; c++) {
                    const summary *s = find_sum(w->label, metric, size, backends[cols[c]].name);
                    char cell[64] = "-", v[32];
                    if (s) {
                        any = true;
                        if (!first)
                            first = s;
                        fmt_val(v, sizeof v, s->med, metric);
                        double sp = s->med ? 100.0 * (s->max - s->min) / fabs(s->med) : 0;
                        if (s->n > 1)
                            snprintf(cell, sizeof cell, "%s[%.0f]", v, sp);
                        else
                            copy_str(cell, sizeof cell, v);
                    }
                    len += snprintf(line + len, sizeof line - (size_t)len, " %15s", cell);
                }
                if (!any)
                    continue;
                const summary *any_s = first;
                len += snprintf(line + len, sizeof line - (size_t)len, " %10s ",
                                any_s && any_s->ref_be >= 0 ? backends[any_s->ref_be].name : "");
                for (int c = 0; c < nc; c++) {
                    const backend *b = &backends[cols[c]];
                    if (b->peer || bench_kind_is_floor(b->kind))
                        continue;
                    const summary *s = find_sum(w->label, metric, size, b->name);
                    if (!s || isnan(s->ratio) || s->be == s->ref_be)
                        continue;
                    len += snprintf(line + len, sizeof line - (size_t)len, " %s %.2f(%.2f)",
                                    b->name, s->ratio, s->rr_med);
                }
                fprintf(f, "%s\n", line);
            }
        }
    }
}

/* ---- Targets (issue 5), evaluated on the handle API ------------------------------------------ */

static void target_line(FILE *f, const char *what, size_t size, double got, double want, bool le,
                        const char *unit)
{
    if (isnan(got)) {
        fprintf(f, "  [ -- ] %-52s %4zu B: not measured\n", what, size);
        return;
    }
    bool ok = le ? got <= want : got >= want;
    fprintf(f, "  [%s] %-52s %4zu B: %8.3f%s (target %s %.3g%s)\n", ok ? "MET " : "MISS", what,
            size, got, unit, le ? "<=" : ">=", want, unit);
}

static double med_of(const char *label, const char *metric, size_t size, const char *be)
{
    const summary *s = find_sum(label, metric, size, be);
    return s ? s->med : NAN;
}
static double ratio_of(const char *label, const char *metric, size_t size, const char *be)
{
    const summary *s = find_sum(label, metric, size, be);
    return s ? s->ratio : NAN;
}

void write_targets(const opts *o, FILE *f)
{
    fprintf(f, "\nTargets of issue 5 (tslab handle API, counters on; ratio = ours / best peer "
               "of the same run):\n");
    for (int si = 0; si < o->nsizes; si++) {
        size_t z = o->sizes[si];
        target_line(f, "a. tight pair time ratio", z, ratio_of("a.tight", "pair_ns", z, "tslab-h"),
                    0.7, true, "");
        target_line(f, "b. churn pair time ratio", z, ratio_of("b.churn", "pair_ns", z, "tslab-h"),
                    0.8, true, "");
        target_line(f, "c. alloc p99.9", z, med_of("c.latency", "alloc_p999_ns", z, "tslab-h"), 100,
                    true, " ns");
        target_line(f, "c. free p99.9", z, med_of("c.latency", "free_p999_ns", z, "tslab-h"), 100,
                    true, " ns");
        target_line(f, "c. alloc p99.99 ratio", z,
                    ratio_of("c.latency", "alloc_p9999_ns", z, "tslab-h"), 0.5, true, "");
        target_line(f, "c. free p99.99 ratio", z,
                    ratio_of("c.latency", "free_p9999_ns", z, "tslab-h"), 0.5, true, "");
        target_line(f, "d. two-thread churn throughput ratio", z,
                    ratio_of("d.mt_churn", "mops", z, "tslab-h"), 1.2, false, "");
        target_line(f, "d. producer/consumer throughput ratio", z,
                    ratio_of("d.prodcons", "mops", z, "tslab-h"), 1.0, false, "");
        if (z == 128)
            target_line(f, "e. RSS / live bytes at the last cycle", z,
                        med_of("e.rss", "rss_over_live_end", z, "tslab-h"), 1.03, true, "");
        target_line(f, "e. RSS growth, cycle 10 -> last", z,
                    med_of("e.rss", "growth_pct", z, "tslab-h"), 0.0, true, " %");
        double freed = med_of("e.rss", "rss_freed_bytes", z, "tslab-h");
        double bound = med_of("e.rss", "cache_bound_bytes", z, "tslab-h");
        target_line(f, "e. RSS after freeing all (unasked) / cache bound", z, freed / bound, 1.0,
                    true, "");
        if (isnan(med_of("f.tight", "pair_ns", z, "tslab-h")))
            continue; /* workload f runs at 128 B only */
        double off = med_of("f.tight", "pair_ns", z, "tslab-h-nocnt");
        target_line(f, "f. counters on / off, tight pair", z,
                    med_of("f.tight", "pair_ns", z, "tslab-h") / off, 1.02, true, "");
        off = med_of("f.churn", "pair_ns", z, "tslab-h-nocnt");
        target_line(f, "f. counters on / off, churn pair", z,
                    med_of("f.churn", "pair_ns", z, "tslab-h") / off, 1.02, true, "");
        double on = med_of("f.latency", "alloc_p99_ns", z, "tslab-h");
        target_line(f, "f. alloc p99 with 10 Hz scrape / without", z,
                    med_of("f.latency", "alloc_p99_ns", z, "tslab-h-scrape") / on, 1.05, true, "");
    }
    /* Issue 13: workload j runs at one nominal size (128 B, or the first size asked for). */
    size_t z = sizes_include(o, 128) ? 128 : o->sizes[0];
    const char *e = "tslab-h-epoch";
    double burst = med_of("j.lifetimes", "uncached_over_live", z, e);
    double surv = med_of("j.survivor", "freed_over_live", z, e);
    double known = med_of("j.survivor_known", "uncached_over_live", z, e);
    if (isnan(burst) && isnan(surv) && isnan(known))
        return;
    fprintf(f, "\nTargets of issue 13 (workload j, tslab-h-epoch; README.md \"Lifetimes\"):\n");
    target_line(f, "j. RSS after the burst, less cached slabs / live", z, burst, 1.25, true, "");
    target_line(f, "j. RSS after the quiet period / live", z,
                med_of("j.lifetimes", "quiet_over_live", z, e), 1.25, true, "");
    target_line(f, "j. requests/s / mimalloc-heap", z,
                ratio_of("j.lifetimes", "requests_per_s", z, e), 1.0, false, "");
    target_line(f, "j. 1%-survivor: RSS after the frees / live", z, surv, 2.0, true, "");
    /* The same test with the survivors known at allocation (README.md): the cached empty slabs
     * are read as in j.lifetimes, then the quiet period lets them decay. */
    target_line(f, "j. 1% known: RSS after the frees, less cached / live", z, known, 2.0, true, "");
    target_line(f, "j. 1% known: RSS after the quiet period / live", z,
                med_of("j.survivor_known", "quiet_over_live", z, e), 2.0, true, "");
}

/* ---- Plot data ------------------------------------------------------------------------------- */

/* One histogram file: rows = backends, columns = (median, min, max) per size that has data.
 * Returns the sizes written (bit i = o->sizes[i]); 0 when nothing was measured. */
static unsigned write_hist(const opts *o, const char *file, const char *label, const char *metric,
                           double div)
{
    char name[128];
    snprintf(name, sizeof name, "plots/%s", file);
    unsigned mask = 0;
    for (size_t i = 0; i < nsums; i++)
        if (strcmp(workloads[sums[i].wl].label, label) == 0 && strcmp(sums[i].metric, metric) == 0)
            for (int si = 0; si < o->nsizes; si++)
                if (sums[i].size == o->sizes[si])
                    mask |= 1u << si;
    if (!mask)
        return 0;
    FILE *f = open_out(o, name);
    fprintf(f, "# backend");
    for (int si = 0; si < o->nsizes; si++)
        if (mask & (1u << si))
            fprintf(f, " %zuB lo hi", o->sizes[si]);
    fprintf(f, "\n");
    for (int bi = 0; bi < NBACKENDS; bi++) {
        bool row = false;
        for (int si = 0; si < o->nsizes; si++)
            row |= find_sum(label, metric, o->sizes[si], backends[bi].name) != NULL;
        if (!row)
            continue;
        fprintf(f, "%s", backends[bi].name);
        for (int si = 0; si < o->nsizes; si++) {
            if (!(mask & (1u << si)))
                continue;
            const summary *s = find_sum(label, metric, o->sizes[si], backends[bi].name);
            if (s)
                fprintf(f, " %.6g %.6g %.6g", s->med / div, s->min / div, s->max / div);
            else
                fprintf(f, " 0 0 0");
        }
        fprintf(f, "\n");
    }
    fclose(f);
    return mask;
}

/* One table file: rows = named metrics (x axis), columns = backends. */
static bool write_lines(const opts *o, const char *file, const char *label, size_t size,
                        const char *const *metrics, const char *const *names, int nm, double div)
{
    char name[128];
    snprintf(name, sizeof name, "plots/%s", file);
    int cols[NBACKENDS], nc = 0;
    for (int bi = 0; bi < NBACKENDS; bi++)
        if (find_sum(label, metrics[0], size, backends[bi].name))
            cols[nc++] = bi;
    if (!nc)
        return false;
    FILE *f = open_out(o, name);
    fprintf(f, "x");
    for (int c = 0; c < nc; c++)
        fprintf(f, " %s", backends[cols[c]].name);
    fprintf(f, "\n");
    for (int i = 0; i < nm; i++) {
        fprintf(f, "%s", names[i]);
        for (int c = 0; c < nc; c++) {
            const summary *s = find_sum(label, metrics[i], size, backends[cols[c]].name);
            fprintf(f, " %.6g", s ? s->med / div : NAN);
        }
        fprintf(f, "\n");
    }
    fclose(f);
    return true;
}

void write_plots(const opts *o)
{
    char dir[PATH_MAX + 16];
    str_join(dir, sizeof dir, o->out, "/plots", NULL);
    mkdir(dir, 0755);
    FILE *gp = open_out(o, "plots/plots.gp");
    fprintf(gp, "# generated by tslab-bench; run: gnuplot plots.gp (in this directory)\n"
                "set terminal pngcairo size 1000,560 noenhanced font ',10'\n"
                "set style data histogram\nset style histogram errorbars gap 2 lw 1\n"
                "set style fill solid 0.7 border -1\nset grid ytics\nset key top left\n"
                "set xtics rotate by -20\n");
    static const struct {
        const char *file, *label, *metric, *title, *ylabel;
        double div;
    } hs[] = {
        {"tight", "a.tight", "pair_ns", "a. tight malloc+free pair", "ns per pair", 1},
        {"churn", "b.churn", "pair_ns", "b. churn (100k live, random replace)", "ns per pair", 1},
        {"mt_churn", "d.mt_churn", "mops", "d. two threads, independent churn",
         "M pairs / s (higher is better)", 1},
        {"prodcons", "d.prodcons", "mops", "d. producer / consumer",
         "M objects / s (higher is better)", 1},
        {"seq", "g.seq", "pair_ns", "g. 2M sequential allocs then frees", "ns per alloc+free", 1},
        {"rss_end", "e.rss", "rss_over_live_end", "e. RSS / live bytes after the last cycle",
         "ratio", 1},
        {"telemetry_tight", "f.tight", "pair_ns", "f. telemetry cost, tight pair", "ns per pair",
         1},
        {"telemetry_churn", "f.churn", "pair_ns", "f. telemetry cost, churn pair", "ns per pair",
         1},
    };
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
        char file[64];
        snprintf(file, sizeof file, "%s.dat", hs[i].file);
        unsigned mask = write_hist(o, file, hs[i].label, hs[i].metric, hs[i].div);
        if (!mask)
            continue;
        fprintf(gp, "set output '%s.png'\nset title '%s'\nset ylabel '%s'\nset yrange [0:*]\n",
                hs[i].file, hs[i].title, hs[i].ylabel);
        fprintf(gp, "plot ");
        for (int si = 0, col = 0; si < o->nsizes; si++) {
            if (!(mask & (1u << si)))
                continue;
            fprintf(gp, "%s'%s' using %d:%d:%d%s title '%zu B'", col ? ", " : "", file, 2 + 3 * col,
                    3 + 3 * col, 4 + 3 * col, col ? "" : ":xtic(1)", o->sizes[si]);
            col++;
        }
        fprintf(gp, "\n");
    }
    static const char *const lat_a[] = {"alloc_p50_ns", "alloc_p99_ns", "alloc_p999_ns",
                                        "alloc_p9999_ns"};
    static const char *const lat_f[] = {"free_p50_ns", "free_p99_ns", "free_p999_ns",
                                        "free_p9999_ns"};
    static const char *const lat_n[] = {"p50", "p99", "p99.9", "p99.99"};
    static const char *const rss_m[] = {"rss_fill_bytes", "rss_c10_bytes",   "rss_c100_bytes",
                                        "rss_end_bytes",  "rss_freed_bytes", "rss_purged_bytes"};
    static const char *const rss_n[] = {"filled",     "cycle10", "cycle100",
                                        "last-cycle", "freed",   "purged"};
    fprintf(gp,
            "set style data linespoints\nset logscale y\nset yrange [*:*]\nset xtics norotate\n");
    for (int si = 0; si < o->nsizes; si++) {
        size_t z = o->sizes[si];
        char file[64];
        snprintf(file, sizeof file, "latency_alloc_%zu.dat", z);
        if (write_lines(o, file, "c.latency", z, lat_a, lat_n, 4, 1))
            fprintf(gp,
                    "set output 'latency_alloc_%zu.png'\nset title 'c. alloc latency, %zu B "
                    "(TSC step ~10 ns; p99.99 is host noise)'\nset ylabel 'ns'\n"
                    "plot for [c=2:*] '%s' using c:xtic(1) title columnheader(c)\n",
                    z, z, file);
        snprintf(file, sizeof file, "latency_free_%zu.dat", z);
        if (write_lines(o, file, "c.latency", z, lat_f, lat_n, 4, 1))
            fprintf(gp,
                    "set output 'latency_free_%zu.png'\nset title 'c. free latency, %zu B'\n"
                    "set ylabel 'ns'\nplot for [c=2:*] '%s' using c:xtic(1) title "
                    "columnheader(c)\n",
                    z, z, file);
    }
    fprintf(gp, "unset logscale y\nset yrange [0:*]\n");
    for (int si = 0; si < o->nsizes; si++) {
        size_t z = o->sizes[si];
        char file[64];
        snprintf(file, sizeof file, "rss_%zu.dat", z);
        if (write_lines(o, file, "e.rss", z, rss_m, rss_n, 6, 1048576.0))
            fprintf(gp,
                    "set output 'rss_%zu.png'\nset title 'e. RSS above baseline, 100k live "
                    "x %zu B (%.1f MiB live)'\nset ylabel 'MiB'\nplot for [c=2:*] '%s' "
                    "using c:xtic(1) title columnheader(c)\n",
                    z, z, 100000.0 * (double)z / 1048576.0, file);
    }
    fclose(gp);
}
