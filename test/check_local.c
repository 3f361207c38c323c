/* test/check_local.c: the local store (local/), no Redis needed.
 *
 * Covers exact LRU order, W-TinyLFU scan resistance against LRU, entry and
 * byte bounds, oversize items, TTLs and the max-TTL cap, version checks,
 * version floors, remove below a version, value lifetime after eviction,
 * replacement and clear, sc__local_get_with, table growth with tombstones,
 * the W-TinyLFU hill climber on a recency-skewed workload, bad arguments,
 * and a multi-threaded stress whose end state is checked against the
 * store's own counters (run it under TSan too; check_local_stress has the
 * lock-free readers' stress).
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "local/local.h"
#include "local/shard.h" /* test_hit_takes_no_lock holds the shards' locks */

static sc__local *mk(sc_local_policy p, size_t max_n, size_t max_b, uint64_t max_ttl, unsigned shards)
{
    sc__local_config cfg = {.policy = p, .max_entries = max_n, .max_bytes = max_b,
                            .max_ttl_ms = max_ttl, .shards = shards};
    sc__local *l = sc__local_new(&cfg);
    ck_assert_ptr_nonnull(l);
    return l;
}

/* vcheck 0: a forced put (no version or floor check); 1: an ordered put
 * whose value is known current up to its own version. */
static sc_status put(sc__local *l, const char *k, const char *val, uint64_t version, uint64_t ttl,
                     int vcheck)
{
    sc_value *v = sc__value_new(val, strlen(val), version);
    ck_assert_ptr_nonnull(v);
    sc_status s = sc__local_put(l, k, strlen(k), sc__local_hash(k, strlen(k)), v, ttl, version,
                                vcheck ? 0 : SC__PUT_FORCE);
    sc_value_release(v);
    return s;
}

static int has(sc__local *l, const char *k)
{
    sc_value *v;
    if (sc__local_peek(l, k, strlen(k), sc__local_hash(k, strlen(k)), &v) != SC_OK)
        return 0;
    sc_value_release(v);
    return 1;
}

static int get(sc__local *l, const char *k)
{
    sc_value *v;
    if (sc__local_get(l, k, strlen(k), sc__local_hash(k, strlen(k)), &v) != SC_OK)
        return 0;
    sc_value_release(v);
    return 1;
}

static uint64_t floor_of(sc__local *l, const char *k)
{
    return sc__local_floor(l, sc__local_hash(k, strlen(k)));
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* A hit takes no lock (issue 11): with every shard's lock held by this
 * thread, a reader still gets every key, by reference, pinned (after a
 * batch's prefetch) and borrowed, and
 * enough hits to fill its read buffers (their drains only try the lock).
 * A hit that locked its shard would wait here until the locks go. */
enum { NOLOCK_KEYS = 512, NOLOCK_ROUNDS = 200 };

typedef struct nolock_reader {
    sc__local *l;
    atomic_int ready, go, done;
    long hits;
} nolock_reader;

static void count_bytes(const void *data, size_t len, uint64_t version, void *ud)
{
    (void)data;
    (void)version;
    *(long *)ud += len > 0;
}

static void *nolock_reader_main(void *arg)
{
    nolock_reader *r = arg;
    char k[16];
    /* The thread's state in the store is made at its first hit, under the
     * store's list lock: before the shards are locked. */
    ck_assert(get(r->l, "n0"));
    atomic_store(&r->ready, 1);
    while (!atomic_load(&r->go))
        sleep_ms(1);
    for (int round = 0; round < NOLOCK_ROUNDS; round++)
        for (int i = 0; i < NOLOCK_KEYS; i++) {
            snprintf(k, sizeof k, "n%d", i);
            uint64_t h = sc__local_hash(k, strlen(k));
            sc_value *v = NULL;
            if (sc__local_get(r->l, k, strlen(k), h, &v) == SC_OK) {
                r->hits++;
                sc_value_release(v);
            }
            long with = 0;
            if (sc__local_get_with(r->l, k, strlen(k), h, count_bytes, &with) == SC_OK)
                r->hits += with;
            /* Pinned, as sc_get_ex's and a batch's hits are, after a
             * batch's prefetch. */
            int pins_left = 1;
            sc__local_prefetch(r->l, &h, 1);
            if (sc__local_get_pinned(r->l, k, strlen(k), h, &v, &pins_left) == SC_OK) {
                r->hits++;
                sc_value_release(v);
            }
        }
    atomic_store(&r->done, 1);
    return NULL;
}

START_TEST(test_hit_takes_no_lock)
{
    sc_local_policy policies[] = {SC_LOCAL_LRU, SC_LOCAL_LFU};
    for (int p = 0; p < 2; p++) {
        sc__local *l = mk(policies[p], 4 * NOLOCK_KEYS, 0, 0, 4);
        char k[16];
        for (int i = 0; i < NOLOCK_KEYS; i++) {
            snprintf(k, sizeof k, "n%d", i);
            ck_assert_int_eq(put(l, k, "value", (uint64_t)i + 1, 0, 0), SC_OK);
        }
        nolock_reader r = {.l = l};
        pthread_t t;
        pthread_create(&t, NULL, nolock_reader_main, &r);
        while (!atomic_load(&r.ready))
            sleep_ms(1);
        for (unsigned s = 0; s < l->nshards; s++)
            pthread_mutex_lock(&l->shards[s].mu);
        atomic_store(&r.go, 1);
        for (int waited = 0; waited < 10000 && !atomic_load(&r.done); waited++)
            sleep_ms(1);
        int done = atomic_load(&r.done);
        for (unsigned s = 0; s < l->nshards; s++)
            pthread_mutex_unlock(&l->shards[s].mu);
        pthread_join(t, NULL);
        ck_assert_msg(done, "policy %d: hits waited for a shard's lock", (int)policies[p]);
        ck_assert_int_eq(r.hits, 3L * NOLOCK_ROUNDS * NOLOCK_KEYS);
        sc__local_free(l);
    }
}
END_TEST

START_TEST(test_value)
{
    sc_value *v = sc__value_new("abc", 3, 7);
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(sc_value_size(v), 3);
    ck_assert_uint_eq(sc_value_version(v), 7);
    ck_assert_str_eq((const char *)sc_value_data(v), "abc"); /* NUL after data */
    ck_assert_ptr_eq(sc__value_ref(v), v);
    sc_value_release(v);
    ck_assert_uint_eq(((const char *)sc_value_data(v))[1], 'b');
    sc_value_release(v);
    sc_value *e = sc__value_new(NULL, 0, 0);
    ck_assert_ptr_nonnull(e);
    ck_assert_uint_eq(((const char *)sc_value_data(e))[0], 0);
    sc_value_release(e);
    sc_value_release(NULL);
    ck_assert_ptr_null(sc__value_new(NULL, 5, 0));
}
END_TEST

START_TEST(test_lru_exact)
{
    sc__local *l = mk(SC_LOCAL_LRU, 3, 0, 0, 1);
    ck_assert_int_eq(put(l, "a", "1", 0, 0, 0), SC_OK);
    ck_assert_int_eq(put(l, "b", "2", 0, 0, 0), SC_OK);
    ck_assert_int_eq(put(l, "c", "3", 0, 0, 0), SC_OK);
    ck_assert(get(l, "a"));                                    /* order b c a */
    ck_assert_int_eq(put(l, "d", "4", 0, 0, 0), SC_OK);  /* evicts b */
    ck_assert(!has(l, "b"));
    ck_assert(has(l, "a") && has(l, "c") && has(l, "d"));
    ck_assert(has(l, "c"));                                    /* peek: no recency */
    ck_assert(get(l, "c"));                                    /* order a d c */
    ck_assert_int_eq(put(l, "a", "1b", 0, 0, 0), SC_OK); /* update refreshes: d c a */
    ck_assert_int_eq(put(l, "e", "5", 0, 0, 0), SC_OK);  /* evicts d */
    ck_assert(!has(l, "d"));
    ck_assert(has(l, "a") && has(l, "c") && has(l, "e"));
    ck_assert_int_eq(put(l, "f", "6", 0, 0, 0), SC_OK);  /* evicts c */
    ck_assert(!has(l, "c"));
    sc__local_stats st;
    sc__local_stats(l, &st);
    ck_assert_uint_eq(st.evictions, 3);
    ck_assert_uint_eq(st.entries, 3);
    ck_assert_uint_eq(st.hits, 2);
    ck_assert_uint_eq(st.misses, 0);
    ck_assert_uint_eq(st.bytes, 1 + 2 + 1 + 1 + 1 + 1);
    ck_assert(!get(l, "zz"));
    sc__local_stats(l, &st);
    ck_assert_uint_eq(st.misses, 1);
    sc__local_free(l);
}
END_TEST

/* A small hot set mixed with a long stream of keys used once: LRU lets the
 * stream flush the hot keys, W-TinyLFU keeps them. */
static double scan_workload(sc_local_policy p)
{
    sc__local *l = mk(p, 100, 0, 0, 1);
    unsigned long hits = 0, n = 0, scan = 1000000, rnd = 12345;
    char k[32];
    for (int i = 0; i < 40000; i++) {
        if (i % 4 == 0) {
            rnd = rnd * 6364136223846793005ul + 1442695040888963407ul;
            snprintf(k, sizeof k, "hot%lu", (rnd >> 33) % 50);
        } else {
            snprintf(k, sizeof k, "scan%lu", scan++);
        }
        n++;
        if (get(l, k))
            hits++;
        else
            ck_assert_int_eq(put(l, k, "v", 0, 0, 0), SC_OK);
    }
    sc__local_free(l);
    return 100.0 * (double)hits / (double)n;
}

START_TEST(test_lfu_scan_resistance)
{
    double lru = scan_workload(SC_LOCAL_LRU), lfu = scan_workload(SC_LOCAL_LFU);
    /* The hot quarter of the requests is what can hit at all: LFU should
     * catch nearly all of it, LRU little. */
    ck_assert_msg(lfu > lru + 10.0, "lfu %.2f%% lru %.2f%%", lfu, lru);
    ck_assert_msg(lfu > 20.0, "lfu %.2f%%", lfu);
}
END_TEST

START_TEST(test_entry_bound)
{
    sc_local_policy p = _i ? SC_LOCAL_LFU : SC_LOCAL_LRU;
    sc__local *l = mk(p, 100, 0, 0, 1);
    char k[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "k%d", i);
        ck_assert_int_eq(put(l, k, "value", 0, 0, 0), SC_OK);
    }
    sc__local_stats st;
    sc__local_stats(l, &st);
    ck_assert_uint_eq(st.entries, 100);
    ck_assert_uint_eq(st.evictions, 900); /* admission rejections included */
    int present = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "k%d", i);
        present += has(l, k);
    }
    ck_assert_int_eq(present, 100);
    sc__local_free(l);

    /* Sharded: the bound still holds in total. */
    l = mk(p, 4096, 0, 0, 0);
    for (int i = 0; i < 20000; i++) {
        snprintf(k, sizeof k, "k%d", i);
        ck_assert_int_eq(put(l, k, "value", 0, 0, 0), SC_OK);
    }
    sc__local_stats(l, &st);
    ck_assert_uint_le(st.entries, 4096);
    ck_assert_uint_ge(st.entries, 4096 * 9 / 10);
    ck_assert_uint_eq(st.entries + st.evictions, 20000);
    sc__local_free(l);
}
END_TEST

