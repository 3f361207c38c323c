/* local/store.c: the sharded local store (index, entries, LRU and
 * W-TinyLFU), whose hits take no lock.
 *
 * Keys hash to one of a power-of-two number of shards. A shard is:
 *  - a table of 8-byte slots (16-bit tag << 48 | entry pointer), open
 *    addressing with linear probing. A lookup takes no lock: it runs inside
 *    a read section (reclaim.c) and reads slots with acquire loads. Slots
 *    never move under a reader: a delete leaves a tombstone, an update
 *    swaps the pointer in place, and a resize (or a purge of tombstones)
 *    builds a new table that is published with one pointer store, the old
 *    one freed after a grace period, like every entry that leaves;
 *  - the policy links of each slot in an array beside the slots (8 bytes:
 *    32-bit prev with the queue in its top two bits, 32-bit next), so an
 *    entry needs no list node and a hit touches slot and entry only;
 *  - the entries: one sc_value allocation each, a 24-byte header, the key
 *    and the bytes;
 *  - a mutex for writers (put, remove, clear, eviction, expiry) and for
 *    draining read buffers.
 * SC_LOCAL_LRU keeps one exact LRU list per shard. SC_LOCAL_LFU is W-TinyLFU
 * as in Caffeine: new entries enter an LRU window; entries leaving it are
 * candidates for the main SLRU (probation / protected 80%) and only displace
 * the probation victim if the frequency sketch says they are requested more
 * often. The window starts at 1% and a hill climber moves it (Caffeine's:
 * every 10 x capacity requests it compares the hit ratio with the previous
 * sample and keeps stepping in the direction that helped), so the policy
 * follows recency-skewed workloads too. A store with no bound never evicts,
 * so both policies then reduce to one list and hits are not recorded.
 *
 * Policy off the hit path: a hit is not applied to the lists at once. Each
 * thread has, per store and per shard, a buffer of 16 hit records (slot
 * index and 32 hash bits); the thread that fills one applies it if the
 * shard's lock is free (trylock) and drops it otherwise, as Caffeine's read
 * buffers do, and a writer applies its own thread's buffer before it
 * changes the shard, so one thread's history is replayed exactly (LRU stays
 * exact on one thread). W-TinyLFU records 1 hit in 64 while a shard is
 * below 7/8 of its bound (no eviction pending: the sketch and queues only
 * need the shape of the traffic, and a hit not recorded costs one TLS
 * increment), and every hit from there on.
 * Hit and miss counters are per thread too, summed by sc__local_stats.
 * Writes, evictions, expiry and floors stay exact: they happen under the
 * shard lock.
 *
 * Version floors live in a fixed array of stripes indexed by hash bits that
 * the shard index does not use, so they mean the same thing whatever the
 * shard count, plus one store-wide floor. A stripe floor is raised under the
 * lock of the shard of the key that raises it, and a put compares the floor
 * under its own shard lock: for one key both are the same lock, so a put and
 * a remove of that key are ordered. Keys sharing a stripe only make each
 * other's installs more conservative (a refused install costs a Redis read,
 * never correctness); 16384 stripes keep that rare.
 *
 * Hash bits: shard 56-63, tag 40-55, stripe 32-45, table home 0-31 (by
 * multiply-shift, so a table can be any size), and bits 24-55 identify a
 * key to the sketch and the read buffers.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* Hit records per (thread, shard) buffer. */
#define RB 16
/* Retired objects a shard collects before it asks for a grace period. */
#define LIMBO_MIN 128

/* Caffeine refuses a candidate no more popular than the victim, but admits a
 * warm one (frequency >= 6) with probability 1/128 so an attacker cannot pin
 * a victim by flooding hash-colliding keys. */
#define WARM_FREQUENCY 6u

/* Caffeine's hill climber: 6.25% steps, decaying by 0.98 while the hit
 * ratio changes by less than 5 points, restarting at full size otherwise. */
#define CLIMB_STEP 0.0625
#define CLIMB_DECAY 0.98
#define CLIMB_RESTART 0.05
#define TRANSFER_MAX 1000

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
    _Atomic unsigned mask; /* W-TinyLFU records a hit when (tick & mask) == 0 */
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
    uint32_t tick;
    pthread_t owner;
    struct tstate *next;
    struct rbuf buf[] __attribute__((aligned(64)));
} __attribute__((aligned(64))); /* allocated aligned: no line shared with another thread's */

struct sc__local {
    struct shard *shards;
    unsigned nshards;
    uint64_t max_ttl;
    uint64_t id;          /* unique per store, never reused: names its thread states */
    /* Above: read on every hit, never written. Below: written now and then. */
    _Alignas(64) pthread_mutex_t ts_mu;
    struct tstate *states;
    _Atomic uint64_t spill_hits, spill_misses; /* threads without a state (no memory) */
    _Atomic uint64_t global_floor;
    _Atomic uint64_t floors[STRIPES];
};

static _Atomic uint64_t next_store_id = 1;

/* ---- hashing ---- */

static inline uint64_t mum(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t x;
    memcpy(&x, p, 8);
    return x;
}

static inline uint64_t load32(const unsigned char *p)
{
    uint32_t x;
    memcpy(&x, p, 4);
    return x;
}

/* A wyhash-style multiply-fold hash: short keys (the usual case) take two
 * loads and two multiplies, and every output bit depends on every input bit,
 * which matters because shard, tag, stripe and sketch each use other bits. */
