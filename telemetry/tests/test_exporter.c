/* SPDX-License-Identifier: MIT */
/* The exporter through the public API only: errors, endpoints, headers, authentication,
 * connection limits and timeout, signal mask of the HTTP thread, and a clean stop.
 *
 * usage: test_exporter PATH/TO/index.html */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "tslab.h"
#include "tslab_telemetry.h"
#include "testhelper.h"
#include "testhttp.h"

static tslab *alloc_a, *alloc_b;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t count_dir(const char *path)
{
    DIR *d = opendir(path);
    REQUIRE(d != NULL);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - (strcmp(path, "/proc/self/fd") == 0); /* the directory's own descriptor */
}

static tslab_exporter *start(tslab_exporter_config cfg)
{
    tslab_exporter *e = NULL;
    int err = tslab_exporter_start(&cfg, &e);
    if (err != 0)
        fprintf(stderr, "tslab_exporter_start: %s\n", tslab_strerror(err));
    REQUIRE(err == 0 && e != NULL && tslab_exporter_port(e) != 0);
    return e;
}

static tslab_exporter_config config(void)
{
    static tslab *list[2];
    list[0] = alloc_a;
    list[1] = alloc_b;
    return (tslab_exporter_config){.allocators = list, .allocator_count = 2};
}

/* ---- Errors ------------------------------------------------------------------------------- */

static void test_errors(void)
{
    tslab_exporter *e = (tslab_exporter *)(uintptr_t)1;
    CHECK_EQ_I(tslab_exporter_start(NULL, &e), -EINVAL);
    tslab_exporter_config c = config();
    CHECK_EQ_I(tslab_exporter_start(&c, NULL), -EINVAL);
    const char *bad[] = {"256.1.1.1",
                         "1.2.3",
                         "",
                         "::1::",
                         "127.0.0.1:80",
                         "localhost:80",
                         "bad_name!",
                         "no-such-host.invalid",
                         "[::1]",
                         "-"};
    char why[256];
    c.error_message = why;
    c.error_message_size = sizeof why;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        c.address = bad[i];
        CHECK_EQ_I(tslab_exporter_start(&c, &e), -EINVAL);
        CHECK(e == NULL);
        CHECK(strstr(why, "address '") != NULL); /* the reason names the address */
    }
    /* a host name: "localhost" resolves to loopback and is served */
    c = config();
    c.address = "localhost";
    tslab_exporter *named = start(c);
    http_reply hr;
    REQUIRE(http_get(tslab_exporter_port(named), "/healthz", &hr) == 0);
    CHECK_EQ_I(hr.status, 200);
    http_free(&hr);
    tslab_exporter_stop(named);
    c = config();
    c = config();
    c.allocators = NULL;
    CHECK_EQ_I(tslab_exporter_start(&c, &e), -EINVAL);
    tslab *dup[2] = {alloc_a, alloc_a};
    c.allocators = dup;
    CHECK_EQ_I(tslab_exporter_start(&c, &e), -EINVAL); /* duplicate names: colliding series */
    c = config();
    c.address = "192.0.2.1"; /* TEST-NET-1: not an address of this host */
    CHECK_EQ_I(tslab_exporter_start(&c, &e), -EADDRNOTAVAIL);

    /* A port held by someone else. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    socklen_t len = sizeof a;
    REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 4) == 0);
    REQUIRE(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    c = config();
    c.port = ntohs(a.sin_port);
    CHECK_EQ_I(tslab_exporter_start(&c, &e), -EADDRINUSE);
    close(fd);

    /* A second start on the port an exporter of this process already has. */
    tslab_exporter *first = start(config());
    c = config();
    c.port = tslab_exporter_port(first);
    CHECK_EQ_I(tslab_exporter_start(&c, &e), -EALREADY);
    c.address = "0.0.0.0";
    CHECK_EQ_I(tslab_exporter_start(&c, &e), -EALREADY);
    tslab_exporter *second = start(config()); /* port 0 never conflicts */
    CHECK(tslab_exporter_port(second) != tslab_exporter_port(first));
    tslab_exporter_stop(second);
    /* after stop the port is free again, for this process too */
    c = config();
    c.port = tslab_exporter_port(first);
    tslab_exporter_stop(first);
    tslab_exporter *again = start(c);
    CHECK_EQ_I(tslab_exporter_port(again), c.port);
    tslab_exporter_stop(again);

    CHECK_EQ_I(tslab_exporter_port(NULL), 0);
    tslab_exporter_stop(NULL);

    /* ABI: a 1.0 caller's struct ends at memory_limit; what follows it in memory is not read */
    size_t size_1_0 = offsetof(tslab_exporter_config, request_timeout_seconds);
    struct {
        tslab_exporter_config c;
        unsigned char more[64];
    } big;
    memset(&big, 0xA5, sizeof big); /* garbage past the 1.0 fields */
    big.c = config();
    memset((char *)&big.c + size_1_0, 0xA5, sizeof big.c - size_1_0);
    e = NULL;
    CHECK_EQ_I(tslab_exporter_start_sized(&big.c, size_1_0, &e), 0);
    tslab_exporter_stop(e);
    /* (the exported 1.0 symbol itself: telemetry_exporter_abi, test_exporter_abi.c) */
    /* a later caller's extra bytes: zero is fine, anything else is an option we cannot honour */
    big.c = config();
    memset(big.more, 0, sizeof big.more);
    CHECK_EQ_I(tslab_exporter_start_sized(&big.c, sizeof big, &e), 0);
    tslab_exporter_stop(e);
    big.more[10] = 1;
    CHECK_EQ_I(tslab_exporter_start_sized(&big.c, sizeof big, &e), -EINVAL);
    CHECK_EQ_I(tslab_exporter_start_sized(&big.c, size_1_0 - 1, &e), -EINVAL);
}

