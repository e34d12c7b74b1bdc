/* SPDX-License-Identifier: MIT */
/* tslab-demo: a session-store workload on temporal-slab, with live statistics and (with
 * --listen) the Prometheus exporter.
 *
 * N worker threads create sessions continuously: a 128-byte session and one or two 64-byte
 * connection records through the handle API, a 512-byte request buffer through tslab_malloc (all
 * from the allocator "sessions"), and now and then a 1-16 KiB payload from the allocator
 * "buffers", allocated into the worker's current "payloads" epoch (a new one every 100 ms, the
 * previous one closed, so the epoch metrics and dashboard row have data). Each object expires
 * after a random lifetime; about one in eight is handed to another thread to free (cross-thread
 * frees). Every object carries a stamp checked when it is freed, so a slot handed out twice is
 * reported.
 *
 * --inject-bad-frees R frees stale, double, foreign and invalid handles R times a second, so the
 * rejection counters and the alerts built on them can be seen working.
 *
 * SIGINT or SIGTERM (or --duration) stops it: workers free everything they hold, and the demo
 * checks that both allocators end with zero live objects. Exit status: 0 clean, 1 error or
 * corruption, 2 usage. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tslab.h"
#if TSLAB_DEMO_TELEMETRY
#include "tslab_telemetry.h"
#endif

/* ---- Options ------------------------------------------------------------------------------ */

typedef struct options {
    const char *listen; /* NULL: no exporter */
    double duration;    /* seconds; 0 = until signalled */
    unsigned threads;
    unsigned bad_frees; /* per second */
    unsigned rate;      /* sessions per second in all; 0 = as fast as possible */
    bool quiet;
    bool debug_endpoints; /* --debug-endpoints: /debug/pprof/heap and /debug/rejections */
    const char *token;
    const char *token_file; /* --bearer-token-file */
    const char *web_config; /* --web.config.file */
    unsigned max_connections, per_ip_connections, timeout_seconds;
} options;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tslab-demo [--listen ADDR:PORT] [--duration SECONDS] [--threads N]\n"
            "                  [--inject-bad-frees PER_SECOND] [--rate SESSIONS_PER_SECOND]\n"
            "                  [--quiet] [--token BEARER_TOKEN] [--max-connections N]\n"
            "                  [--per-ip-connections N] [--timeout SECONDS]\n"
            "                  [--web.config.file PATH] [--bearer-token-file PATH]\n"
            "                  [--debug-endpoints]\n"
            "  --listen ADDR:PORT  serve /metrics, /metrics.json, /healthz and / (port 0: any;\n"
            "                      IPv6 as [::1]:PORT); prints \"listening on http://ADDR:PORT/\"\n"
            "  --duration S        stop after S seconds (default 0: run until SIGINT/SIGTERM)\n"
            "  --threads N         worker threads (default 2)\n"
            "  --inject-bad-frees R  free stale/double/foreign/invalid handles R times a second\n"
            "  --rate R            sessions created per second over all threads (default 20000,\n"
            "                      0 = unthrottled)\n"
            "  --quiet             no statistics once a second\n"
            "  --debug-endpoints   also serve /debug/pprof/heap (go tool pprof) and\n"
            "                      /debug/rejections (behind the same auth as /metrics)\n"
            "  --version           print the demo's and the loaded library's versions\n"
            "  --token T, --max-connections N, --per-ip-connections N, --timeout S\n"
            "                      exporter settings (see tslab_telemetry.h)\n"
            "  --web.config.file PATH  TLS, client certificates, basic auth and headers in the\n"
            "                      Prometheus exporter-toolkit format (telemetry/README.md)\n"
            "  --bearer-token-file PATH  the bearer token, read from a file; without it and\n"
            "                      --token, the environment variable TSLAB_BEARER_TOKEN\n");
}

static bool parse_unsigned(const char *s, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v > max || s[0] == '-')
        return false;
    *out = (unsigned)v;
    return true;
}

