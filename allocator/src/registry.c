/* SPDX-License-Identifier: MIT */
/* The process-wide registry of live instances: tag -> instance, and the uids that tell a reused
 * tag from the instance that held it before. The lowest layer of the core: it knows instances
 * only as pointers and calls nothing above it. */
#include "internal.h"

/* Entries are written under `registry_lock` and read with acquire loads by rejection paths that
 * only need to know whether a tag is live. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(tslab *) registry[TSLAB_INSTANCES_MAX + 1];
static uint32_t registry_cursor; /* next tag to try: tags are reused round-robin, as late as
                                    possible */
static uint64_t registry_uid;    /* guarded by registry_lock */

void tslab__registry_lock(void) { pthread_mutex_lock(&registry_lock); }
void tslab__registry_unlock(void) { pthread_mutex_unlock(&registry_lock); }

tslab *tslab__registry_get(uint32_t tag)
{
    if (tag == 0 || tag > TSLAB_INSTANCES_MAX)
        return NULL;
    return atomic_load_explicit(&registry[tag], memory_order_acquire);
}

bool tslab__tag_is_live(uint32_t tag, const tslab *self)
{
    tslab *o = tslab__registry_get(tag);
    return o != NULL && o != self;
}

uint32_t tslab__registry_add(tslab *a)
{
    uint32_t tag = 0;
    pthread_mutex_lock(&registry_lock);
    for (uint32_t k = 0; k < TSLAB_INSTANCES_MAX; k++) {
        uint32_t t = (registry_cursor + k) % TSLAB_INSTANCES_MAX + 1;
        if (atomic_load_explicit(&registry[t], memory_order_relaxed) == NULL) {
            tag = t;
            break;
        }
    }
    if (tag != 0) {
        registry_cursor = tag % TSLAB_INSTANCES_MAX;
        /* Every field the tag and uid decide, before anyone can find `a`. */
        a->tag = tag;
        a->tag_base = tag << TSLAB__CLS_BITS;
        a->tls_off = (tag & (TSLAB__TLS_FAST - 1)) * (uint32_t)sizeof(tslab__tls_entry);
        a->uid = ++registry_uid;
        /* Release: whoever finds `a` here sees it fully set up (the caller filled it first). */
        atomic_store_explicit(&registry[tag], a, memory_order_release);
    }
    pthread_mutex_unlock(&registry_lock);
    return tag;
}

void tslab__registry_remove(uint32_t tag)
{
    atomic_store_explicit(&registry[tag], NULL, memory_order_release);
}