uint64_t sc__local_hash(const char *key, size_t klen)
{
    const unsigned char *p = (const unsigned char *)key;
    uint64_t seed = 0x243f6a8885a308d3ull ^ mum(klen, 0xa0761d6478bd642full);
    size_t n = klen;
    while (n > 16) {
        seed = mum(load64(p) ^ 0xe7037ed1a0b428dbull, load64(p + 8) ^ seed);
        p += 16;
        n -= 16;
    }
    uint64_t a = 0, b = 0;
    if (n >= 8) {
        a = load64(p);
        b = load64(p + n - 8);
    } else if (n >= 4) {
        a = load32(p);
        b = load32(p + n - 4);
    } else if (n > 0) {
        a = ((uint64_t)p[0] << 16) | ((uint64_t)p[n >> 1] << 8) | p[n - 1];
    }
    return mum(mum(a ^ 0x8ebc6af09c88c6e3ull, b ^ seed), 0x589965cc75374cc3ull ^ klen);
}


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

/* ---- lists ---- */

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

/* ---- table ---- */

static inline uint32_t home(uint64_t hash, uint32_t size)
{
    return (uint32_t)(((uint64_t)(uint32_t)hash * size) >> 32);
}

static struct table *table_new(uint32_t size)
{
    size_t bytes = sizeof(struct table) + (size_t)size * sizeof(uint64_t) + ((size_t)size + NQ) * sizeof(struct link);
    struct table *t = malloc(bytes);
    if (!t)
        return NULL;
    t->size = size;
    for (uint32_t i = 0; i < size; i++)
        atomic_init(&t->slots[i], EMPTY);
    t->links = (struct link *)(void *)&t->slots[size];
    for (uint32_t q = 0; q < NQ; q++) {
        t->links[size + q].prev = (size + q) | (q << QSHIFT);
        t->links[size + q].next = size + q;
    }
    return t;
}

/* Key equality without a call for the usual short keys: two overlapping
 * 8-byte loads cover 8..16 bytes. */
static inline int key_eq(const char *a, const char *b, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t x, y, z, w;
        memcpy(&x, a, 8);
        memcpy(&y, b, 8);
        memcpy(&z, a + n - 8, 8);
        memcpy(&w, b + n - 8, 8);
        return ((x ^ y) | (z ^ w)) == 0;
    }
    return n == 0 || memcmp(a, b, n) == 0;
}

/* The lock-free lookup. Slots only ever change EMPTY -> entry, entry ->
 * entry (an update), entry -> TOMB and TOMB -> entry, so a probe that sees
 * EMPTY has passed every slot the key could be in, and at least one slot is
 * always EMPTY (the writer rebuilds before that could change). */
static inline sc_value *probe(const struct table *t, const char *key, size_t klen, uint64_t hash, uint32_t *pos)
{
    uint32_t n = t->size, i = home(hash, n);
    uint64_t tag = tag_of(hash);
    for (;;) {
        uint64_t sl = atomic_load_explicit(&t->slots[i], memory_order_acquire);
        if (sl == EMPTY)
            return NULL;
        if ((sl >> 48) == tag && sl != TOMB) {
            sc_value *v = entry_of(sl);
            if (v->klen == klen && key_eq(v->data, key, klen)) {
                *pos = i;
                return v;
            }
        }
        if (++i == n)
            i = 0;
    }
}

/* A writer's lookup (under the shard lock): the key's slot or UINT32_MAX,
 * and in *free_pos the first reusable slot on its probe path. */
static uint32_t find(const struct table *t, const char *key, size_t klen, uint64_t hash, uint32_t *free_pos)
{
    uint32_t n = t->size, i = home(hash, n), fr = UINT32_MAX;
    uint64_t tag = tag_of(hash);
    for (;;) {
        uint64_t sl = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
        if (sl == EMPTY) {
            if (fr == UINT32_MAX)
                fr = i;
            break;
        }
        if (sl == TOMB) {
            if (fr == UINT32_MAX)
                fr = i;
        } else if ((sl >> 48) == tag) {
            const sc_value *v = entry_of(sl);
            if (v->klen == klen && (klen == 0 || memcmp(v->data, key, klen) == 0))
                return i;
        }
        if (++i == n)
            i = 0;
    }
    if (free_pos)
        *free_pos = fr;
    return UINT32_MAX;
}

/* ---- grace periods ---- */

static void free_retired(uintptr_t p)
{
    unsigned kind = (unsigned)(p & 3);
    void *o = (void *)(p & ~(uintptr_t)3);
    if (kind == R_VALUE) {
        sc_value_release(o);
        return;
    }
    struct table *t = o;
    if (kind == R_TABLE_ENTRIES)
        for (uint32_t i = 0; i < t->size; i++) {
            uint64_t sl = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
            if (sl > TOMB)
                sc_value_release(entry_of(sl));
        }
    free(t);
}

/* Frees what no reader can still see. While a reader keeps a section open
 * (a slow sc_get_with callback) the limbo grows; the next poll then waits
 * for twice as many objects, so writers never poll on every call. */
static void reclaim(struct shard *s)
{
    uint64_t bound = sc__grace_bound();
    size_t k = 0;
    for (size_t i = 0; i < s->nlimbo; i++) {
        if (s->limbo[i].tag < bound)
            free_retired(s->limbo[i].p);
        else
            s->limbo[k++] = s->limbo[i];
    }
    s->nlimbo = k;
    s->poll_at = k * 2 > LIMBO_MIN ? k * 2 : LIMBO_MIN;
}

static void retire(struct shard *s, void *p, unsigned kind)
{
    uint64_t tag = sc__retire_tag();
    if (s->nlimbo == s->climbo) {
        size_t cap = s->climbo ? s->climbo * 2 : LIMBO_MIN;
        struct retired *r = realloc(s->limbo, cap * sizeof *r);
        if (!r) {
            /* No room to defer: wait out the grace period here. */
            sc__synchronize(tag);
            free_retired((uintptr_t)p | kind);
            return;
        }
        s->limbo = r;
        s->climbo = cap;
    }
    s->limbo[s->nlimbo++] = (struct retired){(uintptr_t)p | kind, tag};
    /* A table is large: hand it back at once if no reader holds it. */
    if (s->nlimbo >= s->poll_at || kind != R_VALUE)
        reclaim(s);
}

