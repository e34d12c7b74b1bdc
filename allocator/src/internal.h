/* SPDX-License-Identifier: MIT */
/* The map of the core: shared structures, the handle layout, and the prototypes of every
 * internal function, grouped under the file that defines it.
 *
 * Design in brief (README.md "Design" has the long form):
 * - Each class owns one address-space reservation in which slots lie back to back, `pitch` bytes
 *   apart; slab i is slots [i * per_slab, (i + 1) * per_slab), a whole number of pages. A pointer
 *   maps to (class, slot) by arithmetic alone (a shift and a multiply-high), and a slot index to
 *   an address by one multiply, so no lookup ever dereferences caller-supplied memory.
 * - Metadata (per-slot state words, slab descriptors, free bitmaps) lives in separate reservations
 *   that are committed as the class grows and never decommitted, so madvise cannot zero it and an
 *   overflowing object cannot reach it.
 * - A slot is owned by exactly one of: its slab (bit set in the slab's free bitmap, under the
 *   class lock), one thread's cache (an entry in that thread's stack), or the user (state word
 *   LIVE). Ownership moves slab -> thread cache in batches under the class lock and thread cache
 *   -> user on alloc (no atomic RMW: the slot is exclusively the thread's).
 * - Slabs belong to a thread while it allocates from them (`owner`, a small per-instance id), so
 *   two threads never share a slab's state-word lines. The owner frees its own slabs' slots with
 *   a load and a store: it is the only thread that does so without a CAS. Any other thread frees
 *   with one CAS on the state word (LIVE -> FREE|RFREE), which makes racing non-owner frees exact,
 *   and hands the slot back to the owner through the slab's remote bitmap (batched, under the
 *   class lock). The owner validates each remote slot before reusing it: a slot whose word no
 *   longer carries RFREE was also freed by the owner's plain store in a race, so the remote copy
 *   is a duplicate and is dropped. Only the owner (or, for a slab nobody owns, anyone holding the
 *   class lock after the last owner let go) validates, so the owner's plain store is always
 *   visible to the validation: a slot is never handed out twice.
 * - In an instance created with exact_frees the owner frees with a CAS too (LIVE -> FREE, no
 *   RFREE), on the slow path: a thread cache's `limit` stays 0, so the fast path, whose plain
 *   store that mode rules out, never frees. Slabs still have owners (so threads still do not share
 *   state-word lines), remote frees still go through the remote bitmap, and with no plain store
 *   anywhere the owner's check never finds a duplicate.
 * - A slab is recycled only when its bitmap holds every slot, i.e. every slot is owned by the
 *   slab: no thread can be allocating from it, so there is no "stale current slab" to race with.
 */
#ifndef TSLAB_INTERNAL_H
#define TSLAB_INTERNAL_H

#include "tslab.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define tslab_likely(x) __builtin_expect(!!(x), 1)
#define tslab_unlikely(x) __builtin_expect(!!(x), 0)
#define TSLAB_NOINLINE __attribute__((noinline))
#define TSLAB_COLD __attribute__((cold, noinline))
/* Hides from the compiler how pointer p was computed. Used once per fast path on the thread's
 * class cache, so every field is addressed from that one register: left alone, GCC re-derives
 * each field's address from the cache base and class index, which costs registers (pushes and
 * pops) and instructions on the hottest paths. */
#define tslab__opaque(p) __asm__("" : "+r"(p))

/* ---- Compile-time knobs: defaulted here, tested as constants so every variant compiles ---- */
#ifndef TSLAB_COUNTERS
#define TSLAB_COUNTERS 1 /* per-thread counters on the fast path; 0 only to measure their cost */
#endif
#ifndef TSLAB_VALGRIND
#define TSLAB_VALGRIND 0 /* memcheck client requests describing objects as heap blocks */
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TSLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TSLAB_ASAN 1
#endif
#endif
#ifndef TSLAB_ASAN
#define TSLAB_ASAN 0
#endif
#if defined(__SANITIZE_THREAD__)
#define TSLAB_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSLAB_TSAN 1
#endif
#endif
#ifndef TSLAB_TSAN
#define TSLAB_TSAN 0
#endif
/* How a thread bumps a counter only it writes (tslab__bump). On x86-64 it is one `addq $1, mem`:
 * an aligned 8-byte store is single-copy atomic there and every store is a release, so a reader's
 * acquire load sees exactly what the C11 load + release store would show it, for one instruction
 * instead of three (compilers do not fuse an atomic load and store into one add). TSan builds keep
 * the C11 form so that TSan checks the ordering rather than trusting it, as do other targets. */
#if defined(__x86_64__) && !TSLAB_TSAN
#define TSLAB__X86_BUMP 1
#define TSLAB__ADD1(c) __asm__ volatile("addq $1, %0" : "+m"(*(uint64_t *)(void *)(c)))
#define TSLAB__MOV64(p, v) __asm__ volatile("movq %1, %0" : "=m"(*(uint64_t *)(void *)(p)) : "r"(v))
#else
#define TSLAB__X86_BUMP 0
#define TSLAB__ADD1(c) ((void)(c))
#define TSLAB__MOV64(p, v) ((void)(p), (void)(v))
#endif
static const bool tslab_config_counters = TSLAB_COUNTERS;
static const bool tslab_config_x86_bump = TSLAB__X86_BUMP;
/* Freed slots wait in a per-class FIFO before reuse so that a use-after-free hits poisoned
 * memory rather than the next owner's object. */
static const bool tslab_config_quarantine = TSLAB_ASAN || TSLAB_VALGRIND;
/* Describe objects to ASan or memcheck (poison free slots, heap blocks). */
static const bool tslab_config_sanitize = TSLAB_ASAN || TSLAB_VALGRIND;
#define TSLAB_QUARANTINE_SLOTS 256
#define TSLAB__DEFAULT_SLAB_BYTES ((size_t)64 * 1024)

/* ---- Handle layout (internal; the public contract is only "opaque, 0 invalid") ----
 *   bits  0..21  generation of the slot when it was handed out
 *   bits 22..47  slot index within the class (slab << slot_shift | slot)
 *   bits 48..53  class index
 *   bits 54..62  instance tag, 1..TSLAB_INSTANCES_MAX (0 never used, so handle 0 is invalid)
 *   bit  63      parity of bits 22..62: bits 22..63 of a valid handle have an even number of
 *                set bits, so a flipped index, class or tag bit is rejected before a slot is
 *                looked at.
 * The generation field advances by TSLAB__GEN_STEP (3) per free, not by one. A flipped
 * generation bit of a live handle is caught by the slot's state word, which holds exactly one
 * generation; a flipped bit of a *stale* handle must not land on the slot's current generation,
 * and with a step of one it would: flipping bit 0 of a handle stale by one reuse whose generation
 * was even gives exactly the new owner's handle. Two field values k steps apart differ by 3k
 * (mod 2^22), and one flipped bit moves a value by +-2^j, so a stale handle with one flipped bit
 * names the current object only when 3k = +-2^j (mod 2^22): never for k < 2^20, and for 44 values
 * of k per period beyond. 3 is the best odd step (every odd step aliases at k = 2^20), it is odd
 * so a slot still runs through all 2^22 values before its generation wraps, and the next handle
 * stays one add with no parity to recompute (tslab__handle_next, on every free). Covering the
 * generation by the parity instead would have cost every free about 7 instructions to refold it.
 */
