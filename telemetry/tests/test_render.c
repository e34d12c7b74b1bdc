/* SPDX-License-Identifier: MIT */
/* Golden outputs of the three renderers for a fixed snapshot, plus assertions that hold whatever
 * the golden files say (so regenerating them blindly cannot hide an escaping or precision bug).
 *
 * usage: test_render GOLDEN_DIR
 * TSLAB_UPDATE_GOLDEN=1 rewrites the golden files instead of comparing (review the diff!). */
#include <cJSON.h>
#include <errno.h>
#include <locale.h>
#include <stdint.h>

#include "telemetry.h"
#include "testhelper.h"

/* Quote, backslash and newline: each must be escaped in label values and JSON strings. */
static const char weird_name[] = "ses\"sions\\east\nprod";
static const char weird_escaped[] = "ses\\\"sions\\\\east\\nprod";

static tslab_stats stats[3];

static void fill_class(tslab_class_stats *c, uint64_t size, uint64_t base)
{
    c->object_size = size;
    c->slab_bytes = 65536;
    c->objects_per_slab = 65536 / size;
    for (size_t i = 0; i < tslab__field_count; i++) {
        uint64_t *p = (uint64_t *)(void *)((char *)c + tslab__fields[i].offset);
        *p = base + i;
    }
}

/* The sampler's view: allocator 0 has sampled lifetimes and live ages, 1 none, 2 no classes. */
static tslab_profile profiles[3];
static tslab_profile *profile_list[3] = {&profiles[0], &profiles[1], &profiles[2]};

static void fixed_profiles(void)
{
    memset(profiles, 0, sizeof profiles);
    static const uint64_t life0[TSLAB_LIFETIME_BUCKETS + 1] = {1,  3,  6,  10, 10, 12,
                                                               12, 12, 13, 13, 14};
    static const uint64_t age0[TSLAB_LIFETIME_BUCKETS + 1] = {0, 0, 2, 2, 2, 5, 5, 5, 5, 5, 5};
    uint32_t sizes[3] = {2, 1, 0};
    for (int a = 0; a < 3; a++) {
        profiles[a].version = TSLAB_PROFILE_VERSION;
        profiles[a].class_count = sizes[a];
    }
    profiles[0].classes[0].object_size = 64;
    memcpy(profiles[0].classes[0].lifetime_buckets, life0, sizeof life0);
    memcpy(profiles[0].classes[0].age_buckets, age0, sizeof age0);
    profiles[0].classes[0].lifetime_sum_ns = 90061500000000u; /* 1 day 1 h 1 min 1.5 s */
    profiles[0].classes[1].object_size = 128;
    profiles[0].classes[1].lock_waits = 3;
    profiles[0].classes[1].lock_wait_ns = 1500000; /* 1.5 ms */
    profiles[1].classes[0].object_size = 4096;
}

/* Epochs: allocator 0 has an open label, a closed one with leaking epochs, and a label that
 * needs escaping; 1 one untouched label (every row must still be there, at 0); 2 none. */
static tslab_epoch_stats epochs[3];
static const char quote_label[] = "say \"hi\"";
static const char quote_escaped[] = "say \\\"hi\\\"";

static void set_label(tslab_epoch_label_stats *l, const char *name, const uint64_t *values)
{
    snprintf(l->label, sizeof l->label, "%s", name);
    for (size_t i = 0; i < tslab__epoch_field_count; i++)
        *(uint64_t *)(void *)((char *)l + tslab__epoch_fields[i].offset) = values[i];
}

