/* The exporter's debug endpoints (off unless tslab_exporter_config.debug_endpoints): their
 * routes and bodies. http.c only dispatches here and sends what comes back, so this file knows
 * nothing of libmicrohttpd.
 *   /debug/pprof/heap  the sampled heap profile, gzip-compressed profile.proto (as Go serves it:
 *                      the body itself is gzip, not a Content-Encoding), for go tool pprof
 *   /debug/rejections  the last rejected frees of each allocator (tslab_rejections_read) as
 *                      JSON, their stacks as addresses and, where dladdr finds an exported
 *                      symbol covering one, its function name */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <cJSON.h>

#include "telemetry.h"

static bool add_hex(cJSON *obj, const char *key, uint64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "0x%" PRIx64, v);
    return cJSON_AddStringToObject(obj, key, tmp) != NULL;
}

static bool add_raw_u64(cJSON *obj, const char *key, uint64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    return cJSON_AddRawToObject(obj, key, tmp) != NULL;
}

static const char *const reason_names[] = {"invalid", "stale", "double", "foreign"};

/* One rejection: seq, time_ns, reason, class (object size, null when unattributed), handle or
 * pointer (hex), stack [{address, function}], innermost first. */
static bool add_rejection(cJSON *list, tslab *a, const tslab_rejection *r)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddItemToArray(list, o)) {
        cJSON_Delete(o);
        return false;
    }
    size_t size = tslab_class_size(a, r->class_index);
    bool ok = add_raw_u64(o, "seq", r->seq) && add_raw_u64(o, "time_ns", r->time_ns) &&
              cJSON_AddStringToObject(o, "reason",
                                      r->reason >= 0 && r->reason < 4 ? reason_names[r->reason]
                                                                      : "invalid") != NULL &&
              (size ? add_raw_u64(o, "class", size) : cJSON_AddNullToObject(o, "class") != NULL) &&
              add_hex(o, r->by_pointer ? "pointer" : "handle", r->value);
    cJSON *stack = ok ? cJSON_AddArrayToObject(o, "stack") : NULL;
    for (uint32_t i = 0; stack != NULL && ok && i < r->depth; i++) {
        cJSON *f = cJSON_CreateObject();
        if (f == NULL || !cJSON_AddItemToArray(stack, f)) {
            cJSON_Delete(f);
            return false;
        }
        const char *fn =
            tslab__function_at(r->frames[i] - 1); /* the call, not the return address */
        ok = add_hex(f, "address", r->frames[i]) &&
             (fn ? cJSON_AddStringToObject(f, "function", fn)
                 : cJSON_AddNullToObject(f, "function")) != NULL;
    }
    return ok && stack != NULL;
}

static int render_rejections(tslab *const *allocs, size_t n, tslab__debug_body *out)
{
    tslab_rejection *r = malloc(TSLAB_REJECTIONS_MAX * sizeof *r);
    cJSON *root = cJSON_CreateObject();
    cJSON *list = root ? cJSON_AddArrayToObject(root, "allocators") : NULL;
    bool ok = r != NULL && list != NULL;
    for (size_t k = 0; ok && k < n; k++) {
        cJSON *ao = cJSON_CreateObject();
        if (ao == NULL || !cJSON_AddItemToArray(list, ao)) {
            cJSON_Delete(ao);
            ok = false;
            break;
        }
        cJSON *rl = cJSON_AddStringToObject(ao, "name", tslab_name(allocs[k])) != NULL
                        ? cJSON_AddArrayToObject(ao, "rejections")
                        : NULL;
        size_t m = tslab_rejections_read(allocs[k], r, TSLAB_REJECTIONS_MAX);
        ok = rl != NULL;
        for (size_t i = 0; ok && i < m; i++)
            ok = add_rejection(rl, allocs[k], &r[i]);
    }
    free(r);
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (text == NULL)
        return -ENOMEM;
    /* Copied so that the caller frees with free() whatever hooks cJSON was given. */
    out->len = strlen(text);
    out->data = malloc(out->len + 1);
    if (out->data != NULL)
        memcpy(out->data, text, out->len + 1);
    cJSON_free(text);
    out->content_type = "application/json";
    return out->data != NULL ? 0 : -ENOMEM;
}

tslab__debug_kind tslab__debug_route(const char *url)
{
    if (strcmp(url, "/debug/pprof/heap") == 0)
        return TSLAB__DEBUG_HEAP;
    if (strcmp(url, "/debug/rejections") == 0)
        return TSLAB__DEBUG_REJECTIONS;
    return TSLAB__DEBUG_NONE;
}

int tslab__debug_render(tslab__debug_kind kind, tslab *const *allocs, size_t n,
                        tslab__debug_body *out)
{
    memset(out, 0, sizeof *out);
    switch (kind) {
    case TSLAB__DEBUG_HEAP:
        out->content_type = "application/octet-stream";
        out->disposition = "attachment; filename=\"heap\"";
        return tslab__pprof_render(allocs, n, &out->data, &out->len);
    case TSLAB__DEBUG_REJECTIONS: return render_rejections(allocs, n, out);
    case TSLAB__DEBUG_NONE: break;
    }
    return -EINVAL;
}