/* ---- per-thread state ---- */

static struct tstate *state_slow(sc__local *l, struct sc__thread *th)
{
    for (unsigned k = 1; k < 4; k++)
        if (th->stores[k].id == l->id) {
            void *st = th->stores[k].state;
            th->stores[k] = th->stores[0];
            th->stores[0].id = l->id;
            th->stores[0].state = st;
            return st;
        }
    pthread_t self = pthread_self();
    pthread_mutex_lock(&l->ts_mu);
    struct tstate *st = l->states;
    /* A thread id may be a dead thread's: its state is free to adopt. */
    while (st && !pthread_equal(st->owner, self))
        st = st->next;
    if (!st) {
        size_t size = (sizeof *st + l->nshards * sizeof(struct rbuf) + 63) / 64 * 64;
        st = aligned_alloc(64, size);
        if (st) {
            memset(st, 0, size);
            atomic_init(&st->hits, 0);
            atomic_init(&st->misses, 0);
            st->owner = self;
            st->next = l->states;
            l->states = st;
        }
    }
    pthread_mutex_unlock(&l->ts_mu);
    if (!st)
        return NULL;
    memmove(&th->stores[1], &th->stores[0], 3 * sizeof th->stores[0]);
    th->stores[0].id = l->id;
    th->stores[0].state = st;
    return st;
}

static inline struct tstate *state_of(sc__local *l, struct sc__thread *th)
{
    if (__builtin_expect(th->stores[0].id == l->id, 1))
        return th->stores[0].state;
    return state_slow(l, th);
}

static inline void count_hit(sc__local *l, struct tstate *st)
{
    if (__builtin_expect(st != NULL, 1))
        atomic_store_explicit(&st->hits, atomic_load_explicit(&st->hits, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&l->spill_hits, 1, memory_order_relaxed);
}

static inline void count_miss(sc__local *l, struct tstate *st)
{
    if (__builtin_expect(st != NULL, 1))
        atomic_store_explicit(&st->misses, atomic_load_explicit(&st->misses, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&l->spill_misses, 1, memory_order_relaxed);
}

/* ---- policies ---- */

/* The protected segment overflows into probation, most recent end: demoted
 * entries get one more chance before facing admission. */
static void demote_protected(struct shard *s)
{
    while ((s->qn[Q_PROTECTED] > s->prot_n || s->qb[Q_PROTECTED] > s->prot_b) && s->qn[Q_PROTECTED] > 1)
        move_to(s, head_of(s->t, Q_PROTECTED), Q_PROBATION);
}

/* A hit (or an update): recency for LRU; frequency and SLRU promotion for
 * W-TinyLFU. */
static void touch(struct shard *s, uint32_t i, uint32_t key32, unsigned weight)
{
    struct table *t = s->t;
    struct link *L = t->links;
    if (!s->lfu) {
        if (prev_of(&L[t->size + Q_WINDOW]) != i) {
            unlink_node(L, i);
            push_mru(L, t->size, Q_WINDOW, i);
        }
        return;
    }
    (void)weight;
    sc__sketch_increment(&s->sketch, key32);
    unsigned q = queue_of(&L[i]);
    if (q == Q_PROBATION) {
        move_to(s, i, Q_PROTECTED);
        demote_protected(s);
    } else if (prev_of(&L[t->size + q]) != i) {
        unlink_node(L, i);
        push_mru(L, t->size, q, i);
    }
}

/* Applies a thread's buffered hits (under the shard lock). Records of
 * another table, or whose slot now holds another key, are skipped. */
static void apply_hits(struct shard *s, struct rbuf *b, unsigned weight)
{
    struct table *t = s->t;
    uint32_t n = b->n;
    b->n = 0;
    if (b->t != t || !s->policy)
        return;
    /* The records are independent: prefetch their links and slots first
     * so the misses of a large table overlap. */
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = (uint32_t)b->rec[k];
        __builtin_prefetch(&t->links[i], 1);
        __builtin_prefetch(&t->slots[i], 0);
        if (s->lfu)
            sc__sketch_prefetch(&s->sketch, (uint32_t)(b->rec[k] >> 32));
    }
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = (uint32_t)b->rec[k];
        __builtin_prefetch(&t->links[prev_of(&t->links[i])], 1);
        __builtin_prefetch(&t->links[t->links[i].next], 1);
    }
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = (uint32_t)b->rec[k], key32 = (uint32_t)(b->rec[k] >> 32);
        uint64_t sl = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
        if (sl <= TOMB || (sl >> 48) != key32 >> 16)
            continue;
        touch(s, i, key32, weight);
        s->sample_hits += weight;
    }
}

static __attribute__((noinline)) void drain_full(struct shard *s, struct rbuf *b)
{
    if (pthread_mutex_trylock(&s->mu) != 0) {
        b->n = 0; /* lossy: the shard is busy, these hits are dropped */
        return;
    }
    apply_hits(s, b, s->lfu ? atomic_load_explicit(&s->mask, memory_order_relaxed) + 1 : 1);
    pthread_mutex_unlock(&s->mu);
}

static inline void record_hit(struct shard *s, struct tstate *st, const struct table *t,
                              uint32_t pos, uint64_t hash)
{
    if (!st || !s->policy)
        return;
    if (s->lfu && (++st->tick & atomic_load_explicit(&s->mask, memory_order_relaxed)))
        return;
    struct rbuf *b = &st->buf[s->index];
    if (b->t != t) {
        b->t = t;
        b->n = 0;
    }
    b->rec[b->n++] = (uint64_t)key32_of(hash) << 32 | pos;
    if (__builtin_expect(b->n == RB, 0))
        drain_full(s, b);
}

/* The writer's own thread's hits first, so its history is replayed in
 * order (under the shard lock). */
