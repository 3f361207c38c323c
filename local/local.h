/* local/: the in-process tier. Sharded hash tables with an exact LRU or a
 * W-TinyLFU policy per shard, bounded by entries and bytes, with per-entry
 * expiry, and the immutable reference-counted sc_value.
 *
 * Knows nothing of Redis or events. Every function is thread-safe. Versions
 * are opaque increasing numbers to this module, and one rule orders every
 * install: each key has a version floor (the higher of its stripe's floor and
 * the store-wide floor); a put says up to which version its value is known
 * current ("known") and is refused when known is below the floor, or when the
 * key already holds a version >= the new one. Floors only rise: a remove
 * raises its stripe's floor to the version the caller names, every entry that
 * leaves the store (eviction, expiry, admission refusal, clear) raises it to
 * its own version, and a clear raises the store-wide floor.
 */
#ifndef SC_LOCAL_H
#define SC_LOCAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <synccache/synccache.h>

/* ---- values ---- */

/* New value holding a copy of len bytes (plus a trailing NUL), refcount 1.
 * NULL on out of memory. data may be NULL when len is 0. */
sc_value *sc__value_new(const void *data, size_t len, uint64_t version);
/* Like sc__value_new, but the allocation also carries key: a store put of
 * such a value under that same key keeps v itself instead of copying it. */
sc_value *sc__value_new_keyed(const char *key, size_t klen, const void *data, size_t len, uint64_t version);
/* Adds a reference; returns v. */
sc_value *sc__value_ref(sc_value *v);
/* The public sc_value_data/size/version/release are defined in local/value.c. */

/* ---- clock ---- */

/* Monotonic milliseconds from a cheap coarse clock (a few ms resolution),
 * used for TTLs on the hot path. */
uint64_t sc__now_ms(void);

/* ---- store ---- */

typedef struct sc__local sc__local;

typedef struct sc__local_config {
    sc_local_policy policy;
    size_t max_entries;   /* 0 = unbounded */
    size_t max_bytes;     /* 0 = unbounded; counts key + value bytes */
    uint64_t max_ttl_ms;  /* cap on every entry's life; 0 = none */
    unsigned shards;      /* 0 = automatic (1 for small bounds); else a power of two <= 256,
                             halved while it exceeds max_entries or max_bytes */
    size_t max_key_bytes; /* the longest key sc__local_get_with_str looks up;
                             0 = 65535 (the most an entry holds) */
    /* Tuning for benchmarks and the hit-ratio tool; 0 picks the default. */
    unsigned hit_sample;  /* W-TinyLFU records 1 hit in hit_sample (a power of two;
                             default 64) while a shard is below 7/8 of its bound,
                             every hit above; LRU records every hit */
    int static_window;    /* 1: keep W-TinyLFU's window at 1% (no hill climbing) */
} sc__local_config;

typedef struct sc__local_stats {
    uint64_t hits, misses, evictions, expirations;
    uint64_t entries, bytes;
} sc__local_stats;

/* NULL on out of memory or a bad config. */
sc__local *sc__local_new(const sc__local_config *cfg);
void sc__local_free(sc__local *l); /* NULL is a no-op; held values stay valid */

