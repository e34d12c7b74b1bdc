/* SPDX-License-Identifier: MIT */
/* A minimal blocking HTTP/1.1 client for the exporter tests: one request per connection
 * ("Connection: close"), the reply read to EOF. Every socket has a 10 s receive timeout so a
 * broken server fails the test instead of hanging it. */
#ifndef TSLAB_TELEMETRY_TESTHTTP_H
#define TSLAB_TELEMETRY_TESTHTTP_H

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct http_reply {
    int status;
    char *head; /* status line and headers, NUL-terminated */
    char *body; /* NUL-terminated (bodies here are text) */
    size_t body_len;
} http_reply;

/* A TCP connection to 127.0.0.1:port from source address `src` (NULL: any). fd or -1. */
static inline int http_connect(const char *src, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    if (src != NULL) {
        inet_pton(AF_INET, src, &a.sin_addr);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
            close(fd);
            return -1;
        }
    }
    a.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static inline int http_send_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads the reply on fd to EOF and parses it. 0, or -1 (nothing or garbage came back). */
static inline int http_read_reply(int fd, http_reply *r)
{
    memset(r, 0, sizeof *r);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return -1;
    for (;;) {
        if (len + 1 == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (grown == NULL) {
                free(buf);
                return -1;
            }
            buf = grown;
        }
        ssize_t n = recv(fd, buf + len, cap - len - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    char *sep = strstr(buf, "\r\n\r\n");
    if (sep == NULL || sscanf(buf, "HTTP/1.%*d %d", &r->status) != 1) {
        free(buf);
        return -1;
    }
    *sep = '\0';
    r->head = buf;
    r->body_len = len - (size_t)(sep + 4 - buf);
    r->body = malloc(r->body_len + 1);
    memcpy(r->body, sep + 4, r->body_len);
    r->body[r->body_len] = '\0';
    return 0;
}

/* Sends `request` verbatim from `src` and reads the reply. */
static inline int http_raw(const char *src, uint16_t port, const char *request, http_reply *r)
{
    int fd = http_connect(src, port);
    if (fd < 0)
        return -1;
    int rc = http_send_all(fd, request, strlen(request));
    if (rc == 0)
        rc = http_read_reply(fd, r);
    close(fd);
    return rc;
}

/* `method path` with optional extra header lines (each ending in \r\n). */
static inline int http_request(uint16_t port, const char *method, const char *path,
                               const char *headers, http_reply *r)
{
    char req[4096];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n",
             method, path, headers ? headers : "");
    return http_raw(NULL, port, req, r);
}

static inline int http_get(uint16_t port, const char *path, http_reply *r)
{
    return http_request(port, "GET", path, NULL, r);
}

/* The value of header `name` (case-insensitive) copied into out, or NULL. */
static inline const char *http_header(const http_reply *r, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    for (const char *line = strstr(r->head, "\r\n"); line != NULL;
         line = strstr(line + 2, "\r\n")) {
        const char *h = line + 2;
        if (strncasecmp(h, name, n) == 0 && h[n] == ':') {
            h += n + 1;
            while (*h == ' ')
                h++;
            const char *end = strstr(h, "\r\n");
            size_t len = end ? (size_t)(end - h) : strlen(h);
            if (len >= size)
                len = size - 1;
            memcpy(out, h, len);
            out[len] = '\0';
            return out;
        }
    }
    return NULL;
}

static inline void http_free(http_reply *r)
{
    free(r->head);
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* The integer value of the sample whose line starts with `series` ("name{labels}") in
 * Prometheus text. false when absent. */
static inline bool prom_u64(const char *text, const char *series, uint64_t *out)
{
    size_t n = strlen(series);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') {
            *out = strtoull(p + n + 1, NULL, 10);
            return true;
        }
        p = strchr(p, '\n');
        if (p != NULL)
            p++;
    }
    return false;
}

#endif