#define TSLAB__GEN_BITS TSLAB_GENERATION_BITS
#define TSLAB__IDX_BITS 26
#define TSLAB__CLS_BITS 6
#define TSLAB__TAG_BITS 9
#define TSLAB__GEN_MASK ((UINT32_C(1) << TSLAB__GEN_BITS) - 1)
#define TSLAB__GEN_STEP 3u
/* 3 * TSLAB__GEN_STEP_INV == 1 (mod 2^22): turns a distance between generation fields back into
 * a count of frees (tslab__reject_reason). */
#define TSLAB__GEN_STEP_INV 0x2AAAABu
_Static_assert(((TSLAB__GEN_STEP * TSLAB__GEN_STEP_INV) & TSLAB__GEN_MASK) == 1,
               "generation step inverse");
#define TSLAB__IDX_MASK ((UINT32_C(1) << TSLAB__IDX_BITS) - 1)
#define TSLAB__CLS_SHIFT (TSLAB__GEN_BITS + TSLAB__IDX_BITS)
#define TSLAB__TAG_SHIFT (TSLAB__CLS_SHIFT + TSLAB__CLS_BITS)
#define TSLAB__TAG_MASK ((1u << TSLAB__TAG_BITS) - 1)

_Static_assert(TSLAB__GEN_BITS + TSLAB__IDX_BITS + TSLAB__CLS_BITS + TSLAB__TAG_BITS == 63,
               "handle layout must fill 64 bits");
_Static_assert((1u << TSLAB__CLS_BITS) >= TSLAB_CLASSES_MAX, "class bits");
_Static_assert((1u << TSLAB__TAG_BITS) > TSLAB_INSTANCES_MAX, "tag bits");
_Static_assert((UINT32_C(1) << TSLAB__IDX_BITS) == TSLAB_CLASS_SLOTS_MAX, "index bits");

/* Slot state word: bit 0 LIVE, bits 1..22 generation, bit 23 RFREE (freed by a CAS of a thread
 * other than the slab's owner; cleared by the next allocation). A LIVE word is changed by the
 * slab owner's plain store or by another thread's CAS; a FREE word only by the thread that owns
 * the slot (cache or slab). */
#define TSLAB__LIVE 1u
#define TSLAB__RFREE (1u << 23)
/* SAMPLED (bit 24) is set together with LIVE on an allocation the sampler recorded, and only
 * then: every free replaces the word with one that has neither. Both free fast paths compare the
 * word against an unsampled LIVE one, so a sampled object's free fails them and takes the slow
 * path, which moves its record (sample.c); nothing else reads the bit (state_gen masks it, and the
 * slab-side checks only accept freed words). */
#define TSLAB__SAMPLED (1u << 24)
_Static_assert(TSLAB__GEN_BITS + 2 <= 24, "state word: LIVE, generation, RFREE");
static inline uint32_t tslab__state_gen(uint32_t s) { return (s >> 1) & TSLAB__GEN_MASK; }
/* The generation field a slot carries after one more free. */
static inline uint32_t tslab__gen_next(uint32_t gen)
{
    return (gen + TSLAB__GEN_STEP) & TSLAB__GEN_MASK;
}
static inline uint32_t tslab__state_freed(uint32_t gen) { return tslab__gen_next(gen) << 1; }

/* The handle of slot idx at generation gen; `top` is the instance's tag << CLS_BITS | class. */
static inline tslab_handle tslab__handle_make(uint32_t top, uint32_t idx, uint32_t gen)
{
    uint64_t h = ((uint64_t)top << TSLAB__CLS_SHIFT) | ((uint64_t)idx << TSLAB__GEN_BITS) | gen;
    /* Parity is linear in XOR, so the fields' parity can be folded in 32 bits: fewer steps
     * than the parity of the assembled word. */
    return h | (uint64_t)__builtin_parity(idx ^ top) << 63;
}

/* True when bits 22..63 of h have odd parity: h is not a handle (a bit outside the generation
 * is wrong). */
static inline bool tslab__handle_odd(uint64_t h)
{
    return __builtin_parityll(h >> TSLAB__GEN_BITS);
}

/* True when h cannot be one of a's handles for a class below nclasses (wrong tag, class out of
 * range, or odd parity); else *ci is its class. `tag_base` is the instance's tag << CLS_BITS:
 * tag and class form one 15-bit field, which is below nclasses after subtracting tag_base
 * exactly when the tag matches and the class is in range (a smaller tag wraps to a huge value).
 * One subtraction and one compare on the free fast path. */
static inline bool tslab__handle_bad(uint64_t h, uint32_t tag_base, uint32_t nclasses, uint32_t *ci)
{
    uint32_t x = ((uint32_t)(h >> TSLAB__CLS_SHIFT) & 0x7FFFu) - tag_base;
    *ci = x;
    return x >= nclasses || tslab__handle_odd(h);
}

/* Scattered first generation of a slot, different per instance (uid), class and slot, so a handle
 * corrupted in its index, class or tag bits, or a stale handle of a destroyed instance whose tag
 * was reused, names a live object only by a 2^-22 chance. */
static inline uint32_t tslab__initial_gen(uint64_t uid, uint32_t cls, uint32_t idx)
{
    uint64_t x = (uint64_t)idx * 0x9E3779B97F4A7C15ull + cls * 0xBF58476D1CE4E5B9ull +
                 uid * 0x94D049BB133111EBull;
    x ^= x >> 31;
    x *= 0xD6E8FEB86659FD93ull;
    return (uint32_t)(x >> 42) & TSLAB__GEN_MASK;
}

/* ---- Per-thread counters: generated from the public list (THREAD rows only) ---- */
#define TSLAB__SRC_THREAD(x) x
#define TSLAB__SRC_CLASS(x)
#define TSLAB__SRC_DERIVED(x)
#define TSLAB__ONLY_CLASS_THREAD(x)
#define TSLAB__ONLY_CLASS_CLASS(x) x
#define TSLAB__ONLY_CLASS_DERIVED(x)

typedef struct tslab__tcounters {
#define TSLAB__TFIELD(f, src, ...) TSLAB__SRC_##src(_Atomic uint64_t f;)
    TSLAB_CLASS_STATS(TSLAB__TFIELD)
#undef TSLAB__TFIELD
} tslab__tcounters;

/* Class-kept counters and gauges: written under the class lock, read without it. */
typedef struct tslab__ccounters {
#define TSLAB__CFIELD(f, src, ...) TSLAB__ONLY_CLASS_##src(_Atomic uint64_t f;)
    TSLAB_CLASS_STATS(TSLAB__CFIELD)
#undef TSLAB__CFIELD
} tslab__ccounters;

/* Adds n to a counter the calling thread alone writes (as tslab__bump, for a batch: a slow path's
 * count, so the portable form; release for the same reason). */
static inline void tslab__bump_by(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_release);
}
/* Single-writer increment: the owning thread is the only writer, so no lock prefix is needed.
 * Release (both forms, see TSLAB__ADD1) so that a reader that sees a later free count also sees
 * the allocation count that happened before it on another thread (see tslab_stats_read). */
