/* local/store.c: the sharded local store (hash table, LRU and W-TinyLFU).
 *
 * Keys hash to one of a power-of-two number of shards, each behind its own
 * mutex with its own counters, so threads working on different shards share
 * no written cache line. A shard is:
 *  - an open-addressing table of 64-bit slots (32-bit hash tag | node index),
 *    linear probing with backward-shift deletion, at most 80% full; the tag
 *    keeps probes from touching entries that cannot match;
 *  - an array of 16-byte nodes (value pointer + 32-bit prev/next links) that
 *    thread the entries through the policy's lists; indices instead of
 *    pointers halve the links and let the array grow by realloc;
 *  - the entries themselves: one sc_value allocation each, holding the bytes,
 *    the key and the expiry, so an entry costs one malloc.
 * SC_LOCAL_LRU keeps one exact LRU list per shard. SC_LOCAL_LFU is W-TinyLFU
 * as in Caffeine: new entries enter a 1% LRU window; entries leaving it are
 * candidates for the main SLRU (probation 20% / protected 80%) and only
 * displace the probation victim if the frequency sketch says they are
 * requested more often. A store with no bound never evicts, so both policies
 * then reduce to one list.
 *
 * Version floors live in a fixed array of stripes indexed by hash bits that
 * the shard index does not use, so they mean the same thing whatever the
 * shard count, plus one store-wide floor. A stripe floor is raised under the
 * lock of the shard of the key that raises it, and a put compares the floor
 * under its own shard lock: for one key both are the same lock, so a put and
 * a remove of that key are ordered. Keys sharing a stripe only make each
 * other's installs more conservative (a refused install costs a Redis read,
 * never correctness); 16384 stripes keep that rare.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "local/local.h"

#define STRIPES 16384u

/* List sentinels live at fixed node indices; LRU uses only the first. */
enum { Q_WINDOW = 0, Q_PROBATION = 1, Q_PROTECTED = 2, NSENTINELS = 3 };

/* The queue of a node is kept in the top two bits of its prev link. */
#define QSHIFT 30
#define IDX_MASK ((1u << QSHIFT) - 1)
#define MAX_NODES IDX_MASK

#define NO_LIMIT UINT64_MAX

/* Caffeine refuses a candidate no more popular than the victim, but admits a
 * warm one (frequency >= 6) with probability 1/128 so an attacker cannot pin
 * a victim by flooding hash-colliding keys. */
#define WARM_FREQUENCY 6u

struct node {
    sc_value *v; /* NULL when the node is free */
    uint32_t prev; /* queue << QSHIFT | index */
    uint32_t next; /* index; next free node while free */
};

struct shard {
    pthread_mutex_t mu;
    _Atomic uint64_t *floors; /* the store's stripe floors */
    struct node *nodes;
    uint64_t *slots;
    uint32_t ncap, nused, nfree; /* nfree: head of the free list, 0 = none */
    uint32_t tsize, count;
    uint64_t bytes;
    uint64_t qn[3], qb[3];         /* entries and bytes per queue */
    uint64_t max_n, max_b;         /* 0 = unbounded */
    uint64_t win_n, win_b, prot_n, prot_b; /* NO_LIMIT = none */
    uint64_t hits, misses, evictions, expirations;
    uint64_t rng;
    int lfu;
    sc__sketch sketch;
} __attribute__((aligned(64)));

struct sc__local {
    struct shard *shards;
    unsigned nshards;
    uint64_t max_ttl;
    _Atomic uint64_t global_floor;
    _Atomic uint64_t floors[STRIPES];
};

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

static inline _Atomic uint64_t *stripe_of(sc__local *l, uint64_t hash)
{
    return &l->floors[(hash >> 32) & (STRIPES - 1)];
}

static inline void raise_to(_Atomic uint64_t *a, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(a, memory_order_relaxed);
    while (cur < v && !atomic_compare_exchange_weak_explicit(a, &cur, v, memory_order_acq_rel, memory_order_relaxed))
        ;
}

static inline const char *key_of(const sc_value *v)
{
    return v->data;
}

static inline uint64_t weight_of(const sc_value *v)
{
    return (uint64_t)v->klen + v->len;
}

/* ---- lists ---- */

static inline uint32_t prev_of(const struct node *n)
{
    return n->prev & IDX_MASK;
}

