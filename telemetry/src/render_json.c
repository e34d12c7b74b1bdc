/* SPDX-License-Identifier: MIT */
/* The JSON document (schema_version 1, documented field by field in telemetry/README.md).
 *
 * cJSON keeps numbers as doubles and would print 2^53+1 as 9.00719925474099e+15, so every
 * number is formatted here and inserted raw: integers exactly, doubles in their shortest
 * round-trip form. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "telemetry.h"

#define JSON_SCHEMA_VERSION 1

typedef struct json {
    bool ok; /* false after any allocation failure */
} json;

static cJSON *check(json *j, cJSON *item)
{
    if (item == NULL)
        j->ok = false;
    return item;
}

static void add_u64(json *j, cJSON *obj, const char *key, uint64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    check(j, cJSON_AddRawToObject(obj, key, tmp));
}

static void add_double(json *j, cJSON *obj, const char *key, double v)
{
    if (!isfinite(v)) { /* JSON has no NaN or infinity */
        check(j, cJSON_AddNullToObject(obj, key));
        return;
    }
    tslab__buf b;
    tslab__buf_init(&b, 48);
    tslab__buf_double(&b, v);
    if (b.failed)
        j->ok = false;
    else
        check(j, cJSON_AddRawToObject(obj, key, b.data));
    tslab__buf_free(&b);
}

static void emit_plain(tslab__buf *b, const char *cp, size_t n) { tslab__buf_put(b, cp, n); }

/* A string value made valid UTF-8 first (cJSON copies bytes as they are). */
static void add_string(json *j, cJSON *obj, const char *key, const char *s, size_t n)
{
    tslab__buf b;
    tslab__buf_init(&b, n + 8);
    tslab__buf_utf8(&b, s, n, emit_plain);
    if (b.failed)
        j->ok = false;
    else
        check(j, cJSON_AddStringToObject(obj, key, b.data));
    tslab__buf_free(&b);
}

static void add_scalars(json *j, cJSON *root, const tslab__snapshot *snap, const char *section)
{
    cJSON *obj = check(j, cJSON_AddObjectToObject(root, section));
    if (obj == NULL)
        return;
    for (size_t i = 0; i < tslab__scalar_count; i++) {
        const tslab__scalar *sc = &tslab__scalars[i];
        if (strcmp(sc->section, section) != 0)
            continue;
        const char *p = (const char *)snap + sc->offset;
        if (sc->is_double)
            add_double(j, obj, sc->key, *(const double *)(const void *)p);
        else
            add_u64(j, obj, sc->key, *(const uint64_t *)(const void *)p);
    }
}

/* key: [c0, c1, ...] of TSLAB_LIFETIME_BUCKETS + 1 cumulative counts (the last is +Inf). */
static void add_buckets(json *j, cJSON *obj, const char *key, const uint64_t *cum)
{
    cJSON *arr = check(j, cJSON_AddArrayToObject(obj, key));
    for (uint32_t k = 0; arr != NULL && k <= TSLAB_LIFETIME_BUCKETS; k++) {
        char tmp[24];
        snprintf(tmp, sizeof tmp, "%" PRIu64, cum[k]);
        cJSON *n = check(j, cJSON_CreateRaw(tmp));
        if (n != NULL && !cJSON_AddItemToArray(arr, n)) {
            cJSON_Delete(n);
            j->ok = false;
        }
    }
}

/* The sampler's view of one class: "lifetime" {buckets, sum_seconds, count} of sampled frees
 * and "live_ages" (cumulative counts of sampled live objects by age), both on
 * lifetime_bounds_seconds; and the class lock's contention (lock_waits, lock_wait_seconds). */
static void add_lifetimes(json *j, cJSON *co, const tslab_profile_class *pc)
{
    cJSON *lt = check(j, cJSON_AddObjectToObject(co, "lifetime"));
    if (lt == NULL)
        return;
    add_buckets(j, lt, "buckets", pc->lifetime_buckets);
    add_double(j, lt, "sum_seconds", (double)pc->lifetime_sum_ns / 1e9);
    add_u64(j, lt, "count", pc->lifetime_buckets[TSLAB_LIFETIME_BUCKETS]);
    add_buckets(j, co, "live_ages", pc->age_buckets);
    add_u64(j, co, "lock_waits", pc->lock_waits);
    add_double(j, co, "lock_wait_seconds", (double)pc->lock_wait_ns / 1e9);
}

/* A new object appended to the array `arr`, or NULL (j->ok is then false). */
static cJSON *add_element(json *j, cJSON *arr)
{
    cJSON *obj = check(j, cJSON_CreateObject());
    if (obj != NULL && !cJSON_AddItemToArray(arr, obj)) {
        cJSON_Delete(obj);
        j->ok = false;
        obj = NULL;
    }
    return obj;
}

/* "epochs": the instance's leak threshold; "labels", one object per epoch label with a key per
 * row of TSLAB_EPOCH_STATS (its field name; a nanosecond field "x_ns" as "x_seconds"); and
 * "leaking", the oldest leaking epochs first: label, seconds since close, live objects, and the
 * live objects by class size (classes holding none left out). */
