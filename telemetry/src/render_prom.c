/* SPDX-License-Identifier: MIT */
/* Prometheus text exposition format 0.0.4 and OpenMetrics 1.0.
 *
 * Both formats share everything but three details, all handled here:
 *   - a counter's family name in HELP/TYPE: "x_total" in 0.0.4, "x" in OpenMetrics (its samples
 *     are "x_total" in both);
 *   - HELP escaping: 0.0.4 escapes backslash and newline, OpenMetrics also the double quote;
 *   - OpenMetrics ends with "# EOF".
 * Label values escape backslash, double quote and newline in both, and are made valid UTF-8.
 * Every family is written contiguously, once, with its HELP and TYPE first. */
#include <string.h>

#include "telemetry.h"

static const char suffix_total[] = "_total";

static void emit_label_cp(tslab__buf *b, const char *cp, size_t n)
{
    if (n == 1 && (*cp == '\\' || *cp == '"')) {
        tslab__buf_putc(b, '\\');
        tslab__buf_putc(b, *cp);
    } else if (n == 1 && *cp == '\n')
        tslab__buf_puts(b, "\\n");
    else
        tslab__buf_put(b, cp, n);
}

static void emit_help_cp(tslab__buf *b, const char *cp, size_t n)
{
    if (n == 1 && *cp == '\\')
        tslab__buf_puts(b, "\\\\");
    else if (n == 1 && *cp == '\n')
        tslab__buf_puts(b, "\\n");
    else
        tslab__buf_put(b, cp, n);
}

static void emit_help_om_cp(tslab__buf *b, const char *cp, size_t n)
{
    if (n == 1 && *cp == '"')
        tslab__buf_puts(b, "\\\"");
    else
        emit_help_cp(b, cp, n);
}

/* "# HELP fam help\n# TYPE fam type\n" for the family whose samples are called `name`. */
static void family_header(tslab__buf *b, bool om, const char *prefix, const char *name,
                          tslab__kind kind, const char *help)
{
    size_t len = strlen(name);
    size_t sl = sizeof suffix_total - 1;
    if (om && kind == TSLAB__COUNTER && len > sl && strcmp(name + len - sl, suffix_total) == 0)
        len -= sl;
    tslab__buf_puts(b, "# HELP ");
    tslab__buf_puts(b, prefix);
    tslab__buf_put(b, name, len);
    tslab__buf_putc(b, ' ');
    tslab__buf_utf8(b, help, strlen(help), om ? emit_help_om_cp : emit_help_cp);
    tslab__buf_puts(b, "\n# TYPE ");
    tslab__buf_puts(b, prefix);
    tslab__buf_put(b, name, len);
    tslab__buf_puts(b, kind == TSLAB__COUNTER     ? " counter\n"
                       : kind == TSLAB__HISTOGRAM ? " histogram\n"
                                                  : " gauge\n");
}

/* A label set under construction: `sep` is what goes before the next label. */
typedef struct labels {
    tslab__buf *b;
    char sep;
} labels;

static labels labels_open(tslab__buf *b, const char *prefix, const char *name)
{
    tslab__buf_puts(b, prefix);
    tslab__buf_puts(b, name);
    return (labels){b, '{'};
}

static void label(labels *l, const char *key, const char *value, size_t value_len)
{
    tslab__buf_putc(l->b, l->sep);
    tslab__buf_puts(l->b, key);
    tslab__buf_puts(l->b, "=\"");
    tslab__buf_utf8(l->b, value, value_len, emit_label_cp);
    tslab__buf_putc(l->b, '"');
    l->sep = ',';
}

static void label_u64(labels *l, const char *key, uint64_t v)
{
    tslab__buf_putc(l->b, l->sep);
    tslab__buf_puts(l->b, key);
    tslab__buf_puts(l->b, "=\"");
    tslab__buf_u64(l->b, v);
    tslab__buf_putc(l->b, '"');
    l->sep = ',';
}

static void labels_close(labels *l)
{
    if (l->sep == ',')
        tslab__buf_putc(l->b, '}');
    tslab__buf_putc(l->b, ' ');
}

static size_t name_len(const tslab_stats *s) { return strnlen(s->name, sizeof s->name); }

