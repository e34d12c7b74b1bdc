/* SPDX-License-Identifier: MIT */
/* The library's own version, compiled in here: a program built against one header may run with a
 * newer library of the same SONAME, and these calls tell it which one it got. */
#include "tslab.h"

const char *tslab_version(void) { return TSLAB_VERSION_STRING; }

uint32_t tslab_version_number(void) { return TSLAB_VERSION_NUMBER; }
