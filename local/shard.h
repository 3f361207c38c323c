/* local/shard.h: the shard of the local store (store.c), shared by the
 * files that make it up and by no one else (it is not part of local.h,
 * which lib/ includes, so these short names stay private to local/):
 *  - index.c: the key hash, the table of tagged slots, writers' lookups,
 *    rebuilds and the grace periods of what leaves the table;
 *  - policy.c: the LRU / W-TinyLFU lists, applying buffered hits, eviction,
 *    the hill climber;
 *  - store.c: the store's calls (new, free, get, put, remove, clear, stats),
 *    the lock-free lookups and the per-thread state.
 * store.c's opening comment describes the design.
 */
#ifndef SC_LOCAL_SHARD_H
#define SC_LOCAL_SHARD_H

#include <pthread.h>
#include <stdint.h>

#include "local/local.h"

#define STRIPES 16384u

/* Queues; their sentinels sit at link index size + q. */
enum { Q_WINDOW = 0, Q_PROBATION = 1, Q_PROTECTED = 2, NQ = 3 };

/* The queue of a slot is kept in the top two bits of its prev link. */
#define QSHIFT 30
#define IDX_MASK ((1u << QSHIFT) - 1)
#define MAX_SLOTS (IDX_MASK - NQ)

#define EMPTY 0ull
#define TOMB 1ull
#define PTR_MASK ((1ull << 48) - 1)

#define NO_LIMIT UINT64_MAX

/* Caffeine's hill climber: 6.25% steps, decaying by 0.98 while the hit
 * ratio changes by less than 5 points, restarting at full size otherwise. */
#define CLIMB_STEP 0.0625
#define CLIMB_DECAY 0.98
#define CLIMB_RESTART 0.05
#define TRANSFER_MAX 1000

/* Hit records per (thread, shard) buffer. */
#define RB 16
/* Retired objects a shard collects before it asks for a grace period. */
#define LIMBO_MIN 128

struct link {
    uint32_t prev; /* queue << QSHIFT | index */
    uint32_t next;
};

struct table {
    uint32_t size;
    struct link *links; /* size + NQ, in the same allocation */
    _Atomic uint64_t slots[];
};

/* A retired object: an entry (the store's reference), a table, or a table
 * whose entries go with it (clear). Kind in the low bits of the pointer. */
enum { R_VALUE = 0, R_TABLE = 1, R_TABLE_ENTRIES = 2 };
struct retired {
    uintptr_t p;
    uint64_t tag;
};

struct shard {
    /* The one line a lock-free reader reads (never written on a hit). */
    _Atomic(struct table *) tab;
    int lfu, policy;       /* policy: bounded, so recency and frequency matter */
    unsigned index;        /* of this shard in the store */
    _Atomic unsigned mask; /* W-TinyLFU records a hit when (hits & mask) == 0 */
    char pad[64 - sizeof(void *) - 4 * sizeof(int)];

    pthread_mutex_t mu;
    struct table *t; /* == tab; the writers' view */
    _Atomic uint64_t *floors; /* the store's stripe floors */
    uint32_t count, tombs;
    uint64_t bytes;
    uint64_t qn[NQ], qb[NQ];               /* entries and bytes per queue */
    uint64_t max_n, max_b;                 /* 0 = unbounded */
    uint64_t win_n, win_b, prot_n, prot_b; /* NO_LIMIT = none */
    uint64_t evictions, expirations;
    uint64_t rng;
    int climb;
    unsigned sample_mask; /* the hit sampling of a shard not near full */
    sc__sketch sketch;
    /* hill climber */
    double window;        /* share of the bound given to the window */
    double step, prev_rate;
    uint64_t sample_hits, sample_misses, sample_size;
    /* objects waiting for a grace period */
    struct retired *limbo;
    size_t nlimbo, climbo, poll_at;
} __attribute__((aligned(64)));

/* A thread's state in one store: its counters and read buffers. Written by
 * its thread only (the counters are read by stats as relaxed atomics). */
struct rbuf {
    const struct table *t; /* the table the records index */
    uint32_t n;
    uint64_t rec[RB];      /* key32 << 32 | slot */
};

struct tstate {
    _Atomic uint64_t hits, misses;
    pthread_t owner;
    struct tstate *next;
    struct rbuf buf[] __attribute__((aligned(64)));
} __attribute__((aligned(64))); /* allocated aligned: no line shared with another thread's */

struct sc__local {
    struct shard *shards;
    unsigned nshards;
    uint64_t max_ttl;
    uint64_t id;          /* unique per store, never reused: names its thread states */
    size_t max_klen;      /* sc__local_get_with_str's longest key */
    /* Above: read on every hit, never written. Below: written now and then. */
    _Alignas(64) pthread_mutex_t ts_mu;
    struct tstate *states;
    _Atomic uint64_t spill_hits, spill_misses; /* threads without a state (no memory) */
    _Atomic uint64_t global_floor;
    _Atomic uint64_t floors[STRIPES];
};