static void add_epochs(json *j, cJSON *obj, const tslab_stats *s, const tslab_epoch_stats *e)
{
    cJSON *eo = check(j, cJSON_AddObjectToObject(obj, "epochs"));
    if (eo == NULL)
        return;
    add_double(j, eo, "leak_threshold_seconds", (double)e->leak_threshold_ns / 1e9);
    cJSON *labels = check(j, cJSON_AddArrayToObject(eo, "labels"));
    for (uint32_t k = 0; labels != NULL && k < e->label_count && k <= TSLAB_EPOCH_LABELS_MAX; k++) {
        const tslab_epoch_label_stats *ls = &e->labels[k];
        cJSON *lo = add_element(j, labels);
        if (lo == NULL)
            return;
        add_string(j, lo, "label", ls->label, strnlen(ls->label, sizeof ls->label));
        for (size_t i = 0; i < tslab__epoch_field_count; i++) {
            const tslab__epoch_field *f = &tslab__epoch_fields[i];
            uint64_t v = tslab__epoch_field_get(ls, f);
            if (tslab__epoch_field_ns(f)) {
                char key[64];
                snprintf(key, sizeof key, "%.*s_seconds", (int)(strlen(f->key) - 3), f->key);
                add_double(j, lo, key, (double)v / 1e9);
            } else {
                add_u64(j, lo, f->key, v);
            }
        }
    }
    cJSON *leaking = check(j, cJSON_AddArrayToObject(eo, "leaking"));
    for (uint32_t k = 0; leaking != NULL && k < e->leak_count && k < TSLAB_EPOCH_LEAKS_MAX; k++) {
        const tslab_epoch_leak *lk = &e->leaks[k];
        cJSON *lo = add_element(j, leaking);
        if (lo == NULL)
            return;
        add_string(j, lo, "label", lk->label, strnlen(lk->label, sizeof lk->label));
        add_double(j, lo, "closed_age_seconds", (double)lk->closed_age_ns / 1e9);
        add_u64(j, lo, "live_objects", lk->live_objects);
        cJSON *by = check(j, cJSON_AddObjectToObject(lo, "live_by_class"));
        for (uint32_t ci = 0; by != NULL && ci < s->class_count && ci < TSLAB_CLASSES_MAX; ci++) {
            if (lk->live_by_class[ci] == 0)
                continue;
            char size[24];
            snprintf(size, sizeof size, "%" PRIu64, s->classes[ci].object_size);
            add_u64(j, by, size, lk->live_by_class[ci]);
        }
    }
}

static void add_allocator(json *j, cJSON *list, const tslab_stats *s, const tslab_profile *p,
                          const tslab_epoch_stats *e)
{
    cJSON *obj = add_element(j, list);
    if (obj == NULL)
        return;
    add_string(j, obj, "name", s->name, strnlen(s->name, sizeof s->name));
    add_u64(j, obj, "reserved_bytes", s->reserved_bytes);
#define TSLAB__ISTAT(field, ...) add_u64(j, obj, #field, s->instance.field);
    TSLAB_INSTANCE_STATS(TSLAB__ISTAT)
#undef TSLAB__ISTAT
    cJSON *classes = check(j, cJSON_AddArrayToObject(obj, "classes"));
    for (uint32_t ci = 0; classes != NULL && ci < s->class_count && ci < TSLAB_CLASSES_MAX; ci++) {
        const tslab_class_stats *c = &s->classes[ci];
        cJSON *co = add_element(j, classes);
        if (co == NULL)
            break;
        add_u64(j, co, "object_size", c->object_size);
        add_u64(j, co, "slab_bytes", c->slab_bytes);
        add_u64(j, co, "objects_per_slab", c->objects_per_slab);
        for (size_t i = 0; i < tslab__field_count; i++)
            add_u64(j, co, tslab__fields[i].key, tslab__field_get(c, &tslab__fields[i]));
        if (p != NULL && ci < p->class_count)
            add_lifetimes(j, co, &p->classes[ci]);
    }
    cJSON *un = check(j, cJSON_AddObjectToObject(obj, "unattributed"));
    for (size_t i = 0; un != NULL && i < tslab__field_count; i++) {
        const tslab__field *f = &tslab__fields[i];
        if (tslab__field_unattributed(f))
            add_u64(j, un, f->key, tslab__field_get(&s->unattributed, f));
    }
    if (e != NULL)
        add_epochs(j, obj, s, e);
}

int tslab__render_json(const tslab__snapshot *snap, tslab__buf *b)
{
    json j = {true};
    cJSON *root = check(&j, cJSON_CreateObject());
    if (root == NULL)
        return -ENOMEM;
    add_u64(&j, root, "schema_version", JSON_SCHEMA_VERSION);
    char ts[24];
    snprintf(ts, sizeof ts, "%" PRId64, snap->timestamp_ms);
    check(&j, cJSON_AddRawToObject(root, "timestamp_ms", ts));
    check(&j, cJSON_AddStringToObject(root, "version", TSLAB_VERSION_STRING));
    add_scalars(&j, root, snap, "process");
    add_scalars(&j, root, snap, "exporter");
    cJSON *bounds = check(&j, cJSON_AddArrayToObject(root, "lifetime_bounds_seconds"));
    for (uint32_t k = 0; bounds != NULL && k < TSLAB_LIFETIME_BUCKETS; k++) {
        cJSON *n = check(&j, cJSON_CreateNumber(tslab__lifetime_bounds[k]));
        if (n != NULL && !cJSON_AddItemToArray(bounds, n)) {
            cJSON_Delete(n);
            j.ok = false;
        }
    }
    cJSON *list = check(&j, cJSON_AddArrayToObject(root, "allocators"));
    for (size_t a = 0; list != NULL && a < snap->alloc_count; a++)
        add_allocator(&j, list, &snap->allocs[a], snap->profiles ? snap->profiles[a] : NULL,
                      snap->epochs ? &snap->epochs[a] : NULL);

    char *text = j.ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (text == NULL)
        return -ENOMEM;
    /* Copied so the caller frees with free() even if the application installed cJSON hooks. */
    tslab__buf_puts(b, text);
    tslab__buf_putc(b, '\n');
    cJSON_free(text);
    return b->failed ? -ENOMEM : 0;
}