static void fixed_epochs(void)
{
    memset(epochs, 0, sizeof epochs);
    /* In TSLAB_EPOCH_STATS order: opened, closed, destroyed, allocations, frees, open_epochs,
     * closed_live_objects, oldest_closed_live_age_ns, leaking_epochs. */
    static const uint64_t requests[] = {3, 2, 1, 40, 30, 1, 0, 0, 0};
    static const uint64_t batch[] = {2, 2, 0, 12, 5, 0, 7, 125500000000u, 2};
    static const uint64_t quoted[] = {1, 0, 0, 9007199254740993u, 0, 1, 0, 0, 0};
    REQUIRE(tslab__epoch_field_count == sizeof requests / sizeof requests[0]);
    epochs[0].label_count = 3;
    epochs[0].leak_threshold_ns = 60000000000u;
    set_label(&epochs[0].labels[0], "requests", requests);
    set_label(&epochs[0].labels[1], "batch", batch);
    set_label(&epochs[0].labels[2], quote_label, quoted);
    epochs[0].leak_count = 2;
    snprintf(epochs[0].leaks[0].label, sizeof epochs[0].leaks[0].label, "batch");
    epochs[0].leaks[0].closed_age_ns = 125500000000u;
    epochs[0].leaks[0].live_objects = 4;
    epochs[0].leaks[0].live_by_class[0] = 3; /* 64 B */
    epochs[0].leaks[0].live_by_class[1] = 1; /* 128 B */
    snprintf(epochs[0].leaks[1].label, sizeof epochs[0].leaks[1].label, "batch");
    epochs[0].leaks[1].closed_age_ns = 61000000000u;
    epochs[0].leaks[1].live_objects = 3;
    epochs[0].leaks[1].live_by_class[1] = 3;
    static const uint64_t zero[sizeof requests / sizeof requests[0]] = {0};
    epochs[1].label_count = 1;
    epochs[1].leak_threshold_ns = 1500000000u;
    set_label(&epochs[1].labels[0], "default", zero);
    epochs[2].leak_threshold_ns = 60000000000u;
}

static tslab__snapshot fixed_snapshot(void)
{
    memset(stats, 0, sizeof stats);
    fixed_profiles();
    /* sessions-like allocator with awkward name and values beyond 2^53 */
    stats[0].version = TSLAB_STATS_VERSION;
    stats[0].class_count = 2;
    memcpy(stats[0].name, weird_name, sizeof weird_name);
    stats[0].reserved_bytes = 2147483648u;
    fill_class(&stats[0].classes[0], 64, 1000);
    fill_class(&stats[0].classes[1], 128, 2000);
    stats[0].classes[0].allocations = UINT64_MAX;
    stats[0].classes[0].frees = 9007199254740993u; /* 2^53 + 1: a double cannot hold it */
    stats[0].unattributed.rejected_invalid = 1;
    stats[0].unattributed.rejected_stale = 2;
    stats[0].unattributed.rejected_double = 3;
    stats[0].unattributed.rejected_foreign = 4;
    /* an untouched allocator: every series must still be there, at 0 */
    stats[1].version = TSLAB_STATS_VERSION;
    stats[1].class_count = 1;
    strcpy(stats[1].name, "buffers");
    stats[1].reserved_bytes = 1073741824u;
    stats[1].instance.limit_hard_bytes = 268435456u;
    stats[1].instance.limit_resident_bytes = 1048576u;
    stats[1].classes[0].object_size = 4096;
    stats[1].classes[0].slab_bytes = 65536;
    stats[1].classes[0].objects_per_slab = 16;
    /* invalid UTF-8 in a name is replaced, never copied */
    stats[2].version = TSLAB_STATS_VERSION;
    stats[2].class_count = 0;
    strcpy(stats[2].name, "bad\xff"
                          "utf8");

    tslab__snapshot s = {0};
    s.version = TSLAB__SNAPSHOT_VERSION;
    s.timestamp_ms = 1700000000123;
    s.allocs = stats;
    s.alloc_count = 3;
    s.profiles = profile_list;
    fixed_epochs();
    s.epochs = epochs;
    s.process = (tslab__process){.resident_bytes = 1048576,
                                 .virtual_bytes = 1099511627776u,
                                 .open_fds = 12,
                                 .max_fds = 1024,
                                 .threads = 3,
                                 .start_time_seconds = 1700000000.25,
                                 .cpu_seconds_total = 1.5};
    s.scrapes_total = 7;
    s.render_seconds = 0.000125;
    return s;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf != NULL && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            cap *= 2;
            char *grown = realloc(buf, cap);
            if (grown == NULL)
                free(buf); /* and the loop ends: buf is NULL */
            buf = grown;
        }
    }
    fclose(f);
    if (buf != NULL)
        buf[n] = '\0';
    *len = n;
    return buf;
}

static void write_all(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f != NULL);
    REQUIRE(fwrite(data, 1, len, f) == len);
    fclose(f);
}

