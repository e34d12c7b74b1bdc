/* Function names for code addresses (the pprof profile, /debug/rejections), from the dynamic
 * symbol tables the program exports (link with -rdynamic to export its own). */
#include <dlfcn.h>
#include <link.h>

#include "telemetry.h"

const char *tslab__function_at(uintptr_t addr)
{
    Dl_info di;
    const ElfW(Sym) *sym = NULL;
    if (dladdr1((void *)addr, &di, (void **)&sym, RTLD_DL_SYMENT) == 0 || di.dli_sname == NULL ||
        di.dli_saddr == NULL)
        return NULL;
    /* dladdr names the nearest exported symbol below addr: for a static function (or a clone
     * such as f.constprop.0) that is someone else's, which its size gives away. */
    if (sym != NULL && sym->st_size != 0 && addr >= (uintptr_t)di.dli_saddr + sym->st_size)
        return NULL;
    return di.dli_sname;
}
