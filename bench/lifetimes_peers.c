/* SPDX-License-Identifier: MIT */
/* Workload j (lifetimes.h) on the peers' nearest tools to a group:
 *   mimalloc-heap   one heap per group: mi_heap_new, mi_heap_malloc, and at the end
 *                   mi_heap_destroy (j.lifetimes: frees whatever is left, nothing here) or
 *                   mi_heap_delete (j.survivor: live blocks move to the default heap);
 *   jemalloc-arena  one arena per group: "arenas.create", mallocx(MALLOCX_ARENA(i) |
 *                   MALLOCX_TCACHE_NONE), dallocx(MALLOCX_TCACHE_NONE), and at the end
 *                   "arena.<i>.destroy" (j.lifetimes) or nothing (j.survivor: destroying the
 *                   arena would discard its survivors). The thread cache is bypassed because
 *                   jemalloc's manual requires every tcache that held the arena's objects to be
 *                   flushed before a reset or destroy. Destroy, not a reset of a recycled
 *                   arena: reset kept neither the pages nor the speed (100k requests: RSS grew to
 *                   50-57 MB, 390-510 faults per 1,000 requests, 1.1-1.6 us per object).
 * Survivors use malloc/free: the default heap or arena. The peers are LD_PRELOADed into the
 * worker, not linked, so their functions are looked up with dlsym; their headers give the
 * declarations and jemalloc's flag macros. */
#define _GNU_SOURCE
#include "lifetimes.h"

#include <dlfcn.h>
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <mimalloc.h>
#include <stdio.h>
#include <string.h>

/* ---- mimalloc: a heap per group -------------------------------------------------------------- */

static __typeof__(mi_heap_new) *mi_new_;
static __typeof__(mi_heap_malloc) *mi_malloc_;
static __typeof__(mi_heap_destroy) *mi_destroy_;
static __typeof__(mi_heap_delete) *mi_delete_;

static inline bool lt_free(uint64_t tok)
{
    free((void *)(uintptr_t)tok);
    return true;
}
static inline mi_heap_t *heap_of(uint64_t g) { return (mi_heap_t *)(uintptr_t)g; }

#define LT(name) name##_mi
#define LT_OPEN(A) ((uint64_t)(uintptr_t)mi_new_())
#define LT_GALLOC(A, g, size, tokp) lt_tok(mi_malloc_(heap_of(g), size), tokp)
#define LT_GFREE(A, tok) lt_free(tok)
#define LT_ALLOC(A, size, tokp) lt_tok(malloc(size), tokp)
#define LT_FREE(A, tok) lt_free(tok)
#define LT_END(A, g) (mi_destroy_(heap_of(g)), 0)
#define LT_CLOSE(A, g) (mi_delete_(heap_of(g)), 0)
#include "lifetimes.inc.h"

/* ---- jemalloc: an arena per group ------------------------------------------------------------ */

static __typeof__(mallctl) *je_ctl_;
static __typeof__(mallctlnametomib) *je_nametomib_;
static __typeof__(mallctlbymib) *je_bymib_;
static __typeof__(mallocx) *je_mallocx_;
static __typeof__(dallocx) *je_dallocx_;
static size_t je_destroy_mib[3], je_destroy_miblen = 3; /* "arena.<i>.destroy", i at [1] */
static uint64_t arena_create(void)
{
    unsigned ind = 0;
    size_t sz = sizeof ind;
    int rc = je_ctl_("arenas.create", &ind, &sz, NULL, 0);
    if (rc != 0) {
        errno = rc;
        return 0;
    }
    return ind; /* never 0: arena 0 is the default one */
}
static int arena_destroy(uint64_t ind)
{
    size_t mib[3];
    memcpy(mib, je_destroy_mib, sizeof mib);
    mib[1] = (size_t)ind;
    int rc = je_bymib_(mib, je_destroy_miblen, NULL, NULL, NULL, 0);
    if (rc != 0)
        errno = rc;
    return rc;
}
static inline bool arena_free(uint64_t tok)
{
    je_dallocx_((void *)(uintptr_t)tok, MALLOCX_TCACHE_NONE);
    return true;
}

#define LT(name) name##_je
#define LT_OPEN(A) arena_create()
#define LT_GALLOC(A, g, size, tokp)                                                                \
    lt_tok(je_mallocx_(size, MALLOCX_ARENA(g) | MALLOCX_TCACHE_NONE), tokp)
#define LT_GFREE(A, tok) arena_free(tok)
#define LT_ALLOC(A, size, tokp) lt_tok(malloc(size), tokp)
#define LT_FREE(A, tok) lt_free(tok)
#define LT_END(A, g) arena_destroy(g)
#define LT_CLOSE(A, g) ((void)(g), 0)
#include "lifetimes.inc.h"

static const lt_ops ops_mi = LT_OPS(mi), ops_je = LT_OPS(je);

/* ---- Selection ------------------------------------------------------------------------------- */

/* dlsym into *fn; false (with a message) when the process does not have the symbol. */
static bool lookup(void *fn, const char *name, const char *backend)
{
    void *f = dlsym(RTLD_DEFAULT, name);
    if (!f)
        fprintf(stderr, "bench: %s: %s not found (is the library preloaded?)\n", backend, name);
    memcpy(fn, &f, sizeof f);
    return f != NULL;
}

const lt_ops *bench_lt_ops_peer(const char *backend)
{
    if (strncmp(backend, "mimalloc", 8) == 0) {
        bool ok = lookup(&mi_new_, "mi_heap_new", backend) &&
                  lookup(&mi_malloc_, "mi_heap_malloc", backend) &&
                  lookup(&mi_destroy_, "mi_heap_destroy", backend) &&
                  lookup(&mi_delete_, "mi_heap_delete", backend);
        return ok ? &ops_mi : NULL;
    }
    if (strncmp(backend, "jemalloc", 8) == 0) {
        bool ok = lookup(&je_ctl_, "mallctl", backend) &&
                  lookup(&je_nametomib_, "mallctlnametomib", backend) &&
                  lookup(&je_bymib_, "mallctlbymib", backend) &&
                  lookup(&je_mallocx_, "mallocx", backend) &&
                  lookup(&je_dallocx_, "dallocx", backend);
        if (ok && je_nametomib_("arena.0.destroy", je_destroy_mib, &je_destroy_miblen) != 0) {
            fprintf(stderr, "bench: %s: no arena.<i>.destroy\n", backend);
            ok = false;
        }
        return ok ? &ops_je : NULL;
    }
    fprintf(stderr, "bench: %s has no groups (heaps or arenas)\n", backend);
    return NULL;
}