/* Compares `out` with GOLDEN_DIR/name (or rewrites it). */
static void golden(const char *dir, const char *name, const char *out, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (getenv("TSLAB_UPDATE_GOLDEN") != NULL) {
        write_all(path, out, len);
        printf("rewrote %s\n", path);
        return;
    }
    size_t glen;
    char *g = read_all(path, &glen);
    if (g == NULL) {
        fprintf(stderr, "cannot read %s\n", path);
        test_count_failures(1);
        return;
    }
    if (glen != len || memcmp(g, out, len) != 0) {
        size_t line = 1, i = 0;
        while (i < len && i < glen && g[i] == out[i])
            line += out[i++] == '\n';
        char actual[4200];
        snprintf(actual, sizeof actual, "%s.actual", name);
        write_all(actual, out, len);
        fprintf(stderr, "%s differs from the golden file at line %zu (actual output in %s)\n", name,
                line, actual);
        test_count_failures(1);
    }
    free(g);
}

/* "# TYPE tslab_<metric> counter|gauge": an OpenMetrics counter family drops "_total". */
static void check_type_line(const char *out, bool om, const char *metric, const char *type)
{
    char line[512];
    bool counter = strcmp(type, "COUNTER") == 0;
    snprintf(line, sizeof line, "# TYPE tslab_%.*s %s\n",
             (int)(strlen(metric) - (om && counter ? 6 : 0)), metric,
             counter ? "counter" : "gauge");
    CHECK_CONTAINS(out, line);
}

