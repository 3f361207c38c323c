/* test/check_local_stress.c: lock-free readers of the local store while
 * writers, evictions, expiries, clears and table resizes happen. No Redis.
 *
 * Every value spells its key, its version and its own length, and is
 * padded with one byte, so a reader can tell a torn, misfiled or freed
 * value from a good one (ASan also sees any read of freed memory, and TSan
 * any unordered one). Readers:
 *  - use sc__local_get, sc_get's sc__local_get_str, which pins, and the
 *    batch reads' sc__local_get_pinned, which pins until the thread's pins
 *    are all held (and keep a few values for a while before checking and
 *    releasing them, so values outlive their entries, and hand some to the
 *    other reader, which checks and releases them: pins released on another
 *    thread), sc__local_get_with (checked inside the callback) and
 *    sc__local_peek, and now and then sc__local_prefetch (sc_get_many's: it
 *    reads slots too);
 *  - check that, per key, the versions they see never go down: writers only
 *    make ordered puts (known = version), and every way an entry leaves
 *    raises the key's floor to its version, so once a version was visible
 *    nothing older may be. This is the floor contract, checked with readers
 *    that take no lock.
 * Writers put with short TTLs (expiry), remove with floors, clear, and run
 * a bounded store (constant evictions and tombstone purges) and an unbounded
 * one whose key set grows to thousands and is cleared again (resizes).
 * Run it under ASan+UBSan and TSan too.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "local/local.h"
#include "local/shard.h" /* STRIPES: keys sharing a floor stripe */

#define NKEYS 2048
#define NREADERS 2
#define NWRITERS 2
#define HOLD 20 /* more than a thread's 16 pins: gets past them take counted references */

/* The floor stripe of a key's hash (local/shard.h stripe_of). */
static unsigned stripe(uint64_t hash)
{
    return (unsigned)((hash >> 32) & (STRIPES - 1));
}

/* A value one reader hands to another, which checks and releases it (a
 * pin released on another thread than the one that took it). */
struct parcel {
    sc_value *v;
    char key[32];
};

struct shared {
    sc__local *l;
    int unbounded;
    atomic_int stop, writers_done;
    atomic_ulong bad, hits, hits_while_writing;
    pthread_mutex_t mailbox_mu;
    struct parcel mailbox;
};

static size_t key_of(char *k, size_t cap, unsigned i)
{
    return (size_t)snprintf(k, cap, "key%u", i);
}

/* "<key>:<version>:<len>:" then padding 'p' up to len bytes. */
static int value_ok(const char *key, const char *data, size_t len, uint64_t version)
{
    char want[64];
    int n = snprintf(want, sizeof want, "%s:%llu:%zu:", key, (unsigned long long)version, len);
    if ((size_t)n > len || memcmp(data, want, (size_t)n) != 0)
        return 0;
    for (size_t i = (size_t)n; i < len; i++)
        if (data[i] != 'p')
            return 0;
    return data[len] == '\0';
}

static sc_value *make_value(const char *key, uint64_t version, size_t pad)
{
    char buf[256];
    /* The length is part of the text: iterate to the fixed point. */
    size_t len = 0;
    int m = 0;
    for (int round = 0; round < 4; round++) {
        m = snprintf(buf, sizeof buf, "%s:%llu:%zu:", key, (unsigned long long)version, len);
        if ((size_t)m + pad == len)
            break;
        len = (size_t)m + pad;
    }
    if ((size_t)m + pad != len)
        return NULL;
    memset(buf + m, 'p', pad);
    return sc__value_new(buf, len, version);
}

struct with_ctx {
    const char *key;
    int ok;
    uint64_t version;
};

static void check_with(const void *data, size_t len, uint64_t version, void *ud)
{
    struct with_ctx *c = ud;
    c->ok = value_ok(c->key, data, len, version);
    c->version = version;
}

static sc_status no_entry(void *ctx, const char *key, sc_value **out)
{
    (void)ctx;
    (void)key;
    *out = NULL;
    return SC_NOT_FOUND;
}

/* Swaps the reader's held value for the one in the mailbox. */
static void trade(struct shared *sh, sc_value **v, char *key)
{
    pthread_mutex_lock(&sh->mailbox_mu);
    struct parcel in = sh->mailbox;
    sh->mailbox.v = *v;
    memcpy(sh->mailbox.key, key, sizeof sh->mailbox.key);
    *v = in.v;
    memcpy(key, in.key, sizeof in.key);
    pthread_mutex_unlock(&sh->mailbox_mu);
}