static int parse_options(int argc, char **argv, options *o)
{
    *o = (options){.threads = 2, .rate = 20000};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (strcmp(arg, "--quiet") == 0) {
            o->quiet = true;
            continue;
        }
        if (strcmp(arg, "--debug-endpoints") == 0) {
            o->debug_endpoints = true;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(arg, "--version") == 0) {
            /* The header's version and the loaded library's: they differ when a newer
             * libtslab.so.1 is installed under this binary. */
            printf("tslab-demo %s (libtslab %s)\n", TSLAB_VERSION_STRING, tslab_version());
            exit(0);
        }
        if (val == NULL) {
            fprintf(stderr, "tslab-demo: unknown option or missing value: %s\n", arg);
            return -1;
        }
        i++;
        if (strcmp(arg, "--listen") == 0) {
            o->listen = val;
        } else if (strcmp(arg, "--duration") == 0) {
            char *end;
            o->duration = strtod(val, &end);
            ok = end != val && *end == '\0' && o->duration >= 0;
        } else if (strcmp(arg, "--threads") == 0) {
            ok = parse_unsigned(val, 256, &o->threads) && o->threads > 0;
        } else if (strcmp(arg, "--inject-bad-frees") == 0) {
            ok = parse_unsigned(val, 1000000, &o->bad_frees);
        } else if (strcmp(arg, "--rate") == 0) {
            ok = parse_unsigned(val, 100000000, &o->rate);
        } else if (strcmp(arg, "--token") == 0) {
            o->token = val;
        } else if (strcmp(arg, "--bearer-token-file") == 0) {
            o->token_file = val;
        } else if (strcmp(arg, "--web.config.file") == 0) {
            o->web_config = val;
        } else if (strcmp(arg, "--max-connections") == 0) {
            ok = parse_unsigned(val, 100000, &o->max_connections);
        } else if (strcmp(arg, "--per-ip-connections") == 0) {
            ok = parse_unsigned(val, 100000, &o->per_ip_connections);
        } else if (strcmp(arg, "--timeout") == 0) {
            ok = parse_unsigned(val, 86400, &o->timeout_seconds);
        } else {
            fprintf(stderr, "tslab-demo: unknown option: %s\n", arg);
            return -1;
        }
        if (!ok) {
            fprintf(stderr, "tslab-demo: bad value for %s: %s\n", arg, val);
            return -1;
        }
    }
    return 0;
}

/* "ADDR:PORT", "[V6]:PORT", ":PORT" or "PORT" into addr (no brackets) and port. */
static int parse_listen(const char *s, char *addr, size_t addr_size, unsigned *port)
{
    const char *colon = strrchr(s, ':');
    const char *host = s, *port_text = s;
    size_t host_len = 0;
    if (colon != NULL) {
        port_text = colon + 1;
        host_len = (size_t)(colon - s);
        if (host_len >= 2 && s[0] == '[' && s[host_len - 1] == ']') {
            host++;
            host_len -= 2;
        }
    }
    if (host_len == 0) {
        host = "127.0.0.1";
        host_len = strlen(host);
    }
    if (host_len >= addr_size || !parse_unsigned(port_text, 65535, port))
        return -1;
    memcpy(addr, host, host_len);
    addr[host_len] = '\0';
    return 0;
}

/* ---- Workload ----------------------------------------------------------------------------- */

typedef struct session {
    uint64_t id;
    uint64_t stamp; /* checked on free: a slot handed out twice would be overwritten */
    uint64_t created_ns;
    uint64_t expires_ns;
    char user[48];
    char csrf_token[48];
} session;

typedef struct connection {
    uint64_t session_id;
    uint64_t stamp;
    uint64_t bytes_in, bytes_out;
    char remote[32];
} connection;

_Static_assert(sizeof(session) == 128, "a session is one 128-byte object");
_Static_assert(sizeof(connection) == 64, "a connection is one 64-byte object");

#define REQUEST_BUFFER 512

