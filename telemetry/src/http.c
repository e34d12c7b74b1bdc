/* The exporter: one libmicrohttpd daemon driven by a thread of ours. The only file that
 * includes microhttpd.h; no libmicrohttpd type leaves it.
 *
 * libmicrohttpd 0.9.75 facts this relies on (telemetry/README.md):
 *   - the handler returns enum MHD_Result and is called at least twice per request; the first
 *     call (*con_cls == NULL) comes once the line and headers are in, and only marks the request;
 *   - without MHD_OPTION_SOCK_ADDR it binds every interface, and without explicit limits it has
 *     no timeout and FD_SETSIZE-4 connections: every one of those is set here;
 *   - its connection timeout is an idle timer that every received byte restarts, so on its own
 *     it lets a client that sends one header byte a second keep a slot forever;
 *   - it never compresses (negotiate.c does), and it sends no body for HEAD by itself;
 *   - NOTIFY_CONNECTION(CLOSED) is called before it closes the socket.
 *
 * Connection policy (issue 11; README "Connection limits"). libmicrohttpd runs in external epoll
 * mode and our thread runs its loop, so that between two MHD_run calls nothing of
 * libmicrohttpd runs and every connection we track has a live socket. Each connection gets a
 * record (NOTIFY_CONNECTION) stamped when it is accepted and again when a response completes:
 *   - deadline: a connection must deliver a complete request line and headers within
 *     request_timeout of being accepted (timeout_seconds after its previous response when it
 *     is kept alive), however steadily it trickles bytes; and a response must be delivered
 *     within timeout_seconds of its request (a client that reads a byte now and then would
 *     otherwise keep libmicrohttpd's idle timer from ever firing);
 *   - peer closed: our own epoll set watches every socket for EPOLLRDHUP; a connection whose
 *     peer has gone with no request in progress is closed two loop turns later (the turns let
 *     libmicrohttpd answer pipelined requests it has already read);
 *   - eviction: after each run, any address over per_ip_connections and the whole over
 *     max_connections lose their oldest connections that have no complete request in progress
 *     (a new connection gets a short grace first, GRACE_MS). Newcomers are never refused for
 *     being over a limit: a complete request always gets a slot and is served, while the slow
 *     clients in the way are cut off. libmicrohttpd's own limit (twice ours) only bounds
 *     descriptors; beyond it newcomers wait in the kernel's backlog.
 * "Closed" above means shutdown(2) of the socket: libmicrohttpd then reads EOF and closes and
 * frees the connection itself in its next run. */
#define TSLAB__DEFINES_EXPORTER_START_1_0 1 /* this file defines the 1.0 symbol */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>

#include "telemetry.h"
#include "tslab_index_html.h" /* generated from src/index.html at build time */

#define DEFAULT_ADDRESS "127.0.0.1"
#define DEFAULT_MAX_CONNECTIONS 64u
#define DEFAULT_PER_IP_CONNECTIONS 16u
#define DEFAULT_TIMEOUT_SECONDS 20u /* not a usual scrape interval: no close racing a reuse */
#define DEFAULT_REQUEST_TIMEOUT_SECONDS 5u
#define DEFAULT_MEMORY_LIMIT ((size_t)32 * 1024)
/* Loop turns a peer-closed connection with no request in progress survives (see above). */
#define PEER_CLOSED_TURNS 2u
/* Poll period while a peer-closed connection waits for those turns. */
#define PEER_CLOSED_POLL_MS 10
/* A new connection is not evicted during its first GRACE_MS: a normal client sends its request
 * right after connect(), but on a loaded host that can be milliseconds later, after
 * libmicrohttpd's first read; without the grace a burst of newer attackers could evict it in
 * that gap (measured without it: 1 of 100 scrapes lost under 200 slow attackers with three
 * test runs sharing two cores; none with it). Short against scrape timeouts (Prometheus: 10 s);
 * while newcomers in their grace fill the hard limit, later ones wait in the kernel's backlog
 * for at most about this long. */
#define GRACE_MS 250
#define GRACE_NS ((uint64_t)GRACE_MS * 1000000u)
/* The loop never sleeps longer than this: a backstop for libmicrohttpd state we cannot see
 * (one wake-up a second costs nothing measurable). */
#define BACKSTOP_MS 1000

/* One accepted connection, from NOTIFY_CONNECTION(STARTED) to (CLOSED). Touched only by the
 * exporter thread. */
