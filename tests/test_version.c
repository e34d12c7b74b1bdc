/* SPDX-License-Identifier: MIT */
/* The loaded library reports its version, in both forms, and it is the version CMake configured
 * (read from tslab.h) and this header's. */
#include "testhelper.h"

#include <tslab.h>

static void version_agrees(void)
{
    printf("header %s, library %s (%u)\n", TSLAB_VERSION_STRING, tslab_version(),
           (unsigned)tslab_version_number());
    CHECK(strcmp(tslab_version(), TSLAB_VERSION_STRING) == 0);
    CHECK(strcmp(tslab_version(), TSLAB_EXPECTED_VERSION) == 0);
    CHECK_EQ_U(tslab_version_number(), TSLAB_VERSION_NUMBER);
    uint32_t n = tslab_version_number();
    char s[40];
    snprintf(s, sizeof s, "%u.%u.%u", (unsigned)(n / 1000000), (unsigned)(n / 1000 % 1000),
             (unsigned)(n % 1000));
    CHECK(strcmp(s, tslab_version()) == 0);
    CHECK(TSLAB_VERSION_NUMBER > 1000000); /* newer than 1.0.0 */
}

TEST_MAIN(T(version_agrees))