static inline void tslab__bump(_Atomic uint64_t *c)
{
    if (!tslab_config_counters)
        return;
    if (tslab_config_x86_bump)
        TSLAB__ADD1(c);
    else
        tslab__bump_by(c, 1);
}
/* The owner's store of an entry of its own cache stack (tslab__tclass.slots), which the
 * idle-reclaim collector may read (reclaim.c): relaxed, and on x86-64 (not TSan) one `movq` in
 * asm, as for tslab__bump: GCC computes the address of a C11 atomic store in a register rather
 * than folding the field's offset into the move, one instruction more on the free fast path. An
 * aligned 8-byte store is single-copy atomic there, which is all relaxed promises. */
static inline void tslab__entry_put(_Atomic uint64_t *p, uint64_t v)
{
    if (tslab_config_x86_bump)
        TSLAB__MOV64(p, v);
    else
        atomic_store_explicit(p, v, memory_order_relaxed);
}
/* Increment of a class-kept counter; the caller holds the class lock (single writer). */
static inline void tslab__cadd(_Atomic uint64_t *c, int64_t d)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + (uint64_t)d,
                          memory_order_relaxed);
}

/* ---- Slabs ---- */
enum {
    TSLAB__SLAB_FRESH,
    TSLAB__SLAB_PARTIAL,
    TSLAB__SLAB_FULL,
    TSLAB__SLAB_CACHED,
    TSLAB__SLAB_RELEASING,
    TSLAB__SLAB_RELEASED,
    TSLAB__SLAB_EMPTY
};
#define TSLAB__NIL UINT32_MAX

/* Slab descriptor; every field is guarded by the class lock. A PARTIAL slab (free or remote
 * bits) is on its home list: its owner's list in the class (`own[owner id]`), or the class's
 * partial list when unowned. */
typedef struct tslab__slab {
    uint32_t nfree;      /* bits set in the free bitmap (slots owned by the slab) */
    uint32_t prev, next; /* list links (slab indices) */
    uint16_t state;
    uint16_t hint;       /* first bitmap word that may have a set bit */
    uint32_t rcount;     /* bits set in the remote bitmap (slots waiting for the owner's check) */
    uint64_t idle_since; /* CACHED: the instance clock when the slab joined the cache (decay) */
} tslab__slab;

/* Owner ids: 1..TSLAB__IDS - 1 name a thread cache of the instance; 0 is "unowned". A thread
 * that finds no free id gets TSLAB__NO_ID, which matches no owner: it frees with a CAS. A slab of
 * an explicit epoch is owned by TSLAB__EPOCH_OWNER, which matches no thread either: every free of
 * an epoch object is a CAS (so a destroy racing it has exactly one winner), and its hand-back
 * takes the slot at once (no plain store can be in flight on it). */
#define TSLAB__IDS 1024
#define TSLAB__NO_ID UINT16_MAX
#define TSLAB__EPOCH_OWNER TSLAB__IDS

/* A reservation whose prefix is committed as it grows. */
typedef struct tslab__area {
    char *base;
    size_t reserved;
    size_t committed;
} tslab__area;

typedef struct tslab__list {
    uint32_t head, tail; /* push at the head; the tail is the oldest */
    uint32_t count;
} tslab__list;

/* One size class. The first block is read-only after create and read by the fast paths. */
typedef struct tslab__class {
    char *base;              /* object region: slot i at base + i * pitch */
    _Atomic uint32_t *state; /* one word per slot index */
    _Atomic uint16_t *owner; /* one owner id per slab; written under the lock */
    uint32_t size;           /* object size (multiple of 8) */
    uint32_t pitch;          /* bytes between slots: size, padded so a slab is whole pages */
    uint32_t slot_shift;     /* log2(objects per slab) */
    uint32_t index;          /* class index in the instance */
    uint64_t div_magic;      /* offset / pitch == high 64 bits of offset * div_magic */
    uint32_t per_slab;       /* objects per slab, 1 << slot_shift */
    uint32_t slab_bytes;     /* bytes per slab, per_slab * pitch (a page multiple) */
    uint32_t tcache_cap;     /* slots a thread cache holds for this class */
    uint32_t batch;          /* slots moved per refill / drain */
    uint32_t bitmap_words;   /* 64-bit words of free bitmap per slab */
    uint32_t max_slabs;

    /* Published slot count: slot indices below it have committed metadata. Release-stored
     * after the metadata is committed, acquire-loaded before any state word is read. */
    _Alignas(64) _Atomic uint32_t nslots;

    _Alignas(64) pthread_mutex_t lock; /* guards everything below */
    tslab__area objects;               /* the object region */
    tslab__area meta_state, meta_slab, meta_bits, meta_rbits, meta_owner, meta_own, meta_sepoch,
        meta_elist;
    tslab__slab *slabs;
    uint64_t *bits;  /* free bitmaps, bitmap_words per slab */
    uint64_t *rbits; /* remote bitmaps, same shape */
    uint32_t nslabs; /* slabs ever committed */
    /* cached: empty slabs, newest at the head (reused first, so they stay warm), oldest at the
     * tail (released first by decay). */
    tslab__list partial, cached, released;
    /* own[id]: the PARTIAL slabs owner id `id` refills from (free or remote bits). Indexed by
     * owner id so that no slab structure lives in a thread's cache; entries below own_ready are
     * initialised, the rest committed (and set up) when an id first claims a slab here. */
    tslab__list *own;
    uint32_t own_ready;
    /* Epochs: sepoch[s] is the epoch record index slab s belongs to (0: the default epoch; only
     * slabs whose owner is TSLAB__EPOCH_OWNER have another), elist[i] the partial slabs of epoch
     * record i, set up lazily as own[] is. */
    _Atomic uint16_t *sepoch;
    tslab__list *elist;
    uint32_t elist_ready;
    uint64_t decay_next;  /* clock time the tail's decay runs out; UINT64_MAX: nothing cached */
    uint32_t decay_calls; /* slow-path calls since the clock was last read (tslab__decay_due) */
    uint64_t *quarantine; /* ring of TSLAB_QUARANTINE_SLOTS entries (sanitizer builds) */
    uint32_t q_head, q_count;
    tslab__ccounters cc;
    /* Contention (lockstat.c): times a thread found the lock taken, and the time it waited;
     * written by the waiter once it holds the lock. lock_waiters: threads blocked right now. */
    _Atomic uint64_t lock_waits, lock_wait_ns;
    _Atomic uint32_t lock_waiters;
} tslab__class;

/* ---- Thread caches ---- */
#define TSLAB__TC_MAX 48 /* most slots a thread caches per class */
#define TSLAB__RBUF 64   /* remote frees a thread batches per class before handing them back */

/* A thread's cache of one class. Owned and used by one thread only (`tc` is also read by
 * tslab_stats_read); the slabs it refills from are the class's business (tslab__class.own). The
 * hot block repeats the class's
 * constants so the handle fast paths touch the instance's read-only fields, this structure, the
 * slab's owner id and the slot's state word, nothing else (tslab_free_ptr also reads the class's
 * pitch and slot count to find the slot). An entry is the complete handle the slot will be handed
 * out under (its generation is exact: the state word of a cached slot changes only under this
 * thread), so allocation neither reads the word nor assembles a handle. The size is a power of
 * two so that indexing by class is a shift. */