typedef struct conn {
    struct conn *prev, *next; /* in tslab_exporter.conns */
    int fd;
    struct sockaddr_storage peer;
    uint64_t stamp_ns;    /* accepted, its request's headers in, or its response done */
    uint64_t closed_turn; /* loop turn its peer was seen gone (valid when peer_closed) */
    uint64_t requests;    /* requests whose headers arrived */
    uint64_t closed_seen; /* `requests` when peer_closed was (re)armed */
    bool kept_alive;      /* a response completed: the idle deadline applies */
    bool in_request;      /* headers complete, response not yet done: closed by us only when the
                             response outlives timeout_seconds (a client that stops reading) */
    bool peer_closed;
    bool evicted;      /* shut down by us; libmicrohttpd closes it in its next run */
    bool cert_checked; /* the client certificate was checked (TLS with client auth) */
    bool cert_ok;
} conn;

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

    /* Web configuration (tslab_exporter_config.web_config_file): TLS, client certificates,
     * basic authentication, extra headers. All zero without a file. */
    tslab__webconfig web;
    tslab__basic_auth *basic; /* NULL: no basic authentication */

    /* Host check (only when bound to loopback). */
    bool check_host;
    char **hosts; /* extra allowed names, copied */
    size_t host_count;

    /* Connection policy; see the top of this file. */
    unsigned max_conn, per_ip;
    uint64_t request_ns, idle_ns;
    conn *conns; /* oldest accepted first */
    size_t live; /* records not evicted */
    uint64_t turn;
    unsigned closed_in_run; /* connections closed during the last MHD_run */
    int watch_fd;           /* epoll set: EPOLLRDHUP of every connection */
    int stop_fd;            /* eventfd: tslab_exporter_stop wakes the thread */
    pthread_t thread;
    bool thread_started;
};

/* Exporters of this process, to tell a second start on the same address and port (-EALREADY)
 * from a port taken by someone else (-EADDRINUSE). */
static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;
static tslab_exporter *running;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- Responses ---------------------------------------------------------------------------- */

typedef struct header {
    const char *name, *value;
} header;

/* Queues a response with `body` (MHD takes ownership when `owned`). */
static enum MHD_Result respond(const tslab_exporter *e, struct MHD_Connection *con, unsigned status,
                               const char *body, size_t len, bool owned, const char *content_type,
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
    for (size_t i = 0; ok && i < e->web.header_count; i++) /* http_server_config.headers */
        ok = MHD_add_response_header(r, e->web.headers[i].name, e->web.headers[i].value) == MHD_YES;
    enum MHD_Result rc = ok ? MHD_queue_response(con, status, r) : MHD_NO;
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result respond_text(const tslab_exporter *e, struct MHD_Connection *con,
                                    unsigned status, const char *text, const header *extra,
                                    size_t extra_count)
{
    return respond(e, con, status, text, strlen(text), false, "text/plain; charset=utf-8", extra,
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
        return respond_text(e, con, MHD_HTTP_INTERNAL_SERVER_ERROR, "render failed\n", NULL, 0);

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
    return respond(e, con, MHD_HTTP_OK, body, len, true, type, extra, n);
}

/* ---- Addresses -------------------------------------------------------------------------- */

/* Same IP address (ports ignored). */
static bool same_ip(const struct sockaddr_storage *a, const struct sockaddr *b)
{
    if (a->ss_family != b->sa_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)(const void *)b)->sin_addr.s_addr;
    return a->ss_family == AF_INET6 &&
           memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr,
                  sizeof(struct in6_addr)) == 0;
}

static bool is_loopback4(const struct in_addr *a) { return (ntohl(a->s_addr) >> 24) == 127; }

static bool is_loopback6(const struct in6_addr *a)
{
    if (IN6_IS_ADDR_LOOPBACK(a))
        return true;
    struct in_addr v4;
    memcpy(&v4, &a->s6_addr[12], sizeof v4);
    return IN6_IS_ADDR_V4MAPPED(a) && is_loopback4(&v4);
}