static void check_prom(const char *out, bool om)
{
    char line[512];
    /* escaping */
    snprintf(line, sizeof line,
             "tslab_frees_total{allocator=\"%s\",class=\"64\"} 9007199254740993\n", weird_escaped);
    CHECK_CONTAINS(out, line);
    snprintf(line, sizeof line,
             "tslab_allocations_total{allocator=\"%s\",class=\"64\"} 18446744073709551615\n",
             weird_escaped);
    CHECK_CONTAINS(out, line);
    CHECK(strstr(out, "ses\"sions") == NULL); /* never unescaped */
    CHECK_CONTAINS(out, "allocator=\"bad\xef\xbf\xbdutf8\"");
    CHECK(strchr(out, 0xff) == NULL); /* strchr compares as char: finds a 0xff byte */
    /* every row of TSLAB_CLASS_STATS, for the untouched allocator too, with its extra label */
#define ROW(field, source, type, metric, lk, lv, help)                                             \
    snprintf(line, sizeof line, "tslab_%s{allocator=\"buffers\",class=\"4096\"%s%s%s%s%s} 0\n",    \
             metric, lk[0] ? "," : "", lk, lk[0] ? "=\"" : "", lv, lk[0] ? "\"" : "");             \
    CHECK_CONTAINS(out, line);                                                                     \
    check_type_line(out, om, metric, #type);
    TSLAB_CLASS_STATS(ROW)
#undef ROW
    const char *reasons[] = {"invalid", "stale", "double", "foreign"};
    for (int i = 0; i < 4; i++) {
        snprintf(
            line, sizeof line,
            "tslab_free_rejections_total{allocator=\"buffers\",class=\"none\",reason=\"%s\"} 0\n",
            reasons[i]);
        CHECK_CONTAINS(out, line);
        snprintf(line, sizeof line,
                 "tslab_free_rejections_total{allocator=\"%s\",class=\"none\",reason=\"%s\"} %d\n",
                 weird_escaped, reasons[i], i + 1);
        CHECK_CONTAINS(out, line);
    }
    /* the sampler's families: a histogram whose +Inf bucket is its count, seconds from ns */
    CHECK_CONTAINS(out, "# TYPE tslab_object_lifetime_seconds histogram\n");
    snprintf(line, sizeof line,
             "tslab_object_lifetime_seconds_bucket{allocator=\"%s\",class=\"64\",le=\"+Inf\"} 14\n"
             "tslab_object_lifetime_seconds_sum{allocator=\"%s\",class=\"64\"} 90061.5\n"
             "tslab_object_lifetime_seconds_count{allocator=\"%s\",class=\"64\"} 14\n",
             weird_escaped, weird_escaped, weird_escaped);
    CHECK_CONTAINS(out, line);
    snprintf(line, sizeof line,
             "tslab_object_lifetime_seconds_bucket{allocator=\"%s\",class=\"64\",le=\"0.01\"} 3\n",
             weird_escaped);
    CHECK_CONTAINS(out, line);
    snprintf(line, sizeof line,
             "tslab_sampled_live_objects_by_age{allocator=\"%s\",class=\"64\",age_le=\"60\"} 5\n",
             weird_escaped);
    CHECK_CONTAINS(out, line);
    CHECK_CONTAINS(out,
                   "tslab_object_lifetime_seconds_count{allocator=\"buffers\",class=\"4096\"} 0\n");
    snprintf(line, sizeof line,
             "tslab_class_lock_wait_seconds_total{allocator=\"%s\",class=\"128\"} 0.0015\n",
             weird_escaped);
    CHECK_CONTAINS(out, line);
    snprintf(line, sizeof line, "tslab_class_lock_waits_total{allocator=\"%s\",class=\"128\"} 3\n",
             weird_escaped);
    CHECK_CONTAINS(out, line);
    CHECK_CONTAINS(out, om ? "# TYPE tslab_class_lock_wait_seconds counter\n"
                           : "# TYPE tslab_class_lock_wait_seconds_total counter\n");
    /* every row of TSLAB_EPOCH_STATS for the untouched label, then values, seconds and escaping */
#define EROW(field, type, metric, help)                                                            \
    CHECK_CONTAINS(out, "tslab_" metric "{allocator=\"buffers\",label=\"default\"} 0\n");          \
    check_type_line(out, om, metric, #type);
    TSLAB_EPOCH_STATS(EROW)
#undef EROW
    snprintf(line, sizeof line,
             "tslab_epoch_oldest_closed_live_age_seconds{allocator=\"%s\",label=\"batch\"} 125.5\n",
             weird_escaped);
    CHECK_CONTAINS(out, line);
    snprintf(line, sizeof line, "tslab_epochs_leaking{allocator=\"%s\",label=\"batch\"} 2\n",
             weird_escaped);
    CHECK_CONTAINS(out, line);
    snprintf(line, sizeof line,
             "tslab_epoch_allocations_total{allocator=\"%s\",label=\"%s\"} 9007199254740993\n",
             weird_escaped, quote_escaped);
    CHECK_CONTAINS(out, line);
    CHECK(strstr(out, "say \"hi") == NULL); /* never unescaped */
    CHECK_CONTAINS(out, "tslab_epoch_leak_threshold_seconds{allocator=\"buffers\"} 1.5\n");
    CHECK_CONTAINS(out,
                   "tslab_epoch_leak_threshold_seconds{allocator=\"bad\xef\xbf\xbdutf8\"} 60\n");
    CHECK_CONTAINS(out, "tslab_build_info{version=\"" TSLAB_VERSION_STRING "\"} 1\n");
    CHECK_CONTAINS(out, "tslab_reserved_bytes{allocator=\"buffers\"} 1073741824\n");
    CHECK_CONTAINS(out, "tslab_limit_bytes{allocator=\"buffers\",limit=\"hard\"} 268435456\n");
    CHECK_CONTAINS(out, "tslab_limit_bytes{allocator=\"buffers\",limit=\"soft\"} 0\n");
    CHECK_CONTAINS(out, "tslab_limit_resident_bytes{allocator=\"buffers\"} 1048576\n");
    CHECK_CONTAINS(out, "tslab_exporter_scrapes_total 7\n");
    CHECK_CONTAINS(out, "tslab_exporter_render_seconds 0.000125\n");
    CHECK_CONTAINS(out, "process_start_time_seconds 1700000000.25\n");
    CHECK_CONTAINS(out, "process_cpu_seconds_total 1.5\n");
    CHECK_CONTAINS(out, "process_virtual_memory_bytes 1099511627776\n");
    CHECK_CONTAINS(out, om ? "# TYPE process_cpu_seconds counter\n"
                           : "# TYPE process_cpu_seconds_total counter\n");
    size_t len = strlen(out);
    if (om)
        CHECK(len > 6 && strcmp(out + len - 6, "# EOF\n") == 0);
    else
        CHECK(strstr(out, "# EOF") == NULL && out[len - 1] == '\n');
}

/* One entry of "leaking": its label, age, live objects, and live objects of classes 64 and 128
 * (the only ones holding any). */
static void check_leak(const cJSON *leak, const char *label, double age, int live, int n64,
                       int n128)
{
    REQUIRE(leak != NULL);
    const char *l = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(leak, "label"));
    CHECK(l != NULL && strcmp(l, label) == 0);
    CHECK(cJSON_GetObjectItemCaseSensitive(leak, "closed_age_seconds")->valuedouble == age);
    CHECK_EQ_I(cJSON_GetObjectItemCaseSensitive(leak, "live_objects")->valuedouble, live);
    cJSON *by = cJSON_GetObjectItemCaseSensitive(leak, "live_by_class");
    CHECK_EQ_I(cJSON_GetArraySize(by), (n64 > 0) + (n128 > 0)); /* classes holding none: absent */
    if (n64 > 0)
        CHECK_EQ_I(cJSON_GetObjectItemCaseSensitive(by, "64")->valuedouble, n64);
    if (n128 > 0)
        CHECK_EQ_I(cJSON_GetObjectItemCaseSensitive(by, "128")->valuedouble, n128);
}

static void check_json(const char *out)
{
    CHECK_CONTAINS(out, "\"allocations\":18446744073709551615,");
    CHECK_CONTAINS(out, "\"frees\":9007199254740993,");
    CHECK_CONTAINS(out, "\"start_time_seconds\":1700000000.25");
    cJSON *root = cJSON_Parse(out);
    REQUIRE(root != NULL);
    CHECK_EQ_I(cJSON_GetObjectItemCaseSensitive(root, "schema_version")->valueint, 1);
    cJSON *allocs = cJSON_GetObjectItemCaseSensitive(root, "allocators");
    REQUIRE(cJSON_GetArraySize(allocs) == 3);
    cJSON *a0 = cJSON_GetArrayItem(allocs, 0);
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(a0, "name"));
    REQUIRE(name != NULL);
    CHECK(strcmp(name, weird_name) == 0);
    cJSON *classes = cJSON_GetObjectItemCaseSensitive(a0, "classes");
    CHECK_EQ_I(cJSON_GetArraySize(classes), 2);
    cJSON *c1 = cJSON_GetArrayItem(classes, 1);
    CHECK_EQ_I(cJSON_GetObjectItemCaseSensitive(c1, "object_size")->valuedouble, 128);
#define ROW(field, source, type, metric, lk, lv, help)                                             \
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(c1, #field)));
    TSLAB_CLASS_STATS(ROW)
#undef ROW
    CHECK_EQ_I(cJSON_GetObjectItemCaseSensitive(c1, "live_objects")->valuedouble,
               stats[0].classes[1].live_objects);
    cJSON *un = cJSON_GetObjectItemCaseSensitive(a0, "unattributed");
    CHECK_EQ_I(cJSON_GetArraySize(un), 4);
    CHECK_EQ_I(cJSON_GetObjectItemCaseSensitive(un, "rejected_foreign")->valuedouble, 4);
    /* epochs: one object per label, a key per TSLAB_EPOCH_STATS row, then the leaking ones */
    cJSON *ep = cJSON_GetObjectItemCaseSensitive(a0, "epochs");
    REQUIRE(ep != NULL);
    CHECK(cJSON_GetObjectItemCaseSensitive(ep, "leak_threshold_seconds")->valuedouble == 60);
    cJSON *labels = cJSON_GetObjectItemCaseSensitive(ep, "labels");
    REQUIRE(cJSON_GetArraySize(labels) == 3);
    cJSON *batch = cJSON_GetArrayItem(labels, 1);
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(batch, "label")), "batch") ==
          0);
    CHECK(strcmp(cJSON_GetStringValue(
                     cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(labels, 2), "label")),
                 quote_label) == 0);
    CHECK_EQ_I(cJSON_GetArraySize(batch), 1 + (int)tslab__epoch_field_count);
    for (size_t i = 0; i < tslab__epoch_field_count; i++) {
        const tslab__epoch_field *f = &tslab__epoch_fields[i];
        if (!tslab__epoch_field_ns(f))
            CHECK_EQ_I(cJSON_GetObjectItemCaseSensitive(batch, f->key)->valuedouble,
                       tslab__epoch_field_get(&epochs[0].labels[1], f));
    }
    CHECK(cJSON_GetObjectItemCaseSensitive(batch, "oldest_closed_live_age_seconds")->valuedouble ==
          125.5);
    CHECK_EQ_I(cJSON_GetObjectItemCaseSensitive(batch, "closed_live_objects")->valuedouble, 7);
    cJSON *leaking = cJSON_GetObjectItemCaseSensitive(ep, "leaking");
    REQUIRE(cJSON_GetArraySize(leaking) == 2);
    check_leak(cJSON_GetArrayItem(leaking, 0), "batch", 125.5, 4, 3, 1);
    check_leak(cJSON_GetArrayItem(leaking, 1), "batch", 61, 3, 0, 3);
    CHECK_CONTAINS(out, "{\"label\":\"say \\\"hi\\\"\",\"opened\":1,\"closed\":0,\"destroyed\":0,"
                        "\"allocations\":9007199254740993,");
    cJSON *e2 = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(allocs, 2), "epochs");
    CHECK_EQ_I(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(e2, "labels")), 0);
    CHECK_EQ_I(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(e2, "leaking")), 0);
    cJSON *proc = cJSON_GetObjectItemCaseSensitive(root, "process");
    CHECK_EQ_I(cJSON_GetArraySize(proc), 7);
    cJSON *exp = cJSON_GetObjectItemCaseSensitive(root, "exporter");
    CHECK_EQ_I(cJSON_GetObjectItemCaseSensitive(exp, "scrapes_total")->valuedouble, 7);
    cJSON_Delete(root);
}