/* ---- Endpoints ---------------------------------------------------------------------------- */

static void test_endpoints(const char *index_path)
{
    tslab_exporter *e = start(config());
    uint16_t port = tslab_exporter_port(e);
    http_reply r;
    char v[256];

    REQUIRE(http_get(port, "/metrics", &r) == 0);
    CHECK_EQ_I(r.status, 200);
    CHECK(http_header(&r, "Content-Type", v, sizeof v) &&
          strcmp(v, "text/plain; version=0.0.4; charset=utf-8") == 0);
    CHECK(http_header(&r, "Content-Encoding", v, sizeof v) == NULL);
    CHECK_CONTAINS(r.body, "# TYPE tslab_allocations_total counter\n");
    CHECK_CONTAINS(r.body, "tslab_allocations_total{allocator=\"alpha\",class=\"64\"} ");
    CHECK_CONTAINS(r.body, "tslab_slabs{allocator=\"beta\",class=\"4096\",state=\"cached\"} ");
    uint64_t scrapes1 = 0, scrapes2 = 0;
    CHECK(prom_u64(r.body, "tslab_exporter_scrapes_total", &scrapes1));
    http_free(&r);

    REQUIRE(http_request(port, "GET", "/metrics",
                         "Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n",
                         &r) == 0);
    CHECK_EQ_I(r.status, 200);
    CHECK(http_header(&r, "Content-Type", v, sizeof v) &&
          strcmp(v, "application/openmetrics-text; version=1.0.0; charset=utf-8") == 0);
    CHECK(r.body_len > 6 && strcmp(r.body + r.body_len - 6, "# EOF\n") == 0);
    CHECK_CONTAINS(r.body, "# TYPE tslab_allocations counter\n");
    CHECK(prom_u64(r.body, "tslab_exporter_scrapes_total", &scrapes2));
    CHECK_EQ_I(scrapes2, scrapes1 + 1); /* one client: every render counted once */
    CHECK(http_header(&r, "Vary", v, sizeof v) && strstr(v, "Accept") != NULL);
    http_free(&r);

    REQUIRE(http_request(port, "GET", "/metrics", "Accept-Encoding: gzip\r\n", &r) == 0);
    CHECK_EQ_I(r.status, 200);
    CHECK(http_header(&r, "Content-Encoding", v, sizeof v) && strcmp(v, "gzip") == 0);
    CHECK(r.body_len > 2 && (unsigned char)r.body[0] == 0x1f && (unsigned char)r.body[1] == 0x8b);
    http_free(&r);

    REQUIRE(http_get(port, "/metrics.json", &r) == 0);
    CHECK_EQ_I(r.status, 200);
    CHECK(http_header(&r, "Content-Type", v, sizeof v) && strcmp(v, "application/json") == 0);
    CHECK(r.body[0] == '{');
    CHECK_CONTAINS(r.body, "\"schema_version\":1,");
    CHECK_CONTAINS(r.body, "\"name\":\"alpha\"");
    http_free(&r);

    REQUIRE(http_get(port, "/healthz", &r) == 0);
    CHECK_EQ_I(r.status, 200);
    CHECK(strcmp(r.body, "ok\n") == 0);
    http_free(&r);

    REQUIRE(http_get(port, "/", &r) == 0);
    CHECK_EQ_I(r.status, 200);
    CHECK(http_header(&r, "Content-Type", v, sizeof v) &&
          strcmp(v, "text/html; charset=utf-8") == 0);
    FILE *f = fopen(index_path, "rb");
    REQUIRE(f != NULL);
    static char page[1 << 20];
    size_t page_len = fread(page, 1, sizeof page, f);
    fclose(f);
    CHECK_EQ_I(r.body_len, page_len);
    CHECK(memcmp(r.body, page, page_len) == 0); /* served byte for byte */
    http_free(&r);

    REQUIRE(http_request(port, "HEAD", "/", NULL, &r) == 0);
    CHECK_EQ_I(r.status, 200);
    CHECK_EQ_I(r.body_len, 0);
    CHECK(http_header(&r, "Content-Length", v, sizeof v) && strtoul(v, NULL, 10) == page_len);
    http_free(&r);

    REQUIRE(http_request(port, "HEAD", "/metrics", NULL, &r) == 0);
    CHECK_EQ_I(r.status, 200);
    CHECK_EQ_I(r.body_len, 0);
    http_free(&r);

    const char *paths404[] = {"/metrics/", "/metric", "/favicon.ico", "/healthz/x", "//"};
    for (size_t i = 0; i < sizeof paths404 / sizeof paths404[0]; i++) {
        REQUIRE(http_get(port, paths404[i], &r) == 0);
        CHECK_EQ_I(r.status, 404);
        http_free(&r);
    }
    const char *methods[] = {"POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW", "TRACE"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        REQUIRE(http_request(port, methods[i], "/metrics", NULL, &r) == 0);
        CHECK_EQ_I(r.status, 405);
        CHECK(http_header(&r, "Allow", v, sizeof v) && strcmp(v, "GET, HEAD") == 0);
        http_free(&r);
    }
    /* a POST with a body is read and refused, never processed */
    REQUIRE(http_raw(NULL, port,
                     "POST /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\n"
                     "a=1&b=2&c=3",
                     &r) == 0);
    CHECK_EQ_I(r.status, 405);
    http_free(&r);
    /* a query string does not change the route */
    REQUIRE(http_get(port, "/metrics?x=1", &r) == 0);
    CHECK_EQ_I(r.status, 200);
    http_free(&r);
    tslab_exporter_stop(e);
}