static inline struct shard *shard_of(sc__local *l, uint64_t hash)
{
    return &l->shards[(hash >> 56) & (l->nshards - 1)];
}

static inline _Atomic uint64_t *stripe_of(_Atomic uint64_t *floors, uint64_t hash)
{
    return &floors[(hash >> 32) & (STRIPES - 1)];
}

static inline void raise_to(_Atomic uint64_t *a, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(a, memory_order_relaxed);
    while (cur < v && !atomic_compare_exchange_weak_explicit(a, &cur, v, memory_order_acq_rel, memory_order_relaxed))
        ;
}

static inline uint32_t key32_of(uint64_t hash)
{
    return (uint32_t)(hash >> 24);
}

static inline uint64_t tag_of(uint64_t hash)
{
    return (hash >> 40) & 0xffff;
}

static inline uint64_t weight_of(const sc_value *v)
{
    return (uint64_t)v->klen + v->len;
}

static inline uint64_t hash_of(const sc_value *v)
{
    return sc__local_hash(v->data, v->klen);
}

static inline sc_value *entry_of(uint64_t slot)
{
    return (sc_value *)(uintptr_t)(slot & PTR_MASK);
}

static inline int expired_at(const sc_value *v, uint64_t now)
{
    uint64_t e = sc__value_expiry(v);
    return e && now >= e;
}

static inline uint32_t prev_of(const struct link *n)
{
    return n->prev & IDX_MASK;
}

static inline unsigned queue_of(const struct link *n)
{
    return n->prev >> QSHIFT;
}

static inline void set_prev(struct link *n, uint32_t p)
{
    n->prev = (n->prev & ~IDX_MASK) | p;
}

static inline void unlink_node(struct link *L, uint32_t i)
{
    uint32_t p = prev_of(&L[i]), nx = L[i].next;
    L[p].next = nx;
    set_prev(&L[nx], p);
}

/* Appends at the most recent end (just before the sentinel). */
static inline void push_mru(struct link *L, uint32_t size, unsigned q, uint32_t i)
{
    uint32_t sent = size + q;
    uint32_t last = prev_of(&L[sent]);
    L[i].next = sent;
    L[i].prev = last | ((uint32_t)q << QSHIFT);
    L[last].next = i;
    set_prev(&L[sent], i);
}

static inline sc_value *slot_entry(const struct table *t, uint32_t i)
{
    return entry_of(atomic_load_explicit(&t->slots[i], memory_order_relaxed));
}

static inline void move_to(struct shard *s, uint32_t i, unsigned q)
{
    struct table *t = s->t;
    unsigned from = queue_of(&t->links[i]);
    uint64_t w = weight_of(slot_entry(t, i));
    unlink_node(t->links, i);
    push_mru(t->links, t->size, q, i);
    s->qn[from]--;
    s->qb[from] -= w;
    s->qn[q]++;
    s->qb[q] += w;
}

static inline uint32_t head_of(const struct table *t, unsigned q)
{
    uint32_t h = t->links[t->size + q].next;
    return h == t->size + q ? UINT32_MAX : h;
}

static inline uint32_t home(uint64_t hash, uint32_t size)
{
    return (uint32_t)(((uint64_t)(uint32_t)hash * size) >> 32);
}

/* ---- index.c ---- */

struct table *sc__table_new(uint32_t size);
uint32_t sc__table_find(const struct table *t, const char *key, size_t klen, uint64_t hash, uint32_t *free_pos);
/* Frees a retired object now (its kind in the low bits of p); the store's
 * reference of a value pinned in *pins waits for its pins. -1 when a
 * pinned value found no room to wait (out of memory): the caller keeps p
 * and calls again later (a table keeps only the entries still held). */
int sc__free_retired(uintptr_t p, const sc__pins *pins);
/* Hands p to the shard's limbo, freed after a grace period. */
void sc__retire(struct shard *s, void *p, unsigned kind);
/* Makes room for one more entry (may rebuild the table); -1 on no memory. */
int sc__reserve(struct shard *s);

/* ---- policy.c ---- */

void sc__touch(struct shard *s, uint32_t i, uint32_t key32);
void sc__drain_full(struct shard *s, struct rbuf *b);
void sc__apply_own_hits(sc__local *l, struct shard *s);
void sc__drop(struct shard *s, uint32_t i);
void sc__update_mask(struct shard *s);
void sc__enforce_bounds(struct shard *s);
void sc__set_limits(struct shard *s);
uint64_t sc__climb_sample(size_t capacity);
void sc__climb(struct shard *s);

#endif