/* More shards than the bounds can give each an entry (or a byte): the
 * bounds still hold in total, not once per shard. */
START_TEST(test_bound_below_shard_count)
{
    sc_local_policy p = _i ? SC_LOCAL_LFU : SC_LOCAL_LRU;
    sc__local *l = mk(p, 4, 0, 0, 16);
    char k[32];
    for (int i = 0; i < 512; i++) {
        snprintf(k, sizeof k, "k%d", i);
        ck_assert_int_eq(put(l, k, "v", 0, 0, 0), SC_OK);
    }
    sc__local_stats st;
    sc__local_stats(l, &st);
    ck_assert_uint_le(st.entries, 4);
    ck_assert_uint_eq(st.entries + st.evictions, 512);
    sc__local_free(l);

    l = mk(p, 0, 8, 0, 16);
    for (int i = 0; i < 256; i++) {
        k[0] = (char)(i ? i : 256 - 1);
        k[1] = 0; /* 1-byte keys, empty values: 1 byte each */
        sc_value *v = sc__value_new("", 0, 0);
        sc_status s = sc__local_put(l, k, 1, sc__local_hash(k, 1), v, 0, 0, SC__PUT_FORCE);
        sc_value_release(v);
        ck_assert(s == SC_OK || s == SC_ERR_TOO_LARGE);
    }
    sc__local_stats(l, &st);
    ck_assert_uint_le(st.bytes, 8);
    ck_assert_uint_gt(st.entries, 0);
    sc__local_free(l);
}
END_TEST

/* A forced put (a reader's local-only write, version 0) that replaces a
 * versioned entry: that entry leaves the store, and may have been served,
 * so nothing older than it may come back for the key afterwards (a Redis
 * read that raced it, a late event). */
START_TEST(test_forced_replacement_raises_floor)
{
    sc__local *l = mk(SC_LOCAL_LRU, 100, 0, 0, 1);
    ck_assert_int_eq(put(l, "k", "five", 5, 0, 1), SC_OK);
    ck_assert_int_eq(put(l, "k", "local", 0, 0, 0), SC_OK);
    ck_assert_uint_ge(floor_of(l, "k"), 5);
    ck_assert_int_eq(put(l, "k", "three", 3, 0, 1), SC_ERR_CONFLICT);
    sc_value *v;
    ck_assert_int_eq(sc__local_peek(l, "k", 1, sc__local_hash("k", 1), &v), SC_OK);
    ck_assert_str_eq((const char *)sc_value_data(v), "local");
    sc_value_release(v);
    /* A value known current at 5 or later still replaces it. */
    ck_assert_int_eq(put(l, "k", "six", 6, 0, 1), SC_OK);
    sc__local_free(l);
}
END_TEST

START_TEST(test_byte_bound)
{
    sc_local_policy p = _i ? SC_LOCAL_LFU : SC_LOCAL_LRU;
    sc__local *l = mk(p, 0, 1000, 0, 1);
    char k[32], val[97];
    memset(val, 'x', 96);
    val[96] = 0;
    for (int i = 0; i < 500; i++) {
        snprintf(k, sizeof k, "k%03d", i); /* 4 + 96 = 100 bytes */
        ck_assert_int_eq(put(l, k, val, 0, 0, 0), SC_OK);
        sc__local_stats st;
        sc__local_stats(l, &st);
        ck_assert_uint_le(st.bytes, 1000);
        ck_assert_uint_eq(st.bytes, st.entries * 100);
    }
    sc__local_stats st;
    sc__local_stats(l, &st);
    ck_assert_uint_eq(st.entries, 10);
    ck_assert_uint_eq(st.evictions, 490);
    /* A bigger value for a held key grows the bytes and still respects them. */
    char big[501];
    memset(big, 'y', 500);
    big[500] = 0;
    ck_assert_int_eq(put(l, "k499", big, 0, 0, 0), SC_OK);
    sc__local_stats(l, &st);
    ck_assert_uint_le(st.bytes, 1000);
    sc__local_free(l);
}
END_TEST

START_TEST(test_too_large)
{
    sc__local *l = mk(SC_LOCAL_LFU, 0, 100, 0, 1);
    char val[101];
    memset(val, 'x', 100);
    val[100] = 0;
    ck_assert_int_eq(put(l, "k", val, 0, 0, 0), SC_ERR_TOO_LARGE); /* 101 bytes */
    ck_assert(!has(l, "k"));
    val[99] = 0;
    ck_assert_int_eq(put(l, "k", val, 0, 0, 0), SC_OK); /* exactly 100 */
    ck_assert(has(l, "k"));
    sc__local_stats st;
    sc__local_stats(l, &st);
    ck_assert_uint_eq(st.bytes, 100);
    sc__local_free(l);
}
END_TEST

START_TEST(test_ttl)
{
    sc__local *l = mk(_i ? SC_LOCAL_LFU : SC_LOCAL_LRU, 100, 0, 0, 1);
    ck_assert_int_eq(put(l, "short", "1", 0, 30, 0), SC_OK);
    ck_assert_int_eq(put(l, "long", "2", 0, 60000, 0), SC_OK);
    ck_assert_int_eq(put(l, "none", "3", 0, 0, 0), SC_OK);
    ck_assert(get(l, "short"));
    sleep_ms(80);
    ck_assert(!get(l, "short"));
    ck_assert(!has(l, "short"));
    ck_assert(get(l, "long"));
    ck_assert(get(l, "none"));
    sc__local_stats st;
    sc__local_stats(l, &st);
    ck_assert_uint_eq(st.expirations, 1);
    ck_assert_uint_eq(st.entries, 2);
    /* An expired entry does not block a newer put, but it may have been
     * served, so it leaves its version as the floor, however it is found
     * expired (here by the put itself): nothing older may follow it. */
    ck_assert_int_eq(put(l, "v", "1", 9, 30, 1), SC_OK);
    sleep_ms(80);
    ck_assert_int_eq(put(l, "v", "2", 3, 0, 1), SC_ERR_CONFLICT);
    ck_assert_uint_ge(floor_of(l, "v"), 9);
    ck_assert_int_eq(put(l, "v", "3", 10, 0, 1), SC_OK);
    sc__local_free(l);
}
END_TEST

START_TEST(test_max_ttl)
{
    sc__local *l = mk(SC_LOCAL_LFU, 100, 0, 30, 1);
    ck_assert_int_eq(put(l, "a", "1", 0, 0, 0), SC_OK);     /* no ttl: cap applies */
    ck_assert_int_eq(put(l, "b", "2", 0, 60000, 0), SC_OK); /* longer: capped */
    ck_assert(has(l, "a") && has(l, "b"));
    sleep_ms(80);
    ck_assert(!get(l, "a"));
    ck_assert(!get(l, "b"));
    sc__local_stats st;
    sc__local_stats(l, &st);
    ck_assert_uint_eq(st.expirations, 2);
    ck_assert_uint_eq(st.entries, 0);
    sc__local_free(l);
}
END_TEST