typedef enum kind { K_SESSION, K_CONNECTION, K_REQBUF, K_PAYLOAD } kind;

/* One object to expire: handle-API objects keep their handle, the others their pointer. */
typedef struct item {
    uint64_t expires_ns;
    uint64_t stamp;
    kind kind;
    tslab_handle handle;
    void *ptr;
} item;

typedef struct inbox {
    pthread_mutex_t lock;
    item *items;
    size_t len, cap;
} inbox;

typedef struct worker {
    pthread_t thread;
    unsigned index;
    uint64_t rng;
    item *heap; /* min-heap on expires_ns */
    size_t len, cap;
    inbox in;                /* objects other threads hand over for this one to free */
    tslab_epoch payloads;    /* the epoch payloads go to now (0: none, plain tslab_malloc) */
    uint64_t payloads_since; /* when it was opened */
} worker;

static tslab *sessions, *buffers;
static worker *workers;
static unsigned worker_count;
static unsigned sessions_per_second;
static atomic_bool stopping;
static atomic_uint_fast64_t corruptions, alloc_failures, injected;

static uint64_t rnd(uint64_t *s) /* xorshift64* */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717u;
}

static uint64_t now_ns(void) { return tslab_clock_ns(); }

static bool push(item **v, size_t *len, size_t *cap, item it)
{
    if (*len == *cap) {
        size_t ncap = *cap ? *cap * 2 : 1024;
        item *nv = realloc(*v, ncap * sizeof *nv);
        if (nv == NULL)
            return false;
        *v = nv;
        *cap = ncap;
    }
    (*v)[(*len)++] = it;
    return true;
}

static void heap_push(worker *w, item it)
{
    if (!push(&w->heap, &w->len, &w->cap, it))
        return; /* out of memory: the object is leaked, and the final check will say so */
    size_t i = w->len - 1;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (w->heap[parent].expires_ns <= w->heap[i].expires_ns)
            break;
        item t = w->heap[parent];
        w->heap[parent] = w->heap[i];
        w->heap[i] = t;
        i = parent;
    }
}

static item heap_pop(worker *w)
{
    item top = w->heap[0];
    w->heap[0] = w->heap[--w->len];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < w->len && w->heap[l].expires_ns < w->heap[m].expires_ns)
            m = l;
        if (r < w->len && w->heap[r].expires_ns < w->heap[m].expires_ns)
            m = r;
        if (m == i)
            break;
        item t = w->heap[m];
        w->heap[m] = w->heap[i];
        w->heap[i] = t;
        i = m;
    }
    return top;
}

/* Frees an item (from any thread), checking its stamp first. */
static void release(item it)
{
    uint64_t seen;
    bool freed;
    switch (it.kind) {
    case K_SESSION:
        seen = ((session *)it.ptr)->stamp;
        freed = tslab_free(sessions, it.handle);
        break;
    case K_CONNECTION:
        seen = ((connection *)it.ptr)->stamp;
        freed = tslab_free(sessions, it.handle);
        break;
    case K_REQBUF:
        memcpy(&seen, it.ptr, sizeof seen);
        freed = tslab_free_ptr(sessions, it.ptr);
        break;
    default:
        memcpy(&seen, it.ptr, sizeof seen);
        freed = tslab_free_ptr(buffers, it.ptr);
        break;
    }
    if (seen != it.stamp || !freed)
        atomic_fetch_add_explicit(&corruptions, 1, memory_order_relaxed);
}

/* Lifetime in ns: exponential with the given mean, capped at 8 means. */
static uint64_t lifetime(worker *w, uint64_t mean_ns)
{
    double u = (double)(rnd(&w->rng) >> 11) / 9007199254740992.0;
    double t = -(double)mean_ns * log(1.0 - u * 0.9997);
    return (uint64_t)t;
}