static inline uint64_t sc__hash_mum(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t sc__hash_load(const unsigned char *p, size_t n)
{
    uint64_t x = 0;
    memcpy(&x, p, n); /* n is 4 or 8: a plain load */
    return x;
}

/* Hash of a key; pass it to the calls below so a key is hashed once.
 * A wyhash-style multiply-fold hash: short keys (the usual case) take two
 * loads and two multiplies, and every output bit depends on every input
 * bit, which matters because shard, tag, stripe and sketch each use other
 * bits. Inline: it is a third of the instructions of a local hit's lookup,
 * and a call would add its own. */
static inline uint64_t sc__local_hash(const char *key, size_t klen)
{
    const unsigned char *p = (const unsigned char *)key;
    uint64_t seed = 0x243f6a8885a308d3ull ^ sc__hash_mum(klen, 0xa0761d6478bd642full);
    size_t n = klen;
    while (n > 16) {
        seed = sc__hash_mum(sc__hash_load(p, 8) ^ 0xe7037ed1a0b428dbull, sc__hash_load(p + 8, 8) ^ seed);
        p += 16;
        n -= 16;
    }
    uint64_t a = 0, b = 0;
    if (n >= 8) {
        a = sc__hash_load(p, 8);
        b = sc__hash_load(p + n - 8, 8);
    } else if (n >= 4) {
        a = sc__hash_load(p, 4);
        b = sc__hash_load(p + n - 4, 4);
    } else if (n > 0) {
        a = ((uint64_t)p[0] << 16) | ((uint64_t)p[n >> 1] << 8) | p[n - 1];
    }
    return sc__hash_mum(sc__hash_mum(a ^ 0x8ebc6af09c88c6e3ull, b ^ seed), 0x589965cc75374cc3ull ^ klen);
}

/* SC_OK with *out (a new reference) or SC_NOT_FOUND (also for an expired
 * entry, which is dropped). Counts a hit or a miss. */
sc_status sc__local_get(sc__local *l, const char *key, size_t klen, uint64_t hash, sc_value **out);
/* sc__local_get for a value handed straight to the library's caller: the
 * reference is a pin while the thread has one free (reclaim.c), so *out
 * may be a pin's handle, which only the sc_value_* calls (and
 * sc__value_ref) may use. pins_left (NULL, or a batch's flag that starts
 * at 1) turns 0 once the thread's pins are all held, and the rest of the
 * batch then takes counted references without looking at the pins. */
sc_status sc__local_get_pinned(sc__local *l, const char *key, size_t klen, uint64_t hash, sc_value **out,
                               int *pins_left);

/* A local hit without a reference: calls fn(data, len, version, ud) once
 * with the value's bytes, borrowed for the call only, inside a read section
 * (fn must not call into the store). SC_OK (fn was called) or SC_NOT_FOUND
 * (also for an expired entry, which is dropped). Counts a hit; a miss is
 * not counted, since the caller falls back to a lookup that counts it.
 * Takes no lock and writes no shared cache line on a hit. */
sc_status sc__local_get_with(sc__local *l, const char *key, size_t klen, uint64_t hash, sc_read_fn fn,
                             void *ud);

/* A library get's whole local hit in one call, for a key given as a C
 * string: measures it (1 to the config's max_key_bytes bytes), hashes it
 * and looks it up as sc__local_get_with does. A hit returns SC_OK; a miss
 * (not counted) and a key that is NULL, empty or longer return
 * miss(ctx, key, fn, ud), as a tail call. l and fn are not checked. */
typedef sc_status (*sc__local_miss_fn)(void *ctx, const char *key, sc_read_fn fn, void *ud);
sc_status sc__local_get_with_str(sc__local *l, const char *key, sc_read_fn fn, void *ud, sc__local_miss_fn miss,
                                 void *ctx);

/* The same for a get that takes a reference (sc_get): a hit (counted)
 * stores a new reference in *out and returns SC_OK; a miss (not counted)
 * and a key that is NULL, empty or too long return miss(ctx, key, out), as
 * a tail call. l and out are not checked. */
typedef sc_status (*sc__local_get_miss_fn)(void *ctx, const char *key, sc_value **out);
sc_status sc__local_get_str(sc__local *l, const char *key, sc_value **out, sc__local_get_miss_fn miss, void *ctx);

/* A hint before n lookups in a row (hashes of their keys): starts loading
 * what they will read, so their cache misses overlap. Changes nothing. */
void sc__local_prefetch(sc__local *l, const uint64_t *hashes, size_t n);

/* Like sc__local_get but counts nothing and does not touch recency or
 * frequency (for tests and the verifier). */
sc_status sc__local_peek(sc__local *l, const char *key, size_t klen, uint64_t hash, sc_value **out);

/* The key's floor: the higher of its stripe's floor and the store-wide one. */
uint64_t sc__local_floor(sc__local *l, uint64_t hash);

/* sc__local_put flags. */
#define SC__PUT_FORCE 1u /* replace whatever the key holds; floors ignored (a
                            reader's local-only write, version 0) */

/* Installs v under key unless the conditions below refuse it. A value made
 * by sc__value_new_keyed for this key is kept as it is (the store takes a
 * reference and sets its expiry under the shard lock); any other is copied
 * into a keyed allocation of the store's own. Refused when (unless FORCE):
 *  - known < the key's floor -> SC_ERR_CONFLICT;
 *  - the key holds a version >= sc_value_version(v) -> SC_ERR_CONFLICT;
 *  - key + value alone exceed max_bytes -> SC_ERR_TOO_LARGE;
 *  - the W-TinyLFU admission rejects it -> SC_OK, counted as an eviction
 *    (and the floor rises to its version, as for any entry that leaves).
 * The floor check and the install happen under one lock, so a remove that
 * raises the floor is ordered entirely before or after the put.
 * ttl_ms 0 means only max_ttl_ms applies. Evicts to respect the bounds.
 * SC_ERR_NOMEM leaves the old entry removed (never a half state). */
sc_status sc__local_put(sc__local *l, const char *key, size_t klen, uint64_t hash, sc_value *v,
                        uint64_t ttl_ms, uint64_t known, unsigned flags);

/* Removes the key if its version is lower than below_version (UINT64_MAX:
 * always) and raises the key's stripe floor to floor, atomically. Returns 1
 * if an entry was removed, else 0. */
int sc__local_remove(sc__local *l, const char *key, size_t klen, uint64_t hash, uint64_t below_version,
                     uint64_t floor);

/* Drops every entry and raises the store-wide floor to floor (and to every
 * dropped version). Returns how many were dropped. */
size_t sc__local_clear(sc__local *l, uint64_t floor);

/* The largest item (key + value bytes) a shard holds: each bounds its own
 * share of max_bytes (max_bytes / shards), and refuses a larger item with
 * SC_ERR_TOO_LARGE. 0: no byte bound. */
size_t sc__local_item_limit(const sc__local *l);
/* How many shards the store has (the config's, or what it was halved to). */
unsigned sc__local_shard_count(const sc__local *l);

/* Calls fn(v, ud) for every entry, shard by shard under the shard's lock:
 * v (whose key is the first v->klen bytes of v->data) is borrowed for the
 * call; fn may take a reference (sc__value_ref) but must not call into the
 * store. */
void sc__local_each(sc__local *l, void (*fn)(sc_value *v, void *ud), void *ud);

/* A typedef and a function cannot share the name sc__local_stats in C, so
 * the function is sc__local_stats_get and the function-like macro keeps the
 * call form sc__local_stats(l, &out) working (the macro only expands when
 * the name is followed by a parenthesis, so the type name is untouched). */
void sc__local_stats_get(sc__local *l, sc__local_stats *out);
#define sc__local_stats(l, out) sc__local_stats_get((l), (out))

/* ---- private to local/ (lib/ uses only the calls above) ---- */

#include <stdatomic.h>

/* The value header, 24 bytes. A value the store holds also carries its key
 * (first, so the key compare of a lookup shares the header's cache line)
 * and its expiry, so a store entry is this one allocation plus a slot and
 * its policy links (16 bytes) in the shard's table. Keys are at most 65535
 * bytes and values under 4 GiB (the options allow 64 KiB and 512 MiB). The
 * expiry is written under the shard lock but read by lock-free readers, so
 * its two halves are relaxed atomics (plain moves on x86). */
struct sc_value {
    _Atomic uint32_t refs;
    uint16_t klen;                /* key bytes at data[0]; 0 outside a store */
    _Atomic uint16_t exp_hi;      /* expiry: sc__now_ms() deadline, 48 bits, */
    uint32_t len;
    _Atomic uint32_t exp_lo;      /* 0 = none */
    uint64_t version;
    char data[];                  /* klen key bytes, then len value bytes, then NUL */
};

static inline char *sc__value_bytes(const sc_value *v)
{
    return (char *)v->data + v->klen;
}

static inline uint64_t sc__value_expiry(const sc_value *v)
{
    return (uint64_t)atomic_load_explicit(&((sc_value *)v)->exp_hi, memory_order_relaxed) << 32 |
           atomic_load_explicit(&((sc_value *)v)->exp_lo, memory_order_relaxed);
}

static inline void sc__value_set_expiry(sc_value *v, uint64_t deadline)
{
    if (deadline >= (uint64_t)1 << 48)
        deadline = ((uint64_t)1 << 48) - 1; /* 8900 years of uptime */
    atomic_store_explicit(&v->exp_hi, (uint16_t)(deadline >> 32), memory_order_relaxed);
    atomic_store_explicit(&v->exp_lo, (uint32_t)deadline, memory_order_relaxed);
}

/* A value with room for a klen-byte key followed by len bytes (NUL
 * written), refcount 1, klen set, every other field 0. NULL on out of
 * memory or sizes the header cannot hold. */
sc_value *sc__value_alloc(size_t len, size_t klen);

/* ---- grace periods (reclaim.c) ---- */

/* A pin: one hold on a store's value that writes nothing shared (see
 * reclaim.c). v is the value (NULL: the pin is free); extra counts the
 * holds beyond the first, taken by sc_value_ref on the pin's handle. */
struct sc__pin {
    _Atomic(sc_value *) v;
    _Atomic int32_t extra;
};

#define SC__PINS 16

/* Per-thread record: the epoch its read section started in (0 outside
 * one), the nesting depth, its place in the registry, a small cache of the
 * thread's per-store state (store.c), and the thread's pins, on lines of
 * their own (another thread may release one). dead: the thread has
 * exited, and the record stays until its last pin is released. */
struct sc__thread {
    _Atomic uint64_t ctr;
    unsigned nest;
    int dead;
    struct sc__thread *next, *prev;
    struct {
        uint64_t id;
        void *state;
    } stores[4];
    _Alignas(64) struct sc__pin pins[SC__PINS];
};

extern __thread struct sc__thread *sc__self __attribute__((tls_model("initial-exec")));
extern _Atomic uint64_t sc__epoch;
extern int sc__memb; /* 1: membarrier works, readers need no fence */

void sc__reclaim_init(void);
struct sc__thread *sc__thread_register(void);
/* The tag of an object just unpublished (call after the unpublishing
 * store). */
uint64_t sc__retire_tag(void);
/* Starts a new epoch and returns a bound: every object whose tag is below
 * it can be freed. Never waits. */
uint64_t sc__grace_bound(void);
/* Waits until objects tagged tag can be freed. Never call it inside a read
 * section. */
void sc__synchronize(uint64_t tag);

static inline struct sc__thread *sc__read_lock(void)
{
    struct sc__thread *t = sc__self;
    if (__builtin_expect(!t, 0))
        t = sc__thread_register();
    if (t->nest++ == 0) {
        atomic_store_explicit(&t->ctr, atomic_load_explicit(&sc__epoch, memory_order_acquire),
                              memory_order_release);
        if (__builtin_expect(!sc__memb, 0))
            atomic_thread_fence(memory_order_seq_cst);
        else
            atomic_signal_fence(memory_order_seq_cst);
    }
    return t;
}

static inline void sc__read_unlock(struct sc__thread *t)
{
    if (--t->nest == 0)
        atomic_store_explicit(&t->ctr, 0, memory_order_release);
}

/* A pinned value is handed out as its pin's address with the low bit set
 * (pins are 8-byte aligned, values never odd), so the accessors tell the
 * two apart with one test; sc__pin_of takes such a handle back to its pin. */
static inline struct sc__pin *sc__pin_of(const sc_value *v)
{
    return (struct sc__pin *)((uintptr_t)v - 1);
}

/* Inside a read section, on a value found in a store's table: the value
 * pinned in the thread's first free pin and that pin's handle, or NULL
 * when all are held (the caller then takes a reference). A thread that
 * releases each value before its next get always finds the first pin
 * free. The pin is stored before the section ends, so a writer that
 * retires the value sees it once the grace period is over (reclaim.c). */
static inline sc_value *sc__pin(struct sc__thread *t, sc_value *v)
{
    for (struct sc__pin *p = t->pins; p < t->pins + SC__PINS; p++)
        if (!atomic_load_explicit(&p->v, memory_order_acquire)) {
            atomic_store_explicit(&p->v, v, memory_order_relaxed);
            return (sc_value *)((uintptr_t)p | 1);
        }
    return NULL;
}

void sc__unpin_shared(struct sc__pin *p);

/* Drops one hold of a pin; the last one frees the pin, after its reads of
 * the value (release: a collection that loads the cleared pin may then
 * free the value). extra == 0, read with acquire, means this is the only
 * hold: any other was taken by sc_value_ref on a hold this thread saw, so
 * its increment is visible here. */
static inline void sc__unpin(struct sc__pin *p)
{
    if (__builtin_expect(atomic_load_explicit(&p->extra, memory_order_acquire) == 0, 1))
        atomic_store_explicit(&p->v, NULL, memory_order_release);
    else
        sc__unpin_shared(p);
}

/* Pins seen by one walk of the registry, sorted (sc__grace_bound_pins). */
typedef struct sc__pins {
    uint64_t walk; /* the walk that collected them (numbered in order) */
    size_t n, cap;
    const sc_value **v;
    const sc_value *inline_v[128];
} sc__pins;

/* sc__grace_bound that also collects every pin held, into *pins (release
 * it with sc__pins_done). A value retired before the bound was seen by
 * no reader since, so no pin of it can appear after this walk. */
uint64_t sc__grace_bound_pins(sc__pins *pins);
/* Collects the pins without a grace period (sc__local_free: no reader
 * uses the store any more). */
void sc__pins_collect(sc__pins *pins);
void sc__pins_done(sc__pins *pins);
/* Drops a store's reference to a value it no longer holds, once no reader
 * can find it: now if no pin holds it, else when its pins are released
 * (the value waits in a process-wide list that every later collection
 * sweeps). -1 when it is pinned and the list cannot grow (out of memory):
 * the caller keeps the value and tries again later. */
int sc__value_unstore(sc_value *v, const sc__pins *pins);
/* Drops the store's reference of every waiting value that *pins shows
 * unpinned, if *pins was collected after the walk that found it pinned. */
void sc__pins_sweep(const sc__pins *pins);
/* The values that wait for their pins (for tests). */
size_t sc__pins_waiting(void);

/* ---- frequency sketch (sketch.c) ---- */

/* Count-min sketch with 4-bit counters (Caffeine's FrequencySketch layout:
 * the four counters of a key sit in one 64-byte block), halved after
 * 10 x capacity increments so old popularity fades. Not thread-safe. */
typedef struct sc__sketch {
    uint64_t *table;
    uint64_t blocks; /* number of 8-word blocks (any count: multiply-shift) */
    uint64_t size, sample;
    size_t capacity;
} sc__sketch;

/* Sizes the sketch for capacity entries, dropping what it counted. On out of
 * memory keeps the old table and returns -1; 0 on success. */
int sc__sketch_resize(sc__sketch *s, size_t capacity);
void sc__sketch_free(sc__sketch *s);
void sc__sketch_increment(sc__sketch *s, uint64_t hash);
unsigned sc__sketch_frequency(const sc__sketch *s, uint64_t hash);

static inline uint64_t sc__sketch_remix(uint64_t hash)
{
    hash ^= hash >> 31;
    hash *= 0x7fb5d329728ea185ull;
    hash ^= hash >> 27;
    hash *= 0x81dadef4bc2dd44dull;
    return hash ^ (hash >> 33);
}

/* The block comes from the high half of a remix of the key hash and the
 * four counter positions from the low half, so they are independent of each
 * other and of the bits the store uses for shards and table slots. */
static inline uint64_t sc__sketch_block(const sc__sketch *s, uint64_t h)
{
    return (((h >> 32) * s->blocks) >> 32) << 3;
}

/* Starts loading the block of hash, so a batch of increments overlaps
 * its misses. */
static inline void sc__sketch_prefetch(const sc__sketch *s, uint64_t hash)
{
    if (s->table)
        __builtin_prefetch(&s->table[sc__sketch_block(s, sc__sketch_remix(hash))], 1);
}

#endif