static void *reader(void *arg)
{
    struct shared *sh = arg;
    uint64_t *last = calloc(NKEYS, sizeof *last);
    sc_value *held[HOLD] = {0};
    char held_key[HOLD][32];
    unsigned long r = (unsigned long)(uintptr_t)arg ^ 0x9e3779b97f4a7c15ul, bad = 0, hits = 0, hits_while_writing = 0,
                  reads = 0;
    int pins_left = 1;
    char k[32];
    while (!atomic_load(&sh->stop)) {
        r = r * 6364136223846793005ul + 1442695040888963407ul;
        unsigned i = (unsigned)((r >> 33) % NKEYS), op = (unsigned)((r >> 20) % 8);
        size_t kl = key_of(k, sizeof k, i);
        uint64_t h = sc__local_hash(k, kl), seen = 0;
        reads++;
        if ((r & 7) == 0) { /* sc_get_many's prefetch: reads slots while tables are replaced */
            uint64_t hs[4];
            char pk[32];
            for (unsigned j = 0; j < 4; j++) {
                size_t pl = key_of(pk, sizeof pk, (i + j) % NKEYS);
                hs[j] = sc__local_hash(pk, pl);
            }
            sc__local_prefetch(sh->l, hs, 4);
        }
        if (op < 4) {
            sc_value *v;
            /* Half through sc_get's path, which pins the value, a quarter
             * as a batch does (pinned while pins are free, then counted
             * for the rest of a "batch" of 32 reads), a quarter counted. */
            if (reads % 32 == 0)
                pins_left = 1;
            unsigned how = (unsigned)(r >> 40) & 3;
            sc_status got = how < 2    ? sc__local_get_str(sh->l, k, &v, no_entry, NULL)
                            : how == 2 ? sc__local_get_pinned(sh->l, k, kl, h, &v, &pins_left)
                                       : sc__local_get(sh->l, k, kl, h, &v);
            if (got == SC_OK) {
                hits++;
                seen = sc_value_version(v);
                if (!value_ok(k, sc_value_data(v), sc_value_size(v), seen))
                    bad++;
                unsigned slot = (unsigned)(r % HOLD);
                if (held[slot]) {
                    if (!value_ok(held_key[slot], sc_value_data(held[slot]), sc_value_size(held[slot]),
                                  sc_value_version(held[slot])))
                        bad++;
                    sc_value_release(held[slot]);
                }
                held[slot] = v;
                memcpy(held_key[slot], k, kl + 1);
                if (((r >> 44) & 15) == 0)
                    trade(sh, &held[slot], held_key[slot]);
            }
        } else if (op < 7) {
            struct with_ctx c = {.key = k};
            if (sc__local_get_with(sh->l, k, kl, h, check_with, &c) == SC_OK) {
                hits++;
                seen = c.version;
                if (!c.ok)
                    bad++;
            }
        } else {
            sc_value *v;
            if (sc__local_peek(sh->l, k, kl, h, &v) == SC_OK) {
                seen = sc_value_version(v);
                if (!value_ok(k, sc_value_data(v), sc_value_size(v), seen))
                    bad++;
                sc_value_release(v);
            }
        }
        if (seen && !atomic_load_explicit(&sh->writers_done, memory_order_relaxed))
            hits_while_writing++;
        if (seen) {
            if (seen < last[i]) {
                bad++; /* a version went backwards: the floor contract broke */
                fprintf(stderr, "%s: version %llu after %llu (op %u)\n", k, (unsigned long long)seen,
                        (unsigned long long)last[i], op);
            }
            last[i] = seen;
        }
    }
    for (unsigned s = 0; s < HOLD; s++)
        if (held[s]) {
            if (!value_ok(held_key[s], sc_value_data(held[s]), sc_value_size(held[s]), sc_value_version(held[s])))
                bad++;
            sc_value_release(held[s]);
        }
    free(last);
    atomic_fetch_add(&sh->bad, bad);
    atomic_fetch_add(&sh->hits, hits);
    atomic_fetch_add(&sh->hits_while_writing, hits_while_writing);
    return NULL;
}

struct writer_arg {
    struct shared *sh;
    unsigned seed;
    long iters;
    unsigned long bad;
};