static void apply_own_hits(sc__local *l, struct shard *s)
{
    struct sc__thread *th = sc__self;
    if (!th || th->stores[0].id != l->id)
        return;
    struct tstate *st = th->stores[0].state;
    struct rbuf *b = &st->buf[s->index];
    if (b->n)
        apply_hits(s, b, s->lfu ? atomic_load_explicit(&s->mask, memory_order_relaxed) + 1 : 1);
}

static int admit(struct shard *s, uint32_t cand, uint32_t victim)
{
    unsigned fc = sc__sketch_frequency(&s->sketch, key32_of(hash_of(slot_entry(s->t, cand))));
    unsigned fv = sc__sketch_frequency(&s->sketch, key32_of(hash_of(slot_entry(s->t, victim))));
    if (fc > fv)
        return 1;
    if (fc < WARM_FREQUENCY)
        return 0;
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return (s->rng & 127) == 0;
}

/* The least recent entry of the first non-empty queue. */
static uint32_t oldest(const struct table *t)
{
    static const unsigned order[] = {Q_PROBATION, Q_PROTECTED, Q_WINDOW};
    for (unsigned k = 0; k < 3; k++) {
        uint32_t h = head_of(t, order[k]);
        if (h != UINT32_MAX)
            return h;
    }
    return UINT32_MAX;
}

/* Every entry that leaves the store (other than by being replaced with a
 * newer version) raises its stripe's floor to its version: the pod may have
 * served that version, so nothing older may come back for the key, even
 * after the entry is gone (a late event, a slow Redis read). */
static void drop(struct shard *s, uint32_t i)
{
    struct table *t = s->t;
    sc_value *v = slot_entry(t, i);
    if (v->version)
        raise_to(stripe_of(s->floors, hash_of(v)), v->version);
    unsigned q = queue_of(&t->links[i]);
    uint64_t w = weight_of(v);
    unlink_node(t->links, i);
    s->qn[q]--;
    s->qb[q] -= w;
    atomic_store_explicit(&t->slots[i], TOMB, memory_order_release);
    s->tombs++;
    s->count--;
    s->bytes -= w;
    retire(s, v, R_VALUE);
}

static void evict(struct shard *s, uint32_t i)
{
    s->evictions++;
    drop(s, i);
}

static inline int over_bounds(const struct shard *s)
{
    return (s->max_n && s->count > s->max_n) || (s->max_b && s->bytes > s->max_b);
}

static inline int over(const struct shard *s, unsigned q, uint64_t max_n, uint64_t max_b)
{
    return s->qn[q] > max_n || s->qb[q] > max_b;
}

/* W-TinyLFU samples hits (1 in 64 by default) while the shard is not near
 * full: no eviction is pending then, and the sketch and queues only need
 * the shape of the traffic. From 7/8 of a bound on, every hit is recorded,
 * because then each one can decide an eviction (sampling there costs up to
 * 4 points of hit ratio on the GLI and OLTP traces). Kept on the readers'
 * line, written only when it changes. */
static void update_mask(struct shard *s)
{
    if (!s->lfu)
        return;
    int full = (s->max_n && (uint64_t)s->count * 8 >= s->max_n * 7) || (s->max_b && s->bytes * 8 >= s->max_b * 7);
    unsigned m = full ? 0 : s->sample_mask;
    if (atomic_load_explicit(&s->mask, memory_order_relaxed) != m)
        atomic_store_explicit(&s->mask, m, memory_order_relaxed);
}

static void enforce_bounds(struct shard *s)
{
    struct table *t = s->t;
    if (!s->lfu) {
        while (over_bounds(s) && s->count)
            evict(s, head_of(t, Q_WINDOW));
        return;
    }
    /* Entries pushed out of the window line up at the recent end of
     * probation; each duels the least recent probation entry once. */
    uint32_t cand = UINT32_MAX;
    while (over(s, Q_WINDOW, s->win_n, s->win_b) && s->qn[Q_WINDOW] > 0) {
        uint32_t i = head_of(t, Q_WINDOW);
        move_to(s, i, Q_PROBATION);
        if (cand == UINT32_MAX)
            cand = i;
    }
    while (over_bounds(s) && s->count) {
        uint32_t victim = oldest(t);
        if (cand == UINT32_MAX || cand == victim) {
            if (cand == victim)
                cand = UINT32_MAX;
            evict(s, victim);
            continue;
        }
        uint32_t next = t->links[cand].next;
        if (next == t->size + Q_PROBATION)
            next = UINT32_MAX;
        if (admit(s, cand, victim))
            evict(s, victim);
        else
            evict(s, cand);
        cand = next;
    }
}

/* Window and protected limits from the window's share of the bound. */
static void set_limits(struct shard *s)
{
    if (s->max_n) {
        s->win_n = (uint64_t)(s->window * (double)s->max_n);
        if (s->win_n < 1)
            s->win_n = 1;
        if (s->win_n > s->max_n)
            s->win_n = s->max_n;
        s->prot_n = (s->max_n - s->win_n) * 4 / 5;
    }
    if (s->max_b) {
        s->win_b = (uint64_t)(s->window * (double)s->max_b);
        s->prot_b = (s->max_b - s->win_b) * 4 / 5;
    }
}

/* Requests per climber sample: Caffeine's 10 x capacity, but at most
 * 50000. A sample that long already measures the hit rate to a fraction of
 * a point, and a longer one leaves a large cache's window where it started
 * for most of a trace (OLTP at 10000-15000 entries: 1.2-2.4 points below
 * LRU with 10 x capacity, 1.3-1.9 above with the cap). */
static uint64_t climb_sample(size_t capacity)
{
    uint64_t n = 10 * (uint64_t)(capacity ? capacity : 1);
    return n < 50000 ? n : 50000;
}

