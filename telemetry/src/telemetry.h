/* SPDX-License-Identifier: MIT */
/* Internal map of the telemetry library: prototypes grouped under the file that defines them.
 * Nothing here is installed; tests that need internals link tslab_telemetry_static. */
#ifndef TSLAB_TELEMETRY_INTERNAL_H
#define TSLAB_TELEMETRY_INTERNAL_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tslab.h"
#include "tslab_telemetry.h"

/* ---------------------------------------------------------------------------------------------
 * buf.c: a growable NUL-terminated string. After an allocation failure every append is a no-op
 * and `failed` stays set, so renderers append without checking and test once at the end.
 * ------------------------------------------------------------------------------------------- */
typedef struct tslab__buf {
    char *data;
    size_t len;
    size_t cap;
    bool failed;
} tslab__buf;

void tslab__buf_init(tslab__buf *b, size_t initial);
void tslab__buf_put(tslab__buf *b, const char *s, size_t n);
void tslab__buf_puts(tslab__buf *b, const char *s);
void tslab__buf_putc(tslab__buf *b, char c);
void tslab__buf_u64(tslab__buf *b, uint64_t v);
/* The shortest decimal that reads back as exactly v ("%.{1..17}g"); NaN, +Inf, -Inf spelled as
 * the Prometheus formats spell them. The caller ensures the "C" numeric locale. */
void tslab__buf_double(tslab__buf *b, double v);
/* Copies s[0..n) replacing every byte sequence that is not valid UTF-8 with U+FFFD, passing each
 * valid code point to `emit` (so callers can escape). */
typedef void tslab__utf8_emit(tslab__buf *b, const char *cp, size_t n);
void tslab__buf_utf8(tslab__buf *b, const char *s, size_t n, tslab__utf8_emit *emit);
/* Hands the buffer to the caller (NUL-terminated, from malloc). 0 or -ENOMEM (buffer freed). */
int tslab__buf_finish(tslab__buf *b, char **out, size_t *out_len);
void tslab__buf_free(tslab__buf *b);

/* ---------------------------------------------------------------------------------------------
 * procfs.c: the standard process_* metrics from /proc/self. Fields it cannot read stay 0.
 * ------------------------------------------------------------------------------------------- */
typedef struct tslab__process {
    uint64_t resident_bytes;
    uint64_t virtual_bytes;
    uint64_t open_fds;
    uint64_t max_fds;
    uint64_t threads;
    double start_time_seconds; /* since the Unix epoch */
    double cpu_seconds_total;  /* user + system */
} tslab__process;

/* 0, or the -errno of the first file that could not be read (the rest is still filled). */
int tslab__procfs_read(tslab__process *out);

/* ---------------------------------------------------------------------------------------------
 * snapshot.c: the versioned snapshot every renderer reads, and the tables generated from
 * TSLAB_CLASS_STATS that name its fields.
 *
 * Consistency (inherited from tslab_stats_read): every counter is monotonic across snapshots of
 * one allocator, live_objects = allocations - frees overstates the true count by at most the
 * allocations made while the snapshot was read, and each gauge is exact at some instant during
 * the read. Allocators are read one after another, not at one instant.
 * ------------------------------------------------------------------------------------------- */
#define TSLAB__SNAPSHOT_VERSION 2

typedef enum tslab__kind { TSLAB__COUNTER, TSLAB__GAUGE, TSLAB__HISTOGRAM } tslab__kind;

/* One row of TSLAB_CLASS_STATS. */
typedef struct tslab__field {
    const char *key; /* struct member and JSON key */
    size_t offset;   /* in tslab_class_stats */
    tslab__kind kind;
    const char *metric;    /* family name after "tslab_" */
    const char *label_key; /* "" when the family has no extra label */
    const char *label_value;
    const char *help;
} tslab__field;

extern const tslab__field tslab__fields[];
extern const size_t tslab__field_count;

/* tslab_stats.unattributed keeps only the rejected_* rows (tslab.h). */
static inline bool tslab__field_unattributed(const tslab__field *f)
{
    return f->key[0] == 'r' && strncmp(f->key, "rejected_", 9) == 0;
}

static inline uint64_t tslab__field_get(const tslab_class_stats *c, const tslab__field *f)
{
    return *(const uint64_t *)(const void *)((const char *)c + f->offset);
}

/* One row of TSLAB_EPOCH_STATS (per instance and epoch label). */
typedef struct tslab__epoch_field {
    const char *key; /* struct member; the JSON key, "_ns" turned into "_seconds" */
    size_t offset;   /* in tslab_epoch_label_stats */
    tslab__kind kind;
    const char *metric; /* family name after "tslab_" */
    const char *help;
} tslab__epoch_field;

extern const tslab__epoch_field tslab__epoch_fields[];
extern const size_t tslab__epoch_field_count;