static inline unsigned queue_of(const struct node *n)
{
    return n->prev >> QSHIFT;
}

static inline void set_prev(struct node *n, uint32_t p)
{
    n->prev = (n->prev & ~IDX_MASK) | p;
}

static inline void unlink_node(struct node *nodes, uint32_t i)
{
    uint32_t p = prev_of(&nodes[i]), nx = nodes[i].next;
    nodes[p].next = nx;
    set_prev(&nodes[nx], p);
}

/* Appends at the most recent end (just before the sentinel). */
static inline void push_mru(struct node *nodes, unsigned q, uint32_t i)
{
    uint32_t last = prev_of(&nodes[q]);
    nodes[i].next = q;
    nodes[i].prev = last | ((uint32_t)q << QSHIFT);
    nodes[last].next = i;
    set_prev(&nodes[q], i);
}

static inline void move_to(struct shard *s, uint32_t i, unsigned q)
{
    unsigned from = queue_of(&s->nodes[i]);
    uint64_t w = weight_of(s->nodes[i].v);
    unlink_node(s->nodes, i);
    push_mru(s->nodes, q, i);
    s->qn[from]--;
    s->qb[from] -= w;
    s->qn[q]++;
    s->qb[q] += w;
}

/* ---- table ---- */

static inline uint32_t home(const struct shard *s, uint32_t tag)
{
    /* Multiply-shift maps the tag onto any table size, so the table need not
     * be a power of two and a bounded store can size it to exactly 80%. */
    return (uint32_t)(((uint64_t)tag * s->tsize) >> 32);
}

static inline uint32_t step(const struct shard *s, uint32_t i)
{
    return ++i == s->tsize ? 0 : i;
}

/* The node holding key, or 0; *pos gets its slot. */
static inline uint32_t find(const struct shard *s, const char *key, size_t klen, uint64_t hash,
                            uint32_t *pos)
{
    if (!s->tsize)
        return 0;
    uint32_t tag = (uint32_t)hash;
    for (uint32_t i = home(s, tag);; i = step(s, i)) {
        uint64_t sl = s->slots[i];
        if (!sl)
            return 0;
        if ((uint32_t)(sl >> 32) != tag)
            continue;
        uint32_t idx = (uint32_t)sl;
        const sc_value *v = s->nodes[idx].v;
        if (v->klen == klen && (klen == 0 || memcmp(key_of(v), key, klen) == 0)) {
            *pos = i;
            return idx;
        }
    }
}

static void slot_insert(struct shard *s, uint32_t tag, uint32_t idx)
{
    uint32_t i = home(s, tag);
    while (s->slots[i])
        i = step(s, i);
    s->slots[i] = (uint64_t)tag << 32 | idx;
}

/* Backward-shift deletion: later members of the probe run move into the
 * hole when their home allows it, so no tombstones ever accumulate. */
static void slot_delete(struct shard *s, uint32_t i)
{
    for (uint32_t j = step(s, i);; j = step(s, j)) {
        uint64_t sl = s->slots[j];
        if (!sl)
            break;
        uint32_t h = home(s, (uint32_t)(sl >> 32));
        int stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
        if (stays)
            continue;
        s->slots[i] = sl;
        i = j;
    }
    s->slots[i] = 0;
}

/* The slot of node idx, found again from its key. A caller that passed a
 * hash other than sc__local_hash(key) may have filed it elsewhere, so fall
 * back to a scan rather than corrupt the table. */
static uint32_t slot_of(const struct shard *s, uint32_t idx)
{
    const sc_value *v = s->nodes[idx].v;
    uint32_t tag = (uint32_t)sc__local_hash(key_of(v), v->klen);
    for (uint32_t i = home(s, tag); s->slots[i]; i = step(s, i))
        if ((uint32_t)s->slots[i] == idx)
            return i;
    for (uint32_t i = 0;; i++)
        if ((uint32_t)s->slots[i] == idx)
            return i;
}

static int table_resize(struct shard *s, uint32_t size)
{
    uint64_t *slots = calloc(size, sizeof *slots);
    if (!slots)
        return -1;
    uint64_t *old = s->slots;
    uint32_t oldsize = s->tsize;
    s->slots = slots;
    s->tsize = size;
    for (uint32_t i = 0; i < oldsize; i++)
        if (old[i])
            slot_insert(s, (uint32_t)(old[i] >> 32), (uint32_t)old[i]);
    free(old);
    return 0;
}

