/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <string.h>
#include <tslab.h>

int main(void)
{
    tslab *a = tslab_create(NULL);
    tslab_handle h;
    void *p = tslab_alloc(a, 100, &h);
    int ok = a && p && tslab_free(a, h) && !tslab_free(a, h) &&
             strcmp(tslab_version(), TSLAB_VERSION_STRING) == 0;
    tslab_destroy(a);
    printf("consumer %s %s\n", ok ? "ok" : "FAILED", tslab_version());
    return ok ? 0 : 1;
}