START_TEST(test_versions)
{
    sc__local *l = mk(SC_LOCAL_LFU, 100, 0, 0, 1);
    ck_assert_int_eq(put(l, "k", "five", 5, 0, 1), SC_OK);
    ck_assert_int_eq(put(l, "k", "five again", 5, 0, 1), SC_ERR_CONFLICT);
    ck_assert_int_eq(put(l, "k", "four", 4, 0, 1), SC_ERR_CONFLICT);
    sc_value *v;
    ck_assert_int_eq(sc__local_peek(l, "k", 1, sc__local_hash("k", 1), &v), SC_OK);
    ck_assert_str_eq((const char *)sc_value_data(v), "five");
    ck_assert_uint_eq(sc_value_version(v), 5);
    sc_value_release(v);
    ck_assert_int_eq(put(l, "k", "six", 6, 0, 1), SC_OK);
    ck_assert_int_eq(put(l, "k", "one", 1, 0, 0), SC_OK); /* unchecked replaces */
    ck_assert_int_eq(sc__local_peek(l, "k", 1, sc__local_hash("k", 1), &v), SC_OK);
    ck_assert_str_eq((const char *)sc_value_data(v), "one");
    sc_value_release(v);
    sc__local_free(l);
}
END_TEST

START_TEST(test_floors)
{
    sc__local *l = mk(SC_LOCAL_LRU, 100, 0, 0, 4);
    uint64_t h = sc__local_hash("k", 1);
    ck_assert_uint_eq(floor_of(l, "k"), 0);
    ck_assert_int_eq(put(l, "k", "1", 1, 0, 1), SC_OK);

    /* A remove raises the floor: a value known current only up to a lower
     * version (a Redis read that raced it, a late event) is refused. */
    ck_assert_int_eq(sc__local_remove(l, "k", 1, h, UINT64_MAX, 10), 1);
    ck_assert_uint_eq(floor_of(l, "k"), 10);
    ck_assert_int_eq(put(l, "k", "2", 2, 0, 1), SC_ERR_CONFLICT);
    ck_assert(!has(l, "k"));
    /* Known current at 10 (a read that saw the counter at 10): fine, even
     * though the value itself is older. */
    sc_value *v = sc__value_new("3", 1, 3);
    ck_assert_int_eq(sc__local_put(l, "k", 1, h, v, 0, 10, 0), SC_OK);
    sc_value_release(v);
    /* Floors never go down. */
    ck_assert_int_eq(sc__local_remove(l, "k", 1, h, 0, 4), 0);
    ck_assert_uint_eq(floor_of(l, "k"), 10);
    ck_assert(has(l, "k"));

    /* Removing a missing key still raises the floor. */
    ck_assert_int_eq(sc__local_remove(l, "gone", 4, sc__local_hash("gone", 4), UINT64_MAX, 20), 0);
    ck_assert_uint_eq(floor_of(l, "gone"), 20);
    ck_assert_int_eq(put(l, "gone", "x", 19, 0, 1), SC_ERR_CONFLICT);
    ck_assert_int_eq(put(l, "gone", "x", 20, 0, 1), SC_OK);

    /* A clear raises the store-wide floor, and to every dropped version. */
    ck_assert_int_eq(put(l, "other", "x", 30, 0, 1), SC_OK);
    ck_assert_uint_eq(sc__local_clear(l, 25), 3);
    ck_assert_uint_eq(floor_of(l, "k"), 25);
    ck_assert_uint_ge(floor_of(l, "other"), 30);
    ck_assert_int_eq(put(l, "k", "4", 24, 0, 1), SC_ERR_CONFLICT);
    ck_assert_int_eq(put(l, "k", "5", 26, 0, 1), SC_OK);
    /* A forced put ignores floors (a reader's local-only write). */
    ck_assert_int_eq(put(l, "other", "y", 0, 0, 0), SC_OK);
    sc__local_free(l);
}
END_TEST

START_TEST(test_leaving_raises_floor)
{
    /* An evicted or expired entry may have been served: nothing older may
     * come back for its key afterwards. */
    sc__local *l = mk(SC_LOCAL_LRU, 2, 0, 0, 1);
    ck_assert_int_eq(put(l, "a", "1", 7, 0, 1), SC_OK);
    ck_assert_int_eq(put(l, "b", "1", 8, 0, 1), SC_OK);
    ck_assert_int_eq(put(l, "c", "1", 9, 0, 1), SC_OK); /* evicts a */
    ck_assert(!has(l, "a"));
    ck_assert_uint_ge(floor_of(l, "a"), 7);
    ck_assert_int_eq(put(l, "a", "old", 6, 0, 1), SC_ERR_CONFLICT);
    ck_assert_int_eq(put(l, "e", "1", 5, 20, 1), SC_OK);
    sleep_ms(60);
    ck_assert(!has(l, "e")); /* expired */
    ck_assert_uint_ge(floor_of(l, "e"), 5);
    ck_assert_int_eq(put(l, "e", "old", 4, 0, 1), SC_ERR_CONFLICT);
    sc__local_free(l);
}
END_TEST

START_TEST(test_remove_below)
{
    sc__local *l = mk(SC_LOCAL_LFU, 100, 0, 0, 1);
    uint64_t h = sc__local_hash("k", 1);
    ck_assert_int_eq(put(l, "k", "v", 5, 0, 0), SC_OK);
    ck_assert_int_eq(sc__local_remove(l, "k", 1, h, 5, 5), 0);
    ck_assert(has(l, "k"));
    ck_assert_uint_eq(floor_of(l, "k"), 5);
    ck_assert_int_eq(sc__local_remove(l, "k", 1, h, 6, 6), 1);
    ck_assert(!has(l, "k"));
    ck_assert_int_eq(sc__local_remove(l, "k", 1, h, 6, 6), 0);
    sc__local_stats st;
    sc__local_stats(l, &st);
    ck_assert_uint_eq(st.entries, 0);
    ck_assert_uint_eq(st.bytes, 0);
    ck_assert_uint_eq(st.evictions, 0);
    sc__local_free(l);
}
END_TEST

START_TEST(test_held_values_survive)
{
    sc__local *l = mk(SC_LOCAL_LFU, 10, 0, 0, 1);
    ck_assert_int_eq(put(l, "keep", "payload", 1, 0, 0), SC_OK);
    sc_value *v;
    ck_assert_int_eq(sc__local_get(l, "keep", 4, sc__local_hash("keep", 4), &v), SC_OK);
    char k[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "k%d", i);
        ck_assert_int_eq(put(l, k, "fill", 0, 0, 0), SC_OK);
        ck_assert(get(l, k));
    }
    ck_assert(!has(l, "keep"));
    ck_assert_str_eq((const char *)sc_value_data(v), "payload");
    sc_value *w;
    ck_assert_int_eq(sc__local_get(l, "k999", 4, sc__local_hash("k999", 4), &w), SC_OK);
    sc__local_clear(l, 0);
    ck_assert_str_eq((const char *)sc_value_data(w), "fill");
    sc__local_free(l);
    ck_assert_str_eq((const char *)sc_value_data(v), "payload");
    ck_assert_uint_eq(sc_value_version(v), 1);
    sc_value_release(v);
    sc_value_release(w);
}
END_TEST

START_TEST(test_clear_and_reuse)
{
    sc__local *l = mk(_i ? SC_LOCAL_LFU : SC_LOCAL_LRU, 50, 0, 0, 1);
    char k[32];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 200; i++) {
            snprintf(k, sizeof k, "r%d-%d", round, i);
            ck_assert_int_eq(put(l, k, "v", 0, 0, 0), SC_OK);
        }
        ck_assert_uint_eq(sc__local_clear(l, 0), 50);
        sc__local_stats st;
        sc__local_stats(l, &st);
        ck_assert_uint_eq(st.entries, 0);
        ck_assert_uint_eq(st.bytes, 0);
        ck_assert(!has(l, k));
    }
    sc__local_free(l);
}
END_TEST

