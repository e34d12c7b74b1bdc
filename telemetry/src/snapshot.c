/* SPDX-License-Identifier: MIT */
/* The snapshot every renderer reads, and the tables that name its fields. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "telemetry.h"

/* ---- Tables ------------------------------------------------------------------------------- */

/* One row per TSLAB_CLASS_STATS entry: adding a counter to the core adds it here, to the
 * Prometheus output and to the JSON document with no other change. */
#define FIELD_ROW(field, source, type, metric, lk, lv, help)                                       \
    {#field, offsetof(tslab_class_stats, field), TSLAB__##type, metric, lk, lv, help},

const tslab__field tslab__fields[] = {TSLAB_CLASS_STATS(FIELD_ROW)};
const size_t tslab__field_count = sizeof tslab__fields / sizeof tslab__fields[0];

/* One row per TSLAB_EPOCH_STATS entry, likewise. */
#define EPOCH_ROW(field, type, metric, help)                                                       \
    {#field, offsetof(tslab_epoch_label_stats, field), TSLAB__##type, metric, help},

const tslab__epoch_field tslab__epoch_fields[] = {TSLAB_EPOCH_STATS(EPOCH_ROW)};
const size_t tslab__epoch_field_count = sizeof tslab__epoch_fields / sizeof tslab__epoch_fields[0];
#undef EPOCH_ROW

/* TSLAB_LIFETIME_BOUNDS_NS in seconds: 1 ms .. 1 day, a decade apart up to 10 s, then the
 * minute, ten minutes, hour, six hours and day that object lifetimes are talked about in. */
const double tslab__lifetime_bounds[TSLAB_LIFETIME_BUCKETS] = {0.001, 0.01, 0.1,  1,     10,
                                                               60,    600,  3600, 21600, 86400};
#undef FIELD_ROW

#define SNAP_OFF(member) offsetof(tslab__snapshot, member)
#define PROC_OFF(member) (offsetof(tslab__snapshot, process) + offsetof(tslab__process, member))

/* HELP texts of the process_* metrics are those of the Prometheus client libraries, so these
 * series look the same as every other process's. */
const tslab__scalar tslab__scalars[] = {
    {"tslab_exporter_scrapes_total", "exporter", "scrapes_total", TSLAB__COUNTER, false,
     SNAP_OFF(scrapes_total), "Metric renders served, including this one."},
    {"tslab_exporter_render_seconds", "exporter", "render_seconds", TSLAB__GAUGE, true,
     SNAP_OFF(render_seconds), "Duration of the previous render (snapshot and formatting)."},
    {"process_resident_memory_bytes", "process", "resident_bytes", TSLAB__GAUGE, false,
     PROC_OFF(resident_bytes), "Resident memory size in bytes."},
    {"process_virtual_memory_bytes", "process", "virtual_bytes", TSLAB__GAUGE, false,
     PROC_OFF(virtual_bytes), "Virtual memory size in bytes."},
    {"process_start_time_seconds", "process", "start_time_seconds", TSLAB__GAUGE, true,
     PROC_OFF(start_time_seconds), "Start time of the process since unix epoch in seconds."},
    {"process_open_fds", "process", "open_fds", TSLAB__GAUGE, false, PROC_OFF(open_fds),
     "Number of open file descriptors."},
    {"process_max_fds", "process", "max_fds", TSLAB__GAUGE, false, PROC_OFF(max_fds),
     "Maximum number of open file descriptors."},
    {"process_threads", "process", "threads", TSLAB__GAUGE, false, PROC_OFF(threads),
     "Number of OS threads in the process."},
    {"process_cpu_seconds_total", "process", "cpu_seconds_total", TSLAB__COUNTER, true,
     PROC_OFF(cpu_seconds_total), "Total user and system CPU time spent in seconds."},
};
const size_t tslab__scalar_count = sizeof tslab__scalars / sizeof tslab__scalars[0];

/* ---- Snapshot ----------------------------------------------------------------------------- */

int tslab__names_check(tslab *const *allocs, size_t n)
{
    if (n > 0 && allocs == NULL)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (allocs[i] == NULL)
            return -EINVAL;
        const char *name = tslab_name(allocs[i]);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(name, tslab_name(allocs[j])) == 0)
                return -EINVAL;
        }
    }
    return 0;
}

int tslab__snapshot_take(tslab *const *allocs, size_t n, tslab__scrape_counters *counters,
                         tslab__snapshot *snap)
{
    memset(snap, 0, sizeof *snap);
    int err = tslab__names_check(allocs, n);
    if (err != 0)
        return err;
    tslab_stats *stats = NULL;
    tslab_profile **prof = NULL;
    tslab_epoch_stats *epochs = NULL;
    if (n > 0) {
        stats = calloc(n, sizeof *stats);
        prof = calloc(n, sizeof *prof);
        epochs = calloc(n, sizeof *epochs);
        if (stats == NULL || prof == NULL || epochs == NULL)
            err = -ENOMEM;
    }
    for (size_t i = 0; i < n && err == 0; i++) {
        err = tslab_stats_read(allocs[i], &stats[i]);
        if (err == 0)
            err = tslab_profile_read(allocs[i], &prof[i]);
        if (err == 0)
            err = tslab_epoch_stats_get(allocs[i], &epochs[i], sizeof epochs[i]);
    }
    if (err != 0) {
        for (size_t i = 0; prof != NULL && i < n; i++)
            tslab_profile_free(prof[i]);
        free(prof);
        free(stats);
        free(epochs);
        return err;
    }
    snap->profiles = prof;
    snap->epochs = epochs;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snap->version = TSLAB__SNAPSHOT_VERSION;
    snap->timestamp_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    snap->allocs = stats;
    snap->alloc_count = n;
    (void)tslab__procfs_read(&snap->process); /* unreadable fields stay 0 */
    snap->scrapes_total =
        atomic_fetch_add_explicit(&counters->scrapes, 1, memory_order_relaxed) + 1;
    snap->render_seconds =
        (double)atomic_load_explicit(&counters->last_render_ns, memory_order_relaxed) / 1e9;
    return 0;
}

void tslab__snapshot_free(tslab__snapshot *snap)
{
    for (size_t i = 0; snap->profiles != NULL && i < snap->alloc_count; i++)
        tslab_profile_free(snap->profiles[i]);
    free((void *)snap->profiles);
    snap->profiles = NULL;
    free((void *)snap->allocs);
    snap->allocs = NULL;
    free((void *)snap->epochs);
    snap->epochs = NULL;
    snap->alloc_count = 0;
}