/* Caffeine's hill climber. Each sample of sample_size requests (hits the
 * read buffers delivered, scaled by the sampling rate, plus inserts as
 * misses) compares its hit ratio with the last: if it did not fall, keep
 * stepping the window the same way, else turn around; steps decay while the
 * ratio is stable and restart at 6.25% of the bound when it jumps. A
 * growing window takes entries from probation (then protected) at once; a
 * shrinking one hands its oldest to probation through enforce_bounds. */
static void climb(struct shard *s)
{
    if (!s->climb)
        return;
    if ((s->max_n && (uint64_t)s->count * 2 < s->max_n) || (!s->max_n && s->bytes * 2 < s->max_b)) {
        /* Under half full nothing is evicted yet: as Caffeine waits for its
         * sketch, the climber starts once the shard is half full. */
        s->sample_hits = s->sample_misses = 0;
        return;
    }
    uint64_t requests = s->sample_hits + s->sample_misses;
    if (requests < s->sample_size)
        return;
    double rate = (double)s->sample_hits / (double)requests;
    double change = rate - s->prev_rate;
    double amount = change >= 0 ? s->step : -s->step;
    double next = (change >= CLIMB_RESTART || change <= -CLIMB_RESTART) ? (amount >= 0 ? CLIMB_STEP : -CLIMB_STEP)
                                                                         : CLIMB_DECAY * amount;
    s->prev_rate = rate;
    s->step = next;
    s->sample_hits = s->sample_misses = 0;
    double w = s->window + amount;
    double minw = s->max_n ? 1.0 / (double)s->max_n : 0.01;
    if (w < minw)
        w = minw;
    if (w > 1.0)
        w = 1.0;
    int grow = w > s->window;
    s->window = w;
    set_limits(s);
    demote_protected(s);
    if (!grow)
        return;
    struct table *t = s->t;
    for (unsigned k = 0; k < TRANSFER_MAX && !over(s, Q_WINDOW, s->win_n, s->win_b); k++) {
        uint32_t i = head_of(t, Q_PROBATION);
        if (i == UINT32_MAX)
            i = head_of(t, Q_PROTECTED);
        if (i == UINT32_MAX)
            break;
        uint64_t w8 = weight_of(slot_entry(t, i));
        if (s->qn[Q_WINDOW] + 1 > s->win_n || s->qb[Q_WINDOW] + w8 > s->win_b)
            break;
        move_to(s, i, Q_WINDOW);
    }
}

/* ---- resizing ---- */

/* Rebuilds the shard's table at size: live entries in list order, no
 * tombstones. Published with one pointer store; the old table is freed
 * after a grace period (its entries stay: the new table holds them). */
static int rebuild(struct shard *s, uint32_t size)
{
    struct table *o = s->t, *t = table_new(size);
    if (!t)
        return -1;
    for (unsigned q = 0; q < NQ; q++) {
        uint32_t os = o->size + q;
        for (uint32_t i = o->links[os].next; i != os; i = o->links[i].next) {
            uint64_t sl = atomic_load_explicit(&o->slots[i], memory_order_relaxed);
            uint64_t h = hash_of(entry_of(sl));
            uint32_t j = home(h, size);
            while (atomic_load_explicit(&t->slots[j], memory_order_relaxed) != EMPTY)
                j = j + 1 == size ? 0 : j + 1;
            atomic_store_explicit(&t->slots[j], tag_of(h) << 48 | (sl & PTR_MASK), memory_order_relaxed);
            push_mru(t->links, size, q, j);
        }
    }
    atomic_store_explicit(&s->tab, t, memory_order_release);
    s->t = t;
    s->tombs = 0;
    retire(s, o, R_TABLE);
    return 0;
}

/* Makes room for one more entry: live entries plus tombstones stay under
 * 7/8 of the slots. A rebuild sizes the table for 70% load (growing by
 * 1.25x steps as the shard fills), capped at 70% of the entry bound, so a
 * full shard that keeps evicting gathers a quarter of its bound in
 * tombstones between two rebuilds (a few slot moves per put). */
static int reserve(struct shard *s)
{
    uint64_t need = (uint64_t)s->count + 1;
    if ((need + s->tombs) * 8 <= (uint64_t)s->t->size * 7)
        return 0;
    uint64_t size = need * 10 / 7 + 2;
    if (size < 16)
        size = 16;
    if (s->max_n) {
        uint64_t full = s->max_n * 10 / 7 + 16;
        if (size > full && full * 7 >= (need + 1) * 8)
            size = full;
    }
    if (size > MAX_SLOTS)
        return -1;
    return rebuild(s, (uint32_t)size);
}

/* ---- store ---- */

static unsigned auto_shards(const sc__local_config *cfg)
{
    /* Enough shards that two writers rarely meet on a lock, but never so
     * many that a shard's share of the bounds (which the policy works
     * within) gets small: under 256 entries or 4 MiB a shard's hit ratio
     * and the largest storable item would suffer. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = 16;
    while (cpus > 0 && n < 64 && (long)n < cpus * 8)
        n <<= 1;
    if (cfg->max_entries)
        while (n > 1 && cfg->max_entries / n < 256)
            n >>= 1;
    if (cfg->max_bytes)
        while (n > 1 && cfg->max_bytes / n < ((size_t)4 << 20))
            n >>= 1;
    return n;
}

static int shard_init(struct shard *s, const sc__local_config *cfg, unsigned nshards, unsigned i)
{
    memset(s, 0, sizeof *s);
    if (pthread_mutex_init(&s->mu, NULL) != 0)
        return -1;
    s->t = table_new(16);
    if (!s->t) {
        pthread_mutex_destroy(&s->mu);
        return -1;
    }
    atomic_init(&s->tab, s->t);
    s->poll_at = LIMBO_MIN;
    s->max_n = cfg->max_entries ? cfg->max_entries / nshards : 0;
    if (cfg->max_entries && !s->max_n)
        s->max_n = 1;
    s->max_b = cfg->max_bytes ? cfg->max_bytes / nshards : 0;
    if (cfg->max_bytes && !s->max_b)
        s->max_b = 1;
    s->win_n = s->win_b = s->prot_n = s->prot_b = NO_LIMIT;
    s->policy = s->max_n || s->max_b;
    s->lfu = cfg->policy == SC_LOCAL_LFU && s->policy;
    s->rng = 0x9e3779b97f4a7c15ull + i;
    s->index = i;
    s->sample_mask = cfg->hit_sample ? cfg->hit_sample - 1 : 63;
    atomic_init(&s->mask, s->sample_mask);
    if (!s->lfu)
        return 0;
    /* Caffeine's start: 1% window, main 20% probation, 80% protected; the
     * climber starts by shrinking the window. */
    s->window = 0.01;
    s->step = -CLIMB_STEP;
    s->climb = !cfg->static_window;
    set_limits(s);
    /* With only a byte bound the entry count is unknown; start small and let
     * sc__local_put grow the sketch with the shard. */
    size_t cap = s->max_n ? s->max_n : 64;
    s->sample_size = climb_sample(cap);
    if (sc__sketch_resize(&s->sketch, cap) != 0) {
        free(s->t);
        pthread_mutex_destroy(&s->mu);
        return -1;
    }
    return 0;
}