START_TEST(test_bad_input)
{
    sc__local_config bad = {.policy = SC_LOCAL_LRU, .shards = 3};
    ck_assert_ptr_null(sc__local_new(&bad));
    bad.shards = 512;
    ck_assert_ptr_null(sc__local_new(&bad));
    bad.shards = 0;
    bad.policy = (sc_local_policy)7;
    ck_assert_ptr_null(sc__local_new(&bad));
    ck_assert_ptr_null(sc__local_new(NULL));
    sc__local_free(NULL);

    sc__local *l = mk(SC_LOCAL_LFU, 10, 0, 0, 1);
    sc_value *v = sc__value_new("x", 1, 0), *out = NULL;
    ck_assert_int_eq(sc__local_put(NULL, "k", 1, 0, v, 0, 0, 0), SC_ERR_INVALID);
    ck_assert_int_eq(sc__local_put(l, NULL, 1, 0, v, 0, 0, 0), SC_ERR_INVALID);
    ck_assert_int_eq(sc__local_put(l, "k", 1, 0, NULL, 0, 0, 0), SC_ERR_INVALID);
    /* A pin's handle is never stored (it is not a value). */
    ck_assert_int_eq(sc__local_put(l, "k", 1, 0, (sc_value *)((uintptr_t)v | 1), 0, 0, 0), SC_ERR_INVALID);
    ck_assert_int_ne(sc__local_get(NULL, "k", 1, 0, &out), SC_OK);
    ck_assert_int_ne(sc__local_get(l, "k", 1, 0, NULL), SC_OK);
    ck_assert_int_ne(sc__local_get(l, NULL, 1, 0, &out), SC_OK);
    ck_assert_int_eq(sc__local_remove(NULL, "k", 1, 0, UINT64_MAX, 0), 0);
    ck_assert_uint_eq(sc__local_clear(NULL, 0), 0);
    /* A hash that is not sc__local_hash(key) must not corrupt the store. */
    for (uint64_t h = 0; h < 100; h++) {
        char k[16];
        snprintf(k, sizeof k, "w%u", (unsigned)h);
        ck_assert_int_eq(sc__local_put(l, k, strlen(k), h * 0x9e3779b97f4a7c15ull, v, 0, 0, SC__PUT_FORCE), SC_OK);
    }
    sc__local_stats st;
    sc__local_stats(l, &st);
    ck_assert_uint_eq(st.entries, 10);
    /* The empty key and binary keys are keys like any other. */
    ck_assert_int_eq(sc__local_put(l, "", 0, sc__local_hash("", 0), v, 0, 0, SC__PUT_FORCE), SC_OK);
    ck_assert_int_eq(sc__local_put(l, "a\0b", 3, sc__local_hash("a\0b", 3), v, 0, 0, SC__PUT_FORCE), SC_OK);
    ck_assert_int_eq(sc__local_peek(l, "a\0b", 3, sc__local_hash("a\0b", 3), &out), SC_OK);
    sc_value_release(out);
    ck_assert_int_eq(sc__local_peek(l, "a\0c", 3, sc__local_hash("a\0c", 3), &out), SC_NOT_FOUND);
    sc_value_release(v);
    sc__local_free(l);
}
END_TEST

/* A value handed out by sc__local_get stays valid after its entry is
 * replaced or evicted, even once enough entries left that the store has
 * reclaimed everything no reader can still see. */
START_TEST(test_value_outlives_entry)
{
    sc__local *l = mk(_i ? SC_LOCAL_LFU : SC_LOCAL_LRU, 16, 0, 0, 1);
    ck_assert_int_eq(put(l, "k", "first", 1, 0, 1), SC_OK);
    sc_value *v, *w;
    ck_assert_int_eq(sc__local_get(l, "k", 1, sc__local_hash("k", 1), &v), SC_OK);
    ck_assert_int_eq(put(l, "k", "second", 2, 0, 1), SC_OK); /* replaced */
    ck_assert_int_eq(sc__local_get(l, "k", 1, sc__local_hash("k", 1), &w), SC_OK);
    ck_assert_str_eq((const char *)sc_value_data(w), "second");
    char k[32];
    for (int i = 0; i < 5000; i++) { /* evicts "k", retires thousands */
        snprintf(k, sizeof k, "f%d", i);
        ck_assert_int_eq(put(l, k, "fill", 0, 0, 0), SC_OK);
    }
    ck_assert(!has(l, "k"));
    ck_assert_str_eq((const char *)sc_value_data(v), "first");
    ck_assert_uint_eq(sc_value_version(v), 1);
    ck_assert_str_eq((const char *)sc_value_data(w), "second");
    ck_assert_uint_eq(sc_value_version(w), 2);
    sc_value_release(v);
    sc_value_release(w);
    sc__local_free(l);
}
END_TEST

struct seen {
    char buf[64];
    size_t len;
    uint64_t version;
    int calls;
};

static void seen_fn(const void *data, size_t len, uint64_t version, void *ud)
{
    struct seen *s = ud;
    s->calls++;
    s->len = len;
    s->version = version;
    memcpy(s->buf, data, len < sizeof s->buf ? len : sizeof s->buf);
}

START_TEST(test_get_with)
{
    sc__local *l = mk(SC_LOCAL_LFU, 100, 0, 0, 1);
    uint64_t h = sc__local_hash("k", 1);
    ck_assert_int_eq(put(l, "k", "abc", 4, 0, 1), SC_OK);
    struct seen s = {0};
    ck_assert_int_eq(sc__local_get_with(l, "k", 1, h, seen_fn, &s), SC_OK);
    ck_assert_int_eq(s.calls, 1);
    ck_assert_uint_eq(s.len, 3);
    ck_assert_uint_eq(s.version, 4);
    ck_assert_int_eq(memcmp(s.buf, "abc", 3), 0);
    ck_assert_int_eq(sc__local_get_with(l, "x", 1, sc__local_hash("x", 1), seen_fn, &s), SC_NOT_FOUND);
    ck_assert_int_eq(s.calls, 1);
    ck_assert_int_eq(sc__local_get_with(l, "k", 1, h, NULL, &s), SC_ERR_INVALID);
    ck_assert_int_eq(sc__local_get_with(NULL, "k", 1, h, seen_fn, &s), SC_ERR_INVALID);
    /* An expired entry is not lent and is dropped (raising the floor). */
    ck_assert_int_eq(put(l, "t", "tmp", 7, 20, 1), SC_OK);
    sleep_ms(60);
    ck_assert_int_eq(sc__local_get_with(l, "t", 1, sc__local_hash("t", 1), seen_fn, &s), SC_NOT_FOUND);
    ck_assert_int_eq(s.calls, 1);
    sc__local_stats st;
    sc__local_stats(l, &st);
    ck_assert_uint_eq(st.hits, 1);
    ck_assert_uint_eq(st.misses, 0); /* misses are the caller's fallback's to count */
    ck_assert_uint_eq(st.expirations, 1);
    ck_assert_uint_eq(st.entries, 1);
    ck_assert_uint_ge(floor_of(l, "t"), 7);
    sc__local_free(l);
}
END_TEST

/* sc__local_get_with_str measures the key against the store's own
 * max_key_bytes and hands every miss, and every key it will not look up,
 * to the miss function with the caller's context, counting nothing. */
struct missed {
    int calls;
    const char *key;
    void *ctx;
};

static void note_miss(void *ctx, const char *key)
{
    struct missed *m = ctx;
    m->calls++;
    m->key = key;
    m->ctx = ctx;
}

static sc_status miss_fn(void *ctx, const char *key, sc_read_fn fn, void *ud)
{
    (void)fn;
    (void)ud;
    note_miss(ctx, key);
    return SC_NOT_FOUND;
}

static void assert_counted(sc__local *l, uint64_t hits, uint64_t misses)
{
    sc__local_stats st;
    sc__local_stats(l, &st);
    ck_assert_uint_eq(st.hits, hits);
    ck_assert_uint_eq(st.misses, misses);
}

/* A store that looks up keys of at most 4 bytes, holding "kkkk" = "abc" at
 * version and a 5-byte key (put takes any length). */
static sc__local *four_byte_store(sc_local_policy p, uint64_t version)
{
    sc__local_config cfg = {.policy = p, .max_entries = 100, .shards = 1, .max_key_bytes = 4};
    sc__local *l = sc__local_new(&cfg);
    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(put(l, "kkkk", "abc", version, 0, 1), SC_OK);
    ck_assert_int_eq(put(l, "kkkkk", "long", version + 1, 0, 1), SC_OK);
    return l;
}

START_TEST(test_get_with_str)
{
    sc__local *l = four_byte_store(SC_LOCAL_LFU, 4);
    struct seen s = {0};
    struct missed m = {0};
    ck_assert_int_eq(sc__local_get_with_str(l, "kkkk", seen_fn, &s, miss_fn, &m), SC_OK);
    ck_assert_int_eq(s.calls, 1);
    ck_assert_int_eq(memcmp(s.buf, "abc", 3), 0);
    ck_assert_int_eq(m.calls, 0);
    const char *bad[] = {"absent", "", NULL, "kkkkk"}; /* a miss, empty, NULL, longer than 4 */
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(sc__local_get_with_str(l, bad[i], seen_fn, &s, miss_fn, &m), SC_NOT_FOUND);
        ck_assert_int_eq(m.calls, i + 1);
        ck_assert_ptr_eq(m.key, bad[i]);
        ck_assert_ptr_eq(m.ctx, &m);
    }
    ck_assert_int_eq(s.calls, 1); /* the 5-byte key held was never lent */
    assert_counted(l, 1, 0);
    sc__local_free(l);
}
END_TEST