/* One sample of row `f` for class `c`, or for tslab_stats.unattributed (class="none"). */
static void field_sample(tslab__buf *b, const tslab__field *f, const tslab_stats *s,
                         const tslab_class_stats *c, bool unattributed)
{
    labels l = labels_open(b, "tslab_", f->metric);
    label(&l, "allocator", s->name, name_len(s));
    if (unattributed)
        label(&l, "class", "none", 4);
    else
        label_u64(&l, "class", c->object_size);
    if (f->label_key[0] != '\0')
        label(&l, f->label_key, f->label_value, strlen(f->label_value));
    labels_close(&l);
    tslab__buf_u64(b, tslab__field_get(c, f));
    tslab__buf_putc(b, '\n');
}

/* The family of rows named like tslab__fields[first] (rows of one family need not be adjacent
 * in TSLAB_CLASS_STATS, though they are). */
static void field_family(tslab__buf *b, bool om, const tslab__snapshot *snap, size_t first)
{
    const tslab__field *head = &tslab__fields[first];
    family_header(b, om, "tslab_", head->metric, head->kind, head->help);
    for (size_t a = 0; a < snap->alloc_count; a++) {
        const tslab_stats *s = &snap->allocs[a];
        for (uint32_t ci = 0; ci < s->class_count && ci < TSLAB_CLASSES_MAX; ci++) {
            for (size_t i = first; i < tslab__field_count; i++) {
                if (strcmp(tslab__fields[i].metric, head->metric) == 0)
                    field_sample(b, &tslab__fields[i], s, &s->classes[ci], false);
            }
        }
        for (size_t i = first; i < tslab__field_count; i++) {
            const tslab__field *f = &tslab__fields[i];
            if (strcmp(f->metric, head->metric) == 0 && tslab__field_unattributed(f))
                field_sample(b, f, s, &s->unattributed, true);
        }
    }
}

/* Cumulative bucket series of one class: name{allocator,class,<le>} count, for each bound and
 * +Inf; `le` is the bound's label ("le" in a histogram, where only it may be). */
static void bucket_series(tslab__buf *b, const char *name, const char *le, const tslab_stats *s,
                          uint64_t object_size, const uint64_t *cum)
{
    for (uint32_t k = 0; k <= TSLAB_LIFETIME_BUCKETS; k++) {
        labels l = labels_open(b, "", name);
        label(&l, "allocator", s->name, name_len(s));
        label_u64(&l, "class", object_size);
        tslab__buf_putc(b, ',');
        tslab__buf_puts(b, le);
        tslab__buf_puts(b, "=\"");
        if (k < TSLAB_LIFETIME_BUCKETS)
            tslab__buf_double(b, tslab__lifetime_bounds[k]);
        else
            tslab__buf_puts(b, "+Inf");
        tslab__buf_putc(b, '"');
        labels_close(&l);
        tslab__buf_u64(b, cum[k]);
        tslab__buf_putc(b, '\n');
    }
}

/* The sampler's families: lifetimes of sampled objects freed (a histogram per class), and the
 * ages of sampled objects still live (a gauge per class and bucket, cumulative like a
 * histogram's, so that classes and instances sum and a heatmap can show both side by side). */