/* A member kept in nanoseconds ("..._ns") and exposed in seconds (its metric and JSON key end in
 * "_seconds"): the one unit rule of the renderers, so no row is special-cased by name. */
static inline bool tslab__epoch_field_ns(const tslab__epoch_field *f)
{
    size_t n = strlen(f->key);
    return n > 3 && strcmp(f->key + n - 3, "_ns") == 0;
}

static inline uint64_t tslab__epoch_field_get(const tslab_epoch_label_stats *l,
                                              const tslab__epoch_field *f)
{
    return *(const uint64_t *)(const void *)((const char *)l + f->offset);
}

/* Scrape bookkeeping of one exporter (or of the process, for tslab_metrics_render). */
typedef struct tslab__scrape_counters {
    _Atomic uint64_t scrapes;
    _Atomic uint64_t last_render_ns;
} tslab__scrape_counters;

typedef struct tslab__snapshot {
    uint32_t version;          /* TSLAB__SNAPSHOT_VERSION */
    int64_t timestamp_ms;      /* wall clock when the snapshot was taken */
    const tslab_stats *allocs; /* alloc_count snapshots, in the caller's order */
    size_t alloc_count;
    /* The sampler's view of each allocator (tslab_profile_read): lifetime histograms and ages
     * of live sampled objects. NULL, or an entry NULL: no such series for it. */
    tslab_profile *const *profiles;
    /* Each allocator's epochs (tslab_epoch_stats_get), in the same order; NULL: none. */
    const tslab_epoch_stats *epochs;
    tslab__process process;
    uint64_t scrapes_total; /* including the scrape this snapshot is rendered for */
    double render_seconds;  /* duration of the previous render */
} tslab__snapshot;

/* A process-wide (section "process") or exporter-wide ("exporter") value of the snapshot: one
 * table gives the Prometheus name, HELP, type and JSON key of each. */
typedef struct tslab__scalar {
    const char *metric;  /* full Prometheus name */
    const char *section; /* JSON object holding it */
    const char *key;     /* JSON key */
    tslab__kind kind;
    bool is_double;
    size_t offset; /* in tslab__snapshot */
    const char *help;
} tslab__scalar;

extern const tslab__scalar tslab__scalars[];
extern const size_t tslab__scalar_count;

/* Reads allocs[0..n) and the process into *snap (allocating its stats array), counting a scrape
 * in *counters. 0, -EINVAL (NULL allocator, duplicate names) or -ENOMEM. */
int tslab__snapshot_take(tslab *const *allocs, size_t n, tslab__scrape_counters *counters,
                         tslab__snapshot *snap);
void tslab__snapshot_free(tslab__snapshot *snap);
/* -EINVAL when two of the names are equal (their series would collide). */
int tslab__names_check(tslab *const *allocs, size_t n);

/* Upper bounds of the lifetime and age buckets in seconds (TSLAB_LIFETIME_BOUNDS_NS). */
extern const double tslab__lifetime_bounds[TSLAB_LIFETIME_BUCKETS];

/* ---------------------------------------------------------------------------------------------
 * render_prom.c: Prometheus text 0.0.4 and OpenMetrics 1.0.
 * ------------------------------------------------------------------------------------------- */
void tslab__render_prom(const tslab__snapshot *snap, bool openmetrics, tslab__buf *b);

/* ---------------------------------------------------------------------------------------------
 * render_json.c: the schema_version 1 JSON document. 0 or -ENOMEM.
 * ------------------------------------------------------------------------------------------- */
int tslab__render_json(const tslab__snapshot *snap, tslab__buf *b);

/* ---------------------------------------------------------------------------------------------
 * metrics.c: rendering entry points (the public tslab_metrics_render is here).
 * ------------------------------------------------------------------------------------------- */
/* Renders a snapshot that is already taken (golden tests build one by hand). */
int tslab__render(const tslab__snapshot *snap, tslab_format fmt, char **out, size_t *out_len);
/* Snapshot + render, timing the render into *counters. */
int tslab__metrics_render(tslab *const *allocs, size_t n, tslab_format fmt,
                          tslab__scrape_counters *counters, char **out, size_t *out_len);

/* ---------------------------------------------------------------------------------------------
 * negotiate.c: HTTP content negotiation (RFC 9110 Accept / Accept-Encoding with q-values; the
 * most specific matching range decides an offer's q) and gzip. No libmicrohttpd here.
 * ------------------------------------------------------------------------------------------- */
/* True when `accept` ranks OpenMetrics 1.0 strictly above text 0.0.4 (NULL: false). */
bool tslab__accept_openmetrics(const char *accept);
/* True when `accept_encoding` gives gzip a nonzero q (NULL: false). */
bool tslab__accept_gzip(const char *accept_encoding);
/* gzip (RFC 1952) of in[0..n) into a malloc'd buffer. 0, -ENOMEM or -EIO. */
int tslab__gzip(const char *in, size_t n, char **out, size_t *out_len);