static void *writer(void *arg)
{
    struct writer_arg *w = arg;
    struct shared *sh = w->sh;
    unsigned long r = w->seed;
    char k[32];
    /* The unbounded store's writers sweep a growing key range, so its
     * tables grow through several resizes before a clear empties them. */
    unsigned range = 64;
    for (long it = 0; it < w->iters; it++) {
        r = r * 6364136223846793005ul + 1442695040888963407ul;
        unsigned span = sh->unbounded ? range : NKEYS;
        unsigned i = (unsigned)((r >> 33) % span), op = (unsigned)((r >> 24) % 64);
        size_t kl = key_of(k, sizeof k, i);
        uint64_t h = sc__local_hash(k, kl);
        uint64_t version = 1 + (uint64_t)it * 4 + ((r >> 8) & 3) + (uint64_t)(r >> 50) % 64;
        if (op < 48) {
            sc_value *v = make_value(k, version, (size_t)((r >> 12) % 40));
            if (!v) {
                w->bad++;
                continue;
            }
            uint64_t ttl = op < 8 ? 1 + (r >> 16) % 3 : 0; /* some expire within ms */
            sc_status s = sc__local_put(sh->l, k, kl, h, v, ttl, version, 0);
            if (s != SC_OK && s != SC_ERR_CONFLICT)
                w->bad++;
            sc_value_release(v);
            /* A refused put must leave the floor or the held version
             * explaining it: one of them reached its version, and neither
             * goes back (a held value is replaced only by a newer one and
             * leaves raising the floor to its own version). */
            if (s == SC_ERR_CONFLICT) {
                uint64_t held = 0;
                sc_value *hv;
                if (sc__local_peek(sh->l, k, kl, h, &hv) == SC_OK) {
                    held = sc_value_version(hv);
                    sc_value_release(hv);
                }
                if (held < version && sc__local_floor(sh->l, h) <= version)
                    w->bad++;
            }
        } else if (op < 60) {
            uint64_t floor = version - (r >> 40) % 8;
            sc__local_remove(sh->l, k, kl, h, (r >> 5) & 1 ? UINT64_MAX : version, floor);
        } else if (op < 62) {
            sc__local_stats st;
            sc__local_stats(sh->l, &st);
        } else if (op == 62 && it % 64 == 0) {
            sc__local_clear(sh->l, (r >> 7) & 1 ? version : 0);
            range = 64;
        } else if (sh->unbounded && range < NKEYS) {
            range += 8;
        }
    }
    return NULL;
}

static void run(sc__local_config cfg, int unbounded, long iters)
{
    struct shared sh = {.l = sc__local_new(&cfg), .unbounded = unbounded};
    ck_assert_ptr_nonnull(sh.l);
    atomic_init(&sh.stop, 0);
    atomic_init(&sh.writers_done, 0);
    atomic_init(&sh.hits_while_writing, 0);
    atomic_init(&sh.bad, 0);
    atomic_init(&sh.hits, 0);
    pthread_mutex_init(&sh.mailbox_mu, NULL);
    size_t waiting0 = sc__pins_waiting();
    pthread_t rt[NREADERS], wt[NWRITERS];
    struct writer_arg wa[NWRITERS];
    for (int i = 0; i < NREADERS; i++)
        ck_assert_int_eq(pthread_create(&rt[i], NULL, reader, &sh), 0);
    for (int i = 0; i < NWRITERS; i++) {
        wa[i] = (struct writer_arg){.sh = &sh, .seed = 77u + (unsigned)i, .iters = iters};
        ck_assert_int_eq(pthread_create(&wt[i], NULL, writer, &wa[i]), 0);
    }
    for (int i = 0; i < NWRITERS; i++) {
        ck_assert_int_eq(pthread_join(wt[i], NULL), 0);
        ck_assert_uint_eq(wa[i].bad, 0);
    }
    atomic_store(&sh.writers_done, 1);
    atomic_store(&sh.stop, 1);
    for (int i = 0; i < NREADERS; i++)
        ck_assert_int_eq(pthread_join(rt[i], NULL), 0);
    if (sh.mailbox.v) {
        ck_assert(value_ok(sh.mailbox.key, sc_value_data(sh.mailbox.v), sc_value_size(sh.mailbox.v),
                           sc_value_version(sh.mailbox.v)));
        sc_value_release(sh.mailbox.v);
    }
    pthread_mutex_destroy(&sh.mailbox_mu);
    ck_assert_uint_eq(atomic_load(&sh.bad), 0);
    ck_assert_uint_gt(atomic_load(&sh.hits_while_writing), 0); /* the readers ran beside the writers */

    /* The counters match what the store holds. */
    static unsigned char stripe_users[STRIPES];
    memset(stripe_users, 0, sizeof stripe_users);
    char k[32];
    for (unsigned i = 0; i < NKEYS; i++) {
        size_t kl = key_of(k, sizeof k, i);
        uint64_t h = sc__local_hash(k, kl);
        if (stripe_users[stripe(h)] < 2)
            stripe_users[stripe(h)]++;
    }
    sc__local_stats st;
    sc__local_stats(sh.l, &st);
    uint64_t entries = 0, bytes = 0;
    for (unsigned i = 0; i < NKEYS; i++) {
        size_t kl = key_of(k, sizeof k, i);
        sc_value *v;
        uint64_t h = sc__local_hash(k, kl);
        if (sc__local_peek(sh.l, k, kl, h, &v) == SC_OK) {
            entries++;
            bytes += kl + sc_value_size(v);
            ck_assert(value_ok(k, sc_value_data(v), sc_value_size(v), sc_value_version(v)));
            /* Nothing below the key's floor (ordered puts: known ==
             * version), for a key alone in its floor stripe: keys sharing
             * one raise each other's floor (local/store.c). */
            if (stripe_users[stripe(h)] == 1)
                ck_assert_uint_ge(sc_value_version(v), sc__local_floor(sh.l, h));
            sc_value_release(v);
        }
    }
    /* Expired entries still held but not yet dropped are invisible to peek
     * yet counted: allow for them. */
    ck_assert_uint_ge(st.entries, entries);
    ck_assert_uint_ge(st.bytes, bytes);
    if (cfg.max_entries)
        ck_assert_uint_le(st.entries, cfg.max_entries);
    if (cfg.max_bytes)
        ck_assert_uint_le(st.bytes, cfg.max_bytes);
    ck_assert_uint_ge(st.hits, atomic_load(&sh.hits));
    sc__local_free(sh.l);
    /* Every pin was released: no value still waits for one. */
    ck_assert_uint_eq(sc__pins_waiting(), waiting0);
}

