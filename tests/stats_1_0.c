/* SPDX-License-Identifier: MIT */
/* A caller built against 1.0: it does not include the current tslab.h, declares tslab_stats_read
 * as 1.0's header did (with 1.0's struct), and so calls the exported 1.0 symbol. */
#include "stats_1_0.h"

int tslab_stats_read(struct tslab *a, stats_1_0 *out);

int stats_1_0_read(struct tslab *a, stats_1_0 *out) { return tslab_stats_read(a, out); }