/* Makes room for one more entry: a free node and a table below 80% load.
 * Growth doubles, but a bound on entries caps both arrays at what the bound
 * needs, so a full bounded shard wastes no slack. */
static int reserve(struct shard *s)
{
    if (!s->nfree && s->nused == s->ncap) {
        uint64_t cap = s->ncap ? (uint64_t)s->ncap * 2 : 64;
        if (s->max_n && cap > s->max_n + 1 + NSENTINELS)
            cap = s->max_n + 1 + NSENTINELS;
        if (cap > MAX_NODES)
            cap = MAX_NODES;
        if (cap <= s->ncap)
            return -1;
        struct node *nodes = realloc(s->nodes, cap * sizeof *nodes);
        if (!nodes)
            return -1;
        s->nodes = nodes;
        s->ncap = (uint32_t)cap;
    }
    uint64_t need = (uint64_t)s->count + 1;
    if (need * 5 > (uint64_t)s->tsize * 4) {
        uint64_t size = s->tsize ? (uint64_t)s->tsize * 2 : 16;
        if (s->max_n) {
            uint64_t full = (s->max_n + 1) * 5 / 4 + 1;
            if (size > full && full * 4 >= need * 5)
                size = full;
        }
        if (size > UINT32_MAX || table_resize(s, (uint32_t)size) != 0)
            return -1;
    }
    return 0;
}

/* ---- entries ---- */

/* Every entry that leaves the store (other than by being replaced with a
 * newer version) raises its stripe's floor to its version: the pod may have
 * served that version, so nothing older may come back for the key, even
 * after the entry is gone (a late event, a slow Redis read). */
static void drop(struct shard *s, uint32_t idx, uint32_t pos)
{
    struct node *n = &s->nodes[idx];
    sc_value *v = n->v;
    if (v->version)
        raise_to(&s->floors[(sc__local_hash(key_of(v), v->klen) >> 32) & (STRIPES - 1)], v->version);
    unsigned q = queue_of(n);
    uint64_t w = weight_of(v);
    unlink_node(s->nodes, idx);
    s->qn[q]--;
    s->qb[q] -= w;
    slot_delete(s, pos);
    s->count--;
    s->bytes -= w;
    n->v = NULL;
    n->next = s->nfree;
    s->nfree = idx;
    sc_value_release(v);
}

static void insert(struct shard *s, uint64_t hash, sc_value *e)
{
    uint32_t idx;
    if (s->nfree) {
        idx = s->nfree;
        s->nfree = s->nodes[idx].next;
    } else {
        idx = s->nused++;
    }
    s->nodes[idx].v = e;
    push_mru(s->nodes, Q_WINDOW, idx);
    s->qn[Q_WINDOW]++;
    s->qb[Q_WINDOW] += weight_of(e);
    slot_insert(s, (uint32_t)hash, idx);
    s->count++;
    s->bytes += weight_of(e);
}

static inline int over_bounds(const struct shard *s)
{
    return (s->max_n && s->count > s->max_n) || (s->max_b && s->bytes > s->max_b);
}

static inline int over(const struct shard *s, unsigned q, uint64_t max_n, uint64_t max_b)
{
    return s->qn[q] > max_n || s->qb[q] > max_b;
}

static void evict(struct shard *s, uint32_t idx)
{
    s->evictions++;
    drop(s, idx, slot_of(s, idx));
}

static inline uint64_t hash_of(const struct node *n)
{
    return sc__local_hash(key_of(n->v), n->v->klen);
}

/* ---- policies ---- */

/* A hit (or an update): recency for LRU; frequency and SLRU promotion for
 * W-TinyLFU. */
