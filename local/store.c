/* local/store.c: the sharded local store, whose hits take no lock: its
 * calls, the lock-free lookups and the per-thread state. The table and
 * grace periods are in index.c, the policies in policy.c, the shard they
 * share in shard.h.
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
 * The hits of sc_get, sc_get_ex, sc_get_many, sc_fetch and sc_fetch_batch
 * (sc__local_get_str, sc__local_get_pinned) pin their value in a pin of the
 * thread's own instead of counting a reference in the entry (reclaim.c),
 * so those hits and sc_get_with's write nothing another thread reads.
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

#include "local/shard.h"

static _Atomic uint64_t next_store_id = 1;

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

/* Returns the thread's hit count, which also paces W-TinyLFU's sampling. */
static inline uint64_t count_hit(sc__local *l, struct tstate *st)
{
    if (__builtin_expect(st != NULL, 1)) {
        uint64_t n = atomic_load_explicit(&st->hits, memory_order_relaxed) + 1;
        atomic_store_explicit(&st->hits, n, memory_order_relaxed);
        return n;
    }
    atomic_fetch_add_explicit(&l->spill_hits, 1, memory_order_relaxed);
    return 0;
}

static inline void count_miss(sc__local *l, struct tstate *st)
{
    if (__builtin_expect(st != NULL, 1))
        atomic_store_explicit(&st->misses, atomic_load_explicit(&st->misses, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    else
        atomic_fetch_add_explicit(&l->spill_misses, 1, memory_order_relaxed);
}

/* n: the thread's hit count (count_hit). */
static inline void record_hit(struct shard *s, struct tstate *st, const struct table *t, uint32_t pos, uint64_t hash,
                              uint64_t n)
{
    if (!st || !s->policy)
        return;
    if (s->lfu && (n & atomic_load_explicit(&s->mask, memory_order_relaxed)))
        return;
    struct rbuf *b = &st->buf[s->index];
    if (b->t != t) {
        b->t = t;
        b->n = 0;
    }
    b->rec[b->n++] = (uint64_t)key32_of(hash) << 32 | pos;
    if (__builtin_expect(b->n == RB, 0))
        sc__drain_full(s, b);
}

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
    s->t = sc__table_new(16);
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
    sc__set_limits(s);
    /* With only a byte bound the entry count is unknown; start small and let
     * sc__local_put grow the sketch with the shard. */
    size_t cap = s->max_n ? s->max_n : 64;
    s->sample_size = sc__climb_sample(cap);
    if (sc__sketch_resize(&s->sketch, cap) != 0) {
        free(s->t);
        pthread_mutex_destroy(&s->mu);
        return -1;
    }
    return 0;
}

/* A pinned value that finds no room to wait here stays allocated (a leak
 * under out of memory, never a free under a reader). */
static void shard_destroy(struct shard *s, const sc__pins *pins)
{
    for (size_t i = 0; i < s->nlimbo; i++)
        (void)sc__free_retired(s->limbo[i].p, pins);
    free(s->limbo);
    (void)sc__free_retired((uintptr_t)s->t | R_TABLE_ENTRIES, pins);
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
    /* Each shard keeps at least one entry and one byte of its share, so
     * more shards than the bounds hold would let the store keep up to one
     * entry (or byte) per shard, past the bounds: fewer shards then. */
    while (n > 1 && ((cfg->max_entries && cfg->max_entries < n) || (cfg->max_bytes && cfg->max_bytes < n)))
        n >>= 1;
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
    l->max_klen = cfg->max_key_bytes && cfg->max_key_bytes < UINT16_MAX ? cfg->max_key_bytes : UINT16_MAX;
    l->id = atomic_fetch_add_explicit(&next_store_id, 1, memory_order_relaxed);
    atomic_init(&l->spill_hits, 0);
    atomic_init(&l->spill_misses, 0);
    atomic_init(&l->global_floor, 0);
    for (unsigned i = 0; i < STRIPES; i++)
        atomic_init(&l->floors[i], 0);
    for (unsigned i = 0; i < n; i++) {
        if (shard_init(&l->shards[i], cfg, n, i) != 0) {
            sc__pins none = {.cap = 1}; /* a new store's values were never pinned */
            while (i--)
                shard_destroy(&l->shards[i], &none);
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
     * store's id, which no later store reuses. A value pinned by sc_get
     * outlives the store (sc__value_unstore). */
    sc__pins pins;
    sc__pins_collect(&pins);
    for (unsigned i = 0; i < l->nshards; i++)
        shard_destroy(&l->shards[i], &pins);
    sc__pins_sweep(&pins);
    sc__pins_done(&pins);
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
    uint32_t pos = sc__table_find(s->t, key, klen, hash, NULL);
    if (pos != UINT32_MAX && expired_at(slot_entry(s->t, pos), sc__now_ms())) {
        s->expirations++;
        sc__drop(s, pos);
    }
    pthread_mutex_unlock(&s->mu);
}

/* A hit's expiry check: the clock is read only for an entry that has an
 * expiry, which most hits do not. */
static inline int expired_now(const sc_value *v)
{
    return __builtin_expect(atomic_load_explicit(&v->exp_lo, memory_order_relaxed) != 0 ||
                                atomic_load_explicit(&v->exp_hi, memory_order_relaxed) != 0,
                            0) &&
           expired_at(v, sc__now_ms());
}

enum { COUNT_HIT = 1, COUNT_MISS = 2, LEND = 4, PIN = 8 };

/* Every lookup the store makes for a reader, always inlined with a
 * constant how, so each caller keeps only its own branches. A hit lends the
 * bytes to fn inside the read section (how has LEND) or takes a reference
 * into *out (how has PIN: a pin, while the thread has one free); an
 * expired entry is dropped (under the shard lock, after the section) and
 * is a miss. COUNT_HIT and COUNT_MISS say what is counted, a counted hit
 * being recorded for the policy too: a peek counts nothing, and the public
 * gets' first lookup counts only hits (the fallback it hands a miss to
 * counts the miss). */
static inline __attribute__((always_inline)) sc_status find(sc__local *l, const char *key, size_t klen, uint64_t hash,
                                                            sc_read_fn fn, void *ud, sc_value **out, unsigned how)
{
    struct shard *s = shard_of(l, hash);
    struct sc__thread *th = sc__read_lock();
    const struct table *t = atomic_load_explicit(&s->tab, memory_order_acquire);
    uint32_t pos;
    sc_value *v = probe(t, key, klen, hash, &pos), *handed = NULL;
    int stale = 0;
    if (v) {
        if (expired_now(v))
            stale = 1;
        else if (how & LEND)
            fn(sc__value_bytes(v), v->len, v->version, ud);
        else if (!(how & PIN) || !(handed = sc__pin(th, v)))
            atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
    }
    sc__read_unlock(th);
    if (stale) {
        expire_entry(s, key, klen, hash);
        v = NULL;
    }
    if (!v) {
        if (how & COUNT_MISS)
            count_miss(l, state_of(l, th));
        return SC_NOT_FOUND;
    }
    if (!(how & LEND))
        *out = handed ? handed : v;
    if (how & COUNT_HIT) {
        struct tstate *st = state_of(l, th);
        record_hit(s, st, t, pos, hash, count_hit(l, st));
    }
    return SC_OK;
}

sc_status sc__local_get(sc__local *l, const char *key, size_t klen, uint64_t hash, sc_value **out)
{
    if (!l || !out || (!key && klen))
        return SC_ERR_INVALID;
    return find(l, key, klen, hash, NULL, NULL, out, COUNT_HIT | COUNT_MISS);
}

sc_status sc__local_get_pinned(sc__local *l, const char *key, size_t klen, uint64_t hash, sc_value **out,
                               int *pins_left)
{
    if (!l || !out || (!key && klen))
        return SC_ERR_INVALID;
    if (pins_left && !*pins_left)
        return find(l, key, klen, hash, NULL, NULL, out, COUNT_HIT | COUNT_MISS);
    sc_status s = find(l, key, klen, hash, NULL, NULL, out, COUNT_HIT | COUNT_MISS | PIN);
    if (pins_left && s == SC_OK && !((uintptr_t)*out & 1))
        *pins_left = 0;
    return s;
}

sc_status sc__local_peek(sc__local *l, const char *key, size_t klen, uint64_t hash, sc_value **out)
{
    if (!l || !out || (!key && klen))
        return SC_ERR_INVALID;
    return find(l, key, klen, hash, NULL, NULL, out, 0);
}

sc_status sc__local_get_with(sc__local *l, const char *key, size_t klen, uint64_t hash, sc_read_fn fn, void *ud)
{
    if (!l || !fn || (!key && klen))
        return SC_ERR_INVALID;
    return find(l, key, klen, hash, fn, ud, NULL, LEND | COUNT_HIT);
}

/* A key given as a C string: measured into *klen, 1 when the store looks
 * it up (1 to max_key_bytes bytes; NULL and empty wrap to SIZE_MAX). */
static inline int str_key_ok(const sc__local *l, const char *key, size_t *klen)
{
    *klen = key ? strnlen(key, l->max_klen + 1) : 0;
    return *klen - 1 < l->max_klen;
}

/* Measured here, and the miss a tail call: the CPU overlaps one lookup's
 * cache misses with the next one's only while the instructions between
 * them fit in its reorder window, and every one a hit spends on a second
 * call level, saved registers or a key measured twice pushes the next
 * lookup out of it (bench/localhit; docs/benchmarks.md, issue 11). */
sc_status sc__local_get_with_str(sc__local *l, const char *key, sc_read_fn fn, void *ud, sc__local_miss_fn miss,
                                 void *ctx)
{
    size_t klen;
    if (str_key_ok(l, key, &klen) &&
        find(l, key, klen, sc__local_hash(key, klen), fn, ud, NULL, LEND | COUNT_HIT) == SC_OK)
        return SC_OK;
    return miss(ctx, key, fn, ud);
}

/* sc__local_get_with_str's path for sc_get: the same measuring, lookup and
 * tail calls, with a reference taken instead of a lend. */
sc_status sc__local_get_str(sc__local *l, const char *key, sc_value **out, sc__local_get_miss_fn miss, void *ctx)
{
    size_t klen;
    if (str_key_ok(l, key, &klen) &&
        find(l, key, klen, sc__local_hash(key, klen), NULL, NULL, out, COUNT_HIT | PIN) == SC_OK)
        return SC_OK;
    return miss(ctx, key, out);
}

/* Two passes over the keys before their lookups, so their cache misses
 * overlap instead of coming one after another: the first starts loading
 * each key's home slot, the second (the slots are in flight by then)
 * starts loading the entry a slot with the key's tag points at, for
 * reading (a pinned lookup writes nothing there, and a line fetched for
 * writing would leave every other reader's cache). Inside a read section:
 * a table or entry being replaced stays readable. */
void sc__local_prefetch(sc__local *l, const uint64_t *hashes, size_t n)
{
    if (!l || !hashes)
        return;
    struct sc__thread *th = sc__read_lock();
    for (size_t i = 0; i < n; i++) {
        const struct table *t = atomic_load_explicit(&shard_of(l, hashes[i])->tab, memory_order_acquire);
        __builtin_prefetch(&t->slots[home(hashes[i], t->size)]);
    }
    for (size_t i = 0; i < n; i++) {
        const struct table *t = atomic_load_explicit(&shard_of(l, hashes[i])->tab, memory_order_acquire);
        uint64_t sl = atomic_load_explicit(&t->slots[home(hashes[i], t->size)], memory_order_acquire);
        if (sl != EMPTY && sl != TOMB && (sl >> 48) == tag_of(hashes[i]))
            __builtin_prefetch(entry_of(sl));
    }
    sc__read_unlock(th);
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
    /* A pin's handle (an odd pointer) is the caller's, never a value to
     * store. */
    if (!l || !v || (!key && klen) || ((uintptr_t)v & 1))
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
    sc__apply_own_hits(l, s);
    uint32_t free_pos = UINT32_MAX, pos = sc__table_find(s->t, key, klen, hash, &free_pos);
    if (!e) {
        if (pos != UINT32_MAX)
            sc__drop(s, pos);
        pthread_mutex_unlock(&s->mu);
        return SC_ERR_NOMEM;
    }
    /* An expired entry leaves first: leaving raises the floor to its
     * version, which the check below must then see (else an older value
     * could follow one that was served before it expired). */
    if (pos != UINT32_MAX && expired_at(slot_entry(s->t, pos), sc__now_ms())) {
        s->expirations++;
        sc__drop(s, pos);
        pos = sc__table_find(s->t, key, klen, hash, &free_pos);
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
                sc__drop(s, pos);
                pthread_mutex_unlock(&s->mu);
                return SC_ERR_NOMEM;
            }
            e = c;
        }
        /* A forced put may replace a newer version (a reader's local-only
         * write, version 0): the one replaced leaves the store, and may have
         * been served, so the floor rises to it as for any entry leaving. */
        if (old->version > e->version)
            raise_to(stripe_of(l->floors, hash), old->version);
        unsigned q = queue_of(&t->links[pos]);
        s->qb[q] += w - weight_of(old);
        s->bytes += w - weight_of(old);
        sc__value_set_expiry(e, expire);
        atomic_store_explicit(&t->slots[pos], tag_of(hash) << 48 | (uintptr_t)e, memory_order_release);
        sc__touch(s, pos, key32_of(hash));
        sc__retire(s, old, R_VALUE);
    } else {
        struct table *before = s->t;
        if (sc__reserve(s) != 0) {
            pthread_mutex_unlock(&s->mu);
            sc_value_release(e);
            return SC_ERR_NOMEM;
        }
        if (s->t != before)
            sc__table_find(s->t, key, klen, hash, &free_pos);
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
                s->sample_size = sc__climb_sample(s->sketch.capacity);
            }
            sc__sketch_increment(&s->sketch, key32_of(hash));
            s->sample_misses++;
            sc__climb(s);
        }
    }
    sc__enforce_bounds(s);
    sc__update_mask(s);
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
    uint32_t pos = sc__table_find(s->t, key, klen, hash, NULL);
    if (pos != UINT32_MAX && (below_version == UINT64_MAX || slot_entry(s->t, pos)->version < below_version)) {
        sc__drop(s, pos);
        removed = 1;
    }
    /* Raised under the shard lock, so a put of this key, which checks the
     * floor under the same lock, is ordered entirely before or after. */
    raise_to(stripe_of(l->floors, hash), floor);
    sc__update_mask(s);
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