static void test_token(void)
{
    tslab_exporter_config c = config();
    c.bearer_token = "s3cret";
    tslab_exporter *e = start(c);
    uint16_t port = tslab_exporter_port(e);
    http_reply r;
    char v[128];
    const char *paths[] = {"/metrics", "/metrics.json", "/"};
    for (size_t i = 0; i < 3; i++) {
        REQUIRE(http_get(port, paths[i], &r) == 0);
        CHECK_EQ_I(r.status, 401);
        CHECK(http_header(&r, "WWW-Authenticate", v, sizeof v) && strncmp(v, "Bearer", 6) == 0);
        CHECK(strstr(r.body, "tslab_") == NULL);
        http_free(&r);
        REQUIRE(http_request(port, "GET", paths[i], "Authorization: Bearer s3cret\r\n", &r) == 0);
        CHECK_EQ_I(r.status, 200);
        http_free(&r);
    }
    const char *wrong[] = {"Authorization: Bearer s3cre\r\n", "Authorization: Bearer s3cret2\r\n",
                           "Authorization: Basic s3cret\r\n", "Authorization: s3cret\r\n",
                           "Authorization: Bearer \r\n"};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        REQUIRE(http_request(port, "GET", "/metrics", wrong[i], &r) == 0);
        CHECK_EQ_I(r.status, 401);
        http_free(&r);
    }
    REQUIRE(http_get(port, "/healthz", &r) == 0); /* liveness probes need no token */
    CHECK_EQ_I(r.status, 200);
    http_free(&r);
    tslab_exporter_stop(e);
}