static void shard_destroy(struct shard *s)
{
    for (size_t i = 0; i < s->nlimbo; i++)
        free_retired(s->limbo[i].p);
    free(s->limbo);
    free_retired((uintptr_t)s->t | R_TABLE_ENTRIES);
    sc__sketch_free(&s->sketch);
    pthread_mutex_destroy(&s->mu);
}

sc__local *sc__local_new(const sc__local_config *cfg)
{
    if (!cfg || (cfg->policy != SC_LOCAL_LRU && cfg->policy != SC_LOCAL_LFU))
        return NULL;
    unsigned n = cfg->shards;
    if (n > 256 || (n & (n - 1)))
        return NULL;
    if (cfg->hit_sample & (cfg->hit_sample - 1))
        return NULL;
    if (!n)
        n = auto_shards(cfg);
    sc__reclaim_init();
    sc__local *l = aligned_alloc(64, (sizeof *l + 63) / 64 * 64);
    if (!l)
        return NULL;
    memset(l, 0, sizeof *l);
    l->shards = aligned_alloc(64, n * sizeof *l->shards);
    if (!l->shards || pthread_mutex_init(&l->ts_mu, NULL) != 0) {
        free(l->shards);
        free(l);
        return NULL;
    }
    l->nshards = n;
    l->max_ttl = cfg->max_ttl_ms;
    l->id = atomic_fetch_add_explicit(&next_store_id, 1, memory_order_relaxed);
    atomic_init(&l->spill_hits, 0);
    atomic_init(&l->spill_misses, 0);
    atomic_init(&l->global_floor, 0);
    for (unsigned i = 0; i < STRIPES; i++)
        atomic_init(&l->floors[i], 0);
    for (unsigned i = 0; i < n; i++) {
        if (shard_init(&l->shards[i], cfg, n, i) != 0) {
            while (i--)
                shard_destroy(&l->shards[i]);
            pthread_mutex_destroy(&l->ts_mu);
            free(l->shards);
            free(l);
            return NULL;
        }
        l->shards[i].floors = l->floors;
    }
    return l;
}

void sc__local_free(sc__local *l)
{
    if (!l)
        return;
    /* No thread uses the store any more (the caller's contract), so what
     * waits for a grace period can go now. Threads' caches still name this
     * store's id, which no later store reuses. */
    for (unsigned i = 0; i < l->nshards; i++)
        shard_destroy(&l->shards[i]);
    struct sc__thread *th = sc__self;
    if (th)
        for (unsigned k = 0; k < 4; k++)
            if (th->stores[k].id == l->id)
                th->stores[k].id = 0;
    for (struct tstate *st = l->states, *nx; st; st = nx) {
        nx = st->next;
        free(st);
    }
    pthread_mutex_destroy(&l->ts_mu);
    free(l->shards);
    free(l);
}

/* An entry found expired by a lock-free reader is dropped under the lock,
 * if the key still holds an expired one (whichever: the reader's pointer
 * may have been freed and reused since, so it is not compared). */
static void expire_entry(struct shard *s, const char *key, size_t klen, uint64_t hash)
{
    pthread_mutex_lock(&s->mu);
    uint32_t pos = find(s->t, key, klen, hash, NULL);
    if (pos != UINT32_MAX && expired_at(slot_entry(s->t, pos), sc__now_ms())) {
        s->expirations++;
        drop(s, pos);
    }
    pthread_mutex_unlock(&s->mu);
}

static sc_status lookup(sc__local *l, const char *key, size_t klen, uint64_t hash, sc_value **out, int count)
{
    if (!l || !out || (!key && klen))
        return SC_ERR_INVALID;
    struct shard *s = shard_of(l, hash);
    struct sc__thread *th = sc__read_lock();
    const struct table *t = atomic_load_explicit(&s->tab, memory_order_acquire);
    uint32_t pos;
    sc_value *v = probe(t, key, klen, hash, &pos);
    int stale = 0;
    if (v) {
        if (__builtin_expect(atomic_load_explicit(&v->exp_lo, memory_order_relaxed) != 0 ||
                                 atomic_load_explicit(&v->exp_hi, memory_order_relaxed) != 0,
                             0) &&
            expired_at(v, sc__now_ms()))
            stale = 1;
        else
            atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    }
    sc__read_unlock(th);
    if (stale) {
        expire_entry(s, key, klen, hash);
        v = NULL;
    }
    if (count) {
        struct tstate *st = state_of(l, th);
        if (v) {
            count_hit(l, st);
            record_hit(s, st, t, pos, hash);
        } else {
            count_miss(l, st);
        }
    }
    if (!v)
        return SC_NOT_FOUND;
    *out = v;
    return SC_OK;
}