static bool is_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return is_loopback4(&((const struct sockaddr_in *)a)->sin_addr);
    return a->ss_family == AF_INET6 && is_loopback6(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

/* ---- Connection policy (see the top of this file) ----------------------------------------- */

static conn *record_of(struct MHD_Connection *con)
{
    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(con, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i != NULL ? i->socket_context : NULL;
}

/* Shuts the socket down: libmicrohttpd reads EOF in its next run and closes the connection.
 * The record stays until NOTIFY_CONNECTION(CLOSED) but no longer counts against the limits. */
static void evict(tslab_exporter *e, conn *c)
{
    c->evicted = true;
    e->live--;
    (void)epoll_ctl(e->watch_fd, EPOLL_CTL_DEL, c->fd, NULL);
    (void)shutdown(c->fd, SHUT_RDWR);
}

/* The connection with the oldest stamp that has no complete request in progress and is past
 * its grace period; from the address of `from` when it is not NULL. */
static conn *oldest_waiting(const tslab_exporter *e, const conn *from, uint64_t now)
{
    conn *best = NULL;
    for (conn *c = e->conns; c != NULL; c = c->next) {
        if (c->evicted || c->in_request || (!c->kept_alive && now - c->stamp_ns < GRACE_NS))
            continue;
        if (from != NULL && !same_ip(&c->peer, (const struct sockaddr *)&from->peer))
            continue;
        if (best == NULL || c->stamp_ns < best->stamp_ns)
            best = c;
    }
    return best;
}

/* Brings every address back within per_ip and the whole back within max_conn by evicting the
 * oldest waiting connections past their grace. Runs after MHD_run, when every connection
 * accepted in that run has had its first read. Returns true when some limit is still exceeded
 * (by connections serving a request or in their grace), so that the loop comes back soon. */
static bool enforce_limits(tslab_exporter *e, uint64_t now)
{
    bool over = false;
    for (conn *c = e->conns; c != NULL; c = c->next) {
        if (c->evicted)
            continue;
        size_t same = 0;
        for (const conn *o = e->conns; o != NULL; o = o->next)
            same += !o->evicted && same_ip(&o->peer, (const struct sockaddr *)&c->peer);
        for (; same > e->per_ip; same--) {
            conn *victim = oldest_waiting(e, c, now);
            if (victim == NULL) {
                over = true;
                break;
            }
            evict(e, victim);
        }
    }
    while (e->live > e->max_conn) {
        conn *victim = oldest_waiting(e, NULL, now);
        if (victim == NULL) {
            over = true;
            break;
        }
        evict(e, victim);
    }
    return over;
}

static void on_connection(void *cls, struct MHD_Connection *con, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    tslab_exporter *e = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(con, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *peer =
            MHD_get_connection_info(con, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        conn *c = calloc(1, sizeof *c);
        *socket_context = NULL;
        if (c == NULL || fd == NULL || peer == NULL) {
            /* Untracked, it would escape every limit: close it (the client may retry). */
            if (fd != NULL)
                (void)shutdown(fd->connect_fd, SHUT_RDWR);
            free(c);
            return;
        }
        c->fd = fd->connect_fd;
        memcpy(&c->peer, peer->client_addr,
               peer->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                        : sizeof(struct sockaddr_in));
        c->stamp_ns = now_ns();
        struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET, .data.ptr = c};
        if (epoll_ctl(e->watch_fd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
            (void)shutdown(c->fd, SHUT_RDWR);
            free(c);
            return;
        }
        c->next = e->conns; /* newest first: `oldest_waiting` compares stamps anyway */
        if (e->conns != NULL)
            e->conns->prev = c;
        e->conns = c;
        e->live++;
        *socket_context = c;
        return;
    }
    e->closed_in_run++;
    conn *c = *socket_context; /* MHD_CONNECTION_NOTIFY_CLOSED: the socket is still open */
    if (c == NULL)
        return;
    if (!c->evicted) {
        e->live--;
        (void)epoll_ctl(e->watch_fd, EPOLL_CTL_DEL, c->fd, NULL);
    }
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        e->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c);
    *socket_context = NULL;
}

/* A request ended (response sent, or the connection failed): the keep-alive deadline starts. */
static void on_completed(void *cls, struct MHD_Connection *con, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)con_cls;
    (void)toe;
    conn *c = record_of(con);
    if (c != NULL) {
        c->in_request = false;
        c->kept_alive = true;
        c->stamp_ns = now_ns();
    }
}

/* Drains the EPOLLRDHUP set: marks connections whose peer has shut down its side. */
static void watch_peers(tslab_exporter *e)
{
    struct epoll_event ev[64];
    int n;
    do {
        n = epoll_wait(e->watch_fd, ev, 64, 0);
        for (int i = 0; i < n; i++) {
            conn *c = ev[i].data.ptr;
            if (!c->peer_closed) {
                c->peer_closed = true;
                c->closed_turn = e->turn;
                c->closed_seen = c->requests;
            }
        }
    } while (n == 64);
}

/* Applies the deadlines and closes the connections of departed peers. Returns how long the
 * loop may sleep (ms) before the next deadline, or -1 for none. */
static int sweep(tslab_exporter *e, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    bool soon = false;
    for (conn *c = e->conns, *n; c != NULL; c = n) {
        n = c->next;
        if (c->evicted)
            continue;
        if (c->in_request) {
            /* The response must be delivered within timeout_seconds of the request: a client
             * that reads a byte now and then keeps libmicrohttpd's idle timer from firing. */
            uint64_t deadline = c->stamp_ns + e->idle_ns;
            if (now >= deadline)
                evict(e, c);
            else if (deadline < next)
                next = deadline;
            continue;
        }
        if (c->peer_closed) {
            int unread = 0;
            /* A new request since, or bytes libmicrohttpd has yet to read: wait again. */
            if (c->requests != c->closed_seen ||
                (ioctl(c->fd, FIONREAD, &unread) == 0 && unread > 0)) {
                c->closed_seen = c->requests;
                c->closed_turn = e->turn;
            }
            if (e->turn - c->closed_turn >= PEER_CLOSED_TURNS) {
                evict(e, c);
                continue;
            }
            soon = true;
        }
        uint64_t deadline = c->stamp_ns + (c->kept_alive ? e->idle_ns : e->request_ns);
        if (now >= deadline) {
            evict(e, c);
            continue;
        }
        if (deadline < next)
            next = deadline;
    }
    if (soon)
        return PEER_CLOSED_POLL_MS;
    if (next == UINT64_MAX)
        return -1;
    uint64_t ms = (next - now + 999999) / 1000000; /* round up: wake at or after it */
    return ms > 60000 ? 60000 : (int)ms;
}

/* The exporter thread: libmicrohttpd's loop plus the policy. */
static void *serve(void *arg)
{
    tslab_exporter *e = arg;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(e->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    struct pollfd fds[3] = {{.fd = info->epoll_fd, .events = POLLIN},
                            {.fd = e->watch_fd, .events = POLLIN},
                            {.fd = e->stop_fd, .events = POLLIN}};
    int wait_ms = 0;
    for (;;) {
        MHD_UNSIGNED_LONG_LONG mhd_ms;
        if (MHD_get_timeout(e->daemon, &mhd_ms) == MHD_YES &&
            (wait_ms < 0 || mhd_ms < (MHD_UNSIGNED_LONG_LONG)wait_ms))
            wait_ms = (int)mhd_ms;
        if (poll(fds, 3, wait_ms) < 0 && errno != EINTR)
            wait_ms = PEER_CLOSED_POLL_MS; /* cannot happen with valid fds; do not spin */
        if (fds[2].revents & POLLIN)
            break;
        e->turn++;
        e->closed_in_run = 0;
        (void)MHD_run(e->daemon);
        watch_peers(e);
        uint64_t now = now_ns();
        bool over = enforce_limits(e, now);
        wait_ms = sweep(e, now);
        if (over && (wait_ms < 0 || wait_ms > GRACE_MS))
            wait_ms = GRACE_MS;
        /* At its hard limit libmicrohttpd takes the listening socket out of its epoll set, and
         * puts it back only at the start of a run: after closures, run again at once, or
         * connections waiting in the backlog would wait for an unrelated event (found by the
         * 200-attacker test: the exporter went deaf once they left). */
        if (e->closed_in_run > 0)
            wait_ms = 0;
        else if (wait_ms < 0 || wait_ms > BACKSTOP_MS)
            wait_ms = BACKSTOP_MS;
    }
    return NULL;
}

/* ---- Host check --------------------------------------------------------------------------- */

/* "" or ":digits" (1 to 5 of them). */
static bool port_ok(const char *p)
{
    if (*p == '\0')
        return true;
    if (*p++ != ':')
        return false;
    size_t n = strspn(p, "0123456789");
    return n >= 1 && n <= 5 && p[n] == '\0';
}

/* Does the Host header name a loopback address, localhost or an allowed name? */
static bool host_allowed(const tslab_exporter *e, const char *host)
{
    if (host == NULL)
        return false;
    char name[256];
    const char *end;
    if (host[0] == '[') { /* IPv6 literal */
        host++;
        end = strchr(host, ']');
        if (end == NULL || !port_ok(end + 1))
            return false;
    } else {
        end = strchr(host, ':');
        if (end == NULL)
            end = host + strlen(host);
        else if (!port_ok(end))
            return false;
    }
    size_t len = (size_t)(end - host);
    if (len == 0 || len >= sizeof name)
        return false;
    memcpy(name, host, len);
    name[len] = '\0';
    struct in_addr v4;
    struct in6_addr v6;
    if (strcasecmp(name, "localhost") == 0 ||
        (inet_pton(AF_INET, name, &v4) == 1 && is_loopback4(&v4)) ||
        (inet_pton(AF_INET6, name, &v6) == 1 && is_loopback6(&v6)))
        return true;
    for (size_t i = 0; i < e->host_count; i++) {
        if (strcasecmp(name, e->hosts[i]) == 0)
            return true;
    }
    return false;
}

/* A debug endpoint: its body comes from debug.c. */
static enum MHD_Result respond_debug(tslab_exporter *e, struct MHD_Connection *con,
                                     tslab__debug_kind kind)
{
    tslab__debug_body b;
    if (tslab__debug_render(kind, (tslab *const *)e->allocs, e->alloc_count, &b) != 0)
        return respond_text(e, con, MHD_HTTP_INTERNAL_SERVER_ERROR, "render failed\n", NULL, 0);
    header extra = {"Content-Disposition", b.disposition};
    return respond(e, con, MHD_HTTP_OK, b.data, b.len, true, b.content_type, &extra,
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
static bool bearer_ok(const tslab_exporter *e, const char *v)
{
    if (e->token == NULL || v == NULL || strncasecmp(v, "Bearer ", 7) != 0)
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

/* "Authorization: Basic base64(user:password)" against basic_auth_users. */
static bool basic_ok(const tslab_exporter *e, struct MHD_Connection *con, const char *v)
{
    if (e->basic == NULL || v == NULL || strncasecmp(v, "Basic ", 6) != 0)
        return false;
    char *password = NULL;
    char *user = MHD_basic_auth_get_username_password(con, &password);
    bool ok = user != NULL && password != NULL && tslab__basic_auth_check(e->basic, user, password);
    if (password != NULL) {
        explicit_bzero(password, strlen(password));
        MHD_free(password);
    }
    MHD_free(user);
    return ok;
}

/* Any configured scheme admits the request (a scraper sends one Authorization header). */
static bool authorized(const tslab_exporter *e, struct MHD_Connection *con)
{
    const char *v =
        MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    return bearer_ok(e, v) || basic_ok(e, con, v);
}

/* The client certificate, checked once per connection as client_auth_type says (libmicrohttpd
 * asks for it, given a CA list, but verifies nothing itself). */
static bool client_cert_ok(const tslab_exporter *e, struct MHD_Connection *con, conn *c)
{
    tslab__client_auth mode = e->web.client_auth;
    if (!e->web.tls || mode == TSLAB__CLIENT_AUTH_NONE || mode == TSLAB__CLIENT_AUTH_REQUEST)
        return true;
    if (c != NULL && c->cert_checked)
        return c->cert_ok;
    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(con, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t session = i != NULL ? (gnutls_session_t)i->tls_session : NULL;
    unsigned n = 0;
    bool ok = false;
    if (session != NULL) {
        bool given = gnutls_certificate_get_peers(session, &n) != NULL && n > 0;
        unsigned status = 0;
        if (!given)
            ok = mode == TSLAB__CLIENT_AUTH_VERIFY_IF_GIVEN;
        else if (mode == TSLAB__CLIENT_AUTH_REQUIRE_ANY)
            ok = true;
        else /* chain to client_ca, validity dates, signatures */
            ok = gnutls_certificate_verify_peers2(session, &status) == 0 && status == 0;
    }
    if (c != NULL) {
        c->cert_checked = true;
        c->cert_ok = ok;
    }
    return ok;
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
        conn *c = record_of(con);
        if (c != NULL) {
            c->in_request = true;
            c->stamp_ns = now_ns(); /* the response deadline starts */
            c->requests++;
        }
        /* A refused client certificate closes the connection without an answer, as a TLS
         * server that checks it during the handshake would. */
        return client_cert_ok(e, con, c) ? MHD_YES : MHD_NO;
    }
    if (*upload_data_size != 0) { /* a request body: read and ignored */
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (e->check_host &&
        !host_allowed(e, MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST)))
        return respond_text(e, con, 421, "misdirected request: Host is not this exporter\n", NULL,
                            0);

    endpoint ep = route(url);
    tslab__debug_kind dk = e->debug ? tslab__debug_route(url) : TSLAB__DEBUG_NONE;
    if (dk != TSLAB__DEBUG_NONE)
        ep = EP_DEBUG;
    if (ep == EP_NONE)
        return respond_text(e, con, MHD_HTTP_NOT_FOUND, "not found\n", NULL, 0);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        static const header allow = {MHD_HTTP_HEADER_ALLOW, "GET, HEAD"};
        return respond_text(e, con, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n", &allow, 1);
    }
    if (ep != EP_HEALTH && (e->token != NULL || e->basic != NULL) && !authorized(e, con)) {
        header challenge[2];
        size_t n = 0;
        if (e->basic != NULL)
            challenge[n++] = (header){MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                      "Basic realm=\"tslab\", charset=\"UTF-8\""};
        if (e->token != NULL)
            challenge[n++] = (header){MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"tslab\""};
        return respond_text(e, con, MHD_HTTP_UNAUTHORIZED, "unauthorized\n", challenge, n);
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
    case EP_HEALTH: return respond_text(e, con, MHD_HTTP_OK, "ok\n", NULL, 0);
    case EP_INDEX:
        return respond(e, con, MHD_HTTP_OK, (const char *)tslab__index_html, tslab__index_html_len,
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

#define MAX_ADDRESSES 8

/* Letters, digits, dots and hyphens with at least one letter: worth asking the resolver (a
 * malformed numeric literal such as "256.1.1.1" is refused without a lookup). */
static bool looks_like_name(const char *text)
{
    size_t len = strlen(text);
    bool letter = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)text[i];
        if (!isalnum(ch) && ch != '.' && ch != '-')
            return false;
        letter = letter || isalpha(ch);
    }
    return len > 0 && len <= 253 && letter;
}

/* A literal, or every IPv4/IPv6 address of a host name (resolver order, duplicates dropped),
 * into out[0..*n). 0 or -EINVAL. */
static int resolve(const char *text, uint16_t port, struct sockaddr_storage *out, size_t *n)
{
    *n = 0;
    if (parse_address(text, port, &out[0]) == 0) {
        *n = 1;
        return 0;
    }
    if (!looks_like_name(text))
        return -EINVAL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(text, NULL, &hints, &res) != 0)
        return -EINVAL;
    for (const struct addrinfo *r = res; r != NULL && *n < MAX_ADDRESSES; r = r->ai_next) {
        if ((r->ai_family != AF_INET && r->ai_family != AF_INET6) || r->ai_addrlen > sizeof out[0])
            continue;
        struct sockaddr_storage a;
        memset(&a, 0, sizeof a);
        memcpy(&a, r->ai_addr, r->ai_addrlen);
        if (a.ss_family == AF_INET)
            ((struct sockaddr_in *)&a)->sin_port = htons(port);
        else
            ((struct sockaddr_in6 *)&a)->sin6_port = htons(port);
        bool dup = false;
        for (size_t k = 0; k < *n; k++)
            dup = dup || same_ip(&out[k], (const struct sockaddr *)&a);
        if (!dup)
            out[(*n)++] = a;
    }
    freeaddrinfo(res);
    return *n > 0 ? 0 : -EINVAL;
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
    return same_ip(&e->addr, (const struct sockaddr *)a);
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

/* Writes the reason of a failed start to cfg->error_message (if any) and returns err. */
__attribute__((format(printf, 3, 4))) static int start_error(const tslab_exporter_config *cfg,
                                                             int err, const char *fmt, ...)
{
    if (cfg->error_message != NULL && cfg->error_message_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cfg->error_message, cfg->error_message_size, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* The token of bearer_token_file: its content without surrounding white space. */
static int token_file_read(tslab_exporter *e, const tslab_exporter_config *cfg)
{
    FILE *f = fopen(cfg->bearer_token_file, "rb");
    if (f == NULL)
        return start_error(cfg, -EINVAL, "bearer_token_file '%s': %s", cfg->bearer_token_file,
                           strerror(errno));
    char buf[4097];
    size_t len = fread(buf, 1, sizeof buf, f);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad || len == sizeof buf)
        return start_error(cfg, -EINVAL, "bearer_token_file '%s': unreadable or over 4096 bytes",
                           cfg->bearer_token_file);
    size_t start = 0;
    while (start < len && isspace((unsigned char)buf[start]))
        start++;
    while (len > start && isspace((unsigned char)buf[len - 1]))
        len--;
    bool ctl = false;
    for (size_t i = start; i < len; i++)
        ctl = ctl || iscntrl((unsigned char)buf[i]);
    int err = 0;
    if (len == start || ctl) {
        err = start_error(cfg, -EINVAL, "bearer_token_file '%s': %s", cfg->bearer_token_file,
                          ctl ? "the token holds control characters" : "empty");
    } else {
        e->token_len = len - start;
        e->token = strndup(buf + start, e->token_len);
        err = e->token != NULL ? 0 : -ENOMEM;
    }
    explicit_bzero(buf, sizeof buf);
    return err;
}

/* Checks the certificate, key and client CAs with GnuTLS before libmicrohttpd sees them (it
 * reports a bad key only as a failed start) and builds the priority string. */
static int tls_prepare(tslab_exporter *e, const tslab_exporter_config *cfg, char *prio,
                       size_t prio_size)
{
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return start_error(cfg, -ENOTSUP, "%s: this libmicrohttpd has no TLS support",
                           cfg->web_config_file);
    gnutls_certificate_credentials_t cred;
    if (gnutls_certificate_allocate_credentials(&cred) != GNUTLS_E_SUCCESS)
        return -ENOMEM;
    gnutls_datum_t cert = {(unsigned char *)e->web.cert_pem, (unsigned)strlen(e->web.cert_pem)};
    gnutls_datum_t key = {(unsigned char *)e->web.key_pem, (unsigned)strlen(e->web.key_pem)};
    int rc = gnutls_certificate_set_x509_key_mem(cred, &cert, &key, GNUTLS_X509_FMT_PEM);
    int err = 0;
    if (rc < 0)
        err = start_error(cfg, -EINVAL, "%s: tls_server_config: certificate and key: %s",
                          cfg->web_config_file, gnutls_strerror(rc));
    if (err == 0 && e->web.client_ca_pem != NULL) {
        gnutls_datum_t ca = {(unsigned char *)e->web.client_ca_pem,
                             (unsigned)strlen(e->web.client_ca_pem)};
        rc = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
        if (rc <= 0)
            err = start_error(cfg, -EINVAL, "%s: tls_server_config: client CA: %s",
                              cfg->web_config_file,
                              rc < 0 ? gnutls_strerror(rc) : "no certificate in it");
    }
    gnutls_certificate_free_credentials(cred);
    if (err != 0)
        return err;
    /* min_version..max_version, TLS 1.2..1.3 by default as with the exporter-toolkit. */
    unsigned lo = e->web.min_version ? e->web.min_version : 12;
    unsigned hi = e->web.max_version ? e->web.max_version : 13;
    int n = snprintf(prio, prio_size, "NORMAL:-VERS-ALL");
    for (unsigned v = hi; v >= lo && n > 0 && (size_t)n < prio_size; v--)
        n += snprintf(prio + n, prio_size - (size_t)n, ":+VERS-TLS1.%u", v - 10);
    return 0;
}

/* Stops what is running and frees everything; any stage of tslab_exporter_start may be done. */
static void exporter_free(tslab_exporter *e)
{
    if (e == NULL)
        return;
    if (e->thread_started) {
        uint64_t one = 1;
        while (write(e->stop_fd, &one, sizeof one) < 0 && errno == EINTR)
            ;
        pthread_join(e->thread, NULL);
    }
    if (e->daemon != NULL)
        MHD_stop_daemon(e->daemon); /* closes every connection: CLOSED frees their records */
    if (e->watch_fd >= 0)
        close(e->watch_fd);
    if (e->stop_fd >= 0)
        close(e->stop_fd);
    tslab__basic_auth_free(e->basic);
    tslab__webconfig_free(&e->web);
    for (size_t i = 0; i < e->host_count; i++)
        free(e->hosts[i]);
    free(e->hosts);
    free(e->allocs);
    if (e->token != NULL) {
        explicit_bzero(e->token, e->token_len); /* not optimized away */
        free(e->token);
    }
    free(e);
}

static struct MHD_Daemon *daemon_start(tslab_exporter *e, const tslab_exporter_config *cfg,
                                       const char *prio)
{
    /* External epoll mode: our thread runs the loop (see the top of this file). */
    unsigned flags = MHD_USE_EPOLL;
    if (e->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* TLS options only with a tls_server_config: libmicrohttpd copies the PEM data at start. */
    struct MHD_OptionItem tls[5] = {{MHD_OPTION_END, 0, NULL}};
    if (e->web.tls) {
        flags |= MHD_USE_TLS;
        size_t n = 0;
        tls[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, e->web.cert_pem};
        tls[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, e->web.key_pem};
        tls[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)prio};
        if (e->web.client_ca_pem != NULL) /* makes libmicrohttpd ask for a client certificate */
            tls[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, e->web.client_ca_pem};
        tls[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    }
    unsigned timeout = cfg->timeout_seconds ? cfg->timeout_seconds : DEFAULT_TIMEOUT_SECONDS;
    size_t memory = cfg->memory_limit ? cfg->memory_limit : DEFAULT_MEMORY_LIMIT;
    /* libmicrohttpd's own total limit only bounds descriptors: ours (enforce_limits) is lower,
     * and the difference holds newcomers in their grace and evicted connections until
     * libmicrohttpd has closed them. Beyond it libmicrohttpd stops accepting and newcomers wait
     * in the kernel's backlog. Its per-address limit is off (0): it would refuse newcomers
     * where enforce_limits evicts waiting connections instead. */
    unsigned hard_limit = e->max_conn > UINT_MAX / 2 ? UINT_MAX : e->max_conn * 2;

    /* Every limit explicit: libmicrohttpd's defaults are every interface and no timeout. The
     * connection timeout stays as an idle timer for what our deadline does not cover: a response
     * that the client stops reading. */
    /* clang-format off */
    return MHD_start_daemon(
        flags, 0 /* port: taken from SOCK_ADDR */, NULL, NULL, handle, e,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&e->addr,
        MHD_OPTION_CONNECTION_LIMIT, hard_limit,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, 0u,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, memory,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, e,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, e,
        MHD_OPTION_ARRAY, tls,
        MHD_OPTION_END);
    /* clang-format on */
}

/* The thread would inherit this thread's signal mask: block everything around its creation so
 * process signals are delivered to the application's threads. */
static int thread_start(tslab_exporter *e)
{
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &saved);
    int err = pthread_create(&e->thread, NULL, serve, e);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    e->thread_started = err == 0;
    return -err;
}

static int copy_hosts(tslab_exporter *e, const tslab_exporter_config *cfg)
{
    if (cfg->allowed_host_count == 0)
        return 0;
    if (cfg->allowed_hosts == NULL)
        return -EINVAL;
    e->hosts = calloc(cfg->allowed_host_count, sizeof *e->hosts);
    if (e->hosts == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < cfg->allowed_host_count; i++) {
        if (cfg->allowed_hosts[i] == NULL || cfg->allowed_hosts[i][0] == '\0')
            return -EINVAL;
        e->hosts[i] = strdup(cfg->allowed_hosts[i]);
        if (e->hosts[i] == NULL)
            return -ENOMEM;
        e->host_count = i + 1;
    }
    return 0;
}

static void policy_init(tslab_exporter *e, const tslab_exporter_config *cfg)
{
    e->max_conn = cfg->max_connections ? cfg->max_connections : DEFAULT_MAX_CONNECTIONS;
    e->per_ip = cfg->per_ip_connections ? cfg->per_ip_connections : DEFAULT_PER_IP_CONNECTIONS;
    unsigned idle = cfg->timeout_seconds ? cfg->timeout_seconds : DEFAULT_TIMEOUT_SECONDS;
    unsigned request = cfg->request_timeout_seconds ? cfg->request_timeout_seconds
                                                    : DEFAULT_REQUEST_TIMEOUT_SECONDS;
    if (request > idle)
        request = idle;
    e->idle_ns = (uint64_t)idle * 1000000000u;
    e->request_ns = (uint64_t)request * 1000000000u;
}

/* Everything but the daemon and its thread: copies, files, policy, descriptors. 0 or -errno
 * (with a message for the errors a user can fix). */
static int exporter_prepare(tslab_exporter *e, const tslab_exporter_config *cfg, char *prio,
                            size_t prio_size)
{
    int err = copy_hosts(e, cfg);
    if (err != 0)
        return err == -EINVAL ? start_error(cfg, err, "allowed_hosts: a NULL list or empty name")
                              : err;
    if (cfg->allocator_count > 0) {
        e->allocs = calloc(cfg->allocator_count, sizeof *e->allocs);
        if (e->allocs == NULL)
            return -ENOMEM;
        memcpy(e->allocs, cfg->allocators, cfg->allocator_count * sizeof *e->allocs);
    }
    e->alloc_count = cfg->allocator_count;
    if (cfg->bearer_token != NULL && cfg->bearer_token_file != NULL)
        return start_error(cfg, -EINVAL, "bearer_token and bearer_token_file are exclusive");
    if (cfg->bearer_token != NULL) {
        e->token_len = strlen(cfg->bearer_token);
        e->token = strdup(cfg->bearer_token);
        if (e->token == NULL)
            return -ENOMEM;
    } else if (cfg->bearer_token_file != NULL && (err = token_file_read(e, cfg)) != 0) {
        return err;
    }
    if (cfg->web_config_file != NULL) {
        char msg[512];
        err = tslab__webconfig_load(cfg->web_config_file, &e->web, msg, sizeof msg);
        if (err != 0)
            return start_error(cfg, err, "%s", err == -ENOMEM ? "out of memory" : msg);
        if (e->web.user_count > 0) {
            e->basic = tslab__basic_auth_new(e->web.users, e->web.user_count);
            if (e->basic == NULL)
                return -ENOMEM;
        }
        if (e->web.tls && (err = tls_prepare(e, cfg, prio, prio_size)) != 0)
            return err;
    }
    policy_init(e, cfg);
    e->watch_fd = epoll_create1(EPOLL_CLOEXEC);
    e->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (e->watch_fd < 0 || e->stop_fd < 0)
        return errno == ENOMEM || errno == EMFILE || errno == ENFILE ? -ENOMEM : -EIO;
    return 0;
}

/* Binds the first of addrs[0..n) that works (under running_lock). 0 or -errno. */
static int daemon_bind(tslab_exporter *e, const tslab_exporter_config *cfg,
                       const struct sockaddr_storage *addrs, size_t n, const char *prio)
{
    int err = -EINVAL;
    for (size_t i = 0; i < n; i++) {
        for (tslab_exporter *r = running; r != NULL; r = r->next) {
            if (collides(r, &addrs[i], cfg->port))
                return -EALREADY;
        }
        e->addr = addrs[i];
        e->check_host = is_loopback(&e->addr);
        e->daemon = daemon_start(e, cfg, prio);
        if (e->daemon != NULL)
            return 0;
        err = diagnose_bind(&e->addr);
    }
    return err;
}

/* cfg is complete in this version's layout (tslab_exporter_start_sized). */
static int start(const tslab_exporter_config *cfg, tslab_exporter **out)
{
    *out = NULL;
    if (cfg->error_message != NULL && cfg->error_message_size > 0)
        cfg->error_message[0] = '\0';
    if (cfg->allocator_count > 0 && cfg->allocators == NULL)
        return -EINVAL;
    int err = tslab__names_check(cfg->allocators, cfg->allocator_count);
    if (err != 0)
        return start_error(cfg, err, "two allocators have the same name");

    const char *address = cfg->address ? cfg->address : DEFAULT_ADDRESS;
    struct sockaddr_storage addrs[MAX_ADDRESSES];
    size_t addr_count;
    if (resolve(address, cfg->port, addrs, &addr_count) != 0)
        return start_error(cfg, -EINVAL,
                           "address '%s' is neither an IP address nor a host name "
                           "that resolves",
                           address);
    tslab_exporter *e = calloc(1, sizeof *e);
    if (e == NULL)
        return -ENOMEM;
    e->watch_fd = e->stop_fd = -1;
    e->debug = cfg->debug_endpoints;
    char prio[128] = "NORMAL";
    err = exporter_prepare(e, cfg, prio, sizeof prio);
    if (err != 0) {
        exporter_free(e);
        return err;
    }

    pthread_mutex_lock(&running_lock);
    err = daemon_bind(e, cfg, addrs, addr_count, prio);
    if (err == 0) {
        const union MHD_DaemonInfo *info =
            MHD_get_daemon_info(e->daemon, MHD_DAEMON_INFO_BIND_PORT);
        e->port = info != NULL ? info->port : cfg->port;
        err = thread_start(e);
        if (err != 0)
            err = err == -EAGAIN ? -ENOMEM : -EIO;
    }
    if (err != 0) {
        pthread_mutex_unlock(&running_lock);
        exporter_free(e);
        return start_error(cfg, err, "cannot listen on %s port %u: %s", address, cfg->port,
                           strerror(-err));
    }
    e->next = running;
    running = e;
    pthread_mutex_unlock(&running_lock);
    *out = e;
    return 0;
}

uint16_t tslab_exporter_port(const tslab_exporter *e) { return e != NULL ? e->port : 0; }

const char *tslab_exporter_scheme(const tslab_exporter *e)
{
    return e != NULL && e->web.tls ? "https" : "http";
}

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
    exporter_free(e); /* joins the thread, closes every socket */
}

/* 1.0's tslab_exporter_config ends after memory_limit (64 bytes); 1.1 appended fields, and later
 * versions append more (never insert), so a caller's struct is a prefix of ours or ours of its. */
#define EXPORTER_CONFIG_SIZE_1_0 ((size_t)64)
_Static_assert(offsetof(tslab_exporter_config, request_timeout_seconds) == EXPORTER_CONFIG_SIZE_1_0,
               "tslab_exporter_config: 1.0's fields must stay first and in order");
#define EXPORTER_CONFIG_SIZE_MAX ((size_t)1 << 16)

int tslab_exporter_start_sized(const tslab_exporter_config *cfg, size_t cfg_size,
                               tslab_exporter **out)
{
    if (cfg == NULL || out == NULL || cfg_size < EXPORTER_CONFIG_SIZE_1_0 ||
        cfg_size > EXPORTER_CONFIG_SIZE_MAX)
        return -EINVAL;
    tslab_exporter_config c;
    memset(&c, 0, sizeof c);
    memcpy(&c, cfg, cfg_size < sizeof c ? cfg_size : sizeof c);
    /* A newer caller's fields this library does not know must be unset (zero is the default). */
    for (size_t i = sizeof c; i < cfg_size; i++)
        if (((const unsigned char *)cfg)[i] != 0)
            return -EINVAL;
    return start(&c, out);
}

/* The symbol programs built against 1.0 call (tslab_telemetry.h otherwise makes
 * tslab_exporter_start a static inline function that passes its own size). */
TSLAB_API int tslab_exporter_start(const tslab_exporter_config *cfg, tslab_exporter **out);
int tslab_exporter_start(const tslab_exporter_config *cfg, tslab_exporter **out)
{
    return tslab_exporter_start_sized(cfg, EXPORTER_CONFIG_SIZE_1_0, out);
}
