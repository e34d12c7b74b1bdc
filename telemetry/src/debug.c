/* The exporter's debug endpoints (off unless tslab_exporter_config.debug_endpoints): their
 * routes and bodies. http.c only dispatches here and sends what comes back, so this file knows
 * nothing of libmicrohttpd.
 *   /debug/pprof/heap  the sampled heap profile, gzip-compressed profile.proto (as Go serves it:
 *                      the body itself is gzip, not a Content-Encoding), for go tool pprof */
#include <errno.h>
#include <stdlib.h>

#include "telemetry.h"

tslab__debug_kind tslab__debug_route(const char *url)
{
    if (strcmp(url, "/debug/pprof/heap") == 0)
        return TSLAB__DEBUG_HEAP;
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
    case TSLAB__DEBUG_NONE: break;
    }
    return -EINVAL;
}