typedef struct tslab__tclass {
    /* Entries in slots[]. Atomic (relaxed) like slots[] and only because an idle-reclaim
     * collector reads both from another thread (reclaim.c); the owner is still its only writer. */
    _Atomic uint32_t count;
    uint32_t cap;
    char *base;
    _Atomic uint32_t *state;
    _Atomic uint16_t *owner;
    uint32_t size;
    uint32_t pitch;
    uint32_t slot_shift;
    uint32_t top;            /* tag << CLS_BITS | class: the top fields of its handles */
    uint32_t limit;          /* the class's nslots at this cache's last refill: slots below it have
                                metadata, and every slab this cache owns is below it; 0 with
                                exact_frees, so that no free takes the plain-store fast path */
    uint16_t id;             /* this cache's owner id, or TSLAB__NO_ID */
    _Atomic uint16_t rcount; /* entries in remote[]; written on slow paths only (relaxed) */
    tslab__tcounters tc;
    /* Allocations of this class left before the next sample (the byte interval divided by the
     * class size: sample.c); the fast path decrements it and leaves when it goes negative. */
    int32_t sample_left;
    /* The epoch cache of this class (tslab__tcache.ec) hands out on its fast path only while its
     * count is above efloor, which the slow paths set (tslab__ec_arm) so that the fast path
     * leaves at the allocation where sample_left runs out, and never below 1 (the cache's last
     * slot is the slow path's). 0 only while that cache has never held a slot. */
    uint32_t efloor;
    uint32_t esynced; /* the low bits of that cache's `allocs` last charged to sample_left */
    /* efloor before its clamp to 1: the count at which the countdown runs out, which slots
     * coming back into the cache (free.c) move up one by one, so that they never add to what
     * the fast path may hand out before it stops. */
    int32_t evirt;
    /* The cache's entries, top at count - 1. Atomic because the idle-reclaim collector reads
     * them from another thread (reclaim.c): the fast path's store is relaxed (tslab__entry_put);
     * the owner's other accesses go through tslab__tc_slots (see there why they race nothing). */
    _Atomic uint64_t slots[TSLAB__TC_MAX];
    /* Slots this thread freed in other threads' slabs (entries: next handles, state RFREE). */
    uint64_t remote[TSLAB__RBUF];
} tslab__tclass;
_Static_assert(sizeof(tslab__tclass) == 1024, "adjust TSLAB__TC_MAX or TSLAB__RBUF");
_Static_assert(sizeof(_Atomic uint64_t) == sizeof(uint64_t) &&
                   _Alignof(_Atomic uint64_t) == _Alignof(uint64_t),
               "slots[] is also read as a plain array (tslab__tc_slots)");

/* t's entries as a plain array. Only for t's owner: it may read them so at any time (no other
 * thread writes them), and write them so (refill, memmove) only inside tslab__tcache_enter/leave
 * or holding its cache's lock, which order those writes before the collector's reads. */
static inline uint64_t *tslab__tc_slots(tslab__tclass *t) { return (uint64_t *)(void *)t->slots; }

static inline uint32_t tslab__handle_idx(uint64_t h)
{
    return (uint32_t)(h >> TSLAB__GEN_BITS) & TSLAB__IDX_MASK;
}

/* The handle the same slot gets after one more free: the generation field plus TSLAB__GEN_STEP
 * (wrapping within its field); the parity does not cover the generation, so it stays as it is. */
static inline uint64_t tslab__handle_next(uint64_t h)
{
    return (h & ~(uint64_t)TSLAB__GEN_MASK) | tslab__gen_next((uint32_t)h);
}

/* A thread's cache of one class for allocations into explicit epochs: the slots of one epoch
 * at a time (`epoch`, whose record's key the fast path compares, so a close is seen at once).
 * Used by its thread only. The thread's frees of objects of that epoch, while it is open, come
 * back into the cache after their CAS (free.c), so a request that allocates and frees in one
 * epoch rarely takes a lock. Allocations and those frees are counted into the epoch's record
 * (folded) only while the cache still holds a slot: a slot keeps its slab, and so the record,
 * from being reused by another epoch before the count lands. */
#define TSLAB__EC_MAX 27 /* so that the struct is 256 bytes: indexing by class is a shift */
typedef struct tslab__eclass {
    uint64_t epoch;        /* the epoch id its slots belong to; 0: none */
    _Atomic uint64_t *key; /* &record.key of that epoch */
    /* count and slots[] as in tslab__tclass: the idle-reclaim collector reads them (relaxed),
     * the owner writes them (count relaxed; slots[] plainly through tslab__ec_slots, on slow
     * paths only, inside tslab__tcache_enter/leave). */
    _Atomic uint32_t count;
    uint32_t idx;    /* the epoch's record index */
    uint64_t allocs; /* allocations not yet counted in the record */
    uint64_t frees;  /* frees of the epoch's objects taken back into this cache, not yet counted */
    _Atomic uint64_t slots[TSLAB__EC_MAX];
} tslab__eclass;
_Static_assert(sizeof(tslab__eclass) == 256, "adjust TSLAB__EC_MAX");
static inline uint64_t *tslab__ec_slots(tslab__eclass *t) { return (uint64_t *)(void *)t->slots; }
/* Sets the count at which tcl's epoch cache stops its fast path to v (evirt), clamped to 1
 * (efloor): the cache's last slot is the slow path's. */
static inline void tslab__ec_floor(tslab__tclass *tcl, int32_t v)
{
    tcl->evirt = v;
    tcl->efloor = v > 1 ? (uint32_t)v : 1;
}
/* Charges the allocations t's fast path made since the last charge to the class's sampling
 * countdown (tcl: the same thread cache's class), then sets the floor the fast path stops at:
 * sample_left more allocations, and never the last slot. The owner, on a slow path, after any
 * change to t's count or to sample_left. */
static inline void tslab__ec_arm(tslab__tclass *tcl, const tslab__eclass *t)
{
    uint32_t d = (uint32_t)t->allocs - tcl->esynced; /* at most TSLAB__EC_MAX - 1 */
    tcl->esynced = (uint32_t)t->allocs;
    tcl->sample_left -= (int32_t)d;
    int32_t n = (int32_t)atomic_load_explicit(&t->count, memory_order_relaxed);
    tslab__ec_floor(tcl, n - (tcl->sample_left > 0 ? tcl->sample_left : 0));
}
/* What a thread cache's `ec` points to until its thread first allocates into an epoch: zeroed
 * entries bound to no epoch (0 is never an id, and a count of 0 fails the fast path anyway), so
 * the epoch fast path needs no NULL test. Never written. */
extern tslab__eclass tslab__ec_none[TSLAB_CLASSES_MAX];

/* A thread's cache for one instance. Owned by the instance (freed by tslab_destroy or by the
 * thread's exit, whichever is first); used only by its thread, except for counter reads. */
