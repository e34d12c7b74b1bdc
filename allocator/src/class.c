/* SPDX-License-Identifier: MIT */
/* Size-class geometry: how a class lays out its slots, slabs and metadata. */
#include "internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint32_t log2_floor(uint64_t x) { return 63u - (uint32_t)__builtin_clzll(x); }

size_t tslab_slab_capacity(size_t object_size, size_t slab_bytes)
{
    if (slab_bytes == 0)
        slab_bytes = TSLAB__DEFAULT_SLAB_BYTES;
    object_size = (object_size + 7) & ~(size_t)7;
    if (object_size == 0 || object_size >= slab_bytes)
        return 1;
    return (size_t)1 << log2_floor(slab_bytes / object_size);
}

int tslab__class_init(tslab *a, tslab__class *c, uint32_t index, uint32_t size, size_t slab_target,
                      size_t class_max_bytes)
{
    memset(c, 0, sizeof *c);
    /* First, so that tslab__class_fini may always destroy it, whatever fails below. */
    if (pthread_mutex_init(&c->lock, NULL) != 0)
        return -ENOMEM;
    c->index = index;
    c->size = size;
    c->per_slab = (uint32_t)tslab_slab_capacity(size, slab_target);
    c->slot_shift = log2_floor(c->per_slab);
    /* Slots are laid out back to back, `pitch` bytes apart, so a slot index and an address map
     * to each other with one multiply (the fast paths) or one multiply-high (pointer lookups).
     * A slab is per_slab slots and a whole number of pages, so that its pages can go back to the
     * OS without touching a neighbour: when per_slab * size is not a page multiple, the pitch is
     * padded (a multiple of 8, of 16 when size is), which costs the same memory as rounding the
     * slab itself up to pages. */
    uint32_t align = size % 16 == 0 ? 16 : 8;
    size_t slab_bytes = ((size_t)c->per_slab * size + a->page - 1) / a->page * a->page;
    size_t pitch = (slab_bytes / c->per_slab + align - 1) / align * align;
    while (pitch * c->per_slab % a->page != 0)
        pitch += align;
    c->pitch = (uint32_t)pitch;
    c->slab_bytes = (uint32_t)(pitch * c->per_slab);
    c->bitmap_words = (c->per_slab + 63) / 64;

    /* The multiply-high by ceil(2^64 / pitch) is exact for every multiple of the pitch below
     * 2^64 / pitch (the error term times the offset stays under 2^64); the class's objects are
     * capped below that, far beyond any real reservation. */
    c->div_magic = UINT64_MAX / pitch + 1;
    uint64_t by_bytes = class_max_bytes / c->slab_bytes;
    uint64_t by_index = (uint64_t)TSLAB_CLASS_SLOTS_MAX >> c->slot_shift;
    uint64_t by_magic = (UINT64_MAX / pitch) / c->slab_bytes;
    uint64_t max_slabs = by_bytes < by_index ? by_bytes : by_index;
    if (max_slabs > by_magic)
        max_slabs = by_magic;
    if (max_slabs == 0)
        return -EINVAL;
    c->max_slabs = (uint32_t)max_slabs;

    /* A thread keeps about 256 KiB of a class, between 4 and 64 slots, moved in half-batches. */
    uint32_t cap = (uint32_t)((256u * 1024u) / size);
    c->tcache_cap = cap < 4 ? 4 : cap > TSLAB__TC_MAX ? TSLAB__TC_MAX : cap;
    c->batch = c->tcache_cap / 2;

    c->partial.head = c->cached.head = c->released.head = TSLAB__NIL;
    c->partial.tail = c->cached.tail = c->released.tail = TSLAB__NIL;
    int r;
    /* The object region is carved out of the instance's single reservation by tslab_create. */
    c->objects.reserved = ((size_t)max_slabs * c->slab_bytes + a->page - 1) / a->page * a->page;
    if ((r = tslab__area_reserve(a, &c->meta_state, max_slabs * c->per_slab * 4)) != 0 ||
        (r = tslab__area_reserve(a, &c->meta_slab, max_slabs * sizeof(tslab__slab))) != 0 ||
        (r = tslab__area_reserve(a, &c->meta_bits, max_slabs * c->bitmap_words * 8)) != 0 ||
        (r = tslab__area_reserve(a, &c->meta_rbits, max_slabs * c->bitmap_words * 8)) != 0 ||
        (r = tslab__area_reserve(a, &c->meta_owner, max_slabs * sizeof(uint16_t))) != 0 ||
        (r = tslab__area_reserve(a, &c->meta_own, TSLAB__IDS * sizeof(tslab__list))) != 0 ||
        (r = tslab__area_reserve(a, &c->meta_sepoch, max_slabs * sizeof(uint16_t))) != 0 ||
        (r = tslab__area_reserve(a, &c->meta_elist,
                                 (TSLAB_EPOCHS_MAX + 1) * sizeof(tslab__list))) != 0)
        return r;
    c->state = (_Atomic uint32_t *)(void *)c->meta_state.base;
    c->slabs = (tslab__slab *)(void *)c->meta_slab.base;
    c->bits = (uint64_t *)(void *)c->meta_bits.base;
    c->rbits = (uint64_t *)(void *)c->meta_rbits.base;
    c->owner = (_Atomic uint16_t *)(void *)c->meta_owner.base;
    c->own = (tslab__list *)(void *)c->meta_own.base;
    c->sepoch = (_Atomic uint16_t *)(void *)c->meta_sepoch.base;
    c->elist = (tslab__list *)(void *)c->meta_elist.base;
    if (tslab_config_quarantine) {
        c->quarantine = calloc(TSLAB_QUARANTINE_SLOTS, sizeof(uint64_t));
        if (c->quarantine == NULL)
            return -ENOMEM;
    }
    return 0;
}

void tslab__class_fini(tslab *a, tslab__class *c)
{
    tslab__area_release(a, &c->meta_state);
    tslab__area_release(a, &c->meta_slab);
    tslab__area_release(a, &c->meta_bits);
    tslab__area_release(a, &c->meta_rbits);
    tslab__area_release(a, &c->meta_owner);
    tslab__area_release(a, &c->meta_own);
    tslab__area_release(a, &c->meta_sepoch);
    tslab__area_release(a, &c->meta_elist);
    free(c->quarantine);
    c->quarantine = NULL;
    pthread_mutex_destroy(&c->lock);
}

int tslab__class_of_size(const tslab *a, size_t size)
{
    if (size - 1 < a->lut_limit)
        return a->lut[(size - 1) >> 3];
    if (size == 0 || size > a->max_size)
        return -1;
    for (uint32_t i = 0; i < a->nclasses; i++)
        if (a->cls[i].size >= size)
            return (int)i;
    return -1;
}
