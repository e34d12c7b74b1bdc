/* The exporter: one libmicrohttpd daemon with its own polling thread. The only file that
 * includes microhttpd.h; no libmicrohttpd type leaves it.
 *
 * libmicrohttpd 0.9.75 facts this relies on (telemetry/README.md, TRAPS.md):
 *   - the handler returns enum MHD_Result and is called at least twice per request; the first
 *     call (*con_cls == NULL) only marks the connection;
 *   - without MHD_OPTION_SOCK_ADDR it binds every interface, and without explicit limits it has
 *     no timeout and FD_SETSIZE-4 connections: every one of those is set here;
 *   - it never compresses (negotiate.c does), and it sends no body for HEAD by itself;
 *   - its thread inherits the signal mask of the thread that starts it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "telemetry.h"
#include "tslab_index_html.h" /* generated from src/index.html at build time */

#define DEFAULT_ADDRESS "127.0.0.1"
#define DEFAULT_MAX_CONNECTIONS 64u
#define DEFAULT_PER_IP_CONNECTIONS 16u
#define DEFAULT_TIMEOUT_SECONDS 20u /* not a usual scrape interval: no close racing a reuse */
#define DEFAULT_MEMORY_LIMIT ((size_t)32 * 1024)

struct tslab_exporter {
    struct MHD_Daemon *daemon;
    tslab **allocs; /* a copy of the configured list */
    size_t alloc_count;
    char *token; /* NULL: no authentication */
    bool debug;  /* the /debug/ endpoints are served (debug.c) */
    size_t token_len;
    tslab__scrape_counters counters;
    struct sockaddr_storage addr; /* as configured (port as requested) */
    uint16_t port;                /* as bound */
    tslab_exporter *next;         /* in `running` */
};

/* Exporters of this process, to tell a second start on the same address and port (-EALREADY)
 * from a port taken by someone else (-EADDRINUSE). */
static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;
static tslab_exporter *running;

/* ---- Responses ---------------------------------------------------------------------------- */

typedef struct header {
    const char *name, *value;
} header;

/* Queues a response with `body` (MHD takes ownership when `owned`). */
static enum MHD_Result respond(struct MHD_Connection *con, unsigned status, const char *body,
                               size_t len, bool owned, const char *content_type,
                               const header *extra, size_t extra_count)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, (void *)(uintptr_t)body, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        if (owned)
            free((void *)(uintptr_t)body);
        return MHD_NO;
    }
    bool ok = MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) == MHD_YES;
    ok = ok && MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") == MHD_YES;
    for (size_t i = 0; ok && i < extra_count; i++)
        ok = MHD_add_response_header(r, extra[i].name, extra[i].value) == MHD_YES;
    enum MHD_Result rc = ok ? MHD_queue_response(con, status, r) : MHD_NO;
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result respond_text(struct MHD_Connection *con, unsigned status, const char *text,
                                    const header *extra, size_t extra_count)
{
    return respond(con, status, text, strlen(text), false, "text/plain; charset=utf-8", extra,
                   extra_count);
}

