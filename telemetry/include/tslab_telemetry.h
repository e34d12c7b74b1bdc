/** @file
 * temporal-slab telemetry: Prometheus / OpenMetrics / JSON exposition of allocator statistics,
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

/** Output formats of tslab_metrics_render. */
typedef enum tslab_format {
    TSLAB_FORMAT_PROMETHEUS = 0,  /**< text exposition format 0.0.4 */
    TSLAB_FORMAT_OPENMETRICS = 1, /**< OpenMetrics 1.0 text, ending in "# EOF" */
    TSLAB_FORMAT_JSON = 2         /**< the schema_version 1 document of telemetry/README.md */
} tslab_format;

/** Snapshots allocs[0..n) (tslab_stats_read on each) and the process (/proc/self), and renders
 * them in `fmt`. On success *out is a NUL-terminated buffer from malloc (the caller frees it) and
 * *out_len its length without the NUL. Returns 0, -EINVAL (a NULL argument, an unknown format, or
 * two allocators with the same name, which would make duplicate series) or -ENOMEM.
 * The allocators must stay alive during the call. Safe to call from any thread. */
TSLAB_API int tslab_metrics_render(tslab *const *allocs, size_t n, tslab_format fmt, char **out,
                                   size_t *out_len);

/** Writes the sampled heap profile of allocs[0..n) (tslab.h "Sampling profiler") to fd as a
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
typedef struct tslab_exporter tslab_exporter; /**< opaque */

/** Zero fields take the defaults below, so `tslab_exporter_config c = {0};` plus the allocator
 * list is a complete configuration. */
typedef struct tslab_exporter_config {
    const char *address;         /**< IPv4 or IPv6 address, or a host name ("localhost"), to bind;
                                    NULL = "127.0.0.1". A name is resolved (getaddrinfo) and its
                                    addresses tried in order; the first that binds is used */
    uint16_t port;               /**< 0 = let the kernel pick; read it with tslab_exporter_port */
    tslab *const *allocators;    /**< exported allocators (copied; each must outlive the
                                    exporter); may be NULL when allocator_count is 0 */
    size_t allocator_count;      /**< entries in `allocators` */
    const char *bearer_token;    /**< NULL = no authentication; else every endpoint except
                                    /healthz needs "Authorization: Bearer <token>" (401) */
    unsigned max_connections;    /**< 0 = 64: open connections in all */
    unsigned per_ip_connections; /**< 0 = 16: open connections from one client address */
    unsigned timeout_seconds;    /**< 0 = 20: an idle or stalled connection is closed after it */
    size_t memory_limit;         /**< 0 = 32 KiB: per-connection buffer for the request line and
                                    headers; a larger request gets 431 or is closed */
    /* Fields added in 1.1 (appended: the ones above keep their offsets). */
    unsigned request_timeout_seconds; /**< 0 = 5: a new connection must deliver its whole request
                                         line and headers within this long of being accepted,
                                         however steadily it sends (a deadline, not an idle timer).
                                         Capped at timeout_seconds */
    /** When the exporter is bound to a loopback address, only requests whose Host header names a
     * loopback address (127.0.0.0/8, [::1]), "localhost" or one of these names (any port) are
     * answered; the others, and requests without Host, get 421 Misdirected Request. This stops
     * a web page from reading the exporter through DNS rebinding. Names are compared
     * case-insensitively, without the port. NULL/0: no extra names. Ignored for other binds. */
    const char *const *allowed_hosts; /**< copied */
    size_t allowed_host_count;        /**< entries in `allowed_hosts` */
    /** A web configuration file in the Prometheus exporter-toolkit format (what exporters take
     * as --web.config.file): tls_server_config (TLS, client certificates), basic_auth_users
     * (bcrypt hashes), http_server_config.headers. Read once, at start. NULL: plain HTTP.
     * telemetry/README.md lists what is supported. */
    const char *web_config_file;
    /** A file holding the bearer token (surrounding white space and the final newline are
     * dropped), so that it does not show in `ps`. Exclusive with bearer_token. */
    const char *bearer_token_file;
    /** When tslab_exporter_start fails, a one-line reason ("web.yml:7: tls_server_config needs
     * exactly one of cert_file and cert") is written here, NUL-terminated and truncated to
     * error_message_size. NULL: none. */
    char *error_message;
    size_t error_message_size; /**< bytes at error_message */
    bool debug_endpoints;      /**< false (default): /debug/... are 404. true: serve
                                         /debug/pprof/heap (the profile of tslab_profile_write) and
                                         /debug/rejections, behind bearer_token when one is set. They
                                         show code addresses: telemetry/README.md "Privacy" */
} tslab_exporter_config;

/** Starts the exporter thread from a caller's configuration of `cfg_size` bytes (its
 * sizeof(tslab_exporter_config)): the library reads exactly the fields the caller's struct has
 * (a program built against an older header passes a shorter struct; what it lacks takes the
 * default) and never a byte past it; a newer caller's fields unknown here must be zero. On
 * success stores the exporter in *out and returns 0.
 * Errors: -EINVAL (NULL cfg/out, an address that is neither an IPv4/IPv6 literal nor a name
 * that resolves, allocators NULL with a nonzero count, duplicate allocator names, a malformed or
 * unreadable web configuration or token file, bearer_token with bearer_token_file), -ENOTSUP
 * (TLS asked of a libmicrohttpd built without it), -EADDRINUSE (the port is taken by another
 * socket), -EADDRNOTAVAIL (the address is not local), -EACCES (privileged port), -EALREADY (an
 * exporter of this process already listens on that port of that address; port 0 never
 * conflicts), -ENOMEM, -EIO (libmicrohttpd failed for another reason).
 * The HTTP thread blocks every signal, so signals go to the application's threads. */
TSLAB_API int tslab_exporter_start_sized(const tslab_exporter_config *cfg, size_t cfg_size,
                                         tslab_exporter **out);

#ifndef TSLAB__DEFINES_EXPORTER_START_1_0
/** tslab_exporter_start_sized with this header's size. (The library also exports a function of
 * this name, for programs built against 1.0: it reads exactly 1.0's tslab_exporter_config.) */
static inline int tslab_exporter_start(const tslab_exporter_config *cfg, tslab_exporter **out)
{
    return tslab_exporter_start_sized(cfg, sizeof *cfg, out);
}
#endif

/** The port the exporter listens on (the chosen one when cfg->port was 0); 0 for NULL. */
TSLAB_API uint16_t tslab_exporter_port(const tslab_exporter *e);

/** "https" when the exporter serves TLS (a web configuration with tls_server_config), "http"
 * otherwise (also for NULL): for printing the exporter's URL. */
TSLAB_API const char *tslab_exporter_scheme(const tslab_exporter *e);

/** Closes the listening socket and every connection, joins the HTTP thread and frees the
 * exporter. NULL is a no-op. Must not race with another call on the same exporter. */
TSLAB_API void tslab_exporter_stop(tslab_exporter *e);

#ifdef __cplusplus
}
#endif
#endif /* TSLAB_TELEMETRY_H */