static void expire(worker *w, item it)
{
    /* One in eight is freed by another thread. */
    if (worker_count > 1 && (rnd(&w->rng) & 7) == 0) {
        worker *peer = &workers[(w->index + 1 + rnd(&w->rng) % (worker_count - 1)) % worker_count];
        pthread_mutex_lock(&peer->in.lock);
        bool ok = push(&peer->in.items, &peer->in.len, &peer->in.cap, it);
        pthread_mutex_unlock(&peer->in.lock);
        if (ok)
            return;
    }
    release(it);
}

static void drain_inbox(inbox *in)
{
    pthread_mutex_lock(&in->lock);
    item *items = in->items;
    size_t len = in->len;
    in->items = NULL;
    in->len = in->cap = 0;
    pthread_mutex_unlock(&in->lock);
    for (size_t i = 0; i < len; i++)
        release(items[i]);
    free(items);
}

static void create_session(worker *w, uint64_t now)
{
    uint64_t stamp = ((uint64_t)w->index << 48) | (rnd(&w->rng) & 0xffffffffffffu);
    tslab_handle h;
    session *s = tslab_alloc(sessions, sizeof *s, &h);
    if (s == NULL) {
        atomic_fetch_add_explicit(&alloc_failures, 1, memory_order_relaxed);
        return;
    }
    uint64_t life = lifetime(w, 400 * 1000000ull);
    *s = (session){.id = stamp, .stamp = stamp, .created_ns = now, .expires_ns = now + life};
    snprintf(s->user, sizeof s->user, "user%" PRIu64, stamp % 100000);
    heap_push(w, (item){now + life, stamp, K_SESSION, h, s});

    unsigned conns = 1 + (unsigned)(rnd(&w->rng) & 1);
    for (unsigned i = 0; i < conns; i++) {
        connection *c = tslab_alloc(sessions, sizeof *c, &h);
        if (c == NULL) {
            atomic_fetch_add_explicit(&alloc_failures, 1, memory_order_relaxed);
            continue;
        }
        uint64_t cs = stamp + i + 1;
        *c = (connection){.session_id = stamp, .stamp = cs};
        heap_push(w, (item){now + lifetime(w, 150 * 1000000ull), cs, K_CONNECTION, h, c});
    }

    char *req = tslab_malloc(sessions, REQUEST_BUFFER);
    if (req != NULL) {
        uint64_t rs = stamp ^ 0x5555;
        memcpy(req, &rs, sizeof rs);
        memset(req + sizeof rs, 'r', REQUEST_BUFFER - sizeof rs);
        heap_push(w, (item){now + lifetime(w, 20 * 1000000ull), rs, K_REQBUF, 0, req});
    } else {
        atomic_fetch_add_explicit(&alloc_failures, 1, memory_order_relaxed);
    }

    if ((rnd(&w->rng) & 3) == 0) {
        size_t size = 1024 + rnd(&w->rng) % (15 * 1024);
        char *payload = w->payloads != 0 ? tslab_malloc_epoch(buffers, w->payloads, size)
                                         : tslab_malloc(buffers, size);
        if (payload != NULL) {
            uint64_t ps = stamp ^ 0xaaaa;
            memcpy(payload, &ps, sizeof ps);
            heap_push(w, (item){now + lifetime(w, 50 * 1000000ull), ps, K_PAYLOAD, 0, payload});
        } else {
            atomic_fetch_add_explicit(&alloc_failures, 1, memory_order_relaxed);
        }
    }
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    nanosleep(&ts, NULL);
}

#define PAYLOAD_EPOCH_NS (100 * 1000000ull)

/* Every 100 ms a worker opens a new "payloads" epoch and closes the previous one: its payloads
 * (20-50 ms lifetimes) drain within a few hundred ms and its slabs leave as they empty. */