static sc_status get_miss_fn(void *ctx, const char *key, sc_value **out)
{
    note_miss(ctx, key);
    *out = NULL;
    return SC_NOT_FOUND;
}

/* sc_get's path: the same key limits and tail calls as sc__local_get_with_str,
 * with a reference that outlives the entry. */
START_TEST(test_get_str)
{
    sc__local *l = four_byte_store(SC_LOCAL_LRU, 7);
    struct missed m = {0};
    sc_value *v = NULL;
    ck_assert_int_eq(sc__local_get_str(l, "kkkk", &v, get_miss_fn, &m), SC_OK);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(memcmp(sc_value_data(v), "abc", 3), 0);
    ck_assert_uint_eq(sc_value_version(v), 7);
    ck_assert_int_eq(m.calls, 0);
    /* The reference is the caller's: the entry's removal leaves it valid. */
    ck_assert_int_eq(sc__local_remove(l, "kkkk", 4, sc__local_hash("kkkk", 4), UINT64_MAX, 0), 1);
    ck_assert_int_eq(memcmp(sc_value_data(v), "abc", 3), 0);
    sc_value_release(v);
    const char *bad[] = {"kkkk", "absent", "", NULL, "kkkkk"}; /* removed, a miss, empty, NULL, longer than 4 */
    for (int i = 0; i < 5; i++) {
        v = (sc_value *)&m; /* the miss function, not the store, says what *out holds */
        ck_assert_int_eq(sc__local_get_str(l, bad[i], &v, get_miss_fn, &m), SC_NOT_FOUND);
        ck_assert_ptr_null(v);
        ck_assert_int_eq(m.calls, i + 1);
        ck_assert_ptr_eq(m.key, bad[i]);
        ck_assert_ptr_eq(m.ctx, &m);
    }
    assert_counted(l, 1, 0);
    sc__local_free(l);
}
END_TEST

/* ---- pins: sc_get's hits hold their value without writing it ---- */

static int is_pin(const sc_value *v)
{
    return ((uintptr_t)v & 1) != 0;
}

static sc_value *get_pinned(sc__local *l, const char *k)
{
    struct missed m = {0};
    sc_value *v = NULL;
    ck_assert_int_eq(sc__local_get_str(l, k, &v, get_miss_fn, &m), SC_OK);
    return v;
}

/* Enough puts of fresh keys that the store evicts and reclaims (polls its
 * limbo and sweeps the values waiting for their pins) many times over. */
static void churn(sc__local *l, const char *prefix, int n)
{
    char k[32];
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "%s%d", prefix, i);
        ck_assert_int_eq(put(l, k, "fill", 0, 0, 0), SC_OK);
    }
}

static void assert_value(const sc_value *v, const char *data, uint64_t version)
{
    ck_assert_uint_eq(sc_value_size(v), strlen(data));
    ck_assert_str_eq((const char *)sc_value_data(v), data);
    ck_assert_uint_eq(sc_value_version(v), version);
}

/* Keys prefix0 .. prefix(n-1), key i holding "value i" at version i + 1. */
static void put_numbered(sc__local *l, const char *prefix, int n)
{
    char k[32], val[32];
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "%s%d", prefix, i);
        snprintf(val, sizeof val, "value %d", i);
        ck_assert_int_eq(put(l, k, val, (uint64_t)i + 1, 0, 1), SC_OK);
    }
}

static sc_value *get_numbered(sc__local *l, const char *prefix, int i)
{
    char k[32];
    snprintf(k, sizeof k, "%s%d", prefix, i);
    return get_pinned(l, k);
}

static void assert_numbered(const sc_value *v, int i)
{
    char val[32];
    snprintf(val, sizeof val, "value %d", i);
    assert_value(v, val, (uint64_t)i + 1);
}

/* A pinned value outlives its entry's replacement and eviction; its
 * store's reference waits for the pin, through a second hold taken with
 * sc_value_ref, and goes with the last release. */
START_TEST(test_pin_outlives_entry)
{
    size_t waiting0 = sc__pins_waiting();
    sc__local *l = mk(_i ? SC_LOCAL_LFU : SC_LOCAL_LRU, 16, 0, 0, 1);
    ck_assert_int_eq(put(l, "k", "first", 1, 0, 1), SC_OK);
    sc_value *v = get_pinned(l, "k");
    ck_assert(is_pin(v));
    assert_value(v, "first", 1);
    ck_assert_int_eq(put(l, "k", "second", 2, 0, 1), SC_OK); /* replaced */
    churn(l, "f", 5000);
    ck_assert(!has(l, "k"));
    ck_assert_uint_eq(sc__pins_waiting(), waiting0 + 1);
    assert_value(v, "first", 1);
    ck_assert_ptr_eq(sc_value_ref(v), v);
    sc_value_release(v); /* one hold left */
    churn(l, "g", 1000);
    ck_assert_uint_eq(sc__pins_waiting(), waiting0 + 1);
    assert_value(v, "first", 1);
    sc_value_release(v);
    churn(l, "h", 1000);
    ck_assert_uint_eq(sc__pins_waiting(), waiting0);
    sc__local_free(l);
}
END_TEST

static void *release_value(void *arg)
{
    assert_value(arg, "shared", 3);
    sc_value_release(arg);
    return NULL;
}

static void *get_and_exit(void *arg)
{
    return get_pinned(arg, "mine");
}

/* A pin is released by whichever thread holds it: another thread than the
 * one that took it, and after that thread has exited. */
START_TEST(test_pin_released_elsewhere)
{
    size_t waiting0 = sc__pins_waiting();
    sc__local *l = mk(SC_LOCAL_LRU, 16, 0, 0, 1);
    ck_assert_int_eq(put(l, "k", "shared", 3, 0, 1), SC_OK);
    ck_assert_int_eq(put(l, "mine", "theirs", 4, 0, 1), SC_OK);
    sc_value *v = get_pinned(l, "k");
    ck_assert(is_pin(v));
    ck_assert_ptr_eq(sc_value_ref(v), v);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, release_value, v), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(pthread_create(&t, NULL, get_and_exit, l), 0);
    void *theirs = NULL;
    ck_assert_int_eq(pthread_join(t, &theirs), 0);
    ck_assert(is_pin(theirs));
    churn(l, "f", 3000);
    ck_assert(!has(l, "k") && !has(l, "mine"));
    ck_assert_uint_eq(sc__pins_waiting(), waiting0 + 2);
    assert_value(v, "shared", 3); /* this thread's hold */
    assert_value(theirs, "theirs", 4);
    sc_value_release(theirs);
    sc_value_release(v);
    churn(l, "h", 3000);
    ck_assert_uint_eq(sc__pins_waiting(), waiting0);
    sc__local_free(l);
}
END_TEST

/* A thread has SC__PINS pins; the gets beyond them take references. All
 * stay valid when a clear drops every entry at once (a whole table's
 * entries in one retirement), and every value goes when released. */
START_TEST(test_pins_run_out)
{
    size_t waiting0 = sc__pins_waiting();
    sc__local *l = mk(SC_LOCAL_LFU, 0, 0, 0, 2);
    enum { HELD = SC__PINS + 24 };
    sc_value *v[HELD];
    put_numbered(l, "k", HELD);
    int pins = 0;
    for (int i = 0; i < HELD; i++) {
        v[i] = get_numbered(l, "k", i);
        pins += is_pin(v[i]);
    }
    ck_assert_int_eq(pins, SC__PINS);
    ck_assert_uint_eq(sc__local_clear(l, 0), HELD);
    churn(l, "f", 3000);
    ck_assert_uint_eq(sc__pins_waiting(), waiting0 + SC__PINS);
    for (int i = 0; i < HELD; i++) {
        assert_numbered(v[i], i);
        sc_value_release(v[i]);
    }
    sc__local_clear(l, 0);
    churn(l, "g", 3000);
    ck_assert_uint_eq(sc__pins_waiting(), waiting0);
    /* The pins are free again. */
    ck_assert_int_eq(put(l, "again", "yes", 1, 0, 1), SC_OK);
    for (int i = 0; i < SC__PINS; i++) {
        sc_value *w = get_pinned(l, "again");
        ck_assert(is_pin(w));
        assert_value(w, "yes", 1);
        sc_value_release(w);
    }
    sc__local_free(l);
}
END_TEST

/* A sweep frees a waiting value only with pins collected after the walk
 * that found it pinned: an older collection (one a writer of another store
 * took before this value was even pinned) does not see its pin. */
START_TEST(test_sweep_needs_a_later_walk)
{
    size_t waiting0 = sc__pins_waiting();
    sc__local *l = mk(SC_LOCAL_LRU, 16, 0, 0, 1);
    ck_assert_int_eq(put(l, "k", "held", 5, 0, 1), SC_OK);
    sc__pins old;
    sc__pins_collect(&old);
    sc_value *v = get_pinned(l, "k");
    ck_assert(is_pin(v));
    churn(l, "f", 3000);
    ck_assert_uint_eq(sc__pins_waiting(), waiting0 + 1);
    sc__pins_sweep(&old); /* v is pinned, though old shows no pin of it */
    ck_assert_uint_eq(sc__pins_waiting(), waiting0 + 1);
    assert_value(v, "held", 5);
    sc_value_release(v);
    sc__pins_sweep(&old); /* unpinned now, but old still may not judge it */
    ck_assert_uint_eq(sc__pins_waiting(), waiting0 + 1);
    sc__pins_done(&old);
    churn(l, "g", 1000);
    ck_assert_uint_eq(sc__pins_waiting(), waiting0);
    sc__local_free(l);
}
END_TEST