START_TEST(test_readers_during_evictions)
{
    sc__local_config cfg = {.policy = _i ? SC_LOCAL_LFU : SC_LOCAL_LRU, .max_entries = 200, .shards = 4};
    run(cfg, 0, 60000);
}
END_TEST

START_TEST(test_readers_during_byte_evictions)
{
    sc__local_config cfg = {.policy = _i ? SC_LOCAL_LFU : SC_LOCAL_LRU, .max_bytes = 6000, .shards = 2};
    run(cfg, 0, 40000);
}
END_TEST

START_TEST(test_readers_during_resizes)
{
    sc__local_config cfg = {.policy = _i ? SC_LOCAL_LFU : SC_LOCAL_LRU, .shards = 2};
    run(cfg, 1, 60000);
}
END_TEST

/* A thread that ends while the store lives: its record leaves the grace
 * period registry and its counters stay in the totals. */
static void *short_lived(void *arg)
{
    sc__local *l = arg;
    sc_value *v;
    for (int i = 0; i < 100; i++)
        if (sc__local_get(l, "k", 1, sc__local_hash("k", 1), &v) == SC_OK)
            sc_value_release(v);
    return NULL;
}

START_TEST(test_threads_come_and_go)
{
    sc__local_config cfg = {.policy = SC_LOCAL_LFU, .max_entries = 100, .shards = 1};
    sc__local *l = sc__local_new(&cfg);
    sc_value *v = sc__value_new("x", 1, 1);
    ck_assert_int_eq(sc__local_put(l, "k", 1, sc__local_hash("k", 1), v, 0, 1, 0), SC_OK);
    sc_value_release(v);
    for (int round = 0; round < 20; round++) {
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            ck_assert_int_eq(pthread_create(&t[i], NULL, short_lived, l), 0);
        for (int i = 0; i < 2; i++)
            ck_assert_int_eq(pthread_join(t[i], NULL), 0);
        /* Writes after the readers left still reclaim (no dead record
         * holds a grace period open). */
        for (int i = 0; i < 300; i++) {
            v = sc__value_new("y", 1, 2 + (uint64_t)(round * 300 + i));
            ck_assert_int_eq(sc__local_put(l, "k", 1, sc__local_hash("k", 1), v, 0, sc_value_version(v), 0), SC_OK);
            sc_value_release(v);
        }
        /* 300 replaced values, polled at 128 and 256: all but the last
         * few were freed (a record holding a grace period open would keep
         * them all, round after round). */
        ck_assert_uint_lt(l->shards[0].nlimbo, LIMBO_MIN);
    }
    sc__local_stats st;
    sc__local_stats(l, &st);
    ck_assert_uint_eq(st.hits, 20 * 2 * 100);
    sc__local_free(l);
}
END_TEST

static Suite *stress_suite(void)
{
    Suite *s = suite_create("local_stress");
    TCase *tc = tcase_create("stress");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, test_readers_during_evictions, 0, 2);
    tcase_add_loop_test(tc, test_readers_during_byte_evictions, 0, 2);
    tcase_add_loop_test(tc, test_readers_during_resizes, 0, 2);
    tcase_add_test(tc, test_threads_come_and_go);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stress_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
