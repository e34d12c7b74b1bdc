/* SPDX-License-Identifier: MIT */
/* Statistics: per (workload, metric, size, backend) the median, spread and the ratio to the
 * reference (the best peer of the same repeat, or a fixed backend). */
#define _GNU_SOURCE
#include "driver.h"

#include <math.h>
#include <stdlib.h>

/* ---- Statistics
 * ----------------------------------------------------------------------------------- */

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

summary *sums;
size_t nsums;
static size_t capsums;

/* Value of backend bi in repeat rep, or NAN. */
static double val(int wi, int bi, size_t size, int rep, const char *m)
{
    double v;
    return find_result(wi, bi, size, rep, m, &v) ? v : NAN;
}

/* Backend bi's values of metric m over the repeats (missing ones left out) into v[64]; returns
 * how many. */
static int rep_values(const opts *o, int wi, int bi, size_t size, const char *m, double *v)
{
    int n = 0;
    for (int r = 0; r < o->reps && n < 64; r++) {
        double x = val(wi, bi, size, r, m);
        if (!isnan(x))
            v[n++] = x;
    }
    return n;
}

void summarize(const opts *o)
{
    for (int wi = 0; wi < NWORKLOADS; wi++) {
        const wl *w = &workloads[wi];
        char mlist[512];
        copy_str(mlist, sizeof mlist, w->metrics);
        for (char *save = NULL, *m = strtok_r(mlist, ",", &save); m;
             m = strtok_r(NULL, ",", &save)) {
            char dir = m[0];
            const char *metric = m + 1;
            for (int si = 0; si < o->nsizes; si++) {
                size_t size = o->sizes[si];
                /* medians of every backend first, to find the reference */
                double meds[NBACKENDS];
                for (int bi = 0; bi < NBACKENDS; bi++) {
                    double v[64];
                    int n = rep_values(o, wi, bi, size, metric, v);
                    meds[bi] = n ? median(v, n) : NAN;
                }
                int ref = -1;
                if (w->ratio_to)
                    ref = backend_index(w->ratio_to);
                else
                    for (int bi = 0; bi < NBACKENDS; bi++)
                        if (backends[bi].peer && !isnan(meds[bi]) &&
                            (ref < 0 || (dir == '+' ? meds[bi] > meds[ref] : meds[bi] < meds[ref])))
                            ref = bi;
                for (int bi = 0; bi < NBACKENDS; bi++) {
                    double v[64];
                    int n = rep_values(o, wi, bi, size, metric, v);
                    if (!n)
                        continue;
                    if (nsums == capsums) {
                        capsums = capsums ? 2 * capsums : 1024;
                        sums = realloc(sums, capsums * sizeof *sums);
                        if (!sums)
                            exit(1);
                    }
                    summary *s = &sums[nsums++];
                    memset(s, 0, sizeof *s);
                    s->wl = wi;
                    s->be = bi;
                    s->size = size;
                    copy_str(s->metric, sizeof s->metric, metric);
                    s->dir = dir;
                    s->n = n;
                    s->med = median(v, n);
                    s->min = v[0];
                    s->max = v[n - 1];
                    s->ref_be = dir == '=' ? -1 : ref;
                    s->ref_med = s->ref_be >= 0 ? meds[ref] : NAN;
                    s->ratio = s->ref_be >= 0 && s->ref_med != 0 ? s->med / s->ref_med : NAN;
                    s->rr_med = s->rr_min = s->rr_max = NAN;
                    if (s->ref_be < 0)
                        continue;
                    /* per-repeat ratio against the best peer *of that repeat* */
                    double rr[64];
                    int nr = 0;
                    for (int r = 0; r < o->reps && nr < 64; r++) {
                        double x = val(wi, bi, size, r, metric), best = NAN;
                        if (isnan(x))
                            continue;
                        if (w->ratio_to)
                            best = val(wi, ref, size, r, metric);
                        else
                            for (int pj = 0; pj < NBACKENDS; pj++) {
                                double y = val(wi, pj, size, r, metric);
                                if (!backends[pj].peer || isnan(y))
                                    continue;
                                if (isnan(best) || (dir == '+' ? y > best : y < best))
                                    best = y;
                            }
                        if (!isnan(best) && best != 0)
                            rr[nr++] = x / best;
                    }
                    if (nr) {
                        s->rr_n = nr;
                        s->rr_med = median(rr, nr);
                        s->rr_min = rr[0];
                        s->rr_max = rr[nr - 1];
                    }
                }
            }
        }
    }
}

const summary *find_sum(const char *label, const char *metric, size_t size, const char *be)
{
    for (size_t i = 0; i < nsums; i++) {
        const summary *s = &sums[i];
        if (strcmp(workloads[s->wl].label, label) == 0 && strcmp(s->metric, metric) == 0 &&
            s->size == size && strcmp(backends[s->be].name, be) == 0)
            return s;
    }
    return NULL;
}