/* A pinned value outlives its store; the next store's reclaim (or free)
 * drops it once released. */
START_TEST(test_pin_outlives_store)
{
    size_t waiting0 = sc__pins_waiting();
    sc__local *l = mk(SC_LOCAL_LRU, 16, 0, 0, 1);
    ck_assert_int_eq(put(l, "k", "kept", 9, 0, 1), SC_OK);
    sc_value *v = get_pinned(l, "k");
    ck_assert(is_pin(v));
    sc__local_free(l);
    ck_assert_uint_eq(sc__pins_waiting(), waiting0 + 1);
    assert_value(v, "kept", 9);
    sc_value_release(v);
    l = mk(SC_LOCAL_LRU, 16, 0, 0, 1);
    churn(l, "f", 1000);
    ck_assert_uint_eq(sc__pins_waiting(), waiting0);
    sc__local_free(l);
}
END_TEST

/* ---- out of memory where reclaiming allocates ----
 * This executable is linked with -Wl,--wrap=malloc,--wrap=realloc
 * (test/CMakeLists.txt): the library's calls come here, and a test makes
 * the next call of one size on its own thread fail. */
static __thread size_t fail_size; /* 0: none */
static atomic_int alloc_failures;

static int fail_now(size_t size)
{
    if (!fail_size || size != fail_size)
        return 0;
    fail_size = 0;
    atomic_fetch_add(&alloc_failures, 1);
    return 1;
}

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_malloc(size_t size)
{
    return fail_now(size) ? NULL : __real_malloc(size);
}

void *__real_realloc(void *p, size_t size);
void *__wrap_realloc(void *p, size_t size);
void *__wrap_realloc(void *p, size_t size)
{
    return fail_now(size) ? NULL : __real_realloc(p, size);
}

/* 9 threads x 16 pins: more than a collection holds without allocating. */
enum { PINNERS = 9, PINNED = PINNERS * SC__PINS };

typedef struct pinner {
    sc__local *l;
    int first;
    pthread_barrier_t *held, *release;
} pinner;

static void *pinner_main(void *arg)
{
    pinner *p = arg;
    sc_value *v[SC__PINS];
    for (int i = 0; i < SC__PINS; i++) {
        v[i] = get_numbered(p->l, "p", p->first + i);
        ck_assert(is_pin(v[i]));
    }
    pthread_barrier_wait(p->held);
    pthread_barrier_wait(p->release);
    for (int i = 0; i < SC__PINS; i++) {
        assert_numbered(v[i], p->first + i);
        sc_value_release(v[i]);
    }
    return NULL;
}

/* A collection of pins that cannot grow past its 128 inline places counts
 * every value as pinned: a clear then keeps every entry waiting (none is
 * freed under its pin), and a later complete collection frees them all. */
START_TEST(test_pin_collection_out_of_memory)
{
    size_t waiting0 = sc__pins_waiting();
    sc__local *l = mk(SC_LOCAL_LRU, 0, 0, 0, 1);
    enum { HELD = PINNED + 56 };
    put_numbered(l, "p", HELD);
    pthread_barrier_t held, release;
    pthread_barrier_init(&held, NULL, PINNERS + 1);
    pthread_barrier_init(&release, NULL, PINNERS + 1);
    pthread_t t[PINNERS];
    pinner p[PINNERS];
    for (int i = 0; i < PINNERS; i++) {
        p[i] = (pinner){l, i * SC__PINS, &held, &release};
        ck_assert_int_eq(pthread_create(&t[i], NULL, pinner_main, &p[i]), 0);
    }
    pthread_barrier_wait(&held);
    fail_size = 256 * sizeof(void *); /* the collection's first growth */
    ck_assert_uint_eq(sc__local_clear(l, 0), HELD);
    int failures = atomic_load(&alloc_failures);
    ck_assert_int_eq(failures, 1);
    ck_assert_uint_eq(sc__pins_waiting(), waiting0 + HELD);
    pthread_barrier_wait(&release); /* the pinners check their values and release them */
    for (int i = 0; i < PINNERS; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
    ck_assert_int_eq(put(l, "again", "x", 1, 0, 1), SC_OK);
    sc__local_clear(l, 0); /* collects in full, and sweeps */
    ck_assert_uint_eq(sc__pins_waiting(), waiting0);
    pthread_barrier_destroy(&held);
    pthread_barrier_destroy(&release);
    sc__local_free(l);
}
END_TEST

typedef struct slow_reader {
    sc__local *l;
    atomic_int inside, left;
} slow_reader;

/* Reads the value again after the writer's limbo failed to grow, and a
 * while after: a writer that freed it without waiting for this section to
 * end would have handed its memory back by then. */
static void read_slowly(const void *data, size_t len, uint64_t version, void *ud)
{
    slow_reader *r = ud;
    atomic_store(&r->inside, 1);
    while (!atomic_load(&alloc_failures))
        sched_yield();
    sleep_ms(50);
    ck_assert_uint_eq(len, 4);
    ck_assert(memcmp(data, "slow", 4) == 0);
    ck_assert_uint_eq(version, 7);
    atomic_store(&r->left, 1);
}

static void *slow_reader_main(void *arg)
{
    slow_reader *r = arg;
    ck_assert_int_eq(sc__local_get_with(r->l, "last", 4, sc__local_hash("last", 4), read_slowly, r), SC_OK);
    return NULL;
}

/* A limbo that cannot grow: the writer waits out the grace period itself
 * (sc__retire), so the value it retires outlives the read section that
 * still reads it; what waited in the limbo is freed later all the same. */
START_TEST(test_limbo_out_of_memory)
{
    sc__local *l = mk(SC_LOCAL_LRU, 0, 0, 0, 1);
    char k[32];
    ck_assert_int_eq(put(l, "last", "slow", 7, 0, 1), SC_OK);
    for (int i = 0; i < 128; i++) {
        snprintf(k, sizeof k, "r%03d", i);
        ck_assert_int_eq(put(l, k, "fill", 1, 0, 1), SC_OK);
    }
    slow_reader r = {.l = l};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, slow_reader_main, &r), 0);
    while (!atomic_load(&r.inside))
        sched_yield();
    /* 128 replaced values fill the limbo (the reader's section keeps them
     * all there), so the next retirement must grow it. */
    for (int i = 0; i < 128; i++) {
        snprintf(k, sizeof k, "r%03d", i);
        ck_assert_int_eq(put(l, k, "fill", 2, 0, 1), SC_OK);
    }
    fail_size = 256 * sizeof(struct retired);
    ck_assert_int_eq(put(l, "last", "done", 8, 0, 1), SC_OK);
    int failures = atomic_load(&alloc_failures), reader_left = atomic_load(&r.left);
    ck_assert_int_eq(failures, 1);
    ck_assert_int_eq(reader_left, 1); /* the put waited for the reader */
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    for (int i = 0; i < 100; i++) { /* values of the retired one's size, which reuse its memory */
        snprintf(k, sizeof k, "g%03d", i);
        ck_assert_int_eq(put(l, k, "fill", 1, 0, 1), SC_OK);
    }
    sc_value *v = get_pinned(l, "last");
    assert_value(v, "done", 8);
    sc_value_release(v);
    sc__local_clear(l, 0);
    sc__local_free(l);
}
END_TEST

/* A pinned value whose store lets go of it while the waiting list cannot
 * grow stays in the store's limbo (still the store's reference, still
 * readable), and a later poll moves it to the list; nothing leaks (ASan's
 * leak check) and nothing is freed under the pin or released twice. Loop
 * 0: the value was replaced; 1: a clear retired its whole table, whose
 * other entries go at once while the table waits with the pinned one.
 * Each test runs in a process of its own (Check's fork mode), so the list
 * starts empty and its first allocation is 16 places. */