typedef struct tslab__tcache {
    struct tslab__tcache *prev, *next; /* the instance's list, guarded by tslab.tc_lock */
    uint64_t uid;
    uint16_t id;           /* owner id, or TSLAB__NO_ID */
    uint64_t rng;          /* the sampler's random state, 0 until first used (sample.c) */
    uint64_t sample_armed; /* bit i: class i's countdown was drawn with sampling on */
    tslab__eclass *ec;     /* epoch caches, class_count entries; tslab__ec_none until used */
    /* Idle reclaim (reclaim.c). `fast` is the owner's fast-map entry for the instance (its
     * thread-local storage: valid while the cache is on the instance's list). `in_slow` counts
     * the owner's nested slow paths (tslab__tcache_enter/leave). `lock` is held by the collector
     * from revocation to publication and by the owner while it reconciles; `stolen[i]` is how many
     * entries at the bottom of class i's stack the collector took (under `lock`). `seen_ops` and
     * `seen_at` are the collector's own (under tc_lock): the operation count last seen, and when
     * it last changed. */
    struct tslab__tls_fast_entry *fast;
    _Atomic uint32_t in_slow;
    pthread_mutex_t lock;
    uint64_t seen_ops, seen_at;
    uint8_t stolen[TSLAB_CLASSES_MAX];
    uint8_t estolen[TSLAB_CLASSES_MAX]; /* the same for the epoch caches (ec[i]) */
    /* Set (release) once `ec` points at the thread's own epoch caches: the collector reads `ec`
     * only after seeing it (acquire), the owner writing it once before. */
    _Atomic bool ec_ready;
    tslab__tclass cls[]; /* class_count entries + 1 for unattributed rejections */
} tslab__tcache;
_Static_assert(TSLAB__TC_MAX <= UINT8_MAX, "stolen[] counts entries in a uint8_t");

static inline bool tslab__ec_used(const tslab__tcache *tc) { return tc->ec != tslab__ec_none; }

/* Per-thread map from instance tag to that thread's cache; uid detects a reused tag. */
typedef struct tslab__tls_entry {
    uint64_t uid;
    tslab__tcache *tc;
} tslab__tls_entry;

/* An entry of the fast map. uid is atomic because the idle-reclaim collector revokes an entry
 * from another thread (a CAS to 0, reclaim.c); every access states its order, and the fast
 * paths' relaxed load is a plain move. tc is the owner's alone. */
typedef struct tslab__tls_fast_entry {
    _Atomic uint64_t uid;
    tslab__tcache *tc;
} tslab__tls_fast_entry;
_Static_assert(sizeof(tslab__tls_fast_entry) == sizeof(tslab__tls_entry), "tls_off (instance.c)");

/* The full map (allocated on first use) and a small direct-mapped copy of recent entries in
 * static TLS, which is what the fast paths read: one %fs-relative load and a compare. An entry
 * is trusted only when its uid equals the instance's, and uids are never reused, so an entry left
 * behind by a destroyed instance is never dereferenced. */
#define TSLAB__TLS_FAST 8
extern __thread tslab__tls_entry *tslab__tls __attribute__((tls_model("initial-exec")));
extern __thread tslab__tls_fast_entry tslab__tls_fast[TSLAB__TLS_FAST]
    __attribute__((tls_model("initial-exec")));

/* ---- The instance ---- */
struct tslab {
    /* read-only after create */
    uint32_t tag; /* 1..TSLAB_INSTANCES_MAX; also index + 1 into the tls map */
    uint32_t nclasses;
    uint32_t tag_base; /* tag << TSLAB__CLS_BITS (tslab__handle_bad) */
    uint64_t uid;      /* never reused within the process */
    uint32_t tls_off;  /* byte offset of this instance's entry in tslab__tls_fast */
    size_t lut_limit;  /* sizes 1..lut_limit are looked up in lut */
    size_t max_size;
    const tslab_os *os; /* &os_copy */
    tslab_os os_copy;   /* the configured OS layer, copied in this version's layout */
    size_t page;
    uint8_t lut[512]; /* class of size s is lut[(s - 1) >> 3] */
    char name[TSLAB_NAME_MAX];
    size_t cache_slabs; /* hard cap on cached (empty, decaying) slabs per class */
    size_t reserved_bytes;
    /* Memory over time: written by tslab_decay_set / tslab_limit_set, read on slow paths. Relaxed:
     * each is a setting read on its own; a slow path that misses a change sees it next time. */
    _Atomic uint64_t decay_ns;   /* 0: release at once */
    _Atomic uint64_t limit_hard; /* 0: none */
    _Atomic uint64_t limit_soft; /* 0: none */
    /* Bytes the limits count: slabs not handed back plus their metadata. Raised (CAS, checked
     * against limit_hard) before a slab is made resident, lowered after its pages went back. */
    _Atomic uint64_t resident;
    bool exact_frees; /* every free a CAS, the owner's too (config; internal.h's design notes) */
    /* Object regions: class i at region.base + (i << region_shift), so a pointer's class is one
     * shift away and a pointer outside [base, base + reserved) is not ours. */
    tslab__area region;
    uint32_t region_shift;
    uintptr_t region_mask; /* (1 << region_shift) - 1 */

    pthread_mutex_t tc_lock; /* guards the tcache list, `retired` and the id map */
    tslab__tcache *tcaches;
    uint64_t id_used[TSLAB__IDS / 64]; /* bit i: id i is taken (bit 0 always: "unowned") */
    tslab__tcounters *retired;         /* counters of exited threads, class_count + 1 entries */

    /* Sampling (sample.c). sample_bytes is read by each thread's slow path when it draws an
     * interval; relaxed: any recent value will do. */
    _Atomic size_t sample_bytes; /* TSLAB_SAMPLE_OFF when off */
    uint64_t sample_seed;
    _Atomic uint64_t sample_threads; /* thread caches made so far: each seeds from its number */
    struct tslab__sampler *sampler;  /* the side table; its own lock */
    /* Rejected frees (reject.c): the ring, its own lock, and the config's callback. */
    struct tslab__rejections *rejections;
    void (*on_reject)(void *ctx, int reason, const struct tslab_rejection *r);
    void *on_reject_ctx;

    /* Epochs (epoch_table.c): the table, made on first tslab_epoch_open (acquire/release: its
     * lock and fields are set up before it is published), and the leak threshold. */
    _Atomic(struct tslab__epochs *) epochs;
    _Atomic uint64_t epoch_leak_ns;

    tslab__class cls[];
};

/* ---- Epochs ---- */
/* Epoch id: bits 0..31 the record's generation (never 0), 32..44 the record index
 * (1..TSLAB_EPOCHS_MAX), 45..53 the instance tag; bits 54..63 zero. */
#define TSLAB__EP_IDX_SHIFT 32
#define TSLAB__EP_IDX_MASK 0x1FFFu
#define TSLAB__EP_TAG_SHIFT 45
/* A record's id after a destroy: the destroyed id with this bit set, which no id passed in can
 * equal (its tag would not match), so nothing names the record until it is reopened, and the
 * next open still continues from the destroyed id's generation. */
#define TSLAB__EP_RETIRED (UINT64_C(1) << 63)
/* Also set while the destroy is still at work (from tslab__epoch_shut to tslab__epoch_destroyed):
 * an allocation racing it that finds the id retired still reports ESHUTDOWN (tslab.h's
 * contract); one after it, EINVAL. */
#define TSLAB__EP_ENDING (UINT64_C(1) << 62)
/* Generations advance by 3: two ids of one record fewer than 2^30 reuses apart never differ in
 * a single bit (as handles, TRAPS.md), so one flipped bit of a stale id names no newer epoch. */