static void lifetime_families(tslab__buf *b, bool om, const tslab__snapshot *snap)
{
    if (snap->profiles == NULL)
        return;
    family_header(b, om, "", "tslab_object_lifetime_seconds", TSLAB__HISTOGRAM,
                  "Lifetimes of sampled objects, from allocation to free (sampled counts).");
    for (size_t a = 0; a < snap->alloc_count; a++) {
        const tslab_stats *s = &snap->allocs[a];
        const tslab_profile *p = snap->profiles[a];
        for (uint32_t ci = 0; p != NULL && ci < p->class_count && ci < s->class_count; ci++) {
            const tslab_profile_class *pc = &p->classes[ci];
            bucket_series(b, "tslab_object_lifetime_seconds_bucket", "le", s, pc->object_size,
                          pc->lifetime_buckets);
            labels l = labels_open(b, "", "tslab_object_lifetime_seconds_sum");
            label(&l, "allocator", s->name, name_len(s));
            label_u64(&l, "class", pc->object_size);
            labels_close(&l);
            tslab__buf_double(b, (double)pc->lifetime_sum_ns / 1e9);
            tslab__buf_putc(b, '\n');
            l = labels_open(b, "", "tslab_object_lifetime_seconds_count");
            label(&l, "allocator", s->name, name_len(s));
            label_u64(&l, "class", pc->object_size);
            labels_close(&l);
            tslab__buf_u64(b, pc->lifetime_buckets[TSLAB_LIFETIME_BUCKETS]);
            tslab__buf_putc(b, '\n');
        }
    }
    family_header(b, om, "", "tslab_sampled_live_objects_by_age", TSLAB__GAUGE,
                  "Sampled objects still live whose age is at most age_le seconds (cumulative).");
    for (size_t a = 0; a < snap->alloc_count; a++) {
        const tslab_stats *s = &snap->allocs[a];
        const tslab_profile *p = snap->profiles[a];
        for (uint32_t ci = 0; p != NULL && ci < p->class_count && ci < s->class_count; ci++)
            bucket_series(b, "tslab_sampled_live_objects_by_age", "age_le", s,
                          p->classes[ci].object_size, p->classes[ci].age_buckets);
    }
}

/* One value per class of every allocator with a profile: name{allocator,class} v. */
static void class_series(tslab__buf *b, const char *name, const tslab_stats *s,
                         uint64_t object_size, bool is_double, uint64_t u, double d)
{
    labels l = labels_open(b, "", name);
    label(&l, "allocator", s->name, name_len(s));
    label_u64(&l, "class", object_size);
    labels_close(&l);
    if (is_double)
        tslab__buf_double(b, d);
    else
        tslab__buf_u64(b, u);
    tslab__buf_putc(b, '\n');
}

/* Contention on the class locks (every wait counted, not sampled). */
static void contention_families(tslab__buf *b, bool om, const tslab__snapshot *snap)
{
    if (snap->profiles == NULL)
        return;
    for (int fam = 0; fam < 2; fam++) {
        const char *name =
            fam == 0 ? "tslab_class_lock_waits_total" : "tslab_class_lock_wait_seconds_total";
        family_header(b, om, "", name, TSLAB__COUNTER,
                      fam == 0 ? "Times a thread found its class's slow-path lock taken and waited."
                               : "Time threads spent waiting for the class's slow-path lock.");
        for (size_t a = 0; a < snap->alloc_count; a++) {
            const tslab_stats *s = &snap->allocs[a];
            const tslab_profile *p = snap->profiles[a];
            for (uint32_t ci = 0; p != NULL && ci < p->class_count && ci < s->class_count; ci++) {
                const tslab_profile_class *pc = &p->classes[ci];
                class_series(b, name, s, pc->object_size, fam == 1, pc->lock_waits,
                             (double)pc->lock_wait_ns / 1e9);
            }
        }
    }
}

/* A value kept in nanoseconds, in seconds; any other as the integer it is. */
static void epoch_value(tslab__buf *b, uint64_t v, bool ns)
{
    if (ns)
        tslab__buf_double(b, (double)v / 1e9);
    else
        tslab__buf_u64(b, v);
    tslab__buf_putc(b, '\n');
}

/* Epochs: one family per row of TSLAB_EPOCH_STATS with a series per allocator and epoch label
 * (at most TSLAB_EPOCH_LABELS_MAX + 1 of them: the core folds the rest into "other"), then each
 * allocator's leak threshold. */