START_TEST(test_waiting_list_out_of_memory)
{
    size_t waiting0 = sc__pins_waiting();
    sc__local *l = mk(SC_LOCAL_LRU, 16, 0, 0, 1);
    ck_assert_int_eq(put(l, "k", "held", 5, 0, 1), SC_OK);
    ck_assert_int_eq(put(l, "other", "free", 1, 0, 1), SC_OK);
    sc_value *v = get_pinned(l, "k");
    ck_assert(is_pin(v));
    fail_size = 16 * (sizeof(void *) + sizeof(uint64_t)); /* the list's first places */
    char k[32];
    if (_i) {
        ck_assert_uint_eq(sc__local_clear(l, 0), 2); /* polls at once: a table */
    } else {
        ck_assert_int_eq(put(l, "k", "newer", 6, 0, 1), SC_OK); /* v goes to the limbo */
        for (int i = 0; i < 1000 && !atomic_load(&alloc_failures); i++) {
            snprintf(k, sizeof k, "f%d", i);
            ck_assert_int_eq(put(l, k, "fill", 0, 0, 0), SC_OK);
        }
    }
    int failures = atomic_load(&alloc_failures);
    ck_assert_int_eq(failures, 1);
    ck_assert_uint_eq(sc__pins_waiting(), waiting0); /* not listed: kept in the limbo */
    ck_assert_uint_ge(l->shards[0].nlimbo, 1);
    assert_value(v, "held", 5);
    churn(l, "g", 1000); /* the next polls list it */
    ck_assert_uint_eq(sc__pins_waiting(), waiting0 + 1);
    assert_value(v, "held", 5);
    sc_value_release(v);
    churn(l, "h", 1000);
    ck_assert_uint_eq(sc__pins_waiting(), waiting0);
    sc__local_free(l);
}
END_TEST

static uint64_t hash_of_key(const char *k)
{
    return sc__local_hash(k, strlen(k));
}

/* sc_get_many's prefetch is a hint: it counts nothing and touches no
 * recency (an LRU store still evicts its oldest key after it), whatever
 * the hashes: held, absent, removed (a tombstone), or no store at all. */
START_TEST(test_prefetch_changes_nothing)
{
    sc__local *l = mk(SC_LOCAL_LRU, 3, 0, 0, 1);
    ck_assert_int_eq(put(l, "a", "1", 1, 0, 1), SC_OK);
    ck_assert_int_eq(put(l, "b", "2", 2, 0, 1), SC_OK);
    ck_assert_int_eq(put(l, "c", "3", 3, 0, 1), SC_OK);
    ck_assert_int_eq(put(l, "gone", "4", 4, 0, 1), SC_OK); /* evicts a */
    ck_assert_int_eq(put(l, "a", "1", 5, 0, 1), SC_OK);    /* evicts b: order c, gone, a */
    ck_assert_int_eq(sc__local_remove(l, "gone", 4, hash_of_key("gone"), UINT64_MAX, 0), 1);
    const uint64_t hs[] = {hash_of_key("c"), hash_of_key("absent"), hash_of_key("gone"), hash_of_key("a")};
    sc__local_prefetch(l, hs, 4);
    sc__local_prefetch(l, hs, 0);
    sc__local_prefetch(l, NULL, 4);
    sc__local_prefetch(NULL, hs, 4);
    assert_counted(l, 0, 0);
    sc__local_stats st;
    sc__local_stats(l, &st);
    ck_assert_uint_eq(st.entries, 2);
    /* c is still the oldest: prefetching it did not count as a use. */
    ck_assert_int_eq(put(l, "d", "5", 6, 0, 1), SC_OK);
    ck_assert_int_eq(put(l, "e", "6", 7, 0, 1), SC_OK); /* the bound of 3 is reached again: c goes */
    ck_assert_int_eq(has(l, "c"), 0);
    ck_assert_int_eq(has(l, "a"), 1);
    ck_assert_int_eq(has(l, "d"), 1);
    ck_assert_int_eq(has(l, "e"), 1);
    sc__local_free(l);
}
END_TEST

/* An unbounded store grows its tables through many resizes (each a new
 * table published while the old one waits for readers) and loses nothing;
 * removes leave tombstones that later resizes purge. */
START_TEST(test_growth_and_tombstones)
{
    sc__local *l = mk(_i ? SC_LOCAL_LFU : SC_LOCAL_LRU, 0, 0, 0, 4);
    char k[32];
    const int n = 50000;
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "g%d", i);
        ck_assert_int_eq(put(l, k, k, 1, 0, 1), SC_OK);
    }
    for (int i = 0; i < n; i += 2) {
        snprintf(k, sizeof k, "g%d", i);
        ck_assert_int_eq(sc__local_remove(l, k, strlen(k), sc__local_hash(k, strlen(k)), UINT64_MAX, 0), 1);
    }
    for (int round = 0; round < 3; round++) /* churn: tombstones get purged */
        for (int i = 0; i < n; i += 2) {
            snprintf(k, sizeof k, "g%d", i);
            uint64_t h = sc__local_hash(k, strlen(k));
            ck_assert_int_eq(put(l, k, k, 2 + (uint64_t)round, 0, 1), SC_OK);
            ck_assert_int_eq(sc__local_remove(l, k, strlen(k), h, UINT64_MAX, 0), 1);
        }
    sc__local_stats st;
    sc__local_stats(l, &st);
    ck_assert_uint_eq(st.entries, (uint64_t)n / 2);
    for (int i = 0; i < n; i++) {
        snprintf(k, sizeof k, "g%d", i);
        ck_assert_int_eq(has(l, k), i % 2);
    }
    ck_assert_uint_eq(sc__local_clear(l, 0), (size_t)n / 2);
    sc__local_free(l);
}
END_TEST

/* The table's load follows its shard's size (local/index.c): sparse (at
 * most 1/2) while the shard holds up to 1365 entries, where a hit pays for
 * each slot it probes; dense (70% to 7/8) beyond, where memory per entry
 * counts. Crossing the line either way must neither lose an entry nor
 * rebuild the table on every put. */
static double load_of(sc__local *l)
{
    struct shard *s = &l->shards[0];
    return (double)(s->count + s->tombs) / (double)s->t->size;
}

/* Puts 20,000 keys into one shard bounded at bound entries, which keeps
 * evicting. After every put the shard holds at most bound entries, its
 * table at most max_slots slots, at the load for its size (1/2 up to 1365
 * entries, 7/8 beyond); it rebuilds now and then, never on every put, and
 * every entry it counts is findable. */
static void churn_bounded(int lfu, unsigned bound, uint32_t max_slots)
{
    sc__local *l = mk(lfu ? SC_LOCAL_LFU : SC_LOCAL_LRU, bound, 0, 0, 1);
    const struct shard *s = &l->shards[0];
    const struct table *last = s->t;
    int rebuilds = 0;
    char k[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(k, sizeof k, "b%d", i);
        ck_assert_int_eq(put(l, k, k, 1, 0, 1), SC_OK);
        ck_assert_msg(s->t->size <= max_slots, "%u slots with %u entries, bound %u", s->t->size, s->count, bound);
        ck_assert_msg(load_of(l) <= (s->count <= 1365 ? 0.5 : 0.875), "load %.3f with %u entries, bound %u", load_of(l),
                      s->count, bound);
        ck_assert_uint_le(s->count, bound);
        if (s->t != last) {
            rebuilds++;
            last = s->t;
        }
    }
    ck_assert_int_le(rebuilds, 200);
    int held = 0;
    for (int i = 0; i < 20000; i++) {
        snprintf(k, sizeof k, "b%d", i);
        held += has(l, k);
    }
    ck_assert_int_eq(held, (int)s->count);
    sc__local_free(l);
}

START_TEST(test_load_follows_shard_size)
{
    sc__local *l = mk(_i ? SC_LOCAL_LFU : SC_LOCAL_LRU, 0, 0, 0, 1);
    char k[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "s%d", i);
        ck_assert_int_eq(put(l, k, k, 1, 0, 1), SC_OK);
        ck_assert_msg(load_of(l) <= 0.5, "load %.3f with %d entries", load_of(l), i + 1);
    }
    for (int i = 1000; i < 20000; i++) {
        snprintf(k, sizeof k, "s%d", i);
        ck_assert_int_eq(put(l, k, k, 1, 0, 1), SC_OK);
        ck_assert_msg(load_of(l) <= 0.875, "load %.3f with %d entries", load_of(l), i + 1);
    }
    /* Dense at 20000 entries: what keeps a large store under 64 B each. */
    ck_assert_msg(load_of(l) >= 0.69, "load %.3f with 20000 entries", load_of(l));
    /* Back down to 100 entries (tombstones), then put/remove churn: the
     * table is rebuilt now and then, never on every put. */
    for (int i = 100; i < 20000; i++) {
        snprintf(k, sizeof k, "s%d", i);
        ck_assert_int_eq(sc__local_remove(l, k, strlen(k), sc__local_hash(k, strlen(k)), UINT64_MAX, 0), 1);
    }
    const struct table *last = l->shards[0].t;
    int rebuilds = 0;
    for (int i = 0; i < 20000; i++) {
        snprintf(k, sizeof k, "c%d", i % 500);
        ck_assert_int_eq(put(l, k, k, 2 + (uint64_t)i, 0, 1), SC_OK);
        if (i % 2)
            ck_assert_int_eq(sc__local_remove(l, k, strlen(k), sc__local_hash(k, strlen(k)), UINT64_MAX, 0), 1);
        if (l->shards[0].t != last) {
            rebuilds++;
            last = l->shards[0].t;
        }
        ck_assert_msg(load_of(l) <= 0.875, "load %.3f during churn", load_of(l));
    }
    ck_assert_int_le(rebuilds, 200);
    ck_assert_msg(load_of(l) <= 0.5, "load %.3f with %u entries after churn", load_of(l), l->shards[0].count);
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "s%d", i);
        ck_assert(has(l, k));
    }
    for (int i = 100; i < 20000; i += 997) {
        snprintf(k, sizeof k, "s%d", i);
        ck_assert(!has(l, k));
    }
    sc__local_free(l);

    /* A bounded small shard that keeps evicting: its table stays at the
     * bound's sparse size (3 x 1000 + 16 slots) and gathers tombstones up
     * to half load between rebuilds. */
    churn_bounded(_i, 1000, 1000 * 3 + 16);
    /* A bound just past the line (2000): on its way up the shard runs
     * sparse, but its table never outgrows the bound's dense size (2000 *
     * 10/7 + 16 slots), which the sparse size for 1365 entries (4097) would;
     * then it keeps evicting at the dense load. */
    churn_bounded(_i, 2000, 2000 * 10 / 7 + 16);
}
END_TEST

