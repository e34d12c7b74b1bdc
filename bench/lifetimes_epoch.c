/* SPDX-License-Identifier: MIT */
/* Workload j (lifetimes.h) on temporal-slab with epochs (backend tslab-h-epoch): one epoch per
 * group, objects allocated with tslab_alloc_epoch and freed with the ordinary tslab_free.
 * Survivors are allocated with plain tslab_alloc, in the default epoch: the program knows they
 * outlive their request, the same knowledge the mimalloc and jemalloc variants use.
 *
 * j.lifetimes ends each batch with tslab_epoch_destroy once its requests have freed their
 * objects: destroy is the analogue of mi_heap_destroy and arena.<i>.destroy (all three free
 * whatever is left and retire the group at once); tslab_epoch_close would be the analogue of
 * mi_heap_delete (live objects stay valid). With nothing left the two free the same, but a
 * destroyed epoch's id retires at once, where a closed one counts against TSLAB_EPOCHS_MAX until
 * its last slab leaves. j.survivor closes each epoch once allocated: its objects stay live. */
#include "lifetimes.h"

#define LT(name) name##_epoch
#define LT_OPEN(A) tslab_epoch_open(A, "lifetimes")
#define LT_GALLOC(A, g, size, tokp) tslab_alloc_epoch(A, (tslab_epoch)(g), size, tokp)
#define LT_GFREE(A, tok) tslab_free(A, tok)
#define LT_ALLOC(A, size, tokp) tslab_alloc(A, size, tokp)
#define LT_FREE(A, tok) tslab_free(A, tok)
#define LT_END(A, g) lt_rc(tslab_epoch_destroy(A, (tslab_epoch)(g)))
#define LT_CLOSE(A, g) lt_rc(tslab_epoch_close(A, (tslab_epoch)(g)))
#include "lifetimes.inc.h"

const lt_ops bench_lt_ops_epoch = LT_OPS(epoch);