/* ---------------------------------------------------------------------------------------------
 * webconfig.c: the exporter-toolkit web configuration file (YAML, libyaml).
 * ------------------------------------------------------------------------------------------- */
typedef enum tslab__client_auth {
    TSLAB__CLIENT_AUTH_NONE = 0,          /* NoClientCert */
    TSLAB__CLIENT_AUTH_REQUEST,           /* RequestClientCert: asked, neither needed nor checked */
    TSLAB__CLIENT_AUTH_REQUIRE_ANY,       /* RequireAnyClientCert: needed, not checked */
    TSLAB__CLIENT_AUTH_VERIFY_IF_GIVEN,   /* VerifyClientCertIfGiven */
    TSLAB__CLIENT_AUTH_REQUIRE_AND_VERIFY /* RequireAndVerifyClientCert */
} tslab__client_auth;

typedef struct tslab__webconfig_pair {
    char *name, *value;
} tslab__webconfig_pair;

typedef struct tslab__webconfig {
    bool tls;            /* tls_server_config given: cert_pem and key_pem are set */
    char *cert_pem;      /* server certificate chain (PEM) */
    char *key_pem;       /* its private key (PEM; wiped when freed) */
    char *client_ca_pem; /* CAs for client certificates, or NULL */
    tslab__client_auth client_auth;
    unsigned min_version, max_version; /* 10..13 for TLS 1.0..1.3; 0: not given */
    tslab__webconfig_pair *headers;    /* added to every response */
    size_t header_count;
    tslab__webconfig_pair *users; /* name: user, value: bcrypt hash */
    size_t user_count;            /* 0: no basic authentication */
} tslab__webconfig;

/* Reads and checks `path`. 0, -EINVAL (unreadable or malformed file, or a file it names; a
 * message "PATH:LINE: what" goes to err[0..err_size)), or -ENOMEM. *out is freed on error. */
int tslab__webconfig_load(const char *path, tslab__webconfig *out, char *err, size_t err_size);
void tslab__webconfig_free(tslab__webconfig *w);

/* ---------------------------------------------------------------------------------------------
 * basicauth.c: HTTP basic authentication against bcrypt hashes (libcrypt), with a cache of the
 * last successful password of each user (bcrypt is slow on purpose). Single-threaded: the
 * exporter thread owns it.
 * ------------------------------------------------------------------------------------------- */
typedef struct tslab__basic_auth tslab__basic_auth;

/* Users and hashes are copied. NULL on ENOMEM. */
tslab__basic_auth *tslab__basic_auth_new(const tslab__webconfig_pair *users, size_t n);
/* True when `user` exists and `password` matches its hash. Takes about as long for an unknown
 * user as for a known one with a wrong password. */
bool tslab__basic_auth_check(tslab__basic_auth *a, const char *user, const char *password);
void tslab__basic_auth_free(tslab__basic_auth *a);

/* ---------------------------------------------------------------------------------------------
 * pprof.c: the sampled heap profile as a gzip-compressed pprof profile.proto.
 * ------------------------------------------------------------------------------------------- */
/* Reads allocs[0..n) (tslab_profile_read) into one profile; *out from malloc. 0, -EINVAL or
 * -ENOMEM. */
int tslab__pprof_render(tslab *const *allocs, size_t n, char **out, size_t *out_len);

/* ---------------------------------------------------------------------------------------------
 * symbols.c: code address -> name of the exported function that contains it, or NULL.
 * ------------------------------------------------------------------------------------------- */
const char *tslab__function_at(uintptr_t addr);

/* ---------------------------------------------------------------------------------------------
 * debug.c: the exporter's debug endpoints (routes and bodies; http.c sends them).
 * ------------------------------------------------------------------------------------------- */
typedef enum tslab__debug_kind {
    TSLAB__DEBUG_NONE,
    TSLAB__DEBUG_HEAP,
    TSLAB__DEBUG_REJECTIONS
} tslab__debug_kind;

typedef struct tslab__debug_body {
    char *data; /* from malloc: the caller frees it */
    size_t len;
    const char *content_type;
    const char *disposition; /* Content-Disposition, or NULL */
} tslab__debug_body;

/* The debug endpoint at `url` (no query string), or TSLAB__DEBUG_NONE. */
tslab__debug_kind tslab__debug_route(const char *url);
/* Renders endpoint `kind` for allocs[0..n) into *out. 0, -EINVAL or -ENOMEM. */
int tslab__debug_render(tslab__debug_kind kind, tslab *const *allocs, size_t n,
                        tslab__debug_body *out);

/* ---------------------------------------------------------------------------------------------
 * http.c: the exporter (the only file that includes microhttpd.h). Public API only.
 * ------------------------------------------------------------------------------------------- */

#endif /* TSLAB_TELEMETRY_INTERNAL_H */