static void rotate_payloads(worker *w, uint64_t now)
{
    if (w->payloads != 0 && now - w->payloads_since < PAYLOAD_EPOCH_NS)
        return;
    tslab_epoch next = tslab_epoch_open(buffers, "payloads");
    if (next == 0 && w->payloads != 0)
        return; /* keep the current one a while longer */
    if (w->payloads != 0)
        (void)tslab_epoch_close(buffers, w->payloads);
    w->payloads = next;
    w->payloads_since = now;
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    uint64_t start = now_ns(), created = 0;
    double per_ns = sessions_per_second ? (double)sessions_per_second / worker_count / 1e9 : 0;
    while (!atomic_load_explicit(&stopping, memory_order_relaxed)) {
        uint64_t now = now_ns();
        rotate_payloads(w, now);
        /* Sessions due by now at the target rate (bounded, so a stall does not cause a burst). */
        uint64_t due = per_ns > 0 ? (uint64_t)((double)(now - start) * per_ns) : created + 256;
        if (due > created + 4096)
            created = due - 4096;
        for (; created < due; created++)
            create_session(w, now);
        while (w->len > 0 && w->heap[0].expires_ns <= now)
            expire(w, heap_pop(w));
        drain_inbox(&w->in);
        if (per_ns > 0)
            sleep_ns(1000000); /* about 1000 batches a second */
    }
    while (w->len > 0)
        release(heap_pop(w));
    drain_inbox(&w->in);
    if (w->payloads != 0)
        (void)tslab_epoch_close(buffers, w->payloads);
    return NULL;
}

/* Frees stale, double, foreign and invalid handles and pointers `rate` times a second.
 *
 * A stale handle needs its slot to be handed out again. A freed slot goes back to the thread
 * that freed it (this one: it owns the slab), and usually its very next allocation of the same
 * size takes it. Sanitizer builds quarantine freed slots first, so this thread allocates and
 * frees until the slot comes back (bounded; if it does not, the second free counts as a double). */
#define REUSE_TRIES 20000

static void *injector_main(void *arg)
{
    unsigned rate = *(unsigned *)arg;
    uint64_t period = 1000000000u / rate, n = 0;
    uint64_t next = now_ns();
    while (!atomic_load_explicit(&stopping, memory_order_relaxed)) {
        tslab_handle h1, h2 = TSLAB_HANDLE_NONE;
        void *p1 = tslab_alloc(sessions, sizeof(session), &h1);
        if (p1 != NULL) {
            tslab_free(sessions, h1);
            bool reused = false;
            for (int k = 0; k < REUSE_TRIES && !reused; k++) {
                void *p = tslab_alloc(sessions, sizeof(session), &h2);
                if (p == NULL)
                    break;
                reused = p == p1;
                if (!reused)
                    tslab_free(sessions, h2);
            }
            tslab_free(sessions, h1); /* stale when h2 took its slot, else double */
            if (reused) {
                tslab_free(sessions, h2);
                tslab_free(sessions, h2); /* double */
                if (n % 10 == 0) {
                    tslab_free(buffers, h2);      /* foreign: another instance's handle */
                    tslab_free_ptr(sessions, &n); /* invalid: not an object of the allocator */
                }
            }
            atomic_fetch_add_explicit(&injected, 1, memory_order_relaxed);
        }
        n++;
        next += period;
        uint64_t now = now_ns();
        if (next > now)
            sleep_ns(next - now);
        else
            next = now;
    }
    return NULL;
}

/* ---- Statistics --------------------------------------------------------------------------- */

typedef struct totals {
    uint64_t allocations, live, resident, hits, lookups, rejected;
} totals;

static totals sum(tslab *a)
{
    tslab_stats s;
    totals t = {0};
    if (tslab_stats_read(a, &s) != 0)
        return t;
    for (uint32_t i = 0; i < s.class_count; i++) {
        const tslab_class_stats *c = &s.classes[i];
        t.allocations += c->allocations;
        t.live += c->live_objects;
        t.resident += c->resident_bytes;
        t.hits += c->cache_hits;
        t.lookups += c->cache_lookups;
        t.rejected +=
            c->rejected_invalid + c->rejected_stale + c->rejected_double + c->rejected_foreign;
    }
    t.rejected += s.unattributed.rejected_invalid + s.unattributed.rejected_stale +
                  s.unattributed.rejected_double + s.unattributed.rejected_foreign;
    return t;
}