sc_status sc__local_get(sc__local *l, const char *key, size_t klen, uint64_t hash, sc_value **out)
{
    return lookup(l, key, klen, hash, out, 1);
}

sc_status sc__local_peek(sc__local *l, const char *key, size_t klen, uint64_t hash, sc_value **out)
{
    return lookup(l, key, klen, hash, out, 0);
}

sc_status sc__local_get_with(sc__local *l, const char *key, size_t klen, uint64_t hash, sc_read_fn fn, void *ud)
{
    if (!l || !fn || (!key && klen))
        return SC_ERR_INVALID;
    struct shard *s = shard_of(l, hash);
    struct sc__thread *th = sc__read_lock();
    const struct table *t = atomic_load_explicit(&s->tab, memory_order_acquire);
    uint32_t pos;
    sc_value *v = probe(t, key, klen, hash, &pos);
    int stale = 0;
    if (v) {
        if (__builtin_expect(atomic_load_explicit(&v->exp_lo, memory_order_relaxed) != 0 ||
                                 atomic_load_explicit(&v->exp_hi, memory_order_relaxed) != 0,
                             0) &&
            expired_at(v, sc__now_ms()))
            stale = 1;
        else
            fn(sc__value_bytes(v), v->len, v->version, ud);
    }
    sc__read_unlock(th);
    if (stale) {
        expire_entry(s, key, klen, hash);
        v = NULL;
    }
    if (!v)
        return SC_NOT_FOUND; /* not counted: the caller's fallback lookup counts it */
    struct tstate *st = state_of(l, th);
    count_hit(l, st);
    record_hit(s, st, t, pos, hash);
    return SC_OK;
}

static inline uint64_t floor_of(sc__local *l, uint64_t hash)
{
    uint64_t a = atomic_load_explicit(stripe_of(l->floors, hash), memory_order_acquire);
    uint64_t b = atomic_load_explicit(&l->global_floor, memory_order_acquire);
    return a > b ? a : b;
}

uint64_t sc__local_floor(sc__local *l, uint64_t hash)
{
    return l ? floor_of(l, hash) : 0;
}

/* A copy of v's bytes in a new allocation carrying key. */
static sc_value *keyed_copy(const sc_value *v, const char *key, size_t klen)
{
    sc_value *e = sc__value_alloc(v->len, klen);
    if (e) {
        if (klen)
            memcpy(e->data, key, klen);
        memcpy(sc__value_bytes(e), sc__value_bytes(v), v->len);
        e->version = v->version;
    }
    return e;
}

sc_status sc__local_put(sc__local *l, const char *key, size_t klen, uint64_t hash, sc_value *v, uint64_t ttl_ms,
                        uint64_t known, unsigned flags)
{
    int force = (flags & SC__PUT_FORCE) != 0;
    if (!l || !v || (!key && klen))
        return SC_ERR_INVALID;
    struct shard *s = shard_of(l, hash);
    uint64_t w = (uint64_t)klen + v->len;
    if (klen > UINT16_MAX || (s->max_b && w > s->max_b))
        return SC_ERR_TOO_LARGE;
    if (l->max_ttl && (!ttl_ms || ttl_ms > l->max_ttl))
        ttl_ms = l->max_ttl;

    /* An entry is one allocation that carries its key. A value built with
     * this key already is that allocation and is kept as it is; any other is
     * copied (outside the lock). */
    sc_value *e;
    if (v->klen == klen && (klen == 0 || memcmp(v->data, key, klen) == 0))
        e = sc__value_ref(v);
    else
        e = keyed_copy(v, key, klen);
    if (e && ((uintptr_t)e & ~PTR_MASK)) {
        /* A slot holds 48 pointer bits; never on x86-64 or arm64 user space. */
        sc_value_release(e);
        e = NULL;
    }
    uint64_t expire = 0;
    if (ttl_ms) {
        uint64_t now = sc__now_ms();
        expire = ttl_ms > UINT64_MAX - now ? UINT64_MAX : now + ttl_ms;
    }
    /* The thread's state, so its buffered hits go in before this write. */
    struct sc__thread *th = sc__self ? sc__self : sc__thread_register();
    state_of(l, th);

    pthread_mutex_lock(&s->mu);
    apply_own_hits(l, s);
    uint32_t free_pos = UINT32_MAX, pos = find(s->t, key, klen, hash, &free_pos);
    if (!e) {
        if (pos != UINT32_MAX)
            drop(s, pos);
        pthread_mutex_unlock(&s->mu);
        return SC_ERR_NOMEM;
    }
    /* An expired entry leaves first: leaving raises the floor to its
     * version, which the check below must then see (else an older value
     * could follow one that was served before it expired). */
    if (pos != UINT32_MAX && expired_at(slot_entry(s->t, pos), sc__now_ms())) {
        s->expirations++;
        drop(s, pos);
        pos = find(s->t, key, klen, hash, &free_pos);
    }
    if (!force && known < floor_of(l, hash)) {
        pthread_mutex_unlock(&s->mu);
        sc_value_release(e);
        return SC_ERR_CONFLICT;
    }
    if (pos != UINT32_MAX) {
        struct table *t = s->t;
        sc_value *old = slot_entry(t, pos);
        if (!force && old->version >= e->version) {
            pthread_mutex_unlock(&s->mu);
            sc_value_release(e);
            return SC_ERR_CONFLICT;
        }
        if (e == old) {
            /* The very value this key holds: readers may be reading it, so
             * its expiry is not rewritten in place. */
            sc_value *c = keyed_copy(old, key, klen);
            sc_value_release(e);
            if (!c) {
                drop(s, pos);
                pthread_mutex_unlock(&s->mu);
                return SC_ERR_NOMEM;
            }
            e = c;
        }
        unsigned q = queue_of(&t->links[pos]);
        s->qb[q] += w - weight_of(old);
        s->bytes += w - weight_of(old);
        sc__value_set_expiry(e, expire);
        atomic_store_explicit(&t->slots[pos], tag_of(hash) << 48 | (uintptr_t)e, memory_order_release);
        touch(s, pos, key32_of(hash), 1);
        retire(s, old, R_VALUE);
    } else {
        struct table *before = s->t;
        if (reserve(s) != 0) {
            pthread_mutex_unlock(&s->mu);
            sc_value_release(e);
            return SC_ERR_NOMEM;
        }
        if (s->t != before)
            find(s->t, key, klen, hash, &free_pos);
        struct table *t = s->t;
        if (atomic_load_explicit(&t->slots[free_pos], memory_order_relaxed) == TOMB)
            s->tombs--;
        sc__value_set_expiry(e, expire);
        push_mru(t->links, t->size, Q_WINDOW, free_pos);
        s->qn[Q_WINDOW]++;
        s->qb[Q_WINDOW] += w;
        s->count++;
        s->bytes += w;
        atomic_store_explicit(&t->slots[free_pos], tag_of(hash) << 48 | (uintptr_t)e, memory_order_release);
        if (s->lfu) {
            /* A byte-bounded shard learns its entry count as it fills; keep
             * the sketch at least that wide. */
            if (!s->max_n && s->count > s->sketch.capacity) {
                sc__sketch_resize(&s->sketch, (size_t)s->count * 2);
                s->sample_size = climb_sample(s->sketch.capacity);
            }
            sc__sketch_increment(&s->sketch, key32_of(hash));
            s->sample_misses++;
            climb(s);
        }
    }
    enforce_bounds(s);
    update_mask(s);
    pthread_mutex_unlock(&s->mu);
    return SC_OK;
}