/* ---- Limits ------------------------------------------------------------------------------- */

/* Seconds until the server closes fd (recv returns 0), or -1 when it answers data or the 10 s
 * receive timeout passes. */
static double until_closed(int fd)
{
    double t0 = now_s();
    char c;
    ssize_t n = recv(fd, &c, 1, 0);
    return n == 0 ? now_s() - t0 : -1;
}

/* Sends a keep-alive /healthz on fd and reads its reply ("ok\n", 3 bytes) without waiting for
 * a close. true when it came. */
static bool healthz_keepalive(int fd)
{
    const char *req = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    if (http_send_all(fd, req, strlen(req)) != 0)
        return false;
    char buf[4096];
    size_t len = 0;
    while (len < sizeof buf - 1) {
        ssize_t n = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (n <= 0)
            return false;
        len += (size_t)n;
        buf[len] = '\0';
        if (len >= 7 && strcmp(buf + len - 7, "\r\n\r\nok\n") == 0)
            return strncmp(buf, "HTTP/1.1 200", 12) == 0;
    }
    return false;
}

/* The connection is open now (nothing to read, no EOF). */
static bool still_open(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

static void test_limits(void)
{
    http_reply r;
    /* per-IP limit 2: a third connection from the same address with a complete request is
     * served, and the oldest waiting connection of that address makes room */
    tslab_exporter_config c = config();
    c.per_ip_connections = 2;
    c.timeout_seconds = 30;
    tslab_exporter *e = start(c);
    uint16_t port = tslab_exporter_port(e);
    int idle1 = http_connect("127.0.0.1", port), idle2 = http_connect("127.0.0.1", port);
    REQUIRE(idle1 >= 0 && idle2 >= 0);
    /* a request answered on each: both are accepted and now wait for another */
    CHECK(healthz_keepalive(idle1));
    CHECK(healthz_keepalive(idle2));
    REQUIRE(http_raw("127.0.0.1", port,
                     "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                     &r) == 0);
    CHECK_EQ_I(r.status, 200);
    http_free(&r);
    double t = until_closed(idle1); /* evicted before the newcomer was served */
    CHECK(t >= 0 && t < 5);
    CHECK(still_open(idle2));
    REQUIRE(http_raw("127.0.0.2", port,
                     "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                     &r) == 0);
    CHECK_EQ_I(r.status, 200);
    http_free(&r);
    CHECK(still_open(idle2)); /* another address takes nothing from it */
    close(idle1);
    close(idle2);
    tslab_exporter_stop(e);

    /* connection limit 3 over all addresses: a fourth connection is served and the oldest
     * waiting one, whatever its address, makes room */
    c = config();
    c.max_connections = 3;
    c.timeout_seconds = 30;
    e = start(c);
    port = tslab_exporter_port(e);
    int fds[3];
    for (int i = 0; i < 3; i++) {
        char src[16];
        snprintf(src, sizeof src, "127.0.0.%d", i + 1);
        fds[i] = http_connect(src, port);
        REQUIRE(fds[i] >= 0);
        CHECK(healthz_keepalive(fds[i]));
    }
    REQUIRE(http_raw("127.0.0.9", port,
                     "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                     &r) == 0);
    CHECK_EQ_I(r.status, 200);
    http_free(&r);
    t = until_closed(fds[0]);
    CHECK(t >= 0 && t < 5);
    CHECK(still_open(fds[1]) && still_open(fds[2]));
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    tslab_exporter_stop(e);

    /* request deadline 1 s: a client that keeps sending header bytes (each restarts an idle
     * timer) is still closed about a second after it connected */
    c = config();
    c.request_timeout_seconds = 1;
    c.timeout_seconds = 30;
    e = start(c);
    int slow = http_connect(NULL, tslab_exporter_port(e));
    REQUIRE(slow >= 0 && http_send_all(slow, "GET /metrics HTTP/1.1\r\nX-Slow: ", 31) == 0);
    double t0 = now_s();
    bool closed = false;
    while (!closed && now_s() - t0 < 10) {
        struct pollfd pfd = {.fd = slow, .events = POLLIN};
        if (poll(&pfd, 1, 100) == 1) { /* the trickle's pace, not synchronisation */
            char buf[256];
            closed = recv(slow, buf, sizeof buf, 0) <= 0;
        } else {
            closed = send(slow, "a", 1, MSG_NOSIGNAL) != 1;
        }
    }
    t = now_s() - t0;
    CHECK(closed && t >= 0.5 && t < 5);
    close(slow);
    tslab_exporter_stop(e);

    /* response deadline 2 s: a client that asks for many pages and reads one byte every 20 ms
     * (each read may let the server write a little, which restarts an idle timer) loses its
     * connection on the server side (the exporter runs in this process: its descriptor closes)
     * within about timeout_seconds; the client itself may see the close much later, behind the
     * data already queued for it */
    c = config();
    c.request_timeout_seconds = 1;
    c.timeout_seconds = 2;
    e = start(c);
    size_t fds_before = count_dir("/proc/self/fd");
    slow = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 2048;
    setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(tslab_exporter_port(e))};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    REQUIRE(connect(slow, (struct sockaddr *)&sa, sizeof sa) == 0);
    const char *page = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    for (int i = 0; i < 40; i++) /* pipelined; the server reads them as it answers */
        (void)send(slow, page, strlen(page), MSG_NOSIGNAL | MSG_DONTWAIT);
    t0 = now_s();
    bool served = false, released = false;
    while (!released && now_s() - t0 < 15) {
        struct pollfd pfd = {.fd = slow, .events = POLLIN};
        if (poll(&pfd, 1, 20) == 1) { /* the reader's pace, not synchronisation */
            char ch;
            served = recv(slow, &ch, 1, 0) == 1 || served;
        }
        released = count_dir("/proc/self/fd") == fds_before + 1; /* only the client's socket */
    }
    t = now_s() - t0;
    CHECK(served && released && t >= 1 && t < 10);
    close(slow);
    tslab_exporter_stop(e);

    /* peer gone: 20 connections that send part of a request and shut down their side are
     * closed at once, long before any timeout (both 30 s here), and do not count meanwhile */
    c = config();
    c.request_timeout_seconds = 30;
    c.timeout_seconds = 30;
    c.per_ip_connections = 64;
    e = start(c);
    port = tslab_exporter_port(e);
    int gone[20];
    for (int i = 0; i < 20; i++) {
        gone[i] = http_connect("127.0.0.1", port);
        REQUIRE(gone[i] >= 0 && http_send_all(gone[i], "GET /metr", 9) == 0);
        shutdown(gone[i], SHUT_WR);
    }
    for (int i = 0; i < 20; i++) {
        t = until_closed(gone[i]);
        CHECK(t >= 0 && t < 5);
        close(gone[i]);
    }
    /* a complete request that is then half-closed is still answered */
    int half = http_connect("127.0.0.1", port);
    const char *hz = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    REQUIRE(half >= 0 && http_send_all(half, hz, strlen(hz)) == 0);
    shutdown(half, SHUT_WR);
    REQUIRE(http_read_reply(half, &r) == 0);
    CHECK_EQ_I(r.status, 200);
    http_free(&r);
    close(half);
    tslab_exporter_stop(e);

    /* timeout 1 s: an idle connection is closed after about that */
    c = config();
    c.timeout_seconds = 1;
    e = start(c);
    port = tslab_exporter_port(e);
    int idle = http_connect(NULL, port);
    REQUIRE(idle >= 0);
    t = until_closed(idle);
    CHECK(t >= 0.5 && t < 5);
    close(idle);
    /* and a request sent half-way is closed the same way */
    idle = http_connect(NULL, port);
    REQUIRE(http_send_all(idle, "GET /metr", 9) == 0);
    t = until_closed(idle);
    CHECK(t >= 0.5 && t < 5);
    close(idle);
    tslab_exporter_stop(e);

    /* memory limit: headers beyond it are refused; the same request fits the default */
    char req[16384];
    int n = snprintf(req, sizeof req,
                     "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Big: ");
    memset(req + n, 'a', 8000);
    strcpy(req + n + 8000, "\r\n\r\n");
    c = config();
    c.memory_limit = 4096;
    e = start(c);
    int status = http_raw(NULL, tslab_exporter_port(e), req, &r) == 0 ? r.status : 0;
    CHECK(status == 431 || status == 413 || status == 0); /* refused or closed */
    if (status != 0)
        http_free(&r);
    REQUIRE(http_get(tslab_exporter_port(e), "/healthz", &r) == 0); /* still serving */
    CHECK_EQ_I(r.status, 200);
    http_free(&r);
    tslab_exporter_stop(e);
    e = start(config());
    REQUIRE(http_raw(NULL, tslab_exporter_port(e), req, &r) == 0);
    CHECK_EQ_I(r.status, 200);
    http_free(&r);
    tslab_exporter_stop(e);
}

/* ---- Host check (DNS rebinding) ----------------------------------------------------------- */

/* Status of `GET /healthz` sent from 127.0.0.1 with the given Host line ("" for none, then as
 * HTTP/1.0, which may omit it). */
static int status_with_host(uint16_t port, const char *host)
{
    char req[512];
    if (host[0] == '\0')
        snprintf(req, sizeof req, "GET /healthz HTTP/1.0\r\n\r\n");
    else
        snprintf(req, sizeof req, "GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                 host);
    http_reply r;
    if (http_raw(NULL, port, req, &r) != 0)
        return -1;
    int status = r.status;
    http_free(&r);
    return status;
}

/* `pattern` with its '$' (if any) replaced by the port number. */
static void with_port(char *out, size_t size, const char *pattern, uint16_t port)
{
    const char *dollar = strchr(pattern, '$');
    if (dollar == NULL)
        snprintf(out, size, "%s", pattern);
    else
        snprintf(out, size, "%.*s%u%s", (int)(dollar - pattern), pattern, port, dollar + 1);
}

static void test_host(void)
{
    static const char *const extra[] = {"metrics.internal", "Other.Example"};
    tslab_exporter_config c = config();
    c.allowed_hosts = extra;
    c.allowed_host_count = 2;
    tslab_exporter *e = start(c);
    uint16_t port = tslab_exporter_port(e);
    char h[64];
    const char *good[] = {
        "localhost", "LocalHost:$", "127.0.0.1:$",        "127.0.0.1",        "127.9.8.7:1",
        "[::1]:$",   "[::1]",       "metrics.internal:$", "METRICS.INTERNAL", "other.example:80"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        with_port(h, sizeof h, good[i], port);
        int st = status_with_host(port, h);
        if (st != 200)
            fprintf(stderr, "Host: %s answered %d\n", h, st);
        CHECK_EQ_I(st, 200);
    }
    const char *bad[] = {"",
                         "evil.example",
                         "evil.example:$",
                         "localhost.evil.example",
                         "metrics.internal.evil",
                         "128.0.0.1:$",
                         "0.0.0.0",
                         "[::2]:$",
                         "localhost:abc",
                         "localhost:$:1",
                         "[::1",
                         ":$",
                         "127.0.0.1:123456"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        with_port(h, sizeof h, bad[i], port);
        int st = status_with_host(port, h);
        if (st != 421)
            fprintf(stderr, "Host: '%s' answered %d\n", h, st);
        CHECK_EQ_I(st, 421);
    }
    /* every path, not only /healthz */
    http_reply r;
    REQUIRE(http_raw(NULL, port,
                     "GET /metrics HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
                     &r) == 0);
    CHECK_EQ_I(r.status, 421);
    CHECK(strstr(r.body, "tslab_") == NULL);
    http_free(&r);
    tslab_exporter_stop(e);

    /* an empty allowed name is refused; NULL list with a count too */
    static const char *const empty[] = {""};
    c = config();
    c.allowed_hosts = empty;
    c.allowed_host_count = 1;
    e = NULL;
    CHECK_EQ_I(tslab_exporter_start(&c, &e), -EINVAL);
    c.allowed_hosts = NULL;
    CHECK_EQ_I(tslab_exporter_start(&c, &e), -EINVAL);
    CHECK(e == NULL);

    /* bound to every interface: no Host check (the operator chose to be reachable by name) */
    c = config();
    c.address = "0.0.0.0";
    e = start(c);
    CHECK_EQ_I(status_with_host(tslab_exporter_port(e), "evil.example"), 200);
    tslab_exporter_stop(e);
}

/* ---- Threads, signals, descriptors -------------------------------------------------------- */

static int task_ids(int *ids, int max)
{
    DIR *d = opendir("/proc/self/task");
    REQUIRE(d != NULL);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        if (e->d_name[0] != '.')
            ids[n++] = atoi(e->d_name);
    }
    closedir(d);
    return n;
}

static unsigned long long sigblk(int tid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    unsigned long long mask = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "SigBlk: %llx", &mask) == 1)
            break;
    }
    fclose(f);
    return mask;
}

static void test_signals_and_cleanup(void)
{
    sigset_t before, after;
    pthread_sigmask(SIG_BLOCK, NULL, &before);
    int tids_before[256], tids_after[256];
    int nb = task_ids(tids_before, 256);
    tslab_exporter *e = start(config());
    int na = task_ids(tids_after, 256);
    CHECK(na > nb);
    int checked = 0;
    for (int i = 0; i < na; i++) {
        bool old = false;
        for (int j = 0; j < nb; j++)
            old = old || tids_after[i] == tids_before[j];
        if (old)
            continue;
        unsigned long long m = sigblk(tids_after[i]);
        int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM, SIGCHLD};
        for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; k++) {
            if (!(m & (1ull << (sigs[k] - 1)))) {
                fprintf(stderr, "HTTP thread %d does not block signal %d (SigBlk %llx)\n",
                        tids_after[i], sigs[k], m);
                test_count_failures(1);
            }
        }
        checked++;
    }
    CHECK(checked >= 1);
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    for (int s = 1; s < 32; s++)
        CHECK_EQ_I(sigismember(&before, s), sigismember(&after, s)); /* caller's mask kept */
    tslab_exporter_stop(e);

    /* Start/stop leaves no thread and no descriptor behind, even with a client connected. */
    size_t fds0 = count_dir("/proc/self/fd"), threads0 = count_dir("/proc/self/task");
    for (int i = 0; i < 20; i++) {
        e = start(config());
        int fd = http_connect(NULL, tslab_exporter_port(e));
        REQUIRE(fd >= 0);
        if (i % 2 == 0) {
            http_reply r;
            REQUIRE(http_get(tslab_exporter_port(e), "/metrics", &r) == 0);
            http_free(&r);
        }
        tslab_exporter_stop(e);
        close(fd);
    }
    CHECK_EQ_I(count_dir("/proc/self/fd"), fds0);
    CHECK_EQ_I(count_dir("/proc/self/task"), threads0);
}

/* ---- tslab_metrics_render ----------------------------------------------------------------- */

static void test_render_public(void)
{
    tslab_handle h[1000];
    for (int i = 0; i < 1000; i++)
        REQUIRE(tslab_alloc(alloc_a, 64, &h[i]) != NULL);
    for (int i = 0; i < 400; i++)
        CHECK(tslab_free(alloc_a, h[i]));
    CHECK(!tslab_free(alloc_a, h[0])); /* double */
    char *out;
    size_t len;
    tslab *list[2] = {alloc_a, alloc_b};
    REQUIRE(tslab_metrics_render(list, 2, TSLAB_FORMAT_PROMETHEUS, &out, &len) == 0);
    CHECK_EQ_I(strlen(out), len);
    uint64_t v = 0;
    CHECK(prom_u64(out, "tslab_allocations_total{allocator=\"alpha\",class=\"64\"}", &v) &&
          v == 1000);
    CHECK(prom_u64(out, "tslab_frees_total{allocator=\"alpha\",class=\"64\"}", &v) && v == 400);
    CHECK(prom_u64(out, "tslab_live_objects{allocator=\"alpha\",class=\"64\"}", &v) && v == 600);
    CHECK(
        prom_u64(out,
                 "tslab_free_rejections_total{allocator=\"alpha\",class=\"64\",reason=\"double\"}",
                 &v) &&
        v == 1);
    CHECK(prom_u64(out, "tslab_allocations_total{allocator=\"beta\",class=\"4096\"}", &v) &&
          v == 0);
    CHECK(prom_u64(out, "process_threads", &v) && v >= 1);
    CHECK(prom_u64(out, "process_open_fds", &v) && v >= 3);
    CHECK(prom_u64(out, "process_resident_memory_bytes", &v) && v > 0);
    free(out);
    REQUIRE(tslab_metrics_render(list, 2, TSLAB_FORMAT_JSON, &out, &len) == 0);
    CHECK_CONTAINS(out, "\"allocations\":1000,\"frees\":400,");
    free(out);
    for (int i = 400; i < 1000; i++)
        CHECK(tslab_free(alloc_a, h[i]));

    CHECK_EQ_I(tslab_metrics_render(NULL, 1, TSLAB_FORMAT_JSON, &out, &len), -EINVAL);
    CHECK_EQ_I(tslab_metrics_render(list, 2, (tslab_format)7, &out, &len), -EINVAL);
    CHECK_EQ_I(tslab_metrics_render(list, 2, TSLAB_FORMAT_JSON, NULL, &len), -EINVAL);
    tslab *dup[2] = {alloc_a, alloc_a};
    CHECK_EQ_I(tslab_metrics_render(dup, 2, TSLAB_FORMAT_PROMETHEUS, &out, &len), -EINVAL);
    REQUIRE(tslab_metrics_render(NULL, 0, TSLAB_FORMAT_OPENMETRICS, &out, &len) == 0);
    CHECK_CONTAINS(out, "tslab_build_info{version=\"" TSLAB_VERSION_STRING "\"} 1\n");
    free(out);
}

static void test_ipv6(void)
{
    tslab_exporter_config c = config();
    c.address = "::1";
    tslab_exporter *e = NULL;
    int err = tslab_exporter_start(&c, &e);
    if (err == -EADDRNOTAVAIL || err == -EAFNOSUPPORT) {
        printf("no IPv6 loopback here: IPv6 case skipped\n");
        return;
    }
    CHECK_EQ_I(err, 0);
    if (err != 0)
        return;
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(tslab_exporter_port(e))};
    inet_pton(AF_INET6, "::1", &a.sin6_addr);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    REQUIRE(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    REQUIRE(http_send_all(fd, req, strlen(req)) == 0);
    http_reply r;
    REQUIRE(http_read_reply(fd, &r) == 0);
    CHECK_EQ_I(r.status, 200);
    http_free(&r);
    close(fd);
    tslab_exporter_stop(e);
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 2);
    static const uint32_t sizes_a[] = {64, 128};
    static const uint32_t sizes_b[] = {4096};
    alloc_a = tslab_create(&(tslab_config){.name = "alpha", .sizes = sizes_a, .size_count = 2});
    alloc_b = tslab_create(&(tslab_config){.name = "beta", .sizes = sizes_b, .size_count = 1});
    REQUIRE(alloc_a != NULL && alloc_b != NULL);
    test_errors();
    test_endpoints(argv[1]);
    test_token();
    test_limits();
    test_host();
    test_signals_and_cleanup();
    test_render_public();
    test_ipv6();
    tslab_destroy(alloc_a);
    tslab_destroy(alloc_b);
    return test_result("test_exporter");
}
