#include <stdio.h>
#include <tslab.h>

int main(void)
{
    tslab *a = tslab_create(NULL);
    tslab_handle h;
    void *p = tslab_alloc(a, 100, &h);
    int ok = a && p && tslab_free(a, h) && !tslab_free(a, h);
    tslab_destroy(a);
    puts(ok ? "consumer ok" : "consumer FAILED");
    return ok ? 0 : 1;
}