int sc__local_remove(sc__local *l, const char *key, size_t klen, uint64_t hash, uint64_t below_version, uint64_t floor)
{
    if (!l || (!key && klen))
        return 0;
    struct shard *s = shard_of(l, hash);
    int removed = 0;
    pthread_mutex_lock(&s->mu);
    uint32_t pos = find(s->t, key, klen, hash, NULL);
    if (pos != UINT32_MAX && (below_version == UINT64_MAX || slot_entry(s->t, pos)->version < below_version)) {
        drop(s, pos);
        removed = 1;
    }
    /* Raised under the shard lock, so a put of this key, which checks the
     * floor under the same lock, is ordered entirely before or after. */
    raise_to(stripe_of(l->floors, hash), floor);
    update_mask(s);
    pthread_mutex_unlock(&s->mu);
    return removed;
}

void sc__local_each(sc__local *l, void (*fn)(sc_value *v, void *ud), void *ud)
{
    if (!l)
        return;
    for (unsigned k = 0; k < l->nshards; k++) {
        struct shard *s = &l->shards[k];
        pthread_mutex_lock(&s->mu);
        for (uint32_t i = 0; i < s->t->size; i++) {
            uint64_t sl = atomic_load_explicit(&s->t->slots[i], memory_order_relaxed);
            if (sl > TOMB)
                fn(entry_of(sl), ud);
        }
        pthread_mutex_unlock(&s->mu);
    }
}

size_t sc__local_clear(sc__local *l, uint64_t floor)
{
    if (!l)
        return 0;
    /* The floor first: a put that still saw the old floor must have
     * installed before its shard is emptied below, so it goes with the
     * rest. */
    raise_to(&l->global_floor, floor);
    size_t dropped = 0;
    for (unsigned k = 0; k < l->nshards; k++) {
        struct shard *s = &l->shards[k];
        pthread_mutex_lock(&s->mu);
        struct table *o = s->t, *t = table_new(16);
        dropped += s->count;
        if (!t) {
            /* No memory for a fresh table: drop the entries one by one. */
            for (uint32_t i = 0; i < o->size; i++)
                if (atomic_load_explicit(&o->slots[i], memory_order_relaxed) > TOMB)
                    drop(s, i);
        } else {
            for (uint32_t i = 0; i < o->size; i++) {
                uint64_t sl = atomic_load_explicit(&o->slots[i], memory_order_relaxed);
                if (sl <= TOMB)
                    continue;
                /* Under the shard lock, as in drop(): what was dropped may
                 * have been served, so nothing older may return for its key. */
                sc_value *v = entry_of(sl);
                if (v->version)
                    raise_to(stripe_of(l->floors, hash_of(v)), v->version);
            }
            atomic_store_explicit(&s->tab, t, memory_order_release);
            s->t = t;
            retire(s, o, R_TABLE_ENTRIES);
        }
        for (unsigned q = 0; q < NQ; q++)
            s->qn[q] = s->qb[q] = 0;
        s->count = 0;
        s->tombs = 0;
        s->bytes = 0;
        update_mask(s);
        pthread_mutex_unlock(&s->mu);
    }
    return dropped;
}

void sc__local_stats_get(sc__local *l, sc__local_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!l)
        return;
    for (unsigned k = 0; k < l->nshards; k++) {
        struct shard *s = &l->shards[k];
        pthread_mutex_lock(&s->mu);
        out->evictions += s->evictions;
        out->expirations += s->expirations;
        out->entries += s->count;
        out->bytes += s->bytes;
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_lock(&l->ts_mu);
    for (struct tstate *st = l->states; st; st = st->next) {
        out->hits += atomic_load_explicit(&st->hits, memory_order_relaxed);
        out->misses += atomic_load_explicit(&st->misses, memory_order_relaxed);
    }
    pthread_mutex_unlock(&l->ts_mu);
    out->hits += atomic_load_explicit(&l->spill_hits, memory_order_relaxed);
    out->misses += atomic_load_explicit(&l->spill_misses, memory_order_relaxed);
}