static void epoch_families(tslab__buf *b, bool om, const tslab__snapshot *snap)
{
    if (snap->epochs == NULL)
        return;
    for (size_t i = 0; i < tslab__epoch_field_count; i++) {
        const tslab__epoch_field *f = &tslab__epoch_fields[i];
        family_header(b, om, "tslab_", f->metric, f->kind, f->help);
        for (size_t a = 0; a < snap->alloc_count; a++) {
            const tslab_stats *s = &snap->allocs[a];
            const tslab_epoch_stats *e = &snap->epochs[a];
            for (uint32_t k = 0; k < e->label_count && k <= TSLAB_EPOCH_LABELS_MAX; k++) {
                const tslab_epoch_label_stats *ls = &e->labels[k];
                labels l = labels_open(b, "tslab_", f->metric);
                label(&l, "allocator", s->name, name_len(s));
                label(&l, "label", ls->label, strnlen(ls->label, sizeof ls->label));
                labels_close(&l);
                epoch_value(b, tslab__epoch_field_get(ls, f), tslab__epoch_field_ns(f));
            }
        }
    }
    family_header(b, om, "", "tslab_epoch_leak_threshold_seconds", TSLAB__GAUGE,
                  "Age since close beyond which a closed epoch that still holds live objects "
                  "counts as leaking (tslab_config.epoch_leak_ms).");
    for (size_t a = 0; a < snap->alloc_count; a++) {
        const tslab_stats *s = &snap->allocs[a];
        labels l = labels_open(b, "", "tslab_epoch_leak_threshold_seconds");
        label(&l, "allocator", s->name, name_len(s));
        labels_close(&l);
        epoch_value(b, snap->epochs[a].leak_threshold_ns, true);
    }
}

static void scalar_family(tslab__buf *b, bool om, const tslab__snapshot *snap,
                          const tslab__scalar *sc)
{
    family_header(b, om, "", sc->metric, sc->kind, sc->help);
    tslab__buf_puts(b, sc->metric);
    tslab__buf_putc(b, ' ');
    const char *p = (const char *)snap + sc->offset;
    if (sc->is_double)
        tslab__buf_double(b, *(const double *)(const void *)p);
    else
        tslab__buf_u64(b, *(const uint64_t *)(const void *)p);
    tslab__buf_putc(b, '\n');
}

void tslab__render_prom(const tslab__snapshot *snap, bool om, tslab__buf *b)
{
    family_header(b, om, "", "tslab_build_info", TSLAB__GAUGE,
                  "Version of the temporal-slab library; the value is always 1.");
    labels l = labels_open(b, "", "tslab_build_info");
    label(&l, "version", TSLAB_VERSION_STRING, strlen(TSLAB_VERSION_STRING));
    labels_close(&l);
    tslab__buf_puts(b, "1\n");

    family_header(b, om, "", "tslab_reserved_bytes", TSLAB__GAUGE,
                  "Address space reserved by the allocator (not memory in use).");
    for (size_t a = 0; a < snap->alloc_count; a++) {
        const tslab_stats *s = &snap->allocs[a];
        l = labels_open(b, "", "tslab_reserved_bytes");
        label(&l, "allocator", s->name, name_len(s));
        labels_close(&l);
        tslab__buf_u64(b, s->reserved_bytes);
        tslab__buf_putc(b, '\n');
    }

    /* Instance gauges (TSLAB_INSTANCE_STATS): one family per metric name, members in list order. */
#define TSLAB__ISTAT(field, metric, lk, lv, help)                                                  \
    if (strcmp(metric, prev_metric) != 0)                                                          \
        family_header(b, om, "", "tslab_" metric, TSLAB__GAUGE, help);                             \
    prev_metric = metric;                                                                          \
    for (size_t a = 0; a < snap->alloc_count; a++) {                                               \
        const tslab_stats *s = &snap->allocs[a];                                                   \
        l = labels_open(b, "", "tslab_" metric);                                                   \
        label(&l, "allocator", s->name, name_len(s));                                              \
        if (lk[0] != '\0')                                                                         \
            label(&l, lk, lv, strlen(lv));                                                         \
        labels_close(&l);                                                                          \
        tslab__buf_u64(b, s->instance.field);                                                      \
        tslab__buf_putc(b, '\n');                                                                  \
    }
    const char *prev_metric = "";
    TSLAB_INSTANCE_STATS(TSLAB__ISTAT)
#undef TSLAB__ISTAT

    for (size_t i = 0; i < tslab__field_count; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(tslab__fields[j].metric, tslab__fields[i].metric) == 0;
        if (!seen)
            field_family(b, om, snap, i);
    }

    epoch_families(b, om, snap);
    lifetime_families(b, om, snap);
    contention_families(b, om, snap);

    for (size_t i = 0; i < tslab__scalar_count; i++)
        scalar_family(b, om, snap, &tslab__scalars[i]);

    if (om)
        tslab__buf_puts(b, "# EOF\n");
}
