/* SPDX-License-Identifier: MIT */
/* The smallest service with telemetry: one allocator, the exporter on 127.0.0.1, some work.
 *
 * usage: tslab-example-minimal [PORT [SECONDS]]   (PORT 0 = any free port; default 0 and 0)
 * It prints the URL, allocates and frees a few thousand objects, prints its own /metrics text
 * (rendered in-process with tslab_metrics_render), keeps serving for SECONDS, and stops. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tslab.h"
#include "tslab_telemetry.h"

int main(int argc, char **argv)
{
    unsigned port = argc > 1 ? (unsigned)atoi(argv[1]) : 0;
    unsigned seconds = argc > 2 ? (unsigned)atoi(argv[2]) : 0;

    tslab *orders = tslab_create(&(tslab_config){.name = "orders"});
    if (orders == NULL)
        return 1;

    /* The three lines a service adds: */
    tslab_exporter *exporter;
    tslab_exporter_config cfg = {
        .port = (uint16_t)port, .allocators = &orders, .allocator_count = 1};
    int err = tslab_exporter_start(&cfg, &exporter);

    if (err != 0) {
        fprintf(stderr, "exporter: %s\n", tslab_strerror(err));
        return 1;
    }
    printf("listening on http://127.0.0.1:%u/\n", (unsigned)tslab_exporter_port(exporter));

    tslab_handle h[1000];
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 1000; i++)
            tslab_alloc(orders, 100, &h[i]);
        for (int i = 0; i < 1000; i++)
            tslab_free(orders, h[i]);
    }

    char *text;
    size_t len;
    if (tslab_metrics_render(&orders, 1, TSLAB_FORMAT_PROMETHEUS, &text, &len) == 0) {
        fwrite(text, 1, len, stdout);
        free(text);
    }
    fflush(stdout);
    sleep(seconds);

    tslab_exporter_stop(exporter);
    tslab_destroy(orders);
    return 0;
}