/* A recency-skewed workload (most requests go to keys first seen a moment
 * ago): the static 1% window turns new keys away (about 12% hits where LRU
 * gets 65%); the hill climber grows the window and recovers most of the
 * difference (about 58%). The traces' figures are in docs/benchmarks.md. */
static double recency_workload(sc_local_policy p, int static_window)
{
    sc__local_config cfg = {.policy = p, .max_entries = 500, .shards = 1, .static_window = static_window};
    sc__local *l = sc__local_new(&cfg);
    ck_assert_ptr_nonnull(l);
    unsigned long hits = 0, n = 0, next = 0, rnd = 99;
    char k[32];
    for (int i = 0; i < 400000; i++) {
        rnd = rnd * 6364136223846793005ul + 1442695040888963407ul;
        unsigned long key;
        if ((rnd >> 33) % 10 < 3 || next < 400)
            key = next++;
        else
            key = next - 1 - (rnd >> 40) % 400; /* one of the 400 newest */
        snprintf(k, sizeof k, "r%lu", key);
        n++;
        if (get(l, k))
            hits++;
        else
            ck_assert_int_eq(put(l, k, "v", 0, 0, 0), SC_OK);
    }
    sc__local_free(l);
    return 100.0 * (double)hits / (double)n;
}

START_TEST(test_window_climbs)
{
    double lru = recency_workload(SC_LOCAL_LRU, 0);
    double adaptive = recency_workload(SC_LOCAL_LFU, 0);
    double fixed = recency_workload(SC_LOCAL_LFU, 1);
    ck_assert_msg(adaptive > lru - 15.0, "adaptive %.2f%% lru %.2f%% static %.2f%%", adaptive, lru, fixed);
    ck_assert_msg(adaptive > fixed + 30.0, "adaptive %.2f%% lru %.2f%% static %.2f%%", adaptive, lru, fixed);
}
END_TEST

/* ---- multi-threaded stress ---- */

#define NKEYS 300
#define NTHREADS 4

struct stress {
    sc__local *l;
    unsigned seed;
    unsigned long bad;
};

/* Every value spells its key and version, so a reader can tell a torn or
 * misfiled value from a good one. */
static void *stress_thread(void *arg)
{
    struct stress *st = arg;
    unsigned long r = st->seed;
    char k[32], val[64];
    for (int i = 0; i < 30000; i++) {
        r = r * 6364136223846793005ul + 1442695040888963407ul;
        unsigned key = (unsigned)((r >> 33) % NKEYS), op = (unsigned)((r >> 20) % 16);
        size_t kl = (size_t)snprintf(k, sizeof k, "key%u", key);
        uint64_t h = sc__local_hash(k, kl);
        sc_value *v;
        if (op < 8) {
            if (sc__local_get(st->l, k, kl, h, &v) == SC_OK) {
                char want[64];
                snprintf(want, sizeof want, "%s:%llu", k, (unsigned long long)sc_value_version(v));
                if (strncmp((const char *)sc_value_data(v), want, strlen(want)) != 0)
                    st->bad++;
                sc_value_release(v);
            }
        } else if (op < 13) {
            uint64_t ver = (r >> 8) & 0xffff;
            int n = snprintf(val, sizeof val, "%s:%llu:%.*s", k, (unsigned long long)ver,
                             (int)(r % 20), "....................");
            v = sc__value_new(val, (size_t)n, ver);
            if (!v)
                st->bad++;
            sc_status s = sc__local_put(st->l, k, kl, h, v, 0, op == 12 ? ver : UINT64_MAX,
                                        op & 1 ? 0 : SC__PUT_FORCE);
            if (s != SC_OK && s != SC_ERR_CONFLICT)
                st->bad++;
            sc_value_release(v);
        } else if (op == 13) {
            sc__local_remove(st->l, k, kl, h, (r >> 8) & 0xffff, (r >> 8) & 0xffff);
        } else if (op == 14) {
            sc__local_remove(st->l, k, kl, h, 0, (r >> 8) & 0xffff);
        } else if (i % 97 == 0) {
            sc__local_clear(st->l, 0);
        } else {
            sc__local_stats s;
            sc__local_stats(st->l, &s);
        }
    }
    return NULL;
}

START_TEST(test_stress)
{
    sc_local_policy p = _i ? SC_LOCAL_LFU : SC_LOCAL_LRU;
    sc__local *l = mk(p, 128, 4000, 0, 4);
    pthread_t t[NTHREADS];
    struct stress st[NTHREADS];
    for (unsigned i = 0; i < NTHREADS; i++) {
        st[i] = (struct stress){.l = l, .seed = 1000 + i};
        ck_assert_int_eq(pthread_create(&t[i], NULL, stress_thread, &st[i]), 0);
    }
    for (unsigned i = 0; i < NTHREADS; i++) {
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        ck_assert_uint_eq(st[i].bad, 0);
    }
    sc__local_stats s;
    sc__local_stats(l, &s);
    uint64_t entries = 0, bytes = 0;
    char k[32];
    for (unsigned key = 0; key < NKEYS; key++) {
        size_t kl = (size_t)snprintf(k, sizeof k, "key%u", key);
        sc_value *v;
        if (sc__local_peek(l, k, kl, sc__local_hash(k, kl), &v) == SC_OK) {
            entries++;
            bytes += kl + sc_value_size(v);
            sc_value_release(v);
        }
    }
    ck_assert_uint_eq(s.entries, entries);
    ck_assert_uint_eq(s.bytes, bytes);
    ck_assert_uint_le(s.entries, 128);
    ck_assert_uint_le(s.bytes, 4000);
    ck_assert_uint_gt(s.hits, 0);
    ck_assert_uint_gt(s.evictions, 0);
    sc__local_free(l);
}
END_TEST

static Suite *local_suite(void)
{
    Suite *s = suite_create("local");
    TCase *tc = tcase_create("store");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_value);
    tcase_add_test(tc, test_lru_exact);
    tcase_add_test(tc, test_lfu_scan_resistance);
    tcase_add_loop_test(tc, test_entry_bound, 0, 2);
    tcase_add_loop_test(tc, test_byte_bound, 0, 2);
    tcase_add_test(tc, test_too_large);
    tcase_add_loop_test(tc, test_bound_below_shard_count, 0, 2);
    tcase_add_test(tc, test_forced_replacement_raises_floor);
    tcase_add_loop_test(tc, test_ttl, 0, 2);
    tcase_add_test(tc, test_max_ttl);
    tcase_add_test(tc, test_versions);
    tcase_add_test(tc, test_floors);
    tcase_add_test(tc, test_leaving_raises_floor);
    tcase_add_test(tc, test_remove_below);
    tcase_add_test(tc, test_held_values_survive);
    tcase_add_loop_test(tc, test_clear_and_reuse, 0, 2);
    tcase_add_test(tc, test_bad_input);
    tcase_add_loop_test(tc, test_stress, 0, 2);
    tcase_add_loop_test(tc, test_value_outlives_entry, 0, 2);
    tcase_add_test(tc, test_get_with);
    tcase_add_test(tc, test_hit_takes_no_lock);
    tcase_add_test(tc, test_get_with_str);
    tcase_add_test(tc, test_get_str);
    tcase_add_loop_test(tc, test_pin_outlives_entry, 0, 2);
    tcase_add_test(tc, test_pin_released_elsewhere);
    tcase_add_test(tc, test_pins_run_out);
    tcase_add_test(tc, test_pin_outlives_store);
    tcase_add_test(tc, test_sweep_needs_a_later_walk);
    tcase_add_test(tc, test_pin_collection_out_of_memory);
    tcase_add_test(tc, test_limbo_out_of_memory);
    tcase_add_loop_test(tc, test_waiting_list_out_of_memory, 0, 2);
    tcase_add_test(tc, test_prefetch_changes_nothing);
    tcase_add_loop_test(tc, test_growth_and_tombstones, 0, 2);
    tcase_add_loop_test(tc, test_load_follows_shard_size, 0, 2);
    tcase_add_test(tc, test_window_climbs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(local_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
