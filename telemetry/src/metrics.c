/* SPDX-License-Identifier: MIT */
/* Rendering entry points: snapshot, format, time. */
#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <time.h>

#include "telemetry.h"

/* The numbers are written with snprintf("%g") and read back with strtod: both follow
 * LC_NUMERIC, which an application may have set to a locale with a decimal comma. Rendering
 * switches the calling thread to the "C" locale (uselocale is per thread) and back. */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void) { c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0); }

/* Rough size of the output, so most renders never reallocate. */
static size_t size_hint(const tslab__snapshot *snap)
{
    size_t classes = 0, labels = 0;
    for (size_t i = 0; i < snap->alloc_count; i++) {
        classes += snap->allocs[i].class_count;
        labels += snap->epochs != NULL ? snap->epochs[i].label_count : 0;
    }
    return 4096 + (classes * tslab__field_count + labels * tslab__epoch_field_count) * 96;
}

int tslab__render(const tslab__snapshot *snap, tslab_format fmt, char **out, size_t *out_len)
{
    if (snap == NULL || out == NULL || out_len == NULL)
        return -EINVAL;
    if (fmt != TSLAB_FORMAT_PROMETHEUS && fmt != TSLAB_FORMAT_OPENMETRICS &&
        fmt != TSLAB_FORMAT_JSON)
        return -EINVAL;
    pthread_once(&c_locale_once, c_locale_init);
    locale_t saved = c_locale != (locale_t)0 ? uselocale(c_locale) : (locale_t)0;

    tslab__buf b;
    tslab__buf_init(&b, size_hint(snap));
    int err = 0;
    if (fmt == TSLAB_FORMAT_JSON)
        err = tslab__render_json(snap, &b);
    else
        tslab__render_prom(snap, fmt == TSLAB_FORMAT_OPENMETRICS, &b);

    if (saved != (locale_t)0)
        uselocale(saved);
    if (err != 0) {
        tslab__buf_free(&b);
        return err;
    }
    return tslab__buf_finish(&b, out, out_len);
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int tslab__metrics_render(tslab *const *allocs, size_t n, tslab_format fmt,
                          tslab__scrape_counters *counters, char **out, size_t *out_len)
{
    if (out == NULL || out_len == NULL || (unsigned)fmt > TSLAB_FORMAT_JSON)
        return -EINVAL;
    uint64_t start = monotonic_ns();
    tslab__snapshot snap;
    int err = tslab__snapshot_take(allocs, n, counters, &snap);
    if (err != 0)
        return err;
    err = tslab__render(&snap, fmt, out, out_len);
    tslab__snapshot_free(&snap);
    atomic_store_explicit(&counters->last_render_ns, monotonic_ns() - start, memory_order_relaxed);
    return err;
}

/* Renders through the public call (no exporter) are counted here. */
static tslab__scrape_counters process_counters;

int tslab_metrics_render(tslab *const *allocs, size_t n, tslab_format fmt, char **out,
                         size_t *out_len)
{
    return tslab__metrics_render(allocs, n, fmt, &process_counters, out, out_len);
}
