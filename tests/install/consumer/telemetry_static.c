/* SPDX-License-Identifier: MIT */
/* Linked against the static allocator and the static exporter only: starts the exporter on a
 * port the kernel picks, scrapes its own /metrics over loopback and finds its allocator's
 * series there. run.sh checks that the binary needs no libtslab*.so. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tslab.h>
#include <tslab_telemetry.h>

/* GET /metrics from 127.0.0.1:port; the whole response (the server closes the connection). */
static char *scrape(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return NULL;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    char req[128];
    int rlen = snprintf(req, sizeof req,
                        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n\r\n",
                        (unsigned)port);
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send(fd, req, (size_t)rlen, 0) != (ssize_t)rlen) {
        free(buf);
        close(fd);
        return NULL;
    }
    ssize_t n;
    while (len + 1 < cap && (n = recv(fd, buf + len, cap - 1 - len, 0)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(fd);
    return buf;
}

int main(void)
{
    tslab *a = tslab_create(&(tslab_config){.name = "static"});
    tslab_handle h;
    void *p = tslab_alloc(a, 128, &h);
    tslab_exporter *e = NULL;
    tslab_exporter_config ec = {.port = 0, .allocators = &a, .allocator_count = 1};
    int err = tslab_exporter_start(&ec, &e);
    uint16_t port = tslab_exporter_port(e);
    char *text = err == 0 && port != 0 ? scrape(port) : NULL;
    int ok = a && p && text && strstr(text, "HTTP/1.1 200") == text &&
             strstr(text, "tslab_allocations_total{allocator=\"static\",class=\"128\"} 1\n") &&
             strstr(text, "tslab_build_info{version=\"" TSLAB_VERSION_STRING "\"} 1\n") &&
             strcmp(tslab_version(), TSLAB_VERSION_STRING) == 0;
    free(text);
    tslab_exporter_stop(e);
    ok = ok && tslab_free(a, h);
    tslab_destroy(a);
    printf("static telemetry consumer %s (exporter on port %u, error %d)\n", ok ? "ok" : "FAILED",
           (unsigned)port, err);
    return ok ? 0 : 1;
}