#define TSLAB__EP_GEN_STEP 3u
_Static_assert(TSLAB_EPOCHS_MAX <= TSLAB__EP_IDX_MASK && TSLAB_EPOCHS_MAX < UINT16_MAX,
               "epoch index bits (and sepoch[] entries)");
enum { TSLAB__EP_FREE, TSLAB__EP_OPEN, TSLAB__EP_CLOSED, TSLAB__EP_DYING };
#define TSLAB__EPOCH_LEAK_DEFAULT_MS 60000

/* One epoch record. `key` and `id` are written under the table lock and read without it. */
typedef struct tslab__epoch {
    _Atomic uint64_t key; /* the id while open, else 0: what allocations compare against */
    /* the id naming it (new at open; a destroy retires it: TSLAB__EP_RETIRED, TSLAB__EP_ENDING) */
    _Atomic uint64_t id;
    uint32_t state;     /* TSLAB__EP_*; table lock */
    uint32_t label;     /* label index */
    uint32_t slabs;     /* slabs of every class that belong to it; table lock */
    uint32_t next_free; /* free list link */
    uint64_t closed_at; /* the instance clock at close */
    /* Per class: allocations counted (folded) minus frees handed back; may dip below zero for
     * a moment (a free handed back before its allocation was folded). */
    _Atomic int64_t live[TSLAB_CLASSES_MAX];
} tslab__epoch;

typedef struct tslab__elabel {
    char name[TSLAB_EPOCH_LABEL_MAX];
    uint64_t opened, closed, destroyed; /* table lock */
    _Atomic uint64_t allocations, frees;
} tslab__elabel;

typedef struct tslab__epochs {
    pthread_mutex_t lock; /* below the class locks: taken with one held, never the reverse */
    uint32_t used;        /* records 1..used have been used */
    uint32_t free_head, free_tail; /* FREE records, oldest first (reused as late as possible) */
    uint32_t nlabels;              /* labels in use; index TSLAB_EPOCH_LABELS_MAX is "other" */
    tslab__elabel labels[TSLAB_EPOCH_LABELS_MAX + 1];
    tslab__epoch rec[TSLAB_EPOCHS_MAX + 1]; /* rec[0] unused: index 0 is the default epoch */
} tslab__epochs;

static inline uint32_t tslab__epoch_idx(uint64_t e)
{
    return (uint32_t)(e >> TSLAB__EP_IDX_SHIFT) & TSLAB__EP_IDX_MASK;
}

/* ---- registry.c: live instances by tag (the lowest layer: calls nothing above it) ---- */
/* True when `tag` names a live instance other than `self`. */
bool tslab__tag_is_live(uint32_t tag, const tslab *self);
/* Global lock ordering: registry lock, then tc_lock, then class locks. */
void tslab__registry_lock(void);
void tslab__registry_unlock(void);
/* The live instance with this tag, or NULL (acquire: its fields are set up). */
tslab *tslab__registry_get(uint32_t tag);
/* Gives `a` (fully set up but for them) a free tag, its tls_off and tag_base, and a uid never used
 * before, then publishes it; returns the tag, or 0 when TSLAB_INSTANCES_MAX are live. */
uint32_t tslab__registry_add(tslab *a);
/* Unpublishes tag's instance. Caller holds the registry lock. */
void tslab__registry_remove(uint32_t tag);

/* ---- os.c: the only file that calls mmap/mprotect/madvise/munmap ---- */
size_t tslab__os_page_size(void);
/* Commit [area.committed, need) rounded up to pages; 0 or -errno. Caller holds the class lock. */
int tslab__area_grow(tslab *a, tslab__area *ar, size_t need);
int tslab__area_reserve(tslab *a, tslab__area *ar, size_t bytes);
void tslab__area_release(tslab *a, tslab__area *ar);
/* Hands pages back to the OS, keeping the mapping; 0 or -errno. */
int tslab__area_decommit(tslab *a, void *p, size_t size);
/* membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): when it returns 0, every other running thread of
 * the process has passed a full memory barrier. Registers the process on first use (and again in
 * a fork() child); -errno when the kernel cannot do it. */
int tslab__os_membarrier(void);

/* ---- class.c: size-class geometry ---- */
int tslab__class_init(tslab *a, tslab__class *c, uint32_t index, uint32_t size, size_t slab_bytes,
                      size_t class_max_bytes);
void tslab__class_fini(tslab *a, tslab__class *c);
/* Smallest class holding `size`, or -1. */
int tslab__class_of_size(const tslab *a, size_t size);

/* ---- slab.c: slab lists, refill and drain (the slow path) ---- */
/* Moves up to `want` free slots into `out` as cache entries (their next handles); returns how
 * many (0 with errno ENOMEM). */
uint32_t tslab__slab_refill(tslab *a, tslab__class *c, uint16_t id, uint64_t *out, uint32_t want);
/* As tslab__slab_refill, for the cache of epoch e (record eidx): from e's slabs only, claiming
 * empty ones for e while e is open; 0 with errno ESHUTDOWN once e is not open, ENOMEM. */
uint32_t tslab__slab_refill_epoch(tslab *a, tslab__class *c, uint32_t eidx, uint64_t e,
                                  uint64_t *out, uint32_t want);
/* Frees every live object of epoch record eidx in class c (a CAS each: a racing free or another
 * destroy has exactly one winner); returns how many this call freed. */
uint64_t tslab__slab_epoch_destroy(tslab *a, tslab__class *c, uint32_t eidx);
/* Returns n slots (cache entries: handles, of which only the index is used) to their slabs;
 * empty slabs are cached or released. */
void tslab__slab_drain(tslab *a, tslab__class *c, const uint64_t *ent, uint32_t n);
/* Hands n remotely freed slots (entries with state RFREE at their generation) back: checked and
 * taken at once when the slab is unowned or owned by `id`, else marked in the slab's remote
 * bitmap for its owner. */
void tslab__slab_remote(tslab *a, tslab__class *c, uint16_t id, const uint64_t *ent, uint32_t n);
/* Checks the remote bits of every slab owner `id` owns (its thread only), so slabs other threads
 * emptied go back to the cache without waiting for its next refill. */
void tslab__slab_collect(tslab *a, tslab__class *c, uint16_t id);
/* Thread exit: gives up every slab `id` owns in class c (remote bits checked first). */
void tslab__slab_disown(tslab *a, tslab__class *c, uint16_t id);
/* fork() child: gives up every slab owned by an id other than `keep` (their threads are gone,
 * mid-free or not, so their remote bits can be checked by anyone). */
void tslab__slab_disown_others(tslab *a, tslab__class *c, uint16_t keep);
/* Sanitizer builds: parks a freed slot's entry; returns the entry it evicts, or TSLAB__NO_ENTRY. */
#define TSLAB__NO_ENTRY UINT64_MAX
uint64_t tslab__quarantine_push(tslab__class *c, uint64_t ent);
/* Sanitizer builds: returns every quarantined slot to its slab (no-op otherwise). */
void tslab__quarantine_drain(tslab *a, tslab__class *c);
/* Releases every slab cached now in class c, counted as `why` (TSLAB__WHY_PURGE or _LIMIT); 0 or
 * the first failure of the OS layer (the remaining slabs are still tried). */