static void print_stats(double elapsed, double interval, totals *prev)
{
    tslab *list[2] = {sessions, buffers};
    printf("[%6.1fs]", elapsed);
    for (int i = 0; i < 2; i++) {
        totals t = sum(list[i]);
        double rate = interval > 0 ? (double)(t.allocations - prev[i].allocations) / interval : 0;
        printf(" %s: %.0f allocs/s, %" PRIu64 " live, %.1f MiB resident, ", tslab_name(list[i]),
               rate, t.live, (double)t.resident / 1048576.0);
        if (t.lookups > 0)
            printf("cache hits %.1f%%", 100.0 * (double)t.hits / (double)t.lookups);
        else
            printf("cache hits n/a");
        if (t.rejected > 0)
            printf(", %" PRIu64 " rejected frees", t.rejected);
        printf(" |");
        prev[i] = t;
    }
    printf(" rss %.1f MiB\n", (double)tslab_process_rss() / 1048576.0);
    fflush(stdout);
}

/* ---- Main --------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    options o;
    if (parse_options(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    char addr[128];
    unsigned port = 0;
    if (o.listen != NULL && parse_listen(o.listen, addr, sizeof addr, &port) != 0) {
        fprintf(stderr, "tslab-demo: --listen wants ADDR:PORT, got %s\n", o.listen);
        return 2;
    }
#if !TSLAB_DEMO_TELEMETRY
    if (o.listen != NULL) {
        fprintf(stderr, "tslab-demo: built without telemetry (TSLAB_BUILD_TELEMETRY=OFF)\n");
        return 2;
    }
#endif

    /* SIGINT/SIGTERM are taken by sigtimedwait in this thread: block them before any thread
     * starts so every thread inherits the mask. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);

    static const uint32_t session_sizes[] = {64, 128, 256, 512};
    static const uint32_t buffer_sizes[] = {1024, 2048, 4096, 8192, 16384};
    /* Memory limits as a service would set them: far above what the demo holds (tens of MiB),
     * so they show on the dashboard's "memory returned" row without refusing anything. */
    tslab_config sc = {.name = "sessions",
                       .sizes = session_sizes,
                       .size_count = 4,
                       .limit_soft = (uint64_t)256 << 20,
                       .limit_hard = (uint64_t)512 << 20};
    tslab_config bc = {.name = "buffers",
                       .sizes = buffer_sizes,
                       .size_count = 5,
                       .limit_soft = (uint64_t)512 << 20,
                       .limit_hard = (uint64_t)1 << 30};
    sessions = tslab_create(&sc);
    buffers = tslab_create(&bc);
    if (sessions == NULL || buffers == NULL) {
        fprintf(stderr, "tslab-demo: tslab_create: %s\n", strerror(errno));
        return 1;
    }

#if TSLAB_DEMO_TELEMETRY
    tslab_exporter *exporter = NULL;
    if (o.listen != NULL) {
        tslab *const list[] = {sessions, buffers};
        /* The token from the environment keeps it out of `ps`, like --bearer-token-file. */
        const char *token = o.token;
        if (token == NULL && o.token_file == NULL)
            token = getenv("TSLAB_BEARER_TOKEN");
        if (token != NULL && token[0] == '\0')
            token = NULL;
        char why[512] = "";
        tslab_exporter_config ec = {.address = addr,
                                    .port = (uint16_t)port,
                                    .allocators = list,
                                    .allocator_count = 2,
                                    .bearer_token = token,
                                    .max_connections = o.max_connections,
                                    .per_ip_connections = o.per_ip_connections,
                                    .timeout_seconds = o.timeout_seconds,
                                    .web_config_file = o.web_config,
                                    .debug_endpoints = o.debug_endpoints,
                                    .bearer_token_file = o.token_file,
                                    .error_message = why,
                                    .error_message_size = sizeof why};
        int err = tslab_exporter_start(&ec, &exporter);
        if (err != 0) {
            fprintf(stderr, "tslab-demo: cannot listen on %s: %s%s%s\n", o.listen,
                    tslab_strerror(err), why[0] ? ": " : "", why);
            return 1;
        }
        bool v6 = strchr(addr, ':') != NULL;
        printf("listening on %s://%s%s%s:%u/\n", tslab_exporter_scheme(exporter), v6 ? "[" : "",
               addr, v6 ? "]" : "", (unsigned)tslab_exporter_port(exporter));
        fflush(stdout);
    }