/* ---- A live instance's epochs, end to end ------------------------------------------------ */

static uint64_t fake_now_ns = 1000000000u;
static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now_ns;
}

/* Renders a snapshot of the one allocator `a` in `fmt`; the caller frees the text. */
static char *render_live(tslab *a, tslab_format fmt)
{
    static tslab__scrape_counters counters;
    tslab__snapshot snap;
    REQUIRE(tslab__snapshot_take(&a, 1, &counters, &snap) == 0);
    REQUIRE(snap.epochs != NULL);
    char *out = NULL;
    size_t len = 0;
    REQUIRE(tslab__render(&snap, fmt, &out, &len) == 0);
    tslab__snapshot_free(&snap);
    return out;
}

/* Two labels on an instance with an injected clock and a 1 s leak threshold: "requests" stays
 * open, "batch" is closed with five objects left and the clock moved 2.5 s past the close, so it
 * leaks; then its objects are freed and the leak is gone. */
static void live_epochs(void)
{
    tslab_os os = *tslab_os_default();
    os.now_ns = fake_clock;
    tslab_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.name = "live";
    cfg.os = &os;
    cfg.epoch_leak_ms = 1000;
    tslab *a = tslab_create(&cfg);
    REQUIRE(a != NULL);
    tslab_epoch requests = tslab_epoch_open(a, "requests");
    tslab_epoch batch = tslab_epoch_open(a, "batch");
    REQUIRE(requests != 0 && batch != 0);
    tslab_handle h[5];
    for (int i = 0; i < 5; i++)
        REQUIRE(tslab_alloc_epoch(a, requests, 100, &h[i]) != NULL);
    void *kept[5];
    for (int i = 0; i < 5; i++)
        REQUIRE((kept[i] = tslab_malloc_epoch(a, batch, i < 3 ? 64 : 128)) != NULL);
    REQUIRE(tslab_epoch_close(a, batch) == 0);
    fake_now_ns += 2500000000u; /* 2.5 s after the close */
    tslab_flush(a);

    char *out = render_live(a, TSLAB_FORMAT_PROMETHEUS);
    CHECK_CONTAINS(out, "tslab_epochs_opened_total{allocator=\"live\",label=\"requests\"} 1\n");
    CHECK_CONTAINS(out, "tslab_epochs_opened_total{allocator=\"live\",label=\"batch\"} 1\n");
    CHECK_CONTAINS(out, "tslab_epochs_closed_total{allocator=\"live\",label=\"batch\"} 1\n");
    CHECK_CONTAINS(out, "tslab_epochs_closed_total{allocator=\"live\",label=\"requests\"} 0\n");
    CHECK_CONTAINS(out, "tslab_epochs_open{allocator=\"live\",label=\"requests\"} 1\n");
    CHECK_CONTAINS(out, "tslab_epochs_open{allocator=\"live\",label=\"batch\"} 0\n");
    CHECK_CONTAINS(out, "tslab_epoch_allocations_total{allocator=\"live\",label=\"requests\"} 5\n");
    CHECK_CONTAINS(out, "tslab_epoch_allocations_total{allocator=\"live\",label=\"batch\"} 5\n");
    CHECK_CONTAINS(out, "tslab_epoch_closed_live_objects{allocator=\"live\",label=\"batch\"} 5\n");
    CHECK_CONTAINS(out,
                   "tslab_epoch_closed_live_objects{allocator=\"live\",label=\"requests\"} 0\n");
    CHECK_CONTAINS(
        out,
        "tslab_epoch_oldest_closed_live_age_seconds{allocator=\"live\",label=\"batch\"} 2.5\n");
    CHECK_CONTAINS(out, "tslab_epochs_leaking{allocator=\"live\",label=\"batch\"} 1\n");
    CHECK_CONTAINS(out, "tslab_epochs_leaking{allocator=\"live\",label=\"requests\"} 0\n");
    CHECK_CONTAINS(out, "tslab_epoch_leak_threshold_seconds{allocator=\"live\"} 1\n");
    free(out);

    out = render_live(a, TSLAB_FORMAT_JSON);
    cJSON *root = cJSON_Parse(out);
    REQUIRE(root != NULL);
    cJSON *ep = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "allocators"), 0), "epochs");
    REQUIRE(ep != NULL);
    cJSON *leaking = cJSON_GetObjectItemCaseSensitive(ep, "leaking");
    REQUIRE(cJSON_GetArraySize(leaking) == 1);
    check_leak(cJSON_GetArrayItem(leaking, 0), "batch", 2.5, 5, 3, 2);
    cJSON_Delete(root);
    free(out);

    /* The batch's objects freed: nothing leaks, nothing is left in closed epochs. */
    for (int i = 0; i < 5; i++)
        CHECK(tslab_free_ptr(a, kept[i]));
    tslab_flush(a);
    out = render_live(a, TSLAB_FORMAT_PROMETHEUS);
    CHECK_CONTAINS(out, "tslab_epochs_leaking{allocator=\"live\",label=\"batch\"} 0\n");
    CHECK_CONTAINS(out, "tslab_epoch_closed_live_objects{allocator=\"live\",label=\"batch\"} 0\n");
    CHECK_CONTAINS(
        out, "tslab_epoch_oldest_closed_live_age_seconds{allocator=\"live\",label=\"batch\"} 0\n");
    CHECK_CONTAINS(out, "tslab_epoch_frees_total{allocator=\"live\",label=\"batch\"} 5\n");
    free(out);
    for (int i = 0; i < 5; i++)
        CHECK(tslab_free(a, h[i]));
    tslab_destroy(a);
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 2);
    tslab__snapshot snap = fixed_snapshot();
    static const struct {
        tslab_format fmt;
        const char *file;
    } outputs[] = {{TSLAB_FORMAT_PROMETHEUS, "metrics.prom"},
                   {TSLAB_FORMAT_OPENMETRICS, "metrics.om"},
                   {TSLAB_FORMAT_JSON, "metrics.json"}};
    for (int pass = 0; pass < 2; pass++) {
        /* Second pass: a decimal-comma locale must not change a byte. */
        if (pass == 1 && setlocale(LC_ALL, "de_DE.UTF-8") == NULL &&
            setlocale(LC_ALL, "fr_FR.UTF-8") == NULL) {
            printf("no decimal-comma locale installed: locale pass skipped\n");
            break;
        }
        for (size_t i = 0; i < sizeof outputs / sizeof outputs[0]; i++) {
            char *out = NULL;
            size_t len = 0;
            REQUIRE(tslab__render(&snap, outputs[i].fmt, &out, &len) == 0);
            CHECK_EQ_I(strlen(out), len);
            if (outputs[i].fmt == TSLAB_FORMAT_JSON)
                check_json(out);
            else
                check_prom(out, outputs[i].fmt == TSLAB_FORMAT_OPENMETRICS);
            golden(argv[1], outputs[i].file, out, len);
            free(out);
        }
    }
    char *out;
    size_t len;
    CHECK_EQ_I(tslab__render(&snap, (tslab_format)3, &out, &len), -EINVAL);
    live_epochs();
    return test_result("test_render");
}