enum { TSLAB__WHY_CAP, TSLAB__WHY_DECAY, TSLAB__WHY_LIMIT, TSLAB__WHY_PURGE };
int tslab__slab_purge(tslab *a, tslab__class *c, int why);
/* One decay step for class c now: releases the cached slabs whose decay ran out (all of them
 * beyond the soft limit). Takes the class lock; releases outside it. Returns the clock time of
 * the class's next deadline (UINT64_MAX when nothing is cached). */
uint64_t tslab__slab_decay(tslab *a, tslab__class *c);
/* The instance's clock (tslab_os.now_ns, or CLOCK_MONOTONIC). */
uint64_t tslab__now(const tslab *a);
/* Milliseconds to nanoseconds, saturating (a decay of ~584 years is "never"). */
static inline uint64_t tslab__ms_to_ns(uint64_t ms)
{
    return ms > UINT64_MAX / 1000000u ? UINT64_MAX : ms * 1000000u;
}

/* ---- epoch_table.c: epoch records (below slab.c, which reports to it) ---- */
/* The table, made on first use; NULL (errno ENOMEM) when it cannot be. */
struct tslab__epochs *tslab__epochs_get(tslab *a);
void tslab__epochs_fini(tslab *a);
/* A slab of class c joins epoch e (record eidx) if e is still open; false otherwise. */
bool tslab__epoch_attach(tslab *a, uint32_t eidx, uint64_t e);
/* A slab left record eidx (it emptied): the last slab of a closed or destroyed epoch frees the
 * record for reuse. Caller may hold a class lock. */
void tslab__epoch_detach(tslab *a, uint32_t eidx);
/* Counts n allocations (folded from a thread's cache) or n frees of class ci in record eidx;
 * the caller holds a slot of the record's, so the record cannot be reused meanwhile. */
void tslab__epoch_count(tslab *a, uint32_t eidx, uint32_t ci, int64_t n);
/* Opens a record labelled `label`: its new id, or 0 with errno (ENOMEM, EAGAIN). */
uint64_t tslab__epoch_new(tslab *a, const char *label);
/* Closes epoch e (and makes its id stale when destroying); returns its record index, or 0 with
 * errno EINVAL when e is not a current id of a. *pinned: the record is held for a destroy's
 * walk, to be let go with tslab__epoch_detach. */
uint32_t tslab__epoch_shut(tslab *a, uint64_t e, bool destroy, bool *pinned);
/* Ends the destroy of e that tslab__epoch_shut(destroy) began: from here on e is plainly stale
 * (allocations with it get EINVAL). Call before letting go of the walk's pin. */
void tslab__epoch_destroyed(tslab *a, uint64_t e);
/* fork(): the table lock is taken after the class locks and released before them. */
void tslab__epochs_lock(tslab *a);
void tslab__epochs_unlock(tslab *a);

/* ---- tcache.c: thread caches ---- */
/* The calling thread's cache for `a` (found in the full map, or created on first use), taken
 * back from the idle-reclaim collector (tslab__reclaim_reconcile) and installed in the fast map;
 * NULL (errno ENOMEM) if it cannot be made. */
tslab__tcache *tslab__tcache_bind(tslab *a);
/* Empties tc's stacks and remote batches into the slabs. Its thread only, between
 * tslab__tcache_enter and _leave (or at its exit, under the registry lock). */
void tslab__tcache_flush(tslab *a, tslab__tcache *tc);
/* Counts the pending allocations and frees of tc's epoch cache of class ci into its epoch's
 * record (charging the sampler first: tslab__ec_arm). Caller: tc's thread, while the cache holds
 * a slot. */
void tslab__ecache_fold(tslab *a, tslab__tcache *tc, uint32_t ci);
/* Empties tc's epoch cache of class ci: folds its count, returns its slots, binds it to none. */
void tslab__ecache_unbind(tslab *a, tslab__tcache *tc, uint32_t ci);
/* Frees every cache of `a` (tslab_destroy). */
void tslab__tcache_destroy_all(tslab *a);

/* The calling thread's fast-map entry for `a` (trusted only when its uid is a's). */
static inline tslab__tls_fast_entry *tslab__tls_slot(const tslab *a)
{
    return (tslab__tls_fast_entry *)(void *)((char *)tslab__tls_fast + a->tls_off);
}

/* The fast paths' test: relaxed, a plain move. An entry the collector revoked (uid 0) fails it,
 * for every operation that starts after the collector's membarrier (reclaim.c). */
static inline bool tslab__tls_match(const tslab__tls_fast_entry *e, const tslab *a)
{
    return atomic_load_explicit(&e->uid, memory_order_relaxed) == a->uid;
}

/* The calling thread's cache for counting (its counters only: no stack or remote batch is
 * touched), bound if need be; NULL when none can be made. */
static inline tslab__tcache *tslab__tcache_get(tslab *a)
{
    tslab__tls_fast_entry *e = tslab__tls_slot(a);
    if (tslab_likely(tslab__tls_match(e, a)))
        return e->tc;
    return tslab__tcache_bind(a);
}

/* tslab__tcache_enter when the fast-map entry does not match or was revoked meanwhile. */
tslab__tcache *tslab__tcache_enter_slow(tslab *a);
/* A slow path's entry: the calling thread's cache, with the collector kept out of its stacks
 * and remote batches until tslab__tcache_leave (reclaim.c); NULL (errno ENOMEM, nothing to
 * leave) when no cache can be made. Nests. The seq_cst store (an xchg) and then the seq_cst
 * re-read of the entry are the owner's side of the Dekker pair with the collector's CAS and its
 * read of in_slow: either this re-read sees the revocation, or the collector sees in_slow. */
static inline tslab__tcache *tslab__tcache_enter(tslab *a)
{
    tslab__tls_fast_entry *e = tslab__tls_slot(a);
    if (tslab_likely(tslab__tls_match(e, a))) {
        tslab__tcache *tc = e->tc;
        uint32_t d = atomic_load_explicit(&tc->in_slow, memory_order_relaxed);
        atomic_store_explicit(&tc->in_slow, d + 1, memory_order_seq_cst);
        if (tslab_likely(atomic_load_explicit(&e->uid, memory_order_seq_cst) == a->uid))
            return tc;
        /* Revoked in between: undo (release, as a leave would) and bind. */
        atomic_store_explicit(&tc->in_slow, d, memory_order_release);
    }
    return tslab__tcache_enter_slow(a);
}
/* Release: the slow path's writes to the stacks and batches happen before the collector reads
 * them (it acquires in_slow). */
static inline void tslab__tcache_leave(tslab__tcache *tc)
{
    atomic_store_explicit(&tc->in_slow,
                          atomic_load_explicit(&tc->in_slow, memory_order_relaxed) - 1,
                          memory_order_release);
}

/* ---- reclaim.c: slots taken back from the caches of idle threads ---- */
/* One collection over a's caches at the instance clock's `now` (the maintenance thread's pass,
 * under the registry lock): a cache whose thread made no allocation or free for at least
 * `idle_ns` and that holds slots loses all but the top entry of each stack, and its remote
 * batches. Takes tc_lock, then each cache's lock, then class locks. */
