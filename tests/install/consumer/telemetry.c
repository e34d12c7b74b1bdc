/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tslab.h>
#include <tslab_telemetry.h>

int main(void)
{
    tslab *a = tslab_create(&(tslab_config){.name = "installed"});
    char *text = NULL;
    size_t len = 0;
    int r = tslab_metrics_render(&a, 1, TSLAB_FORMAT_PROMETHEUS, &text, &len);
    int ok = r == 0 && text && strstr(text, "tslab_allocations_total{allocator=\"installed\"");
    free(text);
    tslab_destroy(a);
    puts(ok ? "telemetry consumer ok" : "telemetry consumer FAILED");
    return ok ? 0 : 1;
}
