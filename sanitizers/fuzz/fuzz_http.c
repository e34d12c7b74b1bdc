/* SPDX-License-Identifier: MIT */
/* libFuzzer target: arbitrary bytes sent as a request to the exporter over loopback.
 *
 * One exporter (127.0.0.1, port 0, a bearer token off) serves two allocators for the whole run.
 * Each input is written to a fresh connection, the write side is shut, and the response is read
 * until the server closes. Invariants: no crash or sanitizer report in the exporter, no hang (the
 * /healthz check below), a response, if any, starts with "HTTP/1.", and after every 16 inputs
 * GET /healthz still answers 200 within 10 s. */
#define _GNU_SOURCE
#include <tslab.h>
#include <tslab_telemetry.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond, msg)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_http: %s:%d: %s (%s), errno %d\n", __FILE__, __LINE__, msg,      \
                    #cond, errno);                                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static tslab_exporter *exporter;
static uint16_t port;
static tslab *allocs[2];

static void setup(void)
{
    tslab_config c0 = {.name = "fuzz-http"};
    tslab_config c1 = {.name = "odd \"name\\\n"};
    allocs[0] = tslab_create(&c0);
    allocs[1] = tslab_create(&c1);
    CHECK(allocs[0] && allocs[1], "tslab_create");
    static void *live[100]; /* live objects to export, kept reachable */
    for (int i = 0; i < 100; i++)
        CHECK((live[i] = tslab_malloc(allocs[i % 2], (size_t)(i * 7 % 700) + 1)), "malloc");
    /* The corpus and the liveness probe name hosts "x" and "fuzz": allowed, so that fuzzed
     * requests reach the routes instead of stopping at the Host check (421) of a loopback bind. */
    static const char *const hosts[] = {"x", "fuzz"};
    tslab_exporter_config cfg = {.address = "127.0.0.1",
                                 .port = 0,
                                 .allocators = allocs,
                                 .allocator_count = 2,
                                 .timeout_seconds = 5,
                                 .allowed_hosts = hosts,
                                 .allowed_host_count = 2};
    int rc = tslab_exporter_start(&cfg, &exporter);
    CHECK(rc == 0 && exporter, "tslab_exporter_start");
    port = tslab_exporter_port(exporter);
    CHECK(port != 0, "tslab_exporter_port");
}

/* Tracks the first response: once its headers and Content-Length bytes of body are in, the
 * exchange is complete (no need to wait for the server to go quiet). */
typedef struct resp_state {
    char head[8192];
    size_t head_len; /* bytes of head[] filled */
    bool have_headers;
    long long body_left;
} resp_state;

static bool complete_response(const char *buf, size_t len, resp_state *r)
{
    if (!r->have_headers) {
        size_t k = len < sizeof r->head - 1 - r->head_len ? len : sizeof r->head - 1 - r->head_len;
        memcpy(r->head + r->head_len, buf, k);
        r->head_len += k;
        r->head[r->head_len] = '\0';
        char *end = strstr(r->head, "\r\n\r\n");
        if (!end)
            return false;
        r->have_headers = true;
        long long cl = -1;
        for (char *p = strstr(r->head, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n"))
            if (!strncasecmp(p + 2, "Content-Length:", 15))
                cl = atoll(p + 17);
        if (cl < 0)
            return false; /* no length: wait for close or quiet */
        size_t body_in = r->head_len - (size_t)(end + 4 - r->head);
        if (k < len)
            body_in += len - k;
        r->body_left = cl - (long long)body_in;
        return r->body_left <= 0;
    }
    r->body_left -= (long long)len;
    return r->body_left <= 0;
}

/* connect() that survives a signal: libFuzzer's timers interrupt blocking calls (EINTR), and an
 * interrupted connect goes on in the background, so wait for it rather than retrying. */
static int connect_loopback(int fd, const struct sockaddr_in *sa)
{
    if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) == 0)
        return 0;
    if (errno != EINTR)
        return -1;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int r = poll(&p, 1, 2000);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        int err = 0;
        socklen_t len = sizeof err;
        return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0 ? 0 : -1;
    }
}

/* Sends data, shuts the write side, reads the answer into out (truncated); returns bytes read. */
static size_t exchange(const uint8_t *data, size_t size, char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0, "socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect_loopback(fd, &sa) == 0, "connect to the exporter");
    size_t off = 0;
    while (off < size) {
        ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* the server may close early on a bad request */
        off += (size_t)w;
    }
    shutdown(fd, SHUT_WR);
    size_t n = 0;
    double start = now(), last = start;
    resp_state need = {0};
    bool done = false;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, 5);
        double t = now();
        /* A keep-alive response is complete when the server goes quiet: it keeps the connection
         * open after our half-close until its own timeout. */
        if (n > 0 && t - last > 0.1)
            break;
        /* Nothing at all: an incomplete request the server is still waiting on. Give up on it
         * (the server's own timeout closes its side); liveness is checked with /healthz. */
        if (n == 0 && t - start > 0.03)
            break;
        if (r <= 0)
            continue;
        char buf[4096];
        ssize_t got = recv(fd, buf, sizeof buf, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        last = t;
        if (complete_response(buf, (size_t)got, &need))
            done = true;
        if (n < cap) {
            size_t k = (size_t)got < cap - n ? (size_t)got : cap - n;
            memcpy(out + n, buf, k);
            n += k;
        }
        if (done)
            break;
    }
    close(fd);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned long runs;
    if (!exporter)
        setup();
    char out[64];
    size_t n = exchange(data, size, out, sizeof out);
    if (n >= 7)
        CHECK(memcmp(out, "HTTP/1.", 7) == 0, "response does not start with a status line");
    if (++runs % 16 == 0) {
        static const char health[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
        double t0 = now();
        do
            n = exchange((const uint8_t *)health, sizeof health - 1, out, sizeof out - 1);
        while (n == 0 && now() - t0 < 10);
        out[n] = '\0';
        CHECK(n > 12 && strncmp(out + 9, "200", 3) == 0, "exporter no longer answers /healthz");
    }
    return 0;
}