void tslab__reclaim_idle(tslab *a, uint64_t now, uint64_t idle_ns);
/* The owner's half, under tc->lock: drops the entries the collector took (tcache.c's bind). */
void tslab__reclaim_reconcile(tslab *a, tslab__tcache *tc);
/* True when the collector can revoke fast-map entries (membarrier works here); else reclaim is
 * off and caches of idle threads keep their slots until the threads call or exit. */
bool tslab__reclaim_available(void);
/* fork() child: the caches of the parent's other threads have no thread (and their fast-map
 * entries no storage one may rely on): collected without revocation from now on. */
void tslab__reclaim_fork_child(tslab *a, const tslab__tcache *keep);

/* ---- instance.c: instances, fork safety ---- */
/* Installs the fork handlers (once); tslab_create and tslab_background_start call it. */
void tslab__fork_hooks_install(void);

/* ---- maintain.c: settings and the maintenance thread ---- */
/* One maintenance pass over every live instance (decay, idle reclaim); returns the wait before
 * the next one in nanoseconds. The thread's loop; tests call it to run one tick. */
uint64_t tslab__maintain_pass(void);
/* fork() handlers, called first in prepare and last in parent/child by instance.c's. */
void tslab__background_fork_prepare(void);
void tslab__background_fork_parent(void);
void tslab__background_fork_child(void);

/* ---- sample.c: sampled allocations, their side table and lifetime histograms ---- */
/* A thread whose sampling is off re-reads the interval after this many allocations of a class. */
#define TSLAB__SAMPLE_RECHECK 65536
/* The countdown of t (a class of tc) ran out: draws the next interval; true when the allocation
 * being made is to be sampled. */
bool tslab__sample_due(tslab *a, tslab__tcache *tc, tslab__tclass *t);
/* Records slot idx of class ci, handed out at generation gen, with the caller's stack; true
 * when recorded (the caller then publishes the slot's word with SAMPLED), false when out of
 * memory (the allocation goes unsampled). */
bool tslab__sample_alloc(tslab *a, uint32_t ci, uint32_t idx, uint32_t gen);
/* A free of slot idx (class ci) at generation gen succeeded on a SAMPLED word: moves its record
 * into the class's lifetime histogram. A record of another generation is left alone (a racing
 * duplicate free, whose slot was reused meanwhile). */
void tslab__sample_free(tslab *a, uint32_t ci, uint32_t idx, uint32_t gen);
int tslab__sampler_init(tslab *a, const tslab_config *cfg);
void tslab__sampler_fini(tslab *a);
/* fork(): the sampler's lock is taken after the class locks and released before them. */
void tslab__sampler_lock(tslab *a);
void tslab__sampler_unlock(tslab *a);
/* Functions whose frames a recorded stack leaves out: the allocation and free entry points and
 * everything they call on the way to a record (a sample or a rejection) live in this section. */
#define TSLAB__ENTRY __attribute__((section("tslab_entry")))
/* The caller's stack into out[0..TSLAB_STACK_MAX), innermost first, without the frames in the
 * TSLAB__ENTRY section; returns the depth. */
uint32_t tslab__stack_capture(uintptr_t *out);

/* ---- lockstat.c: time spent waiting for a class lock ---- */
void tslab__class_lock_wait(tslab *a, tslab__class *c);
/* Takes c's lock (the slow path's). Uncontended it is one trylock, as cheap as the lock itself;
 * a thread that finds it taken times its wait (lockstat.c). */
static inline void tslab__class_lock(tslab *a, tslab__class *c)
{
    if (tslab_likely(pthread_mutex_trylock(&c->lock) == 0))
        return;
    tslab__class_lock_wait(a, c);
}

/* ---- reject.c: the ring of the last rejected frees and the on_reject callback ---- */
/* Records a rejection (value: the handle, or the pointer when by_pointer) and calls on_reject. */
void tslab__reject_record(tslab *a, uint32_t cls, int reason, uint64_t value, bool by_pointer);
int tslab__rejections_init(tslab *a, const tslab_config *cfg);
void tslab__rejections_fini(tslab *a);
void tslab__rejections_lock(tslab *a); /* fork(): with the sampler's */
void tslab__rejections_unlock(tslab *a);

/* ---- free.c ---- */
/* Counts a rejection on class `cls` (class_count = unattributed) and records it with `value`
 * (the handle, or the pointer when by_pointer: reject.c); always returns false. */
bool tslab__reject(tslab *a, uint32_t cls, int reason, uint64_t value, bool by_pointer);
enum { TSLAB__REJ_INVALID, TSLAB__REJ_STALE, TSLAB__REJ_DOUBLE, TSLAB__REJ_FOREIGN };
_Static_assert((int)TSLAB__REJ_INVALID == (int)TSLAB_REJECT_INVALID &&
                   (int)TSLAB__REJ_STALE == (int)TSLAB_REJECT_STALE &&
                   (int)TSLAB__REJ_DOUBLE == (int)TSLAB_REJECT_DOUBLE &&
                   (int)TSLAB__REJ_FOREIGN == (int)TSLAB_REJECT_FOREIGN,
               "the public reasons are the internal ones");
/* Classifies a failed free of handle generation `gen` given the slot's current state word. */
int tslab__reject_reason(uint32_t gen, uint32_t state);

/* ---- sanitizer/valgrind hooks (no-ops unless configured) ---- */
void tslab__san_alloc(size_t size, void *p);
void tslab__san_free(size_t size, void *p);
void tslab__san_slab_fresh(const tslab__class *c, void *slab, size_t bytes);
/* Before a class's objects are unmapped (tslab_destroy): ASan keeps shadow after munmap, so
 * poison must not outlive the mapping; memcheck must forget the objects still live, or it reports
 * them lost and trips over the next blocks placed at those addresses. */
void tslab__san_release(const tslab__class *c);

static inline char *tslab__slot_addr(const tslab__class *c, uint32_t idx)
{
    return c->base + (size_t)idx * c->pitch;
}

/* Slot index of a live-or-free object start address in class *cls_out, or -1 if `p` is not an
 * object start of `a` (sets *reason). Arithmetic only: `p` is never dereferenced. */
static inline int64_t tslab__ptr_slot(const tslab *a, const void *p, uint32_t *cls_out, int *reason)
{
    uintptr_t off = (uintptr_t)p - (uintptr_t)a->region.base;
    *cls_out = a->nclasses;
    if (off >= a->region.reserved) {
        *reason = TSLAB__REJ_FOREIGN;
        return -1;
    }
    uint32_t ci = (uint32_t)(off >> a->region_shift);
    const tslab__class *c = &a->cls[ci];
    *cls_out = ci;
    *reason = TSLAB__REJ_INVALID;
    uint64_t rel = off & a->region_mask;
    __extension__ uint64_t idx = (uint64_t)(((unsigned __int128)rel * c->div_magic) >> 64);
    /* Not a multiple of the pitch (interior, padding), or past the slots with metadata. */
    if (idx * c->pitch != rel ||
        idx >= atomic_load_explicit(&((tslab__class *)c)->nslots, memory_order_acquire))
        return -1;
    return (int64_t)idx;
}

#endif /* TSLAB_INTERNAL_H */