size_t sc__local_item_limit(const sc__local *l)
{
    return l->shards[0].max_b;
}

unsigned sc__local_shard_count(const sc__local *l)
{
    return l->nshards;
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
        struct table *o = s->t, *t = sc__table_new(16);
        dropped += s->count;
        if (!t) {
            /* No memory for a fresh table: drop the entries one by one. */
            for (uint32_t i = 0; i < o->size; i++)
                if (atomic_load_explicit(&o->slots[i], memory_order_relaxed) > TOMB)
                    sc__drop(s, i);
        } else {
            for (uint32_t i = 0; i < o->size; i++) {
                uint64_t sl = atomic_load_explicit(&o->slots[i], memory_order_relaxed);
                if (sl <= TOMB)
                    continue;
                /* Under the shard lock, as in sc__drop(): what was dropped may
                 * have been served, so nothing older may return for its key. */
                sc_value *v = entry_of(sl);
                if (v->version)
                    raise_to(stripe_of(l->floors, hash_of(v)), v->version);
            }
            atomic_store_explicit(&s->tab, t, memory_order_release);
            s->t = t;
            sc__retire(s, o, R_TABLE_ENTRIES);
        }
        for (unsigned q = 0; q < NQ; q++)
            s->qn[q] = s->qb[q] = 0;
        s->count = 0;
        s->tombs = 0;
        s->bytes = 0;
        sc__update_mask(s);
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