static inline void touch(struct shard *s, uint32_t idx, uint64_t hash)
{
    struct node *nodes = s->nodes;
    if (!s->lfu) {
        if (prev_of(&nodes[Q_WINDOW]) != idx) {
            unlink_node(nodes, idx);
            push_mru(nodes, Q_WINDOW, idx);
        }
        return;
    }
    sc__sketch_increment(&s->sketch, hash);
    unsigned q = queue_of(&nodes[idx]);
    if (q == Q_PROBATION) {
        move_to(s, idx, Q_PROTECTED);
        /* The protected segment overflows into probation, most recent end:
         * demoted entries get one more chance before facing admission. */
        while (over(s, Q_PROTECTED, s->prot_n, s->prot_b) && s->qn[Q_PROTECTED] > 1)
            move_to(s, nodes[Q_PROTECTED].next, Q_PROBATION);
    } else if (prev_of(&nodes[q]) != idx) {
        unlink_node(nodes, idx);
        push_mru(nodes, q, idx);
    }
}

static int admit(struct shard *s, uint32_t cand, uint32_t victim)
{
    unsigned fc = sc__sketch_frequency(&s->sketch, hash_of(&s->nodes[cand]));
    unsigned fv = sc__sketch_frequency(&s->sketch, hash_of(&s->nodes[victim]));
    if (fc > fv)
        return 1;
    if (fc < WARM_FREQUENCY)
        return 0;
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return (s->rng & 127) == 0;
}

/* The least recent entry of the first non-empty queue, or 0. */
static uint32_t oldest(const struct shard *s)
{
    static const unsigned order[] = {Q_PROBATION, Q_PROTECTED, Q_WINDOW};
    for (unsigned k = 0; k < 3; k++)
        if (s->nodes[order[k]].next != order[k])
            return s->nodes[order[k]].next;
    return 0;
}

static void enforce_bounds(struct shard *s)
{
    if (!s->lfu) {
        while (over_bounds(s) && s->count)
            evict(s, s->nodes[Q_WINDOW].next);
        return;
    }
    /* Entries pushed out of the window line up at the recent end of
     * probation; each duels the least recent probation entry once. */
    uint32_t cand = 0;
    while (over(s, Q_WINDOW, s->win_n, s->win_b) && s->qn[Q_WINDOW] > 0) {
        uint32_t i = s->nodes[Q_WINDOW].next;
        move_to(s, i, Q_PROBATION);
        if (!cand)
            cand = i;
    }
    while (over_bounds(s) && s->count) {
        uint32_t victim = oldest(s);
        if (!cand || cand == victim) {
            if (cand == victim)
                cand = 0;
            evict(s, victim);
            continue;
        }
        uint32_t next = s->nodes[cand].next;
        if (next == Q_PROBATION)
            next = 0;
        if (admit(s, cand, victim)) {
            evict(s, victim);
        } else {
            evict(s, cand);
        }
        cand = next;
    }
}

/* ---- store ---- */

static unsigned auto_shards(const sc__local_config *cfg)
{
    /* Enough shards that two threads rarely meet on a lock, but never so many
     * that a shard's share of the bounds (which the policy works within)
     * gets small: under 256 entries or 4 MiB a shard's hit ratio and the
     * largest storable item would suffer. */
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
    s->nodes = malloc(NSENTINELS * sizeof *s->nodes);
    if (!s->nodes) {
        pthread_mutex_destroy(&s->mu);
        return -1;
    }
    for (uint32_t q = 0; q < NSENTINELS; q++) {
        s->nodes[q].v = NULL;
        s->nodes[q].prev = q;
        s->nodes[q].next = q;
    }
    s->ncap = s->nused = NSENTINELS;
    s->max_n = cfg->max_entries ? cfg->max_entries / nshards : 0;
    if (cfg->max_entries && !s->max_n)
        s->max_n = 1;
    s->max_b = cfg->max_bytes ? cfg->max_bytes / nshards : 0;
    if (cfg->max_bytes && !s->max_b)
        s->max_b = 1;
    s->win_n = s->win_b = s->prot_n = s->prot_b = NO_LIMIT;
    s->lfu = cfg->policy == SC_LOCAL_LFU && (s->max_n || s->max_b);
    s->rng = 0x9e3779b97f4a7c15ull + i;
    if (!s->lfu)
        return 0;
    /* Caffeine's static split: 1% window, main 20% probation, 80% protected. */
    if (s->max_n) {
        s->win_n = s->max_n / 100 ? s->max_n / 100 : 1;
        s->prot_n = (s->max_n - (s->max_n > s->win_n ? s->win_n : s->max_n)) * 4 / 5;
    }
    if (s->max_b) {
        s->win_b = s->max_b / 100;
        s->prot_b = (s->max_b - s->win_b) * 4 / 5;
    }
    /* With only a byte bound the entry count is unknown; start small and let
     * sc__local_put grow the sketch with the shard. */
    size_t cap = s->max_n ? s->max_n : 64;
    if (sc__sketch_resize(&s->sketch, cap) != 0) {
        free(s->nodes);
        pthread_mutex_destroy(&s->mu);
        return -1;
    }
    return 0;
}

