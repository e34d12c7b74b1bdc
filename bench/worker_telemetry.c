/* SPDX-License-Identifier: MIT */
/* Telemetry cost (workload f) and /metrics render time. Compiled with BENCH_HAVE_TELEMETRY when
 * the tslab_telemetry target exists; stubs otherwise. */
#define _GNU_SOURCE
#include "bench.h"

#include <stdio.h>

#if !BENCH_HAVE_TELEMETRY
bool bench_telemetry_available(void) { return false; }
int bench_scrape_start(void *tslab_instance)
{
    (void)tslab_instance;
    fprintf(stderr, "bench: built without telemetry; --scrape is unavailable\n");
    return -1;
}
long bench_scrape_stop(void) { return 0; }
int bench_render_run(const bench_params *p)
{
    (void)p;
    fprintf(stderr, "bench: built without telemetry; render is unavailable\n");
    return 2;
}
#endif

#if BENCH_HAVE_TELEMETRY
#include <tslab.h>
#include <tslab_telemetry.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

bool bench_telemetry_available(void) { return true; }

static tslab_exporter *g_exporter;
static tslab *g_scraped;
static pthread_t g_scraper;
static atomic_bool g_stop;
static atomic_long g_scrapes;

/* One GET /metrics over a fresh connection, as Prometheus does; true on a 200 with a body. */
static bool scrape_once(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = false;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
        static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                  "Connection: close\r\n\r\n";
        if (write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1)) {
            char buf[16384];
            size_t total = 0;
            ssize_t n;
            bool status_ok = false;
            while ((n = read(fd, buf, sizeof buf)) > 0) {
                if (total == 0 && n >= 12 && memcmp(buf, "HTTP/1.1 200", 12) == 0)
                    status_ok = true;
                total += (size_t)n;
            }
            ok = status_ok && total > 200;
        }
    }
    close(fd);
    return ok;
}

static void *scraper_main(void *arg)
{
    uint16_t port = (uint16_t)(uintptr_t)arg;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!atomic_load(&g_stop)) {
        if (scrape_once(port))
            atomic_fetch_add(&g_scrapes, 1);
        next.tv_nsec += 100000000; /* 10 Hz */
        if (next.tv_nsec >= 1000000000) {
            next.tv_nsec -= 1000000000;
            next.tv_sec++;
        }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) != 0 &&
               !atomic_load(&g_stop)) {
        }
    }
    return NULL;
}

int bench_scrape_start(void *tslab_instance)
{
    if (!tslab_instance) {
        fprintf(stderr, "bench: --scrape needs a temporal-slab backend\n");
        return -1;
    }
    g_scraped = tslab_instance;
    tslab_exporter_config cfg = {
        .address = "127.0.0.1", .allocators = &g_scraped, .allocator_count = 1};
    int rc = tslab_exporter_start(&cfg, &g_exporter);
    if (rc != 0) {
        fprintf(stderr, "bench: tslab_exporter_start: %s\n", tslab_strerror(rc));
        return -1;
    }
    uint16_t port = tslab_exporter_port(g_exporter);
    if (!scrape_once(port)) {
        fprintf(stderr, "bench: first scrape of 127.0.0.1:%u/metrics failed\n", port);
        return -1;
    }
    atomic_store(&g_stop, false);
    if (pthread_create(&g_scraper, NULL, scraper_main, (void *)(uintptr_t)port) != 0)
        return -1;
    return 0;
}

long bench_scrape_stop(void)
{
    atomic_store(&g_stop, true);
    pthread_join(g_scraper, NULL);
    tslab_exporter_stop(g_exporter);
    g_exporter = NULL;
    return atomic_load(&g_scrapes);
}

/* Median time of tslab_metrics_render over p->n calls for one allocator of `nclasses` classes
 * whose counters are all non-zero. */
static int render_case(const bench_params *p, size_t nclasses, tslab_format fmt, const char *tag)
{
    uint32_t sizes[TSLAB_CLASSES_MAX];
    for (size_t i = 0; i < nclasses; i++)
        sizes[i] =
            (uint32_t)(nclasses == 8 ? (const uint32_t[]){64, 96, 128, 192, 256, 384, 512, 768}[i]
                                     : 16 * (i + 1));
    tslab_config cfg = {.name = "render", .sizes = sizes, .size_count = nclasses};
    tslab *a = tslab_create(&cfg);
    if (!a) {
        perror("bench: tslab_create");
        return 2;
    }
    for (size_t i = 0; i < nclasses; i++) { /* every series gets a value */
        tslab_handle h;
        if (tslab_alloc(a, sizes[i], &h))
            tslab_free(a, h);
        tslab_free(a, h); /* a double free: the rejection counters too */
    }
    uint64_t n = p->n < 5 ? 5 : p->n;
    double *t = calloc(n, sizeof *t);
    size_t bytes = 0;
    for (uint64_t i = 0; i < n; i++) {
        char *out = NULL;
        size_t len = 0;
        double t0 = bench_now_ns();
        int rc = tslab_metrics_render(&a, 1, fmt, &out, &len);
        double t1 = bench_now_ns();
        if (rc != 0) {
            fprintf(stderr, "bench: tslab_metrics_render: %s\n", tslab_strerror(rc));
            free(t);
            tslab_destroy(a);
            return 2;
        }
        free(out);
        bytes = len;
        t[i] = (t1 - t0) / 1e3;
    }
    qsort(t, n, sizeof *t, bench_cmp_double);
    char key[64];
    snprintf(key, sizeof key, "render%zu_%s_us", nclasses, tag);
    bench_emit(key, t[n / 2]);
    snprintf(key, sizeof key, "render%zu_%s_bytes", nclasses, tag);
    bench_emit(key, (double)bytes);
    free(t);
    tslab_destroy(a);
    return 0;
}

int bench_render_run(const bench_params *p)
{
    int rc = 0;
    rc |= render_case(p, 8, TSLAB_FORMAT_PROMETHEUS, "text");
    rc |= render_case(p, 64, TSLAB_FORMAT_PROMETHEUS, "text");
    rc |= render_case(p, 8, TSLAB_FORMAT_JSON, "json");
    rc |= render_case(p, 64, TSLAB_FORMAT_JSON, "json");
    fflush(stdout);
    return rc;
}
#endif
