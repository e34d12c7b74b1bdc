/* SPDX-License-Identifier: MIT */
/* The exporter configuration ABI: a program built against 1.0 passes 1.0's shorter
 * tslab_exporter_config to the exported 1.0 tslab_exporter_start, which reads exactly it (the
 * struct sits right before an inaccessible page) and serves with the defaults of what it lacks;
 * a newer caller's unknown fields must be zero. */
#include "testhelper.h"

#include <errno.h>
#include <tslab_telemetry.h>

#include "exporter_1_0.h"
#include "testhttp.h"

_Static_assert(sizeof(exporter_config_1_0) == 64, "1.0's tslab_exporter_config is 64 bytes");

static void caller_1_0(void)
{
    tslab *a = tslab_create(NULL);
    REQUIRE(a != NULL);
    tslab_exporter *e = NULL;
    CHECK_EQ_I(exporter_1_0_start(&a, 1, &e), 0);
    REQUIRE(e != NULL);
    CHECK(tslab_exporter_port(e) != 0);
    http_reply r;
    REQUIRE(http_get(tslab_exporter_port(e), "/metrics", &r) == 0);
    CHECK_EQ_I(r.status, 200);
    CHECK_CONTAINS(r.body, "tslab_allocations_total");
    http_free(&r);
    tslab_exporter_stop(e);
    tslab_destroy(a);
}

static void sizes_checked(void)
{
    tslab_exporter_config c = {0};
    tslab_exporter *e = NULL;
    CHECK_EQ_I(tslab_exporter_start_sized(&c, 63, &e), -EINVAL);
    CHECK(e == NULL);
    struct {
        tslab_exporter_config c;
        uint64_t future[2];
    } newer;
    memset(&newer, 0, sizeof newer);
    CHECK_EQ_I(tslab_exporter_start_sized(&newer.c, sizeof newer, &e), 0);
    tslab_exporter_stop(e);
    e = NULL;
    newer.future[1] = 7;
    CHECK_EQ_I(tslab_exporter_start_sized(&newer.c, sizeof newer, &e), -EINVAL);
    CHECK(e == NULL);
}

TEST_MAIN(T(caller_1_0), T(sizes_checked))