static void shard_destroy(struct shard *s)
{
    for (uint32_t i = NSENTINELS; i < s->nused; i++)
        sc_value_release(s->nodes[i].v);
    free(s->nodes);
    free(s->slots);
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
    if (!n)
        n = auto_shards(cfg);
    sc__local *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->shards = aligned_alloc(64, n * sizeof *l->shards);
    if (!l->shards) {
        free(l);
        return NULL;
    }
    l->nshards = n;
    l->max_ttl = cfg->max_ttl_ms;
    atomic_init(&l->global_floor, 0);
    for (unsigned i = 0; i < STRIPES; i++)
        atomic_init(&l->floors[i], 0);
    for (unsigned i = 0; i < n; i++) {
        if (shard_init(&l->shards[i], cfg, n, i) != 0) {
            while (i--)
                shard_destroy(&l->shards[i]);
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
    for (unsigned i = 0; i < l->nshards; i++)
        shard_destroy(&l->shards[i]);
    free(l->shards);
    free(l);
}

static inline int expired(const sc_value *v)
{
    return v->expire && sc__now_ms() >= v->expire;
}

static sc_status lookup(sc__local *l, const char *key, size_t klen, uint64_t hash, sc_value **out,
                        int count)
{
    if (!l || !out || (!key && klen))
        return SC_ERR_INVALID;
    struct shard *s = shard_of(l, hash);
    pthread_mutex_lock(&s->mu);
    uint32_t pos, idx = find(s, key, klen, hash, &pos);
    if (idx && expired(s->nodes[idx].v)) {
        s->expirations++;
        drop(s, idx, pos);
        idx = 0;
    }
    if (!idx) {
        s->misses += (uint64_t)count;
        pthread_mutex_unlock(&s->mu);
        return SC_NOT_FOUND;
    }
    if (count) {
        s->hits++;
        touch(s, idx, hash);
    }
    *out = sc__value_ref(s->nodes[idx].v);
    pthread_mutex_unlock(&s->mu);
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

static inline uint64_t floor_of(sc__local *l, uint64_t hash)
{
    uint64_t a = atomic_load_explicit(stripe_of(l, hash), memory_order_acquire);
    uint64_t b = atomic_load_explicit(&l->global_floor, memory_order_acquire);
    return a > b ? a : b;
}

uint64_t sc__local_floor(sc__local *l, uint64_t hash)
{
    return l ? floor_of(l, hash) : 0;
}

/* Out of memory while replacing: drop the old entry so the key never keeps
 * a value the caller meant to replace. */
static void drop_key(struct shard *s, const char *key, size_t klen, uint64_t hash)
{
    uint32_t pos, idx = find(s, key, klen, hash, &pos);
    if (idx)
        drop(s, idx, pos);
}

sc_status sc__local_put(sc__local *l, const char *key, size_t klen, uint64_t hash, sc_value *v,
                        uint64_t ttl_ms, uint64_t known, unsigned flags)
{
    int force = (flags & SC__PUT_FORCE) != 0;
    if (!l || !v || (!key && klen))
        return SC_ERR_INVALID;
    struct shard *s = shard_of(l, hash);
    uint64_t w = (uint64_t)klen + v->len;
    if (klen > IDX_MASK || (s->max_b && w > s->max_b))
        return SC_ERR_TOO_LARGE;
    if (l->max_ttl && (!ttl_ms || ttl_ms > l->max_ttl))
        ttl_ms = l->max_ttl;

    /* An entry is one allocation that carries its key. A value built with
     * this key already is that allocation and is kept as it is; any other is
     * copied (outside the lock). */
    sc_value *e;
    if (v->klen == klen && (klen == 0 || memcmp(v->data, key, klen) == 0)) {
        e = sc__value_ref(v);
    } else {
        e = sc__value_alloc(v->len, klen);
        if (e) {
            if (klen)
                memcpy(e->data, key, klen);
            memcpy(sc__value_bytes(e), sc__value_bytes(v), v->len);
            e->version = v->version;
        }
    }
    uint64_t expire = 0;
    if (ttl_ms) {
        uint64_t now = sc__now_ms();
        expire = ttl_ms > UINT64_MAX - now ? UINT64_MAX : now + ttl_ms;
    }

    pthread_mutex_lock(&s->mu);
    if (!e) {
        drop_key(s, key, klen, hash);
        pthread_mutex_unlock(&s->mu);
        return SC_ERR_NOMEM;
    }
    if (!force && known < floor_of(l, hash)) {
        pthread_mutex_unlock(&s->mu);
        sc_value_release(e);
        return SC_ERR_CONFLICT;
    }
    uint32_t pos, idx = find(s, key, klen, hash, &pos);
    if (idx && expired(s->nodes[idx].v)) {
        s->expirations++;
        drop(s, idx, pos);
        idx = 0;
    }
    if (idx) {
        struct node *n = &s->nodes[idx];
        sc_value *old = n->v;
        if (!force && old->version >= e->version) {
            pthread_mutex_unlock(&s->mu);
            sc_value_release(e);
            return SC_ERR_CONFLICT;
        }
        unsigned q = queue_of(n);
        s->qb[q] += w - weight_of(old);
        s->bytes += w - weight_of(old);
        /* Written only once the put commits, and under the lock: a kept
         * value may be the very one this key holds, whose expiry lookups
         * read under this lock. */
        e->expire = expire;
        n->v = e;
        touch(s, idx, hash);
        sc_value_release(old);
    } else {
        if (reserve(s) != 0) {
            pthread_mutex_unlock(&s->mu);
            sc_value_release(e);
            return SC_ERR_NOMEM;
        }
        e->expire = expire;
        insert(s, hash, e);
        if (s->lfu) {
            /* A byte-bounded shard learns its entry count as it fills; keep
             * the sketch at least that wide. */
            if (!s->max_n && s->count > s->sketch.capacity)
                sc__sketch_resize(&s->sketch, (size_t)s->count * 2);
            sc__sketch_increment(&s->sketch, hash);
        }
    }
    enforce_bounds(s);
    pthread_mutex_unlock(&s->mu);
    return SC_OK;
}

int sc__local_remove(sc__local *l, const char *key, size_t klen, uint64_t hash, uint64_t below_version,
                     uint64_t floor)
{
    if (!l || (!key && klen))
        return 0;
    struct shard *s = shard_of(l, hash);
    int removed = 0;
    pthread_mutex_lock(&s->mu);
    uint32_t pos, idx = find(s, key, klen, hash, &pos);
    if (idx && (below_version == UINT64_MAX || s->nodes[idx].v->version < below_version)) {
        drop(s, idx, pos);
        removed = 1;
    }
    /* Raised under the shard lock, so a put of this key, which checks the
     * floor under the same lock, is ordered entirely before or after. */
    raise_to(stripe_of(l, hash), floor);
    pthread_mutex_unlock(&s->mu);
    return removed;
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
        for (uint32_t i = NSENTINELS; i < s->nused; i++) {
            sc_value *v = s->nodes[i].v;
            if (!v)
                continue;
            /* Under the shard lock, as in drop(): what was dropped may have
             * been served, so nothing older may return for its key. */
            if (v->version)
                raise_to(stripe_of(l, sc__local_hash(key_of(v), v->klen)), v->version);
            sc_value_release(v);
        }
        dropped += s->count;
        for (uint32_t q = 0; q < NSENTINELS; q++) {
            s->nodes[q].prev = q;
            s->nodes[q].next = q;
            s->qn[q] = s->qb[q] = 0;
        }
        s->nused = NSENTINELS;
        s->nfree = 0;
        s->count = 0;
        s->bytes = 0;
        if (s->slots)
            memset(s->slots, 0, (size_t)s->tsize * sizeof *s->slots);
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
        out->hits += s->hits;
        out->misses += s->misses;
        out->evictions += s->evictions;
        out->expirations += s->expirations;
        out->entries += s->count;
        out->bytes += s->bytes;
        pthread_mutex_unlock(&s->mu);
    }
}
