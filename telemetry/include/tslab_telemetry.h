/* temporal-slab telemetry: Prometheus / OpenMetrics / JSON exposition of allocator statistics,
 * and an optional embedded HTTP exporter.
 *
 * The core library never depends on this one. Everything here reads allocators only through
 * tslab_stats_read(), which never takes a lock on their fast path: a scrape costs the allocating
 * threads nothing.
 *
 * Error convention (as in tslab.h): control calls return 0 or a negative errno value;
 * tslab_strerror() names it.
 *
 * Metric names, label sets and the JSON schema are documented in telemetry/README.md and are a
 * stable interface: dashboards and alert rules are written against them.
 */
#ifndef TSLAB_TELEMETRY_H
#define TSLAB_TELEMETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tslab.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Output formats of tslab_metrics_render. */
typedef enum tslab_format {
    TSLAB_FORMAT_PROMETHEUS = 0,  /* text exposition format 0.0.4 */
    TSLAB_FORMAT_OPENMETRICS = 1, /* OpenMetrics 1.0 text, ending in "# EOF" */
    TSLAB_FORMAT_JSON = 2         /* the schema_version 1 document of telemetry/README.md */
} tslab_format;

/* Snapshots allocs[0..n) (tslab_stats_read on each) and the process (/proc/self), and renders
 * them in `fmt`. On success *out is a NUL-terminated buffer from malloc (the caller frees it) and
 * *out_len its length without the NUL. Returns 0, -EINVAL (a NULL argument, an unknown format, or
 * two allocators with the same name, which would make duplicate series) or -ENOMEM.
 * The allocators must stay alive during the call. Safe to call from any thread. */
TSLAB_API int tslab_metrics_render(tslab *const *allocs, size_t n, tslab_format fmt, char **out,
                                   size_t *out_len);

/* Writes the sampled heap profile of allocs[0..n) (tslab.h "Sampling profiler") to fd as a
 * gzip-compressed pprof profile.proto, the format of Go's /debug/pprof/heap, for `go tool pprof`:
 * sample types alloc_objects, alloc_space, inuse_objects, inuse_space, scaled for sampling as Go
 * scales them; each sample labelled with its object size ("bytes") and allocator name; mappings
 * from /proc/self/maps; functions named by dladdr where the program exports its symbols (link
 * with -rdynamic), else left as addresses. For services that run no exporter. 0, -EINVAL (a NULL
 * allocator, fd < 0), -ENOMEM, or the -errno of write(2). The allocators must stay alive. */
TSLAB_API int tslab_profile_write(tslab *const *allocs, size_t n, int fd);

/* ---------------------------------------------------------------------------------------------
 * Exporter: one HTTP thread (libmicrohttpd) serving
 *   /metrics       Prometheus text 0.0.4, or OpenMetrics 1.0 when the Accept header prefers
 *                  application/openmetrics-text; gzip when Accept-Encoding allows it
 *   /metrics.json  the JSON document
 *   /healthz       "ok"
 *   /              a small HTML page
 *   /debug/pprof/heap  only with debug_endpoints: the sampled heap profile (pprof)
 *   /debug/rejections  only with debug_endpoints: the last rejected frees, with stacks (JSON)
 * GET and HEAD only (405 otherwise), 404 for any other path.
 * ------------------------------------------------------------------------------------------- */
typedef struct tslab_exporter tslab_exporter; /* opaque */

/* Zero fields take the defaults below, so `tslab_exporter_config c = {0};` plus the allocator
 * list is a complete configuration. */
typedef struct tslab_exporter_config {
    const char *address;      /* numeric IPv4 or IPv6 address to bind; NULL = "127.0.0.1" */
    uint16_t port;            /* 0 = let the kernel pick; read it with tslab_exporter_port */
    tslab *const *allocators; /* exported allocators (copied; each must outlive the
                                 exporter); may be NULL when allocator_count is 0 */
    size_t allocator_count;
    const char *bearer_token;    /* NULL = no authentication; else every endpoint except
                                    /healthz needs "Authorization: Bearer <token>" (401) */
    unsigned max_connections;    /* 0 = 64: open connections in all */
    unsigned per_ip_connections; /* 0 = 16: open connections from one client address */
    unsigned timeout_seconds;    /* 0 = 20: an idle or stalled connection is closed after it */
    size_t memory_limit;         /* 0 = 32 KiB: per-connection buffer for the request line and
                                    headers; a larger request gets 431 or is closed */
    bool debug_endpoints;        /* false (default): /debug/... are 404. true: serve
                                    /debug/pprof/heap (the profile of tslab_profile_write) and
                                    /debug/rejections, behind bearer_token when one is set. They
                                    show code addresses: telemetry/README.md "Privacy" */
} tslab_exporter_config;

/* Starts the exporter thread; on success stores the exporter in *out and returns 0.
 * Errors: -EINVAL (NULL cfg/out, an address that is not a numeric IPv4/IPv6 literal, allocators
 * NULL with a nonzero count, duplicate allocator names), -EADDRINUSE (the port is taken by another
 * socket), -EADDRNOTAVAIL (the address is not local), -EACCES (privileged port), -EALREADY (an
 * exporter of this process already listens on that port of that address; port 0 never
 * conflicts), -ENOMEM, -EIO (libmicrohttpd failed for another reason).
 * The HTTP thread blocks every signal, so signals go to the application's threads. */
TSLAB_API int tslab_exporter_start(const tslab_exporter_config *cfg, tslab_exporter **out);

/* The port the exporter listens on (the chosen one when cfg->port was 0); 0 for NULL. */
TSLAB_API uint16_t tslab_exporter_port(const tslab_exporter *e);

/* Closes the listening socket and every connection, joins the HTTP thread and frees the
 * exporter. NULL is a no-op. Must not race with another call on the same exporter. */
TSLAB_API void tslab_exporter_stop(tslab_exporter *e);

#ifdef __cplusplus
}
#endif
#endif /* TSLAB_TELEMETRY_H */