#endif

    worker_count = o.threads;
    sessions_per_second = o.rate;
    workers = calloc(worker_count, sizeof *workers);
    if (workers == NULL)
        return 1;
    for (unsigned i = 0; i < worker_count; i++) {
        workers[i].index = i;
        workers[i].rng = 0x9e3779b97f4a7c15u * (i + 1);
        pthread_mutex_init(&workers[i].in.lock, NULL);
    }
    for (unsigned i = 0; i < worker_count; i++) {
        if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
            fprintf(stderr, "tslab-demo: cannot start worker threads\n");
            return 1;
        }
    }
    pthread_t injector;
    bool have_injector =
        o.bad_frees > 0 && pthread_create(&injector, NULL, injector_main, &o.bad_frees) == 0;

    uint64_t start = now_ns(), last = start;
    uint64_t deadline = o.duration > 0 ? start + (uint64_t)(o.duration * 1e9) : UINT64_MAX;
    totals prev[2] = {sum(sessions), sum(buffers)};
    int signo = 0;
    for (;;) {
        uint64_t now = now_ns();
        if (now >= deadline)
            break;
        uint64_t wait = deadline - now < 1000000000u ? deadline - now : 1000000000u;
        struct timespec ts = {(time_t)(wait / 1000000000u), (long)(wait % 1000000000u)};
        signo = sigtimedwait(&stop_signals, NULL, &ts);
        if (signo > 0)
            break;
        now = now_ns();
        if (!o.quiet && now - last >= 900000000u) {
            print_stats((double)(now - start) / 1e9, (double)(now - last) / 1e9, prev);
            last = now;
        }
    }

    atomic_store(&stopping, true);
    for (unsigned i = 0; i < worker_count; i++)
        pthread_join(workers[i].thread, NULL);
    if (have_injector)
        pthread_join(injector, NULL);
    for (unsigned i = 0; i < worker_count; i++) /* handed over after their owner stopped */
        drain_inbox(&workers[i].in);
#if TSLAB_DEMO_TELEMETRY
    tslab_exporter_stop(exporter);
#endif

    totals ts = sum(sessions), tb = sum(buffers);
    uint64_t bad = atomic_load(&corruptions);
    if (!o.quiet || bad != 0 || ts.live + tb.live != 0) {
        printf("stopped%s%s: %" PRIu64 " sessions-allocator and %" PRIu64
               " buffers-allocator objects allocated, %" PRIu64 " still live, %" PRIu64
               " corrupted, %" PRIu64 " allocation failures, %" PRIu64 " bad-free rounds\n",
               signo > 0 ? " by " : "", signo > 0 ? (signo == SIGINT ? "SIGINT" : "SIGTERM") : "",
               ts.allocations, tb.allocations, ts.live + tb.live, bad,
               (uint64_t)atomic_load(&alloc_failures), (uint64_t)atomic_load(&injected));
    }
    for (unsigned i = 0; i < worker_count; i++) {
        free(workers[i].heap);
        pthread_mutex_destroy(&workers[i].in.lock);
    }
    free(workers);
    tslab_destroy(sessions);
    tslab_destroy(buffers);
    return bad == 0 && ts.live + tb.live == 0 ? 0 : 1;
}