/* /metrics and /metrics.json: render, gzip when the client accepts it. */
static enum MHD_Result respond_metrics(tslab_exporter *e, struct MHD_Connection *con,
                                       tslab_format fmt)
{
    char *body;
    size_t len;
    int err = tslab__metrics_render((tslab *const *)e->allocs, e->alloc_count, fmt, &e->counters,
                                    &body, &len);
    if (err != 0)
        return respond_text(con, MHD_HTTP_INTERNAL_SERVER_ERROR, "render failed\n", NULL, 0);

    header extra[2];
    size_t n = 0;
    extra[n++] = (header){MHD_HTTP_HEADER_VARY,
                          fmt == TSLAB_FORMAT_JSON ? "Accept-Encoding" : "Accept, Accept-Encoding"};
    const char *ae =
        MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    if (tslab__accept_gzip(ae)) {
        char *gz;
        size_t gz_len;
        if (tslab__gzip(body, len, &gz, &gz_len) == 0) {
            free(body);
            body = gz;
            len = gz_len;
            extra[n++] = (header){MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip"};
        }
    }
    const char *type = fmt == TSLAB_FORMAT_JSON ? "application/json"
                       : fmt == TSLAB_FORMAT_OPENMETRICS
                           ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                           : "text/plain; version=0.0.4; charset=utf-8";
    return respond(con, MHD_HTTP_OK, body, len, true, type, extra, n);
}

/* A debug endpoint: its body comes from debug.c. */
static enum MHD_Result respond_debug(tslab_exporter *e, struct MHD_Connection *con,
                                     tslab__debug_kind kind)
{
    tslab__debug_body b;
    if (tslab__debug_render(kind, (tslab *const *)e->allocs, e->alloc_count, &b) != 0)
        return respond_text(con, MHD_HTTP_INTERNAL_SERVER_ERROR, "render failed\n", NULL, 0);
    header extra = {"Content-Disposition", b.disposition};
    return respond(con, MHD_HTTP_OK, b.data, b.len, true, b.content_type, &extra,
                   b.disposition ? 1 : 0);
}

/* ---- Request handler ---------------------------------------------------------------------- */

typedef enum endpoint { EP_NONE, EP_INDEX, EP_METRICS, EP_JSON, EP_HEALTH, EP_DEBUG } endpoint;

static endpoint route(const char *url)
{
    if (strcmp(url, "/metrics") == 0)
        return EP_METRICS;
    if (strcmp(url, "/metrics.json") == 0)
        return EP_JSON;
    if (strcmp(url, "/healthz") == 0)
        return EP_HEALTH;
    if (strcmp(url, "/") == 0)
        return EP_INDEX;
    return EP_NONE;
}

/* "Authorization: Bearer <token>", compared in time independent of where it differs. */
static bool authorized(const tslab_exporter *e, struct MHD_Connection *con)
{
    const char *v =
        MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (v == NULL || strncasecmp(v, "Bearer ", 7) != 0)
        return false;
    v += 7;
    while (*v == ' ')
        v++;
    size_t len = strlen(v);
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len != e->token_len)
        return false;
    unsigned char diff = 0;
    for (size_t i = 0; i < len; i++)
        diff |= (unsigned char)(v[i] ^ e->token[i]);
    return diff == 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *con, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
    static int marker;
    tslab_exporter *e = cls;
    (void)version;
    (void)upload_data;
    if (*con_cls == NULL) { /* headers are in; answer once the request is complete */
        *con_cls = &marker;
        return MHD_YES;
    }
    if (*upload_data_size != 0) { /* a request body: read and ignored */
        *upload_data_size = 0;
        return MHD_YES;
    }

    endpoint ep = route(url);
    tslab__debug_kind dk = e->debug ? tslab__debug_route(url) : TSLAB__DEBUG_NONE;
    if (dk != TSLAB__DEBUG_NONE)
        ep = EP_DEBUG;
    if (ep == EP_NONE)
        return respond_text(con, MHD_HTTP_NOT_FOUND, "not found\n", NULL, 0);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        static const header allow = {MHD_HTTP_HEADER_ALLOW, "GET, HEAD"};
        return respond_text(con, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", &allow, 1);
    }
    if (ep != EP_HEALTH && e->token != NULL && !authorized(e, con)) {
        static const header challenge = {MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                         "Bearer realm=\"tslab\""};
        return respond_text(con, MHD_HTTP_UNAUTHORIZED, "unauthorized\n", &challenge, 1);
    }

    switch (ep) {
    case EP_METRICS: {
        const char *accept =
            MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
        return respond_metrics(e, con,
                               tslab__accept_openmetrics(accept) ? TSLAB_FORMAT_OPENMETRICS
                                                                 : TSLAB_FORMAT_PROMETHEUS);
    }
    case EP_JSON: return respond_metrics(e, con, TSLAB_FORMAT_JSON);
    case EP_HEALTH: return respond_text(con, MHD_HTTP_OK, "ok\n", NULL, 0);
    case EP_INDEX:
        return respond(con, MHD_HTTP_OK, (const char *)tslab__index_html, tslab__index_html_len,
                       false, "text/html; charset=utf-8", NULL, 0);
    case EP_DEBUG: return respond_debug(e, con, dk);
    case EP_NONE: break;
    }
    return MHD_NO;
}

/* ---- Start / stop ------------------------------------------------------------------------- */

static int parse_address(const char *text, uint16_t port, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof *out);
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        return 0;
    }
    if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        return 0;
    }
    return -EINVAL;
}

static socklen_t addr_len(const struct sockaddr_storage *a)
{
    return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static bool is_any(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

/* Would binding `a` collide with exporter `e` of this process? (Called under running_lock.) */
static bool collides(const tslab_exporter *e, const struct sockaddr_storage *a, uint16_t port)
{
    if (port == 0 || e->port != port || e->addr.ss_family != a->ss_family)
        return false;
    if (is_any(a) || is_any(&e->addr))
        return true;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)&e->addr)->sin_addr.s_addr;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)&e->addr)->sin6_addr,
                  sizeof(struct in6_addr)) == 0;
}

/* libmicrohttpd reports a failed start only as NULL. Bind the same address as it would to learn
 * why (it sets SO_REUSEADDR, so do we). */
static int diagnose_bind(const struct sockaddr_storage *a)
{
    int fd = socket(a->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a->ss_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    int err = bind(fd, (const struct sockaddr *)a, addr_len(a)) == 0 ? -EIO : -errno;
    close(fd);
    return err;
}

static void exporter_free(tslab_exporter *e)
{
    if (e == NULL)
        return;
    free(e->allocs);
    if (e->token != NULL) {
        explicit_bzero(e->token, e->token_len); /* not optimized away */
        free(e->token);
    }
    free(e);
}

static struct MHD_Daemon *daemon_start(tslab_exporter *e, const tslab_exporter_config *cfg)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
    if (e->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned max_conn = cfg->max_connections ? cfg->max_connections : DEFAULT_MAX_CONNECTIONS;
    unsigned per_ip =
        cfg->per_ip_connections ? cfg->per_ip_connections : DEFAULT_PER_IP_CONNECTIONS;
    unsigned timeout = cfg->timeout_seconds ? cfg->timeout_seconds : DEFAULT_TIMEOUT_SECONDS;
    size_t memory = cfg->memory_limit ? cfg->memory_limit : DEFAULT_MEMORY_LIMIT;

    /* The daemon's thread inherits this thread's signal mask: block everything around its
     * creation so process signals are delivered to the application's threads. */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved);
    /* Every limit explicit: libmicrohttpd's defaults are every interface and no timeout. */
    /* clang-format off */
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0 /* port: taken from SOCK_ADDR */, NULL, NULL, handle, e,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&e->addr,
        MHD_OPTION_CONNECTION_LIMIT, max_conn,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, per_ip,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, memory,
        MHD_OPTION_END);
    /* clang-format on */
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    return d;
}

int tslab_exporter_start(const tslab_exporter_config *cfg, tslab_exporter **out)
{
    if (cfg == NULL || out == NULL)
        return -EINVAL;
    *out = NULL;
    if (cfg->allocator_count > 0 && cfg->allocators == NULL)
        return -EINVAL;
    int err = tslab__names_check(cfg->allocators, cfg->allocator_count);
    if (err != 0)
        return err;

    tslab_exporter *e = calloc(1, sizeof *e);
    if (e == NULL)
        return -ENOMEM;
    e->debug = cfg->debug_endpoints;
    err = parse_address(cfg->address ? cfg->address : DEFAULT_ADDRESS, cfg->port, &e->addr);
    if (err != 0) {
        exporter_free(e);
        return err;
    }
    if (cfg->allocator_count > 0) {
        e->allocs = calloc(cfg->allocator_count, sizeof *e->allocs);
        if (e->allocs == NULL) {
            exporter_free(e);
            return -ENOMEM;
        }
        memcpy(e->allocs, cfg->allocators, cfg->allocator_count * sizeof *e->allocs);
    }
    e->alloc_count = cfg->allocator_count;
    if (cfg->bearer_token != NULL) {
        e->token_len = strlen(cfg->bearer_token);
        e->token = strdup(cfg->bearer_token);
        if (e->token == NULL) {
            exporter_free(e);
            return -ENOMEM;
        }
    }

    pthread_mutex_lock(&running_lock);
    for (tslab_exporter *r = running; r != NULL; r = r->next) {
        if (collides(r, &e->addr, cfg->port)) {
            pthread_mutex_unlock(&running_lock);
            exporter_free(e);
            return -EALREADY;
        }
    }
    e->daemon = daemon_start(e, cfg);
    if (e->daemon == NULL) {
        pthread_mutex_unlock(&running_lock);
        err = diagnose_bind(&e->addr);
        exporter_free(e);
        return err;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(e->daemon, MHD_DAEMON_INFO_BIND_PORT);
    e->port = info != NULL ? info->port : cfg->port;
    e->next = running;
    running = e;
    pthread_mutex_unlock(&running_lock);
    *out = e;
    return 0;
}

uint16_t tslab_exporter_port(const tslab_exporter *e) { return e != NULL ? e->port : 0; }

void tslab_exporter_stop(tslab_exporter *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&running_lock);
    for (tslab_exporter **p = &running; *p != NULL; p = &(*p)->next) {
        if (*p == e) {
            *p = e->next;
            break;
        }
    }
    pthread_mutex_unlock(&running_lock);
    MHD_stop_daemon(e->daemon); /* closes every socket and joins the thread */
    exporter_free(e);
}
